//! The data plane without sockets: Ethernet frames in, the engine in the middle, Ethernet
//! frames out.
//!
//! Per received frame ([`Plane::handle_frame`]): ARP is answered for natpass's own addresses
//! and feeds the neighbour cache; an IPv4 frame for our MAC address has an unfinished checksum
//! completed, is answered when it pings the router, and otherwise goes through the engine;
//! what the engine forwards gets the next hop's MAC address (or waits for ARP) and goes into
//! the other side's [`FrameSink`]. Between frames the driver calls
//! [`Plane::transmit_engine_output`] and, every few milliseconds, [`Plane::handle_timeout`].

use std::net::Ipv4Addr;

use natpass_engine::{Engine, Instant, Ipv4Net, Side, Verdict};
use natpass_wire::arp::{self, ArpEnd, ArpPacket};
use natpass_wire::ethernet::{self, EthernetFrame, MacAddr};
use natpass_wire::ipv4::Ipv4Packet;

use crate::echo;
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
}

/// What the link layer needs to know about its two interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The LAN interface.
    pub lan: PortConfig,
    /// The WAN interface. natpass answers ARP there for every public address of the engine.
    pub wan: PortConfig,
    /// The next hop on the WAN for everything off the WAN link (`None`: on-link only).
    pub gateway: Option<Ipv4Addr>,
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
}

struct Port<T> {
    config: PortConfig,
    neighbours: Neighbours,
    tx: T,
}

/// The link layer and the engine for a LAN and a WAN interface, without sockets.
pub struct Plane<T> {
    ports: [Port<T>; 2],
    gateway: Option<Ipv4Addr>,
    /// The public addresses natpass answers ARP and pings for on the WAN.
    public: Vec<Ipv4Addr>,
    engine: Engine,
    stats: LinkStats,
}

impl<T: FrameSink> Plane<T> {
    /// The data plane for `config`'s interfaces, sending through `lan_tx` and `wan_tx`.
    pub fn new(config: LinkConfig, engine: Engine, lan_tx: T, wan_tx: T) -> Self {
        let port = |config, tx| Port { config, neighbours: Neighbours::new(), tx };
        Self {
            ports: [port(config.lan, lan_tx), port(config.wan, wan_tx)],
            gateway: config.gateway,
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
    pub fn counters(&self) -> [(&'static str, u64); 11] {
        let s = &self.stats;
        let [lan, wan] = [&self.ports[0].neighbours, &self.ports[1].neighbours];
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
            ethernet::ethertype::VLAN | ethernet::ethertype::QINQ => self.stats.vlan_tagged += 1,
            _ => self.stats.not_ipv4 += 1,
        }
    }

    /// An IPv4 `frame` (its Ethernet header untagged) for `dst`.
    fn handle_ipv4(&mut self, now: Instant, side: Side, dst: MacAddr, frame: &mut [u8], meta: RxMeta) {
        let ip = &mut frame[ethernet::HEADER_LEN..];
        let port = &self.ports[side as usize].config;
        if dst != port.mac {
            self.stats.not_for_us += 1;
            return;
        }
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
        let Ok(p) = Ipv4Packet::new_checked(&*ip) else { return };
        let dst = p.dst();
        // Link padding after the total length stays behind.
        let total = usize::from(p.total_len());
        let ip = &mut ip[..total];
        let Some(hop) = self.next_hop(side, dst) else {
            self.stats.no_route += 1;
            return;
        };
        let port = &mut self.ports[side as usize];
        match port.neighbours.lookup(now, hop, ip) {
            Lookup::Known(mac) => {
                let offload = seg.and_then(|s| offload::offload_request(ip, s));
                if offload.is_none() && total > port.config.mtu {
                    self.stats.oversize += 1;
                    return;
                }
                ethernet::emit_header(eth, mac, port.config.mac, ethernet::ethertype::IPV4);
                if offload.is_some() {
                    offload::partial_l4_checksum(ip);
                }
                port.tx.push_in_place(&frame[..ethernet::HEADER_LEN + total], offload);
            }
            Lookup::Queued { request: true } => self.send_arp_request(side, hop),
            Lookup::Queued { request: false } | Lookup::Dropped => {}
        }
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

    /// Sends an IPv4 packet out of `side`, resolving its next hop; `seg` when it is a
    /// super-packet for the backend to cut up.
    fn send_ip(&mut self, now: Instant, side: Side, ip: &[u8], seg: Option<Segmentation>) {
        let Ok(p) = Ipv4Packet::new_checked(ip) else { return };
        let dst = p.dst();
        // Link padding after the total length stays behind.
        let ip = &ip[..usize::from(p.total_len())];
        let Some(hop) = self.next_hop(side, dst) else {
            self.stats.no_route += 1;
            return;
        };
        let port = &mut self.ports[side as usize];
        match port.neighbours.lookup(now, hop, ip) {
            Lookup::Known(mac) => self.emit_ip(side, mac, ip, seg),
            Lookup::Queued { request: true } => self.send_arp_request(side, hop),
            Lookup::Queued { request: false } | Lookup::Dropped => {}
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
        port.tx.push(ethernet::HEADER_LEN + ip.len(), offload, |b| {
            ethernet::emit_header(b, dst_mac, mac, ethernet::ethertype::IPV4);
            let out = &mut b[ethernet::HEADER_LEN..];
            out.copy_from_slice(ip);
            if offload.is_some() {
                offload::partial_l4_checksum(out);
            }
        });
    }

    fn send_arp_request(&mut self, side: Side, ip: Ipv4Addr) {
        let port = &mut self.ports[side as usize];
        let (mac, own) = (port.config.mac, port.config.addr);
        port.tx.push(ethernet::HEADER_LEN + arp::PACKET_LEN, None, |b| {
            ethernet::emit_header(b, BROADCAST, mac, ethernet::ethertype::ARP);
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
            for ip in self.ports[side as usize].neighbours.poll(now) {
                self.send_arp_request(side, ip);
            }
        }
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
        let c = natpass_config::parse_config(
            "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"\n",
        )
        .unwrap();
        let (lan, wan) = c.links.unwrap();
        let port = |l: &natpass_config::Link, mac| PortConfig { mac, mtu: 1500, addr: l.addr, net: l.net };
        let config = LinkConfig { lan: port(&lan, LAN_MAC), wan: port(&wan, WAN_MAC), gateway: wan.gateway };
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
        // The gateway answers; the queued packet leaves, translated, to its MAC.
        let mut r = arp_frame(arp::REPLY, WAN_MAC, GW_MAC, GATEWAY, ROUTER_WAN);
        p.handle_frame(at_secs(1), Side::Wan, &mut r, RxMeta::default());
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
        let config =
            LinkConfig { lan: p.port(Side::Lan).clone(), wan: p.port(Side::Wan).clone(), gateway: Some(GATEWAY) };
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

    proptest! {
        /// Whatever arrives, nothing panics (the link layer's own parsing; the engine has its
        /// fuzz target).
        #[test]
        fn arbitrary_frames_never_panic(
            kind in 0u8..4,
            body in proptest::collection::vec(any::<u8>(), 0..200),
            wan in any::<bool>(),
            seg in proptest::option::of((any::<u16>(), any::<u8>())),
            partial in any::<bool>(),
        ) {
            let mut p = plane();
            let side = if wan { Side::Wan } else { Side::Lan };
            let mac = if wan { WAN_MAC } else { LAN_MAC };
            let mut f = match kind {
                0 => body,
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
