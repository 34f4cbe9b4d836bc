//! IPv6 through the router, routed and guarded (RFC 6092), with every client at once: the
//! clients configure themselves by SLAAC (RFC 4862) from the router's Router Advertisements
//! (RFC 4861 §6.2; natpass's own, or radvd's for Linux), then ping the server and the router,
//! fetch a file over HTTP, and traceroute to the server (hop 1: the router's Time Exceeded,
//! RFC 4443 §3.3); and a connection from the WAN to a LAN host's listening port must be
//! refused (RFC 6092 §3.3 REC-11: unsolicited inbound is dropped), and counted by the router.
//!
//! natpass is restarted for the check with IPv6 in its config (and afterwards without, so the
//! other checks run as before); the kernel of the router namespace keeps IPv6 off, natpass owns
//! it. The Linux column routes with the kernel, an RFC 6092 style nftables `ip6` ruleset
//! (established and related back in, LAN to WAN out, ESP, AH and IKE (UDP 500, 4500) in per
//! RFC 6092 §3.2.4, the ICMPv6 of RFC 4890 §4.3, everything else in dropped and counted) and
//! radvd for the advertisements.

use std::time::Duration;

use anyhow::{Context, bail};

use super::ipsec::{psk_local, swanctl_client, swanctl_server};
use super::topology::Topology;
use super::{ClientResult, Lab, Nat, Outcome};

/// The LAN prefix (documentation space, RFC 3849).
const LAN6: &str = "2001:db8:1::";
/// How the LAN's addresses start as `ip` prints them (`2001:db8:1:0:...`).
const LAN6_ADDRS: &str = "2001:db8:1:";
/// The router's LAN address.
const ROUTER_LAN6: &str = "2001:db8:1::1";
/// The router's WAN address.
const PUBLIC6: &str = "2001:db8:ff::2";
/// The server's address.
const SERVER6: &str = "2001:db8:ff::10";
/// The port the server's IPv6 HTTP server listens on.
const HTTP6_PORT: u16 = 8081;
/// The port each client listens on for the unsolicited inbound connection.
const INBOUND_PORT: u16 = 8090;

/// The sysctls that turn IPv6 on for `dev` in a namespace (the topology turns it off).
fn ipv6_on(dev: &str) -> String {
    format!(
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 net.ipv6.conf.{dev}.disable_ipv6=0"
    )
}

/// The sysctls that turn it off again.
fn ipv6_off(dev: &str) -> String {
    format!(
        "sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
    )
}

/// The shell lines that turn IPv6 on in a client and wait for SLAAC: a global address on the
/// LAN prefix, out of Duplicate Address Detection, and a default route through the router's
/// link-local address; they print `addr ADDRESS`, or fail.
fn slaac_script() -> String {
    format!(
        "{} && for i in $(seq 1 100); do \
           a=$(ip -6 -o addr show dev eth0 scope global | grep -v tentative | grep -o '{LAN6_ADDRS}[0-9a-f:]*' | head -1); \
           [ -n \"$a\" ] && ip -6 route show default | grep -q 'via fe80' && break; sleep 0.2; done; \
         [ -n \"$a\" ] || exit 1; echo \"addr $a\"",
        ipv6_on("eth0")
    )
}

/// A listener on `addr` that answers every connection with an empty HTTP 200 (Python's
/// http.server looks its address up in the DNS before it listens, which takes seconds in a
/// namespace without one).
fn inbound_listener(addr: &str) -> String {
    format!(
        "exec /usr/bin/python3 -c 'import socket\ns = socket.socket(socket.AF_INET6)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind((\"{addr}\", {INBOUND_PORT}))\ns.listen()\n\
         while True:\n    c, _ = s.accept()\n    c.recv(1024)\n    c.sendall(b\"HTTP/1.0 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n\")\n    c.close()\n'"
    )
}

/// The RFC 6092 style forward chain for the Linux column.
fn rfc6092_ruleset() -> String {
    "table ip6 lab_v6 {\n  chain forward {\n    type filter hook forward priority 0; policy drop;\n    \
     ct state established,related accept\n    ct state invalid drop\n    \
     iifname \"lan0\" oifname \"wan0\" accept\n    \
     # RFC 4890 §4.3.1: errors and echo that must pass (related ones are accepted above)\n    \
     icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept\n    \
     # RFC 6092 §3.2.4: IPsec and IKE in\n    \
     meta l4proto { esp, ah } accept\n    udp dport { 500, 4500 } accept\n    \
     iifname \"wan0\" counter name unsolicited drop\n  }\n  counter unsolicited { }\n}\n"
        .to_string()
}

impl Lab<'_> {
    pub(super) fn ipv6(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let refused = self.with_ipv6(o, Self::ipv6_clients)?.unwrap_or(0);
        let counted = refused > 0;
        for c in &mut o.clients {
            c.data &= counted;
        }
        o.note = format!(
            "{}; unsolicited inbound IPv6 dropped and counted by the router: {refused}",
            match self.nat {
                Nat::Linux => "kernel routing, nftables RFC 6092 forward chain, radvd",
                _ => "natpass's own Router Advertisements and Neighbor Discovery",
            }
        );
        Ok(())
    }

    /// IPsec over IPv6 (RFC 6092 §3.2.4): strongSwan IKEv2 from every client at once to the
    /// server (UDP 500, then 4500 with ESP in UDP: kernel-libipsec here carries ESP in UDP
    /// only), and the raw ESP peer (IP protocol 50) from every client at once.
    pub(super) fn ipv6_ipsec(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        self.with_ipv6(o, Self::ipv6_vpn)?;
        o.note = "IKEv2 PSK to the server's IPv6 address (ESP in UDP 4500), then 5 raw ESP packets per client, \
                  AES-CBC + HMAC-SHA-256, inner IPv4"
            .to_string();
        Ok(())
    }

    /// Sets IPv6 up on the server, the router (natpass with IPv6, or Linux) and the clients,
    /// runs `body`, counts the unsolicited inbound packets the router dropped, and goes back
    /// to IPv4 only whatever happened.
    fn with_ipv6(
        &mut self,
        o: &mut Outcome,
        body: fn(&mut Self, &mut Outcome) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<u64>> {
        let (rtr, wan) = (self.t.ns("rtr"), self.t.ns("wan"));
        self.t.sh(
            &wan,
            &format!(
                "{} && ip -6 addr add {SERVER6}/64 dev eth0 nodad && ip -6 route add {LAN6}/64 via {PUBLIC6}",
                ipv6_on("eth0")
            ),
        )?;
        let www = self.t.dir.join("www");
        self.t.spawn(
            "http6@wan",
            &wan,
            &format!(
                "exec /usr/bin/python3 -m http.server {HTTP6_PORT} --bind {SERVER6} --directory {}",
                www.display()
            ),
        )?;
        let up = match self.nat {
            Nat::Linux => self.linux_ipv6_router(&rtr),
            _ => self.restart_natpass_with_ipv6(),
        };
        let result = up.and_then(|()| body(self, o));
        let refused = self.ipv6_refused_count(&rtr);
        self.t.stop("http6@wan");
        let _ = self
            .t
            .try_sh(&wan, &format!("ip -6 route flush dev eth0; ip -6 addr flush dev eth0; {}", ipv6_off("eth0")));
        for c in self.t.clients.clone() {
            self.t.stop(&format!("{c}:inbound6"));
            let _ = self.t.try_sh(&c, &format!("ip -6 addr flush dev eth0; {}", ipv6_off("eth0")));
        }
        match self.nat {
            Nat::Linux => {
                self.t.stop("radvd@rtr");
                let _ = self.t.try_sh(
                    &rtr,
                    &format!(
                        "nft delete table ip6 lab_v6; ip -6 addr flush dev lan0; ip -6 addr flush dev wan0; \
                         sysctl -qw net.ipv6.conf.all.forwarding=0; {}; {}",
                        ipv6_off("lan0"),
                        ipv6_off("wan0")
                    ),
                );
            }
            _ => {
                self.t.stop("natpass@rtr");
                self.start_router(true)?;
            }
        }
        result.map(|()| refused)
    }

    /// IKEv2 and raw ESP over IPv6, every client at once.
    fn ipv6_vpn(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let slaac = self.in_all_clients(|_, _| slaac_script());
        let wan = self.t.ns("wan");
        self.charon(&wan, "charon@wan", &swanctl_server(2, SERVER6, true), true)?;
        let peer = self.t.dir.join("esp_peer.py");
        self.start_peer("esp@wan", &wan, "esp_peer.py server6")?;
        let mut uris = Vec::new();
        for (i, c) in self.t.clients.clone().iter().enumerate() {
            uris.push(self.charon(
                c,
                &format!("{c}:charon"),
                &swanctl_client(2, SERVER6, true, &psk_local(i + 1)),
                true,
            )?);
        }
        // All clients at once: IKEv2, a ping through the tunnel, then raw ESP.
        let results = self.in_all_clients(|i, _| {
            format!(
                "swanctl --initiate --child lab --timeout 20 --uri {} >/dev/null 2>&1 && echo ike-up; \
                 ping -c 3 -i 0.2 -W 2 10.20.0.1 >/dev/null && echo tunnel-ping; \
                 /usr/bin/python3 -u {} client {SERVER6} {:#x} 5",
                uris[i],
                peer.display(),
                0x2000_0000 + (i as u32) * 16
            )
        });
        for ((c, _, out), (_, got_addr, addr)) in results.into_iter().zip(slaac) {
            let ike = out.lines().any(|l| l == "ike-up");
            let ping = out.lines().any(|l| l == "tunnel-ping");
            let v: serde_json::Value =
                out.lines().find(|l| l.starts_with('{')).and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default();
            let answered = v["answered"].as_u64().unwrap_or(0);
            o.clients.push(ClientResult {
                client: c,
                connected: got_addr && ike,
                data: ping && answered == 5,
                detail: format!(
                    "SLAAC {}, IKEv2 {}, ping 10.20.0.1 through it {}, raw ESP {answered}/5 answered",
                    addr.lines().find_map(|l| l.strip_prefix("addr ")).unwrap_or("no address"),
                    if ike { "up" } else { "down" },
                    if ping { "ok" } else { "lost" },
                ),
            });
        }
        Ok(())
    }

    /// natpass again, with IPv6 on both sides and Router Advertisements on the LAN.
    fn restart_natpass_with_ipv6(&mut self) -> anyhow::Result<()> {
        let cfg = self.t.dir.join("natpass.toml");
        let text = std::fs::read_to_string(&cfg).with_context(|| format!("reading {}", cfg.display()))?;
        let text = text
            .replacen(
                "name = \"lan0\"\n",
                &format!("name = \"lan0\"\naddress6 = \"{ROUTER_LAN6}/64\"\nra_interval = 10\n"),
                1,
            )
            .replacen("name = \"wan0\"\n", &format!("name = \"wan0\"\naddress6 = \"{PUBLIC6}/64\"\n"), 1);
        if !text.contains("address6") {
            bail!("natpass's lab config has no [interfaces.lan] name line to add IPv6 to:\n{text}");
        }
        let cfg6 = self.t.dir.join("natpass-ipv6.toml");
        std::fs::write(&cfg6, text)?;
        self.t.stop("natpass@rtr");
        self.spawn_natpass(&cfg6)
    }

    /// The Linux router: IPv6 on, forwarding, the RFC 6092 ruleset, radvd.
    fn linux_ipv6_router(&mut self, rtr: &str) -> anyhow::Result<()> {
        self.t.sh(
            rtr,
            &format!(
                "{} && {} && ip -6 addr add {ROUTER_LAN6}/64 dev lan0 nodad && ip -6 addr add {PUBLIC6}/64 dev wan0 nodad \
                 && sysctl -qw net.ipv6.conf.all.forwarding=1",
                ipv6_on("lan0"),
                ipv6_on("wan0")
            ),
        )?;
        let rules = self.t.dir.join("ipv6.nft");
        std::fs::write(&rules, rfc6092_ruleset())?;
        self.t.sh(rtr, &format!("nft -f {}", rules.display()))?;
        let conf = self.t.dir.join("radvd.conf");
        std::fs::write(
            &conf,
            format!(
                "interface lan0 {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  \
                 prefix {LAN6}/64 {{ AdvOnLink on; AdvAutonomous on; }};\n}};\n"
            ),
        )?;
        let pid = self.t.dir.join("radvd.pid");
        self.t.spawn(
            "radvd@rtr",
            rtr,
            &format!("exec /usr/sbin/radvd --nodaemon -C {} -p {} -m stderr", conf.display(), pid.display()),
        )?;
        Ok(())
    }

    /// Every client at once: SLAAC, then ping, curl, traceroute; then the inbound connection
    /// from the WAN to each client.
    fn ipv6_clients(&mut self, o: &mut Outcome) -> anyhow::Result<()> {
        let slaac = slaac_script();
        let results = self.in_all_clients(|_, _| {
            format!(
                "{slaac}; \
                 ping -6 -c 3 -i 0.2 -W 2 {ROUTER_LAN6} >/dev/null && echo router-ping; \
                 ping -6 -c 3 -i 0.2 -W 2 {SERVER6} >/dev/null && echo server-ping; \
                 echo \"curl $(curl -6 -s -m 10 -o /dev/null -w '%{{size_download}}' http://[{SERVER6}]:{HTTP6_PORT}/4mb.bin)\"; \
                 traceroute -6 -n -q 1 -w 2 -m 4 {SERVER6} | tail -n +2 | awk '{{print \"hop\", $2}}'"
            )
        });
        let wan = self.t.ns("wan");
        for (c, ok, text) in results {
            let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("");
            let addr = field("addr ").to_string();
            let hops: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("hop ")).collect();
            let slaac = ok && !addr.is_empty();
            let router_ping = text.lines().any(|l| l == "router-ping");
            let ping = text.lines().any(|l| l == "server-ping");
            let size = field("curl ");
            let curl = size == (4u32 << 20).to_string();
            let traced = hops.first() == Some(&ROUTER_LAN6) && hops.last() == Some(&SERVER6);
            // The unsolicited connection: a listener on the client, reachable from the client
            // itself, must not be reachable from the WAN.
            let mut inbound = String::from("not tried");
            if slaac {
                self.t.spawn(&format!("{c}:inbound6"), &c, &inbound_listener(&addr))?;
                let url = format!("http://[{addr}]:{INBOUND_PORT}/");
                let t = &self.t;
                let listening = Topology::wait_for(Duration::from_secs(5), || {
                    t.ok(&c, &format!("curl -s -m 2 -o /dev/null {url}"))
                });
                inbound = if !listening {
                    let why = self.t.try_sh(&c, &format!("curl -sS -m 2 -o /dev/null {url} 2>&1"))?;
                    format!(
                        "not tried: the client's listener did not answer the client itself ({})",
                        String::from_utf8_lossy(&why.stdout).trim()
                    )
                } else {
                    let code = self.t.try_sh(&wan, &format!("curl -6 -s -m 3 -o /dev/null {url}"))?.status.code();
                    // curl: 28 is a timeout (the SYN dropped), 7 a refused connection.
                    match code {
                        Some(0) => "NOT refused (connected)".to_string(),
                        Some(28) => "refused (timed out)".to_string(),
                        other => format!("not connected (curl exit {other:?})"),
                    }
                };
            }
            let refused = inbound.starts_with("refused");
            o.clients.push(ClientResult {
                client: c.clone(),
                connected: slaac && ping,
                data: router_ping && curl && traced && refused,
                detail: format!(
                    "SLAAC {}, ping router {} server {}, curl {} bytes, traceroute hops {}, inbound from WAN {inbound}",
                    if slaac { addr.as_str() } else { "no address" },
                    if router_ping { "ok" } else { "lost" },
                    if ping { "ok" } else { "lost" },
                    if size.is_empty() { "0" } else { size },
                    hops.join(" > "),
                ),
            });
        }
        Ok(())
    }

    /// How many unsolicited inbound packets the router dropped: natpass's `no_mapping` drops
    /// (its summary line, natpass stopped for it), nftables' counter for Linux.
    fn ipv6_refused_count(&mut self, rtr: &str) -> Option<u64> {
        match self.nat {
            Nat::Linux => {
                let out = self.t.sh(rtr, "nft list counter ip6 lab_v6 unsolicited").ok()?;
                let at = out.find("packets ")?;
                out[at + 8..].split_whitespace().next()?.parse().ok()
            }
            _ => {
                self.t.stop("natpass@rtr");
                let log = self.t.log("natpass@rtr");
                std::fs::write(self.t.dir.join("natpass-ipv6-summary.txt"), &log).ok()?;
                // "... dropped 3: no_mapping" in the summary natpass logs when it stops.
                log.lines().find_map(|l| {
                    let (n, reason) = l.split("dropped ").nth(1)?.split_once(": ")?;
                    if reason.trim() == "no_mapping" { n.parse().ok() } else { None }
                })
            }
        }
    }
}
