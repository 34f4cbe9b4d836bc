//! Scripted failures, and natpass's diagnosis of them (docs/diagnostics.md).
//!
//! Each failure breaks the path upstream of the router, as a provider's or a server's firewall
//! would (nftables in the server's namespace), or switches a passthrough off; then the real VPN
//! software runs as in the working checks, and the lab asks natpass what went wrong on each of
//! its three faces, for every client:
//! - the API, `GET /api/v1/findings?client=IP`;
//! - the CLI, `natpass tunnels --why --client IP`;
//! - the VPN Tunnels page's view of the client, `/vpn/tunnels?client=IP`, after logging in.
//!
//! The finding must be the right kind (with its fix) and appear on all three. The failures:
//! - UDP 500 dropped upstream: strongSwan's IKE_SA_INIT is never answered (RFC 7296 §2.1
//!   retransmissions) → `ike_never_answered`;
//! - IP fragments dropped upstream: an IKE_AUTH with an RSA-4096 certificate and IKEv2
//!   fragmentation (RFC 7383) off leaves as IP fragments and is lost, after an answered
//!   IKE_SA_INIT → `ike_large_message_lost`;
//! - GRE (protocol 47) dropped upstream: the PPTP control connection (RFC 2637) comes up, PPP's
//!   LCP leaves in GRE and nothing comes back → `gre_one_way`;
//! - the server's ESP (RFC 4303) dropped on its way back: the raw ESP peer's packets leave
//!   and none returns → `esp_one_way`, and the clients natpass holds back while the first waits
//!   → `esp_server_busy`;
//! - PPTP's passthrough switched off (with the CLI) → `passthrough_disabled`;
//! - a PPTP server that ends each call with a Call-Disconnect-Notify, result code 3 (RFC 2637
//!   §2.13; the lab's `pptp_peer.py`, since pptpd closes the control connection instead) →
//!   `pptp_call_failed`, the code decoded;
//! - NAT-T keepalives off (RFC 3948 §4) and the tunnels quiet past natpass's UDP timer (at
//!   RFC 4787 REQ-5's floor, 120 s): the server's ESP in UDP then arrives for public ports
//!   that are gone → `nat_t_mapping_lost`;
//! - a server one router beyond the WAN link, over a 1280-byte link: the raw ESP peer's first
//!   packet (1400 bytes, DF) draws Fragmentation Needed from that router (RFC 1191) →
//!   `path_mtu`, with the MTU;
//! - two L2TP/IPsec-style clients to one server from one public address: the server takes
//!   only port 1701 (as an IPsec transport policy keyed by address and port 1701 does), so
//!   the second client, mapped to another port, is never answered →
//!   `l2tp_one_client_per_address`;
//! - the remedy: the same with a two-address pool. natpass pairs each client with its own
//!   address (RFC 4787 REQ-2), both keep port 1701, both connect, and nothing is found.
//!
//! natpass is restarted before each failure, so every finding is that failure's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use natpass_control::api::{Findings, Tunnels, path};
use natpass_control::web::esc;

use super::ipsec::EspServer;
use super::pptp::PptpServer;
use super::topology::{LAN_NET, PUBLIC, SERVER, Topology};
use super::{Check, Diagnosis, FindingSeen, Lab, Outcome};

/// The lab's admin user and password (natpass's admin listens on the router namespace's
/// loopback only).
const USER: &str = "lab";
const PASSWORD: &str = "natpass-lab-admin";
/// Where natpass's admin listens, in the router namespace.
const ADMIN: &str = "http://127.0.0.1:8080";
/// The second public address of the pool failure, on the WAN link beside [`PUBLIC`].
const POOL_SECOND: &str = "203.0.113.2";
/// The far server of the path MTU failure, one router (the server's namespace) beyond the
/// WAN link, and that router's address on the far link.
const FAR_SERVER: &str = "198.51.100.10";
const FAR_ROUTER: &str = "198.51.100.1";
/// The far link's MTU.
const FAR_MTU: u32 = 1280;
/// natpass's UDP timer in the NAT-T failure: RFC 4787 REQ-5's floor, the shortest it takes.
const UDP_TIMER: Duration = Duration::from_secs(120);
/// How long the lab waits for natpass to conclude, after the VPN software gave up.
const CONCLUDE: Duration = Duration::from_secs(25);

/// natpass's admin as the lab runs it: a user with a known password, and the CLI's token.
pub(crate) struct Admin {
    hash: String,
    token: PathBuf,
    jar: PathBuf,
}

impl Admin {
    /// Hashes the lab's password with `natpass hash-password`; files go in `dir`.
    pub(crate) fn new(natpass: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut child = std::process::Command::new(natpass)
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("running {} hash-password", natpass.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin.write_all(format!("{PASSWORD}\n").as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || hash.is_empty() {
            bail!("natpass hash-password failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Self { hash, token: dir.join("api.token"), jar: dir.join("admin.cookies") })
    }

    /// natpass's `[admin]` section.
    pub(crate) fn config(&self) -> String {
        format!(
            "[admin]\nlisten = \"127.0.0.1:8080\"\ntoken_file = \"{}\"\n\n[[admin.users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n",
            self.token.display(),
            self.hash
        )
    }
}

/// What a scripted failure must make natpass say.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Every client: this finding.
    Each(&'static str),
    /// Every client one of these, and at least one client the first.
    EachOneOf(&'static str, &'static str),
    /// One client connects and carries data; every other: this finding.
    OneConnects(&'static str),
    /// Every client connects and carries data, each from a public address of its own, and
    /// nothing is found.
    AllConnectApart,
}

impl Expect {
    fn of(c: Check) -> Self {
        match c {
            Check::WhyIke500 => Expect::Each("ike_never_answered"),
            Check::WhyFragments => Expect::Each("ike_large_message_lost"),
            Check::WhyGre => Expect::Each("gre_one_way"),
            Check::WhyEsp => Expect::EachOneOf("esp_one_way", "esp_server_busy"),
            Check::WhySwitchOff => Expect::Each("passthrough_disabled"),
            Check::WhyPptpCallEnded => Expect::Each("pptp_call_failed"),
            Check::WhyNatTLost => Expect::Each("nat_t_mapping_lost"),
            Check::WhyPathMtu => Expect::Each("path_mtu"),
            Check::WhyL2tpOneAddress => Expect::OneConnects("l2tp_one_client_per_address"),
            _ => Expect::AllConnectApart,
        }
    }

    fn words(self) -> String {
        match self {
            Expect::Each(k) => format!("every client: {k}"),
            Expect::EachOneOf(a, b) => format!("every client: {a} or {b}, at least one {a}"),
            Expect::OneConnects(k) => format!("one client connects, every other: {k}"),
            Expect::AllConnectApart => "every client connects from its own public address, nothing found".into(),
        }
    }

    /// Whether the findings (per client, in the order of the lab's clients, from the API)
    /// and the clients' results meet the expectation.
    fn met(self, o: &Outcome, seen: &[Vec<FindingSeen>]) -> bool {
        let has = |fs: &[FindingSeen], k: &str| fs.iter().any(|f| f.kind == k && f.status == "found");
        let up = |i: usize| o.clients.get(i).is_some_and(|c| c.connected && c.data);
        match self {
            Expect::Each(k) => !seen.is_empty() && seen.iter().all(|fs| has(fs, k)),
            Expect::EachOneOf(a, b) => {
                seen.iter().all(|fs| has(fs, a) || has(fs, b)) && seen.iter().any(|fs| has(fs, a))
            }
            Expect::OneConnects(k) => {
                let connected: Vec<usize> = (0..seen.len()).filter(|&i| up(i)).collect();
                connected.len() == 1 && (0..seen.len()).filter(|i| !connected.contains(i)).all(|i| has(&seen[i], k))
            }
            Expect::AllConnectApart => {
                (0..seen.len()).all(up) && seen.iter().all(|fs| fs.iter().all(|f| f.status == "not enough evidence"))
            }
        }
    }
}

/// The upstream firewall a failure needs, as nftables rules in the server's namespace (an
/// empty string: none).
fn upstream_rules(c: Check) -> &'static str {
    match c {
        Check::WhyIke500 => {
            "table ip lab_fault {\n  chain in { type filter hook input priority -10; udp dport 500 drop; }\n}\n"
        }
        // Before reassembly: the netdev ingress hook sees the fragments themselves.
        Check::WhyFragments => {
            "table netdev lab_fault {\n  chain in { type filter hook ingress device \"eth0\" priority -500; ip frag-off & 0x3fff != 0 drop; }\n}\n"
        }
        // The server's own GRE and ESP are sent on to an address nobody has, and lost there:
        // dropped in its output hook, the server's software would see a send error and end
        // the call, which no upstream filter does.
        Check::WhyGre => {
            "table ip lab_fault {\n  chain in { type filter hook input priority -10; ip protocol gre drop; }\n  chain out { type route hook output priority -10; ip protocol gre ip daddr set 203.0.113.99; }\n}\n"
        }
        Check::WhyEsp => {
            "table ip lab_fault {\n  chain out { type route hook output priority -10; ip protocol esp ip daddr set 203.0.113.99; }\n}\n"
        }
        // An L2TP/IPsec server's transport-mode policy is for the client's address and
        // port 1701: anything else from it is not L2TP it takes.
        Check::WhyL2tpOneAddress | Check::WhyL2tpPool => {
            "table ip lab_fault {\n  chain in { type filter hook input priority -10; udp dport 1701 udp sport != 1701 drop; }\n}\n"
        }
        _ => "",
    }
}

/// How the lab's IPsec clients authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// The lab's PSK: every IKE message is small.
    Psk,
    /// The PSK, with the clients' NAT-T keepalives off: a quiet tunnel's mapping expires.
    PskWithoutKeepalives,
    /// An RSA-4096 certificate, with IKEv2 fragmentation off: IKE_AUTH is larger than the
    /// path MTU and leaves as IP fragments.
    LargeCertificate,
}

/// Collapses runs of whitespace, so wrapped CLI text compares with the API's.
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Lab<'_> {
    /// The LAN address of the lab's client `i` (0-based).
    fn client_ip(i: usize) -> String {
        format!("{LAN_NET}.{}", 10 + i)
    }

    /// `GET` of an admin API path with the CLI's token, parsed as the API's type `T`; `None`
    /// without the lab's admin.
    fn api<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let Some(a) = &self.admin else { return Ok(None) };
        let rtr = self.t.ns("rtr");
        let out = self.t.sh(
            &rtr,
            &format!("curl -sf --max-time 5 -H \"Authorization: Bearer $(cat {})\" '{ADMIN}{path}'", a.token.display()),
        )?;
        Ok(Some(serde_json::from_str(&out).with_context(|| format!("natpass's {path} is not JSON: {out}"))?))
    }

    /// What the API's findings list holds now (found and cleared, every client), or nothing
    /// without the lab's admin.
    pub(crate) fn findings_now(&self) -> Vec<FindingSeen> {
        match self.api(path::FINDINGS) {
            Ok(Some(v)) => findings_seen(v),
            Ok(None) => Vec::new(),
            Err(e) => vec![FindingSeen {
                client: String::new(),
                kind: "(the lab could not ask natpass)".into(),
                title: String::new(),
                status: format!("{e:#}"),
                fix: String::new(),
                cli: None,
                page: None,
            }],
        }
    }

    /// `natpass tunnels --why --client IP`, as printed.
    fn cli_why(&self, client: &str) -> anyhow::Result<String> {
        let Some(a) = &self.admin else { bail!("natpass runs without the lab's admin") };
        self.t.sh(
            &self.t.ns("rtr"),
            &format!(
                "{} tunnels --why --client {client} --token-file {}",
                self.opts.natpass_bin.display(),
                a.token.display()
            ),
        )
    }

    /// The VPN Tunnels page's view of `client`, after logging in as the lab's user.
    fn page_view(&self, client: &str) -> anyhow::Result<String> {
        let Some(a) = &self.admin else { bail!("natpass runs without the lab's admin") };
        let jar = a.jar.display();
        let _ = std::fs::remove_file(&a.jar);
        let page = self.t.sh(
            &self.t.ns("rtr"),
            &format!(
                "csrf=$(curl -sf --max-time 5 -c {jar} -b {jar} {ADMIN}/login | sed -n 's/.*name=\"csrf\" value=\"\\([^\"]*\\)\".*/\\1/p' | head -n1) && \
                 curl -sf --max-time 10 -o /dev/null -c {jar} -b {jar} --data-urlencode user={USER} --data-urlencode password={PASSWORD} --data-urlencode csrf=$csrf {ADMIN}/login && \
                 curl -sf --max-time 5 -b {jar} '{ADMIN}/vpn/tunnels?client={client}'"
            ),
        )?;
        if !page.contains("What happened to") {
            bail!(
                "the page is not the client's view (was the login refused?): {}",
                page.chars().take(300).collect::<String>()
            );
        }
        Ok(page)
    }

    /// Stops natpass and starts it again with the current settings (its earlier log is kept
    /// in `natpass-earlier.log`).
    fn restart_router(&mut self) -> anyhow::Result<()> {
        self.t.stop("natpass@rtr");
        let earlier = self.t.log("natpass@rtr");
        let path = self.t.dir.join("natpass-earlier.log");
        let mut all = std::fs::read_to_string(&path).unwrap_or_default();
        all.push_str(&earlier);
        std::fs::write(&path, all)?;
        self.start_router(true)
    }

    /// Runs one scripted failure and checks natpass's diagnosis of it.
    pub(crate) fn failure(&mut self, o: &mut Outcome, c: Check) -> anyhow::Result<()> {
        if self.admin.is_none() {
            bail!("the scripted failures need natpass with the lab's own admin (no extra config)");
        }
        self.nat_section = match c {
            Check::WhyL2tpPool => format!("[nat]\npublic_addrs = [\"{PUBLIC}\", \"{POOL_SECOND}\"]\n\n"),
            Check::WhyNatTLost => format!("[timeouts]\nudp = {}\n\n", UDP_TIMER.as_secs()),
            _ => String::new(),
        };
        // natpass reaches the far server of the path MTU failure through the server's
        // namespace.
        self.wan_gateway = (c == Check::WhyPathMtu).then_some(SERVER);
        self.restart_router()?;
        let wan = self.t.ns("wan");
        let rules = upstream_rules(c);
        if !rules.is_empty() {
            let path = self.t.dir.join("fault.nft");
            std::fs::write(&path, rules)?;
            self.t.sh(&wan, &format!("nft -f {}", path.display()))?;
        }
        // The failure stays in place until natpass's three faces were read: a failure that
        // ends is a finding that clears.
        let diagnosed = self.run_and_ask(o, c);
        if !rules.is_empty() {
            let _ = self.t.try_sh(&wan, "nft delete table ip lab_fault; nft delete table netdev lab_fault; true");
        }
        if c == Check::WhySwitchOff {
            self.switch_pptp("enable")?;
        }
        diagnosed
    }

    /// Runs the VPN software of failure `c` and asks natpass what it found.
    fn run_and_ask(&mut self, o: &mut Outcome, c: Check) -> anyhow::Result<()> {
        self.break_and_run(o, c)?;
        let expect = Expect::of(c);
        let n = self.t.clients.len();
        // natpass concludes on its own timers (docs/diagnostics.md): ask until the
        // expectation is met or natpass had its time.
        let mut seen: Vec<Vec<FindingSeen>> = Vec::new();
        Topology::wait_for(CONCLUDE, || {
            seen = (0..n)
                .map(|i| {
                    self.api(&format!("{}?client={}", path::FINDINGS, Self::client_ip(i)))
                        .ok()
                        .flatten()
                        .map(findings_seen)
                        .unwrap_or_default()
                })
                .collect();
            expect.met(o, &seen)
        });
        // The same findings on the CLI and the page, title and fix.
        for (i, fs) in seen.iter_mut().enumerate() {
            let ip = Self::client_ip(i);
            let cli = self.cli_why(&ip).map(|s| words(&s));
            let page = self.page_view(&ip);
            for f in fs.iter_mut() {
                let (title, fix) = (f.title.clone(), f.fix.clone());
                f.cli = Some(cli.as_ref().is_ok_and(|s| s.contains(&title) && s.contains(&words(&fix))));
                f.page = Some(page.as_ref().is_ok_and(|p| {
                    p.contains(&format!("<b>{}</b>", esc(&title)))
                        && (fix.is_empty() || p.contains(&format!("<b>Fix:</b> {}", esc(&fix))))
                }));
            }
            if let Err(e) = &cli {
                o.note = format!("{}; {ip}: the CLI failed: {e:#}", o.note);
            }
            if let Err(e) = &page {
                o.note = format!("{}; {ip}: the page failed: {e:#}", o.note);
            }
        }
        let shown = seen.iter().flatten().all(|f| f.cli == Some(true) && f.page == Some(true));
        let mut ok = expect.met(o, &seen) && shown;
        if matches!(expect, Expect::AllConnectApart) {
            let publics = self.l2tp_publics()?;
            o.note = format!("{}; L2TP tunnels leave from {}", o.note, publics.join(", "));
            let mut distinct = publics.clone();
            distinct.sort();
            distinct.dedup();
            ok &= publics.len() == n && distinct.len() == n;
        }
        for (i, fs) in seen.iter().enumerate() {
            let kinds: Vec<String> = fs.iter().map(|f| format!("{} ({})", f.kind, f.status)).collect();
            if let Some(cr) = o.clients.get_mut(i) {
                cr.detail = format!(
                    "{}; natpass found: {}",
                    cr.detail,
                    if kinds.is_empty() { "nothing".to_string() } else { kinds.join(", ") }
                );
            }
        }
        o.findings = seen.into_iter().flatten().collect();
        o.diagnosis = Some(Diagnosis { expected: expect.words(), ok });
        Ok(())
    }

    /// Breaks what `c` breaks that the firewall does not, and runs the VPN software.
    fn break_and_run(&mut self, o: &mut Outcome, c: Check) -> anyhow::Result<()> {
        match c {
            Check::WhyIke500 => self.ipsec(o, 2, ClientAuth::Psk),
            Check::WhyFragments => self.ipsec(o, 2, ClientAuth::LargeCertificate),
            Check::WhyGre => self.pptp(o),
            // Long enough for a client natpass holds back (esp_server_busy) to be let in and
            // then go one way too.
            Check::WhyEsp => self.raw_esp(o, 10),
            Check::WhySwitchOff => {
                self.switch_pptp("disable")?;
                self.pptp(o)
            }
            // Result code 3, Admin Shutdown.
            Check::WhyPptpCallEnded => self.pptp_to(o, PptpServer::EndsCalls(3)),
            Check::WhyNatTLost => {
                self.ipsec(o, 2, ClientAuth::PskWithoutKeepalives)?;
                // Quiet past natpass's UDP timer, and a little for its sweep.
                std::thread::sleep(UDP_TIMER + Duration::from_secs(10));
                // The server then sends through each tunnel: ESP in UDP from its port 4500, to
                // public ports whose mappings are gone.
                let wan = self.t.ns("wan");
                for c in self.t.clients.clone() {
                    let vip = self
                        .t
                        .sh(&c, "ip -4 -o addr show | awk '/10\\.10\\.10\\./ {split($4, a, \"/\"); print a[1]}'")?;
                    let vip = vip.trim();
                    if !vip.is_empty() {
                        let _ = self.t.try_sh(&wan, &format!("ping -c 3 -i 0.5 -W 1 -I 10.20.0.1 {vip}"));
                    }
                }
                Ok(())
            }
            Check::WhyPathMtu => {
                let far = self.far_server()?;
                let to = EspServer { ns: &far, addr: FAR_SERVER, first_size: Some(1400) };
                self.raw_esp_to(o, &to, 4)
            }
            _ => self.l2tp(o),
        }
    }

    /// A server one router beyond the WAN link: the server's namespace routes to it over a
    /// link with an MTU of [`FAR_MTU`], and so answers larger packets with DF set with
    /// Fragmentation Needed (RFC 1191, RFC 792). Returns its namespace.
    fn far_server(&mut self) -> anyhow::Result<String> {
        let (wan, far) = (self.t.ns("wan"), self.t.add_namespace("far")?);
        if !self.t.ok(&far, "ip link show eth0") {
            self.t.sh(&wan, &format!("ip link add eth1 type veth peer name eth0 netns {far}"))?;
            self.t.sh(
                &wan,
                &format!("ip addr add {FAR_ROUTER}/24 dev eth1 && ip link set eth1 mtu {FAR_MTU} up && sysctl -qw net.ipv4.ip_forward=1"),
            )?;
            self.t.sh(
                &far,
                &format!(
                    "ip addr add {FAR_SERVER}/24 dev eth0 && ip link set eth0 mtu {FAR_MTU} up && ip route add default via {FAR_ROUTER}"
                ),
            )?;
        }
        Ok(far)
    }

    /// `natpass passthrough pptp enable|disable`, with the CLI.
    fn switch_pptp(&self, state: &str) -> anyhow::Result<()> {
        let Some(a) = &self.admin else { bail!("natpass runs without the lab's admin") };
        self.t.sh(
            &self.t.ns("rtr"),
            &format!("{} passthrough pptp {state} --token-file {}", self.opts.natpass_bin.display(), a.token.display()),
        )?;
        Ok(())
    }

    /// The public address of every L2TP tunnel natpass lists.
    fn l2tp_publics(&self) -> anyhow::Result<Vec<String>> {
        let Some(t) = self.api::<Tunnels>(path::TUNNELS)? else { return Ok(Vec::new()) };
        Ok(t.tunnels
            .iter()
            .filter(|t| t.protocol == "L2TP")
            .map(|t| t.public.split(':').next().unwrap_or(&t.public).to_string())
            .collect())
    }
}

/// The findings of a `GET /api/v1/findings` answer, not yet looked for on the CLI and page.
fn findings_seen(v: Findings) -> Vec<FindingSeen> {
    v.findings
        .into_iter()
        .map(|f| FindingSeen {
            client: f.client,
            kind: f.kind,
            title: f.title,
            status: f.status,
            fix: f.fix,
            cli: None,
            page: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientResult;

    fn seen(kind: &str, status: &str) -> FindingSeen {
        FindingSeen {
            client: String::new(),
            kind: kind.into(),
            title: String::new(),
            status: status.into(),
            fix: String::new(),
            cli: None,
            page: None,
        }
    }

    fn outcome(up: [bool; 2]) -> Outcome {
        let mut o = Outcome::new(Check::WhyL2tpOneAddress, "natpass");
        o.clients = up
            .iter()
            .map(|&u| ClientResult { client: "c".into(), connected: u, data: u, detail: String::new() })
            .collect();
        o
    }

    #[test]
    fn a_cleared_or_missing_finding_does_not_meet_the_expectation() {
        let e = Expect::Each("gre_one_way");
        let o = outcome([false, false]);
        assert!(e.met(&o, &[vec![seen("gre_one_way", "found")], vec![seen("gre_one_way", "found")]]));
        assert!(!e.met(&o, &[vec![seen("gre_one_way", "found")], vec![seen("gre_one_way", "cleared")]]));
        assert!(!e.met(&o, &[vec![seen("gre_one_way", "found")], vec![]]));
        assert!(!e.met(&o, &[]), "no clients is no diagnosis");
    }

    #[test]
    fn one_address_needs_exactly_one_client_through_and_the_other_explained() {
        let e = Expect::OneConnects("l2tp_one_client_per_address");
        let explained = vec![seen("l2tp_one_client_per_address", "found")];
        assert!(e.met(&outcome([false, true]), &[explained.clone(), vec![]]));
        assert!(!e.met(&outcome([false, false]), &[explained.clone(), explained.clone()]));
        assert!(!e.met(&outcome([false, true]), &[vec![], vec![]]));
    }

    #[test]
    fn the_remedy_must_connect_everyone_with_nothing_found() {
        let e = Expect::AllConnectApart;
        assert!(e.met(&outcome([true, true]), &[vec![], vec![seen("x", "not enough evidence")]]));
        assert!(!e.met(&outcome([true, true]), &[vec![seen("l2tp_one_client_per_address", "cleared")], vec![]]));
        assert!(!e.met(&outcome([true, false]), &[vec![], vec![]]));
    }

    #[test]
    fn esp_one_way_allows_the_held_back_client_but_needs_one_way_somewhere() {
        let e = Expect::EachOneOf("esp_one_way", "esp_server_busy");
        let o = outcome([false, false]);
        assert!(e.met(&o, &[vec![seen("esp_one_way", "found")], vec![seen("esp_server_busy", "found")]]));
        assert!(!e.met(&o, &[vec![seen("esp_server_busy", "found")], vec![seen("esp_server_busy", "found")]]));
    }
}
