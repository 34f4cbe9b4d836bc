//! The one narrow interface between the control plane and the data plane.
//!
//! The data plane owns the [`Engine`] on its own thread and never blocks on the control
//! plane. The control plane sends a [`Command`] through a [`Handle`]; the data plane drains
//! its [`Mailbox`] between packet batches and answers each command with [`answer`], a plain
//! function over the engine, so it is tested without threads or sockets.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::Duration;

use natpass_engine::diagnosis::Status as FindingStatus;
use natpass_engine::{
    Engine, Event, Filtering, Finding, Instant, IpProtocol, Proto, Protocol, SessionInfo, Side, Timeouts, TunnelIds,
};

use crate::api::{
    EventRow, FindingRow, Findings, InterfaceInfo, PerProto, PerSide, PerVpn, SessionPage, SessionRow, Status,
    Switches, TimerSecs, TunnelRow, Tunnels, finding_status, protocol_label, what,
};
use crate::capture::{CaptureSpec, Drained};

/// What the control plane may ask or change.
#[derive(Clone, Debug)]
pub enum Command {
    /// Counters, interfaces, switches, timers.
    Status,
    /// A page of sessions.
    Sessions(SessionQuery),
    /// Live tunnels and recent refusals.
    Tunnels,
    /// What the diagnosis found: every finding, or one client's with what is not enough
    /// evidence yet.
    Findings(Option<Ipv4Addr>),
    /// Turn a passthrough protocol on or off.
    SetPassthrough(Protocol, bool),
    /// New timers (validated against the RFC floors by the engine).
    SetTimeouts(Timeouts),
    /// New inbound filtering.
    SetFiltering(Filtering),
    /// Only an answer: the data plane's loop is alive (the systemd watchdog).
    Ping,
    /// Start capturing frames ([`crate::capture`]); one capture at a time.
    CaptureStart(CaptureSpec),
    /// The frames a capture kept since the last drain.
    CaptureDrain(u64),
    /// Stop a capture.
    CaptureStop(u64),
}

/// Which sessions to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this protocol (ICMP: ICMPv6 echo flows too).
    pub proto: Option<Proto>,
    /// Only sessions with this address, IPv4 or IPv6, on any side (LAN, public or remote).
    pub addr: Option<IpAddr>,
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
    /// To [`Command::Findings`].
    Findings(Findings),
    /// A change was applied; `removed` sessions and tunnels went with it.
    Changed {
        /// Sessions and tunnels removed (a switch turned off).
        removed: usize,
    },
    /// A change was refused; nothing changed.
    Refused(String),
    /// To [`Command::Ping`].
    Pong,
    /// To [`Command::CaptureStart`]: the capture's id and the interfaces, LAN then WAN.
    CaptureStarted {
        /// Its id.
        id: u64,
        /// Interface names, LAN then WAN.
        interfaces: Vec<String>,
    },
    /// To [`Command::CaptureDrain`] and [`Command::CaptureStop`].
    Captured(Drained),
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

/// A finding as the API, the CLI and the pages show it, at `now`.
pub fn finding_row(f: &Finding, now: Instant) -> FindingRow {
    let s = &f.subject;
    let status = match f.status {
        FindingStatus::Found => finding_status::FOUND,
        FindingStatus::Cleared { .. } => finding_status::CLEARED,
        FindingStatus::NotEnoughEvidence => finding_status::NOT_ENOUGH_EVIDENCE,
    };
    let fix = if f.status == FindingStatus::NotEnoughEvidence { String::new() } else { f.fix() };
    FindingRow {
        kind: f.kind.name().into(),
        title: f.kind.title().into(),
        status: status.into(),
        protocol: protocol_label(s.protocol).into(),
        client: s.client.to_string(),
        server: s.server.to_string(),
        public: s.public.map(|p| p.to_string()),
        ids: s.ids.as_ref().map(ids_text),
        packets_out: f.evidence.packets_out,
        packets_in: f.evidence.packets_in,
        last_secs_ago: now.since(f.evidence.last).as_secs(),
        since_secs_ago: now.since(f.since).as_secs(),
        evidence: f.explain(now),
        fix,
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
struct TunnelKey(Protocol, IpAddr, IpAddr, TunnelIdsKey);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TunnelIdsKey {
    Esp(u32, u32),
    Pptp(u16, u16),
    L2tp(u16, u16),
    Ike(u64),
    Other,
}

fn tunnel_key(protocol: Protocol, client: IpAddr, server: IpAddr, ids: &TunnelIds) -> TunnelKey {
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
                what: what::REFUSED.into(),
                protocol: protocol_label(*protocol).into(),
                client: client.to_string(),
                server: server.to_string(),
                detail: reason.to_string(),
            },
            Event::SessionRefused { lan_ip, reason } => EventRow {
                at_secs,
                what: what::SESSION_REFUSED.into(),
                protocol: String::new(),
                client: lan_ip.to_string(),
                server: String::new(),
                detail: reason.to_string(),
            },
            Event::TunnelUp { protocol, client, server, ids, .. } => {
                self.up_since.entry(tunnel_key(*protocol, (*client).into(), (*server).into(), ids)).or_insert(at_secs);
                EventRow {
                    at_secs,
                    what: what::TUNNEL_UP.into(),
                    protocol: protocol_label(*protocol).into(),
                    client: client.to_string(),
                    server: server.to_string(),
                    detail: ids_text(ids),
                }
            }
            Event::Finding(f) | Event::FindingCleared(f) => EventRow {
                at_secs,
                what: if matches!(ev, Event::Finding(_)) { what::PROBLEM } else { what::PROBLEM_CLEARED }.into(),
                protocol: protocol_label(f.subject.protocol).into(),
                client: f.subject.client.to_string(),
                server: f.subject.server.to_string(),
                detail: f.kind.title().into(),
            },
            Event::TunnelDown { protocol, client, server, ids, bytes_out, bytes_in } => {
                self.up_since.remove(&tunnel_key(*protocol, (*client).into(), (*server).into(), ids));
                EventRow {
                    at_secs,
                    what: what::TUNNEL_DOWN.into(),
                    protocol: protocol_label(*protocol).into(),
                    client: client.to_string(),
                    server: server.to_string(),
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
                        protocol: protocol_label(t.protocol).into(),
                        kind: t.kind.into(),
                        client: t.client.to_string(),
                        server: t.server.to_string(),
                        public: t.public.map_or_else(String::new, |p| p.to_string()),
                        ids: ids_text(&t.ids),
                        bytes_out: t.bytes_out,
                        bytes_in: t.bytes_in,
                        idle_secs: t.idle_secs,
                        state: t.state.into(),
                    })
                    .collect(),
                events: events.rows(),
                findings: engine.findings(now).iter().map(|f| finding_row(f, now)).collect(),
            })
        }
        Command::Findings(client) => {
            let found = match client {
                Some(c) => engine.findings_for(now, c),
                None => engine.findings(now),
            };
            Answer::Findings(Findings {
                client: client.map(|c| c.to_string()),
                findings: found.iter().map(|f| finding_row(f, now)).collect(),
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
        Command::Ping => Answer::Pong,
        Command::CaptureStart(_) | Command::CaptureDrain(_) | Command::CaptureStop(_) => {
            Answer::Refused("this data plane has no interfaces to capture on".into())
        }
    }
}

fn status(engine: &Engine, info: &PlaneInfo, now: Instant) -> Status {
    let c = engine.config();
    let s = engine.stats();
    let mut by_proto = PerProto::default();
    let mut ipv6_flows: Vec<(String, u64)> = Vec::new();
    for sess in engine.sessions() {
        match (sess.is_ipv6(), Proto::from_ip_protocol(sess.protocol)) {
            (false, Some(p)) => *by_proto.get_mut(p) += 1,
            _ => {
                let name = ipv6_flow_label(sess.protocol);
                match ipv6_flows.iter_mut().find(|(n, _)| n == name) {
                    Some((_, c)) => *c += 1,
                    None => ipv6_flows.push((name.to_string(), 1)),
                }
            }
        }
    }
    let mut tunnels = PerVpn::<u64>::default();
    for t in engine.tunnels(now) {
        *tunnels.get_mut(t.protocol) += 1;
    }
    let mut ports = PerProto::default();
    for i in 0..c.public_addrs.len() {
        for p in Proto::ALL {
            *ports.get_mut(p) += u64::from(engine.ports_used(i, p));
        }
    }
    let (created, expired, evicted) = engine.session_totals();
    Status {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: info.uptime_secs,
        interfaces: info.interfaces.clone(),
        public_addrs: c.public_addrs.iter().map(ToString::to_string).collect(),
        lan_networks: c.lan_networks.iter().map(ToString::to_string).collect(),
        passthrough: Switches { ipsec: c.passthrough.ipsec, pptp: c.passthrough.pptp, l2tp: c.passthrough.l2tp },
        timeouts: TimerSecs::of(&c.timeouts),
        filtering: natpass_config::filtering_name(c.filtering).into(),
        packets_received: PerSide { lan: s.received[Side::Lan as usize], wan: s.received[Side::Wan as usize] },
        packets_forwarded: PerSide { lan: s.forwarded[Side::Lan as usize], wan: s.forwarded[Side::Wan as usize] },
        bytes_forwarded: PerSide {
            lan: s.forwarded_bytes[Side::Lan as usize],
            wan: s.forwarded_bytes[Side::Wan as usize],
        },
        drops: s.drops_by_reason().filter(|(_, n)| *n > 0).map(|(r, n)| (r.name().to_string(), n)).collect(),
        link: info.link_counters.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
        sessions: by_proto,
        ipv6_flows,
        sessions_created: created,
        sessions_expired: expired,
        sessions_evicted: evicted,
        tunnels,
        ports_used: ports,
        ports_per_address: 64512,
        findings: s.findings_by_kind().filter(|(_, n)| *n > 0).map(|(k, n)| (k.name().to_string(), n)).collect(),
    }
}

/// The label of an IPv6 flow's protocol in [`Status::ipv6_flows`] and `/metrics`: one of
/// [`crate::api::IPV6_FLOW_PROTOCOLS`].
pub fn ipv6_flow_label(p: IpProtocol) -> &'static str {
    crate::api::IPV6_FLOW_PROTOCOLS.iter().copied().find(|&n| p.name() == Some(n)).unwrap_or("other")
}

/// The protocol a session answers to in a query: ICMPv6 echo flows are ICMP's.
fn query_proto(s: &SessionInfo) -> Option<Proto> {
    if s.protocol == IpProtocol::ICMPV6 { Some(Proto::Icmp) } else { Proto::from_ip_protocol(s.protocol) }
}

fn sessions(engine: &Engine, now: Instant, q: &SessionQuery) -> SessionPage {
    let per_page = q.per_page.clamp(1, 1000);
    let page = q.page.max(1);
    let addr = q.addr;
    let ends = |s: &SessionInfo| [Some(s.lan), s.public, Some(s.remote)].into_iter().flatten();
    let mut rows: Vec<_> = engine
        .sessions()
        .filter(|s| q.proto.is_none_or(|p| Some(p) == query_proto(s)))
        .filter(|s| addr.is_none_or(|a| ends(s).any(|e| e.ip() == a)))
        .filter(|s| q.port.is_none_or(|p| ends(s).any(|e| e.port() == p)))
        .collect();
    rows.sort_by_key(|s| (s.is_ipv6(), s.protocol.number(), s.lan, s.remote));
    let total = rows.len();
    let start = (page as usize - 1).saturating_mul(per_page as usize);
    let sessions = rows
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .map(|s| SessionRow {
            proto: s.protocol.to_string(),
            family: if s.is_ipv6() { "ipv6" } else { "ipv4" }.into(),
            lan: s.lan.to_string(),
            public: s.public.map_or_else(String::new, |p| p.to_string()),
            remote: s.remote.to_string(),
            state: if s.established { "established" } else { "opening/closing" }.into(),
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
    reply: tokio::sync::oneshot::Sender<Answer>,
}

/// Commands that may wait for the data plane at once; beyond it the control plane is told
/// "busy" at once rather than queueing work for the router.
pub const QUEUE: usize = 16;
/// Commands the data plane answers per [`Mailbox::serve`] call (one round between batches).
pub const PER_ROUND: usize = 4;
/// How long the control plane waits for an answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The control plane's end.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::SyncSender<Request>,
}

/// The data plane's end.
pub struct Mailbox {
    rx: mpsc::Receiver<Request>,
}

/// The data plane stopped, is busy, or did not answer in time.
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// Stopped, or no answer within [`ANSWER_TIMEOUT`].
    #[error("the data plane did not answer (stopped or busy)")]
    Timeout,
    /// [`QUEUE`] commands are already waiting.
    #[error("the data plane has too many questions waiting; try again")]
    Busy,
}

/// A connected pair: a queue of [`QUEUE`] commands.
pub fn channel() -> (Handle, Mailbox) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    (Handle { tx }, Mailbox { rx })
}

impl Handle {
    /// Sends `cmd` without waiting for room, then waits up to [`ANSWER_TIMEOUT`] for the
    /// answer (the task waits; no thread blocks).
    pub async fn ask(&self, cmd: Command) -> Result<Answer, NoAnswer> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.try_send(Request { cmd, reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => NoAnswer::Busy,
            mpsc::TrySendError::Disconnected(_) => NoAnswer::Timeout,
        })?;
        match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(a)) => Ok(a),
            _ => Err(NoAnswer::Timeout),
        }
    }

    /// [`Handle::ask`] for a thread outside any runtime (signal handling, the watchdog):
    /// sends without waiting for room, then waits up to [`ANSWER_TIMEOUT`], looking every
    /// millisecond.
    pub fn ask_blocking(&self, cmd: Command) -> Result<Answer, NoAnswer> {
        let (reply, mut rx) = tokio::sync::oneshot::channel();
        self.tx.try_send(Request { cmd, reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => NoAnswer::Busy,
            mpsc::TrySendError::Disconnected(_) => NoAnswer::Timeout,
        })?;
        let end = std::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            match rx.try_recv() {
                Ok(a) => return Ok(a),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Err(NoAnswer::Timeout),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) if std::time::Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return Err(NoAnswer::Timeout),
            }
        }
    }
}

impl Mailbox {
    /// Answers up to [`PER_ROUND`] waiting commands with `f`; never blocks. The rest wait
    /// for the next call, so the control plane cannot hold the router for long.
    pub fn serve(&self, mut f: impl FnMut(Command) -> Answer) -> usize {
        let mut n = 0;
        while n < PER_ROUND
            && let Ok(req) = self.rx.try_recv()
        {
            // The asker may have given up; its answer is dropped.
            let _ = req.reply.send(f(req.cmd));
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn info(spi_in: u32) -> natpass_engine::TunnelInfo {
        natpass_engine::TunnelInfo {
            protocol: Protocol::Ipsec,
            kind: "ESP SA pair",
            client: Ipv4Addr::from_bits(1).into(),
            server: Ipv4Addr::from_bits(2).into(),
            public: Some(Ipv4Addr::from_bits(3).into()),
            ids: TunnelIds::Esp { spi_out: 0x100, spi_in },
            bytes_out: 0,
            bytes_in: 0,
            idle_secs: 0,
            state: "up",
        }
    }

    #[test]
    fn the_queue_is_bounded_and_the_data_plane_answers_a_few_per_round() {
        let (handle, mailbox) = channel();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let mut waiting = Vec::new();
            for _ in 0..QUEUE {
                let h = handle.clone();
                waiting.push(tokio::spawn(async move { h.ask(Command::Status).await }));
            }
            tokio::task::yield_now().await;
            assert!(matches!(handle.ask(Command::Status).await, Err(NoAnswer::Busy)));
            assert_eq!(mailbox.serve(|_| Answer::Changed { removed: 0 }), PER_ROUND);
            while mailbox.serve(|_| Answer::Changed { removed: 0 }) > 0 {}
            for w in waiting {
                assert!(matches!(w.await.unwrap(), Ok(Answer::Changed { removed: 0 })));
            }
        });
    }

    #[test]
    fn a_tunnels_age_counts_from_its_up_event_until_it_goes() {
        let mut log = EventLog::default();
        let up = Event::TunnelUp {
            protocol: Protocol::Ipsec,
            client: Ipv4Addr::from_bits(1),
            server: Ipv4Addr::from_bits(2),
            public: Ipv4Addr::from_bits(3),
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
                client: Ipv4Addr::from_bits(1),
                server: Ipv4Addr::from_bits(2),
                ids: TunnelIds::Esp { spi_out: 0x100, spi_in: 0x200 },
                bytes_out: 0,
                bytes_in: 0,
            },
        );
        assert_eq!(log.age(&info(0x200), 55), None);
        assert_eq!(log.rows().len(), 3);
    }
}
