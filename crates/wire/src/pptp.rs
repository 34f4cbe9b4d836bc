//! PPTP control messages on TCP 1723 (RFC 2637 §1.4, §2): the 12-byte header, the fifteen
//! control message types with their fixed lengths, and the Call ID fields the NAT translates.
//!
//! Control messages ride a TCP stream, so one segment may hold several and one message may
//! span segments; [`next_message_len`] reads a message's length from its first two bytes.

use crate::{Error, Result, be16, be32, put16};

/// The header: length, PPTP message type, magic cookie, control message type, reserved.
pub const HEADER_LEN: usize = 12;
/// The magic cookie (RFC 2637 §1.4).
pub const MAGIC_COOKIE: u32 = 0x1a2b_3c4d;

/// Control message types (RFC 2637 §1.4), in RFC order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControlMessageType {
    /// Start-Control-Connection-Request (§2.1).
    StartControlConnectionRequest = 1,
    /// Start-Control-Connection-Reply (§2.2).
    StartControlConnectionReply = 2,
    /// Stop-Control-Connection-Request (§2.3).
    StopControlConnectionRequest = 3,
    /// Stop-Control-Connection-Reply (§2.4).
    StopControlConnectionReply = 4,
    /// Echo-Request (§2.5).
    EchoRequest = 5,
    /// Echo-Reply (§2.6).
    EchoReply = 6,
    /// Outgoing-Call-Request (§2.7), PNS → PAC.
    OutgoingCallRequest = 7,
    /// Outgoing-Call-Reply (§2.8), PAC → PNS.
    OutgoingCallReply = 8,
    /// Incoming-Call-Request (§2.9), PAC → PNS.
    IncomingCallRequest = 9,
    /// Incoming-Call-Reply (§2.10), PNS → PAC.
    IncomingCallReply = 10,
    /// Incoming-Call-Connected (§2.11), PNS → PAC.
    IncomingCallConnected = 11,
    /// Call-Clear-Request (§2.12), PNS → PAC.
    CallClearRequest = 12,
    /// Call-Disconnect-Notify (§2.13), PAC → PNS.
    CallDisconnectNotify = 13,
    /// WAN-Error-Notify (§2.14), PAC → PNS.
    WanErrorNotify = 14,
    /// Set-Link-Info (§2.15), PNS → PAC.
    SetLinkInfo = 15,
}

/// Whose Call ID a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallIdOwner {
    /// The PPTP Network Server's: in natpass, the client behind the NAT.
    Pns,
    /// The PPTP Access Concentrator's: the server on the WAN.
    Pac,
}

impl ControlMessageType {
    /// From the control message type field.
    pub fn from_u16(v: u16) -> Option<Self> {
        use ControlMessageType::*;
        Some(match v {
            1 => StartControlConnectionRequest,
            2 => StartControlConnectionReply,
            3 => StopControlConnectionRequest,
            4 => StopControlConnectionReply,
            5 => EchoRequest,
            6 => EchoReply,
            7 => OutgoingCallRequest,
            8 => OutgoingCallReply,
            9 => IncomingCallRequest,
            10 => IncomingCallReply,
            11 => IncomingCallConnected,
            12 => CallClearRequest,
            13 => CallDisconnectNotify,
            14 => WanErrorNotify,
            15 => SetLinkInfo,
            _ => return None,
        })
    }

    /// The message's length on the wire (RFC 2637 §2).
    pub fn wire_len(self) -> usize {
        use ControlMessageType::*;
        match self {
            StartControlConnectionRequest | StartControlConnectionReply => 156,
            StopControlConnectionRequest | StopControlConnectionReply | EchoRequest => 16,
            EchoReply => 20,
            OutgoingCallRequest => 168,
            OutgoingCallReply => 32,
            IncomingCallRequest => 220,
            IncomingCallReply | SetLinkInfo => 24,
            IncomingCallConnected => 28,
            CallClearRequest => 16,
            CallDisconnectNotify => 148,
            WanErrorNotify => 40,
        }
    }

    /// The Call ID fields of the message: byte offset from the message start, and whose Call
    /// ID the RFC says it holds.
    pub fn call_id_fields(self) -> &'static [(usize, CallIdOwner)] {
        use CallIdOwner::{Pac, Pns};
        use ControlMessageType::*;
        match self {
            // §2.7: Call ID (the PNS's).
            OutgoingCallRequest => &[(12, Pns)],
            // §2.8: Call ID (the PAC's), Peer's Call ID (the PNS's).
            OutgoingCallReply => &[(12, Pac), (14, Pns)],
            // §2.9: Call ID (the PAC's).
            IncomingCallRequest => &[(12, Pac)],
            // §2.10: Call ID (the PNS's), Peer's Call ID (the PAC's).
            IncomingCallReply => &[(12, Pns), (14, Pac)],
            // §2.11: Peer's Call ID (the PAC's).
            IncomingCallConnected => &[(12, Pac)],
            // §2.12: Call ID (the PNS's).
            CallClearRequest => &[(12, Pns)],
            // §2.13: Call ID (the PAC's).
            CallDisconnectNotify => &[(12, Pac)],
            // §2.14: Peer's Call ID (the PNS's).
            WanErrorNotify => &[(12, Pns)],
            // §2.15: Peer's Call ID (the PAC's).
            SetLinkInfo => &[(12, Pac)],
            _ => &[],
        }
    }
}

/// The length of the control message at the start of `stream`, once two bytes are there.
pub fn next_message_len(stream: &[u8]) -> Option<usize> {
    (stream.len() >= 2).then(|| usize::from(be16(stream, 0)))
}

/// A view of one PPTP control message.
#[derive(Debug, Clone)]
pub struct PptpControl<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PptpControl<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer holding a whole control message: PPTP message type 1, the magic cookie,
    /// a known control message type, and the length the RFC gives that type.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        let b = p.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, 2) != 1 || be32(b, 4) != MAGIC_COOKIE {
            return Err(Error::Malformed);
        }
        let kind = ControlMessageType::from_u16(be16(b, 8)).ok_or(Error::Malformed)?;
        let len = usize::from(p.length());
        if len != kind.wire_len() {
            return Err(Error::BadHeaderLen);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// The length field.
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// The control message type.
    pub fn message_type(&self) -> Option<ControlMessageType> {
        ControlMessageType::from_u16(be16(self.buffer.as_ref(), 8))
    }

    /// The Call ID fields this message carries (see [`ControlMessageType::call_id_fields`]).
    pub fn call_id_fields(&self) -> &'static [(usize, CallIdOwner)] {
        self.message_type().map_or(&[], ControlMessageType::call_id_fields)
    }

    /// The Call ID at `offset` (one of [`PptpControl::call_id_fields`]).
    pub fn call_id_at(&self, offset: usize) -> Option<u16> {
        self.call_id_fields().iter().any(|f| f.0 == offset).then(|| be16(self.buffer.as_ref(), offset))
    }

    /// The first Call ID field owned by `owner`, with its offset.
    pub fn call_id_of(&self, owner: CallIdOwner) -> Option<(usize, u16)> {
        let &(at, _) = self.call_id_fields().iter().find(|f| f.1 == owner)?;
        Some((at, be16(self.buffer.as_ref(), at)))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> PptpControl<T> {
    /// Sets the Call ID at `offset`; false (nothing written) when the message has no Call ID
    /// field there.
    pub fn set_call_id_at(&mut self, offset: usize, call_id: u16) -> bool {
        if !self.call_id_fields().iter().any(|f| f.0 == offset) {
            return false;
        }
        put16(self.buffer.as_mut(), offset, call_id);
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The Outgoing-Call-Reply of pptp_full_windows-client_pptpd.pcapng (Call ID 0, peer 17611).
    const OCRP: [u8; 32] = [
        0x00, 0x20, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x44, 0xcb, 0x01, 0x00,
        0x00, 0x00, 0x05, 0xf5, 0xe1, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn test_parse_ocrp() {
        let p = PptpControl::new_checked(&OCRP[..]).unwrap();
        assert_eq!(p.message_type(), Some(ControlMessageType::OutgoingCallReply));
        assert_eq!(p.call_id_of(CallIdOwner::Pac), Some((12, 0)));
        assert_eq!(p.call_id_of(CallIdOwner::Pns), Some((14, 17611)));
        assert_eq!(p.call_id_at(16), None);
        assert_eq!(next_message_len(&OCRP), Some(32));
        assert_eq!(next_message_len(&OCRP[..1]), None);
    }

    #[test]
    fn test_set_call_id() {
        let mut b = OCRP;
        let mut p = PptpControl::new_checked(&mut b[..]).unwrap();
        assert!(p.set_call_id_at(14, 0x0102));
        assert!(!p.set_call_id_at(16, 0x0102));
        assert_eq!(p.call_id_at(14), Some(0x0102));
    }

    #[test]
    fn test_rejects() {
        assert_eq!(PptpControl::new_checked(&OCRP[..31]).unwrap_err(), Error::Truncated);
        let mut b = OCRP;
        b[7] = 0;
        assert_eq!(PptpControl::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = OCRP;
        b[1] = 0x21;
        assert_eq!(PptpControl::new_checked(&b[..]).unwrap_err(), Error::BadHeaderLen);
        let mut b = OCRP;
        b[9] = 16;
        assert_eq!(PptpControl::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn every_type_has_its_length() {
        let lens: Vec<usize> = (1..=15).filter_map(ControlMessageType::from_u16).map(|t| t.wire_len()).collect();
        assert_eq!(lens, [156, 156, 16, 16, 16, 20, 168, 32, 220, 24, 28, 16, 148, 40, 24]);
    }

    proptest! {
        #[test]
        fn no_panic(mut b in proptest::collection::vec(any::<u8>(), 0..240), kind in 1u16..=15) {
            if b.len() >= 12 {
                let len = ControlMessageType::from_u16(kind).map_or(0, |t| t.wire_len());
                b[0..2].copy_from_slice(&(len as u16).to_be_bytes());
                b[2..4].copy_from_slice(&1u16.to_be_bytes());
                b[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                b[8..10].copy_from_slice(&kind.to_be_bytes());
            }
            if let Ok(mut p) = PptpControl::new_checked(&mut b[..]) {
                for &(at, _) in p.call_id_fields() {
                    let _ = p.call_id_at(at);
                    p.set_call_id_at(at, 7);
                }
                let _ = (p.call_id_of(CallIdOwner::Pns), p.call_id_of(CallIdOwner::Pac));
            }
        }
    }
}
