//! SIGHUP reloads the config file of a running `natpass run`: an edit that turns PPTP
//! passthrough off is applied live (a TCP connection to port 1723 is refused, other traffic
//! passes), and a bad edit is refused with its line while the old settings keep working.
//! natpass logs JSON here (`--log-format json`): every line of its log must parse.
//!
//! In network namespaces this test creates and removes (a client, the router, a server).
//! Needs root, `ip` and `python3`; without them it prints SKIPPED and why, or fails with
//! `NATPASS_TEST_REQUIRE=all`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn prerequisites() -> Result<(), String> {
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
struct Net {
    lan: String,
    rtr: String,
    wan: String,
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
    fn new() -> Self {
        let id = std::process::id();
        let mut n = Self {
            lan: format!("nprl{id}lan"),
            rtr: format!("nprl{id}rtr"),
            wan: format!("nprl{id}wan"),
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
    fn connects(&self, port: u16) -> bool {
        let code = format!("import socket; socket.create_connection(('203.0.113.200', {port}), timeout=2).close()");
        Command::new("ip")
            .args(["netns", "exec", &self.lan, "python3", "-c", &code])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// Asks until `port` connects, for up to 10 s (the server starts, ARP resolves).
    fn eventually_connects(&self, port: u16) -> bool {
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
    fn status(&self, dir: &Path) -> serde_json::Value {
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

/// natpass's log, read as it comes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Waits up to 10 s for a line that contains `what`.
    fn wait_for(&self, what: &str) -> bool {
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

const BASE: &str = "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.78.1/24\"\n\n\
                    [interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n\n";

fn config(dir: &Path, pptp: bool, extra: &str, hash: &str) -> String {
    format!(
        "{BASE}[passthrough]\npptp = {pptp}\n\n[timeouts]\nudp = 300\n{extra}\n\n[admin]\nlisten = \"127.0.0.1:8080\"\n\
         token_file = \"{}/api.token\"\n\n[[admin.users]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n",
        dir.display()
    )
}

fn hup(child: &Child) {
    sh(&format!("kill -HUP {}", child.id()));
}

#[test]
fn sighup_applies_a_passthrough_switch_live_and_a_bad_file_changes_nothing() {
    natpass_testkit::require!(prerequisites());
    let net = Net::new();
    let dir = std::env::temp_dir().join(format!("nprl{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("natpass.toml");
    let hash = natpass_control::auth::hash_password("correct horse battery staple").unwrap();
    std::fs::write(&path, config(&dir, true, "", &hash)).unwrap();

    let mut child = Command::new("ip")
        .args(["netns", "exec", &net.rtr, env!("CARGO_BIN_EXE_natpass"), "--log-format", "json", "run", "--config"])
        .arg(&path)
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
    let stop = |mut child: Child| {
        sh(&format!("kill -TERM {}", child.id()));
        let end = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            panic!("natpass did not stop on SIGTERM");
        }
    };
    assert!(log.wait_for("running on"), "natpass did not start:\n{}", log.text());

    // PPTP on: the control connection reaches the server.
    assert!(net.eventually_connects(1723), "TCP 1723 did not pass with PPTP on:\n{}", log.text());

    // PPTP off in the file, and a key that needs a restart; SIGHUP applies the first.
    std::fs::write(&path, config(&dir, false, "", &hash).replace("[admin]\n", "[admin]\nsession_minutes = 10\n"))
        .unwrap();
    hup(&child);
    assert!(log.wait_for("passthrough.pptp: true → false"), "no reload line:\n{}", log.text());
    assert!(log.wait_for("needs a restart to take effect: admin.session_minutes: 30 → 10"), "{}", log.text());
    assert!(!net.connects(1723), "TCP 1723 passed with PPTP off");
    assert!(net.connects(8000), "other traffic stopped after the reload");
    assert!(log.wait_for("Pptp refused"), "no refusal in the log:\n{}", log.text());
    let s = net.status(&dir);
    assert_eq!(s["passthrough"]["pptp"], false, "{s}");
    let drops = s["drops"].as_array().unwrap();
    assert!(drops.iter().any(|d| d[0] == "pptp_disabled" && d[1].as_u64() > Some(0)), "{s}");

    // A bad file (a timer below its RFC floor, PPTP back on): refused whole, with its line.
    std::fs::write(&path, config(&dir, true, "", &hash).replace("udp = 300", "udp = 30")).unwrap();
    hup(&child);
    assert!(log.wait_for("reload refused"), "no refusal of the bad file:\n{}", log.text());
    let text = log.text();
    assert!(text.contains("line ") && text.contains("keeps running on the settings it had"), "{text}");
    assert!(!net.connects(1723), "the refused file turned PPTP back on");
    assert!(net.connects(8000), "the router stopped forwarding after a refused reload");
    let s = net.status(&dir);
    assert_eq!((s["passthrough"]["pptp"].as_bool(), s["timeouts"]["udp"].as_u64()), (Some(false), Some(300)), "{s}");

    // Fixed: PPTP passes again.
    std::fs::write(&path, config(&dir, true, "", &hash)).unwrap();
    hup(&child);
    assert!(log.wait_for("passthrough.pptp: false → true"), "{}", log.text());
    assert!(net.eventually_connects(1723), "TCP 1723 did not pass once PPTP was back on");

    stop(child);
    let text = log.text();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}\n{text}"));
        assert!(v["level"].is_string() && v["message"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(text.contains("\"target\":\"natpass::reload\""), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
