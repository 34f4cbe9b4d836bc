//! `natpass`: a NAT router whose VPN passthrough works for every client.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use natpass::admin_commands::{self, ApiTarget};
use natpass::{credentials, daemon, demo, replay};
use natpass_control::api::{SessionParams, TimeoutsPatch};

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
    /// Show the running router's status: interfaces, switches, sessions, tunnels, drops.
    Status(ApiArgs),
    /// List NAT sessions of the running router (like `conntrack -L`).
    Sessions {
        #[command(flatten)]
        api: ApiArgs,
        /// Only tcp, udp or icmp.
        #[arg(long)]
        proto: Option<String>,
        /// Only sessions with this address on any side.
        #[arg(long)]
        addr: Option<Ipv4Addr>,
        /// Only sessions with this port on any side.
        #[arg(long)]
        port: Option<u16>,
        /// Page (1-based).
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Sessions per page (up to 1000).
        #[arg(long, default_value_t = 100)]
        per_page: u32,
    },
    /// List the VPN tunnels passing through the running router, and recent refusals.
    Tunnels(ApiArgs),
    /// Show or set a VPN Passthrough switch: `natpass passthrough pptp disable`.
    Passthrough {
        #[command(flatten)]
        api: ApiArgs,
        /// ipsec, pptp or l2tp (none: show all three).
        protocol: Option<String>,
        /// enable or disable.
        state: Option<String>,
    },
    /// Show or change the running router's timers and filtering (saved to its config file):
    /// `natpass settings --udp 600 --filtering endpoint-independent`.
    Settings {
        #[command(flatten)]
        api: ApiArgs,
        /// UDP mapping timer, seconds (at least 120).
        #[arg(long)]
        udp: Option<u64>,
        /// TCP established timer, seconds (at least 7440).
        #[arg(long)]
        tcp_established: Option<u64>,
        /// TCP transitory timer, seconds (at least 240).
        #[arg(long)]
        tcp_transitory: Option<u64>,
        /// ICMP query timer, seconds (at least 60).
        #[arg(long)]
        icmp: Option<u64>,
        /// endpoint-independent, address-dependent or address-and-port-dependent.
        #[arg(long)]
        filtering: Option<String>,
    },
    /// Print an argon2id hash of a password (read from stdin) for [[admin.users]].
    HashPassword,
    /// Make a new API token: prints the token and the SHA-256 for [admin] api_tokens_sha256.
    Token,
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

/// How the CLI reaches the running router.
#[derive(clap::Args)]
struct ApiArgs {
    /// The router's admin address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "NATPASS_API")]
    api: String,
    /// The token the daemon wrote at start.
    #[arg(long, default_value = "/run/natpass/api.token", env = "NATPASS_TOKEN_FILE")]
    token_file: PathBuf,
    /// For an https:// --api: the admin's certificate to trust (PEM), natpass-admin.crt
    /// beside the config file when natpass made it.
    #[arg(long, env = "NATPASS_CERT")]
    cert: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl ApiArgs {
    fn target(self) -> ApiTarget {
        ApiTarget { api: self.api, token_file: self.token_file, cert: self.cert, json: self.json }
    }
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
        Command::Run { config } => daemon::run(&config),
        Command::Replay { capture, lan, public, out_dir, config, wan_mtu, quiet } => {
            let opts = replay::Options {
                input: capture,
                lan,
                public,
                out_dir,
                base: replay::engine_settings(config.as_deref(), wan_mtu)?,
                progress: !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            print!("{}", replay::run_and_report(&opts)?);
            Ok(())
        }
        Command::Status(a) => admin_commands::status(&a.target()),
        Command::Tunnels(a) => admin_commands::tunnels(&a.target()),
        Command::Sessions { api, proto, addr, port, page, per_page } => {
            admin_commands::sessions(&api.target(), &SessionParams { proto, addr, port, page, per_page })
        }
        Command::Passthrough { api, protocol, state } => {
            admin_commands::passthrough(&api.target(), protocol.as_deref(), state.as_deref())
        }
        Command::Settings { api, udp, tcp_established, tcp_transitory, icmp, filtering } => {
            let timeouts = TimeoutsPatch { udp, tcp_established, tcp_transitory, icmp, ..TimeoutsPatch::default() };
            admin_commands::settings(&api.target(), timeouts, filtering)
        }
        Command::HashPassword => {
            println!("{}", credentials::password_hash(&mut std::io::stdin().lock())?);
            Ok(())
        }
        Command::Token => {
            println!("{}", credentials::new_token()?);
            Ok(())
        }
        Command::DemoCapture { path } => {
            let n = demo::write_capture(&path)?;
            println!("wrote {n} packets to {}", path.display());
            Ok(())
        }
    }
}
