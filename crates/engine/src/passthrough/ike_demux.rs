//! IKE on UDP port 500 for several clients to one server, keeping source port 500 on the
//! public side for every client (RFC 3715 §2.3 o: servers and some clients insist on it).
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
//! SA it is learned.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::{Protocol, TunnelIds};
use crate::Event;
use crate::time::Instant;
use crate::verdict::DropReason;

#[derive(Clone, Copy, Debug)]
struct SpiEntry {
    lan_ip: u32,
    last_seen: u64,
}

/// IKE port-500 state of one engine.
pub(crate) struct IkeTable {
    by_spi: HashMap<(u32, u32, u64), SpiEntry, FixedState>,
    /// Clients talking IKE to a server, by (public address, server): client → last seen.
    clients: HashMap<(u32, u32), Vec<(u32, u64)>, FixedState>,
    /// IKE SAs for tunnel events, by (public address, server, SPIi).
    sas: HashMap<(u32, u32, u64), IkeSa, FixedState>,
}

#[derive(Clone, Copy, Debug)]
struct IkeSa {
    lan_ip: u32,
    spi_r: u64,
    last_seen: u64,
    bytes_out: u64,
    bytes_in: u64,
}

impl IkeTable {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            by_spi: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce0)),
            clients: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce1)),
            sas: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1ce2)),
        }
    }

    /// Every IKE SA on port 500, for the tunnel table.
    pub(crate) fn list(&self, now: u64, out: &mut Vec<crate::TunnelInfo>) {
        for (&(ext_ip, server, spi_i), sa) in &self.sas {
            out.push(crate::TunnelInfo {
                protocol: Protocol::Ipsec,
                kind: "IKE SA (UDP 500)",
                client: sa.lan_ip,
                server,
                public: ext_ip,
                ids: TunnelIds::Ike { spi_i, spi_r: sa.spi_r },
                bytes_out: sa.bytes_out,
                bytes_in: sa.bytes_in,
                idle_secs: now.saturating_sub(sa.last_seen) / 1_000_000_000,
                state: if sa.spi_r != 0 { "up" } else { "initiating" },
            });
        }
    }

    /// SPIs tracked.
    pub(crate) fn len(&self) -> usize {
        self.by_spi.len()
    }

    fn learn(&mut self, t: u64, ext_ip: u32, server: u32, spi: u64, lan_ip: u32) -> bool {
        if spi == 0 {
            return false;
        }
        let fresh = !self.by_spi.contains_key(&(ext_ip, server, spi));
        self.by_spi.insert((ext_ip, server, spi), SpiEntry { lan_ip, last_seen: t });
        fresh
    }

    fn touch_client(&mut self, t: u64, ext_ip: u32, server: u32, lan_ip: u32) {
        let list = self.clients.entry((ext_ip, server)).or_default();
        match list.iter_mut().find(|c| c.0 == lan_ip) {
            Some(c) => c.1 = t,
            None => list.push((lan_ip, t)),
        }
    }

    /// An IKE message from `lan_ip` to `server`, both on port 500, leaving from `ext_ip`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn outbound(
        &mut self,
        now: Instant,
        lan_ip: u32,
        server: u32,
        ext_ip: u32,
        spi_i: u64,
        spi_r: u64,
        bytes: usize,
    ) -> Option<Event> {
        let t = now.as_nanos();
        self.learn(t, ext_ip, server, spi_i, lan_ip);
        self.learn(t, ext_ip, server, spi_r, lan_ip);
        self.touch_client(t, ext_ip, server, lan_ip);
        if spi_i == 0 {
            return None;
        }
        let sa = self.sas.entry((ext_ip, server, spi_i)).or_insert(IkeSa {
            lan_ip,
            spi_r: 0,
            last_seen: 0,
            bytes_out: 0,
            bytes_in: 0,
        });
        let new_sa = sa.last_seen == 0;
        sa.last_seen = t;
        sa.bytes_out += bytes as u64;
        if spi_r != 0 {
            sa.spi_r = spi_r;
        }
        new_sa.then_some(Event::TunnelUp {
            protocol: Protocol::Ipsec,
            client: lan_ip,
            server,
            public: ext_ip,
            ids: TunnelIds::Ike { spi_i, spi_r },
        })
    }

    /// An IKE message from `server`:500 to public `ext_ip`:500: the client it is for.
    pub(crate) fn inbound(
        &mut self,
        now: Instant,
        ext_ip: u32,
        server: u32,
        spi_i: u64,
        spi_r: u64,
        bytes: usize,
    ) -> Result<u32, DropReason> {
        let t = now.as_nanos();
        let known = [spi_i, spi_r]
            .into_iter()
            .filter(|&s| s != 0)
            .find_map(|s| self.by_spi.get(&(ext_ip, server, s)).map(|e| e.lan_ip));
        let lan_ip = match known {
            Some(l) => l,
            None => match self.clients.get(&(ext_ip, server)).map(Vec::as_slice) {
                Some([(only, _)]) => *only,
                Some([_, _, ..]) => return Err(DropReason::IkeAmbiguous),
                _ => return Err(DropReason::NoMapping),
            },
        };
        // Learn the responder's SPI from its reply, and refresh both.
        if let Some(sa) = self.sas.get_mut(&(ext_ip, server, spi_i)) {
            sa.last_seen = t;
            sa.bytes_in += bytes as u64;
            if spi_r != 0 {
                sa.spi_r = spi_r;
            }
        }
        self.learn(t, ext_ip, server, spi_i, lan_ip);
        self.learn(t, ext_ip, server, spi_r, lan_ip);
        self.touch_client(t, ext_ip, server, lan_ip);
        Ok(lan_ip)
    }

    /// The client an ICMP error about our IKE message to `server` is for: by its SPIs when
    /// the error embeds them, else the only client talking to that server.
    pub(crate) fn client_for(&self, ext_ip: u32, server: u32, spis: Option<(u64, u64)>) -> Option<u32> {
        if let Some((i, r)) = spis {
            let hit = [i, r].into_iter().filter(|&s| s != 0).find_map(|s| self.by_spi.get(&(ext_ip, server, s)));
            if let Some(h) = hit {
                return Some(h.lan_ip);
            }
        }
        match self.clients.get(&(ext_ip, server)).map(Vec::as_slice) {
            Some([(only, _)]) => Some(*only),
            _ => None,
        }
    }

    /// Forgets SPIs and clients idle for `idle` ns; IKE SAs that go raise `TunnelDown`.
    pub(crate) fn expire(&mut self, now: Instant, idle: u64, events: &mut Vec<Event>) {
        let t = now.as_nanos();
        self.sas.retain(|&(_, server, spi_i), sa| {
            let keep = t.saturating_sub(sa.last_seen) < idle;
            if !keep {
                events.push(Event::TunnelDown {
                    protocol: Protocol::Ipsec,
                    client: sa.lan_ip,
                    server,
                    ids: TunnelIds::Ike { spi_i, spi_r: sa.spi_r },
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
    }

    /// Forgets everything (the IPsec switch went off).
    pub(crate) fn clear(&mut self) {
        self.by_spi.clear();
        self.clients.clear();
        self.sas.clear();
    }
}
