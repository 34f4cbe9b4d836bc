//! L2TP passthrough (RFC 2661) on UDP 1701. The traffic rides NAPT: an endpoint-independent
//! mapping (RFC 4787 REQ-1) that keeps port 1701 when it is free, and, with the switch on,
//! address-dependent filtering for it, so that an LNS may answer from a port other than 1701
//! (RFC 2661 §8.1) even under address-and-port-dependent filtering.
//!
//! Tunnels are tracked for the control plane (RFC 2661 §4.4.3, §5.1): control messages are
//! read, not rewritten. A client's SCCRQ names its Assigned Tunnel ID; the server's SCCRP,
//! addressed to that ID, names the server's, and the tunnel is up. StopCCN takes it down.
//! ICMP errors about L2TP are NAPT's (the quoted datagram names the mapping).

use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::IpProtocol;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::l2tp::{L2tpPacket, avp, message};
use natpass_wire::udp::UdpPacket;

use super::{NaptPacket, Peers, Protocol, TunnelIds, VpnProtocol};
use crate::config::Filtering;
use crate::output::Cx;
use crate::time::Instant;
use crate::verdict::{DropReason, Side};
use crate::{Event, TunnelInfo};

/// L2TP's port (RFC 2661 §8.1).
pub(crate) const L2TP_PORT: u16 = 1701;

/// A tunnel: its two ends and the client's Assigned Tunnel ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TunnelKey {
    client: Ipv4Addr,
    server: Ipv4Addr,
    client_tunnel_id: u16,
}

#[derive(Clone, Copy, Debug)]
struct Tunnel {
    public: Ipv4Addr,
    /// The server's tunnel ID, once its SCCRP came.
    server_tunnel_id: Option<u16>,
}

/// The L2TP passthrough of one engine.
pub(crate) struct L2tp {
    tunnels: HashMap<TunnelKey, Tunnel, FixedState>,
    /// Bytes (client → server, server → client) between a client and an LNS, for its tunnels.
    bytes: HashMap<(Ipv4Addr, Ipv4Addr), (u64, u64), FixedState>,
}

fn assigned_tunnel_id(p: &L2tpPacket<&[u8]>) -> Option<u16> {
    p.avps()
        .filter_map(Result::ok)
        .find(|a| a.vendor_id == 0 && a.attr_type == avp::ASSIGNED_TUNNEL_ID && a.value.len() == 2)
        .map(|a| u16::from_be_bytes([a.value[0], a.value[1]]))
}

impl L2tp {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            tunnels: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1701)),
            bytes: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x1702)),
        }
    }

    /// Tunnels known.
    pub(crate) fn len(&self) -> usize {
        self.tunnels.len()
    }

    /// An L2TP message (a UDP payload) between `peers`; `from_client` tells the direction.
    /// Returns an event when a tunnel comes up or goes down.
    fn message(&mut self, peers: Peers, from_client: bool, payload: &[u8], bytes: usize) -> Option<Event> {
        let (client, server) = (peers.client, peers.server);
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
                let client_tunnel_id = assigned_tunnel_id(&p)?;
                let key = TunnelKey { client, server, client_tunnel_id };
                self.tunnels.insert(key, Tunnel { public: peers.public, server_tunnel_id: None });
                self.bytes.entry((client, server)).or_insert((bytes as u64, 0));
                None
            }
            (false, message::SCCRP) => {
                let client_tunnel_id = p.tunnel_id()?;
                let server_tunnel_id = assigned_tunnel_id(&p)?;
                let t = self.tunnels.get_mut(&TunnelKey { client, server, client_tunnel_id })?;
                let fresh = t.server_tunnel_id.is_none();
                t.server_tunnel_id = Some(server_tunnel_id);
                fresh.then_some(Event::TunnelUp {
                    protocol: Protocol::L2tp,
                    client,
                    server,
                    public: t.public,
                    ids: TunnelIds::L2tp { client_tunnel_id, server_tunnel_id },
                })
            }
            (_, message::STOPCCN) => {
                // The header carries the receiver's tunnel ID; the AVP the sender's.
                let (client_tunnel_id, server_tunnel_id) = if from_client {
                    (assigned_tunnel_id(&p)?, p.tunnel_id()?)
                } else {
                    (p.tunnel_id()?, assigned_tunnel_id(&p)?)
                };
                self.tunnels.remove(&TunnelKey { client, server, client_tunnel_id })?;
                let (bytes_out, bytes_in) = if self.tunnels.keys().any(|k| k.client == client && k.server == server) {
                    self.bytes.get(&(client, server)).copied().unwrap_or_default()
                } else {
                    self.bytes.remove(&(client, server)).unwrap_or_default()
                };
                Some(Event::TunnelDown {
                    protocol: Protocol::L2tp,
                    client,
                    server,
                    ids: TunnelIds::L2tp { client_tunnel_id, server_tunnel_id },
                    bytes_out,
                    bytes_in,
                })
            }
            _ => None,
        }
    }
}

impl VpnProtocol for L2tp {
    fn switch(&self) -> Protocol {
        Protocol::L2tp
    }

    fn claims(&self, protocol: IpProtocol, a: u16, b: u16) -> bool {
        protocol == IpProtocol::UDP && (a == L2TP_PORT || b == L2TP_PORT)
    }

    fn ports(&self) -> &'static [u16] {
        &[L2TP_PORT]
    }

    /// Reads control messages for tunnel events, whatever port the server answers from.
    fn napt_packet(&mut self, cx: &mut Cx<'_>, napt: &NaptPacket, packet: &mut [u8]) -> Result<(), DropReason> {
        let ip = Ipv4Packet::new_unchecked(&*packet);
        if ip.is_fragment() {
            return Ok(());
        }
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else { return Ok(()) };
        let bytes = usize::from(ip.total_len());
        if let Some(ev) = self.message(napt.peers, napt.from == Side::Lan, udp.payload(), bytes) {
            cx.event(ev);
        }
        Ok(())
    }

    /// RFC 2661 §8.1: an LNS may answer from a port other than 1701, so an L2TP client's
    /// mapping takes its server's answer from any port.
    fn inbound_filtering(&self, configured: Filtering) -> Option<Filtering> {
        (configured == Filtering::AddressAndPortDependent).then_some(Filtering::AddressDependent)
    }

    fn tunnels(&self, _now: Instant, out: &mut Vec<TunnelInfo>) {
        for (k, t) in &self.tunnels {
            let (bytes_out, bytes_in) = self.bytes.get(&(k.client, k.server)).copied().unwrap_or((0, 0));
            out.push(TunnelInfo {
                protocol: Protocol::L2tp,
                kind: "L2TP tunnel (UDP 1701)",
                client: k.client,
                server: k.server,
                public: t.public,
                ids: TunnelIds::L2tp {
                    client_tunnel_id: k.client_tunnel_id,
                    server_tunnel_id: t.server_tunnel_id.unwrap_or(0),
                },
                bytes_out,
                bytes_in,
                idle_secs: 0,
                state: if t.server_tunnel_id.is_some() { "up" } else { "requested" },
            });
        }
    }

    fn clear(&mut self) -> usize {
        let n = self.tunnels.len();
        self.tunnels.clear();
        self.bytes.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEERS: Peers = Peers {
        client: Ipv4Addr::new(192, 168, 1, 10),
        server: Ipv4Addr::new(198, 51, 100, 1),
        public: Ipv4Addr::new(203, 0, 113, 1),
    };

    /// An L2TP control message (RFC 2661 §3.1) of `kind`, to `tunnel_id`, with a Message Type
    /// AVP and, when given, an Assigned Tunnel ID AVP.
    fn control(kind: u16, tunnel_id: u16, assigned: Option<u16>) -> Vec<u8> {
        let mut m = vec![0xc8, 0x02, 0, 0];
        m.extend_from_slice(&tunnel_id.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[0x80, 8, 0, 0, 0, 0]);
        m.extend_from_slice(&kind.to_be_bytes());
        if let Some(t) = assigned {
            m.extend_from_slice(&[0x80, 8, 0, 0, 0, avp::ASSIGNED_TUNNEL_ID as u8]);
            m.extend_from_slice(&t.to_be_bytes());
        }
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn sccrq_sccrp_stopccn_make_a_tunnel_come_and_go() {
        let mut l = L2tp::new(1);
        assert_eq!(l.message(PEERS, true, &control(message::SCCRQ, 0, Some(7)), 100), None);
        let up = l.message(PEERS, false, &control(message::SCCRP, 7, Some(3)), 100);
        assert!(matches!(
            up,
            Some(Event::TunnelUp { ids: TunnelIds::L2tp { client_tunnel_id: 7, server_tunnel_id: 3 }, .. })
        ));
        let mut listed = Vec::new();
        l.tunnels(Instant::ZERO, &mut listed);
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].public, listed[0].state), (PEERS.public, "up"));
        let down = l.message(PEERS, true, &control(message::STOPCCN, 3, Some(7)), 100);
        assert!(matches!(down, Some(Event::TunnelDown { bytes_out: 200, bytes_in: 100, .. })));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn an_sccrp_for_no_request_is_ignored() {
        let mut l = L2tp::new(1);
        assert_eq!(l.message(PEERS, false, &control(message::SCCRP, 9, Some(3)), 100), None);
        assert_eq!(l.message(PEERS, true, b"not l2tp", 8), None);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn answers_from_another_port_pass_the_filter() {
        let l = L2tp::new(1);
        assert_eq!(l.inbound_filtering(Filtering::AddressAndPortDependent), Some(Filtering::AddressDependent));
        assert_eq!(l.inbound_filtering(Filtering::EndpointIndependent), None);
    }
}
