//! `natpass run`: the router on the interfaces of a config file, with the control plane
//! beside it, until SIGINT or SIGTERM. SIGHUP reloads the file ([`natpass_control::reload`]).
//! Under systemd it tells the service manager when it is ready, reloading and stopping, and
//! keeps the watchdog fed while the data plane answers ([`crate::notify`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{anyhow, bail};
use natpass_config::Config;
use natpass_control::auth::{self, RandomSource};
use natpass_control::interface::{self, Answer, Command, Handle};
use natpass_control::reload;
use natpass_control::server::Control;
use tracing::{error, info, warn};

use crate::notify::Notifier;
use crate::router::{IoOptions, Router};
use crate::{control_plane, token_file};

/// Runs the router of the config file at `config` until a signal stops it, then logs its
/// counters.
pub fn run(config: &Path) -> anyhow::Result<()> {
    run_with(config, auth::os_random)
}

/// [`run`] with its secrets from `random`. A source that fails stops natpass before it opens
/// an interface or writes a file.
pub fn run_with(config: &Path, random: RandomSource) -> anyhow::Result<()> {
    let text = natpass_config::read_file(config).map_err(|e| anyhow!("reading {}: {e}", config.display()))?;
    let c = natpass_config::parse_config(&text).map_err(|e| anyhow!("{}: {e}", config.display()))?;
    control_plane::check_random(random)?;
    let Some((lan, wan)) = c.links.clone() else {
        bail!("{}: no [interfaces.lan] and [interfaces.wan]; `natpass run` needs both (see README)", config.display());
    };
    let notifier = Arc::new(Notifier::from_env());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    // SIGHUP is taken before anything else can be slow, so that an early reload request does
    // not kill natpass (its default action).
    let mut hangups = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    let (lan_name, wan_name) = (lan.name.clone(), wan.name.clone());
    let io = IoOptions { backend: c.backend, rx_ring: c.rx_ring, busy_poll: c.busy_poll, fast_path: c.fast_path };
    let mut router = Router::open(lan, wan, c.engine.clone(), io, c.ra.as_ref())?;
    let (handle, mailbox) = interface::channel();
    router.set_mailbox(mailbox);
    let control = control_plane::start(config, text, &c.admin, handle.clone(), random)?;
    let backend = router.backend();
    info!(lan = %lan_name, wan = %wan_name, backend, "running on LAN {lan_name} and WAN {wan_name} ({backend})");
    // For scripts and benchmark harnesses that wait for the router to forward.
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout())?;
    let status = format!("forwarding between {lan_name} (LAN) and {wan_name} (WAN), {backend}");
    notifier.ready(&status);

    let reloader = Reloader {
        path: config.to_path_buf(),
        handle: handle.clone(),
        control: control.as_ref().map(|(_, c)| Arc::clone(c)),
        started: c.clone(),
        previous: c.clone(),
        notifier: Arc::clone(&notifier),
        status,
    };
    let hangup_handle = hangups.handle();
    let reload_thread = std::thread::Builder::new().name("natpass-reload".into()).spawn(move || {
        let mut r = reloader;
        for _ in hangups.forever() {
            r.reload();
        }
    })?;
    if let Some(every) = notifier.watchdog() {
        let (n, h) = (Arc::clone(&notifier), handle.clone());
        std::thread::Builder::new().name("natpass-watchdog".into()).spawn(move || watchdog(&n, &h, every / 2))?;
    }

    router.run(&stop)?;
    notifier.stopping();
    hangup_handle.close();
    let _ = reload_thread.join();
    if control.is_some() {
        token_file::remove(&c.admin.token_file);
    }
    let summary = router.summary();
    let mut lines = summary.lines();
    info!("stopped: {}", lines.next().unwrap_or_default());
    for l in lines {
        info!("{}", l.trim());
    }
    Ok(())
}

/// Feeds the systemd watchdog while the data plane answers a ping through the command
/// channel: a data plane stuck in a loop stops the pings, and systemd restarts natpass.
fn watchdog(n: &Notifier, handle: &Handle, every: Duration) {
    loop {
        std::thread::sleep(every);
        match handle.ask_blocking(Command::Ping) {
            Ok(Answer::Pong) => n.send("WATCHDOG=1"),
            Ok(_) => {}
            Err(e) => warn!("watchdog: {e}; not telling systemd that natpass is alive"),
        }
    }
}

/// What SIGHUP needs: the file, the data plane and the control plane, and the settings
/// natpass started with and last loaded.
struct Reloader {
    path: PathBuf,
    handle: Handle,
    control: Option<Arc<Control>>,
    started: Config,
    previous: Config,
    notifier: Arc<Notifier>,
    status: String,
}

impl Reloader {
    /// Re-reads the file, validates it whole and applies what can change live; a bad file
    /// changes nothing and says why (its line and the fix).
    fn reload(&mut self) {
        let path = self.path.display().to_string();
        self.notifier.reloading();
        info!(target: "natpass::reload", file = %path, "SIGHUP: reloading {path}");
        let outcome = (|| {
            let text = natpass_config::read_file(&self.path).map_err(|e| format!("reading {path}: {e}"))?;
            let new = natpass_config::parse_config(&text).map_err(|e| format!("{path}: {e}"))?;
            let plan = reload::reload(&self.handle, self.control.as_deref(), &self.started, &self.previous, text, &new)
                .map_err(|e| e.to_string())?;
            self.previous = new;
            Ok::<_, String>(plan)
        })();
        match outcome {
            Ok(plan) => {
                for l in &plan.diff {
                    info!(target: "natpass::reload", "config reloaded: {l}");
                }
                for l in &plan.restart {
                    warn!(target: "natpass::reload", "needs a restart to take effect: {l}");
                }
                let summary = format!(
                    "reloaded {path}: {} change(s) applied live, {} waiting for a restart",
                    plan.diff.len(),
                    plan.restart.len()
                );
                info!(target: "natpass::reload", applied = plan.diff.len(), restart = plan.restart.len(), "{summary}");
                self.notifier.ready(&self.status);
            }
            Err(e) => {
                error!(
                    target: "natpass::reload",
                    "reload refused: {e}; natpass keeps running on the settings it had (fix the file and send SIGHUP again)"
                );
                self.notifier.ready(&format!("{}; last reload refused: {e}", self.status));
            }
        }
    }
}
