//! Public port ownership per (public address, protocol), allocation and reuse delay
//! (RFC 4787 REQ-3/3a and §4.2.1 parity, RFC 6888 REQ-8).
//!
//! Each public address has one 65 536-entry array per protocol. An entry is free (0), owned by
//! a mapping (its index + 1), or resting until a second given in the low 31 bits of an entry
//! with the top bit set: a released port is not handed out again before the reuse delay.

const RESTING: u32 = 0x8000_0000;
/// Held back from the allocator for good (not resting, owned by no mapping).
const RESERVED: u32 = 0x7fff_ffff;

/// Port ownership for one public address and protocol.
pub(crate) struct PortMap {
    owner: Vec<u32>,
    used: u32,
}

impl PortMap {
    pub(crate) fn new() -> Self {
        Self { owner: vec![0; 65536], used: 0 }
    }

    /// Writes every page of the array once (its values unchanged), so that the first
    /// allocation in a page does not wait for the kernel to fault it in.
    pub(crate) fn prefault(&mut self) {
        for v in &mut self.owner {
            *v = std::hint::black_box(*v);
        }
    }

    /// The mapping that owns `port`, if one does.
    #[inline]
    pub(crate) fn owner(&self, port: u16) -> Option<u32> {
        let v = self.owner[usize::from(port)];
        if v == 0 || v == RESERVED || v & RESTING != 0 { None } else { Some(v - 1) }
    }

    fn is_free(&self, port: u16, now_secs: u64) -> bool {
        let v = self.owner[usize::from(port)];
        v == 0 || (v & RESTING != 0 && u64::from(v & !RESTING) <= now_secs)
    }

    /// Holds `port` back from allocation. A port a mapping owns now stays with it.
    pub(crate) fn reserve(&mut self, port: u16) {
        let v = &mut self.owner[usize::from(port)];
        if *v == 0 || *v & RESTING != 0 {
            *v = RESERVED;
        }
    }

    /// Ports owned by mappings now.
    pub(crate) fn used(&self) -> u32 {
        self.used
    }

    /// Picks a port for a mapping whose LAN port is `want` and gives it to `mapping`.
    ///
    /// Keeps `want` when free (port preservation); otherwise searches from a random start
    /// `rand` for a free port of the same parity in the same range: 1–1023 for a LAN port
    /// below 1024 (REQ-3a), 1024–65535 otherwise. Ports 0 is never used.
    #[inline]
    pub(crate) fn allocate(&mut self, want: u16, rand: u32, now_secs: u64, mapping: u32) -> Option<u16> {
        let port = if want != 0 && self.is_free(want, now_secs) {
            Some(want)
        } else {
            let (lo, hi) = if want < 1024 { (1u32, 1023u32) } else { (1024u32, 65535u32) };
            let parity = u32::from(want) & 1;
            // Candidates lo..=hi with the wanted parity, visited from a random one, wrapping.
            let first = if lo & 1 == parity { lo } else { lo + 1 };
            let count = (hi - first) / 2 + 1;
            let start = rand % count;
            (0..count).map(|i| (first + ((start + i) % count) * 2) as u16).find(|&p| self.is_free(p, now_secs))
        }?;
        self.owner[usize::from(port)] = mapping + 1;
        self.used += 1;
        Some(port)
    }

    /// Releases `port`; it rests until second `until` (RFC 6888 REQ-8).
    pub(crate) fn release(&mut self, port: u16, until: u64) {
        let until = u32::try_from(until).unwrap_or(u32::MAX) & !RESTING;
        self.owner[usize::from(port)] = RESTING | until;
        self.used = self.used.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserves_then_keeps_parity_and_range() {
        let mut m = PortMap::new();
        assert_eq!(m.allocate(5000, 7, 0, 1), Some(5000));
        let p = m.allocate(5000, 7, 0, 2).unwrap();
        assert!(p >= 1024 && p.is_multiple_of(2) && p != 5000);
        let q = m.allocate(501, 99, 0, 3).unwrap();
        assert_eq!(q, 501);
        let r = m.allocate(501, 99, 0, 4).unwrap();
        assert!(r < 1024 && r % 2 == 1 && r != 501);
        assert_eq!(m.owner(5000), Some(1));
        assert_eq!(m.used(), 4);
    }

    #[test]
    fn released_port_rests() {
        let mut m = PortMap::new();
        assert_eq!(m.allocate(40000, 0, 10, 0), Some(40000));
        m.release(40000, 130);
        assert_eq!(m.owner(40000), None);
        assert_ne!(m.allocate(40000, 0, 129, 1), Some(40000));
        assert_eq!(m.allocate(40000, 0, 130, 2), Some(40000));
    }

    #[test]
    fn exhaustion_is_reported() {
        let mut m = PortMap::new();
        // 512 odd ports in 1..=1023.
        for i in 0..512 {
            assert!(m.allocate(3, i, 0, i).is_some(), "port {i}");
        }
        assert_eq!(m.allocate(3, 0, 0, 999), None);
    }
}
