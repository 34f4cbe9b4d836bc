//! Neighbor Discovery as the router does it (RFC 4861): the messages it takes in, validated
//! as §6.1.1 (Router Solicitation) and §7.1.1, §7.1.2 (Neighbor Solicitation and
//! Advertisement) say, and the ones it sends: Neighbor Advertisements for its own addresses
//! (§7.2.4), Neighbor Solicitations for its next hops (§7.2.2, §7.3.3), and Router
//! Advertisements on the LAN (§6.2) with the prefix for SLAAC (RFC 4862), the MTU and the
//! DNS servers (RFC 8106). Addresses: the link-local address from the MAC (RFC 4291
//! §2.5.6, EUI-64 per RFC 2464 §4), solicited-node groups (RFC 4291 §2.7.1) and their
//! Ethernet multicast addresses (RFC 2464 §7).
//!
//! Plain functions over bytes; the link layer ([`crate::Plane`]) decides what to do.

use std::net::Ipv6Addr;

use natpass_wire::IpProtocol;
use natpass_wire::ethernet::MacAddr;
use natpass_wire::icmpv6::{self, Icmpv6Packet, RouterAdvertisement, kind, na_flag};
use natpass_wire::ipv6::{self, Ipv6Packet};

/// The hop limit every Neighbor Discovery message is sent with and must arrive with (RFC 4861
/// §6.1.1, §7.1.1: 255, proof that it was not forwarded).
pub const ND_HOP_LIMIT: u8 = 255;
/// All nodes on the link (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All routers on the link (RFC 4291 §2.7.1).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The link-local address of an interface with `mac` (fe80::/64 and the modified EUI-64
/// interface identifier, RFC 4291 §2.5.1, RFC 2464 §4-5).
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
}

/// The solicited-node multicast group of `ip` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// The Ethernet address of an IPv6 multicast group (33:33 and its last 32 bits, RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A Neighbor Discovery message that passed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdMessage {
    /// A Router Solicitation (RFC 4861 §4.1).
    RouterSolicitation {
        /// Its source (unspecified from a host without an address yet).
        src: Ipv6Addr,
        /// The Source Link-Layer Address option.
        mac: Option<MacAddr>,
    },
    /// A Neighbor Solicitation (RFC 4861 §4.3).
    NeighborSolicitation {
        /// Its source (unspecified during Duplicate Address Detection).
        src: Ipv6Addr,
        /// The address asked for.
        target: Ipv6Addr,
        /// The Source Link-Layer Address option.
        mac: Option<MacAddr>,
    },
    /// A Neighbor Advertisement (RFC 4861 §4.4).
    NeighborAdvertisement {
        /// The address answered for.
        target: Ipv6Addr,
        /// The Target Link-Layer Address option.
        mac: Option<MacAddr>,
        /// The S flag: an answer to a solicitation.
        solicited: bool,
    },
}

/// Why a Neighbor Discovery message was discarded (RFC 4861 §6.1.1, §7.1.1, §7.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdInvalid {
    /// Shorter than its message, or not a whole IPv6 packet.
    Truncated,
    /// The hop limit is not 255: it came from off the link.
    HopLimit,
    /// The ICMP code is not 0.
    Code,
    /// The ICMPv6 checksum does not verify.
    Checksum,
    /// An option of length 0 or one past the message.
    Options,
    /// The target is a multicast address.
    MulticastTarget,
    /// From the unspecified address with a Source Link-Layer Address option, or a
    /// solicitation from it not sent to a solicited-node group.
    Unspecified,
    /// A Neighbor Advertisement to a multicast group with the S flag.
    SolicitedToMulticast,
}

impl NdInvalid {
    /// Every reason, in counter order ([`NdInvalid::index`]).
    pub const ALL: [NdInvalid; 8] = [
        Self::Truncated,
        Self::HopLimit,
        Self::Code,
        Self::Checksum,
        Self::Options,
        Self::MulticastTarget,
        Self::Unspecified,
        Self::SolicitedToMulticast,
    ];

    /// The reason's place in [`NdInvalid::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason's name in counters.
    pub fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::HopLimit => "hop_limit",
            Self::Code => "code",
            Self::Checksum => "checksum",
            Self::Options => "options",
            Self::MulticastTarget => "multicast_target",
            Self::Unspecified => "unspecified_source",
            Self::SolicitedToMulticast => "solicited_to_multicast",
        }
    }
}

/// The ICMPv6 type of `ip` when it is an ICMPv6 message right after the fixed header (as
/// Neighbor Discovery and echo messages to the router are), with the message.
pub fn icmpv6_message(ip: &[u8]) -> Option<(Ipv6Packet<&[u8]>, u8)> {
    let p = Ipv6Packet::new_checked(ip).ok()?;
    if p.next_header() != IpProtocol::ICMPV6 {
        return None;
    }
    let t = Icmpv6Packet::new_checked(p.payload()).ok()?.msg_type();
    Some((p, t))
}

/// True for the Neighbor Discovery messages a router takes in (RS, NS, NA); RAs from other
/// routers and Redirects are not for it.
pub fn is_nd(t: u8) -> bool {
    matches!(t, kind::ROUTER_SOLICITATION | kind::NEIGHBOR_SOLICITATION | kind::NEIGHBOR_ADVERTISEMENT)
}

/// Validates a Router Solicitation, Neighbor Solicitation or Advertisement (the IPv6 packet
/// `ip`) as RFC 4861 says, and reads what the router needs of it. `Ok(None)` for other
/// messages.
pub fn parse(ip: &[u8]) -> Result<Option<NdMessage>, NdInvalid> {
    let Some((p, t)) = icmpv6_message(ip) else { return Ok(None) };
    if !is_nd(t) {
        return Ok(None);
    }
    let body = p.payload();
    let m = Icmpv6Packet::new_unchecked(body);
    let min = if t == kind::ROUTER_SOLICITATION { 8 } else { 24 };
    if body.len() < min {
        return Err(NdInvalid::Truncated);
    }
    if p.hop_limit() != ND_HOP_LIMIT {
        return Err(NdInvalid::HopLimit);
    }
    if m.code() != 0 {
        return Err(NdInvalid::Code);
    }
    let len = u32::try_from(body.len()).map_err(|_| NdInvalid::Truncated)?;
    if !m.verify_checksum(p.pseudo_header_sum(IpProtocol::ICMPV6, len)) {
        return Err(NdInvalid::Checksum);
    }
    let mut ll = None;
    let wanted =
        if t == kind::NEIGHBOR_ADVERTISEMENT { icmpv6::option::TARGET_LL_ADDR } else { icmpv6::option::SOURCE_LL_ADDR };
    for o in m.nd_options() {
        let o = o.map_err(|_| NdInvalid::Options)?;
        if o.kind == wanted {
            ll = icmpv6::link_layer_address(&o);
        }
    }
    let (src, dst) = (p.src(), p.dst());
    let target = m.target();
    Ok(Some(match (t, target) {
        (kind::ROUTER_SOLICITATION, _) => {
            if src.is_unspecified() && ll.is_some() {
                return Err(NdInvalid::Unspecified);
            }
            NdMessage::RouterSolicitation { src, mac: ll }
        }
        (_, None) => return Err(NdInvalid::Truncated),
        (_, Some(target)) if target.is_multicast() => return Err(NdInvalid::MulticastTarget),
        (kind::NEIGHBOR_SOLICITATION, Some(target)) => {
            if src.is_unspecified() && (ll.is_some() || dst != solicited_node(target)) {
                return Err(NdInvalid::Unspecified);
            }
            NdMessage::NeighborSolicitation { src, target, mac: ll }
        }
        (_, Some(target)) => {
            let solicited = m.nd_flags() & na_flag::SOLICITED != 0;
            if solicited && dst.is_multicast() {
                return Err(NdInvalid::SolicitedToMulticast);
            }
            NdMessage::NeighborAdvertisement { target, mac: ll, solicited }
        }
    }))
}

/// A solicited Neighbor Advertisement for `target` from `src` to `dst` (RFC 4861 §7.2.4: R,
/// and S unless it answers Duplicate Address Detection at all-nodes, O, and the Target
/// Link-Layer Address option).
pub fn neighbor_advertisement(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let solicited = dst != ALL_NODES;
    icmpv6::packet(src, dst, ND_HOP_LIMIT, 32, |b| icmpv6::emit_neighbor_advertisement(b, target, mac, solicited, true))
}

/// A Neighbor Solicitation for `target` from `src` (RFC 4861 §7.2.2): to its solicited-node
/// group when resolving, to `target` itself when probing (§7.3.3).
pub fn neighbor_solicitation(src: Ipv6Addr, target: Ipv6Addr, mac: MacAddr, probe: bool) -> Vec<u8> {
    let dst = if probe { target } else { solicited_node(target) };
    icmpv6::packet(src, dst, ND_HOP_LIMIT, icmpv6::NEIGHBOR_SOLICITATION_LEN as u16, |b| {
        icmpv6::emit_neighbor_solicitation(b, target, mac);
    })
}

/// A Router Advertisement from the router's link-local address `src` to `dst` (RFC 4861
/// §6.2.3, §4.2: the source is link-local; all-nodes, or the soliciting host).
pub fn router_advertisement(src: Ipv6Addr, dst: Ipv6Addr, ra: &RouterAdvertisement) -> Vec<u8> {
    let len = u16::try_from(ra.len()).unwrap_or(u16::MAX);
    icmpv6::packet(src, dst, ND_HOP_LIMIT, len, |b| ra.emit(b))
}

/// The destination of an IPv6 packet, for the link layer's checks.
pub fn destination(ip: &[u8]) -> Option<Ipv6Addr> {
    Ipv6Packet::new_checked(ip).ok().map(|p| p.dst())
}

/// The length of an IPv6 packet without link padding.
pub fn packet_len(ip: &[u8]) -> Option<usize> {
    Ipv6Packet::new_checked(ip).ok().map(|p| ipv6::HEADER_LEN + usize::from(p.payload_len()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x01, 0x01];

    #[test]
    fn every_discard_reason_has_its_own_counter() {
        for (i, why) in NdInvalid::ALL.iter().enumerate() {
            assert_eq!(why.index(), i, "{}", why.name());
        }
    }

    #[test]
    fn rfc4291_link_local_from_the_mac_and_solicited_node_groups() {
        assert_eq!(link_local(MAC), "fe80::ff:fe00:101".parse::<Ipv6Addr>().unwrap());
        let a: Ipv6Addr = "2001:db8:1::1:2345".parse().unwrap();
        assert_eq!(solicited_node(a), "ff02::1:ff01:2345".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(solicited_node(a)), [0x33, 0x33, 0xff, 0x01, 0x23, 0x45]);
    }

    #[test]
    fn rfc4861_7_1_1_a_solicitation_must_arrive_with_hop_limit_255_and_a_good_checksum() {
        let target: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let src: Ipv6Addr = "fe80::2".parse().unwrap();
        let ns = neighbor_solicitation(src, target, [2, 0, 0, 0, 0, 2], false);
        assert_eq!(
            parse(&ns),
            Ok(Some(NdMessage::NeighborSolicitation { src, target, mac: Some([2, 0, 0, 0, 0, 2]) }))
        );
        let mut forwarded = ns.clone();
        forwarded[7] = 254;
        assert_eq!(parse(&forwarded), Err(NdInvalid::HopLimit));
        let mut bad = ns.clone();
        bad[50] ^= 1;
        assert_eq!(parse(&bad), Err(NdInvalid::Checksum));
        assert_eq!(parse(&ns[..60]), Ok(None), "not a whole packet: not Neighbor Discovery to act on");
    }

    #[test]
    fn rfc4861_7_1_1_duplicate_address_detection_goes_to_the_solicited_node_group_without_an_address() {
        let target: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let dad = icmpv6::packet(Ipv6Addr::UNSPECIFIED, solicited_node(target), 255, 24, |b| {
            b[0] = kind::NEIGHBOR_SOLICITATION;
            b[8..24].copy_from_slice(&target.octets());
        });
        assert!(matches!(parse(&dad), Ok(Some(NdMessage::NeighborSolicitation { mac: None, .. }))));
        let with_option = icmpv6::packet(Ipv6Addr::UNSPECIFIED, solicited_node(target), 255, 32, |b| {
            icmpv6::emit_neighbor_solicitation(b, target, MAC);
        });
        assert_eq!(parse(&with_option), Err(NdInvalid::Unspecified));
    }

    #[test]
    fn rfc4861_7_1_2_a_solicited_advertisement_to_a_group_is_discarded() {
        let target: Ipv6Addr = "fe80::1".parse().unwrap();
        let na = neighbor_advertisement(target, "fe80::9".parse().unwrap(), target, MAC);
        assert_eq!(parse(&na), Ok(Some(NdMessage::NeighborAdvertisement { target, mac: Some(MAC), solicited: true })));
        let to_group = icmpv6::packet(target, ALL_NODES, 255, 32, |b| {
            icmpv6::emit_neighbor_advertisement(b, target, MAC, true, true);
        });
        assert_eq!(parse(&to_group), Err(NdInvalid::SolicitedToMulticast));
        let dad_answer = neighbor_advertisement(target, ALL_NODES, target, MAC);
        let m = Icmpv6Packet::new_checked(&dad_answer[40..]).unwrap();
        assert_eq!(m.nd_flags() & na_flag::SOLICITED, 0, "an answer to DAD is not solicited");
    }
}
