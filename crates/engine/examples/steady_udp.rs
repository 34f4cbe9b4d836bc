//! Deterministic cost of the established UDP path, for instruction counts under callgrind:
//! `steady_udp SESSIONS PACKETS` opens SESSIONS UDP sessions, then translates PACKETS packets
//! (alternating LAN → WAN and WAN → LAN) round robin over them.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use natpass_engine::{Engine, EngineConfig, Instant, Side, Verdict};

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ipv4(src, dst, 64).udp(sport, dport).write(&mut v, &[0u8; 8]).unwrap();
    v
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (n, packets) = (args[0] as u32, args[1]);
    let addrs = n.div_ceil(60_000) as u8;
    let config = EngineConfig {
        public_addrs: (1..=addrs).map(|i| [203, 0, 113, i].into()).collect(),
        lan_networks: vec![natpass_engine::Ipv4Net::new([10, 0, 0, 0].into(), 8)],
        max_sessions: n,
        max_sessions_per_host: n,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(config, Instant::ZERO).unwrap();
    let remote = [198, 51, 100, 7];
    let mut outs = Vec::new();
    let mut ins = Vec::new();
    for i in 0..n {
        let lan = (0x0a00_0000u32 | (i % 4096 + 2)).to_be_bytes();
        let port = (1024 + i / 4096) as u16;
        let p = udp(lan, port, remote, 443);
        let mut q = p.clone();
        assert_eq!(e.process(Instant::ZERO, Side::Lan, &mut q), Verdict::Forward(Side::Wan));
        // The server's answer, to the public address and port natpass chose.
        let answer = udp(remote, 443, [q[12], q[13], q[14], q[15]], u16::from_be_bytes([q[20], q[21]]));
        outs.push(p);
        ins.push(answer);
    }
    let mut buf = [0u8; 64];
    let mut forwarded = 0u64;
    for k in 0..packets {
        let i = (k / 2 % u64::from(n)) as usize;
        let (pkt, side) = if k % 2 == 0 { (&outs[i], Side::Lan) } else { (&ins[i], Side::Wan) };
        buf[..pkt.len()].copy_from_slice(pkt);
        if matches!(e.process(Instant::from_secs(1), side, &mut buf[..pkt.len()]), Verdict::Forward(_)) {
            forwarded += 1;
        }
    }
    println!("{forwarded} of {packets} forwarded");
}
