//! `natpass run` on AF_XDP, killed with SIGKILL and started again: the XDP program the dead
//! process left on its interfaces does not black-hole them, the next start replaces it and
//! forwards, and a clean stop (SIGTERM) takes it off and turns GRO back on where natpass had
//! turned it off. In network namespaces this test creates and removes (a client, the
//! router, a server). Needs root, `ip`, `ping` and `ethtool`;
//! without them it prints SKIPPED and why, or fails with `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn prerequisites() -> Result<(), String> {
    let uid = Command::new("id").arg("-u").output().map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("needs root (network namespaces, bpf(2), AF_XDP)".into());
    }
    for tool in ["ip", "ping", "ethtool"] {
        let ok =
            Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("needs `{tool}`"));
        }
    }
    Ok(())
}

/// The namespaces of one run, removed on drop.
struct Net {
    lan: String,
    rtr: String,
    wan: String,
}

impl Net {
    fn new() -> Self {
        let id = std::process::id();
        let n = Self { lan: format!("npxk{id}lan"), rtr: format!("npxk{id}rtr"), wan: format!("npxk{id}wan") };
        let (l, r, w) = (&n.lan, &n.rtr, &n.wan);
        for ns in [l, r, w] {
            sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        sh(&format!("ip link add c0 netns {l} type veth peer name lan0 netns {r}"));
        sh(&format!("ip link add wan0 netns {r} type veth peer name s0 netns {w}"));
        sh(&format!("ip -n {l} addr add 192.168.77.10/24 dev c0 && ip -n {l} link set c0 up"));
        sh(&format!("ip -n {l} route add default via 192.168.77.1"));
        sh(&format!("ip -n {r} link set lan0 up && ip -n {r} link set wan0 up"));
        sh(&format!("ip -n {w} addr add 203.0.113.200/24 dev s0 && ip -n {w} link set s0 up"));
        n
    }

    fn ping(&self) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.lan, "ping", "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.200"])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// The XDP program id on the router's `iface`, if one is attached.
    fn xdp_prog(&self, iface: &str) -> Option<u32> {
        let text = sh(&format!("ip -n {} -d link show {iface}", self.rtr));
        let at = text.find("prog/xdp id ")?;
        text[at + 12..].split_whitespace().next()?.parse().ok()
    }

    /// Starts natpass in the router namespace and waits until it says it runs.
    fn start(&self, config: &std::path::Path) -> (Child, String) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.rtr, env!("CARGO_BIN_EXE_natpass"), "run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        let end = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&seen).contains("running on") && Instant::now() < end {
            match err.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => break,
            }
        }
        let log = String::from_utf8_lossy(&seen).into_owned();
        assert!(log.contains("running on"), "natpass did not start:\n{log}");
        // Keep draining its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        (child, log)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.lan, &self.rtr, &self.wan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn natpass_killed_with_sigkill_starts_again_and_replaces_its_stale_xdp_program() {
    natpass_testkit::require!(prerequisites());
    let net = Net::new();
    let dir = std::env::temp_dir().join(format!("npxk{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("natpass.toml");
    std::fs::write(
        &config,
        "[interfaces]\nbackend = \"af_xdp\"\n\n[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.77.1/24\"\n\n\
         [interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n\n[admin]\nlisten = \"off\"\n",
    )
    .unwrap();

    let (mut first, log) = net.start(&config);
    assert!(log.contains("AF_XDP, XDP program in native mode"), "{log}");
    assert!(net.ping(), "no ping through natpass on AF_XDP:\n{log}");
    let ours = net.xdp_prog("lan0").expect("natpass's XDP program on lan0");

    // SIGKILL: no clean-up runs, the program stays with no socket behind it.
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(net.xdp_prog("lan0"), Some(ours), "the dead process's program stays attached");
    // It passes frames to the kernel instead of dropping them: the kernel (no address there)
    // counts them as received on lan0.
    let rx = |net: &Net| -> u64 {
        sh(&format!("ip netns exec {} cat /sys/class/net/lan0/statistics/rx_packets", net.rtr)).trim().parse().unwrap()
    };
    let before = rx(&net);
    assert!(!net.ping(), "nothing forwards while natpass is down");
    assert!(rx(&net) > before, "frames still reach the kernel on lan0 (passed, not black-holed)");

    // GRO on, as a driver may have it: natpass turns it off for AF_XDP, and back on at a
    // clean stop.
    let gro =
        |net: &Net| sh(&format!("ip netns exec {} ethtool -k lan0", net.rtr)).contains("generic-receive-offload: on");
    sh(&format!("ip netns exec {} ethtool -K lan0 gro on", net.rtr));
    assert!(gro(&net));
    let (mut second, log) = net.start(&config);
    assert!(!gro(&net), "GRO left on for AF_XDP:\n{log}");
    assert!(log.contains(&format!("replaced XDP program id {ours}")), "the stale program was not reported:\n{log}");
    let new = net.xdp_prog("lan0").expect("the new program");
    assert_ne!(new, ours);
    assert!(net.ping(), "no ping after the restart:\n{log}");

    // A clean stop takes the program off both interfaces.
    sh(&format!("kill -TERM {}", second.id()));
    let end = Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    if second.try_wait().unwrap().is_none() {
        second.kill().unwrap();
        panic!("natpass did not stop on SIGTERM");
    }
    assert_eq!(net.xdp_prog("lan0"), None, "detached on a clean stop");
    assert_eq!(net.xdp_prog("wan0"), None);
    assert!(gro(&net), "GRO not turned back on at a clean stop");
    let _ = std::fs::remove_dir_all(&dir);
}
