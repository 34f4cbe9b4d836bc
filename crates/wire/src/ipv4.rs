//! IPv4 header view (RFC 791 §3.1), with options and fragmentation fields.
//!
//! `new_checked` accepts a buffer that holds at least the header (IHL × 4 bytes, IHL ≥ 5) and
//! whose total-length field is within the buffer; bytes after total length (link padding) are
//! ignored by [`Ipv4Packet::payload`]. A packet whose total length is smaller than its header is
//! refused.

use std::net::Ipv4Addr;

use crate::checksum;
use crate::ip::IpProtocol;
use crate::{Error, Result, be16, be32, put16, put32};

mod field {
    use core::ops::Range;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const TOS: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLAGS_FRAG: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

/// The fixed IPv4 header length, without options.
pub const HEADER_LEN: usize = 20;

/// IPv4 option types (RFC 791 §3.1, IANA "IP Option Numbers").
pub mod option {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Record route.
    pub const RECORD_ROUTE: u8 = 7;
    /// Loose source and record route (RFC 791; dropped by default, RFC 7126 §4.3).
    pub const LSRR: u8 = 0x83;
    /// Strict source and record route (RFC 791; dropped by default, RFC 7126 §4.4).
    pub const SSRR: u8 = 0x89;
    /// The flag in the type byte of options that every fragment carries (RFC 791 §3.1).
    pub const COPIED: u8 = 0x80;
}

/// One IPv4 option: its type and all its bytes (type, length and data; the one byte of a
/// NOP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// The type byte (see [`option`]).
    pub kind: u8,
    /// The whole option.
    pub bytes: &'a [u8],
}

/// The options of an IPv4 header in order, up to the end-of-list option or the end of the
/// header. An option whose length field is below 2 or runs past the header yields
/// [`Error::Malformed`], and nothing after it (RFC 1812 §5.2.2 asks routers to check them).
#[derive(Clone, Debug)]
pub struct Ipv4Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Ipv4Options<'a> {
    type Item = Result<Ipv4Option<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let kind = *self.rest.first()?;
        match kind {
            option::EOL => {
                self.rest = &[];
                None
            }
            option::NOP => {
                let (bytes, rest) = self.rest.split_at(1);
                self.rest = rest;
                Some(Ok(Ipv4Option { kind, bytes }))
            }
            _ => {
                let len = self.rest.get(1).map_or(0, |&l| usize::from(l));
                if len < 2 || len > self.rest.len() {
                    self.rest = &[];
                    return Some(Err(Error::Malformed));
                }
                let (bytes, rest) = self.rest.split_at(len);
                self.rest = rest;
                Some(Ok(Ipv4Option { kind, bytes }))
            }
        }
    }
}

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking version, header length and total length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that every accessor is in bounds. Invalidated by `set_total_len`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::BadHeaderLen);
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Type of service / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// The total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS_FRAG] & 0x40 != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS_FRAG] & 0x20 != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x1fff) * 8
    }

    /// True for any fragment of a fragmented datagram (first, middle or last).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & 0x3fff != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), field::SRC))
    }

    /// The destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), field::DST))
    }

    /// True when the header checksum verifies (RFC 1071).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len();
        checksum::fold(checksum::sum(0, &self.buffer.as_ref()[..hl])) == 0xffff
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options after the fixed header (none when the header is 20 bytes).
    pub fn options(&self) -> Ipv4Options<'_> {
        Ipv4Options { rest: &self.buffer.as_ref()[HEADER_LEN..self.header_len()] }
    }

    /// The payload: from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len();
        let total = usize::from(self.total_len());
        &self.buffer.as_ref()[hl..total]
    }

    /// The sum of the TCP/UDP pseudo-header for this packet's addresses and payload length.
    pub fn pseudo_header_sum(&self) -> u64 {
        let b = self.buffer.as_ref();
        let l4 = self.total_len() - self.header_len() as u16;
        checksum::pseudo_header_sum(
            [b[12], b[13], b[14], b[15]],
            [b[16], b[17], b[18], b[19]],
            self.protocol().number(),
            l4,
        )
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// The payload, borrowed for as long as the buffer (see [`Ipv4Packet::payload`]).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let hl = self.header_len();
        let total = usize::from(self.total_len());
        &self.buffer[hl..total]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the source address and updates the header checksum incrementally.
    #[inline(always)]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        let old = self.src();
        let check = checksum::update_addr(self.checksum(), old, addr);
        let b = self.buffer.as_mut();
        put32(b, field::SRC, addr.to_bits());
        put16(b, field::CHECKSUM, check);
    }

    /// Sets the destination address and updates the header checksum incrementally.
    #[inline(always)]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        let old = self.dst();
        let check = checksum::update_addr(self.checksum(), old, addr);
        let b = self.buffer.as_mut();
        put32(b, field::DST, addr.to_bits());
        put16(b, field::CHECKSUM, check);
    }

    /// Decrements the TTL by one and updates the checksum. The caller checks the TTL is > 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let old = be16(b, field::TTL);
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let new = be16(b, field::TTL);
        let check = checksum::update_u16(be16(b, field::CHECKSUM), old, new);
        put16(b, field::CHECKSUM, check);
    }

    /// Sets the identification field and updates the checksum (RFC 6864 rewrites).
    pub fn set_ident(&mut self, ident: u16) {
        let old = self.ident();
        let check = checksum::update_u16(self.checksum(), old, ident);
        let b = self.buffer.as_mut();
        put16(b, field::IDENT, ident);
        put16(b, field::CHECKSUM, check);
    }

    /// Sets the fragment offset (in bytes, a multiple of 8) and the More Fragments flag, and
    /// clears Don't Fragment, without touching the checksum (see [`Ipv4Packet::fill_checksum`]).
    pub fn set_fragment(&mut self, offset: u16, more: bool) {
        let flags = if more { 0x2000 } else { 0 };
        put16(self.buffer.as_mut(), field::FLAGS_FRAG, flags | (offset / 8));
    }

    /// Sets the header length (a multiple of 4, 20 to 60 bytes) without touching the checksum.
    /// Invalidates the length check.
    pub fn set_header_len(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        b[field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the total length without touching the checksum. Invalidates the length check.
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the checksum field to `value` as given.
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Recomputes the header checksum from scratch (RFC 1071).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let total = usize::from(self.total_len());
        &mut self.buffer.as_mut()[hl..total]
    }

    /// The whole packet up to its total length, mutable.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        let total = usize::from(self.total_len());
        &mut self.buffer.as_mut()[..total]
    }
}

/// The fields of a fresh IPv4 header without options, for [`Ipv4Repr::emit`] (smoltcp's
/// `Repr` shape): fragment fields zero, TOS zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Total length: header and payload.
    pub total_len: u16,
    /// Identification.
    pub ident: u16,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Writes the header into `buf[..20]` and fills its checksum. `buf` must be at least
    /// [`HEADER_LEN`] long.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = 0x45;
        buf[1] = 0;
        put16(buf, 2, self.total_len);
        put16(buf, 4, self.ident);
        put16(buf, 6, 0);
        buf[8] = self.ttl;
        buf[9] = self.protocol.number();
        put16(buf, 10, 0);
        put32(buf, 12, self.src.to_bits());
        put32(buf, 16, self.dst.to_bits());
        let c = checksum::checksum(&buf[..HEADER_LEN]);
        put16(buf, 10, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.1.10 -> 8.8.8.8, UDP, 28 bytes, checksum valid.
    const PACKET: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x0a, 0x08, 0x08,
        0x08, 0x08, 0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ];

    fn packet() -> Vec<u8> {
        let mut p = PACKET.to_vec();
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    #[test]
    fn test_parse() {
        let p = packet();
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.total_len(), 28);
        assert_eq!(ip.ident(), 0x1234);
        assert!(ip.dont_frag());
        assert!(!ip.is_fragment());
        assert_eq!(ip.protocol(), IpProtocol::UDP);
        assert_eq!(ip.src(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(ip.dst(), Ipv4Addr::new(8, 8, 8, 8));
        assert!(ip.verify_checksum());
        assert_eq!(ip.payload().len(), 8);
    }

    #[test]
    fn test_rejects_bad_lengths() {
        let p = packet();
        assert_eq!(Ipv4Packet::new_checked(&p[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(Ipv4Packet::new_checked(&p[..27]).unwrap_err(), Error::Truncated);
        let mut q = p.clone();
        q[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&q[..]).unwrap_err(), Error::BadHeaderLen);
        q[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&q[..]).unwrap_err(), Error::BadVersion);
        let mut q = p.clone();
        q[3] = 10;
        assert_eq!(Ipv4Packet::new_checked(&q[..]).unwrap_err(), Error::BadHeaderLen);
    }

    #[test]
    fn test_setters_keep_checksum_valid() {
        let mut p = packet();
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        ip.set_src(Ipv4Addr::new(203, 0, 113, 5));
        ip.set_dst(Ipv4Addr::new(1, 2, 3, 4));
        ip.decrement_ttl();
        ip.set_ident(0xbeef);
        assert!(ip.verify_checksum());
        assert_eq!(ip.ttl(), 0x3f);
        let e = etherparse::Ipv4HeaderSlice::from_slice(&p).unwrap();
        assert_eq!(e.to_header().calc_header_checksum(), e.header_checksum());
    }

    #[test]
    fn test_repr_emit() {
        let mut b = [0u8; 20];
        let dst = Ipv4Addr::new(192, 0, 2, 2);
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst,
            protocol: IpProtocol::ICMP,
            total_len: 20,
            ident: 7,
            ttl: 64,
        };
        repr.emit(&mut b);
        let ip = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst(), dst);
        assert_eq!(ip.protocol(), IpProtocol::ICMP);
    }

    #[test]
    fn test_options() {
        // IHL 8: NOP, LSRR (len 7, one address), then EOL and padding.
        let mut p = vec![0x48, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend_from_slice(&[1, 0x83, 7, 4, 192, 168, 1, 9, 0, 0, 0, 0]);
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        let kinds: Vec<_> = ip.options().map(|o| o.unwrap().kind).collect();
        assert_eq!(kinds, [option::NOP, option::LSRR]);
        // A length that runs past the header.
        p[22] = 40;
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.options().nth(1), Some(Err(Error::Malformed)));
        // A length below 2.
        p[22] = 1;
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert!(ip.options().any(|o| o.is_err()));
        assert_eq!(Ipv4Packet::new_checked(&PACKET[..]).unwrap().options().count(), 0);
    }

    #[test]
    fn test_fragment_fields() {
        let mut p = packet();
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.set_fragment(1480, true);
        ip.fill_checksum();
        assert!((ip.frag_offset(), ip.more_frags(), ip.dont_frag()) == (1480, true, false));
        ip.set_fragment(0, false);
        assert!(!ip.is_fragment());
        ip.set_header_len(24);
        assert_eq!(ip.header_len(), 24);
    }
}
