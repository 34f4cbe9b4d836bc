//! Real captures (the repository's `captures/`) replayed as 16 clients at once behind one
//! public address.
//!
//! Each capture's client is cloned 16 times with its own LAN address. The clones get their own
//! IKE SPIs and ESP SPIs too (the originals XOR the clone number), as 16 real clients would
//! have. The 16 conversations run round robin, one packet each per round, through one engine.
//! The server's packets are addressed to what natpass showed it (the public address and port).
//! A clone whose new ESP SA is refused because another clone's is pending retransmits in the
//! next round, as an IPsec stack does. A server packet for a clone is sent only after that
//! clone's earlier packets were sent, because a server answers only what it received. Every
//! server packet must reach its clone byte for byte (TTL aside), and every clone packet must
//! leave.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use natpass_engine::{DropReason, Endpoint, Engine, EngineConfig, Instant, IpProtocol, Ipv4Net, Proto, Side, Verdict};
use natpass_io::pcap::{L3, PcapReader};
use natpass_testkit::captures;
use natpass_wire::AddrChange;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::tcp::TcpPacket;
use natpass_wire::udp::UdpPacket;

const CLONES: u8 = 16;
const PUBLIC: [u8; 4] = [203, 0, 113, 1];

fn clone_ip(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + k)
}

/// Rewrites the client address to clone `k`'s and makes its IKE and ESP SPIs its own; fills
/// every checksum as the clone's stack would.
fn make_clone(pkt: &[u8], client: Ipv4Addr, k: u8) -> Vec<u8> {
    let mut p = pkt.to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
    if ip.src() == client {
        ip.set_src(clone_ip(k));
    } else {
        ip.set_dst(clone_ip(k));
    }
    let proto = ip.protocol();
    let first = ip.frag_offset() == 0;
    let ps = ip.pseudo_header_sum();
    let l4 = ip.payload_mut();
    let x = u32::from(k) << 24;
    if first && proto == IpProtocol::ESP && l4.len() >= 4 {
        let spi = u32::from_be_bytes([l4[0], l4[1], l4[2], l4[3]]) ^ x;
        l4[0..4].copy_from_slice(&spi.to_be_bytes());
    }
    if first && proto == IpProtocol::UDP && l4.len() >= 8 {
        let (sp, dp) = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
        let body = &mut l4[8..];
        let ike_at = match body {
            [0xff] => None,
            [0, 0, 0, 0, ..] if sp == 4500 || dp == 4500 => Some(4),
            _ if sp == 4500 || dp == 4500 => {
                // ESP in UDP: the SPI leads.
                if body.len() >= 4 {
                    let spi = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) ^ x;
                    body[0..4].copy_from_slice(&spi.to_be_bytes());
                }
                None
            }
            _ if sp == 500 || dp == 500 => Some(0),
            _ => None,
        };
        if let Some(at) = ike_at.filter(|&at| body.len() >= at + 16) {
            // Both SPIs get the clone number in their top byte (zero SPIs stay zero).
            for off in [at, at + 8] {
                if body[off..off + 8] != [0u8; 8] {
                    body[off] ^= k;
                }
            }
        }
    }
    if first
        && proto == IpProtocol::UDP
        && let Ok(mut u) = UdpPacket::new_checked(&mut ip.payload_mut()[..])
        && u.checksum() != 0
    {
        u.fill_checksum(ps);
    }
    if first
        && proto == IpProtocol::TCP
        && let Ok(mut t) = TcpPacket::new_checked(&mut ip.payload_mut()[..])
    {
        t.fill_checksum(ps);
    }
    ip.fill_checksum();
    p
}

/// The server's packet as sent to what natpass showed it: the public address, and for UDP and
/// TCP the public port of the clone's session.
fn to_public(e: &Engine, pkt: &[u8]) -> Vec<u8> {
    let mut p = pkt.to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
    let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
    let public = Ipv4Addr::from(PUBLIC);
    let first = ip.frag_offset() == 0;
    if first && matches!(proto, IpProtocol::TCP | IpProtocol::UDP) {
        let l4 = ip.payload();
        let (sp, dp) = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
        let p = if proto == IpProtocol::TCP { Proto::Tcp } else { Proto::Udp };
        let ext = e.outside_of(p, Endpoint::new(dst, dp), Endpoint::new(src, sp)).map_or(dp, |x| x.port);
        let change = Some(AddrChange::new(dst, public));
        match p {
            Proto::Tcp => TcpPacket::new_unchecked(ip.payload_mut()).set_dst_port(ext, change),
            _ => UdpPacket::new_unchecked(ip.payload_mut()).set_dst_port(ext, change),
        }
    }
    if first && proto == IpProtocol::GRE {
        // Enhanced GRE to the client carries the client's Call ID: the server knows the public one.
        let cid = natpass_wire::gre::GrePacket::new_checked(ip.payload()).ok().and_then(|g| g.call_id());
        if let Some(public_cid) = cid.and_then(|c| e.pptp_public_call_id(dst, src, c)) {
            natpass_wire::gre::GrePacket::new_unchecked(ip.payload_mut()).set_call_id(public_cid);
        }
    }
    if first && proto == IpProtocol::TCP {
        // PPTP control from the server names the client's Call ID where it means ours.
        pptp_fields_to_public(e, &mut ip, src, dst);
    }
    ip.set_dst(public);
    if first && proto == IpProtocol::TCP {
        let ps = Ipv4Packet::new_unchecked(&p[..]).pseudo_header_sum();
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        TcpPacket::new_unchecked(ip.payload_mut()).fill_checksum(ps);
    }
    p
}

/// Rewrites the client's Call ID to the public one in the PPTP control messages of a server
/// segment (whole messages, as in the captures). Returns true when something changed.
fn pptp_fields_to_public(e: &Engine, ip: &mut Ipv4Packet<&mut [u8]>, server: Ipv4Addr, client: Ipv4Addr) -> bool {
    use natpass_wire::pptp::{CallIdOwner, PptpControl, next_message_len};
    let Ok(t) = TcpPacket::new_checked(ip.payload()) else { return false };
    if t.src_port() != 1723 {
        return false;
    }
    let hl = t.header_len();
    let data = &mut ip.payload_mut()[hl..];
    let mut at = 0;
    let mut changed = false;
    while let Some(len) = next_message_len(&data[at..]) {
        if len < 12 || at + len > data.len() {
            break;
        }
        if let Ok(mut m) = PptpControl::new_checked(&mut data[at..at + len]) {
            for &(off, owner) in m.call_id_fields() {
                if owner == CallIdOwner::Pns {
                    let cid = m.call_id_at(off).unwrap_or(0);
                    if let Some(p) = e.pptp_public_call_id(client, server, cid) {
                        changed |= p != cid;
                        m.set_call_id_at(off, p);
                    }
                }
            }
        }
        at += len;
    }
    changed
}

fn same_but_ttl(out: &[u8], want: &[u8]) -> bool {
    out.len() >= want.len() && out[..8] == want[..8] && out[9] == want[9] && out[12..want.len()] == want[12..]
}

/// Replays `name` as 16 clients of `client`; returns (client packets sent, server packets
/// delivered, ESP refusals retried).
fn sixteen(name: &str, client: [u8; 4]) -> (u64, u64, u64) {
    let client = Ipv4Addr::from(client);
    let mut pkts = Vec::new();
    for p in PcapReader::open(&captures().join(name)).unwrap() {
        let p = p.unwrap();
        let L3::Ipv4 { offset } = p.l3 else { continue };
        let ip = Ipv4Packet::new_checked(&p.data[offset..]).unwrap();
        if (ip.src() == client || ip.dst() == client) && !ip.dst().is_multicast() && ip.dst().octets()[3] != 0xff {
            pkts.push(p.data[offset..offset + usize::from(ip.total_len())].to_vec());
        }
    }
    let config = EngineConfig {
        public_addrs: vec![PUBLIC.into()],
        lan_networks: vec![Ipv4Net::new([10, 77, 0, 0].into(), 24)],
        lan_addr: [10, 77, 0, 1].into(),
        wan_mtu: 9000,
        lan_mtu: 9000,
        ..Default::default()
    };
    let from_client = pkts.iter().filter(|p| Ipv4Packet::new_unchecked(&p[..]).src() == client).count() as u64;
    // An empty conversation would pass every count below with zeros.
    assert!(
        from_client > 0 && from_client < pkts.len() as u64,
        "{name}: the client must send and receive ({from_client} of {} packets are from it)",
        pkts.len()
    );
    eprintln!("{name}: {} packets per client, {} from it", pkts.len(), from_client);
    let mut e = Engine::new(config, Instant::ZERO).unwrap();
    let mut queues: Vec<VecDeque<Vec<u8>>> =
        (0..CLONES).map(|k| pkts.iter().map(|p| make_clone(p, client, k)).collect()).collect();
    let (mut sent, mut delivered, mut retried) = (0u64, 0u64, 0u64);
    let mut now = 0u64;
    let mut rounds = 0;
    while queues.iter().any(|q| !q.is_empty()) {
        rounds += 1;
        assert!(rounds < 100_000, "{name}: no progress");
        now += 10_000_000;
        for k in 0..CLONES {
            let Some(pkt) = queues[usize::from(k)].front().cloned() else { continue };
            let from_clone = Ipv4Packet::new_unchecked(&pkt[..]).src() == clone_ip(k);
            let mut buf = if from_clone { pkt.clone() } else { to_public(&e, &pkt) };
            let side = if from_clone { Side::Lan } else { Side::Wan };
            let v = e.process(Instant::from_nanos(now), side, &mut buf);
            while e.poll_transmit().is_some() {}
            match (side, v) {
                (Side::Lan, Verdict::Forward(Side::Wan)) => sent += 1,
                (Side::Lan, Verdict::Drop(DropReason::EspServerBusy)) => {
                    retried += 1;
                    continue; // retransmitted next round
                }
                (Side::Wan, Verdict::Forward(Side::Lan)) => {
                    assert!(same_but_ttl(&buf, &pkt), "{name}: clone {k} got a packet meant for another or changed");
                    delivered += 1;
                }
                (s, v) => panic!("{name}: clone {k}: {s:?} packet got {v:?}"),
            }
            queues[usize::from(k)].pop_front();
        }
    }
    assert_eq!(sent, u64::from(CLONES) * from_client, "{name}: every clone packet left");
    assert_eq!(delivered, u64::from(CLONES) * (pkts.len() as u64 - from_client), "{name}: every server packet arrived");
    (sent, delivered, retried)
}

#[test]
fn l2tp_capture_as_sixteen_clients() {
    let (sent, delivered, _) = sixteen("l2tpv2_full_control_and_data.pcap", [192, 168, 101, 233]);
    assert_eq!((sent, delivered), (16 * 95, 16 * 73));
}

#[test]
fn nat_t_multi_gateway_capture_as_sixteen_clients() {
    let (sent, delivered, _) = sixteen("ikev2_natt_multi-gateway_esp-in-udp.pcap", [192, 168, 2, 100]);
    assert_eq!((sent, delivered), (16 * 393, 16 * 441));
}

#[test]
fn ikev2_with_raw_esp_capture_as_sixteen_clients() {
    let (sent, delivered, retried) = sixteen("ikev2_esp_labC.pcapng", [10, 2, 3, 2]);
    // IKE on port 500 for all 16 (demultiplexed by SPI), then raw ESP: new SAs to the one
    // server are serialized, the refused ones retransmitted, and all bind to the right clone.
    assert_eq!((sent, delivered), (16 * 3, 16 * 3));
    assert!(retried > 0, "the ESP serialization was exercised");
}

#[test]
fn ikev1_main_and_quick_mode_capture_as_sixteen_clients() {
    let (sent, delivered, _) = sixteen("ikev1_main_quick_labA.pcap", [192, 168, 12, 1]);
    assert_eq!((sent, delivered), (16 * 5, 16 * 4));
}

#[test]
fn pptp_windows_client_capture_as_sixteen_clients() {
    // All 16 clones use the same Call ID (17611): natpass gives each call its own public one,
    // and the server's control replies and GRE reach the right clone with its own Call ID back.
    let (sent, delivered, _) = sixteen("pptp_full_windows-client_pptpd.pcapng", [192, 168, 142, 1]);
    // The client's own packets (its multicast and the server's other LAN traffic left out).
    assert_eq!((sent, delivered), (16 * 333, 16 * 35));
}
