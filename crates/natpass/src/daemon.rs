//! `natpass run`: the router on the interfaces of a config file, with the control plane
//! beside it, until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{anyhow, bail};
use natpass_control::auth::{self, RandomSource};

use crate::router::{IoOptions, Router};
use crate::{control_plane, token_file};

/// Runs the router of the config file at `config` until a signal stops it, then prints its
/// counters.
pub fn run(config: &Path) -> anyhow::Result<()> {
    run_with(config, auth::os_random)
}

/// [`run`] with its secrets from `random`. A source that fails stops natpass before it opens
/// an interface or writes a file.
pub fn run_with(config: &Path, random: RandomSource) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config).map_err(|e| anyhow!("reading {}: {e}", config.display()))?;
    let c = natpass_config::parse_config(&text).map_err(|e| anyhow!("{}: {e}", config.display()))?;
    control_plane::check_random(random)?;
    let Some((lan, wan)) = c.links else {
        bail!("{}: no [interfaces.lan] and [interfaces.wan]; `natpass run` needs both (see README)", config.display());
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let (lan_name, wan_name) = (lan.name.clone(), wan.name.clone());
    let io = IoOptions { backend: c.backend, rx_ring: c.rx_ring, busy_poll: c.busy_poll };
    let mut router = Router::open(lan, wan, c.engine, io)?;
    let control = control_plane::start(config, text, &c.admin, &mut router, random)?;
    eprintln!("natpass: running on LAN {lan_name} and WAN {wan_name} ({})", router.backend());
    // For scripts and benchmark harnesses that wait for the router to forward.
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout())?;
    router.run(&stop)?;
    if control.is_some() {
        token_file::remove(&c.admin.token_file);
    }
    eprintln!("natpass: stopped\n{}", router.summary());
    Ok(())
}
