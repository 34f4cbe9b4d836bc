//! IPv6 header view (RFC 8200 §3) and the walk over its extension headers (RFC 8200 §4,
//! RFC 7045: a router walks the chain it knows and passes the rest), with what a guarding
//! router must see on the way: the Fragment header's fields (RFC 8200 §4.5, atomic fragments
//! RFC 6946) and a Routing header of type 0 (deprecated and dropped, RFC 5095).
//!
//! `new_checked` accepts a buffer that holds the 40-byte header and the payload length it
//! announces; bytes after it (link padding) are ignored by [`Ipv6Packet::payload`]. A Jumbo
//! payload (payload length 0, RFC 2675) is refused: no link natpass serves carries one.

use std::net::Ipv6Addr;

use crate::ip::IpProtocol;
use crate::{Error, Result, be16, be32, put16};

/// The fixed IPv6 header length.
pub const HEADER_LEN: usize = 40;

/// Extension header types natpass walks (IANA "IPv6 Extension Header Types"), and the
/// upper-layer marker for "nothing follows".
pub mod ext {
    use crate::ip::IpProtocol;
    /// Hop-by-Hop Options (RFC 8200 §4.3).
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    /// Routing (RFC 8200 §4.4).
    pub const ROUTING: IpProtocol = IpProtocol(43);
    /// Fragment (RFC 8200 §4.5).
    pub const FRAGMENT: IpProtocol = IpProtocol(44);
    /// Destination Options (RFC 8200 §4.6).
    pub const DESTINATION: IpProtocol = IpProtocol(60);
    /// No Next Header (RFC 8200 §4.7).
    pub const NO_NEXT_HEADER: IpProtocol = IpProtocol(59);
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking the version, the header and the payload length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::BadVersion);
        }
        if p.payload_len() == 0 && b.len() > HEADER_LEN && p.next_header() == ext::HOP_BY_HOP {
            // A Jumbo payload (RFC 2675) announces its length in a Hop-by-Hop option.
            return Err(Error::Malformed);
        }
        if b.len() < HEADER_LEN + usize::from(p.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    /// The payload length: everything after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// The type of the header after the fixed one.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[6])
    }

    /// The hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// The source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr_at(self.buffer.as_ref(), 8))
    }

    /// The destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr_at(self.buffer.as_ref(), 24))
    }

    /// Everything after the fixed header, up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// The extension headers after the fixed one, in order (RFC 8200 §4.1).
    pub fn extension_headers(&self) -> ExtensionHeaders<'_> {
        ExtensionHeaders { next: self.next_header(), rest: self.payload(), offset: HEADER_LEN, done: false }
    }

    /// The upper-layer header after the extension headers: its protocol and its offset in
    /// the packet, the Fragment header if there is one, and whether a Routing header of type 0
    /// is in the chain. `Err` for a chain that runs past the packet.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let mut up =
            UpperLayer { protocol: self.next_header(), offset: HEADER_LEN, fragment: None, routing_type0: false };
        for h in self.extension_headers() {
            let h = h?;
            match h.kind {
                ext::FRAGMENT => up.fragment = FragmentHeader::parse(h.bytes),
                ext::ROUTING => up.routing_type0 |= h.bytes.get(2) == Some(&0),
                _ => {}
            }
            up.protocol = h.next;
            up.offset = h.offset + h.bytes.len();
        }
        Ok(up)
    }

    /// The sum of the upper-layer pseudo-header (RFC 8200 §8.1) for `protocol` and an
    /// upper-layer packet of `len` bytes, for TCP, UDP and ICMPv6 checksums.
    pub fn pseudo_header_sum(&self, protocol: IpProtocol, len: u32) -> u64 {
        let b = self.buffer.as_ref();
        crate::checksum::sum(0, &b[8..40]) + u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(protocol.0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Decrements the hop limit (IPv6 has no header checksum). The caller checks it is > 1.
    #[inline]
    pub fn decrement_hop_limit(&mut self) {
        let b = self.buffer.as_mut();
        b[7] = b[7].wrapping_sub(1);
    }

    /// Sets the payload length. Invalidates the length check.
    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), 4, len);
    }
}

/// The fields of a fresh IPv6 header, for [`Ipv6Repr::emit`]: traffic class and flow label 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The header after this one.
    pub next_header: IpProtocol,
    /// The payload length.
    pub payload_len: u16,
    /// The hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Writes the 40-byte header into `buf[..40]`; `buf` must be at least that long.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(buf, 4, self.payload_len);
        buf[6] = self.next_header.number();
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src.octets());
        buf[24..40].copy_from_slice(&self.dst.octets());
    }
}

fn addr_at(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}

/// Where a packet's upper layer starts, and what the walk saw on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (or an extension header natpass does not walk, or
    /// [`ext::NO_NEXT_HEADER`]).
    pub protocol: IpProtocol,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
    /// The Fragment header, if the chain has one.
    pub fragment: Option<FragmentHeader>,
    /// A Routing header of type 0 is in the chain (RFC 5095: drop).
    pub routing_type0: bool,
}

/// The fields of a Fragment header (RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The offset of this fragment's data, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// The identification.
    pub ident: u32,
}

impl FragmentHeader {
    fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..8)?;
        let w = be16(b, 2);
        Some(Self { offset: w & 0xfff8, more: w & 1 != 0, ident: be32(b, 4) })
    }

    /// An atomic fragment (RFC 6946): offset 0 and no more fragments, a whole packet that
    /// is processed as if it had no Fragment header.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// One extension header: its type, its bytes, the type of what follows, its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionHeader<'a> {
    /// This header's type.
    pub kind: IpProtocol,
    /// The whole header.
    pub bytes: &'a [u8],
    /// The type of the next header.
    pub next: IpProtocol,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
}

/// The extension headers of a packet, in order: Hop-by-Hop, Routing, Fragment and
/// Destination Options are walked (RFC 7045 §2.2: the ones a forwarding node may look at);
/// the walk stops at anything else, which is the upper layer (AH and ESP included). A
/// header that runs past the packet yields [`Error::Truncated`] and ends the walk.
#[derive(Clone, Debug)]
pub struct ExtensionHeaders<'a> {
    next: IpProtocol,
    rest: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for ExtensionHeaders<'a> {
    type Item = Result<ExtensionHeader<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || !matches!(self.next, ext::HOP_BY_HOP | ext::ROUTING | ext::FRAGMENT | ext::DESTINATION) {
            return None;
        }
        let kind = self.next;
        let len = match (kind, self.rest.get(..2)) {
            (_, None) => None,
            (ext::FRAGMENT, Some(_)) => Some(8),
            (_, Some(h)) => Some((usize::from(h[1]) + 1) * 8),
        };
        let Some(bytes) = len.and_then(|l| self.rest.get(..l)) else {
            self.done = true;
            return Some(Err(Error::Truncated));
        };
        let next = IpProtocol(bytes[0]);
        let h = ExtensionHeader { kind, bytes, next, offset: self.offset };
        self.rest = &self.rest[bytes.len()..];
        self.offset += bytes.len();
        self.next = next;
        Some(Ok(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8:1::10 → 2001:db8:ff::1, hop limit 64, with `payload` after `next`.
    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&"2001:db8:1::10".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8:ff::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn test_fixed_header() {
        let mut p = packet(17, &[0u8; 8]);
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!((ip.payload_len(), ip.next_header(), ip.hop_limit()), (8, IpProtocol::UDP, 64));
        assert_eq!(ip.src(), "2001:db8:1::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            ip.upper_layer().unwrap(),
            UpperLayer { protocol: IpProtocol::UDP, offset: 40, fragment: None, routing_type0: false }
        );
        Ipv6Packet::new_unchecked(&mut p[..]).decrement_hop_limit();
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().hop_limit(), 63);
        assert_eq!(Ipv6Packet::new_checked(&p[..47]).unwrap_err(), Error::Truncated);
        p[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap_err(), Error::BadVersion);
    }

    #[test]
    fn test_extension_chain() {
        // Hop-by-Hop (8 bytes) → Routing type 0 (24 bytes) → Fragment → UDP.
        let mut chain = vec![43, 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&[44, 2, 0, 1]);
        chain.extend_from_slice(&[0u8; 20]);
        chain.extend_from_slice(&[17, 0, 0x05, 0x01, 0, 0, 0x12, 0x34]);
        chain.extend_from_slice(&[0u8; 8]);
        let p = packet(0, &chain);
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        let kinds: Vec<_> = ip.extension_headers().map(|h| h.unwrap().kind).collect();
        assert_eq!(kinds, [ext::HOP_BY_HOP, ext::ROUTING, ext::FRAGMENT]);
        let up = ip.upper_layer().unwrap();
        assert_eq!((up.protocol, up.offset, up.routing_type0), (IpProtocol::UDP, 40 + 8 + 24 + 8, true));
        assert_eq!(up.fragment, Some(FragmentHeader { offset: 0x500, more: true, ident: 0x1234 }));
        assert!(!up.fragment.unwrap().is_atomic());
    }

    #[test]
    fn test_atomic_fragment_and_truncated_chain() {
        let p = packet(44, &[58, 0, 0, 0, 0, 0, 0, 9, 128, 0, 0, 0, 0, 0, 0, 0]);
        let up = Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer().unwrap();
        assert_eq!(up.protocol, IpProtocol::ICMPV6);
        assert!(up.fragment.unwrap().is_atomic());
        // A Destination Options header claiming 16 bytes in a 10-byte payload.
        let p = packet(60, &[17, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.upper_layer().unwrap_err(), Error::Truncated);
        // ESP ends the walk: it is the upper layer.
        let p = packet(50, &[0u8; 8]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer().unwrap().protocol, IpProtocol::ESP);
    }

    #[test]
    fn test_repr_emit() {
        let mut b = [0u8; 48];
        let repr = Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: IpProtocol::ICMPV6,
            payload_len: 8,
            hop_limit: 255,
        };
        repr.emit(&mut b);
        let ip = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.next_header(), ip.hop_limit()),
            (repr.src, repr.dst, IpProtocol::ICMPV6, 255)
        );
    }

    #[test]
    fn test_pseudo_header_matches_an_independent_sum() {
        let p = packet(58, &[128, 0, 0, 0, 0, 1, 0, 1]);
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        // RFC 8200 §8.1: source, destination, upper-layer length (32 bits), 3 zero bytes, next header.
        let mut ph = Vec::new();
        ph.extend_from_slice(&p[8..40]);
        ph.extend_from_slice(&8u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        let want = crate::checksum::fold(crate::checksum::sum(0, &ph));
        assert_eq!(crate::checksum::fold(ip.pseudo_header_sum(IpProtocol::ICMPV6, 8)), want);
    }
}
