//! The web admin in a real browser, against natpass routing real PPTP clients in the lab:
//! log in, open VPN > VPN Passthrough, disable PPTP, Save, and see a PPTP call through natpass
//! refused; enable it, Save, and see the call pass (Debian's chromium driven by playwright-core,
//! `e2e/admin.mjs`).
//!
//! Needs root, the lab's packages (`scripts/lab-setup.sh`) and the browser
//! (`scripts/browser-setup.sh`); otherwise it prints SKIPPED and why, or fails with
//! `NATPASS_TEST_REQUIRE=all`. The natpass binary is the one cargo built beside `natpass-lab`
//! (`cargo test --workspace` builds both). With NATPASS_SCREENSHOTS=DIR it also saves a
//! screenshot of every page there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use natpass_lab::{Check, Lab, Nat, Options};

const PASSWORD: &str = "natpass-browser-test";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e")
}

/// Why this test cannot run here, if it cannot: the lab's prerequisites, then the browser's.
fn prerequisites() -> Result<(), String> {
    natpass_lab::preflight().map_err(|e| e.to_string())?;
    let playwright = e2e_dir().join("node_modules/playwright-core");
    for needed in [Path::new("/usr/bin/chromium"), &playwright] {
        if !needed.exists() {
            return Err(format!("the browser test needs {} (scripts/browser-setup.sh)", needed.display()));
        }
    }
    Ok(())
}

fn browser(lab: &Lab<'_>, action: &str, shots: Option<&Path>) {
    let mut args = vec![
        "netns".to_string(),
        "exec".into(),
        lab.ns("rtr"),
        "node".into(),
        e2e_dir().join("admin.mjs").display().to_string(),
        "http://127.0.0.1:8080".into(),
        "admin".into(),
        PASSWORD.into(),
        action.into(),
    ];
    if let Some(d) = shots {
        std::fs::create_dir_all(d).unwrap();
        args.push(d.display().to_string());
    }
    let out = Command::new("ip").args(&args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("browser {action}: {text}");
    assert!(out.status.success(), "the browser step {action} failed: {text}\nnatpass log:\n{}", lab.router_log());
}

fn connected(o: &natpass_lab::Outcome) -> usize {
    o.clients.iter().filter(|c| c.connected && c.data).count()
}

#[test]
fn disabling_pptp_in_the_web_admin_refuses_a_pptp_call_and_enabling_it_lets_it_pass() {
    natpass_testkit::require!(prerequisites());
    let natpass = natpass_lab::natpass_beside(Path::new(env!("CARGO_BIN_EXE_natpass-lab")));
    let dir = PathBuf::from("/tmp/npt-web");
    let hash = natpass_control::auth::hash_password(PASSWORD).unwrap();
    let opts = Options {
        nat: Nat::Natpass,
        clients: 2,
        checks: vec![Check::Pptp],
        prefix: "npt-web".into(),
        dir: dir.clone(),
        natpass_bin: natpass.clone(),
        peers_dir: natpass_lab::default_peers_dir(),
        iperf_secs: 0,
        natpass_extra_config: format!(
            "[admin]\nlisten = \"127.0.0.1:8080\"\ntoken_file = \"{}/api.token\"\n\n[[admin.users]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n",
            dir.join("natpass").display()
        ),
        offloads: true,
        rx_ring: "v3".into(),
        backend: "af_packet".into(),
    };
    let shots = std::env::var_os("NATPASS_SCREENSHOTS").map(PathBuf::from);
    // Names the fix when natpass was not built beside natpass-lab.
    opts.check_files().unwrap_or_else(|e| panic!("{e}"));
    let mut lab = Lab::new(&opts, Nat::Natpass, &dir.join("natpass")).unwrap();

    browser(&lab, "disable-pptp", shots.as_deref());
    let off = lab.check(Check::Pptp).unwrap();
    lab.cleanup_between();
    assert_eq!(connected(&off), 0, "PPTP passed with passthrough disabled: {off:?}");
    let log = lab.router_log();
    assert!(log.contains("config changed by admin: passthrough.pptp: (default) → false"), "{log}");
    assert!(log.contains("Pptp refused"), "no PPTP refusal in natpass's log:\n{log}");

    browser(&lab, "enable-pptp", shots.as_deref());
    let on = lab.check(Check::Pptp).unwrap();
    // The CLI against the same daemon, while both calls are up.
    let token = dir.join("natpass/api.token");
    let cli = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.ns("rtr")])
            .arg(&natpass)
            .args(args)
            .args(["--token-file", token.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "natpass {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cli(&["passthrough", "pptp"]).trim(), "enabled");
    let tunnels: serde_json::Value = serde_json::from_str(&cli(&["tunnels", "--json"])).unwrap();
    let pptp_calls = tunnels["tunnels"].as_array().unwrap().iter().filter(|t| t["protocol"] == "PPTP").count();
    assert_eq!(pptp_calls, 2, "{tunnels}");
    let sessions = cli(&["sessions", "--proto", "tcp", "--port", "1723"]);
    assert!(sessions.contains("192.168.1.10:") && sessions.contains("203.0.113.10:1723"), "{sessions}");
    assert!(cli(&["status"]).contains("VPN passthrough: IPsec enabled, PPTP enabled, L2TP enabled"));
    if let Some(d) = &shots {
        // With both PPTP calls up, so the tunnel page shows them.
        browser(&lab, "screenshots", Some(d));
    }
    lab.cleanup_between();
    assert_eq!(connected(&on), 2, "PPTP did not pass after enabling it again: {on:?}");
    drop(lab);
    let left = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout)
        .lines()
        .filter(|l| l.starts_with("npt-web-"))
        .count();
    assert_eq!(left, 0);
}
