//! Counts how many unsolicited WAN packets of each attack class reach the LAN: the classes of
//! the WAN attack run (fragments with ID reuse, overlaps, tiny first fragments, source routes,
//! malformed options, a UDP length past the payload). Each class sets up a live mapping with
//! legitimate traffic (not counted), then sends its attack packets 20 times with fresh IDs.
//!
//! Run: `cargo run -p natpass-engine --example wan_attacks`. It uses only the engine's
//! `process` and `poll_transmit`, so the same file measures older engines too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv4Options, PacketBuilder};
use natpass_engine::{Engine, EngineConfig, Instant, Side, Verdict};

const LAN: [u8; 4] = [192, 168, 1, 10];
const PUB: [u8; 4] = [203, 0, 113, 1];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const ROUNDS: u16 = 20;

fn raw(proto: u8, ident: u16, frag: (usize, bool), options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(payload.len() as u16, 64, IpNumber(proto), SERVER, PUB).unwrap();
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

fn udp_l4(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend(std::iter::repeat_n(0x55u8, len));
    v
}

/// A UDP datagram from the server to `dport`, cut into fragments at `cuts`.
fn train(ident: u16, dport: u16, cuts: &[usize]) -> Vec<Vec<u8>> {
    let l4 = udp_l4(53, dport, 3000);
    let mut bounds = cuts.to_vec();
    bounds.push(l4.len());
    (0..cuts.len())
        .map(|i| raw(17, ident, (bounds[i], i + 1 < cuts.len()), &[], &l4[bounds[i]..bounds[i + 1]]))
        .collect()
}

struct Router {
    e: Engine,
    now: Instant,
    udp_port: u16,
    tcp_port: u16,
}

impl Router {
    fn new() -> Self {
        let config = EngineConfig { public_addrs: vec![PUB.into()], max_sessions: 4096, ..Default::default() };
        let mut r = Router {
            e: Engine::new(config, Instant::ZERO).unwrap(),
            now: Instant::from_secs(1),
            udp_port: 0,
            tcp_port: 0,
        };
        let mut q = Vec::new();
        PacketBuilder::ipv4(LAN, SERVER, 64).udp(5000, 53).write(&mut q, b"q").unwrap();
        assert_eq!(r.e.process(r.now, Side::Lan, &mut q), Verdict::Forward(Side::Wan));
        r.udp_port = u16::from_be_bytes([q[20], q[21]]);
        let mut s = Vec::new();
        PacketBuilder::ipv4(LAN, SERVER, 64).tcp(6000, 80, 1, 65535).syn().write(&mut s, b"").unwrap();
        assert_eq!(r.e.process(r.now, Side::Lan, &mut s), Verdict::Forward(Side::Wan));
        r.tcp_port = u16::from_be_bytes([s[20], s[21]]);
        let mut sa = Vec::new();
        PacketBuilder::ipv4(SERVER, PUB, 64).tcp(80, r.tcp_port, 9, 65535).syn().ack(2).write(&mut sa, b"").unwrap();
        assert_eq!(r.e.process(r.now, Side::Wan, &mut sa), Verdict::Forward(Side::Lan));
        r
    }

    /// Sends one packet from the WAN; returns how many packets reached the LAN because of it.
    fn send(&mut self, mut p: Vec<u8>) -> usize {
        let v = self.e.process(self.now, Side::Wan, &mut p);
        let released = std::iter::from_fn(|| self.e.poll_transmit()).filter(|t| t.side == Side::Lan).count();
        usize::from(v == Verdict::Forward(Side::Lan)) + released
    }

    fn tick(&mut self, secs: u64) {
        self.now = Instant::from_nanos(self.now.as_nanos() + secs * 1_000_000_000);
        self.e.handle_timeout(self.now);
    }
}

/// One class: `setup` sends legitimate packets (not counted); `attack` the counted ones.
struct Class {
    name: &'static str,
    run: fn(&mut Router, u16) -> (usize, usize),
}

fn fragments_reuse_in_order(r: &mut Router, id: u16) -> (usize, usize) {
    for f in train(id, r.udp_port, &[0, 1480, 2960]) {
        r.send(f);
    }
    r.tick(2);
    let attack = train(id, 9999, &[0, 1480, 2960]);
    (attack.len(), attack.into_iter().map(|f| r.send(f)).sum())
}

fn fragments_reuse_reversed(r: &mut Router, id: u16) -> (usize, usize) {
    for f in train(id, r.udp_port, &[0, 1480, 2960]) {
        r.send(f);
    }
    r.tick(2);
    let attack = train(id, 9999, &[0, 1480, 2960]);
    (attack.len(), attack.into_iter().rev().map(|f| r.send(f)).sum())
}

fn tiny_first_fragment(r: &mut Router, id: u16) -> (usize, usize) {
    let mut syn = Vec::new();
    PacketBuilder::ipv4(SERVER, PUB, 64).tcp(80, 9999, 5, 65535).syn().write(&mut syn, &[0u8; 64]).unwrap();
    let l4 = &syn[20..];
    let live = {
        let mut a = Vec::new();
        PacketBuilder::ipv4(SERVER, PUB, 64).tcp(80, r.tcp_port, 10, 65535).ack(2).write(&mut a, &[0u8; 64]).unwrap();
        a[20..].to_vec()
    };
    r.send(raw(6, id, (0, true), &[], &live[..40]));
    r.send(raw(6, id, (40, false), &[], &live[40..]));
    r.tick(2);
    let attack = [raw(6, id, (0, true), &[], &l4[..8]), raw(6, id, (8, false), &[], &l4[8..])];
    (attack.len(), attack.into_iter().map(|f| r.send(f)).sum())
}

fn overlapping_second_fragment(r: &mut Router, id: u16) -> (usize, usize) {
    let l4 = udp_l4(53, r.udp_port, 3000);
    r.send(raw(17, id, (0, true), &[], &l4[..1480]));
    let attack = [raw(17, id, (1472, true), &l4[..0], &l4[1472..2952]), raw(17, id, (2952, false), &[], &l4[2952..])];
    (attack.len(), attack.into_iter().map(|f| r.send(f)).sum())
}

fn overlap_at_offset_zero(r: &mut Router, id: u16) -> (usize, usize) {
    let good = train(id, r.udp_port, &[0, 1480, 2960]);
    r.send(good[0].clone());
    let evil = train(id, 9999, &[0, 1480, 2960]);
    let attack = [evil[0].clone(), good[1].clone(), good[2].clone()];
    (attack.len(), attack.into_iter().map(|f| r.send(f)).sum())
}

fn train_that_never_completes(r: &mut Router, id: u16) -> (usize, usize) {
    let good = train(id, r.udp_port, &[0, 1480, 2960]);
    r.send(good[0].clone());
    r.send(good[1].clone());
    r.tick(2);
    let attack = train(id, 9999, &[0, 1480, 2960]);
    (attack.len(), attack.into_iter().map(|f| r.send(f)).sum())
}

fn source_routes(r: &mut Router, id: u16) -> (usize, usize) {
    let l4 = udp_l4(53, r.udp_port, 10);
    let attack = [
        raw(17, id, (0, false), &[0x83, 7, 4, 192, 168, 1, 10, 0], &l4),
        raw(17, id, (0, false), &[0x89, 7, 4, 192, 168, 1, 10, 0], &l4),
    ];
    (attack.len(), attack.into_iter().map(|f| r.send(f)).sum())
}

fn option_past_the_header(r: &mut Router, id: u16) -> (usize, usize) {
    let l4 = udp_l4(53, r.udp_port, 10);
    (1, r.send(raw(17, id, (0, false), &[7, 40, 4, 0, 0, 0, 0, 0], &l4)))
}

fn udp_length_past_the_payload(r: &mut Router, id: u16) -> (usize, usize) {
    let mut l4 = udp_l4(53, r.udp_port, 10);
    l4[4..6].copy_from_slice(&500u16.to_be_bytes());
    (1, r.send(raw(17, id, (0, false), &[], &l4)))
}

fn tcp_blind_segments(r: &mut Router, id: u16) -> (usize, usize) {
    // RST, SYN and ACK with random sequence numbers on the live connection's 4-tuple.
    let seq = 0x4000_0000u32.wrapping_add(u32::from(id) * 7919);
    let mut sent = 0;
    let mut leaked = 0;
    for (syn, rst) in [(false, true), (true, false), (false, false)] {
        let mut b = PacketBuilder::ipv4(SERVER, PUB, 64).tcp(80, r.tcp_port, seq, 65535);
        if syn {
            b = b.syn();
        }
        if rst {
            b = b.rst();
        }
        if !syn && !rst {
            b = b.ack(seq);
        }
        let mut p = Vec::new();
        b.write(&mut p, b"").unwrap();
        sent += 1;
        leaked += r.send(p);
    }
    (sent, leaked)
}

fn main() {
    let classes = [
        Class { name: "fragments: ID reuse, in order", run: fragments_reuse_in_order },
        Class { name: "fragments: ID reuse, reverse order", run: fragments_reuse_reversed },
        Class { name: "fragments: 8-byte first fragment", run: tiny_first_fragment },
        Class { name: "fragments: overlapping second", run: overlapping_second_fragment },
        Class { name: "fragments: overlap at offset 0 (RFC 1858)", run: overlap_at_offset_zero },
        Class { name: "fragments: train that never completes", run: train_that_never_completes },
        Class { name: "IP options: LSRR/SSRR to a LAN host", run: source_routes },
        Class { name: "IP options: length past the header", run: option_past_the_header },
        Class { name: "UDP length past the payload", run: udp_length_past_the_payload },
        Class { name: "TCP: blind RST/SYN/ACK, random numbers", run: tcp_blind_segments },
    ];
    println!("{:<44} {:>6} {:>14}", "class", "sent", "reached LAN");
    let (mut all_sent, mut all_leaked) = (0, 0);
    for c in &classes {
        let (mut sent, mut leaked) = (0, 0);
        for round in 0..ROUNDS {
            let mut r = Router::new();
            let (s, l) = (c.run)(&mut r, 1000 + round);
            sent += s;
            leaked += l;
        }
        all_sent += sent;
        all_leaked += leaked;
        println!("{:<44} {:>6} {:>14}", c.name, sent, leaked);
    }
    println!("{:<44} {:>6} {:>14}", "all", all_sent, all_leaked);
}
