//! The control plane's HTTP/1.1 server (hyper), bounded so that no client can freeze it or
//! grow its memory, on a single-threaded tokio runtime on a thread of its own. The data plane
//! never waits for it: they meet only in [`crate::interface`]'s bounded, non-blocking queue.
//!
//! Limits ([`Limits`]):
//! - a request head must arrive whole within `header_timeout` (also the idle time allowed
//!   between requests on a kept-alive connection), in at most `max_header_bytes` and
//!   `max_headers` headers; beyond that hyper answers 431 or closes;
//! - a body larger than `max_body` is refused (413) before it is read; a body must arrive
//!   within `body_timeout` (408);
//! - a request gets `handler_timeout` to be answered (503);
//! - at most `max_connections` connections, `per_address` from one address. A connection
//!   beyond either limit pushes out the oldest connection that is not being answered (idle,
//!   sending its head or its body, or in its TLS handshake); when every one is being
//!   answered, the new one is closed;
//! - accept errors (EMFILE, ENFILE, ENOBUFS, ...) back off from 10 ms to 1 s, and the loop goes
//!   on; out of descriptors, the oldest idle connection is closed to free one.
//!
//! Every request's Host header must name this server: the listen address, or one of
//! `[admin] server_names` (and `localhost` when it listens on loopback), so a DNS rebinding
//! page cannot read or change anything. Changes (POST, PUT, PATCH, DELETE) sent with an
//! Origin header must come from this server's own origin (`Origin: null`, which browsers send
//! under the pages' no-referrer policy, counts as none). Over HTTPS ([`Options::tls`]) every
//! cookie is `Secure` and every answer carries `Strict-Transport-Security`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::header::{CONTENT_LENGTH, HOST, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::server::{Control, Incoming, Reply, form_decode, security_headers};

/// What one client may use.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections at once.
    pub max_connections: usize,
    /// Connections at once from one address.
    pub per_address: usize,
    /// Time for a whole request head, and for a kept-alive connection to send the next one.
    pub header_timeout: Duration,
    /// Bytes of one request head (at least 8 KiB: hyper's floor).
    pub max_header_bytes: usize,
    /// Headers in one request.
    pub max_headers: usize,
    /// Bytes of one request body.
    pub max_body: usize,
    /// Time for a whole request body.
    pub body_timeout: Duration,
    /// Time to answer a request once it is read.
    pub handler_timeout: Duration,
    /// Time for a TLS handshake.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            per_address: 32,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body: crate::server::MAX_BODY,
            body_timeout: Duration::from_secs(10),
            handler_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// How the server is reached.
#[derive(Clone, Default)]
pub struct Options {
    /// HTTPS with this configuration; `None` is plain HTTP (loopback only, by the daemon).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Names the Host header may carry besides the listen address (`[admin] server_names`).
    pub server_names: Vec<String>,
    /// The limits.
    pub limits: Limits,
}

/// Which Host headers and Origins name this server.
#[derive(Clone, Debug)]
pub struct Site {
    https: bool,
    any_ip: bool,
    names: Vec<String>,
}

impl Site {
    /// The site listening on `listen`, also known as `server_names`.
    pub fn new(listen: SocketAddr, server_names: &[String], https: bool) -> Self {
        let ip = listen.ip();
        let mut names: Vec<String> = server_names.iter().map(|n| normalise(n)).collect();
        if !ip.is_unspecified() {
            names.push(match ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            });
        }
        if ip.is_loopback() || ip.is_unspecified() {
            names.push("localhost".into());
        }
        // Listening on every address: any IP literal names it (a rebinding page always
        // sends a DNS name).
        Self { https, any_ip: ip.is_unspecified(), names }
    }

    /// Whether a Host header value (`name[:port]`) names this server.
    pub fn host_ok(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else { return false };
        let name = normalise(name);
        if self.names.contains(&name) {
            return true;
        }
        self.any_ip
            && (name.parse::<Ipv4Addr>().is_ok()
                || name
                    .strip_prefix('[')
                    .and_then(|n| n.strip_suffix(']'))
                    .is_some_and(|n| n.parse::<Ipv6Addr>().is_ok()))
    }

    /// Whether an Origin header value is this server's own origin.
    pub fn origin_ok(&self, origin: &str) -> bool {
        let scheme = if self.https { "https://" } else { "http://" };
        origin.strip_prefix(scheme).is_some_and(|host| self.host_ok(host))
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The name part of `name[:port]` or `[v6][:port]`, when the port (if any) is a number.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        (&host[..=end], host[end + 1..].strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(name)
}

/// Everything the connections share.
pub struct Shared {
    control: Arc<Control>,
    site: Site,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    next: u64,
    /// By age: the oldest first.
    live: BTreeMap<u64, Conn>,
}

struct Conn {
    addr: IpAddr,
    busy: Arc<AtomicBool>,
    /// Dropped to close the connection.
    _close: oneshot::Sender<()>,
}

impl Conns {
    /// Closes the oldest connection that is not being answered and matches `which`.
    fn shed(&mut self, which: impl Fn(&Conn) -> bool) -> bool {
        let victim = self.live.iter().find(|(_, c)| !c.busy.load(Ordering::Relaxed) && which(c)).map(|(id, _)| *id);
        victim.is_some_and(|id| self.live.remove(&id).is_some())
    }
}

impl Shared {
    /// The shared state of a server for `control` on `listen`.
    pub fn new(control: impl Into<Arc<Control>>, listen: SocketAddr, options: Options) -> Self {
        Self {
            control: control.into(),
            site: Site::new(listen, &options.server_names, options.tls.is_some()),
            limits: options.limits,
            tls: options.tls.map(tokio_rustls::TlsAcceptor::from),
            conns: Mutex::new(Conns::default()),
        }
    }

    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns().live.len()
    }

    /// Makes room for a connection from `addr` (closing the oldest one not being answered
    /// when a limit is reached) and registers it; `None` when there is no room.
    fn admit(&self, addr: IpAddr) -> Option<(u64, Arc<AtomicBool>, oneshot::Receiver<()>)> {
        let mut c = self.conns();
        let from_addr = c.live.values().filter(|x| x.addr == addr).count();
        if from_addr >= self.limits.per_address && !c.shed(|x| x.addr == addr) {
            return None;
        }
        if c.live.len() >= self.limits.max_connections && !c.shed(|_| true) {
            return None;
        }
        let id = c.next;
        c.next += 1;
        let busy = Arc::new(AtomicBool::new(false));
        let (close, closed) = oneshot::channel();
        c.live.insert(id, Conn { addr, busy: Arc::clone(&busy), _close: close });
        Some((id, busy, closed))
    }
}

/// Serves one accepted connection (plain or TLS, as the server is set up) until it ends, is
/// pushed out, or breaks a limit.
pub async fn serve_connection<S>(shared: Arc<Shared>, io: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some((id, busy, closed)) = shared.admit(peer.ip()) else { return };
    let run = {
        let shared = Arc::clone(&shared);
        async move {
            match shared.tls.clone() {
                Some(acceptor) => {
                    let hs = tokio::time::timeout(shared.limits.tls_handshake_timeout, acceptor.accept(io)).await;
                    if let Ok(Ok(tls)) = hs {
                        serve_http(shared, tls, peer, busy).await;
                    }
                }
                None => serve_http(shared, io, peer, busy).await,
            }
        }
    };
    tokio::select! {
        () = run => {}
        _ = closed => {}
    }
    shared.conns().live.remove(&id);
}

async fn serve_http<S>(shared: Arc<Shared>, io: S, peer: SocketAddr, busy: Arc<AtomicBool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits.clone();
    let svc = hyper::service::service_fn(move |req| {
        let (shared, busy) = (Arc::clone(&shared), Arc::clone(&busy));
        async move { Ok::<_, Infallible>(respond(&shared, req, peer, &busy).await) }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    if let Err(e) = b.serve_connection(TokioIo::new(io), svc).await {
        // A client that went away or broke the protocol: worth a line when debugging only.
        tracing::debug!(target: "natpass::admin", %peer, "admin connection ended: {e}");
    }
}

async fn respond(shared: &Shared, req: Request<Body>, peer: SocketAddr, busy: &AtomicBool) -> Response<Full<Bytes>> {
    let reply = answer(shared, req, peer, busy).await;
    to_response(reply, shared.site.https)
}

/// Reads one request within the limits and answers it.
async fn answer(shared: &Shared, req: Request<Body>, peer: SocketAddr, busy: &AtomicBool) -> Reply {
    let (parts, body) = req.into_parts();
    let limits = &shared.limits;
    let host =
        parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
    match host {
        None => return security_headers(Reply::error(400, "the request has no Host header")),
        Some(h) if !shared.site.host_ok(h) => {
            return security_headers(Reply::error(
                421,
                format!("this server is not {h:?}; use its address, or add the name to [admin] server_names"),
            ));
        }
        Some(_) => {}
    }
    // `Origin: null` says nothing: browsers send it for a same-origin form under the pages'
    // `Referrer-Policy: no-referrer`. Then the CSRF token and the SameSite=Strict cookie decide.
    let mutating = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if mutating
        && let Some(origin) = parts.headers.get(ORIGIN)
        && origin.as_bytes() != b"null"
        && !origin.to_str().is_ok_and(|o| shared.site.origin_ok(o))
    {
        return security_headers(Reply::error(403, "cross-origin request refused"));
    }
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return security_headers(Reply::error(413, format!("the body is larger than {} bytes", limits.max_body)));
    }
    let body = match tokio::time::timeout(limits.body_timeout, Limited::new(body, limits.max_body).collect()).await {
        Err(_) => {
            return security_headers(Reply::error(
                408,
                format!("the body did not arrive within {} s", limits.body_timeout.as_secs()),
            ));
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return security_headers(Reply::error(413, format!("the body is larger than {} bytes", limits.max_body)));
        }
        Ok(Err(_)) => return security_headers(Reply::error(400, "the body could not be read")),
        Ok(Ok(b)) => b.to_bytes().to_vec(),
    };
    let incoming = Incoming {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: form_decode(parts.uri.query().unwrap_or("")),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        from: peer.ip(),
    };
    busy.store(true, Ordering::Relaxed);
    let reply = tokio::time::timeout(limits.handler_timeout, shared.control.handle(&incoming)).await;
    busy.store(false, Ordering::Relaxed);
    reply.unwrap_or_else(|_| {
        security_headers(Reply::error(503, "the request took too long; try again").with("Retry-After", "1".into()))
    })
}

fn to_response(r: Reply, https: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Ok(v) = r.content_type.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    for (name, value) in r.headers {
        let value = if https && name.eq_ignore_ascii_case("set-cookie") { format!("{value}; Secure") } else { value };
        if let (Ok(n), Ok(v)) = (name.parse::<hyper::header::HeaderName>(), value.parse()) {
            h.append(n, v);
        }
    }
    if https && let Ok(v) = "max-age=31536000".parse() {
        h.insert(hyper::header::STRICT_TRANSPORT_SECURITY, v);
    }
    resp
}

/// Where connections come from: a TCP listener, or a test's stand-in.
pub trait Accept {
    /// The connection type.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<(Self::Io, SocketAddr)> {
        let (s, peer) = tokio::net::TcpListener::accept(self).await?;
        let _ = s.set_nodelay(true);
        Ok((s, peer))
    }
}

/// The back-off after `n` accept errors in a row: 10 ms, doubling, at most 1 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << n.min(7))).min(Duration::from_secs(1))
}

/// Accepts connections for ever and serves each on a task of its own. An error backs off
/// ([`backoff`]) and the loop goes on; out of descriptors, the oldest idle connection is
/// closed first. `log` gets one line per run of errors.
pub async fn accept_loop<L: Accept>(mut listener: L, shared: Arc<Shared>, log: impl Fn(&str)) {
    let mut errors = 0u32;
    loop {
        match listener.accept().await {
            Ok((io, peer)) => {
                errors = 0;
                tokio::spawn(serve_connection(Arc::clone(&shared), io, peer));
            }
            Err(e) => {
                use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
                if matches!(e.kind(), ConnectionAborted | ConnectionReset) {
                    continue;
                }
                if errors == 0 {
                    log(&format!("accepting admin connections: {e}; backing off and retrying"));
                }
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    shared.conns().shed(|_| true);
                }
                tokio::time::sleep(backoff(errors)).await;
                errors = errors.saturating_add(1);
            }
        }
    }
}

/// Listens on `addr` and serves `control` on a thread of its own. Returns the bound address
/// (port 0 picks a free one).
pub fn spawn(addr: SocketAddr, control: impl Into<Arc<Control>>, options: Options) -> Result<SocketAddr, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the control plane's runtime: {e}"))?;
    let listener = rt.block_on(async { listen(addr) }).map_err(|e| format!("listening on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| format!("listening on {addr}: {e}"))?;
    let shared = Arc::new(Shared::new(control, bound, options));
    std::thread::Builder::new()
        .name("natpass-control".into())
        .spawn(move || {
            rt.block_on(accept_loop(listener, shared, |line| tracing::warn!(target: "natpass::admin", "{line}")))
        })
        .map_err(|e| e.to_string())?;
    Ok(bound)
}

/// A listening socket with room for [`BACKLOG`] connections not yet accepted, so a burst of
/// connections does not push a scrape's SYN into a retransmission (a whole second).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Connections the kernel may hold before the server accepts them (capped by
/// net.core.somaxconn).
pub const BACKLOG: u32 = 1024;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn host_headers_must_name_this_server() {
        let lan = Site::new("192.168.1.1:443".parse().unwrap(), &["Router.LAN".into()], true);
        for ok in ["192.168.1.1", "192.168.1.1:443", "router.lan", "ROUTER.lan.:8443"] {
            assert!(lan.host_ok(ok), "{ok}");
        }
        for bad in ["evil.example", "192.168.1.2", "localhost", "192.168.1.1:x", "", ":443", "router.lan:"] {
            assert!(!lan.host_ok(bad), "{bad}");
        }
        assert!(lan.origin_ok("https://router.lan"));
        assert!(!lan.origin_ok("http://router.lan"), "the scheme is part of the origin");
        assert!(!lan.origin_ok("null"));
        let lo = Site::new("127.0.0.1:8080".parse().unwrap(), &[], false);
        assert!(lo.host_ok("127.0.0.1:8080") && lo.host_ok("localhost:8080") && !lo.host_ok("127.0.0.2"));
        let any = Site::new("[::]:443".parse().unwrap(), &[], true);
        assert!(any.host_ok("10.1.2.3") && any.host_ok("[fe80::1]:443") && !any.host_ok("rebind.example"));
    }

    /// Fails like a listener out of descriptors `errors` times, then gives one connection,
    /// then waits for ever.
    struct Flaky {
        errors: u32,
        conn: Option<tokio::io::DuplexStream>,
    }

    impl Accept for Flaky {
        type Io = tokio::io::DuplexStream;
        async fn accept(&mut self) -> std::io::Result<(Self::Io, SocketAddr)> {
            if self.errors > 0 {
                self.errors -= 1;
                return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
            }
            match self.conn.take() {
                Some(c) => Ok((c, "127.0.0.1:40000".parse().unwrap())),
                None => std::future::pending().await,
            }
        }
    }

    #[test]
    fn the_accept_loop_survives_running_out_of_descriptors() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (handle, _mailbox) = crate::interface::channel();
        let auth = crate::auth::Auth::new(Vec::new(), Vec::new(), Duration::from_secs(60)).unwrap();
        let control = Control::new(handle, crate::store::ConfigStore::new(None, String::new()), auth, |_| {}).unwrap();
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let shared = Arc::new(Shared::new(control, listen, Options::default()));
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let logged = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&logged);
        let answer = rt.block_on(async move {
            let flaky = Flaky { errors: 5, conn: Some(server) };
            tokio::spawn(accept_loop(flaky, shared, move |l| lines.lock().unwrap().push(l.to_string())));
            client
                .write_all(b"GET /static/style.css HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await.unwrap().unwrap();
            answer
        });
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
        let logged = logged.lock().unwrap();
        assert_eq!(logged.len(), 1, "one line per run of errors: {logged:?}");
        assert!(logged[0].contains("backing off"), "{logged:?}");
    }

    #[test]
    fn accept_errors_back_off_up_to_a_second() {
        assert_eq!(backoff(0), Duration::from_millis(10));
        assert_eq!(backoff(3), Duration::from_millis(80));
        assert_eq!(backoff(40), Duration::from_secs(1));
    }
}
