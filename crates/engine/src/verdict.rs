//! What the engine decides for each packet, and why it drops one.

/// The side of the router a packet arrives on or leaves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The inside network, behind the NAT.
    Lan,
    /// The outside network, the public side.
    Wan,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            Self::Lan => Self::Wan,
            Self::Wan => Self::Lan,
        }
    }
}

/// The outcome of [`crate::Engine::process`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The packet was rewritten in place; send its first `total length` bytes out of `Side`.
    Forward(Side),
    /// The packet was taken over by the engine: held (an out-of-order fragment) or split into
    /// fragments for the egress MTU. What results comes out of `poll_transmit`.
    Consumed,
    /// The packet must not be sent. The reason was counted.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*) => {
        /// Why a packet was dropped. Every reason has a counter in [`crate::Stats`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DropReason { $( $(#[doc = $doc])* $variant, )* }

        impl DropReason {
            /// Every reason, in declaration order (the order of the counters).
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// The number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// A short stable name, used in metrics and summaries.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than its headers, or a length field points past the packet.
    Malformed => "malformed",
    /// Not IPv4, and IPv6 is not configured (or neither IPv4 nor IPv6).
    NotIpv4 => "not_ipv4",
    /// An IPv6 Routing header of type 0 (RFC 5095: deprecated, dropped).
    Ipv6RoutingHeader0 => "ipv6_routing_header_0",
    /// The IPv4 header checksum does not verify (RFC 1812 §5.2.2).
    BadIpChecksum => "bad_ip_checksum",
    /// An ICMP message whose checksum does not verify (RFC 5508 REQ-3).
    BadIcmpChecksum => "bad_icmp_checksum",
    /// TTL would reach zero; a Time Exceeded was queued when allowed (RFC 1812 §5.3.1).
    TtlExceeded => "ttl_exceeded",
    /// DF set and larger than the egress MTU; Fragmentation Needed was queued (RFC 1191).
    FragmentationNeeded => "fragmentation_needed",
    /// From the WAN with a source that is on the LAN or ours (BCP 38).
    WanSpoofedSource => "wan_spoofed_source",
    /// A martian address: 0/8, 127/8, 169.254/16, multicast or reserved as source, or
    /// broadcast/multicast as destination (RFC 1812 §5.3.7).
    Martian => "martian",
    /// From the LAN with a source outside the LAN networks.
    LanSpoofedSource => "lan_spoofed_source",
    /// From the WAN to an address that is not one of the public addresses.
    NotOurAddress => "not_our_address",
    /// Inbound to a port with no mapping (unsolicited).
    NoMapping => "no_mapping",
    /// A mapping exists but the filtering policy refuses this remote (RFC 4787 §5).
    Filtered => "filtered",
    /// An ICMP error whose embedded packet matches no session (RFC 5508 REQ-4: silent drop).
    IcmpErrorNoSession => "icmp_error_no_session",
    /// An ICMP type natpass does not translate.
    IcmpUnsupported => "icmp_unsupported",
    /// A protocol natpass does not translate (and no passthrough module takes).
    UnsupportedProtocol => "unsupported_protocol",
    /// A TCP segment that cannot open a session (RFC 7857 §2.1: only SYN opens one inbound).
    TcpNoSyn => "tcp_no_syn",
    /// No free public port for a new mapping.
    PortsExhausted => "ports_exhausted",
    /// The LAN host reached its session limit (RFC 6888 REQ-4).
    HostSessionLimit => "host_session_limit",
    /// The session table is full and nothing could be evicted.
    SessionTableFull => "session_table_full",
    /// A fragment whose first fragment never arrived in time or was refused, or beyond the
    /// hold limits.
    FragmentDropped => "fragment_dropped",
    /// A fragment overlapping bytes already seen of its datagram, in either order, or past its
    /// end: the whole datagram is dropped (RFC 1858 §3.2, RFC 3128, as RFC 5722 for IPv6).
    FragmentOverlap => "fragment_overlap",
    /// A first fragment too short to hold the whole transport header (RFC 1858 §3.1): the
    /// whole datagram is dropped.
    TinyFragment => "tiny_fragment",
    /// An IPv4 option whose length is below 2 or runs past the header (RFC 1812 §5.2.2).
    IpOptionMalformed => "ip_option_malformed",
    /// A loose or strict source route option (LSRR, SSRR), dropped by default
    /// (RFC 7126 §4.3, §4.4): it would let the sender choose the path into the LAN.
    IpSourceRoute => "ip_source_route",
    /// A UDP length field that disagrees with the IP payload (RFC 768), or below 8.
    UdpLengthMismatch => "udp_length_mismatch",
    /// A TCP data offset below 5 or past the end of the segment (RFC 793 §3.1).
    TcpHeaderMalformed => "tcp_header_malformed",
    /// A TCP segment whose sequence or acknowledgment number lies outside its connection's
    /// window (RFC 9293 §3.10.7.4, RFC 5961): a blind RST, SYN or data injection.
    TcpOutOfWindow => "tcp_out_of_window",
    /// Addressed to the router itself on a port it does not serve.
    ForRouter => "for_router",
    /// IPsec passthrough is disabled: IKE (UDP 500), NAT-T (UDP 4500), ESP and AH are blocked.
    IpsecDisabled => "ipsec_disabled",
    /// PPTP passthrough is disabled: TCP 1723 and GRE are blocked.
    PptpDisabled => "pptp_disabled",
    /// L2TP passthrough is disabled: UDP 1701 is blocked.
    L2tpDisabled => "l2tp_disabled",
    /// AH cannot survive address translation (RFC 3715 §2.1 a); refused with ICMP 3/13.
    AhRefused => "ah_refused",
    /// Inbound ESP from a host no LAN client sent ESP to.
    EspNoServer => "esp_no_server",
    /// Inbound ESP with an SPI bound to no client, and no client waiting for one.
    EspUnknownSpi => "esp_unknown_spi",
    /// A client's new ESP SA to a server while another client's new SA to that server waits
    /// for its first inbound packet; refused with ICMP 3/13 until it binds or times out.
    EspServerBusy => "esp_server_busy",
    /// Inbound IKE on port 500 whose SPIs match no client while several clients talk to that
    /// server: it cannot be delivered safely.
    IkeAmbiguous => "ike_ambiguous",
    /// A PPTP control segment beyond a gap in the stream: its Call IDs cannot be found, so it
    /// waits for the sender's retransmission.
    PptpOutOfOrder => "pptp_out_of_order",
    /// Enhanced GRE whose Call ID belongs to no PPTP call through natpass.
    GreUnknownCallId => "gre_unknown_call_id",
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A packet the engine produced itself (ICMP errors, released or split fragments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub side: Side,
    /// The IPv4 packet.
    pub packet: Vec<u8>,
}
