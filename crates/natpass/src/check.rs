//! `natpass check --config FILE`: validates a config file as `natpass run` and a reload would,
//! without touching an interface, and says what it would run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::anyhow;

/// The file's summary when it is valid; its first mistake (line, key and fix) otherwise.
pub fn check(path: &Path) -> anyhow::Result<String> {
    let text = natpass_config::read_file(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
    let c = natpass_config::parse_config(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut o = format!("{}: OK\n", path.display());
    match &c.links {
        Some((lan, wan)) => {
            let gw = wan.gateway.map(|g| format!(", gateway {g}")).unwrap_or_default();
            let _ = writeln!(o, "  LAN {} {}/{}", lan.name, lan.addr, lan.net.len());
            let _ = writeln!(o, "  WAN {} {}/{}{gw}", wan.name, wan.addr, wan.net.len());
            for (side, l) in [("LAN", lan), ("WAN", wan)] {
                if let Some(v6) = &l.v6 {
                    let gw = v6.gateway.map(|g| format!(", gateway {g}")).unwrap_or_default();
                    let _ = writeln!(o, "  {side} IPv6 {}/{}{gw}", v6.addr, v6.prefix.len());
                }
            }
            if let Some(ra) = &c.ra {
                let dns: Vec<String> = ra.dns.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    o,
                    "  Router Advertisements on the LAN every {} s, router lifetime {} s{}",
                    ra.interval.as_secs(),
                    ra.lifetime.as_secs(),
                    if dns.is_empty() { String::new() } else { format!(", DNS {}", dns.join(", ")) }
                );
            }
            let _ = writeln!(o, "  backend {:?}, rx_ring {:?}", c.backend, c.rx_ring);
        }
        None => {
            let _ = writeln!(
                o,
                "  no [interfaces.lan] and [interfaces.wan]: fine for `natpass replay`, not for `natpass run`"
            );
        }
    }
    let e = &c.engine;
    let addrs: Vec<String> = e.public_addrs.iter().map(ToString::to_string).collect();
    let _ = writeln!(o, "  public addresses {}", addrs.join(", "));
    let _ = writeln!(o, "  filtering {}", natpass_config::filtering_name(e.filtering));
    let on = |b: bool| if b { "enabled" } else { "disabled" };
    let p = &e.passthrough;
    let _ = writeln!(o, "  passthrough ipsec {}, pptp {}, l2tp {}", on(p.ipsec), on(p.pptp), on(p.l2tp));
    let admin = c.admin.listen.map_or_else(|| "off".to_string(), |l| l.to_string());
    let _ = writeln!(o, "  admin {admin}, {} user(s)", c.admin.users.len());
    Ok(o)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bad_file_names_its_line_and_a_good_one_its_interfaces() {
        let dir = std::env::temp_dir().join(format!("natpass-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("natpass.toml");
        std::fs::write(&path, "[interfaces.lan]\nname = \"eth1\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"eth0\"\naddress = \"203.0.113.1/24\"\n").unwrap();
        let ok = check(&path).unwrap();
        assert!(ok.contains(": OK") && ok.contains("LAN eth1 192.168.1.1/24"), "{ok}");
        std::fs::write(&path, "[timeouts]\nudp = 30\n").unwrap();
        let e = check(&path).unwrap_err().to_string();
        assert!(e.contains("line 2: timeouts.udp") && e.contains("120"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
