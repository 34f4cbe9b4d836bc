//! `natpass run`: the engine on two Linux interfaces through AF_PACKET sockets.
//!
//! natpass owns its addresses at layer 2: it answers ARP for its LAN address and its public
//! addresses (RFC 826), resolves next hops with its own cache ([`neighbours`]), answers pings
//! to itself (RFC 1122 §3.2.2.6), and sends everything off the WAN link to the configured
//! gateway. The kernel in the router's namespace must not hold the same addresses (it would
//! answer ARP too and reset TCP connections it does not know): [`Router::open`] refuses to
//! start when it does.
//!
//! Per batch: take a ready ring block from each socket, translate each frame in place, copy it
//! into the other side's transmit batch with fresh Ethernet addresses, then `sendmmsg` the
//! batches. Between batches: engine timers, ARP retries, packets the engine made itself.

pub mod neighbours;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant as WallInstant;

use anyhow::{Context, bail};
use natpass_config::Link;
use natpass_control::interface::{self, EventLog, InterfaceInfo, Mailbox, PlaneInfo};
use natpass_engine::{Engine, EngineConfig, Event, Instant, Side, Verdict};
use natpass_io::afpacket::{FrameInfo, PacketSocket, RingOptions, TxBatch, VnetHdr};
use natpass_wire::{arp, checksum, ethernet, icmp, ipv4::Ipv4Packet, tcp::TcpPacket, udp::UdpPacket};
use neighbours::{Lookup, Neighbours};

const BROADCAST: [u8; 6] = [0xff; 6];
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Counters of the link layer (the engine keeps its own).
#[derive(Clone, Debug, Default)]
pub struct LinkStats {
    /// Frames received per side.
    pub rx_frames: [u64; 2],
    /// Frames sent per side.
    pub tx_frames: [u64; 2],
    /// Frames the kernel would not take (queue full).
    pub tx_dropped: [u64; 2],
    /// ARP requests for our addresses answered.
    pub arp_answered: u64,
    /// ARP requests we sent.
    pub arp_requests: u64,
    /// Pings to the router answered.
    pub pings_answered: u64,
    /// Frames neither IPv4 nor ARP (IPv6, LLDP, ...), ignored.
    pub not_ipv4: u64,
    /// Frames for another MAC address (flooded by a switch), ignored.
    pub not_for_us: u64,
    /// Frames larger than the link MTU: GSO/TSO super-frames from a sender with offloads on.
    pub oversize: u64,
    /// 802.1Q-tagged frames (natpass runs on untagged links).
    pub vlan_tagged: u64,
    /// Packets that had no route (a LAN destination off the LAN link, no WAN gateway).
    pub no_route: u64,
    /// Segmentation-offload super-frames translated whole.
    pub gso_frames: u64,
}

struct Port {
    link: Link,
    mac: [u8; 6],
    mtu: usize,
    neighbours: Neighbours,
    tx: TxBatch,
}

/// The data plane of `natpass run`.
pub struct Router {
    sockets: [PacketSocket; 2],
    plane: Plane,
}

/// Everything but the sockets, so a ring block can be borrowed while frames are handled.
struct Plane {
    ports: [Port; 2],
    engine: Engine,
    /// Extra public addresses natpass answers ARP for on the WAN.
    public: Vec<u32>,
    start: WallInstant,
    stats: LinkStats,
    log_events: bool,
    events: EventLog,
    mailbox: Option<Mailbox>,
}

fn now_ns(start: WallInstant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Router {
    /// Opens both interfaces and the engine. Refuses to start when the kernel holds one of the
    /// addresses natpass owns on that interface.
    pub fn open(
        lan: Link,
        wan: Link,
        mut config: EngineConfig,
        rx_ring: natpass_config::RxRing,
    ) -> anyhow::Result<Self> {
        for (l, owned) in [(&lan, vec![lan.addr]), (&wan, config.public_addrs.clone())] {
            let kernel = natpass_io::afpacket::kernel_ipv4_addrs(&l.name)
                .with_context(|| format!("reading the addresses of {}", l.name))?;
            if let Some(a) = kernel.iter().find(|a| owned.contains(a)) {
                bail!(
                    "the kernel has {a} on {}: it would answer ARP and reset connections for natpass. \
                     Remove it with `ip addr del {a}/{} dev {}` (natpass owns that address)",
                    l.name,
                    l.net.len(),
                    l.name
                );
            }
        }
        let version = match rx_ring {
            natpass_config::RxRing::V3 => natpass_io::afpacket::RingVersion::V3,
            natpass_config::RxRing::V2 => natpass_io::afpacket::RingVersion::V2,
        };
        let opts = RingOptions { version, ..RingOptions::default() };
        let lan_sock = PacketSocket::open(&lan.name, opts)?;
        let wan_sock = PacketSocket::open(&wan.name, opts)?;
        if config.seed == EngineConfig::default().seed {
            config.seed = random_seed();
        }
        let params = |s: &PacketSocket| LinkParams { mac: s.mac(), mtu: s.mtu(), vnet_hdr: s.vnet_hdr() };
        let plane = Plane::new([(lan, params(&lan_sock)), (wan, params(&wan_sock))], config)?;
        Ok(Self { sockets: [lan_sock, wan_sock], plane })
    }

    /// The engine, for status and counters.
    pub fn engine(&self) -> &Engine {
        &self.plane.engine
    }

    /// The engine, to change switches while running.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.plane.engine
    }

    /// Link-layer counters.
    pub fn link_stats(&self) -> &LinkStats {
        &self.plane.stats
    }

    /// Answers the control plane's commands from this mailbox, between batches.
    pub fn set_mailbox(&mut self, mailbox: Mailbox) {
        self.plane.mailbox = Some(mailbox);
    }

    /// Whether engine events are written to stderr as they happen (default: yes).
    pub fn set_log_events(&mut self, on: bool) {
        self.plane.log_events = on;
    }

    /// Runs until `stop` is set (by a signal handler), then returns.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut next_housekeeping = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            for side in [Side::Lan, Side::Wan] {
                // A few blocks per side per round keeps both directions moving under load.
                for _ in 0..4 {
                    if !self.receive_block(side) {
                        break;
                    }
                    busy = true;
                }
            }
            let now = now_ns(self.plane.start);
            // What the engine made itself goes out with this round's batch; timers and ARP
            // retries need only a look every 10 ms.
            self.plane.drain_engine(now);
            if now >= next_housekeeping {
                self.plane.timers(now);
                next_housekeeping = now + 10_000_000;
            }
            self.plane.serve_control(now);
            self.flush();
            if !busy {
                let until_timer = self
                    .plane
                    .engine
                    .poll_timeout()
                    .map_or(100, |t| (t.as_nanos().saturating_sub(now) / 1_000_000).clamp(0, 100) as i32);
                let [a, b] = &self.sockets;
                PacketSocket::wait(&[a, b], until_timer.min(10))?;
            }
        }
        Ok(())
    }

    fn receive_block(&mut self, side: Side) -> bool {
        let sock = &mut self.sockets[side as usize];
        if !sock.ready() {
            return false;
        }
        let plane = &mut self.plane;
        let now = now_ns(plane.start);
        sock.receive(|frame, info| plane.handle_frame(now, side, frame, info));
        true
    }

    fn flush(&mut self) {
        for i in 0..2 {
            let port = &mut self.plane.ports[i];
            let n = port.tx.len();
            if n > 0 {
                let sent = self.sockets[i].send(&mut port.tx);
                self.plane.stats.tx_frames[i] += sent as u64;
                self.plane.stats.tx_dropped[i] += (n - sent) as u64;
            }
        }
    }

    /// A short report of counters, for the log at exit.
    pub fn summary(&self) -> String {
        self.plane.summary()
    }
}

/// What the data plane needs of an interface besides its [`Link`].
#[derive(Clone, Copy, Debug)]
struct LinkParams {
    mac: [u8; 6],
    mtu: usize,
    vnet_hdr: bool,
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Plane {
    /// The data plane for the LAN and WAN links (in that order), without sockets.
    fn new(links: [(Link, LinkParams); 2], config: EngineConfig) -> anyhow::Result<Self> {
        let public = config.public_addrs.iter().map(|a| u32::from(*a)).collect();
        let engine = Engine::new(config, Instant::ZERO).map_err(|e| anyhow::anyhow!("{e}"))?;
        let [(lan, l), (wan, w)] = links;
        let port = |link: Link, p: LinkParams| Port {
            link,
            mac: p.mac,
            mtu: p.mtu,
            neighbours: Neighbours::new(),
            tx: TxBatch::with_vnet_hdr(p.vnet_hdr),
        };
        Ok(Self {
            ports: [port(lan, l), port(wan, w)],
            engine,
            public,
            start: WallInstant::now(),
            stats: LinkStats::default(),
            log_events: true,
            events: EventLog::default(),
            mailbox: None,
        })
    }

    fn info(&self, now: u64) -> PlaneInfo {
        let l = &self.stats;
        let iface = |i: usize, role: &'static str| {
            let p = &self.ports[i];
            InterfaceInfo {
                role,
                name: p.link.name.clone(),
                address: format!("{}/{}", p.link.addr, p.link.net.len()),
                mac: mac_text(p.mac),
                rx_frames: l.rx_frames[i],
                tx_frames: l.tx_frames[i],
            }
        };
        PlaneInfo {
            uptime_secs: now / 1_000_000_000,
            interfaces: vec![iface(0, "lan"), iface(1, "wan")],
            link_counters: vec![
                ("arp_answered", l.arp_answered),
                ("arp_requests", l.arp_requests),
                ("arp_unresolved", self.ports[0].neighbours.unresolved + self.ports[1].neighbours.unresolved),
                ("arp_queue_full", self.ports[0].neighbours.queue_full + self.ports[1].neighbours.queue_full),
                ("pings_answered", l.pings_answered),
                ("oversize_frames", l.oversize),
                ("tx_queue_full", l.tx_dropped[0] + l.tx_dropped[1]),
                ("not_ipv4", l.not_ipv4),
                ("vlan_tagged", l.vlan_tagged),
                ("no_route", l.no_route),
                ("gso_frames", l.gso_frames),
            ],
        }
    }

    fn serve_control(&mut self, now: u64) {
        let Some(mb) = self.mailbox.take() else { return };
        let t = Instant::from_nanos(now);
        mb.serve(|cmd| {
            let info = self.info(now);
            interface::answer(&mut self.engine, &info, &mut self.events, t, cmd)
        });
        self.mailbox = Some(mb);
    }

    fn handle_frame(&mut self, now: u64, side: Side, frame: &mut [u8], info: FrameInfo) {
        let i = side as usize;
        self.stats.rx_frames[i] += 1;
        if info.outgoing {
            return;
        }
        if info.vlan_stripped {
            self.stats.vlan_tagged += 1;
            return;
        }
        let Ok(eth) = ethernet::EthernetFrame::new_checked(&*frame) else {
            self.stats.not_ipv4 += 1;
            return;
        };
        let (dst, ethertype, hl) = (eth.dst(), eth.ethertype(), eth.header_len());
        match ethertype {
            ethernet::ethertype::ARP => self.handle_arp(now, side, &frame[hl..]),
            ethernet::ethertype::IPV4 if hl == ethernet::HEADER_LEN => {
                if dst != self.ports[i].mac {
                    self.stats.not_for_us += 1;
                    return;
                }
                // A segmentation-offload super-frame (PACKET_VNET_HDR) is translated whole and
                // handed back to the kernel to cut up; any other frame must fit the MTU.
                let gso = info.vnet.filter(VnetHdr::is_gso);
                if frame.len() - hl > self.ports[i].mtu && gso.is_none() {
                    self.stats.oversize += 1;
                    return;
                }
                let ip = &mut frame[hl..];
                if info.csum_not_ready || info.vnet.is_some_and(|v| v.flags & VnetHdr::NEEDS_CSUM != 0) {
                    complete_l4_checksum(ip);
                }
                if gso.is_none() && self.answer_ping(side, ip) {
                    return;
                }
                let t = Instant::from_nanos(now);
                let verdict = match gso.and_then(|g| segment_len(ip, g.gso_size)) {
                    Some(seg) => {
                        self.stats.gso_frames += 1;
                        self.engine.process_segmented(t, side, ip, seg)
                    }
                    None if gso.is_some() => {
                        self.stats.oversize += 1;
                        return;
                    }
                    None => self.engine.process(t, side, ip),
                };
                match verdict {
                    Verdict::Forward(out) => self.send_ip(now, out, ip, gso),
                    Verdict::Consumed | Verdict::Drop(_) => {}
                }
            }
            ethernet::ethertype::VLAN | ethernet::ethertype::QINQ => self.stats.vlan_tagged += 1,
            _ => self.stats.not_ipv4 += 1,
        }
    }

    /// True when `ip` is ours on `side`.
    fn owns(&self, side: Side, ip: u32) -> bool {
        match side {
            Side::Lan => ip == u32::from(self.ports[0].link.addr),
            Side::Wan => self.public.contains(&ip),
        }
    }

    fn handle_arp(&mut self, now: u64, side: Side, body: &[u8]) {
        let i = side as usize;
        let Ok(a) = arp::ArpPacket::new_checked(body) else {
            self.stats.not_ipv4 += 1;
            return;
        };
        let (op, sha, spa, tpa) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip());
        if !self.ports[i].link.net.contains(spa) || sha == BROADCAST || sha[0] & 1 == 1 {
            return;
        }
        let released = if self.owns(side, tpa) {
            self.ports[i].neighbours.learn(now, spa, sha)
        } else {
            self.ports[i].neighbours.refresh(now, spa, sha)
        };
        for p in released {
            self.emit_ip(side, sha, &p, None);
        }
        if op == arp::REQUEST && self.owns(side, tpa) {
            let mac = self.ports[i].mac;
            self.ports[i].tx.push_with(ethernet::HEADER_LEN + arp::PACKET_LEN, |b| {
                ethernet::emit_header(b, sha, mac, ethernet::ethertype::ARP);
                arp::emit(&mut b[ethernet::HEADER_LEN..], arp::REPLY, mac, tpa, sha, spa);
            });
            self.stats.arp_answered += 1;
        }
    }

    /// Answers an ICMP echo request to one of the router's own addresses.
    fn answer_ping(&mut self, side: Side, ip: &mut [u8]) -> bool {
        let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) else { return false };
        let (src, dst) = (p.src(), p.dst());
        if p.protocol() != PROTO_ICMP || p.is_fragment() || !self.owns(side, dst) {
            return false;
        }
        let hl = p.header_len();
        let body = p.payload_mut();
        if body.len() < 8 || body[0] != icmp::kind::ECHO_REQUEST || body[1] != 0 {
            return false;
        }
        body[0] = icmp::kind::ECHO_REPLY;
        let check = u16::from_be_bytes([body[2], body[3]]);
        let new = checksum::update_u16(
            check,
            u16::from(icmp::kind::ECHO_REQUEST) << 8,
            u16::from(icmp::kind::ECHO_REPLY) << 8,
        );
        body[2..4].copy_from_slice(&new.to_be_bytes());
        let total = usize::from(p.total_len());
        let b = p.as_mut_bytes();
        b[12..16].copy_from_slice(&dst.to_be_bytes());
        b[16..20].copy_from_slice(&src.to_be_bytes());
        b[8] = 64;
        let mut hdr = Ipv4Packet::new_unchecked(&mut b[..total.max(hl)]);
        hdr.fill_checksum();
        self.stats.pings_answered += 1;
        let now = now_ns(self.start);
        let copy = ip[..total.min(ip.len())].to_vec();
        self.send_ip(now, side, &copy, None);
        true
    }

    /// Sends an IPv4 packet out of `side`, resolving its next hop; `gso` when it is a
    /// super-packet for the kernel to cut up.
    fn send_ip(&mut self, now: u64, side: Side, ip: &[u8], gso: Option<VnetHdr>) {
        let i = side as usize;
        let Ok(p) = Ipv4Packet::new_checked(ip) else { return };
        let dst = p.dst();
        let len = usize::from(p.total_len()).min(ip.len());
        let port = &mut self.ports[i];
        let hop = if port.link.net.contains(dst) {
            dst
        } else if let (Side::Wan, Some(g)) = (side, port.link.gateway) {
            u32::from(g)
        } else {
            self.stats.no_route += 1;
            return;
        };
        match port.neighbours.lookup(now, hop, &ip[..len]) {
            Lookup::Known(mac) => self.emit_ip(side, mac, &ip[..len], gso),
            Lookup::Queued { request: true } => self.send_arp_request(side, hop),
            Lookup::Queued { request: false } | Lookup::Dropped => {}
        }
    }

    fn emit_ip(&mut self, side: Side, dst_mac: [u8; 6], ip: &[u8], gso: Option<VnetHdr>) {
        let port = &mut self.ports[side as usize];
        let mac = port.mac;
        let Some(g) = gso.and_then(|g| offload_request(ip, g)) else {
            if ip.len() > port.mtu {
                // A super-packet that waited for ARP lost its offload request: too big to send.
                self.stats.oversize += 1;
                return;
            }
            port.tx.push_with(ethernet::HEADER_LEN + ip.len(), |b| {
                ethernet::emit_header(b, dst_mac, mac, ethernet::ethertype::IPV4);
                b[ethernet::HEADER_LEN..].copy_from_slice(ip);
            });
            return;
        };
        port.tx.push_offloaded(g, ethernet::HEADER_LEN + ip.len(), |b| {
            ethernet::emit_header(b, dst_mac, mac, ethernet::ethertype::IPV4);
            b[ethernet::HEADER_LEN..].copy_from_slice(ip);
            partial_l4_checksum(&mut b[ethernet::HEADER_LEN..]);
        });
    }

    fn send_arp_request(&mut self, side: Side, ip: u32) {
        let port = &mut self.ports[side as usize];
        let (mac, own) = (port.mac, u32::from(port.link.addr));
        port.tx.push_with(ethernet::HEADER_LEN + arp::PACKET_LEN, |b| {
            ethernet::emit_header(b, BROADCAST, mac, ethernet::ethertype::ARP);
            arp::emit(&mut b[ethernet::HEADER_LEN..], arp::REQUEST, mac, own, [0; 6], ip);
        });
        self.stats.arp_requests += 1;
    }

    /// Engine timers and ARP retries due by `now`.
    fn timers(&mut self, now: u64) {
        let t = Instant::from_nanos(now);
        if self.engine.poll_timeout().is_some_and(|d| d <= t) {
            self.engine.handle_timeout(t);
        }
        for side in [Side::Lan, Side::Wan] {
            for ip in self.ports[side as usize].neighbours.poll(now) {
                self.send_arp_request(side, ip);
            }
        }
        self.drain_engine(now);
    }

    /// Packets the engine made itself (ICMP errors, fragments) and its events.
    fn drain_engine(&mut self, now: u64) {
        while let Some(tx) = self.engine.poll_transmit() {
            self.send_ip(now, tx.side, &tx.packet, None);
        }
        while let Some(ev) = self.engine.poll_event() {
            self.events.record(now / 1_000_000_000, &ev);
            if self.log_events {
                eprintln!("natpass: {}", describe_event(&ev));
            }
        }
    }

    fn summary(&self) -> String {
        let s = self.engine.stats();
        let l = &self.stats;
        let mut out = format!(
            "lan: rx {} tx {} | wan: rx {} tx {} | forwarded lan→wan {} wan→lan {} | sessions {} | arp answered {} asked {} | pings {}",
            l.rx_frames[0],
            l.tx_frames[0],
            l.rx_frames[1],
            l.tx_frames[1],
            s.forwarded[1],
            s.forwarded[0],
            self.engine.session_count(),
            l.arp_answered,
            l.arp_requests,
            l.pings_answered,
        );
        for (r, n) in s.drops_by_reason() {
            if n > 0 {
                out.push_str(&format!("\n  dropped {n}: {r}"));
            }
        }
        for (what, n) in [
            ("oversize frames (turn off TSO/GSO on the peers)", l.oversize),
            ("ARP unresolved", self.ports[0].neighbours.unresolved + self.ports[1].neighbours.unresolved),
            ("transmit queue full", l.tx_dropped[0] + l.tx_dropped[1]),
            ("no route", l.no_route),
        ] {
            if n > 0 {
                out.push_str(&format!("\n  dropped {n}: {what}"));
            }
        }
        out
    }
}

/// The IP length of the segments a TCP or UDP super-packet is cut into (`gso_size` bytes of
/// payload each), or `None` for anything else.
fn segment_len(ip: &[u8], gso_size: u16) -> Option<u16> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    let hl = p.header_len();
    let l4 = match p.protocol() {
        PROTO_TCP => usize::from(ip.get(hl + 12)? >> 4) * 4,
        PROTO_UDP => 8,
        _ => return None,
    };
    u16::try_from(hl + l4 + usize::from(gso_size)).ok().filter(|_| gso_size > 0 && !p.is_fragment())
}

/// The offload request for sending the super-packet `ip` (after translation): the kernel
/// finishes the checksum and cuts it into `gso_size`-byte segments.
fn offload_request(ip: &[u8], g: VnetHdr) -> Option<VnetHdr> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    let hl = p.header_len();
    let (l4, csum_offset) = match p.protocol() {
        PROTO_TCP => (usize::from(ip.get(hl + 12)? >> 4) * 4, 16),
        PROTO_UDP => (8, 6),
        _ => return None,
    };
    let eth = ethernet::HEADER_LEN;
    Some(VnetHdr {
        flags: VnetHdr::NEEDS_CSUM,
        gso_type: g.gso_type,
        hdr_len: u16::try_from(eth + hl + l4).ok()?,
        gso_size: g.gso_size,
        csum_start: u16::try_from(eth + hl).ok()?,
        csum_offset,
    })
}

/// Leaves in the TCP/UDP checksum field what the kernel expects with NEEDS_CSUM: the folded
/// pseudo-header sum, not complemented (the kernel adds the rest and complements).
fn partial_l4_checksum(ip: &mut [u8]) {
    let Ok(p) = Ipv4Packet::new_checked(&*ip) else { return };
    let (hl, proto) = (p.header_len(), p.protocol());
    let partial = checksum::fold(p.pseudo_header_sum());
    let at = hl + if proto == PROTO_TCP { 16 } else { 6 };
    if let Some(f) = ip.get_mut(at..at + 2) {
        f.copy_from_slice(&partial.to_be_bytes());
    }
}

/// Writes the TCP or UDP checksum a sender left to offload (TP_STATUS_CSUMNOTREADY).
fn complete_l4_checksum(ip: &mut [u8]) {
    let Ok(p) = Ipv4Packet::new_checked(&*ip) else { return };
    if p.is_fragment() && p.frag_offset() != 0 {
        return;
    }
    let (proto, hl, total, pseudo) = (p.protocol(), p.header_len(), usize::from(p.total_len()), p.pseudo_header_sum());
    let Some(l4) = ip.get_mut(hl..total) else { return };
    match proto {
        PROTO_TCP => {
            if let Ok(mut t) = TcpPacket::new_checked(l4) {
                t.fill_checksum(pseudo);
            }
        }
        PROTO_UDP => {
            if let Ok(mut u) = UdpPacket::new_checked(l4) {
                u.fill_checksum(pseudo);
            }
        }
        _ => {}
    }
}

fn ip4(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// One log line for an engine event.
pub fn describe_event(ev: &Event) -> String {
    match ev {
        Event::SessionRefused { lan_ip, reason } => format!("session refused for {}: {reason}", ip4(*lan_ip)),
        Event::TunnelUp { protocol, client, server, public, ids } => {
            format!("{protocol:?} tunnel up: {} → {} as {} ({ids:?})", ip4(*client), ip4(*server), ip4(*public))
        }
        Event::TunnelDown { protocol, client, server, ids, bytes_out, bytes_in } => format!(
            "{protocol:?} tunnel down: {} → {} ({ids:?}), {bytes_out} B out, {bytes_in} B in",
            ip4(*client),
            ip4(*server)
        ),
        Event::PassthroughRefused { protocol, client, server, reason } => {
            format!("{protocol:?} refused: {} → {}: {reason}", ip4(*client), ip4(*server))
        }
        other => format!("{other:?}"),
    }
}

/// Random bytes for the port randomisation seed, from the kernel.
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    natpass_control::auth::fill_random(&mut b);
    u64::from_ne_bytes(b) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 2, 1];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 1, 10];
    const GW_MAC: [u8; 6] = [2, 0, 0, 0, 2, 254];

    fn plane(vnet_hdr: bool) -> Plane {
        let c = natpass_config::parse_config(
            "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"\n",
        )
        .unwrap();
        let (lan, wan) = c.links.unwrap();
        let p = |mac| LinkParams { mac, mtu: 1500, vnet_hdr };
        let mut pl = Plane::new([(lan, p(LAN_MAC)), (wan, p(WAN_MAC))], c.engine).unwrap();
        pl.log_events = false;
        pl
    }

    fn info() -> FrameInfo {
        FrameInfo { wire_len: 0, csum_not_ready: false, vlan_stripped: false, outgoing: false, vnet: None }
    }

    fn arp_frame(op: u16, dst: [u8; 6], sha: [u8; 6], spa: u32, tpa: u32) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 28];
        ethernet::emit_header(&mut f, dst, sha, ethernet::ethertype::ARP);
        arp::emit(&mut f[14..], op, sha, spa, [0; 6], tpa);
        f
    }

    fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: u32, dst: u32) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 28 + 4];
        ethernet::emit_header(&mut f, dst_mac, src_mac, ethernet::ethertype::IPV4);
        natpass_wire::ipv4::emit_header(&mut f[14..], 32, 7, 64, PROTO_UDP, src, dst);
        f[34..36].copy_from_slice(&5353u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&12u16.to_be_bytes());
        complete_l4_checksum(&mut f[14..]);
        f
    }

    fn sent(p: &Plane, side: Side) -> Vec<Vec<u8>> {
        p.ports[side as usize].tx.frames().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn arp_for_our_address_is_answered() {
        let mut p = plane(false);
        let mut f = arp_frame(arp::REQUEST, BROADCAST, CLIENT_MAC, 0xc0a8_010a, 0xc0a8_0101);
        p.handle_frame(0, Side::Lan, &mut f, info());
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 1);
        let r = arp::ArpPacket::new_checked(&out[0][14..]).unwrap();
        assert_eq!(&out[0][..6], &CLIENT_MAC);
        assert_eq!(
            (r.operation(), r.sender_mac(), r.sender_ip(), r.target_ip()),
            (arp::REPLY, LAN_MAC, 0xc0a8_0101, 0xc0a8_010a)
        );
        // A request for another address is not ours to answer.
        let mut f = arp_frame(arp::REQUEST, BROADCAST, CLIENT_MAC, 0xc0a8_010a, 0xc0a8_0102);
        p.handle_frame(0, Side::Lan, &mut f, info());
        assert_eq!(sent(&p, Side::Lan).len(), 1);
    }

    #[test]
    fn a_lan_packet_waits_for_the_gateway_then_leaves_translated() {
        for vnet in [false, true] {
            let mut p = plane(vnet);
            let lead = if vnet { VnetHdr::LEN } else { 0 };
            let mut f = udp_frame(LAN_MAC, CLIENT_MAC, 0xc0a8_010a, 0xc633_6407);
            p.handle_frame(0, Side::Lan, &mut f, info());
            // First an ARP request for the gateway, broadcast on the WAN.
            let out = sent(&p, Side::Wan);
            assert_eq!(out.len(), 1);
            let req = arp::ArpPacket::new_checked(&out[0][lead + 14..]).unwrap();
            assert_eq!((req.operation(), req.target_ip(), req.sender_ip()), (arp::REQUEST, 0xcb00_71fe, 0xcb00_7101));
            // The gateway answers; the queued packet leaves, translated, to its MAC.
            let mut r = arp_frame(arp::REPLY, WAN_MAC, GW_MAC, 0xcb00_71fe, 0xcb00_7101);
            p.handle_frame(1, Side::Wan, &mut r, info());
            let out = sent(&p, Side::Wan);
            assert_eq!(out.len(), 2);
            let frame = &out[1][lead..];
            assert_eq!((&frame[..6], &frame[6..12]), (&GW_MAC[..], &WAN_MAC[..]));
            let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
            assert_eq!(ip.src(), 0xcb00_7101);
            assert!(ip.verify_checksum());
        }
    }

    #[test]
    fn pings_to_the_router_are_answered_and_frames_for_others_ignored() {
        let mut p = plane(false);
        let mut f = vec![0u8; 14 + 28];
        ethernet::emit_header(&mut f, LAN_MAC, CLIENT_MAC, ethernet::ethertype::IPV4);
        natpass_wire::ipv4::emit_header(&mut f[14..], 28, 1, 64, PROTO_ICMP, 0xc0a8_010a, 0xc0a8_0101);
        f[34] = icmp::kind::ECHO_REQUEST;
        f[38..42].copy_from_slice(&[0x12, 0x34, 0, 1]);
        let c = checksum::checksum(&f[34..]);
        f[36..38].copy_from_slice(&c.to_be_bytes());
        // The client is known once it asked for our MAC.
        let mut a = arp_frame(arp::REQUEST, BROADCAST, CLIENT_MAC, 0xc0a8_010a, 0xc0a8_0101);
        p.handle_frame(0, Side::Lan, &mut a, info());
        p.handle_frame(0, Side::Lan, &mut f, info());
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 2, "an ARP reply and an echo reply");
        assert_eq!(out[1][34], icmp::kind::ECHO_REPLY);
        assert_eq!(checksum::checksum(&out[1][34..]), 0);
        assert_eq!(p.stats.pings_answered, 1);
        let mut other = udp_frame([2, 9, 9, 9, 9, 9], CLIENT_MAC, 0xc0a8_010a, 0xc633_6407);
        p.handle_frame(0, Side::Lan, &mut other, info());
        assert_eq!(p.stats.not_for_us, 1);
    }

    proptest! {
        /// Whatever arrives, nothing panics (the link layer's own parsing; the engine has its
        /// fuzz target).
        #[test]
        fn arbitrary_frames_never_panic(
            kind in 0u8..4,
            body in proptest::collection::vec(any::<u8>(), 0..200),
            wan in any::<bool>(),
            vnet in proptest::option::of((any::<u8>(), any::<u8>(), any::<u16>())),
            csum in any::<bool>(),
        ) {
            let mut p = plane(vnet.is_some());
            let side = if wan { Side::Wan } else { Side::Lan };
            let mac = if wan { WAN_MAC } else { LAN_MAC };
            let mut f = match kind {
                0 => body,
                k => {
                    let et = [ethernet::ethertype::IPV4, ethernet::ethertype::ARP, ethernet::ethertype::VLAN][usize::from(k - 1)];
                    let mut f = vec![0u8; 14];
                    ethernet::emit_header(&mut f, if k == 2 { BROADCAST } else { mac }, CLIENT_MAC, et);
                    f.extend_from_slice(&body);
                    f
                }
            };
            let mut i = info();
            i.csum_not_ready = csum;
            i.vnet = vnet.map(|(flags, gso_type, gso_size)| VnetHdr { flags, gso_type, gso_size, ..VnetHdr::default() });
            p.handle_frame(0, side, &mut f, i);
        }
    }

    /// A TCP/IPv4 packet with `payload` bytes of data, checksums complete.
    fn tcp_packet(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + payload];
        let total = p.len() as u16;
        ipv4_header(&mut p, total, PROTO_TCP);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = 0x10;
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        complete_l4_checksum(&mut p);
        p
    }

    fn ipv4_header(p: &mut [u8], total: u16, proto: u8) {
        natpass_wire::ipv4::emit_header(p, total, 1, 64, proto, 0xc0a8_010a, 0xc633_6401);
    }

    fn l4_checksum_ok(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        checksum::fold(checksum::sum(ip.pseudo_header_sum(), ip.payload())) == 0xffff
    }

    #[test]
    fn segment_len_is_headers_plus_gso_size() {
        assert_eq!(segment_len(&tcp_packet(60_000), 1448), Some(1488));
        let mut udp = vec![0u8; 28 + 9000];
        let n = udp.len() as u16;
        ipv4_header(&mut udp, n, PROTO_UDP);
        assert_eq!(segment_len(&udp, 1472), Some(1500));
        assert_eq!(segment_len(&tcp_packet(10), 0), None);
    }

    #[test]
    fn the_partial_checksum_is_what_the_kernel_finishes() {
        let mut p = tcp_packet(3000);
        assert!(l4_checksum_ok(&p));
        let g = offload_request(&p, VnetHdr { gso_type: VnetHdr::GSO_TCPV4, gso_size: 1448, ..VnetHdr::default() })
            .unwrap();
        assert_eq!((g.flags, g.csum_start, g.csum_offset, g.hdr_len), (VnetHdr::NEEDS_CSUM, 34, 16, 54));
        partial_l4_checksum(&mut p);
        assert!(!l4_checksum_ok(&p), "the field holds the pseudo-header sum only");
        // What the kernel does with NEEDS_CSUM: sum from csum_start to the end, complement,
        // store at csum_start + csum_offset.
        let start = usize::from(g.csum_start) - ethernet::HEADER_LEN;
        let c = !checksum::fold(checksum::sum(0, &p[start..]));
        let at = start + usize::from(g.csum_offset);
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
        assert!(l4_checksum_ok(&p));
    }
}
