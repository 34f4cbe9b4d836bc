//! What the control plane's HTTP tests share: a server on a loopback port, an engine on a
//! thread of its own answering through the narrow interface, a config file on disk, and a
//! small HTTP client over a plain socket.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use natpass_control::auth::{Auth, hash_password, token_digest};
use natpass_control::http::Options;
use natpass_control::interface::{self, EventLog, PlaneInfo};
use natpass_control::server::{self, Control};
use natpass_control::store::ConfigStore;
use natpass_engine::ipv6::{Ipv6Config, Ipv6Net};
use natpass_engine::{Engine, Instant, Side};
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789";
pub const PASSWORD: &str = "correct horse battery";

pub struct Rig {
    pub addr: SocketAddr,
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    /// What the data plane thread did.
    pub plane: Arc<PlaneStats>,
}

/// The rig's data plane: it routes one packet of an existing session each round, answers the
/// control plane between rounds as the router does, and records its slowest round.
#[derive(Default)]
pub struct PlaneStats {
    /// Packets routed.
    pub routed: AtomicU64,
    /// The slowest round, in microseconds.
    pub worst_round_us: AtomicU64,
}

impl PlaneStats {
    /// Starts a measurement: the packets routed so far; the slowest round is reset.
    pub fn mark(&self) -> u64 {
        self.worst_round_us.store(0, Ordering::Relaxed);
        self.routed.load(Ordering::Relaxed)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(self.path.parent().unwrap());
    }
}

/// A UDP/IPv4 packet from `src:sport` to `dst:dport` (UDP checksum 0: none, RFC 768).
pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut p = vec![0u8; 28 + 4];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&32u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let mut sum: u32 = 0;
    for i in (0..20).step_by(2) {
        sum += u32::from(u16::from_be_bytes([p[i], p[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&12u16.to_be_bytes());
    p
}

/// The rig's IPv6 LAN host and the server it talks to.
pub const HOST6: &str = "2001:db8:1::10";
pub const SERVER6: &str = "2001:db8:ff::1";

/// An IPv6 packet with next header `next` and `payload` (its checksum, if any, filled).
pub fn ipv6(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let (s, d): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(payload);
    p
}

/// A UDP/IPv6 packet with its checksum (RFC 8200 §8.1).
pub fn udp6(src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let mut u = Vec::new();
    for x in [sport, dport, 12, 0] {
        u.extend_from_slice(&x.to_be_bytes());
    }
    u.extend_from_slice(&[1, 2, 3, 4]);
    let mut p = ipv6(src, dst, 17, &u);
    let mut sum: u32 = 17 + 12;
    for c in p[8..].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[46..48].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

/// An ESP/IPv6 packet with SPI `spi`.
pub fn esp6(src: &str, dst: &str, spi: u32) -> Vec<u8> {
    let mut b = spi.to_be_bytes().to_vec();
    b.extend_from_slice(&[0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9]);
    ipv6(src, dst, 50, &b)
}

pub fn rig(name: &str) -> Rig {
    rig_with(name, Options::default())
}

/// A rig whose server has `options`.
pub fn rig_with(name: &str, options: Options) -> Rig {
    let dir = std::env::temp_dir().join(format!("natpass-api-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("natpass.toml");
    let text = "# test router\n[nat]\nlan_networks = [\"192.168.1.0/24\"]\n\n[timeouts]\nudp = 300\n";
    std::fs::write(&path, text).unwrap();
    let mut config = natpass_config::parse_config(text).unwrap().engine;
    // IPv6 beside it (routed with simple security): the config file has no IPv6 section yet.
    let router6: std::net::Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    config.ipv6 = Some(Ipv6Config {
        lan_prefix: Ipv6Net::new(router6, 64),
        lan_addr: router6,
        wan_addr: "2001:db8:ffff::2".parse().unwrap(),
    });
    let mut engine = Engine::new(config, Instant::ZERO).unwrap();
    // Five UDP sessions and one from another client.
    for port in 40000..40005u16 {
        let mut p = udp([192, 168, 1, 10], port, [198, 51, 100, 7], 53);
        assert!(matches!(
            engine.process(Instant::from_secs(1), Side::Lan, &mut p),
            natpass_engine::Verdict::Forward(_)
        ));
    }
    let mut p = udp([192, 168, 1, 11], 5000, [198, 51, 100, 8], 123);
    assert!(matches!(engine.process(Instant::from_secs(1), Side::Lan, &mut p), natpass_engine::Verdict::Forward(_)));
    // An IPv6 host's DNS flow and its ESP SA pair with the server.
    for (side, mut p) in [
        (Side::Lan, udp6(HOST6, 5353, SERVER6, 53)),
        (Side::Lan, esp6(HOST6, SERVER6, 0xc001)),
        (Side::Wan, esp6(SERVER6, HOST6, 0xd00d)),
    ] {
        assert!(matches!(engine.process(Instant::from_secs(1), side, &mut p), natpass_engine::Verdict::Forward(_)));
    }
    let (handle, mailbox) = interface::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let plane = Arc::new(PlaneStats::default());
    let (s, stats) = (Arc::clone(&stop), Arc::clone(&plane));
    std::thread::spawn(move || {
        let mut events = EventLog::default();
        while !s.load(Ordering::Relaxed) {
            let t = std::time::Instant::now();
            let mut p = udp([192, 168, 1, 10], 40000, [198, 51, 100, 7], 53);
            if matches!(engine.process(Instant::from_secs(2), Side::Lan, &mut p), natpass_engine::Verdict::Forward(_)) {
                stats.routed.fetch_add(1, Ordering::Relaxed);
            }
            mailbox.serve(|cmd| {
                interface::answer(&mut engine, &PlaneInfo::default(), &mut events, Instant::from_secs(2), cmd)
            });
            let took = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
            stats.worst_round_us.fetch_max(took, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let users = vec![natpass_config::User { name: "admin".into(), password_hash: hash_password(PASSWORD).unwrap() }];
    let control = Control::new(
        handle,
        ConfigStore::new(Some(path.clone()), text.into()),
        {
            // Like the CLI's token: not from the file, so it outlives edits of the file.
            let mut a = Auth::new(users, Vec::new(), Duration::from_secs(600)).unwrap();
            a.add_token_digest(token_digest(TOKEN));
            a
        },
        |_| {},
    )
    .unwrap();
    let addr = server::spawn("127.0.0.1:0".parse().unwrap(), control, options).unwrap();
    Rig { addr, path, stop, plane }
}

pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Resp {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_string(),
        body: body.into(),
    }
}

/// The rig's API token as a header.
pub const BEARER: (&str, &str) = ("Authorization", "Bearer test-token-0123456789");
