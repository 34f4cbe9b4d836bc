//! IPv4 fragments through the NAT (RFC 791 §3.2, RFC 4787 REQ-14, RFC 6864 §5.3.1).
//!
//! Only the first fragment carries ports, so it is translated like a whole datagram and its
//! translation is remembered per (side, source, destination, protocol, identification). Later
//! fragments take the same address rewrite. Fragments that arrive before their first fragment
//! are held, bounded in count, bytes and time, and released when it comes.
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
use natpass_wire::ipv4::Ipv4Packet;

use crate::Engine;
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};

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

#[derive(Clone, Copy, Debug)]
struct FragFlow {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    expires: u64,
}

#[derive(Debug)]
struct Held {
    key: FragKey,
    data: Vec<u8>,
    expires: u64,
}

/// Fragment state: translations of first fragments, and fragments waiting for theirs.
pub(crate) struct Fragments {
    flows: HashMap<FragKey, FragFlow, FixedState>,
    /// (public source, destination, protocol, identification) in use outside → its datagram.
    outside: HashMap<OutsideKey, FragKey, FixedState>,
    held: VecDeque<Held>,
    held_bytes: usize,
}

impl Fragments {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            flows: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x0f0f)),
            outside: HashMap::with_hasher(FixedState::with_seed(seed ^ 0xf0f0)),
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }

    /// Forgets expired translations and drops expired held fragments; returns how many were
    /// dropped.
    pub(crate) fn expire(&mut self, now: Instant) -> u64 {
        let t = now.as_nanos();
        let outside = &mut self.outside;
        self.flows.retain(|k, f| {
            let keep = f.expires > t;
            if !keep && k.from_lan {
                outside.remove(&OutsideKey { src: f.src, dst: f.dst, proto: k.proto, ident: f.ident });
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
        let f = self.flows.values().map(|f| f.expires).min();
        let h = self.held.iter().map(|h| h.expires).min();
        match (f, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(Instant::from_nanos)
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

/// A fragment from the LAN.
pub(crate) fn from_lan(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    handle(e, now, packet, true)
}

/// A fragment from the WAN.
pub(crate) fn from_wan(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    handle(e, now, packet, false)
}

fn handle(e: &mut Engine, now: Instant, packet: &mut [u8], from_lan: bool) -> Verdict {
    let key = key_of(packet, from_lan);
    let egress = if from_lan { Side::Wan } else { Side::Lan };
    let expires = (now + e.config.timeouts.fragment).as_nanos();
    let first = Ipv4Packet::new_unchecked(&*packet).frag_offset() == 0;
    if !first {
        if let Some(flow) = e.frags.flows.get_mut(&key) {
            flow.expires = expires;
            let flow = *flow;
            apply(packet, &flow);
            return Verdict::Forward(egress);
        }
        return hold(e, packet, key, expires);
    }
    let v = if from_lan { super::outbound(e, now, packet) } else { super::inbound(e, now, packet) };
    if v != Verdict::Forward(egress) {
        return v;
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    let mut flow = FragFlow { src: ip.src(), dst: ip.dst(), ident: ip.ident(), expires };
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
    e.frags.flows.insert(key, flow);
    release(e, key, &flow, egress);
    Verdict::Forward(egress)
}

fn hold(e: &mut Engine, packet: &[u8], key: FragKey, expires: u64) -> Verdict {
    let len = usize::from(Ipv4Packet::new_unchecked(packet).total_len());
    let limit_count = e.config.max_held_fragments as usize;
    let limit_bytes = e.config.max_held_fragment_bytes as usize;
    if e.frags.held.len() >= limit_count || e.frags.held_bytes + len > limit_bytes {
        return Verdict::Drop(DropReason::FragmentDropped);
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
/// carries (the "copied" flag, 0x80), padded to a 4-byte boundary.
fn copied_options(options: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < options.len() {
        let t = options[i];
        match t {
            0 => break,
            1 => i += 1,
            _ => {
                let Some(&len) = options.get(i + 1) else {
                    break;
                };
                let len = usize::from(len);
                if len < 2 || i + len > options.len() {
                    break;
                }
                if t & 0x80 != 0 {
                    out.extend_from_slice(&options[i..i + len]);
                }
                i += len;
            }
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
        h.extend(copied_options(&packet[20..hl]));
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
        f[0] = 0x40 | (header.len() / 4) as u8;
        let off = ((base + pos) / 8) as u16;
        let flags: u16 = if !last || more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&(flags | off).to_be_bytes());
        let mut v = Ipv4Packet::new_unchecked(&mut f[..]);
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
        let opts = [1, 0x07, 7, 4, 0, 0, 0, 0, 0x82, 4, 0xaa, 0xbb, 0, 0, 0, 0];
        assert_eq!(copied_options(&opts), vec![0x82, 4, 0xaa, 0xbb]);
        assert!(copied_options(&[0x83, 200]).is_empty());
    }
}
