//! SIGHUP reloads the config file of a running `natpass run`: an edit that turns PPTP
//! passthrough off is applied live (a TCP connection to port 1723 is refused, other traffic
//! passes), and a bad edit is refused with its line while the old settings keep working.
//! natpass logs JSON here (`--log-format json`): every line of its log must parse.
//!
//! In network namespaces this test creates and removes (a client, the router, a server).
//! Needs root, `ip` and `python3`; without them it prints SKIPPED and why, or fails with
//! `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Child;

use common::{Net, prerequisites, sh, start, stop};

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

    let (child, log) = start(&net, &["--log-format", "json"], &path);

    // PPTP on: the control connection reaches the server.
    assert!(net.eventually_connects(1723), "TCP 1723 did not pass with PPTP on:\n{}", log.text());

    // PPTP off in the file, and a key that needs a restart; SIGHUP applies the first.
    std::fs::write(&path, config(&dir, false, "", &hash).replace("[admin]\n", "[admin]\nsession_minutes = 10\n"))
        .unwrap();
    hup(&child);
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

    stop(child);
    let text = log.text();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}\n{text}"));
        assert!(v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(text.contains("\"target\":\"natpass::reload\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
