//! RFC 4787 (NAT behavioural requirements for UDP), one test per requirement.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use core::time::Duration;
use natpass_engine::{DropReason, Filtering, Proto, Side, Verdict};

#[test]
fn rfc4787_req1_endpoint_independent_mapping() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b"q"), Side::Wan);
    let b = pass(&mut e, t(1), Side::Lan, udp(LAN_A, 5000, REMOTE2, 9999, b"q"), Side::Wan);
    assert_eq!(seen(&a).src, PUB);
    assert_eq!(seen(&a).sport, seen(&b).sport, "same internal endpoint, same external port");
    assert_eq!(e.mapping_count(), 1);
    assert_eq!(e.session_count(), 2);
}

#[test]
fn rfc4787_req2_paired_address_pooling() {
    let mut e = engine_with(|c| c.public_addrs = vec![PUB.into(), PUB2.into()]);
    let a1 = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    // Hosts spread over the pool: a new host gets the address with the fewest hosts.
    let used: std::collections::HashSet<[u8; 4]> = (20..60)
        .map(|h| seen(&pass(&mut e, t(0), Side::Lan, udp([192, 168, 1, h], 5000, REMOTE, 53, b""), Side::Wan)).src)
        .collect();
    assert_eq!(used.len(), 2, "both public addresses in use");
    let on_first = (20..60).filter(|&h| e.public_addr_of([192, 168, 1, h].into()) == Some(PUB.into())).count();
    assert_eq!(on_first, 20, "41 hosts with LAN_A: 21 on one address, 20 on the other");
    // Passthrough traffic (raw ESP here) leaves from the host's paired address too.
    let mut esp = etherparse::Ipv4Header::new(12, 64, etherparse::IpNumber(50), LAN_A, REMOTE2).unwrap();
    esp.header_checksum = esp.calc_header_checksum();
    let mut esp = esp.to_bytes().to_vec();
    esp.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    let esp = pass(&mut e, t(1), Side::Lan, esp, Side::Wan);
    assert_eq!(seen(&esp).src, seen(&a1).src, "ESP paired with the host's address");
    for port in 6000..6010 {
        let a = pass(&mut e, t(1), Side::Lan, udp(LAN_A, port, REMOTE2, 53, b""), Side::Wan);
        assert_eq!(seen(&a).src, seen(&a1).src, "one host, one public address");
        let p = pass(&mut e, t(1), Side::Lan, tcp(LAN_A, port, REMOTE2, 80, "S", b""), Side::Wan);
        assert_eq!(seen(&p).src, seen(&a1).src, "across protocols too");
    }
}

#[test]
fn rfc4787_req3_port_preservation_parity_and_no_overloading() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 40000, REMOTE, 53, b""), Side::Wan);
    assert_eq!(seen(&a).sport, 40000, "source port kept when free");
    // Another host on the same port: a different port of the same parity, never shared.
    let b = pass(&mut e, t(0), Side::Lan, udp(LAN_B, 40000, REMOTE, 53, b""), Side::Wan);
    assert_ne!(seen(&b).sport, 40000);
    assert_eq!(seen(&b).sport % 2, 0, "parity kept");
    assert!(seen(&b).sport >= 1024);
    let c = pass(&mut e, t(0), Side::Lan, udp(LAN_B, 40001, REMOTE, 53, b""), Side::Wan);
    assert_eq!(seen(&c).sport, 40001);
}

#[test]
fn rfc4787_req3a_low_ports_stay_low() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, udp(LAN_A, 123, REMOTE, 123, b""), Side::Wan);
    let b = pass(&mut e, t(0), Side::Lan, udp(LAN_B, 123, REMOTE, 123, b""), Side::Wan);
    let p = seen(&b).sport;
    assert!(p != 123 && p < 1024 && p > 0 && p % 2 == 1, "port {p} should be odd in 1-1023");
}

#[test]
fn rfc4787_req5_udp_mapping_lives_at_least_120s_and_default_300s() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    let ext = seen(&a).sport;
    e.handle_timeout(t(299));
    assert_eq!(e.session_count(), 1, "alive just before 300 s");
    pass(&mut e, t(299), Side::Wan, udp(REMOTE, 53, PUB, ext, b""), Side::Lan);
    e.handle_timeout(t(598));
    assert_eq!(e.session_count(), 1, "inbound traffic refreshed it too");
    e.handle_timeout(t(600));
    assert_eq!(e.session_count(), 0, "expired after 300 s idle");
    assert_eq!(run(&mut e, t(601), Side::Wan, udp(REMOTE, 53, PUB, ext, b"")), Verdict::Drop(DropReason::NoMapping));
}

#[test]
fn rfc4787_req5_timer_floor_is_enforced_in_config() {
    let mut c = natpass_engine::EngineConfig::default();
    c.timeouts.udp = Duration::from_secs(60);
    assert!(natpass_engine::Engine::new(c, t(0)).is_err());
}

#[test]
fn rfc4787_req6_outbound_refresh() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    for s in [200, 400, 600] {
        pass(&mut e, t(s), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
        e.handle_timeout(t(s + 1));
        assert_eq!(e.session_count(), 1);
    }
}

#[test]
fn rfc4787_req8_address_dependent_filtering_is_default() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    let ext = seen(&a).sport;
    // Same remote address, another port: allowed.
    let r = pass(&mut e, t(1), Side::Wan, udp(REMOTE, 9999, PUB, ext, b""), Side::Lan);
    assert_eq!((seen(&r).dst, seen(&r).dport), (LAN_A, 5000));
    // Another remote address: filtered.
    assert_eq!(run(&mut e, t(1), Side::Wan, udp(REMOTE2, 53, PUB, ext, b"")), Verdict::Drop(DropReason::Filtered));
    // A port nobody holds: no mapping.
    assert_eq!(run(&mut e, t(1), Side::Wan, udp(REMOTE, 53, PUB, 1234, b"")), Verdict::Drop(DropReason::NoMapping));
    assert_eq!(e.stats().drop_count(DropReason::Filtered), 1);
}

#[test]
fn rfc4787_req8_endpoint_independent_filtering_when_configured() {
    let mut e = engine_with(|c| c.filtering = Filtering::EndpointIndependent);
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    let r = pass(&mut e, t(1), Side::Wan, udp(REMOTE2, 7, PUB, seen(&a).sport, b""), Side::Lan);
    assert_eq!(seen(&r).dst, LAN_A);
    // The reply goes out through the same mapping.
    let o = pass(&mut e, t(2), Side::Lan, udp(LAN_A, 5000, REMOTE2, 7, b""), Side::Wan);
    assert_eq!(seen(&o).sport, seen(&a).sport);
}

#[test]
fn rfc4787_req8_address_and_port_dependent_filtering_when_configured() {
    let mut e = engine_with(|c| c.filtering = Filtering::AddressAndPortDependent);
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b""), Side::Wan);
    let ext = seen(&a).sport;
    assert_eq!(run(&mut e, t(1), Side::Wan, udp(REMOTE, 54, PUB, ext, b"")), Verdict::Drop(DropReason::Filtered));
    pass(&mut e, t(1), Side::Wan, udp(REMOTE, 53, PUB, ext, b""), Side::Lan);
}

#[test]
fn rfc4787_req9_hairpinning_udp() {
    let mut e = engine();
    let b = pass(&mut e, t(0), Side::Lan, udp(LAN_B, 6000, REMOTE, 3478, b""), Side::Wan);
    let b_ext = seen(&b).sport;
    let a_ext = {
        let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 3478, b""), Side::Wan);
        seen(&a).sport
    };
    // B sends to A's public endpoint first: A's mapping (address-dependent filtering) has not
    // sent to our public address, so it is filtered, but B's mapping now knows that address.
    let v = run(&mut e, t(1), Side::Lan, udp(LAN_B, 6000, PUB, a_ext, b"hi"));
    assert_eq!(v, Verdict::Drop(DropReason::Filtered));
    let h = pass(&mut e, t(2), Side::Lan, udp(LAN_A, 5000, PUB, b_ext, b"hello"), Side::Lan);
    let s = seen(&h);
    assert_eq!((s.src, s.sport), (PUB, a_ext), "the source is A's public endpoint (REQ-9b)");
    assert_eq!((s.dst, s.dport), (LAN_B, 6000));
    assert_eq!(e.stats().hairpinned, 2);
}

#[test]
fn rfc4787_req12_icmp_does_not_end_a_mapping() {
    let mut e = engine();
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000, REMOTE, 53, b"x"), Side::Wan);
    let err = icmp_error(REMOTE, PUB, 3, 3, 0, &a, true);
    pass(&mut e, t(1), Side::Wan, err, Side::Lan);
    assert_eq!(e.session_count(), 1);
    pass(&mut e, t(2), Side::Wan, udp(REMOTE, 53, PUB, seen(&a).sport, b""), Side::Lan);
}

#[test]
fn rfc4787_req13_df_packet_too_big_gets_fragmentation_needed() {
    let mut e = engine_with(|c| c.wan_mtu = 1400);
    let mut p = udp(LAN_A, 5000, REMOTE, 53, &[0u8; 1472]);
    p[6] |= 0x40; // DF
    let sum = {
        let mut h = etherparse::Ipv4Header::from_slice(&p).unwrap().0;
        h.header_checksum = h.calc_header_checksum();
        h.header_checksum
    };
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(run(&mut e, t(0), Side::Lan, p.clone()), Verdict::Drop(DropReason::FragmentationNeeded));
    let icmp = e.poll_transmit().expect("an ICMP error is sent back");
    assert_eq!(icmp.side, Side::Lan);
    assert_checksums(&icmp.packet);
    let s = seen(&icmp.packet);
    assert_eq!((s.proto, s.dst), (1, LAN_A));
    assert_eq!(&icmp.packet[20..22], &[3, 4]);
    assert_eq!(u16::from_be_bytes([icmp.packet[26], icmp.packet[27]]), 1400, "next-hop MTU");
    assert_eq!(&icmp.packet[28..48], &p[..20], "embeds the original header");
}

#[test]
fn rfc4787_req14_out_of_order_fragments_are_accepted() {
    let mut e = engine();
    let whole = udp(LAN_A, 5000, REMOTE, 500, &[7u8; 3000]);
    let frags = fragment(&whole, 1500);
    assert_eq!(frags.len(), 3);
    // Last, middle, then first.
    assert_eq!(run(&mut e, t(0), Side::Lan, frags[2].clone()), Verdict::Consumed);
    assert_eq!(run(&mut e, t(0), Side::Lan, frags[1].clone()), Verdict::Consumed);
    let first = pass(&mut e, t(0), Side::Lan, frags[0].clone(), Side::Wan);
    let mut out = vec![first];
    while let Some(tx) = e.poll_transmit() {
        assert_eq!(tx.side, Side::Wan);
        out.push(tx.packet);
    }
    assert_eq!(out.len(), 3);
    let joined = reassemble(&out);
    assert_checksums(&joined);
    let s = seen(&joined);
    assert_eq!((s.src, s.dst, s.dport), (PUB, REMOTE, 500));
    assert_eq!(&joined[28..], &whole[28..], "payload intact");
}

#[test]
fn rfc4787_req14_stale_fragments_are_dropped_and_counted() {
    let mut e = engine();
    let whole = udp(LAN_A, 5000, REMOTE, 500, &[7u8; 3000]);
    let frags = fragment(&whole, 1500);
    assert_eq!(run(&mut e, t(0), Side::Lan, frags[1].clone()), Verdict::Consumed);
    e.handle_timeout(t(10));
    assert_eq!(e.stats().drop_count(DropReason::FragmentDropped), 1);
    assert!(e.poll_transmit().is_none());
}

#[test]
fn oversized_packet_without_df_is_fragmented_for_the_wan() {
    let mut e = engine_with(|c| c.wan_mtu = 576);
    let whole = without_df(udp(LAN_A, 5000, REMOTE, 500, &[9u8; 1800]));
    assert_eq!(run(&mut e, t(0), Side::Lan, whole.clone()), Verdict::Consumed);
    let mut out = Vec::new();
    while let Some(tx) = e.poll_transmit() {
        assert!(tx.packet.len() <= 576);
        out.push(tx.packet);
    }
    assert_eq!(out.len(), 4);
    let joined = reassemble(&out);
    assert_checksums(&joined);
    assert_eq!(seen(&joined).src, PUB);
    assert_eq!(&joined[28..], &whole[28..]);
}

#[test]
fn rfc6864_fragment_ids_do_not_collide_on_one_public_address() {
    let mut e = engine();
    let a = fragment(&udp(LAN_A, 5000, REMOTE, 500, &[1u8; 2000]), 1500);
    let b = fragment(&udp(LAN_B, 5000, REMOTE, 500, &[2u8; 2000]), 1500);
    // Both datagrams carry the same IP ID (etherparse writes 0).
    assert_eq!(seen(&a[0]).ident, seen(&b[0]).ident);
    let a0 = pass(&mut e, t(0), Side::Lan, a[0].clone(), Side::Wan);
    let b0 = pass(&mut e, t(0), Side::Lan, b[0].clone(), Side::Wan);
    let a1 = pass(&mut e, t(0), Side::Lan, a[1].clone(), Side::Wan);
    let b1 = pass(&mut e, t(0), Side::Lan, b[1].clone(), Side::Wan);
    assert_ne!(seen(&a0).ident, seen(&b0).ident, "IDs differ outside");
    assert_eq!(seen(&a0).ident, seen(&a1).ident);
    assert_eq!(seen(&b0).ident, seen(&b1).ident);
    assert_eq!(e.stats().ip_ids_rewritten, 1);
    assert_eq!(&reassemble(&[b0, b1])[28..], &udp(LAN_B, 5000, REMOTE, 500, &[2u8; 2000])[28..]);
}

#[test]
fn rfc6888_req4_per_host_session_limit_refuses_with_icmp_13() {
    let mut e = engine_with(|c| c.max_sessions_per_host = 3);
    for p in 0..3 {
        pass(&mut e, t(0), Side::Lan, udp(LAN_A, 5000 + p, REMOTE, 53, b""), Side::Wan);
    }
    let v = run(&mut e, t(0), Side::Lan, udp(LAN_A, 6000, REMOTE, 53, b""));
    assert_eq!(v, Verdict::Drop(DropReason::HostSessionLimit));
    let icmp = e.poll_transmit().expect("ICMP 3/13 sent");
    assert_eq!(&icmp.packet[20..22], &[3, 13]);
    assert_eq!(seen(&icmp.packet).dst, LAN_A);
    // Another host is not affected.
    pass(&mut e, t(0), Side::Lan, udp(LAN_B, 6000, REMOTE, 53, b""), Side::Wan);
}

#[test]
fn rfc6888_req8_released_port_is_not_reused_for_120s() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, udp(LAN_A, 40000, REMOTE, 53, b""), Side::Wan);
    e.handle_timeout(t(301));
    assert_eq!(e.session_count(), 0);
    let b = pass(&mut e, t(302), Side::Lan, udp(LAN_B, 40000, REMOTE, 53, b""), Side::Wan);
    assert_ne!(seen(&b).sport, 40000, "resting port not given to another host");
    let c = pass(&mut e, t(421), Side::Lan, udp(LAN_B, 40002, REMOTE, 53, b""), Side::Wan);
    assert_eq!(seen(&c).sport, 40002);
    e.handle_timeout(t(423));
    let d = pass(&mut e, t(423), Side::Lan, udp(LAN_A, 40000, REMOTE2, 53, b""), Side::Wan);
    assert_eq!(seen(&d).sport, 40000, "free again after the delay");
}

#[test]
fn full_table_evicts_unreplied_before_established() {
    let mut e = engine_with(|c| c.max_sessions = 3);
    let a = pass(&mut e, t(0), Side::Lan, udp(LAN_A, 1111, REMOTE, 53, b""), Side::Wan);
    pass(&mut e, t(0), Side::Wan, udp(REMOTE, 53, PUB, seen(&a).sport, b""), Side::Lan);
    pass(&mut e, t(1), Side::Lan, udp(LAN_A, 2222, REMOTE, 53, b""), Side::Wan);
    let c = pass(&mut e, t(2), Side::Lan, udp(LAN_A, 3333, REMOTE, 53, b""), Side::Wan);
    pass(&mut e, t(2), Side::Wan, udp(REMOTE, 53, PUB, seen(&c).sport, b""), Side::Lan);
    pass(&mut e, t(3), Side::Lan, udp(LAN_A, 4444, REMOTE, 53, b""), Side::Wan);
    assert_eq!(e.session_count(), 3);
    assert_eq!(e.session_totals().2, 1, "one eviction");
    assert!(e.outside_of(Proto::Udp, ep(LAN_A, 2222), ep(REMOTE, 53)).is_none(), "the unreplied one went");
    assert!(e.outside_of(Proto::Udp, ep(LAN_A, 1111), ep(REMOTE, 53)).is_some());
    assert!(e.outside_of(Proto::Udp, ep(LAN_A, 3333), ep(REMOTE, 53)).is_some());
}
