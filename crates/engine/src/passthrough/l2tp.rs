//! L2TP passthrough (RFC 2661) on UDP 1701. The traffic rides NAPT: an endpoint-independent
//! mapping (RFC 4787 REQ-1) that keeps port 1701 when it is free, and, with the switch on,
//! address-dependent filtering for it, so that an LNS may answer from a port other than 1701
//! (RFC 2661 §8.1) even under address-and-port-dependent filtering.
//!
//! Tunnels are tracked for the control plane (RFC 2661 §4.4.3, §5.1): control messages are
//! read, not rewritten. A client's SCCRQ names its Assigned Tunnel ID; the server's SCCRP,
//! addressed to that ID, names the server's, and the tunnel is up. StopCCN takes it down.
//! ICMP errors about L2TP are NAPT's (the quoted datagram names the mapping).
//!
//! For the diagnosis: a client's SCCRQ (and each retransmission, RFC 2661 §5.8) while another
//! client's tunnel to the same LNS leaves from the same public address is reported, with
//! whether the other tunnel is up; so are the LNS's answer (SCCRP) and its refusal (StopCCN
//! before any SCCRP).

use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::IpProtocol;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::l2tp::{L2tpPacket, avp, message};
use natpass_wire::udp::UdpPacket;

use super::{NaptPacket, Peers, Protocol, TunnelIds, VpnProtocol};
use crate::config::Filtering;
use crate::diagnosis::{L2tpShared, Observation, Ports, Subject};
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
    /// SCCRQs sent for it, the first when, and the UDP ports, for the diagnosis.
    requests: u32,
    first_request: Instant,
    ports: Ports,
}

/// An L2TP message passing natpass.
#[derive(Clone, Copy, Debug)]
struct Seen {
    peers: Peers,
    from_client: bool,
    /// The IP datagram's length.
    bytes: usize,
    now: Instant,
    ports: Ports,
    /// Public addresses in the pool.
    pool: usize,
}

/// What a message comes to: a tunnel event, an observation for the diagnosis.
type Outcome = (Option<Event>, Option<Observation>);

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

    /// An L2TP message (a UDP payload). Returns an event when a tunnel comes up or goes down,
    /// and what the diagnosis should hear.
    fn message(&mut self, m: &Seen, payload: &[u8]) -> Outcome {
        self.read(m, payload).unwrap_or_default()
    }

    fn read(&mut self, m: &Seen, payload: &[u8]) -> Option<Outcome> {
        let (peers, from_client, bytes) = (m.peers, m.from_client, m.bytes);
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
                let fresh = Tunnel {
                    public: peers.public,
                    server_tunnel_id: None,
                    requests: 0,
                    first_request: m.now,
                    ports: m.ports,
                };
                let t = self.tunnels.entry(key).or_insert(fresh);
                t.requests += 1;
                let t = *t;
                self.bytes.entry((client, server)).or_insert((bytes as u64, 0));
                Some((None, self.shared(key, &t, m)))
            }
            (false, message::SCCRP) => {
                let client_tunnel_id = p.tunnel_id()?;
                let server_tunnel_id = assigned_tunnel_id(&p)?;
                let t = self.tunnels.get_mut(&TunnelKey { client, server, client_tunnel_id })?;
                let fresh = t.server_tunnel_id.is_none();
                t.server_tunnel_id = Some(server_tunnel_id);
                let up = Event::TunnelUp {
                    protocol: Protocol::L2tp,
                    client,
                    server,
                    public: t.public,
                    ids: TunnelIds::L2tp { client_tunnel_id, server_tunnel_id },
                };
                Some((fresh.then_some(up), fresh.then_some(Observation::L2tpAnswered { client, server })))
            }
            (_, message::STOPCCN) => {
                // The header carries the receiver's tunnel ID; the AVP the sender's.
                let (client_tunnel_id, server_tunnel_id) = if from_client {
                    (assigned_tunnel_id(&p)?, p.tunnel_id()?)
                } else {
                    (p.tunnel_id()?, assigned_tunnel_id(&p)?)
                };
                let key = TunnelKey { client, server, client_tunnel_id };
                let gone = self.tunnels.remove(&key)?;
                // The server refusing a request it never answered, while another client's tunnel
                // from the same address is up.
                let refused = match (from_client, gone.server_tunnel_id) {
                    (false, None) => match self.shared(key, &gone, m) {
                        Some(Observation::L2tpRequest(s)) => Some(Observation::L2tpRefused(s)),
                        _ => None,
                    },
                    _ => None,
                };
                let (bytes_out, bytes_in) = if self.tunnels.keys().any(|k| k.client == client && k.server == server) {
                    self.bytes.get(&(client, server)).copied().unwrap_or_default()
                } else {
                    self.bytes.remove(&(client, server)).unwrap_or_default()
                };
                let down = Event::TunnelDown {
                    protocol: Protocol::L2tp,
                    client,
                    server,
                    ids: TunnelIds::L2tp { client_tunnel_id, server_tunnel_id },
                    bytes_out,
                    bytes_in,
                };
                Some((Some(down), refused))
            }
            _ => None,
        }
    }

    /// Tunnel `key`'s request as the diagnosis sees it, when another client's tunnel to the
    /// same server leaves from the same public address (the one that is up, if any).
    fn shared(&self, key: TunnelKey, t: &Tunnel, m: &Seen) -> Option<Observation> {
        if t.server_tunnel_id.is_some() {
            return None;
        }
        let others = self.tunnels.iter().filter(|(k, o)| k.server == key.server && o.public == t.public);
        let (other, o) =
            others.filter(|(k, _)| k.client != key.client).max_by_key(|(_, o)| o.server_tunnel_id.is_some())?;
        let subject = Subject {
            protocol: Protocol::L2tp,
            client: key.client,
            server: key.server,
            public: Some(t.public),
            ids: Some(TunnelIds::L2tp { client_tunnel_id: key.client_tunnel_id, server_tunnel_id: 0 }),
            ports: Some(t.ports),
        };
        Some(Observation::L2tpRequest(L2tpShared {
            subject,
            other_client: other.client,
            other_up: o.server_tunnel_id.is_some(),
            tries: t.requests,
            first: t.first_request,
            pool: m.pool,
        }))
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
        let seen = Seen {
            peers: napt.peers,
            from_client: napt.from == Side::Lan,
            bytes: usize::from(ip.total_len()),
            now: cx.now,
            ports: Ports { client: napt.client_port, public: napt.public_port, server: napt.server_port },
            pool: cx.config.public_addrs.len(),
        };
        let (ev, obs) = self.message(&seen, udp.payload());
        if let Some(ev) = ev {
            cx.event(ev);
        }
        if let Some(obs) = obs {
            cx.observe(obs);
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
                client: k.client.into(),
                server: k.server.into(),
                public: Some(t.public.into()),
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

    fn seen(peers: Peers, from_client: bool) -> Seen {
        Seen {
            peers,
            from_client,
            bytes: 100,
            now: Instant::ZERO,
            ports: Ports { client: L2TP_PORT, public: L2TP_PORT, server: L2TP_PORT },
            pool: 1,
        }
    }

    #[test]
    fn sccrq_sccrp_stopccn_make_a_tunnel_come_and_go() {
        let mut l = L2tp::new(1);
        assert!(matches!(l.message(&seen(PEERS, true), &control(message::SCCRQ, 0, Some(7))), (None, None)));
        let (up, obs) = l.message(&seen(PEERS, false), &control(message::SCCRP, 7, Some(3)));
        assert!(matches!(obs, Some(Observation::L2tpAnswered { .. })));
        assert!(matches!(
            up,
            Some(Event::TunnelUp { ids: TunnelIds::L2tp { client_tunnel_id: 7, server_tunnel_id: 3 }, .. })
        ));
        let mut listed = Vec::new();
        l.tunnels(Instant::ZERO, &mut listed);
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].public, listed[0].state), (Some(PEERS.public.into()), "up"));
        let (down, _) = l.message(&seen(PEERS, true), &control(message::STOPCCN, 3, Some(7)));
        assert!(matches!(down, Some(Event::TunnelDown { bytes_out: 200, bytes_in: 100, .. })));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn an_sccrp_for_no_request_is_ignored() {
        let mut l = L2tp::new(1);
        assert!(matches!(l.message(&seen(PEERS, false), &control(message::SCCRP, 9, Some(3))), (None, None)));
        assert!(matches!(l.message(&seen(PEERS, true), b"not l2tp"), (None, None)));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn a_second_client_to_the_same_server_and_address_is_reported() {
        let mut l = L2tp::new(1);
        let b = Peers { client: Ipv4Addr::new(192, 168, 1, 11), ..PEERS };
        let _ = l.message(&seen(PEERS, true), &control(message::SCCRQ, 0, Some(7)));
        let _ = l.message(&seen(PEERS, false), &control(message::SCCRP, 7, Some(3)));
        // B asks twice (a retransmission); each time the diagnosis hears it, with A up.
        for tries in 1..=2 {
            let (_, obs) = l.message(&seen(b, true), &control(message::SCCRQ, 0, Some(9)));
            let Some(Observation::L2tpRequest(s)) = obs else { panic!("{obs:?}") };
            assert_eq!((s.other_client, s.other_up, s.tries), (PEERS.client, true, tries));
        }
        // The server refuses B: reported as such.
        let (_, obs) = l.message(&seen(b, false), &control(message::STOPCCN, 9, Some(4)));
        assert!(matches!(obs, Some(Observation::L2tpRefused(_))));
        // From another public address: nothing to report.
        let c = Peers { client: Ipv4Addr::new(192, 168, 1, 12), public: Ipv4Addr::new(203, 0, 113, 2), ..PEERS };
        assert!(matches!(l.message(&seen(c, true), &control(message::SCCRQ, 0, Some(5))), (None, None)));
    }

    #[test]
    fn answers_from_another_port_pass_the_filter() {
        let l = L2tp::new(1);
        assert_eq!(l.inbound_filtering(Filtering::AddressAndPortDependent), Some(Filtering::AddressDependent));
        assert_eq!(l.inbound_filtering(Filtering::EndpointIndependent), None);
    }
}
