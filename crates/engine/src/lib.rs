//! The natpass engine: a sans-IO NAPT for IPv4 (RFC 3022) meeting RFC 4787 (UDP), RFC 5382
//! (TCP), RFC 5508 (ICMP) and RFC 7857, with the VPN passthrough modules on top.
//!
//! The engine does no I/O, reads no clock and starts no thread. A driver (a pcap replay, a
//! Linux backend, a test) feeds it IPv4 packets with [`Engine::process`], passing the time as
//! `now`, and sends what it is told to. Between packets the driver calls
//! [`Engine::handle_timeout`] when [`Engine::poll_timeout`] says, and drains
//! [`Engine::poll_transmit`] (packets the router makes itself) and [`Engine::poll_event`].
//!
//! ```text
//! process(now, Lan, pkt) ─▶ checks ─▶ fragment? ─▶ TCP/UDP/ICMP query ─▶ session (find or open)
//!                                                  ICMP error ─▶ embedded session ─▶ rewrite
//!                                     ─▶ rewrite in place (incremental checksums) ─▶ Verdict
//! ```

#![forbid(unsafe_code)]

pub mod config;
mod flow;
pub mod passthrough;
mod stats;
mod time;
mod translate;
mod verdict;

use std::collections::VecDeque;

pub use config::{ConfigError, EngineConfig, Filtering, Ipv4Net, Passthrough, Timeouts};
pub use flow::Proto;
pub use flow::table::SessionInfo;
use flow::table::Table;
use passthrough::esp_learning::EspTable;
use passthrough::ike_demux::IkeTable;
use passthrough::l2tp_tunnels::L2tpTable;
use passthrough::pptp_call_ids::PptpTable;
pub use passthrough::{Protocol, TunnelIds};
pub use stats::Stats;
pub use time::Instant;
use translate::fragments::Fragments;
pub use verdict::{DropReason, Side, Transmit, Verdict};

/// Most packets queued by the router itself before new ones are dropped.
const OUTBOX_LIMIT: usize = 4096;
/// Most events queued before new ones are counted as lost.
const EVENT_LIMIT: usize = 4096;

/// Something the control plane may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new session could not be opened for a LAN host.
    SessionRefused {
        /// The LAN host.
        lan_ip: u32,
        /// Why.
        reason: DropReason,
    },
    /// A VPN tunnel came up: an ESP SA pair bound, or a new IKE SA on port 500.
    TunnelUp {
        /// The protocol.
        protocol: Protocol,
        /// The LAN client.
        client: u32,
        /// The server.
        server: u32,
        /// The public address the client uses.
        public: u32,
        /// The identifiers (SPIs, Call IDs).
        ids: TunnelIds,
    },
    /// A VPN tunnel went away (idle timer, or its switch went off).
    TunnelDown {
        /// The protocol.
        protocol: Protocol,
        /// The LAN client.
        client: u32,
        /// The server.
        server: u32,
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
        client: u32,
        /// The server.
        server: u32,
        /// Why.
        reason: DropReason,
    },
}

/// One VPN tunnel natpass is passing through, for the control plane's tunnel table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelInfo {
    /// The protocol (its passthrough switch).
    pub protocol: Protocol,
    /// What is tracked: an ESP SA pair, an IKE SA, a PPTP call, an L2TP tunnel.
    pub kind: &'static str,
    /// The LAN client.
    pub client: u32,
    /// The server.
    pub server: u32,
    /// The public address the client uses.
    pub public: u32,
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
    stats: Stats,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    frags: Fragments,
    esp: EspTable,
    ike: IkeTable,
    pptp: PptpTable,
    l2tp: L2tpTable,
    icmp_tokens: u64,
    icmp_refill_at: Instant,
    ip_ident: u16,
    /// While [`Engine::process_segmented`] runs: the size of the packets the super-packet
    /// will be cut into, for the MTU checks.
    gso_len: Option<u16>,
}

impl Engine {
    /// A new engine, or the reason `config` is refused.
    pub fn new(config: EngineConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut table = Table::new(&config, now);
        if config.passthrough.ipsec {
            table.reserve_port(Proto::Udp, 500);
        }
        Ok(Self {
            table,
            esp: EspTable::new(config.seed),
            ike: IkeTable::new(config.seed),
            pptp: PptpTable::new(config.seed),
            l2tp: L2tpTable::new(config.seed),
            stats: Stats::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            frags: Fragments::new(config.seed),
            icmp_tokens: u64::from(config.icmp_errors_per_sec),
            icmp_refill_at: now,
            ip_ident: (config.seed >> 16) as u16,
            gso_len: None,
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
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

    /// Every live session.
    pub fn sessions(&self) -> impl Iterator<Item = SessionInfo> + '_ {
        self.table.iter()
    }

    /// The public address and port of the session from LAN `lan` to remote `remote`, if any.
    /// (ICMP: ports are identifiers, the remote port is 0.)
    pub fn outside_of(&self, proto: Proto, lan: (u32, u16), remote: (u32, u16)) -> Option<(u32, u16)> {
        let i = self.table.find_out(proto, lan.0, lan.1, remote.0, remote.1)?;
        Some(self.table.ext_of(i))
    }

    /// The public address a LAN host is paired with now, if it has sessions (RFC 4787 REQ-2).
    pub fn public_addr_of(&self, lan_ip: u32) -> Option<u32> {
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
        self.stats.received[side as usize] += 1;
        let verdict = match side {
            Side::Lan => translate::from_lan(self, now, packet),
            Side::Wan => translate::from_wan(self, now, packet),
        };
        match verdict {
            Verdict::Forward(out) => {
                let len = packet.get(2..4).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                self.stats.count_forward(out, len);
            }
            Verdict::Drop(reason) => self.stats.count_drop(reason),
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
            if protocol == Protocol::Ipsec {
                self.table.reserve_port(Proto::Udp, 500);
            }
            return 0;
        }
        let removed = self.table.remove_where(|proto, lan_port, remote_port| {
            let n = match proto {
                Proto::Tcp => 6,
                Proto::Udp => 17,
                Proto::Icmp => 1,
            };
            passthrough::classify(n, lan_port, remote_port) == Some(protocol)
        });
        let tunnels = match protocol {
            Protocol::Ipsec => {
                let (o, i) = self.esp.len();
                let n = o + i + self.ike.len();
                self.esp.clear();
                self.ike.clear();
                n
            }
            Protocol::Pptp => {
                let n = self.pptp.calls();
                self.pptp.clear();
                n
            }
            Protocol::L2tp => {
                let n = self.l2tp.len();
                self.l2tp.clear();
                n
            }
        };
        removed + tunnels
    }

    /// The public Call ID natpass gave the call that LAN `client` numbered `client_call_id`
    /// towards `server`, if there is one.
    pub fn pptp_public_call_id(&self, client: u32, server: u32, client_call_id: u16) -> Option<u16> {
        self.pptp.public_call_id(client, server, client_call_id)
    }

    /// Every tunnel tracked by the passthrough modules at `now`.
    pub fn tunnels(&self, now: Instant) -> Vec<TunnelInfo> {
        let mut out = Vec::new();
        let t = now.as_nanos();
        self.esp.list(t, &mut out);
        self.ike.list(t, &mut out);
        self.pptp.list(&mut out);
        self.l2tp.list(|c| self.table.paired_ext(c).unwrap_or(0), &mut out);
        out.sort_by_key(|i| (i.protocol as u8, i.client, i.server));
        out
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

    /// PPTP calls with GRE flowing.
    pub fn pptp_calls(&self) -> usize {
        self.pptp.calls()
    }

    /// ESP SAs (outbound, inbound) and IKE SPIs tracked by the IPsec passthrough.
    pub fn ipsec_state(&self) -> (usize, usize, usize) {
        let (o, i) = self.esp.len();
        (o, i, self.ike.len())
    }

    /// Expires idle sessions and stale fragments. Call it when [`Engine::poll_timeout`] says.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.table.sweep(now);
        let idle = u64::try_from(self.config.timeouts.udp.as_nanos()).unwrap_or(u64::MAX);
        let pending = u64::try_from(self.config.timeouts.esp_pending.as_nanos()).unwrap_or(u64::MAX);
        let mut evs = Vec::new();
        self.esp.expire(now, idle, pending, &mut evs);
        self.ike.expire(now, idle, &mut evs);
        for ev in evs {
            self.queue_event(ev);
        }
        let dropped = self.frags.expire(now);
        for _ in 0..dropped {
            self.stats.count_drop(DropReason::FragmentDropped);
        }
    }

    /// When [`Engine::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (o, i) = self.esp.len();
        let sweep = if o + i + self.ike.len() > 0 { Some(self.table.next_second()) } else { self.table.next_sweep() };
        match (sweep, self.frags.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A packet the router made itself (ICMP error, released or split fragment), if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn queue_transmit(&mut self, side: Side, packet: Vec<u8>) {
        if self.outbox.len() < OUTBOX_LIMIT {
            self.stats.count_forward(side, packet.len());
            self.outbox.push_back(Transmit { side, packet });
        }
    }

    pub(crate) fn queue_event(&mut self, event: Event) {
        if self.events.len() < EVENT_LIMIT {
            self.events.push_back(event);
        } else {
            self.stats.events_lost += 1;
        }
    }

    pub(crate) fn next_ip_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Takes one ICMP error token (RFC 1812 §4.3.2.8 rate limit); false when none is left.
    pub(crate) fn take_icmp_token(&mut self, now: Instant) -> bool {
        let rate = u64::from(self.config.icmp_errors_per_sec);
        let elapsed_ms = now.since(self.icmp_refill_at).as_millis() as u64;
        if elapsed_ms > 0 {
            let add = elapsed_ms.saturating_mul(rate) / 1000;
            if add > 0 {
                self.icmp_tokens = (self.icmp_tokens + add).min(rate);
                self.icmp_refill_at = now;
            }
        }
        if self.icmp_tokens == 0 {
            self.stats.icmp_errors_rate_limited += 1;
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }
}
