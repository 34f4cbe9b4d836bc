//! SIGHUP reloads the config file of a running `natpass run`: an edit that turns PPTP
//! passthrough off is applied live (a TCP connection to port 1723 is refused, other traffic
//! passes), and a bad edit is refused with its line while the old settings keep working.
//! natpass logs JSON here (`--log-format json`): every line of its log must parse. It talks to
//! a service manager as under systemd (`NOTIFY_SOCKET`): READY, the watchdog, RELOADING and
//! READY around each reload (with the refusal in STATUS), STOPPING.
//!
//! In network namespaces this test creates and removes (a client, the router, a server).
//! Needs root, `ip` and `python3`; without them it prints SKIPPED and why, or fails with
//! `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Net, prerequisites, sh, start_with_env, stop};

const BASE: &str = "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.78.1/24\"\n\n\
                    [interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n\n";

fn config(dir: &Path, pptp: bool, extra: &str, hash: &str) -> String {
    format!(
        "{BASE}[passthrough]\npptp = {pptp}\n\n[timeouts]\nudp = 300\n{extra}\n\n[admin]\nlisten = \"127.0.0.1:8080\"\n\
         token_file = \"{}/api.token\"\n\n[[admin.users]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n",
        dir.display()
    )
}

fn hup(child: &Child) {
    sh(&format!("kill -HUP {}", child.id()));
}

#[test]
fn sighup_applies_a_passthrough_switch_live_and_a_bad_file_changes_nothing() {
    natpass_testkit::require!(prerequisites());
    let net = Net::new("rl");
    let dir = std::env::temp_dir().join(format!("nprl{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("natpass.toml");
    let hash = natpass_control::auth::hash_password("correct horse battery staple").unwrap();
    std::fs::write(&path, config(&dir, true, "", &hash)).unwrap();

    // The service manager's socket (sd_notify): a Unix datagram socket, as systemd's, read
    // as messages come (its queue holds 10).
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let messages = Arc::new(Mutex::new(Vec::<String>::new()));
    let got = Arc::clone(&messages);
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = notify.recv(&mut buf) {
            got.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    // The `n`th message that is not a watchdog ping, waited for up to 10 s.
    let state = |n: usize| -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let m: Vec<String> = messages.lock().unwrap().iter().filter(|m| *m != "WATCHDOG=1").cloned().collect();
            if let Some(s) = m.get(n) {
                return s.clone();
            }
            assert!(Instant::now() < end, "no notification {n} in 10 s: {m:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let env = [("NOTIFY_SOCKET", notify_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let (child, log) = start_with_env(&net, &["--log-format", "json"], &path, &env);
    let ready = state(0);
    assert!(ready.starts_with("READY=1\nSTATUS=forwarding between lan0 (LAN) and wan0 (WAN)"), "{ready}");

    // PPTP on: the control connection reaches the server.
    assert!(net.eventually_connects(1723), "TCP 1723 did not pass with PPTP on:\n{}", log.text());

    // PPTP off in the file, and a key that needs a restart; SIGHUP applies the first.
    std::fs::write(&path, config(&dir, false, "", &hash).replace("[admin]\n", "[admin]\nsession_minutes = 10\n"))
        .unwrap();
    hup(&child);
    assert!(state(1).starts_with("RELOADING=1\nMONOTONIC_USEC="), "systemd is told of the reload");
    assert!(state(2).starts_with("READY=1"), "and of its end");
    assert!(log.wait_for("passthrough.pptp: true → false"), "no reload line:\n{}", log.text());
    assert!(log.wait_for("needs a restart to take effect: admin.session_minutes: 30 → 10"), "{}", log.text());
    assert!(!net.connects(1723), "TCP 1723 passed with PPTP off");
    assert!(net.connects(8000), "other traffic stopped after the reload");
    assert!(log.wait_for("Pptp refused"), "no refusal in the log:\n{}", log.text());
    let s = net.status(&dir);
    assert_eq!(s["passthrough"]["pptp"], false, "{s}");
    let drops = s["drops"].as_array().unwrap();
    assert!(drops.iter().any(|d| d[0] == "pptp_disabled" && d[1].as_u64() > Some(0)), "{s}");

    // A bad file (a timer below its RFC floor, PPTP back on): refused whole, with its line.
    std::fs::write(&path, config(&dir, true, "", &hash).replace("udp = 300", "udp = 30")).unwrap();
    hup(&child);
    assert!(state(3).starts_with("RELOADING=1"));
    let status = state(4);
    assert!(status.starts_with("READY=1") && status.contains("last reload refused: "), "{status}");
    assert!(log.wait_for("reload refused"), "no refusal of the bad file:\n{}", log.text());
    let text = log.text();
    assert!(text.contains("line ") && text.contains("keeps running on the settings it had"), "{text}");
    assert!(!net.connects(1723), "the refused file turned PPTP back on");
    assert!(net.connects(8000), "the router stopped forwarding after a refused reload");
    let s = net.status(&dir);
    assert_eq!((s["passthrough"]["pptp"].as_bool(), s["timeouts"]["udp"].as_u64()), (Some(false), Some(300)), "{s}");

    // Fixed: PPTP passes again.
    std::fs::write(&path, config(&dir, true, "", &hash)).unwrap();
    hup(&child);
    assert!(log.wait_for("passthrough.pptp: false → true"), "{}", log.text());
    assert!(net.eventually_connects(1723), "TCP 1723 did not pass once PPTP was back on");

    assert!(state(6).starts_with("READY=1"), "{}", state(6));
    // The watchdog was fed (every 200 ms here) all along, the data plane answering.
    let pings = messages.lock().unwrap().iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= 10, "{pings} watchdog pings");
    stop(child);
    assert_eq!(state(7), "STOPPING=1\nSTATUS=stopping");
    let text = log.text();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}\n{text}"));
        assert!(v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(text.contains("\"target\":\"natpass::reload\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
