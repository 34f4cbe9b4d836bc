//! Starting the control plane beside `natpass run`: the config store, the users (on the first
//! start, a new `admin` user whose password is shown once), the CLI's token, the channel to
//! the router and the HTTP server on its own thread.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use natpass_config::{Admin, User};
use natpass_control::{auth, interface, server, store::ConfigStore};

use crate::router::Router;
use crate::token_file;

/// Starts the web admin, the API and `/metrics` as `admin` says, answered by `router`.
/// `config_path` and `text` are the config file, where changes are saved. Returns the address
/// it listens on, or `None` when `[admin] listen = "off"`.
pub fn start(
    config_path: &Path,
    text: String,
    admin: &Admin,
    router: &mut Router,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(listen) = admin.listen else {
        eprintln!("natpass: [admin] listen = \"off\": no web admin, API or metrics");
        return Ok(None);
    };
    let mut store = ConfigStore::new(Some(config_path.to_path_buf()), text);
    let users = match admin.users.as_slice() {
        [] => first_start_admin(&mut store, config_path)?,
        users => users.to_vec(),
    };
    let session_idle = Duration::from_secs(u64::from(admin.session_minutes) * 60);
    let mut a = auth::Auth::new(users, admin.api_tokens_sha256.clone(), session_idle);
    let token = auth::random_hex(32);
    token_file::write(&admin.token_file, &token)?;
    a.add_token_digest(auth::token_digest(&token));
    let (handle, mailbox) = interface::channel();
    router.set_mailbox(mailbox);
    let control = server::Control { handle, store, auth: a, log: Box::new(|l| eprintln!("natpass: {l}")) };
    let bound = server::spawn(listen, control).map_err(|e| anyhow!(e))?;
    eprintln!("natpass: web admin, API and metrics on http://{bound}/");
    Ok(Some(bound))
}

/// No default password: with no user configured, the first start makes the user `admin`
/// with a new password, shows it once and saves only its hash. Returns the users now.
fn first_start_admin(store: &mut ConfigStore, config_path: &Path) -> anyhow::Result<Vec<User>> {
    let password = auth::new_password();
    let hash = auth::hash_password(&password).map_err(|e| anyhow!("hashing the new password: {e}"))?;
    let c = store.add_user("admin", &hash).map_err(|e| anyhow!("saving the admin user: {e}"))?;
    eprintln!(
        "natpass: no admin user was configured; created user \"admin\" with password {password}\n\
         natpass: (shown once; its argon2id hash is saved in {})",
        config_path.display()
    );
    Ok(c.admin.users)
}
