//! `natpass`: a NAT router whose VPN passthrough works for every client.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use natpass::{demo, replay};

#[derive(Parser)]
#[command(name = "natpass", version, about = "NAT router with VPN passthrough that works for every client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router on the LAN and WAN interfaces named in the config (needs root).
    /// SIGINT or SIGTERM stops it cleanly and prints its counters.
    Run {
        /// The configuration file (TOML) with [interfaces.lan] and [interfaces.wan].
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Build the VPN lab in network namespaces (LAN clients, a router, a server), run real
    /// VPN software through natpass and through Linux NAT, and print what passed (needs root
    /// and the packages scripts/lab-setup.sh installs).
    Lab {
        /// Which NAT runs in the router namespace.
        #[arg(long, value_enum, default_value = "both")]
        nat: natpass::lab::Nat,
        /// LAN clients behind the router.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Run only these checks (repeat or comma-separate); default: all.
        #[arg(long = "check", value_enum, value_delimiter = ',')]
        checks: Vec<natpass::lab::Check>,
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
    },
    /// Run a pcap/pcapng capture through the NAT engine with the capture's clock.
    Replay {
        /// The capture (pcap or pcapng; Ethernet, loopback/NULL, raw IP or Linux SLL).
        capture: PathBuf,
        /// A LAN host (repeat for several). Default: private hosts that talk to public ones,
        /// and of two private hosts, the one that speaks first.
        #[arg(long = "lan", value_name = "IPV4")]
        lan: Vec<Ipv4Addr>,
        /// The public address natpass translates to.
        #[arg(long, default_value = "203.0.113.1")]
        public: Ipv4Addr,
        /// Write lan.pcap and wan.pcap (the translated packets per side) here.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Engine settings (timers, filtering, MTUs) from a natpass TOML file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// MTU of the WAN link (larger packets are fragmented, or refused when DF is set).
        #[arg(long)]
        wan_mtu: Option<u16>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Write the bundled demo capture: LAN clients talking UDP, TCP and ICMP to servers.
    DemoCapture {
        /// Where to write it.
        #[arg(default_value = "demo/lan-clients.pcap")]
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natpass: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let text =
                std::fs::read_to_string(&config).map_err(|e| anyhow::anyhow!("reading {}: {e}", config.display()))?;
            let c = natpass_config::parse_config(&text).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
            let Some((lan, wan)) = c.links else {
                anyhow::bail!(
                    "{}: no [interfaces.lan] and [interfaces.wan]; `natpass run` needs both (see README)",
                    config.display()
                );
            };
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))?;
            }
            let (lan_name, wan_name) = (lan.name.clone(), wan.name.clone());
            let mut router = natpass::router::Router::open(lan, wan, c.engine)?;
            eprintln!("natpass: running on LAN {lan_name} and WAN {wan_name}");
            // For scripts and benchmark harnesses that wait for the router to forward.
            println!("ready");
            std::io::Write::flush(&mut std::io::stdout())?;
            router.run(&stop)?;
            eprintln!("natpass: stopped\n{}", router.summary());
            Ok(())
        }
        Command::Replay { capture, lan, public, out_dir, config, wan_mtu, quiet } => {
            let mut base = match config {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                    natpass_config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None => natpass_engine::EngineConfig { max_sessions: 1 << 16, ..Default::default() },
            };
            if let Some(m) = wan_mtu {
                base.wan_mtu = m;
            }
            let opts = replay::Options {
                input: capture,
                lan,
                public,
                out_dir: out_dir.clone(),
                base,
                progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let summary = replay::run(&opts)?;
            print!("{}", replay::render(&opts, &summary));
            if let Some(dir) = out_dir {
                println!("\n  wrote {} and {}", dir.join("lan.pcap").display(), dir.join("wan.pcap").display());
            }
            Ok(())
        }
        Command::Lab { nat, clients, checks, prefix, dir, iperf_secs, json } => {
            let opts = natpass::lab::Options {
                nat,
                clients,
                checks,
                prefix,
                dir,
                natpass_bin: std::env::current_exe()?,
                iperf_secs,
            };
            let outcomes = natpass::lab::run(&opts)?;
            print!("{}", natpass::lab::render(&outcomes, clients));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&outcomes)?)?;
            }
            let failed: Vec<&str> =
                outcomes.iter().filter(|o| o.nat == "natpass" && !o.passed()).map(|o| o.check.as_str()).collect();
            if failed.is_empty() { Ok(()) } else { anyhow::bail!("natpass failed: {}", failed.join("; ")) }
        }
        Command::DemoCapture { path } => {
            let n = demo::write_capture(&path)?;
            println!("wrote {n} packets to {}", path.display());
            Ok(())
        }
    }
}
