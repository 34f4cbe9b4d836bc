//! The router's side of flow offload: the engine's offers written into the kernel fast path
//! ([`natpass_io::fastpath`]), and the fast path's counters read back into the engine.
//!
//! - An offer ([`natpass_engine::Offload`]) becomes two map entries, one per direction, with
//!   the MAC addresses the plane's neighbour caches hold (none known yet: no entries, the
//!   slow path goes on and offers again).
//! - Every second or few ([`scan_period_ns`]) a pass reads the entries' counters, a batch
//!   per housekeeping round (so that the slow path is never held up long): a direction that
//!   carried packets restarts its session's timer at the time of its last packet and adds
//!   its bytes; a flow whose session the engine expired, removed or saw end (TCP FIN or RST),
//!   or whose next hop's MAC address changed or was forgotten, is taken back (its entries
//!   removed, its packets go through natpass again).
//! - While `natpass capture` runs, nothing is offloaded and the entries are removed, so that
//!   the capture sees every packet.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use natpass_engine::{Instant, Offload, Proto, Side};
use natpass_io::fastpath::{self, FastPath, FlowAction, FlowKey};
use natpass_link::{FrameSink, Plane};
use tracing::warn;

/// How often the counters are read: every second, plus a second per 20,000 flows (reading
/// them costs the router CPU the fast path runs on), at most every 10 s. Sessions live for
/// minutes, so their timers do not notice.
fn scan_period_ns(flows: usize) -> u64 {
    (1 + (flows / 20_000) as u64).min(10) * 1_000_000_000
}
/// ICMP echo request and reply, as type and code in the key's destination port.
const ECHO_REQUEST: u16 = 0x0800;
const ECHO_REPLY: u16 = 0x0000;

/// One offloaded flow: its two entries and what their counters said last.
#[derive(Clone, Copy, Debug)]
struct Installed {
    /// LAN → WAN, WAN → LAN.
    keys: [FlowKey; 2],
    /// The MAC addresses written, [LAN host, WAN next hop]; a direction whose next hop's
    /// address is not known yet has no entry (a one-way flow's LAN host may never be asked).
    macs: [Option<[u8; 6]>; 2],
    seen: [fastpath::FlowCounters; 2],
}

/// The direction that leaves towards the host of `macs[i]`: index into `keys`.
fn direction_to(mac_index: usize) -> usize {
    1 - mac_index
}

/// Offloaded-flow counters, for the log and the metrics.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct OffloadStats {
    /// Flows handed to the fast path.
    pub(super) installed: u64,
    /// Flows taken back.
    pub(super) removed: u64,
    /// Packets the fast path forwarded (read at the last scan).
    pub(super) packets: u64,
    /// Offers not taken: the map full, or a write refused.
    pub(super) refused: u64,
}

/// The entries being written: the key index, this round's entries and the flows still
/// missing a direction.
struct Entries {
    /// LAN then WAN interface index.
    ifindex: [u32; 2],
    /// Entry key → its flow and whether it is the LAN → WAN direction.
    by_key: HashMap<FlowKey, (Offload, bool), RandomState>,
    /// Entries of this round's offers, not written yet.
    pending: Vec<(FlowKey, FlowAction)>,
    /// Flows with a direction whose next hop's address was not known yet.
    incomplete: Vec<Offload>,
}

/// A pass over the fast path's entries, a batch at a time.
#[derive(Default)]
struct Pass {
    cursor: fastpath::ScanCursor,
    /// When the map is sparse: the entries' keys, read one by one from `next` (a batch walks
    /// the map's empty buckets too), instead of by `cursor`.
    keys: Option<(Vec<FlowKey>, usize)>,
    /// Whether every flow read is checked (alive, same next hops), not only those that
    /// carried packets.
    full: bool,
    /// Packets of the entries read so far.
    packets: u64,
    /// [`Offloader::gone_packets`] when the pass began.
    gone_before: u64,
    /// A batch's entries, kept for the next.
    reports: Vec<(FlowKey, fastpath::FlowCounters)>,
}

/// The fast path and the flows in it.
pub(super) struct Offloader {
    fast: FastPath,
    flows: HashMap<Offload, Installed, RandomState>,
    entries: Entries,
    /// [`Plane::neighbours_learned`] when the incomplete flows were last looked at.
    learned: u64,
    next_scan: u64,
    /// The pass over the entries under way, if one is.
    pass: Option<Pass>,
    /// Off while a capture runs.
    paused: bool,
    /// Packets forwarded by flows since taken back.
    gone_packets: u64,
    /// Scans made.
    scans: u64,
    /// [`Plane::neighbour_changes`] at the last scan.
    neighbour_changes: u64,
    stats: OffloadStats,
}

impl Entries {
    /// The two directions of `o` with `lan_mac` (the LAN host) and `wan_mac` (the WAN next
    /// hop).
    fn of<T: FrameSink>(
        &self,
        plane: &Plane<T>,
        o: &Offload,
        macs: [Option<[u8; 6]>; 2],
    ) -> [(FlowKey, FlowAction); 2] {
        let macs = macs.map(|m| m.unwrap_or_default());
        let protocol = o.proto.ip_protocol().0;
        let icmp = o.proto == Proto::Icmp;
        let (lan, wan) = (plane.port(Side::Lan), plane.port(Side::Wan));
        let mtu = |m: usize| u16::try_from(m).unwrap_or(u16::MAX);
        let out = FlowKey {
            ifindex: self.ifindex[0],
            src: o.lan.addr,
            dst: o.remote.addr,
            protocol,
            sport: o.lan.port,
            dport: if icmp { ECHO_REQUEST } else { o.remote.port },
        };
        let out_act = FlowAction {
            src: o.public.addr,
            dst: o.remote.addr,
            sport: o.public.port,
            dport: o.remote.port,
            ifindex: self.ifindex[1],
            dst_mac: macs[1],
            src_mac: wan.mac,
            mtu: mtu(wan.mtu),
        };
        let back = FlowKey {
            ifindex: self.ifindex[1],
            src: o.remote.addr,
            dst: o.public.addr,
            protocol,
            sport: if icmp { o.public.port } else { o.remote.port },
            dport: if icmp { ECHO_REPLY } else { o.public.port },
        };
        let back_act = FlowAction {
            src: o.remote.addr,
            dst: o.lan.addr,
            sport: if icmp { o.lan.port } else { o.remote.port },
            dport: o.lan.port,
            ifindex: self.ifindex[0],
            dst_mac: macs[0],
            src_mac: lan.mac,
            mtu: mtu(lan.mtu),
        };
        [(out, out_act), (back, back_act)]
    }

    /// Writes the directions of `o` whose next hop is known and not written yet.
    fn write<T: FrameSink>(&mut self, plane: &Plane<T>, o: &Offload, f: &mut Installed, macs: [Option<[u8; 6]>; 2]) {
        let entries = self.of(plane, o, macs);
        for m in 0..2 {
            if f.macs[m].is_some() || macs[m].is_none() {
                continue;
            }
            // Written with this round's others by `write_pending`.
            let (k, a) = entries[direction_to(m)];
            f.macs[m] = macs[m];
            self.by_key.insert(k, (*o, direction_to(m) == 0));
            self.pending.push((k, a));
        }
        // Looked at again after a round in which a neighbour's address became known, when
        // natpass is asking for a missing one (the request this very packet made, say). A
        // one-way flow's LAN host is never asked: the scans complete such flows. Bounded:
        // beyond that, the next scan or slow-path packet completes it.
        let hops = [(Side::Lan, o.lan.addr), (Side::Wan, o.remote.addr)];
        let asked = (0..2).any(|m| f.macs[m].is_none() && plane.next_hop_resolving(hops[m].0, hops[m].1));
        if asked && self.incomplete.len() < 1024 {
            self.incomplete.push(*o);
        }
    }
}

impl Offloader {
    /// Over `fast`, attached to the LAN and WAN interfaces (in that order).
    pub(super) fn new(fast: FastPath) -> Self {
        let ix = fast.ifindexes();
        let ifindex = [ix[0], ix[1]];
        Self {
            fast,
            flows: HashMap::default(),
            entries: Entries { ifindex, by_key: HashMap::default(), pending: Vec::new(), incomplete: Vec::new() },
            learned: 0,
            next_scan: 0,
            pass: None,
            paused: false,
            gone_packets: 0,
            scans: 0,
            neighbour_changes: 0,
            stats: OffloadStats::default(),
        }
    }

    /// The counters.
    pub(super) fn stats(&self) -> OffloadStats {
        self.stats
    }

    /// Flows in the fast path now.
    pub(super) fn len(&self) -> usize {
        self.flows.len()
    }

    /// Pauses offloading (a capture runs) or resumes it.
    pub(super) fn pause(&mut self, paused: bool) {
        if paused && !self.paused {
            let all: Vec<Offload> = self.flows.keys().copied().collect();
            for o in all {
                self.take_back(&o);
            }
        }
        self.paused = paused;
    }

    /// The MAC addresses the flow's two directions leave to: the LAN host's, the WAN next
    /// hop's.
    fn macs<T: FrameSink>(plane: &Plane<T>, o: &Offload) -> [Option<[u8; 6]>; 2] {
        [plane.next_hop_mac(Side::Lan, o.lan.addr), plane.next_hop_mac(Side::Wan, o.remote.addr)]
    }

    /// Writes the missing directions of flows whose next hop became known (an ARP reply this
    /// round, say), then the entries of this round's offers, in one call; a flow whose entry
    /// could not be written is taken back.
    pub(super) fn write_pending<T: FrameSink>(&mut self, plane: &Plane<T>) {
        // Only when an address became known since the last look: a one-way flow's LAN host
        // may never be asked, and its flow must not cost a lookup every round.
        let learned = plane.neighbours_learned();
        if !self.entries.incomplete.is_empty() && learned != self.learned {
            self.learned = learned;
            for o in std::mem::take(&mut self.entries.incomplete) {
                let Some(f) = self.flows.get_mut(&o) else { continue };
                self.entries.write(plane, &o, f, Self::macs(plane, &o));
            }
        }
        if self.entries.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.entries.pending);
        if let Err((written, e)) = self.fast.insert_batch(&pending) {
            for (k, _) in &pending[written.min(pending.len())..] {
                if let Some(&(o, _)) = self.entries.by_key.get(k) {
                    self.take_back(&o);
                    self.stats.refused += 1;
                }
            }
            if self.stats.refused.is_power_of_two() {
                warn!("fast path: writing flows failed ({e}); they stay on the slow path");
            }
        }
        self.entries.pending = pending;
        self.entries.pending.clear();
    }

    /// Takes the engine's offer, if the last packet left one.
    pub(super) fn offer<T: FrameSink>(&mut self, plane: &mut Plane<T>) {
        let Some(o) = plane.engine_mut().take_offload() else { return };
        if self.paused {
            return;
        }
        // Handed over already: a direction that waited for its next hop's address (asked for
        // by this very packet, say) is written as soon as the address is known.
        if let Some(f) = self.flows.get_mut(&o) {
            if f.macs.contains(&None) {
                self.entries.write(plane, &o, f, Self::macs(plane, &o));
            }
            return;
        }
        // Two entries per flow, and room kept for replacing.
        if (self.flows.len() + 1) * 2 > self.fast.capacity() as usize {
            self.stats.refused += 1;
            return;
        }
        let macs = Self::macs(plane, &o);
        if macs == [None, None] {
            return;
        }
        let entries = self.entries.of(plane, &o, macs);
        let mut f = Installed { keys: [entries[0].0, entries[1].0], macs: [None, None], seen: Default::default() };
        self.entries.write(plane, &o, &mut f, macs);
        if f.macs == [None, None] {
            return;
        }
        plane.engine_mut().offloaded(&o);
        self.flows.insert(o, f);
        self.stats.installed += 1;
    }

    fn take_back(&mut self, o: &Offload) {
        if let Some(f) = self.flows.remove(o) {
            self.gone_packets += f.seen[0].packets + f.seen[1].packets;
            for (m, mac) in f.macs.iter().enumerate() {
                if mac.is_some() {
                    let k = &f.keys[direction_to(m)];
                    let _ = self.fast.remove(k);
                    self.entries.by_key.remove(k);
                }
            }
            self.stats.removed += 1;
        }
    }

    /// Every [`scan_period_ns`] a pass over the fast path's entries begins; each call (the
    /// router's housekeeping, every 10 ms) reads one batch of it, so that a pass over
    /// 100,000 flows does not hold the slow path up for half a second. Counters go into the
    /// engine, ended flows are taken back. `now` is the engine's clock, `mono_now`
    /// `CLOCK_MONOTONIC` at the same moment.
    pub(super) fn scan<T: FrameSink>(&mut self, now: Instant, mono_now: u64, plane: &mut Plane<T>) {
        if self.pass.is_none() {
            if now.as_nanos() < self.next_scan {
                return;
            }
            self.next_scan = now.as_nanos() + scan_period_ns(self.flows.len());
            // Flows that carried packets are checked as they are read. The others (expired,
            // removed) and every flow's next hops are looked at on each 4th pass, or at once
            // when a neighbour's MAC address changed: these lookups are most of a pass's
            // cost, paid on the CPU the slow path shares with the fast path.
            self.scans += 1;
            let changes = plane.neighbour_changes();
            let full = self.scans.is_multiple_of(4) || changes != self.neighbour_changes;
            self.neighbour_changes = changes;
            // A lookup by key costs a few hundred times a bucket's walk: by key while the map has
            // fewer entries than a 256th of its buckets.
            let keys = (self.entries.by_key.len() as u64) < self.fast.buckets() / 256;
            let keys = keys.then(|| (self.entries.by_key.keys().copied().collect(), 0));
            self.pass = Some(Pass { full, keys, gone_before: self.gone_packets, ..Pass::default() });
        }
        let Some(mut pass) = self.pass.take() else { return };
        let mut reports = std::mem::take(&mut pass.reports);
        let read = match &mut pass.keys {
            Some((keys, next)) => {
                let batch = &keys[*next..keys.len().min(*next + fastpath::ScanCursor::BATCH)];
                *next += batch.len();
                let done = *next == keys.len();
                self.fast.counters_of(batch, |k, c| reports.push((k, c))).map(|()| done)
            }
            None => self.fast.scan_some(&mut pass.cursor, |k, c| reports.push((k, c))),
        };
        let done = match read {
            Ok(done) => done,
            Err(e) => {
                // The pass is dropped; the next one begins a period later.
                warn!("fast path: reading the counters failed: {e}");
                return;
            }
        };
        let mut ended = Vec::new();
        let mut grow = Vec::new();
        for (k, c) in reports.drain(..) {
            pass.packets += c.packets;
            let Some(&(o, from_lan)) = self.entries.by_key.get(&k) else {
                // Not ours (left from a flow taken back meanwhile): remove it.
                let _ = self.fast.remove(&k);
                continue;
            };
            let Some(f) = self.flows.get_mut(&o) else { continue };
            let dir = usize::from(!from_lan);
            let before = f.seen[dir];
            if c.packets > before.packets {
                f.seen[dir] = c;
                // IP bytes: the counters include each frame's Ethernet header.
                let bytes = (c.bytes - before.bytes).saturating_sub(14 * (c.packets - before.packets));
                let ago = mono_now.saturating_sub(c.last_ns);
                let at = Instant::from_nanos(now.as_nanos().saturating_sub(ago));
                if !plane.engine_mut().offload_seen(at, &o, from_lan, bytes) {
                    ended.push(o);
                    continue;
                }
            }
            if pass.full {
                let now_macs = Self::macs(plane, &o);
                let changed = (0..2).any(|m| f.macs[m].is_some() && f.macs[m] != now_macs[m]);
                if !plane.engine().offload_live(&o) || changed {
                    ended.push(o);
                } else if (0..2).any(|m| f.macs[m].is_none() && now_macs[m].is_some()) {
                    grow.push((o, now_macs));
                }
            }
        }
        for o in ended {
            self.take_back(&o);
        }
        for (o, macs) in grow {
            if let Some(f) = self.flows.get_mut(&o) {
                self.entries.write(plane, &o, f, macs);
            }
        }
        if done {
            // Flows taken back during the pass are in `gone_packets` and, if read before,
            // in the pass's sum too: counted from where the pass began.
            self.stats.packets = pass.gone_before + pass.packets;
        } else {
            pass.reports = reports;
            self.pass = Some(pass);
        }
    }
}
