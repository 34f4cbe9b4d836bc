//! L2TP header views: L2TPv2 (RFC 2661 §3.1) with AVP iteration for control messages
//! (RFC 2661 §4.1), and the L2TPv3-over-UDP header (RFC 3931 §4.1.2.1, §3.2.1).
//!
//! L2TP is never rewritten by the NAT; tunnel and session IDs name the tunnels it tracks.

use crate::{Error, Result, be16, be32};

/// Control message types (RFC 2661 §3.2, the Message Type AVP).
pub mod message {
    /// Start-Control-Connection-Request.
    pub const SCCRQ: u16 = 1;
    /// Start-Control-Connection-Reply.
    pub const SCCRP: u16 = 2;
    /// Start-Control-Connection-Connected.
    pub const SCCCN: u16 = 3;
    /// Stop-Control-Connection-Notification.
    pub const STOPCCN: u16 = 4;
    /// Hello.
    pub const HELLO: u16 = 6;
    /// Outgoing-Call-Request.
    pub const OCRQ: u16 = 7;
    /// Outgoing-Call-Reply.
    pub const OCRP: u16 = 8;
    /// Outgoing-Call-Connected.
    pub const OCCN: u16 = 9;
    /// Incoming-Call-Request.
    pub const ICRQ: u16 = 10;
    /// Incoming-Call-Reply.
    pub const ICRP: u16 = 11;
    /// Incoming-Call-Connected.
    pub const ICCN: u16 = 12;
    /// Call-Disconnect-Notify.
    pub const CDN: u16 = 14;
    /// WAN-Error-Notify.
    pub const WEN: u16 = 15;
    /// Set-Link-Info.
    pub const SLI: u16 = 16;
}

/// AVP attribute types used by natpass (RFC 2661 §4.4).
pub mod avp {
    /// Message Type.
    pub const MESSAGE_TYPE: u16 = 0;
    /// Assigned Tunnel ID.
    pub const ASSIGNED_TUNNEL_ID: u16 = 9;
    /// Assigned Session ID.
    pub const ASSIGNED_SESSION_ID: u16 = 14;
}

mod bit {
    pub(super) const TYPE: u8 = 0x80;
    pub(super) const LENGTH: u8 = 0x40;
    pub(super) const SEQUENCE: u8 = 0x08;
    pub(super) const OFFSET: u8 = 0x02;
}

/// A view of an L2TP message carried in UDP (version 2, or version 3 per RFC 3931 §4.1.2.1).
#[derive(Debug, Clone)]
pub struct L2tpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> L2tpPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking the version (2 or 3), that every field the flags announce
    /// is present, and that a length field, when present, fits the buffer. Control messages
    /// must have the length and sequence fields (RFC 2661 §3.1).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < 2 {
            return Err(Error::Truncated);
        }
        match p.version() {
            2 | 3 => {}
            _ => return Err(Error::BadVersion),
        }
        if p.is_control() && (b[0] & bit::LENGTH == 0 || b[0] & bit::SEQUENCE == 0) {
            return Err(Error::Malformed);
        }
        let hl = p.fixed_len();
        if b.len() < hl {
            return Err(Error::Truncated);
        }
        if p.version() == 2 && b[0] & bit::OFFSET != 0 {
            let pad = usize::from(be16(b, hl - 2));
            if b.len() < hl + pad {
                return Err(Error::Truncated);
            }
        }
        if let Some(len) = p.length() {
            let len = usize::from(len);
            if len < p.header_len() {
                return Err(Error::BadHeaderLen);
            }
            if len > b.len() {
                return Err(Error::Truncated);
            }
        }
        Ok(p)
    }

    /// The protocol version: 2 (RFC 2661) or 3 (RFC 3931).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x0f
    }

    /// A control message (T bit), as opposed to data.
    #[inline]
    pub fn is_control(&self) -> bool {
        self.buffer.as_ref()[0] & bit::TYPE != 0
    }

    fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The header length without an offset pad.
    fn fixed_len(&self) -> usize {
        let f = self.flags();
        if self.version() == 3 {
            // Control: flags, length, connection ID, Ns, Nr. Data: flags/reserved, session ID.
            return if self.is_control() { 12 } else { 8 };
        }
        let mut n = 2 + 4;
        if f & bit::LENGTH != 0 {
            n += 2;
        }
        if f & bit::SEQUENCE != 0 {
            n += 4;
        }
        if f & bit::OFFSET != 0 {
            n += 2;
        }
        n
    }

    /// The header length, offset padding included.
    pub fn header_len(&self) -> usize {
        let n = self.fixed_len();
        if self.version() == 2 && self.flags() & bit::OFFSET != 0 {
            n + usize::from(be16(self.buffer.as_ref(), n - 2))
        } else {
            n
        }
    }

    /// The length field, when present.
    pub fn length(&self) -> Option<u16> {
        let b = self.buffer.as_ref();
        match self.version() {
            3 if self.is_control() => Some(be16(b, 2)),
            2 if b[0] & bit::LENGTH != 0 => Some(be16(b, 2)),
            _ => None,
        }
    }

    fn ids_at(&self) -> usize {
        if self.flags() & bit::LENGTH != 0 { 4 } else { 2 }
    }

    /// L2TPv2: the tunnel ID (the receiver's). L2TPv3: none (see [`L2tpPacket::connection_id`]).
    pub fn tunnel_id(&self) -> Option<u16> {
        (self.version() == 2).then(|| be16(self.buffer.as_ref(), self.ids_at()))
    }

    /// L2TPv2: the session ID (the receiver's); L2TPv3 data: the 32-bit session ID.
    pub fn session_id(&self) -> Option<u32> {
        match self.version() {
            2 => Some(u32::from(be16(self.buffer.as_ref(), self.ids_at() + 2))),
            _ if !self.is_control() => Some(be32(self.buffer.as_ref(), 4)),
            _ => None,
        }
    }

    /// L2TPv3 control: the control connection ID.
    pub fn connection_id(&self) -> Option<u32> {
        (self.version() == 3 && self.is_control()).then(|| be32(self.buffer.as_ref(), 4))
    }

    /// Ns and Nr, when the sequence fields are present.
    pub fn sequence(&self) -> Option<(u16, u16)> {
        let b = self.buffer.as_ref();
        match self.version() {
            3 if self.is_control() => Some((be16(b, 8), be16(b, 10))),
            2 if b[0] & bit::SEQUENCE != 0 => {
                let at = self.ids_at() + 4;
                Some((be16(b, at), be16(b, at + 2)))
            }
            _ => None,
        }
    }

    /// The payload after the header, up to the length field when present.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = self.length().map_or(b.len(), usize::from);
        &b[self.header_len()..end]
    }

    /// The AVPs of a control message (empty for data messages).
    pub fn avps(&self) -> Avps<'_> {
        Avps { rest: if self.is_control() { self.payload() } else { &[] } }
    }

    /// The Message Type AVP's value: the first AVP of a control message (RFC 2661 §4.4.1).
    /// `None` for a ZLB acknowledgment (no AVPs) and for data messages.
    pub fn message_type(&self) -> Option<u16> {
        let first = self.avps().next()?.ok()?;
        (first.vendor_id == 0 && first.attr_type == avp::MESSAGE_TYPE && first.value.len() == 2)
            .then(|| be16(first.value, 0))
    }
}

/// One Attribute-Value Pair (RFC 2661 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avp<'a> {
    /// The M bit.
    pub mandatory: bool,
    /// The H bit: the value is hidden (encrypted).
    pub hidden: bool,
    /// The vendor ID (0 for IETF attributes).
    pub vendor_id: u16,
    /// The attribute type.
    pub attr_type: u16,
    /// The value.
    pub value: &'a [u8],
}

/// An iterator over AVPs. Yields an error item and stops at a malformed AVP.
#[derive(Clone, Debug)]
pub struct Avps<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Avps<'a> {
    type Item = Result<Avp<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rest;
        if r.is_empty() {
            return None;
        }
        if r.len() < 6 {
            self.rest = &[];
            return Some(Err(Error::Truncated));
        }
        let word = be16(r, 0);
        let len = usize::from(word & 0x03ff);
        if len < 6 || len > r.len() {
            self.rest = &[];
            return Some(Err(Error::BadHeaderLen));
        }
        self.rest = &r[len..];
        Some(Ok(Avp {
            mandatory: word & 0x8000 != 0,
            hidden: word & 0x4000 != 0,
            vendor_id: be16(r, 2),
            attr_type: be16(r, 4),
            value: &r[6..len],
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The first 28 bytes of the SCCRQ (frame 45) of l2tpv2_full_control_and_data.pcap, its
    // length field cut from 117 to 28: T, L, S set; tunnel 0, session 0; Ns 0, Nr 0;
    // Message Type = 1; Protocol Version 1.0.
    const SCCRQ_HEAD: [u8; 28] = [
        0xc8, 0x02, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x08, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x80, 0x08, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00,
    ];
    // The first 10 bytes of a data message (frame 11), length cut to 10: L set, tunnel
    // 56152, session 24, PPP.
    const DATA: [u8; 10] = [0x40, 0x02, 0x00, 0x0a, 0xdb, 0x58, 0x00, 0x18, 0xff, 0x03];

    #[test]
    fn test_parse_control_and_avps() {
        let p = L2tpPacket::new_checked(&SCCRQ_HEAD[..]).unwrap();
        assert!(p.is_control());
        assert_eq!(p.version(), 2);
        assert_eq!(p.tunnel_id(), Some(0));
        assert_eq!(p.sequence(), Some((0, 0)));
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.message_type(), Some(message::SCCRQ));
        let avps: Vec<_> = p.avps().collect::<Result<_>>().unwrap();
        assert_eq!(avps.len(), 2);
        assert_eq!(avps[1].attr_type, 2);
        assert_eq!(avps[1].value, &[1, 0]);
        assert!(avps[1].mandatory);
    }

    #[test]
    fn test_parse_data() {
        let p = L2tpPacket::new_checked(&DATA[..]).unwrap();
        assert!(!p.is_control());
        assert_eq!(p.tunnel_id(), Some(56152));
        assert_eq!(p.session_id(), Some(24));
        assert_eq!(p.payload(), &[0xff, 0x03]);
        assert_eq!(p.message_type(), None);
    }

    #[test]
    fn test_rejects_and_bad_avp() {
        let mut b = SCCRQ_HEAD;
        b[1] = 0x01;
        assert_eq!(L2tpPacket::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = SCCRQ_HEAD;
        b[0] = 0x80; // control without length and sequence
        assert_eq!(L2tpPacket::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = SCCRQ_HEAD;
        b[3] = 0x40;
        assert_eq!(L2tpPacket::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = SCCRQ_HEAD;
        b[13] = 0x03; // first AVP length 3
        let p = L2tpPacket::new_checked(&b[..]).unwrap();
        let items: Vec<_> = p.avps().collect();
        assert_eq!(items, vec![Err(Error::BadHeaderLen)]);
    }

    #[test]
    fn test_v3_control() {
        let b = [0xc8, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, 0x00, 0x02];
        let p = L2tpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.connection_id(), Some(0x1234));
        assert_eq!(p.sequence(), Some((1, 2)));
        assert_eq!(p.tunnel_id(), None);
    }

    proptest! {
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = L2tpPacket::new_checked(&b[..]) {
                let _ = (p.tunnel_id(), p.session_id(), p.connection_id(), p.sequence(),
                    p.payload().len(), p.message_type(), p.header_len());
                for a in p.avps() { let _ = a; }
            }
        }
    }
}
