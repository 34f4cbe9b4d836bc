//! `natpass capture` against a running `natpass run`: TCP connections from a LAN client to a
//! server are captured on both sides into a pcapng file whose interfaces are the router's and
//! whose frames carry their direction, so the translation shows: the client's SYN arrives on
//! the LAN from 192.168.78.10 and leaves on the WAN from the public address.
//!
//! On AF_PACKET and on AF_XDP (where what leaves is read from the UMEM). In network namespaces this test creates and removes (a client, the router, a server).
//! Needs root, `ip` and `python3`; without them it prints SKIPPED and why, or fails with
//! `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Net, prerequisites, start, stop};

/// One frame of the file: interface, direction flags, bytes.
struct Frame {
    iface: u32,
    flags: u32,
    data: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The interface names and frames of a pcapng file (little-endian, as natpass writes it).
fn read_pcapng(b: &[u8]) -> (Vec<String>, Vec<Frame>) {
    let (mut at, mut names, mut frames) = (0, Vec::new(), Vec::new());
    while at + 12 <= b.len() {
        let (kind, len) = (u32_at(b, at), u32_at(b, at + 4) as usize);
        assert!(len >= 12 && at + len <= b.len(), "a cut block at {at}");
        assert_eq!(u32_at(b, at + len - 4) as usize, len, "the block's closing length");
        let body = &b[at + 8..at + len - 4];
        match kind {
            0x0A0D_0D0A => assert_eq!(u32_at(body, 0), 0x1A2B_3C4D),
            1 => {
                // Options after linktype, reserved, snaplen: if_name is code 2.
                let mut o = 8;
                while o + 4 <= body.len() {
                    let (code, l) =
                        (u16::from_le_bytes([body[o], body[o + 1]]), u16::from_le_bytes([body[o + 2], body[o + 3]]));
                    if code == 2 {
                        names.push(String::from_utf8(body[o + 4..o + 4 + l as usize].to_vec()).unwrap());
                    }
                    o += 4 + (l as usize).div_ceil(4) * 4;
                }
            }
            6 => {
                let caplen = u32_at(body, 12) as usize;
                let data = body[20..20 + caplen].to_vec();
                let opts = 20 + caplen.div_ceil(4) * 4;
                assert_eq!(u16::from_le_bytes([body[opts], body[opts + 1]]), 2, "epb_flags first");
                frames.push(Frame { iface: u32_at(body, 0), flags: u32_at(body, opts + 4), data });
            }
            other => panic!("unexpected block type {other:#x}"),
        }
        at += len;
    }
    (names, frames)
}

fn src(f: &Frame) -> Ipv4Addr {
    Ipv4Addr::new(f.data[26], f.data[27], f.data[28], f.data[29])
}

#[test]
fn capture_shows_both_sides_of_the_translation_on_af_packet() {
    natpass_testkit::require!(prerequisites());
    capture_both_sides("af_packet", "cp");
}

#[test]
fn capture_shows_both_sides_of_the_translation_on_af_xdp() {
    natpass_testkit::require!(prerequisites());
    capture_both_sides("af_xdp", "cx");
}

fn capture_both_sides(backend: &str, tag: &str) {
    let net = Net::new(tag);
    let dir = std::env::temp_dir().join(format!("np{tag}{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("natpass.toml");
    let hash = natpass_control::auth::hash_password("correct horse battery staple").unwrap();
    std::fs::write(
        &config,
        format!(
            "[interfaces]\nbackend = \"{backend}\"\n\n[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.78.1/24\"\n\n[interfaces.wan]\nname = \"wan0\"\n\
             address = \"203.0.113.1/24\"\n\n[admin]\nlisten = \"127.0.0.1:8080\"\ntoken_file = \"{}/api.token\"\n\n\
             [[admin.users]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (router, log) = start(&net, &[], &config);
    assert!(log.text().contains(&format!("({backend})")), "not on {backend}:\n{}", log.text());
    assert!(net.eventually_connects(8000), "no TCP through natpass:\n{}", log.text());

    let file = dir.join("both.pcapng");
    let mut capture = Command::new("ip")
        .args(["netns", "exec", &net.rtr, env!("CARGO_BIN_EXE_natpass"), "capture", "--side", "both"])
        .args(["--proto", "tcp", "--host", "203.0.113.200", "--count", "12", "--duration", "20", "-w"])
        .arg(&file)
        .args(["--api", "http://127.0.0.1:8080", "--token-file"])
        .arg(dir.join("api.token"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Connections until the capture has its 12 frames (it may start after the first).
    let end = Instant::now() + Duration::from_secs(20);
    while capture.try_wait().unwrap().is_none() && Instant::now() < end {
        net.connects(8000);
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = capture.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "natpass capture failed: {said}\n{}", log.text());
    assert!(said.contains("12 packets written"), "{said}");
    assert!(log.wait_for("capture 1 stopped"), "{}", log.text());
    stop(router);

    let (names, frames) = read_pcapng(&std::fs::read(&file).unwrap());
    assert_eq!(names, ["lan0", "wan0"]);
    assert_eq!(frames.len(), 12);
    let (inbound, outbound) = (1, 2);
    let lan_in =
        frames.iter().find(|f| f.iface == 0 && f.flags == inbound).expect("a frame natpass received on the LAN");
    let wan_out = frames.iter().find(|f| f.iface == 1 && f.flags == outbound).expect("a frame natpass sent on the WAN");
    assert_eq!(src(lan_in), Ipv4Addr::new(192, 168, 78, 10), "the client's own address on the LAN");
    assert_eq!(src(wan_out), Ipv4Addr::new(203, 0, 113, 1), "the public address on the WAN");
    assert!(frames.iter().any(|f| f.iface == 1 && f.flags == inbound), "the server's answers arriving");
    assert!(frames.iter().any(|f| f.iface == 0 && f.flags == outbound), "the answers sent to the client");
    assert!(frames.iter().all(|f| f.data[23] == 6), "only TCP");
    // tcpdump reads it too, where it is installed.
    if let Ok(out) = Command::new("tcpdump").args(["-nn", "-r"]).arg(&file).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.lines().count() == 12, "tcpdump -r: {text}");
        assert!(text.contains("203.0.113.1.") && text.contains("192.168.78.10."), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
