//! The capabilities the systemd unit gives natpass are enough, and needed: `natpass run` as
//! an unprivileged user (`nobody`) with exactly the `AmbientCapabilities=` of
//! `packaging/natpass.service` (AF_PACKET with the kernel fast path) and of the
//! `packaging/af_xdp.conf` drop-in (AF_XDP) starts and forwards; with CAP_NET_RAW alone it
//! forwards without the fast path and says so; with one of AF_XDP's fewer it does not start.
//!
//! The unit also sets `LimitMEMLOCK=infinity` for AF_XDP's UMEM; a test cannot raise that
//! limit here, so CAP_IPC_LOCK (which lifts it too) stands in for it on AF_XDP.
//!
//! In network namespaces this test creates and removes. Needs root, `ip`, `python3` and
//! `setpriv`; without them it prints SKIPPED and why, or fails with `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Net, config, prerequisites, start_wrapped, stop};

/// The capabilities a unit file's `AmbientCapabilities=` line gives, as setpriv spells them.
fn ambient(unit: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging").join(unit);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("AmbientCapabilities=")).expect("AmbientCapabilities=");
    line.split_whitespace().map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase()).collect()
}

fn setpriv(caps: &[String]) -> Vec<String> {
    let set = if caps.is_empty() {
        "-all".to_string()
    } else {
        format!("-all,{}", caps.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(","))
    };
    ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
        .into_iter()
        .map(String::from)
        .chain([format!("--inh-caps={set}"), format!("--ambient-caps={set}"), format!("--bounding-set={set}")])
        .chain(["--no-new-privs".to_string()])
        .collect()
}

/// natpass with `caps` forwards a TCP connection (its log), or refuses to start (why).
fn runs_with(net: &Net, dir: &Path, backend: &str, caps: &[String]) -> Result<String, String> {
    let wrapper = setpriv(caps);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let cfg = config(dir, backend);
    let out = Command::new("ip")
        .args(["netns", "exec", &net.rtr])
        .args(&wrapper)
        .args([env!("CARGO_BIN_EXE_natpass"), "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "natpass check as nobody: {}", String::from_utf8_lossy(&out.stderr));
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.rtr])
        .args(&wrapper)
        .args([env!("CARGO_BIN_EXE_natpass"), "run", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A start that fails ends the process quickly; one that works runs on.
    std::thread::sleep(std::time::Duration::from_secs(2));
    if let Some(status) = child.try_wait().unwrap() {
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        return Err(format!("{status}: {err}"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (router, log) = start_wrapped(net, &wrapper, &[], &cfg, &[]);
    let ok = net.eventually_connects(8000);
    stop(router);
    if ok { Ok(log.text()) } else { Err(format!("no TCP through natpass:\n{}", log.text())) }
}

#[test]
fn the_units_capabilities_are_enough_and_each_is_needed() {
    natpass_testkit::require!(prerequisites().and_then(|()| {
        Command::new("setpriv").arg("--version").output().map(|_| ()).map_err(|e| format!("needs setpriv: {e}"))
    }));
    let net = Net::new("uc");
    let dir = std::env::temp_dir().join(format!("npuc{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let packet = ambient("natpass.service");
    assert_eq!(packet, ["net_raw", "net_admin", "bpf"], "AF_PACKET and the kernel fast path");
    let log = runs_with(&net, &dir, "af_packet", &packet).unwrap();
    assert!(log.contains("fast path on"), "the unit's capabilities give the fast path:\n{log}");
    // CAP_NET_RAW alone: natpass forwards without the fast path, and says so.
    let log = runs_with(&net, &dir, "af_packet", &["net_raw".to_string()]).unwrap();
    assert!(log.contains("fast path off"), "{log}");
    let e = runs_with(&net, &dir, "af_packet", &[]).unwrap_err();
    assert!(e.contains("ermission") || e.contains("not permitted"), "{e}");

    let mut xdp = ambient("af_xdp.conf");
    assert_eq!(xdp, ["net_raw", "net_admin", "bpf"]);
    xdp.push("ipc_lock".into()); // in place of the unit's LimitMEMLOCK=infinity
    runs_with(&net, &dir, "af_xdp", &xdp).unwrap();
    for missing in ["net_admin", "bpf"] {
        let fewer: Vec<String> = xdp.iter().filter(|c| *c != missing).cloned().collect();
        assert!(runs_with(&net, &dir, "af_xdp", &fewer).is_err(), "AF_XDP started without CAP_{missing}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
