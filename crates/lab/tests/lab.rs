//! The VPN lab as integration tests: real strongSwan, xl2tpd, pptpd/pptp, a raw ESP peer,
//! curl, traceroute, iperf3 and a STUN peer, with two LAN clients to one server, through
//! `natpass run` on AF_PACKET sockets and on AF_XDP sockets in network namespaces, driven by
//! the `natpass-lab` binary.
//!
//! Needs root and the packages of `scripts/lab-setup.sh` (CI installs them); otherwise each
//! test prints SKIPPED and why, or fails with `NATPASS_TEST_REQUIRE=all`. The natpass binary
//! is the one cargo built beside `natpass-lab` (`cargo test --workspace` builds both); a test
//! fails, naming the fix, when it is not there. Namespaces are named after the test and
//! always removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One lab at a time: two cores do not carry two labs' tunnels and timers well.
static ONE_LAB: Mutex<()> = Mutex::new(());

/// The natpass binary beside this build's `natpass-lab` (`target/<profile>/natpass`).
fn natpass_bin() -> PathBuf {
    natpass_lab::natpass_beside(Path::new(env!("CARGO_BIN_EXE_natpass-lab")))
}

/// Fails the test, naming the fix, when cargo has not built natpass beside `natpass-lab`.
fn assert_natpass_built() {
    let bin = natpass_bin();
    assert!(bin.is_file(), "{}", natpass_lab::Unready::NoNatpass(bin));
}

fn lab(prefix: &str, args: &[&str]) -> (bool, Vec<serde_json::Value>, String) {
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(format!("/tmp/{prefix}"));
    let json = dir.join("results.json");
    let _ = std::fs::remove_file(&json);
    let out = Command::new(env!("CARGO_BIN_EXE_natpass-lab"))
        .args(["--prefix", prefix, "--dir", dir.to_str().unwrap(), "--json", json.to_str().unwrap()])
        .arg("--natpass")
        .arg(natpass_bin())
        .args(args)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let left = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")))
        .count();
    assert_eq!(left, 0, "the lab left namespaces behind:\n{text}");
    let results: Vec<serde_json::Value> =
        std::fs::read(&json).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    (out.status.success(), results, text)
}

fn outcome<'a>(results: &'a [serde_json::Value], check: &str) -> &'a serde_json::Value {
    results
        .iter()
        .find(|r| r["check"].as_str().is_some_and(|c| c.starts_with(check)))
        .unwrap_or_else(|| panic!("no outcome for {check:?} in {results:?}"))
}

fn clients_ok(o: &serde_json::Value) -> usize {
    o["clients"].as_array().map_or(0, |cs| cs.iter().filter(|c| c["connected"] == true && c["data"] == true).count())
}

#[test]
fn every_vpn_protocol_passes_natpass_with_two_clients() {
    every_vpn_protocol_passes("npt-vpn", "af_packet");
}

#[test]
fn every_vpn_protocol_passes_natpass_on_af_xdp() {
    every_vpn_protocol_passes("npt-xdp", "af_xdp");
}

fn every_vpn_protocol_passes(prefix: &str, backend: &str) {
    natpass_testkit::require!(natpass_lab::preflight());
    assert_natpass_built();
    let (ok, results, text) = lab(
        prefix,
        &[
            "--nat",
            "natpass",
            "--clients",
            "2",
            "--iperf-secs",
            "1",
            "--backend",
            backend,
            "--check",
            "nat,stun,ikev2,ikev1,esp,l2tp,pptp",
        ],
    );
    println!("{text}");
    let log = std::fs::read_to_string(format!("/tmp/{prefix}/natpass/natpass@rtr.log")).unwrap_or_default();
    assert!(log.contains(&format!("({backend})")), "natpass did not run on {backend}:\n{log}");
    for check in ["plain NAT", "STUN", "IPsec IKEv2", "IPsec IKEv1", "raw ESP", "L2TP", "PPTP (pptp"] {
        let o = outcome(&results, check);
        assert_eq!(clients_ok(o), 2, "{check}: both clients must connect and carry data: {o}");
        // natpass's diagnosis was asked after every check: a working VPN gives no finding.
        assert!(o["findings"].is_array(), "{check}: the lab did not record natpass's findings: {o}");
        assert_eq!(o["findings"].as_array().map(Vec::len), Some(0), "{check}: a false alarm: {o}");
    }
    let stun = outcome(&results, "STUN");
    assert!(stun["clients"][0]["detail"].as_str().unwrap().contains("endpoint-independent mapping"), "{stun}");
    assert!(ok, "natpass-lab exited with failure:\n{text}");
}

#[test]
fn linux_nat_loses_the_second_raw_esp_client_and_pptp_without_helper() {
    natpass_testkit::require!(natpass_lab::preflight());
    // The same checks through nftables masquerade fail where natpass passes: this shows the
    // lab's checks can fail, and what natpass is compared against.
    let (_, results, text) = lab("npt-linux", &["--nat", "linux", "--clients", "2", "--check", "esp,pptp-no-helper"]);
    println!("{text}");
    let esp = outcome(&results, "raw ESP");
    assert!(clients_ok(esp) < 2, "Linux NAT carried raw ESP for both clients?\n{esp}");
    let pptp = outcome(&results, "PPTP, no ct helper");
    assert_eq!(clients_ok(pptp), 0, "PPTP without the helper carried data through Linux NAT?\n{pptp}");
}

/// Every failure the lab scripts upstream of natpass (or with a switch) is diagnosed as the
/// right kind, with its fix, on the API, the CLI and the VPN Tunnels page, for every client;
/// and the remedy for L2TP/IPsec (a two-address pool) lets both clients in with nothing found.
#[test]
fn every_scripted_failure_is_diagnosed_on_the_api_the_cli_and_the_page() {
    natpass_testkit::require!(natpass_lab::preflight());
    assert_natpass_built();
    let (ok, results, text) = lab(
        "npt-why",
        &[
            "--nat",
            "natpass",
            "--clients",
            "2",
            "--iperf-secs",
            "0",
            "--check",
            "why-ike500,why-fragments,why-gre,why-esp,why-switch-off,why-pptp-call-ended,why-nat-t-lost,why-path-mtu,why-l2tp-one-address,why-l2tp-pool",
        ],
    );
    println!("{text}");
    let expected: [(&str, &[&str]); 9] = [
        ("why: UDP 500", &["ike_never_answered"]),
        ("why: IP fragments", &["ike_large_message_lost"]),
        ("why: GRE", &["gre_one_way"]),
        ("why: ESP", &["esp_one_way", "esp_server_busy"]),
        ("why: PPTP passthrough off", &["passthrough_disabled"]),
        ("why: PPTP server ends the calls", &["pptp_call_failed"]),
        ("why: NAT-T keepalives off", &["nat_t_mapping_lost"]),
        ("why: 1280-byte link upstream", &["path_mtu"]),
        ("why: L2TP/IPsec-style, 1 address", &["l2tp_one_client_per_address"]),
    ];
    for (check, kinds) in expected {
        let o = outcome(&results, check);
        assert_eq!(o["diagnosis"]["ok"], true, "{check}: not diagnosed as expected: {o}");
        let findings = o["findings"].as_array().unwrap();
        let found: Vec<&serde_json::Value> = findings.iter().filter(|f| f["status"] == "found").collect();
        let with_kind = ["192.168.1.10", "192.168.1.11"]
            .into_iter()
            .filter(|c| found.iter().any(|f| f["client"] == *c && kinds.contains(&f["kind"].as_str().unwrap())))
            .count();
        // One address: the server takes one client, and natpass explains the other.
        let want = if check.contains("1 address") { 1 } else { 2 };
        assert_eq!(with_kind, want, "{check}: clients with {kinds:?}: {o}");
        for f in &found {
            assert!(!f["fix"].as_str().unwrap().is_empty(), "{check}: a finding without a fix: {f}");
            assert_eq!(f["cli"], true, "{check}: `natpass tunnels --why` did not show it: {f}");
            assert_eq!(f["page"], true, "{check}: the VPN Tunnels page did not show it: {f}");
        }
    }
    let one = outcome(&results, "why: L2TP/IPsec-style, 1 address");
    assert_eq!(clients_ok(one), 1, "one client must get through to an L2TP/IPsec-style server: {one}");
    let pool = outcome(&results, "why: L2TP/IPsec-style, 2-addr pool");
    assert_eq!(clients_ok(pool), 2, "with two public addresses both clients must connect: {pool}");
    assert_eq!(pool["findings"].as_array().map(Vec::len), Some(0), "the remedy must leave nothing found: {pool}");
    assert!(pool["note"].as_str().unwrap().contains("203.0.113.2"), "{pool}");
    assert!(ok, "natpass-lab exited with failure:\n{text}");
}

#[test]
fn ipv6_is_routed_and_guarded_by_natpass_and_lets_ipsec_through_with_two_clients() {
    natpass_testkit::require!(natpass_lab::preflight());
    assert_natpass_built();
    let (ok, results, text) = lab("npt-v6", &["--nat", "natpass", "--clients", "2", "--check", "ipv6,ipv6-ipsec"]);
    println!("{text}");
    let o = outcome(&results, "IPv6");
    assert_eq!(clients_ok(o), 2, "both clients: SLAAC, ping, curl, traceroute, inbound refused: {o}");
    for c in o["clients"].as_array().unwrap() {
        let d = c["detail"].as_str().unwrap();
        assert!(d.contains("traceroute hops 2001:db8:1::1 > 2001:db8:ff::10"), "hop 1 is the router: {d}");
        assert!(d.contains("inbound from WAN refused"), "{d}");
    }
    let note = o["note"].as_str().unwrap();
    let counted: u64 = note.rsplit(": ").next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(counted >= 2, "natpass counted the unsolicited inbound connections: {note}");
    let ipsec = outcome(&results, "IPv6: IKEv2");
    assert_eq!(clients_ok(ipsec), 2, "IKEv2 and raw ESP over IPv6, both clients at once: {ipsec}");
    assert!(ok, "natpass-lab exited with failure:\n{text}");
}
