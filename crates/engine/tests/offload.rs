//! Flow offload offers: which flows the engine lets a kernel fast path carry, and how their
//! sessions live on the fast path's reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use natpass_engine::{Proto, Side, Verdict};

fn offering() -> natpass_engine::Engine {
    let mut e = engine();
    e.set_offload(true);
    e
}

#[test]
fn a_udp_flow_is_offered_from_its_first_packet_and_lives_on_the_fast_paths_reports() {
    let mut e = offering();
    let mut out = udp(LAN_A, 40000, REMOTE, 443, b"q");
    assert_eq!(e.process(t(1), Side::Lan, &mut out), Verdict::Forward(Side::Wan));
    let public = e.outside_of(Proto::Udp, ep(LAN_A, 40000), ep(REMOTE, 443)).unwrap();
    let o = e.take_offload().expect("offered from the first packet (one-way flows too)");
    assert_eq!((o.proto, o.lan, o.remote, o.public), (Proto::Udp, ep(LAN_A, 40000), ep(REMOTE, 443), public));
    assert_eq!(e.take_offload(), None, "taken once");
    // The fast path carries it until 100 s: the session outlives its 120 s timer from 1 s.
    assert!(e.offload_seen(t(100), &o, true, 1000));
    // The answer came by the fast path too: the session is answered.
    assert!(e.offload_seen(t(100), &o, false, 10));
    e.handle_timeout(t(200));
    assert!(e.offload_live(&o));
    let listed = e.sessions().find(|s| s.lan == "192.168.1.10:40000".parse().unwrap()).unwrap();
    assert!(listed.bytes_out >= 1000, "the fast path's bytes are counted: {}", listed.bytes_out);
    e.handle_timeout(t(400));
    assert!(!e.offload_live(&o), "idle past its timer: gone");
    assert!(!e.offload_seen(t(401), &o, true, 1));
}

#[test]
fn vpn_ports_are_never_offered_and_offers_are_off_by_default() {
    let mut e = offering();
    // IKE on UDP 500 is the IPsec module's, even answered.
    let mut ike = udp(LAN_B, 500, REMOTE2, 500, &[0; 28]);
    let _ = e.process(t(1), Side::Lan, &mut ike);
    let mut back = udp(REMOTE2, 500, PUB, 500, &[0; 28]);
    let _ = e.process(t(1), Side::Wan, &mut back);
    assert_eq!(e.take_offload(), None);
    let mut off = engine();
    let mut out = udp(LAN_A, 40000, REMOTE, 443, b"q");
    let _ = off.process(t(1), Side::Lan, &mut out);
    let public = off.outside_of(Proto::Udp, ep(LAN_A, 40000), ep(REMOTE, 443)).unwrap();
    let mut back = udp(REMOTE, 443, public.addr.octets(), public.port, b"a");
    let _ = off.process(t(1), Side::Wan, &mut back);
    assert_eq!(off.take_offload(), None);
}

#[test]
fn a_tcp_connection_is_offered_once_established_and_its_fin_still_closes_it() {
    let mut e = offering();
    let mut syn = tcp(LAN_A, 40001, REMOTE, 443, "S", b"");
    assert_eq!(e.process(t(1), Side::Lan, &mut syn), Verdict::Forward(Side::Wan));
    let public = e.outside_of(Proto::Tcp, ep(LAN_A, 40001), ep(REMOTE, 443)).unwrap();
    let mut synack = tcp(REMOTE, 443, public.addr.octets(), public.port, "SA", b"");
    assert_eq!(e.process(t(1), Side::Wan, &mut synack), Verdict::Forward(Side::Lan));
    assert_eq!(e.take_offload(), None, "a SYN is never offloaded");
    let mut ack = tcp(LAN_A, 40001, REMOTE, 443, "A", b"");
    assert_eq!(e.process(t(1), Side::Lan, &mut ack), Verdict::Forward(Side::Wan));
    let o = e.take_offload().expect("established: offered");
    e.offloaded(&o);
    assert!(e.offload_live(&o));
    // The fast path carried data the engine never saw; a FIN far ahead of what the engine
    // last knew still goes through (the windows were forgotten, as conntrack's be_liberal).
    let mut fin = tcp(LAN_A, 40001, REMOTE, 443, "AF", b"");
    let seq_far = 1000u32 + 1 + 50_000_000;
    fin[24..28].copy_from_slice(&seq_far.to_be_bytes());
    let sum = tcp_checksum(&fin);
    fin[36..38].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(e.process(t(2), Side::Lan, &mut fin), Verdict::Forward(Side::Wan));
    assert_eq!(e.take_offload(), None, "a FIN is not offloaded");
    assert!(!e.offload_live(&o), "after a FIN the flow goes back to natpass");
    assert!(!e.offload_seen(t(3), &o, false, 40), "and the fast path's next report says so");
}

/// The TCP checksum of an IPv4 packet with a 20-byte header, recomputed.
fn tcp_checksum(p: &[u8]) -> u16 {
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let seg = &p[20..total];
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
    };
    add(&p[12..20]);
    add(&[0, 6]);
    add(&(seg.len() as u16).to_be_bytes());
    add(&seg[..16]);
    add(&seg[18..]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
