//! The natpass engine: a sans-IO NAPT for IPv4 (RFC 3022) meeting RFC 4787 (UDP), RFC 5382
//! (TCP), RFC 5508 (ICMP) and RFC 7857, with the VPN passthrough modules beside it.
//!
//! The engine does no I/O, reads no clock and starts no thread. A driver (a pcap replay, a
//! Linux backend, a test) feeds it IPv4 packets with [`Engine::process`], passing the time as
//! `now`, and sends what it is told to. Between packets the driver calls
//! [`Engine::handle_timeout`] when [`Engine::poll_timeout`] says, and drains
//! [`Engine::poll_transmit`] (packets the router makes itself) and [`Engine::poll_event`].
//!
//! ```text
//! process(now, Lan, pkt) ─▶ translate::from_lan: checks ─▶ fragment? ─▶ translate::outbound
//!     ESP, AH, GRE ───────────────────────────────▶ Dispatch::packet ─▶ its module
//!     TCP/UDP on a passthrough port ─▶ Dispatch::packet (IKE 500↔500, switch off)
//!     TCP/UDP/ICMP query ─▶ napt::outbound ─▶ session (find or open) ─▶ Dispatch::napt_packet
//!                           (PPTP control ALG, L2TP tunnels) ─▶ rewrite (incremental checksums)
//!     ICMP error ─▶ icmp_error::outbound ─▶ quoted datagram's session ─▶ rewrite
//! process(now, Wan, pkt) ─▶ translate::from_wan: the same steps the other way
//! ```
//!
//! docs/ARCHITECTURE.md follows a packet through these functions.

#![forbid(unsafe_code)]

pub mod config;
pub mod diagnosis;
mod flow;
pub mod ipv6;
mod offload;
mod output;
pub mod passthrough;
mod stats;
mod time;
mod translate;
mod verdict;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use config::{ConfigError, EngineConfig, Filtering, Ipv4Net, Passthrough, Timeouts};
use diagnosis::Diagnosis;
pub use diagnosis::{Finding, FindingKind};
pub use flow::Proto;
pub use flow::table::Endpoint;
use flow::table::NaptSession;
use flow::table::Table;
pub use natpass_wire::IpProtocol;
pub use offload::Offload;
use output::{Cx, Output};
use passthrough::Dispatch;
pub use passthrough::{Protocol, TunnelIds};
pub use stats::Stats;
pub use time::Instant;
use translate::fragments::Fragments;
pub use verdict::{DropReason, Side, Transmit, Verdict};

/// Something the control plane may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new session could not be opened for a LAN host.
    SessionRefused {
        /// The LAN host.
        lan_ip: Ipv4Addr,
        /// Why.
        reason: DropReason,
    },
    /// A VPN tunnel came up: an ESP SA pair bound, or a new IKE SA on port 500.
    TunnelUp {
        /// The protocol.
        protocol: Protocol,
        /// The LAN client.
        client: Ipv4Addr,
        /// The server.
        server: Ipv4Addr,
        /// The public address the client uses.
        public: Ipv4Addr,
        /// The identifiers (SPIs, Call IDs).
        ids: TunnelIds,
    },
    /// A VPN tunnel went away (idle timer, or its switch went off).
    TunnelDown {
        /// The protocol.
        protocol: Protocol,
        /// The LAN client.
        client: Ipv4Addr,
        /// The server.
        server: Ipv4Addr,
        /// The identifiers.
        ids: TunnelIds,
        /// Bytes client → server.
        bytes_out: u64,
        /// Bytes server → client.
        bytes_in: u64,
    },
    /// A passthrough packet was refused, with the reason.
    PassthroughRefused {
        /// The protocol.
        protocol: Protocol,
        /// The LAN client.
        client: Ipv4Addr,
        /// The server.
        server: Ipv4Addr,
        /// Why.
        reason: DropReason,
    },
    /// The diagnosis found a problem with a tunnel (new, or found again after it cleared).
    /// Its text for a log line: [`Finding::summary`], [`Finding::explain`], [`Finding::fix`].
    Finding(Box<Finding>),
    /// A finding no longer holds: later packets contradict it (the server answered after all,
    /// the switch went on).
    FindingCleared(Box<Finding>),
}

/// One session of either family, for the session listing: an IPv4 NAPT session, or an IPv6
/// flow of the simple security table (RFC 6092), which is routed as it is and so has no
/// public endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The protocol: TCP, UDP, ICMP; for IPv6 also ICMPv6, ESP, AH, GRE.
    pub protocol: IpProtocol,
    /// LAN address and port (ICMP and ICMPv6 echo: the identifier; ESP, AH, GRE: 0).
    pub lan: SocketAddr,
    /// Public address and port (IPv4); `None` for IPv6, which is not translated.
    pub public: Option<SocketAddr>,
    /// Remote address and port (ICMP: 0).
    pub remote: SocketAddr,
    /// Established (replied and, for TCP, open), as opposed to opening/closing/unreplied.
    pub established: bool,
    /// When the last packet was seen.
    pub last_seen: Instant,
    /// Bytes LAN → WAN.
    pub bytes_out: u64,
    /// Bytes WAN → LAN.
    pub bytes_in: u64,
}

impl From<NaptSession> for SessionInfo {
    fn from(s: NaptSession) -> Self {
        let sock = |e: Endpoint| SocketAddr::new(e.addr.into(), e.port);
        Self {
            protocol: s.proto.ip_protocol(),
            lan: sock(s.lan),
            public: Some(sock(s.ext)),
            remote: sock(s.remote),
            established: s.established,
            last_seen: s.last_seen,
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
        }
    }
}

impl SessionInfo {
    /// True for an IPv6 flow.
    pub fn is_ipv6(&self) -> bool {
        self.lan.is_ipv6()
    }
}

/// One VPN tunnel natpass is passing through, for the control plane's tunnel table: IPv4
/// through the passthrough modules, or IPv6 through the simple security table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelInfo {
    /// The protocol (its passthrough switch).
    pub protocol: Protocol,
    /// What is tracked: an ESP SA pair, an IKE SA, a PPTP call, an L2TP tunnel.
    pub kind: &'static str,
    /// The LAN client.
    pub client: IpAddr,
    /// The server.
    pub server: IpAddr,
    /// The public address the client uses; `None` for IPv6 (not translated).
    pub public: Option<IpAddr>,
    /// SPIs, Call IDs or tunnel IDs.
    pub ids: TunnelIds,
    /// Bytes client → server.
    pub bytes_out: u64,
    /// Bytes server → client.
    pub bytes_in: u64,
    /// Seconds since the last packet (0 where the protocol's table keeps no clock).
    pub idle_secs: u64,
    /// "up", or the step it waits for.
    pub state: &'static str,
}

/// One NAT instance. See the crate documentation for how to drive it.
pub struct Engine {
    config: EngineConfig,
    table: Table,
    out: Output,
    frags: Fragments,
    passthrough: Dispatch,
    /// IPv6 forwarding with simple security (RFC 6092), when configured.
    v6: ipv6::Ipv6Guard,
    diag: Diagnosis,
    /// While [`Engine::process_segmented`] runs: the size of the packets the super-packet
    /// will be cut into, for the MTU checks.
    gso_len: Option<u16>,
    /// Flow offload offers are on ([`Engine::set_offload`]).
    offload_on: bool,
    /// The flow the last packet showed offloadable, until taken.
    offer: Option<Offload>,
}

impl Engine {
    /// A new engine, or the reason `config` is refused.
    pub fn new(config: EngineConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut table = Table::new(&config, now);
        if config.passthrough.ipsec {
            table.reserve_port(Proto::Udp, passthrough::ike::IKE_PORT);
        }
        Ok(Self {
            table,
            out: Output::new(&config, now),
            frags: Fragments::new(config.seed),
            passthrough: Dispatch::new(config.seed),
            v6: ipv6::Ipv6Guard::new(config.seed),
            diag: Diagnosis::new(config.seed),
            gso_len: None,
            offload_on: false,
            offer: None,
            config,
        })
    }

    /// Writes the memory of the session tables once now, so that a new flow does not wait
    /// for page faults: a router calls this at start. It costs the tables' full size in
    /// resident memory (20 to 40 bytes per session of `max_sessions` and 768 KiB per public
    /// address) and some milliseconds; the tables stay empty. Without it, the engine behaves
    /// the same and its memory grows as flows come.
    ///
    /// Nothing is written when that size is over `budget` bytes (a `max_sessions` far above
    /// what the machine's memory holds stays a limit, not an allocation). Returns the size,
    /// and whether it was written.
    pub fn prefault_memory(&mut self, budget: usize) -> (usize, bool) {
        let bytes = self.table.prefault_bytes();
        if bytes > budget {
            return (bytes, false);
        }
        self.table.prefault();
        (bytes, true)
    }

    /// The view of the engine a passthrough module or the ICMP error builder works with.
    pub(crate) fn cx(&mut self, now: Instant) -> Cx<'_> {
        Cx { now, config: &self.config, table: &mut self.table, out: &mut self.out, diag: &mut self.diag }
    }

    /// The passthrough modules and the view they work with, borrowed together.
    pub(crate) fn passthrough_and_cx(&mut self, now: Instant) -> (&mut Dispatch, Cx<'_>) {
        let cx = Cx { now, config: &self.config, table: &mut self.table, out: &mut self.out, diag: &mut self.diag };
        (&mut self.passthrough, cx)
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    /// Sessions alive now.
    pub fn session_count(&self) -> u32 {
        self.table.len()
    }

    /// Endpoint-independent mappings alive now.
    pub fn mapping_count(&self) -> usize {
        self.table.mapping_count()
    }

    /// Sessions opened, expired and evicted since start.
    pub fn session_totals(&self) -> (u64, u64, u64) {
        (self.table.created, self.table.expired, self.table.evicted)
    }

    /// Public ports in use on public address number `ext_idx` for `proto`.
    pub fn ports_used(&self, ext_idx: usize, proto: Proto) -> u32 {
        self.table.ports_used(ext_idx, proto)
    }

    /// Every live session: the IPv4 NAPT sessions, then the IPv6 flows.
    pub fn sessions(&self) -> impl Iterator<Item = SessionInfo> + '_ {
        self.table.iter().map(SessionInfo::from).chain(self.v6.sessions())
    }

    /// The public endpoint of the session from LAN endpoint `lan` to `remote`, if any.
    /// (ICMP: ports are identifiers, the remote port is 0.)
    pub fn outside_of(&self, proto: Proto, lan: Endpoint, remote: Endpoint) -> Option<Endpoint> {
        let i = self.table.find_out(proto, lan, remote)?;
        Some(self.table.ext_of(i))
    }

    /// The public address a LAN host is paired with now (RFC 4787 REQ-2), if it has sessions.
    pub fn public_addr_of(&self, lan_ip: Ipv4Addr) -> Option<Ipv4Addr> {
        self.table.paired_ext(lan_ip)
    }

    /// Bytes of memory the session table holds now (sessions, indexes, mappings, ports).
    pub fn table_heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    /// Translates one IPv4 packet that arrived on `side`, in place.
    ///
    /// `packet` starts at the IPv4 header; bytes past the IP total length (link padding) are
    /// ignored. Never panics, whatever the bytes.
    pub fn process(&mut self, now: Instant, side: Side, packet: &mut [u8]) -> Verdict {
        self.out.stats.received[side as usize] += 1;
        let v6 = packet.first().is_some_and(|b| b >> 4 == 6);
        let verdict = match (v6, side) {
            (true, _) => self.v6.process(now, &self.config, &mut self.out, side, packet, self.gso_len),
            (false, Side::Lan) => translate::from_lan(self, now, packet),
            (false, Side::Wan) => translate::from_wan(self, now, packet),
        };
        match verdict {
            Verdict::Forward(out) => {
                // The length field: IPv4's total length, or IPv6's payload length and header.
                let (at, add) = if v6 { (4, natpass_wire::ipv6::HEADER_LEN) } else { (2, 0) };
                let len = packet.get(at..at + 2).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])) + add);
                self.out.stats.count_forward(out, len);
            }
            Verdict::Drop(reason) => self.out.stats.count_drop(reason),
            Verdict::Consumed => {}
        }
        verdict
    }

    /// Translates a segmentation-offload super-packet (a TCP or UDP packet larger than the
    /// MTU that the kernel will cut into packets of at most `segment_len` bytes each, e.g.
    /// from a packet socket with PACKET_VNET_HDR). It is translated as one packet; the MTU
    /// checks use `segment_len` instead of its length, and it is never fragmented here.
    pub fn process_segmented(&mut self, now: Instant, side: Side, packet: &mut [u8], segment_len: u16) -> Verdict {
        self.gso_len = Some(segment_len);
        let v = self.process(now, side, packet);
        self.gso_len = None;
        v
    }

    /// Turns a passthrough protocol on or off, at run time. Off blocks it from then on and
    /// removes its tunnels and sessions; sessions of other protocols are not touched.
    /// Returns how many sessions and tunnels were removed.
    pub fn set_passthrough(&mut self, protocol: Protocol, enabled: bool) -> usize {
        let p = &mut self.config.passthrough;
        let slot = match protocol {
            Protocol::Ipsec => &mut p.ipsec,
            Protocol::Pptp => &mut p.pptp,
            Protocol::L2tp => &mut p.l2tp,
        };
        *slot = enabled;
        if enabled {
            self.diag.switch_on(protocol, &mut self.out);
            if protocol == Protocol::Ipsec {
                self.table.reserve_port(Proto::Udp, passthrough::ike::IKE_PORT);
            }
            return 0;
        }
        let pt = &self.passthrough;
        let removed = self.table.remove_where(|proto, lan_port, remote_port| {
            pt.switch_of(proto.ip_protocol(), lan_port, remote_port) == Some(protocol)
        });
        removed + self.passthrough.clear(protocol) + self.v6.clear(protocol)
    }

    /// The public Call ID natpass gave the call that LAN `client` numbered `client_call_id`
    /// towards `server`, if there is one.
    pub fn pptp_public_call_id(&self, client: Ipv4Addr, server: Ipv4Addr, client_call_id: u16) -> Option<u16> {
        self.passthrough.pptp.public_call_id(client, server, client_call_id)
    }

    /// Every tunnel tracked at `now`: the passthrough modules' (IPv4), then the VPN flows of
    /// the IPv6 table.
    pub fn tunnels(&self, now: Instant) -> Vec<TunnelInfo> {
        let mut t = self.passthrough.tunnels(now);
        self.v6.tunnels(now, &mut t);
        t
    }

    /// What natpass found wrong with the tunnels through it (see [`diagnosis`]): every finding
    /// kept, found and cleared, newest first. `now` is the time of the question.
    pub fn findings(&self, now: Instant) -> Vec<Finding> {
        self.diag.findings(now)
    }

    /// What happened to `client`'s VPN: its findings, newest first, then what looks wrong but
    /// is not yet shown by enough packets ([`diagnosis::Status::NotEnoughEvidence`]), judged at
    /// `now`.
    pub fn findings_for(&self, now: Instant, client: Ipv4Addr) -> Vec<Finding> {
        self.diag.findings_for(now, client)
    }

    /// Changes the session timers at run time; they apply to every session from its next
    /// packet or sweep. Refused (nothing changes) when a timer is below its RFC floor.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) -> Result<(), ConfigError> {
        let mut c = self.config.clone();
        c.timeouts = timeouts;
        c.validate()?;
        self.table.set_timeouts(&timeouts);
        self.config.timeouts = timeouts;
        Ok(())
    }

    /// Changes the inbound filtering behaviour at run time (RFC 4787 §5); it applies to the
    /// next inbound packet of every mapping.
    pub fn set_filtering(&mut self, filtering: Filtering) {
        self.config.filtering = filtering;
    }

    /// IPv6 flows tracked by the simple security state table (RFC 6092).
    pub fn ipv6_flows(&self) -> usize {
        self.v6.len()
    }

    /// PPTP calls with GRE flowing.
    pub fn pptp_calls(&self) -> usize {
        self.passthrough.pptp.calls()
    }

    /// ESP SAs (outbound, inbound) and IKE SPIs tracked by the IPsec passthrough.
    pub fn ipsec_state(&self) -> (usize, usize, usize) {
        let (o, i) = self.passthrough.esp.len();
        (o, i, self.passthrough.ike.len())
    }

    /// L2TP tunnels tracked by the L2TP passthrough.
    pub fn l2tp_tunnels(&self) -> usize {
        self.passthrough.l2tp.len()
    }

    /// Expires idle sessions, tunnels and stale fragments. Call it when
    /// [`Engine::poll_timeout`] says.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.table.sweep(now);
        if self.v6.poll_timeout().is_some_and(|t| t <= now) {
            self.v6.handle_timeout(now, &self.config);
        }
        self.passthrough.handle_timeout(now, &self.config, &mut self.out);
        let dropped = self.frags.expire(now);
        for _ in 0..dropped {
            self.out.stats.count_drop(DropReason::FragmentDropped);
        }
        if self.diag.poll_timeout().is_some_and(|t| t <= now) {
            self.diag.handle_timeout(now, &mut self.out);
        }
    }

    /// When [`Engine::handle_timeout`] should next be called, if anything is pending: the
    /// session sweep, held fragments, each passthrough module's own timer, and the diagnosis.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = passthrough::earliest(self.table.next_sweep(), self.frags.next_expiry());
        let t = passthrough::earliest(t, self.v6.poll_timeout());
        let t = passthrough::earliest(t, self.passthrough.poll_timeout());
        passthrough::earliest(t, self.diag.poll_timeout())
    }

    /// A packet the router made itself (ICMP error, released or split fragment), if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_transmit()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.pop_event()
    }
}
