//! PPTP passthrough (RFC 2637): the Call ID ALG on TCP 1723 and enhanced GRE, for 16 clients
//! to one server that all use the same Call ID, with messages split across segments, several
//! in one segment, and retransmissions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use natpass_engine::{DropReason, Engine, Event, Side, Verdict};

const SERVER: [u8; 4] = [198, 51, 100, 23];

fn client(i: u8) -> [u8; 4] {
    [192, 168, 1, 50 + i]
}

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

fn ctrl(kind: u16, len: usize, fields: &[(usize, u16)]) -> Vec<u8> {
    let mut m = vec![0u8; len];
    m[0..2].copy_from_slice(&(len as u16).to_be_bytes());
    m[2..4].copy_from_slice(&1u16.to_be_bytes());
    m[4..8].copy_from_slice(&0x1a2b_3c4du32.to_be_bytes());
    m[8..10].copy_from_slice(&kind.to_be_bytes());
    for &(at, v) in fields {
        m[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    m
}

fn ocrq(call_id: u16) -> Vec<u8> {
    ctrl(7, 168, &[(12, call_id)])
}

fn ocrp(call_id: u16, peer: u16) -> Vec<u8> {
    ctrl(8, 32, &[(12, call_id), (14, peer)])
}

fn gre(src: [u8; 4], dst: [u8; 4], call_id: u16) -> Vec<u8> {
    let mut g = vec![0x30, 0x01, 0x88, 0x0b, 0x00, 0x04];
    g.extend_from_slice(&call_id.to_be_bytes());
    g.extend_from_slice(&[0, 0, 0, 1, 0xff, 0x03, 0xc0, 0x21]);
    let mut h = etherparse::Ipv4Header::new(g.len() as u16, 64, etherparse::IpNumber(47), src, dst).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(&g);
    v
}

fn payload_of(p: &[u8]) -> Vec<u8> {
    let hl = usize::from(p[0] & 15) * 4;
    let thl = usize::from(p[hl + 12] >> 4) * 4;
    p[hl + thl..].to_vec()
}

fn gre_call_id(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[26], p[27]])
}

/// Opens a control connection and one call for client `i` with `call_id`; returns the public
/// Call ID the server saw and the client's public TCP port.
fn open_call(e: &mut Engine, i: u8, call_id: u16, server_call: u16) -> (u16, u16) {
    let c = client(i);
    let port = 40000 + u16::from(i);
    let out = pass(e, t(0), Side::Lan, seg(c, port, SERVER, 1723, 100, &ocrq(call_id)), Side::Wan);
    let public = u16::from_be_bytes([payload_of(&out)[12], payload_of(&out)[13]]);
    let ext_port = seen(&out).sport;
    let back = pass(e, t(0), Side::Wan, seg(SERVER, 1723, PUB, ext_port, 500, &ocrp(server_call, public)), Side::Lan);
    assert_eq!(u16::from_be_bytes([payload_of(&back)[14], payload_of(&back)[15]]), call_id, "peer Call ID restored");
    (public, ext_port)
}

#[test]
fn pptp_sixteen_clients_with_the_same_call_id() {
    let mut e = engine();
    let mut publics = Vec::new();
    for i in 0..16u8 {
        let (public, _) = open_call(&mut e, i, 0x4000, 100 + u16::from(i));
        publics.push(public);
    }
    let mut sorted = publics.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 16, "public Call IDs unique per server");
    assert_eq!(publics[0], 0x4000, "the first keeps its own");
    assert!(publics.iter().all(|p| p & 0xff00 == 0x4000), "same high byte kept");
    assert_eq!(e.pptp_calls(), 16);
    // GRE both ways for everyone.
    for i in 0..16u8 {
        let out = pass(&mut e, t(1), Side::Lan, gre(client(i), SERVER, 100 + u16::from(i)), Side::Wan);
        assert_eq!(seen(&out).src, PUB);
        assert_eq!(gre_call_id(&out), 100 + u16::from(i), "outbound GRE carries the server's Call ID");
        let back = pass(&mut e, t(1), Side::Wan, gre(SERVER, PUB, publics[usize::from(i)]), Side::Lan);
        assert_eq!(seen(&back).dst, client(i));
        assert_eq!(gre_call_id(&back), 0x4000, "inbound GRE gets the client's own Call ID back");
    }
    let ups = std::iter::from_fn(|| e.poll_event()).filter(|ev| matches!(ev, Event::TunnelUp { .. })).count();
    assert_eq!(ups, 16);
}

#[test]
fn pptp_messages_split_and_coalesced_and_retransmitted() {
    let mut e = engine();
    let c = client(0);
    // Another client already holds public Call ID 7 towards this server.
    open_call(&mut e, 1, 7, 1);
    // SCCRQ and the OCRQ in three segments, the OCRQ's Call ID split between the last two.
    let mut stream = ctrl(1, 156, &[]);
    stream.extend(ocrq(7));
    let cut1 = 100;
    let cut2 = 156 + 13; // between the two bytes of the Call ID (offset 12 of the OCRQ)
    let a = pass(&mut e, t(0), Side::Lan, seg(c, 41000, SERVER, 1723, 1, &stream[..cut1]), Side::Wan);
    let b = pass(&mut e, t(0), Side::Lan, seg(c, 41000, SERVER, 1723, 1 + cut1 as u32, &stream[cut1..cut2]), Side::Wan);
    let d = pass(&mut e, t(0), Side::Lan, seg(c, 41000, SERVER, 1723, 1 + cut2 as u32, &stream[cut2..]), Side::Wan);
    let sent: Vec<u8> = [payload_of(&a), payload_of(&b), payload_of(&d)].concat();
    let public = u16::from_be_bytes([sent[156 + 12], sent[156 + 13]]);
    assert_ne!(public, 7, "translated: 7 is taken");
    assert_eq!(public & 0xff00, 0, "high byte kept, so the split field could be rewritten");
    // A retransmission of the last segment gets the same rewrite.
    let d2 = pass(&mut e, t(1), Side::Lan, seg(c, 41000, SERVER, 1723, 1 + cut2 as u32, &stream[cut2..]), Side::Wan);
    assert_eq!(payload_of(&d2), payload_of(&d));
    // The server's SCCRP and OCRP coalesced in one segment.
    let mut reply = ctrl(2, 156, &[]);
    reply.extend(ocrp(0x0999, public));
    let ext_port = seen(&a).sport;
    let back = pass(&mut e, t(1), Side::Wan, seg(SERVER, 1723, PUB, ext_port, 9, &reply), Side::Lan);
    assert_eq!(u16::from_be_bytes([payload_of(&back)[156 + 14], payload_of(&back)[156 + 15]]), 7);
    // GRE flows for this call.
    let g = pass(&mut e, t(2), Side::Wan, gre(SERVER, PUB, public), Side::Lan);
    assert_eq!((seen(&g).dst, gre_call_id(&g)), (c, 7));
    // A segment after a gap waits for the retransmission.
    let v = run(&mut e, t(2), Side::Wan, seg(SERVER, 1723, PUB, ext_port, 9 + 188 + 50, &ctrl(15, 24, &[(12, 7)])));
    assert_eq!(v, Verdict::Drop(DropReason::PptpOutOfOrder));
}

#[test]
fn pptp_call_disconnect_and_unknown_gre() {
    let mut e = engine();
    let (public, ext_port) = open_call(&mut e, 0, 0x1234, 0x0042);
    assert_eq!(run(&mut e, t(1), Side::Wan, gre(SERVER, PUB, public ^ 1)), Verdict::Drop(DropReason::GreUnknownCallId));
    assert_eq!(
        run(&mut e, t(1), Side::Lan, gre(client(0), SERVER, 0x0043)),
        Verdict::Drop(DropReason::GreUnknownCallId)
    );
    // GRE with no control connection at all (pptp_gre_data_only capture's case).
    assert_eq!(
        run(&mut e, t(1), Side::Wan, gre([203, 0, 113, 77], PUB, 5)),
        Verdict::Drop(DropReason::GreUnknownCallId)
    );
    // The server ends the call: GRE stops.
    pass(&mut e, t(2), Side::Wan, seg(SERVER, 1723, PUB, ext_port, 532, &ctrl(13, 148, &[(12, 0x0042)])), Side::Lan);
    assert_eq!(e.pptp_calls(), 0);
    assert_eq!(run(&mut e, t(3), Side::Wan, gre(SERVER, PUB, public)), Verdict::Drop(DropReason::GreUnknownCallId));
    let downs = std::iter::from_fn(|| e.poll_event()).filter(|ev| matches!(ev, Event::TunnelDown { .. })).count();
    assert_eq!(downs, 1);
}

#[test]
fn pptp_calls_end_with_their_control_connection() {
    let mut e = engine();
    let (public, ext_port) = open_call(&mut e, 0, 9, 10);
    let mut fin = Vec::new();
    etherparse::PacketBuilder::ipv4(SERVER, PUB, 64)
        .tcp(1723, ext_port, 532, 65535)
        .fin()
        .ack(1)
        .write(&mut fin, &[])
        .unwrap();
    pass(&mut e, t(1), Side::Wan, fin, Side::Lan);
    assert_eq!(run(&mut e, t(2), Side::Wan, gre(SERVER, PUB, public)), Verdict::Drop(DropReason::GreUnknownCallId));
}

#[test]
fn icmp_error_about_gre_reaches_the_client() {
    let mut e = engine();
    open_call(&mut e, 0, 5, 50);
    open_call(&mut e, 1, 6, 60);
    let sent = pass(&mut e, t(1), Side::Lan, gre(client(1), SERVER, 60), Side::Wan);
    let mut err = Vec::new();
    etherparse::PacketBuilder::ipv4([192, 0, 2, 1], PUB, 64)
        .icmpv4_raw(3, 4, [0, 0, 5, 0x78])
        .write(&mut err, &sent[..28])
        .unwrap();
    let back = pass(&mut e, t(1), Side::Wan, err, Side::Lan);
    assert_eq!(seen(&back).dst, client(1));
}
