//! IPv6 forwarding with simple security: RFC 6092 (state, unsolicited inbound, VPN
//! passthrough), RFC 8200 (hop limit, no fragmentation by the router), RFC 4443 (errors),
//! RFC 4890 (ICMPv6 filtering), RFC 5095 (Routing header type 0), RFC 5722 and RFC 6946
//! (fragments). Packets are built with etherparse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv6Addr;

use common::t;
use etherparse::PacketBuilder;
use natpass_engine::ipv6::{Ipv6Config, Ipv6Net};
use natpass_engine::{DropReason, Engine, EngineConfig, Instant, Protocol, Side, TunnelIds, Verdict};

const HOST: &str = "2001:db8:1::10";
const SERVER: &str = "2001:db8:ff::1";
const ROUTER_LAN: &str = "2001:db8:1::1";
const ROUTER_WAN: &str = "2001:db8:ffff::2";

fn a(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn engine6(f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut c = EngineConfig {
        public_addrs: vec![[203, 0, 113, 1].into()],
        ipv6: Some(Ipv6Config {
            lan_prefix: Ipv6Net::new(ROUTER_LAN.parse().unwrap(), 64),
            lan_addr: ROUTER_LAN.parse().unwrap(),
            wan_addr: ROUTER_WAN.parse().unwrap(),
        }),
        ..Default::default()
    };
    f(&mut c);
    Engine::new(c, Instant::ZERO).unwrap()
}

fn udp6(src: &str, sport: u16, dst: &str, dport: u16, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(a(src), a(dst), 64).udp(sport, dport).write(&mut v, &vec![7u8; len]).unwrap();
    v
}

fn syn6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(a(src), a(dst), 64).tcp(sport, dport, 1000, 65535).syn().write(&mut v, b"").unwrap();
    v
}

fn echo6(src: &str, dst: &str, request: bool) -> Vec<u8> {
    let mut v = Vec::new();
    let b = PacketBuilder::ipv6(a(src), a(dst), 64);
    if request {
        b.icmpv6_echo_request(7, 1).write(&mut v, b"ping").unwrap();
    } else {
        b.icmpv6_echo_reply(7, 1).write(&mut v, b"ping").unwrap();
    }
    v
}

/// A packet with next header `next` and `payload` as is.
fn raw6(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&a(src));
    p.extend_from_slice(&a(dst));
    p.extend_from_slice(payload);
    p
}

fn run(e: &mut Engine, side: Side, mut p: Vec<u8>) -> (Verdict, Vec<u8>) {
    let v = e.process(t(1), side, &mut p);
    (v, p)
}

#[test]
fn rfc6092_outbound_udp_opens_a_flow_its_answer_returns_and_the_hop_limit_drops() {
    let mut e = engine6(|_| {});
    let (v, out) = run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8));
    assert_eq!(v, Verdict::Forward(Side::Wan));
    assert_eq!(out[7], 63, "hop limit decremented");
    assert_eq!(&out[8..24], &a(HOST), "no translation");
    assert_eq!(run(&mut e, Side::Wan, udp6(SERVER, 53, HOST, 5000, 8)).0, Verdict::Forward(Side::Lan));
    // Another port of the same server is not the flow (endpoint-dependent filtering).
    assert_eq!(run(&mut e, Side::Wan, udp6(SERVER, 54, HOST, 5000, 8)).0, Verdict::Drop(DropReason::NoMapping));
}

#[test]
fn rfc6092_unsolicited_inbound_is_dropped_and_counted() {
    let mut e = engine6(|_| {});
    assert_eq!(run(&mut e, Side::Wan, udp6(SERVER, 53, HOST, 5000, 8)).0, Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, Side::Wan, syn6(SERVER, 4444, HOST, 22)).0, Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, Side::Wan, echo6(SERVER, HOST, true)).0, Verdict::Drop(DropReason::NoMapping));
    assert_eq!(e.stats().drop_count(DropReason::NoMapping), 3);
    // A WAN packet from the LAN's prefix is spoofed.
    assert_eq!(run(&mut e, Side::Wan, udp6(HOST, 1, ROUTER_LAN, 2, 8)).0, Verdict::Drop(DropReason::WanSpoofedSource));
}

#[test]
fn rfc6092_tcp_and_echo_flows_from_the_lan() {
    let mut e = engine6(|_| {});
    assert_eq!(run(&mut e, Side::Lan, syn6(HOST, 40000, SERVER, 443)).0, Verdict::Forward(Side::Wan));
    let mut sa = Vec::new();
    PacketBuilder::ipv6(a(SERVER), a(HOST), 64).tcp(443, 40000, 9, 65535).syn().ack(1001).write(&mut sa, b"").unwrap();
    assert_eq!(run(&mut e, Side::Wan, sa).0, Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, Side::Lan, echo6(HOST, SERVER, true)).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut e, Side::Wan, echo6(SERVER, HOST, false)).0, Verdict::Forward(Side::Lan));
}

#[test]
fn rfc5095_routing_header_type_0_is_dropped() {
    let mut e = engine6(|_| {});
    // Routing header, type 0, one address, then UDP.
    let mut rh = vec![17, 2, 0, 1, 0, 0, 0, 0];
    rh.extend_from_slice(&a(HOST));
    rh.extend_from_slice(&udp6(SERVER, 53, HOST, 5000, 0)[40..]);
    let p = raw6(SERVER, HOST, 43, &rh);
    assert_eq!(run(&mut e, Side::Wan, p).0, Verdict::Drop(DropReason::Ipv6RoutingHeader0));
}

#[test]
fn rfc8200_an_expiring_packet_gets_time_exceeded_from_the_router() {
    let mut e = engine6(|_| {});
    let mut p = udp6(HOST, 5000, SERVER, 33434, 8);
    p[7] = 1;
    assert_eq!(run(&mut e, Side::Lan, p).0, Verdict::Drop(DropReason::TtlExceeded));
    let tx = e.poll_transmit().expect("an ICMPv6 error");
    assert_eq!(tx.side, Side::Lan);
    let (h, rest) = etherparse::Ipv6Header::from_slice(&tx.packet).unwrap();
    assert_eq!((h.source, h.destination, h.next_header.0), (a(ROUTER_LAN), a(HOST), 58));
    assert_eq!(rest[0], 3, "Time Exceeded");
    let icmp = etherparse::Icmpv6Slice::from_slice(rest).unwrap();
    let want = icmp.icmp_type().calc_checksum(h.source, h.destination, icmp.payload()).unwrap();
    assert_eq!(icmp.checksum(), want, "ICMPv6 checksum (etherparse)");
}

#[test]
fn rfc8200_the_router_never_fragments_it_says_packet_too_big() {
    let mut e = engine6(|c| c.wan_mtu = 1280);
    assert_eq!(
        run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 1400)).0,
        Verdict::Drop(DropReason::FragmentationNeeded)
    );
    let tx = e.poll_transmit().unwrap();
    let rest = &tx.packet[40..];
    assert_eq!((rest[0], u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]])), (2, 1280));
    assert!(tx.packet.len() <= 1280, "the error fits the minimum MTU");
}

#[test]
fn rfc6092_3_2_4_ipsec_passes_when_on_and_tied_to_the_lan_host() {
    let mut e = engine6(|_| {});
    let esp = |src: &str, dst: &str| raw6(src, dst, 50, &[0, 0, 1, 0, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9]);
    // Inbound ESP from a peer the host never sent ESP to: unsolicited.
    assert_eq!(run(&mut e, Side::Wan, esp(SERVER, HOST)).0, Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, Side::Lan, esp(HOST, SERVER)).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut e, Side::Wan, esp(SERVER, HOST)).0, Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 500, SERVER, 500, 28)).0, Verdict::Forward(Side::Wan));
    e.set_passthrough(natpass_engine::Protocol::Ipsec, false);
    assert_eq!(run(&mut e, Side::Lan, esp(HOST, SERVER)).0, Verdict::Drop(DropReason::IpsecDisabled));
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 500, SERVER, 500, 28)).0, Verdict::Drop(DropReason::IpsecDisabled));
}

#[test]
fn ipv6_flows_are_listed_as_sessions_without_a_public_endpoint() {
    let mut e = engine6(|_| {});
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8)).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut e, Side::Wan, udp6(SERVER, 53, HOST, 5000, 20)).0, Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, Side::Lan, syn6(HOST, 40000, SERVER, 443)).0, Verdict::Forward(Side::Wan));
    let mut v: Vec<_> = e.sessions().collect();
    v.sort_by_key(|s| s.protocol.number());
    assert_eq!(v.len(), 2, "{v:#?}");
    let (tcp, udp) = (&v[0], &v[1]);
    assert!(udp.is_ipv6());
    assert_eq!(udp.protocol, natpass_engine::IpProtocol::UDP);
    assert_eq!(udp.lan, format!("[{HOST}]:5000").parse().unwrap());
    assert_eq!(udp.remote, format!("[{SERVER}]:53").parse().unwrap());
    assert_eq!(udp.public, None, "routed, not translated");
    assert!(udp.established, "the server answered");
    assert_eq!((udp.bytes_out, udp.bytes_in), (40 + 8 + 8, 40 + 8 + 20));
    assert_eq!(udp.last_seen, t(1));
    assert_eq!(tcp.protocol, natpass_engine::IpProtocol::TCP);
    assert!(!tcp.established, "a SYN alone");
    // IPv4 sessions and IPv6 flows in one listing.
    let mut v4 = Vec::new();
    etherparse::PacketBuilder::ipv4([192, 168, 1, 10], [198, 51, 100, 7], 64)
        .udp(5000, 53)
        .write(&mut v4, &[0; 8])
        .unwrap();
    let mut c = engine6(|c| c.lan_networks = vec![natpass_engine::Ipv4Net::new([192, 168, 1, 0].into(), 24)]);
    assert_eq!(run(&mut c, Side::Lan, v4).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut c, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8)).0, Verdict::Forward(Side::Wan));
    let families: Vec<(bool, bool)> = c.sessions().map(|s| (s.is_ipv6(), s.public.is_some())).collect();
    assert_eq!(families, vec![(false, true), (true, false)], "IPv4 with its public endpoint, then IPv6");
}

#[test]
fn ipv6_vpn_flows_are_listed_as_tunnels_with_their_identifiers() {
    let mut e = engine6(|_| {});
    let esp = |src: &str, dst: &str, spi: u32| {
        let mut b = spi.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9]);
        raw6(src, dst, 50, &b)
    };
    // IKE_SA_INIT request and response: the initiator's SPI, then the responder's.
    let ike = |src: &str, dst: &str, spi_r: u64| {
        let mut h = 0x1111_2222_3333_4444u64.to_be_bytes().to_vec();
        h.extend_from_slice(&spi_r.to_be_bytes());
        h.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 28]);
        let mut v = Vec::new();
        PacketBuilder::ipv6(a(src), a(dst), 64).udp(500, 500).write(&mut v, &h).unwrap();
        v
    };
    assert_eq!(run(&mut e, Side::Lan, ike(HOST, SERVER, 0)).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut e, Side::Wan, ike(SERVER, HOST, 0x5555)).0, Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, Side::Lan, esp(HOST, SERVER, 0xc001)).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut e, Side::Wan, esp(SERVER, HOST, 0xd00d)).0, Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8)).0, Verdict::Forward(Side::Wan));
    let tunnels = e.tunnels(t(3));
    assert_eq!(tunnels.len(), 2, "ESP and IKE, not DNS: {tunnels:#?}");
    let host: std::net::IpAddr = HOST.parse().unwrap();
    let server: std::net::IpAddr = SERVER.parse().unwrap();
    let esp_t = tunnels.iter().find(|t| t.kind.starts_with("ESP")).unwrap();
    assert_eq!((esp_t.protocol, esp_t.client, esp_t.server, esp_t.public), (Protocol::Ipsec, host, server, None));
    assert_eq!(esp_t.ids, TunnelIds::Esp { spi_out: 0xc001, spi_in: 0xd00d });
    assert_eq!((esp_t.state, esp_t.idle_secs), ("up", 2));
    assert_eq!(esp_t.bytes_out, 40 + 16);
    let ike_t = tunnels.iter().find(|t| t.kind.starts_with("IKE")).unwrap();
    assert_eq!(ike_t.ids, TunnelIds::Ike { spi_i: 0x1111_2222_3333_4444, spi_r: 0x5555 });
    // The switch off: its tunnels go, and the DNS flow stays.
    assert_eq!(e.set_passthrough(Protocol::Ipsec, false), 2);
    assert!(e.tunnels(t(3)).is_empty());
    assert_eq!(e.sessions().count(), 1);
}

#[test]
fn pptp_gre_is_tied_to_the_control_connection() {
    let mut e = engine6(|_| {});
    let gre = |src: &str, dst: &str| raw6(src, dst, 47, &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(run(&mut e, Side::Wan, gre(SERVER, HOST)).0, Verdict::Drop(DropReason::NoMapping));
    assert_eq!(run(&mut e, Side::Lan, syn6(HOST, 40001, SERVER, 1723)).0, Verdict::Forward(Side::Wan));
    assert_eq!(run(&mut e, Side::Wan, gre(SERVER, HOST)).0, Verdict::Forward(Side::Lan));
}

#[test]
fn rfc4890_errors_about_a_flow_pass_and_neighbor_discovery_stays_on_its_link() {
    let mut e = engine6(|_| {});
    let sent = udp6(HOST, 5000, SERVER, 53, 8);
    assert_eq!(run(&mut e, Side::Lan, sent.clone()).0, Verdict::Forward(Side::Wan));
    // Destination Unreachable quoting the host's packet.
    let mut err = vec![1, 4, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&sent);
    assert_eq!(run(&mut e, Side::Wan, raw6(SERVER, HOST, 58, &err)).0, Verdict::Forward(Side::Lan));
    // One quoting a packet the host never sent.
    let mut err = vec![1, 4, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&udp6(HOST, 6000, SERVER, 53, 8));
    assert_eq!(run(&mut e, Side::Wan, raw6(SERVER, HOST, 58, &err)).0, Verdict::Drop(DropReason::IcmpErrorNoSession));
    // A Neighbor Solicitation is not forwarded.
    let ns =
        raw6(SERVER, HOST, 58, &[135, 0, 0, 0, 0, 0, 0, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    assert_eq!(run(&mut e, Side::Wan, ns).0, Verdict::Drop(DropReason::IcmpUnsupported));
}

#[test]
fn rfc5722_overlapping_fragments_drop_the_datagram_and_rfc6946_atomic_fragments_pass() {
    let mut e = engine6(|_| {});
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8)).0, Verdict::Forward(Side::Wan));
    let whole = udp6(SERVER, 53, HOST, 5000, 64);
    let l4 = &whole[40..];
    let frag = |off: u16, more: bool, data: &[u8]| {
        let mut fh = vec![17, 0];
        fh.extend_from_slice(&(off | u16::from(more)).to_be_bytes());
        fh.extend_from_slice(&0xabcdu32.to_be_bytes());
        fh.extend_from_slice(data);
        raw6(SERVER, HOST, 44, &fh)
    };
    assert_eq!(run(&mut e, Side::Wan, frag(0, true, &l4[..32])).0, Verdict::Forward(Side::Lan));
    assert_eq!(run(&mut e, Side::Wan, frag(24, true, &l4[24..48])).0, Verdict::Drop(DropReason::FragmentOverlap));
    // The rest of a refused datagram goes too.
    assert_eq!(run(&mut e, Side::Wan, frag(48, false, &l4[48..])).0, Verdict::Drop(DropReason::FragmentDropped));
    // An atomic fragment (offset 0, no more) is judged as the whole packet it is.
    let mut atomic = vec![17, 0, 0, 0, 0, 0, 0, 1];
    atomic.extend_from_slice(l4);
    assert_eq!(run(&mut e, Side::Wan, raw6(SERVER, HOST, 44, &atomic)).0, Verdict::Forward(Side::Lan));
}

#[test]
fn without_ipv6_settings_ipv6_is_refused_as_before() {
    let mut e = common::engine();
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8)).0, Verdict::Drop(DropReason::NotIpv4));
}

#[test]
fn ipv6_flows_expire_with_the_ipv4_timers() {
    let mut e = engine6(|_| {});
    assert_eq!(run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8)).0, Verdict::Forward(Side::Wan));
    assert!(e.poll_timeout().is_some());
    e.handle_timeout(t(1000));
    let mut p = udp6(SERVER, 53, HOST, 5000, 8);
    assert_eq!(e.process(t(1001), Side::Wan, &mut p), Verdict::Drop(DropReason::NoMapping));
}

proptest::proptest! {
    /// Any bytes after an IPv6 version nibble, either side, never panic; whatever is
    /// forwarded is a valid IPv6 packet.
    #[test]
    fn arbitrary_ipv6_input_never_panics(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), wan in proptest::prelude::any::<bool>()) {
        let mut e = engine6(|_| {});
        let _ = run(&mut e, Side::Lan, udp6(HOST, 5000, SERVER, 53, 8));
        let mut p = vec![0x60];
        p.extend_from_slice(&tail);
        let side = if wan { Side::Wan } else { Side::Lan };
        if let Verdict::Forward(_) = e.process(t(2), side, &mut p) {
            proptest::prop_assert!(etherparse::Ipv6Header::from_slice(&p).is_ok());
        }
        while e.poll_transmit().is_some() {}
        e.handle_timeout(t(100_000));
    }
}
