//! Reloading the config file (SIGHUP): the file is read and validated whole, then what can
//! change while natpass runs is applied live through the data plane's [`Command`]s
//! (passthrough switches, timers, filtering) and the control plane's users and tokens;
//! what cannot (interfaces, backend, the admin's listen address, NAT addresses and limits) is
//! named as needing a restart. A file that does not validate changes nothing.
//!
//! [`plan`] is a plain function from the running settings and the new configuration to the
//! commands and the lines for the log, tested without threads; [`reload`] carries it out.

use natpass_config::{Config, filtering_name};
use natpass_engine::Protocol;

use crate::api::{PROTOCOLS, Status, TimerSecs};
use crate::interface::{Answer, Command, Handle};
use crate::server::Control;

/// What a reload does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Commands for the data plane, in order.
    pub live: Vec<Command>,
    /// What changes live, one line per key: `passthrough.pptp: true → false`.
    pub diff: Vec<String>,
    /// Keys whose new value waits for a restart: `interfaces.backend: af_packet → af_xdp`.
    pub restart: Vec<String>,
}

fn line(key: &str, old: impl std::fmt::Display, new: impl std::fmt::Display) -> String {
    format!("{key}: {old} → {new}")
}

/// The plan from the running data plane's settings (`running`, a status snapshot), the
/// configuration natpass started with (`started`: what needs a restart is compared with it),
/// the one it last loaded (`previous`: users and tokens) and the file's new configuration.
pub fn plan(running: &Status, started: &Config, previous: &Config, new: &Config) -> Plan {
    let mut p = Plan::default();
    for proto in PROTOCOLS {
        let sw = &new.engine.passthrough;
        let on = match proto {
            Protocol::Ipsec => sw.ipsec,
            Protocol::Pptp => sw.pptp,
            Protocol::L2tp => sw.l2tp,
        };
        let old = running.passthrough.get(proto);
        if old != on {
            p.live.push(Command::SetPassthrough(proto, on));
            p.diff.push(line(&format!("passthrough.{}", proto.name()), old, on));
        }
    }
    let timers = TimerSecs::of(&new.engine.timeouts);
    if timers != running.timeouts {
        p.live.push(Command::SetTimeouts(new.engine.timeouts));
        for ((key, old), (_, now)) in running.timeouts.entries().into_iter().zip(timers.entries()) {
            if old != now {
                p.diff.push(line(&format!("timeouts.{key}"), old, now));
            }
        }
    }
    let filtering = filtering_name(new.engine.filtering);
    if filtering != running.filtering {
        p.live.push(Command::SetFiltering(new.engine.filtering));
        p.diff.push(line("nat.filtering", &running.filtering, filtering));
    }
    let (a, b) = (&previous.admin, &new.admin);
    if a.users != b.users {
        let names = |c: &Config| c.admin.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>().join(", ");
        let changed = a.users.len() == b.users.len() && names(previous) == names(new);
        p.diff.push(if changed {
            format!("admin.users: password hash changed ({})", names(new))
        } else {
            line("admin.users", format!("[{}]", names(previous)), format!("[{}]", names(new)))
        });
    }
    if a.api_tokens_sha256 != b.api_tokens_sha256 {
        p.diff.push(line("admin.api_tokens_sha256", a.api_tokens_sha256.len(), b.api_tokens_sha256.len()));
    }
    restart_keys(&mut p.restart, started, new);
    p
}

fn restart_keys(out: &mut Vec<String>, started: &Config, new: &Config) {
    let mut key = |name: &str, old: String, now: String| {
        if old != now {
            out.push(line(name, old, now));
        }
    };
    let link = |c: &Config, side: usize| {
        c.links.as_ref().map_or_else(
            || "(none)".to_string(),
            |(lan, wan)| {
                let l = if side == 0 { lan } else { wan };
                let gw = l.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                let v6 = l.v6.as_ref().map_or_else(String::new, |v6| {
                    let gw = v6.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                    format!(", {}/{}{gw}", v6.addr, v6.prefix.len())
                });
                format!("{} {}/{}{gw}{v6}", l.name, l.addr, l.net.len())
            },
        )
    };
    key("interfaces.lan", link(started, 0), link(new, 0));
    key("interfaces.wan", link(started, 1), link(new, 1));
    key("interfaces.lan.router_advertisements", format!("{:?}", started.ra), format!("{:?}", new.ra));
    key("interfaces.backend", format!("{:?}", started.backend), format!("{:?}", new.backend));
    key("interfaces.rx_ring", format!("{:?}", started.rx_ring), format!("{:?}", new.rx_ring));
    key("interfaces.busy_poll", started.busy_poll.to_string(), new.busy_poll.to_string());
    key("interfaces.fast_path", started.fast_path.to_string(), new.fast_path.to_string());
    let (e0, e1) = (&started.engine, &new.engine);
    let list = |v: &[std::net::Ipv4Addr]| format!("{v:?}");
    key("nat.public_addrs", list(&e0.public_addrs), list(&e1.public_addrs));
    key("nat.lan_networks", format!("{:?}", e0.lan_networks), format!("{:?}", e1.lan_networks));
    key("nat.lan_addr", e0.lan_addr.to_string(), e1.lan_addr.to_string());
    for (name, old, now) in [
        ("nat.max_sessions", e0.max_sessions, e1.max_sessions),
        ("nat.max_sessions_per_host", e0.max_sessions_per_host, e1.max_sessions_per_host),
        ("nat.wan_mtu", u32::from(e0.wan_mtu), u32::from(e1.wan_mtu)),
        ("nat.lan_mtu", u32::from(e0.lan_mtu), u32::from(e1.lan_mtu)),
        ("nat.max_held_fragments", e0.max_held_fragments, e1.max_held_fragments),
        ("nat.max_held_fragment_bytes", e0.max_held_fragment_bytes, e1.max_held_fragment_bytes),
        ("nat.icmp_errors_per_sec", e0.icmp_errors_per_sec, e1.icmp_errors_per_sec),
    ] {
        key(name, old.to_string(), now.to_string());
    }
    key("nat.tcp_window_check", e0.tcp_window_check.to_string(), e1.tcp_window_check.to_string());
    let (a, b) = (&started.admin, &new.admin);
    let listen = |c: &Config| c.admin.listen.map_or_else(|| "off".to_string(), |l| l.to_string());
    key("admin.listen", listen(started), listen(new));
    key("admin.server_names", format!("{:?}", a.server_names), format!("{:?}", b.server_names));
    key("admin.tls_cert/tls_key", format!("{:?}", a.tls), format!("{:?}", b.tls));
    key("admin.token_file", a.token_file.display().to_string(), b.token_file.display().to_string());
    key("admin.session_minutes", a.session_minutes.to_string(), b.session_minutes.to_string());
}

/// Why a reload did not (fully) happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The data plane did not answer; nothing was changed.
    #[error("{0}")]
    NoAnswer(#[from] crate::interface::NoAnswer),
    /// The data plane refused a change (the commands before it were applied).
    #[error("the router refused {what}: {why}")]
    Refused {
        /// The command.
        what: String,
        /// Its reason.
        why: String,
    },
}

/// Carries out a reload of `new` (the file's text `text`, already validated) against the
/// running data plane behind `handle` and, when the admin runs, its users, tokens and config
/// store (`control`). `started` is the configuration natpass started with, `previous` the
/// one it last loaded. Blocks: call it from a thread of its own, never from the data plane's
/// or the control plane's.
pub fn reload(
    handle: &Handle,
    control: Option<&Control>,
    started: &Config,
    previous: &Config,
    text: String,
    new: &Config,
) -> Result<Plan, ReloadError> {
    let running = match handle.ask_blocking(Command::Status)? {
        Answer::Status(s) => s,
        other => return Err(ReloadError::Refused { what: "a status request".into(), why: format!("{other:?}") }),
    };
    let plan = plan(&running, started, previous, new);
    for cmd in &plan.live {
        match handle.ask_blocking(cmd.clone())? {
            Answer::Refused(why) => return Err(ReloadError::Refused { what: format!("{cmd:?}"), why }),
            _ => continue,
        }
    }
    if let Some(c) = control {
        c.adopt(text, new);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use natpass_engine::{Engine, Instant};

    use super::*;
    use crate::interface::{EventLog, PlaneInfo, answer};

    const LINKS: &str = "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n";

    fn running(c: &Config) -> Status {
        let mut e = Engine::new(c.engine.clone(), Instant::ZERO).unwrap();
        match answer(&mut e, &PlaneInfo::default(), &mut EventLog::default(), Instant::ZERO, Command::Status) {
            Answer::Status(s) => *s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn live_keys_become_commands_and_the_rest_waits_for_a_restart() {
        let old = natpass_config::parse_config(LINKS).unwrap();
        let new = natpass_config::parse_config(&format!(
            "{}\n[passthrough]\npptp = false\n[timeouts]\nudp = 600\n[nat]\nfiltering = \"endpoint-independent\"\nmax_sessions = 1000\n[admin]\nlisten = \"127.0.0.1:9090\"\n",
            LINKS.replace("lan0", "eth1")
        ))
        .unwrap();
        let p = plan(&running(&old), &old, &old, &new);
        assert!(matches!(p.live[0], Command::SetPassthrough(Protocol::Pptp, false)), "{:?}", p.live);
        assert!(matches!(p.live[1], Command::SetTimeouts(_)));
        assert!(matches!(p.live[2], Command::SetFiltering(_)));
        assert_eq!(
            p.diff,
            [
                "passthrough.pptp: true → false",
                "timeouts.udp: 300 → 600",
                "nat.filtering: address-dependent → endpoint-independent"
            ]
        );
        assert_eq!(
            p.restart,
            [
                "interfaces.lan: lan0 192.168.1.1/24 → eth1 192.168.1.1/24",
                "nat.max_sessions: 1048576 → 1000",
                "admin.listen: 127.0.0.1:8080 → 127.0.0.1:9090"
            ]
        );
    }

    #[test]
    fn the_same_file_is_no_change() {
        let c = natpass_config::parse_config(LINKS).unwrap();
        let p = plan(&running(&c), &c, &c, &c);
        assert!(p.live.is_empty() && p.diff.is_empty() && p.restart.is_empty(), "{p:?}");
    }

    #[test]
    fn a_change_made_through_the_admin_is_not_made_again() {
        // The admin turned PPTP off and saved it; the file says so, the router too.
        let started = natpass_config::parse_config(LINKS).unwrap();
        let new = natpass_config::parse_config(&format!("{LINKS}[passthrough]\npptp = false\n")).unwrap();
        let p = plan(&running(&new), &started, &started, &new);
        assert!(p.live.is_empty(), "{:?}", p.live);
    }

    #[test]
    fn users_and_tokens_are_live() {
        let started = natpass_config::parse_config(LINKS).unwrap();
        let new = natpass_config::parse_config(&format!(
            "{LINKS}[admin]\napi_tokens_sha256 = [\"{}\"]\n[[admin.users]]\nname = \"ops\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$x$y\"\n",
            "a".repeat(64)
        ))
        .unwrap();
        let p = plan(&running(&started), &started, &started, &new);
        assert_eq!(p.diff, ["admin.users: [] → [ops]", "admin.api_tokens_sha256: 0 → 1"]);
        assert!(p.restart.is_empty(), "{:?}", p.restart);
    }
}
