//! NAPT for TCP, UDP and ICMP query messages: source address and port (or ICMP identifier)
//! rewritten outbound, destination rewritten inbound, checksums updated incrementally
//! (RFC 3022 §4.1, RFC 1624). Endpoint-independent mapping and the configured filtering come
//! from the flow table (RFC 4787 REQ-1/8, RFC 5382 REQ-1/3); TCP sessions open inbound only on
//! SYN (RFC 5382 §5, RFC 7857 §2.1).
//!
//! A TCP or UDP packet with a port that a passthrough module may claim goes to the dispatch
//! twice: before the session lookup ([`Dispatch::packet`](crate::passthrough::Dispatch::packet):
//! switch off, IKE on 500 ↔ 500) and once its session is known, before the rewrite
//! ([`Dispatch::napt_packet`](crate::passthrough::Dispatch::napt_packet): the PPTP control ALG,
//! L2TP tunnels). No protocol logic lives here.

use std::net::Ipv4Addr;

use natpass_wire::AddrChange;
use natpass_wire::icmp::IcmpPacket;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::tcp::{self, TcpPacket};
use natpass_wire::udp::{self, UdpPacket};

use crate::flow::table::Endpoint;
use crate::flow::tcp_window::Segment;
use crate::passthrough::{Flow, NaptPacket, Peers};
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Engine, Event, Filtering, Proto};

/// The ports (ICMP: identifier as the source "port", 0 as the destination) and TCP flags of a
/// datagram's transport header, or why it is refused: too short, a TCP data offset out of
/// range, a UDP length that disagrees with the IP payload (`fragment`: the payload is the
/// first fragment's, which the length may exceed).
#[inline]
fn ports(proto: Proto, l4: &[u8], fragment: bool) -> Result<(u16, u16, Option<u8>), DropReason> {
    match proto {
        Proto::Tcp => match TcpPacket::new_checked(l4) {
            Ok(t) => Ok((t.src_port(), t.dst_port(), Some(t.flags()))),
            Err(_) if l4.len() < tcp::HEADER_LEN => Err(DropReason::Malformed),
            Err(_) => Err(DropReason::TcpHeaderMalformed),
        },
        Proto::Udp => {
            let u = UdpPacket::new_checked(l4).map_err(|_| DropReason::Malformed)?;
            let len = usize::from(u.len_field());
            let fits = if fragment { len >= l4.len() } else { len == l4.len() };
            if !fits || len < udp::HEADER_LEN {
                return Err(DropReason::UdpLengthMismatch);
            }
            Ok((u.src_port(), u.dst_port(), None))
        }
        Proto::Icmp => IcmpPacket::new_checked(l4).map(|m| (m.ident(), 0, None)).map_err(|_| DropReason::Malformed),
    }
}

/// The sequence window check of a TCP segment on session `idx` (see
/// [`TcpWindow`](crate::flow::tcp_window::TcpWindow)), when it is on.
#[inline(never)]
fn tcp_in_window(e: &mut Engine, idx: u32, side: Side, packet: &[u8]) -> Result<(), DropReason> {
    if !e.config.tcp_window_check {
        return Ok(());
    }
    let l4 = Ipv4Packet::new_unchecked(packet).into_payload();
    let t = TcpPacket::new_unchecked(l4);
    let syn = t.flags() & tcp::flags::SYN != 0;
    let seg = Segment {
        seq: t.seq(),
        ack: t.ack(),
        flags: t.flags(),
        len: t.payload().len() as u32,
        window: t.window(),
        scale: if syn { t.window_scale() } else { None },
    };
    if e.table.tcp_accept(idx, side, &seg) { Ok(()) } else { Err(DropReason::TcpOutOfWindow) }
}

/// The passthrough dispatch before NAPT, for a TCP or UDP packet with a port a module may
/// claim. `Some` ends the packet's way here.
#[inline(never)]
fn dispatch_first(e: &mut Engine, now: Instant, side: Side, flow: &Flow, packet: &mut [u8]) -> Option<Verdict> {
    let (passthrough, mut cx) = e.passthrough_and_cx(now);
    passthrough.packet(&mut cx, side, flow, packet)
}

/// The passthrough dispatch once NAPT found the session, before it rewrites the packet: the
/// ALG of the module that claims the session's ports.
#[inline(never)]
fn dispatch_alg(e: &mut Engine, now: Instant, napt: &NaptPacket, packet: &mut [u8]) -> Result<(), DropReason> {
    let (passthrough, mut cx) = e.passthrough_and_cx(now);
    passthrough.napt_packet(&mut cx, napt, packet)
}

/// Translates a LAN → WAN datagram's source, opening a session when needed.
pub(crate) fn outbound(e: &mut Engine, now: Instant, packet: &mut [u8], proto: Proto) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst) = (ip.src(), ip.dst());
    let (sport, dport, flags) = match ports(proto, ip.payload(), ip.is_fragment()) {
        Ok(p) => p,
        Err(r) => return Verdict::Drop(r),
    };
    let protocol = proto.ip_protocol();
    // A passthrough module's ports: the same for the dispatch before and after the lookup.
    let claimable = proto != Proto::Icmp && e.passthrough.may_claim_ports(sport, dport);
    if claimable && let Some(v) = dispatch_first(e, now, Side::Lan, &Flow { protocol, src, dst, sport, dport }, packet)
    {
        return v;
    }
    let (lan, remote) = (Endpoint::new(src, sport), Endpoint::new(dst, dport));
    let idx = match e.table.find_out(proto, lan, remote) {
        Some(i) => i,
        None => match e.table.create_outbound(now, proto, lan, remote) {
            Ok(i) => i,
            Err(reason) => return refuse(e, now, packet, src, reason),
        },
    };
    let public = e.table.ext_of(idx);
    if proto == Proto::Tcp
        && let Err(r) = tcp_in_window(e, idx, Side::Lan, packet)
    {
        return Verdict::Drop(r);
    }
    if claimable {
        let peers = Peers { client: src, server: dst, public: public.addr };
        let napt = NaptPacket {
            from: Side::Lan,
            protocol,
            peers,
            client_port: sport,
            public_port: public.port,
            server_port: dport,
        };
        if let Err(r) = dispatch_alg(e, now, &napt, packet) {
            return Verdict::Drop(r);
        }
    }
    let total = rewrite(packet, proto, Side::Wan, public);
    e.table.touch(idx, now, true, total, flags);
    if !claimable {
        e.offer_offload(idx, proto, flags);
    }
    Verdict::Forward(Side::Wan)
}

/// Translates a WAN → LAN datagram's destination, if a session or the filter lets it in.
pub(crate) fn inbound(e: &mut Engine, now: Instant, packet: &mut [u8], proto: Proto) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst) = (ip.src(), ip.dst());
    let (sport, dport, flags) = match ports(proto, ip.payload(), ip.is_fragment()) {
        Ok(p) => p,
        Err(r) => return Verdict::Drop(r),
    };
    let protocol = proto.ip_protocol();
    let claimable = proto != Proto::Icmp && e.passthrough.may_claim_ports(sport, dport);
    if claimable && let Some(v) = dispatch_first(e, now, Side::Wan, &Flow { protocol, src, dst, sport, dport }, packet)
    {
        return v;
    }
    // ICMP replies match on (identifier, remote); their "ports" are (ident, 0) from our side.
    let (ext_port, rem_port) = match proto {
        Proto::Icmp => (sport, 0),
        _ => (dport, sport),
    };
    let (public, remote) = (Endpoint::new(dst, ext_port), Endpoint::new(src, rem_port));
    let idx = match e.table.find_in(proto, public, remote) {
        Some(i) => i,
        None => match open_inbound(e, now, proto, public, remote, flags) {
            Ok(i) => i,
            Err(reason) if claimable => return unmatched(e, now, &Flow { protocol, src, dst, sport, dport }, reason),
            Err(reason) => return Verdict::Drop(reason),
        },
    };
    let lan = e.table.lan_of(idx);
    if proto == Proto::Tcp
        && let Err(r) = tcp_in_window(e, idx, Side::Wan, packet)
    {
        return Verdict::Drop(r);
    }
    // The session's own ports: an LNS may answer an L2TP client from another port.
    let claimable = claimable || (proto != Proto::Icmp && e.passthrough.may_claim_ports(lan.port, sport));
    if proto != Proto::Icmp && e.passthrough.may_claim_ports(lan.port, sport) {
        let peers = Peers { client: lan.addr, server: src, public: dst };
        let napt = NaptPacket {
            from: Side::Wan,
            protocol,
            peers,
            client_port: lan.port,
            public_port: dport,
            server_port: sport,
        };
        if let Err(r) = dispatch_alg(e, now, &napt, packet) {
            return Verdict::Drop(r);
        }
    }
    let total = rewrite(packet, proto, Side::Lan, lan);
    e.table.touch(idx, now, false, total, flags);
    if !claimable {
        e.offer_offload(idx, proto, flags);
    }
    Verdict::Forward(Side::Lan)
}

/// Rewrites a packet leaving by `egress`: its source to `to` towards the WAN, its
/// destination towards the LAN; port (or ICMP identifier) and address, with incremental
/// checksums. Returns its total length.
#[inline(always)]
fn rewrite(packet: &mut [u8], proto: Proto, egress: Side, to: Endpoint) -> usize {
    let mut ip = Ipv4Packet::new_unchecked(packet);
    let total = usize::from(ip.total_len());
    let old = if egress == Side::Wan { ip.src() } else { ip.dst() };
    let addr = Some(AddrChange::new(old, to.addr));
    let l4 = ip.payload_mut();
    match (proto, egress) {
        (Proto::Tcp, Side::Wan) => TcpPacket::new_unchecked(l4).set_src_port(to.port, addr),
        (Proto::Tcp, Side::Lan) => TcpPacket::new_unchecked(l4).set_dst_port(to.port, addr),
        (Proto::Udp, Side::Wan) => UdpPacket::new_unchecked(l4).set_src_port(to.port, addr),
        (Proto::Udp, Side::Lan) => UdpPacket::new_unchecked(l4).set_dst_port(to.port, addr),
        (Proto::Icmp, _) => IcmpPacket::new_unchecked(l4).set_ident(to.port),
    }
    if egress == Side::Wan {
        ip.set_src(to.addr);
    } else {
        ip.set_dst(to.addr);
    }
    ip.decrement_ttl();
    total
}

/// Opens a session for an inbound packet that matched none, if the mapping of its public
/// port and the filtering let it in.
#[cold]
fn open_inbound(
    e: &mut Engine,
    now: Instant,
    proto: Proto,
    public: Endpoint,
    remote: Endpoint,
    tcp_flags: Option<u8>,
) -> Result<u32, DropReason> {
    if proto == Proto::Icmp {
        return Err(DropReason::NoMapping);
    }
    if tcp_flags.is_some_and(|f| f & tcp::flags::SYN == 0 || f & tcp::flags::RST != 0) {
        // Only a SYN may open a TCP session from outside (RFC 5382 REQ-2/3 context).
        return Err(if e.table.find_in_port(proto, public) { DropReason::TcpNoSyn } else { DropReason::NoMapping });
    }
    let ext_idx = e.table.ext_index(public.addr).ok_or(DropReason::NotOurAddress)?;
    let mut filtering = e.config.filtering;
    // A passthrough protocol may loosen the filter for its mappings (L2TP: RFC 2661 §8.1).
    if filtering != Filtering::EndpointIndependent
        && let Some(lan_port) = e.table.owner_lan_port(ext_idx, proto, public.port)
    {
        filtering = e.passthrough.inbound_filtering(&e.config, proto.ip_protocol(), lan_port, filtering);
    }
    e.table.create_inbound(now, proto, ext_idx, public.port, remote, filtering)
}

/// An inbound packet on a passthrough module's port that no mapping takes: the module tells
/// the diagnosis what it means (a NAT-T mapping that expired), and the packet is dropped.
#[cold]
#[inline(never)]
fn unmatched(e: &mut Engine, now: Instant, flow: &Flow, reason: DropReason) -> Verdict {
    let (passthrough, mut cx) = e.passthrough_and_cx(now);
    passthrough.unmatched_inbound(&mut cx, flow);
    Verdict::Drop(reason)
}

/// Refuses a new session: counts it, tells the control plane, and for resource limits tells
/// the LAN host with ICMP Destination Unreachable, code 13 (RFC 5508 REQ-8).
#[cold]
#[inline(never)]
fn refuse(e: &mut Engine, now: Instant, packet: &[u8], lan_ip: Ipv4Addr, reason: DropReason) -> Verdict {
    let mut cx = e.cx(now);
    cx.event(Event::SessionRefused { lan_ip, reason });
    super::icmp_reply::admin_prohibited(&mut cx, Side::Lan, packet);
    Verdict::Drop(reason)
}
