//! AH header view (RFC 4302 §2). AH's ICV covers the IP addresses, so no NAT can forward it
//! intact (RFC 3715 §2.1 a); natpass reads it only to name the SPI it refuses.

use crate::{Error, Result, be32};

/// The fixed part: next header, payload length, reserved, SPI, sequence number.
pub const MIN_HEADER_LEN: usize = 12;

/// A view of an AH header.
#[derive(Debug, Clone)]
pub struct AhPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AhPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer whose header length (from the payload-length field) fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = p.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// The protocol after the AH header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The header length in bytes: (payload length + 2) × 4 (RFC 4302 §2.2).
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[1]) + 2) * 4
    }

    /// The Security Parameters Index.
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// The sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 8)
    }

    /// The Integrity Check Value.
    pub fn icv(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The AH header of the ICMP echo in ikev2_ah_labC.pcapng: 12-byte ICV, payload length 4
    // → 24 bytes; next header ICMP.
    const HEADER: [u8; 24] = [
        0x01, 0x04, 0x00, 0x00, 0x60, 0x48, 0x16, 0xf6, 0x00, 0x00, 0x00, 0x01, 0xe7, 0x32, 0xab, 0xac, 0xe1, 0xc6,
        0x00, 0x46, 0xee, 0xc6, 0x41, 0xed,
    ];

    #[test]
    fn test_parse() {
        let p = AhPacket::new_checked(&HEADER[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.spi(), 0x6048_16f6);
        assert_eq!(p.seq(), 1);
        assert_eq!(p.next_header(), 1);
        assert_eq!(p.icv().len(), 12);
        assert_eq!(AhPacket::new_checked(&HEADER[..20]).unwrap_err(), Error::Truncated);
    }

    proptest! {
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = AhPacket::new_checked(&b[..]) {
                let _ = (p.spi(), p.seq(), p.next_header(), p.icv().len());
            }
        }
    }
}
