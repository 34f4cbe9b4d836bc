//! AF_XDP and the kernel fast path on veths in a network namespace of their own: the XDP
//! program attached (replacing one a crash left behind) and detached, a socket on every
//! receive queue of an interface (and too many queues refused), a frame that crosses
//! from one interface to the other from the UMEM chunk it arrived in, and the fast path's tc
//! program forwarding the flows in its map.
//!
//! Needs root (`ip netns`, `bpf(2)`) and `ethtool`; otherwise the tests print SKIPPED, or fail with
//! `NATPASS_TEST_REQUIRE=all`. Each test re-runs itself inside its namespace
//! (`ip netns exec`), and removes the namespace when done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use natpass_io::afpacket::{PacketSocket, RingOptions, RingVersion, TxBatch, VnetHdr};
use natpass_io::afxdp::{self, Disposition, ModeChoice, XdpOptions, XdpPair, XdpProgram};
use natpass_io::fastpath::{self, FastPath, FlowAction, FlowKey};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

const INSIDE: &str = "NATPASS_AFXDP_TEST_INSIDE";

fn prerequisites() -> Result<(), String> {
    let out = Command::new("id").arg("-u").output().map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Err("needs root (network namespaces, bpf(2), AF_XDP)".into());
    }
    Command::new("ip").arg("-V").output().map_err(|e| format!("needs iproute2 (`ip`): {e}"))?;
    Command::new("ethtool").arg("--version").output().map_err(|e| format!("needs `ethtool`: {e}"))?;
    Ok(())
}

fn sh(cmd: &str) {
    let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// Runs `test` (this test's name) again inside a fresh namespace with two veth pairs:
/// `xl0`–`xl1` (the LAN side, natpass on `xl0`) and `xw0`–`xw1` (the WAN side).
fn in_namespace(ns: &str, test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    sh(&format!("ip netns add {ns}"));
    let setup = format!(
        "ip -n {ns} link add xl0 type veth peer name xl1 && ip -n {ns} link add xw0 type veth peer name xw1 && \
         for i in xl0 xl1 xw0 xw1; do ip -n {ns} link set $i up; done"
    );
    let st = Command::new("sh").args(["-c", &setup]).status().unwrap();
    let out = st.success().then(|| {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads", "1"])
            .env(INSIDE, "1")
            .output()
            .unwrap()
    });
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
    let out = out.expect("setting up the namespace failed");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success() && text.contains("1 passed"), "inside {ns}:\n{text}");
    false
}

fn udp_frame(dst: [u8; 6], src: [u8; 6], tag: u8) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[192, 168, 1, 10]);
    f[30..34].copy_from_slice(&[198, 51, 100, 7]);
    f[59] = tag;
    f
}

fn packet_socket(iface: &str) -> PacketSocket {
    let opts = RingOptions { version: RingVersion::V2, vnet_hdr: false, ..RingOptions::default() };
    PacketSocket::open(iface, opts).unwrap()
}

/// Receives on `sock` until `want` says yes or 2 s pass.
fn wait_for(sock: &mut PacketSocket, mut want: impl FnMut(&[u8]) -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    let mut found = false;
    while Instant::now() < end && !found {
        sock.receive(|f, _| found |= want(f));
        if !found {
            PacketSocket::wait(&[&*sock], 10).unwrap();
        }
    }
    found
}

#[test]
fn a_frame_crosses_from_lan_to_wan_in_the_chunk_it_arrived_in() {
    natpass_testkit::require!(prerequisites());
    if !in_namespace("npt-xdp-zerocopy", "a_frame_crosses_from_lan_to_wan_in_the_chunk_it_arrived_in") {
        return;
    }
    let mut pair = XdpPair::open(["xl0", "xw0"], XdpOptions::default()).unwrap();
    println!("modes {:?}, zero-copy {}", pair.reports(), pair.zero_copy());
    assert_eq!(pair.reports()[0].mode, afxdp::AttachMode::Native, "veth has native XDP");
    let lan_peer = packet_socket("xl1");
    let mut wan_peer = packet_socket("xw1");
    let lan = afxdp::interface("xl0").unwrap();
    let wan = afxdp::interface("xw0").unwrap();
    let mut wan_tx = pair.tx_queue();
    let mut batch = TxBatch::new();
    let frame = udp_frame(lan.mac, [2, 0, 0, 0, 1, 10], 0x5a);
    batch.push_with(frame.len(), |b| b.copy_from_slice(&frame));
    assert_eq!(lan_peer.send(&mut batch), 1);
    // natpass's side: the frame arrives in a UMEM chunk, is rewritten there and queued on the
    // WAN socket by its address.
    let mut arrived_at = None;
    let end = Instant::now() + Duration::from_secs(2);
    while arrived_at.is_none() && Instant::now() < end {
        pair.receive(0, |f| {
            if f.len() < 60 || f[59] != 0x5a {
                return Disposition::Recycle;
            }
            arrived_at = wan_tx.umem_addr(f);
            f[..6].copy_from_slice(&[2, 0, 0, 0, 2, 254]);
            f[6..12].copy_from_slice(&wan.mac);
            assert!(wan_tx.push_received(f));
            Disposition::Sent
        });
        pair.wait(10).unwrap();
    }
    let arrived_at = arrived_at.expect("the frame reached the LAN socket");
    assert_eq!(wan_tx.pending(), &[(arrived_at, 60)], "sent from the address it arrived in: no copy");
    assert!(wan_tx.take_sent_received());
    assert_eq!(pair.transmit(1, &mut wan_tx), (1, 1));
    assert!(
        wait_for(&mut wan_peer, |f| f.len() >= 60
            && f[59] == 0x5a
            && f[..6] == [2, 0, 0, 0, 2, 254]
            && f[6..12] == wan.mac),
        "the frame left by the WAN interface"
    );
    // The chunk comes back through the WAN completion ring.
    let end = Instant::now() + Duration::from_secs(1);
    while pair.stats()[1].completed == 0 && Instant::now() < end {
        pair.service();
    }
    assert_eq!(pair.stats()[1].completed, 1, "the sent chunk came back through the WAN completion ring");
    drop(pair);
    assert_eq!(afxdp::attached_program("xl0").unwrap(), None, "detached on a clean stop");
    assert_eq!(afxdp::attached_program("xw0").unwrap(), None);
}

#[test]
fn a_program_left_by_a_crash_passes_traffic_and_is_replaced() {
    natpass_testkit::require!(prerequisites());
    if !in_namespace("npt-xdp-stale", "a_program_left_by_a_crash_passes_traffic_and_is_replaced") {
        return;
    }
    // A crash: the program stays attached, its map has no socket.
    let (stale, report) = XdpProgram::attach("xl0", ModeChoice::Auto).unwrap();
    assert_eq!(report.replaced, None);
    let stale_id = stale.id().unwrap();
    stale.leak();
    assert_eq!(afxdp::attached_program("xl0").unwrap(), Some((stale_id, afxdp::XDP_ATTACHED_DRV)));
    // It passes frames to the kernel (XDP_PASS when the queue has no socket): an AF_PACKET
    // socket on xl0 still sees them.
    let mut on_lan = packet_socket("xl0");
    let peer = packet_socket("xl1");
    let lan = afxdp::interface("xl0").unwrap();
    let mut batch = TxBatch::new();
    let frame = udp_frame(lan.mac, [2, 0, 0, 0, 1, 10], 0x77);
    batch.push_with(frame.len(), |b| b.copy_from_slice(&frame));
    assert_eq!(peer.send(&mut batch), 1);
    assert!(wait_for(&mut on_lan, |f| f.len() >= 60 && f[59] == 0x77), "the stale program black-holed xl0");
    // The next start replaces it.
    let pair = XdpPair::open(["xl0", "xw0"], XdpOptions::default()).unwrap();
    assert_eq!(pair.reports()[0].replaced, Some(stale_id));
    let ours = pair.programs()[0].id().unwrap();
    assert_ne!(ours, stale_id);
    assert_eq!(afxdp::attached_program("xl0").unwrap().map(|p| p.0), Some(ours));
    drop(pair);
    assert_eq!(afxdp::attached_program("xl0").unwrap(), None);
}

/// Pins the calling thread to `cpu` (`taskset`, on its thread id).
fn run_on_cpu(cpu: usize) {
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let tid = me.file_name().unwrap().to_string_lossy().into_owned();
    sh(&format!("taskset -pc {cpu} {tid} >/dev/null"));
}

#[test]
fn every_receive_queue_gets_a_socket_and_its_frames_reach_natpass() {
    natpass_testkit::require!(prerequisites());
    let name = "every_receive_queue_gets_a_socket_and_its_frames_reach_natpass";
    if !in_namespace("npt-xdp-mq", name) {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "needs two CPUs: a frame's queue here is its sender's CPU");
    sh(
        "ip link add xm0 numrxqueues 2 numtxqueues 2 type veth peer name xm1 && ip link set xm0 up && ip link set xm1 up",
    );
    assert_eq!(afxdp::rx_queues("xm0"), Some(2));
    assert_eq!(afxdp::rx_queues("xl0"), Some(1));
    let mut pair = XdpPair::open(["xm0", "xw0"], XdpOptions::default()).unwrap();
    assert_eq!(pair.queues(), [2, 1]);
    // A veth delivers a frame on the receive queue of the peer's transmit queue, which a
    // packet socket picks from the sending CPU: frames sent from CPU 0 and from CPU 1 land on
    // xm0's queues 0 and 1. Before natpass opened a socket per queue, queue 1's went to a
    // kernel that holds none of natpass's addresses.
    let peer = packet_socket("xm1");
    let mac = afxdp::interface("xm0").unwrap().mac;
    let mut seen = [0u32; 256];
    for tag in 0..40u8 {
        run_on_cpu(usize::from(tag % 2));
        let mut batch = TxBatch::new();
        let frame = udp_frame(mac, [2, 0, 0, 0, 1, 10], tag);
        batch.push_with(frame.len(), |b| b.copy_from_slice(&frame));
        assert_eq!(peer.send(&mut batch), 1);
    }
    let end = Instant::now() + Duration::from_secs(2);
    while seen[..40].contains(&0) && Instant::now() < end {
        pair.receive(0, |f| {
            if f.len() >= 60 && f[59] < 40 && f[23] == 17 {
                seen[usize::from(f[59])] += 1;
            }
            Disposition::Recycle
        });
        pair.wait(10).unwrap();
    }
    let missing: Vec<usize> = (0..40).filter(|&t| seen[t] == 0).collect();
    let by_queue = pair.received_by_queue(0);
    assert!(missing.is_empty(), "frames {missing:?} never reached natpass; by queue {by_queue:?}");
    assert!(by_queue.iter().all(|&n| n > 0), "both queues carried frames: {by_queue:?}");
    assert_eq!(pair.stats()[0].kernel_rx_dropped, 0);
    drop(pair);
    assert_eq!(afxdp::attached_program("xm0").unwrap(), None, "detached on a clean stop");
    // More queues than the XSKMAP has places for: refused, with the fix, nothing attached.
    sh(
        "ip link add xq0 numrxqueues 65 numtxqueues 65 type veth peer name xq1 && ip link set xq0 up && ip link set xq1 up",
    );
    let err = XdpPair::open(["xq0", "xw0"], XdpOptions::default()).err().expect("65 queues refused");
    let text = err.to_string();
    assert!(matches!(err, afxdp::Error::TooManyQueues { queues: 65, .. }), "{text}");
    assert!(text.contains("ethtool -L xq0 combined 64"), "the fix is named: {text}");
    assert_eq!(afxdp::attached_program("xq0").unwrap(), None, "nothing left attached");
}

// ---------------------------------------------------------------------------------------------
// The kernel fast path (natpass_io::fastpath): a flow's entry makes tc translate and forward
// its packets (addresses, ports, TTL, MACs, valid checksums), counted; natpass's socket, with
// the filter on, does not see them; whatever the map does not hold exactly, or a TCP SYN,
// still reaches natpass's socket and is not forwarded; and once the fast path is dropped (as
// when natpass exits) nothing is forwarded any more.

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for p in parts {
        for c in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

const LAN_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A frame with valid checksums: UDP (17), TCP (6, with `tcp_flags`) or ICMP echo request (1).
fn frame(dst_mac: [u8; 6], protocol: u8, sport: u16, dport: u16, tcp_flags: u8, tag: u8) -> Vec<u8> {
    let l4_len = if protocol == 6 { 20 } else { 8 };
    let payload = [tag; 18];
    let total = 20 + l4_len + payload.len();
    let mut f = vec![0u8; 14 + total];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 1, 10]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = protocol;
    ip[12..16].copy_from_slice(&LAN_HOST.octets());
    ip[16..20].copy_from_slice(&SERVER.octets());
    let c = checksum(&[&ip[..20]]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let (hdr, rest) = ip.split_at_mut(20);
    let l4 = &mut rest[..l4_len + payload.len()];
    l4[l4_len..].copy_from_slice(&payload);
    match protocol {
        1 => {
            l4[0] = 8;
            l4[4..6].copy_from_slice(&sport.to_be_bytes());
            let c = checksum(&[l4]);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {
            l4[0..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..4].copy_from_slice(&dport.to_be_bytes());
            let csum_at = if protocol == 6 {
                l4[12] = 5 << 4;
                l4[13] = tcp_flags;
                l4[14..16].copy_from_slice(&1000u16.to_be_bytes());
                16
            } else {
                l4[4..6].copy_from_slice(&((l4_len + payload.len()) as u16).to_be_bytes());
                6
            };
            let pseudo = [&hdr[12..20], &[0, protocol], &((l4_len + payload.len()) as u16).to_be_bytes()[..]].concat();
            let c = checksum(&[&pseudo, l4]);
            l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    f
}

/// Both checksums of a received IPv4 frame verify.
fn checksums_verify(f: &[u8]) -> bool {
    let ip = &f[14..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4 = &ip[20..total];
    let ip_ok = checksum(&[&ip[..20]]) == 0;
    let l4_ok = match ip[9] {
        1 => checksum(&[l4]) == 0,
        p => {
            let pseudo = [&ip[12..20], &[0, p], &(l4.len() as u16).to_be_bytes()[..]].concat();
            checksum(&[&pseudo, l4]) == 0
        }
    };
    ip_ok && l4_ok
}

/// The frames `sock` receives within `wait` whose last byte is `tag`.
fn tagged(sock: &mut PacketSocket, tag: u8, wait: Duration) -> Vec<Vec<u8>> {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    while Instant::now() < end {
        sock.receive(|f, _| {
            if f.len() >= 60 && f.last() == Some(&tag) && f[12..14] == [0x08, 0x00] {
                got.push(f.to_vec());
            }
        });
        if !got.is_empty() {
            break;
        }
        PacketSocket::wait(&[&*sock], 10).unwrap();
    }
    got
}

fn send_one(sock: &PacketSocket, f: &[u8]) {
    let mut batch = TxBatch::new();
    batch.push_with(f.len(), |b| b.copy_from_slice(f));
    assert_eq!(sock.send(&mut batch), 1);
}

#[test]
fn established_flows_cross_in_the_kernel_and_everything_else_reaches_natpass() {
    natpass_testkit::require!(prerequisites());
    let name = "established_flows_cross_in_the_kernel_and_everything_else_reaches_natpass";
    if !in_namespace("npt-fastpath", name) {
        return;
    }
    let lan = afxdp::interface("xl0").unwrap();
    let wan = afxdp::interface("xw0").unwrap();
    let fast = FastPath::open(&["xl0", "xw0"], 64).unwrap();
    // natpass's own socket on the LAN interface, with the filter.
    let mut natpass = packet_socket("xl0");
    fast.filter_socket(natpass.as_raw_fd()).unwrap();
    let lan_host = packet_socket("xl1");
    let mut wan_peer = packet_socket("xw1");
    // ARP for natpass's LAN address is answered by tc, from the interface it came in on;
    // natpass's socket still gets the request.
    let router = Ipv4Addr::new(192, 168, 1, 1);
    fast.answer_arp(lan.ifindex, router, lan.mac).unwrap();
    let asker = [2, 0, 0, 0, 1, 10];
    let mut req = vec![0xff; 6];
    req.extend_from_slice(&asker);
    req.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&asker);
    req.extend_from_slice(&LAN_HOST.octets());
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&router.octets());
    req.resize(60, 0);
    let mut lan_answers = packet_socket("xl1");
    send_one(&lan_host, &req);
    let (mut reply, end) = (None, Instant::now() + Duration::from_secs(2));
    while reply.is_none() && Instant::now() < end {
        lan_answers.receive(|f, _| {
            if f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] {
                reply = Some(f.to_vec());
            }
        });
        PacketSocket::wait(&[&lan_answers], 10).unwrap();
    }
    let reply = reply.expect("an ARP reply from tc");
    assert_eq!((&reply[..6], &reply[6..12]), (&asker[..], &lan.mac[..]), "Ethernet: to the asker, from us");
    assert_eq!(&reply[22..28], &lan.mac, "sender: our MAC");
    assert_eq!(&reply[28..32], &router.octets(), "sender: the address asked for");
    assert_eq!((&reply[32..38], &reply[38..42]), (&asker[..], &LAN_HOST.octets()[..]), "target: the asker");
    let mut natpass_saw = false;
    natpass.receive(|f, _| natpass_saw |= f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1]);
    assert!(natpass_saw, "natpass's socket got the request too");
    // Another address: not answered by tc.
    let mut other = req.clone();
    other[38..42].copy_from_slice(&[192, 168, 1, 99]);
    send_one(&lan_host, &other);
    std::thread::sleep(Duration::from_millis(200));
    let mut answered = false;
    lan_answers.receive(|f, _| answered |= f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]);
    assert!(!answered, "an ARP request for another address was answered");

    let next_hop = [2, 0, 0, 0, 2, 2];
    for (protocol, sport, dport) in [(17u8, 40000u16, 443u16), (6, 40001, 443), (1, 0x4242, 0x0800)] {
        let key = FlowKey { ifindex: lan.ifindex, src: LAN_HOST, dst: SERVER, protocol, sport, dport };
        let public_port = 1024 + sport % 1000;
        let act = FlowAction {
            src: PUBLIC,
            dst: SERVER,
            sport: public_port,
            dport,
            ifindex: wan.ifindex,
            dst_mac: next_hop,
            src_mac: wan.mac,
            mtu: 1500,
        };
        fast.insert(&key, &act).unwrap();
        let tag = 0x50 + protocol;
        send_one(&lan_host, &frame(lan.mac, protocol, sport, dport, 0x10, tag));
        let out = tagged(&mut wan_peer, tag, Duration::from_secs(2));
        assert_eq!(out.len(), 1, "protocol {protocol}: forwarded once");
        let f = &out[0];
        assert_eq!(&f[..6], &next_hop, "protocol {protocol}: next hop's MAC");
        assert_eq!(&f[6..12], &wan.mac, "protocol {protocol}: our MAC");
        assert_eq!(&f[26..30], &PUBLIC.octets(), "protocol {protocol}: public source");
        assert_eq!(&f[30..34], &SERVER.octets());
        assert_eq!(f[22], 63, "protocol {protocol}: TTL decremented");
        let port_at = if protocol == 1 { 38 } else { 34 };
        assert_eq!(u16::from_be_bytes([f[port_at], f[port_at + 1]]), public_port, "protocol {protocol}");
        assert!(checksums_verify(f), "protocol {protocol}: checksums");
        assert!(tagged(&mut natpass, tag, Duration::from_millis(100)).is_empty(), "natpass saw protocol {protocol}");
    }
    // A TCP SYN of the same flow, and UDP from another port: natpass's, not forwarded.
    for (protocol, sport, flags, tag) in [(6u8, 40001u16, 0x02u8, 0x70u8), (17, 40009, 0, 0x71)] {
        send_one(&lan_host, &frame(lan.mac, protocol, sport, 443, flags, tag));
        assert_eq!(tagged(&mut natpass, tag, Duration::from_secs(1)).len(), 1, "natpass gets {tag:#x}");
        assert!(tagged(&mut wan_peer, tag, Duration::from_millis(200)).is_empty(), "{tag:#x} forwarded");
    }
    // The counters of the UDP entry.
    let mut udp = None;
    fast.scan(|k, c| {
        if k.protocol == 17 && k.sport == 40000 {
            udp = Some(c);
        }
    })
    .unwrap();
    let udp = udp.expect("the UDP entry is listed");
    assert_eq!(udp.packets, 1);
    assert_eq!(udp.bytes, 14 + 20 + 8 + 18);
    assert!(udp.last_ns > 0 && udp.last_ns <= fastpath::monotonic_ns());
    // The same counters read by key (as natpass reads a sparse map); a key with no entry is
    // left out.
    let key = FlowKey { ifindex: lan.ifindex, src: LAN_HOST, dst: SERVER, protocol: 17, sport: 40000, dport: 443 };
    let absent = FlowKey { sport: 40999, ..key };
    let mut by_key = Vec::new();
    fast.counters_of(&[absent, key], |k, c| by_key.push((k, c.packets, c.bytes, c.last_ns))).unwrap();
    assert_eq!(by_key, vec![(key, udp.packets, udp.bytes, udp.last_ns)]);
    // Removed: the next packet goes to natpass.
    fast.remove(&key).unwrap();
    send_one(&lan_host, &frame(lan.mac, 17, 40000, 443, 0, 0x72));
    assert_eq!(tagged(&mut natpass, 0x72, Duration::from_secs(1)).len(), 1);
    assert!(tagged(&mut wan_peer, 0x72, Duration::from_millis(200)).is_empty());
    // A TCP super-frame of the established flow (GSO, as a local sender with TSO makes, its
    // checksum left partial): tc forwards it whole, and natpass's socket does not get it too.
    let gso_host =
        PacketSocket::open("xl1", RingOptions { version: RingVersion::V2, vnet_hdr: true, ..RingOptions::default() })
            .unwrap();
    let mut big = frame(lan.mac, 6, 40001, 443, 0x10, 0x74);
    let payload = 3000;
    let total = 20 + 20 + payload;
    big.resize(14 + total, 0x74);
    big[16..18].copy_from_slice(&(total as u16).to_be_bytes());
    big[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&[&big[14..34]]);
    big[24..26].copy_from_slice(&c.to_be_bytes());
    // CHECKSUM_PARTIAL: the field holds the pseudo-header's sum, not inverted.
    let pseudo = [&big[26..34], &[0, 6], &((20 + payload) as u16).to_be_bytes()[..]].concat();
    let partial = !checksum(&[&pseudo]);
    big[50..52].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: VnetHdr::NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut batch = TxBatch::with_vnet_hdr(true);
    batch.push_offloaded(hdr, big.len(), |b| b.copy_from_slice(&big));
    assert_eq!(gso_host.send(&mut batch), 1);
    let public_port = 1024 + 40001 % 1000;
    let (mut out_bytes, end) = (0usize, Instant::now() + Duration::from_secs(2));
    while out_bytes < payload && Instant::now() < end {
        wan_peer.receive(|f, _| {
            if f.len() > 54
                && f[26..30] == PUBLIC.octets()
                && f[23] == 6
                && u16::from_be_bytes([f[34], f[35]]) == public_port
            {
                out_bytes += usize::from(u16::from_be_bytes([f[16], f[17]])) - 40;
            }
        });
        PacketSocket::wait(&[&wan_peer], 10).unwrap();
    }
    assert_eq!(out_bytes, payload, "the super-frame's bytes left translated by the WAN");
    let mut seen = 0;
    natpass.receive(|f, _| {
        if f.len() > 36 && f[23] == 6 && u16::from_be_bytes([f[34], f[35]]) == 40001 {
            seen += 1;
        }
    });
    assert_eq!(seen, 0, "natpass's socket got the super-frame tc forwarded");
    // Gone with the fast path (natpass exiting, or killed): the TCP entry forwards no more.
    drop(fast);
    send_one(&lan_host, &frame(lan.mac, 6, 40001, 443, 0x10, 0x73));
    assert!(tagged(&mut wan_peer, 0x73, Duration::from_millis(300)).is_empty(), "forwarded after the fast path went");
    let tc = Command::new("sh").args(["-c", "ip link show fl0; tc filter show dev xl0 ingress"]).output().unwrap();
    println!("{}", String::from_utf8_lossy(&tc.stdout));
}

#[test]
fn the_flow_map_is_read_a_batch_at_a_time_every_entry_once() {
    natpass_testkit::require!(prerequisites());
    let name = "the_flow_map_is_read_a_batch_at_a_time_every_entry_once";
    if !in_namespace("npt-fastscan", name) {
        return;
    }
    let (lan, wan) = (afxdp::interface("xl0").unwrap(), afxdp::interface("xw0").unwrap());
    let fast = FastPath::open(&["xl0", "xw0"], 1024).unwrap();
    let n = 2 * fastpath::ScanCursor::BATCH + 188;
    let entries: Vec<(FlowKey, FlowAction)> = (0..n)
        .map(|i| {
            let sport = 10_000 + i as u16;
            let key = FlowKey { ifindex: lan.ifindex, src: LAN_HOST, dst: SERVER, protocol: 17, sport, dport: 53 };
            let act = FlowAction {
                src: PUBLIC,
                dst: SERVER,
                sport,
                dport: 53,
                ifindex: wan.ifindex,
                dst_mac: [2, 0, 0, 0, 2, 2],
                src_mac: wan.mac,
                mtu: 1500,
            };
            (key, act)
        })
        .collect();
    fast.insert_batch(&entries).unwrap();
    let mut cursor = fastpath::ScanCursor::default();
    let (mut ports, mut calls) = (Vec::new(), 0);
    loop {
        let mut this = 0;
        let done = fast.scan_some(&mut cursor, |k, c| {
            assert_eq!(c.packets, 0);
            ports.push(k.sport);
            this += 1;
        });
        calls += 1;
        assert!(this <= fastpath::ScanCursor::BATCH, "a batch of {this}");
        if done.unwrap() {
            break;
        }
        assert!(calls < 100, "the read does not end");
    }
    assert!(calls >= 3, "{n} entries in {calls} batches");
    ports.sort_unstable();
    let want: Vec<u16> = (0..n).map(|i| 10_000 + i as u16).collect();
    assert_eq!(ports, want, "every entry once");
    // A new cursor reads from the beginning again.
    let mut again = 0;
    fast.scan(|_, _| again += 1).unwrap();
    assert_eq!(again, n);
}
