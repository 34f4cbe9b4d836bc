//! The bundled demo capture: what three LAN clients and their servers exchange without a NAT
//! (DNS over UDP, an HTTP-like TCP exchange, ping), two clients on the same source port to the
//! same server, a traceroute probe whose TTL runs out at the router, and a stray packet from
//! the Internet. `natpass replay` then shows what the NAT makes of it.

use std::path::Path;

use anyhow::Result;
use natpass_io::pcap::PcapWriter;
use natpass_wire::IpProtocol;
use natpass_wire::icmp::IcmpPacket;
use natpass_wire::ipv4::{Ipv4Packet, Ipv4Repr};
use natpass_wire::tcp::TcpPacket;
use natpass_wire::udp::UdpPacket;

fn ip_packet(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![0u8; total];
    let repr = Ipv4Repr {
        src: src.into(),
        dst: dst.into(),
        protocol: IpProtocol(proto),
        total_len: total as u16,
        ident: 0x1000,
        ttl,
    };
    repr.emit(&mut p);
    p[20..].copy_from_slice(l4);
    p
}

fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + payload.len()];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    let len = l4.len() as u16;
    l4[4..6].copy_from_slice(&len.to_be_bytes());
    l4[8..].copy_from_slice(payload);
    let mut p = ip_packet(src, dst, 17, 64, &l4);
    let ps = Ipv4Packet::new_unchecked(&p[..]).pseudo_header_sum();
    UdpPacket::new_unchecked(&mut p[20..]).fill_checksum(ps);
    p
}

#[allow(clippy::too_many_arguments)]
fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 20 + payload.len()];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[8..12].copy_from_slice(&ack.to_be_bytes());
    l4[12] = 0x50;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    l4[20..].copy_from_slice(payload);
    let mut p = ip_packet(src, dst, 6, 64, &l4);
    let ps = Ipv4Packet::new_unchecked(&p[..]).pseudo_header_sum();
    TcpPacket::new_unchecked(&mut p[20..]).fill_checksum(ps);
    p
}

fn echo(src: [u8; 4], dst: [u8; 4], kind: u8, id: u16, seq: u16, ttl: u8) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + 32];
    l4[0] = kind;
    l4[4..6].copy_from_slice(&id.to_be_bytes());
    l4[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in l4[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    IcmpPacket::new_unchecked(&mut l4[..]).fill_checksum();
    ip_packet(src, dst, 1, ttl, &l4)
}

/// The demo's packets with their times (ns), in order.
pub fn packets() -> Vec<(u64, Vec<u8>)> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;
    const FIN_ACK: u8 = 0x11;
    let clients = [[192, 168, 1, 10], [192, 168, 1, 11], [192, 168, 1, 12]];
    let dns = [198, 51, 100, 53];
    let web = [198, 51, 100, 80];
    let mut v: Vec<(u64, Vec<u8>)> = Vec::new();
    let ms = 1_000_000u64;
    let mut t = 0u64;
    let mut push = |dt: u64, p: Vec<u8>, v: &mut Vec<(u64, Vec<u8>)>| {
        t += dt;
        v.push((t, p));
    };
    for (i, c) in clients.iter().enumerate() {
        let i = i as u16;
        // DNS: clients 0 and 1 use the same source port to the same server.
        let port = if i < 2 { 40000 } else { 40002 };
        push(ms, udp(*c, port, dns, 53, b"\x12\x34\x01\x00\x00\x01 example.org A"), &mut v);
        push(2 * ms, udp(dns, 53, *c, port, b"\x12\x34\x81\x80\x00\x01 example.org A 93.184.215.14"), &mut v);
        // A TCP exchange.
        let sp = 50000 + i;
        push(ms, tcp(*c, sp, web, 80, SYN, 1000, 0, b""), &mut v);
        push(10 * ms, tcp(web, 80, *c, sp, SYN | ACK, 5000, 1001, b""), &mut v);
        push(ms, tcp(*c, sp, web, 80, ACK, 1001, 5001, b""), &mut v);
        push(ms, tcp(*c, sp, web, 80, PSH_ACK, 1001, 5001, b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"), &mut v);
        push(
            10 * ms,
            tcp(web, 80, *c, sp, PSH_ACK, 5001, 1030, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            &mut v,
        );
        push(ms, tcp(*c, sp, web, 80, FIN_ACK, 1030, 5041, b""), &mut v);
        push(10 * ms, tcp(web, 80, *c, sp, FIN_ACK, 5041, 1031, b""), &mut v);
        push(ms, tcp(*c, sp, web, 80, ACK, 1031, 5042, b""), &mut v);
        // Ping, same identifier from every client.
        for seq in 1..=2 {
            push(100 * ms, echo(*c, web, 8, 0x0101, seq, 64), &mut v);
            push(9 * ms, echo(web, *c, 0, 0x0101, seq, 57), &mut v);
        }
    }
    // A traceroute probe that expires at the router.
    push(ms, udp(clients[0], 33434, web, 33434, b"probe"), &mut v);
    if let Some((_, p)) = v.last_mut() {
        p[8] = 1;
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
    }
    // A stray probe from the Internet to a port nobody opened.
    push(ms, tcp([192, 0, 2, 66], 31337, clients[1], 22, SYN, 7, 0, b""), &mut v);
    v
}

/// Writes the demo capture to `path`; returns the packet count.
pub fn write_capture(path: &Path) -> Result<usize> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut w = PcapWriter::create(path)?;
    let pkts = packets();
    for (t, p) in &pkts {
        w.write_packet(*t, p)?;
    }
    w.finish()?;
    Ok(pkts.len())
}
