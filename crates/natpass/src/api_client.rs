//! The CLI's HTTP client for the REST API of a running natpass: requests and answers are
//! the `natpass_control::api` types the server uses, so a renamed field breaks the build, and
//! an answer this CLI cannot read says so.

use std::path::Path;
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
    /// `http://host:port`.
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl ApiClient {
    /// A client for `api` (`http://HOST:PORT`, or `HOST:PORT`) with the token in `token_file`.
    pub fn new(api: &str, token_file: &Path) -> anyhow::Result<Self> {
        let addr = api.strip_prefix("http://").unwrap_or(api).trim_end_matches('/');
        if addr.contains('/') || addr.is_empty() {
            bail!("--api {api:?}: give it as http://HOST:PORT");
        }
        let token = token_file::read(token_file)?;
        let agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build();
        Ok(Self { base: format!("http://{addr}"), token, agent: agent.into() })
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
        Counters, EventRow, PassthroughChanged, PassthroughPatch, SessionPage, SessionParams, Settings,
        SettingsChanged, SettingsPatch, Status, Switches, TimeoutsPatch, Tunnels, path,
    };
    use natpass_control::auth::{Auth, token_digest};
    use natpass_control::interface::{self, EventLog, PlaneInfo};
    use natpass_control::server::{self, Control};
    use natpass_control::store::ConfigStore;
    use natpass_engine::{Engine, Instant, Side, Verdict};

    use super::*;

    const TOKEN: &str = "cli-test-token";

    /// A control-plane server on a loopback port over an engine with one UDP session, and the
    /// token file the CLI reads.
    fn server(dir: &Path) -> (SocketAddr, std::path::PathBuf) {
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
        let addr = server::spawn("127.0.0.1:0".parse().unwrap(), control, Default::default()).unwrap();
        let token = dir.join("api.token");
        token_file::write(&token, TOKEN).unwrap();
        (addr, token)
    }

    #[test]
    fn every_answer_of_the_server_reads_as_the_types_the_cli_expects() {
        let dir = std::env::temp_dir().join(format!("natpass-cli-{}", std::process::id()));
        let (addr, token) = server(&dir);
        let c = ApiClient::new(&format!("http://{addr}"), &token).unwrap();
        let s: Status = c.get(path::STATUS, &[]).unwrap();
        assert_eq!((s.sessions.udp, s.passthrough.pptp, s.timeouts.udp), (1, true, 300));
        let counters: Counters = c.get(path::COUNTERS, &[]).unwrap();
        assert_eq!(counters.packets_received.lan, 1);
        let params = SessionParams { proto: Some("udp".into()), port: Some(53), page: 1, per_page: 10, addr: None };
        let page: SessionPage = c.get(path::SESSIONS, &params.pairs()).unwrap();
        assert_eq!((page.total, page.sessions[0].lan.as_str()), (1, "192.168.1.10:5353"));
        let _: Tunnels = c.get(path::TUNNELS, &[]).unwrap();
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
        let e = ApiClient::new(&addr.to_string(), &token).unwrap().get::<Status>(path::STATUS, &[]).unwrap_err();
        assert!(e.to_string().starts_with("natpass refused (401): log in"), "{e}");
        let closed = ApiClient::new("127.0.0.1:1", &token).unwrap().get::<Status>(path::STATUS, &[]).unwrap_err();
        assert_eq!(closed.to_string(), "connecting to natpass at http://127.0.0.1:1");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_address_must_be_host_and_port() {
        let missing = Path::new("/nonexistent/natpass-token");
        let e = ApiClient::new("http://127.0.0.1:8080/api", missing).err().unwrap().to_string();
        assert_eq!(e, "--api \"http://127.0.0.1:8080/api\": give it as http://HOST:PORT");
        let e = ApiClient::new("127.0.0.1:8080", missing).err().unwrap().to_string();
        assert!(e.contains("reading the API token"), "{e}");
    }
}
