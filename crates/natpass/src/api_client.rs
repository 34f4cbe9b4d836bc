//! The CLI's HTTP client for the REST API of a running natpass: requests and answers are
//! the `natpass_control::api` types the server uses, so a renamed field breaks the build, and
//! an answer this CLI cannot read says so.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use natpass_control::api::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::token_file;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one natpass, with its bearer token.
pub struct ApiClient {
    /// `http://host:port` or `https://host:port`.
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl ApiClient {
    /// A client for `api` (`http://HOST:PORT`, `HOST:PORT`, or `https://HOST:PORT`) with the
    /// token in `token_file`. Over HTTPS the server's certificate must be the one in `cert`
    /// (PEM; natpass's self-signed `natpass-admin.crt`, or the one `[admin] tls_cert` names).
    pub fn new(api: &str, token_file: &Path, cert: Option<&Path>) -> anyhow::Result<Self> {
        let (scheme, addr) = match api.strip_prefix("https://") {
            Some(rest) => ("https", rest),
            None => ("http", api.strip_prefix("http://").unwrap_or(api)),
        };
        let addr = addr.trim_end_matches('/');
        if addr.contains('/') || addr.is_empty() {
            bail!("--api {api:?}: give it as http://HOST:PORT or https://HOST:PORT");
        }
        let mut config = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false);
        if scheme == "https" {
            let Some(cert) = cert else {
                bail!(
                    "--api {api}: HTTPS needs the admin's certificate: --cert PATH (natpass-admin.crt beside the config file, or [admin] tls_cert)"
                );
            };
            let pem = std::fs::read(cert).with_context(|| format!("reading the certificate {}", cert.display()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("reading the certificate {}", cert.display()))?;
            if certs.is_empty() {
                bail!("{}: no certificate in it", cert.display());
            }
            let tls = ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
                .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .build();
            config = config.tls_config(tls);
        }
        let token = token_file::read(token_file)?;
        Ok(Self { base: format!("{scheme}://{addr}"), token, agent: config.build().into() })
    }

    /// `GET path?query`.
    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let answer = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .call();
        self.read("GET", path, answer)
    }

    /// `PUT path` with a JSON body.
    pub fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let answer = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .send_json(body);
        self.read("PUT", path, answer)
    }

    /// `PATCH path` with a JSON body.
    pub fn patch<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let answer = self
            .agent
            .patch(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .send_json(body);
        self.read("PATCH", path, answer)
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let answer = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .send_json(body);
        self.read("POST", path, answer)
    }

    /// `DELETE path?query`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let answer = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .call();
        self.read("DELETE", path, answer)
    }

    /// `GET path?query` of a binary body: the body and the named headers' values.
    pub fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
        headers: &[&str],
    ) -> anyhow::Result<(Vec<u8>, Vec<Option<String>>)> {
        let answer = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .call();
        let mut resp = answer.with_context(|| format!("connecting to natpass at {}", self.base))?;
        let status = resp.status().as_u16();
        let values =
            headers.iter().map(|h| resp.headers().get(*h).and_then(|v| v.to_str().ok()).map(str::to_string)).collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .with_context(|| format!("reading natpass's answer to GET {path}"))?;
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body).into_owned();
            let why = serde_json::from_str::<ApiError>(&text).map_or(text, |e| e.error);
            bail!("natpass refused ({status}): {why}");
        }
        Ok((body, values))
    }

    /// The answer's body as `T`, or the API's refusal (`{"error": ...}`) as the error.
    fn read<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let mut resp = answer.with_context(|| format!("connecting to natpass at {}", self.base))?;
        let status = resp.status().as_u16();
        let text =
            resp.body_mut().read_to_string().with_context(|| format!("reading natpass's answer to {method} {path}"))?;
        if !(200..300).contains(&status) {
            let why = serde_json::from_str::<ApiError>(&text).map_or(text, |e| e.error);
            bail!("natpass refused ({status}): {why}");
        }
        serde_json::from_str(&text).with_context(|| {
            format!("natpass's answer to {method} {path} is not what this natpass CLI expects (another version?)")
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;

    use natpass_control::api::{
        Counters, EventRow, Findings, PassthroughChanged, PassthroughPatch, SessionPage, SessionParams, Settings,
        SettingsChanged, SettingsPatch, Status, Switches, TimeoutsPatch, Tunnels, path,
    };
    use natpass_control::auth::{Auth, token_digest};
    use natpass_control::interface::{self, EventLog, PlaneInfo};
    use natpass_control::server::{self, Control};
    use natpass_control::store::ConfigStore;
    use natpass_engine::{Engine, Instant, Side, Verdict};

    use super::*;

    const TOKEN: &str = "cli-test-token";

    /// A control-plane server on a loopback port over an engine with one UDP session and one
    /// finding (192.168.1.11's GRE without its control connection), and the token file the CLI
    /// reads.
    fn server(dir: &Path) -> (SocketAddr, std::path::PathBuf) {
        server_with(dir, natpass_control::http::Options::default())
    }

    fn server_with(dir: &Path, options: natpass_control::http::Options) -> (SocketAddr, std::path::PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("natpass.toml");
        let text = "[nat]\nlan_networks = [\"192.168.1.0/24\"]\n";
        std::fs::write(&config, text).unwrap();
        let mut engine = Engine::new(natpass_config::parse(text).unwrap(), Instant::ZERO).unwrap();
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 168, 1, 10], [198, 51, 100, 7], 64)
            .udp(5353, 53)
            .write(&mut udp, b"query")
            .unwrap();
        assert!(matches!(engine.process(Instant::from_secs(1), Side::Lan, &mut udp), Verdict::Forward(_)));
        for _ in 0..3 {
            let gre = [0x20, 0x01, 0x88, 0x0b, 0, 0, 0, 9];
            let mut p = Vec::new();
            etherparse::PacketBuilder::ip(etherparse::IpHeaders::Ipv4(
                etherparse::Ipv4Header::new(8, 64, etherparse::IpNumber(47), [192, 168, 1, 11], [198, 51, 100, 7])
                    .unwrap(),
                Default::default(),
            ))
            .write(&mut p, etherparse::IpNumber(47), &gre)
            .unwrap();
            assert!(matches!(engine.process(Instant::from_secs(1), Side::Lan, &mut p), Verdict::Drop(_)));
        }
        let (handle, mailbox) = interface::channel();
        std::thread::spawn(move || {
            let mut events = EventLog::default();
            loop {
                let now = Instant::from_secs(2);
                mailbox.serve(|cmd| interface::answer(&mut engine, &PlaneInfo::default(), &mut events, now, cmd));
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let control = Control::new(
            handle,
            ConfigStore::new(Some(config), text.into()),
            Auth::new(Vec::new(), vec![token_digest(TOKEN)], Duration::from_secs(600)).unwrap(),
            |_| {},
        )
        .unwrap();
        let addr = server::spawn("127.0.0.1:0".parse().unwrap(), control, options).unwrap();
        let token = dir.join("api.token");
        token_file::write(&token, TOKEN).unwrap();
        (addr, token)
    }

    #[test]
    fn every_answer_of_the_server_reads_as_the_types_the_cli_expects() {
        let dir = std::env::temp_dir().join(format!("natpass-cli-{}", std::process::id()));
        let (addr, token) = server(&dir);
        let c = ApiClient::new(&format!("http://{addr}"), &token, None).unwrap();
        let s: Status = c.get(path::STATUS, &[]).unwrap();
        assert_eq!((s.sessions.udp, s.passthrough.pptp, s.timeouts.udp), (1, true, 300));
        assert_eq!(s.findings, vec![("gre_without_control".to_string(), 1)]);
        let counters: Counters = c.get(path::COUNTERS, &[]).unwrap();
        assert_eq!(counters.packets_received.lan, 4);
        let params = SessionParams { proto: Some("udp".into()), port: Some(53), page: 1, per_page: 10, addr: None };
        let page: SessionPage = c.get(path::SESSIONS, &params.pairs()).unwrap();
        assert_eq!((page.total, page.sessions[0].lan.as_str()), (1, "192.168.1.10:5353"));
        let t: Tunnels = c.get(path::TUNNELS, &[]).unwrap();
        assert_eq!(t.findings.len(), 1);
        // The diagnosis: everyone's findings, one client's, another client's (none).
        let f: Findings = c.get(path::FINDINGS, &[]).unwrap();
        assert_eq!((f.findings.len(), f.findings[0].kind.as_str()), (1, "gre_without_control"));
        assert!(f.findings[0].fix.contains("connect again"), "{:?}", f.findings[0]);
        let one: Findings = c.get(path::FINDINGS, &[("client", "192.168.1.11".into())]).unwrap();
        assert_eq!((one.client.as_deref(), one.findings), (Some("192.168.1.11"), f.findings));
        let other: Findings = c.get(path::FINDINGS, &[("client", "192.168.1.10".into())]).unwrap();
        assert!(other.findings.is_empty());
        let e = c.get::<Findings>(path::FINDINGS, &[("client", "nobody".into())]).unwrap_err().to_string();
        assert_eq!(e, "natpass refused (400): client=\"nobody\" is not an IPv4 address");
        let _: Vec<EventRow> = c.get(path::REFUSALS, &[]).unwrap();
        let patch = PassthroughPatch { pptp: Some(false), ..PassthroughPatch::default() };
        let changed: PassthroughChanged = c.put(path::PASSTHROUGH, &patch).unwrap();
        assert_eq!(changed.changed, vec!["passthrough.pptp: (default) → false"]);
        assert!(!c.get::<Switches>(path::PASSTHROUGH, &[]).unwrap().pptp);
        let patch = SettingsPatch {
            timeouts: Some(TimeoutsPatch { udp: Some(600), ..TimeoutsPatch::default() }),
            filtering: Some("endpoint-independent".into()),
        };
        let s: SettingsChanged = c.patch(path::SETTINGS, &patch).unwrap();
        assert_eq!((s.timeouts.udp, s.filtering.as_str(), s.changed.len()), (600, "endpoint-independent", 2));
        let s: Settings = c.get(path::SETTINGS, &[]).unwrap();
        assert_eq!(s.timeouts.udp, 600);
        // A refusal carries the API's message.
        let low = SettingsPatch {
            timeouts: Some(TimeoutsPatch { udp: Some(30), ..TimeoutsPatch::default() }),
            filtering: None,
        };
        let e = c.patch::<_, SettingsChanged>(path::SETTINGS, &low).unwrap_err().to_string();
        assert!(e.starts_with("natpass refused (422): ") && e.contains("120"), "{e}");
        let bad = SessionParams { proto: Some("gre".into()), page: 1, per_page: 10, ..SessionParams::default() };
        let e = c.get::<SessionPage>(path::SESSIONS, &bad.pairs()).unwrap_err().to_string();
        assert_eq!(e, "natpass refused (400): proto=\"gre\": use tcp, udp or icmp");
        // A wrong token is refused with the API's words; a closed port names the address.
        token_file::write(&token, "wrong").unwrap();
        let e = ApiClient::new(&addr.to_string(), &token, None).unwrap().get::<Status>(path::STATUS, &[]).unwrap_err();
        assert!(e.to_string().starts_with("natpass refused (401): log in"), "{e}");
        let closed = ApiClient::new("127.0.0.1:1", &token, None).unwrap().get::<Status>(path::STATUS, &[]).unwrap_err();
        assert_eq!(closed.to_string(), "connecting to natpass at http://127.0.0.1:1");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn over_https_the_cli_trusts_the_admin_certificate_it_is_given_and_no_other() {
        let dir = std::env::temp_dir().join(format!("natpass-cli-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("natpass-admin.crt"), dir.join("natpass-admin.key"));
        let tls = natpass_control::tls::load_or_create(&cert, &key, true, &["127.0.0.1".into()]).unwrap();
        let options = natpass_control::http::Options { tls: Some(tls.config), ..Default::default() };
        let (addr, token) = server_with(&dir, options);
        let c = ApiClient::new(&format!("https://{addr}"), &token, Some(&tls.cert_path)).unwrap();
        let s: Status = c.get(path::STATUS, &[]).unwrap();
        assert_eq!(s.sessions.udp, 1);
        // Another certificate (another natpass, or someone in the middle) is refused.
        let (other, _) = natpass_control::tls::self_signed(&["127.0.0.1".into()]).unwrap();
        let other_path = dir.join("other.crt");
        std::fs::write(&other_path, other).unwrap();
        let c = ApiClient::new(&format!("https://{addr}"), &token, Some(&other_path)).unwrap();
        assert!(c.get::<Status>(path::STATUS, &[]).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_address_must_be_host_and_port() {
        let missing = Path::new("/nonexistent/natpass-token");
        let e = ApiClient::new("http://127.0.0.1:8080/api", missing, None).err().unwrap().to_string();
        assert_eq!(e, "--api \"http://127.0.0.1:8080/api\": give it as http://HOST:PORT or https://HOST:PORT");
        let e = ApiClient::new("https://127.0.0.1:8443", missing, None).err().unwrap().to_string();
        assert!(e.contains("--cert PATH"), "{e}");
        let e = ApiClient::new("127.0.0.1:8080", missing, None).err().unwrap().to_string();
        assert!(e.contains("reading the API token"), "{e}");
    }
}
