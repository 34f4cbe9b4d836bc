//! The REST API's bodies, in one place: what the server answers and what it accepts. The
//! server serializes these types and the CLI parses them, so renaming a field breaks the
//! build, not the CLI. `docs/openapi.yaml` describes the same shapes.
//!
//! Also the one spelling of each name the API uses: VPN passthrough protocols
//! ([`natpass_engine::Protocol::name`], listed in [`PROTOCOLS`], labelled by
//! [`protocol_label`]), transport protocols ([`natpass_engine::Proto::name`]), filtering
//! modes ([`natpass_config::filtering_name`]) and drop reasons
//! ([`natpass_engine::DropReason::name`]).

use std::net::IpAddr;

use natpass_engine::{Proto, Protocol, Timeouts};
use serde::{Deserialize, Serialize};

/// The request body of `PUT`/`PATCH /api/v1/passthrough`: the switches to change (the same
/// shape as the config file's `[passthrough]` table).
pub type PassthroughPatch = natpass_config::PassthroughSwitches;
/// The `timeouts` of a settings patch (the same shape as the config file's `[timeouts]`).
pub type TimeoutsPatch = natpass_config::Timers;

/// The API's paths.
pub mod path {
    /// `GET`: [`super::Status`].
    pub const STATUS: &str = "/api/v1/status";
    /// `GET`: [`super::Counters`].
    pub const COUNTERS: &str = "/api/v1/counters";
    /// `GET` with [`super::SessionParams`]: [`super::SessionPage`].
    pub const SESSIONS: &str = "/api/v1/sessions";
    /// `GET`: [`super::Tunnels`].
    pub const TUNNELS: &str = "/api/v1/tunnels";
    /// `GET`: the refusals among [`super::Tunnels::events`].
    pub const REFUSALS: &str = "/api/v1/refusals";
    /// `GET`, optionally with `client=IP`: [`super::Findings`].
    pub const FINDINGS: &str = "/api/v1/findings";
    /// `GET`: [`super::Switches`]; `PUT`/`PATCH` [`super::PassthroughPatch`]:
    /// [`super::PassthroughChanged`].
    pub const PASSTHROUGH: &str = "/api/v1/passthrough";
    /// `GET`: [`super::Settings`]; `PATCH`/`PUT` [`super::SettingsPatch`]:
    /// [`super::SettingsChanged`].
    pub const SETTINGS: &str = "/api/v1/settings";
    /// `GET`: the OpenAPI description (no token needed).
    pub const OPENAPI: &str = "/api/v1/openapi.yaml";
}

/// The VPN passthrough protocols, in the order the pages, the API and the CLI list them.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Ipsec, Protocol::Pptp, Protocol::L2tp];

/// The protocol the API, the config file and the CLI call `name` ("ipsec", "pptp", "l2tp").
pub fn protocol_named(name: &str) -> Option<Protocol> {
    PROTOCOLS.into_iter().find(|p| p.name() == name)
}

/// The protocol's name for people: "IPsec", "PPTP", "L2TP".
pub fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Ipsec => "IPsec",
        Protocol::Pptp => "PPTP",
        Protocol::L2tp => "L2TP",
    }
}

/// The transport protocol the API calls `name` ("tcp", "udp", "icmp").
pub fn proto_named(name: &str) -> Option<Proto> {
    Proto::ALL.into_iter().find(|p| p.name() == name)
}

/// One value per VPN passthrough protocol; the keys are the protocols' names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerVpn<T> {
    /// IPsec.
    pub ipsec: T,
    /// PPTP.
    pub pptp: T,
    /// L2TP.
    pub l2tp: T,
}

impl<T: Copy> PerVpn<T> {
    /// The value for `p`.
    pub fn get(&self, p: Protocol) -> T {
        match p {
            Protocol::Ipsec => self.ipsec,
            Protocol::Pptp => self.pptp,
            Protocol::L2tp => self.l2tp,
        }
    }

    /// The value for `p`, to change.
    pub fn get_mut(&mut self, p: Protocol) -> &mut T {
        match p {
            Protocol::Ipsec => &mut self.ipsec,
            Protocol::Pptp => &mut self.pptp,
            Protocol::L2tp => &mut self.l2tp,
        }
    }
}

/// The VPN Passthrough switches (true: enabled).
pub type Switches = PerVpn<bool>;

/// One number per transport protocol; the keys are [`Proto::name`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerProto {
    /// TCP.
    pub tcp: u64,
    /// UDP.
    pub udp: u64,
    /// ICMP.
    pub icmp: u64,
}

impl PerProto {
    /// The number for `p`.
    pub fn get(&self, p: Proto) -> u64 {
        match p {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
            Proto::Icmp => self.icmp,
        }
    }

    /// The number for `p`, to change.
    pub fn get_mut(&mut self, p: Proto) -> &mut u64 {
        match p {
            Proto::Tcp => &mut self.tcp,
            Proto::Udp => &mut self.udp,
            Proto::Icmp => &mut self.icmp,
        }
    }
}

/// Per-side numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide {
    /// LAN.
    pub lan: u64,
    /// WAN.
    pub wan: u64,
}

/// One interface of the router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// "lan" or "wan".
    pub role: String,
    /// Kernel name.
    pub name: String,
    /// natpass's address there, with prefix.
    pub address: String,
    /// MAC address.
    pub mac: String,
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
}

/// The timers, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerSecs {
    /// UDP mapping.
    pub udp: u64,
    /// TCP established.
    pub tcp_established: u64,
    /// TCP transitory.
    pub tcp_transitory: u64,
    /// ICMP query.
    pub icmp: u64,
    /// Port reuse delay.
    pub port_reuse_delay: u64,
    /// Out-of-order fragment hold.
    pub fragment: u64,
}

impl TimerSecs {
    /// From the engine's timers.
    pub fn of(t: &Timeouts) -> Self {
        Self {
            udp: t.udp.as_secs(),
            tcp_established: t.tcp_established.as_secs(),
            tcp_transitory: t.tcp_transitory.as_secs(),
            icmp: t.icmp.as_secs(),
            port_reuse_delay: t.port_reuse_delay.as_secs(),
            fragment: t.fragment.as_secs(),
        }
    }

    /// Each timer with its key, in the config file's order.
    pub fn entries(&self) -> [(&'static str, u64); 6] {
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

/// `GET /api/v1/status`: the router's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// natpass's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Interfaces.
    pub interfaces: Vec<InterfaceInfo>,
    /// Public addresses.
    pub public_addrs: Vec<String>,
    /// LAN networks.
    pub lan_networks: Vec<String>,
    /// VPN passthrough switches.
    pub passthrough: Switches,
    /// Timers.
    pub timeouts: TimerSecs,
    /// Inbound filtering, as in the config file.
    pub filtering: String,
    /// Packets received per side.
    pub packets_received: PerSide,
    /// Packets forwarded out of each side.
    pub packets_forwarded: PerSide,
    /// Bytes forwarded out of each side.
    pub bytes_forwarded: PerSide,
    /// Drops by reason ([`natpass_engine::DropReason::name`]; only reasons seen).
    pub drops: Vec<(String, u64)>,
    /// Link-layer counters.
    pub link: Vec<(String, u64)>,
    /// IPv4 NAPT sessions by protocol.
    pub sessions: PerProto,
    /// IPv6 flows of the simple security table (RFC 6092) by protocol (one of
    /// [`IPV6_FLOW_PROTOCOLS`]; only protocols with flows).
    #[serde(default)]
    pub ipv6_flows: Vec<(String, u64)>,
    /// Sessions opened since start.
    pub sessions_created: u64,
    /// Sessions expired since start.
    pub sessions_expired: u64,
    /// Sessions evicted since start.
    pub sessions_evicted: u64,
    /// Tunnels by protocol.
    pub tunnels: PerVpn<u64>,
    /// Public ports in use, summed over the public addresses.
    pub ports_used: PerProto,
    /// Public ports available per address and protocol.
    pub ports_per_address: u32,
    /// Findings the diagnosis made since start, by kind
    /// ([`natpass_engine::FindingKind::name`]; only kinds seen).
    #[serde(default)]
    pub findings: Vec<(String, u64)>,
}

/// `GET /api/v1/counters`: the status's counters alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Packets received per side.
    pub packets_received: PerSide,
    /// Packets forwarded out of each side.
    pub packets_forwarded: PerSide,
    /// Bytes forwarded out of each side.
    pub bytes_forwarded: PerSide,
    /// Drops by reason.
    pub drops: Vec<(String, u64)>,
    /// Link-layer counters.
    pub link: Vec<(String, u64)>,
}

impl From<Status> for Counters {
    fn from(s: Status) -> Self {
        Self {
            packets_received: s.packets_received,
            packets_forwarded: s.packets_forwarded,
            bytes_forwarded: s.bytes_forwarded,
            drops: s.drops,
            link: s.link,
        }
    }
}

/// The query of `GET /api/v1/sessions` as sent (the server checks each value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionParams {
    /// Only "tcp", "udp" or "icmp".
    pub proto: Option<String>,
    /// Only sessions with this address, IPv4 or IPv6, on any side.
    pub addr: Option<IpAddr>,
    /// Only sessions with this port on any side.
    pub port: Option<u16>,
    /// 1-based page.
    pub page: u32,
    /// Sessions per page.
    pub per_page: u32,
}

impl SessionParams {
    /// The query parameters, names and values.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("page", self.page.to_string()), ("per_page", self.per_page.to_string())];
        if let Some(p) = &self.proto {
            q.push(("proto", p.clone()));
        }
        if let Some(a) = self.addr {
            q.push(("addr", a.to_string()));
        }
        if let Some(p) = self.port {
            q.push(("port", p.to_string()));
        }
        q
    }
}

/// The protocol labels of IPv6 flows ([`Status::ipv6_flows`], `natpass_ipv6_flows`), with
/// "other" for the rest.
pub const IPV6_FLOW_PROTOCOLS: [&str; 7] = ["tcp", "udp", "icmpv6", "esp", "ah", "gre", "other"];

fn ipv4() -> String {
    "ipv4".into()
}

/// One session: an IPv4 NAPT session, or an IPv6 flow (routed, not translated).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// "tcp", "udp" or "icmp"; for IPv6 also "icmpv6", "esp", "ah", "gre".
    pub proto: String,
    /// "ipv4" or "ipv6".
    #[serde(default = "ipv4")]
    pub family: String,
    /// LAN address:port (IPv6: `[address]:port`).
    pub lan: String,
    /// Public address:port; empty for IPv6, which natpass routes without translation.
    pub public: String,
    /// Remote address:port.
    pub remote: String,
    /// "established" or "opening/closing".
    pub state: String,
    /// Seconds since the last packet.
    pub idle_secs: u64,
    /// Bytes LAN → WAN.
    pub bytes_out: u64,
    /// Bytes WAN → LAN.
    pub bytes_in: u64,
}

/// `GET /api/v1/sessions`: a page of sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPage {
    /// Sessions matching the query.
    pub total: usize,
    /// This page (1-based).
    pub page: u32,
    /// Per page.
    pub per_page: u32,
    /// The sessions.
    pub sessions: Vec<SessionRow>,
}

/// One tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRow {
    /// [`protocol_label`]: "IPsec", "PPTP", "L2TP".
    pub protocol: String,
    /// What is tracked.
    pub kind: String,
    /// LAN client.
    pub client: String,
    /// Server.
    pub server: String,
    /// Public address used; empty for IPv6 (not translated).
    pub public: String,
    /// Identifiers, readable.
    pub ids: String,
    /// Bytes client → server.
    pub bytes_out: u64,
    /// Bytes server → client.
    pub bytes_in: u64,
    /// Seconds since the last packet.
    pub idle_secs: u64,
    /// Seconds since it came up (`None` when natpass did not see it come up).
    pub age_secs: Option<u64>,
    /// State.
    pub state: String,
}

/// What an [`EventRow`] reports.
pub mod what {
    /// A passthrough module refused a packet.
    pub const REFUSED: &str = "refused";
    /// A new session could not be opened.
    pub const SESSION_REFUSED: &str = "session refused";
    /// A tunnel came up.
    pub const TUNNEL_UP: &str = "tunnel up";
    /// A tunnel went down.
    pub const TUNNEL_DOWN: &str = "tunnel down";
    /// The diagnosis found a problem with a tunnel.
    pub const PROBLEM: &str = "problem";
    /// A problem the diagnosis had found no longer holds.
    pub const PROBLEM_CLEARED: &str = "problem cleared";
}

/// A refusal or tunnel event, kept for the tunnel page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    /// Seconds since start when it happened.
    pub at_secs: u64,
    /// One of [`what`].
    pub what: String,
    /// Protocol ([`protocol_label`]), if any.
    pub protocol: String,
    /// LAN client.
    pub client: String,
    /// Server, if any.
    pub server: String,
    /// The reason or the identifiers.
    pub detail: String,
}

impl EventRow {
    /// True for refusals (of a passthrough module or of a new session).
    pub fn is_refusal(&self) -> bool {
        self.what == what::REFUSED || self.what == what::SESSION_REFUSED
    }
}

/// `GET /api/v1/tunnels`: live tunnels and recent events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnels {
    /// The tunnels.
    pub tunnels: Vec<TunnelRow>,
    /// The most recent refusals and tunnel events, newest first.
    pub events: Vec<EventRow>,
    /// What the diagnosis found wrong with tunnels (found and cleared), newest first.
    #[serde(default)]
    pub findings: Vec<FindingRow>,
}

/// What a [`FindingRow`]'s status says.
pub mod finding_status {
    /// The packets show it.
    pub const FOUND: &str = "found";
    /// Later packets showed it no longer holds.
    pub const CLEARED: &str = "cleared";
    /// Something looks wrong, but the packets do not show why (yet): no cause is given.
    pub const NOT_ENOUGH_EVIDENCE: &str = "not enough evidence";
}

/// A finding of the diagnosis (docs/diagnostics.md): what is wrong with a tunnel, the packets
/// that show it, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRow {
    /// The kind's stable name ([`natpass_engine::FindingKind::name`]).
    pub kind: String,
    /// The kind's title for people.
    pub title: String,
    /// See [`finding_status`].
    pub status: String,
    /// [`protocol_label`].
    pub protocol: String,
    /// LAN client.
    pub client: String,
    /// Server.
    pub server: String,
    /// The public address the client leaves from, when it has one.
    pub public: Option<String>,
    /// SPIs, Call IDs or tunnel IDs, readable, when known.
    pub ids: Option<String>,
    /// Packets from the client that show it.
    pub packets_out: u64,
    /// Packets from the server that show it.
    pub packets_in: u64,
    /// Seconds since the last of them.
    pub last_secs_ago: u64,
    /// Seconds since natpass concluded it.
    pub since_secs_ago: u64,
    /// What natpass saw, in words.
    pub evidence: String,
    /// What to do (empty while there is not enough evidence).
    pub fix: String,
}

/// `GET /api/v1/findings`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// The client asked about, if one was.
    pub client: Option<String>,
    /// Newest first; for one client, then what looks wrong without enough evidence yet.
    pub findings: Vec<FindingRow>,
}

/// The answer to a passthrough change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassthroughChanged {
    /// The switches now.
    pub passthrough: Switches,
    /// What changed, one line per key, as in the log.
    pub changed: Vec<String>,
    /// Sessions and tunnels closed by the change.
    pub removed: usize,
}

/// `GET /api/v1/settings`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The timers.
    pub timeouts: TimerSecs,
    /// Inbound filtering ([`natpass_config::filtering_name`]).
    pub filtering: String,
}

/// The request body of `PATCH /api/v1/settings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Timers to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsPatch>,
    /// A new filtering mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtering: Option<String>,
}

/// The answer to a settings change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsChanged {
    /// The timers now.
    pub timeouts: TimerSecs,
    /// The filtering now.
    pub filtering: String,
    /// What changed, one line per key, as in the log.
    pub changed: Vec<String>,
}

/// Every refused request: `{"error": "..."}` with a 4xx or 5xx status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What was wrong, and what to do.
    pub error: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn protocol_keys_are_the_protocols_names() {
        for p in PROTOCOLS {
            assert_eq!(protocol_named(p.name()), Some(p));
            let mut s = Switches::default();
            *s.get_mut(p) = true;
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(v[p.name()], true, "{v}");
            let mut patch = PassthroughPatch::default();
            patch.set(p, Some(false));
            assert_eq!(serde_json::to_value(patch).unwrap(), serde_json::json!({ p.name(): false }));
        }
        for p in Proto::ALL {
            assert_eq!(proto_named(p.name()), Some(p));
            let mut n = PerProto::default();
            *n.get_mut(p) = 7;
            assert_eq!(serde_json::to_value(n).unwrap()[p.name()], 7);
        }
        assert_eq!(protocol_named("gre"), None);
    }

    #[test]
    fn timer_entries_are_the_json_keys() {
        let t = TimerSecs { udp: 1, tcp_established: 2, tcp_transitory: 3, icmp: 4, port_reuse_delay: 5, fragment: 6 };
        let v = serde_json::to_value(t).unwrap();
        for (key, secs) in t.entries() {
            assert_eq!(v[key], secs, "{key}");
        }
        assert_eq!(v.as_object().unwrap().len(), t.entries().len());
    }

    #[test]
    fn a_settings_patch_sends_only_what_it_changes() {
        let p = SettingsPatch {
            timeouts: Some(TimeoutsPatch { udp: Some(600), ..TimeoutsPatch::default() }),
            filtering: None,
        };
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!({"timeouts": {"udp": 600}}));
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"timeout": {}}"#).is_err());
    }
}
