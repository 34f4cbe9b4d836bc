//! ICMP errors the router sends itself: Time Exceeded (RFC 792, RFC 1812 §5.3.1),
//! Fragmentation Needed with the next-hop MTU (RFC 1191 §4, RFC 4787 REQ-13) and
//! Communication Administratively Prohibited when a session cannot be opened (RFC 5508 REQ-8).
//!
//! Never about an ICMP error, a non-first fragment, a broadcast or multicast, or a martian
//! source (RFC 1812 §4.3.2.7), and rate limited (RFC 1812 §4.3.2.8).

use natpass_wire::IpProtocol;
use natpass_wire::icmp::{self, IcmpPacket};
use natpass_wire::ipv4::{self, Ipv4Packet, Ipv4Repr};

use super::is_martian_src;
use crate::output::Cx;
use crate::verdict::Side;

/// The largest ICMP error the router builds (RFC 1812 §4.3.2.3).
const MAX_ERROR_LEN: usize = 576;

/// Time to live exceeded in transit, back to the sender on `side`.
pub(crate) fn time_exceeded(cx: &mut Cx<'_>, side: Side, orig: &[u8]) {
    send(cx, side, orig, icmp::kind::TIME_EXCEEDED, icmp::code::TTL_EXCEEDED, 0);
}

/// Fragmentation needed and DF set, with the MTU the packet must fit.
pub(crate) fn frag_needed(cx: &mut Cx<'_>, side: Side, orig: &[u8], mtu: u16) {
    send(cx, side, orig, icmp::kind::DEST_UNREACHABLE, icmp::code::FRAG_NEEDED, mtu);
}

/// Communication administratively prohibited: no session could be opened for this packet.
pub(crate) fn admin_prohibited(cx: &mut Cx<'_>, side: Side, orig: &[u8]) {
    send(cx, side, orig, icmp::kind::DEST_UNREACHABLE, icmp::code::ADMIN_PROHIBITED, 0);
}

fn may_answer(orig: &[u8]) -> bool {
    let ip = Ipv4Packet::new_unchecked(orig);
    if ip.frag_offset() != 0 {
        return false;
    }
    let (src, dst) = (ip.src(), ip.dst());
    if is_martian_src(src) || src.is_broadcast() || dst.is_broadcast() || dst.is_multicast() {
        return false;
    }
    if ip.protocol() == IpProtocol::ICMP {
        // An ICMP error (or something too short to tell) never gets an error back.
        return ip.payload().first().is_some_and(|&t| !icmp::is_error_type(t));
    }
    true
}

fn send(cx: &mut Cx<'_>, side: Side, orig: &[u8], kind: u8, code: u8, mtu: u16) {
    if !may_answer(orig) || !cx.out.take_icmp_token(cx.now, cx.config.icmp_errors_per_sec) {
        return;
    }
    let ip = Ipv4Packet::new_unchecked(orig);
    let src = match side {
        Side::Lan => cx.config.lan_addr,
        Side::Wan => ip.dst(),
    };
    let quoted = usize::from(ip.total_len()).min(MAX_ERROR_LEN - ipv4::HEADER_LEN - icmp::HEADER_LEN);
    let total = ipv4::HEADER_LEN + icmp::HEADER_LEN + quoted;
    let mut out = vec![0u8; total];
    let ident = cx.out.next_ip_ident();
    Ipv4Repr { src, dst: ip.src(), protocol: IpProtocol::ICMP, total_len: total as u16, ident, ttl: 64 }.emit(&mut out);
    let mut m = IcmpPacket::new_unchecked(&mut out[ipv4::HEADER_LEN..]);
    m.set_msg_type(kind);
    m.set_code(code);
    m.set_next_hop_mtu(mtu);
    m.data_mut().copy_from_slice(&orig[..quoted]);
    m.fill_checksum();
    cx.out.stats.icmp_errors_sent += 1;
    cx.out.transmit(side, out);
}
