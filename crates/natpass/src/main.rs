//! `natpass`: a NAT router whose VPN passthrough works for every client.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

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
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn api_get(a: &ApiArgs, path: &str, render: fn(&serde_json::Value) -> String) -> anyhow::Result<()> {
    let c = natpass::cli::Client::new(&a.api, &a.token_file)?;
    let v = c.ok("GET", path, None)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?)
    } else {
        print!("{}", render(&v))
    }
    Ok(())
}

fn start_control(
    path: &std::path::Path,
    text: String,
    admin: &natpass_config::Admin,
    router: &mut natpass::router::Router,
) -> anyhow::Result<()> {
    use natpass_control::{auth, server, store};
    let Some(listen) = admin.listen else {
        eprintln!("natpass: [admin] listen = \"off\": no web admin, API or metrics");
        return Ok(());
    };
    let mut store = store::ConfigStore::new(Some(path.to_path_buf()), text);
    let mut users = admin.users.clone();
    if users.is_empty() {
        // No default password: the first start makes one, shows it once, and saves its hash.
        let password = auth::new_password();
        let hash = auth::hash_password(&password).map_err(|e| anyhow::anyhow!("hashing the new password: {e}"))?;
        let c = store.add_user("admin", &hash).map_err(|e| anyhow::anyhow!("saving the admin user: {e}"))?;
        users = c.admin.users;
        eprintln!(
            "natpass: no admin user was configured; created user \"admin\" with password {password}\n\
             natpass: (shown once; its argon2id hash is saved in {})",
            path.display()
        );
    }
    let mut a = auth::Auth::new(
        users,
        admin.api_tokens_sha256.clone(),
        Duration::from_secs(u64::from(admin.session_minutes) * 60),
    );
    let token = auth::random_hex(32);
    if let Some(dir) = admin.token_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&admin.token_file)
            .with_context(|| format!("writing the CLI token {}", admin.token_file.display()))?;
        std::io::Write::write_all(&mut f, token.as_bytes())?;
    }
    a.add_token_digest(auth::token_digest(&token));
    let (handle, mailbox) = natpass_control::interface::channel();
    router.set_mailbox(mailbox);
    let control = server::Control { handle, store, auth: a, log: Box::new(|l| eprintln!("natpass: {l}")) };
    let bound = server::spawn(listen, control).map_err(|e| anyhow::anyhow!(e))?;
    eprintln!("natpass: web admin, API and metrics on http://{bound}/");
    Ok(())
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
            let mut router = natpass::router::Router::open(lan, wan, c.engine, c.rx_ring)?;
            start_control(&config, text, &c.admin, &mut router)?;
            eprintln!("natpass: running on LAN {lan_name} and WAN {wan_name}");
            // For scripts and benchmark harnesses that wait for the router to forward.
            println!("ready");
            std::io::Write::flush(&mut std::io::stdout())?;
            router.run(&stop)?;
            if c.admin.listen.is_some() {
                let _ = std::fs::remove_file(&c.admin.token_file);
            }
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
        Command::Status(a) => api_get(&a, "/api/v1/status", natpass::cli::render_status),
        Command::Tunnels(a) => api_get(&a, "/api/v1/tunnels", natpass::cli::render_tunnels),
        Command::Sessions { api, proto, addr, port, page, per_page } => {
            let mut q = format!("/api/v1/sessions?page={page}&per_page={per_page}");
            if let Some(p) = proto {
                q.push_str(&format!("&proto={p}"));
            }
            if let Some(a) = addr {
                q.push_str(&format!("&addr={a}"));
            }
            if let Some(p) = port {
                q.push_str(&format!("&port={p}"));
            }
            api_get(&api, &q, natpass::cli::render_sessions)
        }
        Command::Passthrough { api, protocol, state } => {
            let c = natpass::cli::Client::new(&api.api, &api.token_file)?;
            let v = match (protocol.as_deref(), state.as_deref()) {
                (None, _) => c.ok("GET", "/api/v1/passthrough", None)?,
                (Some(p @ ("ipsec" | "pptp" | "l2tp")), Some(s @ ("enable" | "disable"))) => {
                    let body = serde_json::json!({ p: s == "enable" });
                    c.ok("PUT", "/api/v1/passthrough", Some(&body))?["passthrough"].clone()
                }
                (Some(p @ ("ipsec" | "pptp" | "l2tp")), None) => c.ok("GET", "/api/v1/passthrough", None)?[p].clone(),
                (Some(p @ ("ipsec" | "pptp" | "l2tp")), Some(s)) => {
                    anyhow::bail!("{s:?}: use `natpass passthrough {p} enable` or `... disable`")
                }
                (Some(p), _) => anyhow::bail!("{p:?} is not a passthrough protocol: use ipsec, pptp or l2tp"),
            };
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if let Some(o) = v.as_object() {
                for (k, on) in o {
                    println!("{:<6} {}", k, if on.as_bool() == Some(true) { "enabled" } else { "disabled" });
                }
            } else {
                println!("{}", if v.as_bool() == Some(true) { "enabled" } else { "disabled" });
            }
            Ok(())
        }
        Command::Settings { api, udp, tcp_established, tcp_transitory, icmp, filtering } => {
            let c = natpass::cli::Client::new(&api.api, &api.token_file)?;
            let mut t = serde_json::Map::new();
            for (k, v) in
                [("udp", udp), ("tcp_established", tcp_established), ("tcp_transitory", tcp_transitory), ("icmp", icmp)]
            {
                if let Some(v) = v {
                    t.insert(k.into(), v.into());
                }
            }
            let v = if t.is_empty() && filtering.is_none() {
                c.ok("GET", "/api/v1/settings", None)?
            } else {
                let mut body = serde_json::Map::new();
                if !t.is_empty() {
                    body.insert("timeouts".into(), serde_json::Value::Object(t));
                }
                if let Some(f) = filtering {
                    body.insert("filtering".into(), f.into());
                }
                let v = c.ok("PATCH", "/api/v1/settings", Some(&serde_json::Value::Object(body)))?;
                for line in v["changed"].as_array().into_iter().flatten() {
                    eprintln!("changed: {}", line.as_str().unwrap_or(""));
                }
                v
            };
            if api.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (k, x) in v["timeouts"].as_object().into_iter().flatten() {
                    println!("{k:<18} {x} s");
                }
                println!("{:<18} {}", "filtering", v["filtering"].as_str().unwrap_or("?"));
            }
            Ok(())
        }
        Command::HashPassword => {
            let mut pw = String::new();
            std::io::stdin().read_line(&mut pw)?;
            let pw = pw.trim_end_matches(['\n', '\r']);
            if pw.len() < 8 {
                anyhow::bail!("use a password of at least 8 characters");
            }
            println!("{}", natpass_control::auth::hash_password(pw).map_err(|e| anyhow::anyhow!(e))?);
            Ok(())
        }
        Command::Token => {
            let t = natpass_control::auth::random_hex(32);
            println!(
                "token:  {t}\nsha256: {}  (add to [admin] api_tokens_sha256)",
                natpass_control::auth::token_digest(&t)
            );
            Ok(())
        }
        Command::DemoCapture { path } => {
            let n = demo::write_capture(&path)?;
            println!("wrote {n} packets to {}", path.display());
            Ok(())
        }
    }
}
