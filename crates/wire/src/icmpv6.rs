//! ICMPv6 view (RFC 4443) and the Neighbor Discovery messages a router sends and answers
//! (RFC 4861 §4: Router and Neighbor Solicitations and Advertisements, their options), with
//! the DNS servers option of RFC 8106. The checksum covers the IPv6 pseudo-header
//! (RFC 8200 §8.1): pass [`crate::ipv6::Ipv6Packet::pseudo_header_sum`].

use std::net::Ipv6Addr;

use crate::checksum;
use crate::{Error, Result, be16, be32, put16, put32};

/// The ICMPv6 header length (type, code, checksum, and the 4 bytes every message has).
pub const HEADER_LEN: usize = 8;

/// ICMPv6 message types natpass handles.
pub mod kind {
    /// Destination Unreachable (RFC 4443 §3.1).
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet Too Big (RFC 4443 §3.2).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time Exceeded (RFC 4443 §3.3).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem (RFC 4443 §3.4).
    pub const PARAMETER_PROBLEM: u8 = 4;
    /// Echo Request (RFC 4443 §4.1).
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply (RFC 4443 §4.2).
    pub const ECHO_REPLY: u8 = 129;
    /// Router Solicitation (RFC 4861 §4.1).
    pub const ROUTER_SOLICITATION: u8 = 133;
    /// Router Advertisement (RFC 4861 §4.2).
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    /// Neighbor Solicitation (RFC 4861 §4.3).
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    /// Neighbor Advertisement (RFC 4861 §4.4).
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
}

/// Neighbor Discovery option types (RFC 4861 §4.6, RFC 8106 §5.1).
pub mod option {
    /// Source Link-Layer Address.
    pub const SOURCE_LL_ADDR: u8 = 1;
    /// Target Link-Layer Address.
    pub const TARGET_LL_ADDR: u8 = 2;
    /// Prefix Information.
    pub const PREFIX_INFO: u8 = 3;
    /// MTU.
    pub const MTU: u8 = 5;
    /// Recursive DNS Server.
    pub const RDNSS: u8 = 25;
}

/// True for error messages (types below 128, RFC 4443 §2.1), which quote the offending packet.
pub fn is_error_type(t: u8) -> bool {
    t < 128
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the 8-byte header.
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
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// An echo message's identifier.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// An echo message's sequence number.
    pub fn seq(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// A Packet Too Big message's MTU.
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// What follows the 8-byte header: echo data, the quoted packet of an error, or the rest
    /// of a Neighbor Discovery message.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// True when the checksum verifies, given the pseudo-header sum.
    pub fn verify_checksum(&self, pseudo_sum: u64) -> bool {
        checksum::fold(checksum::sum(pseudo_sum, self.buffer.as_ref())) == 0xffff
    }

    /// A Neighbor Advertisement's flags byte (RFC 4861 §4.4: R 0x80, S 0x40, O 0x20) or a
    /// Router Advertisement's current hop limit.
    pub fn nd_flags(&self) -> u8 {
        self.buffer.as_ref()[4]
    }

    /// A Neighbor Solicitation's or Advertisement's target address (RFC 4861 §4.3, §4.4).
    pub fn target(&self) -> Option<Ipv6Addr> {
        let d = self.data().get(..16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(d);
        Some(Ipv6Addr::from(a))
    }

    /// The Neighbor Discovery options of an RS (after 8 bytes), RA (after 16), NS or NA
    /// (after 24).
    pub fn nd_options(&self) -> NdOptions<'_> {
        let skip = match self.msg_type() {
            kind::ROUTER_SOLICITATION => 8,
            kind::ROUTER_ADVERTISEMENT => 16,
            kind::NEIGHBOR_SOLICITATION | kind::NEIGHBOR_ADVERTISEMENT => 24,
            _ => self.buffer.as_ref().len(),
        };
        NdOptions { rest: self.buffer.as_ref().get(skip..).unwrap_or_default() }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the type, the code and the 4 bytes after the checksum (an MTU, a pointer, or 0);
    /// the checksum is not updated.
    pub fn set_header(&mut self, kind: u8, code: u8, rest: u32) {
        let b = self.buffer.as_mut();
        b[0] = kind;
        b[1] = code;
        put32(b, 4, rest);
    }

    /// What follows the 8-byte header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes and writes the checksum, given the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo_sum: u64) {
        put16(self.buffer.as_mut(), 2, 0);
        let c = !checksum::fold(checksum::sum(pseudo_sum, self.buffer.as_ref()));
        put16(self.buffer.as_mut(), 2, c);
    }
}

/// One Neighbor Discovery option: its type and its data (after the type and length bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdOption<'a> {
    /// The option type (see [`option`]).
    pub kind: u8,
    /// Its bytes after type and length.
    pub data: &'a [u8],
}

/// The options of a Neighbor Discovery message. A zero length, or one past the message, yields
/// [`Error::Malformed`] and ends the walk (RFC 4861 §4.6: such a message is discarded).
#[derive(Clone, Debug)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<NdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.rest.get(..2)?;
        let len = usize::from(h[1]) * 8;
        if len == 0 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(Error::Malformed));
        }
        let (o, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(Ok(NdOption { kind: o[0], data: &o[2..] }))
    }
}

/// The link-layer address in a Source or Target Link-Layer Address option on Ethernet.
pub fn link_layer_address(o: &NdOption<'_>) -> Option<[u8; 6]> {
    let d = o.data.get(..6)?;
    Some([d[0], d[1], d[2], d[3], d[4], d[5]])
}

/// Writes a Neighbor Advertisement for `target` with its Target Link-Layer Address option
/// (32 bytes) into `buf`, which must be that long; `solicited` and `override_flag` are the S
/// and O flags, and R (router) is set. The caller fills the checksum.
pub fn emit_neighbor_advertisement(
    buf: &mut [u8],
    target: Ipv6Addr,
    mac: [u8; 6],
    solicited: bool,
    override_flag: bool,
) {
    buf[..32].fill(0);
    buf[0] = kind::NEIGHBOR_ADVERTISEMENT;
    buf[4] = 0x80 | if solicited { 0x40 } else { 0 } | if override_flag { 0x20 } else { 0 };
    buf[8..24].copy_from_slice(&target.octets());
    buf[24] = option::TARGET_LL_ADDR;
    buf[25] = 1;
    buf[26..32].copy_from_slice(&mac);
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
pub mod na_flag {
    /// R: the sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// S: sent in answer to a Neighbor Solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// O: override a cached link-layer address.
    pub const OVERRIDE: u8 = 0x20;
}

/// The length of a Neighbor Solicitation with its Source Link-Layer Address option.
pub const NEIGHBOR_SOLICITATION_LEN: usize = 32;

/// Writes a Neighbor Solicitation for `target` with natpass's Source Link-Layer Address
/// option (RFC 4861 §4.3; 32 bytes) into `buf`, which must be that long. The caller fills
/// the checksum.
pub fn emit_neighbor_solicitation(buf: &mut [u8], target: Ipv6Addr, mac: [u8; 6]) {
    buf[..NEIGHBOR_SOLICITATION_LEN].fill(0);
    buf[0] = kind::NEIGHBOR_SOLICITATION;
    buf[8..24].copy_from_slice(&target.octets());
    buf[24] = option::SOURCE_LL_ADDR;
    buf[25] = 1;
    buf[26..32].copy_from_slice(&mac);
}

/// A whole IPv6 packet carrying one ICMPv6 message of `len` bytes, which `fill` writes (its
/// checksum left to this function): the header (RFC 8200 §3) and the checksum over the
/// pseudo-header (RFC 4443 §2.3).
pub fn packet(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, len: u16, fill: impl FnOnce(&mut [u8])) -> Vec<u8> {
    use crate::ip::IpProtocol;
    use crate::ipv6::{HEADER_LEN as IP6, Ipv6Packet, Ipv6Repr};
    let mut pkt = vec![0u8; IP6 + usize::from(len)];
    Ipv6Repr { src, dst, next_header: IpProtocol::ICMPV6, payload_len: len, hop_limit }.emit(&mut pkt);
    fill(&mut pkt[IP6..]);
    let ps = Ipv6Packet::new_unchecked(&pkt[..]).pseudo_header_sum(IpProtocol::ICMPV6, u32::from(len));
    if let Ok(mut m) = Icmpv6Packet::new_checked(&mut pkt[IP6..]) {
        m.fill_checksum(ps);
    }
    pkt
}

/// What a Router Advertisement announces (RFC 4861 §4.2, §4.6.2, §4.6.4; RFC 8106 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterAdvertisement {
    /// The hop limit hosts should use.
    pub hop_limit: u8,
    /// How long the router is a default router, in seconds (0: not one).
    pub router_lifetime: u16,
    /// The router's link-layer address.
    pub mac: [u8; 6],
    /// The link MTU to announce, if any.
    pub mtu: Option<u32>,
    /// The on-link prefix for SLAAC, with its length (64 for SLAAC), valid and preferred
    /// lifetimes in seconds.
    pub prefix: Option<(Ipv6Addr, u8, u32, u32)>,
    /// DNS servers and their lifetime in seconds (RDNSS).
    pub dns: Option<(Vec<Ipv6Addr>, u32)>,
}

impl RouterAdvertisement {
    /// The message's length.
    pub fn len(&self) -> usize {
        16 + 8
            + self.mtu.map_or(0, |_| 8)
            + self.prefix.map_or(0, |_| 32)
            + self.dns.as_ref().map_or(0, |d| 8 + 16 * d.0.len())
    }

    /// Always false: a Router Advertisement has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the message into `buf[..self.len()]`; the caller fills the checksum.
    pub fn emit(&self, buf: &mut [u8]) {
        let n = self.len();
        buf[..n].fill(0);
        buf[0] = kind::ROUTER_ADVERTISEMENT;
        buf[4] = self.hop_limit;
        put16(buf, 6, self.router_lifetime);
        let mut at = 16;
        buf[at] = option::SOURCE_LL_ADDR;
        buf[at + 1] = 1;
        buf[at + 2..at + 8].copy_from_slice(&self.mac);
        at += 8;
        if let Some(mtu) = self.mtu {
            buf[at] = option::MTU;
            buf[at + 1] = 1;
            put32(buf, at + 4, mtu);
            at += 8;
        }
        if let Some((prefix, len, valid, preferred)) = self.prefix {
            buf[at] = option::PREFIX_INFO;
            buf[at + 1] = 4;
            buf[at + 2] = len;
            // L (on-link) and A (autonomous address configuration).
            buf[at + 3] = 0xc0;
            put32(buf, at + 4, valid);
            put32(buf, at + 8, preferred);
            buf[at + 16..at + 32].copy_from_slice(&prefix.octets());
            at += 32;
        }
        if let Some((servers, lifetime)) = &self.dns {
            buf[at] = option::RDNSS;
            buf[at + 1] = (1 + 2 * servers.len()) as u8;
            put32(buf, at + 4, *lifetime);
            for (i, s) in servers.iter().enumerate() {
                buf[at + 8 + 16 * i..at + 24 + 16 * i].copy_from_slice(&s.octets());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_neighbor_advertisement_round_trip() {
        let target: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut b = [0u8; 32];
        emit_neighbor_advertisement(&mut b, target, [2, 0, 0, 0, 0, 1], true, true);
        let mut m = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        m.fill_checksum(1234);
        assert!(m.verify_checksum(1234));
        assert_eq!((m.msg_type(), m.target()), (kind::NEIGHBOR_ADVERTISEMENT, Some(target)));
        let opts: Vec<_> = m.nd_options().collect::<Result<_>>().unwrap();
        assert_eq!(opts.len(), 1);
        assert_eq!((opts[0].kind, link_layer_address(&opts[0])), (option::TARGET_LL_ADDR, Some([2, 0, 0, 0, 0, 1])));
    }

    #[test]
    fn test_router_advertisement_options() {
        let ra = RouterAdvertisement {
            hop_limit: 64,
            router_lifetime: 1800,
            mac: [2, 0, 0, 0, 0, 1],
            mtu: Some(1500),
            prefix: Some(("2001:db8:1::".parse().unwrap(), 64, 86400, 14400)),
            dns: Some((vec!["2001:db8:1::1".parse().unwrap()], 600)),
        };
        let mut b = vec![0u8; ra.len()];
        ra.emit(&mut b);
        let m = Icmpv6Packet::new_checked(&b[..]).unwrap();
        let kinds: Vec<_> = m.nd_options().map(|o| o.unwrap().kind).collect();
        assert_eq!(kinds, [option::SOURCE_LL_ADDR, option::MTU, option::PREFIX_INFO, option::RDNSS]);
        let prefix = m.nd_options().nth(2).unwrap().unwrap();
        assert_eq!((prefix.data[0], prefix.data[1]), (64, 0xc0));
    }

    #[test]
    fn test_neighbor_solicitation_in_a_packet() {
        let target: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let (src, dst): (Ipv6Addr, Ipv6Addr) = ("fe80::2".parse().unwrap(), "ff02::1:ff00:1".parse().unwrap());
        let p = packet(src, dst, 255, NEIGHBOR_SOLICITATION_LEN as u16, |b| {
            emit_neighbor_solicitation(b, target, [2, 0, 0, 0, 0, 2]);
        });
        let ip = crate::ipv6::Ipv6Packet::new_checked(&p[..]).unwrap();
        let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(ip.pseudo_header_sum(crate::ip::IpProtocol::ICMPV6, 32)));
        assert_eq!((ip.hop_limit(), m.msg_type(), m.target()), (255, kind::NEIGHBOR_SOLICITATION, Some(target)));
        let o = m.nd_options().next().unwrap().unwrap();
        assert_eq!((o.kind, link_layer_address(&o)), (option::SOURCE_LL_ADDR, Some([2, 0, 0, 0, 0, 2])));
    }

    #[test]
    fn test_bad_option_lengths() {
        // A Neighbor Solicitation with an option of length 0.
        let mut b = [0u8; 32];
        b[0] = kind::NEIGHBOR_SOLICITATION;
        b[24] = option::SOURCE_LL_ADDR;
        let m = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(m.nd_options().next(), Some(Err(Error::Malformed)));
        b[25] = 2;
        let m = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(m.nd_options().next(), Some(Err(Error::Malformed)), "16 bytes in an 8-byte space");
        assert!(is_error_type(kind::PACKET_TOO_BIG) && !is_error_type(kind::ECHO_REQUEST));
        assert_eq!(Icmpv6Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }
}
