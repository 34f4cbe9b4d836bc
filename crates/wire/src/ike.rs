//! IKE header view: IKEv2 (RFC 7296 §3.1) and IKEv1/ISAKMP (RFC 2408 §3.1), which share the
//! layout: initiator SPI (IKEv1: cookie), responder SPI, next payload, version, exchange type,
//! flags, message ID, length. Also the demultiplexing of UDP port 4500 (RFC 3948 §2.2, §2.3):
//! NAT-keepalive (one 0xFF byte), IKE behind the 4-byte non-ESP marker, or ESP.
//!
//! IKE is never rewritten by the NAT; the SPIs tell apart clients that share port 500.

use crate::{Error, Result, be32};

/// The IKE header length.
pub const HEADER_LEN: usize = 28;

/// Exchange types.
pub mod exchange {
    /// IKEv1 Identity Protection, "Main Mode" (RFC 2408 §4.5).
    pub const V1_MAIN: u8 = 2;
    /// IKEv1 Aggressive Mode (RFC 2408 §4.7).
    pub const V1_AGGRESSIVE: u8 = 4;
    /// IKEv1 Informational (RFC 2408 §4.8).
    pub const V1_INFORMATIONAL: u8 = 5;
    /// IKEv1 Quick Mode (RFC 2409 §5.5).
    pub const V1_QUICK: u8 = 32;
    /// IKE_SA_INIT (RFC 7296 §1.2).
    pub const IKE_SA_INIT: u8 = 34;
    /// IKE_AUTH (RFC 7296 §1.2).
    pub const IKE_AUTH: u8 = 35;
    /// CREATE_CHILD_SA (RFC 7296 §1.3).
    pub const CREATE_CHILD_SA: u8 = 36;
    /// INFORMATIONAL (RFC 7296 §1.4).
    pub const INFORMATIONAL: u8 = 37;
}

/// IKEv2 header flags (RFC 7296 §3.1).
pub mod flags {
    /// Sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// A higher major version is supported.
    pub const VERSION: u8 = 0x10;
    /// A response.
    pub const RESPONSE: u8 = 0x20;
}

/// A view of an IKE message header.
#[derive(Debug, Clone)]
pub struct IkePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IkePacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer holding the 28-byte header, of major version 1 or 2, whose length field
    /// is at least the header. The length is not required to match the buffer: IKE messages
    /// arrive fragmented and truncated in captures.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if !matches!(p.major_version(), 1 | 2) {
            return Err(Error::BadVersion);
        }
        if (p.length() as usize) < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        Ok(p)
    }

    /// The initiator's SPI (IKEv1: initiator cookie).
    #[inline]
    pub fn initiator_spi(&self) -> u64 {
        let b = self.buffer.as_ref();
        (u64::from(be32(b, 0)) << 32) | u64::from(be32(b, 4))
    }

    /// The responder's SPI (IKEv1: responder cookie); zero in a first message.
    #[inline]
    pub fn responder_spi(&self) -> u64 {
        let b = self.buffer.as_ref();
        (u64::from(be32(b, 8)) << 32) | u64::from(be32(b, 12))
    }

    /// The first payload's type.
    pub fn next_payload(&self) -> u8 {
        self.buffer.as_ref()[16]
    }

    /// The major version (1 for ISAKMP/IKEv1, 2 for IKEv2).
    #[inline]
    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[17] >> 4
    }

    /// The minor version.
    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[17] & 0x0f
    }

    /// The exchange type (see [`exchange`]).
    pub fn exchange_type(&self) -> u8 {
        self.buffer.as_ref()[18]
    }

    /// The flags byte (see [`flags`] for IKEv2).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[19]
    }

    /// IKEv2: the message is a response.
    pub fn is_response(&self) -> bool {
        self.major_version() == 2 && self.flags() & flags::RESPONSE != 0
    }

    /// IKEv2: sent by the original initiator of the IKE SA.
    pub fn from_initiator(&self) -> bool {
        self.major_version() == 2 && self.flags() & flags::INITIATOR != 0
    }

    /// The message ID.
    pub fn message_id(&self) -> u32 {
        be32(self.buffer.as_ref(), 20)
    }

    /// The length field: the whole message, header included.
    pub fn length(&self) -> u32 {
        be32(self.buffer.as_ref(), 24)
    }
}

/// What a UDP 4500 payload is (RFC 3948 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Udp4500Kind {
    /// A NAT-keepalive: exactly one byte, 0xFF (RFC 3948 §2.3).
    Keepalive,
    /// IKE after the 4-byte non-ESP marker (RFC 3948 §2.2); the IKE header starts at offset 4.
    Ike,
    /// ESP: the first 4 bytes are a non-zero SPI (RFC 3948 §2.1).
    Esp,
    /// None of these (too short, or an IKE marker without a valid IKE header).
    Malformed,
}

/// Classifies a UDP 4500 payload.
pub fn classify_udp_4500(payload: &[u8]) -> Udp4500Kind {
    match payload {
        [0xff] => Udp4500Kind::Keepalive,
        [0, 0, 0, 0, ike @ ..] => {
            if IkePacket::new_checked(ike).is_ok() {
                Udp4500Kind::Ike
            } else {
                Udp4500Kind::Malformed
            }
        }
        p if p.len() >= crate::esp::HEADER_LEN => Udp4500Kind::Esp,
        _ => Udp4500Kind::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // Main Mode message 1 of ikev1_main_quick_labA.pcap.
    const V1: [u8; 28] = [
        0xe4, 0x7a, 0x59, 0x1f, 0xd0, 0x57, 0x58, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x10, 0x02, 0x00, 0, 0, 0, 0, 0,
        0, 0, 0xa8,
    ];
    // IKE_SA_INIT request of ikev2_esp_labC.pcapng.
    const V2: [u8; 28] = [
        0x05, 0xac, 0x0f, 0x4d, 0x12, 0x20, 0x13, 0xf4, 0, 0, 0, 0, 0, 0, 0, 0, 0x21, 0x20, 0x22, 0x08, 0, 0, 0, 0, 0,
        0, 0x01, 0x66,
    ];

    #[test]
    fn test_parse_v1() {
        let p = IkePacket::new_checked(&V1[..]).unwrap();
        assert_eq!(p.initiator_spi(), 0xe47a_591f_d057_587f);
        assert_eq!(p.responder_spi(), 0);
        assert_eq!(p.major_version(), 1);
        assert_eq!(p.exchange_type(), exchange::V1_MAIN);
        assert_eq!(p.length(), 168);
        assert!(!p.is_response());
    }

    #[test]
    fn test_parse_v2() {
        let p = IkePacket::new_checked(&V2[..]).unwrap();
        assert_eq!(p.initiator_spi(), 0x05ac_0f4d_1220_13f4);
        assert_eq!(p.major_version(), 2);
        assert_eq!(p.exchange_type(), exchange::IKE_SA_INIT);
        assert!(p.from_initiator());
        assert!(!p.is_response());
        assert_eq!(p.length(), 358);
    }

    #[test]
    fn test_rejects() {
        assert_eq!(IkePacket::new_checked(&V2[..27]).unwrap_err(), Error::Truncated);
        let mut bad = V2;
        bad[17] = 0x30;
        assert_eq!(IkePacket::new_checked(&bad[..]).unwrap_err(), Error::BadVersion);
        let mut bad = V2;
        bad[26] = 0;
        bad[27] = 20;
        assert_eq!(IkePacket::new_checked(&bad[..]).unwrap_err(), Error::BadHeaderLen);
    }

    #[test]
    fn test_udp_4500() {
        // From ikev1_natt_keepalive_esp-in-udp_openswan.pcap: a keepalive, ESP SPI 0xf4dc0ae5.
        assert_eq!(classify_udp_4500(&[0xff]), Udp4500Kind::Keepalive);
        assert_eq!(classify_udp_4500(&[0xf4, 0xdc, 0x0a, 0xe5, 0, 0, 0, 1, 0xfc, 0xe4, 0x09, 0xc4]), Udp4500Kind::Esp);
        let mut ike = vec![0, 0, 0, 0];
        ike.extend_from_slice(&V1);
        assert_eq!(classify_udp_4500(&ike), Udp4500Kind::Ike);
        assert_eq!(classify_udp_4500(&[0, 0, 0, 0, 1]), Udp4500Kind::Malformed);
        assert_eq!(classify_udp_4500(&[1, 2, 3]), Udp4500Kind::Malformed);
        assert_eq!(classify_udp_4500(&[]), Udp4500Kind::Malformed);
    }

    proptest! {
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = classify_udp_4500(&b);
            if let Ok(p) = IkePacket::new_checked(&b[..]) {
                let _ = (p.initiator_spi(), p.responder_spi(), p.next_payload(), p.minor_version(),
                    p.exchange_type(), p.flags(), p.is_response(), p.from_initiator(), p.message_id(), p.length());
            }
        }
    }
}
