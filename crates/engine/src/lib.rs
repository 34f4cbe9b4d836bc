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
mod stats;
mod time;
mod translate;
mod verdict;

use std::collections::VecDeque;

pub use config::{ConfigError, EngineConfig, Filtering, Ipv4Net, Timeouts};
pub use flow::Proto;
pub use flow::table::SessionInfo;
use flow::table::Table;
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
}

/// One NAT instance. See the crate documentation for how to drive it.
pub struct Engine {
    config: EngineConfig,
    table: Table,
    stats: Stats,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    frags: Fragments,
    icmp_tokens: u64,
    icmp_refill_at: Instant,
    ip_ident: u16,
}

impl Engine {
    /// A new engine, or the reason `config` is refused.
    pub fn new(config: EngineConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            table: Table::new(&config, now),
            stats: Stats::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            frags: Fragments::new(config.seed),
            icmp_tokens: u64::from(config.icmp_errors_per_sec),
            icmp_refill_at: now,
            ip_ident: (config.seed >> 16) as u16,
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
    pub fn outside_of(
        &self,
        proto: Proto,
        lan: (u32, u16),
        remote: (u32, u16),
    ) -> Option<(u32, u16)> {
        let i = self
            .table
            .find_out(proto, lan.0, lan.1, remote.0, remote.1)?;
        Some(self.table.ext_of(i))
    }

    /// The public address a LAN host is paired with now, if it has sessions (RFC 4787 REQ-2).
    pub fn public_addr_of(&self, lan_ip: u32) -> Option<u32> {
        self.table
            .sessions()
            .find(|s| s.lan.0 == lan_ip)
            .map(|s| s.ext.0)
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
                let len = packet
                    .get(2..4)
                    .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                self.stats.count_forward(out, len);
            }
            Verdict::Drop(reason) => self.stats.count_drop(reason),
            Verdict::Consumed => {}
        }
        verdict
    }

    /// Expires idle sessions and stale fragments. Call it when [`Engine::poll_timeout`] says.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.table.sweep(now);
        let dropped = self.frags.expire(now);
        for _ in 0..dropped {
            self.stats.count_drop(DropReason::FragmentDropped);
        }
    }

    /// When [`Engine::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.table.next_sweep(), self.frags.next_expiry()) {
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

impl Table {
    /// Every live session (used by `public_addr_of`).
    pub(crate) fn sessions(&self) -> impl Iterator<Item = SessionInfo> + '_ {
        self.iter()
    }
}
