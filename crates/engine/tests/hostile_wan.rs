//! Unsolicited and malformed packets from the WAN that a wall must stop: each test is named
//! after one attack of the WAN attack run (fragments with ID reuse, overlaps in both orders,
//! tiny first fragments, source routes, malformed options, a UDP length past the payload, a
//! TCP data offset past the segment). Packets are built with etherparse, independently of the
//! engine's own views; every test also checks that the live mapping keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv4Options};
use natpass_engine::{DropReason, Engine, Side, Verdict};

/// A raw IPv4 packet with options, an identification, a fragment offset (bytes) and MF.
fn raw(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ident: u16,
    frag: (usize, bool),
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload.len() as u16, 64, IpNumber(proto), src, dst).unwrap();
    h.identification = ident;
    h.dont_fragment = false;
    h.fragment_offset = IpFragOffset::try_new((frag.0 / 8) as u16).unwrap();
    h.more_fragments = frag.1;
    h.options = Ipv4Options::try_from(options).unwrap();
    h.set_payload_len(payload.len()).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// The UDP header and payload of a whole datagram `sport → dport` (checksum 0: none).
fn udp_payload(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(data);
    v
}

/// LAN_A talks UDP 5000 → REMOTE:53; returns the engine and the public port of the mapping.
fn live_mapping() -> (Engine, u16) {
    let mut e = engine();
    let out = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b"q"), Side::Wan);
    let port = seen(&out).sport;
    pass(&mut e, t(0), Side::Wan, udp(REMOTE, 53, PUB, port, b"a"), Side::Lan);
    (e, port)
}

/// The three fragments (1480, 1480, the rest) of a UDP datagram REMOTE:53 → PUB:`dport`.
fn train(ident: u16, dport: u16, fill: u8) -> Vec<Vec<u8>> {
    let whole = udp_payload(53, dport, &vec![fill; 3000]);
    let cut = [0, 1480, 2960, whole.len()];
    (0..3).map(|i| raw(REMOTE, PUB, 17, ident, (cut[i], i < 2), &[], &whole[cut[i]..cut[i + 1]])).collect()
}

/// The mapping still carries the server's answers to LAN_A.
fn still_works(e: &mut Engine, port: u16) {
    let p = pass(e, t(3), Side::Wan, udp(REMOTE, 53, PUB, port, b"ok"), Side::Lan);
    assert_eq!((seen(&p).dst, seen(&p).dport), (LAN_A, 5000));
}

fn nothing_queued(e: &mut Engine) {
    assert!(e.poll_transmit().is_none(), "nothing released to the LAN");
}

#[test]
fn fragment_id_reuse_after_a_complete_datagram_reaches_no_one() {
    let (mut e, port) = live_mapping();
    for f in train(77, port, 1) {
        assert_eq!(run(&mut e, t(1), Side::Wan, f), Verdict::Forward(Side::Lan));
    }
    // The same ID a few seconds later, to a port no mapping owns: in order, then reversed.
    let later = train(77, 9999, 2);
    assert_eq!(run(&mut e, t(2), Side::Wan, later[0].clone()), Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, t(2), Side::Wan, later[1].clone()), Verdict::Drop(DropReason::FragmentDropped));
    assert_eq!(run(&mut e, t(2), Side::Wan, later[2].clone()), Verdict::Drop(DropReason::FragmentDropped));
    let reversed = train(78, 9999, 3);
    for f in train(78, port, 1) {
        assert_eq!(run(&mut e, t(2), Side::Wan, f), Verdict::Forward(Side::Lan));
    }
    assert_eq!(run(&mut e, t(3), Side::Wan, reversed[2].clone()), Verdict::Consumed);
    assert_eq!(run(&mut e, t(3), Side::Wan, reversed[1].clone()), Verdict::Consumed);
    assert_eq!(run(&mut e, t(3), Side::Wan, reversed[0].clone()), Verdict::Drop(DropReason::NoMapping));
    nothing_queued(&mut e);
    assert_eq!(e.stats().drop_count(DropReason::FragmentDropped), 4, "2 in order, 2 held then dropped");
    still_works(&mut e, port);
}

#[test]
fn fragment_id_reuse_after_a_train_that_never_completes_reaches_no_one() {
    let (mut e, port) = live_mapping();
    let first = train(90, port, 1);
    // First and middle fragments only: the datagram never completes.
    assert_eq!(run(&mut e, t(1), Side::Wan, first[0].clone()), Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, t(1), Side::Wan, first[1].clone()), Verdict::Forward(Side::Lan));
    // A new datagram with that ID to an unmapped port: its first fragment names other ports.
    let later = train(90, 9999, 2);
    assert_eq!(run(&mut e, t(2), Side::Wan, later[0].clone()), Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, t(2), Side::Wan, later[1].clone()), Verdict::Drop(DropReason::FragmentDropped));
    assert_eq!(run(&mut e, t(2), Side::Wan, later[2].clone()), Verdict::Drop(DropReason::FragmentDropped));
    nothing_queued(&mut e);
    still_works(&mut e, port);
}

#[test]
fn fragment_state_ends_with_its_datagram() {
    let (mut e, port) = live_mapping();
    for f in train(5, port, 1) {
        assert_eq!(run(&mut e, t(1), Side::Wan, f), Verdict::Forward(Side::Lan));
    }
    // A later fragment with that ID finds no translation: it waits, and goes with the timer.
    assert_eq!(run(&mut e, t(1), Side::Wan, train(5, port, 1)[1].clone()), Verdict::Consumed);
    e.handle_timeout(t(10));
    nothing_queued(&mut e);
    assert_eq!(e.stats().drop_count(DropReason::FragmentDropped), 1);
}

#[test]
fn fragments_in_reverse_order_to_a_live_mapping_still_pass() {
    let (mut e, port) = live_mapping();
    let f = train(6, port, 1);
    assert_eq!(run(&mut e, t(1), Side::Wan, f[2].clone()), Verdict::Consumed);
    assert_eq!(run(&mut e, t(1), Side::Wan, f[1].clone()), Verdict::Consumed);
    assert_eq!(run(&mut e, t(1), Side::Wan, f[0].clone()), Verdict::Forward(Side::Lan));
    assert_eq!(std::iter::from_fn(|| e.poll_transmit()).count(), 2);
}

#[test]
fn tiny_first_fragment_drops_its_datagram() {
    let (mut e, _) = live_mapping();
    let syn = tcp(REMOTE, 80, PUB, 6000, "S", &[0u8; 40]);
    let l4 = &syn[20..];
    // RFC 1858 §3.1: the first fragment holds 8 bytes of the TCP header, the flags come later.
    let f0 = raw(REMOTE, PUB, 6, 11, (0, true), &[], &l4[..8]);
    let f1 = raw(REMOTE, PUB, 6, 11, (8, false), &[], &l4[8..]);
    assert_eq!(run(&mut e, t(1), Side::Wan, f0), Verdict::Drop(DropReason::TinyFragment));
    assert_eq!(run(&mut e, t(1), Side::Wan, f1), Verdict::Drop(DropReason::FragmentDropped));
    // The same from the LAN side.
    let out = tcp(LAN_A, 6000, REMOTE, 80, "S", &[0u8; 40]);
    let f0 = raw(LAN_A, REMOTE, 6, 12, (0, true), &[], &out[20..28]);
    assert_eq!(run(&mut e, t(1), Side::Lan, f0), Verdict::Drop(DropReason::TinyFragment));
}

#[test]
fn overlapping_second_fragment_drops_the_datagram() {
    let (mut e, port) = live_mapping();
    let whole = udp_payload(53, port, &[4u8; 3000]);
    let f0 = raw(REMOTE, PUB, 17, 21, (0, true), &[], &whole[..1480]);
    let overlap = raw(REMOTE, PUB, 17, 21, (1472, true), &[], &whole[1472..2952]);
    let f2 = raw(REMOTE, PUB, 17, 21, (2952, false), &[], &whole[2952..]);
    assert_eq!(run(&mut e, t(1), Side::Wan, f0), Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, t(1), Side::Wan, overlap), Verdict::Drop(DropReason::FragmentOverlap));
    assert_eq!(run(&mut e, t(1), Side::Wan, f2), Verdict::Drop(DropReason::FragmentDropped));
    still_works(&mut e, port);
}

#[test]
fn overlapping_fragments_in_reverse_order_drop_the_datagram() {
    let (mut e, port) = live_mapping();
    let whole = udp_payload(53, port, &[4u8; 3000]);
    let f1 = raw(REMOTE, PUB, 17, 22, (1480, true), &[], &whole[1480..2960]);
    let overlap = raw(REMOTE, PUB, 17, 22, (1472, true), &[], &whole[1472..1488]);
    let f0 = raw(REMOTE, PUB, 17, 22, (0, true), &[], &whole[..1480]);
    assert_eq!(run(&mut e, t(1), Side::Wan, f1), Verdict::Consumed);
    assert_eq!(run(&mut e, t(1), Side::Wan, overlap), Verdict::Drop(DropReason::FragmentOverlap));
    assert_eq!(run(&mut e, t(1), Side::Wan, f0), Verdict::Drop(DropReason::FragmentDropped));
    nothing_queued(&mut e);
    assert_eq!(e.stats().drop_count(DropReason::FragmentDropped), 2, "the held fragment and the first");
}

#[test]
fn rfc1858_overlap_at_offset_zero_cannot_rewrite_the_ports() {
    let (mut e, port) = live_mapping();
    let good = train(31, port, 1);
    assert_eq!(run(&mut e, t(1), Side::Wan, good[0].clone()), Verdict::Forward(Side::Lan));
    // A second fragment at offset 0 naming an unmapped port: judged on its own ports.
    let evil = train(31, 9999, 2);
    assert_eq!(run(&mut e, t(1), Side::Wan, evil[0].clone()), Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, t(1), Side::Wan, good[1].clone()), Verdict::Drop(DropReason::FragmentDropped));
    // The same first fragment twice overlaps itself.
    let again = train(32, port, 1);
    assert_eq!(run(&mut e, t(1), Side::Wan, again[0].clone()), Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, t(1), Side::Wan, again[0].clone()), Verdict::Drop(DropReason::FragmentOverlap));
    still_works(&mut e, port);
}

#[test]
fn fragment_past_the_datagram_end_drops_it() {
    let (mut e, port) = live_mapping();
    let f = train(40, port, 1);
    assert_eq!(run(&mut e, t(1), Side::Wan, f[0].clone()), Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, t(1), Side::Wan, f[2].clone()), Verdict::Forward(Side::Lan));
    let beyond = raw(REMOTE, PUB, 17, 40, (4000, false), &[], &[0u8; 16]);
    assert_eq!(run(&mut e, t(1), Side::Wan, beyond), Verdict::Drop(DropReason::FragmentOverlap));
    assert_eq!(run(&mut e, t(1), Side::Wan, f[1].clone()), Verdict::Drop(DropReason::FragmentDropped));
}

#[test]
fn loose_and_strict_source_routes_naming_a_lan_host_are_dropped() {
    let (mut e, port) = live_mapping();
    for kind in [0x83u8, 0x89] {
        // The route's next hop is the LAN host (RFC 791 §3.1: type, length, pointer, address).
        let opts = [kind, 7, 4, 192, 168, 1, 10, 0];
        let p = raw(REMOTE, PUB, 17, 50, (0, false), &opts, &udp_payload(53, port, b"x"));
        assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Drop(DropReason::IpSourceRoute));
    }
    // From the LAN too.
    let opts = [0x83, 7, 4, 198, 51, 100, 8, 0];
    let p = raw(LAN_A, REMOTE, 17, 51, (0, false), &opts, &udp_payload(5000, 53, b"x"));
    assert_eq!(run(&mut e, t(1), Side::Lan, p), Verdict::Drop(DropReason::IpSourceRoute));
    assert_eq!(e.stats().drop_count(DropReason::IpSourceRoute), 3);
    still_works(&mut e, port);
}

#[test]
fn source_routes_pass_when_the_setting_allows_them() {
    let mut e = engine_with(|c| c.drop_source_routes = false);
    let out = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b"q"), Side::Wan);
    let port = seen(&out).sport;
    let p = raw(REMOTE, PUB, 17, 50, (0, false), &[0x83, 7, 4, 192, 168, 1, 10, 0], &udp_payload(53, port, b"x"));
    assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Forward(Side::Lan));
}

#[test]
fn option_longer_than_the_header_is_dropped() {
    let (mut e, port) = live_mapping();
    // Record route claiming 40 bytes in an 8-byte option area.
    let p = raw(REMOTE, PUB, 17, 52, (0, false), &[7, 40, 4, 0, 0, 0, 0, 0], &udp_payload(53, port, b"x"));
    assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Drop(DropReason::IpOptionMalformed));
    let p = raw(REMOTE, PUB, 17, 53, (0, false), &[7, 1, 0, 0], &udp_payload(53, port, b"x"));
    assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Drop(DropReason::IpOptionMalformed));
    // A well-formed option that is not a source route passes (record route, room for one).
    let p = raw(REMOTE, PUB, 17, 54, (0, false), &[7, 7, 4, 0, 0, 0, 0, 1], &udp_payload(53, port, b"x"));
    assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Forward(Side::Lan));
}

#[test]
fn udp_length_larger_than_the_payload_is_dropped() {
    let (mut e, port) = live_mapping();
    let mut u = udp_payload(53, port, b"hello");
    u[4..6].copy_from_slice(&200u16.to_be_bytes());
    let p = raw(REMOTE, PUB, 17, 60, (0, false), &[], &u);
    assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Drop(DropReason::UdpLengthMismatch));
    // Below the header, and shorter than the payload: also refused.
    for len in [4u16, 9] {
        let mut u = udp_payload(53, port, b"hello");
        u[4..6].copy_from_slice(&len.to_be_bytes());
        let p = raw(REMOTE, PUB, 17, 61, (0, false), &[], &u);
        assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Drop(DropReason::UdpLengthMismatch));
    }
    still_works(&mut e, port);
}

#[test]
fn tcp_data_offset_past_the_segment_is_dropped() {
    let (mut e, _) = live_mapping();
    let mut syn = tcp(REMOTE, 80, PUB, 6000, "S", b"");
    syn[20 + 12] = 0xf0;
    let p = raw(REMOTE, PUB, 6, 70, (0, false), &[], &syn[20..]);
    assert_eq!(run(&mut e, t(1), Side::Wan, p), Verdict::Drop(DropReason::TcpHeaderMalformed));
    let mut out = tcp(LAN_A, 6000, REMOTE, 80, "S", b"");
    out[20 + 12] = 0x40;
    let p = raw(LAN_A, REMOTE, 6, 71, (0, false), &[], &out[20..]);
    assert_eq!(run(&mut e, t(1), Side::Lan, p), Verdict::Drop(DropReason::TcpHeaderMalformed));
}

/// A live TCP connection LAN_A:6000 ↔ REMOTE:80; returns the public port.
fn live_tcp(e: &mut Engine) -> u16 {
    let syn = pass(e, t(0), Side::Lan, tcp(LAN_A, 6000, REMOTE, 80, "S", b""), Side::Wan);
    let port = seen(&syn).sport;
    pass(e, t(0), Side::Wan, tcp(REMOTE, 80, PUB, port, "SA", b""), Side::Lan);
    pass(e, t(0), Side::Lan, tcp(LAN_A, 6000, REMOTE, 80, "A", b"GET /"), Side::Wan);
    port
}

/// A segment from REMOTE:80 to the connection with chosen numbers.
fn blind(port: u16, seq: u32, ack: Option<u32>, syn: bool, rst: bool) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ipv4(REMOTE, PUB, 64).tcp(80, port, seq, 65535);
    if syn {
        b = b.syn();
    }
    if rst {
        b = b.rst();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

#[test]
fn blind_rst_syn_and_ack_with_random_numbers_are_dropped() {
    let mut e = engine();
    let port = live_tcp(&mut e);
    let far = WAN_ISN.wrapping_add(0x4000_0000);
    assert_eq!(
        run(&mut e, t(1), Side::Wan, blind(port, far, None, false, true)),
        Verdict::Drop(DropReason::TcpOutOfWindow)
    );
    assert_eq!(
        run(&mut e, t(1), Side::Wan, blind(port, far, None, true, false)),
        Verdict::Drop(DropReason::TcpOutOfWindow)
    );
    assert_eq!(
        run(&mut e, t(1), Side::Wan, blind(port, far, Some(LAN_ISN + 1), false, false)),
        Verdict::Drop(DropReason::TcpOutOfWindow)
    );
    // An acknowledgment of bytes the LAN host never sent.
    assert_eq!(
        run(&mut e, t(1), Side::Wan, blind(port, WAN_ISN + 1, Some(LAN_ISN + 0x100_0000), false, false)),
        Verdict::Drop(DropReason::TcpOutOfWindow)
    );
    assert_eq!(e.stats().drop_count(DropReason::TcpOutOfWindow), 4);
    // The connection goes on, and an in-window RST still ends it.
    pass(&mut e, t(1), Side::Wan, tcp(REMOTE, 80, PUB, port, "AP", b"200 OK"), Side::Lan);
    pass(&mut e, t(1), Side::Wan, blind(port, WAN_ISN + 7, None, false, true), Side::Lan);
}

#[test]
fn the_window_check_can_be_turned_off() {
    let mut e = engine_with(|c| c.tcp_window_check = false);
    let port = live_tcp(&mut e);
    let far = WAN_ISN.wrapping_add(0x4000_0000);
    pass(&mut e, t(1), Side::Wan, blind(port, far, None, false, true), Side::Lan);
}
