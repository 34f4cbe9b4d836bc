//! Starting the control plane beside `natpass run`: the config store, the users (on the first
//! start, a new `admin` user whose password is shown once), the CLI's token, HTTPS when the
//! admin listens beyond loopback, the channel to the router and the HTTP server on its own
//! thread.
//!
//! Every secret comes from the random source given ([`auth::os_random`] in natpass). When it
//! fails, start-up stops before anything is written: no password, no token, no key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use natpass_config::{Admin, User};
use natpass_control::auth::{self, RandomSource};
use natpass_control::http::Options;
use natpass_control::interface::Handle;
use natpass_control::{server, store, tls};
use tracing::{info, warn};

use crate::token_file;

/// The certificate and key natpass makes beside the config file when `[admin]` names none.
pub const SELF_SIGNED: (&str, &str) = ("natpass-admin.crt", "natpass-admin.key");

/// The control plane, ready to listen: secrets drawn, users set, token written.
pub struct Ready {
    listen: SocketAddr,
    store: store::ConfigStore,
    auth: auth::Auth,
    options: Options,
}

/// Stops start-up when `random` cannot give bytes: natpass does not run with predictable
/// session IDs, CSRF tokens, salts, API tokens or passwords.
pub fn check_random(random: RandomSource) -> anyhow::Result<()> {
    let mut probe = [0u8; 32];
    random(&mut probe).map_err(|e| anyhow!("refusing to start: {e}"))
}

/// Everything before the socket: the random source checked, the users (made on the first
/// start), the CLI's token written, the TLS certificate loaded or made. `None` when
/// `[admin] listen = "off"`.
pub fn prepare(config_path: &Path, text: String, admin: &Admin, random: RandomSource) -> anyhow::Result<Option<Ready>> {
    check_random(random)?;
    let Some(listen) = admin.listen else {
        info!(target: "natpass::admin", "[admin] listen = \"off\": no web admin, API or metrics");
        return Ok(None);
    };
    if let Some(mode) = store::loose_mode(config_path) {
        warn!(
            target: "natpass::admin",
            "{} holds password hashes and is readable by others (mode {mode:o}); \
             run `chmod 600 {}` (natpass saves it 0600)",
            config_path.display(),
            config_path.display()
        );
    }
    let https = !listen.ip().is_loopback() || admin.tls.is_some();
    let tls = if https { Some(load_tls(config_path, admin, listen)?) } else { None };
    let mut store = store::ConfigStore::new(Some(config_path.to_path_buf()), text);
    let users = match admin.users.as_slice() {
        [] => first_start_admin(&mut store, config_path, random)?,
        users => users.to_vec(),
    };
    if let Some(t) = &tls {
        info!(
            target: "natpass::admin",
            "HTTPS certificate {}{}, SHA-256 fingerprint {}",
            t.cert_path.display(),
            if t.created { " (made now, self-signed)" } else { "" },
            t.fingerprint
        );
    }
    let session_idle = Duration::from_secs(u64::from(admin.session_minutes) * 60);
    let mut a = auth::Auth::with_random(users, admin.api_tokens_sha256.clone(), session_idle, random)?;
    let token = auth::random_hex_from(random, 32)?;
    token_file::write(&admin.token_file, &token)?;
    a.add_token_digest(auth::token_digest(&token));
    let options =
        Options { tls: tls.map(|t| t.config), server_names: admin.server_names.clone(), ..Options::default() };
    Ok(Some(Ready { listen, store, auth: a, options }))
}

/// Starts the web admin, the API and `/metrics` as `admin` says, answered by the data plane
/// behind `handle`. `config_path` and `text` are the config file, where changes are saved.
/// Returns the address it listens on and the control plane (for reloads), or `None` when
/// `[admin] listen = "off"`.
pub fn start(
    config_path: &Path,
    text: String,
    admin: &Admin,
    handle: Handle,
    random: RandomSource,
) -> anyhow::Result<Option<(SocketAddr, Arc<server::Control>)>> {
    let Some(ready) = prepare(config_path, text, admin, random)? else { return Ok(None) };
    let https = ready.options.tls.is_some();
    let control = server::Control::new(handle, ready.store, ready.auth, |l| info!(target: "natpass::admin", "{l}"))
        .context("starting the password checkers")?;
    let control = Arc::new(control);
    let bound = server::spawn(ready.listen, Arc::clone(&control), ready.options).map_err(|e| anyhow!(e))?;
    let scheme = if https { "https" } else { "http" };
    info!(target: "natpass::admin", "web admin, API and metrics on {scheme}://{bound}/");
    Ok(Some((bound, control)))
}

/// The configured certificate, or the self-signed one beside the config file (made now if
/// missing), for the listen address and the server names.
fn load_tls(config_path: &Path, admin: &Admin, listen: SocketAddr) -> anyhow::Result<tls::Tls> {
    let dir = config_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (cert, key, create): (PathBuf, PathBuf, bool) = match &admin.tls {
        Some((c, k)) => (c.clone(), k.clone(), false),
        None => (dir.join(SELF_SIGNED.0), dir.join(SELF_SIGNED.1), true),
    };
    let mut names = admin.server_names.clone();
    if !listen.ip().is_unspecified() {
        names.insert(0, listen.ip().to_string());
    }
    if names.is_empty() {
        names.push("natpass".into());
    }
    tls::load_or_create(&cert, &key, create, &names).map_err(|e| anyhow!("the admin's HTTPS certificate: {e}"))
}

/// No default password: with no user configured, the first start makes the user `admin`
/// with a new password, shows it once and saves only its hash. Returns the users now.
fn first_start_admin(
    store: &mut store::ConfigStore,
    config_path: &Path,
    random: RandomSource,
) -> anyhow::Result<Vec<User>> {
    let password = auth::new_password(random)?;
    let hash = auth::hash_password_from(random, &password).map_err(|e| anyhow!("hashing the new password: {e}"))?;
    let c = store.add_user("admin", &hash).map_err(|e| anyhow!("saving the admin user: {e}"))?;
    warn!(
        target: "natpass::admin",
        "no admin user was configured; created user \"admin\" with password {password} \
         (shown once; its argon2id hash is saved in {})",
        config_path.display()
    );
    Ok(c.admin.users)
}
