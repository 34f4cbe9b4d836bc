//! VPN passthrough: what a router's "VPN > VPN Passthrough" page switches (RFC 3715 §2 lists
//! why each protocol breaks under NAPT). One module per protocol, each owning its state, its
//! packets in both directions, the ICMP errors about them, its timers and its tunnel listing:
//!
//! - [`esp`]: raw ESP (RFC 4303) for several clients to one server by SPI learning, and AH,
//!   refused (RFC 3715 §2.1 a);
//! - [`ike`]: IKE on UDP 500 keeping port 500 for every client, told apart by SPIs
//!   (RFC 7296 §2.23, RFC 2408 §3.1), and NAT-T on UDP 4500 (RFC 3948), which rides NAPT;
//! - [`pptp`]: the Call ID ALG on TCP 1723 and enhanced GRE (RFC 2637);
//! - [`l2tp`]: L2TP on UDP 1701 (RFC 2661), which rides NAPT and may be answered from
//!   another port.
//!
//! [`Dispatch`] is the one dispatch point the packet path calls. A flow belongs to the
//! module that [claims](VpnProtocol::claims) it; its switch decides first: a switch that is
//! off blocks its protocol from the LAN and from the WAN, and removes its tunnels and
//! sessions. Adding a protocol means a module implementing [`VpnProtocol`] and one entry in
//! [`Dispatch::modules`] (and its `_mut` twin).

pub(crate) mod esp;
pub(crate) mod ike;
pub(crate) mod l2tp;
pub(crate) mod pptp;

use std::net::Ipv4Addr;

use natpass_wire::IpProtocol;
use natpass_wire::icmp::QuotedDatagram;

use crate::config::{EngineConfig, Filtering};
use crate::diagnosis::Observation;
use crate::output::{Cx, Output};
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Event, TunnelInfo};

/// A passthrough protocol, as on the router's settings page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// IPsec: IKE, NAT-T, ESP, AH.
    Ipsec,
    /// PPTP: TCP 1723 control and GRE.
    Pptp,
    /// L2TP: UDP 1701.
    L2tp,
}

impl Protocol {
    /// Every switch, in the order of the settings page.
    pub const ALL: [Protocol; 3] = [Protocol::Ipsec, Protocol::Pptp, Protocol::L2tp];

    /// A short name: `ipsec`, `pptp`, `l2tp`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipsec => "ipsec",
            Self::Pptp => "pptp",
            Self::L2tp => "l2tp",
        }
    }

    /// The protocol with short name `name` (see [`Protocol::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The drop reason of a packet refused because this switch is off.
    pub fn disabled_reason(self) -> DropReason {
        match self {
            Self::Ipsec => DropReason::IpsecDisabled,
            Self::Pptp => DropReason::PptpDisabled,
            Self::L2tp => DropReason::L2tpDisabled,
        }
    }

    /// Whether this switch is on in `config`.
    pub(crate) fn enabled(self, config: &EngineConfig) -> bool {
        let s = &config.passthrough;
        match self {
            Self::Ipsec => s.ipsec,
            Self::Pptp => s.pptp,
            Self::L2tp => s.l2tp,
        }
    }
}

impl core::fmt::Display for Protocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The identifiers that name a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelIds {
    /// An ESP SA pair: the client's outbound SPI and the server's, learned.
    Esp {
        /// SPI of the client → server SA.
        spi_out: u32,
        /// SPI of the server → client SA.
        spi_in: u32,
    },
    /// A PPTP call: the client's Call ID, the public one natpass gave it, the server's.
    Pptp {
        /// The client's own Call ID.
        client_call_id: u16,
        /// The public Call ID the server sees.
        public_call_id: u16,
        /// The server's Call ID (carried by outbound GRE).
        server_call_id: u16,
    },
    /// An L2TP tunnel: each end's Assigned Tunnel ID.
    L2tp {
        /// The client's (LAC's) tunnel ID.
        client_tunnel_id: u16,
        /// The server's (LNS's) tunnel ID.
        server_tunnel_id: u16,
    },
    /// An IKE SA on port 500: initiator and responder SPIs (IKEv1 cookies).
    Ike {
        /// Initiator SPI.
        spi_i: u64,
        /// Responder SPI (0 until the responder answered).
        spi_r: u64,
    },
}

/// The two ends of a tunnel and the public address between them: the key of most tunnel
/// state, and what events and listings name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Peers {
    /// The LAN client.
    pub(crate) client: Ipv4Addr,
    /// The server on the WAN.
    pub(crate) server: Ipv4Addr,
    /// The public address the client's packets leave from.
    pub(crate) public: Ipv4Addr,
}

/// An IP packet's flow as the dispatch sees it: the protocol, the addresses, and for TCP and
/// UDP the ports (0 otherwise, and for a later fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flow {
    pub(crate) protocol: IpProtocol,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

/// A packet NAPT is translating on a session of a passthrough flow, for the modules whose
/// traffic rides NAPT (PPTP's control connection, L2TP): who is who, before the rewrite.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NaptPacket {
    /// The direction: `Side::Lan` for a packet from the client.
    pub(crate) from: Side,
    pub(crate) protocol: IpProtocol,
    pub(crate) peers: Peers,
    /// The client's port.
    pub(crate) client_port: u16,
    /// The public port of the client's mapping.
    pub(crate) public_port: u16,
    /// The server's port.
    pub(crate) server_port: u16,
}

/// One VPN protocol's passthrough. Every method but [`claims`](Self::claims),
/// [`switch`](Self::switch) and [`clear`](Self::clear) has a default that does nothing, for
/// protocols that need no such step.
pub(crate) trait VpnProtocol {
    /// The switch that turns it on and off.
    fn switch(&self) -> Protocol;

    /// True when a flow of `protocol` with ports `a` and `b` (either order; 0 for protocols
    /// without ports) is this protocol's.
    fn claims(&self, protocol: IpProtocol, a: u16, b: u16) -> bool;

    /// The TCP and UDP ports it claims, for the dispatch's one-lookup port filter.
    fn ports(&self) -> &'static [u16] {
        &[]
    }

    /// A packet of a flow it claims, arriving on `side`, with its switch on. `Some` when the
    /// module translated or refused it itself; `None` hands it to NAPT.
    fn packet(&mut self, _cx: &mut Cx<'_>, _side: Side, _flow: &Flow, _packet: &mut [u8]) -> Option<Verdict> {
        None
    }

    /// A packet NAPT is translating on a session of a flow it claims, before NAPT rewrites
    /// it: an ALG reads and rewrites payloads here. `Err` drops the packet.
    fn napt_packet(&mut self, _cx: &mut Cx<'_>, _napt: &NaptPacket, _packet: &mut [u8]) -> Result<(), DropReason> {
        Ok(())
    }

    /// The filtering for an unsolicited inbound packet to the mapping of LAN port `lan_port`
    /// (a flow it claims), when it differs from the configured one.
    fn inbound_filtering(&self, _configured: Filtering) -> Option<Filtering> {
        None
    }

    /// An inbound packet of a flow it claims that NAPT refused for want of a mapping (or by
    /// its filter): what it tells the diagnosis, if anything.
    fn unmatched_inbound(&mut self, _cx: &mut Cx<'_>, _flow: &Flow) {}

    /// An ICMP error from the WAN quoting a packet natpass sent out: `Some` when the quoted
    /// packet is this module's, with the LAN client it is for, or why none is.
    fn icmp_error_client(&self, _quoted: &QuotedDatagram<&[u8]>) -> Option<Result<Ipv4Addr, DropReason>> {
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work, if ever.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Ends what has been idle too long, with its events.
    fn handle_timeout(&mut self, _now: Instant, _config: &EngineConfig, _out: &mut Output) {}

    /// Its tunnels, for the control plane.
    fn tunnels(&self, _now: Instant, _out: &mut Vec<TunnelInfo>) {}

    /// Forgets everything (its switch went off); returns how many tunnels went.
    fn clear(&mut self) -> usize;
}

/// True when `port` is one a module listed in [`VpnProtocol::ports`]: a bit set over every
/// port, behind a range test that rejects most ports (ephemeral ones, 80, 443) with two
/// comparisons, so plain TCP and UDP pay almost nothing.
struct PortFilter {
    lo: u16,
    span: u16,
    bits: Box<[u64; 1024]>,
}

impl PortFilter {
    fn new<'a>(modules: impl Iterator<Item = &'a dyn VpnProtocol>) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        let (mut lo, mut hi) = (u16::MAX, 0);
        for &p in modules.flat_map(|m| m.ports().iter()) {
            bits[usize::from(p >> 6)] |= 1 << (p & 63);
            lo = lo.min(p);
            hi = hi.max(p);
        }
        // With no port at all, a range no port falls in.
        if lo > hi {
            (lo, hi) = (1, 0);
        }
        Self { lo, span: hi.wrapping_sub(lo), bits }
    }

    #[inline(always)]
    fn has(&self, port: u16) -> bool {
        port.wrapping_sub(self.lo) <= self.span && self.bits[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }
}

/// Every passthrough module of one engine, behind one dispatch point.
pub(crate) struct Dispatch {
    pub(crate) esp: esp::Esp,
    pub(crate) ike: ike::Ike,
    pub(crate) pptp: pptp::Pptp,
    pub(crate) l2tp: l2tp::L2tp,
    ports: PortFilter,
}

impl Dispatch {
    pub(crate) fn new(seed: u64) -> Self {
        let mut p = Self {
            esp: esp::Esp::new(seed),
            ike: ike::Ike::new(seed),
            pptp: pptp::Pptp::new(seed),
            l2tp: l2tp::L2tp::new(seed),
            ports: PortFilter { lo: 1, span: 0, bits: Box::new([0; 1024]) },
        };
        p.ports = PortFilter::new(p.modules().into_iter());
        p
    }

    /// Every module. The one list a new protocol joins (with [`Dispatch::modules_mut`]).
    fn modules(&self) -> [&dyn VpnProtocol; 4] {
        [&self.esp, &self.ike, &self.pptp, &self.l2tp]
    }

    fn modules_mut(&mut self) -> [&mut dyn VpnProtocol; 4] {
        [&mut self.esp, &mut self.ike, &mut self.pptp, &mut self.l2tp]
    }

    /// True when either port may be a passthrough protocol's: the cheap test the NAPT path
    /// makes before anything else here.
    #[inline(always)]
    pub(crate) fn may_claim_ports(&self, a: u16, b: u16) -> bool {
        self.ports.has(a) || self.ports.has(b)
    }

    fn owner_mut(&mut self, protocol: IpProtocol, a: u16, b: u16) -> Option<&mut dyn VpnProtocol> {
        self.modules_mut().into_iter().find(|m| m.claims(protocol, a, b))
    }

    /// The switch a flow falls under, if a passthrough protocol claims it.
    pub(crate) fn switch_of(&self, protocol: IpProtocol, a: u16, b: u16) -> Option<Protocol> {
        self.modules().into_iter().find(|m| m.claims(protocol, a, b)).map(|m| m.switch())
    }

    /// A packet before NAPT: `Some` when a passthrough module translated or refused it (its
    /// switch is off, or it is the module's own traffic such as ESP or IKE on 500 ↔ 500),
    /// `None` for NAPT. For TCP and UDP the caller checks [`Dispatch::may_claim_ports`]
    /// first.
    pub(crate) fn packet(&mut self, cx: &mut Cx<'_>, side: Side, flow: &Flow, packet: &mut [u8]) -> Option<Verdict> {
        let m = self.owner_mut(flow.protocol, flow.sport, flow.dport)?;
        let switch = m.switch();
        if !switch.enabled(cx.config) {
            let reason = switch.disabled_reason();
            if side == Side::Lan {
                let (client, server) = (flow.src, flow.dst);
                cx.event(Event::PassthroughRefused { protocol: switch, client, server, reason });
                let public = cx.table.paired_ext(client);
                cx.observe(Observation::Disabled { protocol: switch, client, server, public, reason });
            }
            return Some(Verdict::Drop(reason));
        }
        m.packet(cx, side, flow, packet)
    }

    /// An inbound TCP or UDP packet on a port a module may claim that NAPT refused (no
    /// mapping, or filtered): the module's diagnosis step, when its switch is on.
    pub(crate) fn unmatched_inbound(&mut self, cx: &mut Cx<'_>, flow: &Flow) {
        match self.owner_mut(flow.protocol, flow.sport, flow.dport) {
            Some(m) if m.switch().enabled(cx.config) => m.unmatched_inbound(cx, flow),
            _ => {}
        }
    }

    /// A packet NAPT is translating on a session whose ports (client's and server's) a
    /// module may claim: that module's ALG step, when its switch is on.
    pub(crate) fn napt_packet(
        &mut self,
        cx: &mut Cx<'_>,
        napt: &NaptPacket,
        packet: &mut [u8],
    ) -> Result<(), DropReason> {
        match self.owner_mut(napt.protocol, napt.client_port, napt.server_port) {
            Some(m) if m.switch().enabled(cx.config) => m.napt_packet(cx, napt, packet),
            _ => Ok(()),
        }
    }

    /// The filtering for an unsolicited inbound packet to the mapping of LAN port
    /// `lan_port`.
    pub(crate) fn inbound_filtering(
        &self,
        config: &EngineConfig,
        protocol: IpProtocol,
        lan_port: u16,
        configured: Filtering,
    ) -> Filtering {
        if !self.ports.has(lan_port) {
            return configured;
        }
        match self.modules().into_iter().find(|m| m.claims(protocol, lan_port, 0)) {
            Some(m) if m.switch().enabled(config) => m.inbound_filtering(configured).unwrap_or(configured),
            _ => configured,
        }
    }

    /// The LAN client of an ICMP error about a packet a module sent out, if it is one's.
    pub(crate) fn icmp_error_client(&self, quoted: &QuotedDatagram<&[u8]>) -> Option<Result<Ipv4Addr, DropReason>> {
        self.modules().into_iter().find_map(|m| m.icmp_error_client(quoted))
    }

    /// The earliest timer of any module.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.modules().into_iter().filter_map(|m| m.poll_timeout()).min()
    }

    /// Runs the modules' timers that are due.
    pub(crate) fn handle_timeout(&mut self, now: Instant, config: &EngineConfig, out: &mut Output) {
        for m in self.modules_mut() {
            if m.poll_timeout().is_some_and(|t| t <= now) {
                m.handle_timeout(now, config, out);
            }
        }
    }

    /// Every tunnel, sorted by protocol, client and server.
    pub(crate) fn tunnels(&self, now: Instant) -> Vec<TunnelInfo> {
        let mut out = Vec::new();
        for m in self.modules() {
            m.tunnels(now, &mut out);
        }
        out.sort_by_key(|i| (i.protocol, i.client, i.server));
        out
    }

    /// Forgets the state of every module under `switch`; returns how many tunnels went.
    pub(crate) fn clear(&mut self, switch: Protocol) -> usize {
        self.modules_mut().into_iter().filter(|m| m.switch() == switch).map(|m| m.clear()).sum()
    }
}

/// Nanoseconds of a duration, saturating: the modules keep times as `u64` nanoseconds.
pub(crate) fn nanos(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The earliest of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
