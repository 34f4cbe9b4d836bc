//! NAPT for TCP, UDP and ICMP query messages: source address and port (or ICMP identifier)
//! rewritten outbound, destination rewritten inbound, checksums updated incrementally
//! (RFC 3022 §4.1, RFC 1624). Endpoint-independent mapping and the configured filtering come
//! from the flow table (RFC 4787 REQ-1/8, RFC 5382 REQ-1/3); TCP sessions open inbound only on
//! SYN (RFC 5382 §5, RFC 7857 §2.1).

use natpass_wire::icmp::IcmpPacket;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::tcp::{self, TcpPacket};
use natpass_wire::udp::UdpPacket;

use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Engine, Event, Proto};

/// The ports (ICMP: identifier as the source "port", 0 as the destination) and TCP flags of a
/// datagram's transport header, or `None` when it is too short to hold them.
#[inline]
fn ports(proto: Proto, l4: &[u8]) -> Option<(u16, u16, Option<u8>)> {
    match proto {
        Proto::Tcp => TcpPacket::new_checked(l4).ok().map(|t| (t.src_port(), t.dst_port(), Some(t.flags()))),
        Proto::Udp => UdpPacket::new_checked(l4).ok().map(|u| (u.src_port(), u.dst_port(), None)),
        Proto::Icmp => IcmpPacket::new_checked(l4).ok().map(|m| (m.ident(), 0, None)),
    }
}

/// Translates a LAN → WAN datagram's source, opening a session when needed.
pub(crate) fn outbound(e: &mut Engine, now: Instant, packet: &mut [u8], proto: Proto) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, total, hl) = (ip.src(), ip.dst(), usize::from(ip.total_len()), ip.header_len());
    let Some((sport, dport, flags)) = ports(proto, &packet[hl..total]) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if proto != Proto::Icmp
        && crate::passthrough::is_passthrough_port(sport, dport)
        && let Some(v) = crate::passthrough::transport(e, now, packet, Side::Lan, proto.number(), sport, dport)
    {
        return v;
    }
    let idx = match e.table.find_out(proto, src, sport, dst, dport) {
        Some(i) => i,
        None => match e.table.create_outbound(now, proto, src, sport, dst, dport) {
            Ok(i) => i,
            Err(reason) => return refuse(e, now, packet, src, reason),
        },
    };
    let (ext_ip, ext_port) = e.table.ext_of(idx);
    if proto == Proto::Udp && (sport == 1701 || dport == 1701) {
        crate::passthrough::l2tp_event(e, packet, src, dst, ext_ip, true);
    }
    if proto == Proto::Tcp
        && dport == 1723
        && e.config.passthrough.pptp
        && let Err(r) = crate::passthrough::pptp_control(e, packet, src, sport, dst, ext_ip, true)
    {
        return Verdict::Drop(r);
    }
    let l4 = &mut packet[hl..total];
    match proto {
        Proto::Tcp => TcpPacket::new_unchecked(l4).set_src_port(ext_port, Some((src, ext_ip))),
        Proto::Udp => UdpPacket::new_unchecked(l4).set_src_port(ext_port, Some((src, ext_ip))),
        Proto::Icmp => IcmpPacket::new_unchecked(l4).set_ident(ext_port),
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_src(ext_ip);
    ip.decrement_ttl();
    e.table.touch(idx, now, true, total, flags);
    Verdict::Forward(Side::Wan)
}

/// Translates a WAN → LAN datagram's destination, if a session or the filter lets it in.
pub(crate) fn inbound(e: &mut Engine, now: Instant, packet: &mut [u8], proto: Proto) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, total, hl) = (ip.src(), ip.dst(), usize::from(ip.total_len()), ip.header_len());
    let Some((sport, dport, flags)) = ports(proto, &packet[hl..total]) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    if proto != Proto::Icmp
        && crate::passthrough::is_passthrough_port(sport, dport)
        && let Some(v) = crate::passthrough::transport(e, now, packet, Side::Wan, proto.number(), sport, dport)
    {
        return v;
    }
    // ICMP replies match on (identifier, remote); their "ports" are (ident, 0) from our side.
    let (ext_port, rem_port) = match proto {
        Proto::Icmp => (sport, 0),
        _ => (dport, sport),
    };
    let idx = match e.table.find_in(proto, dst, ext_port, src, rem_port) {
        Some(i) => i,
        None => {
            if proto == Proto::Icmp {
                return Verdict::Drop(DropReason::NoMapping);
            }
            if proto == Proto::Tcp && flags.is_some_and(|f| f & tcp::flags::SYN == 0 || f & tcp::flags::RST != 0) {
                // Only a SYN may open a TCP session from outside (RFC 5382 REQ-2/3 context).
                return Verdict::Drop(if e.table.find_in_port(proto, dst, ext_port) {
                    DropReason::TcpNoSyn
                } else {
                    DropReason::NoMapping
                });
            }
            let Some(ext_idx) = e.table.ext_index(dst) else {
                return Verdict::Drop(DropReason::NotOurAddress);
            };
            let mut filtering = e.config.filtering;
            // RFC 2661 §8.1: an LNS may answer from a port other than 1701. With the L2TP
            // passthrough on, an L2TP client's mapping takes its server's answer from any port.
            if filtering == crate::Filtering::AddressAndPortDependent
                && proto == Proto::Udp
                && e.config.passthrough.l2tp
                && e.table.owner_lan_port(ext_idx, proto, ext_port) == Some(1701)
            {
                filtering = crate::Filtering::AddressDependent;
            }
            match e.table.create_inbound(now, proto, ext_idx, ext_port, src, rem_port, filtering) {
                Ok(i) => i,
                Err(reason) => return Verdict::Drop(reason),
            }
        }
    };
    let s = &e.table.sessions[idx as usize];
    let (lan_ip, lan_port) = (s.lan_ip, s.lan_port);
    if proto == Proto::Udp && (lan_port == 1701 || sport == 1701) {
        crate::passthrough::l2tp_event(e, packet, lan_ip, src, dst, false);
    }
    if proto == Proto::Tcp
        && sport == 1723
        && e.config.passthrough.pptp
        && let Err(r) = crate::passthrough::pptp_control(e, packet, lan_ip, lan_port, src, dst, false)
    {
        return Verdict::Drop(r);
    }
    let l4 = &mut packet[hl..total];
    match proto {
        Proto::Tcp => TcpPacket::new_unchecked(l4).set_dst_port(lan_port, Some((dst, lan_ip))),
        Proto::Udp => UdpPacket::new_unchecked(l4).set_dst_port(lan_port, Some((dst, lan_ip))),
        Proto::Icmp => IcmpPacket::new_unchecked(l4).set_ident(lan_port),
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_dst(lan_ip);
    ip.decrement_ttl();
    e.table.touch(idx, now, false, total, flags);
    Verdict::Forward(Side::Lan)
}

/// Refuses a new session: counts it, tells the control plane, and for resource limits tells
/// the LAN host with ICMP Destination Unreachable, code 13 (RFC 5508 REQ-8).
#[cold]
#[inline(never)]
fn refuse(e: &mut Engine, now: Instant, packet: &[u8], lan_ip: u32, reason: DropReason) -> Verdict {
    e.queue_event(Event::SessionRefused { lan_ip, reason });
    super::icmp_reply::admin_prohibited(e, now, Side::Lan, packet);
    Verdict::Drop(reason)
}
