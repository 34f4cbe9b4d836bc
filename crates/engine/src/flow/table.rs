//! The session table: a slab of sessions with two hash indexes (LAN view and WAN view), the
//! endpoint-independent mappings they share (RFC 4787 REQ-1, RFC 5382 REQ-1), paired address
//! pooling (RFC 4787 REQ-2), port allocation (REQ-3), per-host limits (RFC 6888 REQ-4) and
//! expiry on two timing wheels (RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-2).
//!
//! Memory is bounded: at most `max_sessions` sessions; every index is sized for that at start,
//! so the established path never allocates.

use core::hash::BuildHasher;
use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashTable};

use super::ports::PortMap;
use super::session::{Proto, Session, state};
use super::tcp_window::{Segment, TcpWindow};
use super::wheel::{NIL, SLOTS, Wheel};
use crate::config::{EngineConfig, Filtering};
use crate::time::Instant;
use crate::verdict::DropReason;

/// The wheel of sessions evicted first: unreplied, opening, closing, reset.
const EVICTABLE: u8 = 0;
/// The wheel of established sessions.
const ESTABLISHED: u8 = 1;
const NS: u64 = 1_000_000_000;

/// An endpoint-independent mapping: (LAN address, LAN port, protocol) → (public address, port).
#[derive(Clone, Debug, Default)]
struct Mapping {
    lan_ip: u32,
    lan_port: u16,
    ext_port: u16,
    ext_idx: u16,
    proto: u8,
    sessions: u32,
    head: u32,
}

/// What the table knows of a LAN host: its paired public address and its session count.
#[derive(Clone, Copy, Debug)]
struct Host {
    ext_idx: u16,
    sessions: u32,
}

/// An address and a port (for ICMP query sessions, the identifier; 0 on the remote side).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address.
    pub addr: Ipv4Addr,
    /// The port.
    pub port: u16,
}

impl Endpoint {
    /// `addr:port`.
    #[inline]
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Self { addr, port }
    }
}

impl core::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// A read-only summary of one session, for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NaptSession {
    /// The protocol.
    pub proto: Proto,
    /// LAN address and port (ICMP: identifier).
    pub lan: Endpoint,
    /// Public address and port.
    pub ext: Endpoint,
    /// Remote address and port (ICMP: 0).
    pub remote: Endpoint,
    /// Established (replied and, for TCP, open), as opposed to opening/closing/unreplied.
    pub established: bool,
    /// When the last packet was seen.
    pub last_seen: Instant,
    /// Bytes LAN → WAN.
    pub bytes_out: u64,
    /// Bytes WAN → LAN.
    pub bytes_in: u64,
}

/// Session timeouts in nanoseconds, by class.
#[derive(Clone, Copy, Debug)]
struct TimeoutsNs {
    udp: u64,
    tcp_est: u64,
    tcp_trans: u64,
    icmp: u64,
    port_reuse_secs: u64,
}

impl TimeoutsNs {
    fn from(t: &crate::config::Timeouts) -> Self {
        let ns = |d: core::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self {
            udp: ns(t.udp),
            tcp_est: ns(t.tcp_established),
            tcp_trans: ns(t.tcp_transitory),
            icmp: ns(t.icmp),
            port_reuse_secs: t.port_reuse_delay.as_secs(),
        }
    }
}

pub(crate) struct Table {
    pub(crate) sessions: Vec<Session>,
    free: Vec<u32>,
    live: u32,
    in2out: HashTable<u32>,
    out2in: HashTable<u32>,
    mappings: Vec<Mapping>,
    map_free: Vec<u32>,
    map_index: HashTable<u32>,
    ports: Vec<[PortMap; 3]>,
    pub(crate) public: Vec<u32>,
    hosts: HashMap<u32, Host, FixedState>,
    /// The sequence windows of TCP sessions, by session index.
    tcp_windows: HashMap<u32, TcpWindow, FixedState>,
    hosts_per_ext: Vec<u32>,
    wheels: [Wheel; 2],
    hasher: FixedState,
    rng: u64,
    swept_to: u64,
    max_sessions: u32,
    max_per_host: u32,
    timeouts: TimeoutsNs,
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
    pub(crate) created: u64,
}

#[inline]
fn key(proto: u8, a_ip: u32, a_port: u16, b_ip: u32, b_port: u16) -> u128 {
    (u128::from(a_ip) << 96)
        | (u128::from(b_ip) << 64)
        | (u128::from(a_port) << 48)
        | (u128::from(b_port) << 32)
        | u128::from(proto)
}

impl Session {
    #[inline]
    fn in_key(&self) -> u128 {
        key(self.proto, self.lan_ip, self.lan_port, self.remote_ip, self.remote_port)
    }

    #[inline]
    fn out_key(&self, public: &[u32]) -> u128 {
        let ext_ip = public.get(usize::from(self.ext_idx)).copied().unwrap_or(0);
        key(self.proto, ext_ip, self.ext_port, self.remote_ip, self.remote_port)
    }
}

impl Table {
    /// New timers for every session from its next packet or sweep.
    pub(crate) fn set_timeouts(&mut self, t: &crate::config::Timeouts) {
        self.timeouts = TimeoutsNs::from(t);
    }

    pub(crate) fn new(config: &EngineConfig, now: Instant) -> Self {
        let hasher = FixedState::with_seed(config.seed);
        let cap = config.max_sessions as usize;
        let t = &config.timeouts;
        Self {
            sessions: Vec::with_capacity(cap),
            free: Vec::new(),
            live: 0,
            in2out: HashTable::with_capacity(cap),
            out2in: HashTable::with_capacity(cap),
            mappings: Vec::new(),
            map_free: Vec::new(),
            map_index: HashTable::new(),
            ports: config.public_addrs.iter().map(|_| [PortMap::new(), PortMap::new(), PortMap::new()]).collect(),
            public: config.public_addrs.iter().map(|&a| u32::from(a)).collect(),
            hosts: HashMap::with_hasher(FixedState::with_seed(config.seed ^ 0x5bd1e995)),
            tcp_windows: HashMap::with_hasher(FixedState::with_seed(config.seed ^ 0x7c9)),
            hosts_per_ext: vec![0; config.public_addrs.len()],
            wheels: [Wheel::new(), Wheel::new()],
            hasher,
            rng: config.seed | 1,
            swept_to: now.secs(),
            max_sessions: config.max_sessions,
            max_per_host: config.max_sessions_per_host,
            timeouts: TimeoutsNs::from(t),
            evicted: 0,
            expired: 0,
            created: 0,
        }
    }

    /// Sessions alive now.
    pub(crate) fn len(&self) -> u32 {
        self.live
    }

    /// Mappings alive now.
    pub(crate) fn mapping_count(&self) -> usize {
        self.mappings.len() - self.map_free.len()
    }

    /// Public ports in use, by public address and protocol.
    pub(crate) fn ports_used(&self, ext_idx: usize, proto: Proto) -> u32 {
        self.ports.get(ext_idx).map_or(0, |p| p[proto as usize].used())
    }

    /// The index of public address `ip`, if it is one of ours.
    #[inline]
    pub(crate) fn ext_index(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = ip.to_bits();
        self.public.iter().position(|&p| p == ip)
    }

    #[inline]
    fn hash(&self, k: u128) -> u64 {
        self.hasher.hash_one(k)
    }

    /// The session a LAN → WAN packet belongs to.
    #[inline]
    pub(crate) fn find_out(&self, proto: Proto, lan: Endpoint, remote: Endpoint) -> Option<u32> {
        let k = key(proto as u8, lan.addr.to_bits(), lan.port, remote.addr.to_bits(), remote.port);
        let s = &self.sessions;
        self.in2out.find(self.hash(k), |&i| s[i as usize].in_key() == k).copied()
    }

    /// The session a WAN → LAN packet belongs to.
    #[inline]
    pub(crate) fn find_in(&self, proto: Proto, public: Endpoint, remote: Endpoint) -> Option<u32> {
        let k = key(proto as u8, public.addr.to_bits(), public.port, remote.addr.to_bits(), remote.port);
        let (s, p) = (&self.sessions, &self.public);
        self.out2in.find(self.hash(k), |&i| s[i as usize].out_key(p) == k).copied()
    }

    /// The public address and port of session `idx`.
    #[inline]
    pub(crate) fn ext_of(&self, idx: u32) -> Endpoint {
        let s = &self.sessions[idx as usize];
        let addr = self.public.get(usize::from(s.ext_idx)).copied().unwrap_or(0);
        Endpoint::new(Ipv4Addr::from_bits(addr), s.ext_port)
    }

    /// The LAN address and port of session `idx`.
    #[inline]
    pub(crate) fn lan_of(&self, idx: u32) -> Endpoint {
        let s = &self.sessions[idx as usize];
        Endpoint::new(Ipv4Addr::from_bits(s.lan_ip), s.lan_port)
    }

    /// The LAN port of the mapping that owns public port `ext_port` on address `ext_idx`.
    pub(crate) fn owner_lan_port(&self, ext_idx: usize, proto: Proto, ext_port: u16) -> Option<u16> {
        let m = self.ports.get(ext_idx)?[proto as usize].owner(ext_port)?;
        self.mappings.get(m as usize).map(|m| m.lan_port)
    }

    /// True when a mapping owns public `ext_ip:port` for `proto`.
    pub(crate) fn find_in_port(&self, proto: Proto, public: Endpoint) -> bool {
        self.ext_index(public.addr).and_then(|i| self.ports[i][proto as usize].owner(public.port)).is_some()
    }

    /// Checks a TCP segment of session `idx` from `side` against the session's sequence
    /// windows, and learns from it when it is acceptable (see [`TcpWindow`]).
    pub(crate) fn tcp_accept(&mut self, idx: u32, side: crate::Side, seg: &Segment) -> bool {
        let closed = {
            let f = self.sessions[idx as usize].flags;
            let fins = state::FIN_OUT | state::FIN_IN;
            f & state::RST != 0 || f & fins == fins
        };
        match self.tcp_windows.get_mut(&idx) {
            Some(w) => w.accept(side, seg, closed),
            None => {
                self.tcp_windows.insert(idx, TcpWindow::open(side, seg));
                true
            }
        }
    }

    /// Whether session `idx` may be carried by the kernel fast path after a packet with
    /// `tcp_flags` (TCP) went through it: UDP and ICMP always, TCP once established with
    /// neither FIN nor RST seen, this segment carrying no SYN, FIN or RST either.
    pub(crate) fn offloadable(&self, idx: u32, tcp_flags: Option<u8>) -> bool {
        let s = &self.sessions[idx as usize];
        match tcp_flags {
            // UDP and ICMP: any session (the fast path's packets keep it and its state as
            // natpass's own would, answered or not; one-way flows are common).
            None => true,
            Some(_) if !s.is_established() => false,
            Some(f) => {
                use natpass_wire::tcp::flags::{FIN, RST, SYN};
                let ended = state::FIN_OUT | state::FIN_IN | state::RST;
                s.flags & ended == 0 && f & (SYN | FIN | RST) == 0
            }
        }
    }

    /// Forgets session `idx`'s sequence windows: its next segment is tracked loosely, as
    /// one picked up mid-stream (the fast path carried the ones between).
    pub(crate) fn forget_tcp_window(&mut self, idx: u32) {
        self.tcp_windows.remove(&idx);
    }

    /// Marks a packet seen on session `idx`, moving it between wheels when its class changes.
    #[inline]
    pub(crate) fn touch(&mut self, idx: u32, now: Instant, from_lan: bool, bytes: usize, tcp_flags: Option<u8>) {
        let s = &mut self.sessions[idx as usize];
        s.last_seen = now.as_nanos();
        let before = s.flags;
        if from_lan {
            s.bytes_out += bytes as u64;
            s.flags |= state::SEEN_OUT;
        } else {
            s.bytes_in += bytes as u64;
            s.flags |= state::SEEN_IN;
        }
        if let Some(f) = tcp_flags {
            s.track_tcp(if from_lan { crate::Side::Lan } else { crate::Side::Wan }, f);
        }
        if s.flags != before {
            let want = if s.is_established() { ESTABLISHED } else { EVICTABLE };
            if want != s.wheel() {
                self.refile(idx, now);
            }
        }
    }

    fn timeout_of(&self, s: &Session) -> u64 {
        match s.proto() {
            Proto::Udp => self.timeouts.udp,
            Proto::Icmp => self.timeouts.icmp,
            Proto::Tcp if s.is_established() => self.timeouts.tcp_est,
            Proto::Tcp => self.timeouts.tcp_trans,
        }
    }

    /// The wheel second a session must next be looked at: its expiry, rounded up, within reach.
    fn due_second(&self, s: &Session) -> u64 {
        let exp = s.last_seen.saturating_add(self.timeout_of(s));
        exp.div_ceil(NS).clamp(self.swept_to + 1, self.swept_to + SLOTS)
    }

    fn file(&mut self, idx: u32) {
        let s = &self.sessions[idx as usize];
        let wheel = if s.is_established() { ESTABLISHED } else { EVICTABLE };
        let at = self.due_second(s);
        let f = &mut self.sessions[idx as usize].flags;
        if wheel == ESTABLISHED {
            *f |= state::IN_ESTABLISHED_WHEEL;
        } else {
            *f &= !state::IN_ESTABLISHED_WHEEL;
        }
        self.wheels[usize::from(wheel)].link(&mut self.sessions, idx, at);
    }

    fn refile(&mut self, idx: u32, _now: Instant) {
        let w = self.sessions[idx as usize].wheel();
        self.wheels[usize::from(w)].unlink(&mut self.sessions, idx);
        self.file(idx);
    }

    fn next_rand(&mut self) -> u32 {
        // xorshift64*: port randomisation only, seeded by the driver.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// Makes room for one session: evicts an unreplied or transitory session first, the
    /// established session closest to expiry only when there is none.
    fn make_room(&mut self) -> Result<(), DropReason> {
        if self.live < self.max_sessions {
            return Ok(());
        }
        let from = self.swept_to + 1;
        let victim = self.wheels[usize::from(EVICTABLE)]
            .first_from(from)
            .or_else(|| self.wheels[usize::from(ESTABLISHED)].first_from(from))
            .ok_or(DropReason::SessionTableFull)?;
        self.remove(victim);
        self.evicted += 1;
        Ok(())
    }

    /// The public address LAN host `lan_ip` is paired with now (RFC 4787 REQ-2), if it has
    /// sessions.
    pub(crate) fn paired_ext(&self, lan_ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let h = self.hosts.get(&lan_ip.to_bits())?;
        self.public.get(usize::from(h.ext_idx)).copied().map(Ipv4Addr::from_bits)
    }

    /// The public address a LAN host uses, pairing it first if it has none yet (passthrough
    /// traffic such as IKE or raw ESP before any NAPT session), so that every protocol of a
    /// host leaves from one address (RFC 4787 REQ-2). A host paired this way keeps its entry
    /// until its NAPT sessions, if it ever has some, end.
    pub(crate) fn ext_for(&mut self, lan_ip: Ipv4Addr) -> Ipv4Addr {
        if let Some(ext) = self.paired_ext(lan_ip) {
            return ext;
        }
        let ext_idx = self.least_used();
        self.hosts.insert(lan_ip.to_bits(), Host { ext_idx, sessions: 0 });
        self.hosts_per_ext[usize::from(ext_idx)] += 1;
        Ipv4Addr::from_bits(self.public.get(usize::from(ext_idx)).copied().unwrap_or(0))
    }

    /// The public address with the fewest LAN hosts paired to it.
    fn least_used(&self) -> u16 {
        self.hosts_per_ext.iter().enumerate().min_by_key(|&(_, n)| *n).map_or(0, |(i, _)| i as u16)
    }

    /// Reserves public port `port` for `proto` on every public address: the general allocator
    /// never hands it out (IKE's port 500, kept for every client by the IPsec passthrough).
    pub(crate) fn reserve_port(&mut self, proto: Proto, port: u16) {
        for p in &mut self.ports {
            p[proto as usize].reserve(port);
        }
    }

    /// Removes every session whose remote port `pred` accepts (a passthrough switched off).
    pub(crate) fn remove_where(&mut self, mut pred: impl FnMut(Proto, u16, u16) -> bool) -> usize {
        let mut dead = vec![false; self.sessions.len()];
        for &f in &self.free {
            dead[f as usize] = true;
        }
        let victims: Vec<u32> = (0..self.sessions.len() as u32)
            .filter(|&i| !dead[i as usize])
            .filter(|&i| {
                let s = &self.sessions[i as usize];
                pred(s.proto(), s.lan_port, s.remote_port)
            })
            .collect();
        for &v in &victims {
            self.remove(v);
        }
        victims.len()
    }

    /// The host entry for `lan_ip`, created with the least-used public address (paired pooling).
    fn host_for(&mut self, lan_ip: u32) -> Result<Host, DropReason> {
        if let Some(h) = self.hosts.get(&lan_ip) {
            if h.sessions >= self.max_per_host {
                return Err(DropReason::HostSessionLimit);
            }
            return Ok(*h);
        }
        let ext_idx = self.least_used();
        Ok(Host { ext_idx, sessions: 0 })
    }

    fn find_mapping(&self, proto: Proto, lan_ip: u32, lan_port: u16) -> Option<u32> {
        let k = key(proto as u8, lan_ip, lan_port, 0, 0);
        let m = &self.mappings;
        self.map_index
            .find(self.hash(k), |&i| {
                let x = &m[i as usize];
                key(x.proto, x.lan_ip, x.lan_port, 0, 0) == k
            })
            .copied()
    }

    /// The EIM mapping for a LAN endpoint, created when absent.
    fn mapping_for(
        &mut self,
        now: Instant,
        proto: Proto,
        lan_ip: u32,
        lan_port: u16,
        ext_idx: u16,
    ) -> Result<u32, DropReason> {
        if let Some(m) = self.find_mapping(proto, lan_ip, lan_port) {
            return Ok(m);
        }
        let idx = match self.map_free.pop() {
            Some(i) => i,
            None => {
                self.mappings.push(Mapping::default());
                (self.mappings.len() - 1) as u32
            }
        };
        let rand = self.next_rand();
        let Some(ext_port) = self.ports[usize::from(ext_idx)][proto as usize].allocate(lan_port, rand, now.secs(), idx)
        else {
            self.map_free.push(idx);
            return Err(DropReason::PortsExhausted);
        };
        self.mappings[idx as usize] =
            Mapping { lan_ip, lan_port, ext_port, ext_idx, proto: proto as u8, sessions: 0, head: NIL };
        let h = self.hash(key(proto as u8, lan_ip, lan_port, 0, 0));
        let m = &self.mappings;
        self.map_index.insert_unique(h, idx, |&i| {
            let x = &m[i as usize];
            self.hasher.hash_one(key(x.proto, x.lan_ip, x.lan_port, 0, 0))
        });
        Ok(idx)
    }

    /// Opens a session for a LAN → WAN packet that matched none.
    pub(crate) fn create_outbound(
        &mut self,
        now: Instant,
        proto: Proto,
        lan: Endpoint,
        remote: Endpoint,
    ) -> Result<u32, DropReason> {
        self.make_room()?;
        let lan_ip = lan.addr.to_bits();
        let host = self.host_for(lan_ip)?;
        let m = self.mapping_for(now, proto, lan_ip, lan.port, host.ext_idx)?;
        Ok(self.insert(now, m, remote.addr.to_bits(), remote.port))
    }

    /// Opens a session for a WAN → LAN packet to public `ext_ip:ext_port` that matched none,
    /// if a mapping owns that port and the filtering policy lets `rem_ip:rem_port` in
    /// (RFC 4787 §5 REQ-8).
    pub(crate) fn create_inbound(
        &mut self,
        now: Instant,
        proto: Proto,
        ext_idx: usize,
        ext_port: u16,
        remote: Endpoint,
        filtering: Filtering,
    ) -> Result<u32, DropReason> {
        let (rem_ip, rem_port) = (remote.addr.to_bits(), remote.port);
        let m = self.ports[ext_idx][proto as usize].owner(ext_port).ok_or(DropReason::NoMapping)?;
        match filtering {
            Filtering::EndpointIndependent => {}
            Filtering::AddressDependent => {
                let mut n = self.mappings[m as usize].head;
                let mut known = false;
                while n != NIL {
                    let s = &self.sessions[n as usize];
                    if s.remote_ip == rem_ip {
                        known = true;
                        break;
                    }
                    n = s.map_next;
                }
                if !known {
                    return Err(DropReason::Filtered);
                }
            }
            Filtering::AddressAndPortDependent => return Err(DropReason::Filtered),
        }
        let lan_ip = self.mappings[m as usize].lan_ip;
        if self.hosts.get(&lan_ip).is_some_and(|h| h.sessions >= self.max_per_host) {
            return Err(DropReason::HostSessionLimit);
        }
        // Eviction may free this very mapping if its only session goes: check it still stands.
        self.make_room()?;
        let m = self.ports[ext_idx][proto as usize].owner(ext_port).ok_or(DropReason::NoMapping)?;
        Ok(self.insert(now, m, rem_ip, rem_port))
    }

    fn insert(&mut self, now: Instant, m: u32, rem_ip: u32, rem_port: u16) -> u32 {
        let map = self.mappings[m as usize].clone();
        let s = Session {
            lan_ip: map.lan_ip,
            remote_ip: rem_ip,
            ext_idx: map.ext_idx,
            lan_port: map.lan_port,
            remote_port: rem_port,
            ext_port: map.ext_port,
            proto: map.proto,
            mapping: m,
            last_seen: now.as_nanos(),
            map_prev: NIL,
            map_next: map.head,
            wheel_prev: NIL,
            wheel_next: NIL,
            ..Default::default()
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.sessions[i as usize] = s;
                i
            }
            None => {
                self.sessions.push(s);
                (self.sessions.len() - 1) as u32
            }
        };
        if map.head != NIL {
            self.sessions[map.head as usize].map_prev = idx;
        }
        let mm = &mut self.mappings[m as usize];
        mm.head = idx;
        mm.sessions += 1;
        let host = self.hosts.entry(map.lan_ip).or_insert_with(|| {
            self.hosts_per_ext[usize::from(map.ext_idx)] += 1;
            Host { ext_idx: map.ext_idx, sessions: 0 }
        });
        host.sessions += 1;
        let (ik, ok) = (self.sessions[idx as usize].in_key(), self.sessions[idx as usize].out_key(&self.public));
        let (hi, ho) = (self.hash(ik), self.hash(ok));
        let sessions = &self.sessions;
        let hasher = &self.hasher;
        let public = &self.public;
        self.in2out.insert_unique(hi, idx, |&i| hasher.hash_one(sessions[i as usize].in_key()));
        self.out2in.insert_unique(ho, idx, |&i| hasher.hash_one(sessions[i as usize].out_key(public)));
        self.file(idx);
        self.live += 1;
        self.created += 1;
        idx
    }

    /// Removes session `idx` from the wheel it is in, then from everything else.
    pub(crate) fn remove(&mut self, idx: u32) {
        let w = self.sessions[idx as usize].wheel();
        self.wheels[usize::from(w)].unlink(&mut self.sessions, idx);
        self.forget(idx);
    }

    /// Removes a session already taken out of its wheel.
    fn forget(&mut self, idx: u32) {
        let s = self.sessions[idx as usize].clone();
        if s.proto() == Proto::Tcp {
            self.tcp_windows.remove(&idx);
        }
        let (hi, ho) = (self.hash(s.in_key()), self.hash(s.out_key(&self.public)));
        if let Ok(e) = self.in2out.find_entry(hi, |&i| i == idx) {
            e.remove();
        }
        if let Ok(e) = self.out2in.find_entry(ho, |&i| i == idx) {
            e.remove();
        }
        if s.map_prev == NIL {
            self.mappings[s.mapping as usize].head = s.map_next;
        } else {
            self.sessions[s.map_prev as usize].map_next = s.map_next;
        }
        if s.map_next != NIL {
            self.sessions[s.map_next as usize].map_prev = s.map_prev;
        }
        let m = &mut self.mappings[s.mapping as usize];
        m.sessions -= 1;
        if m.sessions == 0 {
            let m = m.clone();
            let until = self.swept_to.max(s.last_seen / NS) + self.timeouts.port_reuse_secs;
            self.ports[usize::from(m.ext_idx)][usize::from(m.proto)].release(m.ext_port, until);
            let h = self.hash(key(m.proto, m.lan_ip, m.lan_port, 0, 0));
            if let Ok(e) = self.map_index.find_entry(h, |&i| i == s.mapping) {
                e.remove();
            }
            self.map_free.push(s.mapping);
        }
        if let Some(h) = self.hosts.get_mut(&s.lan_ip) {
            h.sessions -= 1;
            if h.sessions == 0 {
                let ext = usize::from(h.ext_idx);
                self.hosts.remove(&s.lan_ip);
                self.hosts_per_ext[ext] -= 1;
            }
        }
        self.free.push(idx);
        self.live -= 1;
    }

    /// Expires every session idle past its timer, up to `now`. Returns how many went.
    pub(crate) fn sweep(&mut self, now: Instant) -> u64 {
        let target = now.secs();
        if target <= self.swept_to {
            return 0;
        }
        let from = self.swept_to + 1;
        let to = target.min(self.swept_to + SLOTS);
        let mut gone = 0;
        // Re-filed sessions must land after `target`.
        let old_swept = self.swept_to;
        self.swept_to = target;
        for sec in from..=to {
            for w in [EVICTABLE, ESTABLISHED] {
                let mut n = self.wheels[usize::from(w)].take_slot(&self.sessions, sec);
                while n != NIL {
                    let next = self.sessions[n as usize].wheel_next;
                    let s = &self.sessions[n as usize];
                    if s.last_seen.saturating_add(self.timeout_of(s)) <= now.as_nanos() {
                        self.forget(n);
                        gone += 1;
                    } else {
                        self.file(n);
                    }
                    n = next;
                }
            }
        }
        let _ = old_swept;
        self.expired += gone;
        gone
    }

    /// The next second at which a sweep may have work, if there are sessions.
    pub(crate) fn next_sweep(&self) -> Option<Instant> {
        (self.live > 0).then(|| Instant::from_secs(self.swept_to + 1))
    }

    /// A summary of session `idx`.
    pub(crate) fn info(&self, idx: u32) -> NaptSession {
        let s = &self.sessions[idx as usize];
        NaptSession {
            proto: s.proto(),
            lan: self.lan_of(idx),
            ext: self.ext_of(idx),
            remote: Endpoint::new(Ipv4Addr::from_bits(s.remote_ip), s.remote_port),
            established: s.is_established(),
            last_seen: Instant::from_nanos(s.last_seen),
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
        }
    }

    /// Every live session.
    pub(crate) fn iter(&self) -> impl Iterator<Item = NaptSession> + '_ {
        let mut dead = vec![false; self.sessions.len()];
        for &f in &self.free {
            dead[f as usize] = true;
        }
        (0..self.sessions.len() as u32).filter(move |&i| !dead[i as usize]).map(|i| self.info(i))
    }

    /// The bytes [`Table::prefault`] writes: the two session indexes' buckets (a u32 and a
    /// control byte each) and the port maps.
    pub(crate) fn prefault_bytes(&self) -> usize {
        (buckets(self.in2out.capacity()) + buckets(self.out2in.capacity())) * 5 + self.ports.len() * 3 * 65536 * 4
    }

    /// Writes every page of the two session indexes and the port maps once, keeping them empty.
    ///
    /// Their memory comes from the allocator untouched, and a new flow writes a bucket at a
    /// random place in each index: without this, most new flows wait for the kernel to fault
    /// in one or two pages first (10-40 µs each on a virtual machine, where the host backs the
    /// page too). A placeholder is written into each page of the indexes and cleared, which
    /// keeps their memory; their capacity does not change.
    pub(crate) fn prefault(&mut self) {
        for t in [&mut self.in2out, &mut self.out2in] {
            // An entry whose hash is h goes to bucket h mod buckets when that one is free:
            // one every 512 buckets (2 KiB of u32) writes every page of the array.
            let n = buckets(t.capacity()) as u64;
            for h in (0..n).step_by(512) {
                t.insert_unique(h, 0, move |_| h);
            }
            // Fewer entries than the capacity, so hashbrown never rehashed (nor asked the
            // hasher above); clearing keeps the memory.
            t.clear();
        }
        for maps in &mut self.ports {
            for m in maps.iter_mut() {
                m.prefault();
            }
        }
    }

    /// Bytes held by the table's own structures (sessions, indexes, mappings, ports, hosts).
    pub(crate) fn heap_bytes(&self) -> usize {
        let sess = self.sessions.capacity() * core::mem::size_of::<Session>();
        // The session indexes and the port maps; the mapping index's buckets are a u32 and a
        // control byte each too.
        let indexes_and_ports = self.prefault_bytes() + buckets(self.map_index.capacity()) * 5;
        let maps = self.mappings.capacity() * core::mem::size_of::<Mapping>();
        let hosts = self.hosts.capacity() * (core::mem::size_of::<(u32, Host)>() + 1);
        let windows = self.tcp_windows.capacity() * (core::mem::size_of::<(u32, TcpWindow)>() + 1);
        let free = (self.free.capacity() + self.map_free.capacity()) * 4;
        sess + indexes_and_ports + maps + hosts + windows + free + 2 * SLOTS as usize * 4
    }
}

/// The buckets of a hashbrown table of capacity `cap`: capacity × 8/7, a power of two.
fn buckets(cap: usize) -> usize {
    if cap == 0 { 0 } else { (cap * 8 / 7).next_power_of_two() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_20_bytes() {
        assert_eq!(core::mem::size_of::<Mapping>(), 20);
    }

    #[test]
    fn prefault_keeps_the_tables_empty_their_capacity_and_the_reserved_ports() {
        let config = EngineConfig { max_sessions: 5000, ..EngineConfig::default() };
        let mut t = Table::new(&config, Instant::ZERO);
        t.reserve_port(Proto::Udp, 500);
        let caps = (t.in2out.capacity(), t.out2in.capacity());
        t.prefault();
        assert_eq!((t.in2out.len(), t.out2in.len(), t.len()), (0, 0, 0));
        assert_eq!((t.in2out.capacity(), t.out2in.capacity()), caps, "no new allocation");
        // No placeholder is found, and a flow opened afterwards is found both ways.
        let lan = Endpoint::new(Ipv4Addr::new(192, 168, 1, 10), 500);
        let remote = Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 500);
        assert_eq!(t.find_out(Proto::Udp, lan, remote), None);
        let s = t.create_outbound(Instant::ZERO, Proto::Udp, lan, remote).unwrap();
        let public = t.ext_of(s);
        assert_ne!(public.port, 500, "UDP 500 stays reserved (IKE)");
        assert_eq!(t.find_out(Proto::Udp, lan, remote), Some(s));
        assert_eq!(t.find_in(Proto::Udp, public, remote), Some(s));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn prefault_memory_says_its_size_and_writes_nothing_over_its_budget() {
        let config = EngineConfig { max_sessions: 5000, ..EngineConfig::default() };
        let mut e = crate::Engine::new(config, Instant::ZERO).unwrap();
        // 8192 buckets per index (5000 × 8/7, a power of two), 5 bytes each; 3 port maps of
        // 65 536 u32 for the one public address.
        let want = 2 * 8192 * 5 + 3 * 65536 * 4;
        assert_eq!(e.prefault_memory(want - 1), (want, false));
        assert_eq!(e.prefault_memory(want), (want, true));
    }
}
