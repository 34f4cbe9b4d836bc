//! The CLI's human output: the API's answers as aligned text tables.

use std::fmt::Write as _;

use natpass_control::api::{
    Findings, PROTOCOLS, SessionPage, Status, Switches, TimerSecs, Tunnels, finding_status, protocol_label,
};
use natpass_engine::Proto;

/// Lays out rows in aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let mut o = String::new();
    let line = |o: &mut String, cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{:<width$}  ", c, width = w.get(i).copied().unwrap_or(0));
        }
        o.push_str(l.trim_end());
        o.push('\n');
    };
    line(&mut o, &header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        line(&mut o, r);
    }
    o
}

fn enabled(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

/// `natpass status`.
pub fn status(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "natpass {}, up {} s", s.version, s.uptime_secs);
    let rows: Vec<Vec<String>> = s
        .interfaces
        .iter()
        .map(|i| {
            vec![
                i.role.clone(),
                i.name.clone(),
                i.address.clone(),
                i.mac.clone(),
                i.rx_frames.to_string(),
                i.tx_frames.to_string(),
            ]
        })
        .collect();
    o.push_str(&table(&["role", "interface", "address", "mac", "frames in", "frames out"], &rows));
    let switches: Vec<String> =
        PROTOCOLS.iter().map(|&p| format!("{} {}", protocol_label(p), enabled(s.passthrough.get(p)))).collect();
    let _ = writeln!(o, "\nVPN passthrough: {}", switches.join(", "));
    let sessions: Vec<String> = Proto::ALL.iter().map(|&p| format!("{} {}", p.name(), s.sessions.get(p))).collect();
    let _ = writeln!(o, "sessions: {}", sessions.join(" "));
    if !s.ipv6_flows.is_empty() {
        let flows: Vec<String> = s.ipv6_flows.iter().map(|(p, n)| format!("{p} {n}")).collect();
        let _ = writeln!(o, "ipv6 flows: {}", flows.join(" "));
    }
    let tunnels: Vec<String> = PROTOCOLS.iter().map(|&p| format!("{} {}", p.name(), s.tunnels.get(p))).collect();
    let _ = writeln!(o, "tunnels: {}", tunnels.join(" "));
    let (r, f) = (&s.packets_received, &s.packets_forwarded);
    let _ = writeln!(o, "packets: lan in {} out {} | wan in {} out {}", r.lan, f.lan, r.wan, f.wan);
    if !s.drops.is_empty() {
        let _ = writeln!(o, "drops:");
        for (reason, n) in &s.drops {
            let _ = writeln!(o, "  {reason:<28} {n}");
        }
    }
    o
}

/// A public address or endpoint; IPv6 has none (routed, not translated).
fn routed_if_empty(public: &str) -> String {
    if public.is_empty() { "routed (IPv6)".into() } else { public.into() }
}

/// `natpass sessions`, like `conntrack -L`.
pub fn sessions(p: &SessionPage) -> String {
    let rows: Vec<Vec<String>> = p
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.proto.clone(),
                s.lan.clone(),
                routed_if_empty(&s.public),
                s.remote.clone(),
                s.state.clone(),
                s.idle_secs.to_string(),
                s.bytes_out.to_string(),
                s.bytes_in.to_string(),
            ]
        })
        .collect();
    let mut o = table(&["proto", "lan", "public", "remote", "state", "idle s", "bytes out", "bytes in"], &rows);
    let _ = writeln!(o, "{} sessions match (page {}, {} per page)", p.total, p.page, p.per_page);
    o
}

/// `natpass tunnels`: live tunnels, then the most recent refusals.
pub fn tunnels(t: &Tunnels) -> String {
    let rows: Vec<Vec<String>> = t
        .tunnels
        .iter()
        .map(|x| {
            vec![
                x.protocol.clone(),
                x.kind.clone(),
                x.client.clone(),
                x.server.clone(),
                routed_if_empty(&x.public),
                x.ids.clone(),
                x.bytes_out.to_string(),
                x.bytes_in.to_string(),
                x.age_secs.map_or("-".into(), |a| a.to_string()),
                x.state.clone(),
            ]
        })
        .collect();
    let mut o = table(
        &["protocol", "what", "client", "server", "public", "ids", "bytes out", "bytes in", "age s", "state"],
        &rows,
    );
    let refusals: Vec<Vec<String>> = t
        .events
        .iter()
        .filter(|e| e.is_refusal())
        .take(20)
        .map(|e| vec![e.at_secs.to_string(), e.protocol.clone(), e.client.clone(), e.server.clone(), e.detail.clone()])
        .collect();
    if !refusals.is_empty() {
        o.push_str("\nrecent refusals:\n");
        o.push_str(&table(&["at s", "protocol", "client", "server", "reason"], &refusals));
    }
    let problems = t.findings.iter().filter(|f| f.status == finding_status::FOUND).count();
    if problems > 0 {
        let _ = writeln!(o, "\nproblems found: {problems} (natpass tunnels --why)");
    }
    o
}

/// `natpass tunnels --why [--client IP]`: each finding, what showed it, what to do.
pub fn findings(f: &Findings) -> String {
    let mut o = String::new();
    if f.findings.is_empty() {
        let whose = f.client.as_ref().map_or(String::new(), |c| format!(" with {c}'s tunnels"));
        let _ = writeln!(o, "natpass saw no problem{whose}.");
        return o;
    }
    for x in &f.findings {
        let status = match x.status.as_str() {
            finding_status::FOUND => String::new(),
            s => format!(" [{s}]"),
        };
        let _ =
            writeln!(o, "{}{status}: {} → {} ({}, {} s ago)", x.title, x.client, x.server, x.protocol, x.last_secs_ago);
        o.push_str(&crate::replay::wrapped("  seen: ", &x.evidence, 100));
        if !x.fix.is_empty() {
            o.push_str(&crate::replay::wrapped("  fix:  ", &x.fix, 100));
        }
    }
    o
}

/// `natpass passthrough`: one line per protocol.
pub fn switches(s: &Switches) -> String {
    PROTOCOLS.iter().map(|&p| format!("{:<6} {}\n", p.name(), enabled(s.get(p)))).collect()
}

/// `natpass passthrough PROTOCOL`.
pub fn switch(on: bool) -> String {
    format!("{}\n", enabled(on))
}

/// `natpass settings`: the timers, then the filtering.
pub fn settings(timeouts: &TimerSecs, filtering: &str) -> String {
    let mut o: String = timeouts.entries().iter().map(|(k, x)| format!("{k:<18} {x} s\n")).collect();
    let _ = writeln!(o, "{:<18} {filtering}", "filtering");
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use natpass_control::api::{EventRow, SessionRow, TunnelRow};

    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
    }

    #[test]
    fn sessions_render_like_conntrack() {
        let p = SessionPage {
            total: 1,
            page: 1,
            per_page: 100,
            sessions: vec![
                SessionRow {
                    proto: "udp".into(),
                    family: "ipv4".into(),
                    lan: "192.168.1.10:500".into(),
                    public: "203.0.113.1:500".into(),
                    remote: "203.0.113.10:500".into(),
                    state: "established".into(),
                    idle_secs: 3,
                    bytes_out: 10,
                    bytes_in: 20,
                },
                SessionRow {
                    proto: "esp".into(),
                    family: "ipv6".into(),
                    lan: "[2001:db8:1::10]:0".into(),
                    public: String::new(),
                    remote: "[2001:db8:ff::1]:0".into(),
                    state: "established".into(),
                    idle_secs: 1,
                    bytes_out: 56,
                    bytes_in: 56,
                },
            ],
        };
        let t = sessions(&p);
        assert!(t.contains("udp    192.168.1.10:500    203.0.113.1:500"), "{t}");
        assert!(t.contains("esp    [2001:db8:1::10]:0  routed (IPv6)    [2001:db8:ff::1]:0"), "{t}");
        assert!(t.ends_with("1 sessions match (page 1, 100 per page)\n"), "{t}");
    }

    #[test]
    fn the_tunnel_table_has_a_header_for_every_cell_and_lists_refusals() {
        let t = Tunnels {
            tunnels: vec![TunnelRow {
                protocol: "PPTP".into(),
                kind: "PPTP call (GRE)".into(),
                client: "192.168.1.10".into(),
                server: "203.0.113.10".into(),
                public: "203.0.113.1".into(),
                ids: "Call ID 1".into(),
                bytes_out: 1,
                bytes_in: 2,
                idle_secs: 3,
                age_secs: None,
                state: "up".into(),
            }],
            events: vec![EventRow {
                at_secs: 9,
                what: "refused".into(),
                protocol: "PPTP".into(),
                client: "192.168.1.11".into(),
                server: "203.0.113.10".into(),
                detail: "pptp_disabled".into(),
            }],
            findings: Vec::new(),
        };
        let out = tunnels(&t);
        let mut lines = out.lines();
        let (head, row) = (lines.next().unwrap(), lines.next().unwrap());
        let age = head.find("age s").unwrap();
        assert_eq!((&row[age..age + 1], &head[age + 7..]), ("-", "state"), "{out}");
        assert!(out.contains("recent refusals:") && out.contains("pptp_disabled"), "{out}");
    }

    #[test]
    fn findings_name_what_showed_them_and_the_fix() {
        let row = |status: &str, fix: &str| natpass_control::api::FindingRow {
            kind: "ike_never_answered".into(),
            title: "IKE never answered".into(),
            status: status.into(),
            protocol: "IPsec".into(),
            client: "192.168.1.10".into(),
            server: "198.51.100.7".into(),
            public: Some("203.0.113.1".into()),
            ids: None,
            packets_out: 3,
            packets_in: 0,
            last_secs_ago: 4,
            since_secs_ago: 4,
            evidence: "192.168.1.10 sent IKE_SA_INIT 3 times".into(),
            fix: fix.into(),
        };
        let f =
            Findings { client: None, findings: vec![row("found", "Check UDP 500."), row("not enough evidence", "")] };
        let out = findings(&f);
        assert!(out.starts_with("IKE never answered: 192.168.1.10 → 198.51.100.7 (IPsec, 4 s ago)\n"), "{out}");
        assert!(out.contains("  seen: 192.168.1.10 sent IKE_SA_INIT 3 times\n  fix:  Check UDP 500.\n"), "{out}");
        assert!(out.contains("[not enough evidence]"), "{out}");
        assert_eq!(out.matches("fix:").count(), 1, "no fix without enough evidence: {out}");
        let none = Findings { client: Some("192.168.1.22".into()), findings: Vec::new() };
        assert_eq!(findings(&none), "natpass saw no problem with 192.168.1.22's tunnels.\n");
    }

    #[test]
    fn switches_and_settings_list_one_per_line() {
        let s = Switches { ipsec: true, pptp: false, l2tp: true };
        assert_eq!(switches(&s), "ipsec  enabled\npptp   disabled\nl2tp   enabled\n");
        let t = TimerSecs {
            udp: 300,
            tcp_established: 7440,
            tcp_transitory: 240,
            icmp: 60,
            port_reuse_delay: 120,
            fragment: 5,
        };
        let out = settings(&t, "address-dependent");
        assert!(out.starts_with("udp                300 s\n"), "{out}");
        assert!(out.ends_with("filtering          address-dependent\n"), "{out}");
    }
}
