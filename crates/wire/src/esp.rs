//! ESP header view (RFC 4303 §2): the SPI and sequence number in the clear, then the encrypted
//! payload. ESP is never rewritten by the NAT; the SPI is what tells clients apart.

use crate::{Error, Result, be32};

/// SPI (4) + sequence number (4).
pub const HEADER_LEN: usize = 8;

/// A view of an ESP packet (the IP payload with protocol 50, or a UDP 4500 payload after
/// classification).
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least the SPI and the sequence number.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The Security Parameters Index.
    #[inline]
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), 0)
    }

    /// The sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// SPI 0 is reserved for local use and 1–255 are reserved by IANA (RFC 4303 §2.1): no SA
    /// uses them on the wire.
    pub fn is_reserved_spi(&self) -> bool {
        self.spi() < 256
    }

    /// The protected payload (IV, data, padding, ICV), opaque.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The first 12 bytes of ESP packet 1 of esp_raw_oneway_freeswan.pcap (SPI 0x12345678).
    const PACKET: [u8; 12] = [0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x01, 0x4c, 0x20, 0x45, 0x2f];

    #[test]
    fn test_parse() {
        let p = EspPacket::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.spi(), 0x1234_5678);
        assert_eq!(p.seq(), 1);
        assert!(!p.is_reserved_spi());
        assert_eq!(p.payload(), &[0x4c, 0x20, 0x45, 0x2f]);
        assert_eq!(EspPacket::new_checked(&PACKET[..7]).unwrap_err(), Error::Truncated);
    }

    proptest! {
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = EspPacket::new_checked(&b[..]) {
                let _ = (p.spi(), p.seq(), p.is_reserved_spi(), p.payload().len());
            }
        }
    }
}
