//! `/metrics` as Prometheus reads it: a scrape of the real server (an engine that routed UDP,
//! behind the narrow interface) passes `promtool check metrics`, Prometheus's own linter
//! (Debian's `prometheus` package ships it), and has the families dashboards rely on.
//! Without promtool the test prints SKIPPED, or fails with `NATPASS_TEST_REQUIRE=all`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{http, rig};

fn promtool() -> Result<(), String> {
    Command::new("promtool")
        .arg("--version")
        .output()
        .map_err(|e| format!("needs promtool (apt-get install prometheus): {e}"))
        .map(|_| ())
}

#[test]
fn a_scrape_passes_promtool_check_metrics() {
    natpass_testkit::require!(promtool());
    let r = rig("promtool");
    let m = http(r.addr, "GET", "/metrics", &[], "");
    assert_eq!(m.status, 200);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(m.body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n{}", m.body);
    for family in [
        "natpass_build_info{version=",
        "natpass_start_time_seconds ",
        "natpass_drops_total{reason=\"pptp_disabled\"} 0",
        "natpass_arp_requests_total ",
        "natpass_sessions{protocol=\"udp\"} 6",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(m.body.contains(family), "no {family} in:\n{}", m.body);
    }
}

/// Every metric the Grafana dashboard in docs/ queries is one natpass exports.
#[test]
fn the_dashboards_panels_query_metrics_that_exist() {
    let r = rig("dashboard");
    let scrape = http(r.addr, "GET", "/metrics", &[], "").body;
    let exported: Vec<&str> =
        scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana-dashboard.json");
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut used = 0;
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for w in words.filter(|w| w.starts_with("natpass_") || w.starts_with("process_")) {
                assert!(exported.contains(&w), "panel {:?} queries {w}, which natpass does not export", p["title"]);
                used += 1;
            }
        }
    }
    assert!(used >= 20, "{used}");
}
