//! ARP view for Ethernet and IPv4 (RFC 826): the router answers for its own addresses and
//! resolves its next hops with it.

use std::net::Ipv4Addr;

use crate::{Error, Result, be16, be32, put16, put32};

/// The length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Operation: request.
pub const REQUEST: u16 = 1;
/// Operation: reply.
pub const REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer holding 28 bytes of ARP for hardware type 1 (Ethernet), protocol 0x0800
    /// with 6- and 4-byte addresses; anything else is `Malformed`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(Error::Malformed);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// The operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> [u8; 6] {
        let b = self.buffer.as_ref();
        [b[8], b[9], b[10], b[11], b[12], b[13]]
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), 14))
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> [u8; 6] {
        let b = self.buffer.as_ref();
        [b[18], b[19], b[20], b[21], b[22], b[23]]
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(be32(self.buffer.as_ref(), 24))
    }
}

/// One end of an ARP exchange: a hardware (MAC) and a protocol (IPv4) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpEnd {
    /// The hardware address.
    pub mac: [u8; 6],
    /// The IPv4 address.
    pub ip: Ipv4Addr,
}

/// Writes a 28-byte Ethernet/IPv4 ARP packet (operation `op`, from `sender` to `target`) into
/// `buf[..28]`; `buf` must be that long.
pub fn emit(buf: &mut [u8], op: u16, sender: ArpEnd, target: ArpEnd) {
    put16(buf, 0, 1);
    put16(buf, 2, 0x0800);
    buf[4] = 6;
    buf[5] = 4;
    put16(buf, 6, op);
    buf[8..14].copy_from_slice(&sender.mac);
    put32(buf, 14, sender.ip.to_bits());
    buf[18..24].copy_from_slice(&target.mac);
    put32(buf, 24, target.ip.to_bits());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn test_emit_parse() {
        let mut b = [0u8; 28];
        let (a, b2) = (Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::new(192, 168, 1, 2));
        emit(&mut b, REQUEST, ArpEnd { mac: [2; 6], ip: a }, ArpEnd { mac: [0; 6], ip: b2 });
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), REQUEST);
        assert_eq!(p.sender_mac(), [2; 6]);
        assert_eq!(p.sender_ip(), a);
        assert_eq!(p.target_ip(), b2);
        assert_eq!(p.target_mac(), [0; 6]);
        let mut bad = b;
        bad[5] = 16;
        assert_eq!(ArpPacket::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
        assert_eq!(ArpPacket::new_checked(&b[..27]).unwrap_err(), Error::Truncated);
    }

    proptest! {
        #[test]
        fn no_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&b[..]) {
                let _ = (p.operation(), p.sender_mac(), p.sender_ip(), p.target_mac(), p.target_ip());
            }
        }
    }
}
