//! ICMPv4 view (RFC 792): echo query messages (identifier, sequence) and error messages with
//! their embedded datagram (RFC 792, RFC 1812 §4.3.2.3), including the next-hop MTU of
//! Fragmentation-Needed (RFC 1191 §4).

use crate::checksum;
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
}
