//! ICMP errors the router sends itself: Time Exceeded (RFC 792, RFC 1812 §5.3.1),
//! Fragmentation Needed with the next-hop MTU (RFC 1191 §4, RFC 4787 REQ-13) and
//! Communication Administratively Prohibited when a session cannot be opened (RFC 5508 REQ-8).
//!
//! Never about an ICMP error, a non-first fragment, a broadcast or multicast, or a martian
//! source (RFC 1812 §4.3.2.7), and rate limited (RFC 1812 §4.3.2.8).

use natpass_wire::icmp::{self, IcmpPacket};
use natpass_wire::ipv4::{self, Ipv4Packet};

use super::is_martian_src;
use crate::Engine;
use crate::time::Instant;
use crate::verdict::Side;

/// The largest ICMP error the router builds (RFC 1812 §4.3.2.3).
const MAX_ERROR_LEN: usize = 576;

/// Time to live exceeded in transit, back to the sender on `side`.
pub(crate) fn time_exceeded(e: &mut Engine, now: Instant, side: Side, orig: &[u8]) {
    send(e, now, side, orig, icmp::kind::TIME_EXCEEDED, icmp::code::TTL_EXCEEDED, 0);
}

/// Fragmentation needed and DF set, with the MTU the packet must fit.
pub(crate) fn frag_needed(e: &mut Engine, now: Instant, side: Side, orig: &[u8], mtu: u16) {
    send(e, now, side, orig, icmp::kind::DEST_UNREACHABLE, icmp::code::FRAG_NEEDED, mtu);
}

/// Communication administratively prohibited: no session could be opened for this packet.
pub(crate) fn admin_prohibited(e: &mut Engine, now: Instant, side: Side, orig: &[u8]) {
    send(e, now, side, orig, icmp::kind::DEST_UNREACHABLE, icmp::code::ADMIN_PROHIBITED, 0);
}

fn may_answer(orig: &[u8]) -> bool {
    let ip = Ipv4Packet::new_unchecked(orig);
    if ip.frag_offset() != 0 {
        return false;
    }
    let (src, dst) = (ip.src(), ip.dst());
    if is_martian_src(src) || src == 0xffff_ffff || dst == 0xffff_ffff || dst >> 28 == 0xe {
        return false;
    }
    if ip.protocol() == 1 {
        // An ICMP error (or something too short to tell) never gets an error back.
        return ip.payload().first().is_some_and(|&t| !icmp::is_error_type(t));
    }
    true
}

fn send(e: &mut Engine, now: Instant, side: Side, orig: &[u8], kind: u8, code: u8, mtu: u16) {
    if !may_answer(orig) || !e.take_icmp_token(now) {
        return;
    }
    let ip = Ipv4Packet::new_unchecked(orig);
    let from = match side {
        Side::Lan => u32::from(e.config.lan_addr),
        Side::Wan => ip.dst(),
    };
    let to = ip.src();
    let embed = usize::from(ip.total_len()).min(MAX_ERROR_LEN - ipv4::HEADER_LEN - icmp::HEADER_LEN);
    let total = ipv4::HEADER_LEN + icmp::HEADER_LEN + embed;
    let mut out = vec![0u8; total];
    let ident = e.next_ip_ident();
    ipv4::emit_header(&mut out, total as u16, ident, 64, 1, from, to);
    out[20] = kind;
    out[21] = code;
    out[26..28].copy_from_slice(&mtu.to_be_bytes());
    out[28..].copy_from_slice(&orig[..embed]);
    IcmpPacket::new_unchecked(&mut out[20..]).fill_checksum();
    e.stats.icmp_errors_sent += 1;
    e.queue_transmit(side, out);
}
