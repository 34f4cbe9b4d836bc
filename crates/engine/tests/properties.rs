//! Property tests: translation invariants over random traffic, and no panic on any input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use natpass_engine::{Filtering, Side, Verdict};
use proptest::prelude::*;

/// Swaps source and destination (addresses and ports/identifier), as the peer's answer would;
/// a TCP answer is the SYN-ACK that acknowledges the segment, so it passes the window check.
fn mirror(p: &[u8]) -> Vec<u8> {
    let s = seen(p);
    let (h, rest) = etherparse::Ipv4Header::from_slice(p).unwrap();
    let payload_at = match s.proto {
        17 => 8,
        6 => usize::from(rest[12] >> 4) * 4,
        _ => 8,
    };
    let payload = &rest[payload_at..usize::from(h.total_len) - h.header_len()];
    match s.proto {
        17 => udp(s.dst, s.dport, s.src, s.sport, payload),
        6 => {
            let seq = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            let ack = seq.wrapping_add(payload.len() as u32).wrapping_add(u32::from(rest[13] & 0x02 != 0));
            let mut v = Vec::new();
            etherparse::PacketBuilder::ipv4(s.dst, s.src, 64)
                .tcp(s.dport, s.sport, 5000, 65535)
                .syn()
                .ack(ack)
                .write(&mut v, payload)
                .unwrap();
            v
        }
        _ => echo_reply(s.dst, s.src, s.sport, u16::from_be_bytes([rest[6], rest[7]])),
    }
}

fn lan_packet() -> impl Strategy<Value = Vec<u8>> {
    (0u8..3, 2u8..250, 1u16.., 1u16.., any::<[u8; 2]>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
        |(kind, host, sport, dport, rem, payload)| {
            let src = [192, 168, 1, host];
            let dst = [198, 51, rem[0] % 100 + 1, rem[1] | 1];
            match kind {
                0 => udp(src, sport, dst, dport, &payload),
                1 => tcp(src, sport, dst, dport, "S", &payload),
                _ => echo_request(src, dst, sport, dport),
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Out, then the peer's answer back in: the LAN host sees exactly the mirror of what it
    /// sent, and every forwarded packet has valid checksums (checked with etherparse).
    #[test]
    fn out_and_back_is_identity_on_the_inside(packets in proptest::collection::vec(lan_packet(), 1..24)) {
        let mut e = engine_with(|c| c.filtering = Filtering::AddressAndPortDependent);
        for p in packets {
            let mut out = p.clone();
            let v = e.process(t(1), Side::Lan, &mut out);
            prop_assert_eq!(v, Verdict::Forward(Side::Wan));
            assert_checksums(&out);
            prop_assert_eq!(seen(&out).src, PUB);
            let mut back = mirror(&out);
            let v = e.process(t(2), Side::Wan, &mut back);
            prop_assert_eq!(v, Verdict::Forward(Side::Lan));
            assert_checksums(&back);
            let mut want = mirror(&p);
            want[8] = 63; // one hop
            let hdr = etherparse::Ipv4Header::from_slice(&want).unwrap().0;
            want[10..12].copy_from_slice(&hdr.calc_header_checksum().to_be_bytes());
            prop_assert_eq!(back, want);
        }
    }

    /// Any bytes, either side, never panic; whatever is forwarded is a valid IPv4 packet.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), wan in any::<bool>()) {
        let mut e = engine();
        let mut b = bytes;
        let side = if wan { Side::Wan } else { Side::Lan };
        if let Verdict::Forward(_) = e.process(t(0), side, &mut b) {
            prop_assert!(etherparse::Ipv4Header::from_slice(&b).is_ok());
        }
        e.handle_timeout(t(1000));
    }

    /// Valid packets with random corruption, sent both ways after some real traffic.
    #[test]
    fn corrupted_packets_never_panic(p in lan_packet(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), wan in any::<bool>()) {
        let mut e = engine_with(|c| c.filtering = Filtering::EndpointIndependent);
        let mut good = p.clone();
        let _ = e.process(t(0), Side::Lan, &mut good);
        let mut bad = if wan { mirror(&good) } else { p };
        for (i, x) in flips {
            let n = bad.len();
            bad[i.index(n)] ^= x;
        }
        let side = if wan { Side::Wan } else { Side::Lan };
        let _ = e.process(t(1), side, &mut bad);
        while e.poll_transmit().is_some() {}
        e.handle_timeout(t(100_000));
    }
}
