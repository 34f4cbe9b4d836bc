//! Internet checksum: full computation (RFC 1071) and incremental update (RFC 1624, eqn. 3).
//!
//! The incremental form `HC' = ~(~HC + ~m + m')` is what the NAT uses on every translated
//! packet: it touches only the words that changed, so its cost does not grow with the payload.

use std::net::Ipv4Addr;

use crate::ip::AddrChange;

/// Adds `data` to a running one's-complement sum, as 16-bit big-endian words (RFC 1071 §4.1).
///
/// An odd trailing byte is padded with a zero byte. The result is not folded.
#[inline]
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Sum four 16-bit words at once; the u64 accumulator cannot overflow for any packet size.
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]))
            + u64::from(u16::from_be_bytes([c[2], c[3]]))
            + u64::from(u16::from_be_bytes([c[4], c[5]]))
            + u64::from(u16::from_be_bytes([c[6], c[7]]));
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds a running sum to 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the complement of its folded one's-complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// The sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 §3.1, RFC 768).
pub fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], protocol: u8, l4_len: u16) -> u64 {
    sum(0, &src) + sum(0, &dst) + u64::from(protocol) + u64::from(l4_len)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed
/// from `old` to `new`.
#[inline]
pub fn update_u16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// RFC 1624 eqn. 3 for two bytes `old` → `new` at byte offset `at` of the covered data,
/// aligned or not: at an odd offset the first byte is the low half of one word and the second
/// the high half of the next, which sums the same as the byte-swapped pair.
#[inline]
pub fn update_bytes(check: u16, at: usize, old: [u8; 2], new: [u8; 2]) -> u16 {
    if at.is_multiple_of(2) {
        update_u16(check, u16::from_be_bytes(old), u16::from_be_bytes(new))
    } else {
        update_u16(check, u16::from_le_bytes(old), u16::from_le_bytes(new))
    }
}

/// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, an SPI) that changed.
#[inline]
pub fn update_u32(check: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!check)
        + u64::from(!(old >> 16) as u16)
        + u64::from(!(old as u16))
        + u64::from((new >> 16) as u16)
        + u64::from(new as u16);
    !fold(acc)
}

/// RFC 1624 eqn. 3 for an IPv4 address that changed (a header, or a pseudo-header).
#[inline(always)]
pub fn update_addr(check: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(check, old.to_bits(), new.to_bits())
}

/// The combined adjustment for an address change and a port change, applied together.
///
/// Used by NAPT on TCP/UDP checksums, which cover the address through the pseudo-header.
#[inline]
pub fn update_addr_port(check: u16, addr: AddrChange, old_port: u16, new_port: u16) -> u16 {
    let (old_addr, new_addr) = (addr.old.to_bits(), addr.new.to_bits());
    let acc = u64::from(!check)
        + u64::from(!(old_addr >> 16) as u16)
        + u64::from(!(old_addr as u16))
        + u64::from((new_addr >> 16) as u16)
        + u64::from(new_addr as u16)
        + u64::from(!old_port)
        + u64::from(new_port);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: the sum of these bytes is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_is_zero_padded() {
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    proptest! {
        #[test]
        fn incremental_bytes_at_any_offset(mut data in proptest::collection::vec(any::<u8>(), 4..200),
                                           idx in any::<prop::sample::Index>(), new in any::<[u8; 2]>()) {
            let i = idx.index(data.len() - 1);
            let before = checksum(&data);
            let old = [data[i], data[i + 1]];
            data[i..i + 2].copy_from_slice(&new);
            let full = checksum(&data);
            let inc = update_bytes(before, i, old, new);
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
        }

        #[test]
        fn incremental_u16_matches_full(mut data in proptest::collection::vec(any::<u8>(), 2..200),
                                        idx in any::<prop::sample::Index>(), new in any::<u16>()) {
            let words = data.len() / 2;
            let i = idx.index(words) * 2;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data);
            let inc = update_u16(before, old, new);
            // One's-complement has two zeros (0x0000 and 0xffff); both verify the same way.
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff),
                "inc {inc:#06x} full {full:#06x}");
            let mut check_covered = data.clone();
            check_covered.extend_from_slice(&inc.to_be_bytes());
            if data.len() % 2 == 0 {
                prop_assert_eq!(fold(sum(0, &check_covered)), 0xffff);
            }
        }

        #[test]
        fn incremental_u32_matches_full(mut data in proptest::collection::vec(any::<u8>(), 4..200),
                                        idx in any::<prop::sample::Index>(), new in any::<u32>()) {
            let i = idx.index(data.len() / 2 - 1) * 2;
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            data[i..i + 4].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data);
            let inc = update_u32(before, old, new);
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
        }
    }
}
