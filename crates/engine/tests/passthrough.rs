//! VPN passthrough scenarios: 16 clients at once to one server for raw ESP and IKE on port
//! 500, NAT-T and L2TP through the NAPT engine, AH refused, and the per-protocol switches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use natpass_engine::{DropReason, Engine, Event, Filtering, Protocol, Side, TunnelIds, Verdict};

const SERVER: [u8; 4] = [198, 51, 100, 200];

fn client(i: u8) -> [u8; 4] {
    [192, 168, 1, 100 + i]
}

/// A raw ESP packet (IP protocol 50) with `spi` and `seq`.
fn esp(src: [u8; 4], dst: [u8; 4], spi: u32, seq: u32) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&spi.to_be_bytes());
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(&[0xab; 48]);
    raw_ip(src, dst, 50, &payload)
}

fn raw_ip(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(payload.len() as u16, 64, etherparse::IpNumber(proto), src, dst).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// An IKE message in UDP (IKEv2 header, 28 bytes, plus a little body).
fn ike(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, spi_i: u64, spi_r: u64, response: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&spi_i.to_be_bytes());
    m.extend_from_slice(&spi_r.to_be_bytes());
    m.extend_from_slice(&[33, 0x20, 34, if response { 0x20 } else { 0x08 }]);
    m.extend_from_slice(&0u32.to_be_bytes());
    m.extend_from_slice(&40u32.to_be_bytes());
    m.extend_from_slice(&[0u8; 12]);
    udp(src, sport, dst, dport, &m)
}

fn events(e: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn tunnels_up(evs: &[Event]) -> usize {
    evs.iter().filter(|e| matches!(e, Event::TunnelUp { .. })).count()
}

#[test]
fn esp_sixteen_clients_to_one_server() {
    let mut e = engine();
    // Each client opens its SA in turn; the server's first answer binds to it.
    for i in 0..16u8 {
        let out = pass(&mut e, t(1), Side::Lan, esp(client(i), SERVER, 0x1000 + u32::from(i), 1), Side::Wan);
        assert_eq!(seen(&out).src, PUB);
        let back = pass(&mut e, t(1), Side::Wan, esp(SERVER, PUB, 0x9000 + u32::from(i), 1), Side::Lan);
        assert_eq!(seen(&back).dst, client(i));
    }
    assert_eq!(tunnels_up(&events(&mut e)), 16);
    // Then all of them at once, interleaved, both ways, for a while.
    for seq in 2..20u32 {
        for i in (0..16u8).rev() {
            pass(&mut e, t(2), Side::Lan, esp(client(i), SERVER, 0x1000 + u32::from(i), seq), Side::Wan);
            let back = pass(&mut e, t(2), Side::Wan, esp(SERVER, PUB, 0x9000 + u32::from(i), seq), Side::Lan);
            assert_eq!(seen(&back).dst, client(i), "SPI {:#x} reaches its client", 0x9000 + u32::from(i));
        }
    }
    assert_eq!(e.ipsec_state().0, 16);
    assert_eq!(e.ipsec_state().1, 16);
}

#[test]
fn esp_second_client_waits_while_first_is_pending() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, esp(client(0), SERVER, 0xa, 1), Side::Wan);
    // B's new SA while A's waits for its first inbound packet: refused with ICMP 3/13.
    let v = run(&mut e, t(0), Side::Lan, esp(client(1), SERVER, 0xb, 1));
    assert_eq!(v, Verdict::Drop(DropReason::EspServerBusy));
    let icmp = e.poll_transmit().expect("ICMP 3/13 to the refused client");
    assert_eq!(&icmp.packet[20..22], &[3, 13]);
    assert_eq!(seen(&icmp.packet).dst, client(1));
    let evs = events(&mut e);
    assert!(evs.iter().any(|e| matches!(e, Event::PassthroughRefused { reason: DropReason::EspServerBusy, .. })));
    // A binds; B may go at once, and the next unknown SPI is B's.
    assert_eq!(seen(&pass(&mut e, t(1), Side::Wan, esp(SERVER, PUB, 0xa0, 1), Side::Lan)).dst, client(0));
    pass(&mut e, t(1), Side::Lan, esp(client(1), SERVER, 0xb, 2), Side::Wan);
    assert_eq!(seen(&pass(&mut e, t(1), Side::Wan, esp(SERVER, PUB, 0xb0, 1), Side::Lan)).dst, client(1));
    assert_eq!(seen(&pass(&mut e, t(1), Side::Wan, esp(SERVER, PUB, 0xa0, 2), Side::Lan)).dst, client(0));
}

#[test]
fn esp_pending_claim_ends_after_its_timer() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, esp(client(0), SERVER, 0xa, 1), Side::Wan);
    assert_eq!(run(&mut e, t(9), Side::Lan, esp(client(1), SERVER, 0xb, 1)), Verdict::Drop(DropReason::EspServerBusy));
    // The server never answered A; after 10 s B may open its SA.
    pass(&mut e, t(11), Side::Lan, esp(client(1), SERVER, 0xb, 1), Side::Wan);
    assert_eq!(seen(&pass(&mut e, t(11), Side::Wan, esp(SERVER, PUB, 0xb0, 1), Side::Lan)).dst, client(1));
}

#[test]
fn esp_rekey_leaves_other_clients_alone() {
    let mut e = engine();
    for (i, spi) in [(0u8, 0xa0u32), (1, 0xb0)] {
        pass(&mut e, t(0), Side::Lan, esp(client(i), SERVER, spi - 0x90, 1), Side::Wan);
        pass(&mut e, t(0), Side::Wan, esp(SERVER, PUB, spi, 1), Side::Lan);
    }
    // A rekeys: new SPIs both ways; B keeps talking in between.
    pass(&mut e, t(100), Side::Lan, esp(client(0), SERVER, 0x1a, 1), Side::Wan);
    assert_eq!(seen(&pass(&mut e, t(100), Side::Wan, esp(SERVER, PUB, 0xb0, 5), Side::Lan)).dst, client(1));
    assert_eq!(seen(&pass(&mut e, t(100), Side::Wan, esp(SERVER, PUB, 0xa1, 1), Side::Lan)).dst, client(0));
    assert_eq!(seen(&pass(&mut e, t(101), Side::Wan, esp(SERVER, PUB, 0xa0, 9), Side::Lan)).dst, client(0));
    // The old SAs go when idle; the new ones stay.
    for s in (110..420).step_by(30) {
        pass(&mut e, t(s), Side::Lan, esp(client(0), SERVER, 0x1a, s as u32), Side::Wan);
        pass(&mut e, t(s), Side::Wan, esp(SERVER, PUB, 0xa1, s as u32), Side::Lan);
        e.handle_timeout(t(s));
    }
    assert_eq!(run(&mut e, t(420), Side::Wan, esp(SERVER, PUB, 0xa0, 99)), Verdict::Drop(DropReason::EspUnknownSpi));
    let downs = events(&mut e).into_iter().filter(|e| matches!(e, Event::TunnelDown { .. })).count();
    assert_eq!(downs, 2, "A's old SA pair and B's idle one went down");
}

#[test]
fn esp_from_unknown_hosts_and_spis_is_dropped() {
    let mut e = engine();
    assert_eq!(run(&mut e, t(0), Side::Wan, esp(SERVER, PUB, 0x77, 1)), Verdict::Drop(DropReason::EspNoServer));
    pass(&mut e, t(0), Side::Lan, esp(client(0), SERVER, 0xa, 1), Side::Wan);
    pass(&mut e, t(0), Side::Wan, esp(SERVER, PUB, 0xa0, 1), Side::Lan);
    assert_eq!(run(&mut e, t(0), Side::Wan, esp(SERVER, PUB, 0x77, 1)), Verdict::Drop(DropReason::EspUnknownSpi));
    let short = raw_ip(SERVER, PUB, 50, &[0, 0, 0, 0xa0, 0, 0]);
    assert_eq!(run(&mut e, t(0), Side::Wan, short), Verdict::Drop(DropReason::Malformed));
}

#[test]
fn ah_is_refused_with_icmp_13() {
    let mut e = engine();
    let ah = raw_ip(client(0), SERVER, 51, &[1, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(run(&mut e, t(0), Side::Lan, ah), Verdict::Drop(DropReason::AhRefused));
    let icmp = e.poll_transmit().expect("ICMP 3/13");
    assert_eq!(&icmp.packet[20..22], &[3, 13]);
}

#[test]
fn ike_port_500_kept_for_sixteen_clients_and_demultiplexed_by_spi() {
    let mut e = engine();
    let spi_i = |i: u8| 0x1111_0000_0000_0000 | u64::from(i);
    let spi_r = |i: u8| 0x2222_0000_0000_0000 | u64::from(i);
    for i in 0..16u8 {
        let out = pass(&mut e, t(0), Side::Lan, ike(client(i), 500, SERVER, 500, spi_i(i), 0, false), Side::Wan);
        assert_eq!((seen(&out).src, seen(&out).sport), (PUB, 500), "client {i} keeps port 500");
    }
    // The server answers each, in another order; the responder SPI is learned from the reply.
    for i in (0..16u8).rev() {
        let r = pass(&mut e, t(1), Side::Wan, ike(SERVER, 500, PUB, 500, spi_i(i), spi_r(i), true), Side::Lan);
        assert_eq!((seen(&r).dst, seen(&r).dport), (client(i), 500));
    }
    // Later messages both ways.
    for i in 0..16u8 {
        pass(&mut e, t(2), Side::Lan, ike(client(i), 500, SERVER, 500, spi_i(i), spi_r(i), false), Side::Wan);
        let r = pass(&mut e, t(2), Side::Wan, ike(SERVER, 500, PUB, 500, spi_i(i), spi_r(i), true), Side::Lan);
        assert_eq!(seen(&r).dst, client(i));
    }
    // A client rekeys its IKE SA with a new SPI; the server's reply under it comes back.
    pass(&mut e, t(3), Side::Lan, ike(client(5), 500, SERVER, 500, 0x55, 0, false), Side::Wan);
    assert_eq!(
        seen(&pass(&mut e, t(3), Side::Wan, ike(SERVER, 500, PUB, 500, 0x55, 0x66, true), Side::Lan)).dst,
        client(5)
    );
    // A message under the new SA as the server's (the server started it): known by SPIr.
    assert_eq!(
        seen(&pass(&mut e, t(3), Side::Wan, ike(SERVER, 500, PUB, 500, 0x77, 0x55, false), Side::Lan)).dst,
        client(5)
    );
    assert_eq!(tunnels_up(&events(&mut e)), 17);
    // Port 500 is never given to a plain UDP mapping.
    let other = pass(&mut e, t(4), Side::Lan, udp(client(0), 500, REMOTE, 9999, b"x"), Side::Wan);
    assert_ne!(seen(&other).sport, 500);
}

#[test]
fn ike_new_sa_from_server_with_unknown_spis() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, ike(client(0), 500, SERVER, 500, 0xa, 0, false), Side::Wan);
    // One client talks to this server: delivered to it.
    let r = pass(&mut e, t(1), Side::Wan, ike(SERVER, 500, PUB, 500, 0xdead, 0, false), Side::Lan);
    assert_eq!(seen(&r).dst, client(0));
    // Two clients: no safe choice; dropped and counted.
    pass(&mut e, t(2), Side::Lan, ike(client(1), 500, SERVER, 500, 0xb, 0, false), Side::Wan);
    let v = run(&mut e, t(3), Side::Wan, ike(SERVER, 500, PUB, 500, 0xbeef, 0, false));
    assert_eq!(v, Verdict::Drop(DropReason::IkeAmbiguous));
    assert_eq!(e.stats().drop_count(DropReason::IkeAmbiguous), 1);
    // Once the right client answers under the new SA, it is learned.
    pass(&mut e, t(4), Side::Lan, ike(client(1), 500, SERVER, 500, 0xbeef, 0xb1, true), Side::Wan);
    assert_eq!(
        seen(&pass(&mut e, t(4), Side::Wan, ike(SERVER, 500, PUB, 500, 0xbeef, 0xb1, false), Side::Lan)).dst,
        client(1)
    );
}

#[test]
fn nat_t_on_4500_for_sixteen_clients_with_keepalives() {
    let mut e = engine();
    let mut ext = Vec::new();
    for i in 0..16u8 {
        let out = pass(&mut e, t(0), Side::Lan, udp(client(i), 4500, SERVER, 4500, &[0, 0, 0, 0, 1]), Side::Wan);
        ext.push(seen(&out).sport);
    }
    ext.sort_unstable();
    ext.dedup();
    assert_eq!(ext.len(), 16, "one public port per client");
    // Keepalives (one 0xFF byte) every 250 s keep the mappings past 300 s with no reply.
    for s in [250, 500, 750] {
        for i in 0..16u8 {
            pass(&mut e, t(s), Side::Lan, udp(client(i), 4500, SERVER, 4500, &[0xff]), Side::Wan);
        }
        e.handle_timeout(t(s + 1));
    }
    assert_eq!(e.session_count(), 16);
    for i in 0..16u8 {
        let out = pass(&mut e, t(760), Side::Lan, udp(client(i), 4500, SERVER, 4500, &[0xff]), Side::Wan);
        let back = pass(
            &mut e,
            t(760),
            Side::Wan,
            udp(SERVER, 4500, PUB, seen(&out).sport, &[1, 2, 3, 4, 0, 0, 0, 1]),
            Side::Lan,
        );
        assert_eq!(seen(&back).dst, client(i));
    }
}

#[test]
fn l2tp_sixteen_clients_and_a_server_answering_from_another_port() {
    // Even with the strictest filtering, an LNS answer from a new port reaches the LAC.
    let mut e = engine_with(|c| c.filtering = Filtering::AddressAndPortDependent);
    let mut ext = Vec::new();
    for i in 0..16u8 {
        let out = pass(&mut e, t(0), Side::Lan, udp(client(i), 1701, SERVER, 1701, b"SCCRQ"), Side::Wan);
        ext.push(seen(&out).sport);
    }
    for (i, p) in ext.iter().enumerate() {
        let back = pass(&mut e, t(1), Side::Wan, udp(SERVER, 40000 + i as u16, PUB, *p, b"SCCRP"), Side::Lan);
        assert_eq!((seen(&back).dst, seen(&back).dport), (client(i as u8), 1701));
    }
    // Other UDP keeps the strict filter.
    let dns = pass(&mut e, t(2), Side::Lan, udp(client(0), 5353, SERVER, 53, b"q"), Side::Wan);
    assert_eq!(
        run(&mut e, t(2), Side::Wan, udp(SERVER, 54, PUB, seen(&dns).sport, b"")),
        Verdict::Drop(DropReason::Filtered)
    );
}

#[test]
fn switches_block_their_protocol_and_remove_its_state() {
    let mut e = engine();
    // Some IPsec, PPTP, L2TP and web traffic.
    let natt = pass(&mut e, t(0), Side::Lan, udp(client(0), 4500, SERVER, 4500, &[0xff]), Side::Wan);
    pass(&mut e, t(0), Side::Lan, esp(client(0), SERVER, 0xa, 1), Side::Wan);
    pass(&mut e, t(0), Side::Wan, esp(SERVER, PUB, 0xa0, 1), Side::Lan);
    pass(&mut e, t(0), Side::Lan, tcp(client(1), 40000, SERVER, 1723, "S", b""), Side::Wan);
    pass(&mut e, t(0), Side::Lan, udp(client(2), 1701, SERVER, 1701, b""), Side::Wan);
    pass(&mut e, t(0), Side::Lan, tcp(client(3), 40001, REMOTE, 443, "S", b""), Side::Wan);
    assert_eq!(e.session_count(), 4);

    let removed = e.set_passthrough(Protocol::Ipsec, false);
    assert_eq!(removed, 3, "the NAT-T session and the ESP SA pair");
    assert_eq!(e.session_count(), 3, "PPTP, L2TP and web sessions untouched");
    let blocked = [
        (Side::Lan, udp(client(0), 500, SERVER, 500, &[0u8; 28])),
        (Side::Lan, udp(client(0), 4500, SERVER, 4500, &[0xff])),
        (Side::Lan, esp(client(0), SERVER, 0xa, 2)),
        (Side::Wan, esp(SERVER, PUB, 0xa0, 2)),
        (Side::Wan, udp(SERVER, 4500, PUB, seen(&natt).sport, &[0xff])),
    ];
    for (side, p) in blocked {
        assert_eq!(run(&mut e, t(1), side, p), Verdict::Drop(DropReason::IpsecDisabled));
    }
    e.set_passthrough(Protocol::Pptp, false);
    assert_eq!(
        run(&mut e, t(1), Side::Lan, tcp(client(1), 40000, SERVER, 1723, "A", b"")),
        Verdict::Drop(DropReason::PptpDisabled)
    );
    assert_eq!(
        run(&mut e, t(1), Side::Lan, raw_ip(client(1), SERVER, 47, &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 1])),
        Verdict::Drop(DropReason::PptpDisabled)
    );
    e.set_passthrough(Protocol::L2tp, false);
    assert_eq!(
        run(&mut e, t(1), Side::Lan, udp(client(2), 1701, SERVER, 1701, b"")),
        Verdict::Drop(DropReason::L2tpDisabled)
    );
    assert_eq!(e.session_count(), 1, "only the web session is left");
    pass(&mut e, t(1), Side::Lan, tcp(client(3), 40001, REMOTE, 443, "A", b""), Side::Wan);
    // Back on: IPsec passes again.
    e.set_passthrough(Protocol::Ipsec, true);
    pass(&mut e, t(2), Side::Lan, esp(client(0), SERVER, 0xc, 1), Side::Wan);
    let evs = events(&mut e);
    assert!(evs.iter().any(|ev| matches!(ev, Event::TunnelUp { ids: TunnelIds::Esp { .. }, .. })));
}

#[test]
fn fragmented_ike_from_two_clients_passes_out_of_order_with_distinct_ids() {
    let mut e = engine();
    // IKE_AUTH with certificates: 3 000 bytes, fragmented, from two clients with the same IP ID.
    let big = |c: [u8; 4], spi: u64| {
        let mut m = ike(c, 500, SERVER, 500, spi, 0x99, false);
        let hl = 28;
        m.extend_from_slice(&[0x5a; 3000]);
        let total = m.len() as u16;
        m[2..4].copy_from_slice(&total.to_be_bytes());
        let ulen = total - 20;
        m[24..26].copy_from_slice(&ulen.to_be_bytes());
        m[26..28].copy_from_slice(&[0, 0]); // no UDP checksum
        let _ = hl;
        without_df(m)
    };
    let a = fragment(&big(client(0), 0xa), 1500);
    let b = fragment(&big(client(1), 0xb), 1500);
    assert_eq!(a.len(), 3);
    let mut out_a = Vec::new();
    let mut out_b = Vec::new();
    // Client A: last fragment first.
    assert_eq!(run(&mut e, t(0), Side::Lan, a[2].clone()), Verdict::Consumed);
    out_a.push(pass(&mut e, t(0), Side::Lan, a[0].clone(), Side::Wan));
    out_b.push(pass(&mut e, t(0), Side::Lan, b[0].clone(), Side::Wan));
    out_a.push(pass(&mut e, t(0), Side::Lan, a[1].clone(), Side::Wan));
    out_b.push(pass(&mut e, t(0), Side::Lan, b[1].clone(), Side::Wan));
    out_b.push(pass(&mut e, t(0), Side::Lan, b[2].clone(), Side::Wan));
    while let Some(tx) = e.poll_transmit() {
        out_a.push(tx.packet);
    }
    assert_eq!(out_a.len(), 3);
    assert_ne!(seen(&out_a[0]).ident, seen(&out_b[0]).ident, "IP IDs differ on the public address");
    for (frags, c) in [(&out_a, 0u8), (&out_b, 1)] {
        let whole = reassemble(frags);
        let s = seen(&whole);
        assert_eq!((s.src, s.sport, s.dport), (PUB, 500, 500), "client {c} keeps port 500");
        assert_eq!(whole.len(), 20 + 8 + 40 + 3000);
    }
}

#[test]
fn icmp_errors_about_esp_and_ike_reach_the_right_client() {
    let mut e = engine();
    for (i, spi) in [(0u8, 0x10u32), (1, 0x20)] {
        pass(&mut e, t(0), Side::Lan, esp(client(i), SERVER, spi, 1), Side::Wan);
        pass(&mut e, t(0), Side::Wan, esp(SERVER, PUB, spi + 1, 1), Side::Lan);
    }
    // A router on the path: Fragmentation Needed about client 1's ESP.
    let sent = pass(&mut e, t(1), Side::Lan, esp(client(1), SERVER, 0x20, 2), Side::Wan);
    let err = icmp_error([192, 0, 2, 1], PUB, 3, 4, 1400, &sent, false);
    let back = pass(&mut e, t(1), Side::Wan, err, Side::Lan);
    assert_eq!(seen(&back).dst, client(1));
    let (inner, _) = etherparse::Ipv4Header::from_slice(&back[28..48]).unwrap();
    assert_eq!(inner.calc_header_checksum(), inner.header_checksum, "embedded IP checksum");
    assert_eq!(seen(&back[28..]).src, client(1), "embedded source restored");
    // An error about IKE on port 500 embedding the SPIs.
    let ike_out = pass(&mut e, t(2), Side::Lan, ike(client(0), 500, SERVER, 500, 0x77, 0, false), Side::Wan);
    pass(&mut e, t(2), Side::Lan, ike(client(1), 500, SERVER, 500, 0x88, 0, false), Side::Wan);
    let err = icmp_error([192, 0, 2, 1], PUB, 3, 4, 1400, &ike_out, true);
    assert_eq!(seen(&pass(&mut e, t(2), Side::Wan, err, Side::Lan)).dst, client(0));
    // An error about ESP nobody sent: dropped silently (RFC 5508 REQ-4).
    let stray = esp(PUB, SERVER, 0x5555, 1);
    let err = icmp_error([192, 0, 2, 1], PUB, 3, 4, 1400, &stray, false);
    assert_eq!(run(&mut e, t(3), Side::Wan, err), Verdict::Drop(DropReason::IcmpErrorNoSession));
}

/// An L2TPv2 control message: `tunnel` in the header, Message Type and Assigned Tunnel ID AVPs.
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

#[test]
fn l2tp_tunnels_are_reported_with_their_ids() {
    let mut e = engine();
    for i in 0..2u8 {
        // Both clients pick tunnel ID 7; the server answers from another port.
        let out = pass(&mut e, t(0), Side::Lan, udp(client(i), 1701, SERVER, 1701, &l2tp_ctrl(1, 0, 7)), Side::Wan);
        let reply = l2tp_ctrl(2, 7, 100 + u16::from(i));
        pass(&mut e, t(0), Side::Wan, udp(SERVER, 50000, PUB, seen(&out).sport, &reply), Side::Lan);
    }
    let ups: Vec<(std::net::Ipv4Addr, TunnelIds)> = events(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::TunnelUp { protocol: Protocol::L2tp, client, ids, .. } => Some((client, ids)),
            _ => None,
        })
        .collect();
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[1], (ip(client(1)), TunnelIds::L2tp { client_tunnel_id: 7, server_tunnel_id: 101 }));
    // The server stops client 0's tunnel.
    let stop = l2tp_ctrl(4, 7, 100);
    let ext = e.outside_of(natpass_engine::Proto::Udp, ep(client(0), 1701), ep(SERVER, 1701)).unwrap();
    pass(&mut e, t(1), Side::Wan, udp(SERVER, 50000, PUB, ext.port, &stop), Side::Lan);
    let downs: Vec<Event> = events(&mut e)
        .into_iter()
        .filter(|ev| matches!(ev, Event::TunnelDown { protocol: Protocol::L2tp, .. }))
        .collect();
    assert_eq!(downs.len(), 1);
    // SCCRQ out (20 + 8 + 28 bytes); SCCRP and StopCCN in.
    assert!(matches!(downs[0], Event::TunnelDown { bytes_out: 56, bytes_in: 112, .. }), "{downs:?}");
}

#[test]
fn ike_sas_come_up_and_go_down_with_their_spis() {
    let mut e = engine();
    pass(&mut e, t(0), Side::Lan, ike(client(0), 500, SERVER, 500, 0xabc, 0, false), Side::Wan);
    pass(&mut e, t(0), Side::Wan, ike(SERVER, 500, PUB, 500, 0xabc, 0xdef, true), Side::Lan);
    assert!(
        events(&mut e).iter().any(|ev| matches!(ev, Event::TunnelUp { ids: TunnelIds::Ike { spi_i: 0xabc, .. }, .. }))
    );
    e.handle_timeout(t(301));
    let down = events(&mut e);
    assert!(
        down.iter().any(|ev| matches!(
            ev,
            Event::TunnelDown { ids: TunnelIds::Ike { spi_i: 0xabc, spi_r: 0xdef }, bytes_out: 68, bytes_in: 68, .. }
        )),
        "{down:?}"
    );
}
