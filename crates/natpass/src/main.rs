//! `natpass`: a NAT router whose VPN passthrough works for every client.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use natpass::admin_commands::{self, ApiTarget};
use natpass::logging::{self, LogFormat};
use natpass::{capture_cmd, check, credentials, daemon, demo, replay};
use natpass_control::api::{SessionParams, TimeoutsPatch};

/// The config file `natpass run` and `natpass check` read unless told otherwise.
const DEFAULT_CONFIG: &str = "/etc/natpass/natpass.toml";

#[derive(Parser)]
#[command(name = "natpass", version, about = "NAT router with VPN passthrough that works for every client")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written: text for people, json for machines. Under systemd (the
    /// journal) lines carry no timestamp of their own.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "NATPASS_LOG_FORMAT")]
    log_format: LogFormat,
    /// What is logged: a level (error, warn, info, debug, trace) or targets with levels, like
    /// "natpass::refusals=warn,info".
    #[arg(long, global = true, value_name = "FILTER", env = "NATPASS_LOG")]
    log_level: Option<String>,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
    Icmp,
}

/// A VPN passthrough protocol.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Vpn {
    Ipsec,
    Pptp,
    L2tp,
}

/// A passthrough switch's new state.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum State {
    Enable,
    Disable,
}

/// The sides a capture listens on.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CaptureSide {
    Lan,
    Wan,
    Both,
}

/// The protocols a capture can keep.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CaptureProto {
    Tcp,
    Udp,
    Icmp,
    Gre,
    Esp,
    Ah,
    Arp,
}

/// Inbound filtering (RFC 4787 §5).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Filtering {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

/// The name a value has on the command line, which is also the API's and the file's.
fn name(v: &impl ValueEnum) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

#[derive(Subcommand)]
enum Command {
    /// Run the router on the LAN and WAN interfaces named in the config (needs CAP_NET_RAW
    /// and CAP_NET_ADMIN, or root). SIGHUP reloads the config file; SIGINT or SIGTERM stops
    /// it cleanly and logs its counters.
    Run {
        /// The configuration file (TOML) with [interfaces.lan] and [interfaces.wan].
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "NATPASS_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file without running it: the whole file is validated, and a
    /// mistake is named with its line and fix. Exits 1 when the file is refused.
    Check {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "NATPASS_CONFIG")]
        config: PathBuf,
    },
    /// Show the running router's status: interfaces, switches, sessions, tunnels, drops.
    Status(ApiArgs),
    /// List NAT sessions of the running router (like `conntrack -L`).
    Sessions {
        #[command(flatten)]
        api: ApiArgs,
        /// Only this protocol.
        #[arg(long, value_enum)]
        proto: Option<Proto>,
        /// Only sessions with this address, IPv4 or IPv6, on any side.
        #[arg(long)]
        addr: Option<IpAddr>,
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
    /// List the VPN tunnels passing through the running router, and recent refusals; with
    /// --why, what natpass found wrong with them and what to do (docs/diagnostics.md).
    Tunnels {
        #[command(flatten)]
        api: ApiArgs,
        /// Why tunnels fail: each finding, the packets that show it, and the fix.
        #[arg(long)]
        why: bool,
        /// One client's VPN: its findings, and what looks wrong without enough evidence yet
        /// (implies --why).
        #[arg(long, value_name = "IP")]
        client: Option<Ipv4Addr>,
    },
    /// Show or set a VPN Passthrough switch: `natpass passthrough pptp disable`.
    Passthrough {
        #[command(flatten)]
        api: ApiArgs,
        /// The protocol (none: show all three).
        #[arg(value_enum)]
        protocol: Option<Vpn>,
        /// Turn it on or off (none: show it).
        #[arg(value_enum, requires = "protocol")]
        state: Option<State>,
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
        /// Inbound filtering (RFC 4787 §5).
        #[arg(long, value_enum)]
        filtering: Option<Filtering>,
    },
    /// Capture what the running router receives and sends on its LAN and WAN sides into a
    /// pcapng file (one interface per side, each frame marked inbound or outbound), taken
    /// inside natpass: tcpdump on the interfaces misses what natpass sends. Stops at
    /// --count, --duration, --max-size or Ctrl-C. The router keeps at most 20,000 frames/s
    /// and 4 MiB between reads; what it could not keep is counted and reported.
    Capture {
        #[command(flatten)]
        api: ApiArgs,
        /// The side(s) to capture.
        #[arg(long, value_enum, default_value = "both")]
        side: CaptureSide,
        /// Only this protocol.
        #[arg(long, value_enum)]
        proto: Option<CaptureProto>,
        /// Only packets from or to this IPv4 address (ARP: sender or target).
        #[arg(long, value_name = "IPV4")]
        host: Option<Ipv4Addr>,
        /// Bytes kept of each frame (64 to 65535).
        #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(64..=65535))]
        snaplen: Option<u32>,
        /// Stop after this many frames.
        #[arg(short = 'c', long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS")]
        duration: Option<u64>,
        /// Stop before the file grows past this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
        max_size: u64,
        /// The pcapng file to write ("-": stdout, e.g. into `wireshark -k -i -`).
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        file: PathBuf,
    },
    /// Print an argon2id hash of a password (read from stdin) for [[admin.users]].
    HashPassword,
    /// Make a new API token: prints the token and the SHA-256 for [admin] api_tokens_sha256.
    Token,
    /// Run a pcap/pcapng capture through the NAT engine with the capture's clock.
    Replay {
        /// The capture (pcap or pcapng; Ethernet, loopback/NULL, raw IP or Linux SLL).
        capture: PathBuf,
        /// A LAN host, IPv4 or IPv6 (repeat for several). Default: private hosts (IPv6: unique
        /// local) that talk to public ones, and of two private or two public hosts, the one
        /// that speaks first. IPv6 LAN hosts give the LAN prefix (their /64, narrowed until no
        /// other host of the capture is in it).
        #[arg(long = "lan", value_name = "IP")]
        lan: Vec<IpAddr>,
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
    /// Print a shell completion script: `natpass completions bash > /etc/bash_completion.d/natpass`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, or write one page per command into a directory.
    Man {
        /// Write natpass.1 and natpass-COMMAND.1 here instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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
    logging::init(cli.log_format, cli.log_level.as_deref())?;
    match cli.command {
        Command::Run { config } => {
            // Start-up errors go to the log, in its format (JSON, the journal), like the rest.
            if let Err(e) = daemon::run(&config) {
                tracing::error!("{e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Check { config } => {
            print!("{}", check::check(&config)?);
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "natpass", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => man(dir),
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
        Command::Tunnels { api, why, client } => match (why, client) {
            (false, None) => admin_commands::tunnels(&api.target()),
            _ => admin_commands::why(&api.target(), client),
        },
        Command::Sessions { api, proto, addr, port, page, per_page } => {
            let proto = proto.as_ref().map(name);
            admin_commands::sessions(&api.target(), &SessionParams { proto, addr, port, page, per_page })
        }
        Command::Passthrough { api, protocol, state } => {
            let (protocol, state) = (protocol.as_ref().map(name), state.as_ref().map(name));
            admin_commands::passthrough(&api.target(), protocol.as_deref(), state.as_deref())
        }
        Command::Settings { api, udp, tcp_established, tcp_transitory, icmp, filtering } => {
            let timeouts = TimeoutsPatch { udp, tcp_established, tcp_transitory, icmp, ..TimeoutsPatch::default() };
            admin_commands::settings(&api.target(), timeouts, filtering.as_ref().map(name))
        }
        Command::Capture { api, side, proto, host, snaplen, count, duration, max_size, file } => {
            use natpass_control::capture::{CaptureProto as P, Sides};
            let side = match side {
                CaptureSide::Lan => Sides::Lan,
                CaptureSide::Wan => Sides::Wan,
                CaptureSide::Both => Sides::Both,
            };
            let proto = proto.map(|p| match p {
                CaptureProto::Tcp => P::Tcp,
                CaptureProto::Udp => P::Udp,
                CaptureProto::Icmp => P::Icmp,
                CaptureProto::Gre => P::Gre,
                CaptureProto::Esp => P::Esp,
                CaptureProto::Ah => P::Ah,
                CaptureProto::Arp => P::Arp,
            });
            let duration = duration.map(std::time::Duration::from_secs);
            let o = capture_cmd::Options { side, proto, host, snaplen, count, duration, max_size };
            eprintln!("{}", capture_cmd::run(&api.target(), &o, &file)?);
            Ok(())
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

/// `natpass man`: the page for natpass on stdout, or with `--dir` one page per command.
fn man(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(&dir)?;
    let file = |name: &str, c: clap::Command| -> anyhow::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(c).render(&mut out)?;
        std::fs::write(dir.join(format!("{name}.1")), out)?;
        Ok(())
    };
    file("natpass", cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("natpass-{}", sub.get_name());
        file(&name, sub.clone().name(name.clone()).version(env!("CARGO_PKG_VERSION")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn capture_protocols_are_the_apis() {
        for p in natpass_control::capture::CaptureProto::ALL {
            let n = serde_json::to_value(p).unwrap_or_default();
            assert!(CaptureProto::from_str(n.as_str().unwrap_or_default(), false).is_ok(), "{n}");
        }
    }

    #[test]
    fn value_names_are_the_apis() {
        assert_eq!(name(&Filtering::AddressAndPortDependent), "address-and-port-dependent");
        assert_eq!(name(&Vpn::L2tp), "l2tp");
        assert_eq!(name(&State::Disable), "disable");
        assert_eq!(name(&Proto::Icmp), "icmp");
        for f in natpass_config::FILTERING_MODES {
            let n = natpass_config::filtering_name(f);
            assert!(Filtering::from_str(n, false).is_ok(), "{n}");
        }
    }
}
