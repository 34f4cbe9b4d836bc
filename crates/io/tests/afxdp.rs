//! AF_XDP on veths in a network namespace of its own: the XDP program attached (replacing one
//! a crash left behind) and detached, and a frame that crosses from one interface to the
//! other from the UMEM chunk it arrived in.
//!
//! Needs root (`ip netns`, `bpf(2)`); otherwise the tests print SKIPPED, or fail with
//! `NATPASS_TEST_REQUIRE=all`. Each test re-runs itself inside its namespace
//! (`ip netns exec`), and removes the namespace when done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use natpass_io::afpacket::{PacketSocket, RingOptions, RingVersion, TxBatch};
use natpass_io::afxdp::{self, Disposition, ModeChoice, XdpOptions, XdpPair, XdpProgram};

const INSIDE: &str = "NATPASS_AFXDP_TEST_INSIDE";

fn prerequisites() -> Result<(), String> {
    let out = Command::new("id").arg("-u").output().map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Err("needs root (network namespaces, bpf(2), AF_XDP)".into());
    }
    Command::new("ip").arg("-V").output().map_err(|e| format!("needs iproute2 (`ip`): {e}"))?;
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
