//! The kernel fast path under a running `natpass run`: a ping's first request goes through
//! natpass, which asks the server's MAC address by ARP; the flow's WAN direction is written
//! into the fast path in the round the ARP reply arrives, so every later request and every
//! reply is forwarded by the kernel, and natpass's exit summary counts them.
//!
//! On the default backend (`auto`, which takes AF_PACKET on veths) and on AF_XDP. In network namespaces this test creates and removes (a client,
//! the router, a server). Needs root, `ip`, `ping` and `python3`; without them it prints
//! SKIPPED and why, or fails with `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Net, config, prerequisites, start, stop};

/// The default backend, `auto`, takes AF_PACKET on veths, and says why.
#[test]
fn a_pings_later_packets_go_by_the_fast_path_on_the_default_backend_af_packet_on_veth() {
    natpass_testkit::require!(prerequisites());
    later_packets_by_the_fast_path("auto", "af_packet", "fp");
}

#[test]
fn a_pings_later_packets_go_by_the_fast_path_on_af_xdp() {
    natpass_testkit::require!(prerequisites());
    later_packets_by_the_fast_path("af_xdp", "af_xdp", "fx");
}

/// The number just before `after` in `line`.
fn number_before(line: &str, after: &str) -> u64 {
    let at = line.find(after).unwrap_or_else(|| panic!("no `{after}` in {line}"));
    line[..at].trim_end().rsplit(' ').next().unwrap().parse().unwrap()
}

fn later_packets_by_the_fast_path(configured: &str, backend: &str, tag: &str) {
    let net = Net::new(tag);
    let dir = std::env::temp_dir().join(format!("np{tag}{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir, configured);
    let (router, log) = start(&net, &[], &config);
    assert!(log.text().contains(&format!("({backend})")), "not on {backend}:\n{}", log.text());
    if configured == "auto" {
        assert!(log.text().contains("backend auto: AF_PACKET, on veth"), "no reason given:\n{}", log.text());
    }
    assert!(log.text().contains("fast path on"), "no fast path:\n{}", log.text());
    // Five requests 0.2 s apart: natpass has never seen the server, so the first waits for
    // its ARP reply.
    let out = Command::new("ip")
        .args(["netns", "exec", &net.lan, "ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "203.0.113.200"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("5 received"), "pings lost through natpass:\n{said}\n{}", log.text());
    // The counters are read every second: wait for a reading after the last reply.
    std::thread::sleep(Duration::from_millis(2500));
    stop(router);
    let text = log.text();
    let line =
        text.lines().find(|l| l.contains("fast path:") && l.contains("packets forwarded")).unwrap_or_else(|| {
            panic!("no fast path summary:\n{text}");
        });
    assert_eq!(number_before(line, "flows now"), 1, "one flow: {line}");
    // Requests 2 to 5 and all five replies: 9. Had the WAN direction waited for the flow's
    // next packet through natpass, request 2 would have been that packet (8).
    assert_eq!(number_before(line, "packets forwarded"), 9, "{line}\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
