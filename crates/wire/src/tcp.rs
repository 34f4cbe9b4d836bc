//! TCP header view (RFC 793 §3.1; flags per RFC 3168 and RFC 9293), with the incremental
//! checksum updates NAPT needs (RFC 1624).

use crate::checksum;
use crate::ip::AddrChange;
use crate::{Error, Result, be16, be32, put16};

/// The minimum TCP header length.
pub const HEADER_LEN: usize = 20;

/// TCP flag bits (the low byte of offset 13).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking the fixed header and the data offset.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps only the first 8 bytes of a segment, as embedded in an ICMP error (RFC 792).
    ///
    /// Only [`TcpPacket::src_port`], [`TcpPacket::dst_port`] and [`TcpPacket::seq`] may be used
    /// on such a view, with their setters.
    pub fn new_ports_only(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < 8 {
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

    /// The sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// The acknowledgment number.
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }

    /// The window field, unscaled (RFC 7323 §2.3: a SYN's window is never scaled).
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), 14)
    }

    /// The shift count of a Window Scale option (RFC 7323 §2.2, kind 3), capped at 14 as
    /// §2.3 says; `None` without the option, or when the options are malformed.
    pub fn window_scale(&self) -> Option<u8> {
        let b = self.buffer.as_ref();
        let end = self.header_len().min(b.len());
        let mut i = HEADER_LEN;
        while i < end {
            match b[i] {
                0 => return None,
                1 => i += 1,
                kind => {
                    let len = usize::from(*b.get(i + 1)?);
                    if len < 2 || i + len > end {
                        return None;
                    }
                    if kind == 3 && len == 3 {
                        return Some(b[i + 2].min(14));
                    }
                    i += len;
                }
            }
        }
        None
    }

    /// The header length from the data offset, in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    /// The flag byte (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[13]
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 16)
    }

    /// The data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Verifies the checksum given the IPv4 pseudo-header sum.
    pub fn verify_checksum(&self, pseudo_sum: u64) -> bool {
        checksum::fold(checksum::sum(pseudo_sum, self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port; `addr` is the pseudo-header address change, if any.
    #[inline]
    pub fn set_src_port(&mut self, port: u16, addr: Option<AddrChange>) {
        let old = self.src_port();
        self.rewrite(0, old, port, addr);
    }

    /// Sets the destination port; `addr` is the pseudo-header address change, if any.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16, addr: Option<AddrChange>) {
        let old = self.dst_port();
        self.rewrite(2, old, port, addr);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), 16, value);
    }

    /// Computes the checksum from scratch.
    pub fn fill_checksum(&mut self, pseudo_sum: u64) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum(pseudo_sum, self.buffer.as_ref()));
        self.set_checksum(c);
    }

    /// The data after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    #[inline]
    fn rewrite(&mut self, at: usize, old: u16, new: u16, addr: Option<AddrChange>) {
        let b = self.buffer.as_mut();
        put16(b, at, new);
        // The checksum lies at 16..18; a ports-only view (8 bytes, from an ICMP error) has none.
        if b.len() >= 18 {
            let check = be16(b, 16);
            let c = match addr {
                Some(a) => checksum::update_addr_port(check, a, old, new),
                None => checksum::update_u16(check, old, new),
            };
            put16(b, 16, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_and_rewrite() {
        let src = [192, 168, 1, 2];
        let dst = [1, 1, 1, 1];
        let mut seg = [0u8; 24];
        seg[0..2].copy_from_slice(&5555u16.to_be_bytes());
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        seg[4..8].copy_from_slice(&7u32.to_be_bytes());
        seg[12] = 0x50;
        seg[13] = flags::SYN;
        seg[20..].copy_from_slice(b"data");
        let ps = checksum::pseudo_header_sum(src, dst, 6, 24);
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        t.fill_checksum(ps);
        assert!(t.verify_checksum(ps));
        t.set_src_port(1024, Some(AddrChange::new([192, 168, 1, 2].into(), [10, 10, 10, 10].into())));
        let ps2 = checksum::pseudo_header_sum([10, 10, 10, 10], dst, 6, 24);
        assert!(t.verify_checksum(ps2));
        assert_eq!(t.flags(), flags::SYN);
        assert_eq!(t.payload(), b"data");
        assert_eq!(t.seq(), 7);
    }

    #[test]
    fn test_ports_only_view_rewrites_ports() {
        // Found by the tcp fuzz target: an 8-byte view must not touch the checksum.
        let mut b = [10, 93, 93, 93, 93, 126, 93, 10];
        let mut p = TcpPacket::new_ports_only(&mut b[..]).unwrap();
        p.set_src_port(1, Some(AddrChange::new([0, 0, 0, 1].into(), [0, 0, 0, 2].into())));
        p.set_dst_port(2, None);
        assert_eq!((p.src_port(), p.dst_port()), (1, 2));
    }

    #[test]
    fn test_rejects_bad_offset() {
        let mut seg = [0u8; 20];
        seg[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&seg[..]).unwrap_err(), Error::BadHeaderLen);
        seg[12] = 0x60;
        assert_eq!(TcpPacket::new_checked(&seg[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_window_scale_option() {
        // SYN with MSS (kind 2, len 4), NOP, Window Scale 7 (kind 3, len 3), then EOL.
        let mut seg = [0u8; 32];
        seg[12] = 0x80;
        seg[13] = flags::SYN;
        seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
        seg[20..32].copy_from_slice(&[2, 4, 0x05, 0xb4, 1, 3, 3, 7, 0, 0, 0, 0]);
        let t = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!((t.window(), t.window_scale()), (64240, Some(7)));
        seg[27] = 20;
        assert_eq!(TcpPacket::new_checked(&seg[..]).unwrap().window_scale(), Some(14), "capped");
        seg[26] = 9;
        assert_eq!(TcpPacket::new_checked(&seg[..]).unwrap().window_scale(), None, "a length past the header");
    }
}
