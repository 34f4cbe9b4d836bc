//! ICMP error translation (RFC 5508 §4.2, REQ-3 to REQ-6; RFC 5382 REQ-9/10): the outer
//! header is translated like any packet, and the embedded datagram, which is the packet the
//! NAT sent or received, is translated back with its IP and transport checksums. An error
//! whose embedded datagram matches no session is dropped silently (REQ-4). ICMP errors never
//! refresh nor end a session (RFC 4787 REQ-12, RFC 7857 §2.2).

use natpass_wire::checksum;
use natpass_wire::icmp::{self, IcmpPacket};
use natpass_wire::ipv4::Ipv4Packet;

use crate::verdict::{DropReason, Side, Verdict};
use crate::{Engine, Proto};

/// The embedded datagram of an ICMP error: its header must be whole and followed by at least
/// 8 bytes of transport header (RFC 792). Its total length may exceed what is embedded.
struct Embedded {
    /// Offset of the embedded IP header in the outer packet.
    at: usize,
    hl: usize,
    proto: Proto,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
}

fn embedded(packet: &[u8]) -> Result<Embedded, DropReason> {
    let ip = Ipv4Packet::new_unchecked(packet);
    let total = usize::from(ip.total_len());
    let at = ip.header_len() + icmp::HEADER_LEN;
    let inner = packet.get(at..total).ok_or(DropReason::Malformed)?;
    if inner.len() < 20 || inner[0] >> 4 != 4 {
        return Err(DropReason::Malformed);
    }
    let hl = usize::from(inner[0] & 0x0f) * 4;
    if hl < 20 || inner.len() < hl + 8 {
        return Err(DropReason::Malformed);
    }
    let v = Ipv4Packet::new_unchecked(inner);
    if v.frag_offset() != 0 {
        // A non-first fragment carries no transport header to match.
        return Err(DropReason::IcmpErrorNoSession);
    }
    let proto = Proto::from_number(v.protocol()).ok_or(DropReason::IcmpErrorNoSession)?;
    let l4 = &inner[hl..];
    let (sport, dport) = match proto {
        Proto::Icmp => {
            // Only an embedded query message has an identifier to match.
            if icmp::is_error_type(l4[0]) {
                return Err(DropReason::IcmpErrorNoSession);
            }
            let id = u16::from_be_bytes([l4[4], l4[5]]);
            (id, id)
        }
        _ => (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]])),
    };
    Ok(Embedded { at, hl, proto, src: v.src(), dst: v.dst(), sport, dport })
}

fn verify_icmp(packet: &[u8]) -> Result<(), DropReason> {
    let ip = Ipv4Packet::new_unchecked(packet);
    let total = usize::from(ip.total_len());
    let m = IcmpPacket::new_unchecked(&packet[ip.header_len()..total]);
    if m.verify_checksum() { Ok(()) } else { Err(DropReason::BadIcmpChecksum) }
}

/// Rewrites the embedded datagram's address at `addr_off` (12 = source, 16 = destination) and
/// port (0 = source, 2 = destination; ICMP: identifier), fixing its checksums where present.
fn rewrite_embedded(packet: &mut [u8], emb: &Embedded, addr_off: usize, new_addr: u32, port_off: usize, new_port: u16) {
    let ip_at = emb.at;
    let l4_at = emb.at + emb.hl;
    let inner_end = {
        let ip = Ipv4Packet::new_unchecked(&*packet);
        usize::from(ip.total_len())
    };
    let old_addr = u32::from_be_bytes([
        packet[ip_at + addr_off],
        packet[ip_at + addr_off + 1],
        packet[ip_at + addr_off + 2],
        packet[ip_at + addr_off + 3],
    ]);
    // The embedded IP header checksum.
    let c = u16::from_be_bytes([packet[ip_at + 10], packet[ip_at + 11]]);
    let c = checksum::update_u32(c, old_addr, new_addr);
    packet[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
    packet[ip_at + addr_off..ip_at + addr_off + 4].copy_from_slice(&new_addr.to_be_bytes());
    let avail = inner_end - l4_at;
    match emb.proto {
        Proto::Icmp => {
            let old = u16::from_be_bytes([packet[l4_at + 4], packet[l4_at + 5]]);
            let c = u16::from_be_bytes([packet[l4_at + 2], packet[l4_at + 3]]);
            let c = checksum::update_u16(c, old, new_port);
            packet[l4_at + 2..l4_at + 4].copy_from_slice(&c.to_be_bytes());
            packet[l4_at + 4..l4_at + 6].copy_from_slice(&new_port.to_be_bytes());
        }
        Proto::Udp | Proto::Tcp => {
            let old = u16::from_be_bytes([packet[l4_at + port_off], packet[l4_at + port_off + 1]]);
            packet[l4_at + port_off..l4_at + port_off + 2].copy_from_slice(&new_port.to_be_bytes());
            let ck = if emb.proto == Proto::Udp { 6 } else { 16 };
            if avail >= ck + 2 {
                let c = u16::from_be_bytes([packet[l4_at + ck], packet[l4_at + ck + 1]]);
                // A zero UDP checksum means none: it stays zero.
                if !(emb.proto == Proto::Udp && c == 0) {
                    let c = checksum::update_addr_port(c, old_addr, new_addr, old, new_port);
                    packet[l4_at + ck..l4_at + ck + 2].copy_from_slice(&c.to_be_bytes());
                }
            }
        }
    }
}

fn refill_icmp_checksum(packet: &mut [u8]) {
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    let hl = ip.header_len();
    let mut m = IcmpPacket::new_unchecked(&mut ip.payload_mut()[..]);
    let _ = hl;
    m.fill_checksum();
}

/// An ICMP error from the WAN about a passthrough packet natpass sent out (ESP by SPI, GRE by
/// the server's Call ID, IKE on port 500 by its SPIs): back to the client. `None` when the
/// embedded packet is not passthrough traffic.
fn passthrough_inbound(e: &mut Engine, packet: &mut [u8]) -> Option<Verdict> {
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let total = usize::from(ip.total_len());
    let at = ip.header_len() + icmp::HEADER_LEN;
    let inner = packet.get(at..total)?;
    if inner.len() < 28 || inner[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    let l4 = inner.get(ihl..ihl + 8)?;
    let v = Ipv4Packet::new_unchecked(inner);
    let (ext, server, proto) = (v.src(), v.dst(), v.protocol());
    let lan = match proto {
        50 => e.esp.lan_for_outbound(ext, server, u32::from_be_bytes([l4[0], l4[1], l4[2], l4[3]])),
        47 => e.pptp.lan_for_outbound(ext, server, u16::from_be_bytes([l4[6], l4[7]])),
        17 if l4[0..4] == [0x01, 0xf4, 0x01, 0xf4] => {
            // UDP 500 → 500: the SPIs when the router embedded enough, else the only client.
            let ike = natpass_wire::ike::IkePacket::new_checked(inner.get(ihl + 8..)?.to_vec()).ok();
            e.ike.client_for(ext, server, ike.map(|k| (k.initiator_spi(), k.responder_spi())))
        }
        _ => return None,
    };
    let Some(lan) = lan else { return Some(Verdict::Drop(DropReason::IcmpErrorNoSession)) };
    // The embedded source back to the client; for UDP, its checksum's pseudo-header too.
    let inner = &mut packet[at..total];
    let c = u16::from_be_bytes([inner[10], inner[11]]);
    inner[10..12].copy_from_slice(&checksum::update_u32(c, ext, lan).to_be_bytes());
    inner[12..16].copy_from_slice(&lan.to_be_bytes());
    if proto == 17 {
        let c = u16::from_be_bytes([inner[ihl + 6], inner[ihl + 7]]);
        if c != 0 {
            inner[ihl + 6..ihl + 8].copy_from_slice(&checksum::update_u32(c, ext, lan).to_be_bytes());
        }
    }
    refill_icmp_checksum(packet);
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_dst(lan);
    ip.decrement_ttl();
    Some(Verdict::Forward(Side::Lan))
}

/// An ICMP error from the WAN about a packet the NAT sent out: back to the LAN host.
pub(crate) fn inbound(e: &mut Engine, packet: &mut [u8]) -> Verdict {
    if let Err(r) = verify_icmp(packet) {
        return Verdict::Drop(r);
    }
    if let Some(v) = passthrough_inbound(e, packet) {
        return v;
    }
    let emb = match embedded(packet) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let outer_dst = Ipv4Packet::new_unchecked(&*packet).dst();
    // The embedded packet went out from our public endpoint to the remote one.
    let rem_port = if emb.proto == Proto::Icmp { 0 } else { emb.dport };
    let Some(idx) = e.table.find_in(emb.proto, emb.src, emb.sport, emb.dst, rem_port) else {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    };
    let s = &e.table.sessions[idx as usize];
    let (lan_ip, lan_port) = (s.lan_ip, s.lan_port);
    if outer_dst != e.table.ext_of(idx).0 {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    }
    rewrite_embedded(packet, &emb, 12, lan_ip, 0, lan_port);
    refill_icmp_checksum(packet);
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_dst(lan_ip);
    ip.decrement_ttl();
    Verdict::Forward(Side::Lan)
}

/// An ICMP error from a LAN host about a packet the NAT delivered to it: out to the remote.
pub(crate) fn outbound(e: &mut Engine, packet: &mut [u8]) -> Verdict {
    if let Err(r) = verify_icmp(packet) {
        return Verdict::Drop(r);
    }
    let emb = match embedded(packet) {
        Ok(x) => x,
        Err(r) => return Verdict::Drop(r),
    };
    let outer_src = Ipv4Packet::new_unchecked(&*packet).src();
    // The embedded packet came from the remote endpoint to the LAN endpoint.
    let (lan_port, rem_port) = match emb.proto {
        Proto::Icmp => (emb.sport, 0),
        _ => (emb.dport, emb.sport),
    };
    let Some(idx) = e.table.find_out(emb.proto, emb.dst, lan_port, emb.src, rem_port) else {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    };
    let (ext_ip, ext_port) = e.table.ext_of(idx);
    let s = &e.table.sessions[idx as usize];
    if outer_src != s.lan_ip {
        return Verdict::Drop(DropReason::IcmpErrorNoSession);
    }
    rewrite_embedded(packet, &emb, 16, ext_ip, 2, ext_port);
    refill_icmp_checksum(packet);
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    ip.set_src(ext_ip);
    ip.decrement_ttl();
    Verdict::Forward(Side::Wan)
}
