//! The diagnosis (issue 14) from packets: one test per finding, with the cases that must not
//! make it (a slow answer, the INVALID_KE retry, a second address in the pool). Packets are
//! built with etherparse, independently of the engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use natpass_engine::diagnosis::{Carrier, Detail, PptpMessage, Status};
use natpass_engine::{DropReason, Engine, Event, Finding, FindingKind, Instant, Protocol, Side, TunnelIds, Verdict};

const SERVER: [u8; 4] = [198, 51, 100, 200];
const A: [u8; 4] = LAN_A;
const B: [u8; 4] = LAN_B;

/// `x` milliseconds after the epoch.
fn ms(x: u64) -> Instant {
    Instant::from_nanos(x * 1_000_000)
}

/// An IKE message (RFC 7296 §3.1): header and a body of `body` bytes.
fn ike_msg(spi_i: u64, spi_r: u64, exchange: u8, flags: u8, msg_id: u32, body: usize) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&spi_i.to_be_bytes());
    m.extend_from_slice(&spi_r.to_be_bytes());
    m.extend_from_slice(&[33, 0x20, exchange, flags]);
    m.extend_from_slice(&msg_id.to_be_bytes());
    m.extend_from_slice(&((28 + body) as u32).to_be_bytes());
    m.extend_from_slice(&vec![0x5a; body]);
    m
}

const SA_INIT: u8 = 34;
const AUTH: u8 = 35;
const INITIATOR: u8 = 0x08;
const RESPONSE: u8 = 0x20;

/// IKE_SA_INIT request from `c` (500 → 500).
fn sa_init(c: [u8; 4], spi: u64) -> Vec<u8> {
    udp(c, 500, SERVER, 500, &ike_msg(spi, 0, SA_INIT, INITIATOR, 0, 300))
}

/// The server's IKE_SA_INIT response to public port 500.
fn sa_init_reply(spi_i: u64, spi_r: u64) -> Vec<u8> {
    udp(SERVER, 500, PUB, 500, &ike_msg(spi_i, spi_r, SA_INIT, RESPONSE, 0, 300))
}

/// A raw ESP packet (IP protocol 50) of `len` bytes of payload after SPI and sequence.
fn esp(src: [u8; 4], dst: [u8; 4], spi: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&vec![0xab; len]);
    raw_ip(src, dst, 50, &p)
}

fn raw_ip(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(payload.len() as u16, 64, etherparse::IpNumber(proto), src, dst).unwrap();
    h.dont_fragment = true;
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// ESP in UDP (RFC 3948 §2.1): SPI, sequence, 48 bytes.
fn esp_in_udp(spi: u32, seq: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xab; 48]);
    p
}

/// IKE behind the non-ESP marker (RFC 3948 §2.2).
fn marked(ike: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0];
    p.extend_from_slice(ike);
    p
}

fn events(e: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn found(e: &Engine, now: Instant) -> Vec<Finding> {
    e.findings(now).into_iter().filter(|f| f.status == Status::Found).collect()
}

fn kinds(e: &Engine, now: Instant) -> Vec<FindingKind> {
    found(e, now).iter().map(|f| f.kind).collect()
}

fn only(e: &Engine, now: Instant, kind: FindingKind) -> Finding {
    let f = found(e, now);
    assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(), [kind], "{f:#?}");
    f[0]
}

/// Runs the engine's timers up to `now`.
fn tick(e: &mut Engine, now: Instant) {
    if e.poll_timeout().is_some_and(|t| t <= now) {
        e.handle_timeout(now);
    }
}

// --- IKE never answered ------------------------------------------------------------------

#[test]
fn ike_sa_init_retransmitted_without_an_answer_is_never_answered() {
    let mut e = engine();
    // strongSwan's retransmissions: 0, 4 and 11.2 s.
    for t in [0, 4000, 11_200] {
        pass(&mut e, ms(t), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    }
    let f = only(&e, ms(11_200), FindingKind::IkeNeverAnswered);
    assert_eq!((f.subject.protocol, f.subject.client, f.subject.server), (Protocol::Ipsec, ip(A), ip(SERVER)));
    assert_eq!(f.subject.public, Some(ip(PUB)));
    assert_eq!(f.subject.ids, Some(TunnelIds::Ike { spi_i: 0xa1, spi_r: 0 }));
    assert_eq!((f.evidence.packets_out, f.evidence.packets_in), (3, 0));
    assert_eq!((f.evidence.first, f.evidence.last), (ms(0), ms(11_200)));
    assert!(matches!(f.evidence.detail, Detail::Ike { tries: 3, initial: true, exchange: 34, .. }));
    let text = f.explain(ms(12_000));
    assert!(text.contains("IKE_SA_INIT") && text.contains("3 times over 11 s"), "{text}");
    assert!(f.fix().contains("UDP 500 is blocked"), "{}", f.fix());
    // Counted once, and told as an event.
    assert_eq!(e.stats().finding_count(FindingKind::IkeNeverAnswered), 1);
    let evs = events(&mut e);
    assert_eq!(evs.iter().filter(|ev| matches!(ev, Event::Finding(_))).count(), 1);
    // A fourth try updates the evidence, with no new event.
    pass(&mut e, ms(20_000), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    assert_eq!(only(&e, ms(20_000), FindingKind::IkeNeverAnswered).evidence.packets_out, 4);
    assert!(!events(&mut e).iter().any(|ev| matches!(ev, Event::Finding(_))));
    // The other client sees nothing of it.
    assert!(e.findings_for(ms(20_000), ip(B)).is_empty());
}

#[test]
fn a_slow_answer_is_not_never_answered() {
    let mut e = engine();
    pass(&mut e, ms(0), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    pass(&mut e, ms(4000), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    // Two tries and no answer yet: not enough evidence, and no finding.
    let open = e.findings_for(ms(5000), ip(A));
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].kind, open[0].status), (FindingKind::IkeNeverAnswered, Status::NotEnoughEvidence));
    assert!(open[0].summary().starts_with("not enough evidence"));
    assert!(open[0].fix().starts_with("None yet"));
    assert!(e.findings(ms(5000)).is_empty());
    // The answer comes after 7 s: slow, but answered.
    pass(&mut e, ms(7000), Side::Wan, sa_init_reply(0xa1, 0xb1), Side::Lan);
    for t in [8000, 30_000, 60_000] {
        tick(&mut e, ms(t));
    }
    assert!(e.findings(ms(60_000)).is_empty());
    assert!(e.findings_for(ms(60_000), ip(A)).is_empty());
    assert_eq!(e.stats().finding_count(FindingKind::IkeNeverAnswered), 0);
}

#[test]
fn one_unanswered_try_is_never_answered_after_thirty_seconds_by_the_timer() {
    let mut e = engine();
    pass(&mut e, ms(0), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    assert!(e.findings_for(ms(1000), ip(A)).is_empty(), "one try a moment ago is nothing yet");
    assert!(e.poll_timeout().is_some());
    tick(&mut e, ms(29_000));
    assert!(kinds(&e, ms(29_000)).is_empty());
    // The engine's timer (its earliest deadline) reaches the diagnosis in time.
    let mut now = ms(29_000);
    while now < ms(31_000) {
        now = e.poll_timeout().unwrap().max(now + std::time::Duration::from_millis(1));
        tick(&mut e, now);
    }
    assert_eq!(kinds(&e, now), [FindingKind::IkeNeverAnswered]);
    assert!(events(&mut e).iter().any(|ev| matches!(ev, Event::Finding(f) if f.kind == FindingKind::IkeNeverAnswered)));
}

#[test]
fn the_invalid_ke_retry_is_no_failure() {
    let mut e = engine();
    pass(&mut e, ms(0), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    // INVALID_KE_PAYLOAD (RFC 7296 §1.2): a response with no responder SPI.
    let invalid_ke = udp(SERVER, 500, PUB, 500, &ike_msg(0xa1, 0, SA_INIT, RESPONSE, 0, 10));
    pass(&mut e, ms(20), Side::Wan, invalid_ke, Side::Lan);
    // The retry with another group (a new SPI here), answered.
    pass(&mut e, ms(40), Side::Lan, sa_init(A, 0xa2), Side::Wan);
    pass(&mut e, ms(60), Side::Wan, sa_init_reply(0xa2, 0xb2), Side::Lan);
    let auth = udp(A, 500, SERVER, 500, &ike_msg(0xa2, 0xb2, AUTH, INITIATOR, 1, 400));
    pass(&mut e, ms(80), Side::Lan, auth, Side::Wan);
    let auth_r = udp(SERVER, 500, PUB, 500, &ike_msg(0xa2, 0xb2, AUTH, RESPONSE, 1, 400));
    pass(&mut e, ms(100), Side::Wan, auth_r, Side::Lan);
    tick(&mut e, ms(60_000));
    assert!(e.findings(ms(60_000)).is_empty());
    assert!(e.findings_for(ms(60_000), ip(A)).is_empty());
}

#[test]
fn ike_from_an_ephemeral_port_never_answered_and_answers_to_another_client_do_not_count() {
    let mut e = engine();
    // IKE from port 40000 rides NAPT.
    let from = |c: [u8; 4], t: u64| (udp(c, 40000, SERVER, 500, &ike_msg(0xc1, 0, SA_INIT, INITIATOR, 0, 300)), t);
    for (p, t) in [from(A, 0), from(A, 4000), from(A, 11_200)] {
        pass(&mut e, ms(t), Side::Lan, p, Side::Wan);
    }
    let f = only(&e, ms(11_200), FindingKind::IkeNeverAnswered);
    let ports = f.subject.ports.unwrap();
    assert_eq!((ports.client, ports.server), (40000, 500));
    // The server answers B: A's finding stays.
    pass(&mut e, ms(12_000), Side::Lan, sa_init(B, 0xb7), Side::Wan);
    pass(&mut e, ms(12_010), Side::Wan, sa_init_reply(0xb7, 0x77), Side::Lan);
    assert_eq!(kinds(&e, ms(12_010)), [FindingKind::IkeNeverAnswered]);
    assert_eq!(found(&e, ms(12_010))[0].subject.client, ip(A));
}

#[test]
fn server_ike_that_natpass_cannot_place_is_not_never_answered() {
    let mut e = engine();
    // Two clients to one server; the server sends IKE under SPIs neither used (ike_ambiguous).
    pass(&mut e, ms(0), Side::Lan, sa_init(B, 0xb1), Side::Wan);
    for t in [100, 4100, 11_300] {
        pass(&mut e, ms(t), Side::Lan, sa_init(A, 0xa1), Side::Wan);
        let stray = udp(SERVER, 500, PUB, 500, &ike_msg(0xdead, 0xbeef, SA_INIT, RESPONSE, 0, 300));
        assert_eq!(run(&mut e, ms(t + 10), Side::Wan, stray), Verdict::Drop(DropReason::IkeAmbiguous));
    }
    // The server is answering someone: natpass does not say it never answers.
    assert!(!kinds(&e, ms(11_300)).contains(&FindingKind::IkeNeverAnswered));
}

#[test]
fn ikev1_messages_that_want_no_answer_are_nothing() {
    let mut e = engine();
    // IKEv1 (version 0x10): Main Mode 1 and 2, then Quick Mode 1, 2 and 3; QM3 has no answer.
    let v1 = |spi_r: u64, exchange: u8, msg_id: u32, body: usize| {
        let mut m = ike_msg(0xc0, spi_r, exchange, 0, msg_id, body);
        m[17] = 0x10;
        m
    };
    pass(&mut e, ms(0), Side::Lan, udp(A, 500, SERVER, 500, &v1(0, 2, 0, 200)), Side::Wan);
    pass(&mut e, ms(20), Side::Wan, udp(SERVER, 500, PUB, 500, &v1(0xd0, 2, 0, 200)), Side::Lan);
    pass(&mut e, ms(40), Side::Lan, udp(A, 500, SERVER, 500, &v1(0xd0, 32, 7, 300)), Side::Wan);
    pass(&mut e, ms(60), Side::Wan, udp(SERVER, 500, PUB, 500, &v1(0xd0, 32, 7, 300)), Side::Lan);
    pass(&mut e, ms(80), Side::Lan, udp(A, 500, SERVER, 500, &v1(0xd0, 32, 7, 60)), Side::Wan);
    for t in [1000, 31_000, 61_000] {
        tick(&mut e, ms(t));
    }
    assert!(e.findings(ms(61_000)).is_empty());
    assert!(e.findings_for(ms(61_000), ip(A)).is_empty(), "{:#?}", e.findings_for(ms(61_000), ip(A)));
}

// --- Large IKE message lost --------------------------------------------------------------

/// A 3000-byte IKE_AUTH in UDP 4500 behind the marker, DF clear, cut into 1500-byte fragments.
fn big_auth(c: [u8; 4]) -> Vec<Vec<u8>> {
    let m = udp(c, 4500, SERVER, 4500, &marked(&ike_msg(0xa1, 0xb1, AUTH, INITIATOR, 1, 3000)));
    fragment(&without_df(m), 1500)
}

#[test]
fn a_fragmented_ike_auth_never_answered_after_answered_small_messages_is_lost() {
    let mut e = engine();
    pass(&mut e, ms(0), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    pass(&mut e, ms(30), Side::Wan, sa_init_reply(0xa1, 0xb1), Side::Lan);
    // NAT found: IKE_AUTH moves to 4500, with certificates, in fragments; never answered.
    for t in [100, 4100, 11_300] {
        for frag in big_auth(A) {
            assert_eq!(run(&mut e, ms(t), Side::Lan, frag), Verdict::Forward(Side::Wan));
        }
    }
    let f = only(&e, ms(11_300), FindingKind::IkeLargeMessageLost);
    assert!(matches!(
        f.evidence.detail,
        Detail::Ike { exchange: 35, fragmented: true, tries: 3, answered: 1, largest_answered: 328, len: 3028, .. }
    ));
    assert_eq!(f.subject.ports.map(|p| p.server), Some(4500));
    assert!(f.explain(ms(12_000)).contains("in IP fragments"));
    assert!(f.fix().contains("RFC 7383"), "{}", f.fix());
    // The answer comes after all: cleared, with its event.
    let reply = udp(SERVER, 4500, PUB, 4500, &marked(&ike_msg(0xa1, 0xb1, AUTH, RESPONSE, 1, 200)));
    pass(&mut e, ms(12_000), Side::Wan, reply, Side::Lan);
    assert!(matches!(e.findings(ms(12_000))[0].status, Status::Cleared { .. }));
    assert!(events(&mut e).iter().any(|ev| matches!(ev, Event::FindingCleared(_))));
}

#[test]
fn an_unfragmented_ike_auth_unanswered_is_not_enough_evidence() {
    let mut e = engine();
    pass(&mut e, ms(0), Side::Lan, sa_init(A, 0xa1), Side::Wan);
    pass(&mut e, ms(30), Side::Wan, sa_init_reply(0xa1, 0xb1), Side::Lan);
    for t in [100, 4100, 11_300, 40_000] {
        let auth = udp(A, 500, SERVER, 500, &ike_msg(0xa1, 0xb1, AUTH, INITIATOR, 1, 1000));
        pass(&mut e, ms(t), Side::Lan, auth, Side::Wan);
        tick(&mut e, ms(t));
    }
    assert!(e.findings(ms(40_000)).is_empty(), "no cause without fragments");
    let open = e.findings_for(ms(40_000), ip(A));
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].status, Status::NotEnoughEvidence);
    assert!(open[0].explain(ms(40_000)).contains("not enough evidence for a cause"), "{}", open[0].explain(ms(40_000)));
}

// --- ESP one way -------------------------------------------------------------------------

#[test]
fn raw_esp_that_never_comes_back_is_one_way_and_suggests_nat_t() {
    let mut e = engine();
    for s in 0..=12u32 {
        pass(&mut e, ms(u64::from(s) * 1000), Side::Lan, esp(A, SERVER, 0x1000, s, 64), Side::Wan);
    }
    let f = only(&e, ms(12_000), FindingKind::EspOneWay);
    assert_eq!(f.subject.ids, Some(TunnelIds::Esp { spi_out: 0x1000, spi_in: 0 }));
    assert!(matches!(f.evidence.detail, Detail::OneWay { carrier: Carrier::Esp, last_in: None, .. }));
    assert!(f.evidence.packets_out >= 11);
    assert!(f.explain(ms(12_000)).contains("none ever came back"));
    assert!(f.fix().contains("NAT-T"), "{}", f.fix());
}

#[test]
fn raw_esp_answered_is_not_one_way_and_a_late_answer_clears_it() {
    let mut e = engine();
    for s in 0..=15u32 {
        pass(&mut e, ms(u64::from(s) * 1000), Side::Lan, esp(A, SERVER, 0x1000, s, 64), Side::Wan);
        if s >= 1 {
            pass(&mut e, ms(u64::from(s) * 1000 + 10), Side::Wan, esp(SERVER, PUB, 0x9000, s, 64), Side::Lan);
        }
    }
    assert!(e.findings(ms(15_000)).is_empty());
    // It stops answering: one way after 10 s of silence while the client sends...
    for s in 16..=27u32 {
        pass(&mut e, ms(u64::from(s) * 1000), Side::Lan, esp(A, SERVER, 0x1000, s, 64), Side::Wan);
    }
    let f = only(&e, ms(27_000), FindingKind::EspOneWay);
    assert!(matches!(f.evidence.detail, Detail::OneWay { last_in: Some(t), .. } if t == ms(15_010)));
    // ...and answers again: cleared at the client's next report.
    pass(&mut e, ms(28_000), Side::Wan, esp(SERVER, PUB, 0x9000, 28, 64), Side::Lan);
    pass(&mut e, ms(28_100), Side::Lan, esp(A, SERVER, 0x1000, 28, 64), Side::Wan);
    assert!(matches!(e.findings(ms(28_100))[0].status, Status::Cleared { .. }));
}

#[test]
fn server_esp_that_natpass_cannot_place_is_not_one_way() {
    let mut e = engine();
    // The server's first answer comes after natpass stopped waiting (10 s): natpass drops it
    // as esp_unknown_spi. The server does answer, so "blocked upstream" would be wrong.
    for s in 0..=14u32 {
        pass(&mut e, ms(u64::from(s) * 1000), Side::Lan, esp(A, SERVER, 0x1000, s, 64), Side::Wan);
        if s >= 11 {
            let v = run(&mut e, ms(u64::from(s) * 1000 + 10), Side::Wan, esp(SERVER, PUB, 0x9000, s, 64));
            assert_eq!(v, Verdict::Drop(DropReason::EspUnknownSpi));
        }
    }
    // Found at 10 s, when nothing had come back; the server's ESP at 11 s clears it at the
    // next report.
    let all = e.findings(ms(14_000));
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].kind, all[0].since, all[0].evidence.last), (FindingKind::EspOneWay, ms(10_000), ms(11_000)));
    assert!(matches!(all[0].status, Status::Cleared { at } if at == ms(12_000)));
}

#[test]
fn esp_in_udp_one_way_while_ike_on_the_flow_is_answered_blames_the_server_sa() {
    let mut e = engine();
    let ike = udp(A, 4500, SERVER, 4500, &marked(&ike_msg(0xa1, 0xb1, 37, INITIATOR, 2, 40)));
    let out = pass(&mut e, ms(0), Side::Lan, ike, Side::Wan);
    let port = seen(&out).sport;
    let dpd = udp(SERVER, 4500, PUB, port, &marked(&ike_msg(0xa1, 0xb1, 37, RESPONSE, 2, 40)));
    pass(&mut e, ms(50), Side::Wan, dpd, Side::Lan);
    for s in 1..=12u32 {
        pass(&mut e, ms(u64::from(s) * 1000), Side::Lan, udp(A, 4500, SERVER, 4500, &esp_in_udp(0x2000, s)), Side::Wan);
    }
    let f = only(&e, ms(12_000), FindingKind::EspOneWay);
    assert!(matches!(f.evidence.detail, Detail::OneWay { carrier: Carrier::EspInUdp, last_ike_in: Some(_), .. }));
    assert_eq!(f.subject.ports.map(|p| (p.client, p.public, p.server)), Some((4500, port, 4500)));
    assert!(f.fix().contains("has no SA"), "{}", f.fix());
    // ESP comes back: the next report clears it.
    pass(&mut e, ms(13_000), Side::Wan, udp(SERVER, 4500, PUB, port, &esp_in_udp(0x3000, 1)), Side::Lan);
    pass(&mut e, ms(13_500), Side::Lan, udp(A, 4500, SERVER, 4500, &esp_in_udp(0x2000, 13)), Side::Wan);
    assert!(matches!(e.findings(ms(13_500))[0].status, Status::Cleared { .. }));
}

// --- NAT-T mapping lost ------------------------------------------------------------------

#[test]
fn server_packets_after_the_nat_t_mapping_expired_are_explained() {
    let mut e = engine();
    let mut port = 0;
    // Keepalives every 20 s, then the client falls silent.
    for s in [0u64, 20, 40] {
        let out = pass(&mut e, t(s), Side::Lan, udp(A, 4500, SERVER, 4500, &[0xff]), Side::Wan);
        port = seen(&out).sport;
    }
    // The server's packets while the mapping lives pass.
    pass(&mut e, t(200), Side::Wan, udp(SERVER, 4500, PUB, port, &esp_in_udp(0x3000, 1)), Side::Lan);
    assert!(e.findings(t(200)).is_empty());
    // 300 s of silence: the mapping expires; the server's DPD then finds no mapping.
    tick(&mut e, t(501));
    assert_eq!(e.session_count(), 0);
    let dpd = udp(SERVER, 4500, PUB, port, &marked(&ike_msg(0xa1, 0xb1, 37, INITIATOR, 9, 40)));
    assert_eq!(run(&mut e, t(600), Side::Wan, dpd.clone()), Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, t(610), Side::Wan, dpd), Verdict::Drop(DropReason::NoMapping));
    let f = only(&e, t(610), FindingKind::NatTMappingLost);
    assert_eq!((f.subject.client, f.subject.server), (ip(A), ip(SERVER)));
    assert_eq!(f.subject.ports.map(|p| p.public), Some(port));
    assert_eq!(f.evidence.packets_in, 2);
    let Detail::NatT { keepalives, keepalive_every, expired, last_out, .. } = f.evidence.detail else { panic!() };
    assert_eq!((keepalives, keepalive_every), (3, Some(std::time::Duration::from_secs(20))));
    assert_eq!((last_out, expired), (t(40), t(500)));
    assert!(f.fix().contains("keepalives"), "{}", f.fix());
}

#[test]
fn unsolicited_packets_from_port_4500_are_no_mapping_lost() {
    let mut e = engine();
    // Never a NAT-T flow to this port: a stray packet is just no mapping.
    assert_eq!(
        run(&mut e, t(1), Side::Wan, udp(SERVER, 4500, PUB, 4500, &esp_in_udp(1, 1))),
        Verdict::Drop(DropReason::NoMapping)
    );
    assert!(e.findings(t(1)).is_empty());
}

// --- Raw ESP refused for a second client -------------------------------------------------

#[test]
fn a_second_client_kept_waiting_for_raw_esp_is_told_when_it_gets_in() {
    let mut e = engine();
    pass(&mut e, ms(0), Side::Lan, esp(A, SERVER, 0xa, 1, 64), Side::Wan);
    // B's new SA is refused (A's waits for its first answer): once is how sharing works.
    assert_eq!(run(&mut e, ms(100), Side::Lan, esp(B, SERVER, 0xb, 1, 64)), Verdict::Drop(DropReason::EspServerBusy));
    assert!(e.findings(ms(100)).is_empty());
    assert_eq!(e.findings_for(ms(100), ip(B))[0].status, Status::NotEnoughEvidence);
    for t in [1100, 2100] {
        assert_eq!(run(&mut e, ms(t), Side::Lan, esp(B, SERVER, 0xb, 1, 64)), Verdict::Drop(DropReason::EspServerBusy));
    }
    let f = only(&e, ms(2100), FindingKind::EspServerBusy);
    assert_eq!(f.subject.client, ip(B));
    let Detail::Busy { waiting_client, let_in_by, .. } = f.evidence.detail else { panic!() };
    assert_eq!((waiting_client, let_in_by), (ip(A), ms(10_000)));
    assert!(f.explain(ms(2100)).contains("in 7.9 s"), "{}", f.explain(ms(2100)));
    // A gets its answer; B's next try passes and the finding clears.
    pass(&mut e, ms(2500), Side::Wan, esp(SERVER, PUB, 0xa0, 1, 64), Side::Lan);
    pass(&mut e, ms(3100), Side::Lan, esp(B, SERVER, 0xb, 1, 64), Side::Wan);
    assert!(matches!(e.findings(ms(3100))[0].status, Status::Cleared { .. }));
    assert!(e.findings_for(ms(3100), ip(B)).iter().all(|f| f.status != Status::NotEnoughEvidence));
}

// --- PPTP ---------------------------------------------------------------------------------

fn seg(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 65535)
        .ack(1)
        .psh()
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ctrl(kind: u16, len: usize, fields: &[(usize, u16)], bytes: &[(usize, u8)]) -> Vec<u8> {
    let mut m = vec![0u8; len];
    m[0..2].copy_from_slice(&(len as u16).to_be_bytes());
    m[2..4].copy_from_slice(&1u16.to_be_bytes());
    m[4..8].copy_from_slice(&0x1a2b_3c4du32.to_be_bytes());
    m[8..10].copy_from_slice(&kind.to_be_bytes());
    for &(at, v) in fields {
        m[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    for &(at, v) in bytes {
        m[at] = v;
    }
    m
}

fn gre(src: [u8; 4], dst: [u8; 4], call_id: u16) -> Vec<u8> {
    let mut g = vec![0x30, 0x01, 0x88, 0x0b, 0x00, 0x04];
    g.extend_from_slice(&call_id.to_be_bytes());
    g.extend_from_slice(&[0, 0, 0, 1, 0xff, 0x03, 0xc0, 0x21]);
    raw_ip(src, dst, 47, &g)
}

/// A's control connection (port 40000) and a call: Call ID 7 for A, 0x99 for the server, with
/// the Outgoing-Call-Reply result `result`. Returns the public TCP port.
fn pptp_call(e: &mut Engine, result: u8) -> u16 {
    let out = pass(e, ms(0), Side::Lan, seg(A, 40000, SERVER, 1723, 100, &ctrl(7, 168, &[(12, 7)], &[])), Side::Wan);
    let port = seen(&out).sport;
    let reply = ctrl(8, 32, &[(12, 0x99), (14, 7)], &[(16, result)]);
    pass(e, ms(10), Side::Wan, seg(SERVER, 1723, PUB, port, 500, &reply), Side::Lan);
    port
}

#[test]
fn gre_that_only_leaves_is_blocked_upstream() {
    let mut e = engine();
    pptp_call(&mut e, 1);
    // PPP's LCP retries every 3 s; no GRE ever comes back.
    for t in [100, 3100, 6100, 9100, 12_100] {
        pass(&mut e, ms(t), Side::Lan, gre(A, SERVER, 0x99), Side::Wan);
    }
    let f = only(&e, ms(12_100), FindingKind::GreOneWay);
    assert_eq!(f.subject.ids, Some(TunnelIds::Pptp { client_call_id: 7, public_call_id: 7, server_call_id: 0x99 }));
    assert!(f.fix().contains("IP protocol 47"), "{}", f.fix());
    assert!(f.explain(ms(12_100)).contains("none ever came back"));
}

#[test]
fn gre_answered_is_not_one_way() {
    let mut e = engine();
    pptp_call(&mut e, 1);
    for t in [100, 3100, 6100, 9100, 12_100] {
        pass(&mut e, ms(t), Side::Lan, gre(A, SERVER, 0x99), Side::Wan);
        pass(&mut e, ms(t + 50), Side::Wan, gre(SERVER, PUB, 7), Side::Lan);
    }
    assert!(e.findings(ms(12_100)).is_empty());
}

#[test]
fn call_disconnect_notify_result_codes_are_decoded() {
    let mut e = engine();
    let port = pptp_call(&mut e, 1);
    assert!(e.findings(ms(10)).is_empty(), "result 1 is Connected");
    // Admin Shutdown (RFC 2637 §2.13: result 3).
    let cdn = ctrl(13, 148, &[(12, 0x99)], &[(14, 3)]);
    pass(&mut e, ms(5000), Side::Wan, seg(SERVER, 1723, PUB, port, 532, &cdn), Side::Lan);
    let f = only(&e, ms(5000), FindingKind::PptpCallFailed);
    assert!(matches!(f.evidence.detail, Detail::Call { message: PptpMessage::CallDisconnectNotify, result: 3, .. }));
    assert_eq!(f.subject.ids, Some(TunnelIds::Pptp { client_call_id: 7, public_call_id: 7, server_call_id: 0x99 }));
    let text = f.explain(ms(5000));
    assert!(text.contains("result 3 (Admin Shutdown)"), "{text}");
    assert!(f.fix().contains("user name and password"), "{}", f.fix());
}

#[test]
fn a_hang_up_the_client_asked_for_is_no_finding_and_a_busy_server_is() {
    let mut e = engine();
    let port = pptp_call(&mut e, 1);
    // Call-Disconnect-Notify result 4 (Request): the answer to the client's Call-Clear-Request.
    let cdn = ctrl(13, 148, &[(12, 0x99)], &[(14, 4)]);
    pass(&mut e, ms(5000), Side::Wan, seg(SERVER, 1723, PUB, port, 532, &cdn), Side::Lan);
    assert!(e.findings(ms(5000)).is_empty());
    // Another engine: the server refuses the call, Outgoing-Call-Reply result 4 (Busy).
    let mut e = engine();
    pptp_call(&mut e, 4);
    let f = only(&e, ms(10), FindingKind::PptpCallFailed);
    assert!(f.explain(ms(10)).contains("result 4 (Busy)"), "{}", f.explain(ms(10)));
}

#[test]
fn gre_without_its_control_connection_is_found() {
    let mut e = engine();
    for t in 0..5u64 {
        assert_eq!(
            run(&mut e, ms(t * 1000), Side::Lan, gre(A, SERVER, 2035)),
            Verdict::Drop(DropReason::GreUnknownCallId)
        );
        assert_eq!(
            run(&mut e, ms(t * 1000 + 10), Side::Wan, gre(SERVER, PUB, 55936)),
            Verdict::Drop(DropReason::GreUnknownCallId)
        );
    }
    let f = only(&e, ms(4010), FindingKind::GreWithoutControl);
    assert_eq!((f.evidence.packets_out, f.evidence.packets_in), (5, 5));
    assert!(matches!(f.evidence.detail, Detail::Orphan { call_id: 2035 }));
    assert!(f.fix().contains("connect again"), "{}", f.fix());
}

#[test]
fn gre_with_a_wrong_call_id_on_a_known_control_connection_is_not_without_control() {
    let mut e = engine();
    pptp_call(&mut e, 1);
    for t in 0..5u64 {
        assert_eq!(
            run(&mut e, ms(100 + t), Side::Lan, gre(A, SERVER, 0x55)),
            Verdict::Drop(DropReason::GreUnknownCallId)
        );
    }
    assert!(e.findings(ms(200)).is_empty());
}

// --- L2TP ---------------------------------------------------------------------------------

fn l2tp_ctrl(msg: u16, tunnel: u16, assigned: u16) -> Vec<u8> {
    let mut m = vec![0xc8, 0x02, 0, 0];
    m.extend_from_slice(&tunnel.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&[0x80, 0x08, 0, 0, 0, 0]);
    m.extend_from_slice(&msg.to_be_bytes());
    m.extend_from_slice(&[0x80, 0x08, 0, 0, 0, 9]);
    m.extend_from_slice(&assigned.to_be_bytes());
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

const SCCRQ: u16 = 1;
const SCCRP: u16 = 2;
const STOPCCN: u16 = 4;

/// A's tunnel to the LNS, up; returns A's public port.
fn l2tp_up(e: &mut Engine) -> u16 {
    let out = pass(e, ms(0), Side::Lan, udp(A, 1701, SERVER, 1701, &l2tp_ctrl(SCCRQ, 0, 11)), Side::Wan);
    let port = seen(&out).sport;
    pass(e, ms(10), Side::Wan, udp(SERVER, 1701, PUB, port, &l2tp_ctrl(SCCRP, 11, 21)), Side::Lan);
    port
}

#[test]
fn a_second_l2tp_client_unanswered_from_the_same_address_is_one_client_per_address() {
    let mut e = engine();
    l2tp_up(&mut e);
    // B asks from the same public address (another port): the LNS never answers.
    let mut b_port = 0;
    for t in [1000, 2000, 4000, 8000] {
        let out = pass(&mut e, ms(t), Side::Lan, udp(B, 1701, SERVER, 1701, &l2tp_ctrl(SCCRQ, 0, 12)), Side::Wan);
        assert_eq!(seen(&out).src, PUB);
        b_port = seen(&out).sport;
    }
    assert_ne!(b_port, 1701);
    let f = only(&e, ms(8000), FindingKind::L2tpOneClientPerAddress);
    assert_eq!(f.subject.client, ip(B));
    assert!(matches!(f.evidence.detail, Detail::L2tp { tries: 4, refused: false, pool: 1, .. }));
    assert_eq!(f.subject.ports.map(|p| p.public), Some(b_port));
    let fix = f.fix();
    assert!(fix.contains("one client per public address") && fix.contains("public_addrs"), "{fix}");
    // The LNS answers B after all: cleared.
    pass(&mut e, ms(9000), Side::Wan, udp(SERVER, 1701, PUB, b_port, &l2tp_ctrl(SCCRP, 12, 22)), Side::Lan);
    assert!(matches!(e.findings(ms(9000))[0].status, Status::Cleared { .. }));
}

#[test]
fn a_second_l2tp_client_refused_by_stopccn_is_one_client_per_address() {
    let mut e = engine();
    l2tp_up(&mut e);
    let out = pass(&mut e, ms(1000), Side::Lan, udp(B, 1701, SERVER, 1701, &l2tp_ctrl(SCCRQ, 0, 12)), Side::Wan);
    let stop = l2tp_ctrl(STOPCCN, 12, 22);
    pass(&mut e, ms(1050), Side::Wan, udp(SERVER, 1701, PUB, seen(&out).sport, &stop), Side::Lan);
    let f = only(&e, ms(1050), FindingKind::L2tpOneClientPerAddress);
    assert!(matches!(f.evidence.detail, Detail::L2tp { refused: true, .. }));
    assert!(f.explain(ms(1050)).contains("refused it (StopCCN)"));
}

#[test]
fn with_two_public_addresses_paired_pooling_spreads_l2tp_clients() {
    let mut e = engine_with(|c| c.public_addrs = vec![PUB.into(), PUB2.into()]);
    let a = pass(&mut e, ms(0), Side::Lan, udp(A, 1701, SERVER, 1701, &l2tp_ctrl(SCCRQ, 0, 11)), Side::Wan);
    pass(&mut e, ms(10), Side::Wan, udp(SERVER, 1701, seen(&a).src, 1701, &l2tp_ctrl(SCCRP, 11, 21)), Side::Lan);
    let mut b = Vec::new();
    for t in [1000, 2000, 4000, 8000] {
        b = pass(&mut e, ms(t), Side::Lan, udp(B, 1701, SERVER, 1701, &l2tp_ctrl(SCCRQ, 0, 12)), Side::Wan);
    }
    // Each client has its own public address, both keep port 1701: nothing to report even
    // though this LNS does not answer B.
    assert_ne!(seen(&a).src, seen(&b).src);
    assert_eq!((seen(&a).sport, seen(&b).sport), (1701, 1701));
    assert!(e.findings(ms(8000)).is_empty());
    assert!(e.findings_for(ms(8000), ip(B)).is_empty());
}

// --- Path MTU -----------------------------------------------------------------------------

#[test]
fn fragmentation_needed_about_a_tunnel_packet_suggests_the_tunnel_mtu() {
    let mut e = engine();
    let sent = pass(&mut e, ms(0), Side::Lan, esp(A, SERVER, 0x10, 1, 1400), Side::Wan);
    let err = icmp_error([192, 0, 2, 1], PUB, 3, 4, 1400, &sent, false);
    pass(&mut e, ms(5), Side::Wan, err, Side::Lan);
    let f = only(&e, ms(5), FindingKind::PathMtu);
    assert_eq!((f.subject.protocol, f.subject.client, f.subject.server), (Protocol::Ipsec, ip(A), ip(SERVER)));
    assert!(matches!(
        f.evidence.detail,
        Detail::Mtu { mtu: 1400, packet_len: 1428, by_natpass: false, reporter } if reporter == std::net::Ipv4Addr::new(192, 0, 2, 1)
    ));
    let fix = f.fix();
    assert!(fix.contains("at most 1323"), "{fix}");
}

#[test]
fn natpass_own_wan_mtu_refusing_a_tunnel_packet_is_path_mtu() {
    let mut e = engine_with(|c| c.wan_mtu = 1400);
    let big = udp(A, 4500, SERVER, 4500, &esp_in_udp(0x20, 1).repeat(30));
    assert_eq!(run(&mut e, ms(0), Side::Lan, big), Verdict::Drop(DropReason::FragmentationNeeded));
    let f = only(&e, ms(0), FindingKind::PathMtu);
    assert!(matches!(f.evidence.detail, Detail::Mtu { mtu: 1400, by_natpass: true, .. }));
    assert!(f.explain(ms(0)).contains("natpass's WAN MTU is 1400"));
    // NAT-T: the UDP header counts too.
    assert!(f.fix().contains("at most 1315"), "{}", f.fix());
}

#[test]
fn fragmentation_needed_about_plain_traffic_is_no_finding() {
    let mut e = engine();
    let sent = pass(&mut e, ms(0), Side::Lan, udp(A, 5353, SERVER, 53, &[0; 1400]), Side::Wan);
    let err = icmp_error([192, 0, 2, 1], PUB, 3, 4, 1400, &sent, false);
    pass(&mut e, ms(5), Side::Wan, err, Side::Lan);
    assert!(e.findings(ms(5)).is_empty());
}

// --- Switch off ---------------------------------------------------------------------------

#[test]
fn refused_because_the_switch_is_off_until_it_goes_on() {
    let mut e = engine();
    e.set_passthrough(Protocol::Pptp, false);
    for t in 0..3u64 {
        let syn = tcp(A, 40000, SERVER, 1723, "S", b"");
        assert_eq!(run(&mut e, ms(t * 1000), Side::Lan, syn), Verdict::Drop(DropReason::PptpDisabled));
    }
    // From the WAN nothing names a client: no finding for it.
    assert_eq!(run(&mut e, ms(3000), Side::Wan, gre(SERVER, PUB, 1)), Verdict::Drop(DropReason::PptpDisabled));
    let f = only(&e, ms(3000), FindingKind::PassthroughDisabled);
    assert_eq!((f.subject.protocol, f.subject.client, f.evidence.packets_out), (Protocol::Pptp, ip(A), 3));
    assert!(matches!(f.evidence.detail, Detail::Disabled { reason: DropReason::PptpDisabled }));
    assert!(f.fix().contains("natpass passthrough pptp enable"), "{}", f.fix());
    e.set_passthrough(Protocol::Pptp, true);
    assert!(matches!(e.findings(ms(3000))[0].status, Status::Cleared { .. }));
    assert!(
        events(&mut e)
            .iter()
            .any(|ev| matches!(ev, Event::FindingCleared(f) if f.kind == FindingKind::PassthroughDisabled))
    );
    // Counters per kind.
    let counts: Vec<(FindingKind, u64)> = e.stats().findings_by_kind().filter(|c| c.1 > 0).collect();
    assert_eq!(counts, [(FindingKind::PassthroughDisabled, 1)]);
}

// --- Bounds -------------------------------------------------------------------------------

#[test]
fn findings_stay_bounded_whatever_the_lan_sends() {
    let mut e = engine();
    e.set_passthrough(Protocol::Ipsec, false);
    // 200 clients, 50 servers each: 10,000 refusals that each make a finding.
    for c in 0..200u32 {
        for s in 0..50u32 {
            let client = [192, 168, 1 + (c / 250) as u8, (c % 250) as u8 + 2];
            let server = [198, 51, 100 + (s / 250) as u8, (s % 250) as u8 + 1];
            let _ = run(&mut e, ms(u64::from(c * 50 + s)), Side::Lan, udp(client, 500, server, 500, &[0; 40]));
        }
    }
    let all = e.findings(ms(10_000));
    assert!(all.len() <= natpass_engine::diagnosis::FINDINGS_MAX, "{}", all.len());
    let per = all.iter().filter(|f| f.subject.client == std::net::Ipv4Addr::new(192, 168, 1, 201)).count();
    assert!(per <= natpass_engine::diagnosis::FINDINGS_PER_CLIENT);
    // The newest are kept.
    assert!(all.iter().any(|f| f.evidence.last == ms(199 * 50 + 49)));
    // They go an hour after their last evidence.
    tick(&mut e, ms(10_000) + natpass_engine::diagnosis::FINDING_TTL);
    assert!(e.findings(ms(10_000) + natpass_engine::diagnosis::FINDING_TTL).is_empty());
}
