//! VPN passthrough: what a router's "VPN > VPN Passthrough" page switches (RFC 3715 §2 lists
//! why each protocol breaks under NAPT). One module per protocol:
//!
//! - [`esp_learning`]: raw ESP (RFC 4303) for several clients to one server, by SPI learning
//!   with one pending client per server (RFC 3715 §2.1 f, RFC 5508 REQ-8 refusals).
//! - [`ike_demux`]: IKE on UDP 500 keeping port 500 for every client, told apart by SPIs
//!   (RFC 7296 §2.23, RFC 2408 §3.1 cookies; RFC 3715 §2.3 n).
//! - AH is refused: its ICV covers the addresses (RFC 3715 §2.1 a).
//! - NAT-T (UDP 4500, RFC 3948) and L2TP (UDP 1701, RFC 2661 §8.1) ride the NAPT engine:
//!   endpoint-independent mappings that live 300 s, and filtering that lets an LNS answer from
//!   another port.
//!
//! A switch that is off blocks its protocol from the LAN and from the WAN, and removes its
//! tunnels and sessions.

pub(crate) mod esp_learning;
pub(crate) mod ike_demux;
pub(crate) mod l2tp_tunnels;
pub(crate) mod pptp_call_ids;

use crate::verdict::DropReason;

/// A passthrough protocol, as on the router's settings page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// IPsec: IKE, NAT-T, ESP, AH.
    Ipsec,
    /// PPTP: TCP 1723 control and GRE.
    Pptp,
    /// L2TP: UDP 1701.
    L2tp,
}

impl Protocol {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipsec => "ipsec",
            Self::Pptp => "pptp",
            Self::L2tp => "l2tp",
        }
    }

    pub(crate) fn disabled_reason(self) -> DropReason {
        match self {
            Self::Ipsec => DropReason::IpsecDisabled,
            Self::Pptp => DropReason::PptpDisabled,
            Self::L2tp => DropReason::L2tpDisabled,
        }
    }
}

/// The identifiers that name a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelIds {
    /// An ESP SA pair: the client's outbound SPI and the server's, learned.
    Esp {
        /// SPI of the client → server SA.
        spi_out: u32,
        /// SPI of the server → client SA.
        spi_in: u32,
    },
    /// A PPTP call: the client's Call ID, the public one natpass gave it, the server's.
    Pptp {
        /// The client's own Call ID.
        client_call_id: u16,
        /// The public Call ID the server sees.
        public_call_id: u16,
        /// The server's Call ID (carried by outbound GRE).
        server_call_id: u16,
    },
    /// An L2TP tunnel: each end's Assigned Tunnel ID.
    L2tp {
        /// The client's (LAC's) tunnel ID.
        client_tunnel_id: u16,
        /// The server's (LNS's) tunnel ID.
        server_tunnel_id: u16,
    },
    /// An IKE SA on port 500: initiator and responder SPIs (IKEv1 cookies).
    Ike {
        /// Initiator SPI.
        spi_i: u64,
        /// Responder SPI (0 until the responder answered).
        spi_r: u64,
    },
}

/// True when either port is one a passthrough protocol uses (IKE 500, NAT-T 4500, L2TP 1701,
/// PPTP 1723): the cheap test on the NAPT path before [`classify`].
#[inline]
pub(crate) fn is_passthrough_port(sport: u16, dport: u16) -> bool {
    matches!(sport, 500 | 1701 | 1723 | 4500) || matches!(dport, 500 | 1701 | 1723 | 4500)
}

/// Which passthrough protocol a transport flow belongs to, by IP protocol and ports.
pub(crate) fn classify(proto: u8, sport: u16, dport: u16) -> Option<Protocol> {
    match proto {
        50 | 51 => Some(Protocol::Ipsec),
        47 => Some(Protocol::Pptp),
        17 if matches!(sport, 500 | 4500) || matches!(dport, 500 | 4500) => Some(Protocol::Ipsec),
        17 if sport == 1701 || dport == 1701 => Some(Protocol::L2tp),
        6 if sport == 1723 || dport == 1723 => Some(Protocol::Pptp),
        _ => None,
    }
}

use natpass_wire::esp::EspPacket;
use natpass_wire::gre::GrePacket;
use natpass_wire::ike::IkePacket;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::udp::UdpPacket;

use crate::time::Instant;
use crate::translate::icmp_reply;
use crate::verdict::{Side, Verdict};
use crate::{Engine, Event};

/// The protocol number and, for a first fragment or whole datagram, the ports of a packet.
fn flow_of(packet: &[u8]) -> (u8, u16, u16) {
    let ip = Ipv4Packet::new_unchecked(packet);
    let proto = ip.protocol();
    let l4 = ip.payload();
    if ip.frag_offset() == 0 && matches!(proto, 6 | 17) && l4.len() >= 4 {
        (proto, u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]))
    } else {
        (proto, 0, 0)
    }
}

fn enabled(e: &Engine, p: Protocol) -> bool {
    let s = &e.config.passthrough;
    match p {
        Protocol::Ipsec => s.ipsec,
        Protocol::Pptp => s.pptp,
        Protocol::L2tp => s.l2tp,
    }
}

/// Refuses a LAN packet whose passthrough switch is off, telling the control plane who and why.
fn switched_off(e: &mut Engine, packet: &[u8], p: Protocol) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(packet);
    let reason = p.disabled_reason();
    e.queue_event(Event::PassthroughRefused { protocol: p, client: ip.src(), server: ip.dst(), reason });
    Verdict::Drop(reason)
}

/// A LAN → WAN packet of a passthrough protocol: refused when its switch is off, handled
/// here for ESP, AH and IKE on port 500; `None` lets the NAPT engine take it (NAT-T, L2TP,
/// everything else).
pub(crate) fn outbound(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Option<Verdict> {
    let (proto, sport, dport) = flow_of(packet);
    let p = classify(proto, sport, dport)?;
    if !enabled(e, p) {
        return Some(switched_off(e, packet, p));
    }
    match (proto, sport, dport) {
        (50, ..) => Some(esp_out(e, now, packet)),
        (51, ..) => {
            icmp_reply::admin_prohibited(e, now, Side::Lan, packet);
            Some(Verdict::Drop(DropReason::AhRefused))
        }
        (17, 500, 500) => Some(ike_out(e, now, packet)),
        (47, ..) => Some(gre_out(e, packet)),
        _ => None,
    }
}

/// A TCP or UDP packet on a passthrough port, with its ports already read by the NAPT path:
/// refused when its switch is off; IKE on 500 ↔ 500 handled here; `None` for the NAPT engine.
#[inline]
pub(crate) fn transport(
    e: &mut Engine,
    now: Instant,
    packet: &mut [u8],
    side: Side,
    proto: u8,
    sport: u16,
    dport: u16,
) -> Option<Verdict> {
    let p = classify(proto, sport, dport)?;
    if !enabled(e, p) {
        return Some(if side == Side::Lan { switched_off(e, packet, p) } else { Verdict::Drop(p.disabled_reason()) });
    }
    if proto == 17 && sport == 500 && dport == 500 {
        return Some(match side {
            Side::Lan => ike_out(e, now, packet),
            Side::Wan => ike_in(e, now, packet),
        });
    }
    None
}

/// Reads an L2TP control message between `client` and `server` for tunnel events (nothing is
/// rewritten). Called by the NAPT path for L2TP mappings (LAN port 1701), whatever port the
/// server answers from.
pub(crate) fn l2tp_event(e: &mut Engine, packet: &[u8], client: u32, server: u32, public: u32, from_client: bool) {
    let ip = Ipv4Packet::new_unchecked(packet);
    if ip.is_fragment() || !e.config.passthrough.l2tp {
        return;
    }
    let Ok(udp) = UdpPacket::new_checked(ip.payload()) else { return };
    let bytes = usize::from(ip.total_len());
    if let Some(ev) = e.l2tp.message(client, server, public, from_client, udp.payload(), bytes) {
        e.queue_event(ev);
    }
}

/// A WAN → LAN packet of a passthrough protocol (see [`outbound`]).
pub(crate) fn inbound(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Option<Verdict> {
    let (proto, sport, dport) = flow_of(packet);
    let p = classify(proto, sport, dport)?;
    if !enabled(e, p) {
        return Some(Verdict::Drop(p.disabled_reason()));
    }
    match (proto, sport, dport) {
        (50, ..) => Some(esp_in(e, now, packet)),
        (51, ..) => Some(Verdict::Drop(DropReason::AhRefused)),
        (17, 500, 500) => Some(ike_in(e, now, packet)),
        (47, ..) => Some(gre_in(e, packet)),
        _ => None,
    }
}

/// The Call ID of an enhanced GRE packet (RFC 2637 §4.1), or why it is refused.
fn gre_call_id(packet: &[u8]) -> Result<u16, DropReason> {
    let ip = Ipv4Packet::new_unchecked(packet);
    if ip.frag_offset() != 0 {
        return Err(DropReason::FragmentDropped);
    }
    match GrePacket::new_checked(ip.payload()) {
        Ok(g) if g.version() == 1 => g.call_id().ok_or(DropReason::Malformed),
        // GRE version 0 (RFC 2784) has no Call ID to tell clients apart.
        Ok(_) => Err(DropReason::UnsupportedProtocol),
        Err(_) => Err(DropReason::Malformed),
    }
}

fn gre_out(e: &mut Engine, packet: &mut [u8]) -> Verdict {
    let server_cid = match gre_call_id(packet) {
        Ok(c) => c,
        Err(r) => return Verdict::Drop(r),
    };
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, len) = (ip.src(), ip.dst(), usize::from(ip.total_len()));
    let Some(ext) = e.pptp.gre_out(src, dst, server_cid, len) else {
        return Verdict::Drop(DropReason::GreUnknownCallId);
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_src(ext);
    ip.decrement_ttl();
    Verdict::Forward(Side::Wan)
}

fn gre_in(e: &mut Engine, packet: &mut [u8]) -> Verdict {
    let public_cid = match gre_call_id(packet) {
        Ok(c) => c,
        Err(r) => return Verdict::Drop(r),
    };
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, len) = (ip.src(), ip.dst(), usize::from(ip.total_len()));
    let Some((client, client_cid)) = e.pptp.gre_in(dst, src, public_cid, len) else {
        return Verdict::Drop(DropReason::GreUnknownCallId);
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    GrePacket::new_unchecked(ip.payload_mut()).set_call_id(client_cid);
    ip.set_dst(client);
    ip.decrement_ttl();
    Verdict::Forward(Side::Lan)
}

/// The PPTP control connection ALG on a TCP segment to or from port 1723: rewrites Call IDs
/// in the payload and fixes the TCP checksum. `Err` drops the segment.
#[allow(clippy::too_many_arguments)]
#[cold]
#[inline(never)]
pub(crate) fn pptp_control(
    e: &mut Engine,
    packet: &mut [u8],
    client: u32,
    client_port: u16,
    server: u32,
    ext_ip: u32,
    from_client: bool,
) -> Result<(), DropReason> {
    use natpass_wire::tcp::{TcpPacket, flags};
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (hl, total) = (ip.header_len(), usize::from(ip.total_len()));
    let Ok(tcp) = TcpPacket::new_checked(&packet[hl..total]) else { return Err(DropReason::Malformed) };
    let (thl, seq, fl, check) = (tcp.header_len(), tcp.seq(), tcp.flags(), tcp.checksum());
    let mut rewrites = Vec::new();
    let mut evs = Vec::new();
    let payload = &mut packet[hl + thl..total];
    let r = e.pptp.segment(client, client_port, server, ext_ip, from_client, seq, payload, &mut rewrites, &mut evs);
    if !rewrites.is_empty() {
        let mut c = check;
        for w in &rewrites {
            c = natpass_wire::checksum::update_bytes(c, thl + w.at, w.old, w.new);
        }
        TcpPacket::new_unchecked(&mut packet[hl..total]).set_checksum(c);
    }
    if r.is_ok() && fl & (flags::FIN | flags::RST) != 0 {
        e.pptp.end_connection(client, client_port, server, &mut evs);
    }
    for ev in evs {
        e.queue_event(ev);
    }
    r
}

fn ns(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn esp_out(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, len) = (ip.src(), ip.dst(), usize::from(ip.total_len()));
    // Later fragments carry no SPI: they follow the SA of the datagram's first fragment.
    let spi = if ip.frag_offset() == 0 {
        match EspPacket::new_checked(ip.payload()) {
            Ok(esp) => esp.spi(),
            Err(_) => return Verdict::Drop(DropReason::Malformed),
        }
    } else {
        return Verdict::Drop(DropReason::FragmentDropped);
    };
    let ext = e.table.ext_for(src);
    let pending = ns(e.config.timeouts.esp_pending);
    let (action, ev) = e.esp.outbound(now, pending, src, dst, spi, ext, len);
    if let Some(ev) = ev {
        e.queue_event(ev);
    }
    match action {
        esp_learning::EspAction::Rewrite(ext) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
            ip.set_src(ext);
            ip.decrement_ttl();
            Verdict::Forward(Side::Wan)
        }
        esp_learning::EspAction::Refuse { reason, icmp } => {
            if icmp {
                icmp_reply::admin_prohibited(e, now, Side::Lan, packet);
            }
            Verdict::Drop(reason)
        }
    }
}

fn esp_in(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, len) = (ip.src(), ip.dst(), usize::from(ip.total_len()));
    if ip.frag_offset() != 0 {
        return Verdict::Drop(DropReason::FragmentDropped);
    }
    let Ok(esp) = EspPacket::new_checked(ip.payload()) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let spi = esp.spi();
    let pending = ns(e.config.timeouts.esp_pending);
    let (action, ev) = e.esp.inbound(now, pending, dst, src, spi, len);
    if let Some(ev) = ev {
        e.queue_event(ev);
    }
    match action {
        esp_learning::EspAction::Rewrite(lan) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
            ip.set_dst(lan);
            ip.decrement_ttl();
            Verdict::Forward(Side::Lan)
        }
        esp_learning::EspAction::Refuse { reason, .. } => Verdict::Drop(reason),
    }
}

/// The SPIs of the IKE message in a UDP datagram, or `None` when it holds no valid header.
fn ike_spis(packet: &[u8]) -> Option<(u64, u64)> {
    let ip = Ipv4Packet::new_unchecked(packet);
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let ike = IkePacket::new_checked(udp.payload()).ok()?;
    Some((ike.initiator_spi(), ike.responder_spi()))
}

fn ike_out(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    let Some((spi_i, spi_r)) = ike_spis(packet) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, hl, total) = (ip.src(), ip.dst(), ip.header_len(), usize::from(ip.total_len()));
    let ext = e.table.ext_for(src);
    if let Some(ev) = e.ike.outbound(now, src, dst, ext, spi_i, spi_r, total) {
        e.queue_event(ev);
    }
    // Port 500 stays; only the pseudo-header address changes in the UDP checksum.
    UdpPacket::new_unchecked(&mut packet[hl..total]).set_src_port(500, Some((src, ext)));
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_src(ext);
    ip.decrement_ttl();
    Verdict::Forward(Side::Wan)
}

fn ike_in(e: &mut Engine, now: Instant, packet: &mut [u8]) -> Verdict {
    let Some((spi_i, spi_r)) = ike_spis(packet) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (src, dst, hl, total) = (ip.src(), ip.dst(), ip.header_len(), usize::from(ip.total_len()));
    let lan = match e.ike.inbound(now, dst, src, spi_i, spi_r, total) {
        Ok(l) => l,
        Err(reason) => return Verdict::Drop(reason),
    };
    UdpPacket::new_unchecked(&mut packet[hl..total]).set_dst_port(500, Some((dst, lan)));
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_dst(lan);
    ip.decrement_ttl();
    Verdict::Forward(Side::Lan)
}
