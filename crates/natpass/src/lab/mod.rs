//! `natpass lab`: real VPN clients and servers through natpass, in network namespaces, next to
//! the same lab through Linux nftables masquerade.
//!
//! Each check starts real software on both ends, sends data through every tunnel from every
//! client, and reports per protocol how many clients connected, how many carried data, and
//! the TCP throughput of the first client through the tunnel (iperf3):
//! - plain NAT: ping, curl (HTTP), traceroute (ICMP time-exceeded and port-unreachable back
//!   through the NAT, RFC 5508), iperf3 TCP;
//! - STUN (RFC 5780 behaviour discovery, [`STUN_PEER`]): the mapping must be
//!   endpoint-independent (RFC 4787 REQ-1);
//! - IPsec: strongSwan charon with kernel-libipsec (ESP in user space), IKEv2 and IKEv1 with a
//!   PSK, NAT-T (RFC 3947/7296 §2.23), all clients to one server;
//! - raw ESP (IP protocol 50): [`ESP_PEER`] sends AES-CBC/HMAC-SHA-256 ESP from every client
//!   to one server at the same time and checks the answers;
//! - L2TP (RFC 2661): xl2tpd as LAC and LNS; PPTP (RFC 2637): pptp-linux and pptpd; both with
//!   the lab's user-space PPP ([`PPP`]) because this kernel has no PPP.

pub mod topology;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use topology::{PUBLIC, ROUTER_LAN, SERVER, SERVER_ALT, Topology};

/// The lab's user-space PPP (stands in for pppd).
pub const PPP: &str = include_str!("ppp.py");
/// The lab's raw ESP peer.
pub const ESP_PEER: &str = include_str!("esp_peer.py");
/// The lab's STUN server and RFC 5780 behaviour-discovery client.
pub const STUN_PEER: &str = include_str!("stun_peer.py");

/// Which NAT runs in the router namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Nat {
    /// natpass on AF_PACKET sockets.
    Natpass,
    /// Linux nftables masquerade with the `pptp` conntrack helper.
    Linux,
    /// Both, one after the other, in one table.
    Both,
}

/// One thing the lab checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Check {
    /// ping, curl, traceroute, iperf3.
    Nat,
    /// RFC 5780 NAT behaviour discovery.
    Stun,
    /// strongSwan IKEv2, NAT-T.
    Ikev2,
    /// strongSwan IKEv1 main mode, NAT-T.
    Ikev1,
    /// Raw ESP from several clients to one server.
    Esp,
    /// xl2tpd LAC to LNS.
    L2tp,
    /// pptp-linux to pptpd.
    Pptp,
    /// PPTP with Linux's pptp conntrack helper removed (Linux NAT only).
    PptpNoHelper,
}

impl Check {
    /// Every check, in the order the lab runs them.
    pub const ALL: [Check; 8] = [
        Check::Nat,
        Check::Stun,
        Check::Ikev2,
        Check::Ikev1,
        Check::Esp,
        Check::L2tp,
        Check::Pptp,
        Check::PptpNoHelper,
    ];

    /// A short name for the table.
    pub fn label(self) -> &'static str {
        match self {
            Check::Nat => "plain NAT: ping, curl, traceroute",
            Check::Stun => "STUN RFC 5780 mapping",
            Check::Ikev2 => "IPsec IKEv2 PSK, NAT-T",
            Check::Ikev1 => "IPsec IKEv1 main mode, NAT-T",
            Check::Esp => "raw ESP (proto 50), SPI learning",
            Check::L2tp => "L2TP (xl2tpd LAC/LNS) + PPP",
            Check::Pptp => "PPTP (pptp/pptpd) GRE + PPP",
            Check::PptpNoHelper => "PPTP, no ct helper (Linux only)",
        }
    }
}

/// What the lab should do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which NAT(s).
    pub nat: Nat,
    /// LAN clients (at least 1).
    pub clients: usize,
    /// The checks to run (empty: all).
    pub checks: Vec<Check>,
    /// Namespace name prefix.
    pub prefix: String,
    /// Working directory for configs and logs.
    pub dir: PathBuf,
    /// The natpass binary to run in the router namespace.
    pub natpass_bin: PathBuf,
    /// Seconds of iperf3 per throughput measurement (0: none).
    pub iperf_secs: u32,
    /// TOML appended to natpass's config in the router (e.g. `[admin]` for the web admin).
    pub natpass_extra_config: String,
    /// Leave segmentation and checksum offloads on (veth's default): the router then gets
    /// 64 KB super-frames, which natpass takes with PACKET_VNET_HDR.
    pub offloads: bool,
}

/// One client's result in one check.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientResult {
    /// The client namespace.
    pub client: String,
    /// The tunnel (or session) came up.
    pub connected: bool,
    /// Data went through it both ways.
    pub data: bool,
    /// What was seen.
    pub detail: String,
}

/// One check under one NAT.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    /// The check.
    pub check: String,
    /// Which NAT.
    pub nat: String,
    /// Per client.
    pub clients: Vec<ClientResult>,
    /// TCP throughput of the first client through the tunnel, bits per second.
    pub throughput_bps: Option<f64>,
    /// Anything else worth knowing (e.g. how the server saw the clients).
    pub note: String,
}

impl Outcome {
    /// True when every client connected and carried data.
    pub fn passed(&self) -> bool {
        !self.clients.is_empty() && self.clients.iter().all(|c| c.connected && c.data)
    }
}

/// The tools the lab runs, and the Debian package each comes from.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
    ("ping", "iputils-ping"),
    ("curl", "curl"),
    ("traceroute", "traceroute"),
    ("iperf3", "iperf3"),
    ("/usr/lib/ipsec/charon", "strongswan-charon"),
    ("swanctl", "strongswan-swanctl"),
    ("xl2tpd", "xl2tpd"),
    ("pptpd", "pptpd"),
    ("pptp", "pptp-linux"),
    ("/usr/sbin/pppd", "ppp"),
    ("/usr/bin/python3", "python3"),
];

/// The Debian packages of the tools that are missing; empty when all are there.
pub fn missing_tools() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = TOOLS
        .iter()
        .filter(|(t, _)| {
            if t.starts_with('/') {
                !Path::new(t).exists()
            } else {
                !std::process::Command::new("sh")
                    .args(["-c", &format!("command -v {t}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            }
        })
        .map(|(_, p)| *p)
        .collect();
    if !std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        out.push("python3-cryptography");
    }
    if !Path::new("/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so").exists() {
        out.push("libcharon-extra-plugins");
    }
    out.dedup();
    out
}

/// Runs the lab and returns every outcome, natpass first.
pub fn run(opts: &Options) -> anyhow::Result<Vec<Outcome>> {
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        bail!("the lab makes network namespaces and needs root: run it with sudo");
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        bail!("the lab needs these Debian packages: {} (run scripts/lab-setup.sh)", missing.join(" "));
    }
    if opts.clients == 0 {
        bail!("the lab needs at least one client");
    }
    let nats: &[Nat] = match opts.nat {
        Nat::Both => &[Nat::Natpass, Nat::Linux],
        Nat::Natpass => &[Nat::Natpass],
        Nat::Linux => &[Nat::Linux],
    };
    let checks: Vec<Check> = if opts.checks.is_empty() { Check::ALL.to_vec() } else { opts.checks.clone() };
    let mut out = Vec::new();
    for &nat in nats {
        let dir = opts.dir.join(match nat {
            Nat::Linux => "linux",
            _ => "natpass",
        });
        let mut lab = match Lab::new(opts, nat, &dir) {
            Ok(l) => l,
            Err(e) if nat == Nat::Linux && !out.is_empty() => {
                eprintln!("lab [linux]: could not set up: {e:#}");
                break;
            }
            Err(e) => return Err(e),
        };
        for &c in &checks {
            if c == Check::PptpNoHelper && nat != Nat::Linux {
                continue;
            }
            eprintln!("lab [{}]: {}", lab.nat_name(), c.label());
            let o = lab.check(c).unwrap_or_else(|e| Outcome {
                check: c.label().to_string(),
                nat: lab.nat_name().to_string(),
                clients: Vec::new(),
                throughput_bps: None,
                note: format!("error: {e:#}"),
            });
            lab.cleanup_between();
            out.push(o);
        }
        lab.stop_router()?;
    }
    Ok(out)
}

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
                    for cl in o.clients.iter().filter(|cl| !(cl.connected && cl.data)) {
                        let _ = writeln!(failures, "  {n}, {c}, {}: {}", cl.client, cl.detail);
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
    if !failures.is_empty() {
        let _ = writeln!(s, "failures:\n{failures}");
    }
    s
}

/// `12.3 Mbit/s` style.
pub fn format_bps(bps: f64) -> String {
    if bps >= 1e9 { format!("{:.2} Gbit/s", bps / 1e9) } else { format!("{:.1} Mbit/s", bps / 1e6) }
}

/// True where the kernel has PPP (`/dev/ppp`): the lab then leaves pppd alone. (Not the case
/// on the machines natpass is developed on, so that path has not been run here.)
fn real_ppp() -> bool {
    Path::new("/dev/ppp").exists()
}

/// The shell prefix that puts the lab's user-space PPP in place of pppd inside a namespace
/// (its private mount namespace), unless the kernel has PPP.
fn ppp_mount(ppp: &Path) -> String {
    if real_ppp() { String::new() } else { format!("mount --bind {} /usr/sbin/pppd && ", ppp.display()) }
}

/// One lab network with its router running; checks can be run one by one (the browser test
/// changes natpass's settings between them).
pub struct Lab<'a> {
    opts: &'a Options,
    nat: Nat,
    t: Topology,
}

impl<'a> Lab<'a> {
    /// Builds the network and starts the router (`nat` is natpass or linux).
    pub fn new(opts: &'a Options, nat: Nat, dir: &Path) -> anyhow::Result<Self> {
        let t = Topology::up(&opts.prefix, opts.clients, dir, opts.offloads)?;
        for (name, text) in [("ppp.py", PPP), ("esp_peer.py", ESP_PEER), ("stun_peer.py", STUN_PEER)] {
            let p = dir.join(name);
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        let mut lab = Self { opts, nat, t };
        lab.start_router(true)?;
        let wan = lab.t.ns("wan");
        lab.t.sh(&wan, "ip addr add 10.20.0.1/32 dev lo")?;
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("4mb.bin"), vec![0x5au8; 4 << 20])?;
        lab.t.spawn(
            "http@wan",
            &wan,
            &format!("exec /usr/bin/python3 -m http.server 8080 --bind {SERVER} --directory {}", www.display()),
        )?;
        lab.t.spawn("iperf3@wan", &wan, "exec iperf3 -s -p 5201")?;
        Ok(lab)
    }

    /// The namespace name for a role (`rtr`, `wan`, `c1`, ...).
    pub fn ns(&self, role: &str) -> String {
        self.t.ns(role)
    }

    /// natpass's log so far.
    pub fn router_log(&self) -> String {
        self.t.log("natpass@rtr")
    }

    fn nat_name(&self) -> &'static str {
        match self.nat {
            Nat::Linux => "linux",
            _ => "natpass",
        }
    }

    fn start_router(&mut self, pptp_helper: bool) -> anyhow::Result<()> {
        let rtr = self.t.ns("rtr");
        match self.nat {
            Nat::Linux => {
                self.t.sh(
                    &rtr,
                    &format!(
                        "ip addr add {ROUTER_LAN}/24 dev lan0 && ip addr add {PUBLIC}/24 dev wan0 && sysctl -qw net.ipv4.ip_forward=1"
                    ),
                )?;
                self.linux_ruleset(pptp_helper)?;
            }
            _ => {
                let cfg = self.t.dir.join("natpass.toml");
                std::fs::write(
                    &cfg,
                    format!(
                        "# natpass lab router\n[interfaces.lan]\nname = \"lan0\"\naddress = \"{ROUTER_LAN}/24\"\n\n[interfaces.wan]\nname = \"wan0\"\naddress = \"{PUBLIC}/24\"\n\n{}",
                        if self.opts.natpass_extra_config.is_empty() {
                            "[admin]\nlisten = \"off\"\n"
                        } else {
                            &self.opts.natpass_extra_config
                        }
                    ),
                )?;
                self.t.spawn(
                    "natpass@rtr",
                    &rtr,
                    &format!("exec {} run --config {}", self.opts.natpass_bin.display(), cfg.display()),
                )?;
                let t = &mut self.t;
                if !Topology::wait_for(Duration::from_secs(10), || t.log("natpass@rtr").contains("running on")) {
                    bail!("natpass did not start: {}", self.t.log("natpass@rtr"));
                }
            }
        }
        Ok(())
    }

    fn linux_ruleset(&mut self, pptp_helper: bool) -> anyhow::Result<()> {
        let rtr = self.t.ns("rtr");
        let helper = if pptp_helper {
            "ct helper pptp-helper { type \"pptp\" protocol tcp; }\n  chain prerouting_f { type filter hook prerouting priority 0; tcp dport 1723 ct helper set \"pptp-helper\"; }\n"
        } else {
            ""
        };
        let rules = format!(
            "flush ruleset\ntable ip lab_nat {{\n  {helper}  chain forward_f {{ type filter hook forward priority 0; policy drop; ct state established,related accept; iifname \"lan0\" oifname \"wan0\" accept; }}\n  chain postrouting_nat {{ type nat hook postrouting priority 100; oifname \"wan0\" masquerade; }}\n}}\n"
        );
        let path = self.t.dir.join("nat.nft");
        std::fs::write(&path, rules)?;
        self.t.sh(&rtr, &format!("nft -f {} && (conntrack -F >/dev/null 2>&1 || true)", path.display()))?;
        Ok(())
    }

    fn stop_router(&mut self) -> anyhow::Result<()> {
        if self.nat != Nat::Linux {
            self.t.stop("natpass@rtr");
            let log = self.t.log("natpass@rtr");
            std::fs::write(self.t.dir.join("natpass-summary.txt"), &log)?;
        }
        Ok(())
    }

    /// Ends the VPN software of a check.
    pub fn cleanup_between(&mut self) {
        let names: Vec<String> = self.t.clients.clone();
        for c in names {
            self.t.stop_in(&c);
        }
        for n in ["charon@wan", "xl2tpd@wan", "pptpd@wan", "esp@wan", "stun@wan"] {
            self.t.stop(n);
        }
        // pptpd forks pptpctrl and a PPP per call: end those (by PID, in our own namespace),
        // but keep the lab's HTTP and iperf3 servers.
        let wan = self.t.ns("wan");
        let _ = self.t.try_sh(
            &wan,
            "for p in $(ip netns pids $(ip netns identify $$)); do \
               c=$(cat /proc/$p/comm 2>/dev/null); \
               if [ \"$c\" = pptpctrl ] || grep -q ppp.py /proc/$p/cmdline 2>/dev/null; then kill $p; fi; done; true",
        );
    }

    /// Runs one check; its VPN software stays up until [`Lab::cleanup_between`].
    pub fn check(&mut self, c: Check) -> anyhow::Result<Outcome> {
        let mut o = Outcome {
            check: c.label().to_string(),
            nat: self.nat_name().to_string(),
            clients: Vec::new(),
            throughput_bps: None,
            note: String::new(),
        };
        match c {
            Check::Nat => self.plain(&mut o)?,
            Check::Stun => self.stun(&mut o)?,
            Check::Ikev2 => self.ipsec(&mut o, 2)?,
            Check::Ikev1 => self.ipsec(&mut o, 1)?,
            Check::Esp => self.raw_esp(&mut o)?,
            Check::L2tp => self.l2tp(&mut o)?,
            Check::Pptp => self.pptp(&mut o)?,
            Check::PptpNoHelper => {
                self.linux_ruleset(false)?;
                let r = self.pptp(&mut o);
                self.linux_ruleset(true)?;
                r?
            }
        }
        Ok(o)
    }

    fn iperf(&self, client: &str, target: &str) -> Option<f64> {
        if self.opts.iperf_secs == 0 {
            return None;
        }
        let out = self
            .t
            .try_sh(
                client,
                &format!("iperf3 -c {target} -p 5201 -t {} -J --connect-timeout 3000", self.opts.iperf_secs),
            )
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["end"]["sum_received"]["bits_per_second"].as_f64()
    }

    fn plain(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        for c in self.t.clients.clone() {
            let ping = self.t.ok(&c, &format!("ping -c 3 -i 0.2 -W 2 {SERVER}"));
            let size = self
                .t
                .try_sh(&c, &format!("curl -s -m 10 -o /dev/null -w '%{{size_download}}' http://{SERVER}:8080/4mb.bin"))
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let curl = size == (4u32 << 20).to_string();
            let trace = self
                .t
                .try_sh(&c, &format!("traceroute -n -q 1 -w 2 -m 4 {SERVER}"))
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let hops: Vec<&str> = trace.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
            let traced = hops.first() == Some(&ROUTER_LAN) && hops.last() == Some(&SERVER);
            o.clients.push(ClientResult {
                client: c.clone(),
                connected: ping,
                data: curl && traced,
                detail: format!(
                    "ping {}, curl {} bytes, traceroute hops {}",
                    if ping { "ok" } else { "lost" },
                    if size.is_empty() { "0" } else { &size },
                    hops.join(" > ")
                ),
            });
        }
        let first = self.t.clients[0].clone();
        o.throughput_bps = self.iperf(&first, SERVER);
        o.note = "iperf3 TCP, first client".to_string();
        Ok(())
    }

    fn stun(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let peer = self.t.dir.join("stun_peer.py");
        self.t.spawn(
            "stun@wan",
            &wan,
            &format!("exec /usr/bin/python3 -u {} server {SERVER} {SERVER_ALT}", peer.display()),
        )?;
        let t = &mut self.t;
        if !Topology::wait_for(Duration::from_secs(5), || t.log("stun@wan").contains("ready")) {
            bail!("the STUN server did not start: {}", self.t.log("stun@wan"));
        }
        let mut filtering = Vec::new();
        for c in self.t.clients.clone() {
            let out = self
                .t
                .try_sh(&c, &format!("timeout 30 /usr/bin/python3 -u {} client {SERVER}", peer.display()))
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
            let mapping = v["mapping"].as_str().unwrap_or("");
            if let Some(f) = v["filtering"].as_str() {
                filtering.push(f.to_string());
            }
            o.clients.push(ClientResult {
                client: c,
                connected: v["mapped"].is_string(),
                data: mapping == "endpoint-independent",
                detail: if v["mapped"].is_string() {
                    format!(
                        "mapped {}, {mapping} mapping, {} filtering",
                        v["mapped"].as_str().unwrap_or(""),
                        v["filtering"].as_str().unwrap_or("?")
                    )
                } else {
                    format!("no STUN answer: {}", out.trim())
                },
            });
        }
        filtering.dedup();
        o.note = format!("mapping must be endpoint-independent; filtering seen: {}", filtering.join(", "));
        Ok(())
    }

    fn charon(&mut self, ns: &str, role: &str, swanctl: &str) -> anyhow::Result<String> {
        let d = self.t.dir.join(format!("sw-{ns}"));
        let run = d.join("run");
        std::fs::create_dir_all(&run)?;
        for sub in [
            "x509", "x509ca", "private", "rsa", "ecdsa", "pkcs8", "pkcs12", "pubkey", "x509crl", "x509ocsp", "x509aa",
            "x509ac",
        ] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        for f in std::fs::read_dir(&run)? {
            let _ = std::fs::remove_file(f?.path());
        }
        std::fs::write(
            d.join("strongswan.conf"),
            format!(
                "charon {{\n  load_modular = yes\n  install_routes = yes\n  plugins {{\n    include /etc/strongswan.d/charon/*.conf\n    kernel-libipsec {{ load = yes }}\n    resolve {{ load = no }}\n    stroke {{ load = no }}\n  }}\n  filelog {{\n    lab {{ path = {}/charon.log\n      time_format = %H:%M:%S\n      flush_line = yes\n      default = 1\n      ike = 1\n    }}\n  }}\n  syslog {{ daemon {{ default = -1 }} }}\n}}\ninclude /etc/strongswan.d/*.conf\n",
                d.display()
            ),
        )?;
        std::fs::write(d.join("swanctl.conf"), swanctl)?;
        let _ = std::fs::remove_file(d.join("charon.log"));
        // charon's PID file is fixed at /run/charon.pid: give each charon its own /run, in
        // the private mount namespace `ip netns exec` makes.
        self.t.spawn(
            role,
            ns,
            &format!(
                "mount --bind {run} /run && STRONGSWAN_CONF={conf} exec /usr/lib/ipsec/charon",
                run = run.display(),
                conf = d.join("strongswan.conf").display()
            ),
        )?;
        let vici = run.join("charon.vici");
        if !Topology::wait_for(Duration::from_secs(10), || vici.exists()) {
            bail!("charon in {ns} did not start: {}", self.t.log(role));
        }
        let uri = format!("unix://{}", vici.display());
        self.t.sh(
            ns,
            &format!("swanctl --load-all --noprompt --uri {uri} --file {}", d.join("swanctl.conf").display()),
        )?;
        Ok(uri)
    }

    fn ipsec(&mut self, o: &mut Outcome, version: u8) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let server = format!(
            "connections {{\n rw {{\n  version = {version}\n  local_addrs = {SERVER}\n  pools = rwpool\n  proposals = aes128-sha256-modp2048,default\n  rekey_time = 0\n  local {{ auth = psk\n id = server@lab }}\n  remote {{ auth = psk }}\n  children {{ rw {{ local_ts = 10.20.0.0/24\n esp_proposals = aes128-sha256-modp2048,aes128-sha256\n rekey_time = 0 }} }}\n }}\n}}\npools {{ rwpool {{ addrs = 10.10.10.0/24 }} }}\nsecrets {{ ike-any {{ secret = \"natpass-lab-psk\" }} }}\n"
        );
        let server_uri = self.charon(&wan, "charon@wan", &server)?;
        let mut uris = Vec::new();
        for (i, c) in self.t.clients.clone().iter().enumerate() {
            let conf = format!(
                "connections {{\n lab {{\n  version = {version}\n  remote_addrs = {SERVER}\n  vips = 0.0.0.0\n  proposals = aes128-sha256-modp2048\n  rekey_time = 0\n  local {{ auth = psk\n id = client{}@lab }}\n  remote {{ auth = psk\n id = server@lab }}\n  children {{ lab {{ remote_ts = 10.20.0.0/24\n esp_proposals = aes128-sha256-modp2048\n rekey_time = 0 }} }}\n }}\n}}\nsecrets {{ ike-any {{ secret = \"natpass-lab-psk\" }} }}\n",
                i + 1
            );
            uris.push(self.charon(c, &format!("{c}:charon"), &conf)?);
        }
        // All clients start at once: several IKE SAs to one server through one address.
        let mut handles = Vec::new();
        for (c, uri) in self.t.clients.clone().into_iter().zip(&uris) {
            let script = format!("swanctl --initiate --child lab --timeout 20 --uri {uri}");
            handles.push((
                c.clone(),
                std::thread::spawn(move || {
                    std::process::Command::new("ip")
                        .args(["netns", "exec", &c, "sh", "-c", &script])
                        .output()
                        .map(|o| (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned()))
                        .unwrap_or((false, String::new()))
                }),
            ));
        }
        for (c, h) in handles {
            let (up, log) = h.join().unwrap_or((false, String::new()));
            let ping = up && self.t.ok(&c, "ping -c 3 -i 0.2 -W 2 10.20.0.1");
            let vip = self
                .t
                .try_sh(&c, "ip -4 -o addr show | awk '/10\\.10\\.10\\./ {print $4}'")
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            o.clients.push(ClientResult {
                client: c,
                connected: up,
                data: ping,
                detail: if up {
                    format!("virtual IP {vip}, ping 10.20.0.1 {}", if ping { "ok" } else { "lost" })
                } else {
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                },
            });
        }
        let sas = self.t.try_sh(&wan, &format!("swanctl --list-sas --uri {server_uri}"))?;
        let peers: Vec<String> = String::from_utf8_lossy(&sas.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with("remote"))
            .filter_map(|l| l.split(" @ ").nth(1))
            .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
            .collect();
        o.note = format!("server sees {}", peers.join(", "));
        self.tunnel_throughput(o, "10.20.0.1");
        Ok(())
    }

    fn raw_esp(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let peer = self.t.dir.join("esp_peer.py");
        self.t.spawn("esp@wan", &wan, &format!("exec /usr/bin/python3 -u {} server", peer.display()))?;
        let t = &mut self.t;
        if !Topology::wait_for(Duration::from_secs(5), || t.log("esp@wan").contains("ready")) {
            bail!("the ESP server did not start: {}", self.t.log("esp@wan"));
        }
        // Every client at once, each with its own SPI, to the one server.
        let mut handles = Vec::new();
        for (i, c) in self.t.clients.clone().into_iter().enumerate() {
            let script = format!(
                "/usr/bin/python3 -u {} client {SERVER} {:#x} 5",
                peer.display(),
                0x1000_0000 + (i as u32) * 16
            );
            handles.push((
                c.clone(),
                std::thread::spawn(move || {
                    std::process::Command::new("ip")
                        .args(["netns", "exec", &c, "sh", "-c", &script])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default()
                }),
            ));
        }
        for (c, h) in handles {
            let out = h.join().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
            let answered = v["answered"].as_u64().unwrap_or(0);
            o.clients.push(ClientResult {
                client: c,
                connected: answered > 0,
                data: answered == 5,
                detail: format!("{answered}/5 encrypted packets answered by the server"),
            });
        }
        o.note = "5 packets per client, AES-CBC + HMAC-SHA-256".to_string();
        Ok(())
    }

    fn ppp_up(&self, c: &str, prefix: &str) -> bool {
        let t = &self.t;
        Topology::wait_for(Duration::from_secs(15), || {
            t.try_sh(c, "ip -4 -o addr show").is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(prefix))
        })
    }

    /// Whether `c`'s PPP came up with an address in `net` (a `a.b.c.` prefix) and pings the
    /// server's end (`net` + 1).
    fn ppp_result(&self, o: &mut Outcome, c: &str, net: &str) {
        let server = format!("{net}1");
        let up = self.ppp_up(c, net);
        let ping = up && self.t.ok(c, &format!("ping -c 3 -i 0.2 -W 2 {server}"));
        o.clients.push(ClientResult {
            client: c.to_string(),
            connected: up,
            data: ping,
            detail: format!(
                "PPP {}, ping {server} {}",
                if up { "up" } else { "down" },
                if ping { "ok" } else { "lost" }
            ),
        });
    }

    /// iperf3 from the first client to `target` through its tunnel, if that client's passed.
    fn tunnel_throughput(&self, o: &mut Outcome, target: &str) {
        if o.clients.first().is_some_and(|c| c.data) {
            let first = self.t.clients[0].clone();
            o.throughput_bps = self.iperf(&first, target);
        }
    }

    fn l2tp(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let dir = self.t.dir.clone();
        let ppp = dir.join("ppp.py");
        let xl2tpd = |t: &mut Topology, ns: &str, name: &str, conf: String| -> anyhow::Result<PathBuf> {
            let d = dir.join(format!("l2tp-{ns}"));
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join("xl2tpd.conf"), conf)?;
            std::fs::write(d.join("options"), format!("noauth\nnodetach\nlogfile {}/ppp.log\n", d.display()))?;
            std::fs::write(d.join("secrets"), "")?;
            let control = d.join("control");
            let _ = std::fs::remove_file(&control);
            t.spawn(
                name,
                ns,
                &format!(
                    "{pre}exec xl2tpd -D -c {d}/xl2tpd.conf -s {d}/secrets -p {d}/xl2tpd.pid -C {c}",
                    pre = ppp_mount(&ppp),
                    d = d.display(),
                    c = control.display()
                ),
            )?;
            Ok(control)
        };
        let lns = format!(
            "[global]\nlisten-addr = {SERVER}\nport = 1701\naccess control = no\n[lns default]\nip range = 10.30.0.10-10.30.0.50\nlocal ip = 10.30.0.1\nrequire authentication = no\nname = natpass-lab-lns\npppoptfile = {}/l2tp-{wan}/options\nlength bit = yes\n",
            dir.display()
        );
        xl2tpd(&mut self.t, &wan, "xl2tpd@wan", lns)?;
        std::thread::sleep(Duration::from_millis(500));
        let mut controls = Vec::new();
        for c in self.t.clients.clone() {
            let lac = format!(
                "[global]\nport = 1701\naccess control = no\n[lac lab]\nlns = {SERVER}\nname = lac-{c}\nrequire authentication = no\npppoptfile = {}/l2tp-{c}/options\nlength bit = yes\nredial = no\n",
                dir.display()
            );
            let control = xl2tpd(&mut self.t, &c, &format!("{c}:xl2tpd"), lac)?;
            controls.push((c, control));
        }
        for (_, control) in &controls {
            if !Topology::wait_for(Duration::from_secs(5), || control.exists()) {
                bail!("xl2tpd did not create {}", control.display());
            }
            std::fs::write(control, "c lab\n").with_context(|| format!("writing {}", control.display()))?;
        }
        for (c, _) in &controls {
            self.ppp_result(o, c, "10.30.0.");
        }
        self.tunnel_throughput(o, "10.30.0.1");
        o.note = "user-space PPP over the L2TP session".to_string();
        Ok(())
    }

    fn pptp(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let dir = self.t.dir.clone();
        let ppp = dir.join("ppp.py");
        let d = dir.join("pptpd");
        std::fs::create_dir_all(&d)?;
        std::fs::write(
            d.join("pptpd.conf"),
            format!("option {}/options\nlocalip 10.40.0.1\nremoteip 10.40.0.10-50\n", d.display()),
        )?;
        std::fs::write(d.join("options"), format!("noauth\nlogfile {}/ppp.log\n", d.display()))?;
        self.t.spawn(
            "pptpd@wan",
            &wan,
            &format!(
                "exec pptpd --conf {d}/pptpd.conf --fg --pidfile {d}/pptpd.pid --listen {SERVER}{}",
                if real_ppp() { String::new() } else { format!(" --ppp {}", ppp.display()) },
                d = d.display()
            ),
        )?;
        std::thread::sleep(Duration::from_millis(500));
        std::fs::create_dir_all("/var/run/pptp").context("creating /var/run/pptp (pptp's socket directory)")?;
        for c in self.t.clients.clone() {
            // pptp finds its call manager by a socket in /var/run/pptp: give each client its
            // own, or the second one would reuse the first one's control connection.
            let cd = dir.join(format!("pptp-{c}"));
            std::fs::create_dir_all(cd.join("run"))?;
            self.t.spawn(
                &format!("{c}:pptp"),
                &c,
                &format!(
                    "mount --bind {run} /var/run/pptp && {pre}exec pptp {SERVER} --nohostroute -- noauth nodefaultroute logfile {cd}/ppp.log",
                    run = cd.join("run").display(),
                    pre = ppp_mount(&ppp),
                    cd = cd.display()
                ),
            )?;
        }
        for c in self.t.clients.clone() {
            self.ppp_result(o, &c, "10.40.0.");
        }
        self.tunnel_throughput(o, "10.40.0.1");
        o.note = "GRE v1 + user-space PPP".to_string();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
