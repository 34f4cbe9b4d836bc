//! IPv4 fragments through the NAT (RFC 791 §3.2, RFC 4787 REQ-14, RFC 6864 §5.3.1), without
//! reassembly, and without opening a way around the NAT (RFC 1858, RFC 3128).
//!
//! Only the first fragment carries ports, so it is translated like a whole datagram; its
//! verdict then binds every fragment of that one datagram, named by (side, source,
//! destination, protocol, identification). The state of a datagram ends when all its bytes
//! have passed, or when no fragment of it came for the fragment timeout, so a later datagram
//! that reuses the identification (they wrap in seconds: RFC 4963, RFC 6864) never inherits
//! it. Fragments that arrive before their first fragment are held, bounded in count, bytes and
//! time, and released or dropped with its verdict.
//!
//! Refused outright, with the whole datagram from then on:
//! - a first fragment too short to hold the whole transport header (RFC 1858 §3.1, "tiny
//!   fragments"), counted as `tiny_fragment`;
//! - a fragment that overlaps bytes already seen, in either order, a new first fragment
//!   included (RFC 1858 §3.2, RFC 3128; RFC 5722 does the same for IPv6), counted as
//!   `fragment_overlap`; a fragment past the datagram's end, or a second end, likewise;
//! - a fragment whose first fragment was refused: it is dropped, never forwarded.
//!
//! A new first fragment with other transport header bytes than the datagram's first ends the
//! old datagram's state: it is another datagram that reuses the identification, and it is
//! translated on its own merits.
//!
//! Datagrams from different LAN hosts leave from one public address, so two of them could
//! share (source, destination, protocol, identification) outside and be reassembled together.
//! When that would happen, the later datagram gets a new identification (RFC 6864 §5.3.1).
//!
//! [`split`] fragments a translated datagram that is larger than the egress MTU (DF clear),
//! copying only the options marked "copied" into later fragments (RFC 791 §3.1).

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::IpProtocol;
use natpass_wire::ipv4::{Ipv4Packet, option};
use natpass_wire::tcp::TcpPacket;

use crate::Engine;
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};

/// The most fragmented datagrams tracked at once; fragments of more are dropped.
const MAX_DATAGRAMS: usize = 8192;
/// The most separate byte ranges one datagram may have in flight before it is dropped.
const MAX_RANGES: usize = 32;
/// The largest IPv4 datagram (RFC 791: 16-bit total length).
const MAX_DATAGRAM: u32 = 65_535;

/// One datagram, as its source, destination, protocol and identification on one side name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    from_lan: bool,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    ident: u16,
}

/// A datagram as the WAN sees it: (public source, destination, protocol, identification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct OutsideKey {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    ident: u16,
}

/// The rewrite the first fragment got, for the others.
#[derive(Clone, Copy, Debug)]
struct FragFlow {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
}

/// What happens to a datagram's fragments, decided by its first.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// The first fragment has not come: others are held.
    Waiting,
    /// The first fragment passed: the others take its rewrite.
    Translate(FragFlow),
    /// The first fragment was refused, or the datagram broke a rule: all are dropped.
    Refused,
}

/// The byte ranges of one datagram's fragments seen so far, and its end once its last
/// fragment came: what tells an overlap (RFC 1858, RFC 5722) and a complete datagram. Shared
/// by IPv4 and IPv6.
#[derive(Clone, Debug, Default)]
pub(crate) struct Coverage {
    /// `[start, end)` ranges, sorted, merged when they touch, never overlapping.
    ranges: Vec<(u32, u32)>,
    /// The datagram's length, once its last fragment (MF clear) came.
    end: Option<u32>,
}

impl Coverage {
    /// Records bytes `range` of a fragment (`last`: MF clear), or says why they break the
    /// datagram.
    pub(crate) fn add(&mut self, range: (u32, u32), last: bool) -> Result<(), DropReason> {
        if self.ranges.iter().any(|&(a, b)| range.0 < b && a < range.1) {
            return Err(DropReason::FragmentOverlap);
        }
        if self.end.is_some_and(|end| range.1 > end || last) || (last && self.ranges.iter().any(|r| r.1 > range.1)) {
            return Err(DropReason::FragmentOverlap);
        }
        if last {
            self.end = Some(range.1);
        }
        let at = self.ranges.partition_point(|r| r.0 < range.0);
        self.ranges.insert(at, range);
        // Merge ranges that touch.
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.ranges.len());
        for &r in &self.ranges {
            match merged.last_mut() {
                Some(m) if m.1 == r.0 => m.1 = r.1,
                _ => merged.push(r),
            }
        }
        self.ranges = merged;
        if self.ranges.len() > MAX_RANGES {
            return Err(DropReason::FragmentDropped);
        }
        Ok(())
    }

    /// Every byte of the datagram has been seen.
    pub(crate) fn complete(&self) -> bool {
        self.end.is_some_and(|end| self.ranges == [(0, end)])
    }
}

#[derive(Clone, Debug)]
struct Datagram {
    fate: Fate,
    coverage: Coverage,
    /// The first 8 bytes after the first fragment's IP header (the ports), once it came.
    head: Option<[u8; 8]>,
    expires: u64,
}

impl Datagram {
    fn new(expires: u64) -> Self {
        Self { fate: Fate::Waiting, coverage: Coverage::default(), head: None, expires }
    }

    fn add(&mut self, range: (u32, u32), last: bool) -> Result<(), DropReason> {
        self.coverage.add(range, last)
    }

    fn complete(&self) -> bool {
        self.coverage.complete()
    }
}

#[derive(Debug)]
struct Held {
    key: FragKey,
    data: Vec<u8>,
    expires: u64,
}

/// Fragment state: the datagrams in flight, and fragments waiting for their first.
pub(crate) struct Fragments {
    datagrams: HashMap<FragKey, Datagram, FixedState>,
    /// (public source, destination, protocol, identification) in use outside → its datagram.
    outside: HashMap<OutsideKey, FragKey, FixedState>,
    held: VecDeque<Held>,
    held_bytes: usize,
}

impl Fragments {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            datagrams: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x0f0f)),
            outside: HashMap::with_hasher(FixedState::with_seed(seed ^ 0xf0f0)),
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }

    /// Forgets datagrams no fragment came for in time and drops expired held fragments;
    /// returns how many held fragments were dropped.
    pub(crate) fn expire(&mut self, now: Instant) -> u64 {
        let t = now.as_nanos();
        let outside = &mut self.outside;
        self.datagrams.retain(|k, d| {
            let keep = d.expires > t;
            if !keep {
                forget_outside(outside, k, d);
            }
            keep
        });
        let before = self.held.len();
        let mut bytes = self.held_bytes;
        self.held.retain(|h| {
            let keep = h.expires > t;
            if !keep {
                bytes -= h.data.len();
            }
            keep
        });
        self.held_bytes = bytes;
        (before - self.held.len()) as u64
    }

    /// The earliest expiry, if any state is held.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        let f = self.datagrams.values().map(|d| d.expires).min();
        let h = self.held.iter().map(|h| h.expires).min();
        match (f, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(Instant::from_nanos)
    }

    /// Ends a datagram's state.
    fn end(&mut self, key: &FragKey) {
        if let Some(d) = self.datagrams.remove(key) {
            forget_outside(&mut self.outside, key, &d);
        }
    }

    /// Drops the held fragments of `key`; returns how many.
    fn drop_held(&mut self, key: &FragKey) -> u64 {
        let before = self.held.len();
        let mut bytes = self.held_bytes;
        self.held.retain(|h| {
            let keep = h.key != *key;
            if !keep {
                bytes -= h.data.len();
            }
            keep
        });
        self.held_bytes = bytes;
        (before - self.held.len()) as u64
    }
}

/// Frees the outside identification a LAN datagram used.
fn forget_outside(outside: &mut HashMap<OutsideKey, FragKey, FixedState>, key: &FragKey, d: &Datagram) {
    if let (true, Fate::Translate(f)) = (key.from_lan, d.fate) {
        let out = OutsideKey { src: f.src, dst: f.dst, proto: key.proto, ident: f.ident };
        if outside.get(&out) == Some(key) {
            outside.remove(&out);
        }
    }
}

fn key_of(packet: &[u8], from_lan: bool) -> FragKey {
    let ip = Ipv4Packet::new_unchecked(packet);
    FragKey { from_lan, src: ip.src(), dst: ip.dst(), proto: ip.protocol(), ident: ip.ident() }
}

fn apply(packet: &mut [u8], flow: &FragFlow) {
    let mut ip = Ipv4Packet::new_unchecked(packet);
    if ip.src() != flow.src {
        ip.set_src(flow.src);
    }
    if ip.dst() != flow.dst {
        ip.set_dst(flow.dst);
    }
    if ip.ident() != flow.ident {
        ip.set_ident(flow.ident);
    }
    ip.decrement_ttl();
}

/// True when a first fragment's payload holds the whole transport header its protocol
/// needs to be matched: TCP with its options (its flags decide), UDP and ICMP's 8 bytes.
fn holds_transport_header(proto: IpProtocol, payload: &[u8]) -> bool {
    match proto {
        IpProtocol::TCP => TcpPacket::new_checked(payload).is_ok(),
        IpProtocol::UDP | IpProtocol::ICMP => payload.len() >= 8,
        _ => true,
    }
}

/// A fragment from the LAN.
pub(crate) fn from_lan(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    handle(e, now, packet, true)
}

/// A fragment from the WAN.
pub(crate) fn from_wan(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    handle(e, now, packet, false)
}

/// Refuses a datagram from now on: its held fragments go, and later ones are dropped.
fn refuse(e: &mut Engine, key: FragKey, expires: u64, reason: DropReason) -> Verdict {
    let d = e.frags.datagrams.entry(key).or_insert_with(|| Datagram::new(expires));
    d.fate = Fate::Refused;
    d.expires = expires;
    let dropped = e.frags.drop_held(&key);
    for _ in 0..dropped {
        e.out.stats.count_drop(DropReason::FragmentDropped);
    }
    Verdict::Drop(reason)
}

fn handle(e: &mut Engine, now: Instant, packet: &mut [u8], from_lan: bool) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (off, len, last) = (u32::from(ip.frag_offset()), ip.payload().len() as u32, !ip.more_frags());
    // RFC 791: every fragment but the last carries a multiple of 8 bytes, and none is empty.
    if len == 0 || (!last && len % 8 != 0) || off + len > MAX_DATAGRAM {
        return Verdict::Drop(DropReason::Malformed);
    }
    let key = key_of(packet, from_lan);
    let expires = (now + e.config.timeouts.fragment).as_nanos();
    let first = off == 0;
    let head = first.then(|| {
        let mut h = [0u8; 8];
        let p = ip.payload();
        let n = p.len().min(8);
        h[..n].copy_from_slice(&p[..n]);
        h
    });
    if first && !holds_transport_header(key.proto, ip.payload()) {
        e.frags.end(&key);
        return refuse(e, key, expires, DropReason::TinyFragment);
    }
    // A first fragment with other ports than the datagram's: another datagram reusing the ID.
    if let (Some(h), Some(d)) = (head, e.frags.datagrams.get(&key))
        && d.head.is_some_and(|old| old != h)
    {
        e.frags.end(&key);
        let dropped = e.frags.drop_held(&key);
        for _ in 0..dropped {
            e.out.stats.count_drop(DropReason::FragmentDropped);
        }
    }
    if !e.frags.datagrams.contains_key(&key) && e.frags.datagrams.len() >= MAX_DATAGRAMS {
        return Verdict::Drop(DropReason::FragmentDropped);
    }
    let d = e.frags.datagrams.entry(key).or_insert_with(|| Datagram::new(expires));
    d.expires = expires;
    if matches!(d.fate, Fate::Refused) {
        return Verdict::Drop(DropReason::FragmentDropped);
    }
    if let Err(reason) = d.add((off, off + len), last) {
        return refuse(e, key, expires, reason);
    }
    let egress = if from_lan { Side::Wan } else { Side::Lan };
    if !first {
        return match d.fate {
            Fate::Translate(flow) => {
                let done = d.complete();
                apply(packet, &flow);
                if done {
                    e.frags.end(&key);
                }
                Verdict::Forward(egress)
            }
            _ => hold(e, packet, key, expires),
        };
    }
    d.head = head;
    let v = if from_lan { super::outbound(e, now, packet) } else { super::inbound(e, now, packet) };
    if v != Verdict::Forward(egress) {
        let _ = refuse(e, key, expires, DropReason::FragmentDropped);
        return v;
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    let mut flow = FragFlow { src: ip.src(), dst: ip.dst(), ident: ip.ident() };
    if from_lan {
        let mut out = OutsideKey { src: flow.src, dst: flow.dst, proto: key.proto, ident: flow.ident };
        // A handful of tries: with fewer than 65 536 datagrams in flight a free one is near.
        for _ in 0..64 {
            if !e.frags.outside.get(&out).is_some_and(|k| *k != key) {
                break;
            }
            out.ident = e.out.next_ip_ident();
        }
        if out.ident != flow.ident {
            flow.ident = out.ident;
            ip.set_ident(flow.ident);
            e.out.stats.ip_ids_rewritten += 1;
        }
        e.frags.outside.insert(out, key);
    }
    let done = match e.frags.datagrams.get_mut(&key) {
        Some(d) => {
            d.fate = Fate::Translate(flow);
            d.complete()
        }
        None => true,
    };
    release(e, key, &flow, egress);
    if done {
        e.frags.end(&key);
    }
    Verdict::Forward(egress)
}

fn hold(e: &mut Engine, packet: &[u8], key: FragKey, expires: u64) -> Verdict {
    let len = usize::from(Ipv4Packet::new_unchecked(packet).total_len());
    let limit_count = e.config.max_held_fragments as usize;
    let limit_bytes = e.config.max_held_fragment_bytes as usize;
    if e.frags.held.len() >= limit_count || e.frags.held_bytes + len > limit_bytes {
        return refuse(e, key, expires, DropReason::FragmentDropped);
    }
    e.frags.held_bytes += len;
    e.frags.held.push_back(Held { key, data: packet[..len].to_vec(), expires });
    e.out.stats.fragments_held += 1;
    Verdict::Consumed
}

fn release(e: &mut Engine, key: FragKey, flow: &FragFlow, egress: Side) {
    if e.frags.held.is_empty() {
        return;
    }
    let mut keep = VecDeque::with_capacity(e.frags.held.len());
    let mut out = Vec::new();
    for mut h in e.frags.held.drain(..) {
        if h.key == key {
            e.frags.held_bytes -= h.data.len();
            apply(&mut h.data, flow);
            out.push(h.data);
        } else {
            keep.push_back(h);
        }
    }
    e.frags.held = keep;
    for data in out {
        e.out.stats.fragments_released += 1;
        e.out.transmit(egress, data);
    }
}

/// The options of `header` (after the first 20 bytes) that RFC 791 says every fragment
/// carries (the "copied" flag), padded to a 4-byte boundary.
fn copied_options(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in Ipv4Packet::new_unchecked(header).options() {
        match o {
            Ok(o) if o.kind & option::COPIED != 0 => out.extend_from_slice(o.bytes),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// Splits a datagram into fragments that fit `mtu` and queues them to `side`.
pub(crate) fn split(e: &mut Engine, packet: &[u8], side: Side, mtu: u16) {
    let ip = Ipv4Packet::new_unchecked(packet);
    let hl = ip.header_len();
    let total = usize::from(ip.total_len());
    let base = usize::from(ip.frag_offset());
    let more = ip.more_frags();
    let data = &packet[hl..total];
    let later_header: Vec<u8> = {
        let mut h = packet[..20].to_vec();
        h.extend(copied_options(&packet[..hl]));
        h
    };
    let mut pos = 0;
    while pos < data.len() {
        let header: &[u8] = if pos == 0 { &packet[..hl] } else { &later_header };
        let room = (usize::from(mtu).saturating_sub(header.len())) & !7;
        if room == 0 {
            e.out.stats.count_drop(DropReason::FragmentDropped);
            return;
        }
        let n = room.min(data.len() - pos);
        let last = pos + n == data.len();
        let mut f = Vec::with_capacity(header.len() + n);
        f.extend_from_slice(header);
        f.extend_from_slice(&data[pos..pos + n]);
        let mut v = Ipv4Packet::new_unchecked(&mut f[..]);
        v.set_header_len(header.len());
        v.set_fragment((base + pos) as u16, !last || more);
        v.set_total_len((header.len() + n) as u16);
        v.fill_checksum();
        e.out.stats.fragments_created += 1;
        e.out.transmit(side, f);
        pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_options_keep_only_flagged() {
        // NOP, Record Route (0x07, not copied, len 7), Security (0x82, copied, len 4), EOL.
        let mut h = vec![0x49, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        h.extend_from_slice(&[1, 0x07, 7, 4, 0, 0, 0, 0, 0x82, 4, 0xaa, 0xbb, 0, 0, 0, 0]);
        assert_eq!(copied_options(&h), vec![0x82, 4, 0xaa, 0xbb]);
        h.truncate(20);
        h[0] = 0x46;
        h.extend_from_slice(&[0x83, 200, 0, 0]);
        assert!(copied_options(&h).is_empty());
    }
}
