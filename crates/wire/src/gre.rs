//! GRE views: GRE (RFC 2784, with the key and sequence fields of RFC 2890) and the enhanced
//! GRE of PPTP (RFC 2637 §4.1): version 1, protocol 0x880B, a key made of the payload length
//! and the peer's Call ID, optional sequence and acknowledgment numbers.
//!
//! The NAT rewrites only the Call ID of enhanced GRE; GRE version 1 has no checksum.

use crate::checksum;
use crate::{Error, Result, be16, be32, put16};

/// The fixed part: flags/version and protocol type.
pub const MIN_HEADER_LEN: usize = 4;
/// PPP, the payload of enhanced GRE (RFC 2637 §4.1).
pub const PROTO_PPP: u16 = 0x880b;

mod bit {
    pub(super) const CHECKSUM: u16 = 0x8000;
    pub(super) const ROUTING: u16 = 0x4000;
    pub(super) const KEY: u16 = 0x2000;
    pub(super) const SEQ: u16 = 0x1000;
    pub(super) const ACK: u16 = 0x0080;
}

/// A view of a GRE packet, version 0 or 1.
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking the version, the optional fields its flags announce, and
    /// for version 1 the rules of RFC 2637 §4.1 (key present, no checksum or routing, PPP).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        match p.version() {
            0 => {
                if p.word() & bit::ROUTING != 0 {
                    // Source routing (RFC 1701) is deprecated by RFC 2784.
                    return Err(Error::Malformed);
                }
            }
            1 => {
                let w = p.word();
                if w & bit::KEY == 0 || w & (bit::CHECKSUM | bit::ROUTING) != 0 || p.protocol_type() != PROTO_PPP {
                    return Err(Error::Malformed);
                }
            }
            _ => return Err(Error::BadVersion),
        }
        if p.header_len() > b.len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    #[inline]
    fn word(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// The version: 0 (RFC 2784) or 1 (enhanced GRE, RFC 2637).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.word() & 0x7) as u8
    }

    /// The protocol type of the payload (an ethertype; 0x880B for PPP).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// A checksum is present (version 0).
    pub fn has_checksum(&self) -> bool {
        self.word() & bit::CHECKSUM != 0
    }

    /// A key is present.
    pub fn has_key(&self) -> bool {
        self.word() & bit::KEY != 0
    }

    /// A sequence number is present.
    pub fn has_seq(&self) -> bool {
        self.word() & bit::SEQ != 0
    }

    /// An acknowledgment number is present (version 1).
    pub fn has_ack(&self) -> bool {
        self.version() == 1 && self.word() & bit::ACK != 0
    }

    fn key_at(&self) -> usize {
        if self.has_checksum() { 8 } else { 4 }
    }

    fn seq_at(&self) -> usize {
        self.key_at() + if self.has_key() { 4 } else { 0 }
    }

    fn ack_at(&self) -> usize {
        self.seq_at() + if self.has_seq() { 4 } else { 0 }
    }

    /// The header length, optional fields included.
    pub fn header_len(&self) -> usize {
        self.ack_at() + if self.has_ack() { 4 } else { 0 }
    }

    /// The key field (version 0 with K set; version 1: payload length and Call ID).
    pub fn key(&self) -> Option<u32> {
        self.has_key().then(|| be32(self.buffer.as_ref(), self.key_at()))
    }

    /// Version 1: the payload length from the key's high half (`None` without a key).
    pub fn payload_len(&self) -> Option<u16> {
        self.has_key().then(|| be16(self.buffer.as_ref(), self.key_at()))
    }

    /// Version 1: the Call ID in the key's low half, which is the receiving peer's Call ID
    /// (`None` without a key; every checked version-1 packet has one).
    #[inline]
    pub fn call_id(&self) -> Option<u16> {
        self.has_key().then(|| be16(self.buffer.as_ref(), self.key_at() + 2))
    }

    /// The sequence number, when present.
    pub fn seq(&self) -> Option<u32> {
        self.has_seq().then(|| be32(self.buffer.as_ref(), self.seq_at()))
    }

    /// The acknowledgment number, when present (version 1).
    pub fn ack(&self) -> Option<u32> {
        self.has_ack().then(|| be32(self.buffer.as_ref(), self.ack_at()))
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Version 0 with C set: true when the checksum over header and payload verifies.
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::fold(checksum::sum(0, self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Version 1: sets the Call ID (PPTP's GRE has no checksum to update). Does nothing to a
    /// packet without a key.
    #[inline]
    pub fn set_call_id(&mut self, call_id: u16) {
        if self.has_key() {
            let at = self.key_at() + 2;
            put16(self.buffer.as_mut(), at, call_id);
        }
    }
}

/// The Call ID of an enhanced GRE (version 1) header that an ICMP error quotes: only its first
/// 8 bytes are sure to be there (RFC 792), which hold the flags, the protocol and the key with
/// the Call ID (RFC 2637 §4.1). `None` for anything else.
pub fn quoted_call_id(quoted: &[u8]) -> Option<u16> {
    let head = quoted.get(..8)?;
    let p = GrePacket::new_unchecked(head);
    let w = p.word();
    let v1 = p.version() == 1 && w & bit::KEY != 0 && w & (bit::CHECKSUM | bit::ROUTING) == 0;
    v1.then(|| be16(head, 6))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The first enhanced GRE packet of pptp_gre_data_only_natted-client.pcap: S set, A clear,
    // payload length 167, Call ID 55936, sequence 0x2583.
    const V1: [u8; 16] =
        [0x30, 0x01, 0x88, 0x0b, 0x00, 0xa7, 0xda, 0x80, 0x00, 0x00, 0x25, 0x83, 0xfd, 0x95, 0x2e, 0x0f];

    #[test]
    fn test_parse_v1() {
        let p = GrePacket::new_checked(&V1[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.protocol_type(), PROTO_PPP);
        assert_eq!(p.payload_len(), Some(167));
        assert_eq!(p.call_id(), Some(55936));
        assert_eq!(p.seq(), Some(0x2583));
        assert_eq!(p.ack(), None);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.payload(), &[0xfd, 0x95, 0x2e, 0x0f]);
    }

    #[test]
    fn test_set_call_id_and_ack_only() {
        // Ack-only (0x2081): key and acknowledgment, no sequence.
        let mut b = [0x20, 0x81, 0x88, 0x0b, 0x00, 0x00, 0x07, 0xf3, 0x00, 0x00, 0x00, 0x09];
        let mut p = GrePacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.ack(), Some(9));
        assert_eq!(p.seq(), None);
        p.set_call_id(0x1234);
        assert_eq!(p.call_id(), Some(0x1234));
        assert_eq!(GrePacket::new_checked(&b[..11]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn test_rejects() {
        let mut b = V1;
        b[0] = 0x10; // version 1 without the key
        assert_eq!(GrePacket::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = V1;
        b[1] = 0x02;
        assert_eq!(GrePacket::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        // Version 0 with checksum and key: 12-byte header.
        let v0 = [0xa0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 7];
        let p = GrePacket::new_checked(&v0[..]).unwrap();
        assert_eq!(p.key(), Some(7));
        assert_eq!(p.header_len(), 12);
    }

    proptest! {
        #[test]
        fn no_panic(mut b in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(mut p) = GrePacket::new_checked(&mut b[..]) {
                let _ = (p.version(), p.protocol_type(), p.key(), p.payload_len(), p.call_id(),
                    p.seq(), p.ack(), p.payload().len(), p.verify_checksum());
                p.set_call_id(1);
            }
        }
    }

    #[test]
    fn test_quoted_call_id() {
        // Version 1, K and S set, PPP, payload length 0, Call ID 0x1234, then a cut-off sequence.
        let q = [0x30, 0x01, 0x88, 0x0b, 0x00, 0x00, 0x12, 0x34];
        assert_eq!(quoted_call_id(&q), Some(0x1234));
        assert_eq!(quoted_call_id(&q[..7]), None);
        let v0 = [0x00, 0x00, 0x08, 0x00, 0, 0, 0, 0];
        assert_eq!(quoted_call_id(&v0), None);
    }
}
