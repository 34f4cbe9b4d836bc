//! Who may use the control plane: administrators with argon2id password hashes (RFC 9106)
//! and browser sessions (an HttpOnly, SameSite=Strict cookie) with a per-session CSRF token,
//! a CSRF token on the login form too, login rate limiting per client address and overall,
//! and bearer tokens for scripts (stored as SHA-256).
//!
//! Every secret comes from the operating system's random source ([`os_random`], the
//! `getrandom` crate), and a source that fails is an error, never zeros: natpass refuses to
//! start rather than run with predictable session IDs, tokens, salts or passwords.
//!
//! Password checks are slow on purpose (argon2id, 19 MiB, about 20 ms), so they run on
//! [`PasswordCheckers`], worker threads of their own with a short queue: the HTTP server never
//! waits for one, and beyond the queue a login is answered "busy" at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use natpass_config::User;
use sha2::{Digest, Sha256};

/// Failed logins allowed per address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES: usize = 5;
/// Failed logins allowed from all addresses together within [`LOGIN_WINDOW`]; beyond it every
/// login is refused (429) until failures age out, so a password guesser with many addresses
/// gets no more tries, and no more CPU, than this.
pub const LOGIN_FAILURES_OVERALL: usize = 100;
/// The window for [`LOGIN_FAILURES`] and [`LOGIN_FAILURES_OVERALL`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// Addresses the login limiter remembers at most (each with at most [`LOGIN_FAILURES`]
/// timestamps).
pub const LOGIN_ADDRESSES: usize = 4096;
/// A browser session ends this long after login, active or not.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// Browser sessions kept at most; a new login beyond it ends the least recently used one.
pub const SESSIONS_MAX: usize = 256;

/// The operating system's random source failed: natpass must not make secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no random bytes from the operating system ({0}); secrets would be predictable")]
pub struct RandomError(pub String);

/// Where secrets come from: [`os_random`] in natpass, something else in a test that shows a
/// failing source stops natpass.
pub type RandomSource = fn(&mut [u8]) -> Result<(), RandomError>;

/// Fills `buf` from the kernel (getrandom(2), or /dev/urandom where that is missing).
pub fn os_random(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

/// Fills `buf` with random bytes from the operating system, or says why it cannot.
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    os_random(buf)
}

/// `n` random bytes from `source`, hex-encoded.
pub fn random_hex_from(source: RandomSource, n: usize) -> Result<String, RandomError> {
    let mut b = vec![0u8; n];
    source(&mut b)?;
    Ok(hex(&b))
}

/// `n` random bytes from the operating system, hex-encoded.
pub fn random_hex(n: usize) -> Result<String, RandomError> {
    random_hex_from(os_random, n)
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of a token, hex.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// An argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    hash_password_from(os_random, password)
}

/// [`hash_password`] with the salt from `source`.
pub fn hash_password_from(source: RandomSource, password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    source(&mut salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A password a person can type: 20 characters from an unambiguous alphabet (~100 bits).
pub fn new_password(source: RandomSource) -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY3479";
    let mut out = String::with_capacity(20);
    // Rejection sampling: no byte value is more likely than another.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    while out.len() < 20 {
        let mut b = [0u8; 32];
        source(&mut b)?;
        for x in b.into_iter().filter(|x| *x < limit) {
            if out.len() < 20 {
                out.push(ALPHABET[usize::from(x) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Verifies `password` against a PHC string.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// Largest argon2 memory a hash may ask for (64 MiB), so a file cannot make a check take more.
pub const MAX_ARGON2_BLOCKS: usize = 64 * 1024;

/// [`verify_password`] with argon2's working memory in `memory`, kept between checks: a
/// worker allocates it once, not 19 MiB per login.
pub fn verify_password_in(memory: &mut Vec<argon2::Block>, password: &str, hash: &str) -> bool {
    let Ok(h) = argon2::PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&h.salt, &h.hash) else { return false };
    let Ok(params) = argon2::Params::try_from(&h) else { return false };
    let Ok(algorithm) = argon2::Algorithm::try_from(h.algorithm.as_str()) else { return false };
    let Ok(version) = h.version.map_or(Ok(argon2::Version::default()), argon2::Version::try_from) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_ok()
        && constant_time_eq(&out, expected.as_bytes())
}

/// A logged-in browser session.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user.
    pub user: String,
    /// The token forms must carry.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

#[cfg(test)]
impl Session {
    /// A session for page-rendering tests.
    pub(crate) fn for_tests(user: &str) -> Self {
        let now = Instant::now();
        Self { user: user.into(), csrf: "00".repeat(16), created: now, last_seen: now }
    }
}

/// Why a login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong name or password.
    Wrong,
    /// Too many failures from this address, or from everywhere; try again later.
    RateLimited,
    /// Every password checker is busy; try again in a moment.
    Busy,
    /// No random bytes for the session: refused rather than predictable.
    NoRandom(RandomError),
}

/// Failed logins per address and overall in the last [`LOGIN_WINDOW`]. Bounded: at most
/// [`LOGIN_ADDRESSES`] addresses with at most [`LOGIN_FAILURES`] times each, and
/// [`LOGIN_FAILURES_OVERALL`] times overall; entries older than the window go.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    per_address: HashMap<IpAddr, VecDeque<Instant>>,
    overall: VecDeque<Instant>,
}

impl LoginLimiter {
    fn expire(q: &mut VecDeque<Instant>, now: Instant) {
        while q.front().is_some_and(|t| now.saturating_duration_since(*t) > LOGIN_WINDOW) {
            q.pop_front();
        }
    }

    /// Whether `from` may try a password now.
    pub fn check(&mut self, from: IpAddr, now: Instant) -> Result<(), LoginError> {
        Self::expire(&mut self.overall, now);
        if let Some(q) = self.per_address.get_mut(&from) {
            Self::expire(q, now);
            if q.is_empty() {
                self.per_address.remove(&from);
            } else if q.len() >= LOGIN_FAILURES {
                return Err(LoginError::RateLimited);
            }
        }
        if self.overall.len() >= LOGIN_FAILURES_OVERALL {
            return Err(LoginError::RateLimited);
        }
        Ok(())
    }

    /// Counts a failure (or an attempt not yet known to be right) from `from`.
    pub fn fail(&mut self, from: IpAddr, now: Instant) {
        if !self.per_address.contains_key(&from) && self.per_address.len() >= LOGIN_ADDRESSES {
            self.per_address.retain(|_, q| {
                Self::expire(q, now);
                !q.is_empty()
            });
            if self.per_address.len() >= LOGIN_ADDRESSES {
                // Still full: forget the address whose last failure is oldest.
                let oldest = self.per_address.iter().min_by_key(|(_, q)| q.back().copied()).map(|(a, _)| *a);
                if let Some(a) = oldest {
                    self.per_address.remove(&a);
                }
            }
        }
        let q = self.per_address.entry(from).or_default();
        if q.len() >= LOGIN_FAILURES {
            q.pop_front();
        }
        q.push_back(now);
        if self.overall.len() >= LOGIN_FAILURES_OVERALL {
            self.overall.pop_front();
        }
        self.overall.push_back(now);
    }

    /// A right password from `from`: its failures are forgotten, and the attempt counted
    /// beforehand is taken back from the overall count.
    pub fn succeed(&mut self, from: IpAddr) {
        self.per_address.remove(&from);
        self.overall.pop_back();
    }

    /// Addresses remembered (for tests and metrics).
    pub fn addresses(&self) -> usize {
        self.per_address.len()
    }
}

/// The control plane's authentication state.
pub struct Auth {
    users: Vec<User>,
    config_tokens: Vec<String>,
    run_tokens: Vec<String>,
    idle: Duration,
    sessions: HashMap<String, Session>,
    limiter: LoginLimiter,
    random: RandomSource,
    login_secret: [u8; 32],
}

/// An argon2id hash of nothing anyone knows: an unknown user name costs the same time as a
/// known one, so timing does not tell names.
const FALLBACK_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bmF0cGFzc25hdHBhc3M$0WcQbXq9eJkYqS5pLQ2hpGz3Q9jz0eWn0r4M3o3nY0M";

/// A login whose password check may run elsewhere: [`Auth::begin_login`], check
/// [`Attempt::hash`] against the password, then [`Auth::finish_login`].
#[derive(Debug)]
pub struct Attempt {
    /// The hash to check the password against.
    pub hash: String,
    known: bool,
}

impl Auth {
    /// Users and token digests from the config; `idle` ends unused sessions. Secrets come
    /// from the operating system.
    pub fn new(users: Vec<User>, token_digests: Vec<String>, idle: Duration) -> Result<Self, RandomError> {
        Self::with_random(users, token_digests, idle, os_random)
    }

    /// [`Auth::new`] with secrets from `random`.
    pub fn with_random(
        users: Vec<User>,
        token_digests: Vec<String>,
        idle: Duration,
        random: RandomSource,
    ) -> Result<Self, RandomError> {
        let mut login_secret = [0u8; 32];
        random(&mut login_secret)?;
        Ok(Self {
            users,
            config_tokens: token_digests,
            run_tokens: Vec::new(),
            idle,
            sessions: HashMap::new(),
            limiter: LoginLimiter::default(),
            random,
            login_secret,
        })
    }

    /// Replaces the users and the config file's token digests (the file changed): sessions
    /// of users no longer in the file end now.
    pub fn set_users(&mut self, users: Vec<User>, token_digests: Vec<String>) {
        self.sessions.retain(|_, s| users.iter().any(|u| u.name == s.user));
        self.users = users;
        self.config_tokens = token_digests;
    }

    /// Adds an accepted bearer token digest that is not in the file (the CLI's token for
    /// this run).
    pub fn add_token_digest(&mut self, digest: String) {
        self.run_tokens.push(digest);
    }

    /// The limiter's view (tests).
    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    /// Starts a login from `from`: refused when rate limited, else counted as a failure
    /// until [`Auth::finish_login`] says otherwise.
    pub fn begin_login(&mut self, from: IpAddr, name: &str, now: Instant) -> Result<Attempt, LoginError> {
        self.limiter.check(from, now)?;
        let user = self.users.iter().find(|u| u.name == name);
        Ok(Attempt {
            hash: user.map_or(FALLBACK_HASH, |u| u.password_hash.as_str()).to_string(),
            known: user.is_some(),
        })
    }

    /// Counts an attempt that [`Auth::begin_login`] let through before its check ran.
    pub fn count_attempt(&mut self, from: IpAddr, now: Instant) {
        self.limiter.fail(from, now);
    }

    /// Ends a login whose password check said `right`: on success the new session's cookie
    /// value. The user must still exist (the file may have changed meanwhile).
    pub fn finish_login(
        &mut self,
        from: IpAddr,
        name: &str,
        attempt: &Attempt,
        right: bool,
        now: Instant,
    ) -> Result<String, LoginError> {
        let still_there = self.users.iter().any(|u| u.name == name && u.password_hash == attempt.hash);
        if !(right && attempt.known && still_there) {
            return Err(LoginError::Wrong);
        }
        self.limiter.succeed(from);
        let id = random_hex_from(self.random, 32).map_err(LoginError::NoRandom)?;
        let csrf = random_hex_from(self.random, 16).map_err(LoginError::NoRandom)?;
        self.expire_sessions(now);
        if self.sessions.len() >= SESSIONS_MAX
            && let Some(lru) = self.sessions.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone())
        {
            self.sessions.remove(&lru);
        }
        self.sessions.insert(id.clone(), Session { user: name.to_string(), csrf, created: now, last_seen: now });
        Ok(id)
    }

    /// Checks a login in place (the password check on this thread); on success returns the
    /// new session's cookie value.
    pub fn login(&mut self, from: IpAddr, name: &str, password: &str, now: Instant) -> Result<String, LoginError> {
        let attempt = self.begin_login(from, name, now)?;
        self.count_attempt(from, now);
        let right = verify_password(password, &attempt.hash);
        self.finish_login(from, name, &attempt, right, now)
    }

    fn expire_sessions(&mut self, now: Instant) {
        let (idle, max) = (self.idle, SESSION_MAX);
        self.sessions.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) <= idle && now.saturating_duration_since(s.created) <= max
        });
    }

    /// The session for a cookie value, refreshed; `None` when unknown or expired.
    pub fn session(&mut self, id: &str, now: Instant) -> Option<Session> {
        self.expire_sessions(now);
        let s = self.sessions.get_mut(id)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn logout(&mut self, id: &str) {
        self.sessions.remove(id);
    }

    /// True when `token` is an accepted bearer token.
    pub fn bearer_ok(&self, token: &str) -> bool {
        let d = token_digest(token);
        self.config_tokens.iter().chain(&self.run_tokens).any(|t| constant_time_eq(t.as_bytes(), d.as_bytes()))
    }

    /// A token for the login form, also set as a cookie (double submit): a random nonce and
    /// its keyed digest, so only this server's tokens pass.
    pub fn login_token(&self) -> Result<String, RandomError> {
        let nonce = random_hex_from(self.random, 16)?;
        Ok(format!("{nonce}{}", self.login_mac(&nonce)))
    }

    /// Whether the login form's token is one of ours and matches the cookie.
    pub fn login_token_ok(&self, cookie: Option<&str>, form: Option<&str>) -> bool {
        let (Some(c), Some(f)) = (cookie, form) else { return false };
        if c.len() != 64 || !constant_time_eq(c.as_bytes(), f.as_bytes()) {
            return false;
        }
        let (nonce, mac) = c.split_at(32);
        constant_time_eq(mac.as_bytes(), self.login_mac(nonce).as_bytes())
    }

    fn login_mac(&self, nonce: &str) -> String {
        // The nonce has a fixed length, so a plain keyed hash is not open to length extension.
        let mut h = Sha256::new();
        h.update(self.login_secret);
        h.update(b"natpass login form");
        h.update(nonce.as_bytes());
        hex(&h.finalize()[..16])
    }
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// All password checkers are busy.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

struct Job {
    password: String,
    hash: String,
    answer: tokio::sync::oneshot::Sender<bool>,
}

/// Worker threads that check passwords (argon2id) off the HTTP server's thread, with a queue
/// of fixed length: [`PasswordCheckers::check`] never waits for room.
///
/// Each worker allocates argon2's working memory (19 MiB) once and reuses it, so memory stays
/// at about `threads` × 19 MiB however many logins come.
#[derive(Clone)]
pub struct PasswordCheckers {
    tx: mpsc::SyncSender<Job>,
}

impl PasswordCheckers {
    /// `threads` workers and room for `queue` waiting checks.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = std::sync::Arc::clone(&rx);
            std::thread::Builder::new().name(format!("natpass-argon2-{i}")).spawn(move || {
                let mut memory = Vec::new();
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let _ = job.answer.send(verify_password_in(&mut memory, &job.password, &job.hash));
                }
            })?;
        }
        Ok(Self { tx })
    }

    /// Queues a check of `password` against `hash`, or says every worker is busy.
    pub fn check(&self, password: String, hash: String) -> Result<tokio::sync::oneshot::Receiver<bool>, Busy> {
        let (answer, rx) = tokio::sync::oneshot::channel();
        self.tx.try_send(Job { password, hash, answer }).map_err(|_| Busy)?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn auth() -> Auth {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        Auth::new(
            vec![User { name: "admin".into(), password_hash: hash }],
            vec![token_digest("script-token")],
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn login_creates_a_session_that_expires_when_idle() {
        let mut a = auth();
        let t0 = Instant::now();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let id = a.login(ip, "admin", "correct horse", t0).unwrap();
        let s = a.session(&id, t0 + Duration::from_secs(30)).unwrap();
        assert_eq!(s.user, "admin");
        assert_eq!(s.csrf.len(), 32);
        assert!(a.session(&id, t0 + Duration::from_secs(30 + 61)).is_none());
    }

    #[test]
    fn wrong_passwords_are_rate_limited_per_address() {
        let mut a = auth();
        let t0 = Instant::now();
        let ip: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..LOGIN_FAILURES {
            assert_eq!(a.login(ip, "admin", "guess", t0), Err(LoginError::Wrong));
        }
        assert_eq!(a.login(ip, "admin", "correct horse", t0), Err(LoginError::RateLimited));
        assert!(a.login([192, 0, 2, 2].into(), "admin", "correct horse", t0).is_ok());
        assert!(a.login(ip, "admin", "correct horse", t0 + LOGIN_WINDOW + Duration::from_secs(1)).is_ok());
        assert_eq!(a.login(ip, "nobody", "correct horse", t0), Err(LoginError::Wrong));
    }

    #[test]
    fn the_limiter_is_bounded_per_address_and_overall_and_forgets() {
        let mut l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..50_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from_bits(0x0a00_0000 + i));
            if l.check(ip, t0).is_ok() {
                l.fail(ip, t0);
            }
        }
        assert_eq!(l.addresses(), LOGIN_FAILURES_OVERALL, "only failures that were let through are kept");
        assert_eq!(l.check([10, 9, 9, 9].into(), t0), Err(LoginError::RateLimited), "overall limit");
        let later = t0 + LOGIN_WINDOW + Duration::from_secs(1);
        assert_eq!(l.check([10, 9, 9, 9].into(), later), Ok(()), "failures age out");
        for i in 0..(LOGIN_ADDRESSES as u32 * 2) {
            l.fail(IpAddr::from(std::net::Ipv4Addr::from_bits(0x0b00_0000 + i)), later);
        }
        assert!(l.addresses() <= LOGIN_ADDRESSES, "{}", l.addresses());
    }

    #[test]
    fn removed_users_lose_their_sessions() {
        let mut a = auth();
        let t0 = Instant::now();
        let id = a.login([127, 0, 0, 1].into(), "admin", "correct horse", t0).unwrap();
        a.set_users(Vec::new(), Vec::new());
        assert!(a.session(&id, t0).is_none());
        assert!(!a.bearer_ok("script-token"), "tokens removed from the file stop working");
    }

    #[test]
    fn bearer_tokens_are_checked_by_digest() {
        let a = auth();
        assert!(a.bearer_ok("script-token"));
        assert!(!a.bearer_ok("script-token2"));
        assert!(!a.bearer_ok(""));
    }

    #[test]
    fn login_form_tokens_are_ours_and_match_the_cookie() {
        let a = auth();
        let t = a.login_token().unwrap();
        assert!(a.login_token_ok(Some(&t), Some(&t)));
        assert!(!a.login_token_ok(Some(&t), None));
        assert!(!a.login_token_ok(None, Some(&t)));
        let forged = format!("{}{}", "0".repeat(32), "1".repeat(32));
        assert!(!a.login_token_ok(Some(&forged), Some(&forged)));
        assert!(!auth().login_token_ok(Some(&t), Some(&t)), "another server's secret");
    }

    #[test]
    fn the_reused_memory_check_agrees_with_argon2() {
        let hash = hash_password("correct horse").unwrap();
        let mut memory = Vec::new();
        assert!(verify_password_in(&mut memory, "correct horse", &hash));
        assert!(!verify_password_in(&mut memory, "correct horsf", &hash));
        assert!(verify_password_in(&mut memory, "correct horse", &hash), "again, in the same memory");
        assert!(!verify_password_in(&mut memory, "x", FALLBACK_HASH));
        // The fallback for unknown names costs a full check: it parses, with default costs.
        let fallback = argon2::PasswordHash::new(FALLBACK_HASH).unwrap();
        assert_eq!(argon2::Params::try_from(&fallback).unwrap().block_count(), 19 * 1024);
        assert!(!verify_password_in(&mut memory, "x", "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHQ$aGFzaA"));
        assert!(!verify_password_in(&mut memory, "x", "not a hash"));
    }

    #[test]
    fn generated_passwords_differ() {
        let (a, b) = (new_password(os_random).unwrap(), new_password(os_random).unwrap());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn a_failing_random_source_is_an_error_not_zeros() {
        fn broken(_: &mut [u8]) -> Result<(), RandomError> {
            Err(RandomError("test".into()))
        }
        assert!(new_password(broken).is_err());
        assert!(random_hex_from(broken, 16).is_err());
        assert!(hash_password_from(broken, "x").is_err());
        assert!(Auth::with_random(Vec::new(), Vec::new(), Duration::from_secs(1), broken).is_err());
    }
}
