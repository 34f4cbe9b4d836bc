//! IPv6 forwarding with simple security (RFC 6092): no translation (LAN hosts have global
//! addresses), a state table of flows opened from the LAN, and unsolicited inbound traffic
//! dropped and counted.
//!
//! - Forwarding rules (RFC 8200): the hop limit is decremented, and an expiring packet gets
//!   an ICMPv6 Time Exceeded (RFC 4443 §3.3); a packet larger than the egress MTU gets a
//!   Packet Too Big (RFC 4443 §3.2): the router never fragments. Extension headers are walked
//!   as RFC 7045 says; a Routing header of type 0 is dropped (RFC 5095).
//! - Fragments (RFC 8200 §4.5): an atomic fragment is a whole packet (RFC 6946); otherwise
//!   the first fragment's verdict binds its datagram, and overlapping fragments drop it whole
//!   (RFC 5722), with the same byte coverage as IPv4.
//! - State (RFC 6092 §3.2, §3.3): TCP, UDP and ICMPv6 echo flows are opened by the LAN and let
//!   the remote end answer (endpoint-dependent filtering, REC-11 and REC-13 defaults);
//!   timers with the IPv4 floors.
//! - ICMPv6 (RFC 4890 §4.3): errors from the WAN pass when they quote a packet of a flow;
//!   Neighbor Discovery never crosses the router; echo requests from outside are not
//!   forwarded.
//! - VPN passthrough (RFC 6092 §3.2.4): with the IPsec switch on, ESP and AH pass both ways
//!   once a LAN host sent them to that peer, and IKE rides UDP flows; PPTP's GRE is tied to
//!   the TCP 1723 flow of the LAN host with that server; an LNS may answer an L2TP client's
//!   port 1701 from another port. A switch that is off blocks its protocol, as for IPv4.
//! - Listing: every flow is a session of [`crate::Engine::sessions`] (no public endpoint),
//!   and the VPN flows (ESP, AH, IKE on UDP 500/4500, PPTP's GRE, L2TP on UDP 1701) are
//!   tunnels of [`crate::Engine::tunnels`], with the identifiers each side's last packet
//!   carried (SPIs, IKE SPIs, Call IDs, Tunnel IDs).

use std::net::{Ipv6Addr, SocketAddr};

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::IpProtocol;
use natpass_wire::ah::AhPacket;
use natpass_wire::esp::EspPacket;
use natpass_wire::gre::GrePacket;
use natpass_wire::icmpv6::{self, Icmpv6Packet};
use natpass_wire::ike::{self, IkePacket, Udp4500Kind};
use natpass_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use natpass_wire::l2tp::L2tpPacket;

use crate::config::EngineConfig;
use crate::output::Output;
use crate::passthrough::ike::{IKE_PORT, NAT_T_PORT};
use crate::passthrough::{Protocol, TunnelIds};
use crate::time::Instant;
use crate::translate::fragments::Coverage;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{SessionInfo, TunnelInfo};

/// The most flows tracked; new ones beyond it are refused.
const MAX_FLOWS: usize = 65_536;
/// The most fragmented datagrams tracked.
const MAX_DATAGRAMS: usize = 4096;
/// The largest ICMPv6 error the router builds (RFC 4443 §2.4 (c): the minimum MTU).
const MAX_ERROR_LEN: usize = 1280;

/// An IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Net {
    addr: u128,
    len: u8,
}

impl Ipv6Net {
    /// The prefix of `addr` with `len` bits (at most 128).
    pub fn new(addr: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        Self { addr: addr.to_bits() & Self::mask(len), len }
    }

    fn mask(len: u8) -> u128 {
        if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) }
    }

    /// True when `ip` is inside.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        ip.to_bits() & Self::mask(self.len) == self.addr
    }

    /// The network address.
    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from_bits(self.addr)
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the zero-length prefix.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The IPv6 side of the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Config {
    /// The LAN's prefix: LAN packets must come from it, WAN packets must not.
    pub lan_prefix: Ipv6Net,
    /// The router's LAN address: the source of the ICMPv6 errors it sends to the LAN.
    pub lan_addr: Ipv6Addr,
    /// The router's WAN address: the source of the ICMPv6 errors it sends to the WAN.
    pub wan_addr: Ipv6Addr,
}

/// A flow as the LAN opened it: the LAN end and the remote end (ICMPv6 echo: the identifier
/// as the LAN port, 0 as the remote's; ESP, AH and GRE: no ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    protocol: IpProtocol,
    lan: Ipv6Addr,
    remote: Ipv6Addr,
    lan_port: u16,
    remote_port: u16,
}

#[derive(Clone, Copy, Debug)]
struct Flow {
    last_seen: u64,
    /// The remote end answered; for TCP, and no FIN or RST has been seen since.
    established: bool,
    /// Bytes LAN → WAN and WAN → LAN (IPv6 header included).
    bytes: [u64; 2],
    /// The VPN identifiers the LAN's and the remote's last packets carried ([`Ident`]); for
    /// IKE, the initiator's and responder's SPIs.
    ids: [u64; 2],
}

impl Flow {
    fn new(t: u64) -> Self {
        Self { last_seen: t, established: false, bytes: [0; 2], ids: [0; 2] }
    }

    /// Counts a packet of `len` bytes from `side` carrying `ident`.
    fn seen(&mut self, side: Side, len: usize, ident: Ident) {
        self.bytes[side as usize] += len as u64;
        match ident {
            Ident::None => {}
            Ident::Tag(x) => self.ids[side as usize] = u64::from(x),
            Ident::Ike(i, r) => {
                for (slot, v) in self.ids.iter_mut().zip([i, r]) {
                    if v != 0 {
                        *slot = v;
                    }
                }
            }
        }
    }
}

/// A VPN identifier a packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ident {
    None,
    /// ESP's or AH's SPI, enhanced GRE's Call ID (the receiver's), L2TP's Tunnel ID (the
    /// receiver's).
    Tag(u32),
    /// An IKE header's initiator and responder SPIs (0: not known yet).
    Ike(u64, u64),
}

impl Flow {
    /// How long the flow lives idle, by protocol and state, with the IPv4 timers.
    fn timeout(&self, protocol: IpProtocol, config: &EngineConfig) -> u64 {
        let t = &config.timeouts;
        crate::passthrough::nanos(match protocol {
            IpProtocol::TCP if self.established => t.tcp_established,
            IpProtocol::TCP => t.tcp_transitory,
            IpProtocol::ICMPV6 => t.icmp,
            _ => t.udp,
        })
    }
}

/// One fragmented datagram, by (source, destination, identification).
#[derive(Clone, Debug)]
struct Datagram {
    /// `None` until the first fragment came; then whether it passed.
    passed: Option<bool>,
    coverage: Coverage,
    expires: u64,
}

/// The IPv6 state of one engine.
pub(crate) struct Ipv6Guard {
    flows: HashMap<FlowKey, Flow, FixedState>,
    datagrams: HashMap<(Ipv6Addr, Ipv6Addr, u32), Datagram, FixedState>,
    wake: Option<Instant>,
}

/// TCP's FIN and RST flags.
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// The ICMPv6 errors the router sends itself.
#[derive(Clone, Copy, Debug)]
enum ErrorKind {
    TimeExceeded,
    PacketTooBig(u16),
}

/// What the walk found in a packet, for the rules.
struct Parsed {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: IpProtocol,
    /// The upper-layer header's offset, and its bytes as far as this packet holds them.
    l4_at: usize,
    /// The ports (TCP, UDP), identifier (ICMPv6 echo), or zeros.
    sport: u16,
    dport: u16,
    /// ICMPv6 type, TCP flags.
    icmp_type: Option<u8>,
    tcp_flags: u8,
    /// A non-first fragment: no upper-layer header.
    later_fragment: bool,
    /// The VPN identifier it carries.
    ident: Ident,
}

impl Ipv6Guard {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            flows: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x6_6092)),
            datagrams: HashMap::with_hasher(FixedState::with_seed(seed ^ 0x6_5722)),
            wake: None,
        }
    }

    /// Flows tracked.
    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    /// Forwards (or refuses) one IPv6 packet that arrived on `side`; `segment_len` for a
    /// segmentation-offload super-packet, whose segments (not itself) must fit the MTU.
    pub(crate) fn process(
        &mut self,
        now: Instant,
        config: &EngineConfig,
        out: &mut Output,
        side: Side,
        packet: &mut [u8],
        segment_len: Option<u16>,
    ) -> Verdict {
        let Some(v6) = &config.ipv6 else { return Verdict::Drop(DropReason::NotIpv4) };
        let ip = match Ipv6Packet::new_checked(&*packet) {
            Ok(ip) => ip,
            Err(_) => return Verdict::Drop(DropReason::Malformed),
        };
        let (src, dst) = (ip.src(), ip.dst());
        if dst.is_multicast() || src.is_multicast() || is_link_local(dst) || is_link_local(src) {
            // Link-scoped or multicast (a host's mDNS, MLD, LLMNR from its link-local
            // address): not the router's to forward, and not spoofing.
            return Verdict::Drop(DropReason::Martian);
        }
        let lan_src = v6.lan_prefix.contains(src);
        match side {
            Side::Lan if !lan_src => return Verdict::Drop(DropReason::LanSpoofedSource),
            Side::Wan if lan_src => return Verdict::Drop(DropReason::WanSpoofedSource),
            _ => {}
        }
        if (side == Side::Lan) == v6.lan_prefix.contains(dst) {
            // LAN-to-LAN: not the router's to forward.
            return Verdict::Drop(DropReason::Martian);
        }
        let parsed = match parse(&ip) {
            Ok(p) => p,
            Err(r) => return Verdict::Drop(r),
        };
        if ip.hop_limit() <= 1 {
            Self::error(now, config, out, side, packet, ErrorKind::TimeExceeded);
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let mtu = match side {
            Side::Lan => config.wan_mtu,
            Side::Wan => config.lan_mtu,
        };
        let total = segment_len.map_or(ipv6::HEADER_LEN + usize::from(ip.payload_len()), usize::from);
        if total > usize::from(mtu) {
            Self::error(now, config, out, side, packet, ErrorKind::PacketTooBig(mtu));
            return Verdict::Drop(DropReason::FragmentationNeeded);
        }
        let verdict = self.judge(now, config, side, &ip, &parsed);
        if verdict != Verdict::Forward(side.other()) {
            return verdict;
        }
        Ipv6Packet::new_unchecked(&mut *packet).decrement_hop_limit();
        verdict
    }

    /// The state rules for a packet whose headers are sound.
    fn judge(
        &mut self,
        now: Instant,
        config: &EngineConfig,
        side: Side,
        ip: &Ipv6Packet<&[u8]>,
        p: &Parsed,
    ) -> Verdict {
        let t = now.as_nanos();
        // Fragments: the first fragment's verdict binds the datagram.
        let frag = ip.upper_layer().ok().and_then(|u| u.fragment).filter(|f| !f.is_atomic());
        if let Some(f) = frag {
            let key = if side == Side::Lan { (p.src, p.dst, f.ident) } else { (p.dst, p.src, f.ident) };
            let expires = (now + config.timeouts.fragment).as_nanos();
            if !self.datagrams.contains_key(&key) && self.datagrams.len() >= MAX_DATAGRAMS {
                return Verdict::Drop(DropReason::FragmentDropped);
            }
            let d =
                self.datagrams.entry(key).or_insert(Datagram { passed: None, coverage: Coverage::default(), expires });
            d.expires = expires;
            self.wake = crate::passthrough::earliest(self.wake, Some(Instant::from_nanos(expires)));
            let len = (ip.payload().len() - (p.l4_at - ipv6::HEADER_LEN)) as u32;
            if let Err(r) = d.coverage.add((u32::from(f.offset), u32::from(f.offset) + len), !f.more) {
                d.passed = Some(false);
                return Verdict::Drop(r);
            }
            if p.later_fragment {
                return match d.passed {
                    Some(true) => {
                        if d.coverage.complete() {
                            self.datagrams.remove(&key);
                        }
                        Verdict::Forward(side.other())
                    }
                    // No holding for IPv6: a fragment before its first is dropped.
                    _ => Verdict::Drop(DropReason::FragmentDropped),
                };
            }
            let v = self.flow_rules(t, config, side, p, ip);
            if let Some(d) = self.datagrams.get_mut(&key) {
                d.passed = Some(v == Verdict::Forward(side.other()));
            }
            return v;
        }
        if p.later_fragment {
            return Verdict::Drop(DropReason::FragmentDropped);
        }
        self.flow_rules(t, config, side, p, ip)
    }

    fn flow_rules(&mut self, t: u64, config: &EngineConfig, side: Side, p: &Parsed, ip: &Ipv6Packet<&[u8]>) -> Verdict {
        let egress = side.other();
        if let Some(s) = switch_of(p)
            && !s.enabled(config)
        {
            return Verdict::Drop(s.disabled_reason());
        }
        match (p.protocol, p.icmp_type) {
            (IpProtocol::ICMPV6, Some(ty)) if icmpv6::is_error_type(ty) => {
                // RFC 4890 §4.3.1: errors pass when they are about a flow; from the WAN, the
                // quoted packet is one the LAN sent.
                return match side {
                    Side::Lan => Verdict::Forward(egress),
                    Side::Wan if self.quoted_flow(ip, p).is_some() => Verdict::Forward(egress),
                    Side::Wan => Verdict::Drop(DropReason::IcmpErrorNoSession),
                };
            }
            (IpProtocol::ICMPV6, Some(icmpv6::kind::ECHO_REQUEST | icmpv6::kind::ECHO_REPLY)) => {}
            // Neighbor Discovery and the rest of ICMPv6's informational messages stay on
            // their link (RFC 4890 §4.4).
            (IpProtocol::ICMPV6, _) => return Verdict::Drop(DropReason::IcmpUnsupported),
            _ => {}
        }
        let closing = p.tcp_flags & (TCP_FIN | TCP_RST) != 0;
        let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        match side {
            Side::Lan => {
                if p.icmp_type == Some(icmpv6::kind::ECHO_REPLY) {
                    // A reply from the LAN answers nothing the WAN may ask (no inbound echo).
                    return Verdict::Drop(DropReason::IcmpUnsupported);
                }
                let key = FlowKey {
                    protocol: p.protocol,
                    lan: p.src,
                    remote: p.dst,
                    lan_port: p.sport,
                    remote_port: p.dport,
                };
                if !self.flows.contains_key(&key) && self.flows.len() >= MAX_FLOWS {
                    return Verdict::Drop(DropReason::SessionTableFull);
                }
                let f = self.flows.entry(key).or_insert(Flow::new(t));
                f.last_seen = t;
                f.seen(side, len, p.ident);
                if closing {
                    f.established = false;
                }
                let until = t.saturating_add(f.timeout(p.protocol, config));
                self.wake = crate::passthrough::earliest(self.wake, Some(Instant::from_nanos(until)));
                Verdict::Forward(egress)
            }
            Side::Wan => {
                if p.icmp_type == Some(icmpv6::kind::ECHO_REQUEST) {
                    // RFC 6092 allows inbound echo as an option; natpass keeps the LAN dark.
                    return Verdict::Drop(DropReason::NoMapping);
                }
                let (lan_port, remote_port) = match p.protocol {
                    IpProtocol::ICMPV6 => (p.sport, 0),
                    _ => (p.dport, p.sport),
                };
                let key = FlowKey { protocol: p.protocol, lan: p.dst, remote: p.src, lan_port, remote_port };
                let flow = match self.flows.get_mut(&key) {
                    Some(f) => Some((f, p.ident)),
                    // A related flow (PPTP's TCP 1723 for its GRE) counts the bytes, not the
                    // identifiers of another protocol.
                    None => self.related(config, p).map(|f| (f, Ident::None)),
                };
                let Some((f, ident)) = flow else {
                    return Verdict::Drop(DropReason::NoMapping);
                };
                f.last_seen = t;
                f.seen(side, len, ident);
                f.established = !closing;
                Verdict::Forward(egress)
            }
        }
    }

    /// The flow an ICMPv6 error from the WAN is about: the packet it quotes went from a LAN
    /// host to the error's sender's side (RFC 4443 §2.4 (c): as much of it as fits).
    fn quoted_flow(&self, ip: &Ipv6Packet<&[u8]>, p: &Parsed) -> Option<&Flow> {
        let l4 = ip.payload().get(p.l4_at - ipv6::HEADER_LEN..)?;
        let quote = l4.get(icmpv6::HEADER_LEN..)?;
        if quote.len() < ipv6::HEADER_LEN {
            return None;
        }
        // The quote may be cut short (RFC 4443 §2.4 (c)): a copy whose payload length says
        // what is there (errors are rare and rate limited at their source).
        let mut copy = quote.to_vec();
        let avail = u16::try_from(quote.len() - ipv6::HEADER_LEN).unwrap_or(u16::MAX);
        let mut v = Ipv6Packet::new_unchecked(&mut copy[..]);
        let claimed = v.payload_len();
        v.set_payload_len(claimed.min(avail));
        let q = Ipv6Packet::new_checked(&copy[..]).ok()?;
        let qp = parse(&q).ok()?;
        let key =
            FlowKey { protocol: qp.protocol, lan: qp.src, remote: qp.dst, lan_port: qp.sport, remote_port: qp.dport };
        if qp.src != p.dst {
            return None;
        }
        self.flows.get(&key)
    }

    /// A flow that lets an inbound packet in without matching it exactly: an LNS answering
    /// an L2TP client from another port (RFC 2661 §8.1), PPTP's GRE tied to the client's TCP
    /// 1723 connection with that server.
    fn related(&mut self, config: &EngineConfig, p: &Parsed) -> Option<&mut Flow> {
        let wanted = match p.protocol {
            IpProtocol::UDP if p.dport == crate::passthrough::l2tp::L2TP_PORT && config.passthrough.l2tp => {
                |k: &FlowKey, p: &Parsed| k.protocol == IpProtocol::UDP && k.lan_port == p.dport && k.remote == p.src
            }
            IpProtocol::GRE if config.passthrough.pptp => |k: &FlowKey, p: &Parsed| {
                k.protocol == IpProtocol::TCP
                    && k.remote_port == crate::passthrough::pptp::CONTROL_PORT
                    && k.remote == p.src
            },
            _ => return None,
        };
        let lan = p.dst;
        self.flows.iter_mut().find(|(k, _)| k.lan == lan && wanted(k, p)).map(|(_, f)| f)
    }

    /// An ICMPv6 error about `orig` back to its sender on `side`, from the router's address
    /// on that side, quoting as much of it as fits in 1280 bytes (RFC 4443 §2.4 (c)), rate
    /// limited like IPv4's. Never about an ICMPv6 error or a multicast packet (§2.4 (e)).
    fn error(now: Instant, config: &EngineConfig, out: &mut Output, side: Side, orig: &[u8], what: ErrorKind) {
        let (Some(v6), Ok(ip)) = (&config.ipv6, Ipv6Packet::new_checked(orig)) else { return };
        if ip.dst().is_multicast() || ip.src().is_multicast() || ip.src().is_unspecified() {
            return;
        }
        let about_error = parse(&ip).ok().and_then(|p| p.icmp_type).is_some_and(icmpv6::is_error_type);
        if about_error || !out.take_icmp_token(now, config.icmp_errors_per_sec) {
            return;
        }
        let src = if side == Side::Lan { v6.lan_addr } else { v6.wan_addr };
        let quoted = (ipv6::HEADER_LEN + usize::from(ip.payload_len()))
            .min(MAX_ERROR_LEN - ipv6::HEADER_LEN - icmpv6::HEADER_LEN);
        let len = icmpv6::HEADER_LEN + quoted;
        let mut pkt = vec![0u8; ipv6::HEADER_LEN + len];
        let repr =
            Ipv6Repr { src, dst: ip.src(), next_header: IpProtocol::ICMPV6, payload_len: len as u16, hop_limit: 255 };
        repr.emit(&mut pkt);
        let (kind, rest) = match what {
            ErrorKind::TimeExceeded => (icmpv6::kind::TIME_EXCEEDED, 0),
            ErrorKind::PacketTooBig(mtu) => (icmpv6::kind::PACKET_TOO_BIG, u32::from(mtu)),
        };
        let ps = Ipv6Packet::new_unchecked(&pkt[..]).pseudo_header_sum(IpProtocol::ICMPV6, len as u32);
        let mut m = Icmpv6Packet::new_unchecked(&mut pkt[ipv6::HEADER_LEN..]);
        m.set_header(kind, 0, rest);
        m.data_mut().copy_from_slice(&orig[..quoted]);
        m.fill_checksum(ps);
        out.stats.icmp_errors_sent += 1;
        out.transmit(side, pkt);
    }

    /// Every flow, as a session of the listing.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = SessionInfo> + '_ {
        self.flows.iter().map(|(k, f)| SessionInfo {
            protocol: k.protocol,
            lan: SocketAddr::new(k.lan.into(), k.lan_port),
            public: None,
            remote: SocketAddr::new(k.remote.into(), k.remote_port),
            established: f.established,
            last_seen: Instant::from_nanos(f.last_seen),
            bytes_out: f.bytes[Side::Lan as usize],
            bytes_in: f.bytes[Side::Wan as usize],
        })
    }

    /// The VPN flows as tunnels: ESP and AH, IKE (UDP 500 and 4500), PPTP's GRE, L2TP (UDP
    /// 1701), with the identifiers last seen each way.
    pub(crate) fn tunnels(&self, now: Instant, out: &mut Vec<TunnelInfo>) {
        let start = out.len();
        for (k, f) in &self.flows {
            let [lan_id, remote_id] = f.ids;
            let (protocol, kind, ids) = match k.protocol {
                IpProtocol::ESP | IpProtocol::AH => (
                    Protocol::Ipsec,
                    if k.protocol == IpProtocol::ESP { "ESP SA pair (IPv6)" } else { "AH SA pair (IPv6)" },
                    TunnelIds::Esp { spi_out: lan_id as u32, spi_in: remote_id as u32 },
                ),
                IpProtocol::UDP if matches!(k.remote_port, IKE_PORT | NAT_T_PORT) => {
                    (Protocol::Ipsec, "IKE SA (IPv6)", TunnelIds::Ike { spi_i: lan_id, spi_r: remote_id })
                }
                IpProtocol::GRE => (
                    Protocol::Pptp,
                    "PPTP call (GRE, IPv6)",
                    // The server's GRE carries the client's Call ID, and the client's the
                    // server's; no translation, so the public Call ID is the client's.
                    TunnelIds::Pptp {
                        client_call_id: remote_id as u16,
                        public_call_id: remote_id as u16,
                        server_call_id: lan_id as u16,
                    },
                ),
                IpProtocol::UDP if k.remote_port == crate::passthrough::l2tp::L2TP_PORT => (
                    Protocol::L2tp,
                    "L2TP tunnel (UDP 1701, IPv6)",
                    TunnelIds::L2tp { client_tunnel_id: remote_id as u16, server_tunnel_id: lan_id as u16 },
                ),
                _ => continue,
            };
            out.push(TunnelInfo {
                protocol,
                kind,
                client: k.lan.into(),
                server: k.remote.into(),
                public: None,
                ids,
                bytes_out: f.bytes[Side::Lan as usize],
                bytes_in: f.bytes[Side::Wan as usize],
                idle_secs: now.as_nanos().saturating_sub(f.last_seen) / 1_000_000_000,
                state: if f.established { "up" } else { "waiting for the server" },
            });
        }
        out[start..].sort_by_key(|t| (t.protocol, t.client, t.server));
    }

    /// Ends flows and datagrams past their timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant, config: &EngineConfig) {
        let t = now.as_nanos();
        self.flows.retain(|k, f| t.saturating_sub(f.last_seen) < f.timeout(k.protocol, config));
        self.datagrams.retain(|_, d| d.expires > t);
        let flows = self.flows.iter().map(|(k, f)| f.last_seen.saturating_add(f.timeout(k.protocol, config)));
        let frags = self.datagrams.values().map(|d| d.expires);
        self.wake = flows.chain(frags).min().map(Instant::from_nanos);
    }

    /// Forgets the flows under `protocol`'s switch (it went off); returns how many went.
    pub(crate) fn clear(&mut self, protocol: Protocol) -> usize {
        let before = self.flows.len();
        self.flows.retain(|k, _| switch_for(k.protocol, [k.lan_port, k.remote_port]) != Some(protocol));
        before - self.flows.len()
    }

    /// When [`Ipv6Guard::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80 || a.is_unspecified() || a.is_loopback()
}

/// The switch a packet falls under, if a VPN protocol's.
fn switch_of(p: &Parsed) -> Option<Protocol> {
    switch_for(p.protocol, [p.sport, p.dport])
}

/// The switch of a protocol with these ports, if a VPN protocol's.
fn switch_for(protocol: IpProtocol, ports: [u16; 2]) -> Option<Protocol> {
    match protocol {
        IpProtocol::ESP | IpProtocol::AH => Some(Protocol::Ipsec),
        IpProtocol::UDP if ports.iter().any(|&x| x == 500 || x == 4500) => Some(Protocol::Ipsec),
        IpProtocol::UDP if ports.contains(&1701) => Some(Protocol::L2tp),
        IpProtocol::GRE => Some(Protocol::Pptp),
        IpProtocol::TCP if ports.contains(&1723) => Some(Protocol::Pptp),
        _ => None,
    }
}

/// The VPN identifier of a UDP payload: the IKE SPIs on ports 500 and 4500 (behind the
/// non-ESP marker there), the receiver's Tunnel ID on L2TP's 1701.
fn udp_ident(sport: u16, dport: u16, payload: &[u8]) -> Ident {
    let ike =
        |b: &[u8]| IkePacket::new_checked(b).map_or(Ident::None, |h| Ident::Ike(h.initiator_spi(), h.responder_spi()));
    let ports = [sport, dport];
    if ports.contains(&IKE_PORT) {
        ike(payload)
    } else if ports.contains(&NAT_T_PORT) {
        match (ike::classify_udp_4500(payload), payload.get(4..)) {
            (Udp4500Kind::Ike, Some(rest)) => ike(rest),
            _ => Ident::None,
        }
    } else if ports.contains(&crate::passthrough::l2tp::L2TP_PORT) {
        L2tpPacket::new_checked(payload)
            .ok()
            .and_then(|l| l.tunnel_id())
            .map_or(Ident::None, |t| Ident::Tag(u32::from(t)))
    } else {
        Ident::None
    }
}

/// Walks the headers: the upper layer, its ports or ICMPv6 type, or why the packet is refused.
fn parse(ip: &Ipv6Packet<&[u8]>) -> Result<Parsed, DropReason> {
    let up = ip.upper_layer().map_err(|_| DropReason::Malformed)?;
    if up.routing_type0 {
        return Err(DropReason::Ipv6RoutingHeader0);
    }
    let later_fragment = up.fragment.is_some_and(|f| f.offset != 0);
    let l4 = ip.payload().get(up.offset - ipv6::HEADER_LEN..).unwrap_or_default();
    let mut p = Parsed {
        src: ip.src(),
        dst: ip.dst(),
        protocol: up.protocol,
        l4_at: up.offset,
        sport: 0,
        dport: 0,
        icmp_type: None,
        tcp_flags: 0,
        later_fragment,
        ident: Ident::None,
    };
    if later_fragment {
        return Ok(p);
    }
    match up.protocol {
        IpProtocol::TCP | IpProtocol::UDP => {
            let h = l4.get(..if up.protocol == IpProtocol::TCP { 20 } else { 8 }).ok_or(DropReason::TinyFragment)?;
            p.sport = u16::from_be_bytes([h[0], h[1]]);
            p.dport = u16::from_be_bytes([h[2], h[3]]);
            if up.protocol == IpProtocol::TCP {
                p.tcp_flags = h[13];
            } else {
                p.ident = udp_ident(p.sport, p.dport, l4.get(8..).unwrap_or_default());
            }
        }
        IpProtocol::ESP => p.ident = EspPacket::new_checked(l4).map_or(Ident::None, |e| Ident::Tag(e.spi())),
        IpProtocol::AH => p.ident = AhPacket::new_checked(l4).map_or(Ident::None, |a| Ident::Tag(a.spi())),
        IpProtocol::GRE => {
            let call = GrePacket::new_checked(l4).ok().and_then(|g| g.call_id());
            p.ident = call.map_or(Ident::None, |c| Ident::Tag(u32::from(c)));
        }
        IpProtocol::ICMPV6 => {
            let m = Icmpv6Packet::new_checked(l4).map_err(|_| DropReason::TinyFragment)?;
            p.icmp_type = Some(m.msg_type());
            if matches!(m.msg_type(), icmpv6::kind::ECHO_REQUEST | icmpv6::kind::ECHO_REPLY) {
                p.sport = m.ident();
            }
        }
        ipv6::ext::NO_NEXT_HEADER => {}
        _ => {}
    }
    Ok(p)
}
