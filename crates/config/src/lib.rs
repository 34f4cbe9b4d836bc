//! natpass configuration: one TOML file (TOML 1.0), parsed and validated into the engine's
//! settings. Errors name the key, its line and the fix; nothing half-valid gets through.
//!
//! ```toml
//! [nat]
//! public_addrs = ["203.0.113.1"]
//! lan_networks = ["192.168.1.0/24"]
//! lan_addr = "192.168.1.1"
//! filtering = "address-dependent"   # or "endpoint-independent", "address-and-port-dependent"
//! tcp_window_check = true           # drop TCP segments outside their window (RFC 5961)
//! drop_source_routes = true         # drop LSRR/SSRR options (RFC 7126)
//!
//! [timeouts]   # seconds; RFC floors are enforced
//! udp = 300
//! tcp_established = 7440
//!
//! [interfaces.lan]
//! name = "eth1"
//! address = "192.168.1.1/24"
//! address6 = "2001:db8:1::1/64"     # IPv6: routed, guarded (RFC 6092); a /64 for SLAAC
//! router_advertisements = true      # default with address6 (RFC 4861 §6.2)
//! ra_interval = 200                 # seconds between unsolicited RAs, 4 to 1800
//! ra_lifetime = 1800                # router lifetime, seconds: 0 or interval to 9000
//! dns6 = ["2001:db8:1::53"]         # RDNSS (RFC 8106), optional
//!
//! [interfaces.wan]
//! name = "eth0"
//! address = "203.0.113.1/24"
//! gateway = "203.0.113.254"
//! address6 = "2001:db8:ff::2/64"    # set with the LAN's, or neither
//! gateway6 = "fe80::1"              # on the WAN prefix, or link-local
//! ```

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use natpass_engine::ipv6::{Ipv6Config, Ipv6Net};
use natpass_engine::{ConfigError, EngineConfig, Filtering, Ipv4Net, Protocol};
use serde::{Deserialize, Serialize};

/// The largest config file natpass reads: a router's file is a few KiB; a bigger one is
/// refused before it is read whole.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads the config file at `path`, at most [`MAX_FILE_BYTES`]: the one way every part of
/// natpass (start, reload, check, the admin's store) reads it.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB; a natpass config is a few KiB", MAX_FILE_BYTES / 1024),
        ));
    }
    Ok(text)
}

/// The filtering modes (RFC 4787 §5), in the order the pages list them.
pub const FILTERING_MODES: [Filtering; 3] =
    [Filtering::EndpointIndependent, Filtering::AddressDependent, Filtering::AddressAndPortDependent];

/// How the file, the API and the pages spell a filtering mode.
pub fn filtering_name(f: Filtering) -> &'static str {
    match f {
        Filtering::EndpointIndependent => "endpoint-independent",
        Filtering::AddressDependent => "address-dependent",
        Filtering::AddressAndPortDependent => "address-and-port-dependent",
    }
}

/// The filtering mode the file spells `name`.
pub fn filtering_named(name: &str) -> Option<Filtering> {
    FILTERING_MODES.into_iter().find(|&m| filtering_name(m) == name)
}

/// A configuration natpass refuses, with where and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A value that parses but is wrong.
    #[error("line {line}: {key}: {message}")]
    Value {
        /// 1-based line of the key (0 when it is a default).
        line: usize,
        /// The key, dotted.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    nat: Nat,
    #[serde(default)]
    timeouts: Timers,
    #[serde(default)]
    passthrough: PassthroughSwitches,
    interfaces: Option<Links>,
    #[serde(default)]
    admin: AdminFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    listen: Option<String>,
    token_file: Option<String>,
    session_minutes: Option<u32>,
    #[serde(default)]
    server_names: Vec<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    #[serde(default)]
    api_tokens_sha256: Vec<String>,
    #[serde(default)]
    users: Vec<UserFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    name: String,
    password_hash: String,
}

/// One administrator: a name and an argon2id hash (PHC string) of the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// `$argon2id$v=19$...`.
    pub password_hash: String,
}

/// The control plane's settings (`[admin]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Where the web admin, the REST API and `/metrics` listen; `None` turns them off.
    pub listen: Option<std::net::SocketAddr>,
    /// Where the daemon writes a fresh API token for the local CLI at start (mode 0600).
    pub token_file: std::path::PathBuf,
    /// Idle minutes after which a browser session ends.
    pub session_minutes: u32,
    /// Host names the admin answers to besides its listen address (the Host header check).
    pub server_names: Vec<String>,
    /// The HTTPS certificate (PEM) and its key; `None`: a self-signed pair beside the config
    /// file, made at the first start, when `listen` is not a loopback address.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// SHA-256 (hex) of bearer tokens that scripts may use.
    pub api_tokens_sha256: Vec<String>,
    /// Administrators.
    pub users: Vec<User>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8080))),
            token_file: std::path::PathBuf::from("/run/natpass/api.token"),
            session_minutes: 30,
            server_names: Vec::new(),
            tls: None,
            api_tokens_sha256: Vec::new(),
            users: Vec::new(),
        }
    }
}

/// The `[passthrough]` table as written (absent keys keep their value). The control plane
/// takes the same shape as a JSON patch. The keys are [`Protocol::name`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughSwitches {
    /// IPsec passthrough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipsec: Option<bool>,
    /// PPTP passthrough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pptp: Option<bool>,
    /// L2TP passthrough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2tp: Option<bool>,
}

impl PassthroughSwitches {
    /// The switch for `p`.
    pub fn get(&self, p: Protocol) -> Option<bool> {
        match p {
            Protocol::Ipsec => self.ipsec,
            Protocol::Pptp => self.pptp,
            Protocol::L2tp => self.l2tp,
        }
    }

    /// Sets the switch for `p`.
    pub fn set(&mut self, p: Protocol, on: Option<bool>) {
        match p {
            Protocol::Ipsec => self.ipsec = on,
            Protocol::Pptp => self.pptp = on,
            Protocol::L2tp => self.l2tp = on,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Links {
    lan: LinkFile,
    wan: LinkFile,
    rx_ring: Option<String>,
    backend: Option<String>,
    busy_poll: Option<bool>,
    fast_path: Option<bool>,
}

/// The socket backend of `natpass run` (`[interfaces] backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The default: AF_XDP where its XDP program attaches in native mode, except on veth
    /// (where an XDP program turns the peer's GSO off); else AF_PACKET, the reason logged.
    #[default]
    Auto,
    /// AF_XDP sockets with natpass's XDP program (native mode, else generic); refuse to
    /// start without them.
    AfXdp,
    /// AF_PACKET sockets (TPACKET ring, `sendmmsg`).
    AfPacket,
}

/// The packet sockets' receive ring (`[interfaces] rx_ring`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxRing {
    /// TPACKET_V3 blocks: fewest wake-ups under load; a frame may wait up to 1 ms.
    #[default]
    V3,
    /// TPACKET_V2 frames: woken per frame, the lowest latency.
    V2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    name: String,
    address: String,
    gateway: Option<String>,
    address6: Option<String>,
    gateway6: Option<String>,
    router_advertisements: Option<bool>,
    ra_interval: Option<u32>,
    ra_lifetime: Option<u32>,
    dns6: Option<Vec<String>>,
}

/// A link's IPv6 side: natpass's address there and the on-link prefix, and (WAN) the next
/// hop for everything off the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link6 {
    /// The global address natpass answers Neighbor Solicitations for and sends from.
    pub addr: Ipv6Addr,
    /// The on-link prefix (the LAN's is announced for SLAAC).
    pub prefix: Ipv6Net,
    /// The default gateway (WAN only): on the prefix or link-local.
    pub gateway: Option<Ipv6Addr>,
}

/// Router Advertisements on the LAN (RFC 4861 §6.2.1; RDNSS RFC 8106).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterAdvertising {
    /// Time between unsolicited advertisements (MaxRtrAdvInterval).
    pub interval: Duration,
    /// The router lifetime announced (AdvDefaultLifetime); zero: not a default router.
    pub lifetime: Duration,
    /// DNS servers announced (RDNSS), none when empty.
    pub dns: Vec<Ipv6Addr>,
}

/// Default `ra_interval`, seconds (about radvd's average between its 198 and 600).
pub const RA_INTERVAL_SECS: u32 = 200;
/// Default `ra_lifetime`, seconds (RFC 4861 §6.2.1's default for AdvDefaultLifetime).
pub const RA_LIFETIME_SECS: u32 = 1800;

/// One interface natpass runs on: its name, the address natpass owns there and the link's
/// network, and (WAN) the next hop for everything off the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Kernel interface name.
    pub name: String,
    /// The address natpass answers ARP for and sends from.
    pub addr: Ipv4Addr,
    /// The on-link network.
    pub net: Ipv4Net,
    /// The default gateway (WAN only); `None` means every destination must be on-link.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 (`address6`, `gateway6`), when configured.
    pub v6: Option<Link6>,
}

/// A whole natpass configuration: the engine's settings and, for `natpass run`, the links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// NAT settings.
    pub engine: EngineConfig,
    /// LAN and WAN links, from `[interfaces.lan]` and `[interfaces.wan]`.
    pub links: Option<(Link, Link)>,
    /// The receive ring kind, `[interfaces] rx_ring` (AF_PACKET).
    pub rx_ring: RxRing,
    /// The socket backend, `[interfaces] backend`.
    pub backend: Backend,
    /// Busy polling on the AF_XDP sockets (`[interfaces] busy_poll`): the driver's receive
    /// work runs in natpass's thread (SO_PREFER_BUSY_POLL); off, natpass spins while busy and
    /// sleeps in poll(2) when idle.
    pub busy_poll: bool,
    /// The kernel fast path for established flows (`[interfaces] fast_path`, on by default):
    /// a tc program forwards the flows natpass hands it, natpass keeps the rest.
    pub fast_path: bool,
    /// The control plane.
    pub admin: Admin,
    /// Router Advertisements on the LAN (`[interfaces.lan] router_advertisements`); on by
    /// default when the LAN has an IPv6 address.
    pub ra: Option<RouterAdvertising>,
}

fn parse_admin(text: &str, a: &AdminFile) -> Result<Admin, Error> {
    let mut out = Admin::default();
    if let Some(l) = &a.listen {
        out.listen = if l == "off" {
            None
        } else {
            Some(l.parse().map_err(|_| {
                value_error(
                    text,
                    "admin",
                    "listen",
                    format!("{l:?} is not an address:port; write it like \"127.0.0.1:8080\", or \"off\""),
                )
            })?)
        };
    }
    if let Some(f) = &a.token_file {
        if !f.starts_with('/') {
            return Err(value_error(
                text,
                "admin",
                "token_file",
                format!("{f:?} must be an absolute path, like \"/run/natpass/api.token\""),
            ));
        }
        out.token_file = f.into();
    }
    if let Some(m) = a.session_minutes {
        if !(1..=1440).contains(&m) {
            return Err(value_error(text, "admin", "session_minutes", format!("{m} is out of range; use 1 to 1440")));
        }
        out.session_minutes = m;
    }
    for n in &a.server_names {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if n.len() > 253 || !n.trim_end_matches('.').split('.').all(label_ok) {
            return Err(value_error(
                text,
                "admin",
                "server_names",
                format!("{n:?} is not a host name; write names like \"router.lan\" (letters, digits, '-', dots)"),
            ));
        }
    }
    out.server_names = a.server_names.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
    match (&a.tls_cert, &a.tls_key) {
        (None, None) => {}
        (Some(c), Some(k)) => {
            for (key, v) in [("tls_cert", c), ("tls_key", k)] {
                if !v.starts_with('/') {
                    return Err(value_error(text, "admin", key, format!("{v:?} must be an absolute path")));
                }
            }
            out.tls = Some((c.into(), k.into()));
        }
        (Some(_), None) | (None, Some(_)) => {
            let missing = if a.tls_cert.is_none() { "tls_cert" } else { "tls_key" };
            return Err(value_error(
                text,
                "admin",
                missing,
                "set both tls_cert and tls_key (PEM files), or neither for a self-signed certificate".to_string(),
            ));
        }
    }
    for t in &a.api_tokens_sha256 {
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(value_error(
                text,
                "admin",
                "api_tokens_sha256",
                "each entry is the SHA-256 of a token in hex (64 characters); make one with `natpass token`"
                    .to_string(),
            ));
        }
    }
    out.api_tokens_sha256 = a.api_tokens_sha256.iter().map(|t| t.to_ascii_lowercase()).collect();
    for u in &a.users {
        if u.name.is_empty() || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            return Err(value_error(
                text,
                "admin.users",
                "name",
                format!("{:?} is not a user name; use letters, digits, '.', '_' or '-'", u.name),
            ));
        }
        if !u.password_hash.starts_with("$argon2id$") {
            return Err(value_error(
                text,
                "admin.users",
                "password_hash",
                format!(
                    "the hash for {:?} is not an argon2id PHC string; make one with `natpass hash-password`",
                    u.name
                ),
            ));
        }
        out.users.push(User { name: u.name.clone(), password_hash: u.password_hash.clone() });
    }
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nat {
    public_addrs: Option<Vec<String>>,
    lan_networks: Option<Vec<String>>,
    lan_addr: Option<String>,
    filtering: Option<String>,
    max_sessions: Option<u32>,
    max_sessions_per_host: Option<u32>,
    wan_mtu: Option<u16>,
    lan_mtu: Option<u16>,
    max_held_fragments: Option<u32>,
    max_held_fragment_bytes: Option<u32>,
    icmp_errors_per_sec: Option<u32>,
    /// Drop TCP segments outside their connection's window (default true).
    tcp_window_check: Option<bool>,
    /// Drop source-routed packets (default true).
    drop_source_routes: Option<bool>,
}

/// The `[timeouts]` table as written (seconds; absent keys keep their value). The control
/// plane takes the same shape as a JSON patch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timers {
    /// UDP mapping timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<u64>,
    /// TCP established timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_established: Option<u64>,
    /// TCP transitory timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_transitory: Option<u64>,
    /// ICMP query timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<u64>,
    /// Port reuse delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_reuse_delay: Option<u64>,
    /// Out-of-order fragment hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragment: Option<u64>,
}

impl Timers {
    /// Each key with its value, in file order.
    pub fn entries(&self) -> [(&'static str, Option<u64>); 6] {
        [
            ("udp", self.udp),
            ("tcp_established", self.tcp_established),
            ("tcp_transitory", self.tcp_transitory),
            ("icmp", self.icmp),
            ("port_reuse_delay", self.port_reuse_delay),
            ("fragment", self.fragment),
        ]
    }
}

/// The 1-based line where `key = ` is first set inside `[table]`, or 0.
fn line_of(text: &str, table: &str, key: &str) -> usize {
    let mut in_table = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            in_table = t.trim_start_matches('[').trim_end_matches(']').trim() == table;
            continue;
        }
        if in_table && t.split('=').next().is_some_and(|k| k.trim() == key) {
            return i + 1;
        }
    }
    0
}

fn value_error(text: &str, table: &str, key: &str, message: String) -> Error {
    Error::Value { line: line_of(text, table, key), key: format!("{table}.{key}"), message }
}

fn parse_net(s: &str) -> Option<Ipv4Net> {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    let len: u8 = l.parse().ok().filter(|&n| n <= 32)?;
    Some(Ipv4Net::new(a.parse().ok()?, len))
}

/// Parses and validates a configuration file's text into the engine's settings.
pub fn parse(text: &str) -> Result<EngineConfig, Error> {
    parse_config(text).map(|c| c.engine)
}

fn parse_link(text: &str, side: &str, l: &LinkFile) -> Result<Link, Error> {
    let table = format!("interfaces.{side}");
    let (a, len) = l.address.split_once('/').ok_or_else(|| {
        value_error(
            text,
            &table,
            "address",
            format!(
                "{:?} has no prefix length; write the address with its network, like \"192.168.1.1/24\"",
                l.address
            ),
        )
    })?;
    let addr: Ipv4Addr = a.parse().map_err(|_| {
        value_error(text, &table, "address", format!("{a:?} is not an IPv4 address; write it like \"192.168.1.1/24\""))
    })?;
    let len: u8 = len.parse().ok().filter(|&n| (1..=30).contains(&n)).ok_or_else(|| {
        value_error(text, &table, "address", format!("/{len} is not a usable prefix length; use 1 to 30, like /24"))
    })?;
    if l.name.is_empty() || l.name.len() > 15 || l.name.contains(['/', ' ']) {
        return Err(value_error(
            text,
            &table,
            "name",
            format!("{:?} is not an interface name; use the name `ip link` shows, like \"eth0\"", l.name),
        ));
    }
    let net = Ipv4Net::new(addr, len);
    let gateway = match &l.gateway {
        None => None,
        Some(g) => {
            let ip: Ipv4Addr = g.parse().map_err(|_| {
                value_error(
                    text,
                    &table,
                    "gateway",
                    format!("{g:?} is not an IPv4 address; write it like \"203.0.113.254\""),
                )
            })?;
            if !net.contains(ip) || ip == addr {
                return Err(value_error(
                    text,
                    &table,
                    "gateway",
                    format!("{ip} is not a neighbour on {net}; the gateway must be another address on the link"),
                ));
            }
            Some(ip)
        }
    };
    let v6 = parse_link6(text, &table, l)?;
    Ok(Link { name: l.name.clone(), addr, net, gateway, v6 })
}

fn parse_link6(text: &str, table: &str, l: &LinkFile) -> Result<Option<Link6>, Error> {
    let lan = table.ends_with("lan");
    let example = if lan { "2001:db8:1::1/64" } else { "2001:db8:ff::2/64" };
    let Some(a6) = &l.address6 else {
        if l.gateway6.is_some() {
            return Err(value_error(
                text,
                table,
                "gateway6",
                "set address6 first: the gateway must be on its link".into(),
            ));
        }
        return Ok(None);
    };
    let (a, len) = a6.split_once('/').ok_or_else(|| {
        value_error(
            text,
            table,
            "address6",
            format!("{a6:?} has no prefix length; write the address with its prefix, like \"{example}\""),
        )
    })?;
    let addr: Ipv6Addr = a.parse().map_err(|_| {
        value_error(text, table, "address6", format!("{a:?} is not an IPv6 address; write it like \"{example}\""))
    })?;
    if addr.is_multicast() || addr.is_unspecified() || addr.is_loopback() || addr.is_unicast_link_local() {
        return Err(value_error(
            text,
            table,
            "address6",
            format!("{addr} is not a global unicast address; natpass makes its link-local address from the MAC"),
        ));
    }
    let len: u8 = match len.parse::<u8>() {
        Ok(64) => 64,
        Ok(n) if !lan && (1..=127).contains(&n) => n,
        _ if lan => {
            return Err(value_error(
                text,
                table,
                "address6",
                format!("/{len} is not the LAN's prefix length; hosts configure themselves (SLAAC) from a /64"),
            ));
        }
        _ => {
            return Err(value_error(
                text,
                table,
                "address6",
                format!("/{len} is not a usable prefix length; use 1 to 127, like /64"),
            ));
        }
    };
    let prefix = Ipv6Net::new(addr, len);
    let gateway = match &l.gateway6 {
        None => None,
        Some(_) if lan => {
            return Err(value_error(
                text,
                table,
                "gateway6",
                "only the WAN has a gateway; move it to [interfaces.wan]".into(),
            ));
        }
        Some(g) => {
            let ip: Ipv6Addr = g.parse().map_err(|_| {
                value_error(text, table, "gateway6", format!("{g:?} is not an IPv6 address; write it like \"fe80::1\""))
            })?;
            if !(ip.is_unicast_link_local() || prefix.contains(ip)) || ip == addr {
                return Err(value_error(
                    text,
                    table,
                    "gateway6",
                    format!(
                        "{ip} is not a neighbour on {}/{len}; use another address on the link, or the gateway's link-local (fe80::...) address",
                        prefix.addr()
                    ),
                ));
            }
            Some(ip)
        }
    };
    Ok(Some(Link6 { addr, prefix, gateway }))
}

/// The LAN's Router Advertisement settings: on by default with an IPv6 address.
fn parse_ra(text: &str, l: &LinkFile, wan: &LinkFile) -> Result<Option<RouterAdvertising>, Error> {
    let table = "interfaces.lan";
    for (key, set) in [
        ("router_advertisements", wan.router_advertisements.is_some()),
        ("ra_interval", wan.ra_interval.is_some()),
        ("ra_lifetime", wan.ra_lifetime.is_some()),
        ("dns6", wan.dns6.is_some()),
    ] {
        if set {
            return Err(value_error(
                text,
                "interfaces.wan",
                key,
                "natpass advertises itself on the LAN only; move the key to [interfaces.lan]".into(),
            ));
        }
    }
    if l.address6.is_none() {
        if l.router_advertisements == Some(true) {
            return Err(value_error(
                text,
                table,
                "router_advertisements",
                "needs the LAN's IPv6 address: set address6, like \"2001:db8:1::1/64\"".into(),
            ));
        }
        return Ok(None);
    }
    if l.router_advertisements == Some(false) {
        return Ok(None);
    }
    let interval = l.ra_interval.unwrap_or(RA_INTERVAL_SECS);
    if !(4..=1800).contains(&interval) {
        return Err(value_error(
            text,
            table,
            "ra_interval",
            format!("{interval} is out of range; use 4 to 1800 seconds (RFC 4861 §6.2.1), like {RA_INTERVAL_SECS}"),
        ));
    }
    let lifetime = l.ra_lifetime.unwrap_or(RA_LIFETIME_SECS.max(3 * interval).min(9000));
    if lifetime != 0 && !(interval..=9000).contains(&lifetime) {
        return Err(value_error(
            text,
            table,
            "ra_lifetime",
            format!(
                "{lifetime} is out of range; use 0 (not a default router) or {interval} (ra_interval) to 9000 seconds (RFC 4861 §6.2.1)"
            ),
        ));
    }
    let mut dns = Vec::new();
    for s in l.dns6.iter().flatten() {
        let ip: Ipv6Addr =
            s.parse().ok().filter(|ip: &Ipv6Addr| !ip.is_multicast() && !ip.is_unspecified()).ok_or_else(|| {
                value_error(
                    text,
                    table,
                    "dns6",
                    format!("{s:?} is not a DNS server's IPv6 address; write it like \"2001:db8:1::53\""),
                )
            })?;
        dns.push(ip);
    }
    if dns.len() > 8 {
        return Err(value_error(
            text,
            table,
            "dns6",
            "at most 8 servers fit the option natpass sends; list fewer".into(),
        ));
    }
    Ok(Some(RouterAdvertising {
        interval: Duration::from_secs(interval.into()),
        lifetime: Duration::from_secs(lifetime.into()),
        dns,
    }))
}

/// Parses and validates a configuration file's text, links included.
pub fn parse_config(text: &str) -> Result<Config, Error> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().and_then(|s| text.get(..s.start)).map_or(0, |t| t.matches('\n').count() + 1);
        Error::Syntax { line, message: e.message().to_string() }
    })?;
    let mut c = EngineConfig::default();
    let links = match &file.interfaces {
        None => None,
        Some(l) => {
            let lan = parse_link(text, "lan", &l.lan)?;
            let wan = parse_link(text, "wan", &l.wan)?;
            if lan.name == wan.name {
                return Err(value_error(
                    text,
                    "interfaces.wan",
                    "name",
                    "the LAN and WAN must be two different interfaces".to_string(),
                ));
            }
            match (&lan.v6, &wan.v6) {
                (Some(l6), Some(w6)) => {
                    c.ipv6 = Some(Ipv6Config { lan_prefix: l6.prefix, lan_addr: l6.addr, wan_addr: w6.addr });
                }
                (None, None) => {}
                (l6, _) => {
                    let (table, other) =
                        if l6.is_some() { ("interfaces.wan", "LAN") } else { ("interfaces.lan", "WAN") };
                    return Err(value_error(
                        text,
                        table,
                        "address6",
                        format!("the {other} has an IPv6 address: set address6 on both interfaces, or on neither"),
                    ));
                }
            }
            if let (Some(l6), Some(w6)) = (&lan.v6, &wan.v6)
                && (l6.prefix.contains(w6.addr) || w6.prefix.contains(l6.addr))
            {
                return Err(value_error(
                    text,
                    "interfaces.wan",
                    "address6",
                    format!("{} and the LAN's {} overlap; the WAN needs a prefix of its own", w6.addr, l6.addr),
                ));
            }
            // The links give the defaults; [nat] keys still win.
            c.lan_addr = lan.addr;
            c.lan_networks = vec![lan.net];
            c.public_addrs = vec![wan.addr];
            Some((lan, wan))
        }
    };
    let n = &file.nat;
    if let Some(v) = &n.public_addrs {
        c.public_addrs = v
            .iter()
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    value_error(
                        text,
                        "nat",
                        "public_addrs",
                        format!("{s:?} is not an IPv4 address; write it like \"203.0.113.1\""),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = &n.lan_networks {
        c.lan_networks = v
            .iter()
            .map(|s| {
                parse_net(s).ok_or_else(|| {
                    value_error(
                        text,
                        "nat",
                        "lan_networks",
                        format!("{s:?} is not a network; write it like \"192.168.1.0/24\""),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(s) = &n.lan_addr {
        c.lan_addr = s.parse().map_err(|_| {
            value_error(text, "nat", "lan_addr", format!("{s:?} is not an IPv4 address; write it like \"192.168.1.1\""))
        })?;
    }
    if let Some(s) = &n.filtering {
        c.filtering = filtering_named(s).ok_or_else(|| {
            let [a, b, c] = FILTERING_MODES.map(|m| format!("{:?}", filtering_name(m)));
            value_error(text, "nat", "filtering", format!("{s:?} is not a filtering mode; use {a}, {b} or {c}"))
        })?;
    }
    c.max_sessions = n.max_sessions.unwrap_or(c.max_sessions);
    c.max_sessions_per_host = n.max_sessions_per_host.unwrap_or(c.max_sessions_per_host);
    c.wan_mtu = n.wan_mtu.unwrap_or(c.wan_mtu);
    c.lan_mtu = n.lan_mtu.unwrap_or(c.lan_mtu);
    c.max_held_fragments = n.max_held_fragments.unwrap_or(c.max_held_fragments);
    c.max_held_fragment_bytes = n.max_held_fragment_bytes.unwrap_or(c.max_held_fragment_bytes);
    c.icmp_errors_per_sec = n.icmp_errors_per_sec.unwrap_or(c.icmp_errors_per_sec);
    c.tcp_window_check = n.tcp_window_check.unwrap_or(c.tcp_window_check);
    c.drop_source_routes = n.drop_source_routes.unwrap_or(c.drop_source_routes);
    let t = &file.timeouts;
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    c.timeouts.udp = secs(t.udp, c.timeouts.udp);
    c.timeouts.tcp_established = secs(t.tcp_established, c.timeouts.tcp_established);
    c.timeouts.tcp_transitory = secs(t.tcp_transitory, c.timeouts.tcp_transitory);
    c.timeouts.icmp = secs(t.icmp, c.timeouts.icmp);
    c.timeouts.port_reuse_delay = secs(t.port_reuse_delay, c.timeouts.port_reuse_delay);
    c.timeouts.fragment = secs(t.fragment, c.timeouts.fragment);
    let p = &file.passthrough;
    c.passthrough.ipsec = p.ipsec.unwrap_or(c.passthrough.ipsec);
    c.passthrough.pptp = p.pptp.unwrap_or(c.passthrough.pptp);
    c.passthrough.l2tp = p.l2tp.unwrap_or(c.passthrough.l2tp);
    if let Some((lan, wan)) = &links {
        if !c.public_addrs.contains(&wan.addr) {
            return Err(value_error(
                text,
                "nat",
                "public_addrs",
                format!("the WAN address {} must be one of the public addresses; add it or drop the key", wan.addr),
            ));
        }
        if let Some(p) = c.public_addrs.iter().find(|p| !wan.net.contains(**p)) {
            return Err(value_error(
                text,
                "nat",
                "public_addrs",
                format!("{p} is not on the WAN link {}; natpass answers ARP for its public addresses there", wan.net),
            ));
        }
        if c.lan_addr != lan.addr {
            return Err(value_error(
                text,
                "nat",
                "lan_addr",
                format!("must be the LAN interface's address {}; drop the key to use it", lan.addr),
            ));
        }
    }
    c.validate().map_err(|e| {
        let (table, key) = match &e {
            ConfigError::TimerBelowFloor { name, .. } => name.split_once('.').unwrap_or(("nat", name)),
            ConfigError::OutOfRange { name, .. } => name.split_once('.').unwrap_or(("nat", name)),
            ConfigError::NoPublicAddress | ConfigError::BadPublicAddress(_) => ("nat", "public_addrs"),
            ConfigError::PublicInsideLan(..) => ("nat", "public_addrs"),
            _ => ("nat", ""),
        };
        let mut err = value_error(text, table, key, e.to_string());
        if let Error::Value { message, .. } = &mut err {
            // The engine's message already names the key; keep only the reason and the fix.
            *message = e.to_string();
        }
        err
    })?;
    let admin = parse_admin(text, &file.admin)?;
    let fast_path = file.interfaces.as_ref().and_then(|l| l.fast_path).unwrap_or(true);
    let rx_ring = match file.interfaces.as_ref().and_then(|l| l.rx_ring.as_deref()) {
        // With the fast path, natpass's sockets carry first packets and control traffic, where
        // latency counts more than rate: per-frame wake-ups. Without it, blocks.
        None if fast_path => RxRing::V2,
        None | Some("v3") => RxRing::V3,
        Some("v2") => RxRing::V2,
        Some(other) => {
            return Err(value_error(
                text,
                "interfaces",
                "rx_ring",
                format!(
                    "{other:?} is not a ring kind; use \"v3\" (blocks, the default without the fast path) or \"v2\" (per frame, lowest latency, the default with it)"
                ),
            ));
        }
    };
    let backend = match file.interfaces.as_ref().and_then(|l| l.backend.as_deref()) {
        None | Some("auto") => Backend::Auto,
        Some("af_packet") => Backend::AfPacket,
        Some("af_xdp") => Backend::AfXdp,
        Some(other) => {
            return Err(value_error(
                text,
                "interfaces",
                "backend",
                format!(
                    "{other:?} is not a backend; use \"auto\" (the default: AF_XDP in native mode, except on veth, else AF_PACKET), \"af_packet\" or \"af_xdp\""
                ),
            ));
        }
    };
    let busy_poll = file.interfaces.as_ref().and_then(|l| l.busy_poll).unwrap_or(false);
    let ra = match &file.interfaces {
        Some(l) => parse_ra(text, &l.lan, &l.wan)?,
        None => None,
    };
    Ok(Config { engine: c, links, admin, rx_ring, backend, busy_poll, fast_path, ra })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_with_a_bound() {
        let dir = std::env::temp_dir().join(format!("natpass-config-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small.toml");
        std::fs::write(&small, "[nat]\n").unwrap();
        assert_eq!(read_file(&small).unwrap(), "[nat]\n");
        let big = dir.join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let e = read_file(&big).unwrap_err().to_string();
        assert!(e.contains("1024 KiB"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_a_full_file() {
        let c = parse(
            r#"
[nat]
public_addrs = ["203.0.113.5", "203.0.113.6"]
lan_networks = ["10.1.0.0/16"]
lan_addr = "10.1.0.1"
filtering = "endpoint-independent"
wan_mtu = 1400
tcp_window_check = false
drop_source_routes = false

[timeouts]
udp = 600
"#,
        )
        .unwrap();
        assert!(!c.tcp_window_check && !c.drop_source_routes);
        assert!(parse("").unwrap().tcp_window_check, "on by default");
        assert_eq!(c.public_addrs.len(), 2);
        assert_eq!(c.filtering, Filtering::EndpointIndependent);
        assert_eq!(c.timeouts.udp, Duration::from_secs(600));
        assert_eq!(c.wan_mtu, 1400);
        assert_eq!(c.lan_networks[0].to_string(), "10.1.0.0/16");
    }

    #[test]
    fn admin_names_and_tls_files_are_checked() {
        let a = parse_config(
            "[admin]\nlisten = \"192.168.1.1:443\"\nserver_names = [\"Router.lan.\"]\ntls_cert = \"/etc/natpass/a.crt\"\ntls_key = \"/etc/natpass/a.key\"\n",
        )
        .unwrap()
        .admin;
        assert_eq!(a.server_names, vec!["router.lan"]);
        assert_eq!(a.tls, Some(("/etc/natpass/a.crt".into(), "/etc/natpass/a.key".into())));
        let e = parse_config("[admin]\nserver_names = [\"evil.example/x\"]\n").unwrap_err().to_string();
        assert!(e.contains("admin.server_names") && e.contains("not a host name"), "{e}");
        let e = parse_config("[admin]\ntls_cert = \"/a.crt\"\n").unwrap_err().to_string();
        assert!(e.contains("admin.tls_key") && e.contains("set both"), "{e}");
    }

    #[test]
    fn links_give_the_defaults() {
        let c = parse_config(
            "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\ngateway = \"203.0.113.254\"\n\n[passthrough]\npptp = false\n",
        )
        .unwrap();
        let (lan, wan) = c.links.unwrap();
        assert_eq!(lan.net.to_string(), "192.168.1.0/24");
        assert_eq!(wan.gateway, Some(Ipv4Addr::new(203, 0, 113, 254)));
        assert_eq!(c.engine.public_addrs, vec![Ipv4Addr::new(203, 0, 113, 1)]);
        assert_eq!(c.engine.lan_addr, Ipv4Addr::new(192, 168, 1, 1));
        assert!(!c.engine.passthrough.pptp && c.engine.passthrough.ipsec);
    }

    #[test]
    fn the_receive_ring_is_chosen_under_interfaces() {
        let links = "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n";
        assert_eq!(parse_config(links).unwrap().rx_ring, RxRing::V2, "the fast path's default");
        assert_eq!(parse_config(&format!("[interfaces]\nfast_path = false\n{links}")).unwrap().rx_ring, RxRing::V3);
        assert_eq!(parse_config(&format!("[interfaces]\nrx_ring = \"v2\"\n{links}")).unwrap().rx_ring, RxRing::V2);
        let e = parse_config(&format!("[interfaces]\nrx_ring = \"v4\"\n{links}")).unwrap_err().to_string();
        assert!(e.starts_with("line 2: interfaces.rx_ring") && e.contains("\"v2\""), "{e}");
        assert_eq!(parse_config(links).unwrap().backend, Backend::Auto);
        assert_eq!(
            parse_config(&format!("[interfaces]\nbackend = \"af_packet\"\n{links}")).unwrap().backend,
            Backend::AfPacket
        );
        let c = parse_config(&format!("[interfaces]\nbackend = \"af_xdp\"\nbusy_poll = true\n{links}")).unwrap();
        assert_eq!((c.backend, c.busy_poll, c.fast_path), (Backend::AfXdp, true, true));
        let c = parse_config(&format!("[interfaces]\nfast_path = false\n{links}")).unwrap();
        assert!(!c.fast_path);
        assert_eq!(parse_config(&format!("[interfaces]\nbackend = \"auto\"\n{links}")).unwrap().backend, Backend::Auto);
        let e = parse_config(&format!("[interfaces]\nbackend = \"dpdk\"\n{links}")).unwrap_err().to_string();
        assert!(e.starts_with("line 2: interfaces.backend") && e.contains("\"af_xdp\""), "{e}");
    }

    #[test]
    fn bad_links_name_the_line() {
        let base =
            "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"wan0\"\n";
        let e = parse_config(&format!("{base}address = \"203.0.113.1\"\n")).unwrap_err().to_string();
        assert!(e.starts_with("line 6: interfaces.wan.address") && e.contains("prefix"), "{e}");
        let e = parse_config(&format!("{base}address = \"203.0.113.1/24\"\ngateway = \"10.0.0.1\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 7: interfaces.wan.gateway") && e.contains("not a neighbour"), "{e}");
        let e =
            parse_config(&format!("{base}address = \"203.0.113.1/24\"\n[nat]\npublic_addrs = [\"198.51.100.1\"]\n"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("nat.public_addrs"), "{e}");
    }

    const LINKS6: &str = "[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\naddress6 = \"2001:db8:1::1/64\"\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\naddress6 = \"2001:db8:ff::2/64\"\ngateway6 = \"2001:db8:ff::1\"\n";

    #[test]
    fn ipv6_addresses_fill_the_engine_and_turn_advertisements_on() {
        let c = parse_config(LINKS6).unwrap();
        let v6 = c.engine.ipv6.unwrap();
        assert_eq!(v6.lan_prefix, Ipv6Net::new("2001:db8:1::".parse().unwrap(), 64));
        assert_eq!((v6.lan_addr, v6.wan_addr), ("2001:db8:1::1".parse().unwrap(), "2001:db8:ff::2".parse().unwrap()));
        let (_, wan) = c.links.unwrap();
        assert_eq!(wan.v6.unwrap().gateway, Some("2001:db8:ff::1".parse().unwrap()));
        let ra = c.ra.unwrap();
        assert_eq!((ra.interval, ra.lifetime), (Duration::from_secs(200), Duration::from_secs(1800)));
        assert!(ra.dns.is_empty());
        // With DNS servers, another interval, and switched off.
        let text = LINKS6
            .replace("2001:db8:1::1/64\"\n", "2001:db8:1::1/64\"\ndns6 = [\"2001:db8:1::53\"]\nra_interval = 30\n");
        let ra = parse_config(&text).unwrap().ra.unwrap();
        assert_eq!((ra.interval, ra.lifetime, ra.dns.len()), (Duration::from_secs(30), Duration::from_secs(1800), 1));
        let off = LINKS6.replace("2001:db8:1::1/64\"\n", "2001:db8:1::1/64\"\nrouter_advertisements = false\n");
        assert_eq!(parse_config(&off).unwrap().ra, None);
        // A link-local gateway is the usual thing on a WAN.
        let ll = LINKS6.replace("gateway6 = \"2001:db8:ff::1\"", "gateway6 = \"fe80::1\"");
        assert!(parse_config(&ll).is_ok());
    }

    #[test]
    fn ipv4_only_files_have_no_ipv6() {
        let c = parse_config("[interfaces.lan]\nname = \"lan0\"\naddress = \"192.168.1.1/24\"\n[interfaces.wan]\nname = \"wan0\"\naddress = \"203.0.113.1/24\"\n").unwrap();
        assert_eq!((c.engine.ipv6, c.ra), (None, None));
        assert!(c.links.unwrap().0.v6.is_none());
    }

    #[test]
    fn bad_ipv6_values_name_the_key_line_and_fix() {
        let bad = |from: &str, to: &str| parse_config(&LINKS6.replace(from, to)).unwrap_err().to_string();
        let e = bad("2001:db8:1::1/64", "2001:db8:1::1/48");
        assert!(e.starts_with("line 4: interfaces.lan.address6") && e.contains("SLAAC"), "{e}");
        let e = bad("2001:db8:1::1/64", "2001:db8:1::1");
        assert!(e.starts_with("line 4: interfaces.lan.address6") && e.contains("prefix length"), "{e}");
        let e = bad("2001:db8:1::1/64", "fe80::1/64");
        assert!(e.contains("interfaces.lan.address6") && e.contains("link-local"), "{e}");
        let e = bad("2001:db8:1::1/64", "192.168.1.1/64");
        assert!(e.contains("not an IPv6 address"), "{e}");
        let e = bad("gateway6 = \"2001:db8:ff::1\"", "gateway6 = \"2001:db8:1::9\"");
        assert!(e.starts_with("line 9: interfaces.wan.gateway6") && e.contains("not a neighbour"), "{e}");
        let e = bad("address6 = \"2001:db8:ff::2/64\"\ngateway6 = \"2001:db8:ff::1\"\n", "");
        assert!(e.contains("interfaces.wan.address6") && e.contains("both interfaces"), "{e}");
        let e = bad("2001:db8:ff::2/64\"\ngateway6 = \"2001:db8:ff::1\"", "2001:db8:1::2/64\"");
        assert!(e.contains("overlap"), "{e}");
        let e = bad("2001:db8:1::1/64\"\n", "2001:db8:1::1/64\"\nra_interval = 3\n");
        assert!(e.starts_with("line 5: interfaces.lan.ra_interval") && e.contains("4 to 1800"), "{e}");
        let e = bad("2001:db8:1::1/64\"\n", "2001:db8:1::1/64\"\nra_lifetime = 100\n");
        assert!(e.starts_with("line 5: interfaces.lan.ra_lifetime"), "{e}");
        let e = bad("2001:db8:1::1/64\"\n", "2001:db8:1::1/64\"\ndns6 = [\"ff02::1\"]\n");
        assert!(e.starts_with("line 5: interfaces.lan.dns6"), "{e}");
        let e = bad("gateway6", "dns6 = []\ngateway6");
        assert!(e.contains("interfaces.wan.dns6") && e.contains("[interfaces.lan]"), "{e}");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), EngineConfig::default());
    }

    #[test]
    fn timer_below_floor_names_line_and_fix() {
        let e = parse("[nat]\n\n[timeouts]\nudp = 30\n").unwrap_err().to_string();
        assert!(e.starts_with("line 4: timeouts.udp"), "{e}");
        assert!(e.contains("set it to 120 or more"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused_with_line() {
        let e = parse("[nat]\npublic_addr = [\"1.2.3.4\"]\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(e.contains("public_addr"), "{e}");
    }

    #[test]
    fn bad_address_and_mode_explain_the_format() {
        let e = parse("[nat]\nlan_networks = [\"192.168.1.0/33\"]\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("192.168.1.0/24"), "{e}");
        let e = parse("[nat]\nfiltering = \"full-cone\"\n").unwrap_err().to_string();
        assert!(e.contains("endpoint-independent"), "{e}");
        let e = parse("[nat]\npublic_addrs = [\"192.168.1.1\"]\n").unwrap_err().to_string();
        assert!(e.contains("inside the LAN network"), "{e}");
    }

    #[test]
    fn filtering_modes_are_spelled_once_and_read_back() {
        for m in FILTERING_MODES {
            assert_eq!(filtering_named(filtering_name(m)), Some(m));
        }
        assert_eq!(filtering_named("full-cone"), None);
    }

    #[test]
    fn patches_serialize_only_what_they_set() {
        let t = Timers { udp: Some(600), ..Timers::default() };
        assert_eq!(toml::to_string(&t).unwrap().trim(), "udp = 600");
        let mut p = PassthroughSwitches::default();
        p.set(Protocol::Pptp, Some(false));
        assert_eq!((p.get(Protocol::Pptp), p.get(Protocol::Ipsec)), (Some(false), None));
        assert_eq!(toml::to_string(&p).unwrap().trim(), "pptp = false");
    }
}
