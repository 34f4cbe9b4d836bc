//! What the engine gives back besides verdicts: packets it makes itself, events for the
//! control plane, counters, and the budget of ICMP errors it may send (RFC 1812 §4.3.2.8).
//!
//! [`Cx`] is the narrow view of the engine that the packet path lends to a passthrough
//! module or to the ICMP error builder: the time, the configuration, the NAPT table (for the
//! public address a LAN host is paired with), this output, and the diagnosis that takes the
//! modules' observations.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use crate::Event;
use crate::config::EngineConfig;
use crate::diagnosis::{Diagnosis, Observation};
use crate::flow::table::Table;
use crate::stats::Stats;
use crate::time::Instant;
use crate::verdict::{Side, Transmit};

/// Most packets queued by the router itself before new ones are dropped.
const OUTBOX_LIMIT: usize = 4096;
/// Most events queued before new ones are counted as lost.
const EVENT_LIMIT: usize = 4096;

/// Packets, events and counters the engine produces.
pub(crate) struct Output {
    pub(crate) stats: Stats,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    icmp_tokens: u64,
    icmp_refill_at: Instant,
    ip_ident: u16,
}

impl Output {
    pub(crate) fn new(config: &EngineConfig, now: Instant) -> Self {
        Self {
            stats: Stats::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            icmp_tokens: u64::from(config.icmp_errors_per_sec),
            icmp_refill_at: now,
            ip_ident: (config.seed >> 16) as u16,
        }
    }

    /// Queues a packet the router made; dropped silently when the outbox is full.
    pub(crate) fn transmit(&mut self, side: Side, packet: Vec<u8>) {
        if self.outbox.len() < OUTBOX_LIMIT {
            self.stats.count_forward(side, packet.len());
            self.outbox.push_back(Transmit { side, packet });
        }
    }

    /// Queues an event, or counts it lost when the queue is full.
    pub(crate) fn event(&mut self, event: Event) {
        if self.events.len() < EVENT_LIMIT {
            self.events.push_back(event);
        } else {
            self.stats.events_lost += 1;
        }
    }

    pub(crate) fn pop_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    pub(crate) fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A fresh IP identification for a packet the router makes.
    pub(crate) fn next_ip_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Takes one ICMP error token (a bucket of `rate` per second); false when none is left.
    pub(crate) fn take_icmp_token(&mut self, now: Instant, rate: u32) -> bool {
        let rate = u64::from(rate);
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

/// The part of the engine a passthrough module, or the ICMP error builder, works with.
pub(crate) struct Cx<'a> {
    /// The time of the packet or timer being handled.
    pub(crate) now: Instant,
    pub(crate) config: &'a EngineConfig,
    pub(crate) table: &'a mut Table,
    pub(crate) out: &'a mut Output,
    pub(crate) diag: &'a mut Diagnosis,
}

impl Cx<'_> {
    /// The public address LAN host `lan` leaves from, pairing it with one if it has none yet
    /// (RFC 4787 REQ-2: every protocol of a host uses one address).
    pub(crate) fn public_addr_for(&mut self, lan: Ipv4Addr) -> Ipv4Addr {
        self.table.ext_for(lan)
    }

    /// Queues an event.
    pub(crate) fn event(&mut self, event: Event) {
        self.out.event(event);
    }

    /// Hands the diagnosis something seen now.
    #[cold]
    pub(crate) fn observe(&mut self, obs: Observation) {
        self.diag.observe(self.now, obs, self.out);
    }
}
