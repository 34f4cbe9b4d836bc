//! Engine benchmarks: established UDP translation at 1k, 100k and 1M sessions (LAN → WAN and
//! WAN → LAN), new-session rate, and ICMP error translation.
//!
//! Run: `cargo bench -p natpass-engine --bench translate`. Each iteration translates a batch
//! of 1024 packets visited in a shuffled order, so lookups touch memory the way real traffic
//! does; the per-packet cost includes copying the 36-byte packet into the work buffer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use natpass_engine::{Engine, EngineConfig, Instant, Side, Verdict};

const BATCH: usize = 1024;

fn udp(src: u32, sport: u16, dst: u32, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ipv4(src.to_be_bytes(), dst.to_be_bytes(), 64)
        .udp(sport, dport)
        .write(&mut v, &[0u8; 8])
        .expect("build");
    v
}

/// Settings for `max` sessions with as few public addresses as hold them (60 000 ports each).
fn config(max: u32) -> EngineConfig {
    let addrs = max.div_ceil(60_000) as u8;
    EngineConfig {
        public_addrs: (1..=addrs).map(|i| [203, 0, 113, i].into()).collect(),
        lan_networks: vec![natpass_engine::Ipv4Net::new([10, 0, 0, 0].into(), 8)],
        max_sessions: max,
        max_sessions_per_host: max,
        ..EngineConfig::default()
    }
}

/// The LAN endpoint of session `i`: 4096 hosts × as many ports as needed.
fn lan_of(i: u32) -> (u32, u16) {
    (0x0a00_0000 | (i % 4096 + 2), (1024 + i / 4096) as u16)
}

const REMOTE: u32 = 0xc633_6407;
/// Plain UDP (QUIC's port), not a passthrough port: the NAPT path alone.
const REMOTE_PORT: u16 = 443;

/// An engine holding `n` established UDP sessions, with one outbound and one inbound packet
/// per session.
fn setup(n: u32) -> (Engine, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut e = Engine::new(config(n), Instant::ZERO).expect("config");
    let mut outs = Vec::with_capacity(n as usize);
    let mut ins = Vec::with_capacity(n as usize);
    for i in 0..n {
        let (ip, port) = lan_of(i);
        let p = udp(ip, port, REMOTE, REMOTE_PORT);
        let mut q = p.clone();
        assert_eq!(e.process(Instant::ZERO, Side::Lan, &mut q), Verdict::Forward(Side::Wan));
        let ext_ip = u32::from_be_bytes([q[12], q[13], q[14], q[15]]);
        let ext_port = u16::from_be_bytes([q[20], q[21]]);
        let mut r = udp(REMOTE, REMOTE_PORT, ext_ip, ext_port);
        let r0 = r.clone();
        assert_eq!(e.process(Instant::ZERO, Side::Wan, &mut r), Verdict::Forward(Side::Lan));
        outs.push(p);
        ins.push(r0);
    }
    (e, outs, ins)
}

/// A fixed pseudo-random order over `n` items (xorshift), `BATCH` long.
fn order(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    (0..BATCH)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established_udp");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1_000u32, 100_000, 1_000_000] {
        let (mut e, outs, ins) = setup(n);
        eprintln!(
            "sessions {n} ({} public addresses): table {} bytes = {:.1} bytes/session",
            e.config().public_addrs.len(),
            e.table_heap_bytes(),
            e.table_heap_bytes() as f64 / f64::from(n)
        );
        let ord = order(n as usize, 0x9e37_79b9);
        let mut buf = [0u8; 64];
        let now = Instant::from_secs(1);
        g.bench_function(format!("lan_to_wan/{n}"), |b| {
            b.iter(|| {
                for &i in &ord {
                    let p = &outs[i];
                    buf[..p.len()].copy_from_slice(p);
                    let _ = black_box(e.process(now, Side::Lan, &mut buf[..p.len()]));
                }
            })
        });
        g.bench_function(format!("wan_to_lan/{n}"), |b| {
            b.iter(|| {
                for &i in &ord {
                    let p = &ins[i];
                    buf[..p.len()].copy_from_slice(p);
                    let _ = black_box(e.process(now, Side::Wan, &mut buf[..p.len()]));
                }
            })
        });
    }
    g.finish();
}

fn new_sessions(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_session");
    g.throughput(Throughput::Elements(BATCH as u64));
    let pkts: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|i| {
            let (ip, port) = lan_of(i * 7919);
            udp(ip, port, REMOTE, 53)
        })
        .collect();
    g.bench_function("udp", |b| {
        b.iter_batched(
            || Engine::new(config(1 << 16), Instant::ZERO).expect("config"),
            |mut e| {
                let mut buf = [0u8; 64];
                for p in &pkts {
                    buf[..p.len()].copy_from_slice(p);
                    let _ = black_box(e.process(Instant::ZERO, Side::Lan, &mut buf[..p.len()]));
                }
                e
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn icmp_errors(c: &mut Criterion) {
    let mut g = c.benchmark_group("icmp_error");
    g.throughput(Throughput::Elements(BATCH as u64));
    let n = 10_000;
    let (mut e, outs, _) = setup(n);
    // Fragmentation Needed from a router on the path about each translated packet.
    let errs: Vec<Vec<u8>> = outs
        .iter()
        .map(|p| {
            let mut q = p.clone();
            let _ = e.process(Instant::ZERO, Side::Lan, &mut q);
            let mut v = Vec::new();
            etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [q[12], q[13], q[14], q[15]], 64)
                .icmpv4_raw(3, 4, [0, 0, 5, 0x78])
                .write(&mut v, &q)
                .expect("build");
            v
        })
        .collect();
    let ord = order(n as usize, 0x1234_5678);
    let mut buf = [0u8; 128];
    g.bench_function("frag_needed_wan_to_lan", |b| {
        b.iter(|| {
            for &i in &ord {
                let p = &errs[i];
                buf[..p.len()].copy_from_slice(p);
                let _ = black_box(e.process(Instant::ZERO, Side::Wan, &mut buf[..p.len()]));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, established, new_sessions, icmp_errors);
criterion_main!(benches);
