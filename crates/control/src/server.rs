//! The HTTP server of the control plane: the REST/JSON API under `/api/v1` (described by
//! `docs/openapi.yaml`, served at `/api/v1/openapi.yaml`), the web admin pages, and
//! Prometheus `/metrics`. One thread; every request is answered from the data plane through
//! the [`Handle`], and every change goes config-file-first: validated, applied live, then
//! saved, or refused with nothing changed.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use natpass_engine::Protocol;
use tiny_http::{Header, Method, Request, Response, Server};
use toml_edit::Value;

use crate::api::{
    self, ApiError, Counters, EventRow, PROTOCOLS, PassthroughChanged, PassthroughPatch, Settings, SettingsChanged,
    SettingsPatch, TimeoutsPatch, path,
};
use crate::auth::{Auth, LoginError, Session};
use crate::interface::{Answer, Command, Handle, SessionQuery};
use crate::store::{ConfigStore, Edit};
use crate::{metrics, web};

/// The OpenAPI description of the API.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// The session cookie's name.
pub const COOKIE: &str = "natpass_session";

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

    fn cookie(&self) -> Option<&str> {
        self.header("cookie")?.split(';').map(str::trim).find_map(|c| c.strip_prefix(&format!("{COOKIE}=")))
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

/// The control plane: what the server needs to answer.
pub struct Control {
    /// The data plane.
    pub handle: Handle,
    /// The config file.
    pub store: ConfigStore,
    /// Users, sessions, tokens.
    pub auth: Auth,
    /// Lines for the log (config diffs, logins).
    pub log: Box<dyn FnMut(&str) + Send>,
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
        Some(a) => Some(a.parse().map_err(|_| format!("addr={a:?} is not an IPv4 address"))?),
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

impl Control {
    fn caller(&mut self, req: &Incoming) -> Caller {
        if let Some(token) = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
            return if self.auth.bearer_ok(token.trim()) { Caller::Script } else { Caller::Nobody };
        }
        if let Some(id) = req.cookie().map(str::to_string)
            && let Some(s) = self.auth.session(&id, Instant::now())
        {
            return Caller::Browser(id, s);
        }
        Caller::Nobody
    }

    fn ask(&self, cmd: Command) -> Result<Answer, Reply> {
        self.handle.ask(cmd).map_err(|e| Reply::error(503, e.to_string()))
    }

    fn status(&self) -> Result<api::Status, Reply> {
        match self.ask(Command::Status)? {
            Answer::Status(s) => Ok(*s),
            _ => Err(Reply::error(500, "unexpected answer")),
        }
    }

    /// Validates `edits` against the config file, applies `live` to the data plane, then
    /// saves. Returns the diff and how many sessions/tunnels went away.
    fn change(&mut self, who: &str, edits: &[Edit], live: Vec<Command>) -> Result<(Vec<String>, usize), Reply> {
        let prepared = self.store.prepare(edits).map_err(|e| Reply::error(422, e.to_string()))?;
        let mut removed = 0;
        for cmd in live {
            match self.ask(cmd)? {
                Answer::Changed { removed: n } => removed += n,
                Answer::Refused(msg) => return Err(Reply::error(422, msg)),
                _ => return Err(Reply::error(500, "unexpected answer")),
            }
        }
        let diff = prepared.diff.clone();
        self.store.commit(prepared.text).map_err(|e| Reply::error(500, e.to_string()))?;
        for line in &diff {
            (self.log)(&format!("config changed by {who}: {line}"));
        }
        Ok((diff, removed))
    }

    fn set_passthrough(&mut self, who: &str, patch: &[(Protocol, bool)]) -> Result<(Vec<String>, usize), Reply> {
        // Only what differs from the running switches is a change.
        let now = self.status()?.passthrough;
        let patch: Vec<(Protocol, bool)> = patch.iter().copied().filter(|&(p, on)| on != now.get(p)).collect();
        let edits: Vec<Edit> =
            patch.iter().map(|&(p, on)| Edit { table: "passthrough", key: p.name(), value: on.into() }).collect();
        let live = patch.iter().map(|&(p, on)| Command::SetPassthrough(p, on)).collect();
        self.change(who, &edits, live)
    }

    fn set_settings(&mut self, who: &str, t: &TimeoutsPatch, filtering: Option<&str>) -> Result<Vec<String>, Reply> {
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
        let prepared = self.store.prepare(&edits).map_err(|e| Reply::error(422, e.to_string()))?;
        let mut live = vec![Command::SetTimeouts(prepared.config.engine.timeouts)];
        if filtering.is_some() {
            live.push(Command::SetFiltering(prepared.config.engine.filtering));
        }
        self.change(who, &edits, live).map(|(d, _)| d)
    }

    /// Answers one request.
    pub fn handle(&mut self, req: &Incoming) -> Reply {
        let reply = self.route(req);
        security_headers(reply)
    }

    fn route(&mut self, req: &Incoming) -> Reply {
        let path = req.path.as_str();
        match (&req.method, path) {
            (Method::Get, "/metrics") => match self.status() {
                Ok(s) => Reply {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    body: metrics::render(&s).into_bytes(),
                    headers: Vec::new(),
                },
                Err(r) => r,
            },
            (Method::Get, path::OPENAPI) => Reply {
                status: 200,
                content_type: "application/yaml",
                body: OPENAPI.as_bytes().to_vec(),
                headers: Vec::new(),
            },
            (Method::Get, "/static/style.css") => Reply {
                status: 200,
                content_type: "text/css",
                body: web::STYLE.as_bytes().to_vec(),
                headers: Vec::new(),
            },
            _ if path.starts_with("/api/") => self.api(req),
            _ => self.web(req),
        }
    }

    fn api(&mut self, req: &Incoming) -> Reply {
        let caller = self.caller(req);
        let who = match &caller {
            Caller::Nobody => {
                return Reply::error(401, "log in, or send Authorization: Bearer <token>")
                    .with("WWW-Authenticate", "Bearer realm=\"natpass\"".into());
            }
            Caller::Script => "api token".to_string(),
            Caller::Browser(_, s) => s.user.clone(),
        };
        let mutating = !matches!(req.method, Method::Get | Method::Head);
        if mutating
            && let Caller::Browser(_, s) = &caller
            && !req
                .header("x-csrf-token")
                .is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), s.csrf.as_bytes()))
        {
            return Reply::error(403, "missing or wrong X-CSRF-Token header");
        }
        let result: Result<Reply, Reply> = (|| match (&req.method, req.path.as_str()) {
            (Method::Get, path::STATUS) => Ok(Reply::json(200, &self.status()?)),
            (Method::Get, path::COUNTERS) => Ok(Reply::json(200, &Counters::from(self.status()?))),
            (Method::Get, path::SESSIONS) => {
                let q = session_query(req).map_err(|e| Reply::error(400, e))?;
                match self.ask(Command::Sessions(q))? {
                    Answer::Sessions(p) => Ok(Reply::json(200, &p)),
                    _ => Err(Reply::error(500, "unexpected answer")),
                }
            }
            (Method::Get, path::TUNNELS) => match self.ask(Command::Tunnels)? {
                Answer::Tunnels(t) => Ok(Reply::json(200, &t)),
                _ => Err(Reply::error(500, "unexpected answer")),
            },
            (Method::Get, path::REFUSALS) => match self.ask(Command::Tunnels)? {
                Answer::Tunnels(t) => {
                    let r: Vec<_> = t.events.into_iter().filter(EventRow::is_refusal).collect();
                    Ok(Reply::json(200, &r))
                }
                _ => Err(Reply::error(500, "unexpected answer")),
            },
            (Method::Get, path::PASSTHROUGH) => Ok(Reply::json(200, &self.status()?.passthrough)),
            (Method::Put | Method::Patch, path::PASSTHROUGH) => {
                let p: PassthroughPatch = json_body(req)?;
                let patch: Vec<(Protocol, bool)> =
                    PROTOCOLS.into_iter().filter_map(|k| p.get(k).map(|v| (k, v))).collect();
                if patch.is_empty() {
                    let names = PROTOCOLS.map(Protocol::name).join(", ");
                    return Err(Reply::error(400, format!("send at least one of {names} (true or false)")));
                }
                let (changed, removed) = self.set_passthrough(&who, &patch)?;
                let passthrough = self.status()?.passthrough;
                Ok(Reply::json(200, &PassthroughChanged { passthrough, changed, removed }))
            }
            (Method::Get, path::SETTINGS) => {
                let s = self.status()?;
                Ok(Reply::json(200, &Settings { timeouts: s.timeouts, filtering: s.filtering }))
            }
            (Method::Patch | Method::Put, path::SETTINGS) => {
                let p: SettingsPatch = json_body(req)?;
                let t = p.timeouts.unwrap_or_default();
                let changed = self.set_settings(&who, &t, p.filtering.as_deref())?;
                let s = self.status()?;
                Ok(Reply::json(200, &SettingsChanged { timeouts: s.timeouts, filtering: s.filtering, changed }))
            }
            (_, path::STATUS | path::COUNTERS | path::SESSIONS | path::TUNNELS | path::REFUSALS) => {
                Err(Reply::error(405, "this resource is read-only: use GET"))
            }
            (_, path::PASSTHROUGH | path::SETTINGS) => Err(Reply::error(405, "use GET, PUT or PATCH")),
            _ => Err(Reply::error(404, format!("no such resource: {}", req.path))),
        })();
        result.unwrap_or_else(|r| r)
    }

    fn web(&mut self, req: &Incoming) -> Reply {
        if req.path == "/login" {
            return self.login(req);
        }
        let Caller::Browser(id, session) = self.caller(req) else {
            return Reply::redirect("/login");
        };
        let form = || form_decode(&String::from_utf8_lossy(&req.body));
        let field = |f: &[(String, String)], k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if req.method == Method::Post {
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
            (Method::Get, "/") => Reply::redirect("/status"),
            (Method::Post, "/logout") => {
                self.auth.logout(&id);
                Reply::redirect("/login")
                    .with("Set-Cookie", format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))
            }
            (Method::Get, "/status") => render(self.status().map(|s| Reply::html(200, web::status_page(&s, &session)))),
            (Method::Get, "/vpn/passthrough") => {
                render(self.status().map(|s| {
                    Reply::html(200, web::passthrough_page(&s.passthrough, req.param("saved"), None, &session))
                }))
            }
            (Method::Post, "/vpn/passthrough") => {
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
                match self.set_passthrough(&session.user, &patch) {
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
                        render(self.status().map(|s| {
                            Reply::html(e.status, web::passthrough_page(&s.passthrough, None, Some(&msg), &session))
                        }))
                    }
                }
            }
            (Method::Get, "/vpn/tunnels") => render(self.ask(Command::Tunnels).and_then(|a| match a {
                Answer::Tunnels(t) => Ok(Reply::html(200, web::tunnels_page(&t, &session))),
                _ => Err(Reply::error(500, "unexpected answer")),
            })),
            (Method::Get, "/sessions") => {
                let q = match session_query(req) {
                    Ok(q) => q,
                    Err(e) => return Reply::html(400, web::message_page("Bad filter", &e, &session)),
                };
                render(self.ask(Command::Sessions(q.clone())).and_then(|a| match a {
                    Answer::Sessions(p) => Ok(Reply::html(200, web::sessions_page(&p, &q, &session))),
                    _ => Err(Reply::error(500, "unexpected answer")),
                }))
            }
            (Method::Get, "/settings") => render(
                self.status().map(|s| Reply::html(200, web::settings_page(&s, req.param("saved"), None, &session))),
            ),
            (Method::Post, "/settings") => {
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
                    None => self.set_settings(&session.user, &t, filtering.as_deref()),
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
                                .map(|s| Reply::html(e.status, web::settings_page(&s, None, Some(&msg), &session))),
                        )
                    }
                }
            }
            _ => Reply::html(404, web::message_page("Not found", "There is no such page.", &session)),
        }
    }

    fn login(&mut self, req: &Incoming) -> Reply {
        if req.method == Method::Get {
            return Reply::html(200, web::login_page(None));
        }
        if req.method != Method::Post {
            return Reply::error(405, "use GET or POST");
        }
        let f = form_decode(&String::from_utf8_lossy(&req.body));
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
        match self.auth.login(req.from, get("user"), get("password"), Instant::now()) {
            Ok(id) => {
                (self.log)(&format!("login: {} from {}", get("user"), req.from));
                Reply::redirect("/status").with(
                    "Set-Cookie",
                    format!(
                        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                        crate::auth::SESSION_MAX.as_secs()
                    ),
                )
            }
            Err(LoginError::Wrong) => {
                (self.log)(&format!("login failed: {:?} from {}", get("user"), req.from));
                Reply::html(401, web::login_page(Some("Wrong user name or password.")))
            }
            Err(LoginError::RateLimited) => Reply::html(
                429,
                web::login_page(Some("Too many failed logins from your address. Wait five minutes and try again.")),
            )
            .with("Retry-After", "300".into()),
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(req: &Incoming) -> Result<T, Reply> {
    if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err(Reply::error(415, "send the body as Content-Type: application/json"));
    }
    serde_json::from_slice(&req.body).map_err(|e| Reply::error(400, format!("bad JSON body: {e}")))
}

fn security_headers(r: Reply) -> Reply {
    r.with(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'".into(),
    )
    .with("X-Content-Type-Options", "nosniff".into())
    .with("X-Frame-Options", "DENY".into())
    .with("Referrer-Policy", "no-referrer".into())
    .with("Cache-Control", "no-store".into())
}

fn read(mut req: Request) -> (Request, Result<Incoming, Reply>) {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
        .collect();
    let from = req.remote_addr().map_or(IpAddr::from([127, 0, 0, 1]), SocketAddr::ip);
    let mut body = Vec::new();
    let too_big = req.body_length().is_some_and(|n| n > MAX_BODY);
    if too_big {
        return (req, Err(Reply::error(413, format!("the body is larger than {MAX_BODY} bytes"))));
    }
    let _ = req.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body);
    if body.len() > MAX_BODY {
        return (req, Err(Reply::error(413, format!("the body is larger than {MAX_BODY} bytes"))));
    }
    let incoming = Incoming {
        method: req.method().clone(),
        path: path.to_string(),
        query: form_decode(query),
        headers,
        body,
        from,
    };
    (req, Ok(incoming))
}

fn send(req: Request, r: Reply) {
    let mut resp = Response::from_data(r.body).with_status_code(r.status);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], r.content_type.as_bytes()) {
        resp.add_header(h);
    }
    for (n, v) in r.headers {
        if let Ok(h) = Header::from_bytes(n.as_bytes(), v.as_bytes()) {
            resp.add_header(h);
        }
    }
    let _ = req.respond(resp);
}

/// Listens on `addr` and serves the control plane on a thread of its own. Returns the bound
/// address (port 0 picks a free one).
pub fn spawn(addr: SocketAddr, mut control: Control) -> Result<SocketAddr, String> {
    let server = Server::http(addr).map_err(|e| format!("listening on {addr}: {e}"))?;
    let bound = server.server_addr().to_ip().ok_or_else(|| format!("listening on {addr}: not an IP socket"))?;
    std::thread::Builder::new()
        .name("natpass-control".into())
        .spawn(move || {
            loop {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(1)) else { continue };
                let (req, incoming) = read(req);
                let reply = match incoming {
                    Ok(i) => control.handle(&i),
                    Err(r) => security_headers(r),
                };
                send(req, reply);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use natpass_engine::Proto;

    use super::*;
    use crate::api::SessionParams;

    fn get(query: Vec<(String, String)>) -> Incoming {
        Incoming {
            method: Method::Get,
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
