//! `natpass run`: the engine on two Linux interfaces through AF_PACKET sockets.
//!
//! The link layer (ARP and the neighbour cache, pings to the router, offloads) is the
//! `natpass-link` crate's [`Plane`]; this module is its AF_PACKET driver. natpass owns its
//! addresses at layer 2, so the kernel in the router's namespace must not hold the same
//! addresses (it would answer ARP too and reset TCP connections it does not know):
//! [`Router::open`] refuses to start when it does.
//!
//! Per round: take ready ring blocks from each socket, have the plane translate each frame in
//! place and copy it into the other side's transmit batch, then `sendmmsg` the batches.
//! Between rounds: packets the engine made itself, the control plane's commands, and every
//! 10 ms the engine's timers and ARP retries.

mod afpacket;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant as WallInstant;

use anyhow::{Context, bail};
use natpass_config::Link;
use natpass_control::api::InterfaceInfo;
use natpass_control::interface::{self, EventLog, Mailbox, PlaneInfo};
use natpass_engine::{Engine, EngineConfig, Event, Instant, Side};
use natpass_io::afpacket::{PacketSocket, RingOptions, TxBatch};
use natpass_link::{LinkConfig, LinkStats, Plane, PortConfig};

/// How often the engine's timers and ARP retries are looked at.
const HOUSEKEEPING_NS: u64 = 10_000_000;

/// The data plane of `natpass run`.
pub struct Router {
    sockets: [PacketSocket; 2],
    plane: Plane<afpacket::Tx>,
    /// Interface names, LAN then WAN.
    names: [String; 2],
    start: WallInstant,
    log_events: bool,
    events: EventLog,
    mailbox: Option<Mailbox>,
}

fn port(link: &Link, sock: &PacketSocket) -> PortConfig {
    PortConfig { mac: sock.mac(), mtu: sock.mtu(), addr: link.addr, net: link.net }
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
            config.seed = random_seed()?;
        }
        let engine = Engine::new(config, Instant::ZERO).map_err(|e| anyhow::anyhow!("{e}"))?;
        let link = LinkConfig { lan: port(&lan, &lan_sock), wan: port(&wan, &wan_sock), gateway: wan.gateway };
        let tx = |s: &PacketSocket| afpacket::Tx(TxBatch::with_vnet_hdr(s.vnet_hdr()));
        let plane = Plane::new(link, engine, tx(&lan_sock), tx(&wan_sock));
        Ok(Self {
            sockets: [lan_sock, wan_sock],
            plane,
            names: [lan.name, wan.name],
            start: WallInstant::now(),
            log_events: true,
            events: EventLog::default(),
            mailbox: None,
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

    /// Runs until `stop` is set (by a signal handler), then returns.
    pub fn run(&mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut next_housekeeping = Instant::ZERO;
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
            let now = self.now();
            // What the engine made itself goes out with this round's batch; timers and ARP
            // retries need only a look every 10 ms.
            self.plane.transmit_engine_output(now);
            if now >= next_housekeeping {
                self.plane.handle_timeout(now);
                next_housekeeping = Instant::from_nanos(now.as_nanos() + HOUSEKEEPING_NS);
            }
            self.log_engine_events(now);
            self.serve_control(now);
            self.flush();
            if !busy {
                let until_timer =
                    self.plane.engine().poll_timeout().map_or(100, |t| {
                        (t.as_nanos().saturating_sub(now.as_nanos()) / 1_000_000).clamp(0, 100) as i32
                    });
                let [a, b] = &self.sockets;
                PacketSocket::wait(&[a, b], until_timer.min(10))?;
            }
        }
        Ok(())
    }

    fn receive_block(&mut self, side: Side) -> bool {
        if !self.sockets[side as usize].ready() {
            return false;
        }
        let now = self.now();
        let plane = &mut self.plane;
        self.sockets[side as usize]
            .receive(|frame, info| plane.handle_frame(now, side, frame, afpacket::rx_meta(info)));
        true
    }

    fn flush(&mut self) {
        for side in [Side::Lan, Side::Wan] {
            let batch = &mut self.plane.tx_mut(side).0;
            let queued = batch.len();
            if queued > 0 {
                let sent = self.sockets[side as usize].send(batch);
                self.plane.note_sent(side, queued, sent);
            }
        }
    }

    /// The engine's events, kept for the tunnel page and written to the log.
    fn log_engine_events(&mut self, now: Instant) {
        while let Some(ev) = self.plane.engine_mut().poll_event() {
            self.events.record(now.secs(), &ev);
            if self.log_events {
                eprintln!("natpass: {}", describe_event(&ev));
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
            link_counters: self.plane.counters().to_vec(),
        }
    }

    fn serve_control(&mut self, now: Instant) {
        let Some(mb) = self.mailbox.take() else { return };
        mb.serve(|cmd| {
            let info = self.info(now);
            interface::answer(self.plane.engine_mut(), &info, &mut self.events, now, cmd)
        });
        self.mailbox = Some(mb);
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
        for (r, n) in s.drops_by_reason() {
            if n > 0 {
                out.push_str(&format!("\n  dropped {n}: {r}"));
            }
        }
        let unresolved = self.plane.neighbours(Side::Lan).unresolved + self.plane.neighbours(Side::Wan).unresolved;
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
        out
    }
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
