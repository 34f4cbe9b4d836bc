//! Prometheus `/metrics` in the text exposition format (version 0.0.4): packets and bytes per
//! side, drops by reason, sessions by protocol, tunnels by protocol, public port use.

use std::fmt::Write as _;

use crate::interface::Status;

/// The metrics text for a status snapshot.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(o, "# HELP natpass_{name} {help}\n# TYPE natpass_{name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(o, "natpass_{name} {v}");
            } else {
                let _ = writeln!(o, "natpass_{name}{{{labels}}} {v}");
            }
        }
    };
    let sides = |lan: u64, wan: u64| vec![("side=\"lan\"".to_string(), lan), ("side=\"wan\"".to_string(), wan)];
    family("uptime_seconds", "gauge", "Seconds since natpass started.", &[(String::new(), s.uptime_secs)]);
    family(
        "packets_received_total",
        "counter",
        "IPv4 packets received, by the side they arrived on.",
        &sides(s.packets_received.lan, s.packets_received.wan),
    );
    family(
        "packets_forwarded_total",
        "counter",
        "Packets sent, by the side they left on.",
        &sides(s.packets_forwarded.lan, s.packets_forwarded.wan),
    );
    family(
        "bytes_forwarded_total",
        "counter",
        "Bytes (IP) sent, by the side they left on.",
        &sides(s.bytes_forwarded.lan, s.bytes_forwarded.wan),
    );
    let drops: Vec<(String, u64)> = s.drops.iter().map(|(r, n)| (format!("reason=\"{r}\""), *n)).collect();
    family("drops_total", "counter", "Packets dropped, by reason (reasons seen so far).", &drops);
    let link: Vec<(String, u64)> = s.link.iter().map(|(r, n)| (format!("counter=\"{r}\""), *n)).collect();
    family("link_total", "counter", "Link-layer counters: ARP, frames ignored or dropped.", &link);
    family(
        "sessions",
        "gauge",
        "Sessions alive, by protocol.",
        &[
            ("proto=\"tcp\"".into(), s.sessions.tcp),
            ("proto=\"udp\"".into(), s.sessions.udp),
            ("proto=\"icmp\"".into(), s.sessions.icmp),
        ],
    );
    family("sessions_created_total", "counter", "Sessions opened since start.", &[(String::new(), s.sessions_created)]);
    family(
        "tunnels",
        "gauge",
        "VPN tunnels tracked by the passthrough modules, by protocol.",
        &[
            ("protocol=\"ipsec\"".into(), s.tunnels.ipsec),
            ("protocol=\"pptp\"".into(), s.tunnels.pptp),
            ("protocol=\"l2tp\"".into(), s.tunnels.l2tp),
        ],
    );
    family(
        "passthrough_enabled",
        "gauge",
        "VPN passthrough switches (1 enabled, 0 disabled).",
        &[
            ("protocol=\"ipsec\"".into(), u64::from(s.passthrough.ipsec)),
            ("protocol=\"pptp\"".into(), u64::from(s.passthrough.pptp)),
            ("protocol=\"l2tp\"".into(), u64::from(s.passthrough.l2tp)),
        ],
    );
    family(
        "ports_used",
        "gauge",
        "Public ports (ICMP: identifiers) in use, summed over the public addresses.",
        &[
            ("proto=\"tcp\"".into(), s.ports_used.tcp),
            ("proto=\"udp\"".into(), s.ports_used.udp),
            ("proto=\"icmp\"".into(), s.ports_used.icmp),
        ],
    );
    family(
        "ports_available",
        "gauge",
        "Public ports per address and protocol.",
        &[(String::new(), u64::from(s.ports_per_address) * s.public_addrs.len() as u64)],
    );
    o
}
