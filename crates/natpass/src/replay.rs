//! `natpass replay`: runs a capture through the engine with the capture's clock.
//!
//! The capture is read twice. The first pass decides which hosts are the LAN: the ones named,
//! or else private hosts (RFC 1918; for IPv6, unique local addresses, RFC 4193) that talk to
//! public ones, and for two private (or two public) hosts talking to each other, the one that
//! spoke first (the client). IPv6 is routed, not translated: its LAN is a prefix, the /64 of
//! the first IPv6 LAN host, lengthened until no host of the other side is inside it (two
//! hosts of one /64 in a capture), and the engine runs with that prefix (RFC 6092 simple
//! security). IPv6 link-local and multicast packets are fed from the LAN, where the router
//! would hear them, and stay there. The second pass feeds every packet to
//! the engine: LAN packets as they were; WAN packets as their sender would have sent them after
//! seeing natpass's translation (to the public address, port and identifier natpass chose), so
//! a capture recorded without a NAT replays both ways. Packets forwarded to the LAN are
//! compared with the original capture: a correct NAT gives the LAN host back exactly what it
//! received without the NAT, TTL aside.
//!
//! At the end, the diagnosis (`natpass_engine::diagnosis`) says what went wrong with the VPN
//! tunnels in the capture, as of its last packet: its findings, and for each LAN host what
//! looked wrong without enough evidence for a cause.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use natpass_engine::diagnosis::Status;
use natpass_engine::ipv6::{Ipv6Config, Ipv6Net};
use natpass_engine::{DropReason, Endpoint, Engine, EngineConfig, Finding, Instant, Ipv4Net, Proto, Side, Verdict};
use natpass_io::pcap::{L3, PcapReader, PcapWriter};
use natpass_wire::icmp::{IcmpPacket, QuotedDatagram};
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::ipv6::{self, Ipv6Packet};
use natpass_wire::tcp::TcpPacket;
use natpass_wire::udp::UdpPacket;
use natpass_wire::{AddrChange, IpProtocol};

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// The capture.
    pub input: PathBuf,
    /// The LAN hosts, IPv4 or IPv6; empty means "decide from the capture".
    pub lan: Vec<IpAddr>,
    /// The public address natpass uses.
    pub public: Ipv4Addr,
    /// Where `lan.pcap` and `wan.pcap` go; none means no output files.
    pub out_dir: Option<PathBuf>,
    /// Settings to start from (timers, filtering, MTUs); addresses are set by the replay.
    pub base: EngineConfig,
    /// Show a progress bar.
    pub progress: bool,
}

/// The engine settings a replay starts from: those of the natpass config file `config`, or
/// defaults sized for a capture; `wan_mtu` overrides the file.
pub fn engine_settings(config: Option<&Path>, wan_mtu: Option<u16>) -> Result<EngineConfig> {
    let mut base = match config {
        Some(path) => {
            let text =
                natpass_config::read_file(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            natpass_config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => EngineConfig { max_sessions: 1 << 16, ..Default::default() },
    };
    if let Some(m) = wan_mtu {
        base.wan_mtu = m;
    }
    Ok(base)
}

/// Runs the replay and returns what `natpass replay` prints: the summary, and where the
/// translated packets went.
pub fn run_and_report(opts: &Options) -> Result<String> {
    let summary = run(opts)?;
    let mut report = render(opts, &summary);
    if let Some(dir) = &opts.out_dir {
        report.push_str(&format!(
            "\n  wrote {} and {}\n",
            dir.join("lan.pcap").display(),
            dir.join("wan.pcap").display()
        ));
    }
    Ok(report)
}

/// What happened, for the summary table and for tests.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Frames in the capture.
    pub frames: u64,
    /// Frames that carry no IP packet (ARP, other link protocols): not for the NAT.
    pub not_ip: u64,
    /// IP packets between two hosts neither of which is on the LAN: not through the NAT.
    pub unrelated: u64,
    /// What happened to the capture's IPv4 packets (translated).
    pub ipv4: Counts,
    /// What happened to the capture's IPv6 packets (routed with simple security, RFC 6092).
    pub ipv6: Counts,
    /// The engine's IPv6 settings, when the capture holds IPv6.
    pub ipv6_config: Option<Ipv6Config>,
    /// Most IPv6 flows tracked at once.
    pub peak_ipv6_flows: usize,
    /// Packets captured on their sender before checksum offload (IPv4 checksum 0 that does
    /// not verify): the replay fills in their checksums as the NIC would have.
    pub offload_fixed: u64,
    /// The LAN hosts used, IPv4 and IPv6.
    pub lan_hosts: Vec<IpAddr>,
    /// Sessions opened, expired, evicted.
    pub sessions: (u64, u64, u64),
    /// Most sessions alive at once.
    pub peak_sessions: u32,
    /// Public ports in use at the end, by protocol (tcp, udp, icmp).
    pub ports_used: [u32; 3],
    /// The diagnosis at the capture's last packet: findings, found or cleared, newest first.
    pub findings: Vec<Finding>,
    /// What looked wrong to the diagnosis without enough evidence for a cause, per LAN host.
    pub not_enough_evidence: Vec<Finding>,
    /// The time of the capture's last packet (the replay's clock).
    pub end: Instant,
}

/// What happened to one family's packets.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Packets fed to the engine, by ingress side `[lan, wan]`.
    pub fed: [u64; 2],
    /// Packets the engine forwarded, by egress side `[lan, wan]` (its own included: ICMP
    /// errors, fragments).
    pub forwarded: [u64; 2],
    /// Packets held (out-of-order fragments) or split for the egress MTU, by ingress side.
    pub consumed: [u64; 2],
    /// Drops by reason, nonzero only.
    pub drops: Vec<(DropReason, u64)>,
    /// WAN → LAN packets that came out byte-identical to the capture (TTL or hop limit, and
    /// the IPv4 checksum, aside).
    pub restored: u64,
    /// WAN → LAN packets that came out different from the capture.
    pub restored_differs: u64,
}

impl Counts {
    /// The count of one drop reason.
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.drops.iter().find(|(x, _)| *x == r).map_or(0, |x| x.1)
    }

    fn add_drop(&mut self, r: DropReason) {
        match self.drops.iter_mut().find(|x| x.0 == r) {
            Some(x) => x.1 += 1,
            None => self.drops.push((r, 1)),
        }
    }
}

impl Summary {
    /// The findings still found at the end (not cleared).
    pub fn found(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.status == Status::Found)
    }
}

/// Private: RFC 1918, or an IPv6 unique local address (RFC 4193).
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private(),
        IpAddr::V6(a) => a.is_unique_local(),
    }
}

/// Traffic that says nothing about which side a host is on: to a group (multicast,
/// broadcast), from nobody, or IPv6 link-local (it never crosses a router).
fn is_link_scoped(s: IpAddr, d: IpAddr) -> bool {
    match (s, d) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            d.is_multicast() || d.is_broadcast() || d.octets()[3] == 0xff || s.is_unspecified()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            d.is_multicast() || s.is_unspecified() || s.is_unicast_link_local() || d.is_unicast_link_local()
        }
        _ => true,
    }
}

/// The source and destination of a captured frame's IP packet, if it has one.
fn addrs_of(p: &natpass_io::pcap::CapturedPacket) -> Option<(IpAddr, IpAddr)> {
    match p.l3 {
        L3::Ipv4 { offset } => {
            Ipv4Packet::new_checked(p.data.get(offset..)?).ok().map(|ip| (ip.src().into(), ip.dst().into()))
        }
        L3::Ipv6 { offset } => {
            Ipv6Packet::new_checked(p.data.get(offset..)?).ok().map(|ip| (ip.src().into(), ip.dst().into()))
        }
        _ => None,
    }
}

/// The first pass: which hosts are the LAN (see the module documentation), and every address
/// seen.
fn find_lan(path: &Path) -> Result<(Vec<IpAddr>, HashSet<IpAddr>)> {
    let mut lan: Vec<IpAddr> = Vec::new();
    let mut wan: HashSet<IpAddr> = HashSet::new();
    let mut seen: HashSet<IpAddr> = HashSet::new();
    let mut reader = PcapReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt?;
        let Some((s, d)) = addrs_of(&pkt) else {
            continue;
        };
        seen.insert(s);
        seen.insert(d);
        if is_link_scoped(s, d) {
            continue;
        }
        let known = |x: IpAddr| lan.contains(&x) || wan.contains(&x);
        if is_private(s) && !is_private(d) {
            // A private host talking to a public one is behind the NAT.
            if !wan.contains(&s) && !lan.contains(&s) {
                lan.push(s);
            }
        } else if !known(s) && !known(d) {
            // Two private (or two public) hosts: the one that speaks first is the client.
            lan.push(s);
            wan.insert(d);
        } else if lan.contains(&s) && !known(d) {
            wan.insert(d);
        }
    }
    lan.retain(|x| !wan.contains(x));
    Ok((lan, seen))
}

/// Bits two addresses share from the left.
fn shared_bits(a: Ipv6Addr, b: Ipv6Addr) -> u8 {
    (a.to_bits() ^ b.to_bits()).leading_zeros() as u8
}

/// The engine's IPv6 settings for a capture with IPv6 in it: the LAN prefix (see the module
/// documentation) and router addresses no host of the capture uses. Without an IPv6 LAN
/// host, the documentation prefix 2001:db8::/64 stands in (every routed packet is then
/// unrelated, and link-local ones stay on the LAN).
fn ipv6_settings(lan: &[IpAddr], seen: &HashSet<IpAddr>) -> Option<Ipv6Config> {
    let v6 = |a: &IpAddr| match a {
        IpAddr::V6(x) => Some(*x),
        IpAddr::V4(_) => None,
    };
    if !seen.iter().any(|a| a.is_ipv6()) {
        return None;
    }
    let hosts: Vec<Ipv6Addr> = lan.iter().filter_map(v6).collect();
    let lan_prefix = match hosts.first() {
        Some(&first) => {
            let shared = hosts.iter().map(|&h| shared_bits(first, h)).min().unwrap_or(128).min(64);
            let others = seen.iter().filter_map(v6).filter(|o| !hosts.contains(o) && !o.is_multicast());
            let apart = others.map(|o| shared_bits(first, o).saturating_add(1)).max().unwrap_or(0);
            Ipv6Net::new(first, shared.max(apart).min(128))
        }
        None => Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 64),
    };
    let unused = |a: &Ipv6Addr| !seen.contains(&IpAddr::V6(*a));
    // The router's LAN address: a free one at the top of the prefix; its WAN address: a free
    // one of 2001:db8:ffff::/64 outside the prefix.
    let top = lan_prefix.addr().to_bits() | (u128::MAX.checked_shr(u32::from(lan_prefix.len())).unwrap_or(0));
    let lan_addr = (0..256u128)
        .filter_map(|i| top.checked_sub(i).map(Ipv6Addr::from_bits))
        .find(|a| lan_prefix.contains(*a) && unused(a))
        .unwrap_or(lan_prefix.addr());
    let wan_addr = (1..=255u16)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, i))
        .find(|a| !lan_prefix.contains(*a) && unused(a))
        .unwrap_or(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0));
    Some(Ipv6Config { lan_prefix, lan_addr, wan_addr })
}

/// The IPv6 packet's side as the capture shows it: from the LAN prefix, to it, or link-scoped
/// (heard on the LAN, never routed); `None` when it does not cross the router.
fn ipv6_side(config: &Ipv6Config, ip: &Ipv6Packet<&[u8]>) -> Option<Side> {
    let (src, dst) = (ip.src(), ip.dst());
    if config.lan_prefix.contains(src) || is_link_scoped(src.into(), dst.into()) {
        Some(Side::Lan)
    } else if config.lan_prefix.contains(dst) {
        Some(Side::Wan)
    } else {
        None
    }
}

/// True when `out` is `orig` with only the hop limit changed.
fn same_but_hop_limit(out: &[u8], orig: &[u8]) -> bool {
    out.len() == orig.len() && out.len() >= ipv6::HEADER_LEN && out[..7] == orig[..7] && out[8..] == orig[8..]
}

/// The length an IP packet's header gives it (IPv4's total length, IPv6's payload length and
/// header), at most the buffer's.
fn ip_len(packet: &[u8]) -> usize {
    let n = match packet.first().map(|b| b >> 4) {
        Some(6) => packet.get(4..6).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])) + ipv6::HEADER_LEN),
        _ => packet.get(2..4).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]]))),
    };
    n.min(packet.len())
}

/// Rewrites a WAN packet's destination (and the embedded source of an ICMP error) to what the
/// engine's translation told the remote side. Returns false when nothing matched.
fn as_sent_to_nat(e: &Engine, pkt: &mut [u8], fallback: Ipv4Addr) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(&*pkt) else {
        return false;
    };
    let (src, dst, hl, total) = (ip.src(), ip.dst(), ip.header_len(), usize::from(ip.total_len()));
    let first = ip.frag_offset() == 0;
    let proto = Proto::from_ip_protocol(ip.protocol());
    let l4 = &pkt[hl..total];
    // The mapping this packet answers to.
    let mut target: Option<Endpoint> = None;
    let mut port_change: Option<(u16, u16)> = None;
    if first {
        match proto {
            Some(p @ (Proto::Tcp | Proto::Udp)) if l4.len() >= 4 => {
                let sport = u16::from_be_bytes([l4[0], l4[1]]);
                let dport = u16::from_be_bytes([l4[2], l4[3]]);
                if let Some(ext) = e.outside_of(p, Endpoint::new(dst, dport), Endpoint::new(src, sport)) {
                    target = Some(ext);
                    port_change = Some((dport, ext.port));
                }
            }
            Some(Proto::Icmp) if l4.len() >= 8 => {
                let m = IcmpPacket::new_unchecked(l4);
                if m.is_query() {
                    if let Some(ext) = e.outside_of(Proto::Icmp, Endpoint::new(dst, m.ident()), Endpoint::new(src, 0)) {
                        target = Some(ext);
                        port_change = Some((m.ident(), ext.port));
                    }
                } else if m.is_error() {
                    return icmp_error_as_sent(e, pkt, fallback);
                }
            }
            _ => {}
        }
    }
    let ext_ip = target.map_or_else(|| e.public_addr_of(dst).unwrap_or(fallback), |t| t.addr);
    let change = Some(AddrChange::new(dst, ext_ip));
    let l4 = &mut pkt[hl..total];
    if let (Some((_, new)), Some(p)) = (port_change, proto) {
        match p {
            Proto::Tcp => TcpPacket::new_unchecked(l4).set_dst_port(new, change),
            Proto::Udp => UdpPacket::new_unchecked(l4).set_dst_port(new, change),
            Proto::Icmp => IcmpPacket::new_unchecked(l4).set_ident(new),
        }
    } else if first && matches!(proto, Some(Proto::Tcp | Proto::Udp)) && l4.len() >= 8 {
        // No session: the sender targets the public address; ports unchanged, checksum fixed.
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        match proto {
            Some(Proto::Tcp) if TcpPacket::new_checked(&*l4).is_ok() => {
                TcpPacket::new_unchecked(l4).set_dst_port(dport, change)
            }
            Some(Proto::Udp) => UdpPacket::new_unchecked(l4).set_dst_port(dport, change),
            _ => {}
        }
    }
    Ipv4Packet::new_unchecked(&mut *pkt).set_dst(ext_ip);
    target.is_some()
}

/// An ICMP error from the WAN about a LAN packet: the quoted packet is what natpass sent, so
/// its source becomes the public endpoint, and the outer destination the public address.
fn icmp_error_as_sent(e: &Engine, pkt: &mut [u8], fallback: Ipv4Addr) -> bool {
    let ip = Ipv4Packet::new_unchecked(&*pkt);
    let dst = ip.dst();
    let m = IcmpPacket::new_unchecked(ip.into_payload());
    let Ok(q) = QuotedDatagram::new_checked(m.data()) else {
        return false;
    };
    let found = match Proto::from_ip_protocol(q.protocol()) {
        Some(p @ (Proto::Tcp | Proto::Udp)) => {
            e.outside_of(p, Endpoint::new(q.src(), q.src_port()), Endpoint::new(q.dst(), q.dst_port())).map(|x| (x, p))
        }
        Some(Proto::Icmp) => e
            .outside_of(Proto::Icmp, Endpoint::new(q.src(), q.icmp_ident()), Endpoint::new(q.dst(), 0))
            .map(|x| (x, Proto::Icmp)),
        None => None,
    };
    let ext_ip = found.map_or_else(|| e.public_addr_of(dst).unwrap_or(fallback), |f| f.0.addr);
    if let Some((ext, proto)) = found {
        let mut outer = Ipv4Packet::new_unchecked(&mut *pkt);
        let mut m = IcmpPacket::new_unchecked(outer.payload_mut());
        {
            let mut q = QuotedDatagram::new_unchecked(m.data_mut());
            q.set_src(ext.addr);
            match proto {
                Proto::Icmp => q.set_icmp_ident(ext.port),
                Proto::Tcp | Proto::Udp => q.set_src_port(ext.port),
            }
        }
        m.fill_checksum();
    }
    Ipv4Packet::new_unchecked(&mut *pkt).set_dst(ext_ip);
    found.is_some()
}

/// A packet captured on its sender before the NIC filled its checksums has an IPv4 header
/// checksum of 0 that does not verify (and a partial TCP/UDP checksum). Fills them in as the
/// NIC would have; returns true when it did.
fn fill_offloaded_checksums(pkt: &mut [u8]) -> bool {
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut *pkt) else {
        return false;
    };
    if ip.checksum() != 0 || ip.verify_checksum() {
        return false;
    }
    ip.fill_checksum();
    if ip.is_fragment() {
        return true;
    }
    let ps = ip.pseudo_header_sum();
    let proto = ip.protocol();
    let l4 = ip.payload_mut();
    match proto {
        IpProtocol::TCP => {
            if let Ok(mut t) = TcpPacket::new_checked(&mut *l4) {
                t.fill_checksum(ps);
            }
        }
        IpProtocol::UDP => {
            if let Ok(mut u) = UdpPacket::new_checked(&mut *l4)
                && u.checksum() != 0
            {
                u.fill_checksum(ps);
            }
        }
        _ => {}
    }
    true
}

/// True when `out` is `orig` with only TTL and header checksum changed.
fn same_but_ttl(out: &[u8], orig: &[u8]) -> bool {
    let n = usize::from(Ipv4Packet::new_unchecked(orig).total_len());
    if out.len() < n || orig.len() < n {
        return false;
    }
    out[..8] == orig[..8] && out[9..10] == orig[9..10] && out[12..n] == orig[12..n]
}

/// Replays a capture and returns the summary.
pub fn run(opts: &Options) -> Result<Summary> {
    let (found, seen) = find_lan(&opts.input)?;
    let lan: Vec<IpAddr> = if opts.lan.is_empty() { found } else { opts.lan.clone() };
    let lan4: Vec<Ipv4Addr> = lan
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(x) => Some(*x),
            IpAddr::V6(_) => None,
        })
        .collect();
    let public = opts.public;
    let mut config = opts.base.clone();
    config.public_addrs = vec![opts.public];
    config.lan_networks = lan4.iter().map(|&a| Ipv4Net::new(a, 32)).collect();
    if let Some(&first) = lan4.first() {
        // The router's LAN address (the source of its ICMP errors): a free address of the
        // first host's /24, counting down from .254.
        let [a, b, c, _] = first.octets();
        if let Some(router) =
            (1..=254u8).rev().map(|h| Ipv4Addr::new(a, b, c, h)).find(|x| !seen.contains(&IpAddr::V4(*x)))
        {
            config.lan_addr = router;
        }
    }
    config.ipv6 = ipv6_settings(&lan, &seen);
    let v6config = config.ipv6.clone();
    let mut engine = Engine::new(config, Instant::ZERO).context("engine settings")?;
    let mut reader = PcapReader::open(&opts.input).with_context(|| format!("opening {}", opts.input.display()))?;
    let mut writers = match &opts.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            Some((PcapWriter::create(&dir.join("lan.pcap"))?, PcapWriter::create(&dir.join("wan.pcap"))?))
        }
        None => None,
    };
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(reader.total_bytes());
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut s = Summary { lan_hosts: lan.clone(), ipv6_config: v6config.clone(), ..Default::default() };
    let mut epoch: Option<u64> = None;
    let mut last = 0u64;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt?;
        s.frames += 1;
        if s.frames.is_multiple_of(256) {
            bar.set_position(reader.bytes_read());
        }
        // Capture time, made monotonic (some captures were merged out of order).
        let e0 = *epoch.get_or_insert(pkt.ts_ns);
        let now_ns = pkt.ts_ns.saturating_sub(e0).max(last);
        last = now_ns;
        let now = Instant::from_nanos(now_ns);
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        let (mut buf, orig_side, v6) = match pkt.l3 {
            L3::Ipv4 { offset } => {
                let Some(b) = pkt.data.get(offset..) else {
                    continue;
                };
                let Ok(ip) = Ipv4Packet::new_checked(b) else {
                    // Malformed IPv4: let the engine count it, from whichever side.
                    let mut v = b.to_vec();
                    s.ipv4.fed[0] += 1;
                    let _ = engine.process(now, Side::Lan, &mut v);
                    continue;
                };
                let n = usize::from(ip.total_len());
                let (src, dst) = (ip.src(), ip.dst());
                let side = if lan4.contains(&src) {
                    Side::Lan
                } else if lan4.contains(&dst) {
                    Side::Wan
                } else {
                    s.unrelated += 1;
                    continue;
                };
                (b[..n].to_vec(), side, false)
            }
            L3::Ipv6 { offset } => {
                let b = pkt.data.get(offset..).unwrap_or_default();
                let side = match (&v6config, Ipv6Packet::new_checked(b)) {
                    (Some(c), Ok(ip)) => ipv6_side(c, &ip),
                    // Malformed: the engine counts it, from the LAN.
                    _ => Some(Side::Lan),
                };
                let Some(side) = side else {
                    s.unrelated += 1;
                    continue;
                };
                (b[..ip_len(b)].to_vec(), side, true)
            }
            _ => {
                s.not_ip += 1;
                continue;
            }
        };
        if !v6 && fill_offloaded_checksums(&mut buf) {
            s.offload_fixed += 1;
        }
        let orig = buf.clone();
        if !v6 && orig_side == Side::Wan {
            // IPv6 is routed as it is; IPv4 goes to what natpass told the remote side.
            as_sent_to_nat(&engine, &mut buf, public);
        }
        let counts = if v6 { &mut s.ipv6 } else { &mut s.ipv4 };
        counts.fed[orig_side as usize] += 1;
        match engine.process(now, orig_side, &mut buf) {
            Verdict::Forward(out) => {
                counts.forwarded[out as usize] += 1;
                if out == Side::Lan && orig_side == Side::Wan {
                    let same = if v6 { same_but_hop_limit(&buf, &orig) } else { same_but_ttl(&buf, &orig) };
                    if same {
                        counts.restored += 1;
                    } else {
                        counts.restored_differs += 1;
                    }
                }
                if let Some((l, w)) = writers.as_mut() {
                    let n = ip_len(&buf);
                    match out {
                        Side::Lan => l.write_packet(pkt.ts_ns, &buf[..n])?,
                        Side::Wan => w.write_packet(pkt.ts_ns, &buf[..n])?,
                    }
                }
            }
            Verdict::Consumed => counts.consumed[orig_side as usize] += 1,
            // IPv4's drops are the engine's counters (expired fragments too), less IPv6's.
            Verdict::Drop(r) if v6 => counts.add_drop(r),
            Verdict::Drop(_) => {}
        }
        drain_transmit(&mut engine, &mut s, &mut writers, pkt.ts_ns)?;
        s.peak_ipv6_flows = s.peak_ipv6_flows.max(engine.ipv6_flows());
        s.peak_sessions = s.peak_sessions.max(engine.session_count());
    }
    bar.finish_and_clear();
    if let Some((l, w)) = writers {
        l.finish()?;
        w.finish()?;
    }
    // The engine counts both families; the IPv6 drops are the verdicts counted above.
    s.ipv4.drops =
        engine.stats().drops_by_reason().map(|(r, n)| (r, n - s.ipv6.dropped(r))).filter(|&(_, n)| n > 0).collect();
    s.sessions = engine.session_totals();
    s.ports_used = [Proto::Tcp, Proto::Udp, Proto::Icmp].map(|p| engine.ports_used(0, p));
    s.end = Instant::from_nanos(last);
    s.findings = engine.findings(s.end);
    s.not_enough_evidence = lan4
        .iter()
        .flat_map(|&h| engine.findings_for(s.end, h))
        .filter(|f| f.status == Status::NotEnoughEvidence)
        .collect();
    Ok(s)
}

/// The output files, one per egress side.
type Writers = Option<(PcapWriter, PcapWriter)>;

/// Counts (and writes) the packets the router made itself, by family and side.
fn drain_transmit(engine: &mut Engine, s: &mut Summary, writers: &mut Writers, ts_ns: u64) -> Result<()> {
    while let Some(tx) = engine.poll_transmit() {
        let counts =
            if tx.packet.first().is_some_and(|b| b >> 4 == 6) { &mut s.ipv6.forwarded } else { &mut s.ipv4.forwarded };
        counts[tx.side as usize] += 1;
        if let Some((l, w)) = writers.as_mut() {
            match tx.side {
                Side::Lan => l.write_packet(ts_ns, &tx.packet)?,
                Side::Wan => w.write_packet(ts_ns, &tx.packet)?,
            }
        }
    }
    Ok(())
}

/// The summary as a table for people.
pub fn render(opts: &Options, s: &Summary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let lan: Vec<String> = s.lan_hosts.iter().map(ToString::to_string).collect();
    let _ = writeln!(o, "natpass replay of {}", opts.input.display());
    let _ = writeln!(o, "  LAN hosts: {}   public address: {}", lan.join(", "), opts.public);
    let _ = writeln!(o);
    let _ = writeln!(o, "  {:<34} {:>10}", "frames read", s.frames);
    let _ = writeln!(o, "  {:<34} {:>10}", "  not IP (ARP, other)", s.not_ip);
    let _ = writeln!(o, "  {:<34} {:>10}", "  not through the NAT", s.unrelated);
    if s.offload_fixed > 0 {
        let _ = writeln!(o, "  {:<34} {:>10}", "  checksums filled (offload)", s.offload_fixed);
    }
    render_counts(&mut o, "", &s.ipv4);
    let _ = writeln!(o, "  {:<34} {:>10}", "sessions opened", s.sessions.0);
    let _ = writeln!(o, "  {:<34} {:>10}", "sessions expired", s.sessions.1);
    let _ = writeln!(o, "  {:<34} {:>10}", "peak sessions", s.peak_sessions);
    let _ = writeln!(
        o,
        "  {:<34} {:>10}",
        "public ports in use tcp/udp/icmp",
        format!("{}/{}/{}", s.ports_used[0], s.ports_used[1], s.ports_used[2])
    );
    render_ipv6(&mut o, s);
    let _ = writeln!(o);
    render_findings(&mut o, s);
    o
}

/// One family's counts, each line's name after `family` (and after its indent).
fn render_counts(o: &mut String, family: &str, c: &Counts) {
    use std::fmt::Write;
    let mut line = |name: &str, n: u64| {
        let label = match name.strip_prefix("  ") {
            Some(sub) => format!("  {family}{sub}"),
            None => format!("{family}{name}"),
        };
        let _ = writeln!(o, "  {label:<34} {n:>10}");
    };
    line("fed from LAN", c.fed[0]);
    line("fed from WAN", c.fed[1]);
    line("forwarded to WAN", c.forwarded[1]);
    line("forwarded to LAN", c.forwarded[0]);
    line("  identical to the capture", c.restored);
    line("  different from the capture", c.restored_differs);
    line("held or split (fragments)", c.consumed[0] + c.consumed[1]);
    line("dropped", c.drops.iter().map(|d| d.1).sum());
    for (r, n) in &c.drops {
        let _ = writeln!(o, "    {:<32} {:>10}", r.name(), n);
    }
}

/// The IPv6 part of the summary, when the capture holds IPv6.
fn render_ipv6(o: &mut String, s: &Summary) {
    use std::fmt::Write;
    let Some(c) = &s.ipv6_config else {
        return;
    };
    let _ = writeln!(o);
    let _ = writeln!(o, "  IPv6 (routed, simple security): LAN prefix {}/{}", c.lan_prefix.addr(), c.lan_prefix.len());
    render_counts(o, "IPv6 ", &s.ipv6);
    let _ = writeln!(o, "  {:<34} {:>10}", "IPv6 peak flows", s.peak_ipv6_flows);
}

/// The diagnosis part of the summary: each finding with what showed it and what to do.
fn render_findings(o: &mut String, s: &Summary) {
    use std::fmt::Write;
    if s.findings.is_empty() && s.not_enough_evidence.is_empty() {
        let _ = writeln!(o, "  diagnosis: no VPN problem seen");
        return;
    }
    let _ = writeln!(o, "  diagnosis, as of the capture's last packet:");
    for f in s.findings.iter().chain(&s.not_enough_evidence) {
        let status = match f.status {
            Status::Found => "",
            Status::Cleared { .. } => " [cleared]",
            Status::NotEnoughEvidence => "",
        };
        let _ = writeln!(o, "  - {}{status}", f.summary());
        o.push_str(&wrapped("      seen: ", &f.explain(s.end), 100));
        if f.status != Status::NotEnoughEvidence {
            o.push_str(&wrapped("      fix:  ", &f.fix(), 100));
        }
    }
}

/// `text` after `lead`, in lines of at most `width` characters (longer words stay whole), the
/// lines after the first indented as far as the first.
pub(crate) fn wrapped(lead: &str, text: &str, width: usize) -> String {
    let indent = " ".repeat(lead.chars().count());
    let mut out = String::new();
    let mut line = lead.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}
