//! The CLI against a running natpass: `natpass status`, `sessions`, `tunnels`,
//! `passthrough PROTO enable|disable`, `settings`. It talks to the REST API (HTTP/1.1 on the
//! admin address) with the bearer token the daemon wrote at start; human tables by default,
//! the API's JSON with `--json`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// Where and how to reach the daemon.
pub struct Client {
    /// `host:port`.
    pub addr: String,
    /// The bearer token.
    pub token: String,
}

impl Client {
    /// A client for `api` (`http://host:port`) with the token in `token_file`.
    pub fn new(api: &str, token_file: &Path) -> anyhow::Result<Self> {
        let addr = api.strip_prefix("http://").unwrap_or(api).trim_end_matches('/').to_string();
        if addr.contains('/') || addr.is_empty() {
            bail!("--api {api:?}: give it as http://HOST:PORT");
        }
        let token = std::fs::read_to_string(token_file)
            .with_context(|| {
                format!(
                    "reading the API token {} (is natpass running? the daemon writes it at start; reading it needs root)",
                    token_file.display()
                )
            })?
            .trim()
            .to_string();
        Ok(Self { addr, token })
    }

    /// Sends one request and returns the status and the JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let mut s =
            TcpStream::connect(&self.addr).with_context(|| format!("connecting to natpass at {}", self.addr))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.addr, self.token
        );
        if body.is_some() {
            let _ = write!(req, "Content-Type: application/json\r\nContent-Length: {}\r\n", payload.len());
        }
        req.push_str("\r\n");
        req.push_str(&payload);
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let v: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
        Ok((status, v))
    }

    /// Like [`Client::call`], failing on a non-2xx answer with the API's message.
    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            bail!("natpass refused ({status}): {}", v["error"].as_str().unwrap_or(&v.to_string()));
        }
        Ok(v)
    }
}

fn n(v: &Value) -> String {
    match v {
        Value::Number(x) => x.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "enabled" } else { "disabled" }.to_string(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Lays out rows in aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let mut o = String::new();
    let line = |o: &mut String, cells: Vec<String>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{:<width$}  ", c, width = w.get(i).copied().unwrap_or(0));
        }
        o.push_str(l.trim_end());
        o.push('\n');
    };
    line(&mut o, header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(&mut o, r.clone());
    }
    o
}

/// `natpass status`, human form.
pub fn render_status(s: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "natpass {}, up {} s", n(&s["version"]), n(&s["uptime_secs"]));
    let rows: Vec<Vec<String>> = s["interfaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    vec![
                        n(&i["role"]),
                        n(&i["name"]),
                        n(&i["address"]),
                        n(&i["mac"]),
                        n(&i["rx_frames"]),
                        n(&i["tx_frames"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    o.push_str(&table(&["role", "interface", "address", "mac", "frames in", "frames out"], &rows));
    let p = &s["passthrough"];
    let _ = writeln!(o, "\nVPN passthrough: IPsec {}, PPTP {}, L2TP {}", n(&p["ipsec"]), n(&p["pptp"]), n(&p["l2tp"]));
    let (se, t) = (&s["sessions"], &s["tunnels"]);
    let _ = writeln!(o, "sessions: tcp {} udp {} icmp {}", n(&se["tcp"]), n(&se["udp"]), n(&se["icmp"]));
    let _ = writeln!(o, "tunnels: ipsec {} pptp {} l2tp {}", n(&t["ipsec"]), n(&t["pptp"]), n(&t["l2tp"]));
    let (r, f) = (&s["packets_received"], &s["packets_forwarded"]);
    let _ = writeln!(
        o,
        "packets: lan in {} out {} | wan in {} out {}",
        n(&r["lan"]),
        n(&f["lan"]),
        n(&r["wan"]),
        n(&f["wan"])
    );
    if let Some(d) = s["drops"].as_array().filter(|d| !d.is_empty()) {
        let _ = writeln!(o, "drops:");
        for x in d {
            let _ = writeln!(o, "  {:<28} {}", n(&x[0]), n(&x[1]));
        }
    }
    o
}

/// `natpass sessions`, like `conntrack -L`.
pub fn render_sessions(p: &Value) -> String {
    let rows: Vec<Vec<String>> = p["sessions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    vec![
                        n(&s["proto"]),
                        n(&s["lan"]),
                        n(&s["public"]),
                        n(&s["remote"]),
                        n(&s["state"]),
                        n(&s["idle_secs"]),
                        n(&s["bytes_out"]),
                        n(&s["bytes_in"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut o = table(&["proto", "lan", "public", "remote", "state", "idle s", "bytes out", "bytes in"], &rows);
    let _ = writeln!(o, "{} sessions match (page {}, {} per page)", n(&p["total"]), n(&p["page"]), n(&p["per_page"]));
    o
}

/// `natpass tunnels`.
pub fn render_tunnels(t: &Value) -> String {
    let rows: Vec<Vec<String>> = t["tunnels"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        n(&x["protocol"]),
                        n(&x["kind"]),
                        n(&x["client"]),
                        n(&x["server"]),
                        n(&x["public"]),
                        n(&x["ids"]),
                        n(&x["bytes_out"]),
                        n(&x["bytes_in"]),
                        n(&x["age_secs"]),
                        n(&x["state"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut o =
        table(&["protocol", "what", "client", "server", "public", "ids", "bytes out", "bytes in", "state"], &rows);
    let refusals: Vec<Vec<String>> = t["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["what"].as_str().is_some_and(|w| w.contains("refused")))
                .take(20)
                .map(|e| vec![n(&e["at_secs"]), n(&e["protocol"]), n(&e["client"]), n(&e["server"]), n(&e["detail"])])
                .collect()
        })
        .unwrap_or_default();
    if !refusals.is_empty() {
        o.push_str("\nrecent refusals:\n");
        o.push_str(&table(&["at s", "protocol", "client", "server", "reason"], &refusals));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
    }

    #[test]
    fn sessions_render_like_conntrack() {
        let v = serde_json::json!({"total": 1, "page": 1, "per_page": 100, "sessions": [{"proto": "udp", "lan": "192.168.1.10:500", "public": "203.0.113.1:500", "remote": "203.0.113.10:500", "state": "established", "idle_secs": 3, "bytes_out": 10, "bytes_in": 20}]});
        let t = render_sessions(&v);
        assert!(t.contains("udp    192.168.1.10:500  203.0.113.1:500"), "{t}");
        assert!(t.ends_with("1 sessions match (page 1, 100 per page)\n"), "{t}");
    }
}
