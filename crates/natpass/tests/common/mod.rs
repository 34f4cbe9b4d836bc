//! What the tests of `natpass run` in network namespaces share: a client, the router and a
//! server in namespaces of their own (removed on drop), TCP servers on the server side, and
//! natpass's log read as it comes.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn prerequisites() -> Result<(), String> {
    let uid = Command::new("id").arg("-u").output().map_err(|e| format!("id: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("needs root (network namespaces, AF_PACKET)".into());
    }
    for tool in ["ip", "python3"] {
        let ok =
            Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
        if !ok {
            return Err(format!("needs `{tool}`"));
        }
    }
    Ok(())
}

/// The namespaces of one run, removed on drop, and the servers in them.
pub struct Net {
    pub lan: String,
    pub rtr: String,
    pub wan: String,
    servers: Vec<Child>,
}

/// Accepts and closes connections on the ports given, forever.
const SERVER: &str = "import socket, sys, select
ls = []
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', int(p))); s.listen(64); ls.append(s)
while True:
    for s in select.select(ls, [], [])[0]:
        c, _ = s.accept(); c.close()
";

impl Net {
    /// Namespaces named after `tag` and this process (tests run side by side).
    pub fn new(tag: &str) -> Self {
        let id = std::process::id();
        let mut n = Self {
            lan: format!("np{tag}{id}l"),
            rtr: format!("np{tag}{id}r"),
            wan: format!("np{tag}{id}w"),
            servers: Vec::new(),
        };
        let (l, r, w) = (&n.lan, &n.rtr, &n.wan);
        for ns in [l, r, w] {
            sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        sh(&format!("ip link add c0 netns {l} type veth peer name lan0 netns {r}"));
        sh(&format!("ip link add wan0 netns {r} type veth peer name s0 netns {w}"));
        sh(&format!("ip -n {l} addr add 192.168.78.10/24 dev c0 && ip -n {l} link set c0 up"));
        sh(&format!("ip -n {l} route add default via 192.168.78.1"));
        sh(&format!("ip -n {r} link set lan0 up && ip -n {r} link set wan0 up"));
        sh(&format!("ip -n {w} addr add 203.0.113.200/24 dev s0 && ip -n {w} link set s0 up"));
        let server = Command::new("ip")
            .args(["netns", "exec", w, "python3", "-c", SERVER, "1723", "8000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        n.servers.push(server);
        n
    }

    /// Whether the client's TCP connection to the server's `port` opens within 2 s.
    pub fn connects(&self, port: u16) -> bool {
        let code = format!("import socket; socket.create_connection(('203.0.113.200', {port}), timeout=2).close()");
        Command::new("ip")
            .args(["netns", "exec", &self.lan, "python3", "-c", &code])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Asks until `port` connects, for up to 10 s (the server starts, ARP resolves).
    pub fn eventually_connects(&self, port: u16) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.connects(port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// `natpass status --json` against the router's admin.
    pub fn status(&self, dir: &Path) -> serde_json::Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.rtr, env!("CARGO_BIN_EXE_natpass"), "status", "--json"])
            .args(["--api", "http://127.0.0.1:8080", "--token-file"])
            .arg(dir.join("api.token"))
            .output()
            .unwrap();
        assert!(out.status.success(), "natpass status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in [&self.lan, &self.rtr, &self.wan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A configuration at `dir/BACKEND.toml` for [`Net`]'s interfaces on `backend`, with no
/// admin.
pub fn config(dir: &Path, backend: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{backend}.toml"));
    std::fs::write(
        &path,
        format!(
            "[interfaces]\nbackend = \"{backend}\"\n\n[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.78.1/24\"\n\n\
             [interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n\n[admin]\nlisten = \"off\"\n"
        ),
    )
    .unwrap();
    path
}

/// natpass's log, read as it comes.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Waits up to 10 s for a line that contains `what`.
    pub fn wait_for(&self, what: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.0.lock().unwrap().iter().any(|l| l.contains(what)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Starts `natpass [args] run --config config` in the router namespace, its stderr read
/// into a [`Log`], and waits until it runs.
pub fn start(net: &Net, args: &[&str], config: &Path) -> (Child, Log) {
    start_with_env(net, args, config, &[])
}

/// [`start`] with environment variables set for natpass.
pub fn start_with_env(net: &Net, args: &[&str], config: &Path, env: &[(&str, &str)]) -> (Child, Log) {
    start_wrapped(net, &[], args, config, env)
}

/// [`start_with_env`] through a wrapper command (`setpriv ...`) that runs natpass.
pub fn start_wrapped(net: &Net, wrapper: &[&str], args: &[&str], config: &Path, env: &[(&str, &str)]) -> (Child, Log) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.rtr])
        .args(wrapper)
        .arg(env!("CARGO_BIN_EXE_natpass"))
        .args(args)
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::default();
    let lines = log.clone();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            lines.0.lock().unwrap().push(l);
        }
    });
    assert!(log.wait_for("running on"), "natpass did not start:\n{}", log.text());
    (child, log)
}

/// SIGTERM, and waits up to 10 s for natpass to stop.
pub fn stop(mut child: Child) {
    sh(&format!("kill -TERM {}", child.id()));
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        panic!("natpass did not stop on SIGTERM");
    }
}
