//! Prometheus `/metrics` in the text exposition format (version 0.0.4), named by
//! Prometheus's conventions: one metric per meaning, base units (`_seconds`, `_bytes`),
//! `_total` on counters, one label name per dimension (`side`, `reason`, `protocol`, for
//! transport and VPN protocols alike, `kind` for the diagnosis's findings), every label value
//! present from the start (a drop reason or finding kind never seen is there with 0), `natpass_build_info`, `natpass_start_time_seconds`,
//! and the `process_*` metrics of client libraries, read from `/proc/self`.

use std::fmt::Write as _;
use std::sync::OnceLock;

use natpass_engine::{DropReason, FindingKind, Proto};

use crate::api::{IPV6_FLOW_PROTOCOLS, PROTOCOLS, PerProto, PerVpn, Status};

/// The commit natpass was built from (`git rev-parse` at build time), or "unknown".
pub const COMMIT: &str = env!("NATPASS_COMMIT");

/// Link-layer counters ([`Status::link`], named by `natpass_link::Plane::counters`) that are
/// frames or packets dropped: `natpass_link_drops_total{reason}`.
pub const LINK_DROPS: [(&str, &str); 9] = [
    ("arp_unresolved", "arp_unresolved"),
    ("arp_queue_full", "arp_queue_full"),
    ("oversize_frames", "oversize_frame"),
    ("tx_queue_full", "transmit_queue_full"),
    ("no_route", "no_route"),
    ("nd_unresolved", "nd_unresolved"),
    ("nd_queue_full", "nd_queue_full"),
    ("nd_invalid", "nd_invalid"),
    ("ipv6_to_router", "ipv6_to_router"),
];

/// Link-layer counters of frames ignored (not for the NAT): `natpass_frames_ignored_total{reason}`.
pub const FRAMES_IGNORED: [(&str, &str); 2] = [("not_ipv4", "not_ipv4"), ("vlan_tagged", "vlan_tagged")];

/// Link-layer counters with a metric of their own: (counter, metric, help).
pub const LINK_OWN: [(&str, &str, &str); 8] = [
    (
        "nd_requests",
        "neighbor_solicitations_total",
        "IPv6 Neighbor Solicitations natpass sent to resolve and probe next hops.",
    ),
    (
        "nd_answered",
        "neighbor_advertisements_total",
        "IPv6 Neighbor Solicitations for natpass's own addresses that it answered.",
    ),
    ("ra_sent", "router_advertisements_total", "IPv6 Router Advertisements natpass sent on the LAN."),
    (
        "neighbours_unreachable",
        "neighbours_unreachable_total",
        "Known neighbours (ARP or IPv6) that stopped answering probes and were forgotten.",
    ),
    ("arp_requests", "arp_requests_total", "ARP requests natpass sent to resolve next hops."),
    ("arp_answered", "arp_replies_total", "ARP requests for natpass's own addresses that it answered."),
    ("pings_answered", "pings_answered_total", "ICMP echo requests to natpass's own addresses that it answered."),
    ("gso_frames", "gso_frames_total", "Segmentation-offload super-frames received and passed whole."),
];

/// One metric family being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let v = if v.fract() == 0.0 && v.abs() < 9.0e15 { format!("{}", *v as i64) } else { format!("{v}") };
            if labels.is_empty() {
                let _ = writeln!(self.0, "{name} {v}");
            } else {
                let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
            }
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help, &[(String::new(), v)]);
    }
}

/// A label value, escaped as the text format asks (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn per_proto(n: &PerProto) -> Vec<(String, f64)> {
    Proto::ALL.iter().map(|&p| (format!("protocol=\"{}\"", p.name()), n.get(p) as f64)).collect()
}

fn per_vpn<T: Copy + Into<u64>>(n: &PerVpn<T>) -> Vec<(String, f64)> {
    PROTOCOLS.iter().map(|&p| (format!("protocol=\"{}\"", p.name()), n.get(p).into() as f64)).collect()
}

fn link(s: &Status, counter: &str) -> f64 {
    s.link.iter().find(|(n, _)| n == counter).map_or(0.0, |(_, v)| *v as f64)
}

/// The metrics text for a status snapshot, with this process's `process_*` metrics.
pub fn render(s: &Status) -> String {
    let mut text = render_status(s);
    text.push_str(&process::render());
    text
}

/// The natpass metrics of a status snapshot alone.
pub fn render_status(s: &Status) -> String {
    let mut o = Out(String::new());
    o.family(
        "natpass_build_info",
        "gauge",
        "natpass's version and the commit it was built from; always 1.",
        &[(format!("version=\"{}\",commit=\"{}\"", esc(&s.version), esc(COMMIT)), 1.0)],
    );
    o.one(
        "natpass_start_time_seconds",
        "gauge",
        "When natpass started, in seconds since the Unix epoch.",
        process::start_time().unwrap_or_else(|| process::now() - s.uptime_secs as f64).floor(),
    );
    let sides =
        |lan: u64, wan: u64| vec![("side=\"lan\"".to_string(), lan as f64), ("side=\"wan\"".to_string(), wan as f64)];
    o.family(
        "natpass_packets_received_total",
        "counter",
        "IPv4 packets the NAT received, by the side they arrived on.",
        &sides(s.packets_received.lan, s.packets_received.wan),
    );
    o.family(
        "natpass_packets_forwarded_total",
        "counter",
        "Packets the NAT sent, by the side they left on.",
        &sides(s.packets_forwarded.lan, s.packets_forwarded.wan),
    );
    o.family(
        "natpass_forwarded_bytes_total",
        "counter",
        "Bytes (IP packets) the NAT sent, by the side they left on.",
        &sides(s.bytes_forwarded.lan, s.bytes_forwarded.wan),
    );
    let drops: Vec<(String, f64)> = DropReason::ALL
        .iter()
        .map(|r| {
            let n = s.drops.iter().find(|(name, _)| name == r.name()).map_or(0, |(_, n)| *n);
            (format!("reason=\"{}\"", r.name()), n as f64)
        })
        .collect();
    o.family("natpass_drops_total", "counter", "Packets the NAT dropped, by reason.", &drops);
    let findings: Vec<(String, f64)> = FindingKind::ALL
        .iter()
        .map(|k| {
            let n = s.findings.iter().find(|(name, _)| name == k.name()).map_or(0, |(_, n)| *n);
            (format!("kind=\"{}\"", k.name()), n as f64)
        })
        .collect();
    o.family(
        "natpass_findings_total",
        "counter",
        "Problems the diagnosis found with VPN tunnels (docs/diagnostics.md), by kind.",
        &findings,
    );
    let by = |list: &[(&str, &str)]| -> Vec<(String, f64)> {
        list.iter().map(|(counter, reason)| (format!("reason=\"{reason}\""), link(s, counter))).collect()
    };
    o.family(
        "natpass_link_drops_total",
        "counter",
        "Frames the link layer dropped before or after the NAT, by reason.",
        &by(&LINK_DROPS),
    );
    o.family(
        "natpass_frames_ignored_total",
        "counter",
        "Frames received that are not for the NAT (neither ARP nor untagged IPv4, nor IPv6 when it is configured), by reason.",
        &by(&FRAMES_IGNORED),
    );
    for (counter, name, help) in LINK_OWN {
        o.one(&format!("natpass_{name}"), "counter", help, link(s, counter));
    }
    let frames = |rx: bool| -> Vec<(String, f64)> {
        s.interfaces
            .iter()
            .map(|i| {
                (
                    format!("side=\"{}\",interface=\"{}\"", esc(&i.role), esc(&i.name)),
                    (if rx { i.rx_frames } else { i.tx_frames }) as f64,
                )
            })
            .collect()
    };
    o.family(
        "natpass_interface_received_frames_total",
        "counter",
        "Frames received on natpass's interfaces.",
        &frames(true),
    );
    o.family("natpass_interface_sent_frames_total", "counter", "Frames sent on natpass's interfaces.", &frames(false));
    o.family("natpass_sessions", "gauge", "NAT sessions alive, by protocol.", &per_proto(&s.sessions));
    o.family(
        "natpass_ipv6_flows",
        "gauge",
        "IPv6 flows the simple security table tracks (RFC 6092; routed, not translated), by protocol.",
        &IPV6_FLOW_PROTOCOLS
            .iter()
            .map(|&p| {
                let n = s.ipv6_flows.iter().find(|(name, _)| name == p).map_or(0, |f| f.1);
                (format!("protocol=\"{p}\""), n as f64)
            })
            .collect::<Vec<_>>(),
    );
    o.one("natpass_sessions_created_total", "counter", "NAT sessions opened.", s.sessions_created as f64);
    o.one(
        "natpass_sessions_expired_total",
        "counter",
        "NAT sessions ended by their idle timer.",
        s.sessions_expired as f64,
    );
    o.one(
        "natpass_sessions_evicted_total",
        "counter",
        "NAT sessions ended early to make room for new ones.",
        s.sessions_evicted as f64,
    );
    o.family(
        "natpass_tunnels",
        "gauge",
        "VPN tunnels the passthrough modules track, by protocol.",
        &per_vpn(&s.tunnels),
    );
    o.family(
        "natpass_passthrough_enabled",
        "gauge",
        "VPN passthrough switches: 1 enabled, 0 disabled.",
        &per_vpn(&s.passthrough),
    );
    o.family(
        "natpass_ports_used",
        "gauge",
        "Public ports (ICMP: identifiers) in use, summed over the public addresses, by protocol.",
        &per_proto(&s.ports_used),
    );
    o.one(
        "natpass_ports_available",
        "gauge",
        "Public ports each protocol may use, summed over the public addresses.",
        f64::from(s.ports_per_address) * s.public_addrs.len() as f64,
    );
    o.0
}

/// The `process_*` metrics every Prometheus client library exports, from `/proc/self`.
pub mod process {
    use super::{OnceLock, Out};

    /// `/proc`'s clock tick (USER_HZ), which Linux fixes at 100 for user space.
    const TICKS: f64 = 100.0;

    pub(super) fn now() -> f64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    /// The fields of `/proc/self/stat` after the command name (field 3 first).
    fn stat() -> Option<Vec<String>> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after = &text[text.rfind(')')? + 1..];
        Some(after.split_whitespace().map(str::to_string).collect())
    }

    /// When this process started, in seconds since the Unix epoch (boot time from
    /// `/proc/stat` plus the start tick of `/proc/self/stat`); read once.
    pub fn start_time() -> Option<f64> {
        static START: OnceLock<Option<f64>> = OnceLock::new();
        *START.get_or_init(|| {
            let btime: f64 = std::fs::read_to_string("/proc/stat")
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("btime "))?
                .trim()
                .parse()
                .ok()?;
            // Field 22, starttime: index 19 after the command name.
            let ticks: f64 = stat()?.get(19)?.parse().ok()?;
            Some(btime + ticks / TICKS)
        })
    }

    /// A value of `/proc/self/status` in kB, as bytes.
    fn status_bytes(key: &str) -> Option<f64> {
        let text = std::fs::read_to_string("/proc/self/status").ok()?;
        let v = text.lines().find_map(|l| l.strip_prefix(key))?.trim().trim_end_matches("kB").trim();
        Some(v.parse::<f64>().ok()? * 1024.0)
    }

    /// The `process_*` families (those that can be read).
    pub fn render() -> String {
        let mut o = Out(String::new());
        if let Some(s) = stat() {
            let ticks = |i: usize| s.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // utime and stime: fields 14 and 15.
            o.one(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                (ticks(11) + ticks(12)) / TICKS,
            );
        }
        if let Some(v) = status_bytes("VmRSS:") {
            o.one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", v);
        }
        if let Some(v) = status_bytes("VmSize:") {
            o.one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", v);
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            // The directory being read holds one descriptor of its own.
            o.one("process_open_fds", "gauge", "Number of open file descriptors.", d.count().saturating_sub(1) as f64);
        }
        let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|t| {
            t.lines().find(|l| l.starts_with("Max open files"))?.split_whitespace().nth(3)?.parse::<f64>().ok()
        });
        if let Some(v) = max_fds {
            o.one("process_max_fds", "gauge", "Maximum number of open file descriptors.", v);
        }
        if let Some(t) = start_time() {
            o.one(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                (t * 100.0).round() / 100.0,
            );
        }
        o.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::api::{PerSide, Switches, TimerSecs};

    fn status() -> Status {
        Status {
            version: "0.1.0".into(),
            uptime_secs: 5,
            interfaces: Vec::new(),
            public_addrs: vec!["203.0.113.1".into()],
            lan_networks: Vec::new(),
            passthrough: Switches { ipsec: true, pptp: false, l2tp: true },
            timeouts: TimerSecs {
                udp: 1,
                tcp_established: 1,
                tcp_transitory: 1,
                icmp: 1,
                port_reuse_delay: 1,
                fragment: 1,
            },
            filtering: "address-dependent".into(),
            packets_received: PerSide::default(),
            packets_forwarded: PerSide::default(),
            bytes_forwarded: PerSide::default(),
            drops: vec![("pptp_disabled".into(), 3)],
            link: vec![("arp_requests".into(), 2), ("no_route".into(), 1)],
            sessions: PerProto::default(),
            ipv6_flows: vec![("esp".into(), 1)],
            sessions_created: 0,
            sessions_expired: 0,
            sessions_evicted: 0,
            tunnels: PerVpn::default(),
            ports_used: PerProto::default(),
            ports_per_address: 64512,
            findings: vec![("gre_one_way".into(), 2)],
        }
    }

    #[test]
    fn every_drop_reason_is_there_from_the_start() {
        let m = render_status(&status());
        for r in DropReason::ALL {
            let n = if r.name() == "pptp_disabled" { 3 } else { 0 };
            assert!(m.contains(&format!("natpass_drops_total{{reason=\"{}\"}} {n}\n", r.name())), "{}", r.name());
        }
        for (_, reason) in LINK_DROPS.iter().chain(FRAMES_IGNORED.iter()) {
            assert!(m.contains(&format!("reason=\"{reason}\"}}")), "{reason}");
        }
        assert!(m.contains("natpass_link_drops_total{reason=\"no_route\"} 1\n"), "{m}");
        assert!(m.contains("natpass_arp_requests_total 2\n"), "{m}");
        assert!(m.contains("natpass_passthrough_enabled{protocol=\"pptp\"} 0\n"), "{m}");
        for k in FindingKind::ALL {
            let n = if k.name() == "gre_one_way" { 2 } else { 0 };
            assert!(m.contains(&format!("natpass_findings_total{{kind=\"{}\"}} {n}\n", k.name())), "{}", k.name());
        }
    }

    #[test]
    fn one_label_name_for_protocols_and_build_info() {
        let m = render_status(&status());
        assert!(!m.contains("proto=\""), "{m}");
        assert!(m.contains("natpass_sessions{protocol=\"udp\"} 0\n"), "{m}");
        assert!(m.contains("natpass_ipv6_flows{protocol=\"esp\"} 1\n"), "{m}");
        assert!(m.contains("natpass_ipv6_flows{protocol=\"icmpv6\"} 0\n"), "IPv6 protocols there from the start: {m}");
        assert!(m.contains(&format!("natpass_build_info{{version=\"0.1.0\",commit=\"{COMMIT}\"}} 1\n")), "{m}");
        assert!(!COMMIT.is_empty());
    }

    #[test]
    fn process_metrics_come_from_proc() {
        let m = process::render();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(m.contains(&format!("\n{name} ")) || m.starts_with(&format!("# HELP {name}")), "{name}: {m}");
        }
        let start = process::start_time().unwrap();
        assert!(start > 1.0e9 && start <= process::now() + 1.0, "{start}");
    }
}
