//! The router's own ARP cache (RFC 826, with the timers of RFC 1122 §2.3.2.1): next hops are
//! resolved by natpass, not by the kernel, and packets wait in a bounded queue while their
//! next hop is being resolved (RFC 1122 §2.3.2.2: "SHOULD save at least one packet").
//!
//! Reachability follows RFC 4861 §7.3 in a reduced form: an answered address is REACHABLE for
//! [`REACHABLE`] and then forgotten (asked again on the next packet); an unresolved one gets
//! [`MAX_TRIES`] requests [`RETRY`] apart (RFC 4861's MAX_MULTICAST_SOLICIT and
//! RETRANS_TIMER) before its packets are dropped.
//!
//! Sans-IO: the caller passes `now`, sends the requests [`Neighbours::poll`] asks for and the
//! packets [`Neighbours::learn`] releases.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use natpass_engine::Instant;
use natpass_wire::ethernet::MacAddr;

/// How long a learned address is used before it is asked again.
pub const REACHABLE: Duration = Duration::from_secs(60);
/// Time between requests for an address that has not answered.
pub const RETRY: Duration = Duration::from_secs(1);
/// Requests sent before the waiting packets are dropped.
pub const MAX_TRIES: u32 = 3;
/// Packets held per unresolved address.
pub const QUEUE_PER_ADDR: usize = 16;
/// Packets held in all.
pub const QUEUE_TOTAL: usize = 1024;
/// Addresses held at once (learned and unresolved).
pub const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
enum State {
    Reachable { mac: MacAddr, until: Instant },
    Resolving { tries: u32, next_try: Instant, queue: VecDeque<Vec<u8>> },
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

/// One interface's ARP cache.
#[derive(Debug, Default)]
pub struct Neighbours {
    entries: HashMap<Ipv4Addr, State>,
    queued: usize,
    /// Packets dropped because their queue was full.
    pub queue_full: u64,
    /// Packets dropped because their next hop never answered.
    pub unresolved: u64,
}

impl Neighbours {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to send a packet for next hop `ip`; when unknown, `packet` (an IPv4 packet) is
    /// queued until [`Neighbours::learn`] releases it.
    pub fn lookup(&mut self, now: Instant, ip: Ipv4Addr, packet: &[u8]) -> Lookup {
        match self.entries.get_mut(&ip) {
            Some(State::Reachable { mac, until }) if *until > now => return Lookup::Known(*mac),
            Some(State::Resolving { queue, .. }) => {
                if queue.len() >= QUEUE_PER_ADDR || self.queued >= QUEUE_TOTAL {
                    self.queue_full += 1;
                    return Lookup::Dropped;
                }
                queue.push_back(packet.to_vec());
                self.queued += 1;
                return Lookup::Queued { request: false };
            }
            _ => {}
        }
        if self.queued >= QUEUE_TOTAL || (self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip)) {
            self.queue_full += 1;
            return Lookup::Dropped;
        }
        self.queued += 1;
        self.entries
            .insert(ip, State::Resolving { tries: 1, next_try: now + RETRY, queue: VecDeque::from([packet.to_vec()]) });
        Lookup::Queued { request: true }
    }

    /// Records that `ip` is at `mac` (from a reply, or a request that names us), and returns
    /// the packets that were waiting for it.
    pub fn learn(&mut self, now: Instant, ip: Ipv4Addr, mac: MacAddr) -> Vec<Vec<u8>> {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            return Vec::new();
        }
        let old = self.entries.insert(ip, State::Reachable { mac, until: now + REACHABLE });
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
    pub fn refresh(&mut self, now: Instant, ip: Ipv4Addr, mac: MacAddr) -> Vec<Vec<u8>> {
        if self.entries.contains_key(&ip) { self.learn(now, ip, mac) } else { Vec::new() }
    }

    /// Retries and expiries due by `now`: returns the addresses to ask for again. Addresses
    /// that did not answer [`MAX_TRIES`] requests lose their queued packets; learned ones
    /// past their time are forgotten.
    pub fn poll(&mut self, now: Instant) -> Vec<Ipv4Addr> {
        let mut ask = Vec::new();
        let mut dropped = 0;
        self.entries.retain(|&ip, st| match st {
            State::Reachable { until, .. } => *until > now,
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
                ask.push(ip);
                true
            }
        });
        self.queued -= dropped;
        self.unresolved += dropped as u64;
        ask
    }

    /// Packets waiting for resolution.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Addresses learned and still valid at `now`, for display.
    pub fn known(&self, now: Instant) -> Vec<(Ipv4Addr, MacAddr)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter_map(|(&ip, s)| match s {
                State::Reachable { mac, until } if *until > now => Some((ip, *mac)),
                _ => None,
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

    fn retries(n: u32) -> Instant {
        Instant::ZERO + RETRY * n
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
        assert_eq!(n.poll(retries(1)), vec![GW]);
        assert_eq!(n.poll(retries(2)), vec![GW]);
        assert!(n.poll(retries(3)).is_empty());
        assert_eq!(n.unresolved, 1);
        assert_eq!(n.queued(), 0);
        // A later packet starts over with a fresh request.
        assert_eq!(n.lookup(retries(4), GW, b"q"), Lookup::Queued { request: true });
    }

    #[test]
    fn learned_entries_expire() {
        let mut n = Neighbours::new();
        n.learn(Instant::ZERO, GW, MAC);
        assert_eq!(n.known(at(1)), vec![(GW, MAC)]);
        assert_eq!(
            n.lookup(Instant::ZERO + REACHABLE + Duration::from_nanos(1), GW, b"p"),
            Lookup::Queued { request: true }
        );
    }

    #[test]
    fn refresh_does_not_add_strangers() {
        let mut n = Neighbours::new();
        assert!(n.refresh(Instant::ZERO, GW, MAC).is_empty());
        assert!(n.known(at(1)).is_empty());
    }
}
