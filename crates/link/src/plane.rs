//! The data plane without sockets: Ethernet frames in, the engine in the middle, Ethernet
//! frames out.
//!
//! Per received frame ([`Plane::handle_frame`]): ARP is answered for natpass's own addresses
//! and feeds the neighbour cache; an IPv4 frame for our MAC address has an unfinished checksum
//! completed, is answered when it pings the router, and otherwise goes through the engine;
//! what the engine forwards gets the next hop's MAC address (or waits for ARP) and goes into
//! the other side's [`FrameSink`]. Between frames the driver calls
//! [`Plane::transmit_engine_output`] and, every few milliseconds, [`Plane::handle_timeout`].
//!
//! IPv6, when the ports have IPv6 addresses: Neighbor Discovery (RFC 4861, [`crate::nd`])
//! answers Neighbor Solicitations for the router's addresses on each side, its link-local
//! address included (§7.2.3, §7.2.4), frames to its solicited-node groups and all-nodes and
//! all-routers are taken in (RFC 2464 §7), next hops are resolved with Neighbor
//! Solicitations and watched (§7.2.2, §7.3) in the same neighbour table design as ARP's;
//! Echo Requests to the router are answered (RFC 4443 §4.2); Router Advertisements go out on
//! the LAN now and then and in answer to Router Solicitations (§6.2.4, §6.2.6). Other IPv6
//! frames for our MAC address go through the engine.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use natpass_engine::ipv6::Ipv6Net;
use natpass_engine::{Engine, Instant, Ipv4Net, Side, Verdict};
use natpass_wire::arp::{self, ArpEnd, ArpPacket};
use natpass_wire::ethernet::{self, EthernetFrame, MacAddr};
use natpass_wire::icmpv6::RouterAdvertisement;
use natpass_wire::ipv4::Ipv4Packet;

use crate::echo;
use crate::nd::{self, NdMessage};
use crate::neighbours::{Lookup, Neighbours};
use crate::offload::{self, RxMeta, Segmentation};
use crate::sink::FrameSink;

const BROADCAST: MacAddr = [0xff; 6];

/// One interface as the link layer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// natpass's MAC address there.
    pub mac: MacAddr,
    /// The largest IP packet a frame may carry (the interface MTU).
    pub mtu: usize,
    /// natpass's address there: it answers ARP for it and asks from it.
    pub addr: Ipv4Addr,
    /// The on-link network: next hops inside it are resolved directly.
    pub net: Ipv4Net,
    /// natpass's IPv6 address and on-link prefix there, when it routes IPv6.
    pub v6: Option<PortV6>,
}

/// One interface's IPv6 side. natpass's link-local address there comes from the MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortV6 {
    /// natpass's global address: it answers Neighbor Solicitations for it and sends from it.
    pub addr: Ipv6Addr,
    /// The on-link prefix: next hops inside it (and link-local ones) are resolved directly.
    pub prefix: Ipv6Net,
}

/// Router Advertisements on the LAN (RFC 4861 §6.2.1; RFC 8106).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertising {
    /// Time between unsolicited advertisements.
    pub interval: Duration,
    /// The router lifetime announced (0: not a default router).
    pub lifetime: Duration,
    /// DNS servers announced (RDNSS), none when empty.
    pub dns: Vec<Ipv6Addr>,
}

/// The first advertisements go out at most this far apart (RFC 4861 §10
/// MAX_INITIAL_RTR_ADVERT_INTERVAL), [`INITIAL_ADVERTS`] of them.
pub(crate) const INITIAL_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
/// How many advertisements go out at the initial pace (MAX_INITIAL_RTR_ADVERTISEMENTS).
pub(crate) const INITIAL_ADVERTS: u32 = 3;
/// Multicast advertisements are at least this far apart (MIN_DELAY_BETWEEN_RAS).
pub(crate) const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// The prefix's valid and preferred lifetimes in seconds (RFC 4861 §6.2.1 defaults).
pub(crate) const PREFIX_LIFETIMES: (u32, u32) = (2_592_000, 604_800);

/// What the link layer needs to know about its two interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The LAN interface.
    pub lan: PortConfig,
    /// The WAN interface. natpass answers ARP there for every public address of the engine.
    pub wan: PortConfig,
    /// The next hop on the WAN for everything off the WAN link (`None`: on-link only).
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 next hop on the WAN for everything off the WAN prefix.
    pub gateway6: Option<Ipv6Addr>,
    /// Router Advertisements on the LAN (needs the LAN's [`PortV6`]).
    pub ra: Option<Advertising>,
}

/// Counters of the link layer (the engine keeps its own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received per side.
    pub rx_frames: [u64; 2],
    /// Frames sent per side (counted by the driver, [`Plane::note_sent`]).
    pub tx_frames: [u64; 2],
    /// Frames the backend would not take (queue full).
    pub tx_dropped: [u64; 2],
    /// ARP requests for our addresses answered.
    pub arp_answered: u64,
    /// ARP requests we sent.
    pub arp_requests: u64,
    /// Pings to the router answered.
    pub pings_answered: u64,
    /// Frames neither IPv4 nor ARP (IPv6, LLDP, ...), ignored.
    pub not_ipv4: u64,
    /// Frames for another MAC address (flooded by a switch), ignored.
    pub not_for_us: u64,
    /// Frames larger than the link MTU and not segmentation-offload super-frames, or
    /// super-frames that cannot be cut (not TCP or UDP).
    pub oversize: u64,
    /// 802.1Q-tagged frames (natpass runs on untagged links).
    pub vlan_tagged: u64,
    /// Packets that had no route (a LAN destination off the LAN link, no WAN gateway).
    pub no_route: u64,
    /// Segmentation-offload super-frames translated whole.
    pub gso_frames: u64,
    /// Neighbor Solicitations for our IPv6 addresses answered.
    pub nd_answered: u64,
    /// Neighbor Solicitations we sent (resolving and probing).
    pub nd_requests: u64,
    /// Router Advertisements sent.
    pub ra_sent: u64,
    /// Neighbor Discovery messages that failed RFC 4861's validation, dropped.
    pub nd_invalid: u64,
    /// The same by reason, in the order of [`nd::NdInvalid::ALL`].
    pub nd_invalid_by: [u64; 8],
    /// IPv6 packets for the router's own addresses or groups that it does not serve (not
    /// Neighbor Discovery nor an echo request), dropped.
    pub ipv6_to_router: u64,
}

struct Port<T> {
    config: PortConfig,
    neighbours: Neighbours,
    neighbours6: Neighbours<Ipv6Addr>,
    /// natpass's link-local address there (from the MAC).
    link_local: Ipv6Addr,
    tx: T,
}

/// The Router Advertisement schedule.
struct Advertiser {
    config: Advertising,
    next: Instant,
    sent: u32,
    last_multicast: Option<Instant>,
}

/// The link layer and the engine for a LAN and a WAN interface, without sockets.
pub struct Plane<T> {
    ports: [Port<T>; 2],
    gateway: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
    ra: Option<Advertiser>,
    /// The public addresses natpass answers ARP and pings for on the WAN.
    public: Vec<Ipv4Addr>,
    engine: Engine,
    stats: LinkStats,
}

impl<T: FrameSink> Plane<T> {
    /// The data plane for `config`'s interfaces, sending through `lan_tx` and `wan_tx`.
    pub fn new(config: LinkConfig, engine: Engine, lan_tx: T, wan_tx: T) -> Self {
        let port = |config: PortConfig, tx| Port {
            link_local: nd::link_local(config.mac),
            config,
            neighbours: Neighbours::new(),
            neighbours6: Neighbours::new(),
            tx,
        };
        let ra = config.ra.filter(|_| config.lan.v6.is_some()).map(|config| Advertiser {
            config,
            next: Instant::ZERO,
            sent: 0,
            last_multicast: None,
        });
        Self {
            ports: [port(config.lan, lan_tx), port(config.wan, wan_tx)],
            gateway: config.gateway,
            gateway6: config.gateway6,
            ra,
            public: engine.config().public_addrs.clone(),
            engine,
            stats: LinkStats::default(),
        }
    }

    /// The engine, for status and counters.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to change switches and to drain its events.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Link-layer counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// One side's interface.
    pub fn port(&self, side: Side) -> &PortConfig {
        &self.ports[side as usize].config
    }

    /// One side's neighbour cache.
    pub fn neighbours(&self, side: Side) -> &Neighbours {
        &self.ports[side as usize].neighbours
    }

    /// One side's IPv6 neighbour cache.
    pub fn neighbours6(&self, side: Side) -> &Neighbours<Ipv6Addr> {
        &self.ports[side as usize].neighbours6
    }

    /// natpass's link-local IPv6 address on one side.
    pub fn link_local(&self, side: Side) -> Ipv6Addr {
        self.ports[side as usize].link_local
    }

    /// One side's transmit queue.
    pub fn tx(&self, side: Side) -> &T {
        &self.ports[side as usize].tx
    }

    /// One side's transmit queue, for the driver to send and empty.
    pub fn tx_mut(&mut self, side: Side) -> &mut T {
        &mut self.ports[side as usize].tx
    }

    /// Counts what the driver did with one side's queue: `sent` of `queued` frames left.
    pub fn note_sent(&mut self, side: Side, queued: usize, sent: usize) {
        self.stats.tx_frames[side as usize] += sent as u64;
        self.stats.tx_dropped[side as usize] += queued.saturating_sub(sent) as u64;
    }

    /// Every link-layer counter by its name in the API and metrics.
    pub fn counters(&self) -> [(&'static str, u64); 19] {
        let s = &self.stats;
        let [lan, wan] = [&self.ports[0].neighbours, &self.ports[1].neighbours];
        let [lan6, wan6] = [&self.ports[0].neighbours6, &self.ports[1].neighbours6];
        [
            ("arp_answered", s.arp_answered),
            ("arp_requests", s.arp_requests),
            ("arp_unresolved", lan.unresolved + wan.unresolved),
            ("arp_queue_full", lan.queue_full + wan.queue_full),
            ("pings_answered", s.pings_answered),
            ("oversize_frames", s.oversize),
            ("tx_queue_full", s.tx_dropped[0] + s.tx_dropped[1]),
            ("not_ipv4", s.not_ipv4),
            ("vlan_tagged", s.vlan_tagged),
            ("no_route", s.no_route),
            ("gso_frames", s.gso_frames),
            ("nd_answered", s.nd_answered),
            ("nd_requests", s.nd_requests),
            ("nd_unresolved", lan6.unresolved + wan6.unresolved),
            ("nd_queue_full", lan6.queue_full + wan6.queue_full),
            ("neighbours_unreachable", lan.unreachable + wan.unreachable + lan6.unreachable + wan6.unreachable),
            ("ra_sent", s.ra_sent),
            ("nd_invalid", s.nd_invalid),
            ("ipv6_to_router", s.ipv6_to_router),
        ]
    }

    /// Handles one frame received on `side`. The frame is translated in place; what leaves
    /// is copied into a [`FrameSink`].
    pub fn handle_frame(&mut self, now: Instant, side: Side, frame: &mut [u8], meta: RxMeta) {
        self.stats.rx_frames[side as usize] += 1;
        if meta.outgoing {
            return;
        }
        if meta.vlan_stripped {
            self.stats.vlan_tagged += 1;
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(&mut *frame) else {
            self.stats.not_ipv4 += 1;
            return;
        };
        match eth.ethertype() {
            ethernet::ethertype::ARP => self.handle_arp(now, side, eth.payload()),
            ethernet::ethertype::IPV4 if eth.header_len() == ethernet::HEADER_LEN => {
                let dst = eth.dst();
                self.handle_ipv4(now, side, dst, frame, meta);
            }
            ethernet::ethertype::IPV6
                if eth.header_len() == ethernet::HEADER_LEN && self.ports[side as usize].config.v6.is_some() =>
            {
                let (dst, src) = (eth.dst(), eth.src());
                self.handle_ipv6(now, side, dst, src, frame, meta);
            }
            ethernet::ethertype::VLAN | ethernet::ethertype::QINQ => self.stats.vlan_tagged += 1,
            _ => self.stats.not_ipv4 += 1,
        }
    }

    /// An IPv4 `frame` (its Ethernet header untagged) for `dst`.
    fn handle_ipv4(&mut self, now: Instant, side: Side, dst: MacAddr, frame: &mut [u8], meta: RxMeta) {
        if dst != self.ports[side as usize].config.mac {
            self.stats.not_for_us += 1;
            return;
        }
        self.route(now, side, frame, meta);
    }

    /// An IPv6 `frame` (its Ethernet header untagged) for `dst_mac` from `src_mac`, on a side
    /// with IPv6: what is for the router (its addresses, all-nodes, all-routers, its
    /// solicited-node groups) is handled here, the rest goes through the engine.
    fn handle_ipv6(
        &mut self,
        now: Instant,
        side: Side,
        dst_mac: MacAddr,
        src_mac: MacAddr,
        frame: &mut [u8],
        meta: RxMeta,
    ) {
        let unicast = dst_mac == self.ports[side as usize].config.mac;
        if !unicast && !self.joined(side, dst_mac) {
            self.stats.not_for_us += 1;
            return;
        }
        let ip = &frame[ethernet::HEADER_LEN..];
        match nd::destination(ip) {
            Some(dst) if dst.is_multicast() || self.owns6(side, dst) => {
                let len = nd::packet_len(ip).unwrap_or(ip.len());
                self.handle_own6(now, side, src_mac, &ip[..len], dst);
            }
            // An IPv6 packet for another host in a multicast frame is not ours to route.
            _ if !unicast => self.stats.not_for_us += 1,
            _ => self.route(now, side, frame, meta),
        }
    }

    /// An IPv4 or IPv6 frame for our MAC address, not for the router itself: through the
    /// engine, and out with the next hop's MAC address.
    fn route(&mut self, now: Instant, side: Side, frame: &mut [u8], meta: RxMeta) {
        let ip = &mut frame[ethernet::HEADER_LEN..];
        let port = &self.ports[side as usize].config;
        // A segmentation-offload super-frame is translated whole and handed back to the
        // backend to cut up; any other frame must fit the MTU.
        let seg = meta.segmentation;
        if ip.len() > port.mtu && seg.is_none() {
            self.stats.oversize += 1;
            return;
        }
        if meta.checksum_partial {
            offload::complete_l4_checksum(ip);
        }
        if seg.is_none() && self.answer_ping(now, side, ip) {
            return;
        }
        let verdict = match seg {
            None => self.engine.process(now, side, ip),
            Some(s) => match offload::segment_len(ip, s.size) {
                Some(len) => {
                    self.stats.gso_frames += 1;
                    self.engine.process_segmented(now, side, ip, len)
                }
                None => {
                    self.stats.oversize += 1;
                    return;
                }
            },
        };
        match verdict {
            Verdict::Forward(out) => self.forward_in_place(now, out, frame, seg),
            Verdict::Consumed | Verdict::Drop(_) => {}
        }
    }

    /// Sends the translated packet of a received `frame` out of `side` from where it lies:
    /// the Ethernet header is rewritten in the frame, which goes to the sink whole
    /// ([`FrameSink::push_in_place`]). A packet waiting for ARP is copied into the queue.
    fn forward_in_place(&mut self, now: Instant, side: Side, frame: &mut [u8], seg: Option<Segmentation>) {
        let (eth, ip) = frame.split_at_mut(ethernet::HEADER_LEN);
        // Link padding after the packet's length stays behind.
        let Some((total, ethertype)) = ip_len(ip) else { return };
        let ip = &mut ip[..total];
        let Some(mac) = self.resolve(now, side, ip) else { return };
        let port = &mut self.ports[side as usize];
        let offload = seg.and_then(|s| offload::offload_request(ip, s));
        if offload.is_none() && total > port.config.mtu {
            self.stats.oversize += 1;
            return;
        }
        ethernet::emit_header(eth, mac, port.config.mac, ethertype);
        if offload.is_some() {
            offload::partial_l4_checksum(ip);
        }
        port.tx.push_in_place(&frame[..ethernet::HEADER_LEN + total], offload);
    }

    /// The MAC address of the next hop of the IPv4 or IPv6 packet `ip` out of `side`, or
    /// `None` when it has no route or waits (queued, a request sent) for resolution.
    fn resolve(&mut self, now: Instant, side: Side, ip: &[u8]) -> Option<MacAddr> {
        let (lookup, hop) = if ip.first().is_some_and(|b| b >> 4 == 6) {
            let Some(hop) = nd::destination(ip).and_then(|d| self.next_hop6(side, d)) else {
                self.stats.no_route += 1;
                return None;
            };
            (self.ports[side as usize].neighbours6.lookup(now, hop, ip), Hop::V6(hop))
        } else {
            let Ok(p) = Ipv4Packet::new_checked(ip) else { return None };
            let Some(hop) = self.next_hop(side, p.dst()) else {
                self.stats.no_route += 1;
                return None;
            };
            (self.ports[side as usize].neighbours.lookup(now, hop, ip), Hop::V4(hop))
        };
        match lookup {
            Lookup::Known(mac) => Some(mac),
            Lookup::Queued { request: true } => {
                self.ask(side, hop, None);
                None
            }
            Lookup::Queued { request: false } | Lookup::Dropped => None,
        }
    }

    /// Asks for `hop`'s MAC address: by ARP or a Neighbor Solicitation, to `unicast` when
    /// probing a known neighbour.
    fn ask(&mut self, side: Side, hop: Hop, unicast: Option<MacAddr>) {
        match hop {
            Hop::V4(ip) => self.send_arp_request(side, ip, unicast),
            Hop::V6(ip) => self.send_neighbor_solicitation(side, ip, unicast),
        }
    }

    /// A number that changes whenever a known IPv4 neighbour's MAC address changes or is
    /// forgotten, on either side: [`Plane::next_hop_mac`] answers read before may be stale.
    pub fn neighbour_changes(&self) -> u64 {
        self.ports[0].neighbours.changes + self.ports[1].neighbours.changes
    }

    /// A number that changes whenever a neighbour's MAC address becomes known, on either
    /// side: [`Plane::next_hop_mac`] may answer now where it did not before.
    pub fn neighbours_learned(&self) -> u64 {
        self.ports[0].neighbours.learned + self.ports[1].neighbours.learned
    }

    /// The MAC address of the next hop for IPv4 `dst` out of `side`, when the neighbour
    /// cache has it (for the kernel fast path's entries; nothing is asked).
    pub fn next_hop_mac(&self, side: Side, dst: Ipv4Addr) -> Option<MacAddr> {
        self.ports[side as usize].neighbours.mac_of(self.next_hop(side, dst)?)
    }

    /// Whether the next hop for IPv4 `dst` out of `side` is being asked for (an ARP request
    /// sent, its answer expected).
    pub fn next_hop_resolving(&self, side: Side, dst: Ipv4Addr) -> bool {
        self.next_hop(side, dst).is_some_and(|hop| self.ports[side as usize].neighbours.is_resolving(hop))
    }

    /// The next hop for `dst` out of `side`: itself when on-link, the gateway for the WAN.
    fn next_hop(&self, side: Side, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.ports[side as usize].config.net.contains(dst) {
            Some(dst)
        } else if let (Side::Wan, Some(g)) = (side, self.gateway) {
            Some(g)
        } else {
            None
        }
    }

    /// The IPv6 next hop for `dst` out of `side`: itself when on-link (on the prefix or
    /// link-local), the IPv6 gateway for the WAN.
    fn next_hop6(&self, side: Side, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let v6 = self.ports[side as usize].config.v6?;
        if v6.prefix.contains(dst) || dst.is_unicast_link_local() {
            Some(dst)
        } else if side == Side::Wan {
            self.gateway6
        } else {
            None
        }
    }

    /// True when `ip` is one of the router's IPv6 addresses on `side` (its link-local one
    /// included).
    fn owns6(&self, side: Side, ip: Ipv6Addr) -> bool {
        let port = &self.ports[side as usize];
        ip == port.link_local || port.config.v6.is_some_and(|v6| v6.addr == ip)
    }

    /// True for the Ethernet groups the router listens to on `side` (RFC 2464 §7):
    /// all-nodes, all-routers and the solicited-node groups of its addresses.
    fn joined(&self, side: Side, mac: MacAddr) -> bool {
        let port = &self.ports[side as usize];
        let mut groups = [nd::ALL_NODES, nd::ALL_ROUTERS, nd::solicited_node(port.link_local)]
            .into_iter()
            .chain(port.config.v6.map(|v6| nd::solicited_node(v6.addr)));
        groups.any(|g| nd::multicast_mac(g) == mac)
    }

    /// An IPv6 packet for the router (one of its addresses on `side`, or a group): Neighbor
    /// Discovery, echo requests; the rest is counted and dropped.
    fn handle_own6(&mut self, now: Instant, side: Side, src_mac: MacAddr, ip: &[u8], dst: Ipv6Addr) {
        match nd::parse(ip) {
            Err(why) => {
                self.stats.nd_invalid += 1;
                self.stats.nd_invalid_by[why.index()] += 1;
            }
            Ok(Some(m)) => self.handle_nd(now, side, src_mac, m),
            Ok(None) => match echo::echo6_reply(ip).filter(|_| !dst.is_multicast()) {
                Some(reply) => {
                    self.stats.pings_answered += 1;
                    self.send_ip(now, side, &reply, None);
                }
                None => self.stats.ipv6_to_router += 1,
            },
        }
    }

    /// Neighbor Discovery (RFC 4861 §7.2.3–7.2.5, §6.2.6).
    fn handle_nd(&mut self, now: Instant, side: Side, src_mac: MacAddr, m: NdMessage) {
        let i = side as usize;
        match m {
            NdMessage::NeighborSolicitation { src, target, mac } => {
                if !self.owns6(side, target) {
                    return;
                }
                // §7.2.3: the sender's link-layer address is recorded, STALE (not from DAD).
                if !src.is_unspecified()
                    && let Some(mac) = mac
                {
                    self.learn6(now, side, src, mac, Learn::Stale);
                }
                // §7.2.4: to the sender, or to all-nodes when it has no address yet (DAD).
                let (dst, dst_mac) = if src.is_unspecified() {
                    (nd::ALL_NODES, nd::multicast_mac(nd::ALL_NODES))
                } else {
                    (src, mac.unwrap_or(src_mac))
                };
                let na = nd::neighbor_advertisement(target, dst, target, self.ports[i].config.mac);
                self.push6(side, dst_mac, &na);
                self.stats.nd_answered += 1;
            }
            NdMessage::NeighborAdvertisement { target, mac, solicited } => {
                // §7.2.5: only entries being resolved or known are updated, REACHABLE when the
                // advertisement was solicited, STALE otherwise; without the Target
                // Link-Layer Address option the sender's frame gives it.
                if !self.owns6(side, target) {
                    let how = if solicited { Learn::Refresh } else { Learn::RefreshStale };
                    self.learn6(now, side, target, mac.unwrap_or(src_mac), how);
                }
            }
            NdMessage::RouterSolicitation { src, mac } => {
                if side != Side::Lan || self.ra.is_none() {
                    return;
                }
                // §6.2.6: the sender's link-layer address is recorded, STALE.
                if !src.is_unspecified()
                    && let Some(mac) = mac
                {
                    self.learn6(now, side, src, mac, Learn::Stale);
                }
                // §6.2.6: the answer goes to all-nodes, no sooner than MIN_DELAY_BETWEEN_RAS
                // after the last one.
                if let Some(ra) = &mut self.ra {
                    let earliest = ra.last_multicast.map_or(now, |l| (l + MIN_DELAY_BETWEEN_RAS).max(now));
                    ra.next = ra.next.min(earliest);
                }
                self.advertise(now);
            }
        }
    }

    /// Records `ip` at `mac` on `side` (`new`: even when it is not in the table yet) and
    /// sends what waited for it.
    fn learn6(&mut self, now: Instant, side: Side, ip: Ipv6Addr, mac: MacAddr, how: Learn) {
        let n = &mut self.ports[side as usize].neighbours6;
        let released = match how {
            Learn::Stale => n.learn_stale(now, ip, mac),
            Learn::Refresh => n.refresh(now, ip, mac),
            Learn::RefreshStale if n.is_known(ip) => n.learn_stale(now, ip, mac),
            Learn::RefreshStale => Vec::new(),
        };
        for p in released {
            self.emit_ip(side, mac, &p, None);
        }
    }

    /// Sends a Router Advertisement to all-nodes on the LAN when one is due.
    fn advertise(&mut self, now: Instant) {
        let Some(ra) = &mut self.ra else { return };
        if ra.next > now {
            return;
        }
        let port = &self.ports[Side::Lan as usize];
        let Some(v6) = port.config.v6 else { return };
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let message = RouterAdvertisement {
            hop_limit: 64,
            router_lifetime: u16::try_from(ra.config.lifetime.as_secs()).unwrap_or(u16::MAX),
            mac: port.config.mac,
            mtu: u32::try_from(port.config.mtu).ok(),
            prefix: Some((v6.prefix.addr(), v6.prefix.len(), PREFIX_LIFETIMES.0, PREFIX_LIFETIMES.1)),
            // RFC 8106 §5.1: a lifetime of at least three intervals.
            dns: (!ra.config.dns.is_empty()).then(|| (ra.config.dns.clone(), 3 * secs(ra.config.interval))),
        };
        ra.sent += 1;
        ra.last_multicast = Some(now);
        let pace = if ra.sent < INITIAL_ADVERTS {
            ra.config.interval.min(INITIAL_ADVERT_INTERVAL)
        } else {
            ra.config.interval
        };
        ra.next = now + pace;
        let packet = nd::router_advertisement(port.link_local, nd::ALL_NODES, &message);
        self.push6(Side::Lan, nd::multicast_mac(nd::ALL_NODES), &packet);
        self.stats.ra_sent += 1;
    }

    /// Sends an IPv6 packet the router made to `dst_mac` on `side`.
    fn push6(&mut self, side: Side, dst_mac: MacAddr, ip: &[u8]) {
        let port = &mut self.ports[side as usize];
        let mac = port.config.mac;
        port.tx.push(ethernet::HEADER_LEN + ip.len(), None, |b| {
            ethernet::emit_header(b, dst_mac, mac, ethernet::ethertype::IPV6);
            b[ethernet::HEADER_LEN..].copy_from_slice(ip);
        });
    }

    /// A Neighbor Solicitation for `target` on `side` (RFC 4861 §7.2.2): from the router's
    /// link-local address for a link-local target, else from its address on the prefix;
    /// to the solicited-node group, or to `unicast` when probing (§7.3.3).
    fn send_neighbor_solicitation(&mut self, side: Side, target: Ipv6Addr, unicast: Option<MacAddr>) {
        let port = &self.ports[side as usize];
        let src = match port.config.v6 {
            Some(v6) if !target.is_unicast_link_local() => v6.addr,
            _ => port.link_local,
        };
        let ns = nd::neighbor_solicitation(src, target, port.config.mac, unicast.is_some());
        let dst_mac = unicast.unwrap_or_else(|| nd::multicast_mac(nd::solicited_node(target)));
        self.push6(side, dst_mac, &ns);
        self.stats.nd_requests += 1;
    }

    /// True when `ip` is ours on `side`.
    fn owns(&self, side: Side, ip: Ipv4Addr) -> bool {
        match side {
            Side::Lan => ip == self.ports[0].config.addr,
            Side::Wan => self.public.contains(&ip),
        }
    }

    /// ARP (RFC 826): learn the sender when the packet is for us (or refresh it when known),
    /// release what waited for it, and answer requests for our addresses.
    fn handle_arp(&mut self, now: Instant, side: Side, body: &[u8]) {
        let i = side as usize;
        let Ok(a) = ArpPacket::new_checked(body) else {
            self.stats.not_ipv4 += 1;
            return;
        };
        let (op, sha) = (a.operation(), a.sender_mac());
        let (spa, tpa) = (a.sender_ip(), a.target_ip());
        // A group address (broadcast or multicast) never owns an IPv4 address.
        let group = sha[0] & 1 == 1;
        if !self.ports[i].config.net.contains(spa) || group {
            return;
        }
        let ours = self.owns(side, tpa);
        let released = if ours {
            self.ports[i].neighbours.learn(now, spa, sha)
        } else {
            self.ports[i].neighbours.refresh(now, spa, sha)
        };
        for p in released {
            self.emit_ip(side, sha, &p, None);
        }
        if op == arp::REQUEST && ours {
            let mac = self.ports[i].config.mac;
            self.ports[i].tx.push(ethernet::HEADER_LEN + arp::PACKET_LEN, None, |b| {
                ethernet::emit_header(b, sha, mac, ethernet::ethertype::ARP);
                arp::emit(
                    &mut b[ethernet::HEADER_LEN..],
                    arp::REPLY,
                    ArpEnd { mac, ip: tpa },
                    ArpEnd { mac: sha, ip: spa },
                );
            });
            self.stats.arp_answered += 1;
        }
    }

    /// Answers an ICMP echo request to one of the router's own addresses.
    fn answer_ping(&mut self, now: Instant, side: Side, ip: &[u8]) -> bool {
        let Some(dst) = echo::echo_request_to(ip) else { return false };
        if !self.owns(side, dst) {
            return false;
        }
        // A request whose checksum does not verify goes on to the engine, which counts it.
        let Some(reply) = echo::echo_reply(ip) else { return false };
        self.stats.pings_answered += 1;
        self.send_ip(now, side, &reply, None);
        true
    }

    /// Sends an IPv4 or IPv6 packet out of `side`, resolving its next hop; `seg` when it is
    /// a super-packet for the backend to cut up.
    fn send_ip(&mut self, now: Instant, side: Side, ip: &[u8], seg: Option<Segmentation>) {
        // Link padding after the packet's length stays behind.
        let Some((len, _)) = ip_len(ip) else { return };
        let ip = &ip[..len];
        if let Some(mac) = self.resolve(now, side, ip) {
            self.emit_ip(side, mac, ip, seg);
        }
    }

    fn emit_ip(&mut self, side: Side, dst_mac: MacAddr, ip: &[u8], seg: Option<Segmentation>) {
        let port = &mut self.ports[side as usize];
        let mac = port.config.mac;
        let offload = seg.and_then(|s| offload::offload_request(ip, s));
        if offload.is_none() && ip.len() > port.config.mtu {
            // A super-packet that waited for ARP lost its offload request: too big to send.
            self.stats.oversize += 1;
            return;
        }
        let Some((_, ethertype)) = ip_len(ip) else { return };
        port.tx.push(ethernet::HEADER_LEN + ip.len(), offload, |b| {
            ethernet::emit_header(b, dst_mac, mac, ethertype);
            let out = &mut b[ethernet::HEADER_LEN..];
            out.copy_from_slice(ip);
            if offload.is_some() {
                offload::partial_l4_checksum(out);
            }
        });
    }

    /// An ARP request for `ip`: broadcast, or to `unicast` when probing a known neighbour
    /// (RFC 1122 §2.3.2.1).
    fn send_arp_request(&mut self, side: Side, ip: Ipv4Addr, unicast: Option<MacAddr>) {
        let port = &mut self.ports[side as usize];
        let (mac, own) = (port.config.mac, port.config.addr);
        port.tx.push(ethernet::HEADER_LEN + arp::PACKET_LEN, None, |b| {
            ethernet::emit_header(b, unicast.unwrap_or(BROADCAST), mac, ethernet::ethertype::ARP);
            arp::emit(
                &mut b[ethernet::HEADER_LEN..],
                arp::REQUEST,
                ArpEnd { mac, ip: own },
                ArpEnd { mac: [0; 6], ip },
            );
        });
        self.stats.arp_requests += 1;
    }

    /// Engine timers and ARP retries due by `now`, then what the engine made.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.engine.poll_timeout().is_some_and(|d| d <= now) {
            self.engine.handle_timeout(now);
        }
        for side in [Side::Lan, Side::Wan] {
            for (ip, unicast) in self.ports[side as usize].neighbours.poll(now) {
                self.send_arp_request(side, ip, unicast);
            }
            for (ip, unicast) in self.ports[side as usize].neighbours6.poll(now) {
                self.send_neighbor_solicitation(side, ip, unicast);
            }
        }
        self.advertise(now);
        self.transmit_engine_output(now);
    }

    /// Sends the packets the engine made itself (ICMP errors, fragments). Its events stay for
    /// the driver ([`Engine::poll_event`]).
    pub fn transmit_engine_output(&mut self, now: Instant) {
        while let Some(tx) = self.engine.poll_transmit() {
            self.send_ip(now, tx.side, &tx.packet, None);
        }
    }
}

/// A next hop of either family.
#[derive(Clone, Copy)]
enum Hop {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// The length of the IPv4 or IPv6 packet `ip` without link padding, and its ethertype.
fn ip_len(ip: &[u8]) -> Option<(usize, u16)> {
    match ip.first()? >> 4 {
        4 => Ipv4Packet::new_checked(ip).ok().map(|p| (usize::from(p.total_len()), ethernet::ethertype::IPV4)),
        6 => nd::packet_len(ip).map(|l| (l, ethernet::ethertype::IPV6)),
        _ => None,
    }
}

/// How Neighbor Discovery updates a neighbour entry (RFC 4861 §7.3.3's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Learn {
    /// Created or replaced as STALE (a solicitation's sender).
    Stale,
    /// Only an entry being resolved or known, made REACHABLE (a solicited advertisement).
    Refresh,
    /// Only an entry being resolved or known, STALE when its address changed (an
    /// unsolicited advertisement).
    RefreshStale,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use natpass_wire::IpProtocol;
    use natpass_wire::icmp;
    use natpass_wire::ipv4::{self, Ipv4Repr};
    use natpass_wire::udp::UdpPacket;
    use proptest::prelude::*;

    use super::*;
    use crate::sink::FrameQueue;

    const LAN_MAC: MacAddr = [2, 0, 0, 0, 1, 1];
    const WAN_MAC: MacAddr = [2, 0, 0, 0, 2, 1];
    const CLIENT_MAC: MacAddr = [2, 0, 0, 0, 1, 10];
    const GW_MAC: MacAddr = [2, 0, 0, 0, 2, 254];
    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const ROUTER_LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const ROUTER_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn plane() -> Plane<FrameQueue> {
        plane_from(
            "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"\n",
        )
    }

    /// A plane from a config file, as `natpass run` makes it.
    fn plane_from(text: &str) -> Plane<FrameQueue> {
        let c = natpass_config::parse_config(text).unwrap();
        let (lan, wan) = c.links.unwrap();
        let port = |l: &natpass_config::Link, mac| PortConfig {
            mac,
            mtu: 1500,
            addr: l.addr,
            net: l.net,
            v6: l.v6.as_ref().map(|v6| PortV6 { addr: v6.addr, prefix: v6.prefix }),
        };
        let ra = c.ra.map(|r| Advertising { interval: r.interval, lifetime: r.lifetime, dns: r.dns });
        let gateway6 = wan.v6.as_ref().and_then(|v6| v6.gateway);
        let config =
            LinkConfig { lan: port(&lan, LAN_MAC), wan: port(&wan, WAN_MAC), gateway: wan.gateway, gateway6, ra };
        let engine = Engine::new(c.engine, Instant::ZERO).unwrap();
        Plane::new(config, engine, FrameQueue::new(), FrameQueue::new())
    }

    fn at_secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn arp_frame(op: u16, dst: MacAddr, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
        ethernet::emit_header(&mut f, dst, sha, ethernet::ethertype::ARP);
        arp::emit(&mut f[ethernet::HEADER_LEN..], op, ArpEnd { mac: sha, ip: spa }, ArpEnd { mac: [0; 6], ip: tpa });
        f
    }

    fn ip_frame(dst_mac: MacAddr, src_mac: MacAddr, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN];
        ethernet::emit_header(&mut f, dst_mac, src_mac, ethernet::ethertype::IPV4);
        f.extend_from_slice(ip);
        f
    }

    fn udp_frame(dst_mac: MacAddr, src_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; ipv4::HEADER_LEN + 12];
        Ipv4Repr { src, dst, protocol: IpProtocol::UDP, total_len: 32, ident: 7, ttl: 64 }.emit(&mut p);
        let mut u = UdpPacket::new_unchecked(&mut p[ipv4::HEADER_LEN..]);
        u.set_src_port(5353, None);
        u.set_dst_port(53, None);
        p[24..26].copy_from_slice(&12u16.to_be_bytes()); // the UDP length
        offload::complete_l4_checksum(&mut p);
        ip_frame(dst_mac, src_mac, &p)
    }

    fn sent(p: &Plane<FrameQueue>, side: Side) -> Vec<Vec<u8>> {
        p.tx(side).frames().iter().map(|f| f.bytes.clone()).collect()
    }

    #[test]
    fn arp_for_our_address_is_answered() {
        let mut p = plane();
        let mut f = arp_frame(arp::REQUEST, BROADCAST, CLIENT_MAC, CLIENT, ROUTER_LAN);
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 1);
        let r = ArpPacket::new_checked(&out[0][14..]).unwrap();
        assert_eq!(&out[0][..6], &CLIENT_MAC);
        assert_eq!(
            (r.operation(), r.sender_mac(), r.sender_ip(), r.target_ip()),
            (arp::REPLY, LAN_MAC, ROUTER_LAN, CLIENT)
        );
        // A request for another address is not ours to answer.
        let mut f = arp_frame(arp::REQUEST, BROADCAST, CLIENT_MAC, CLIENT, Ipv4Addr::new(192, 168, 1, 2));
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        assert_eq!(sent(&p, Side::Lan).len(), 1);
        assert_eq!(p.stats().arp_answered, 1);
    }

    #[test]
    fn a_lan_packet_waits_for_the_gateway_then_leaves_translated() {
        let mut p = plane();
        let mut f = udp_frame(LAN_MAC, CLIENT_MAC, CLIENT, SERVER);
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        // First an ARP request for the gateway, broadcast on the WAN.
        let out = sent(&p, Side::Wan);
        assert_eq!(out.len(), 1);
        let req = ArpPacket::new_checked(&out[0][14..]).unwrap();
        assert_eq!((req.operation(), req.target_ip(), req.sender_ip()), (arp::REQUEST, GATEWAY, ROUTER_WAN));
        // What the fast path's writer peeks at: the server's next hop (the gateway) asked
        // for, no MAC yet; the client not asked for at all.
        assert_eq!(p.next_hop_mac(Side::Wan, SERVER), None);
        assert!(p.next_hop_resolving(Side::Wan, SERVER));
        assert!(!p.next_hop_resolving(Side::Lan, CLIENT));
        let learned = p.neighbours_learned();
        // The gateway answers; the queued packet leaves, translated, to its MAC.
        let mut r = arp_frame(arp::REPLY, WAN_MAC, GW_MAC, GATEWAY, ROUTER_WAN);
        p.handle_frame(at_secs(1), Side::Wan, &mut r, RxMeta::default());
        assert_eq!(p.next_hop_mac(Side::Wan, SERVER), Some(GW_MAC));
        assert!(!p.next_hop_resolving(Side::Wan, SERVER));
        assert_ne!(p.neighbours_learned(), learned, "a MAC address became known");
        let out = sent(&p, Side::Wan);
        assert_eq!(out.len(), 2);
        assert_eq!((&out[1][..6], &out[1][6..12]), (&GW_MAC[..], &WAN_MAC[..]));
        let ip = Ipv4Packet::new_checked(&out[1][14..]).unwrap();
        assert_eq!(ip.src(), ROUTER_WAN);
        assert!(ip.verify_checksum());
    }

    #[test]
    fn an_unanswered_next_hop_is_asked_three_times_then_given_up() {
        let mut p = plane();
        let mut f = udp_frame(LAN_MAC, CLIENT_MAC, CLIENT, SERVER);
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        for s in 1..=3 {
            p.handle_timeout(at_secs(s));
        }
        assert_eq!(p.stats().arp_requests, 3);
        assert_eq!(p.neighbours(Side::Wan).unresolved, 1);
        assert!(sent(&p, Side::Wan).iter().all(|f| f[12..14] == ethernet::ethertype::ARP.to_be_bytes()));
    }

    #[test]
    fn pings_to_the_router_are_answered_and_frames_for_others_ignored() {
        let mut p = plane();
        let ping = crate::echo::tests::echo_request(CLIENT, ROUTER_LAN, b"");
        let mut f = ip_frame(LAN_MAC, CLIENT_MAC, &ping);
        // The client is known once it asked for our MAC.
        let mut a = arp_frame(arp::REQUEST, BROADCAST, CLIENT_MAC, CLIENT, ROUTER_LAN);
        p.handle_frame(at_secs(0), Side::Lan, &mut a, RxMeta::default());
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 2, "an ARP reply and an echo reply");
        let reply = Ipv4Packet::new_checked(&out[1][14..]).unwrap();
        let m = icmp::IcmpPacket::new_checked(reply.payload()).unwrap();
        assert_eq!(m.msg_type(), icmp::kind::ECHO_REPLY);
        assert!(m.verify_checksum());
        assert_eq!(p.stats().pings_answered, 1);
        let mut other = udp_frame([2, 9, 9, 9, 9, 9], CLIENT_MAC, CLIENT, SERVER);
        p.handle_frame(at_secs(0), Side::Lan, &mut other, RxMeta::default());
        assert_eq!(p.stats().not_for_us, 1);
    }

    /// A sink that tells frames sent in place from frames built.
    #[derive(Default)]
    struct Probe {
        built: usize,
        in_place: Vec<(usize, usize)>,
    }

    impl FrameSink for Probe {
        fn push(&mut self, _len: usize, _offload: Option<crate::TxOffload>, fill: impl FnOnce(&mut [u8])) {
            fill(&mut [0u8; 2048][.._len]);
            self.built += 1;
        }

        fn push_in_place(&mut self, frame: &[u8], _offload: Option<crate::TxOffload>) {
            self.in_place.push((frame.as_ptr() as usize, frame.len()));
        }
    }

    #[test]
    fn a_forwarded_frame_leaves_from_the_buffer_it_arrived_in() {
        let p = plane();
        let config = LinkConfig {
            lan: p.port(Side::Lan).clone(),
            wan: p.port(Side::Wan).clone(),
            gateway: Some(GATEWAY),
            gateway6: None,
            ra: None,
        };
        let engine = Engine::new(p.engine().config().clone(), Instant::ZERO).unwrap();
        let mut p = Plane::new(config, engine, Probe::default(), Probe::default());
        let mut r = arp_frame(arp::REPLY, WAN_MAC, GW_MAC, GATEWAY, ROUTER_WAN);
        let mut a = arp_frame(arp::REQUEST, BROADCAST, GW_MAC, GATEWAY, ROUTER_WAN);
        p.handle_frame(at_secs(0), Side::Wan, &mut a, RxMeta::default());
        p.handle_frame(at_secs(0), Side::Wan, &mut r, RxMeta::default());
        let mut f = udp_frame(LAN_MAC, CLIENT_MAC, CLIENT, SERVER);
        f.extend_from_slice(&[0; 4]); // link padding stays behind
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        assert_eq!(p.tx(Side::Wan).in_place, vec![(f.as_ptr() as usize, 14 + 32)]);
        // Rewritten where it lies: the gateway's MAC, ours, the public source address.
        assert_eq!((&f[..6], &f[6..12]), (&GW_MAC[..], &WAN_MAC[..]));
        assert_eq!(Ipv4Packet::new_checked(&f[14..46]).unwrap().src(), ROUTER_WAN);
    }

    #[test]
    fn counters_are_named_once() {
        let p = plane();
        let names: Vec<&str> = p.counters().iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"arp_unresolved") && names.contains(&"gso_frames"), "{names:?}");
    }

    const V6: &str = "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\naddress6 = \"2001:db8:1::1/64\"\ndns6 = [\"2001:db8:1::53\"]\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"\naddress6 = \"2001:db8:ff::2/64\"\ngateway6 = \"fe80::1\"\n";

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn frame6(dst_mac: MacAddr, src_mac: MacAddr, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ethernet::HEADER_LEN];
        ethernet::emit_header(&mut f, dst_mac, src_mac, ethernet::ethertype::IPV6);
        f.extend_from_slice(ip);
        f
    }

    /// A Neighbor Solicitation from `src` (at CLIENT_MAC) for `target`, to its group.
    fn ns_frame(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let ns = nd::neighbor_solicitation(src, target, CLIENT_MAC, false);
        frame6(nd::multicast_mac(nd::solicited_node(target)), CLIENT_MAC, &ns)
    }

    /// The ICMPv6 message of a sent frame, checked: IPv6, checksum good.
    fn icmp6(f: &[u8]) -> (natpass_wire::ipv6::Ipv6Packet<&[u8]>, Vec<u8>) {
        assert_eq!(&f[12..14], &ethernet::ethertype::IPV6.to_be_bytes());
        let ip = natpass_wire::ipv6::Ipv6Packet::new_checked(&f[14..]).unwrap();
        let len = ip.payload().len() as u32;
        let m = natpass_wire::icmpv6::Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(ip.pseudo_header_sum(IpProtocol::ICMPV6, len)));
        let body = ip.payload().to_vec();
        (ip, body)
    }

    fn udp6(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        natpass_wire::ipv6::Ipv6Repr { src, dst, next_header: IpProtocol::UDP, payload_len: 8, hop_limit: 64 }
            .emit(&mut p);
        p[40..48].copy_from_slice(&[0x14, 0xe9, 0, 53, 0, 8, 0, 0]);
        let ps = natpass_wire::ipv6::Ipv6Packet::new_unchecked(&p[..]).pseudo_header_sum(IpProtocol::UDP, 8);
        UdpPacket::new_unchecked(&mut p[40..]).fill_checksum(ps);
        p
    }

    #[test]
    fn rfc4861_7_2_4_solicitations_for_the_routers_addresses_are_answered_link_local_included() {
        let mut p = plane_from(V6);
        let (client, router) = (v6("2001:db8:1::10"), v6("2001:db8:1::1"));
        let ll = p.link_local(Side::Lan);
        assert_eq!(ll, v6("fe80::ff:fe00:101"));
        for target in [router, ll] {
            p.handle_frame(at_secs(0), Side::Lan, &mut ns_frame(client, target), RxMeta::default());
        }
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 2);
        for (f, target) in out.iter().zip([router, ll]) {
            assert_eq!((&f[..6], &f[6..12]), (&CLIENT_MAC[..], &LAN_MAC[..]));
            let (ip, m) = icmp6(f);
            assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (target, client, 255));
            assert_eq!((m[0], m[4]), (natpass_wire::icmpv6::kind::NEIGHBOR_ADVERTISEMENT, 0xe0), "R, S and O");
            assert_eq!(&m[8..24], &target.octets());
            assert_eq!(&m[24..32], &[2, 1, 2, 0, 0, 0, 1, 1], "the Target Link-Layer Address option");
        }
        // Another host's address is not ours to answer; the sender was learned.
        p.handle_frame(at_secs(0), Side::Lan, &mut ns_frame(client, v6("2001:db8:1::2")), RxMeta::default());
        assert_eq!(sent(&p, Side::Lan).len(), 2);
        assert_eq!(p.stats().nd_answered, 2);
        assert_eq!(p.neighbours6(Side::Lan).known(), vec![(client, CLIENT_MAC)]);
    }

    #[test]
    fn rfc4861_7_2_4_duplicate_address_detection_is_answered_to_all_nodes() {
        let mut p = plane_from(V6);
        let target = v6("2001:db8:ff::2");
        let dad = natpass_wire::icmpv6::packet(Ipv6Addr::UNSPECIFIED, nd::solicited_node(target), 255, 24, |b| {
            b[0] = natpass_wire::icmpv6::kind::NEIGHBOR_SOLICITATION;
            b[8..24].copy_from_slice(&target.octets());
        });
        let mut f = frame6(nd::multicast_mac(nd::solicited_node(target)), GW_MAC, &dad);
        p.handle_frame(at_secs(0), Side::Wan, &mut f, RxMeta::default());
        let out = sent(&p, Side::Wan);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let (ip, m) = icmp6(&out[0]);
        assert_eq!((ip.dst(), m[4]), (nd::ALL_NODES, 0xa0), "R and O, not S");
        assert!(p.neighbours6(Side::Wan).known().is_empty(), "nothing learned from the unspecified address");
    }

    #[test]
    fn rfc4861_7_1_1_invalid_neighbor_discovery_is_counted_and_dropped() {
        let mut p = plane_from(V6);
        let mut ns = nd::neighbor_solicitation(v6("2001:db8:1::10"), v6("2001:db8:1::1"), CLIENT_MAC, false);
        ns[7] = 64; // forwarded: hop limit below 255
        let mut f = frame6(nd::multicast_mac(nd::solicited_node(v6("2001:db8:1::1"))), CLIENT_MAC, &ns);
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        assert!(sent(&p, Side::Lan).is_empty());
        assert_eq!(p.stats().nd_invalid, 1);
        assert_eq!(p.stats().nd_invalid_by[nd::NdInvalid::HopLimit.index()], 1);
        // Frames to a group the router did not join are not for it.
        let mut other = ns_frame(v6("2001:db8:1::10"), v6("2001:db8:1::99"));
        p.handle_frame(at_secs(0), Side::Lan, &mut other, RxMeta::default());
        assert_eq!(p.stats().not_for_us, 1);
    }

    #[test]
    fn rfc4861_7_2_2_a_packet_for_the_wan_waits_for_the_gateways_advertisement() {
        let mut p = plane_from(V6);
        let (client, server, gw) = (v6("2001:db8:1::10"), v6("2001:db8:99::7"), v6("fe80::1"));
        let mut f = frame6(LAN_MAC, CLIENT_MAC, &udp6(client, server));
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        let out = sent(&p, Side::Wan);
        assert_eq!(out.len(), 1, "a solicitation for the gateway");
        assert_eq!(&out[0][..6], &[0x33, 0x33, 0xff, 0, 0, 1], "its solicited-node group");
        let (ip, m) = icmp6(&out[0]);
        assert_eq!(
            (ip.src(), ip.dst()),
            (p.link_local(Side::Wan), nd::solicited_node(gw)),
            "link-local for link-local"
        );
        assert_eq!(&m[8..24], &gw.octets());
        // The gateway answers; the packet leaves to its MAC, one hop older.
        let na = nd::neighbor_advertisement(gw, p.link_local(Side::Wan), gw, GW_MAC);
        p.handle_frame(at_secs(0), Side::Wan, &mut frame6(WAN_MAC, GW_MAC, &na), RxMeta::default());
        let out = sent(&p, Side::Wan);
        assert_eq!(out.len(), 2);
        assert_eq!((&out[1][..6], &out[1][12..14]), (&GW_MAC[..], &ethernet::ethertype::IPV6.to_be_bytes()[..]));
        let ip = natpass_wire::ipv6::Ipv6Packet::new_checked(&out[1][14..]).unwrap();
        assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (client, server, 63));
        // And the answer comes back to the client, resolved on the LAN from the global address.
        let mut back = frame6(WAN_MAC, GW_MAC, &udp6(server, client));
        back[14 + 40..14 + 44].copy_from_slice(&[0, 53, 0x14, 0xe9]);
        let mut fix = back[14..].to_vec();
        let ps = natpass_wire::ipv6::Ipv6Packet::new_unchecked(&fix[..]).pseudo_header_sum(IpProtocol::UDP, 8);
        UdpPacket::new_unchecked(&mut fix[40..]).fill_checksum(ps);
        back[14..].copy_from_slice(&fix);
        p.handle_frame(at_secs(1), Side::Wan, &mut back, RxMeta::default());
        let lan = sent(&p, Side::Lan);
        let ns = lan.iter().find(|f| f[..6] == [0x33, 0x33, 0xff, 0, 0, 0x10]).expect("a solicitation for the client");
        assert_eq!(icmp6(ns).0.src(), v6("2001:db8:1::1"));
        assert_eq!(p.stats().nd_requests, 2);
    }

    #[test]
    fn rfc4861_7_3_3_an_unanswered_next_hop_is_asked_three_times_then_given_up() {
        let mut p = plane_from(V6);
        let mut f = frame6(LAN_MAC, CLIENT_MAC, &udp6(v6("2001:db8:1::10"), v6("2001:db8:99::7")));
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        for s in 1..=3 {
            p.handle_timeout(at_secs(s));
        }
        assert_eq!(p.stats().nd_requests, 3);
        let c = p.counters();
        assert!(c.contains(&("nd_unresolved", 1)), "{c:?}");
    }

    #[test]
    fn rfc4443_4_2_echo_requests_to_the_routers_ipv6_addresses_are_answered() {
        let mut p = plane_from(V6);
        let client = v6("2001:db8:1::10");
        p.handle_frame(at_secs(0), Side::Lan, &mut ns_frame(client, v6("2001:db8:1::1")), RxMeta::default());
        for dst in [v6("2001:db8:1::1"), p.link_local(Side::Lan)] {
            let ping = echo::tests::echo6_request(client, dst, b"hi");
            p.handle_frame(at_secs(0), Side::Lan, &mut frame6(LAN_MAC, CLIENT_MAC, &ping), RxMeta::default());
        }
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 3, "an advertisement and two echo replies");
        for f in &out[1..] {
            let (ip, m) = icmp6(f);
            assert_eq!((ip.dst(), m[0], &m[8..]), (client, natpass_wire::icmpv6::kind::ECHO_REPLY, &b"hi"[..]));
        }
        assert_eq!(p.stats().pings_answered, 2);
        // Other traffic for the router is counted and dropped.
        let mut u = frame6(LAN_MAC, CLIENT_MAC, &udp6(client, v6("2001:db8:1::1")));
        p.handle_frame(at_secs(0), Side::Lan, &mut u, RxMeta::default());
        assert_eq!((p.stats().ipv6_to_router, sent(&p, Side::Lan).len()), (1, 3));
    }

    #[test]
    fn rfc4861_6_2_router_advertisements_go_out_on_the_lan_with_the_prefix_mtu_and_dns() {
        let mut p = plane_from(V6);
        p.handle_timeout(at_secs(0));
        let out = sent(&p, Side::Lan);
        assert_eq!(out.len(), 1);
        assert!(sent(&p, Side::Wan).is_empty(), "never on the WAN");
        assert_eq!(&out[0][..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let (ip, m) = icmp6(&out[0]);
        assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (p.link_local(Side::Lan), nd::ALL_NODES, 255));
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), 1800, "the router lifetime");
        let m = natpass_wire::icmpv6::Icmpv6Packet::new_checked(&m[..]).unwrap();
        assert_eq!((m.msg_type(), m.nd_flags()), (134, 64), "hop limit 64 for hosts");
        let opts: Vec<_> = m.nd_options().map(|o| o.unwrap()).collect();
        let kinds: Vec<u8> = opts.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [1, 5, 3, 25], "source link-layer address, MTU, prefix, RDNSS");
        assert_eq!(&opts[0].data[..6], &LAN_MAC);
        assert_eq!((opts[2].data[0], opts[2].data[1]), (64, 0xc0), "/64, L and A");
        assert_eq!(&opts[2].data[14..30], &v6("2001:db8:1::").octets());
        assert_eq!(&opts[3].data[6..22], &v6("2001:db8:1::53").octets());
        // The next ones at the initial pace, then a solicitation answered no sooner than 3 s
        // after the last.
        p.handle_timeout(at_secs(15));
        assert_eq!(p.stats().ra_sent, 1);
        p.handle_timeout(at_secs(16));
        assert_eq!(p.stats().ra_sent, 2);
        let rs = natpass_wire::icmpv6::packet(v6("fe80::10"), nd::ALL_ROUTERS, 255, 8, |b| b[0] = 133);
        let mut f = frame6([0x33, 0x33, 0, 0, 0, 2], CLIENT_MAC, &rs);
        p.handle_frame(at_secs(17), Side::Lan, &mut f, RxMeta::default());
        assert_eq!(p.stats().ra_sent, 2);
        p.handle_timeout(at_secs(19));
        assert_eq!(p.stats().ra_sent, 3);
        p.handle_frame(at_secs(40), Side::Lan, &mut f, RxMeta::default());
        assert_eq!(p.stats().ra_sent, 4, "answered at once");
    }

    #[test]
    fn an_ipv6_super_frame_goes_through_whole_with_its_offload_request() {
        let mut p = plane_from(V6);
        let (client, server, gw) = (v6("2001:db8:1::10"), v6("2001:db8:99::7"), v6("fe80::1"));
        let na = nd::neighbor_advertisement(gw, p.link_local(Side::Wan), gw, GW_MAC);
        p.handle_frame(at_secs(0), Side::Wan, &mut frame6(WAN_MAC, GW_MAC, &na), RxMeta::default());
        // Unsolicited: learned only once asked for. Ask, then answer.
        let mut first = frame6(LAN_MAC, CLIENT_MAC, &udp6(client, server));
        p.handle_frame(at_secs(0), Side::Lan, &mut first, RxMeta::default());
        p.handle_frame(at_secs(0), Side::Wan, &mut frame6(WAN_MAC, GW_MAC, &na), RxMeta::default());
        let before = p.tx(Side::Wan).len();
        // A UDP super-packet of 3000 bytes, cut into 1432-byte segments by the kernel.
        let mut big = udp6(client, server);
        big.extend_from_slice(&[7u8; 3000]);
        let len = (big.len() - 40) as u16;
        big[4..6].copy_from_slice(&len.to_be_bytes());
        big[44..46].copy_from_slice(&len.to_be_bytes());
        let mut f = frame6(LAN_MAC, CLIENT_MAC, &big);
        let seg = Segmentation { size: 1432, kind: 5 };
        let meta = RxMeta { checksum_partial: true, segmentation: Some(seg), ..RxMeta::default() };
        p.handle_frame(at_secs(0), Side::Lan, &mut f, meta);
        let out = &p.tx(Side::Wan).frames()[before..];
        assert_eq!(out.len(), 1, "{:?}", p.engine().stats().drops_by_reason().filter(|d| d.1 > 0).collect::<Vec<_>>());
        assert_eq!(out[0].bytes.len(), 14 + big.len());
        let o = out[0].offload.unwrap();
        assert_eq!((o.segmentation, o.csum_start), (seg, 14 + 40));
        assert_eq!(p.stats().gso_frames, 1);
    }

    #[test]
    fn ipv6_frames_without_ipv6_settings_are_ignored_as_before() {
        let mut p = plane();
        let mut f = ns_frame(v6("2001:db8:1::10"), v6("2001:db8:1::1"));
        p.handle_frame(at_secs(0), Side::Lan, &mut f, RxMeta::default());
        p.handle_timeout(at_secs(1));
        assert!(sent(&p, Side::Lan).is_empty());
        assert_eq!(p.stats().not_ipv4, 1);
    }

    proptest! {
        /// Whatever arrives, nothing panics (the link layer's own parsing; the engine has its
        /// fuzz target).
        #[test]
        fn arbitrary_frames_never_panic(
            kind in 0u8..7,
            v6hdr in (0usize..8, 0usize..3, 0usize..6, any::<bool>()),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            wan in any::<bool>(),
            seg in proptest::option::of((any::<u16>(), any::<u8>())),
            partial in any::<bool>(),
        ) {
            let mut p = if kind >= 4 { plane_from(V6) } else { plane() };
            let side = if wan { Side::Wan } else { Side::Lan };
            let mac = if wan { WAN_MAC } else { LAN_MAC };
            let mut f = match kind {
                0 => body,
                // IPv6: to our MAC, all-nodes, our solicited-node group; headers that lead the
                // frame into Neighbor Discovery, echo and the engine.
                k @ 4..=6 => {
                    let (nh, hop, icmp, to_router) = v6hdr;
                    let nh = [58u8, 6, 17, 0, 44, 43, 50, body.first().copied().unwrap_or(59)][nh];
                    let hop = [255u8, 64, 1][hop];
                    let router = if wan { v6("2001:db8:ff::2") } else { v6("2001:db8:1::1") };
                    let (src, dst) = (v6("fe80::10"), if to_router { router } else { v6("2001:db8:99::1") });
                    let dst = if k == 5 { nd::ALL_NODES } else { dst };
                    let len = body.len() as u16;
                    let ip = if nh == 58 {
                        let t = [128u8, 133, 135, 136, 134, 1][icmp];
                        natpass_wire::icmpv6::packet(src, dst, hop, len.max(8), |b| {
                            let n = body.len().min(b.len());
                            b[..n].copy_from_slice(&body[..n]);
                            b[0] = t;
                            b[1] = 0;
                        })
                    } else {
                        let mut ip = vec![0u8; 40];
                        natpass_wire::ipv6::Ipv6Repr { src, dst, next_header: IpProtocol(nh), payload_len: len, hop_limit: hop }
                            .emit(&mut ip);
                        ip.extend_from_slice(&body);
                        ip
                    };
                    let dst_mac = match k {
                        4 => mac,
                        5 => nd::multicast_mac(nd::ALL_NODES),
                        _ => nd::multicast_mac(nd::solicited_node(router)),
                    };
                    frame6(dst_mac, CLIENT_MAC, &ip)
                }
                k => {
                    let et = [ethernet::ethertype::IPV4, ethernet::ethertype::ARP, ethernet::ethertype::VLAN][usize::from(k - 1)];
                    let mut f = vec![0u8; 14];
                    ethernet::emit_header(&mut f, if k == 2 { BROADCAST } else { mac }, CLIENT_MAC, et);
                    f.extend_from_slice(&body);
                    f
                }
            };
            let meta = RxMeta {
                checksum_partial: partial,
                segmentation: seg.map(|(size, kind)| Segmentation { size, kind }),
                ..RxMeta::default()
            };
            p.handle_frame(at_secs(0), side, &mut f, meta);
            p.handle_timeout(at_secs(5));
        }
    }
}
