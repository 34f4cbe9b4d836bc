//! UDP header view (RFC 768), with checksum handling for NAT (RFC 1624; RFC 768: a transmitted
//! checksum of zero means "none", so a computed zero is sent as 0xFFFF).

use crate::checksum;
use crate::ip::AddrChange;
use crate::{Error, Result, be16, put16};

/// The UDP header length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram (header and payload).
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking that it holds the 8-byte header.
    ///
    /// The length field is not required to match the buffer: the IP layer bounds the datagram,
    /// and [`UdpPacket::payload`] is clamped to the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// The destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The length field (header + payload).
    pub fn len_field(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// The checksum field; zero means the sender computed none.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// The payload after the header, up to the length field or the buffer's end.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.len_field()).clamp(HEADER_LEN, b.len());
        &b[HEADER_LEN..end]
    }

    /// Verifies the checksum given the IPv4 pseudo-header sum; a zero checksum always passes.
    pub fn verify_checksum(&self, pseudo_sum: u64) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        checksum::fold(checksum::sum(pseudo_sum, self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port; if `addr` is `Some((old, new))` the pseudo-header source address
    /// changed too. The checksum is updated incrementally unless it is zero (none).
    #[inline]
    pub fn set_src_port(&mut self, port: u16, addr: Option<AddrChange>) {
        let old = self.src_port();
        self.rewrite(0, old, port, addr);
    }

    /// Sets the destination port, adjusting the checksum for an address change as well.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16, addr: Option<AddrChange>) {
        let old = self.dst_port();
        self.rewrite(2, old, port, addr);
    }

    /// Updates the checksum for a pseudo-header address that changed while the ports stay:
    /// the address-only setter (IKE keeps port 500; an ICMP error's quoted datagram). A zero
    /// checksum (none) stays zero.
    #[inline]
    pub fn set_pseudo_addr(&mut self, addr: AddrChange) {
        let check = self.checksum();
        if check == 0 {
            return;
        }
        let c = checksum::update_addr(check, addr.old, addr.new);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), 6, value);
    }

    /// Computes and writes the checksum from scratch.
    pub fn fill_checksum(&mut self, pseudo_sum: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum(pseudo_sum, self.buffer.as_ref()));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len_field()).clamp(HEADER_LEN, self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    #[inline]
    fn rewrite(&mut self, at: usize, old: u16, new: u16, addr: Option<AddrChange>) {
        let check = self.checksum();
        let b = self.buffer.as_mut();
        put16(b, at, new);
        if check == 0 {
            return;
        }
        let c = match addr {
            Some(a) => checksum::update_addr_port(check, a, old, new),
            None => checksum::update_u16(check, old, new),
        };
        put16(b, 6, if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_and_rewrite() {
        // 10.0.0.1:1234 -> 10.0.0.2:53, payload "hi".
        let src = [10, 0, 0, 1];
        let dst = [10, 0, 0, 2];
        let mut d = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let ps = checksum::pseudo_header_sum(src, dst, 17, 10);
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.fill_checksum(ps);
        assert!(u.verify_checksum(ps));
        assert_eq!(u.src_port(), 1234);
        assert_eq!(u.payload(), b"hi");
        u.set_src_port(40000, Some(AddrChange::new([10, 0, 0, 1].into(), [203, 0, 0, 1].into())));
        let ps2 = checksum::pseudo_header_sum([203, 0, 0, 1], dst, 17, 10);
        assert!(u.verify_checksum(ps2));
        assert_eq!(u.src_port(), 40000);
    }

    #[test]
    fn test_zero_checksum_stays_zero() {
        let mut d = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.set_dst_port(99, Some(AddrChange::new([0, 0, 0, 1].into(), [0, 0, 0, 2].into())));
        assert_eq!(u.checksum(), 0);
        u.set_pseudo_addr(AddrChange::new([0, 0, 0, 1].into(), [0, 0, 0, 2].into()));
        assert_eq!(u.checksum(), 0);
        assert_eq!(UdpPacket::new_checked(&d[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_address_alone() {
        let (src, dst) = ([192, 168, 1, 7], [198, 51, 100, 1]);
        let mut d = [0x01, 0xf4, 0x01, 0xf4, 0x00, 0x0a, 0x00, 0x00, 1, 2];
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.fill_checksum(checksum::pseudo_header_sum(src, dst, 17, 10));
        u.set_pseudo_addr(AddrChange::new(src.into(), [203, 0, 113, 1].into()));
        assert!(u.verify_checksum(checksum::pseudo_header_sum([203, 0, 113, 1], dst, 17, 10)));
        assert_eq!((u.src_port(), u.dst_port()), (500, 500));
    }
}
