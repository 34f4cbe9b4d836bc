//! Checksum and segmentation offloads, as a socket backend reports them on receive and asks
//! for them on send (Linux: the virtio-net header of PACKET_VNET_HDR; later AF_XDP metadata).
//!
//! A sender with offloads on hands over TCP and UDP packets whose checksum is unfinished, and
//! super-packets of up to 64 KB that the NIC or the kernel would cut into segments. natpass
//! completes unfinished checksums before the engine reads them ([`complete_l4_checksum`]),
//! translates a super-packet whole with the MTU checked against its segments
//! ([`segment_len`]), and hands it back with the same request ([`offload_request`],
//! [`partial_l4_checksum`]) so that it is cut up on the way out. IPv4 and IPv6 alike (the
//! IPv6 transport header found past the extension headers, RFC 8200 §4, §8.1).

use natpass_wire::IpProtocol;
use natpass_wire::ethernet;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::ipv6::{self, Ipv6Packet};
use natpass_wire::{checksum, tcp::TcpPacket, udp, udp::UdpPacket};

/// Where the checksum sits in a TCP header (RFC 9293 §3.1).
const TCP_CHECKSUM_AT: u16 = 16;
/// Where the checksum sits in a UDP header (RFC 768).
const UDP_CHECKSUM_AT: u16 = 6;

/// A segmentation request: cut the packet's payload into `size`-byte segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segmentation {
    /// Payload bytes per segment.
    pub size: u16,
    /// The backend's code for the kind of segmentation (for AF_PACKET the virtio-net
    /// `gso_type`), handed back unchanged when the packet leaves. The link layer tells TCP
    /// from UDP by the packet itself.
    pub kind: u8,
}

/// What the backend knows about a received frame besides its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// Sent by this host and seen on its way out: ignored.
    pub outgoing: bool,
    /// The backend removed an 802.1Q tag: natpass runs on untagged links, so it is ignored.
    pub vlan_stripped: bool,
    /// The TCP or UDP checksum was left for offload and is not valid yet.
    pub checksum_partial: bool,
    /// A segmentation-offload super-frame, with the sender's segment size.
    pub segmentation: Option<Segmentation>,
}

/// What a frame asks of the backend when it leaves: finish its TCP/UDP checksum (the field
/// holds the pseudo-header sum) and cut it into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOffload {
    /// How to cut it.
    pub segmentation: Segmentation,
    /// Bytes of headers (Ethernet, IPv4, TCP or UDP) before the payload.
    pub header_len: u16,
    /// Where checksumming starts, counted from the frame's first byte.
    pub csum_start: u16,
    /// Where the checksum goes, counted from `csum_start`.
    pub csum_offset: u16,
}

/// Where a packet's TCP or UDP header is, for IPv4 and IPv6 alike.
struct L4 {
    protocol: IpProtocol,
    /// The transport header's offset in the IP packet.
    start: usize,
    /// The end of the IP packet (link padding after it).
    end: usize,
    /// The upper-layer pseudo-header sum (RFC 9293 §3.1, RFC 8200 §8.1).
    pseudo: u64,
    /// A fragment (not a whole datagram).
    fragment: bool,
    /// A fragment other than the first (no transport header).
    later_fragment: bool,
}

/// The transport layer of an IPv4 or IPv6 packet.
fn l4_of(ip: &[u8]) -> Option<L4> {
    match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            Some(L4 {
                protocol: p.protocol(),
                start: p.header_len(),
                end: usize::from(p.total_len()),
                pseudo: p.pseudo_header_sum(),
                fragment: p.is_fragment(),
                later_fragment: p.frag_offset() != 0,
            })
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            let up = p.upper_layer().ok()?;
            let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
            let len = u32::try_from(end.checked_sub(up.offset)?).ok()?;
            let frag = up.fragment.filter(|f| !f.is_atomic());
            Some(L4 {
                protocol: up.protocol,
                start: up.offset,
                end,
                pseudo: p.pseudo_header_sum(up.protocol, len),
                fragment: frag.is_some(),
                later_fragment: frag.is_some_and(|f| f.offset != 0),
            })
        }
        _ => None,
    }
}

/// The TCP or UDP header length, or `None` for other protocols and short packets.
fn l4_header_len(ip: &[u8], l4: &L4) -> Option<usize> {
    let t = ip.get(l4.start..l4.end)?;
    match l4.protocol {
        IpProtocol::TCP => TcpPacket::new_checked(t).ok().map(|t| t.header_len()),
        IpProtocol::UDP => UdpPacket::new_checked(t).ok().map(|_| udp::HEADER_LEN),
        _ => None,
    }
}

/// The IP length of the segments a TCP or UDP super-packet (IPv4 or IPv6) is cut into
/// (`size` bytes of payload each), or `None` for anything else.
pub fn segment_len(ip: &[u8], size: u16) -> Option<u16> {
    let l4 = l4_of(ip)?;
    if size == 0 || l4.fragment {
        return None;
    }
    u16::try_from(l4.start + l4_header_len(ip, &l4)? + usize::from(size)).ok()
}

/// The offload request for sending the super-packet `ip` (after translation) in an Ethernet
/// frame: the backend finishes the checksum and cuts it as `segmentation` says.
pub fn offload_request(ip: &[u8], segmentation: Segmentation) -> Option<TxOffload> {
    let l4 = l4_of(ip)?;
    let csum_offset = match l4.protocol {
        IpProtocol::TCP => TCP_CHECKSUM_AT,
        IpProtocol::UDP => UDP_CHECKSUM_AT,
        _ => return None,
    };
    let l3 = ethernet::HEADER_LEN + l4.start;
    Some(TxOffload {
        segmentation,
        header_len: u16::try_from(l3 + l4_header_len(ip, &l4)?).ok()?,
        csum_start: u16::try_from(l3).ok()?,
        csum_offset,
    })
}

/// Writes `check(pseudo)` into the TCP or UDP checksum field of `ip`.
fn set_l4_checksum(ip: &mut [u8], later_fragments_too: bool, check: impl Fn(&mut [u8], IpProtocol, u64)) {
    let Some(l4) = l4_of(ip) else { return };
    if l4.later_fragment && !later_fragments_too {
        return;
    }
    if let Some(t) = ip.get_mut(l4.start..l4.end) {
        check(t, l4.protocol, l4.pseudo);
    }
}

/// Leaves in the TCP/UDP checksum field what a backend finishing the checksum expects: the
/// folded pseudo-header sum, not complemented (the backend adds the rest and complements).
pub fn partial_l4_checksum(ip: &mut [u8]) {
    set_l4_checksum(ip, true, |t, protocol, pseudo| {
        let partial = checksum::fold(pseudo);
        match protocol {
            IpProtocol::TCP => {
                if let Ok(mut t) = TcpPacket::new_checked(t) {
                    t.set_checksum(partial);
                }
            }
            IpProtocol::UDP => {
                if let Ok(mut u) = UdpPacket::new_checked(t) {
                    u.set_checksum(partial);
                }
            }
            _ => {}
        }
    });
}

/// True when the TCP or UDP checksum field of `ip` holds what a sender leaves there for
/// offload (the folded pseudo-header sum, [`partial_l4_checksum`]): for a backend that is not
/// told (AF_XDP), so that a frame from a local sender with checksum offload (a veth peer)
/// gets its checksum completed. A complete checksum equal to that value (1 in 65,536 frames)
/// is recomputed to the same value, so a good frame is never spoiled.
pub fn checksum_left_partial(ip: &[u8]) -> bool {
    let Some(l4) = l4_of(ip) else { return false };
    let Some(t) = ip.get(l4.start..l4.end) else { return false };
    if l4.fragment {
        return false;
    }
    let field = match l4.protocol {
        IpProtocol::TCP => TcpPacket::new_checked(t).map(|t| t.checksum()),
        IpProtocol::UDP => UdpPacket::new_checked(t).map(|u| u.checksum()),
        _ => return false,
    };
    field.is_ok_and(|c| c == checksum::fold(l4.pseudo))
}

/// Writes the TCP or UDP checksum a sender left to offload.
pub fn complete_l4_checksum(ip: &mut [u8]) {
    set_l4_checksum(ip, false, |t, protocol, pseudo| match protocol {
        IpProtocol::TCP => {
            if let Ok(mut t) = TcpPacket::new_checked(t) {
                t.fill_checksum(pseudo);
            }
        }
        IpProtocol::UDP => {
            if let Ok(mut u) = UdpPacket::new_checked(t) {
                u.fill_checksum(pseudo);
            }
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use natpass_wire::ipv4;
    use std::net::Ipv4Addr;

    const GSO_TCPV4: u8 = 1;
    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    /// A TCP/IPv4 packet with `payload` bytes of data, checksums complete.
    fn tcp_packet(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + payload];
        let total = u16::try_from(p.len()).unwrap();
        ipv4::Ipv4Repr { src: SRC, dst: DST, protocol: IpProtocol::TCP, total_len: total, ident: 1, ttl: 64 }
            .emit(&mut p);
        {
            let mut t = TcpPacket::new_unchecked(&mut p[20..]);
            t.set_src_port(40000, None);
            t.set_dst_port(80, None);
        }
        p[32] = 5 << 4; // data offset: 20 bytes
        p[33] = natpass_wire::tcp::flags::ACK;
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        complete_l4_checksum(&mut p);
        p
    }

    fn l4_checksum_ok(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        checksum::fold(checksum::sum(ip.pseudo_header_sum(), ip.payload())) == 0xffff
    }

    #[test]
    fn segment_len_is_headers_plus_gso_size() {
        assert_eq!(segment_len(&tcp_packet(60_000), 1448), Some(1488));
        let mut udp = vec![0u8; 28 + 9000];
        let n = u16::try_from(udp.len()).unwrap();
        ipv4::Ipv4Repr { src: SRC, dst: DST, protocol: IpProtocol::UDP, total_len: n, ident: 1, ttl: 64 }
            .emit(&mut udp);
        assert_eq!(segment_len(&udp, 1472), Some(1500));
        assert_eq!(segment_len(&tcp_packet(10), 0), None);
    }

    #[test]
    fn completed_checksums_verify() {
        let p = tcp_packet(100);
        assert!(l4_checksum_ok(&p));
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert!(TcpPacket::new_checked(ip.payload()).unwrap().verify_checksum(ip.pseudo_header_sum()));
    }

    #[test]
    fn the_partial_checksum_is_what_the_kernel_finishes() {
        let mut p = tcp_packet(3000);
        assert!(l4_checksum_ok(&p));
        let seg = Segmentation { size: 1448, kind: GSO_TCPV4 };
        let o = offload_request(&p, seg).unwrap();
        assert_eq!(o, TxOffload { segmentation: seg, header_len: 54, csum_start: 34, csum_offset: TCP_CHECKSUM_AT });
        assert!(!checksum_left_partial(&p));
        partial_l4_checksum(&mut p);
        assert!(!l4_checksum_ok(&p), "the field holds the pseudo-header sum only");
        assert!(checksum_left_partial(&p), "recognised without being told");
        // What the kernel does with NEEDS_CSUM: sum from csum_start to the end, complement,
        // store at csum_start + csum_offset.
        let start = usize::from(o.csum_start) - ethernet::HEADER_LEN;
        let c = !checksum::fold(checksum::sum(0, &p[start..]));
        let at = start + usize::from(o.csum_offset);
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
        assert!(l4_checksum_ok(&p));
    }

    /// The same TCP segment over IPv6 (RFC 8200 §8.1 pseudo-header), behind a Destination
    /// Options header: the transport header is found past it.
    fn tcp6_packet(payload: usize) -> Vec<u8> {
        let v4 = tcp_packet(payload);
        let tcp = &v4[20..];
        let mut p = vec![0u8; 48];
        let len = u16::try_from(8 + tcp.len()).unwrap();
        ipv6::Ipv6Repr {
            src: "2001:db8:1::10".parse().unwrap(),
            dst: "2001:db8:99::1".parse().unwrap(),
            next_header: ipv6::ext::DESTINATION,
            payload_len: len,
            hop_limit: 64,
        }
        .emit(&mut p);
        p[40] = IpProtocol::TCP.number(); // next header; length 0 (8 bytes); PadN after
        p[42] = 1;
        p[43] = 4;
        p.extend_from_slice(tcp);
        p
    }

    fn l4_checksum6_ok(p: &[u8]) -> bool {
        let ip = Ipv6Packet::new_checked(p).unwrap();
        let len = u32::try_from(p.len() - 48).unwrap();
        checksum::fold(checksum::sum(ip.pseudo_header_sum(IpProtocol::TCP, len), &p[48..])) == 0xffff
    }

    #[test]
    fn ipv6_super_packets_are_measured_and_finished_past_the_extension_headers() {
        let mut p = tcp6_packet(3000);
        complete_l4_checksum(&mut p);
        assert!(l4_checksum6_ok(&p));
        assert_eq!(segment_len(&p, 1432), Some(40 + 8 + 20 + 1432));
        let seg = Segmentation { size: 1432, kind: 4 };
        let o = offload_request(&p, seg).unwrap();
        assert_eq!((o.csum_start, o.header_len), (14 + 48, 14 + 48 + 20));
        partial_l4_checksum(&mut p);
        assert!(!l4_checksum6_ok(&p) && checksum_left_partial(&p));
        complete_l4_checksum(&mut p);
        assert!(l4_checksum6_ok(&p));
    }
}
