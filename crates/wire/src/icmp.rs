//! ICMPv4 view (RFC 792): echo query messages (identifier, sequence) and error messages with
//! their embedded datagram (RFC 792, RFC 1812 §4.3.2.3), including the next-hop MTU of
//! Fragmentation-Needed (RFC 1191 §4).

use std::net::Ipv4Addr;

use crate::checksum;
use crate::ip::{AddrChange, IpProtocol};
use crate::ipv4::{HEADER_LEN as IPV4_HEADER_LEN, Ipv4Packet};
use crate::{Error, Result, be16, put16};

/// The ICMP header length (type, code, checksum, rest-of-header).
pub const HEADER_LEN: usize = 8;

/// ICMP message types natpass handles.
pub mod kind {
    /// Echo Reply (RFC 792).
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable (RFC 792).
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source Quench (RFC 792, deprecated by RFC 6633).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect (RFC 792).
    pub const REDIRECT: u8 = 5;
    /// Echo Request (RFC 792).
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded (RFC 792).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem (RFC 792).
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// Timestamp (RFC 792).
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp Reply (RFC 792).
    pub const TIMESTAMP_REPLY: u8 = 14;
}

/// Destination Unreachable codes natpass sends.
pub mod code {
    /// Fragmentation needed and DF set (RFC 792, RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited (RFC 1812 §5.2.7.1; RFC 5508 REQ-8).
    pub const ADMIN_PROHIBITED: u8 = 13;
    /// Time to live exceeded in transit (type 11).
    pub const TTL_EXCEEDED: u8 = 0;
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking that it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The identifier of a query message (echo, timestamp).
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// The sequence number of a query message.
    pub fn seq(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// The next-hop MTU of a Fragmentation-Needed message (RFC 1191 §4).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// True for the error messages that embed the offending datagram (RFC 1812 §4.3.2.3).
    pub fn is_error(&self) -> bool {
        is_error_type(self.msg_type())
    }

    /// True for query messages that carry an identifier (echo and timestamp, both ways).
    pub fn is_query(&self) -> bool {
        matches!(self.msg_type(), kind::ECHO_REQUEST | kind::ECHO_REPLY | kind::TIMESTAMP | kind::TIMESTAMP_REPLY)
    }

    /// The data after the 8-byte header: the echo data, or the embedded datagram of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Verifies the checksum over the whole message.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(0, self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the query identifier and updates the checksum.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        let old = self.ident();
        let c = checksum::update_u16(self.checksum(), old, ident);
        let b = self.buffer.as_mut();
        put16(b, 4, ident);
        put16(b, 2, c);
    }

    /// Sets the sequence number of a query message (the checksum is not updated).
    pub fn set_seq(&mut self, seq: u16) {
        put16(self.buffer.as_mut(), 6, seq);
    }

    /// Sets the message type (the checksum is not updated: see [`IcmpPacket::fill_checksum`]).
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[0] = value;
    }

    /// Sets the code (the checksum is not updated).
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[1] = value;
    }

    /// Sets the next-hop MTU of a Fragmentation-Needed message, and zeroes the unused half
    /// before it (RFC 1191 §4; the checksum is not updated).
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        let b = self.buffer.as_mut();
        put16(b, 4, 0);
        put16(b, 6, mtu);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), 2, value);
    }

    /// Recomputes the checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// The data after the header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// True for ICMP types that are error messages (they embed an IP header and 8+ bytes).
pub fn is_error_type(t: u8) -> bool {
    matches!(
        t,
        kind::DEST_UNREACHABLE | kind::SOURCE_QUENCH | kind::REDIRECT | kind::TIME_EXCEEDED | kind::PARAMETER_PROBLEM
    )
}

/// How many bytes past its IP header an ICMP error quotes at the least (RFC 792): enough for
/// the ports of TCP and UDP, an ICMP query's identifier, ESP's SPI and GRE's Call ID.
pub const QUOTED_TRANSPORT_MIN: usize = 8;

/// The datagram an ICMP error quotes (RFC 792, RFC 1812 §4.3.2.3, RFC 5508 §4.2): its IPv4
/// header, whole, then at least [`QUOTED_TRANSPORT_MIN`] bytes of what followed it. Its total
/// length field may exceed what is quoted. The buffer is the error's data (see
/// [`IcmpPacket::data`]).
///
/// Setters keep every checksum the quote holds valid: the quoted IP header's, and the quoted
/// TCP or UDP checksum when it is within the quote (its pseudo-header covers the addresses).
#[derive(Debug, Clone)]
pub struct QuotedDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the quoted transport checksum lies, for the protocols whose checksum covers the
/// pseudo-header and ports.
fn transport_checksum_at(protocol: IpProtocol) -> Option<usize> {
    match protocol {
        IpProtocol::UDP => Some(6),
        IpProtocol::TCP => Some(16),
        _ => None,
    }
}

impl<T: AsRef<[u8]>> QuotedDatagram<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps an ICMP error's data after checking it holds an IPv4 header (version 4, IHL ≥ 5)
    /// and [`QUOTED_TRANSPORT_MIN`] bytes after it.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < IPV4_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < IPV4_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if b.len() < hl + QUOTED_TRANSPORT_MIN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    fn ip(&self) -> Ipv4Packet<&[u8]> {
        Ipv4Packet::new_unchecked(self.buffer.as_ref())
    }

    /// The quoted IP header's length.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.ip().header_len()
    }

    /// The quoted datagram's protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.ip().protocol()
    }

    /// The quoted datagram's source.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        self.ip().src()
    }

    /// The quoted datagram's destination.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        self.ip().dst()
    }

    /// The quoted datagram's fragment offset in bytes: a later fragment quotes no transport
    /// header.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.ip().frag_offset()
    }

    /// What is quoted after the IP header: at least [`QUOTED_TRANSPORT_MIN`] bytes.
    #[inline]
    pub fn transport(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// TCP or UDP: the source port (the first two bytes of the transport header).
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.transport(), 0)
    }

    /// TCP or UDP: the destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.transport(), 2)
    }

    /// A quoted ICMP message: its type.
    #[inline]
    pub fn icmp_type(&self) -> u8 {
        self.transport()[0]
    }

    /// A quoted ICMP query: its identifier.
    #[inline]
    pub fn icmp_ident(&self) -> u16 {
        be16(self.transport(), 4)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> QuotedDatagram<T> {
    /// Sets the quoted source address: the quoted IP checksum, and the quoted TCP/UDP
    /// checksum's pseudo-header, follow.
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        let old = self.src();
        Ipv4Packet::new_unchecked(self.buffer.as_mut()).set_src(addr);
        self.pseudo_addr(AddrChange::new(old, addr));
    }

    /// Sets the quoted destination address (see [`QuotedDatagram::set_src`]).
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        let old = self.dst();
        Ipv4Packet::new_unchecked(self.buffer.as_mut()).set_dst(addr);
        self.pseudo_addr(AddrChange::new(old, addr));
    }

    /// TCP or UDP: sets the quoted source port, with its checksum when quoted.
    pub fn set_src_port(&mut self, port: u16) {
        self.set_transport_u16(0, port);
    }

    /// TCP or UDP: sets the quoted destination port, with its checksum when quoted.
    pub fn set_dst_port(&mut self, port: u16) {
        self.set_transport_u16(2, port);
    }

    /// A quoted ICMP query: sets its identifier and updates its checksum.
    pub fn set_icmp_ident(&mut self, ident: u16) {
        let hl = self.header_len();
        let t = &mut self.buffer.as_mut()[hl..];
        let old = be16(t, 4);
        let c = checksum::update_u16(be16(t, 2), old, ident);
        put16(t, 4, ident);
        put16(t, 2, c);
    }

    fn set_transport_u16(&mut self, at: usize, value: u16) {
        let (hl, protocol) = (self.header_len(), self.protocol());
        let t = &mut self.buffer.as_mut()[hl..];
        let old = be16(t, at);
        put16(t, at, value);
        self.update_transport_checksum(protocol, |c| checksum::update_u16(c, old, value));
    }

    fn pseudo_addr(&mut self, change: AddrChange) {
        let protocol = self.protocol();
        self.update_transport_checksum(protocol, |c| checksum::update_addr(c, change.old, change.new));
    }

    /// Applies `update` to the quoted TCP/UDP checksum when the quote holds it; a zero UDP
    /// checksum means none and stays zero (RFC 768), a computed zero is sent as 0xFFFF.
    fn update_transport_checksum(&mut self, protocol: IpProtocol, update: impl Fn(u16) -> u16) {
        let Some(at) = transport_checksum_at(protocol) else { return };
        let hl = self.header_len();
        let t = &mut self.buffer.as_mut()[hl..];
        if t.len() < at + 2 {
            return;
        }
        let c = be16(t, at);
        let new = match protocol {
            IpProtocol::UDP if c == 0 => return,
            IpProtocol::UDP => match update(c) {
                0 => 0xffff,
                n => n,
            },
            _ => update(c),
        };
        put16(t, at, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_echo() {
        let mut m = [0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g'];
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.is_query());
        p.set_ident(0x9999);
        assert!(p.verify_checksum());
        assert_eq!(p.ident(), 0x9999);
        assert_eq!(p.seq(), 1);
        assert_eq!(p.data(), b"ping");
    }

    #[test]
    fn test_error_kinds() {
        let m = [3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        let p = IcmpPacket::new_checked(&m[..]).unwrap();
        assert!(p.is_error());
        assert_eq!(p.next_hop_mtu(), 1500);
        assert!(IcmpPacket::new_checked(&m[..7]).is_err());
    }

    /// A quoted UDP datagram 10.0.0.1:5000 → 192.0.2.9:53 with a valid checksum.
    fn quoted_udp() -> Vec<u8> {
        let mut q = vec![0u8; 20 + 8];
        crate::ipv4::Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(192, 0, 2, 9),
            protocol: IpProtocol::UDP,
            total_len: 28,
            ident: 1,
            ttl: 64,
        }
        .emit(&mut q);
        q[20..28].copy_from_slice(&[0x13, 0x88, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        let ps = checksum::pseudo_header_sum([10, 0, 0, 1], [192, 0, 2, 9], 17, 8);
        crate::udp::UdpPacket::new_unchecked(&mut q[20..]).fill_checksum(ps);
        q
    }

    #[test]
    fn test_quoted_rewrite_keeps_checksums() {
        let mut q = quoted_udp();
        let mut v = QuotedDatagram::new_checked(&mut q[..]).unwrap();
        assert_eq!((v.src_port(), v.dst_port()), (5000, 53));
        v.set_src(Ipv4Addr::new(203, 0, 113, 1));
        v.set_src_port(40000);
        assert_eq!(v.src(), Ipv4Addr::new(203, 0, 113, 1));
        let ip = Ipv4Packet::new_checked(&q[..]).unwrap();
        assert!(ip.verify_checksum());
        let ps = checksum::pseudo_header_sum([203, 0, 113, 1], [192, 0, 2, 9], 17, 8);
        assert!(crate::udp::UdpPacket::new_unchecked(&q[20..]).verify_checksum(ps));
    }

    #[test]
    fn test_quoted_rejects_short_quotes() {
        let q = quoted_udp();
        assert_eq!(QuotedDatagram::new_checked(&q[..27]).unwrap_err(), Error::Truncated);
        let mut bad = q.clone();
        bad[0] = 0x65;
        assert_eq!(QuotedDatagram::new_checked(&bad[..]).unwrap_err(), Error::BadVersion);
        bad[0] = 0x44;
        assert_eq!(QuotedDatagram::new_checked(&bad[..]).unwrap_err(), Error::BadHeaderLen);
        // IHL 15: 60 bytes of header, not quoted whole.
        bad[0] = 0x4f;
        assert_eq!(QuotedDatagram::new_checked(&bad[..]).unwrap_err(), Error::Truncated);
    }
}
