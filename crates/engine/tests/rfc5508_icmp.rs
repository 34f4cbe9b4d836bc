//! RFC 5508 (ICMP) requirements: query sessions and error translation both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use natpass_engine::{DropReason, Side, Verdict};

#[test]
fn rfc5508_req1_echo_identifier_is_translated_and_unique() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, echo_request(LAN_A, REMOTE, 77, 1), Side::Wan);
    let b = pass(&mut e, t(0), Side::Lan, echo_request(LAN_B, REMOTE, 77, 1), Side::Wan);
    assert_eq!(seen(&a).src, PUB);
    assert_ne!(seen(&a).sport, seen(&b).sport, "identifiers never shared on one address");
    let r = pass(&mut e, t(1), Side::Wan, echo_reply(REMOTE, PUB, seen(&b).sport, 1), Side::Lan);
    assert_eq!((seen(&r).dst, seen(&r).sport), (LAN_B, 77));
}

#[test]
fn rfc5508_req2_query_session_lives_60s() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, echo_request(LAN_A, REMOTE, 77, 1), Side::Wan);
    e.handle_timeout(t(59));
    pass(&mut e, t(59), Side::Wan, echo_reply(REMOTE, PUB, seen(&a).sport, 1), Side::Lan);
    e.handle_timeout(t(120));
    assert_eq!(e.session_count(), 0);
}

#[test]
fn rfc5508_req3_bad_icmp_checksum_is_dropped() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b"q"), Side::Wan);
    let mut err = icmp_error(REMOTE, PUB, 3, 3, 0, &a, false);
    let n = err.len();
    err[n - 1] ^= 0xff;
    assert_eq!(run(&mut e, t(1), Side::Wan, err), Verdict::Drop(DropReason::BadIcmpChecksum));
}

#[test]
fn rfc5508_req4_error_without_session_is_dropped_silently() {
    let mut e = engine();
    let stray = udp(PUB, 4444, REMOTE, 53, b"q");
    let err = icmp_error(REMOTE, PUB, 3, 3, 0, &stray, false);
    assert_eq!(run(&mut e, t(0), Side::Wan, err), Verdict::Drop(DropReason::IcmpErrorNoSession));
    assert!(e.poll_transmit().is_none());
}

#[test]
fn rfc5508_req5_inbound_error_reverts_embedded_headers_udp() {
    let mut e = engine();
    let orig = udp(LAN_A, 5000, REMOTE, 53, b"question");
    let out = pass(&mut e, t(0), Side::Lan, orig.clone(), Side::Wan);
    // A router on the path says Fragmentation Needed about the translated packet.
    let err = icmp_error([192, 0, 2, 1], PUB, 3, 4, 1400, &out, true);
    let back = pass(&mut e, t(1), Side::Wan, err, Side::Lan);
    assert_eq!(seen(&back).dst, LAN_A);
    assert_eq!(&back[20..22], &[3, 4], "type and code kept");
    assert_eq!(u16::from_be_bytes([back[26], back[27]]), 1400, "MTU kept");
    let inner = &back[28..];
    assert_checksums(inner);
    let s = seen(inner);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (LAN_A, 5000, REMOTE, 53));
}

#[test]
fn rfc5508_req5_inbound_error_about_tcp_and_echo() {
    let mut e = engine();
    let out = pass(&mut e, t(0), Side::Lan, tcp(LAN_A, 5000, REMOTE, 80, "S", b""), Side::Wan);
    let back = pass(&mut e, t(1), Side::Wan, icmp_error(REMOTE, PUB, 3, 1, 0, &out, false), Side::Lan);
    let s = seen(&back[28..]);
    assert_eq!((s.src, s.sport), (LAN_A, 5000));
    let out = pass(&mut e, t(0), Side::Lan, echo_request(LAN_A, REMOTE2, 9, 1), Side::Wan);
    let back = pass(&mut e, t(1), Side::Wan, icmp_error([192, 0, 2, 1], PUB, 11, 0, 0, &out, true), Side::Lan);
    let inner = &back[28..];
    assert_checksums(inner);
    assert_eq!(seen(inner).sport, 9, "embedded echo identifier restored");
}

#[test]
fn rfc5508_req6_outbound_error_is_translated() {
    let mut e = engine();
    let out = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b"q"), Side::Wan);
    let ext = seen(&out).sport;
    let inb = pass(&mut e, t(1), Side::Wan, udp(REMOTE, 53, PUB, ext, b"answer"), Side::Lan);
    // The LAN host answers with Port Unreachable about what it received.
    let err = icmp_error(LAN_A, REMOTE, 3, 3, 0, &inb, true);
    let o = pass(&mut e, t(2), Side::Lan, err, Side::Wan);
    assert_eq!(seen(&o).src, PUB);
    let inner = &o[28..];
    assert_checksums(inner);
    let s = seen(inner);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (REMOTE, 53, PUB, ext));
}

#[test]
fn rfc4787_req9_hairpinning_icmp_errors() {
    let mut e = engine_with(|c| c.filtering = natpass_engine::Filtering::EndpointIndependent);
    let b = pass(&mut e, t(0), Side::Lan, udp(LAN_B, 6000, REMOTE, 3478, b""), Side::Wan);
    let h = pass(&mut e, t(1), Side::Lan, udp(LAN_A, 5000, PUB, seen(&b).sport, b"hi"), Side::Lan);
    // B refuses it with Port Unreachable, which must reach A through the hairpin.
    let err = icmp_error(LAN_B, PUB, 3, 3, 0, &h, true);
    let back = pass(&mut e, t(2), Side::Lan, err, Side::Lan);
    assert_eq!(seen(&back).dst, LAN_A);
    let s = seen(&back[28..]);
    assert_eq!((s.src, s.sport), (LAN_A, 5000));
}

#[test]
fn bcp38_wan_packets_from_lan_or_martian_sources_are_dropped() {
    let mut e = engine_with(|c| c.filtering = natpass_engine::Filtering::EndpointIndependent);
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    let ext = seen(&a).sport;
    let cases = [
        ([192, 168, 1, 99], DropReason::WanSpoofedSource),
        (PUB, DropReason::WanSpoofedSource),
        ([127, 0, 0, 1], DropReason::Martian),
        ([0, 0, 0, 0], DropReason::Martian),
        ([224, 0, 0, 5], DropReason::Martian),
        ([169, 254, 1, 1], DropReason::Martian),
    ];
    for (src, why) in cases {
        assert_eq!(run(&mut e, t(1), Side::Wan, udp(src, 53, PUB, ext, b"")), Verdict::Drop(why), "{src:?}");
    }
    assert!(e.poll_transmit().is_none(), "never answered");
    assert_eq!(
        run(&mut e, t(1), Side::Wan, udp(REMOTE, 53, [203, 0, 113, 9], ext, b"")),
        Verdict::Drop(DropReason::NotOurAddress)
    );
    assert_eq!(
        run(&mut e, t(1), Side::Lan, udp([100, 64, 0, 1], 1, REMOTE, 53, b"")),
        Verdict::Drop(DropReason::LanSpoofedSource)
    );
}
