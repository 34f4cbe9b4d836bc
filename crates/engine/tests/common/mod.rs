//! Packet builders and checks shared by the engine's behaviour tests. Packets are built and
//! checked with etherparse, an independent implementation, so the tests do not grade the
//! engine with its own code.
#![allow(dead_code, unreachable_pub)]

use etherparse::{Ipv4Header, PacketBuilder, TcpHeader, UdpHeader};
use natpass_engine::{Engine, EngineConfig, Instant, Side, Verdict};

pub const LAN_A: [u8; 4] = [192, 168, 1, 10];
pub const LAN_B: [u8; 4] = [192, 168, 1, 11];
pub const PUB: [u8; 4] = [203, 0, 113, 1];
pub const PUB2: [u8; 4] = [203, 0, 113, 2];
pub const REMOTE: [u8; 4] = [198, 51, 100, 7];
pub const REMOTE2: [u8; 4] = [198, 51, 100, 8];

pub fn ip(a: [u8; 4]) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

/// An address and a port.
pub fn ep(a: [u8; 4], port: u16) -> natpass_engine::Endpoint {
    natpass_engine::Endpoint::new(ip(a), port)
}

pub fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

pub fn engine() -> Engine {
    engine_with(|_| {})
}

pub fn engine_with(f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut c = EngineConfig { public_addrs: vec![PUB.into()], max_sessions: 4096, ..Default::default() };
    f(&mut c);
    Engine::new(c, Instant::ZERO).expect("valid test config")
}

pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).udp(sport, dport).write(&mut v, payload).unwrap();
    v
}

/// The initial sequence number of the LAN side's connections in these tests.
pub const LAN_ISN: u32 = 1000;
/// The initial sequence number of the WAN side's connections in these tests.
pub const WAN_ISN: u32 = 5000;

/// A TCP segment; `flags` holds S, A, F, R, P letters. Sequence numbers are those of a
/// connection whose LAN end (a 192.168/16 source) starts at [`LAN_ISN`] and whose WAN end
/// starts at [`WAN_ISN`]: a SYN carries the ISN, any other segment the ISN + 1, and the ACK
/// acknowledges the other end's SYN, so the segments pass the engine's window check.
pub fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    let (isn, peer) = if src[..2] == [192, 168] { (LAN_ISN, WAN_ISN) } else { (WAN_ISN, LAN_ISN) };
    let seq = if flags.contains('S') { isn } else { isn + 1 };
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 65535);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(peer + 1);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub fn echo_request(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).icmpv4_echo_request(id, seq).write(&mut v, b"abcdefgh").unwrap();
    v
}

pub fn echo_reply(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).icmpv4_echo_reply(id, seq).write(&mut v, b"abcdefgh").unwrap();
    v
}

/// The same packet with Don't Fragment cleared.
pub fn without_df(mut p: Vec<u8>) -> Vec<u8> {
    let (mut h, _) = Ipv4Header::from_slice(&p).unwrap();
    h.dont_fragment = false;
    h.header_checksum = h.calc_header_checksum();
    p[..h.header_len()].copy_from_slice(&h.to_bytes());
    p
}

/// An ICMP error from `src` to `dst` embedding `embedded` (truncated to header + 8 bytes
/// unless `full`).
pub fn icmp_error(src: [u8; 4], dst: [u8; 4], kind: u8, code: u8, rest: u32, embedded: &[u8], full: bool) -> Vec<u8> {
    let hl = usize::from(embedded[0] & 0x0f) * 4;
    let n = if full { embedded.len() } else { (hl + 8).min(embedded.len()) };
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64).icmpv4_raw(kind, code, rest.to_be_bytes()).write(&mut v, &embedded[..n]).unwrap();
    v
}

/// The fields tests look at, read with etherparse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    pub ident: u16,
    pub proto: u8,
    /// TCP/UDP source port or ICMP echo identifier.
    pub sport: u16,
    pub dport: u16,
}

pub fn seen(p: &[u8]) -> Seen {
    let (h, rest) = Ipv4Header::from_slice(p).expect("valid IPv4");
    let (sport, dport) = match h.protocol.0 {
        6 | 17 => (u16::from_be_bytes([rest[0], rest[1]]), u16::from_be_bytes([rest[2], rest[3]])),
        1 => (u16::from_be_bytes([rest[4], rest[5]]), 0),
        _ => (0, 0),
    };
    Seen {
        src: h.source,
        dst: h.destination,
        ttl: h.time_to_live,
        ident: h.identification,
        proto: h.protocol.0,
        sport,
        dport,
    }
}

/// An independent RFC 1071 sum, for ICMP.
fn ones_sum(d: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in d.chunks(2) {
        let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], 0]) };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Asserts that the IP header and the transport checksum of a whole (unfragmented) packet
/// verify, checked with etherparse (and an independent sum for ICMP).
pub fn assert_checksums(p: &[u8]) {
    let (h, _) = Ipv4Header::from_slice(p).expect("valid IPv4");
    let hl = h.header_len();
    let total = usize::from(h.total_len);
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IP header checksum");
    let l4 = &p[hl..total];
    if h.fragment_offset.value() != 0 || h.more_fragments {
        return;
    }
    match h.protocol.0 {
        17 => {
            let (u, payload) = UdpHeader::from_slice(l4).unwrap();
            if u.checksum != 0 {
                assert_eq!(u.calc_checksum_ipv4(&h, payload).unwrap(), u.checksum, "UDP checksum");
            }
        }
        6 => {
            let (t, payload) = TcpHeader::from_slice(l4).unwrap();
            assert_eq!(t.calc_checksum_ipv4(&h, payload).unwrap(), t.checksum, "TCP checksum");
        }
        1 => assert_eq!(ones_sum(l4), 0xffff, "ICMP checksum"),
        _ => {}
    }
}

/// Runs a packet through the engine and returns it when forwarded to `want`.
pub fn pass(e: &mut Engine, now: Instant, side: Side, mut p: Vec<u8>, want: Side) -> Vec<u8> {
    let v = e.process(now, side, &mut p);
    assert_eq!(v, Verdict::Forward(want), "verdict for {:?}", seen(&p));
    assert_checksums(&p);
    p
}

/// Runs a packet through the engine and returns the verdict.
pub fn run(e: &mut Engine, now: Instant, side: Side, mut p: Vec<u8>) -> Verdict {
    e.process(now, side, &mut p)
}

/// Splits a whole datagram into fragments of at most `mtu` bytes (test-side, independent).
pub fn fragment(p: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let (h, _) = etherparse::Ipv4Header::from_slice(p).unwrap();
    let hl = h.header_len();
    let data = &p[hl..usize::from(h.total_len)];
    let step = (mtu - hl) & !7;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = step.min(data.len() - pos);
        let mut f = h.clone();
        f.more_fragments = pos + n < data.len();
        f.fragment_offset = etherparse::IpFragOffset::try_new((pos / 8) as u16).unwrap();
        f.set_payload_len(n).unwrap();
        f.header_checksum = f.calc_header_checksum();
        let mut v = f.to_bytes().to_vec();
        v.extend_from_slice(&data[pos..pos + n]);
        out.push(v);
        pos += n;
    }
    out
}

/// Joins fragments (any order) into one datagram (test-side, independent).
pub fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut parts: Vec<(usize, Vec<u8>, etherparse::Ipv4Header)> = frags
        .iter()
        .map(|f| {
            let (h, _) = etherparse::Ipv4Header::from_slice(f).unwrap();
            assert_eq!(h.calc_header_checksum(), h.header_checksum, "fragment header checksum");
            let off = usize::from(h.fragment_offset.value()) * 8;
            (off, f[h.header_len()..usize::from(h.total_len)].to_vec(), h)
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let ident = parts[0].2.identification;
    assert!(parts.iter().all(|p| p.2.identification == ident), "one IP ID");
    let mut data = Vec::new();
    for (off, d, _) in &parts {
        assert_eq!(*off, data.len(), "contiguous fragments");
        data.extend_from_slice(d);
    }
    let mut h = parts[0].2.clone();
    h.more_fragments = false;
    h.fragment_offset = etherparse::IpFragOffset::ZERO;
    h.options = etherparse::Ipv4Options::default();
    h.set_payload_len(data.len()).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(&data);
    v
}
