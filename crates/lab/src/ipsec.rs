//! IPsec through the router: strongSwan charon (kernel-libipsec, ESP in user space) with IKEv2
//! or IKEv1 and a PSK, NAT-T (RFC 3947, RFC 7296 §2.23), every client at once to one server;
//! and raw ESP (RFC 4303) from the lab's ESP peer, every client at once, both directions.

use std::time::Duration;

use anyhow::bail;

use super::diagnose::ClientAuth;
use super::topology::{SERVER, Topology};
use super::{ClientResult, Lab, Outcome};

/// Where the lab's raw ESP peer runs as the server.
pub(super) struct EspServer<'a> {
    /// Its namespace.
    pub ns: &'a str,
    /// Its address.
    pub addr: &'a str,
    /// The size of each client's first packet, sent with DF (path MTU discovery), if larger
    /// than the others.
    pub first_size: Option<u32>,
}

/// The server's swanctl.conf: a road-warrior connection with a PSK on `addr`, virtual IPs
/// from 10.10.10.0/24 into 10.20.0.0/24; `encap` forces ESP into UDP (RFC 3948) without a NAT.
pub(super) fn swanctl_server(version: u8, addr: &str, encap: bool) -> String {
    format!(
        "connections {{\n rw {{\n  version = {version}\n  local_addrs = {addr}\n  pools = rwpool\n  encap = {}\n  proposals = aes128-sha256-modp2048,default\n  rekey_time = 0\n  local {{ auth = psk\n id = server@lab }}\n  remote {{ auth = psk }}\n  children {{ rw {{ local_ts = 10.20.0.0/24\n esp_proposals = aes128-sha256-modp2048,aes128-sha256\n rekey_time = 0 }} }}\n }}\n}}\npools {{ rwpool {{ addrs = 10.10.10.0/24 }} }}\nsecrets {{ ike-any {{ secret = \"natpass-lab-psk\" }} }}\n",
        if encap { "yes" } else { "no" }
    )
}

/// The `local` section (and options beside it) of client `n` authenticating with the lab's PSK.
pub(super) fn psk_local(n: usize) -> String {
    format!("local {{ auth = psk\n id = client{n}@lab }}\n")
}

/// A client's swanctl.conf for the server at `addr`, with its `local` section (see
/// [`psk_local`]).
pub(super) fn swanctl_client(version: u8, addr: &str, encap: bool, local: &str) -> String {
    format!(
        "connections {{\n lab {{\n  version = {version}\n  remote_addrs = {addr}\n  vips = 0.0.0.0\n  encap = {}\n  proposals = aes128-sha256-modp2048\n  rekey_time = 0\n  {local}  remote {{ auth = psk\n id = server@lab }}\n  children {{ lab {{ remote_ts = 10.20.0.0/24\n esp_proposals = aes128-sha256-modp2048\n rekey_time = 0 }} }}\n }}\n}}\nsecrets {{ ike-any {{ secret = \"natpass-lab-psk\" }} }}\n",
        if encap { "yes" } else { "no" }
    )
}

impl Lab<'_> {
    /// Starts a charon in `ns` with `swanctl` loaded; `keepalives` false turns its NAT-T
    /// keepalives (RFC 3948 §4) off.
    pub(super) fn charon(&mut self, ns: &str, role: &str, swanctl: &str, keepalives: bool) -> anyhow::Result<String> {
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
                "charon {{\n  load_modular = yes\n  install_routes = yes\n{}  plugins {{\n    include /etc/strongswan.d/charon/*.conf\n    kernel-libipsec {{ load = yes }}\n    resolve {{ load = no }}\n    stroke {{ load = no }}\n  }}\n  filelog {{\n    lab {{ path = {}/charon.log\n      time_format = %H:%M:%S\n      flush_line = yes\n      default = 1\n      ike = 1\n    }}\n  }}\n  syslog {{ daemon {{ default = -1 }} }}\n}}\ninclude /etc/strongswan.d/*.conf\n",
                if keepalives { "" } else { "  keep_alive = 0s\n" },
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
        // Credentials (a client's certificate and key) from this charon's own directories.
        self.t.sh(
            ns,
            &format!(
                "SWANCTL_DIR={} swanctl --load-all --noprompt --uri {uri} --file {}",
                d.display(),
                d.join("swanctl.conf").display()
            ),
        )?;
        Ok(uri)
    }

    /// An RSA-4096 certificate and key for client `c` in its charon's directories: with them
    /// its IKE_AUTH is about 2 KB.
    fn large_certificate(&self, c: &str, id: &str) -> anyhow::Result<()> {
        let d = self.t.dir.join(format!("sw-{c}"));
        for sub in ["x509", "pkcs8"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        self.t.sh(
            c,
            &format!(
                "openssl req -x509 -newkey rsa:4096 -nodes -days 2 -subj /CN={id} -addext subjectAltName=email:{id} \
                 -keyout {d}/pkcs8/client.pem -out {d}/x509/client.pem 2>/dev/null",
                d = d.display()
            ),
        )?;
        Ok(())
    }

    pub(super) fn ipsec(&mut self, o: &mut Outcome, version: u8, auth: ClientAuth) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        let server_uri = self.charon(&wan, "charon@wan", &swanctl_server(version, SERVER, false), true)?;
        let mut uris = Vec::new();
        for (i, c) in self.t.clients.clone().iter().enumerate() {
            let local = match auth {
                ClientAuth::Psk | ClientAuth::PskWithoutKeepalives => psk_local(i + 1),
                // IKEv2 fragmentation (RFC 7383) off: the big IKE_AUTH leaves as IP fragments.
                ClientAuth::LargeCertificate => {
                    let id = format!("client{}@lab", i + 1);
                    self.large_certificate(c, &id)?;
                    format!(
                        "fragmentation = no\n  send_cert = always\n  local {{ auth = pubkey\n certs = client.pem\n id = {id} }}\n"
                    )
                }
            };
            let conf = swanctl_client(version, SERVER, false, &local);
            uris.push(self.charon(c, &format!("{c}:charon"), &conf, auth != ClientAuth::PskWithoutKeepalives)?);
        }
        // All clients start at once: several IKE SAs to one server through one address.
        let initiated =
            self.in_all_clients(|i, _| format!("swanctl --initiate --child lab --timeout 20 --uri {}", uris[i]));
        for (c, up, log) in initiated {
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

    /// Raw ESP from every client at once; each sends `packets` packets, each up to 3 s.
    pub(super) fn raw_esp(&mut self, o: &mut Outcome, packets: u32) -> anyhow::Result<()> {
        let wan = self.t.ns("wan");
        self.raw_esp_to(o, &EspServer { ns: &wan, addr: SERVER, first_size: None }, packets)
    }

    /// Raw ESP from every client at once to the ESP peer `to`.
    pub(super) fn raw_esp_to(&mut self, o: &mut Outcome, to: &EspServer<'_>, packets: u32) -> anyhow::Result<()> {
        let peer = self.t.dir.join("esp_peer.py");
        self.start_peer("esp@wan", to.ns, "esp_peer.py server")?;
        let (server, first) = (to.addr, to.first_size.map_or(String::new(), |n| format!(" {n}")));
        // Every client at once, each with its own SPI, to the one server.
        let results = self.in_all_clients(|i, _| {
            format!(
                "/usr/bin/python3 -u {} client {server} {:#x} {packets}{first}",
                peer.display(),
                0x1000_0000 + (i as u32) * 16
            )
        });
        for (c, _, out) in results {
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
            let answered = v["answered"].as_u64().unwrap_or(0);
            let too_big = match v["too_big"].as_u64() {
                Some(n) if n > 0 => format!(", {n} refused by the kernel as larger than the path MTU"),
                _ => String::new(),
            };
            o.clients.push(ClientResult {
                client: c,
                connected: answered > 0,
                data: answered == u64::from(packets),
                detail: format!("{answered}/{packets} encrypted packets answered by the server{too_big}"),
            });
        }
        o.note = format!("{packets} packets per client, AES-CBC + HMAC-SHA-256");
        Ok(())
    }
}
