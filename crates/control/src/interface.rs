//! The one narrow interface between the control plane and the data plane.
//!
//! The data plane owns the [`Engine`] on its own thread and never blocks on the control
//! plane. The control plane sends a [`Command`] through a [`Handle`]; the data plane drains
//! its [`Mailbox`] between packet batches and answers each command with [`answer`], a plain
//! function over the engine, so it is tested without threads or sockets.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::Duration;

use natpass_engine::{DropReason, Engine, Event, Filtering, Instant, Proto, Protocol, Side, Timeouts, TunnelIds};
use serde::Serialize;

/// What the control plane may ask or change.
#[derive(Clone, Debug)]
pub enum Command {
    /// Counters, interfaces, switches, timers.
    Status,
    /// A page of sessions.
    Sessions(SessionQuery),
    /// Live tunnels and recent refusals.
    Tunnels,
    /// Turn a passthrough protocol on or off.
    SetPassthrough(Protocol, bool),
    /// New timers (validated against the RFC floors by the engine).
    SetTimeouts(Timeouts),
    /// New inbound filtering.
    SetFiltering(Filtering),
}

/// Which sessions to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this protocol.
    pub proto: Option<Proto>,
    /// Only sessions with this address on any side (LAN, public or remote).
    pub addr: Option<Ipv4Addr>,
    /// Only sessions with this port on any side.
    pub port: Option<u16>,
    /// 1-based page.
    pub page: u32,
    /// Sessions per page (1 to 1000).
    pub per_page: u32,
}

/// The data plane's answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// To [`Command::Status`].
    Status(Box<Status>),
    /// To [`Command::Sessions`].
    Sessions(SessionPage),
    /// To [`Command::Tunnels`].
    Tunnels(Tunnels),
    /// A change was applied; `removed` sessions and tunnels went with it.
    Changed {
        /// Sessions and tunnels removed (a switch turned off).
        removed: usize,
    },
    /// A change was refused; nothing changed.
    Refused(String),
}

/// One interface of the router.
#[derive(Clone, Debug, Serialize)]
pub struct InterfaceInfo {
    /// "lan" or "wan".
    pub role: &'static str,
    /// Kernel name.
    pub name: String,
    /// natpass's address there, with prefix.
    pub address: String,
    /// MAC address.
    pub mac: String,
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
}

/// What the data plane knows besides the engine (its links, its clock).
#[derive(Clone, Debug, Default)]
pub struct PlaneInfo {
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The two interfaces (empty for a replay or a test).
    pub interfaces: Vec<InterfaceInfo>,
    /// Link-layer counters by name (ARP, oversize frames, ...).
    pub link_counters: Vec<(&'static str, u64)>,
}

/// Per-side numbers.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PerSide {
    /// LAN.
    pub lan: u64,
    /// WAN.
    pub wan: u64,
}

/// Per-protocol numbers.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PerProto {
    /// TCP.
    pub tcp: u64,
    /// UDP.
    pub udp: u64,
    /// ICMP.
    pub icmp: u64,
}

/// Per-passthrough-protocol numbers.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PerVpn {
    /// IPsec.
    pub ipsec: u64,
    /// PPTP.
    pub pptp: u64,
    /// L2TP.
    pub l2tp: u64,
}

/// The switches.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Switches {
    /// IPsec passthrough.
    pub ipsec: bool,
    /// PPTP passthrough.
    pub pptp: bool,
    /// L2TP passthrough.
    pub l2tp: bool,
}

/// The timers, in seconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct TimerSecs {
    /// UDP mapping.
    pub udp: u64,
    /// TCP established.
    pub tcp_established: u64,
    /// TCP transitory.
    pub tcp_transitory: u64,
    /// ICMP query.
    pub icmp: u64,
    /// Port reuse delay.
    pub port_reuse_delay: u64,
    /// Out-of-order fragment hold.
    pub fragment: u64,
}

impl TimerSecs {
    /// From the engine's timers.
    pub fn of(t: &Timeouts) -> Self {
        Self {
            udp: t.udp.as_secs(),
            tcp_established: t.tcp_established.as_secs(),
            tcp_transitory: t.tcp_transitory.as_secs(),
            icmp: t.icmp.as_secs(),
            port_reuse_delay: t.port_reuse_delay.as_secs(),
            fragment: t.fragment.as_secs(),
        }
    }
}

/// The router's status.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// natpass's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Interfaces.
    pub interfaces: Vec<InterfaceInfo>,
    /// Public addresses.
    pub public_addrs: Vec<String>,
    /// LAN networks.
    pub lan_networks: Vec<String>,
    /// VPN passthrough switches.
    pub passthrough: Switches,
    /// Timers.
    pub timeouts: TimerSecs,
    /// Inbound filtering, as in the config file.
    pub filtering: &'static str,
    /// Packets received per side.
    pub packets_received: PerSide,
    /// Packets forwarded out of each side.
    pub packets_forwarded: PerSide,
    /// Bytes forwarded out of each side.
    pub bytes_forwarded: PerSide,
    /// Drops by reason (only reasons seen).
    pub drops: Vec<(String, u64)>,
    /// Link-layer counters.
    pub link: Vec<(String, u64)>,
    /// Sessions by protocol.
    pub sessions: PerProto,
    /// Sessions opened, expired, evicted since start.
    pub sessions_created: u64,
    /// Sessions expired since start.
    pub sessions_expired: u64,
    /// Sessions evicted since start.
    pub sessions_evicted: u64,
    /// Tunnels by protocol.
    pub tunnels: PerVpn,
    /// Public ports in use, summed over the public addresses.
    pub ports_used: PerProto,
    /// Public ports available per address and protocol.
    pub ports_per_address: u32,
}

/// One session.
#[derive(Clone, Debug, Serialize)]
pub struct SessionRow {
    /// "tcp", "udp" or "icmp".
    pub proto: &'static str,
    /// LAN address:port.
    pub lan: String,
    /// Public address:port.
    pub public: String,
    /// Remote address:port.
    pub remote: String,
    /// "established" or "opening/closing".
    pub state: &'static str,
    /// Seconds since the last packet.
    pub idle_secs: u64,
    /// Bytes LAN → WAN.
    pub bytes_out: u64,
    /// Bytes WAN → LAN.
    pub bytes_in: u64,
}

/// A page of sessions.
#[derive(Clone, Debug, Serialize)]
pub struct SessionPage {
    /// Sessions matching the query.
    pub total: usize,
    /// This page (1-based).
    pub page: u32,
    /// Per page.
    pub per_page: u32,
    /// The sessions.
    pub sessions: Vec<SessionRow>,
}

/// One tunnel.
#[derive(Clone, Debug, Serialize)]
pub struct TunnelRow {
    /// "IPsec", "PPTP", "L2TP".
    pub protocol: &'static str,
    /// What is tracked.
    pub kind: &'static str,
    /// LAN client.
    pub client: String,
    /// Server.
    pub server: String,
    /// Public address used.
    pub public: String,
    /// Identifiers, readable.
    pub ids: String,
    /// Bytes client → server.
    pub bytes_out: u64,
    /// Bytes server → client.
    pub bytes_in: u64,
    /// Seconds since the last packet.
    pub idle_secs: u64,
    /// Seconds since it came up (`None` when natpass did not see it come up).
    pub age_secs: Option<u64>,
    /// State.
    pub state: &'static str,
}

/// A refusal or tunnel event, kept for the tunnel page.
#[derive(Clone, Debug, Serialize)]
pub struct EventRow {
    /// Seconds since start when it happened.
    pub at_secs: u64,
    /// "refused", "tunnel up", "tunnel down", "session refused".
    pub what: &'static str,
    /// Protocol, if any.
    pub protocol: String,
    /// LAN client.
    pub client: String,
    /// Server, if any.
    pub server: String,
    /// The reason or the identifiers.
    pub detail: String,
}

/// Live tunnels and recent events.
#[derive(Clone, Debug, Serialize)]
pub struct Tunnels {
    /// The tunnels.
    pub tunnels: Vec<TunnelRow>,
    /// The most recent refusals and tunnel events, newest first.
    pub events: Vec<EventRow>,
}

fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
    }
}

/// The protocol's name as on the settings page.
pub fn vpn_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Ipsec => "IPsec",
        Protocol::Pptp => "PPTP",
        Protocol::L2tp => "L2TP",
    }
}

/// The config-file spelling of a filtering mode.
pub fn filtering_name(f: Filtering) -> &'static str {
    match f {
        Filtering::EndpointIndependent => "endpoint-independent",
        Filtering::AddressDependent => "address-dependent",
        Filtering::AddressAndPortDependent => "address-and-port-dependent",
    }
}

fn ids_text(ids: &TunnelIds) -> String {
    match ids {
        TunnelIds::Esp { spi_out, spi_in } => format!("SPI out {spi_out:#010x}, in {spi_in:#010x}"),
        TunnelIds::Pptp { client_call_id, public_call_id, server_call_id } => {
            format!("Call ID client {client_call_id}, public {public_call_id}, server {server_call_id}")
        }
        TunnelIds::L2tp { client_tunnel_id, server_tunnel_id } => {
            format!("tunnel ID client {client_tunnel_id}, server {server_tunnel_id}")
        }
        TunnelIds::Ike { spi_i, spi_r } => format!("SPI i {spi_i:016x}, r {spi_r:016x}"),
    }
}

/// The most recent events the data plane keeps for the tunnel page, and when each live
/// tunnel came up.
#[derive(Debug, Default)]
pub struct EventLog {
    rows: VecDeque<EventRow>,
    up_since: HashMap<TunnelKey, u64>,
}

/// What names one tunnel across its events and the engine's table (an IKE SA by its
/// initiator SPI alone: the responder's is learned later).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TunnelKey(Protocol, u32, u32, TunnelIdsKey);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TunnelIdsKey {
    Esp(u32, u32),
    Pptp(u16, u16),
    L2tp(u16, u16),
    Ike(u64),
    Other,
}

fn tunnel_key(protocol: Protocol, client: u32, server: u32, ids: &TunnelIds) -> TunnelKey {
    let k = match *ids {
        TunnelIds::Esp { spi_out, spi_in } => TunnelIdsKey::Esp(spi_out, spi_in),
        TunnelIds::Pptp { client_call_id, public_call_id, .. } => TunnelIdsKey::Pptp(client_call_id, public_call_id),
        TunnelIds::L2tp { client_tunnel_id, server_tunnel_id } => {
            TunnelIdsKey::L2tp(client_tunnel_id, server_tunnel_id)
        }
        TunnelIds::Ike { spi_i, .. } => TunnelIdsKey::Ike(spi_i),
        #[allow(unreachable_patterns)]
        _ => TunnelIdsKey::Other,
    };
    TunnelKey(protocol, client, server, k)
}

/// Events kept.
pub const EVENTS_KEPT: usize = 200;

impl EventLog {
    /// Records an engine event at `at_secs`.
    pub fn record(&mut self, at_secs: u64, ev: &Event) {
        let row = match ev {
            Event::PassthroughRefused { protocol, client, server, reason } => EventRow {
                at_secs,
                what: "refused",
                protocol: vpn_name(*protocol).into(),
                client: ip(*client).to_string(),
                server: ip(*server).to_string(),
                detail: reason.to_string(),
            },
            Event::SessionRefused { lan_ip, reason } => EventRow {
                at_secs,
                what: "session refused",
                protocol: String::new(),
                client: ip(*lan_ip).to_string(),
                server: String::new(),
                detail: reason.to_string(),
            },
            Event::TunnelUp { protocol, client, server, ids, .. } => {
                self.up_since.entry(tunnel_key(*protocol, *client, *server, ids)).or_insert(at_secs);
                EventRow {
                    at_secs,
                    what: "tunnel up",
                    protocol: vpn_name(*protocol).into(),
                    client: ip(*client).to_string(),
                    server: ip(*server).to_string(),
                    detail: ids_text(ids),
                }
            }
            Event::TunnelDown { protocol, client, server, ids, bytes_out, bytes_in } => {
                self.up_since.remove(&tunnel_key(*protocol, *client, *server, ids));
                EventRow {
                    at_secs,
                    what: "tunnel down",
                    protocol: vpn_name(*protocol).into(),
                    client: ip(*client).to_string(),
                    server: ip(*server).to_string(),
                    detail: format!("{}, {bytes_out} B out, {bytes_in} B in", ids_text(ids)),
                }
            }
            _ => return,
        };
        if self.rows.len() >= EVENTS_KEPT {
            self.rows.pop_back();
        }
        self.rows.push_front(row);
    }

    /// Newest first.
    pub fn rows(&self) -> Vec<EventRow> {
        self.rows.iter().cloned().collect()
    }

    /// How long the tunnel has been up at `now_secs`, if natpass saw it come up.
    fn age(&self, t: &natpass_engine::TunnelInfo, now_secs: u64) -> Option<u64> {
        let since = self.up_since.get(&tunnel_key(t.protocol, t.client, t.server, &t.ids))?;
        Some(now_secs.saturating_sub(*since))
    }

    /// Forgets tunnels the engine no longer has (a switch turned off, an idle timer).
    fn keep_only(&mut self, live: &[natpass_engine::TunnelInfo]) {
        let keys: Vec<TunnelKey> = live.iter().map(|t| tunnel_key(t.protocol, t.client, t.server, &t.ids)).collect();
        self.up_since.retain(|k, _| keys.contains(k));
    }
}

/// Answers one command against the engine: the data plane's whole side of the interface.
pub fn answer(engine: &mut Engine, info: &PlaneInfo, events: &mut EventLog, now: Instant, cmd: Command) -> Answer {
    match cmd {
        Command::Status => Answer::Status(Box::new(status(engine, info, now))),
        Command::Sessions(q) => Answer::Sessions(sessions(engine, now, &q)),
        Command::Tunnels => {
            let live = engine.tunnels(now);
            events.keep_only(&live);
            Answer::Tunnels(Tunnels {
                tunnels: live
                    .into_iter()
                    .map(|t| TunnelRow {
                        age_secs: events.age(&t, now.secs()),
                        protocol: vpn_name(t.protocol),
                        kind: t.kind,
                        client: ip(t.client).to_string(),
                        server: ip(t.server).to_string(),
                        public: ip(t.public).to_string(),
                        ids: ids_text(&t.ids),
                        bytes_out: t.bytes_out,
                        bytes_in: t.bytes_in,
                        idle_secs: t.idle_secs,
                        state: t.state,
                    })
                    .collect(),
                events: events.rows(),
            })
        }
        Command::SetPassthrough(p, on) => Answer::Changed { removed: engine.set_passthrough(p, on) },
        Command::SetTimeouts(t) => match engine.set_timeouts(t) {
            Ok(()) => Answer::Changed { removed: 0 },
            Err(e) => Answer::Refused(e.to_string()),
        },
        Command::SetFiltering(f) => {
            engine.set_filtering(f);
            Answer::Changed { removed: 0 }
        }
    }
}

fn status(engine: &Engine, info: &PlaneInfo, now: Instant) -> Status {
    let c = engine.config();
    let s = engine.stats();
    let mut by_proto = PerProto::default();
    for sess in engine.sessions() {
        match sess.proto {
            Proto::Tcp => by_proto.tcp += 1,
            Proto::Udp => by_proto.udp += 1,
            Proto::Icmp => by_proto.icmp += 1,
        }
    }
    let mut tunnels = PerVpn::default();
    for t in engine.tunnels(now) {
        match t.protocol {
            Protocol::Ipsec => tunnels.ipsec += 1,
            Protocol::Pptp => tunnels.pptp += 1,
            Protocol::L2tp => tunnels.l2tp += 1,
        }
    }
    let mut ports = PerProto::default();
    for i in 0..c.public_addrs.len() {
        ports.tcp += u64::from(engine.ports_used(i, Proto::Tcp));
        ports.udp += u64::from(engine.ports_used(i, Proto::Udp));
        ports.icmp += u64::from(engine.ports_used(i, Proto::Icmp));
    }
    let (created, expired, evicted) = engine.session_totals();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: info.uptime_secs,
        interfaces: info.interfaces.clone(),
        public_addrs: c.public_addrs.iter().map(ToString::to_string).collect(),
        lan_networks: c.lan_networks.iter().map(ToString::to_string).collect(),
        passthrough: Switches { ipsec: c.passthrough.ipsec, pptp: c.passthrough.pptp, l2tp: c.passthrough.l2tp },
        timeouts: TimerSecs::of(&c.timeouts),
        filtering: filtering_name(c.filtering),
        packets_received: PerSide { lan: s.received[Side::Lan as usize], wan: s.received[Side::Wan as usize] },
        packets_forwarded: PerSide { lan: s.forwarded[Side::Lan as usize], wan: s.forwarded[Side::Wan as usize] },
        bytes_forwarded: PerSide {
            lan: s.forwarded_bytes[Side::Lan as usize],
            wan: s.forwarded_bytes[Side::Wan as usize],
        },
        drops: s.drops_by_reason().filter(|(_, n)| *n > 0).map(|(r, n)| (drop_key(r), n)).collect(),
        link: info.link_counters.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
        sessions: by_proto,
        sessions_created: created,
        sessions_expired: expired,
        sessions_evicted: evicted,
        tunnels,
        ports_used: ports,
        ports_per_address: 64512,
    }
}

/// A drop reason as a metric label and JSON key: its Debug name in snake case.
pub fn drop_key(r: DropReason) -> String {
    let name = format!("{r:?}");
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn sessions(engine: &Engine, now: Instant, q: &SessionQuery) -> SessionPage {
    let per_page = q.per_page.clamp(1, 1000);
    let page = q.page.max(1);
    let addr = q.addr.map(u32::from);
    let mut rows: Vec<_> = engine
        .sessions()
        .filter(|s| q.proto.is_none_or(|p| p == s.proto))
        .filter(|s| addr.is_none_or(|a| s.lan.0 == a || s.ext.0 == a || s.remote.0 == a))
        .filter(|s| q.port.is_none_or(|p| s.lan.1 == p || s.ext.1 == p || s.remote.1 == p))
        .collect();
    rows.sort_by_key(|s| (s.proto as u8, s.lan, s.remote));
    let total = rows.len();
    let start = (page as usize - 1).saturating_mul(per_page as usize);
    let sessions = rows
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .map(|s| SessionRow {
            proto: proto_name(s.proto),
            lan: format!("{}:{}", ip(s.lan.0), s.lan.1),
            public: format!("{}:{}", ip(s.ext.0), s.ext.1),
            remote: format!("{}:{}", ip(s.remote.0), s.remote.1),
            state: if s.established { "established" } else { "opening/closing" },
            idle_secs: now.since(s.last_seen).as_secs(),
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
        })
        .collect();
    SessionPage { total, page, per_page, sessions }
}

/// A command on its way, with where to answer.
pub struct Request {
    cmd: Command,
    reply: mpsc::Sender<Answer>,
}

/// The control plane's end.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
}

/// The data plane's end.
pub struct Mailbox {
    rx: mpsc::Receiver<Request>,
}

/// The data plane stopped or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("the data plane did not answer (stopped or busy)")]
pub struct NoAnswer;

/// A connected pair.
pub fn channel() -> (Handle, Mailbox) {
    let (tx, rx) = mpsc::channel();
    (Handle { tx }, Mailbox { rx })
}

impl Handle {
    /// Sends `cmd` and waits up to two seconds for the answer.
    pub fn ask(&self, cmd: Command) -> Result<Answer, NoAnswer> {
        let (reply, rx) = mpsc::channel();
        self.tx.send(Request { cmd, reply }).map_err(|_| NoAnswer)?;
        rx.recv_timeout(Duration::from_secs(2)).map_err(|_| NoAnswer)
    }
}

impl Mailbox {
    /// Answers every waiting command with `f`; never blocks.
    pub fn serve(&self, mut f: impl FnMut(Command) -> Answer) -> usize {
        let mut n = 0;
        while let Ok(req) = self.rx.try_recv() {
            let _ = req.reply.send(f(req.cmd));
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(spi_in: u32) -> natpass_engine::TunnelInfo {
        natpass_engine::TunnelInfo {
            protocol: Protocol::Ipsec,
            kind: "ESP SA pair",
            client: 1,
            server: 2,
            public: 3,
            ids: TunnelIds::Esp { spi_out: 0x100, spi_in },
            bytes_out: 0,
            bytes_in: 0,
            idle_secs: 0,
            state: "up",
        }
    }

    #[test]
    fn a_tunnels_age_counts_from_its_up_event_until_it_goes() {
        let mut log = EventLog::default();
        let up = Event::TunnelUp {
            protocol: Protocol::Ipsec,
            client: 1,
            server: 2,
            public: 3,
            ids: TunnelIds::Esp { spi_out: 0x100, spi_in: 0x200 },
        };
        log.record(10, &up);
        assert_eq!(log.age(&info(0x200), 25), Some(15));
        assert_eq!(log.age(&info(0x201), 25), None, "another SA pair");
        log.keep_only(&[]);
        assert_eq!(log.age(&info(0x200), 30), None, "gone from the engine, forgotten");
        log.record(40, &up);
        log.record(
            50,
            &Event::TunnelDown {
                protocol: Protocol::Ipsec,
                client: 1,
                server: 2,
                ids: TunnelIds::Esp { spi_out: 0x100, spi_in: 0x200 },
                bytes_out: 0,
                bytes_in: 0,
            },
        );
        assert_eq!(log.age(&info(0x200), 55), None);
        assert_eq!(log.rows().len(), 3);
    }
}
