//! RFC 5382 (TCP) and RFC 7857 §2.1 (TCP session state) requirements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use natpass_engine::{DropReason, Filtering, Side, Verdict};

fn open(e: &mut natpass_engine::Engine, lan: [u8; 4], port: u16) -> u16 {
    let syn = pass(e, t(0), Side::Lan, tcp(lan, port, REMOTE, 443, "S", b""), Side::Wan);
    let ext = seen(&syn).sport;
    pass(e, t(0), Side::Wan, tcp(REMOTE, 443, PUB, ext, "SA", b""), Side::Lan);
    pass(e, t(0), Side::Lan, tcp(lan, port, REMOTE, 443, "A", b""), Side::Wan);
    ext
}

#[test]
fn rfc5382_req1_endpoint_independent_mapping() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, tcp(LAN_A, 5555, REMOTE, 80, "S", b""), Side::Wan);
    let b = pass(&mut e, t(0), Side::Lan, tcp(LAN_A, 5555, REMOTE2, 443, "S", b""), Side::Wan);
    assert_eq!(seen(&a).sport, seen(&b).sport);
}

#[test]
fn rfc5382_req2_unsolicited_syn_is_dropped_without_mapping() {
    let mut e = engine();
    let v = run(&mut e, t(0), Side::Wan, tcp(REMOTE, 1234, PUB, 22, "S", b""));
    assert_eq!(v, Verdict::Drop(DropReason::NoMapping));
    assert!(e.poll_transmit().is_none(), "no answer to unsolicited traffic");
}

#[test]
fn rfc5382_req3_inbound_syn_reaches_an_eif_mapping_but_not_bare_acks() {
    let mut e = engine_with(|c| c.filtering = Filtering::EndpointIndependent);
    let ext = open(&mut e, LAN_A, 5555);
    // Simultaneous open / P2P: a SYN from another remote to the mapping gets in.
    let s = pass(&mut e, t(1), Side::Wan, tcp(REMOTE2, 7000, PUB, ext, "S", b""), Side::Lan);
    assert_eq!((seen(&s).dst, seen(&s).dport), (LAN_A, 5555));
    // A non-SYN segment cannot open a session.
    let v = run(&mut e, t(1), Side::Wan, tcp(REMOTE2, 7001, PUB, ext, "A", b""));
    assert_eq!(v, Verdict::Drop(DropReason::TcpNoSyn));
}

#[test]
fn rfc5382_req5_established_lives_2h4m() {
    let mut e = engine();
    let ext = open(&mut e, LAN_A, 5555);
    e.handle_timeout(t(7439));
    assert_eq!(e.session_count(), 1);
    pass(&mut e, t(7439), Side::Wan, tcp(REMOTE, 443, PUB, ext, "AP", b"data"), Side::Lan);
    e.handle_timeout(t(7439 + 7441));
    assert_eq!(e.session_count(), 0);
}

#[test]
fn rfc5382_req5_transitory_lives_4m() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, tcp(LAN_A, 5555, REMOTE, 80, "S", b""), Side::Wan);
    e.handle_timeout(t(239));
    assert_eq!(e.session_count(), 1, "an opening session lives 4 minutes");
    e.handle_timeout(t(241));
    assert_eq!(e.session_count(), 0);
}

#[test]
fn rfc7857_2_1_both_fins_make_the_session_transitory() {
    let mut e = engine();
    let ext = open(&mut e, LAN_A, 5555);
    pass(&mut e, t(10), Side::Lan, tcp(LAN_A, 5555, REMOTE, 443, "FA", b""), Side::Wan);
    e.handle_timeout(t(300));
    assert_eq!(e.session_count(), 1, "half-closed stays established");
    pass(&mut e, t(300), Side::Wan, tcp(REMOTE, 443, PUB, ext, "FA", b""), Side::Lan);
    e.handle_timeout(t(539));
    assert_eq!(e.session_count(), 1);
    e.handle_timeout(t(541));
    assert_eq!(e.session_count(), 0, "closed session goes after 4 minutes");
}

#[test]
fn rfc7857_2_1_rst_keeps_the_session_four_minutes_and_traffic_revives_it() {
    let mut e = engine();
    let ext = open(&mut e, LAN_A, 5555);
    pass(&mut e, t(10), Side::Wan, tcp(REMOTE, 443, PUB, ext, "R", b""), Side::Lan);
    e.handle_timeout(t(200));
    assert_eq!(e.session_count(), 1, "not removed at once on RST");
    // Traffic after the RST (e.g. a spoofed RST was ignored by the peers) revives it.
    pass(&mut e, t(200), Side::Lan, tcp(LAN_A, 5555, REMOTE, 443, "A", b"x"), Side::Wan);
    pass(&mut e, t(200), Side::Wan, tcp(REMOTE, 443, PUB, ext, "A", b"y"), Side::Lan);
    e.handle_timeout(t(1000));
    assert_eq!(e.session_count(), 1, "established again");
}

#[test]
fn rfc5382_req8_hairpinning_tcp() {
    let mut e = engine_with(|c| c.filtering = Filtering::EndpointIndependent);
    let b_ext = open(&mut e, LAN_B, 8080);
    let syn = pass(&mut e, t(1), Side::Lan, tcp(LAN_A, 5000, PUB, b_ext, "S", b""), Side::Lan);
    let s = seen(&syn);
    assert_eq!((s.src, s.dst, s.dport), (PUB, LAN_B, 8080));
    let a_ext = s.sport;
    // Both ends are LAN hosts: LAN_B's SYN-ACK acknowledges LAN_A's SYN (LAN_ISN).
    let mut sa = Vec::new();
    etherparse::PacketBuilder::ipv4(LAN_B, PUB, 64)
        .tcp(8080, a_ext, 7000, 65535)
        .syn()
        .ack(LAN_ISN + 1)
        .write(&mut sa, b"")
        .unwrap();
    let synack = pass(&mut e, t(1), Side::Lan, sa, Side::Lan);
    let s = seen(&synack);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (PUB, b_ext, LAN_A, 5000));
}

#[test]
fn ttl_expiring_packet_gets_time_exceeded_from_the_router() {
    let mut e = engine();
    let mut p = tcp(LAN_A, 5000, REMOTE, 80, "S", b"");
    p[8] = 1;
    let h = etherparse::Ipv4Header::from_slice(&p).unwrap().0;
    p[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    assert_eq!(run(&mut e, t(0), Side::Lan, p), Verdict::Drop(DropReason::TtlExceeded));
    let tx = e.poll_transmit().expect("time exceeded");
    assert_checksums(&tx.packet);
    assert_eq!(seen(&tx.packet).src, [192, 168, 1, 1], "from the router's LAN address");
    assert_eq!(tx.packet[20], 11);
}

#[test]
fn ttl_is_decremented() {
    let mut e = engine();
    let p = pass(&mut e, t(0), Side::Lan, tcp(LAN_A, 5000, REMOTE, 80, "S", b""), Side::Wan);
    assert_eq!(seen(&p).ttl, 63);
}

/// A TCP segmentation-offload super-packet (64 KB, DF) from a packet socket with
/// PACKET_VNET_HDR: translated whole, with correct checksums, and the MTU check applies to
/// the segments it will be cut into, not to the super-packet.
#[test]
fn segmentation_offload_super_packets_are_translated_whole() {
    let mut e = engine();
    let big = vec![0x61u8; 60_000];
    // As one packet it is too big for the WAN with DF set: refused with frag-needed.
    let v = run(&mut e, t(1), Side::Lan, tcp([192, 168, 1, 10], 40000, [198, 51, 100, 1], 80, "A", &big));
    assert_eq!(v, Verdict::Drop(DropReason::FragmentationNeeded));
    // As a super-packet of 1500-byte segments it passes, translated.
    let mut p = tcp([192, 168, 1, 10], 40000, [198, 51, 100, 1], 80, "A", &big);
    assert_eq!(e.process_segmented(t(1), Side::Lan, &mut p, 1500), Verdict::Forward(Side::Wan));
    assert_checksums(&p);
    assert_eq!(seen(&p).src, [203, 0, 113, 1]);
    // Segments larger than the MTU are still refused.
    let mut p = tcp([192, 168, 1, 10], 40000, [198, 51, 100, 1], 80, "A", &big);
    assert_eq!(e.process_segmented(t(1), Side::Lan, &mut p, 9000), Verdict::Drop(DropReason::FragmentationNeeded));
}
