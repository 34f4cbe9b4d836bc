//! `natpass run`: the engine on two Linux interfaces through AF_XDP or AF_PACKET sockets.
//!
//! The link layer (ARP and the neighbour cache, pings to the router, offloads) is the
//! `natpass-link` crate's [`Plane`], one for both backends; this module drives it with either
//! backend (`[interfaces] backend`): AF_PACKET (`afpacket`: a TPACKET ring and `sendmmsg`)
//! or AF_XDP (`afxdp`: one UMEM for both interfaces, frames sent from where they arrived).
//! natpass owns its
//! addresses at layer 2, so the kernel in the router's namespace must not hold the same
//! addresses (it would answer ARP too and reset TCP connections it does not know):
//! [`Router::open`] refuses to start when it does.
//!
//! Per round: take ready frames from each socket, have the plane translate each frame in
//! place and queue it on the other side (AF_PACKET: copied into a `sendmmsg` batch; AF_XDP:
//! its UMEM address on the other socket's TX ring), then send. Between rounds: packets the
//! engine made itself, the control plane's commands, and every 10 ms the engine's timers and
//! ARP retries. AF_XDP spins while frames come and for [`XDP_SPIN_NS`] after the last one,
//! then sleeps in poll(2): no fixed batching delay.

mod afpacket;
mod afxdp;
mod offload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant as WallInstant;

use anyhow::{Context, bail};
use natpass_config::{Backend, Link, RouterAdvertising, RxRing};
use natpass_control::api::InterfaceInfo;
use natpass_control::capture::{Direction, Tap};
use natpass_control::interface::{self, Answer, Command, EventLog, Mailbox, PlaneInfo};
use natpass_engine::{Engine, EngineConfig, Event, Instant, Side};
use natpass_io::afpacket::{PacketSocket, RingOptions, TxBatch};
use natpass_io::afxdp::{self as xdp, Disposition, XdpOptions, XdpPair};
use natpass_link::{Advertising, FrameSink, LinkConfig, LinkStats, Plane, PortConfig, PortV6, TxOffload};
use tracing::{info, warn};

use crate::logging::Sampler;

/// How often the engine's timers and ARP retries are looked at.
const HOUSEKEEPING_NS: u64 = 10_000_000;
/// AF_XDP: how long the loop keeps spinning after the last frame before it sleeps in poll(2).
pub const XDP_SPIN_NS: u64 = 50_000;
/// The most session-table memory written at start ([`Engine::prefault_memory`]): enough for
/// `max_sessions` up to 14 680 064 (16 M buckets per index, 160 MiB).
const PREFAULT_BUDGET: usize = 256 << 20;

/// How `natpass run` reaches its interfaces (`[interfaces]`).
#[derive(Clone, Copy, Debug, Default)]
pub struct IoOptions {
    /// AF_PACKET, AF_XDP, or AF_XDP where the kernel allows it.
    pub backend: Backend,
    /// AF_PACKET's receive ring.
    pub rx_ring: RxRing,
    /// AF_XDP busy polling.
    pub busy_poll: bool,
    /// The kernel fast path for established flows.
    pub fast_path: bool,
}

/// The sockets of one backend.
// One per router, made once and never moved in the loop: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Io {
    Packet([PacketSocket; 2]),
    Xdp(XdpPair),
}

/// One side's transmit queue, of either backend.
pub(crate) enum Sink {
    Packet(afpacket::Tx),
    Xdp(afxdp::Tx),
}

impl FrameSink for Sink {
    fn push(&mut self, len: usize, offload: Option<TxOffload>, fill: impl FnOnce(&mut [u8])) {
        match self {
            Sink::Packet(t) => t.push(len, offload, fill),
            Sink::Xdp(t) => t.push(len, offload, fill),
        }
    }

    fn push_in_place(&mut self, frame: &[u8], offload: Option<TxOffload>) {
        match self {
            Sink::Packet(t) => t.push_in_place(frame, offload),
            Sink::Xdp(t) => t.push_in_place(frame, offload),
        }
    }
}

impl Sink {
    /// AF_XDP: true once after the frame being handled was queued from its own chunk.
    fn take_sent_received(&mut self) -> bool {
        match self {
            Sink::Packet(_) => false,
            Sink::Xdp(t) => t.0.take_sent_received(),
        }
    }
}

/// The data plane of `natpass run`.
pub struct Router {
    io: Io,
    plane: Plane<Sink>,
    /// Interface names, LAN then WAN.
    names: [String; 2],
    start: WallInstant,
    log_events: bool,
    /// Refusals are counted by the engine; only a sample of them is logged.
    refusals: Sampler,
    events: EventLog,
    mailbox: Option<Mailbox>,
    busy_poll: bool,
    /// `natpass capture`: frames copied as they arrive and leave, while one runs.
    capture: Option<Tap>,
    captures: u64,
    /// The kernel fast path and the flows handed to it, when on.
    offload: Option<offload::Offloader>,
    /// Turned back on when the router is dropped.
    _offloads: OffloadsTurnedOff,
}

fn port(link: &Link, mac: [u8; 6], mtu: usize) -> PortConfig {
    let v6 = link.v6.as_ref().map(|v6| PortV6 { addr: v6.addr, prefix: v6.prefix });
    PortConfig { mac, mtu, addr: link.addr, net: link.net, v6 }
}

/// The link layer's settings for two ports: the gateways and the LAN's Router Advertisements.
fn link_config(lan: PortConfig, wan: PortConfig, wan_link: &Link, ra: Option<&RouterAdvertising>) -> LinkConfig {
    LinkConfig {
        lan,
        wan,
        gateway: wan_link.gateway,
        gateway6: wan_link.v6.as_ref().and_then(|v6| v6.gateway),
        ra: ra.map(|r| Advertising { interval: r.interval, lifetime: r.lifetime, dns: r.dns.clone() }),
    }
}

/// The IPv6 addresses the kernel holds on `iface` (`/proc/net/if_inet6`: 32 hex digits, then
/// the index, prefix length, scope, flags and name).
fn kernel_ipv6_addrs(iface: &str) -> Vec<std::net::Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let hex = f.next()?;
            (f.nth(4)? == iface).then_some(())?;
            u128::from_str_radix(hex, 16).ok().map(std::net::Ipv6Addr::from_bits)
        })
        .collect()
}

/// Receive offloads natpass turned off, turned back on when dropped: when natpass stops, or
/// when AF_XDP could not be opened after all. (After a SIGKILL they stay off.)
#[derive(Default)]
struct OffloadsTurnedOff(Vec<(String, xdp::ReceiveOffloads)>);

impl Drop for OffloadsTurnedOff {
    fn drop(&mut self) {
        for (name, was) in self.0.drain(..) {
            match xdp::set_receive_offloads(&name, was) {
                Ok(_) => info!("{name}: GRO/LRO as they were before natpass"),
                Err(e) => warn!("{name}: GRO/LRO could not be turned back on: {e}"),
            }
        }
    }
}

/// Why `backend = "auto"` takes AF_PACKET on interfaces with these drivers, if it does.
///
/// A veth with an XDP program attached turns its peer's GSO off (`veth_fix_features`), so a
/// local sender's TCP goes as single frames: with offloads on, 3.7-4.8 Gbit/s on AF_XDP
/// against 9.5-9.6 on AF_PACKET with the fast path (docs/BENCHMARKS.md). Elsewhere AF_XDP is
/// taken where its program attaches in native mode: in generic mode every frame, the fast
/// path's too, would pay the XDP program on the skb path and a copy for headroom.
pub(crate) fn auto_keeps_af_packet(drivers: [&str; 2]) -> Option<String> {
    drivers.contains(&"veth").then(|| {
        "on veth an XDP program turns the peer's GSO off, which costs TCP with offloads on more than half \
         its rate (backend = \"af_xdp\" takes AF_XDP all the same)"
            .to_string()
    })
}

/// Opens AF_XDP on both links, GRO and LRO turned off first (AF_XDP carries single frames).
fn open_xdp(
    lan: &Link,
    wan: &Link,
    busy_poll: bool,
    flows: Option<std::os::fd::RawFd>,
    mode: xdp::ModeChoice,
) -> anyhow::Result<(XdpPair, OffloadsTurnedOff)> {
    let mut turned_off = OffloadsTurnedOff::default();
    for l in [lan, wan] {
        let was = xdp::set_receive_offloads(&l.name, xdp::ReceiveOffloads { gro: false, lro: false })
            .with_context(|| format!("turning GRO/LRO off on {}", l.name))?;
        if was.gro || was.lro {
            info!("{}: GRO/LRO turned off (AF_XDP takes single frames, not merged ones)", l.name);
            turned_off.0.push((l.name.clone(), was));
        }
    }
    let opts = XdpOptions { busy_poll: busy_poll.then_some((20, 64)), flows, mode, ..XdpOptions::default() };
    let pair = XdpPair::open([&lan.name, &wan.name], opts)?;
    let queues = pair.queues();
    for (i, (l, r)) in [lan, wan].iter().zip(pair.reports()).enumerate() {
        let why = r.native_refused.as_deref().map(|w| format!(" (native refused: {w})")).unwrap_or_default();
        if let Some(id) = r.replaced {
            warn!("{}: replaced XDP program id {id} found there (left by a crash?)", l.name);
        }
        info!(
            "{}: AF_XDP, XDP program in {} mode{why}, {} mode, {} receive queue{}{}",
            l.name,
            r.mode,
            if pair.zero_copy() { "zero-copy" } else { "copy" },
            queues[i],
            if queues[i] == 1 { "" } else { "s (a socket on each)" },
            if busy_poll { ", busy polling" } else { "" }
        );
    }
    Ok((pair, turned_off))
}

impl Router {
    /// Opens both interfaces and the engine. Refuses to start when the kernel holds one of the
    /// addresses natpass owns on that interface.
    pub fn open(
        lan: Link,
        wan: Link,
        mut config: EngineConfig,
        io: IoOptions,
        ra: Option<&RouterAdvertising>,
    ) -> anyhow::Result<Self> {
        let busy_poll = io.busy_poll;
        for l in [&lan, &wan] {
            let Some(v6) = &l.v6 else { continue };
            let kernel = kernel_ipv6_addrs(&l.name);
            if kernel.contains(&v6.addr) {
                bail!(
                    "the kernel has {} on {}: it would answer Neighbor Solicitations for natpass. \
                     Remove it with `ip -6 addr del {}/{} dev {}` (natpass owns that address)",
                    v6.addr,
                    l.name,
                    v6.addr,
                    v6.prefix.len(),
                    l.name
                );
            }
            if !kernel.is_empty() {
                warn!(
                    "{}: the kernel runs IPv6 there too (it has {}); natpass routes IPv6 on it. \
                     `sysctl -w net.ipv6.conf.{}.disable_ipv6=1` leaves it to natpass",
                    l.name, kernel[0], l.name
                );
            }
        }
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
        if config.seed == EngineConfig::default().seed {
            config.seed = random_seed()?;
        }
        let capacity = config.max_sessions.saturating_mul(2).clamp(1024, 1 << 21);
        let mut engine = Engine::new(config, Instant::ZERO).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Every page of the session tables written now, not on a new flow's first packet
        // (a page fault there cost 10-40 µs on a VM, two per new flow).
        let t0 = WallInstant::now();
        let sessions = engine.config().max_sessions;
        match engine.prefault_memory(PREFAULT_BUDGET) {
            (bytes, true) => {
                info!(
                    "session tables in memory ({sessions} sessions, {} MiB) in {} ms",
                    bytes >> 20,
                    t0.elapsed().as_millis()
                )
            }
            (bytes, false) => info!(
                "session tables left to grow as flows come: {} MiB for {sessions} sessions is more than the {} MiB \
                 written at start (a new flow's first packet may then wait for a page fault)",
                bytes >> 20,
                PREFAULT_BUDGET >> 20
            ),
        }
        let mut fast = None;
        if io.fast_path {
            match natpass_io::fastpath::FastPath::open(&[&lan.name, &wan.name], capacity) {
                Ok(f) => fast = Some(f),
                Err(e) => warn!("fast path off: {e} (every packet goes through natpass; `fast_path = false` says so)"),
            }
        }
        let flows = fast.as_ref().map(|f| f.map_fd());
        let xdp = match io.backend {
            Backend::AfPacket => None,
            Backend::AfXdp => Some(open_xdp(&lan, &wan, io.busy_poll, flows, xdp::ModeChoice::Auto)?),
            Backend::Auto => {
                let drivers = [&lan.name, &wan.name].map(|n| xdp::driver(n).unwrap_or_default());
                match auto_keeps_af_packet([&drivers[0], &drivers[1]]) {
                    Some(why) => {
                        info!("backend auto: AF_PACKET, {why}");
                        None
                    }
                    None => match open_xdp(&lan, &wan, io.busy_poll, flows, xdp::ModeChoice::Native) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            warn!("backend auto: AF_XDP not available ({e:#}); using AF_PACKET");
                            None
                        }
                    },
                }
            }
        };
        let (io, mut plane, turned_off) = match xdp {
            Some((mut pair, turned_off)) => {
                let [l, w] = [xdp::interface(&lan.name)?, xdp::interface(&wan.name)?];
                let link = link_config(port(&lan, l.mac, l.mtu), port(&wan, w.mac, w.mtu), &wan, ra);
                let (lan_tx, wan_tx) = (pair.tx_queue(), pair.tx_queue());
                let tx = |q| Sink::Xdp(afxdp::Tx(q));
                (Io::Xdp(pair), Plane::new(link, engine, tx(lan_tx), tx(wan_tx)), turned_off)
            }
            None => {
                let version = match io.rx_ring {
                    RxRing::V3 => natpass_io::afpacket::RingVersion::V3,
                    RxRing::V2 => natpass_io::afpacket::RingVersion::V2,
                };
                let opts = RingOptions { version, ..RingOptions::default() };
                let lan_sock = PacketSocket::open(&lan.name, opts)?;
                let wan_sock = PacketSocket::open(&wan.name, opts)?;
                // The packet sockets see frames before tc: the filter keeps the fast path's
                // out of them. Without it, no fast path (its frames would go out twice).
                if let Some(f) = &fast {
                    use std::os::fd::AsRawFd;
                    for s in [&lan_sock, &wan_sock] {
                        if let Err(e) = f.filter_socket(s.as_raw_fd()) {
                            warn!("fast path off: attaching its socket filter to {}: {e}", s.name());
                            fast = None;
                            break;
                        }
                    }
                }
                let p = |l: &Link, s: &PacketSocket| port(l, s.mac(), s.mtu());
                let link = link_config(p(&lan, &lan_sock), p(&wan, &wan_sock), &wan, ra);
                let tx = |s: &PacketSocket| Sink::Packet(afpacket::Tx(TxBatch::with_vnet_hdr(s.vnet_hdr())));
                let plane = Plane::new(link, engine, tx(&lan_sock), tx(&wan_sock));
                (Io::Packet([lan_sock, wan_sock]), plane, OffloadsTurnedOff::default())
            }
        };
        // ARP for natpass's own addresses is answered by the tc program too, without waiting
        // for natpass to wake (natpass, which still gets the request, answers as well).
        if let Some(f) = &fast {
            let [lan_ix, wan_ix] = [f.ifindexes()[0], f.ifindexes()[1]];
            let (lan_port, wan_port) = (plane.port(Side::Lan), plane.port(Side::Wan));
            let mut ours = vec![(lan_ix, lan_port.addr, lan_port.mac), (wan_ix, wan_port.addr, wan_port.mac)];
            ours.extend(plane.engine().config().public_addrs.iter().map(|&a| (wan_ix, a, wan_port.mac)));
            for (ix, addr, mac) in ours {
                if let Err(e) = f.answer_arp(ix, addr, mac) {
                    warn!("fast path: ARP for {addr} stays natpass's own: {e}");
                }
            }
            info!(
                "fast path on: established flows are forwarded by a tc program on {} and {} (tcx ingress), up to {} flows",
                lan.name,
                wan.name,
                f.capacity() / 2
            );
            plane.engine_mut().set_offload(true);
        }
        Ok(Self {
            offload: fast.map(offload::Offloader::new),
            io,
            plane,
            names: [lan.name, wan.name],
            start: WallInstant::now(),
            log_events: true,
            refusals: Sampler::default(),
            events: EventLog::default(),
            mailbox: None,
            busy_poll,
            capture: None,
            captures: 0,
            _offloads: turned_off,
        })
    }

    /// The engine, for status and counters.
    pub fn engine(&self) -> &Engine {
        self.plane.engine()
    }

    /// The engine, to change switches while running.
    pub fn engine_mut(&mut self) -> &mut Engine {
        self.plane.engine_mut()
    }

    /// Link-layer counters.
    pub fn link_stats(&self) -> &LinkStats {
        self.plane.stats()
    }

    /// Answers the control plane's commands from this mailbox, between batches.
    pub fn set_mailbox(&mut self, mailbox: Mailbox) {
        self.mailbox = Some(mailbox);
    }

    /// Whether engine events are written to stderr as they happen (default: yes).
    pub fn set_log_events(&mut self, on: bool) {
        self.log_events = on;
    }

    /// The time since start, the clock the plane and the engine run on.
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The backend in use: "af_xdp" or "af_packet".
    pub fn backend(&self) -> &'static str {
        match self.io {
            Io::Packet(_) => "af_packet",
            Io::Xdp(_) => "af_xdp",
        }
    }

    /// Runs until `stop` is set (by a signal handler), then returns.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut next_housekeeping = Instant::ZERO;
        let mut last_busy = Instant::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            for side in [Side::Lan, Side::Wan] {
                // A few blocks (batches) per side per round keeps both directions moving
                // under load.
                for _ in 0..4 {
                    if !self.receive_batch(side) {
                        break;
                    }
                    busy = true;
                }
            }
            let now = self.now();
            // What the engine made itself goes out with this round's batch; timers and ARP
            // retries need only a look every 10 ms.
            self.plane.transmit_engine_output(now);
            if now >= next_housekeeping {
                if let Some(o) = &mut self.offload {
                    o.scan(now, natpass_io::fastpath::monotonic_ns(), &mut self.plane);
                }
                self.plane.handle_timeout(now);
                next_housekeeping = Instant::from_nanos(now.as_nanos() + HOUSEKEEPING_NS);
            }
            self.log_engine_events(now);
            self.serve_control(now);
            self.flush();
            if busy {
                last_busy = now;
                continue;
            }
            let until_timer = self
                .plane
                .engine()
                .poll_timeout()
                .map_or(100, |t| (t.as_nanos().saturating_sub(now.as_nanos()) / 1_000_000).clamp(0, 100) as i32);
            match &mut self.io {
                Io::Packet([a, b]) => {
                    // As AF_XDP below: a little spinning after the last frame catches the
                    // answer to what was just sent (an ARP reply, a handshake's next
                    // segment) without a wake-up.
                    if now.as_nanos().saturating_sub(last_busy.as_nanos()) < XDP_SPIN_NS {
                        std::thread::yield_now();
                    } else {
                        PacketSocket::wait(&[a, b], until_timer.min(10))?;
                        last_busy = self.now();
                    }
                }
                Io::Xdp(pair) => {
                    // Completions back, transmit kicked, fill rings topped up; then spin a
                    // little longer before sleeping, so that a burst's next frame finds
                    // natpass awake.
                    pair.service();
                    if now.as_nanos().saturating_sub(last_busy.as_nanos()) < XDP_SPIN_NS {
                        if self.busy_poll {
                            pair.poll_once();
                        } else {
                            // Not a bare spin: the driver's receive work (veth NAPI, a
                            // kthread) may share this CPU, and must get it.
                            std::thread::yield_now();
                        }
                    } else {
                        pair.wait(until_timer.min(10))?;
                        last_busy = self.now();
                    }
                }
            }
        }
        Ok(())
    }

    fn receive_batch(&mut self, side: Side) -> bool {
        let now = self.now();
        let plane = &mut self.plane;
        let mut tap = self.capture.as_mut().filter(|t| t.wants(side)).map(|t| (t, unix_micros()));
        let mut tap_in = |frame: &[u8]| {
            if let Some((t, us)) = &mut tap {
                t.record(side, Direction::In, frame, now.as_nanos(), *us);
            }
        };
        match &mut self.io {
            Io::Packet(sockets) => {
                let sock = &mut sockets[side as usize];
                if !sock.ready() {
                    return false;
                }
                let offload = &mut self.offload;
                sock.receive(|frame, info| {
                    tap_in(frame);
                    plane.handle_frame(now, side, frame, afpacket::rx_meta(info));
                    if let Some(o) = offload {
                        o.offer(plane);
                    }
                });
                true
            }
            Io::Xdp(pair) => {
                let offload = &mut self.offload;
                let n = pair.receive(side as usize, |frame| {
                    tap_in(frame);
                    let meta = afxdp::rx_meta(frame);
                    plane.handle_frame(now, side, frame, meta);
                    if let Some(o) = offload {
                        o.offer(plane);
                    }
                    // Only the side it leaves by can have taken it; both are asked (one bit).
                    let lan = plane.tx_mut(Side::Lan).take_sent_received();
                    let wan = plane.tx_mut(Side::Wan).take_sent_received();
                    if lan || wan { Disposition::Sent } else { Disposition::Recycle }
                });
                n > 0
            }
        }
    }

    fn flush(&mut self) {
        if let Some(o) = &mut self.offload {
            o.write_pending(&self.plane);
        }
        if self.capture.is_some() {
            self.capture_sent();
        }
        for side in [Side::Lan, Side::Wan] {
            let (queued, sent) = match (&mut self.io, self.plane.tx_mut(side)) {
                (Io::Packet(sockets), Sink::Packet(t)) => {
                    let queued = t.0.len();
                    if queued == 0 {
                        continue;
                    }
                    (queued, sockets[side as usize].send(&mut t.0))
                }
                (Io::Xdp(pair), Sink::Xdp(t)) => {
                    if t.0.is_empty() {
                        continue;
                    }
                    pair.transmit(side as usize, &mut t.0)
                }
                _ => unreachable!("one backend for sockets and sinks"),
            };
            self.plane.note_sent(side, queued, sent);
        }
    }

    /// The engine's events, kept for the tunnel page and written to the log: tunnels going up
    /// and down each get a line; refusals, which a client's retries or an attacker can make
    /// at packet rate, only a sample of them ([`Sampler`]; the engine counts them all).
    fn log_engine_events(&mut self, now: Instant) {
        if let Some(n) = self.refusals.flush(now.as_nanos()) {
            info!(
                target: "natpass::refusals",
                suppressed = n,
                "{n} more refusals in the last {} s not logged (counted in natpass_drops_total; `natpass tunnels` lists the recent ones)",
                Sampler::WINDOW_NS / 1_000_000_000
            );
        }
        while let Some(ev) = self.plane.engine_mut().poll_event() {
            self.events.record(now.secs(), &ev);
            if !self.log_events {
                continue;
            }
            match &ev {
                Event::PassthroughRefused { .. } | Event::SessionRefused { .. } => {
                    if self.refusals.admit(now.as_nanos()) {
                        info!(target: "natpass::refusals", "{}", describe_event(&ev));
                    }
                }
                _ => info!(target: "natpass::tunnels", "{}", describe_event(&ev)),
            }
        }
    }

    fn info(&self, now: Instant) -> PlaneInfo {
        let l = self.plane.stats();
        let iface = |side: Side, role: &'static str| {
            let p = self.plane.port(side);
            InterfaceInfo {
                role: role.into(),
                name: self.names[side as usize].clone(),
                address: format!("{}/{}", p.addr, p.net.len()),
                mac: mac_text(p.mac),
                rx_frames: l.rx_frames[side as usize],
                tx_frames: l.tx_frames[side as usize],
            }
        };
        PlaneInfo {
            uptime_secs: now.secs(),
            interfaces: vec![iface(Side::Lan, "lan"), iface(Side::Wan, "wan")],
            link_counters: {
                let mut c = self.plane.counters().to_vec();
                if let Some(o) = &self.offload {
                    let s = o.stats();
                    c.extend([
                        ("fast_path_flows", o.len() as u64),
                        ("fast_path_packets", s.packets),
                        ("fast_path_flows_installed", s.installed),
                        ("fast_path_flows_taken_back", s.removed),
                        ("fast_path_offers_refused", s.refused),
                    ]);
                }
                c
            },
        }
    }

    fn serve_control(&mut self, now: Instant) {
        let Some(mb) = self.mailbox.take() else { return };
        mb.serve(|cmd| match cmd {
            Command::CaptureStart(_) | Command::CaptureDrain(_) | Command::CaptureStop(_) => {
                self.capture_command(now, cmd)
            }
            cmd => {
                let info = self.info(now);
                interface::answer(self.plane.engine_mut(), &info, &mut self.events, now, cmd)
            }
        });
        self.mailbox = Some(mb);
        if let Some(t) = self.capture.take_if(|t| t.idle(now.as_nanos())) {
            info!("capture {} stopped: nobody read it for {} s", t.id(), Tap::IDLE_NS / 1_000_000_000);
        }
        // A capture sees every packet: nothing is offloaded while one runs.
        if let Some(o) = &mut self.offload {
            o.pause(self.capture.is_some());
        }
    }

    /// `natpass capture`'s commands: one capture at a time, bounded by [`Tap`].
    fn capture_command(&mut self, now: Instant, cmd: Command) -> Answer {
        let unknown = |id: u64| Answer::Refused(format!("no capture {id} (stopped, or idle for too long)"));
        match cmd {
            Command::CaptureStart(spec) => {
                if let Some(t) = &self.capture {
                    return Answer::Refused(format!("capture {} is running; stop it first", t.id()));
                }
                self.captures += 1;
                self.capture = Some(Tap::new(self.captures, spec, now.as_nanos()));
                Answer::CaptureStarted { id: self.captures, interfaces: self.names.to_vec() }
            }
            Command::CaptureDrain(id) => match &mut self.capture {
                Some(t) if t.id() == id => Answer::Captured(t.drain(now.as_nanos())),
                _ => unknown(id),
            },
            Command::CaptureStop(id) => match self.capture.take_if(|t| t.id() == id) {
                Some(mut t) => Answer::Captured(t.drain(now.as_nanos())),
                None => unknown(id),
            },
            _ => Answer::Refused("not a capture command".into()),
        }
    }

    /// What is about to leave, copied into the capture (AF_PACKET: the batch, past its
    /// virtio-net headers; AF_XDP: the frames queued in the UMEM).
    fn capture_sent(&mut self) {
        let (now, us) = (self.now().as_nanos(), unix_micros());
        let Some(tap) = self.capture.as_mut() else { return };
        for side in [Side::Lan, Side::Wan] {
            if !tap.wants(side) {
                continue;
            }
            match (&self.io, self.plane.tx(side)) {
                (Io::Packet(sockets), Sink::Packet(t)) => {
                    let lead = if sockets[side as usize].vnet_hdr() { natpass_io::afpacket::VnetHdr::LEN } else { 0 };
                    for f in t.0.frames() {
                        tap.record(side, Direction::Out, f.get(lead..).unwrap_or_default(), now, us);
                    }
                }
                (Io::Xdp(_), Sink::Xdp(t)) => {
                    for f in t.0.frames() {
                        tap.record(side, Direction::Out, f, now, us);
                    }
                }
                _ => {}
            }
        }
    }

    /// A short report of counters, for the log at exit.
    pub fn summary(&self) -> String {
        let engine = self.plane.engine();
        let s = engine.stats();
        let l = self.plane.stats();
        let mut out = format!(
            "lan: rx {} tx {} | wan: rx {} tx {} | forwarded lan→wan {} wan→lan {} | sessions {} | arp answered {} asked {} | pings {}",
            l.rx_frames[0],
            l.tx_frames[0],
            l.rx_frames[1],
            l.tx_frames[1],
            s.forwarded[1],
            s.forwarded[0],
            engine.session_count(),
            l.arp_answered,
            l.arp_requests,
            l.pings_answered,
        );
        if engine.config().ipv6.is_some() {
            out.push_str(&format!(
                " | ipv6 flows {} | nd answered {} asked {} | router advertisements {}",
                engine.ipv6_flows(),
                l.nd_answered,
                l.nd_requests,
                l.ra_sent
            ));
        }
        for (why, n) in natpass_link::nd::NdInvalid::ALL.iter().zip(l.nd_invalid_by) {
            if n > 0 {
                out.push_str(&format!("\n  neighbor discovery discarded {n}: {}", why.name()));
            }
        }
        for (r, n) in s.drops_by_reason() {
            if n > 0 {
                out.push_str(&format!("\n  dropped {n}: {r}"));
            }
        }
        let unresolved = self.plane.neighbours(Side::Lan).unresolved + self.plane.neighbours(Side::Wan).unresolved;
        if let Io::Xdp(pair) = &self.io {
            let st = pair.stats();
            out.push_str(&format!(
                "\n  af_xdp: kernel drops (no fill chunk, rx ring full) lan {} wan {} | tx kicks lan {} wan {} | no spare chunk {}",
                st[0].kernel_rx_dropped,
                st[1].kernel_rx_dropped,
                st[0].tx_kicks,
                st[1].tx_kicks,
                [Side::Lan, Side::Wan]
                    .map(|s| match self.plane.tx(s) {
                        Sink::Xdp(t) => t.0.no_buffer,
                        Sink::Packet(_) => 0,
                    })
                    .iter()
                    .sum::<u64>(),
            ));
        }
        for (what, n) in [
            ("oversize frames (turn off TSO/GSO on the peers)", l.oversize),
            ("ARP unresolved", unresolved),
            ("transmit queue full", l.tx_dropped[0] + l.tx_dropped[1]),
            ("no route", l.no_route),
        ] {
            if n > 0 {
                out.push_str(&format!("\n  dropped {n}: {what}"));
            }
        }
        if let Some(o) = &self.offload {
            let st = o.stats();
            out.push_str(&format!(
                "\n  fast path: {} flows now, {} handed over, {} taken back, {} offers refused, {} packets forwarded",
                o.len(),
                st.installed,
                st.removed,
                st.refused,
                st.packets
            ));
        }
        out
    }
}

/// Microseconds since the Unix epoch, for capture timestamps.
fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// One log line for an engine event.
pub fn describe_event(ev: &Event) -> String {
    match ev {
        Event::SessionRefused { lan_ip, reason } => format!("session refused for {}: {reason}", lan_ip),
        Event::TunnelUp { protocol, client, server, public, ids } => {
            format!("{protocol:?} tunnel up: {} → {} as {} ({ids:?})", client, server, public)
        }
        Event::TunnelDown { protocol, client, server, ids, bytes_out, bytes_in } => {
            format!("{protocol:?} tunnel down: {} → {} ({ids:?}), {bytes_out} B out, {bytes_in} B in", client, server)
        }
        Event::PassthroughRefused { protocol, client, server, reason } => {
            format!("{protocol:?} refused: {} → {}: {reason}", client, server)
        }
        // A finding is told when it is concluded: its times are as of then.
        Event::Finding(f) => {
            format!("problem found: {} [{}]. {} Fix: {}", f.summary(), f.kind, f.explain(f.since), f.fix())
        }
        Event::FindingCleared(f) => format!("problem cleared: {} [{}]", f.summary(), f.kind),
        other => format!("{other:?}"),
    }
}

/// Random bytes for the port randomisation seed, from the kernel; an error rather than a
/// predictable seed.
fn random_seed() -> anyhow::Result<u64> {
    let mut b = [0u8; 8];
    natpass_control::auth::fill_random(&mut b).context("the port randomisation seed")?;
    Ok(u64::from_ne_bytes(b) | 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_af_packet_on_veth_only() {
        let why = auto_keeps_af_packet(["veth", "ixgbe"]).unwrap();
        assert!(why.contains("veth") && why.contains("backend = \"af_xdp\""), "{why}");
        assert!(auto_keeps_af_packet(["ixgbe", "veth"]).is_some());
        assert_eq!(auto_keeps_af_packet(["ixgbe", "virtio_net"]), None);
        // An unknown driver (the query failed) does not keep AF_XDP out: opening it decides.
        assert_eq!(auto_keeps_af_packet(["", ""]), None);
    }
}
