//! IKE on UDP port 500 for several clients to one server, keeping source port 500 on the
//! public side for every client (RFC 3715 §2.3 o: servers and some clients insist on it), and
//! NAT-T on UDP 4500 (RFC 3948), which needs nothing of its own: it rides NAPT on an
//! endpoint-independent mapping (RFC 4787 REQ-1), under the IPsec switch.
//!
//! Clients that share public port 500 towards one server are told apart by the SPIs in the
//! IKE header (IKEv2: RFC 7296 §3.1 SPIi/SPIr; IKEv1: RFC 2408 §3.1 cookies). Both SPIs of
//! every outbound message are learned, and the responder's SPI from the first reply, so new IKE
//! SAs (rekeys started by either side) keep reaching their client once that client has sent
//! under them.
//!
//! When an inbound message matches no SPI (the server starts a new IKE SA with SPIs nobody
//! has used yet) natpass delivers it to the client when exactly one client talks to that server
//! on port 500, and otherwise drops it and counts `ike_ambiguous`: a guess could hand one
//! client's keys to another. The server retransmits; once the right client sends under the new
//! SA it is learned. SPIs, clients and SAs idle for the UDP mapping timeout are forgotten.
//!
//! ICMP errors quoting our IKE go back by the quoted SPIs, or to the only client.
//!
//! For the diagnosis it reports every IKE message it sees, on 500 ↔ 500 and on the NAPT path
//! (IKE from another port, IKE behind the non-ESP marker on 4500, RFC 3948 §2.2), and keeps a
//! record per NAT-T flow: its ESP in UDP each way, its keepalives (RFC 3948 §2.3, §4), and, past
//! the mapping's expiry, what the flow was, so that the server's packets arriving for a public
//! port that is gone can be explained.

use std::net::Ipv4Addr;

use core::time::Duration;
use foldhash::fast::FixedState;
use hashbrown::HashMap;

use natpass_wire::icmp::QuotedDatagram;
use natpass_wire::ike::{IkePacket, Udp4500Kind, classify_udp_4500};
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::udp::{self, UdpPacket};
use natpass_wire::{AddrChange, IpProtocol};

use super::{Flow, NaptPacket, Protocol, TunnelIds, VpnProtocol, earliest, nanos};
use crate::config::EngineConfig;
use crate::diagnosis::{
    Carrier, DataReport, FindingKind, IkeHeader, IkeSeen, NatTGone, Observation, Ports, REPORT_EVERY, ServerAtPublic,
    Subject,
};
use crate::output::{Cx, Output};
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Event, TunnelInfo};

/// IKE's port (RFC 7296 §2).
pub(crate) const IKE_PORT: u16 = 500;
/// NAT-T's port (RFC 3948 §1).
pub(crate) const NAT_T_PORT: u16 = 4500;
/// The most NAT-T flows recorded for the diagnosis; beyond it new flows go unrecorded.
const NAT_T_FLOWS_MAX: usize = 16_384;
/// How long a NAT-T flow's record outlives its mapping, to explain late server packets.
const NAT_T_KEEP: Duration = Duration::from_secs(3600);

/// A NAT-T flow as the server sees it: the public address and port, and the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct NatTKey {
    public: Ipv4Addr,
    public_port: u16,
    server: Ipv4Addr,
}

/// What the diagnosis needs of a NAT-T flow.
#[derive(Clone, Copy, Debug)]
struct NatTFlow {
    client: Ipv4Addr,
    client_port: u16,
    last_out: Instant,
    last_in: Option<Instant>,
    esp_first_out: Option<Instant>,
    esp_out: u64,
    esp_in: u64,
    esp_last_in: Option<Instant>,
    ike_last_in: Option<Instant>,
    /// The SPI of the client's last ESP.
    spi: u32,
    keepalives: u64,
    last_keepalive: Option<Instant>,
    keepalive_every: Option<Duration>,
    reported: Option<Instant>,
}

impl NatTFlow {
    fn idle_since(&self) -> Instant {
        self.last_in.map_or(self.last_out, |i| i.max(self.last_out))
    }

    fn subject(&self, k: &NatTKey) -> Subject {
        Subject {
            protocol: Protocol::Ipsec,
            client: self.client,
            server: k.server,
            public: Some(k.public),
            ids: (self.spi != 0).then_some(TunnelIds::Esp { spi_out: self.spi, spi_in: 0 }),
            ports: Some(Ports { client: self.client_port, public: k.public_port, server: NAT_T_PORT }),
        }
    }
}

/// The fields of an IKE message's header the diagnosis reads.
fn header_of(ike: &IkePacket<&[u8]>) -> IkeHeader {
    IkeHeader {
        spi_i: ike.initiator_spi(),
        spi_r: ike.responder_spi(),
        version: ike.major_version(),
        exchange: ike.exchange_type(),
        msg_id: ike.message_id(),
        response: ike.is_response(),
        len: ike.length(),
    }
}

/// A server as seen from one public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    public: Ipv4Addr,
    server: Ipv4Addr,
}

/// An SPI (either side's) towards a server from a public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SpiKey {
    at: ServerKey,
    spi: u64,
}

#[derive(Clone, Copy, Debug)]
struct SpiEntry {
    client: Ipv4Addr,
    last_seen: u64,
}

#[derive(Clone, Copy, Debug)]
struct IkeSa {
    client: Ipv4Addr,
    spi_r: u64,
    last_seen: u64,
    bytes_out: u64,
    bytes_in: u64,
}

/// The SPIs of one IKE message, and its size.
#[derive(Clone, Copy, Debug)]
struct Message {
    now: Instant,
    spi_i: u64,
    spi_r: u64,
    bytes: usize,
}

/// Who an IKE message is between, for [`Ike::observe`].
#[derive(Clone, Copy, Debug)]
struct IkeSeenAt {
    at: ServerAtPublic,
    client: Option<Ipv4Addr>,
    from_client: bool,
    ports: Ports,
}

/// Ports of IKE on 500 ↔ 500.
const PORTS_500: Ports = Ports { client: IKE_PORT, public: IKE_PORT, server: IKE_PORT };

/// The IKE port-500 passthrough of one engine.
pub(crate) struct Ike {
    by_spi: HashMap<SpiKey, SpiEntry, FixedState>,
    /// Clients talking IKE to a server: client → last seen.
    clients: HashMap<ServerKey, Vec<(Ipv4Addr, u64)>, FixedState>,
    /// IKE SAs for tunnel events, by their initiator SPI.
    sas: HashMap<SpiKey, IkeSa, FixedState>,
    /// NAT-T flows, for the diagnosis.
    nat_t: HashMap<NatTKey, NatTFlow, FixedState>,
    wake: Option<Instant>,
}

impl Ike {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            by_spi: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce0)),
            clients: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce1)),
            sas: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce2)),
            nat_t: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce3)),
            wake: None,
        }
    }

    /// SPIs tracked.
    pub(crate) fn len(&self) -> usize {
        self.by_spi.len()
    }

    fn learn(&mut self, t: u64, at: ServerKey, spi: u64, client: Ipv4Addr) {
        if spi != 0 {
            self.by_spi.insert(SpiKey { at, spi }, SpiEntry { client, last_seen: t });
        }
    }

    fn touch_client(&mut self, t: u64, at: ServerKey, client: Ipv4Addr) {
        let list = self.clients.entry(at).or_default();
        match list.iter_mut().find(|c| c.0 == client) {
            Some(c) => c.1 = t,
            None => list.push((client, t)),
        }
    }

    /// An IKE message from `client` to the server of `at`, both on port 500.
    fn outbound(&mut self, client: Ipv4Addr, at: ServerKey, m: Message) -> Option<Event> {
        let t = m.now.as_nanos();
        self.learn(t, at, m.spi_i, client);
        self.learn(t, at, m.spi_r, client);
        self.touch_client(t, at, client);
        if m.spi_i == 0 {
            return None;
        }
        let sa = self.sas.entry(SpiKey { at, spi: m.spi_i }).or_insert(IkeSa {
            client,
            spi_r: 0,
            last_seen: 0,
            bytes_out: 0,
            bytes_in: 0,
        });
        let new_sa = sa.last_seen == 0;
        sa.last_seen = t;
        sa.bytes_out += m.bytes as u64;
        if m.spi_r != 0 {
            sa.spi_r = m.spi_r;
        }
        new_sa.then_some(Event::TunnelUp {
            protocol: Protocol::Ipsec,
            client,
            server: at.server,
            public: at.public,
            ids: TunnelIds::Ike { spi_i: m.spi_i, spi_r: m.spi_r },
        })
    }

    /// An IKE message from the server of `at`, port 500 to 500: the client it is for.
    fn inbound(&mut self, at: ServerKey, m: Message) -> Result<Ipv4Addr, DropReason> {
        let t = m.now.as_nanos();
        let known = [m.spi_i, m.spi_r]
            .into_iter()
            .filter(|&s| s != 0)
            .find_map(|spi| self.by_spi.get(&SpiKey { at, spi }).map(|e| e.client));
        let client = match known {
            Some(c) => c,
            None => match self.clients.get(&at).map(Vec::as_slice) {
                Some([(only, _)]) => *only,
                Some([_, _, ..]) => return Err(DropReason::IkeAmbiguous),
                _ => return Err(DropReason::NoMapping),
            },
        };
        // Learn the responder's SPI from its reply, and refresh both.
        if let Some(sa) = self.sas.get_mut(&SpiKey { at, spi: m.spi_i }) {
            sa.last_seen = t;
            sa.bytes_in += m.bytes as u64;
            if m.spi_r != 0 {
                sa.spi_r = m.spi_r;
            }
        }
        self.learn(t, at, m.spi_i, client);
        self.learn(t, at, m.spi_r, client);
        self.touch_client(t, at, client);
        Ok(client)
    }

    /// The client an ICMP error about our IKE message to the server of `at` is for: by its
    /// SPIs when the error quotes them, else the only client talking to that server.
    fn client_for(&self, at: ServerKey, spis: Option<(u64, u64)>) -> Option<Ipv4Addr> {
        if let Some((i, r)) = spis {
            let hit = [i, r].into_iter().filter(|&s| s != 0).find_map(|spi| self.by_spi.get(&SpiKey { at, spi }));
            if let Some(h) = hit {
                return Some(h.client);
            }
        }
        match self.clients.get(&at).map(Vec::as_slice) {
            Some([(only, _)]) => Some(*only),
            _ => None,
        }
    }

    /// Forgets SPIs and clients idle for `idle` ns; IKE SAs that go raise `TunnelDown`;
    /// NAT-T records go [`NAT_T_KEEP`] after their mapping. Returns when the next one may go.
    fn expire(&mut self, now: Instant, idle: u64, out: &mut Output) -> Option<Instant> {
        let t = now.as_nanos();
        let keep = Duration::from_nanos(idle) + NAT_T_KEEP;
        self.nat_t.retain(|_, f| now.since(f.idle_since()) < keep);
        let nat_t_ends = self.nat_t.values().map(|f| f.idle_since() + keep).min();
        self.sas.retain(|k, sa| {
            let keep = t.saturating_sub(sa.last_seen) < idle;
            if !keep {
                out.event(Event::TunnelDown {
                    protocol: Protocol::Ipsec,
                    client: sa.client,
                    server: k.at.server,
                    ids: TunnelIds::Ike { spi_i: k.spi, spi_r: sa.spi_r },
                    bytes_out: sa.bytes_out,
                    bytes_in: sa.bytes_in,
                });
            }
            keep
        });
        self.by_spi.retain(|_, e| t.saturating_sub(e.last_seen) < idle);
        self.clients.retain(|_, list| {
            list.retain(|c| t.saturating_sub(c.1) < idle);
            !list.is_empty()
        });
        let seen = self.sas.values().map(|s| s.last_seen);
        let seen = seen.chain(self.by_spi.values().map(|e| e.last_seen));
        let seen = seen.chain(self.clients.values().flatten().map(|c| c.1));
        earliest(seen.min().map(|t| Instant::from_nanos(t.saturating_add(idle))), nat_t_ends)
    }

    /// An IKE message of `packet` whose UDP payload holds it from `offset` on (4 behind the
    /// non-ESP marker), for the diagnosis.
    fn observe(cx: &mut Cx<'_>, packet: &[u8], offset: usize, seen: IkeSeenAt) {
        let ip = Ipv4Packet::new_unchecked(packet);
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else { return };
        let Some(Ok(ike)) = udp.payload().get(offset..).map(IkePacket::new_checked) else { return };
        // Fragments leave the client, or natpass splits the datagram to fit its WAN MTU.
        let fragmented = seen.from_client && (ip.more_frags() || ip.total_len() > cx.config.wan_mtu);
        cx.observe(Observation::Ike(IkeSeen {
            at: seen.at,
            client: seen.client,
            from_client: seen.from_client,
            ports: seen.ports,
            header: header_of(&ike),
            fragmented,
        }));
    }

    /// A NAT-T packet (UDP to or from the server's port 4500) on the NAPT path: the flow's
    /// record, and what it tells the diagnosis.
    fn nat_t(&mut self, cx: &mut Cx<'_>, napt: &NaptPacket, kind: Udp4500Kind, spi: u32) -> Option<Observation> {
        let now = cx.now;
        let key = NatTKey { public: napt.peers.public, public_port: napt.public_port, server: napt.peers.server };
        let (client, client_port) = (napt.peers.client, napt.client_port);
        if napt.from == Side::Lan {
            let fresh = NatTFlow {
                client,
                client_port,
                last_out: now,
                last_in: None,
                esp_first_out: None,
                esp_out: 0,
                esp_in: 0,
                esp_last_in: None,
                ike_last_in: None,
                spi: 0,
                keepalives: 0,
                last_keepalive: None,
                keepalive_every: None,
                reported: None,
            };
            if !self.nat_t.contains_key(&key) && self.nat_t.len() >= NAT_T_FLOWS_MAX {
                return None;
            }
            self.wake = earliest(self.wake, Some(now + cx.config.timeouts.udp + NAT_T_KEEP));
            let f = self.nat_t.entry(key).or_insert(fresh);
            if (f.client, f.client_port) != (client, client_port) {
                *f = fresh;
            }
            f.last_out = now;
            match kind {
                Udp4500Kind::Keepalive => {
                    f.keepalive_every = f.last_keepalive.map(|k| now.since(k));
                    f.last_keepalive = Some(now);
                    f.keepalives += 1;
                }
                Udp4500Kind::Esp => {
                    f.spi = spi;
                    f.esp_out += 1;
                    let first_out = *f.esp_first_out.get_or_insert(now);
                    if f.reported.is_some_and(|r| now.since(r) < REPORT_EVERY) {
                        return None;
                    }
                    f.reported = Some(now);
                    return Some(Observation::Data(DataReport {
                        carrier: Carrier::EspInUdp,
                        subject: f.subject(&key),
                        first_out,
                        packets_out: f.esp_out,
                        packets_in: f.esp_in,
                        last_in: f.esp_last_in,
                        last_ike_in: f.ike_last_in,
                    }));
                }
                Udp4500Kind::Ike | Udp4500Kind::Malformed => {}
            }
            return None;
        }
        let f = self.nat_t.get_mut(&key).filter(|f| (f.client, f.client_port) == (client, client_port))?;
        f.last_in = Some(now);
        match kind {
            Udp4500Kind::Esp => {
                f.esp_in += 1;
                let first = f.esp_last_in.is_none();
                f.esp_last_in = Some(now);
                first.then(|| Observation::DataAnswered { kind: FindingKind::EspOneWay, subject: f.subject(&key) })
            }
            Udp4500Kind::Ike => {
                f.ike_last_in = Some(now);
                None
            }
            Udp4500Kind::Keepalive | Udp4500Kind::Malformed => None,
        }
    }

    fn message(packet: &[u8], now: Instant) -> Option<Message> {
        let ip = Ipv4Packet::new_unchecked(packet);
        let udp = UdpPacket::new_checked(ip.payload()).ok()?;
        let ike = IkePacket::new_checked(udp.payload()).ok()?;
        Some(Message {
            now,
            spi_i: ike.initiator_spi(),
            spi_r: ike.responder_spi(),
            bytes: usize::from(ip.total_len()),
        })
    }

    fn translate_out(&mut self, cx: &mut Cx<'_>, flow: &Flow, packet: &mut [u8]) -> Verdict {
        let Some(m) = Self::message(packet, cx.now) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let public = cx.public_addr_for(flow.src);
        if let Some(ev) = self.outbound(flow.src, ServerKey { public, server: flow.dst }, m) {
            cx.event(ev);
        }
        let at = ServerAtPublic { public, server: flow.dst };
        Self::observe(cx, packet, 0, IkeSeenAt { at, client: Some(flow.src), from_client: true, ports: PORTS_500 });
        self.wake = earliest(self.wake, Some(cx.now + cx.config.timeouts.udp));
        // Port 500 stays; only the pseudo-header address changes in the UDP checksum.
        let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
        UdpPacket::new_unchecked(ip.payload_mut()).set_pseudo_addr(AddrChange::new(flow.src, public));
        ip.set_src(public);
        ip.decrement_ttl();
        Verdict::Forward(Side::Wan)
    }

    fn translate_in(&mut self, cx: &mut Cx<'_>, flow: &Flow, packet: &mut [u8]) -> Verdict {
        let Some(m) = Self::message(packet, cx.now) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let at = ServerAtPublic { public: flow.dst, server: flow.src };
        let seen = |client| IkeSeenAt { at, client, from_client: false, ports: PORTS_500 };
        let client = match self.inbound(ServerKey { public: flow.dst, server: flow.src }, m) {
            Ok(c) => c,
            Err(reason) => {
                if reason == DropReason::IkeAmbiguous {
                    // The server answers someone: natpass cannot tell whom.
                    Self::observe(cx, packet, 0, seen(None));
                }
                return Verdict::Drop(reason);
            }
        };
        Self::observe(cx, packet, 0, seen(Some(client)));
        let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
        UdpPacket::new_unchecked(ip.payload_mut()).set_pseudo_addr(AddrChange::new(flow.dst, client));
        ip.set_dst(client);
        ip.decrement_ttl();
        Verdict::Forward(Side::Lan)
    }
}

impl VpnProtocol for Ike {
    fn switch(&self) -> Protocol {
        Protocol::Ipsec
    }

    fn claims(&self, protocol: IpProtocol, a: u16, b: u16) -> bool {
        protocol == IpProtocol::UDP && [a, b].iter().any(|&p| p == IKE_PORT || p == NAT_T_PORT)
    }

    fn ports(&self) -> &'static [u16] {
        &[IKE_PORT, NAT_T_PORT]
    }

    /// IKE on 500 ↔ 500 is translated here; NAT-T and IKE from other ports ride NAPT.
    fn packet(&mut self, cx: &mut Cx<'_>, side: Side, flow: &Flow, packet: &mut [u8]) -> Option<Verdict> {
        if (flow.sport, flow.dport) != (IKE_PORT, IKE_PORT) {
            return None;
        }
        Some(match side {
            Side::Lan => self.translate_out(cx, flow, packet),
            Side::Wan => self.translate_in(cx, flow, packet),
        })
    }

    /// IKE from other ports and NAT-T ride NAPT; this reads them for the diagnosis.
    fn napt_packet(&mut self, cx: &mut Cx<'_>, napt: &NaptPacket, packet: &mut [u8]) -> Result<(), DropReason> {
        if napt.protocol != IpProtocol::UDP || !matches!(napt.server_port, IKE_PORT | NAT_T_PORT) {
            return Ok(());
        }
        let ip = Ipv4Packet::new_unchecked(&*packet);
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else { return Ok(()) };
        let payload = udp.payload();
        let from_client = napt.from == Side::Lan;
        let seen = IkeSeenAt {
            at: ServerAtPublic { public: napt.peers.public, server: napt.peers.server },
            client: Some(napt.peers.client),
            from_client,
            ports: Ports { client: napt.client_port, public: napt.public_port, server: napt.server_port },
        };
        if napt.server_port == IKE_PORT {
            Self::observe(cx, packet, 0, seen);
            return Ok(());
        }
        let kind = classify_udp_4500(payload);
        let spi = match payload {
            [a, b, c, d, ..] if kind == Udp4500Kind::Esp => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => 0,
        };
        if kind == Udp4500Kind::Ike {
            Self::observe(cx, packet, 4, seen);
        }
        if let Some(obs) = self.nat_t(cx, napt, kind, spi) {
            cx.observe(obs);
        }
        Ok(())
    }

    /// A packet from a server's port 4500 that no mapping takes: if it is for a NAT-T flow whose
    /// mapping expired, the diagnosis hears of it.
    fn unmatched_inbound(&mut self, cx: &mut Cx<'_>, flow: &Flow) {
        if flow.protocol != IpProtocol::UDP || flow.sport != NAT_T_PORT {
            return;
        }
        let key = NatTKey { public: flow.dst, public_port: flow.dport, server: flow.src };
        let Some(f) = self.nat_t.get(&key) else { return };
        let udp = cx.config.timeouts.udp;
        let idle_since = f.idle_since();
        if cx.now.since(idle_since) < udp {
            // The mapping cannot have expired: it went some other way.
            return;
        }
        let gone = NatTGone {
            subject: f.subject(&key),
            last_out: f.last_out,
            keepalives: f.keepalives,
            last_keepalive: f.last_keepalive,
            keepalive_every: f.keepalive_every,
            expired: idle_since + udp,
            udp_timeout: udp,
        };
        cx.observe(Observation::NatTGone(gone));
    }

    fn icmp_error_client(&self, quoted: &QuotedDatagram<&[u8]>) -> Option<Result<Ipv4Addr, DropReason>> {
        if quoted.protocol() != IpProtocol::UDP || (quoted.src_port(), quoted.dst_port()) != (IKE_PORT, IKE_PORT) {
            return None;
        }
        // The SPIs when the router quoted enough of the message, else the only client.
        let ike = quoted.transport().get(udp::HEADER_LEN..).and_then(|b| IkePacket::new_checked(b).ok());
        let spis = ike.map(|k| (k.initiator_spi(), k.responder_spi()));
        let at = ServerKey { public: quoted.src(), server: quoted.dst() };
        Some(self.client_for(at, spis).ok_or(DropReason::IcmpErrorNoSession))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    fn handle_timeout(&mut self, now: Instant, config: &EngineConfig, out: &mut Output) {
        self.wake = self.expire(now, nanos(config.timeouts.udp), out);
    }

    fn tunnels(&self, now: Instant, out: &mut Vec<TunnelInfo>) {
        let now = now.as_nanos();
        for (k, sa) in &self.sas {
            out.push(TunnelInfo {
                protocol: Protocol::Ipsec,
                kind: "IKE SA (UDP 500)",
                client: sa.client.into(),
                server: k.at.server.into(),
                public: Some(k.at.public.into()),
                ids: TunnelIds::Ike { spi_i: k.spi, spi_r: sa.spi_r },
                bytes_out: sa.bytes_out,
                bytes_in: sa.bytes_in,
                idle_secs: now.saturating_sub(sa.last_seen) / 1_000_000_000,
                state: if sa.spi_r != 0 { "up" } else { "initiating" },
            });
        }
    }

    fn clear(&mut self) -> usize {
        let n = self.sas.len();
        self.by_spi.clear();
        self.clients.clear();
        self.sas.clear();
        self.nat_t.clear();
        self.wake = None;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: ServerKey = ServerKey { public: Ipv4Addr::new(203, 0, 113, 1), server: Ipv4Addr::new(198, 51, 100, 1) };
    const A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);

    fn msg(secs: u64, spi_i: u64, spi_r: u64) -> Message {
        Message { now: Instant::from_secs(secs), spi_i, spi_r, bytes: 300 }
    }

    #[test]
    fn replies_reach_the_client_that_owns_the_spis() {
        let mut ike = Ike::new(1);
        assert!(matches!(ike.outbound(A, AT, msg(1, 0xaa, 0)), Some(Event::TunnelUp { .. })));
        assert_eq!(ike.outbound(B, AT, msg(1, 0xbb, 0)).map(|_| ()), Some(()));
        assert_eq!(ike.inbound(AT, msg(2, 0xbb, 0xb2)), Ok(B));
        assert_eq!(ike.inbound(AT, msg(2, 0xaa, 0xa2)), Ok(A));
        // The responder SPI was learned: a server-started SA under it finds B.
        assert_eq!(ike.inbound(AT, msg(3, 0, 0xb2)), Ok(B));
    }

    #[test]
    fn unknown_spis_with_two_clients_are_ambiguous() {
        let mut ike = Ike::new(1);
        let _ = ike.outbound(A, AT, msg(1, 0xaa, 0));
        assert_eq!(ike.inbound(AT, msg(2, 0x77, 0x78)), Ok(A), "one client: delivered to it");
        let _ = ike.outbound(B, AT, msg(2, 0xbb, 0));
        assert_eq!(ike.inbound(AT, msg(3, 0x99, 0x98)), Err(DropReason::IkeAmbiguous));
        assert_eq!(ike.client_for(AT, None), None);
        assert_eq!(ike.client_for(AT, Some((0xaa, 0))), Some(A));
    }

    #[test]
    fn idle_state_expires_with_its_tunnel_down() {
        let mut ike = Ike::new(1);
        let mut out = Output::new(&EngineConfig::default(), Instant::ZERO);
        let _ = ike.outbound(A, AT, msg(1, 0xaa, 0));
        let idle = 300_000_000_000;
        assert_eq!(ike.expire(Instant::from_secs(10), idle, &mut out), Some(Instant::from_secs(301)));
        assert_eq!(ike.expire(Instant::from_secs(301), idle, &mut out), None);
        assert_eq!(ike.len(), 0);
        assert!(matches!(out.pop_event(), Some(Event::TunnelDown { bytes_out: 300, .. })));
        assert_eq!(ike.inbound(AT, msg(302, 0xaa, 1)), Err(DropReason::NoMapping));
    }
}
