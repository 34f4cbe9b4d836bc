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

use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::icmp::QuotedDatagram;
use natpass_wire::ike::IkePacket;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::udp::{self, UdpPacket};
use natpass_wire::{AddrChange, IpProtocol};

use super::{Flow, Protocol, TunnelIds, VpnProtocol, earliest, nanos};
use crate::config::EngineConfig;
use crate::output::{Cx, Output};
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Event, TunnelInfo};

/// IKE's port (RFC 7296 §2).
pub(crate) const IKE_PORT: u16 = 500;
/// NAT-T's port (RFC 3948 §1).
pub(crate) const NAT_T_PORT: u16 = 4500;

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

/// The IKE port-500 passthrough of one engine.
pub(crate) struct Ike {
    by_spi: HashMap<SpiKey, SpiEntry, FixedState>,
    /// Clients talking IKE to a server: client → last seen.
    clients: HashMap<ServerKey, Vec<(Ipv4Addr, u64)>, FixedState>,
    /// IKE SAs for tunnel events, by their initiator SPI.
    sas: HashMap<SpiKey, IkeSa, FixedState>,
    wake: Option<Instant>,
}

impl Ike {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            by_spi: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce0)),
            clients: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce1)),
            sas: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce2)),
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

    /// Forgets SPIs and clients idle for `idle` ns; IKE SAs that go raise `TunnelDown`.
    /// Returns when the next one may go.
    fn expire(&mut self, now: Instant, idle: u64, out: &mut Output) -> Option<Instant> {
        let t = now.as_nanos();
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
        seen.min().map(|t| Instant::from_nanos(t.saturating_add(idle)))
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
        let client = match self.inbound(ServerKey { public: flow.dst, server: flow.src }, m) {
            Ok(c) => c,
            Err(reason) => return Verdict::Drop(reason),
        };
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
                client: sa.client,
                server: k.at.server,
                public: k.at.public,
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
