//! One NAT session: a LAN endpoint talking to one remote endpoint through one mapping
//! (RFC 4787 §4.1 terms), with the TCP state RFC 7857 §2.1 asks for.

use natpass_wire::IpProtocol;

use crate::verdict::Side;

/// Transport protocols the NAPT engine translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (ports).
    Tcp = 0,
    /// UDP (ports).
    Udp = 1,
    /// ICMP query messages (the identifier stands in for the port, RFC 5508 §3.1).
    Icmp = 2,
}

impl Proto {
    /// The IP protocol.
    #[inline]
    pub fn ip_protocol(self) -> IpProtocol {
        match self {
            Self::Tcp => IpProtocol::TCP,
            Self::Udp => IpProtocol::UDP,
            Self::Icmp => IpProtocol::ICMP,
        }
    }

    /// The NAPT protocol of an IP protocol, if NAPT translates it.
    #[inline]
    pub fn from_ip_protocol(p: IpProtocol) -> Option<Self> {
        match p {
            IpProtocol::TCP => Some(Self::Tcp),
            IpProtocol::UDP => Some(Self::Udp),
            IpProtocol::ICMP => Some(Self::Icmp),
            _ => None,
        }
    }

    /// A short name: `tcp`, `udp`, `icmp`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        }
    }

    /// The protocol with short name `name` (see [`Proto::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Every protocol.
    pub const ALL: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];
}

/// Session state flags.
pub(crate) mod state {
    /// A packet went out (LAN → WAN).
    pub(crate) const SEEN_OUT: u8 = 0x01;
    /// A packet came in (WAN → LAN): the session is replied.
    pub(crate) const SEEN_IN: u8 = 0x02;
    /// FIN seen from the LAN side.
    pub(crate) const FIN_OUT: u8 = 0x04;
    /// FIN seen from the WAN side.
    pub(crate) const FIN_IN: u8 = 0x08;
    /// The last segment seen was a RST (RFC 7857 §2.1: keep the session 4 minutes).
    pub(crate) const RST: u8 = 0x10;
    /// A SYN was seen from the LAN side.
    pub(crate) const SYN_OUT: u8 = 0x20;
    /// A SYN was seen from the WAN side.
    pub(crate) const SYN_IN: u8 = 0x40;
    /// Bookkeeping, not state: the session is filed in the established wheel.
    pub(crate) const IN_ESTABLISHED_WHEEL: u8 = 0x80;
}

/// A session, 64 bytes. Fields are packed by hand to keep the table within the memory bar.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    pub(crate) lan_ip: u32,
    pub(crate) remote_ip: u32,
    pub(crate) lan_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) ext_port: u16,
    /// Index of the public address in the pool.
    pub(crate) ext_idx: u16,
    pub(crate) slot: u16,
    pub(crate) proto: u8,
    pub(crate) flags: u8,
    pub(crate) mapping: u32,
    pub(crate) last_seen: u64,
    pub(crate) wheel_prev: u32,
    pub(crate) wheel_next: u32,
    pub(crate) map_prev: u32,
    pub(crate) map_next: u32,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
}

impl Session {
    /// Which wheel holds it: 0 evictable, 1 established.
    #[inline]
    pub(crate) fn wheel(&self) -> u8 {
        u8::from(self.flags & state::IN_ESTABLISHED_WHEEL != 0)
    }

    pub(crate) fn proto(&self) -> Proto {
        match self.proto {
            0 => Proto::Tcp,
            1 => Proto::Udp,
            _ => Proto::Icmp,
        }
    }

    /// Established: replied, and for TCP not closing nor reset. Everything else is evicted first.
    pub(crate) fn is_established(&self) -> bool {
        let both = state::SEEN_OUT | state::SEEN_IN;
        if self.flags & both != both {
            return false;
        }
        if self.proto == Proto::Tcp as u8 {
            let fins = state::FIN_OUT | state::FIN_IN;
            return self.flags & state::RST == 0 && self.flags & fins != fins;
        }
        true
    }

    /// Applies the TCP flags of a segment seen from `side` (RFC 7857 §2.1, RFC 6146 §3.5.2).
    pub(crate) fn track_tcp(&mut self, side: Side, tcp_flags: u8) {
        use natpass_wire::tcp::flags::{FIN, RST, SYN};
        if tcp_flags & RST != 0 {
            self.flags |= state::RST;
            return;
        }
        // Any other segment after a RST means the connection lives on (RFC 7857 §2.1).
        self.flags &= !state::RST;
        let (syn, fin) = match side {
            Side::Lan => (state::SYN_OUT, state::FIN_OUT),
            Side::Wan => (state::SYN_IN, state::FIN_IN),
        };
        if tcp_flags & SYN != 0 {
            self.flags |= syn;
            // A new SYN reopens a closed 4-tuple.
            self.flags &= !(state::FIN_OUT | state::FIN_IN);
        }
        if tcp_flags & FIN != 0 {
            self.flags |= fin;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_is_64_bytes() {
        // The memory bar (≤ 128 bytes per session, indexes and mapping included) rests on it.
        assert_eq!(core::mem::size_of::<Session>(), 64);
    }
}
