//! Engine settings and their validation against the RFC floors: RFC 4787 REQ-5 (UDP mapping
//! timer ≥ 120 s), RFC 5382 REQ-5 (TCP established ≥ 2 h 4 min, transitory ≥ 4 min),
//! RFC 5508 REQ-2 (ICMP query ≥ 60 s), RFC 6888 REQ-8 (port reuse delay ≥ 120 s).

use core::net::Ipv4Addr;
use core::time::Duration;

/// Inbound filtering behaviour (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtering {
    /// Any remote may reach a mapping (RFC 4787 §5, "endpoint-independent").
    EndpointIndependent,
    /// A remote address the mapping has sent to may reach it from any port (the default).
    AddressDependent,
    /// Only the exact remote address and port the mapping sent to.
    AddressAndPortDependent,
}

/// An IPv4 network, `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    addr: u32,
    mask: u32,
}

impl Ipv4Net {
    /// The network `addr/len`; host bits of `addr` are cleared. `len` above 32 is clamped.
    pub fn new(addr: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
        Self { addr: u32::from(addr) & mask, mask }
    }

    /// True when `ip` is inside.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = ip.to_bits();
        ip & self.mask == self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.mask.count_ones() as u8
    }

    /// True for a /0 network.
    pub fn is_empty(&self) -> bool {
        self.mask == 0
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }
}

impl core::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len())
    }
}

/// Session and mapping timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP mapping idle timer (RFC 4787 REQ-5: never below 120 s; 300 s recommended).
    pub udp: Duration,
    /// TCP established idle timer (RFC 5382 REQ-5: never below 7440 s).
    pub tcp_established: Duration,
    /// TCP transitory timer: opening, closing, after RST (RFC 5382 REQ-5, RFC 7857 §2.1).
    pub tcp_transitory: Duration,
    /// ICMP query session timer (RFC 5508 REQ-2: never below 60 s).
    pub icmp: Duration,
    /// How long a released public port stays unused (RFC 6888 REQ-8: at least 120 s).
    pub port_reuse_delay: Duration,
    /// How long out-of-order fragments wait for their first fragment.
    pub fragment: Duration,
    /// How long a client that sent ESP on a new SA may wait for the server's first inbound ESP
    /// before another client may open an SA to the same server (raw ESP passthrough).
    pub esp_pending: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            udp: Duration::from_secs(300),
            tcp_established: Duration::from_secs(7440),
            tcp_transitory: Duration::from_secs(240),
            icmp: Duration::from_secs(60),
            port_reuse_delay: Duration::from_secs(120),
            fragment: Duration::from_secs(5),
            esp_pending: Duration::from_secs(10),
        }
    }
}

/// The "VPN Passthrough" switches: each on by default; off blocks that protocol from the LAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passthrough {
    /// IPsec: IKE (UDP 500), NAT-T (UDP 4500), ESP, AH.
    pub ipsec: bool,
    /// PPTP: TCP 1723 and GRE.
    pub pptp: bool,
    /// L2TP: UDP 1701.
    pub l2tp: bool,
}

impl Default for Passthrough {
    fn default() -> Self {
        Self { ipsec: true, pptp: true, l2tp: true }
    }
}

/// Everything the engine needs to run. Built by the config crate from TOML, or by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The public addresses (the pool), at least one.
    pub public_addrs: Vec<Ipv4Addr>,
    /// The inside networks: LAN packets must come from these, WAN packets must not.
    pub lan_networks: Vec<Ipv4Net>,
    /// The router's own LAN address, the source of ICMP errors it sends to the LAN.
    pub lan_addr: Ipv4Addr,
    /// Inbound filtering.
    pub filtering: Filtering,
    /// Timers.
    pub timeouts: Timeouts,
    /// The most sessions held at once; when full, transitory and unreplied sessions go first.
    pub max_sessions: u32,
    /// The most sessions one LAN host may hold (RFC 6888 REQ-4).
    pub max_sessions_per_host: u32,
    /// MTU of the WAN link: larger packets are fragmented, or refused with DF set.
    pub wan_mtu: u16,
    /// MTU of the LAN link.
    pub lan_mtu: u16,
    /// The most out-of-order fragments held at once.
    pub max_held_fragments: u32,
    /// The most bytes of out-of-order fragments held at once.
    pub max_held_fragment_bytes: u32,
    /// ICMP errors the router may generate per second (token bucket, RFC 1812 §4.3.2.8).
    pub icmp_errors_per_sec: u32,
    /// Seed for port randomisation; the driver passes random bytes (the engine reads no RNG).
    pub seed: u64,
    /// VPN passthrough switches.
    pub passthrough: Passthrough,
    /// Drop TCP segments outside their connection's sequence window (RFC 5961, as conntrack
    /// and pf do); off forwards any segment of a known 4-tuple.
    pub tcp_window_check: bool,
    /// Drop packets with a loose or strict source route option (RFC 7126 §4.3, §4.4: drop
    /// by default); off forwards them like other options.
    pub drop_source_routes: bool,
    /// IPv6 forwarding with simple security (RFC 6092); `None` refuses IPv6 (`not_ipv4`).
    pub ipv6: Option<crate::ipv6::Ipv6Config>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            public_addrs: vec![Ipv4Addr::new(203, 0, 113, 1)],
            lan_networks: vec![
                Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8),
                Ipv4Net::new(Ipv4Addr::new(172, 16, 0, 0), 12),
                Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16),
            ],
            lan_addr: Ipv4Addr::new(192, 168, 1, 1),
            filtering: Filtering::AddressDependent,
            timeouts: Timeouts::default(),
            max_sessions: 1 << 20,
            max_sessions_per_host: 16_384,
            wan_mtu: 1500,
            lan_mtu: 1500,
            max_held_fragments: 256,
            max_held_fragment_bytes: 1 << 20,
            icmp_errors_per_sec: 100,
            seed: 0x6e61_7470_6173_7321,
            passthrough: Passthrough::default(),
            tcp_window_check: true,
            drop_source_routes: true,
            ipv6: None,
        }
    }
}

/// A setting the engine refuses, with the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A timer below the floor an RFC sets.
    #[error("{name} = {value}s is below the {floor}s floor of {rule}; set it to {floor} or more")]
    TimerBelowFloor {
        /// The setting.
        name: &'static str,
        /// The value given, in seconds.
        value: u64,
        /// The smallest value allowed, in seconds.
        floor: u64,
        /// The requirement that sets the floor.
        rule: &'static str,
    },
    /// No public address.
    #[error("public_addrs is empty; give at least one public IPv4 address")]
    NoPublicAddress,
    /// A public address that is not usable as a unicast source.
    #[error("public address {0} is not a unicast address; use a routable host address")]
    BadPublicAddress(Ipv4Addr),
    /// A public address inside a LAN network.
    #[error("public address {0} lies inside the LAN network {1}; the two must not overlap")]
    PublicInsideLan(Ipv4Addr, Ipv4Net),
    /// A limit of zero or out of range.
    #[error("{name} = {value} is out of range; use {range}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The range allowed.
        range: &'static str,
    },
}

impl EngineConfig {
    /// Checks every setting; the engine runs only with a config that passed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        let floors: [(&'static str, Duration, u64, &'static str); 5] = [
            ("timeouts.udp", t.udp, 120, "RFC 4787 REQ-5"),
            ("timeouts.tcp_established", t.tcp_established, 7440, "RFC 5382 REQ-5"),
            ("timeouts.tcp_transitory", t.tcp_transitory, 240, "RFC 5382 REQ-5"),
            ("timeouts.icmp", t.icmp, 60, "RFC 5508 REQ-2"),
            ("timeouts.port_reuse_delay", t.port_reuse_delay, 120, "RFC 6888 REQ-8"),
        ];
        for (name, value, floor, rule) in floors {
            if value.as_secs() < floor {
                return Err(ConfigError::TimerBelowFloor { name, value: value.as_secs(), floor, rule });
            }
        }
        if t.fragment.as_secs() == 0 || t.fragment.as_secs() > 120 {
            return Err(ConfigError::OutOfRange {
                name: "timeouts.fragment",
                value: t.fragment.as_secs(),
                range: "1 to 120 seconds",
            });
        }
        if t.esp_pending.as_secs() == 0 || t.esp_pending.as_secs() > 120 {
            return Err(ConfigError::OutOfRange {
                name: "timeouts.esp_pending",
                value: t.esp_pending.as_secs(),
                range: "1 to 120 seconds",
            });
        }
        if self.public_addrs.is_empty() {
            return Err(ConfigError::NoPublicAddress);
        }
        for &a in &self.public_addrs {
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
                return Err(ConfigError::BadPublicAddress(a));
            }
            if let Some(net) = self.lan_networks.iter().find(|n| n.contains(a)) {
                return Err(ConfigError::PublicInsideLan(a, *net));
            }
        }
        let ranges: [(&'static str, u64, u64, u64, &'static str); 6] = [
            ("max_sessions", u64::from(self.max_sessions), 1, 1 << 26, "1 to 67108864"),
            ("max_sessions_per_host", u64::from(self.max_sessions_per_host), 1, 1 << 26, "1 to 67108864"),
            ("wan_mtu", u64::from(self.wan_mtu), 576, 65535, "576 to 65535"),
            ("lan_mtu", u64::from(self.lan_mtu), 576, 65535, "576 to 65535"),
            ("max_held_fragments", u64::from(self.max_held_fragments), 0, 65536, "0 to 65536"),
            ("icmp_errors_per_sec", u64::from(self.icmp_errors_per_sec), 0, 1_000_000, "0 to 1000000"),
        ];
        for (name, value, lo, hi, range) in ranges {
            if value < lo || value > hi {
                return Err(ConfigError::OutOfRange { name, value, range });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(EngineConfig::default().validate(), Ok(()));
    }

    #[test]
    fn rfc_floors_are_enforced() {
        let mut c = EngineConfig::default();
        c.timeouts.udp = Duration::from_secs(119);
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("RFC 4787 REQ-5"), "{e}");
        let mut c = EngineConfig::default();
        c.timeouts.tcp_established = Duration::from_secs(7439);
        assert!(matches!(c.validate(), Err(ConfigError::TimerBelowFloor { floor: 7440, .. })));
        let mut c = EngineConfig::default();
        c.timeouts.icmp = Duration::from_secs(59);
        assert!(c.validate().is_err());
        let mut c = EngineConfig::default();
        c.timeouts.port_reuse_delay = Duration::from_secs(60);
        assert!(c.validate().is_err());
    }

    #[test]
    fn public_inside_lan_is_refused() {
        let c = EngineConfig { public_addrs: vec![Ipv4Addr::new(192, 168, 1, 7)], ..Default::default() };
        assert!(matches!(c.validate(), Err(ConfigError::PublicInsideLan(..))));
    }

    #[test]
    fn net_contains() {
        let n = Ipv4Net::new(Ipv4Addr::new(172, 16, 5, 5), 12);
        assert!(n.contains(Ipv4Addr::new(172, 31, 255, 255)));
        assert!(!n.contains(Ipv4Addr::new(172, 32, 0, 0)));
        assert_eq!(n.to_string(), "172.16.0.0/12");
    }
}
