//! Pings to the router itself: an ICMP Echo Request to one of natpass's addresses gets an
//! Echo Reply (RFC 792; RFC 1122 §3.2.2.6: "MUST implement an ICMP Echo server"), and so does
//! an ICMPv6 Echo Request (RFC 4443 §4.1, §4.2: "every node MUST implement an ICMPv6 Echo
//! responder function").

use std::net::Ipv4Addr;

use natpass_wire::IpProtocol;
use natpass_wire::icmp::{self, IcmpPacket};
use natpass_wire::icmpv6::{self, Icmpv6Packet};
use natpass_wire::ipv4::{self, Ipv4Packet, Ipv4Repr};

/// The TTL of the replies (RFC 1700's default).
pub const REPLY_TTL: u8 = 64;

/// The destination of `ip` when it is an unfragmented ICMP Echo Request (not necessarily to
/// us: the caller checks that). Cheap: the checksum is left to [`echo_reply`].
pub fn echo_request_to(ip: &[u8]) -> Option<Ipv4Addr> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.protocol() != IpProtocol::ICMP || p.is_fragment() {
        return None;
    }
    let m = IcmpPacket::new_checked(p.payload()).ok()?;
    (m.msg_type() == icmp::kind::ECHO_REQUEST && m.code() == 0).then(|| p.dst())
}

/// The Echo Reply to the Echo Request `ip`: from its destination back to its source, with
/// the request's identifier, sequence number and data (RFC 792); `None` when `ip` is not an
/// Echo Request or its checksum does not verify. The reply has a header of its own without
/// options: Record Route and Timestamp options are not echoed (a SHOULD of RFC 1122
/// §3.2.2.6).
pub fn echo_reply(ip: &[u8]) -> Option<Vec<u8>> {
    echo_request_to(ip)?;
    let p = Ipv4Packet::new_checked(ip).ok()?;
    let request = IcmpPacket::new_checked(p.payload()).ok().filter(IcmpPacket::verify_checksum)?;
    let len = ipv4::HEADER_LEN + p.payload().len();
    let mut out = vec![0u8; len];
    let total_len = u16::try_from(len).ok()?;
    Ipv4Repr { src: p.dst(), dst: p.src(), protocol: IpProtocol::ICMP, total_len, ident: p.ident(), ttl: REPLY_TTL }
        .emit(&mut out);
    emit_echo(&mut out[ipv4::HEADER_LEN..], icmp::kind::ECHO_REPLY, request.ident(), request.seq(), request.data());
    Some(out)
}

/// The ICMPv6 Echo Reply to the Echo Request `ip` (an IPv6 packet whose ICMPv6 message
/// follows the fixed header): from its destination back to its source with the request's
/// identifier, sequence number and data (RFC 4443 §4.2); `None` when it is not an intact
/// Echo Request. The caller checks that the destination is the router's (a unicast address).
pub fn echo6_reply(ip: &[u8]) -> Option<Vec<u8>> {
    let (p, t) = crate::nd::icmpv6_message(ip)?;
    let body = p.payload();
    let m = Icmpv6Packet::new_checked(body).ok()?;
    let len = u16::try_from(body.len()).ok()?;
    if t != icmpv6::kind::ECHO_REQUEST
        || m.code() != 0
        || !m.verify_checksum(p.pseudo_header_sum(IpProtocol::ICMPV6, u32::from(len)))
    {
        return None;
    }
    Some(icmpv6::packet(p.dst(), p.src(), REPLY_TTL, len, |b| {
        b.copy_from_slice(body);
        b[0] = icmpv6::kind::ECHO_REPLY;
    }))
}

/// Writes an echo message (RFC 792: type, code 0, checksum, identifier, sequence number, data)
/// into `buf`, which is exactly `icmp::HEADER_LEN + data.len()` long, and fills its checksum.
fn emit_echo(buf: &mut [u8], kind: u8, ident: u16, seq: u16, data: &[u8]) {
    let mut m = IcmpPacket::new_unchecked(buf);
    m.set_msg_type(kind);
    m.set_code(0);
    m.set_ident(ident);
    m.set_seq(seq);
    m.data_mut().copy_from_slice(data);
    m.fill_checksum();
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    /// An Echo Request from the client to the router with `data`.
    pub(crate) fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
        let len = ipv4::HEADER_LEN + icmp::HEADER_LEN + data.len();
        let mut p = vec![0u8; len];
        Ipv4Repr { src, dst, protocol: IpProtocol::ICMP, total_len: len as u16, ident: 1, ttl: 63 }.emit(&mut p);
        emit_echo(&mut p[ipv4::HEADER_LEN..], icmp::kind::ECHO_REQUEST, 0x1234, 1, data);
        p
    }

    #[test]
    fn the_reply_mirrors_the_request() {
        let req = echo_request(CLIENT, ROUTER, b"abcdefgh");
        assert_eq!(echo_request_to(&req), Some(ROUTER));
        let rep = echo_reply(&req).unwrap();
        let ip = Ipv4Packet::new_checked(&rep[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src(), ip.dst(), ip.ttl()), (ROUTER, CLIENT, REPLY_TTL));
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!(
            (m.msg_type(), m.code(), m.ident(), m.seq(), m.data()),
            (icmp::kind::ECHO_REPLY, 0, 0x1234, 1, &b"abcdefgh"[..])
        );
    }

    /// An ICMPv6 Echo Request from `src` to `dst` with `data`.
    pub(crate) fn echo6_request(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, data: &[u8]) -> Vec<u8> {
        icmpv6::packet(src, dst, 64, (8 + data.len()) as u16, |b| {
            b[0] = icmpv6::kind::ECHO_REQUEST;
            b[4..8].copy_from_slice(&[0x12, 0x34, 0, 1]);
            b[8..].copy_from_slice(data);
        })
    }

    #[test]
    fn rfc4443_4_2_the_echo6_reply_mirrors_the_request() {
        let (client, router) = ("2001:db8:1::10".parse().unwrap(), "2001:db8:1::1".parse().unwrap());
        let req = echo6_request(client, router, b"abc");
        let rep = echo6_reply(&req).unwrap();
        let ip = natpass_wire::ipv6::Ipv6Packet::new_checked(&rep[..]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (router, client));
        let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(ip.pseudo_header_sum(IpProtocol::ICMPV6, 11)));
        assert_eq!((m.msg_type(), m.ident(), m.seq(), m.data()), (icmpv6::kind::ECHO_REPLY, 0x1234, 1, &b"abc"[..]));
        let mut bad = req.clone();
        bad[50] ^= 1;
        assert_eq!(echo6_reply(&bad), None);
        assert_eq!(echo6_reply(&rep), None, "a reply is not answered");
    }

    #[test]
    fn only_intact_unfragmented_requests_are_answered() {
        let mut bad = echo_request(CLIENT, ROUTER, b"x");
        bad[24] ^= 1; // the identifier, so the ICMP checksum no longer verifies
        assert_eq!(echo_reply(&bad), None);
        let mut reply = echo_request(CLIENT, ROUTER, b"x");
        emit_echo(&mut reply[ipv4::HEADER_LEN..], icmp::kind::ECHO_REPLY, 1, 1, b"x");
        assert_eq!(echo_reply(&reply), None);
        assert_eq!(echo_reply(&reply[..25]), None);
    }
}
