//! `natpass-lab`: builds the VPN lab in network namespaces (LAN clients, a router, a server),
//! runs real VPN software through natpass and through Linux NAT, and prints what passed.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use natpass_lab::{Check, Nat, Options};

/// Build the VPN lab in network namespaces (LAN clients, a router, a server), run real VPN
/// software through natpass and through Linux NAT, and print what passed (needs root and the
/// packages scripts/lab-setup.sh installs).
#[derive(Parser)]
#[command(name = "natpass-lab", version)]
struct Cli {
    /// Which NAT runs in the router namespace.
    #[arg(long, value_enum, default_value = "both")]
    nat: Nat,
    /// LAN clients behind the router.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Run only these checks (repeat or comma-separate); default: all.
    #[arg(long = "check", value_enum, value_delimiter = ',')]
    checks: Vec<Check>,
    /// Prefix of the network namespace names.
    #[arg(long, default_value = "nplab")]
    prefix: String,
    /// Where configs and logs go.
    #[arg(long, default_value = "/tmp/natpass-lab")]
    dir: PathBuf,
    /// Seconds of iperf3 per throughput figure (0 skips them).
    #[arg(long, default_value_t = 3)]
    iperf_secs: u32,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Segmentation and checksum offloads on the veths: on (veth's default; natpass
    /// takes super-frames with PACKET_VNET_HDR) or off (every frame MTU-sized).
    #[arg(long, value_parser = ["on", "off"], default_value = "on")]
    offloads: String,
    /// natpass's receive ring: v2 (per frame, lowest latency; natpass's default with its fast
    /// path) or v3 (TPACKET_V3 blocks).
    #[arg(long, value_parser = ["v3", "v2"], default_value = "v2")]
    rx_ring: String,
    /// natpass's socket backend: auto (natpass's default: AF_XDP in native mode, except on
    /// veth, so AF_PACKET in this lab), AF_PACKET, or AF_XDP (its own XDP program; GRO turned
    /// off on the router's interfaces).
    #[arg(long, value_parser = ["auto", "af_packet", "af_xdp"], default_value = "auto")]
    backend: String,
    /// The natpass binary to run as the router [default: `natpass` beside this program].
    #[arg(long, value_name = "PATH")]
    natpass: Option<PathBuf>,
    /// The directory with the lab's peers (ppp.py, esp_peer.py, stun_peer.py)
    /// [default: the natpass-lab crate's peers/].
    #[arg(long, value_name = "DIR", env = "NATPASS_LAB_PEERS")]
    peers: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natpass-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let natpass_bin = match cli.natpass {
        Some(p) => p,
        None => natpass_lab::natpass_beside(&std::env::current_exe().context("finding natpass-lab's own path")?),
    };
    let opts = Options {
        nat: cli.nat,
        clients: cli.clients,
        checks: cli.checks,
        prefix: cli.prefix,
        dir: cli.dir,
        natpass_bin,
        peers_dir: cli.peers.unwrap_or_else(natpass_lab::default_peers_dir),
        iperf_secs: cli.iperf_secs,
        natpass_extra_config: String::new(),
        offloads: cli.offloads == "on",
        rx_ring: cli.rx_ring,
        backend: cli.backend,
    };
    let outcomes = natpass_lab::run(&opts)?;
    print!("{}", natpass_lab::render(&outcomes, opts.clients));
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&outcomes)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: Vec<&str> =
        outcomes.iter().filter(|o| o.nat == "natpass" && !o.passed()).map(|o| o.check.as_str()).collect();
    if failed.is_empty() { Ok(()) } else { anyhow::bail!("natpass failed: {}", failed.join("; ")) }
}
