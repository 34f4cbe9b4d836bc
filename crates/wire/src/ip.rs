//! What IPv4 and (later) IPv6 views share: typed protocol numbers (IANA "Assigned Internet
//! Protocol Numbers", RFC 791 §3.1 Protocol, RFC 8200 §3 Next Header) and the address change
//! a NAT makes to the pseudo-header that TCP and UDP checksums cover (RFC 793 §3.1, RFC 768,
//! updated incrementally by RFC 1624).

use core::fmt;
use std::net::Ipv4Addr;

/// An IP protocol number: the IPv4 Protocol field, the IPv6 Next Header field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMP (RFC 792).
    pub const ICMP: Self = Self(1);
    /// TCP (RFC 793).
    pub const TCP: Self = Self(6);
    /// UDP (RFC 768).
    pub const UDP: Self = Self(17);
    /// GRE (RFC 2784; PPTP's enhanced GRE, RFC 2637 §4.1).
    pub const GRE: Self = Self(47);
    /// ESP (RFC 4303).
    pub const ESP: Self = Self(50);
    /// AH (RFC 4302).
    pub const AH: Self = Self(51);
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: Self = Self(58);
    /// L2TPv3 over IP (RFC 3931 §4.1.1).
    pub const L2TP: Self = Self(115);

    /// The number.
    #[inline]
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The protocol's usual name, when it is one natpass knows.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ICMP => "icmp",
            Self::TCP => "tcp",
            Self::UDP => "udp",
            Self::GRE => "gre",
            Self::ESP => "esp",
            Self::AH => "ah",
            Self::ICMPV6 => "icmpv6",
            Self::L2TP => "l2tp",
            _ => return None,
        })
    }
}

impl From<u8> for IpProtocol {
    fn from(n: u8) -> Self {
        Self(n)
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> Self {
        p.0
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}({})", self.0),
            None => write!(f, "IpProtocol({})", self.0),
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// An address rewritten in the IPv4 header, which TCP and UDP checksums also cover through
/// their pseudo-header: `old` became `new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrChange {
    /// The address before the rewrite.
    pub old: Ipv4Addr,
    /// The address after it.
    pub new: Ipv4Addr,
}

impl AddrChange {
    /// `old` → `new`.
    #[inline]
    pub const fn new(old: Ipv4Addr, new: Ipv4Addr) -> Self {
        Self { old, new }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(IpProtocol::ESP.number(), 50);
        assert_eq!(IpProtocol::from(47), IpProtocol::GRE);
        assert_eq!(IpProtocol::UDP.to_string(), "udp");
        assert_eq!(IpProtocol(253).to_string(), "253");
        assert_eq!(format!("{:?}", IpProtocol::TCP), "tcp(6)");
    }
}
