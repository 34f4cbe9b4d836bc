//! The HTTP server of the control plane: the REST/JSON API under `/api/v1` (described by
//! `docs/openapi.yaml`, served at `/api/v1/openapi.yaml`), the web admin pages, and
//! Prometheus `/metrics`. Every request is answered from the data plane through the
//! [`Handle`], and every change goes config-file-first: validated, applied live, then saved,
//! or refused with nothing changed. The connections, their limits and TLS are
//! [`crate::http`]'s; this module answers one request at a time given its bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyper::Method;
use natpass_config::Config;
use natpass_engine::Protocol;
use toml_edit::Value;

use crate::api::{
    self, ApiError, Counters, EventRow, PROTOCOLS, PassthroughChanged, PassthroughPatch, Settings, SettingsChanged,
    SettingsPatch, TimeoutsPatch, path,
};
use crate::auth::{Auth, LoginError, PasswordCheckers, Session};
use crate::interface::{Answer, Command, Handle, SessionQuery};
use crate::store::{ConfigStore, Edit, StoreError};
use crate::{capture, metrics, web};

/// The OpenAPI description of the API.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// The session cookie's name.
pub const COOKIE: &str = "natpass_session";
/// The login form's CSRF cookie (double submit: the form carries the same token).
pub const LOGIN_COOKIE: &str = "natpass_login";
/// Password checks (argon2id) that run at once; a core stays free for routing.
pub const PASSWORD_THREADS: usize = 1;
/// Password checks that may wait; beyond them a login is answered 503 at once.
pub const PASSWORD_QUEUE: usize = 4;
/// How long `/metrics` reuses one status snapshot from the data plane, so scrapes, however
/// many, cost the router at most a few snapshots a second.
pub const METRICS_CACHE: Duration = Duration::from_millis(500);

/// A response before it is sent.
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Content type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON body.
    pub fn json(status: u16, v: &impl serde::Serialize) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(v).unwrap_or_default(),
            headers: Vec::new(),
        }
    }

    /// `{"error": msg}` ([`ApiError`]).
    pub fn error(status: u16, msg: impl Into<String>) -> Self {
        Self::json(status, &ApiError { error: msg.into() })
    }

    /// The message of an error reply, for a page to show.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<ApiError>(&self.body).map_or_else(|_| "refused".to_string(), |e| e.error)
    }

    /// An HTML page.
    pub fn html(status: u16, body: String) -> Self {
        Self { status, content_type: "text/html; charset=utf-8", body: body.into_bytes(), headers: Vec::new() }
    }

    /// A 303 redirect.
    pub fn redirect(to: &str) -> Self {
        Self { status: 303, content_type: "text/plain", body: Vec::new(), headers: vec![("Location", to.to_string())] }
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A request, read.
pub struct Incoming {
    /// Method.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Client address.
    pub from: IpAddr,
}

impl Incoming {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .map(str::trim)
            .find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
    }
}

/// Decodes `application/x-www-form-urlencoded`.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The control plane: what the server needs to answer. Shared by every connection: the
/// authentication state behind a lock held only briefly, the config store behind one held
/// for a whole change (changes happen one at a time).
pub struct Control {
    handle: Handle,
    store: tokio::sync::Mutex<ConfigStore>,
    auth: Mutex<Auth>,
    passwords: PasswordCheckers,
    log: Box<dyn Fn(&str) + Send + Sync>,
    metrics_cache: Mutex<Option<(Instant, api::Status)>>,
}

/// Who is asking.
enum Caller {
    Browser(String, Session),
    Script,
    Nobody,
}

/// Parses `?proto=&addr=&port=&page=&per_page=`, or says which parameter is wrong.
pub fn session_query(req: &Incoming) -> Result<SessionQuery, String> {
    let proto = match req.param("proto") {
        None => None,
        Some(p) => Some(api::proto_named(p).ok_or_else(|| format!("proto={p:?}: use tcp, udp or icmp"))?),
    };
    let addr = match req.param("addr") {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| format!("addr={a:?} is not an IPv4 or IPv6 address"))?),
    };
    let num = |name: &str, d: u32, max: u32| -> Result<u32, String> {
        match req.param(name) {
            None => Ok(d),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{name}={v:?}: use a whole number from 1 to {max}")),
        }
    };
    let port = match req.param("port") {
        None => None,
        Some(v) => Some(v.parse::<u16>().map_err(|_| format!("port={v:?}: use a port number from 0 to 65535"))?),
    };
    Ok(SessionQuery { proto, addr, port, page: num("page", 1, 1_000_000)?, per_page: num("per_page", 100, 1000)? })
}

/// The `client` parameter of the findings (`/api/v1/findings`, `/vpn/tunnels`), if any.
pub fn findings_client(req: &Incoming) -> Result<Option<Ipv4Addr>, String> {
    match req.param("client") {
        None => Ok(None),
        Some(c) => c.parse().map(Some).map_err(|_| format!("client={c:?} is not an IPv4 address")),
    }
}

fn store_error(e: &StoreError) -> Reply {
    match e {
        StoreError::Invalid(m) => Reply::error(422, m.clone()),
        StoreError::Changed(m) => Reply::error(409, m.clone()),
        StoreError::Io { .. } => Reply::error(500, e.to_string()),
    }
}

impl Control {
    /// The control plane over `handle`, saving to `store`, with `auth`'s users and tokens;
    /// `log` takes lines for the log (config diffs, logins). Starts the password checkers.
    pub fn new(
        handle: Handle,
        store: ConfigStore,
        auth: Auth,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Ok(Self {
            handle,
            store: tokio::sync::Mutex::new(store),
            auth: Mutex::new(auth),
            passwords: PasswordCheckers::new(PASSWORD_THREADS, PASSWORD_QUEUE)?,
            log: Box::new(log),
            metrics_cache: Mutex::new(None),
        })
    }

    fn auth(&self) -> MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the config file changed on disk: its users and tokens replace the running ones,
    /// so a user or token removed from the file stops working now. Skipped while a change
    /// holds the store (it re-reads the file itself).
    fn refresh_users(&self) {
        let Ok(mut store) = self.store.try_lock() else { return };
        match store.reload_if_changed() {
            None => {}
            Some(Ok(c)) => self.auth().set_users(c.admin.users, c.admin.api_tokens_sha256),
            Some(Err(e)) => {
                (self.log)(&format!(
                    "the config file changed and does not parse ({e}); users and tokens stay as they were"
                ));
            }
        }
    }

    /// A reload (SIGHUP) validated the file's new text: it becomes the store's (so the next
    /// change from the admin is not refused as an edit behind natpass's back), and its users
    /// and tokens replace the running ones. Blocks on the store's lock: call it outside the
    /// control plane's runtime.
    pub fn adopt(&self, text: String, config: &Config) {
        self.store.blocking_lock().adopt(text);
        self.auth().set_users(config.admin.users.clone(), config.admin.api_tokens_sha256.clone());
    }

    fn caller(&self, req: &Incoming) -> Caller {
        if let Some(token) = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
            return if self.auth().bearer_ok(token.trim()) { Caller::Script } else { Caller::Nobody };
        }
        if let Some(id) = req.cookie(COOKIE).map(str::to_string)
            && let Some(s) = self.auth().session(&id, Instant::now())
        {
            return Caller::Browser(id, s);
        }
        Caller::Nobody
    }

    async fn ask(&self, cmd: Command) -> Result<Answer, Reply> {
        self.handle.ask(cmd).await.map_err(|e| Reply::error(503, e.to_string()).with("Retry-After", "1".into()))
    }

    async fn status(&self) -> Result<api::Status, Reply> {
        match self.ask(Command::Status).await? {
            Answer::Status(s) => Ok(*s),
            _ => Err(Reply::error(500, "unexpected answer")),
        }
    }

    /// A status snapshot no older than [`METRICS_CACHE`].
    async fn status_for_metrics(&self) -> Result<api::Status, Reply> {
        let cache = || self.metrics_cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, s)) = cache().as_ref()
            && at.elapsed() < METRICS_CACHE
        {
            return Ok(s.clone());
        }
        let s = self.status().await?;
        *cache() = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    /// Validates `edits` against the config file (re-read first), applies the commands
    /// `live` makes from the new configuration to the data plane, then saves. Returns the
    /// diff and how many sessions/tunnels went away.
    async fn change(
        &self,
        who: &str,
        edits: &[Edit],
        live: impl FnOnce(&Config) -> Vec<Command>,
    ) -> Result<(Vec<String>, usize), Reply> {
        let mut store = self.store.lock().await;
        let prepared = store.prepare(edits).map_err(|e| store_error(&e))?;
        let mut removed = 0;
        for cmd in live(&prepared.config) {
            match self.ask(cmd).await? {
                Answer::Changed { removed: n } => removed += n,
                Answer::Refused(msg) => return Err(Reply::error(422, msg)),
                _ => return Err(Reply::error(500, "unexpected answer")),
            }
        }
        let diff = prepared.diff.clone();
        if let Err(e) = store.commit(prepared.text) {
            let r = store_error(&e);
            return Err(Reply::error(r.status, format!("applied to the running router but not saved: {e}")));
        }
        for line in &diff {
            (self.log)(&format!("config changed by {who}: {line}"));
        }
        Ok((diff, removed))
    }

    async fn set_passthrough(&self, who: &str, patch: &[(Protocol, bool)]) -> Result<(Vec<String>, usize), Reply> {
        // Only what differs from the running switches is a change.
        let now = self.status().await?.passthrough;
        let patch: Vec<(Protocol, bool)> = patch.iter().copied().filter(|&(p, on)| on != now.get(p)).collect();
        let edits: Vec<Edit> =
            patch.iter().map(|&(p, on)| Edit { table: "passthrough", key: p.name(), value: on.into() }).collect();
        self.change(who, &edits, |_| patch.iter().map(|&(p, on)| Command::SetPassthrough(p, on)).collect()).await
    }

    async fn set_settings(&self, who: &str, t: &TimeoutsPatch, filtering: Option<&str>) -> Result<Vec<String>, Reply> {
        let mut edits = Vec::new();
        for (key, v) in t.entries() {
            if let Some(v) = v {
                let v = i64::try_from(v).map_err(|_| Reply::error(422, format!("timeouts.{key}: {v} is too large")))?;
                edits.push(Edit { table: "timeouts", key, value: Value::from(v) });
            }
        }
        if let Some(f) = filtering {
            edits.push(Edit { table: "nat", key: "filtering", value: Value::from(f) });
        }
        let live = |c: &Config| {
            let mut live = vec![Command::SetTimeouts(c.engine.timeouts)];
            if filtering.is_some() {
                live.push(Command::SetFiltering(c.engine.filtering));
            }
            live
        };
        self.change(who, &edits, live).await.map(|(d, _)| d)
    }

    /// `/api/v1/capture`: start (POST), drain (GET ?id=) and stop (DELETE ?id=) a capture in
    /// the data plane ([`crate::capture`]).
    async fn capture(&self, who: &str, req: &Incoming) -> Result<Reply, Reply> {
        let id = || -> Result<u64, Reply> {
            let v = req.param("id").ok_or_else(|| Reply::error(400, "give the capture's id: ?id=N"))?;
            v.parse().map_err(|_| Reply::error(400, format!("id={v:?} is not a capture id")))
        };
        let refused = |msg: String| {
            let status = if msg.contains("running") { 409 } else { 404 };
            Reply::error(status, msg)
        };
        match req.method {
            Method::POST => {
                let r: capture::CaptureRequest = json_body(req)?;
                let spec = r.spec();
                match self.ask(Command::CaptureStart(spec)).await? {
                    Answer::CaptureStarted { id, interfaces } => {
                        (self.log)(&format!("capture {id} started by {who}: {r:?}"));
                        Ok(Reply::json(
                            200,
                            &capture::CaptureStarted {
                                id,
                                interfaces,
                                snaplen: spec.snaplen,
                                max_pps: capture::Tap::MAX_PPS,
                                max_buffer: capture::Tap::MAX_BUFFER,
                                idle_secs: capture::Tap::IDLE_NS / 1_000_000_000,
                            },
                        ))
                    }
                    Answer::Refused(msg) => Err(refused(msg)),
                    _ => Err(Reply::error(500, "unexpected answer")),
                }
            }
            Method::GET => match self.ask(Command::CaptureDrain(id()?)).await? {
                Answer::Captured(d) => Ok(Reply {
                    status: 200,
                    content_type: "application/octet-stream",
                    body: d.blocks,
                    headers: vec![
                        (capture::PACKETS_HEADER, d.packets.to_string()),
                        (capture::DROPPED_HEADER, d.dropped.to_string()),
                    ],
                }),
                Answer::Refused(msg) => Err(refused(msg)),
                _ => Err(Reply::error(500, "unexpected answer")),
            },
            Method::DELETE => {
                let id = id()?;
                match self.ask(Command::CaptureStop(id)).await? {
                    Answer::Captured(d) => {
                        (self.log)(&format!(
                            "capture {id} stopped by {who}: {} frames, {} not kept",
                            d.packets, d.dropped
                        ));
                        Ok(Reply::json(200, &capture::CaptureStopped { packets: d.packets, dropped: d.dropped }))
                    }
                    Answer::Refused(msg) => Err(refused(msg)),
                    _ => Err(Reply::error(500, "unexpected answer")),
                }
            }
            _ => Err(Reply::error(405, "use POST to start, GET ?id= to read, DELETE ?id= to stop")),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: &Incoming) -> Reply {
        let reply = self.route(req).await;
        security_headers(reply)
    }

    async fn route(&self, req: &Incoming) -> Reply {
        let path = req.path.as_str();
        match (&req.method, path) {
            (&Method::GET, "/metrics") => match self.status_for_metrics().await {
                Ok(s) => Reply {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    body: metrics::render(&s).into_bytes(),
                    headers: Vec::new(),
                },
                Err(r) => r,
            },
            (&Method::GET, path::OPENAPI) => Reply {
                status: 200,
                content_type: "application/yaml",
                body: OPENAPI.as_bytes().to_vec(),
                headers: Vec::new(),
            },
            (&Method::GET, "/static/style.css") => Reply {
                status: 200,
                content_type: "text/css",
                body: web::STYLE.as_bytes().to_vec(),
                headers: Vec::new(),
            },
            _ if path.starts_with("/api/") => {
                self.refresh_users();
                self.api(req).await
            }
            _ => {
                self.refresh_users();
                self.web(req).await
            }
        }
    }

    async fn api(&self, req: &Incoming) -> Reply {
        let caller = self.caller(req);
        let who = match &caller {
            Caller::Nobody => {
                return Reply::error(401, "log in, or send Authorization: Bearer <token>")
                    .with("WWW-Authenticate", "Bearer realm=\"natpass\"".into());
            }
            Caller::Script => "api token".to_string(),
            Caller::Browser(_, s) => s.user.clone(),
        };
        let mutating = !matches!(req.method, Method::GET | Method::HEAD);
        if mutating
            && let Caller::Browser(_, s) = &caller
            && !req
                .header("x-csrf-token")
                .is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), s.csrf.as_bytes()))
        {
            return Reply::error(403, "missing or wrong X-CSRF-Token header");
        }
        let result: Result<Reply, Reply> = async {
            match (&req.method, req.path.as_str()) {
                (&Method::GET, path::STATUS) => Ok(Reply::json(200, &self.status().await?)),
                (&Method::GET, path::COUNTERS) => Ok(Reply::json(200, &Counters::from(self.status().await?))),
                (&Method::GET, path::SESSIONS) => {
                    let q = session_query(req).map_err(|e| Reply::error(400, e))?;
                    match self.ask(Command::Sessions(q)).await? {
                        Answer::Sessions(p) => Ok(Reply::json(200, &p)),
                        _ => Err(Reply::error(500, "unexpected answer")),
                    }
                }
                (&Method::GET, path::TUNNELS) => match self.ask(Command::Tunnels).await? {
                    Answer::Tunnels(t) => Ok(Reply::json(200, &t)),
                    _ => Err(Reply::error(500, "unexpected answer")),
                },
                (&Method::GET, path::FINDINGS) => {
                    let client = findings_client(req).map_err(|e| Reply::error(400, e))?;
                    match self.ask(Command::Findings(client)).await? {
                        Answer::Findings(f) => Ok(Reply::json(200, &f)),
                        _ => Err(Reply::error(500, "unexpected answer")),
                    }
                }
                (&Method::GET, path::REFUSALS) => match self.ask(Command::Tunnels).await? {
                    Answer::Tunnels(t) => {
                        let r: Vec<_> = t.events.into_iter().filter(EventRow::is_refusal).collect();
                        Ok(Reply::json(200, &r))
                    }
                    _ => Err(Reply::error(500, "unexpected answer")),
                },
                (&Method::GET, path::PASSTHROUGH) => Ok(Reply::json(200, &self.status().await?.passthrough)),
                (&Method::PUT | &Method::PATCH, path::PASSTHROUGH) => {
                    let p: PassthroughPatch = json_body(req)?;
                    let patch: Vec<(Protocol, bool)> =
                        PROTOCOLS.into_iter().filter_map(|k| p.get(k).map(|v| (k, v))).collect();
                    if patch.is_empty() {
                        let names = PROTOCOLS.map(Protocol::name).join(", ");
                        return Err(Reply::error(400, format!("send at least one of {names} (true or false)")));
                    }
                    let (changed, removed) = self.set_passthrough(&who, &patch).await?;
                    let passthrough = self.status().await?.passthrough;
                    Ok(Reply::json(200, &PassthroughChanged { passthrough, changed, removed }))
                }
                (&Method::GET, path::SETTINGS) => {
                    let s = self.status().await?;
                    Ok(Reply::json(200, &Settings { timeouts: s.timeouts, filtering: s.filtering }))
                }
                (&Method::PATCH | &Method::PUT, path::SETTINGS) => {
                    let p: SettingsPatch = json_body(req)?;
                    let t = p.timeouts.unwrap_or_default();
                    let changed = self.set_settings(&who, &t, p.filtering.as_deref()).await?;
                    let s = self.status().await?;
                    Ok(Reply::json(200, &SettingsChanged { timeouts: s.timeouts, filtering: s.filtering, changed }))
                }
                (_, path::STATUS | path::COUNTERS | path::SESSIONS | path::TUNNELS | path::REFUSALS) => {
                    Err(Reply::error(405, "this resource is read-only: use GET"))
                }
                (_, path::PASSTHROUGH | path::SETTINGS) => Err(Reply::error(405, "use GET, PUT or PATCH")),
                (_, capture::PATH) => self.capture(&who, req).await,
                _ => Err(Reply::error(404, format!("no such resource: {}", req.path))),
            }
        }
        .await;
        result.unwrap_or_else(|r| r)
    }

    async fn web(&self, req: &Incoming) -> Reply {
        if req.path == "/login" {
            return self.login(req).await;
        }
        let Caller::Browser(id, session) = self.caller(req) else {
            return Reply::redirect("/login");
        };
        let form = || form_decode(&String::from_utf8_lossy(&req.body));
        let field = |f: &[(String, String)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if req.method == Method::POST {
            let f = form();
            let ok =
                field(&f, "csrf").is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), session.csrf.as_bytes()));
            if !ok {
                return Reply::html(
                    403,
                    web::message_page(
                        "Request refused",
                        "The form's security token was missing or stale. Reload the page and try again.",
                        &session,
                    ),
                );
            }
        }
        let render = |r: Result<Reply, Reply>| r.unwrap_or_else(|e| e);
        match (&req.method, req.path.as_str()) {
            (&Method::GET, "/") => Reply::redirect("/status"),
            (&Method::POST, "/logout") => {
                self.auth().logout(&id);
                Reply::redirect("/login")
                    .with("Set-Cookie", format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))
            }
            (&Method::GET, "/status") => {
                render(self.status().await.map(|s| Reply::html(200, web::status_page(&s, &session))))
            }
            (&Method::GET, "/vpn/passthrough") => {
                render(self.status().await.map(|s| {
                    Reply::html(200, web::passthrough_page(&s.passthrough, req.param("saved"), None, &session))
                }))
            }
            (&Method::POST, "/vpn/passthrough") => {
                let f = form();
                let mut patch = Vec::new();
                for p in PROTOCOLS {
                    match field(&f, p.name()).as_deref() {
                        Some("enable") => patch.push((p, true)),
                        Some("disable") => patch.push((p, false)),
                        None => {}
                        Some(other) => {
                            return Reply::html(
                                400,
                                web::message_page(
                                    "Bad request",
                                    &format!("{other:?} is not Enable or Disable."),
                                    &session,
                                ),
                            );
                        }
                    }
                }
                match self.set_passthrough(&session.user, &patch).await {
                    Ok((diff, removed)) => {
                        let note = if diff.is_empty() {
                            "nothing changed".to_string()
                        } else {
                            format!("{} ({removed} sessions and tunnels closed)", diff.join("; "))
                        };
                        Reply::redirect(&format!("/vpn/passthrough?saved={}", web::url_encode(&note)))
                    }
                    Err(e) => {
                        let msg = e.error_message();
                        render(self.status().await.map(|s| {
                            Reply::html(e.status, web::passthrough_page(&s.passthrough, None, Some(&msg), &session))
                        }))
                    }
                }
            }
            (&Method::GET, "/vpn/tunnels") => {
                let client = match findings_client(req) {
                    Ok(c) => c,
                    Err(e) => return Reply::html(400, web::message_page("Bad client", &e, &session)),
                };
                // One client's view ("what happened to 192.168.1.22's VPN"), when asked for.
                let view = match client {
                    Some(c) => match self.ask(Command::Findings(Some(c))).await {
                        Ok(Answer::Findings(f)) => Some(f),
                        Ok(_) => return Reply::error(500, "unexpected answer"),
                        Err(e) => return render(Err(e)),
                    },
                    None => None,
                };
                render(self.ask(Command::Tunnels).await.and_then(|a| match a {
                    Answer::Tunnels(t) => Ok(Reply::html(200, web::tunnels_page(&t, view.as_ref(), &session))),
                    _ => Err(Reply::error(500, "unexpected answer")),
                }))
            }
            (&Method::GET, "/sessions") => {
                let q = match session_query(req) {
                    Ok(q) => q,
                    Err(e) => return Reply::html(400, web::message_page("Bad filter", &e, &session)),
                };
                render(self.ask(Command::Sessions(q.clone())).await.and_then(|a| match a {
                    Answer::Sessions(p) => Ok(Reply::html(200, web::sessions_page(&p, &q, &session))),
                    _ => Err(Reply::error(500, "unexpected answer")),
                }))
            }
            (&Method::GET, "/settings") => render(
                self.status()
                    .await
                    .map(|s| Reply::html(200, web::settings_page(&s, req.param("saved"), None, &session))),
            ),
            (&Method::POST, "/settings") => {
                let f = form();
                let mut t = TimeoutsPatch::default();
                let mut bad = None;
                for (key, slot) in [
                    ("udp", &mut t.udp),
                    ("tcp_established", &mut t.tcp_established),
                    ("tcp_transitory", &mut t.tcp_transitory),
                    ("icmp", &mut t.icmp),
                    ("port_reuse_delay", &mut t.port_reuse_delay),
                    ("fragment", &mut t.fragment),
                ] {
                    if let Some(v) = field(&f, key).filter(|v| !v.is_empty()) {
                        match v.trim().parse::<u64>() {
                            Ok(n) => *slot = Some(n),
                            Err(_) => bad = Some(format!("{key}: {v:?} is not a number of seconds")),
                        }
                    }
                }
                let filtering = field(&f, "filtering");
                if let Some(fl) = &filtering
                    && natpass_config::filtering_named(fl).is_none()
                {
                    bad = Some(format!("filtering: {fl:?} is not a filtering mode"));
                }
                let result = match bad {
                    Some(m) => Err(Reply::error(400, m)),
                    None => self.set_settings(&session.user, &t, filtering.as_deref()).await,
                };
                match result {
                    Ok(diff) => {
                        let note = if diff.is_empty() { "nothing changed".to_string() } else { diff.join("; ") };
                        Reply::redirect(&format!("/settings?saved={}", web::url_encode(&note)))
                    }
                    Err(e) => {
                        let msg = e.error_message();
                        render(
                            self.status()
                                .await
                                .map(|s| Reply::html(e.status, web::settings_page(&s, None, Some(&msg), &session))),
                        )
                    }
                }
            }
            _ => Reply::html(404, web::message_page("Not found", "There is no such page.", &session)),
        }
    }

    /// The login page with its form token: the one the browser's login cookie already holds
    /// when it is one of ours (so two pages, or a page and the browser's own request for
    /// /favicon.ico that ends here, share one), else a fresh one, set as the cookie.
    fn login_form(&self, req: &Incoming, status: u16, error: Option<&str>) -> Reply {
        let held = req.cookie(LOGIN_COOKIE).filter(|c| self.auth().login_token_ok(Some(c), Some(c)));
        if let Some(token) = held {
            return Reply::html(status, web::login_page(error, token));
        }
        match self.auth().login_token() {
            Ok(token) => Reply::html(status, web::login_page(error, &token)).with(
                "Set-Cookie",
                format!("{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600"),
            ),
            Err(e) => Reply::error(500, e.to_string()),
        }
    }

    async fn login(&self, req: &Incoming) -> Reply {
        if req.method == Method::GET {
            return self.login_form(req, 200, None);
        }
        if req.method != Method::POST {
            return Reply::error(405, "use GET or POST");
        }
        let f = form_decode(&String::from_utf8_lossy(&req.body));
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let (user, password) = (get("user").unwrap_or(""), get("password").unwrap_or(""));
        if !self.auth().login_token_ok(req.cookie(LOGIN_COOKIE), get("csrf")) {
            return self.login_form(req, 403, Some("The form's security token was missing or stale. Try again."));
        }
        let now = Instant::now();
        // The limiter first, then the password check off this thread, or "busy" at once.
        let (attempt, right) = {
            let begun = self.auth().begin_login(req.from, user, now);
            let attempt = match begun {
                Ok(a) => a,
                Err(e) => return self.login_refused(req, user, e),
            };
            let Ok(rx) = self.passwords.check(password.to_string(), attempt.hash.clone()) else {
                return self.login_refused(req, user, LoginError::Busy);
            };
            self.auth().count_attempt(req.from, now);
            (attempt, rx.await.unwrap_or(false))
        };
        let done = self.auth().finish_login(req.from, user, &attempt, right, Instant::now());
        match done {
            Ok(id) => {
                (self.log)(&format!("login: {user} from {}", req.from));
                Reply::redirect("/status").with(
                    "Set-Cookie",
                    format!(
                        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                        crate::auth::SESSION_MAX.as_secs()
                    ),
                )
            }
            Err(e) => self.login_refused(req, user, e),
        }
    }

    fn login_refused(&self, req: &Incoming, user: &str, e: LoginError) -> Reply {
        match e {
            LoginError::Wrong => {
                (self.log)(&format!("login failed: {user:?} from {}", req.from));
                self.login_form(req, 401, Some("Wrong user name or password."))
            }
            LoginError::RateLimited => self
                .login_form(req, 429, Some("Too many failed logins. Wait five minutes and try again."))
                .with("Retry-After", "300".into()),
            LoginError::Busy => self
                .login_form(req, 503, Some("Too many logins at once. Try again in a moment."))
                .with("Retry-After", "1".into()),
            LoginError::NoRandom(e) => Reply::error(500, e.to_string()),
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(req: &Incoming) -> Result<T, Reply> {
    if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err(Reply::error(415, "send the body as Content-Type: application/json"));
    }
    serde_json::from_slice(&req.body).map_err(|e| Reply::error(400, format!("bad JSON body: {e}")))
}

pub(crate) fn security_headers(r: Reply) -> Reply {
    r.with(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'".into(),
    )
    .with("X-Content-Type-Options", "nosniff".into())
    .with("X-Frame-Options", "DENY".into())
    .with("Referrer-Policy", "no-referrer".into())
    .with("Cache-Control", "no-store".into())
}

/// Listens on `addr` and serves the control plane on a thread of its own (see
/// [`crate::http`]). Returns the bound address (port 0 picks a free one).
pub fn spawn(
    addr: SocketAddr,
    control: impl Into<std::sync::Arc<Control>>,
    options: crate::http::Options,
) -> Result<SocketAddr, String> {
    crate::http::spawn(addr, control, options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use natpass_engine::Proto;

    use super::*;
    use crate::api::SessionParams;

    fn get(query: Vec<(String, String)>) -> Incoming {
        Incoming {
            method: Method::GET,
            path: path::SESSIONS.into(),
            query,
            headers: Vec::new(),
            body: Vec::new(),
            from: IpAddr::from([127, 0, 0, 1]),
        }
    }

    #[test]
    fn the_query_the_cli_sends_is_the_query_the_server_reads() {
        let p = SessionParams {
            proto: Some("udp".into()),
            addr: Some("192.168.1.10".parse().unwrap()),
            port: Some(500),
            page: 2,
            per_page: 50,
        };
        let q = session_query(&get(p.pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect())).unwrap();
        assert_eq!(q, SessionQuery { proto: Some(Proto::Udp), addr: p.addr, port: Some(500), page: 2, per_page: 50 });
        let v6 = SessionParams {
            addr: Some("2001:db8:1::10".parse().unwrap()),
            page: 1,
            per_page: 100,
            ..SessionParams::default()
        };
        let q = session_query(&get(v6.pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect())).unwrap();
        assert_eq!(q.addr, v6.addr);
        let bad = SessionParams { proto: Some("gre".into()), page: 1, per_page: 100, ..SessionParams::default() };
        let e = session_query(&get(bad.pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
        assert_eq!(e.unwrap_err(), "proto=\"gre\": use tcp, udp or icmp");
    }

    #[test]
    fn error_replies_carry_their_message() {
        let r = Reply::error(422, "timeouts.udp: too small");
        assert_eq!((r.status, r.error_message().as_str()), (422, "timeouts.udp: too small"));
    }
}
