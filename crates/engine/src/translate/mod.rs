//! The packet path: ingress checks (RFC 1812 §5.2.2, §5.3.1, §5.3.7; BCP 38), then NAPT for
//! TCP/UDP/ICMP queries ([`napt`]), ICMP errors ([`icmp_error`], RFC 5508), fragments
//! ([`fragments`], RFC 4787 REQ-14, RFC 6864) and the errors the router sends itself
//! ([`icmp_reply`], RFC 792, RFC 1191).

pub(crate) mod fragments;
pub(crate) mod icmp_error;
pub(crate) mod icmp_reply;
pub(crate) mod napt;

use std::net::Ipv4Addr;

use natpass_wire::ipv4::{self, Ipv4Packet};
use natpass_wire::{Error as WireError, icmp};

use crate::diagnosis::{Observation, Ports, Subject, TooBig};
use crate::passthrough::Flow;
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Engine, Proto};

/// Addresses no packet may come from: 0/8, 127/8, 169.254/16, 224/4 and 240/4
/// (RFC 1812 §5.3.7, RFC 6890).
#[inline]
pub(crate) fn is_martian_src(ip: Ipv4Addr) -> bool {
    let ip = ip.to_bits();
    let a = ip >> 24;
    a == 0 || a == 127 || a >= 224 || ip >> 16 == 0xa9fe
}

/// Addresses a NAT does not forward to: 0/8, 127/8, multicast, reserved and broadcast.
#[inline]
pub(crate) fn is_martian_dst(ip: Ipv4Addr) -> bool {
    let a = ip.to_bits() >> 24;
    a == 0 || a == 127 || a >= 224
}

/// Checks an ingress packet's IP header, or says why it is refused: lengths, checksum
/// (RFC 1812 §5.2.2), and options, which must be well formed (§5.2.2) and may not name a
/// source route (RFC 7126 §4.3, §4.4).
#[inline(always)]
fn check_ip(packet: &mut [u8], drop_source_routes: bool) -> Result<(), DropReason> {
    let ip = match Ipv4Packet::new_checked(&*packet) {
        Ok(ip) if ip.verify_checksum() => ip,
        Ok(_) => return Err(DropReason::BadIpChecksum),
        Err(WireError::BadVersion) => return Err(DropReason::NotIpv4),
        Err(_) => return Err(DropReason::Malformed),
    };
    if ip.header_len() > ipv4::HEADER_LEN {
        check_options(&ip, drop_source_routes)?;
    }
    Ok(())
}

#[cold]
fn check_options(ip: &Ipv4Packet<&[u8]>, drop_source_routes: bool) -> Result<(), DropReason> {
    for o in ip.options() {
        match o {
            Ok(o) if drop_source_routes && matches!(o.kind, ipv4::option::LSRR | ipv4::option::SSRR) => {
                return Err(DropReason::IpSourceRoute);
            }
            Ok(_) => {}
            Err(_) => return Err(DropReason::IpOptionMalformed),
        }
    }
    Ok(())
}

/// A LAN → WAN packet (or LAN → public address: hairpinning).
pub(crate) fn from_lan(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    if let Err(r) = check_ip(packet, e.config.drop_source_routes) {
        return Verdict::Drop(r);
    }
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst) = (ip.src(), ip.dst());
    if !e.config.lan_networks.iter().any(|n| n.contains(src)) {
        return Verdict::Drop(DropReason::LanSpoofedSource);
    }
    if is_martian_dst(dst) || e.config.lan_networks.iter().any(|n| n.contains(dst)) {
        // Broadcasts, multicast and LAN-to-LAN traffic are not the NAT's to forward.
        return Verdict::Drop(DropReason::Martian);
    }
    if dst == e.config.lan_addr {
        return Verdict::Drop(DropReason::ForRouter);
    }
    if ip.ttl() <= 1 {
        icmp_reply::time_exceeded(&mut e.cx(now), Side::Lan, packet);
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    let hairpin = e.table.ext_index(dst).is_some();
    if hairpin && ip.is_fragment() {
        // Hairpinning carries whole datagrams only; a fragmented one is not turned around.
        return Verdict::Drop(DropReason::FragmentDropped);
    }
    let egress_mtu = if hairpin { e.config.lan_mtu } else { e.config.wan_mtu };
    if e.gso_len.unwrap_or(ip.total_len()) > egress_mtu && ip.dont_frag() {
        icmp_reply::frag_needed(&mut e.cx(now), Side::Lan, packet, egress_mtu);
        if !hairpin {
            let (public, reporter) = (e.table.paired_ext(src), e.config.lan_addr);
            let at = TooBigAt { client: src, client_port: None, public, mtu: egress_mtu, reporter, by_natpass: true };
            tunnel_too_big(e, now, packet, &at);
        }
        return Verdict::Drop(DropReason::FragmentationNeeded);
    }
    let v = if ip.is_fragment() { fragments::from_lan(e, now, packet) } else { outbound(e, now, packet) };
    if v != Verdict::Forward(Side::Wan) {
        return v;
    }
    if hairpin {
        // RFC 4787 REQ-9, RFC 5382 REQ-8: the packet now carries our public source; deliver it
        // to the mapping it targets as if it came from outside.
        e.out.stats.hairpinned += 1;
        return inbound(e, now, packet);
    }
    fit_mtu(e, packet, Side::Wan)
}

/// A WAN → LAN packet.
pub(crate) fn from_wan(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    if let Err(r) = check_ip(packet, e.config.drop_source_routes) {
        return Verdict::Drop(r);
    }
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst) = (ip.src(), ip.dst());
    if is_martian_src(src) || src.is_broadcast() {
        return Verdict::Drop(DropReason::Martian);
    }
    if e.config.lan_networks.iter().any(|n| n.contains(src)) || e.table.ext_index(src).is_some() {
        return Verdict::Drop(DropReason::WanSpoofedSource);
    }
    if e.table.ext_index(dst).is_none() {
        return Verdict::Drop(DropReason::NotOurAddress);
    }
    if ip.ttl() <= 1 {
        icmp_reply::time_exceeded(&mut e.cx(now), Side::Wan, packet);
        return Verdict::Drop(DropReason::TtlExceeded);
    }
    if e.gso_len.unwrap_or(ip.total_len()) > e.config.lan_mtu && ip.dont_frag() {
        let mtu = e.config.lan_mtu;
        icmp_reply::frag_needed(&mut e.cx(now), Side::Wan, packet, mtu);
        return Verdict::Drop(DropReason::FragmentationNeeded);
    }
    let v = if ip.is_fragment() { fragments::from_wan(e, now, packet) } else { inbound(e, now, packet) };
    if v != Verdict::Forward(Side::Lan) {
        return v;
    }
    fit_mtu(e, packet, Side::Lan)
}

/// Where a packet too big for the path was, for [`tunnel_too_big`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct TooBigAt {
    /// The LAN host that sent it.
    pub(crate) client: Ipv4Addr,
    /// Its port, when the datagram holds the public one instead (an ICMP error's quote).
    pub(crate) client_port: Option<u16>,
    pub(crate) public: Option<Ipv4Addr>,
    /// The MTU the packet must fit.
    pub(crate) mtu: u16,
    /// Who said so.
    pub(crate) reporter: Ipv4Addr,
    /// natpass's own egress MTU.
    pub(crate) by_natpass: bool,
}

/// A packet too big for the path (RFC 1191): when it is a VPN tunnel's (a passthrough module
/// claims its flow), the diagnosis hears of it. `datagram` is the packet, or an ICMP error's
/// quote of it: an IPv4 header and at least 8 bytes.
#[cold]
#[inline(never)]
pub(crate) fn tunnel_too_big(e: &mut Engine, now: Instant, datagram: &[u8], at: &TooBigAt) {
    let Ok(q) = icmp::QuotedDatagram::new_checked(datagram) else { return };
    let udp = q.protocol() == natpass_wire::IpProtocol::UDP;
    let (sport, dport) = match q.protocol() {
        natpass_wire::IpProtocol::TCP | natpass_wire::IpProtocol::UDP => (q.src_port(), q.dst_port()),
        _ => (0, 0),
    };
    let Some(protocol) = e.passthrough.switch_of(q.protocol(), sport, dport) else { return };
    let packet_len = datagram.get(2..4).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let ports = udp.then_some(match at.client_port {
        Some(client) => Ports { client, public: sport, server: dport },
        // natpass's own refusal sees the client's port; a passthrough module's quote (IKE on
        // 500) kept it.
        None if at.by_natpass => Ports { client: sport, public: 0, server: dport },
        None => Ports { client: sport, public: sport, server: dport },
    });
    let subject = Subject { protocol, client: at.client, server: q.dst(), public: at.public, ids: None, ports };
    let too_big = TooBig { subject, mtu: at.mtu, packet_len, reporter: at.reporter, by_natpass: at.by_natpass };
    e.cx(now).observe(Observation::TooBig(too_big));
}

/// Splits a translated packet larger than the egress MTU (DF clear) into the outbox.
#[inline(always)]
fn fit_mtu(e: &mut Engine, packet: &mut [u8], side: Side) -> Verdict {
    let mtu = match side {
        Side::Lan => e.config.lan_mtu,
        Side::Wan => e.config.wan_mtu,
    };
    // A segmentation-offload super-packet leaves as segments of `gso_len` bytes.
    let total = e.gso_len.unwrap_or_else(|| Ipv4Packet::new_unchecked(&*packet).total_len());
    if total <= mtu {
        return Verdict::Forward(side);
    }
    fragments::split(e, packet, side, mtu);
    Verdict::Consumed
}

/// A packet of a protocol NAPT does not translate (ESP, AH, GRE, ...): a passthrough
/// module's, or refused.
fn other_protocol(e: &mut Engine, now: Instant, side: Side, packet: &mut [u8]) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let flow = Flow { protocol: ip.protocol(), src: ip.src(), dst: ip.dst(), sport: 0, dport: 0 };
    let (passthrough, mut cx) = e.passthrough_and_cx(now);
    passthrough.packet(&mut cx, side, &flow, packet).unwrap_or(Verdict::Drop(DropReason::UnsupportedProtocol))
}

/// The LAN → WAN translation of a whole (unfragmented or first-fragment) datagram.
pub(crate) fn outbound(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    by_protocol(e, now, Side::Lan, packet)
}

/// The WAN → LAN translation of a whole (unfragmented or first-fragment) datagram.
pub(crate) fn inbound(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    by_protocol(e, now, Side::Wan, packet)
}

/// A whole datagram from `side`, by protocol: TCP and UDP to NAPT (which hands passthrough
/// ports to the dispatch, with their ports in hand), ICMP queries to NAPT and errors to
/// [`icmp_error`], anything else to the passthrough dispatch.
#[inline(always)]
fn by_protocol(e: &mut Engine, now: Instant, side: Side, packet: &mut [u8]) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let proto = match Proto::from_ip_protocol(ip.protocol()) {
        Some(p) => p,
        None => return other_protocol(e, now, side, packet),
    };
    let translate = match side {
        Side::Lan => napt::outbound,
        Side::Wan => napt::inbound,
    };
    if proto != Proto::Icmp {
        return translate(e, now, packet, proto);
    }
    let Ok(m) = icmp::IcmpPacket::new_checked(ip.payload()) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    // A query goes out as a request and comes back as its reply (RFC 5508 §3).
    let query = match side {
        Side::Lan => matches!(m.msg_type(), icmp::kind::ECHO_REQUEST | icmp::kind::TIMESTAMP),
        Side::Wan => matches!(m.msg_type(), icmp::kind::ECHO_REPLY | icmp::kind::TIMESTAMP_REPLY),
    };
    match (m.is_error(), query, side) {
        (true, _, Side::Lan) => icmp_error::outbound(e, packet),
        (true, _, Side::Wan) => icmp_error::inbound(e, now, packet),
        (false, true, _) => translate(e, now, packet, Proto::Icmp),
        (false, false, Side::Lan) => Verdict::Drop(DropReason::IcmpUnsupported),
        (false, false, Side::Wan) => Verdict::Drop(DropReason::NoMapping),
    }
}
