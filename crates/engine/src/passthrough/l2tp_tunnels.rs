//! L2TP tunnel tracking for the control plane (RFC 2661 §4.4.3, §5.1): control messages on
//! UDP 1701 are read, not rewritten. A client's SCCRQ names its Assigned Tunnel ID; the
//! server's SCCRP, addressed to that ID, names the server's, and the tunnel is up. StopCCN
//! takes it down. The NAPT mapping carries the traffic; this only names the tunnel.

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::l2tp::{L2tpPacket, avp, message};

use super::{Protocol, TunnelIds};
use crate::Event;

/// L2TP tunnels of one engine: (client, server, client tunnel ID) → server tunnel ID, if known.
pub(crate) struct L2tpTable {
    tunnels: HashMap<(u32, u32, u16), Option<u16>, FixedState>,
    /// Bytes (client → server, server → client) between a client and an LNS, for its tunnels.
    bytes: HashMap<(u32, u32), (u64, u64), FixedState>,
}

fn assigned_tunnel_id(p: &L2tpPacket<&[u8]>) -> Option<u16> {
    p.avps()
        .filter_map(Result::ok)
        .find(|a| a.vendor_id == 0 && a.attr_type == avp::ASSIGNED_TUNNEL_ID && a.value.len() == 2)
        .map(|a| u16::from_be_bytes([a.value[0], a.value[1]]))
}

impl L2tpTable {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            tunnels: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1701)),
            bytes: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1702)),
        }
    }

    /// Every tunnel, for the tunnel table; `public_of` gives a client's public address.
    pub(crate) fn list(&self, public_of: impl Fn(u32) -> u32, out: &mut Vec<crate::TunnelInfo>) {
        for (&(client, server, client_tunnel_id), server_id) in &self.tunnels {
            let (bytes_out, bytes_in) = self.bytes.get(&(client, server)).copied().unwrap_or((0, 0));
            out.push(crate::TunnelInfo {
                protocol: Protocol::L2tp,
                kind: "L2TP tunnel (UDP 1701)",
                client,
                server,
                public: public_of(client),
                ids: TunnelIds::L2tp { client_tunnel_id, server_tunnel_id: server_id.unwrap_or(0) },
                bytes_out,
                bytes_in,
                idle_secs: 0,
                state: if server_id.is_some() { "up" } else { "requested" },
            });
        }
    }

    /// Tunnels known.
    pub(crate) fn len(&self) -> usize {
        self.tunnels.len()
    }

    /// An L2TP message (UDP payload) between `client` and `server`; `from_client` tells the
    /// direction. Returns an event when a tunnel comes up or goes down.
    pub(crate) fn message(
        &mut self,
        client: u32,
        server: u32,
        public: u32,
        from_client: bool,
        payload: &[u8],
        bytes: usize,
    ) -> Option<Event> {
        if let Some(b) = self.bytes.get_mut(&(client, server)) {
            if from_client {
                b.0 += bytes as u64;
            } else {
                b.1 += bytes as u64;
            }
        }
        let p = L2tpPacket::new_checked(payload).ok()?;
        if !p.is_control() || p.version() != 2 {
            return None;
        }
        match (from_client, p.message_type()?) {
            (true, message::SCCRQ) => {
                let tid = assigned_tunnel_id(&p)?;
                self.tunnels.insert((client, server, tid), None);
                self.bytes.entry((client, server)).or_insert((bytes as u64, 0));
                None
            }
            (false, message::SCCRP) => {
                let client_tid = p.tunnel_id()?;
                let server_tid = assigned_tunnel_id(&p)?;
                let slot = self.tunnels.get_mut(&(client, server, client_tid))?;
                let fresh = slot.is_none();
                *slot = Some(server_tid);
                fresh.then_some(Event::TunnelUp {
                    protocol: Protocol::L2tp,
                    client,
                    server,
                    public,
                    ids: TunnelIds::L2tp { client_tunnel_id: client_tid, server_tunnel_id: server_tid },
                })
            }
            (_, message::STOPCCN) => {
                // The header carries the receiver's tunnel ID; the AVP the sender's.
                let (client_tid, server_tid) = if from_client {
                    (assigned_tunnel_id(&p)?, p.tunnel_id()?)
                } else {
                    (p.tunnel_id()?, assigned_tunnel_id(&p)?)
                };
                self.tunnels.remove(&(client, server, client_tid))?;
                let (bytes_out, bytes_in) = if self.tunnels.keys().any(|k| k.0 == client && k.1 == server) {
                    self.bytes.get(&(client, server)).copied().unwrap_or_default()
                } else {
                    self.bytes.remove(&(client, server)).unwrap_or_default()
                };
                Some(Event::TunnelDown {
                    protocol: Protocol::L2tp,
                    client,
                    server,
                    ids: TunnelIds::L2tp { client_tunnel_id: client_tid, server_tunnel_id: server_tid },
                    bytes_out,
                    bytes_in,
                })
            }
            _ => None,
        }
    }

    /// Forgets everything (the L2TP switch went off).
    pub(crate) fn clear(&mut self) {
        self.tunnels.clear();
        self.bytes.clear();
    }
}
