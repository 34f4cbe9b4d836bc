//! Prometheus `/metrics` in the text exposition format (version 0.0.4): packets and bytes per
//! side, drops by reason, sessions by protocol, tunnels by protocol, public port use.

use std::fmt::Write as _;

use natpass_engine::Proto;

use crate::api::{PROTOCOLS, PerProto, PerVpn, Status};

/// One sample per transport protocol, labelled `proto="tcp"` and so on.
fn per_proto(n: &PerProto) -> Vec<(String, u64)> {
    Proto::ALL.iter().map(|&p| (format!("proto=\"{}\"", p.name()), n.get(p))).collect()
}

/// One sample per VPN passthrough protocol, labelled `protocol="ipsec"` and so on.
fn per_vpn<T: Copy + Into<u64>>(n: &PerVpn<T>) -> Vec<(String, u64)> {
    PROTOCOLS.iter().map(|&p| (format!("protocol=\"{}\"", p.name()), n.get(p).into())).collect()
}

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
    family("sessions", "gauge", "Sessions alive, by protocol.", &per_proto(&s.sessions));
    family("sessions_created_total", "counter", "Sessions opened since start.", &[(String::new(), s.sessions_created)]);
    family("tunnels", "gauge", "VPN tunnels tracked by the passthrough modules, by protocol.", &per_vpn(&s.tunnels));
    family(
        "passthrough_enabled",
        "gauge",
        "VPN passthrough switches (1 enabled, 0 disabled).",
        &per_vpn(&s.passthrough),
    );
    family(
        "ports_used",
        "gauge",
        "Public ports (ICMP: identifiers) in use, summed over the public addresses.",
        &per_proto(&s.ports_used),
    );
    family(
        "ports_available",
        "gauge",
        "Public ports per address and protocol.",
        &[(String::new(), u64::from(s.ports_per_address) * s.public_addrs.len() as u64)],
    );
    o
}
