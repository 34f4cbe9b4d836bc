//! Raw ESP (IP protocol 50, RFC 4303) through NAPT for several clients to one server.
//!
//! ESP has no ports; inbound ESP can only be told apart by its SPI, which nothing in the clear
//! links to the outbound SPI (RFC 3715 §2.1 f). natpass learns it: outbound ESP with SPI o from
//! client C to server S records (C, S, o); the first inbound ESP from S with an unknown SPI is
//! bound to the one client *pending* for S: the one whose newest outbound SA has no inbound
//! partner yet. At most one client is pending per (public address, server); another client's
//! new SA is refused with ICMP 3/13 (RFC 5508 REQ-8) until the first binds or its pending timer
//! ends. Rekeys are new SAs of the same client and go through the same steps; old SAs expire
//! when idle.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::{Protocol, TunnelIds};
use crate::Event;
use crate::time::Instant;
use crate::verdict::DropReason;

#[derive(Clone, Copy, Debug)]
struct OutSa {
    ext_ip: u32,
    last_seen: u64,
    bytes: u64,
    /// The inbound SPI bound to this SA, once learned.
    spi_in: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
struct InSa {
    lan_ip: u32,
    last_seen: u64,
    bytes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    lan_ip: u32,
    spi_out: u32,
    since: u64,
}

/// The ESP state of one engine.
pub(crate) struct EspTable {
    out: HashMap<(u32, u32, u32), OutSa, FixedState>,
    inb: HashMap<(u32, u32, u32), InSa, FixedState>,
    pending: HashMap<(u32, u32), Pending, FixedState>,
    /// Servers that some client sent ESP to, by (public address, server): SA count.
    servers: HashMap<(u32, u32), u32, FixedState>,
}

/// What to do with an ESP packet.
pub(crate) enum EspAction {
    /// Rewrite the source (outbound) or destination (inbound) to this address.
    Rewrite(u32),
    /// Drop; `icmp` asks for an ICMP 3/13 to the LAN sender.
    Refuse { reason: DropReason, icmp: bool },
}

impl EspTable {
    pub(crate) fn new(seed: u64) -> Self {
        let h = |x: u64| FixedState::with_seed(seed ^ x);
        Self {
            out: HashMap::with_hasher(h(0xe5b0)),
            inb: HashMap::with_hasher(h(0xe5b1)),
            pending: HashMap::with_hasher(h(0xe5b2)),
            servers: HashMap::with_hasher(h(0xe5b3)),
        }
    }

    /// SAs tracked (outbound, inbound).
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.out.len(), self.inb.len())
    }

    /// Every outbound SA, for the tunnel table.
    pub(crate) fn list(&self, now: u64, out: &mut Vec<crate::TunnelInfo>) {
        for (&(lan_ip, server, spi_out), sa) in &self.out {
            let back = sa.spi_in.and_then(|i| self.inb.get(&(sa.ext_ip, server, i)));
            out.push(crate::TunnelInfo {
                protocol: Protocol::Ipsec,
                kind: "ESP SA pair",
                client: lan_ip,
                server,
                public: sa.ext_ip,
                ids: TunnelIds::Esp { spi_out, spi_in: sa.spi_in.unwrap_or(0) },
                bytes_out: sa.bytes,
                bytes_in: back.map_or(0, |b| b.bytes),
                idle_secs: now.saturating_sub(sa.last_seen.max(back.map_or(0, |b| b.last_seen))) / 1_000_000_000,
                state: if sa.spi_in.is_some() { "up" } else { "waiting for the server's SPI" },
            });
        }
    }

    /// Outbound ESP from `lan_ip` to `server` with SPI `spi`, leaving from `ext_ip`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn outbound(
        &mut self,
        now: Instant,
        pending_for: u64,
        lan_ip: u32,
        server: u32,
        spi: u32,
        ext_ip: u32,
        bytes: usize,
    ) -> (EspAction, Option<Event>) {
        let t = now.as_nanos();
        if let Some(sa) = self.out.get_mut(&(lan_ip, server, spi)) {
            sa.last_seen = t;
            sa.bytes += bytes as u64;
            return (EspAction::Rewrite(sa.ext_ip), None);
        }
        // A new SA: this client becomes the one pending for the server, unless another is.
        let key = (ext_ip, server);
        if let Some(p) = self.pending.get(&key)
            && p.lan_ip != lan_ip
            && t.saturating_sub(p.since) < pending_for
        {
            let ev = Event::PassthroughRefused {
                protocol: Protocol::Ipsec,
                client: lan_ip,
                server,
                reason: DropReason::EspServerBusy,
            };
            return (EspAction::Refuse { reason: DropReason::EspServerBusy, icmp: true }, Some(ev));
        }
        self.pending.insert(key, Pending { lan_ip, spi_out: spi, since: t });
        self.out.insert((lan_ip, server, spi), OutSa { ext_ip, last_seen: t, bytes: bytes as u64, spi_in: None });
        *self.servers.entry(key).or_insert(0) += 1;
        (EspAction::Rewrite(ext_ip), None)
    }

    /// Inbound ESP from `server` to public `ext_ip` with SPI `spi`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn inbound(
        &mut self,
        now: Instant,
        pending_for: u64,
        ext_ip: u32,
        server: u32,
        spi: u32,
        bytes: usize,
    ) -> (EspAction, Option<Event>) {
        let t = now.as_nanos();
        if let Some(sa) = self.inb.get_mut(&(ext_ip, server, spi)) {
            sa.last_seen = t;
            sa.bytes += bytes as u64;
            return (EspAction::Rewrite(sa.lan_ip), None);
        }
        let key = (ext_ip, server);
        match self.pending.get(&key).copied() {
            Some(p) if t.saturating_sub(p.since) < pending_for => {
                self.pending.remove(&key);
                self.inb.insert((ext_ip, server, spi), InSa { lan_ip: p.lan_ip, last_seen: t, bytes: bytes as u64 });
                if let Some(o) = self.out.get_mut(&(p.lan_ip, server, p.spi_out)) {
                    o.spi_in = Some(spi);
                }
                let ev = Event::TunnelUp {
                    protocol: Protocol::Ipsec,
                    client: p.lan_ip,
                    server,
                    public: ext_ip,
                    ids: TunnelIds::Esp { spi_out: p.spi_out, spi_in: spi },
                };
                (EspAction::Rewrite(p.lan_ip), Some(ev))
            }
            _ if self.servers.contains_key(&key) => {
                (EspAction::Refuse { reason: DropReason::EspUnknownSpi, icmp: false }, None)
            }
            _ => (EspAction::Refuse { reason: DropReason::EspNoServer, icmp: false }, None),
        }
    }

    /// Ends SAs idle for `idle` ns and pending claims older than `pending_for` ns.
    pub(crate) fn expire(&mut self, now: Instant, idle: u64, pending_for: u64, events: &mut Vec<Event>) {
        let t = now.as_nanos();
        self.pending.retain(|_, p| t.saturating_sub(p.since) < pending_for);
        let servers = &mut self.servers;
        let inb = &mut self.inb;
        self.out.retain(|&(lan_ip, server, spi_out), sa| {
            let in_seen = sa.spi_in.and_then(|i| inb.get(&(sa.ext_ip, server, i))).map_or(0, |i| i.last_seen);
            let alive = t.saturating_sub(sa.last_seen.max(in_seen)) < idle;
            if !alive {
                let (bytes_in, spi_in) =
                    match sa.spi_in.and_then(|i| inb.remove(&(sa.ext_ip, server, i)).map(|x| (x, i))) {
                        Some((x, i)) => (x.bytes, i),
                        None => (0, 0),
                    };
                if let Some(n) = servers.get_mut(&(sa.ext_ip, server)) {
                    *n -= 1;
                    if *n == 0 {
                        servers.remove(&(sa.ext_ip, server));
                    }
                }
                if sa.spi_in.is_some() {
                    events.push(Event::TunnelDown {
                        protocol: Protocol::Ipsec,
                        client: lan_ip,
                        server,
                        ids: TunnelIds::Esp { spi_out, spi_in },
                        bytes_out: sa.bytes,
                        bytes_in,
                    });
                }
            }
            alive
        });
    }

    /// Forgets everything (the IPsec switch went off).
    pub(crate) fn clear(&mut self) {
        self.out.clear();
        self.inb.clear();
        self.pending.clear();
        self.servers.clear();
    }

    /// The client whose outbound SA `spi_out` to `server` leaves from `ext_ip` (ICMP errors
    /// embed our outbound ESP). A scan: errors are rare and rate-limited upstream.
    pub(crate) fn lan_for_outbound(&self, ext_ip: u32, server: u32, spi_out: u32) -> Option<u32> {
        self.out.iter().find(|(k, sa)| k.1 == server && k.2 == spi_out && sa.ext_ip == ext_ip).map(|(k, _)| k.0)
    }
}
