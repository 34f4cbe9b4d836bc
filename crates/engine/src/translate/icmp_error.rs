//! ICMP error translation (RFC 5508 §4.2, REQ-3 to REQ-6; RFC 5382 REQ-9/10): the outer
//! header is translated like any packet, and the quoted datagram, which is the packet the
//! NAT sent or received, is translated back with its IP and transport checksums. An error
//! whose quoted datagram matches no session is dropped silently (REQ-4). ICMP errors never
//! refresh nor end a session (RFC 4787 REQ-12, RFC 7857 §2.2).
//!
//! Errors from the WAN about a passthrough protocol's own packets (ESP, GRE, IKE on 500) are
//! matched by that protocol's module ([`crate::passthrough::VpnProtocol::icmp_error_client`]).

use std::net::Ipv4Addr;

use natpass_wire::icmp::{self, IcmpPacket, QuotedDatagram};
use natpass_wire::ipv4::Ipv4Packet;

use super::{TooBigAt, tunnel_too_big};
use crate::flow::table::Endpoint;
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Engine, Proto};

/// What the NAPT path needs of a quoted datagram: its protocol and its two ends.
#[derive(Clone, Copy, Debug)]
struct Quote {
    proto: Proto,
    src: Endpoint,
    dst: Endpoint,
}

/// The ICMP message of an outer packet whose ICMP header the caller has checked.
fn icmp_of(packet: &[u8]) -> IcmpPacket<&[u8]> {
    IcmpPacket::new_unchecked(Ipv4Packet::new_unchecked(packet).into_payload())
}

/// The quoted datagram of an ICMP error, for NAPT: a whole header and 8 bytes after it
/// (RFC 792), of a first fragment, of TCP, UDP or an ICMP query.
fn quote_of(packet: &[u8]) -> Result<Quote, DropReason> {
    let m = icmp_of(packet);
    let q = QuotedDatagram::new_checked(m.data()).map_err(|_| DropReason::Malformed)?;
    if q.frag_offset() != 0 {
        // A non-first fragment quotes no transport header to match.
        return Err(DropReason::IcmpErrorNoSession);
    }
    let proto = Proto::from_ip_protocol(q.protocol()).ok_or(DropReason::IcmpErrorNoSession)?;
    let (sport, dport) = match proto {
        Proto::Icmp => {
            // Only a quoted query message has an identifier to match.
            if icmp::is_error_type(q.icmp_type()) {
                return Err(DropReason::IcmpErrorNoSession);
            }
            (q.icmp_ident(), q.icmp_ident())
        }
        _ => (q.src_port(), q.dst_port()),
    };
    Ok(Quote { proto, src: Endpoint::new(q.src(), sport), dst: Endpoint::new(q.dst(), dport) })
}

fn verify_icmp(packet: &[u8]) -> Result<(), DropReason> {
    if icmp_of(packet).verify_checksum() { Ok(()) } else { Err(DropReason::BadIcmpChecksum) }
}

/// Rewrites the quoted datagram with `rewrite`, then the ICMP checksum.
fn rewrite_quote(packet: &mut [u8], rewrite: impl FnOnce(&mut QuotedDatagram<&mut [u8]>)) {
    let mut ip = Ipv4Packet::new_unchecked(packet);
    let mut m = IcmpPacket::new_unchecked(ip.payload_mut());
    rewrite(&mut QuotedDatagram::new_unchecked(m.data_mut()));
    m.fill_checksum();
}

/// Sends the error on to `lan` (from the WAN) or from `public` (from the LAN).
fn forward(packet: &mut [u8], side: Side, addr: Ipv4Addr) -> Verdict {
    let mut ip = Ipv4Packet::new_unchecked(packet);
    match side {
        Side::Lan => ip.set_dst(addr),
        Side::Wan => ip.set_src(addr),
    }
    ip.decrement_ttl();
    Verdict::Forward(side)
}

/// Fragmentation Needed (RFC 1191) about a packet natpass sent out for LAN host `client`
/// (from its port `client_port` when NAPT changed it): told to the diagnosis, which keeps it
/// when the packet was a VPN tunnel's.
fn path_mtu(e: &mut Engine, now: Instant, packet: &[u8], client: Ipv4Addr, client_port: Option<u16>) {
    let m = icmp_of(packet);
    if (m.msg_type(), m.code()) != (icmp::kind::DEST_UNREACHABLE, icmp::code::FRAG_NEEDED) {
        return;
    }
    let reporter = Ipv4Packet::new_unchecked(packet).src();
    let public = QuotedDatagram::new_checked(m.data()).ok().map(|q| q.src());
    let at = TooBigAt { client, client_port, public, mtu: m.next_hop_mtu(), reporter, by_natpass: false };
    tunnel_too_big(e, now, m.data(), &at);
}

/// An ICMP error from the WAN about a packet the NAT sent out: back to the LAN host.
pub(crate) fn inbound(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    if let Err(r) = verify_icmp(packet) {
        return Verdict::Drop(r);
    }
    let passthrough = match QuotedDatagram::new_checked(icmp_of(packet).data()) {
        Ok(q) => e.passthrough.icmp_error_client(&q),
        Err(_) => None,
    };
    if let Some(client) = passthrough {
        // The quoted source back to the client; the module's packets keep their ports.
        return match client {
            Ok(lan) => {
                path_mtu(e, now, packet, lan, None);
                rewrite_quote(packet, |q| q.set_src(lan));
                forward(packet, Side::Lan, lan)
            }
            Err(reason) => Verdict::Drop(reason),
        };
    }
    let q = match quote_of(packet) {
        Ok(q) => q,
        Err(r) => return Verdict::Drop(r),
    };
    let outer_dst = Ipv4Packet::new_unchecked(&*packet).dst();
    // The quoted packet went out from our public endpoint to the remote one.
    let remote = Endpoint { port: if q.proto == Proto::Icmp { 0 } else { q.dst.port }, ..q.dst };
    let Some(idx) = e.table.find_in(q.proto, q.src, remote) else {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    };
    if outer_dst != e.table.ext_of(idx).addr {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    }
    let lan = e.table.lan_of(idx);
    if q.proto != Proto::Icmp && e.passthrough.may_claim_ports(q.src.port, q.dst.port) {
        path_mtu(e, now, packet, lan.addr, Some(lan.port));
    }
    rewrite_quote(packet, |v| {
        v.set_src(lan.addr);
        match q.proto {
            Proto::Icmp => v.set_icmp_ident(lan.port),
            Proto::Tcp | Proto::Udp => v.set_src_port(lan.port),
        }
    });
    forward(packet, Side::Lan, lan.addr)
}

/// An ICMP error from a LAN host about a packet the NAT delivered to it: out to the remote.
pub(crate) fn outbound(e: &mut Engine, packet: &mut [u8]) -> Verdict {
    if let Err(r) = verify_icmp(packet) {
        return Verdict::Drop(r);
    }
    let q = match quote_of(packet) {
        Ok(q) => q,
        Err(r) => return Verdict::Drop(r),
    };
    let outer_src = Ipv4Packet::new_unchecked(&*packet).src();
    // The quoted packet came from the remote endpoint to the LAN endpoint.
    let (lan, remote) = match q.proto {
        Proto::Icmp => (Endpoint { port: q.src.port, ..q.dst }, Endpoint { port: 0, ..q.src }),
        _ => (q.dst, q.src),
    };
    let Some(idx) = e.table.find_out(q.proto, lan, remote) else {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    };
    if outer_src != e.table.lan_of(idx).addr {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    }
    let public = e.table.ext_of(idx);
    rewrite_quote(packet, |v| {
        v.set_dst(public.addr);
        match q.proto {
            Proto::Icmp => v.set_icmp_ident(public.port),
            Proto::Tcp | Proto::Udp => v.set_dst_port(public.port),
        }
    });
    forward(packet, Side::Wan, public.addr)
}
