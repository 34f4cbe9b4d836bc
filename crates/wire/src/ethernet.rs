//! Ethernet II frame view (IEEE 802.3 clause 3.2.6 "Type" interpretation) with 802.1Q and
//! 802.1ad VLAN tags (IEEE 802.1Q §9.6).

use crate::{Error, Result, be16, put16};

/// A MAC address.
pub type MacAddr = [u8; 6];

/// Ethertypes natpass handles.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

/// The untagged header length.
pub const HEADER_LEN: usize = 14;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it. See the crate's invariant.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer holding the header and up to two VLAN tags.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.header_len() > p.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// The number of VLAN tags (0, 1 or 2), as far as the buffer shows them.
    fn tags(&self) -> usize {
        let b = self.buffer.as_ref();
        let is_tag = |at: usize| {
            b.get(at..at + 2)
                .is_some_and(|t| matches!(u16::from_be_bytes([t[0], t[1]]), ethertype::VLAN | ethertype::QINQ))
        };
        match (is_tag(12), is_tag(16)) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        }
    }

    /// The header length: 14, plus 4 per VLAN tag.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + 4 * self.tags()
    }

    /// The destination MAC address.
    pub fn dst(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }

    /// The source MAC address.
    pub fn src(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        [b[6], b[7], b[8], b[9], b[10], b[11]]
    }

    /// The ethertype of the payload, after any VLAN tags.
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), self.header_len() - 2)
    }

    /// The VLAN ID of the outer tag, if tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        (self.tags() > 0).then(|| be16(self.buffer.as_ref(), 14) & 0x0fff)
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac);
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// Writes an untagged 14-byte header into `buf[..14]`; `buf` must be at least that long.
pub fn emit_header(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    put16(buf, 12, ethertype);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn test_untagged_and_tagged() {
        let mut f = [0u8; 20];
        emit_header(&mut f, [1; 6], [2; 6], ethertype::IPV4);
        let p = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((p.dst(), p.src(), p.ethertype(), p.vlan_id()), ([1; 6], [2; 6], ethertype::IPV4, None));
        assert_eq!(p.payload().len(), 6);
        let mut t = [0u8; 22];
        t[12..18].copy_from_slice(&[0x81, 0x00, 0x20, 0x05, 0x08, 0x06]);
        let p = EthernetFrame::new_checked(&t[..]).unwrap();
        assert_eq!((p.ethertype(), p.vlan_id(), p.header_len()), (ethertype::ARP, Some(5), 18));
        assert_eq!(EthernetFrame::new_checked(&t[..17]).unwrap_err(), Error::Truncated);
    }

    proptest! {
        #[test]
        fn no_panic(mut b in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(mut p) = EthernetFrame::new_checked(&mut b[..]) {
                let _ = (p.dst(), p.src(), p.ethertype(), p.vlan_id(), p.payload().len());
                p.set_dst([0; 6]);
                p.set_src([0; 6]);
                let _ = p.payload_mut().len();
            }
        }
    }
}
