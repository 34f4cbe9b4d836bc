//! The lab's table: one row per check, a column group per NAT.

use std::fmt::Write as _;

use super::Outcome;

/// The table: one row per check, a column group per NAT (connected clients, clients that
/// carried data, throughput), then the details of every client that failed.
pub fn render(outcomes: &[Outcome], clients: usize) -> String {
    let mut nats: Vec<&str> = Vec::new();
    let mut checks: Vec<&str> = Vec::new();
    for o in outcomes {
        if !nats.contains(&o.nat.as_str()) {
            nats.push(&o.nat);
        }
        if !checks.contains(&o.check.as_str()) {
            checks.push(&o.check);
        }
    }
    let mut s = String::new();
    let _ = write!(s, "\n{:<34}", "");
    for n in &nats {
        let _ = write!(s, " | {:<31}", format!("{n} ({clients} clients)"));
    }
    let _ = write!(s, "\n{:<34}", "check");
    for _ in &nats {
        let _ = write!(s, " | {:<5} {:<5} {:>12} {:<6}", "conn", "data", "throughput", "");
    }
    s.push('\n');
    let mut failures = String::new();
    let mut diagnosed = String::new();
    for c in &checks {
        let _ = write!(s, "{c:<34}");
        for n in &nats {
            match outcomes.iter().find(|o| o.check == *c && o.nat == *n) {
                Some(o) => {
                    let conn = o.clients.iter().filter(|c| c.connected).count();
                    let data = o.clients.iter().filter(|c| c.data).count();
                    let thr = o.throughput_bps.map_or("-".to_string(), format_bps);
                    let verdict = if o.passed() { "PASS" } else { "FAIL" };
                    let _ = write!(
                        s,
                        " | {:<5} {:<5} {thr:>12} {verdict:<6}",
                        format!("{conn}/{clients}"),
                        format!("{data}/{clients}")
                    );
                    if let Some(d) = &o.diagnosis {
                        // A scripted failure: what natpass had to find, and what it found.
                        let _ = writeln!(diagnosed, "  {c} [{verdict}]: expected {}", d.expected);
                        for cl in &o.clients {
                            let _ = writeln!(diagnosed, "    {}: {}", cl.client, cl.detail);
                        }
                        for f in o.findings.iter().filter(|f| f.cli != Some(true) || f.page != Some(true)) {
                            let _ = writeln!(
                                diagnosed,
                                "    {} for {}: not shown on the CLI and the page",
                                f.kind, f.client
                            );
                        }
                    } else {
                        for cl in o.clients.iter().filter(|cl| !(cl.connected && cl.data)) {
                            let _ = writeln!(failures, "  {n}, {c}, {}: {}", cl.client, cl.detail);
                        }
                        for f in &o.findings {
                            let _ = writeln!(
                                failures,
                                "  {n}, {c}: natpass found {} ({}) for {} in a working check",
                                f.kind, f.status, f.client
                            );
                        }
                    }
                    if o.clients.is_empty() {
                        let _ = writeln!(failures, "  {n}, {c}: {}", o.note);
                    }
                }
                None => {
                    let _ = write!(s, " | {:<31}", "(not run)");
                }
            }
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\nnotes:");
    for o in outcomes.iter().filter(|o| !o.note.is_empty()) {
        let _ = writeln!(s, "  {}, {}: {}", o.nat, o.check, o.note);
    }
    if !diagnosed.is_empty() {
        let _ = writeln!(s, "scripted failures, and what natpass said (API, CLI and page):\n{diagnosed}");
    }
    if !failures.is_empty() {
        let _ = writeln!(s, "failures:\n{failures}");
    }
    s
}

/// `12.3 Mbit/s` style.
pub fn format_bps(bps: f64) -> String {
    if bps >= 1e9 { format!("{:.2} Gbit/s", bps / 1e9) } else { format!("{:.1} Mbit/s", bps / 1e6) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientResult;

    fn outcome(check: &str, nat: &str, ok: [bool; 2], bps: Option<f64>) -> Outcome {
        Outcome {
            check: check.to_string(),
            nat: nat.to_string(),
            clients: ok
                .iter()
                .enumerate()
                .map(|(i, &ok)| ClientResult {
                    client: format!("c{}", i + 1),
                    connected: true,
                    data: ok,
                    detail: if ok { "fine".into() } else { "0/5 answered".into() },
                })
                .collect(),
            throughput_bps: bps,
            note: String::new(),
            findings: Vec::new(),
            diagnosis: None,
        }
    }

    #[test]
    fn every_checks_label_fits_the_first_column() {
        for c in crate::Check::all() {
            assert!(c.label().chars().count() <= 34, "{:?}: {:?} is wider than the column", c, c.label());
        }
    }

    #[test]
    fn table_puts_the_nats_side_by_side_and_lists_failures() {
        let t = render(
            &[
                outcome("raw ESP", "natpass", [true, true], None),
                outcome("plain NAT", "natpass", [true, true], Some(2.5e9)),
                outcome("raw ESP", "linux", [true, false], None),
                outcome("plain NAT", "linux", [true, true], Some(3.6e9)),
            ],
            2,
        );
        let esp = t.lines().find(|l| l.starts_with("raw ESP")).unwrap();
        assert!(
            esp.contains("2/2   2/2") && esp.contains("PASS") && esp.contains("2/2   1/2") && esp.contains("FAIL"),
            "{t}"
        );
        let nat = t.lines().find(|l| l.starts_with("plain NAT")).unwrap();
        assert!(nat.contains("2.50 Gbit/s") && nat.contains("3.60 Gbit/s"), "{t}");
        assert!(t.contains("linux, raw ESP, c2: 0/5 answered"), "{t}");
        assert!(!t.contains("natpass, raw ESP, c"), "{t}");
    }
}
