//! Who may use the control plane: administrators with argon2id password hashes (RFC 9106)
//! and browser sessions (an HttpOnly, SameSite=Strict cookie) with a per-session CSRF token,
//! login rate limiting per client address, and bearer tokens for scripts (stored as SHA-256).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use natpass_config::User;
use sha2::{Digest, Sha256};

/// Failed logins allowed per address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES: usize = 5;
/// The window for [`LOGIN_FAILURES`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// A browser session ends this long after login, active or not.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);

/// Fills `buf` with random bytes from the kernel (/dev/urandom).
pub fn fill_random(buf: &mut [u8]) {
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, buf);
    }
}

/// `n` random bytes from the kernel, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b);
    hex(&b)
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
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A password a person can type: 20 characters from an unambiguous alphabet (~100 bits).
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY3479";
    let mut b = [0u8; 20];
    fill_random(&mut b);
    b.iter().map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char).collect()
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
    /// Too many failures from this address; try again later.
    RateLimited,
}

/// The control plane's authentication state.
pub struct Auth {
    users: Vec<User>,
    token_digests: Vec<String>,
    idle: Duration,
    sessions: HashMap<String, Session>,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Auth {
    /// Users and token digests from the config; `idle` ends unused sessions.
    pub fn new(users: Vec<User>, token_digests: Vec<String>, idle: Duration) -> Self {
        Self { users, token_digests, idle, sessions: HashMap::new(), failures: HashMap::new() }
    }

    /// Replaces the users (after the config changed).
    pub fn set_users(&mut self, users: Vec<User>) {
        self.users = users;
    }

    /// Adds an accepted bearer token digest (the CLI's token for this run).
    pub fn add_token_digest(&mut self, digest: String) {
        self.token_digests.push(digest);
    }

    /// Checks a login; on success returns the new session's cookie value.
    pub fn login(&mut self, from: IpAddr, name: &str, password: &str, now: Instant) -> Result<String, LoginError> {
        let fails = self.failures.entry(from).or_default();
        while fails.front().is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW) {
            fails.pop_front();
        }
        if fails.len() >= LOGIN_FAILURES {
            return Err(LoginError::RateLimited);
        }
        // Verify against a real hash even for an unknown name, so timing does not tell names.
        let fallback = "$argon2id$v=19$m=19456,t=2,p=1$bmF0cGFzc25hdHBhc3M$0WcQbXq9eJkYqS5pLQ2hpGz3Q9jz0eWn0r4M3o3nY0M";
        let user = self.users.iter().find(|u| u.name == name);
        let hash = user.map_or(fallback, |u| u.password_hash.as_str());
        let ok = Argon2::default().verify_password(password.as_bytes(), hash).is_ok() && user.is_some();
        if !ok {
            fails.push_back(now);
            return Err(LoginError::Wrong);
        }
        fails.clear();
        let id = random_hex(32);
        self.sessions
            .insert(id.clone(), Session { user: name.to_string(), csrf: random_hex(16), created: now, last_seen: now });
        Ok(id)
    }

    /// The session for a cookie value, refreshed; `None` when unknown or expired.
    pub fn session(&mut self, id: &str, now: Instant) -> Option<Session> {
        let (idle, max) = (self.idle, SESSION_MAX);
        self.sessions.retain(|_, s| now.duration_since(s.last_seen) <= idle && now.duration_since(s.created) <= max);
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
        self.token_digests.iter().any(|t| constant_time_eq(t.as_bytes(), d.as_bytes()))
    }
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        Auth::new(
            vec![User { name: "admin".into(), password_hash: hash }],
            vec![token_digest("script-token")],
            Duration::from_secs(60),
        )
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
    fn bearer_tokens_are_checked_by_digest() {
        let a = auth();
        assert!(a.bearer_ok("script-token"));
        assert!(!a.bearer_ok("script-token2"));
        assert!(!a.bearer_ok(""));
    }

    #[test]
    fn generated_passwords_differ() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
