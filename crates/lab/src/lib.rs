//! The natpass VPN lab (`natpass-lab`): real VPN clients and servers through natpass, in
//! network namespaces, next to the same lab through Linux nftables masquerade.
//!
//! Each check starts real software on both ends, sends data through every tunnel from every
//! client, and reports per protocol how many clients connected, how many carried data, and
//! the TCP throughput of the first client through the tunnel (iperf3):
//! - plain NAT: ping, curl (HTTP), traceroute (ICMP time-exceeded and port-unreachable back
//!   through the NAT, RFC 5508), iperf3 TCP;
//! - STUN (RFC 5780 behaviour discovery, the lab's `stun_peer.py`): the mapping must be
//!   endpoint-independent (RFC 4787 REQ-1);
//! - IPsec: strongSwan charon with kernel-libipsec (ESP in user space), IKEv2 and IKEv1 with a
//!   PSK, NAT-T (RFC 3947/7296 §2.23), all clients to one server;
//! - raw ESP (IP protocol 50): the lab's `esp_peer.py` sends AES-CBC/HMAC-SHA-256 ESP from
//!   every client to one server at the same time and checks the answers;
//! - L2TP (RFC 2661): xl2tpd as LAC and LNS; PPTP (RFC 2637): pptp-linux and pptpd; both with
//!   the lab's user-space PPP (`ppp.py`) because this kernel has no PPP.
//!
//! natpass runs as a process of its own (`natpass run` in the router namespace), from the
//! binary [`Options::natpass_bin`] names. The lab's own peers are Python scripts in this
//! crate's `peers/` directory ([`PEERS`]), read at run time from [`Options::peers_dir`].

#![forbid(unsafe_code)]

mod diagnose;
mod ipsec;
mod ipv6;
mod l2tp;
mod plain;
mod pptp;
mod table;
pub mod topology;

pub use table::{format_bps, render};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use topology::{PUBLIC, ROUTER_LAN, SERVER, Topology};

/// The lab's own peers, files in [`Options::peers_dir`]: the user-space PPP that stands in for
/// pppd, the raw ESP peer, the STUN server with its RFC 5780 behaviour-discovery client, and
/// a PPTP server that ends its calls.
pub const PEERS: [&str; 4] = ["ppp.py", "esp_peer.py", "stun_peer.py", "pptp_peer.py"];

/// Where the peers are unless an option says otherwise: this crate's `peers/` directory.
pub fn default_peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// The natpass binary beside another program (`natpass` in the same directory): the lab's
/// default is the one beside `natpass-lab`, as cargo builds both into `target/<profile>/`.
pub fn natpass_beside(program: &Path) -> PathBuf {
    program.with_file_name("natpass")
}

/// Why the lab cannot start here.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    /// Namespaces need root.
    #[error("the lab makes network namespaces and needs root: run it with sudo")]
    NotRoot,
    /// Tools the lab runs are not installed.
    #[error("the lab needs these Debian packages: {} (run scripts/lab-setup.sh)", .0.join(" "))]
    MissingPackages(Vec<&'static str>),
    /// The natpass binary to put in the router namespace is not there.
    #[error(
        "no natpass binary at {}: build it with `cargo build -p natpass` (`--release` for \
         target/release; ./scripts/lab.sh builds both), or name one with --natpass PATH",
        .0.display()
    )]
    NoNatpass(PathBuf),
    /// One of the lab's peers is not in the peers directory.
    #[error(
        "the lab's peer {name} is not in {}: point --peers DIR (or NATPASS_LAB_PEERS) at the \
         natpass-lab crate's peers/ directory",
        .dir.display()
    )]
    NoPeer {
        /// The peer's file name.
        name: &'static str,
        /// Where it was looked for.
        dir: PathBuf,
    },
}

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
    /// IPv6 routed and guarded (RFC 6092): SLAAC, ping, curl, traceroute, inbound refused.
    Ipv6,
    /// strongSwan IKEv2 and raw ESP over IPv6 (RFC 6092 §3.2.4).
    Ipv6Ipsec,
    /// Diagnosis: UDP 500 dropped upstream, strongSwan IKEv2 never answered (natpass only).
    WhyIke500,
    /// Diagnosis: IP fragments dropped upstream, a certificate IKE_AUTH lost (natpass only).
    WhyFragments,
    /// Diagnosis: GRE dropped upstream of a PPTP call (natpass only).
    WhyGre,
    /// Diagnosis: the server's raw ESP dropped on its way back (natpass only).
    WhyEsp,
    /// Diagnosis: PPTP refused because its passthrough is switched off (natpass only).
    WhySwitchOff,
    /// Diagnosis: the PPTP server ends the calls with a Call-Disconnect-Notify (natpass
    /// only).
    WhyPptpCallEnded,
    /// Diagnosis: NAT-T keepalives off, the mappings expire, the server's packets arrive for
    /// them (natpass only; takes over two minutes).
    WhyNatTLost,
    /// Diagnosis: a router upstream with a 1280-byte link sends Fragmentation Needed about
    /// raw ESP (natpass only).
    WhyPathMtu,
    /// Diagnosis: two L2TP/IPsec-style clients to one server from one public address
    /// (natpass only).
    WhyL2tpOneAddress,
    /// The remedy: the same two clients spread over a two-address pool (natpass only).
    WhyL2tpPool,
}

impl Check {
    /// Every check, in the order the lab runs them: the VPNs working ([`Check::WORKING`]),
    /// then the scripted failures natpass must diagnose ([`Check::FAILURES`]).
    pub fn all() -> Vec<Check> {
        Self::WORKING.into_iter().chain(Self::FAILURES).collect()
    }

    /// The checks where every VPN should work (and natpass should find no problem).
    pub const WORKING: [Check; 10] = [
        Check::Nat,
        Check::Stun,
        Check::Ikev2,
        Check::Ikev1,
        Check::Esp,
        Check::L2tp,
        Check::Pptp,
        Check::PptpNoHelper,
        Check::Ipv6,
        Check::Ipv6Ipsec,
    ];

    /// The scripted failures natpass must diagnose (docs/diagnostics.md), natpass only.
    pub const FAILURES: [Check; 10] = [
        Check::WhyIke500,
        Check::WhyFragments,
        Check::WhyGre,
        Check::WhyEsp,
        Check::WhySwitchOff,
        Check::WhyPptpCallEnded,
        Check::WhyNatTLost,
        Check::WhyPathMtu,
        Check::WhyL2tpOneAddress,
        Check::WhyL2tpPool,
    ];

    /// True for a scripted failure ([`Check::FAILURES`]).
    pub fn is_failure(self) -> bool {
        Self::FAILURES.contains(&self)
    }

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
            Check::Ipv6 => "IPv6 SLAAC, ping, curl, traceroute",
            Check::Ipv6Ipsec => "IPv6: IKEv2 and raw ESP",
            Check::WhyIke500 => "why: UDP 500 dropped upstream",
            Check::WhyFragments => "why: IP fragments dropped upstream",
            Check::WhyGre => "why: GRE dropped upstream",
            Check::WhyEsp => "why: ESP dropped on the way back",
            Check::WhySwitchOff => "why: PPTP passthrough off",
            Check::WhyPptpCallEnded => "why: PPTP server ends the calls",
            Check::WhyNatTLost => "why: NAT-T keepalives off",
            Check::WhyPathMtu => "why: 1280-byte link upstream",
            Check::WhyL2tpOneAddress => "why: L2TP/IPsec-style, 1 address",
            Check::WhyL2tpPool => "why: L2TP/IPsec-style, 2-addr pool",
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
    /// The directory with the lab's peers ([`PEERS`]).
    pub peers_dir: PathBuf,
    /// Seconds of iperf3 per throughput measurement (0: none).
    pub iperf_secs: u32,
    /// TOML appended to natpass's config in the router (e.g. `[admin]` for the web admin).
    pub natpass_extra_config: String,
    /// Leave segmentation and checksum offloads on (veth's default): the router then gets
    /// 64 KB super-frames, which natpass takes with PACKET_VNET_HDR.
    pub offloads: bool,
    /// natpass's receive ring: "v3" (blocks) or "v2" (per frame).
    pub rx_ring: String,
    /// natpass's socket backend: "auto" (its default), "af_packet" or "af_xdp".
    pub backend: String,
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
    /// What natpass's diagnosis found during the check (natpass only): for a working check,
    /// the findings that appeared during it (there should be none); for a scripted failure,
    /// the findings about its clients.
    pub findings: Vec<FindingSeen>,
    /// For a scripted failure: what natpass had to find, and whether it did.
    pub diagnosis: Option<Diagnosis>,
}

/// A finding natpass reported, as the lab saw it on the API, the CLI and the page.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FindingSeen {
    /// The LAN client it concerns.
    pub client: String,
    /// Its kind (`ike_never_answered`, ...).
    pub kind: String,
    /// Its title for people.
    pub title: String,
    /// found, cleared or not enough evidence.
    pub status: String,
    /// The fix natpass suggests.
    pub fix: String,
    /// `natpass tunnels --why --client IP` showed its title and fix (`None`: not asked).
    pub cli: Option<bool>,
    /// The VPN Tunnels page's view of the client showed its title and fix (`None`: not asked).
    pub page: Option<bool>,
}

/// What a scripted failure expected natpass to find, and whether it did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Diagnosis {
    /// The expectation, in words.
    pub expected: String,
    /// Met on the API, the CLI and the page.
    pub ok: bool,
}

impl Outcome {
    /// A check's outcome with nothing in it yet.
    pub fn new(check: Check, nat: &str) -> Self {
        Self {
            check: check.label().to_string(),
            nat: nat.to_string(),
            clients: Vec::new(),
            throughput_bps: None,
            note: String::new(),
            findings: Vec::new(),
            diagnosis: None,
        }
    }

    /// A scripted failure passes when natpass diagnosed it as expected; any other check when
    /// every client connected and carried data, and natpass found no problem.
    pub fn passed(&self) -> bool {
        match &self.diagnosis {
            Some(d) => d.ok,
            None => {
                !self.clients.is_empty()
                    && self.clients.iter().all(|c| c.connected && c.data)
                    && self.findings.iter().all(|f| f.status == "not enough evidence")
            }
        }
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
    ("/usr/sbin/radvd", "radvd"),
    ("openssl", "openssl"),
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

/// Why the lab cannot run on this machine (not root, packages missing), if it cannot.
pub fn preflight() -> Result<(), Unready> {
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return Err(Unready::NotRoot);
    }
    let missing = missing_tools();
    if !missing.is_empty() {
        return Err(Unready::MissingPackages(missing));
    }
    Ok(())
}

impl Options {
    /// Why the files these options name are not there, if they are not: the lab's peers, and
    /// the natpass binary when natpass is one of the NATs.
    pub fn check_files(&self) -> Result<(), Unready> {
        self.check_files_for(self.nat)
    }

    /// [`Options::check_files`] for a lab whose router is `nat`.
    fn check_files_for(&self, nat: Nat) -> Result<(), Unready> {
        if nat != Nat::Linux && !self.natpass_bin.is_file() {
            return Err(Unready::NoNatpass(self.natpass_bin.clone()));
        }
        match PEERS.into_iter().find(|name| !self.peers_dir.join(name).is_file()) {
            Some(name) => Err(Unready::NoPeer { name, dir: self.peers_dir.clone() }),
            None => Ok(()),
        }
    }
}

/// Runs the lab and returns every outcome, natpass first.
pub fn run(opts: &Options) -> anyhow::Result<Vec<Outcome>> {
    preflight()?;
    opts.check_files()?;
    if opts.clients == 0 {
        bail!("the lab needs at least one client");
    }
    let nats: &[Nat] = match opts.nat {
        Nat::Both => &[Nat::Natpass, Nat::Linux],
        Nat::Natpass => &[Nat::Natpass],
        Nat::Linux => &[Nat::Linux],
    };
    let checks: Vec<Check> = if opts.checks.is_empty() { Check::all() } else { opts.checks.clone() };
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
            if (c == Check::PptpNoHelper && nat != Nat::Linux) || (c.is_failure() && nat == Nat::Linux) {
                continue;
            }
            eprintln!("lab [{}]: {}", lab.nat_name(), c.label());
            let o = lab
                .check(c)
                .unwrap_or_else(|e| Outcome { note: format!("error: {e:#}"), ..Outcome::new(c, lab.nat_name()) });
            lab.cleanup_between();
            out.push(o);
        }
        lab.stop_router()?;
    }
    Ok(out)
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
    /// natpass's admin, which the lab asks what natpass found (natpass with the lab's own
    /// `[admin]`, not the one of [`Options::natpass_extra_config`]).
    admin: Option<diagnose::Admin>,
    /// A `[nat]` section for natpass's config (a scripted failure's pool), or empty.
    nat_section: String,
    /// natpass's WAN gateway, when a scripted failure puts a router behind the WAN link.
    wan_gateway: Option<&'static str>,
}

impl<'a> Lab<'a> {
    /// Builds the network and starts the router (`nat` is natpass or linux).
    pub fn new(opts: &'a Options, nat: Nat, dir: &Path) -> anyhow::Result<Self> {
        opts.check_files_for(nat)?;
        let t = Topology::up(&opts.prefix, opts.clients, dir, opts.offloads)?;
        // Copied beside the configs, executable whatever the checkout's modes: ppp.py is
        // bind-mounted over pppd.
        for name in PEERS {
            let (from, to) = (opts.peers_dir.join(name), dir.join(name));
            std::fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", to.display()))?;
        }
        let _ = std::fs::remove_file(dir.join("natpass-earlier.log"));
        let admin = match nat {
            Nat::Linux => None,
            _ if !opts.natpass_extra_config.is_empty() => None,
            _ => Some(diagnose::Admin::new(&opts.natpass_bin, &t.dir)?),
        };
        let mut lab = Self { opts, nat, t, admin, nat_section: String::new(), wan_gateway: None };
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
                        "# natpass lab router\n[interfaces]\nrx_ring = \"{}\"\nbackend = \"{}\"\n\n[interfaces.lan]\nname = \"lan0\"\naddress = \"{ROUTER_LAN}/24\"\n\n[interfaces.wan]\nname = \"wan0\"\naddress = \"{PUBLIC}/24\"\n{}\n{}{}",
                        self.opts.rx_ring,
                        self.opts.backend,
                        self.wan_gateway.map_or(String::new(), |g| format!("gateway = \"{g}\"\n")),
                        self.nat_section,
                        match &self.admin {
                            Some(a) => a.config(),
                            None => self.opts.natpass_extra_config.clone(),
                        }
                    ),
                )?;
                self.spawn_natpass(&cfg)?;
            }
        }
        Ok(())
    }

    /// Starts natpass in the router namespace with the config file `cfg`, and waits until it
    /// runs.
    fn spawn_natpass(&mut self, cfg: &Path) -> anyhow::Result<()> {
        let rtr = self.t.ns("rtr");
        self.t.spawn(
            "natpass@rtr",
            &rtr,
            &format!("exec {} run --config {}", self.opts.natpass_bin.display(), cfg.display()),
        )?;
        let t = &mut self.t;
        if !Topology::wait_for(Duration::from_secs(10), || t.log("natpass@rtr").contains("running on")) {
            bail!("natpass did not start with {}: {}", cfg.display(), self.t.log("natpass@rtr"));
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
        let mut o = Outcome::new(c, self.nat_name());
        if c.is_failure() {
            self.failure(&mut o, c)?;
            return Ok(o);
        }
        let before = self.findings_now();
        match c {
            Check::Nat => self.plain(&mut o)?,
            Check::Stun => self.stun(&mut o)?,
            Check::Ikev2 => self.ipsec(&mut o, 2, diagnose::ClientAuth::Psk)?,
            Check::Ikev1 => self.ipsec(&mut o, 1, diagnose::ClientAuth::Psk)?,
            Check::Esp => self.raw_esp(&mut o, 5)?,
            Check::L2tp => self.l2tp(&mut o)?,
            Check::Ipv6 => self.ipv6(&mut o)?,
            Check::Ipv6Ipsec => self.ipv6_ipsec(&mut o)?,
            Check::Pptp => self.pptp(&mut o)?,
            Check::PptpNoHelper => {
                self.linux_ruleset(false)?;
                let r = self.pptp(&mut o);
                self.linux_ruleset(true)?;
                r?
            }
            _ => {}
        }
        // A working VPN must leave natpass with nothing to say: any finding that appeared
        // during the check is a false alarm, and fails it.
        o.findings = self.findings_now().into_iter().filter(|f| !before.contains(f)).collect();
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

    /// Runs one script per client, in every client namespace at once; returns each client
    /// with whether its script succeeded and what it printed.
    fn in_all_clients(&self, script: impl Fn(usize, &str) -> String) -> Vec<(String, bool, String)> {
        let handles: Vec<_> = self
            .t
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (c, script) = (c.clone(), script(i, c));
                std::thread::spawn(move || {
                    let out =
                        std::process::Command::new("ip").args(["netns", "exec", &c, "sh", "-c", &script]).output();
                    let (ok, text) = out
                        .map(|o| (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned()))
                        .unwrap_or_default();
                    (c, ok, text)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    }

    /// Starts one of the lab's own peers ([`PEERS`]; `args` is its file name and arguments) in
    /// `ns` as `name`, and waits until it says it is ready.
    fn start_peer(&mut self, name: &str, ns: &str, args: &str) -> anyhow::Result<()> {
        let script = format!("exec /usr/bin/python3 -u {}/{args}", self.t.dir.display());
        self.t.spawn(name, ns, &script)?;
        let t = &mut self.t;
        if !Topology::wait_for(Duration::from_secs(5), || t.log(name).contains("ready")) {
            bail!("the lab's peer `{args}` did not start: {}", self.t.log(name));
        }
        Ok(())
    }

    /// iperf3 from the first client to `target` through its tunnel, if that client's passed.
    fn tunnel_throughput(&self, o: &mut Outcome, target: &str) {
        if o.clients.first().is_some_and(|c| c.data) {
            let first = self.t.clients[0].clone();
            o.throughput_bps = self.iperf(&first, target);
        }
    }
}
