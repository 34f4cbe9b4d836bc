//! The router's own neighbour cache, one design for both families: ARP (RFC 826, with the
//! timers of RFC 1122 §2.3.2.1) for IPv4 and Neighbor Discovery (RFC 4861 §7.2, §7.3) for
//! IPv6. Next hops are resolved by natpass, not by the kernel, and packets wait in a bounded
//! queue while their next hop is being resolved (RFC 1122 §2.3.2.2: "SHOULD save at least one
//! packet"; RFC 4861 §7.2.2).
//!
//! Neighbour Unreachability Detection (RFC 4861 §7.3.2, §7.3.3): an answered address is
//! REACHABLE for [`REACHABLE`]; then it is STALE and still used. The first packet for a
//! STALE address moves it to DELAY, and [`DELAY_FIRST_PROBE`] later, unless an answer made it
//! REACHABLE again, to PROBE: [`MAX_TRIES`] unicast probes [`RETRY`] apart, and without an
//! answer it is forgotten. An address learned without proof of reachability (the sender of a
//! solicitation, an unsolicited advertisement) starts STALE ([`Neighbours::learn_stale`]). An unresolved address (INCOMPLETE) gets
//! [`MAX_TRIES`] requests [`RETRY`] apart (MAX_MULTICAST_SOLICIT and RETRANS_TIMER) before
//! its packets are dropped. A stale address unused for [`STALE_KEEP`] is forgotten.
//!
//! Sans-IO: the caller passes `now`, sends the requests [`Neighbours::poll`] asks for and the
//! packets [`Neighbours::learn`] releases.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use natpass_engine::Instant;
use natpass_wire::ethernet::MacAddr;

/// How long a learned address is used before it is probed.
pub const REACHABLE: Duration = Duration::from_secs(60);
/// How long a used STALE address waits before it is probed (RFC 4861 DELAY_FIRST_PROBE_TIME).
pub const DELAY_FIRST_PROBE: Duration = Duration::from_secs(5);
/// Time between requests for an address that has not answered.
pub const RETRY: Duration = Duration::from_secs(1);
/// Requests (or probes) sent before the address is given up.
pub const MAX_TRIES: u32 = 3;
/// How long a stale address is kept unused.
pub const STALE_KEEP: Duration = Duration::from_secs(600);
/// Packets held per unresolved address.
pub const QUEUE_PER_ADDR: usize = 16;
/// Packets held in all.
pub const QUEUE_TOTAL: usize = 1024;
/// Addresses held at once (learned and unresolved).
pub const MAX_ENTRIES: usize = 4096;

/// A network address a neighbour cache resolves: IPv4 (ARP) or IPv6 (Neighbor Discovery).
pub trait NeighbourAddr: Copy + Eq + Hash + Ord + Debug {}
impl NeighbourAddr for Ipv4Addr {}
impl NeighbourAddr for Ipv6Addr {}

#[derive(Debug)]
enum State {
    /// REACHABLE until `until`, STALE after.
    Known { mac: MacAddr, until: Instant },
    /// DELAY: used since it went stale; probed at `probe_at`.
    Delay { mac: MacAddr, probe_at: Instant },
    /// PROBE: still used, asked by unicast.
    Probe { mac: MacAddr, tries: u32, next_try: Instant },
    /// INCOMPLETE: asked by broadcast or multicast, packets waiting.
    Resolving { tries: u32, next_try: Instant, queue: VecDeque<Vec<u8>> },
}

impl State {
    /// The MAC address, when known.
    fn mac(&self) -> Option<MacAddr> {
        match self {
            State::Known { mac, .. } | State::Delay { mac, .. } | State::Probe { mac, .. } => Some(*mac),
            State::Resolving { .. } => None,
        }
    }
}

/// What to do with a packet for a next hop.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send it to this MAC address.
    Known(MacAddr),
    /// It was queued until the address answers.
    Queued {
        /// True when a request should go out now (the first packet for this address).
        request: bool,
    },
    /// It was dropped: the queue is full.
    Dropped,
}

/// One interface's neighbour cache for one address family.
#[derive(Debug)]
pub struct Neighbours<A: NeighbourAddr = Ipv4Addr> {
    entries: HashMap<A, State>,
    queued: usize,
    /// Packets dropped because their queue was full.
    pub queue_full: u64,
    /// Packets dropped because their next hop never answered.
    pub unresolved: u64,
    /// Known neighbours that stopped answering probes and were forgotten.
    pub unreachable: u64,
    /// Bumped whenever a known MAC address changes or is forgotten: what was read from
    /// [`Neighbours::mac_of`] before may be wrong since.
    pub changes: u64,
    /// Bumped whenever an address gains a MAC address it did not have: what
    /// [`Neighbours::mac_of`] said `None` of before may have an answer now.
    pub learned: u64,
}

impl<A: NeighbourAddr> Default for Neighbours<A> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            queued: 0,
            queue_full: 0,
            unresolved: 0,
            unreachable: 0,
            changes: 0,
            learned: 0,
        }
    }
}

impl<A: NeighbourAddr> Neighbours<A> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to send a packet for next hop `ip`; when unknown, `packet` is queued until
    /// [`Neighbours::learn`] releases it.
    pub fn lookup(&mut self, now: Instant, ip: A, packet: &[u8]) -> Lookup {
        match self.entries.get_mut(&ip) {
            Some(State::Known { mac, until }) if *until > now => return Lookup::Known(*mac),
            Some(st @ State::Known { .. }) => {
                let State::Known { mac, .. } = *st else { return Lookup::Dropped };
                *st = State::Delay { mac, probe_at: now + DELAY_FIRST_PROBE };
                return Lookup::Known(mac);
            }
            Some(State::Delay { mac, .. } | State::Probe { mac, .. }) => return Lookup::Known(*mac),
            Some(State::Resolving { queue, .. }) => {
                if queue.len() >= QUEUE_PER_ADDR || self.queued >= QUEUE_TOTAL {
                    self.queue_full += 1;
                    return Lookup::Dropped;
                }
                queue.push_back(packet.to_vec());
                self.queued += 1;
                return Lookup::Queued { request: false };
            }
            None => {}
        }
        if self.queued >= QUEUE_TOTAL || self.entries.len() >= MAX_ENTRIES {
            self.queue_full += 1;
            return Lookup::Dropped;
        }
        self.queued += 1;
        self.entries
            .insert(ip, State::Resolving { tries: 1, next_try: now + RETRY, queue: VecDeque::from([packet.to_vec()]) });
        Lookup::Queued { request: true }
    }

    /// Records that `ip` is at `mac` and reachable (from a reply, or a request that names
    /// us), and returns the packets that were waiting for it.
    pub fn learn(&mut self, now: Instant, ip: A, mac: MacAddr) -> Vec<Vec<u8>> {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            return Vec::new();
        }
        let old = self.entries.insert(ip, State::Known { mac, until: now + REACHABLE });
        match old.as_ref().and_then(State::mac) {
            Some(m) if m != mac => self.changes += 1,
            Some(_) => {}
            None => self.learned += 1,
        }
        match old {
            Some(State::Resolving { queue, .. }) => {
                self.queued -= queue.len();
                queue.into()
            }
            _ => Vec::new(),
        }
    }

    /// Records that `ip` is at `mac` without proof that it is reachable (RFC 4861 §7.2.3: the
    /// sender of a Neighbor Solicitation or Router Solicitation; §7.2.5: an unsolicited
    /// Neighbor Advertisement): a new entry, or one whose address changed, is STALE (used,
    /// and probed on first use); an entry with that address stays as it is. Returns the
    /// packets that were waiting for it.
    pub fn learn_stale(&mut self, now: Instant, ip: A, mac: MacAddr) -> Vec<Vec<u8>> {
        match self.entries.get(&ip) {
            Some(State::Known { mac: m, .. } | State::Delay { mac: m, .. } | State::Probe { mac: m, .. })
                if *m == mac =>
            {
                return Vec::new();
            }
            None if self.entries.len() >= MAX_ENTRIES => return Vec::new(),
            _ => {}
        }
        let old = self.entries.insert(ip, State::Known { mac, until: now });
        if old.as_ref().and_then(State::mac).is_some() {
            self.changes += 1;
        } else {
            self.learned += 1;
        }
        match old {
            Some(State::Resolving { queue, .. }) => {
                self.queued -= queue.len();
                queue.into()
            }
            _ => Vec::new(),
        }
    }

    /// Refreshes `ip` only if it is already known or being resolved (RFC 826's "merge" rule
    /// for requests that are not for us).
    pub fn refresh(&mut self, now: Instant, ip: A, mac: MacAddr) -> Vec<Vec<u8>> {
        if self.entries.contains_key(&ip) { self.learn(now, ip, mac) } else { Vec::new() }
    }

    /// The MAC address `ip` is at, when known (reachable, stale or being probed), without
    /// touching its state.
    pub fn mac_of(&self, ip: A) -> Option<MacAddr> {
        self.entries.get(&ip)?.mac()
    }

    /// True when `ip` has an entry (known, probed or being resolved).
    pub fn is_known(&self, ip: A) -> bool {
        self.entries.contains_key(&ip)
    }

    /// True when `ip` is being resolved (an answer for it is expected).
    pub fn is_resolving(&self, ip: A) -> bool {
        matches!(self.entries.get(&ip), Some(State::Resolving { .. } | State::Delay { .. } | State::Probe { .. }))
    }

    /// Retries and expiries due by `now`: returns the addresses to ask for again, with the
    /// MAC address to ask by unicast (a probe) or `None` (broadcast or multicast).
    /// Addresses that did not answer [`MAX_TRIES`] requests lose their queued packets;
    /// probed ones that did not answer are forgotten, and so are stale ones unused for
    /// [`STALE_KEEP`].
    pub fn poll(&mut self, now: Instant) -> Vec<(A, Option<MacAddr>)> {
        let mut ask = Vec::new();
        let (mut dropped, mut lost, mut forgotten) = (0, 0, 0);
        self.entries.retain(|&ip, st| match st {
            State::Known { until, .. } => {
                let keep = *until + STALE_KEEP > now;
                forgotten += usize::from(!keep);
                keep
            }
            State::Delay { mac, probe_at } => {
                if *probe_at <= now {
                    let mac = *mac;
                    *st = State::Probe { mac, tries: 1, next_try: now + RETRY };
                    ask.push((ip, Some(mac)));
                }
                true
            }
            State::Probe { mac, tries, next_try } => {
                if *next_try > now {
                    return true;
                }
                if *tries >= MAX_TRIES {
                    lost += 1;
                    return false;
                }
                *tries += 1;
                *next_try = now + RETRY;
                ask.push((ip, Some(*mac)));
                true
            }
            State::Resolving { tries, next_try, queue } => {
                if *next_try > now {
                    return true;
                }
                if *tries >= MAX_TRIES {
                    dropped += queue.len();
                    return false;
                }
                *tries += 1;
                *next_try = now + RETRY;
                ask.push((ip, None));
                true
            }
        });
        self.queued -= dropped;
        self.unresolved += dropped as u64;
        self.unreachable += lost;
        if lost > 0 || forgotten > 0 {
            self.changes += 1;
        }
        ask
    }

    /// Packets waiting for resolution.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Addresses with a MAC address (reachable, stale or being probed), for display.
    pub fn known(&self) -> Vec<(A, MacAddr)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter_map(|(&ip, s)| match s {
                State::Known { mac, .. } | State::Delay { mac, .. } | State::Probe { mac, .. } => Some((ip, *mac)),
                State::Resolving { .. } => None,
            })
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
    const MAC: MacAddr = [2, 0, 0, 0, 0, 9];

    fn at(nanos: u64) -> Instant {
        Instant::from_nanos(nanos)
    }

    #[test]
    fn a_changed_or_forgotten_mac_address_is_counted() {
        let mut n: Neighbours = Neighbours::new();
        n.learn(at(0), GW, MAC);
        n.learn(at(1), GW, MAC);
        assert_eq!((n.changes, n.mac_of(GW)), (0, Some(MAC)), "the same address again is no change");
        assert_eq!(n.learned, 1, "learned once");
        n.learn(at(2), GW, [2, 0, 0, 0, 0, 10]);
        assert_eq!(n.changes, 1);
        n.learn_stale(at(3), GW, MAC);
        assert_eq!(n.changes, 2);
        let _ = n.poll(at(3) + REACHABLE + STALE_KEEP + STALE_KEEP);
        assert_eq!((n.changes, n.mac_of(GW)), (3, None), "forgotten");
        assert_eq!(n.learned, 1, "changes are not learning");
        n.learn(at(4), GW, MAC);
        assert_eq!(n.learned, 2, "known again after being forgotten");
    }

    fn retries(n: u32) -> Instant {
        Instant::ZERO + RETRY * n
    }

    #[test]
    fn rfc4861_7_2_3_a_solicitations_sender_is_stale_and_probed_on_first_use() {
        let mut n: Neighbours = Neighbours::new();
        // New: STALE, so its first use probes it.
        assert!(n.learn_stale(at(0), GW, MAC).is_empty());
        assert_eq!(n.lookup(at(1), GW, b"p"), Lookup::Known(MAC));
        assert_eq!(n.poll(at(1) + DELAY_FIRST_PROBE), vec![(GW, Some(MAC))]);
        // Known and reachable with the same address: left as it is.
        n.learn(at(2), GW, MAC);
        assert!(n.learn_stale(at(3), GW, MAC).is_empty());
        assert_eq!(n.lookup(at(4), GW, b"p"), Lookup::Known(MAC));
        // A new address: replaced, and STALE again.
        let other = [2, 0, 0, 0, 0, 10];
        n.learn_stale(at(5), GW, other);
        assert_eq!(n.lookup(at(6), GW, b"p"), Lookup::Known(other));
        assert_eq!(n.poll(at(6) + DELAY_FIRST_PROBE), vec![(GW, Some(other))]);
        // Being resolved: its packets leave.
        let mut n: Neighbours = Neighbours::new();
        assert_eq!(n.lookup(at(0), GW, b"waiting"), Lookup::Queued { request: true });
        assert_eq!(n.learn_stale(at(1), GW, MAC), vec![b"waiting".to_vec()]);
        assert_eq!(n.queued(), 0);
    }

    #[test]
    fn queues_until_learned_then_releases_in_order() {
        let mut n = Neighbours::new();
        assert_eq!(n.lookup(at(0), GW, b"one"), Lookup::Queued { request: true });
        assert_eq!(n.lookup(at(1), GW, b"two"), Lookup::Queued { request: false });
        assert_eq!(n.queued(), 2);
        let out = n.learn(at(2), GW, MAC);
        assert_eq!(out, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(n.queued(), 0);
        assert_eq!(n.lookup(at(3), GW, b"three"), Lookup::Known(MAC));
    }

    #[test]
    fn queue_is_bounded_per_address() {
        let mut n = Neighbours::new();
        for i in 0..QUEUE_PER_ADDR {
            assert!(matches!(n.lookup(at(i as u64), GW, b"x"), Lookup::Queued { .. }));
        }
        assert_eq!(n.lookup(at(99), GW, b"x"), Lookup::Dropped);
        assert_eq!(n.queue_full, 1);
    }

    #[test]
    fn retries_then_gives_up_and_counts() {
        let mut n = Neighbours::new();
        n.lookup(Instant::ZERO, GW, b"p");
        assert!(n.poll(Instant::ZERO + RETRY / 2).is_empty());
        assert_eq!(n.poll(retries(1)), vec![(GW, None)]);
        assert_eq!(n.poll(retries(2)), vec![(GW, None)]);
        assert!(n.poll(retries(3)).is_empty());
        assert_eq!(n.unresolved, 1);
        assert_eq!(n.queued(), 0);
        // A later packet starts over with a fresh request.
        assert_eq!(n.lookup(retries(4), GW, b"q"), Lookup::Queued { request: true });
    }

    /// RFC 4861 §7.3.3: a STALE entry is still used; its use moves it to DELAY, and
    /// DELAY_FIRST_PROBE_TIME later it is probed by unicast, unless an answer came first.
    #[test]
    fn rfc4861_7_3_3_a_stale_neighbour_is_used_then_probed_by_unicast_after_the_delay() {
        let mut n = Neighbours::new();
        n.learn(Instant::ZERO, GW, MAC);
        assert_eq!(n.known(), vec![(GW, MAC)]);
        let stale = Instant::ZERO + REACHABLE + Duration::from_nanos(1);
        assert_eq!(n.lookup(stale, GW, b"p"), Lookup::Known(MAC));
        assert!(n.poll(stale + DELAY_FIRST_PROBE / 2).is_empty(), "DELAY: no probe yet");
        assert_eq!(n.poll(stale + DELAY_FIRST_PROBE), vec![(GW, Some(MAC))]);
        assert_eq!(n.lookup(stale + DELAY_FIRST_PROBE, GW, b"q"), Lookup::Known(MAC), "used while probed");
        // An answer makes it reachable again: no more probes.
        n.learn(stale + DELAY_FIRST_PROBE + RETRY / 2, GW, MAC);
        assert!(n.poll(stale + DELAY_FIRST_PROBE + RETRY).is_empty());
        // An answer during DELAY spares the probe.
        let stale = stale + DELAY_FIRST_PROBE + REACHABLE * 2;
        assert_eq!(n.lookup(stale, GW, b"r"), Lookup::Known(MAC));
        n.learn(stale + RETRY, GW, MAC);
        assert!(n.poll(stale + DELAY_FIRST_PROBE).is_empty());
    }

    /// RFC 4861 §7.3.3: a neighbour that answers none of MAX_UNICAST_SOLICIT probes is
    /// deleted; the next packet resolves it afresh.
    #[test]
    fn an_unanswered_probe_forgets_the_neighbour() {
        let mut n = Neighbours::<Ipv6Addr>::new();
        let gw: Ipv6Addr = "fe80::1".parse().unwrap();
        n.learn(Instant::ZERO, gw, MAC);
        let stale = Instant::ZERO + REACHABLE;
        assert_eq!(n.lookup(stale, gw, b"p"), Lookup::Known(MAC));
        let probe = stale + DELAY_FIRST_PROBE;
        assert_eq!(n.poll(probe), vec![(gw, Some(MAC))]);
        assert_eq!(n.poll(probe + RETRY), vec![(gw, Some(MAC))]);
        assert_eq!(n.poll(probe + RETRY * 2), vec![(gw, Some(MAC))]);
        assert!(n.poll(probe + RETRY * 3).is_empty());
        assert_eq!(n.unreachable, 1);
        assert_eq!(n.lookup(probe + RETRY * 3, gw, b"q"), Lookup::Queued { request: true });
    }

    #[test]
    fn unused_stale_neighbours_are_forgotten() {
        let mut n = Neighbours::new();
        n.learn(Instant::ZERO, GW, MAC);
        n.poll(Instant::ZERO + REACHABLE + STALE_KEEP);
        assert!(n.known().is_empty());
    }

    #[test]
    fn refresh_does_not_add_strangers() {
        let mut n = Neighbours::new();
        assert!(n.refresh(Instant::ZERO, GW, MAC).is_empty());
        assert!(n.known().is_empty());
    }
}
