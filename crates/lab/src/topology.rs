//! The lab's network: namespaces, veths, a bridge, and the processes started in them.
//!
//! ```text
//! {p}-c1  eth0 192.168.1.10/24 ─┐
//! {p}-c2  eth0 192.168.1.11/24 ─┤ br0 [{p}-sw] ── lan0 [{p}-rtr] wan0 ── eth0 203.0.113.10,.11/24 [{p}-wan]
//! ...                          ─┘                  natpass, or Linux nftables masquerade
//! ```
//!
//! `{p}-wan` has no route to the LAN, so only translated traffic is answered. Everything the
//! lab starts is remembered by PID and ended by PID; dropping a [`Topology`] ends them, ends
//! whatever they forked inside the lab's own namespaces, and deletes the namespaces.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The LAN prefix.
pub const LAN_NET: &str = "192.168.1";
/// The router's LAN address.
pub const ROUTER_LAN: &str = "192.168.1.1";
/// The router's public address.
pub const PUBLIC: &str = "203.0.113.1";
/// The server's address.
pub const SERVER: &str = "203.0.113.10";
/// The server's second address (STUN's alternate address, RFC 5780).
pub const SERVER_ALT: &str = "203.0.113.11";

/// A started process.
struct Proc {
    name: String,
    child: Child,
}

/// The lab's namespaces and processes.
pub struct Topology {
    /// Prefix of every namespace name.
    pub prefix: String,
    /// Working directory: configs, logs.
    pub dir: PathBuf,
    /// Client namespace names.
    pub clients: Vec<String>,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output().with_context(|| format!("running {cmd:?}"))
}

impl Topology {
    /// Builds the namespaces and links for `clients` LAN clients. Namespace names start with
    /// `prefix`; an old lab with the same prefix is removed first.
    /// With `offloads` false, TSO/GSO/GRO and checksum offload are turned off on every veth;
    /// with true they stay as veth sets them (on), and the router sees super-frames.
    pub fn up(prefix: &str, clients: usize, dir: &Path, offloads: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut t = Self {
            prefix: prefix.to_string(),
            dir: dir.to_path_buf(),
            clients: (1..=clients).map(|i| format!("{prefix}-c{i}")).collect(),
            namespaces: Vec::new(),
            procs: Vec::new(),
        };
        t.remove_stale();
        let mut all = t.clients.clone();
        all.extend([t.ns("sw"), t.ns("rtr"), t.ns("wan")]);
        for ns in &all {
            let out = run(Command::new("ip").args(["netns", "add", ns]))?;
            if !out.status.success() {
                bail!("ip netns add {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            t.namespaces.push(ns.clone());
            t.sh(
                ns,
                "ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
            )?;
        }
        let (sw, rtr, wan) = (t.ns("sw"), t.ns("rtr"), t.ns("wan"));
        t.root(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        t.root(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        for (i, c) in t.clients.clone().iter().enumerate() {
            let port = format!("p{}", i + 1);
            t.root(&["ip", "link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", &port, "netns", &sw])?;
            t.sh(&sw, &format!("ip link set {port} master br0 up"))?;
            t.sh(
                c,
                &format!(
                    "ip addr add {LAN_NET}.{}/24 dev eth0 && ip link set eth0 up && ip route add default via {ROUTER_LAN}",
                    10 + i
                ),
            )?;
        }
        t.root(&["ip", "link", "add", "lan0", "netns", &rtr, "type", "veth", "peer", "name", "prtr", "netns", &sw])?;
        t.sh(&sw, "ip link set prtr master br0 up")?;
        t.root(&["ip", "link", "add", "wan0", "netns", &rtr, "type", "veth", "peer", "name", "eth0", "netns", &wan])?;
        t.sh(&rtr, "ip link set lan0 up && ip link set wan0 up && sysctl -qw net.ipv4.ip_forward=0")?;
        // Every client reaches the server from one public address, so the server's ICMP rate
        // limit per destination (a burst of 6, then one a second) would count all clients'
        // traceroutes together and leave a later client's hops unanswered: off.
        t.sh(
            &wan,
            &format!(
                "ip addr add {SERVER}/24 dev eth0 && ip addr add {SERVER_ALT}/24 dev eth0 && ip link set eth0 up && \
                 sysctl -qw net.ipv4.icmp_ratelimit=0"
            ),
        )?;
        if offloads {
            return Ok(t);
        }
        // veth hands 64 KB TSO/GSO super-frames to a packet socket unless the senders segment
        // themselves; and checksum offload leaves checksums unfinished. Turn both off.
        let off = "ethtool -K {} tso off gso off gro off tx off >/dev/null 2>&1 || true";
        for c in t.clients.clone() {
            t.sh(&c, &off.replace("{}", "eth0"))?;
        }
        t.sh(&wan, &off.replace("{}", "eth0"))?;
        t.sh(&rtr, &format!("{}; {}", off.replace("{}", "lan0"), off.replace("{}", "wan0")))?;
        let ports: Vec<String> = (1..=clients).map(|i| format!("p{i}")).chain(["prtr".to_string()]).collect();
        for p in ports {
            t.sh(&sw, &off.replace("{}", &p))?;
        }
        Ok(t)
    }

    /// Adds a namespace for `role`, removed with the others; returns its name.
    pub fn add_namespace(&mut self, role: &str) -> anyhow::Result<String> {
        let ns = self.ns(role);
        if self.namespaces.contains(&ns) {
            return Ok(ns);
        }
        self.root(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        self.sh(&ns, "ip link set lo up")?;
        Ok(ns)
    }

    /// The namespace for `role` (`rtr`, `wan`, `sw`, `c1`, ...).
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn remove_stale(&self) {
        let Ok(out) = run(Command::new("ip").args(["netns", "list"])) else { return };
        let want = format!("{}-", self.prefix);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&want) {
                kill_namespace_procs(name);
                let _ = run(Command::new("ip").args(["netns", "del", name]));
            }
        }
    }

    fn root(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = run(Command::new(args[0]).args(&args[1..]))?;
        if !out.status.success() {
            bail!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Runs `script` with `sh -c` inside `ns`; fails when it fails.
    pub fn sh(&self, ns: &str, script: &str) -> anyhow::Result<String> {
        let out = self.try_sh(ns, script)?;
        if !out.status.success() {
            bail!(
                "in {ns}: `{script}` failed: {}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `script` inside `ns` and returns its output, whatever its exit status.
    pub fn try_sh(&self, ns: &str, script: &str) -> anyhow::Result<Output> {
        run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", script]).stdin(Stdio::null()))
    }

    /// True when `script` succeeds inside `ns`.
    pub fn ok(&self, ns: &str, script: &str) -> bool {
        self.try_sh(ns, script).is_ok_and(|o| o.status.success())
    }

    /// Starts `script` (which should `exec` its program) in `ns` in the background, output to
    /// `{dir}/{name}.log`. Returns the PID.
    pub fn spawn(&mut self, name: &str, ns: &str, script: &str) -> anyhow::Result<u32> {
        let log = self.dir.join(format!("{name}.log"));
        let f = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("starting {name} in {ns}"))?;
        let pid = child.id();
        self.procs.push(Proc { name: name.to_string(), child });
        Ok(pid)
    }

    /// The log of a process started with [`Topology::spawn`].
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// True while the process `name` runs.
    pub fn alive(&mut self, name: &str) -> bool {
        self.procs.iter_mut().any(|p| p.name == name && matches!(p.child.try_wait(), Ok(None)))
    }

    /// Ends the process `name` (SIGTERM, then SIGKILL after a second).
    pub fn stop(&mut self, name: &str) {
        let mut keep = Vec::new();
        for mut p in std::mem::take(&mut self.procs) {
            if p.name == name {
                end_child(&mut p.child);
            } else {
                keep.push(p);
            }
        }
        self.procs = keep;
    }

    /// Ends every process started in `ns`, and what they forked there.
    pub fn stop_in(&mut self, ns: &str) {
        let names: Vec<String> =
            self.procs.iter().filter(|p| p.name.starts_with(&format!("{ns}:"))).map(|p| p.name.clone()).collect();
        for n in names {
            self.stop(&n);
        }
        kill_namespace_procs(ns);
    }

    /// Waits until `f` is true, up to `timeout`; returns its last value.
    pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if f() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn end_child(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).stderr(Stdio::null()).status();
    let ended = Topology::wait_for(Duration::from_secs(2), || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Ends the processes inside a namespace of the lab's own (the lab started all of them, or
/// they were forked by what it started), by PID.
fn kill_namespace_procs(ns: &str) {
    for sig in ["-TERM", "-KILL"] {
        let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else { return };
        let pids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill").arg(sig).args(&pids).stderr(Stdio::null()).status();
        Topology::wait_for(Duration::from_secs(2), || {
            Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| o.stdout.iter().all(u8::is_ascii_whitespace))
                .unwrap_or(true)
        });
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for mut p in std::mem::take(&mut self.procs) {
            end_child(&mut p.child);
        }
        for ns in self.namespaces.iter().rev() {
            kill_namespace_procs(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
