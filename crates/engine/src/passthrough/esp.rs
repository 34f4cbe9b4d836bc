//! Raw ESP (IP protocol 50, RFC 4303) through NAPT for several clients to one server, and AH
//! (protocol 51, RFC 4302), refused: its ICV covers the addresses (RFC 3715 §2.1 a).
//!
//! ESP has no ports; inbound ESP can only be told apart by its SPI, which nothing in the clear
//! links to the outbound SPI (RFC 3715 §2.1 f). natpass learns it: outbound ESP with SPI o from
//! client C to server S records (C, S, o); the first inbound ESP from S with an unknown SPI is
//! bound to the one client *pending* for S: the one whose newest outbound SA has no inbound
//! partner yet. At most one client is pending per (public address, server); another client's
//! new SA is refused with ICMP 3/13 (RFC 5508 REQ-8) until the first binds or its pending timer
//! ends. Rekeys are new SAs of the same client and go through the same steps; old SAs expire
//! when idle, after the UDP mapping timeout (RFC 4787 REQ-5: ESP is as stateless as UDP).
//!
//! ICMP errors from the WAN that quote our outbound ESP go back to the client by its SPI.
//! Fragments of ESP are refused: a later fragment carries no SPI.
//!
//! For the diagnosis, each outbound SA counts its packets since it began, and reports at most
//! once a second while the client sends: what it sent, and the last ESP of its inbound partner.
//! A refusal for a busy server, a new SA let through and an SA's first answer are reported when
//! they happen.

use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::IpProtocol;
use natpass_wire::esp::EspPacket;
use natpass_wire::icmp::QuotedDatagram;
use natpass_wire::ipv4::Ipv4Packet;

use super::{Flow, Protocol, TunnelIds, VpnProtocol, earliest, nanos};
use crate::config::EngineConfig;
use crate::diagnosis::{Carrier, DataReport, EspRefused, FindingKind, Observation, REPORT_EVERY, Subject};
use crate::output::{Cx, Output};
use crate::time::Instant;
use crate::translate::icmp_reply;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Event, TunnelInfo};

/// An outbound SA: the client's SPI towards a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct OutKey {
    client: Ipv4Addr,
    server: Ipv4Addr,
    spi: u32,
}

/// An inbound SA: the server's SPI towards a public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct InKey {
    public: Ipv4Addr,
    server: Ipv4Addr,
    spi: u32,
}

/// A server as seen from one public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    public: Ipv4Addr,
    server: Ipv4Addr,
}

#[derive(Clone, Copy, Debug)]
struct OutSa {
    public: Ipv4Addr,
    last_seen: u64,
    bytes: u64,
    /// The inbound SPI bound to this SA, once learned.
    spi_in: Option<u32>,
    /// When it began, and its packets since, for the diagnosis.
    first_seen: u64,
    packets: u64,
    /// When it last reported to the diagnosis.
    reported: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct InSa {
    client: Ipv4Addr,
    last_seen: u64,
    bytes: u64,
    packets: u64,
}

/// What an ESP packet comes to: the action, an event, an observation for the diagnosis.
type Outcome = (Action, Option<Event>, Option<Observation>);

/// An ESP SA pair as the diagnosis names it.
fn subject(client: Ipv4Addr, server: Ipv4Addr, public: Ipv4Addr, spi_out: u32, spi_in: u32) -> Subject {
    Subject {
        protocol: Protocol::Ipsec,
        client,
        server,
        public: Some(public),
        ids: Some(TunnelIds::Esp { spi_out, spi_in }),
        ports: None,
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    client: Ipv4Addr,
    spi_out: u32,
    since: u64,
}

/// The raw ESP passthrough of one engine.
pub(crate) struct Esp {
    out: HashMap<OutKey, OutSa, FixedState>,
    inb: HashMap<InKey, InSa, FixedState>,
    pending: HashMap<ServerKey, Pending, FixedState>,
    /// Servers some client sent ESP to: how many outbound SAs each has.
    servers: HashMap<ServerKey, u32, FixedState>,
    /// No SA or claim can end before this (a lower bound, made exact at each expiry run).
    wake: Option<Instant>,
}

/// What to do with an ESP packet.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Rewrite the source (outbound) or destination (inbound) to this address.
    Rewrite(Ipv4Addr),
    /// Drop; `icmp` asks for an ICMP 3/13 to the LAN sender.
    Refuse { reason: DropReason, icmp: bool },
}

/// One ESP packet as the SA tables see it.
#[derive(Clone, Copy, Debug)]
struct EspSeen {
    now: Instant,
    /// How long a client may stay pending (the `esp_pending` timeout), in ns.
    pending_for: u64,
    spi: u32,
    bytes: usize,
}

impl Esp {
    pub(crate) fn new(seed: u64) -> Self {
        let h = |x: u64| FixedState::with_seed(seed ^ x);
        Self {
            out: HashMap::with_hasher(h(0xe5b0)),
            inb: HashMap::with_hasher(h(0xe5b1)),
            pending: HashMap::with_hasher(h(0xe5b2)),
            servers: HashMap::with_hasher(h(0xe5b3)),
            wake: None,
        }
    }

    /// SAs tracked (outbound, inbound).
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.out.len(), self.inb.len())
    }

    fn arm(&mut self, at: Instant) {
        self.wake = earliest(self.wake, Some(at));
    }

    /// Outbound ESP from `client` to `server` leaving from `public`.
    fn outbound(&mut self, client: Ipv4Addr, server: Ipv4Addr, public: Ipv4Addr, p: EspSeen) -> Outcome {
        let t = p.now.as_nanos();
        let out_key = OutKey { client, server, spi: p.spi };
        if let Some(sa) = self.out.get_mut(&out_key) {
            sa.last_seen = t;
            sa.bytes += p.bytes as u64;
            sa.packets += 1;
            let due = sa.reported.is_none_or(|r| t.saturating_sub(r) >= nanos(REPORT_EVERY));
            let action = Action::Rewrite(sa.public);
            if !due {
                return (action, None, None);
            }
            sa.reported = Some(t);
            let sa = *sa;
            return (action, None, Some(self.report(out_key, &sa)));
        }
        // A new SA: this client becomes the one pending for the server, unless another is.
        let key = ServerKey { public, server };
        if let Some(w) = self.pending.get(&key)
            && w.client != client
            && t.saturating_sub(w.since) < p.pending_for
        {
            let reason = DropReason::EspServerBusy;
            let ev = Event::PassthroughRefused { protocol: Protocol::Ipsec, client, server, reason };
            let refused = EspRefused {
                subject: subject(client, server, public, p.spi, 0),
                waiting_client: w.client,
                waiting_since: Instant::from_nanos(w.since),
                let_in_by: Instant::from_nanos(w.since.saturating_add(p.pending_for)),
            };
            return (Action::Refuse { reason, icmp: true }, Some(ev), Some(Observation::EspRefused(refused)));
        }
        self.pending.insert(key, Pending { client, spi_out: p.spi, since: t });
        let sa = OutSa {
            public,
            last_seen: t,
            bytes: p.bytes as u64,
            spi_in: None,
            first_seen: t,
            packets: 1,
            reported: None,
        };
        self.out.insert(out_key, sa);
        *self.servers.entry(key).or_insert(0) += 1;
        (Action::Rewrite(public), None, Some(Observation::EspAccepted { client, server }))
    }

    /// What the diagnosis needs of outbound SA `k`: what it sent, and when its inbound
    /// partner last answered.
    fn report(&self, k: OutKey, sa: &OutSa) -> Observation {
        let back = sa.spi_in.and_then(|i| self.inb.get(&InKey { public: sa.public, server: k.server, spi: i }));
        Observation::Data(DataReport {
            carrier: Carrier::Esp,
            subject: subject(k.client, k.server, sa.public, k.spi, sa.spi_in.unwrap_or(0)),
            first_out: Instant::from_nanos(sa.first_seen),
            packets_out: sa.packets,
            packets_in: back.map_or(0, |b| b.packets),
            last_in: back.map(|b| Instant::from_nanos(b.last_seen)),
            last_ike_in: None,
        })
    }

    /// Inbound ESP from `server` to `public`.
    fn inbound(&mut self, public: Ipv4Addr, server: Ipv4Addr, p: EspSeen) -> Outcome {
        let t = p.now.as_nanos();
        let in_key = InKey { public, server, spi: p.spi };
        if let Some(sa) = self.inb.get_mut(&in_key) {
            sa.last_seen = t;
            sa.bytes += p.bytes as u64;
            sa.packets += 1;
            return (Action::Rewrite(sa.client), None, None);
        }
        let key = ServerKey { public, server };
        match self.pending.get(&key).copied() {
            Some(w) if t.saturating_sub(w.since) < p.pending_for => {
                self.pending.remove(&key);
                self.inb.insert(in_key, InSa { client: w.client, last_seen: t, bytes: p.bytes as u64, packets: 1 });
                if let Some(o) = self.out.get_mut(&OutKey { client: w.client, server, spi: w.spi_out }) {
                    o.spi_in = Some(p.spi);
                }
                let ids = TunnelIds::Esp { spi_out: w.spi_out, spi_in: p.spi };
                let ev = Event::TunnelUp { protocol: Protocol::Ipsec, client: w.client, server, public, ids };
                let answered = Observation::DataAnswered {
                    kind: FindingKind::EspOneWay,
                    subject: subject(w.client, server, public, w.spi_out, p.spi),
                };
                (Action::Rewrite(w.client), Some(ev), Some(answered))
            }
            _ if self.servers.contains_key(&key) => {
                let unplaced = Observation::EspUnplaced { public, server };
                (Action::Refuse { reason: DropReason::EspUnknownSpi, icmp: false }, None, Some(unplaced))
            }
            _ => (Action::Refuse { reason: DropReason::EspNoServer, icmp: false }, None, None),
        }
    }

    /// Ends SAs idle for `idle` ns and pending claims older than `pending_for` ns; returns
    /// when the next one may end.
    fn expire(&mut self, now: Instant, idle: u64, pending_for: u64, out: &mut Output) -> Option<Instant> {
        let t = now.as_nanos();
        self.pending.retain(|_, p| t.saturating_sub(p.since) < pending_for);
        let servers = &mut self.servers;
        let inb = &mut self.inb;
        self.out.retain(|k, sa| {
            let in_key = |spi| InKey { public: sa.public, server: k.server, spi };
            let in_seen = sa.spi_in.and_then(|i| inb.get(&in_key(i))).map_or(0, |i| i.last_seen);
            let alive = t.saturating_sub(sa.last_seen.max(in_seen)) < idle;
            if !alive {
                let (bytes_in, spi_in) = match sa.spi_in.and_then(|i| inb.remove(&in_key(i)).map(|x| (x, i))) {
                    Some((x, i)) => (x.bytes, i),
                    None => (0, 0),
                };
                let sk = ServerKey { public: sa.public, server: k.server };
                if let Some(n) = servers.get_mut(&sk) {
                    *n -= 1;
                    if *n == 0 {
                        servers.remove(&sk);
                    }
                }
                if sa.spi_in.is_some() {
                    out.event(Event::TunnelDown {
                        protocol: Protocol::Ipsec,
                        client: k.client,
                        server: k.server,
                        ids: TunnelIds::Esp { spi_out: k.spi, spi_in },
                        bytes_out: sa.bytes,
                        bytes_in,
                    });
                }
            }
            alive
        });
        let sa_ends = self.out.iter().map(|(k, sa)| {
            let in_seen = sa.spi_in.and_then(|i| self.inb.get(&InKey { public: sa.public, server: k.server, spi: i }));
            sa.last_seen.max(in_seen.map_or(0, |i| i.last_seen)).saturating_add(idle)
        });
        let claim_ends = self.pending.values().map(|p| p.since.saturating_add(pending_for));
        sa_ends.chain(claim_ends).min().map(Instant::from_nanos)
    }

    /// The client whose outbound SA `spi` to `server` leaves from `public`. A scan: ICMP
    /// errors are rare and rate-limited upstream.
    fn client_of_outbound(&self, public: Ipv4Addr, server: Ipv4Addr, spi: u32) -> Option<Ipv4Addr> {
        self.out.iter().find(|(k, sa)| k.server == server && k.spi == spi && sa.public == public).map(|(k, _)| k.client)
    }

    /// The SPI and size of an ESP packet, or why it is refused.
    fn seen(cx: &Cx<'_>, packet: &[u8]) -> Result<EspSeen, DropReason> {
        let ip = Ipv4Packet::new_unchecked(packet);
        // Later fragments carry no SPI to follow.
        if ip.frag_offset() != 0 {
            return Err(DropReason::FragmentDropped);
        }
        let esp = EspPacket::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
        Ok(EspSeen {
            now: cx.now,
            pending_for: nanos(cx.config.timeouts.esp_pending),
            spi: esp.spi(),
            bytes: usize::from(ip.total_len()),
        })
    }

    fn translate_out(&mut self, cx: &mut Cx<'_>, flow: &Flow, packet: &mut [u8]) -> Verdict {
        let seen = match Self::seen(cx, packet) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        let public = cx.public_addr_for(flow.src);
        let (action, ev, obs) = self.outbound(flow.src, flow.dst, public, seen);
        self.arm(cx.now + cx.config.timeouts.esp_pending.min(cx.config.timeouts.udp));
        if let Some(ev) = ev {
            cx.event(ev);
        }
        if let Some(obs) = obs {
            cx.observe(obs);
        }
        match action {
            Action::Rewrite(public) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
                ip.set_src(public);
                ip.decrement_ttl();
                Verdict::Forward(Side::Wan)
            }
            Action::Refuse { reason, icmp } => {
                if icmp {
                    icmp_reply::admin_prohibited(cx, Side::Lan, packet);
                }
                Verdict::Drop(reason)
            }
        }
    }

    fn translate_in(&mut self, cx: &mut Cx<'_>, flow: &Flow, packet: &mut [u8]) -> Verdict {
        let seen = match Self::seen(cx, packet) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        let (action, ev, obs) = self.inbound(flow.dst, flow.src, seen);
        if let Some(ev) = ev {
            cx.event(ev);
        }
        if let Some(obs) = obs {
            cx.observe(obs);
        }
        match action {
            Action::Rewrite(client) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
                ip.set_dst(client);
                ip.decrement_ttl();
                Verdict::Forward(Side::Lan)
            }
            Action::Refuse { reason, .. } => Verdict::Drop(reason),
        }
    }
}

impl VpnProtocol for Esp {
    fn switch(&self) -> Protocol {
        Protocol::Ipsec
    }

    fn claims(&self, protocol: IpProtocol, _: u16, _: u16) -> bool {
        matches!(protocol, IpProtocol::ESP | IpProtocol::AH)
    }

    fn packet(&mut self, cx: &mut Cx<'_>, side: Side, flow: &Flow, packet: &mut [u8]) -> Option<Verdict> {
        Some(match (flow.protocol, side) {
            (IpProtocol::ESP, Side::Lan) => self.translate_out(cx, flow, packet),
            (IpProtocol::ESP, Side::Wan) => self.translate_in(cx, flow, packet),
            (_, Side::Lan) => {
                icmp_reply::admin_prohibited(cx, Side::Lan, packet);
                Verdict::Drop(DropReason::AhRefused)
            }
            (_, Side::Wan) => Verdict::Drop(DropReason::AhRefused),
        })
    }

    fn icmp_error_client(&self, quoted: &QuotedDatagram<&[u8]>) -> Option<Result<Ipv4Addr, DropReason>> {
        if quoted.protocol() != IpProtocol::ESP {
            return None;
        }
        let spi = EspPacket::new_checked(quoted.transport()).ok()?.spi();
        Some(self.client_of_outbound(quoted.src(), quoted.dst(), spi).ok_or(DropReason::IcmpErrorNoSession))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    fn handle_timeout(&mut self, now: Instant, config: &EngineConfig, out: &mut Output) {
        let (idle, pending) = (nanos(config.timeouts.udp), nanos(config.timeouts.esp_pending));
        self.wake = self.expire(now, idle, pending, out);
    }

    fn tunnels(&self, now: Instant, out: &mut Vec<TunnelInfo>) {
        let now = now.as_nanos();
        for (k, sa) in &self.out {
            let back = sa.spi_in.and_then(|i| self.inb.get(&InKey { public: sa.public, server: k.server, spi: i }));
            out.push(TunnelInfo {
                protocol: Protocol::Ipsec,
                kind: "ESP SA pair",
                client: k.client.into(),
                server: k.server.into(),
                public: Some(sa.public.into()),
                ids: TunnelIds::Esp { spi_out: k.spi, spi_in: sa.spi_in.unwrap_or(0) },
                bytes_out: sa.bytes,
                bytes_in: back.map_or(0, |b| b.bytes),
                idle_secs: now.saturating_sub(sa.last_seen.max(back.map_or(0, |b| b.last_seen))) / 1_000_000_000,
                state: if sa.spi_in.is_some() { "up" } else { "waiting for the server's SPI" },
            });
        }
    }

    fn clear(&mut self) -> usize {
        let n = self.out.len() + self.inb.len();
        self.out.clear();
        self.inb.clear();
        self.pending.clear();
        self.servers.clear();
        self.wake = None;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
    const PENDING: u64 = 10_000_000_000;

    fn seen(secs: u64, spi: u32) -> EspSeen {
        EspSeen { now: Instant::from_secs(secs), pending_for: PENDING, spi, bytes: 100 }
    }

    #[test]
    fn first_inbound_spi_binds_to_the_pending_client() {
        let mut esp = Esp::new(1);
        assert_eq!(esp.outbound(A, SERVER, PUBLIC, seen(1, 0xa1)).0, Action::Rewrite(PUBLIC));
        let (action, ev, _) = esp.inbound(PUBLIC, SERVER, seen(2, 0x51));
        assert_eq!(action, Action::Rewrite(A));
        assert!(
            matches!(ev, Some(Event::TunnelUp { client, ids: TunnelIds::Esp { spi_out: 0xa1, spi_in: 0x51 }, .. }) if client == A)
        );
        // Bound: the same SPI keeps going to A, with no new event.
        let (action, ev, obs) = esp.inbound(PUBLIC, SERVER, seen(3, 0x51));
        assert_eq!((action, ev), (Action::Rewrite(A), None));
        assert!(obs.is_none());
    }

    #[test]
    fn second_client_waits_while_the_first_is_pending() {
        let mut esp = Esp::new(1);
        let _ = esp.outbound(A, SERVER, PUBLIC, seen(1, 0xa1));
        let (action, ev, obs) = esp.outbound(B, SERVER, PUBLIC, seen(2, 0xb1));
        assert_eq!(action, Action::Refuse { reason: DropReason::EspServerBusy, icmp: true });
        assert!(matches!(ev, Some(Event::PassthroughRefused { reason: DropReason::EspServerBusy, .. })));
        // The diagnosis learns who it waits for, and until when.
        let Some(Observation::EspRefused(r)) = obs else { panic!("{obs:?}") };
        assert_eq!((r.waiting_client, r.let_in_by), (A, Instant::from_secs(11)));
        // A binds; then B may start its SA and is the one pending.
        let _ = esp.inbound(PUBLIC, SERVER, seen(3, 0x51));
        assert_eq!(esp.outbound(B, SERVER, PUBLIC, seen(4, 0xb1)).0, Action::Rewrite(PUBLIC));
        assert_eq!(esp.inbound(PUBLIC, SERVER, seen(5, 0x52)).0, Action::Rewrite(B));
    }

    #[test]
    fn unknown_spis_are_refused_with_their_reason() {
        let mut esp = Esp::new(1);
        assert_eq!(
            esp.inbound(PUBLIC, SERVER, seen(1, 9)).0,
            Action::Refuse { reason: DropReason::EspNoServer, icmp: false }
        );
        let _ = esp.outbound(A, SERVER, PUBLIC, seen(1, 0xa1));
        let _ = esp.inbound(PUBLIC, SERVER, seen(2, 0x51));
        assert_eq!(
            esp.inbound(PUBLIC, SERVER, seen(3, 0x99)).0,
            Action::Refuse { reason: DropReason::EspUnknownSpi, icmp: false }
        );
    }

    #[test]
    fn idle_pairs_expire_with_a_tunnel_down_and_the_next_wake_up() {
        let mut esp = Esp::new(1);
        let config = EngineConfig::default();
        let mut out = Output::new(&config, Instant::ZERO);
        let _ = esp.outbound(A, SERVER, PUBLIC, seen(1, 0xa1));
        let _ = esp.inbound(PUBLIC, SERVER, seen(2, 0x51));
        let idle = 300_000_000_000;
        assert_eq!(esp.expire(Instant::from_secs(100), idle, PENDING, &mut out), Some(Instant::from_secs(302)));
        assert_eq!(esp.expire(Instant::from_secs(302), idle, PENDING, &mut out), None);
        assert_eq!(esp.len(), (0, 0));
        assert!(matches!(out.pop_event(), Some(Event::TunnelDown { bytes_out: 100, bytes_in: 100, .. })));
    }

    #[test]
    fn icmp_errors_find_the_client_by_spi() {
        let mut esp = Esp::new(1);
        let _ = esp.outbound(A, SERVER, PUBLIC, seen(1, 0xa1));
        assert_eq!(esp.client_of_outbound(PUBLIC, SERVER, 0xa1), Some(A));
        assert_eq!(esp.client_of_outbound(PUBLIC, SERVER, 0xa2), None);
    }
}
