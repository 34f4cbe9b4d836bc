//! Diagnosis: why a VPN tunnel through natpass does not come up, or stops carrying data, told
//! from the packets natpass itself sees, with what to do about it.
//!
//! Evidence is gathered where it is seen, each protocol in its own module: IKE messages
//! (RFC 7296 §1.2, §2.1; RFC 2408 §3.1) and NAT-T flows with their keepalives (RFC 3948 §2.2,
//! §2.3, §4) in `passthrough::ike`, raw ESP SAs (RFC 4303) in `passthrough::esp`, PPTP calls,
//! their result codes and their GRE (RFC 2637 §2.8, §2.13, §4.1) in `passthrough::pptp`, L2TP
//! tunnel requests (RFC 2661 §5.1, §5.8) in `passthrough::l2tp`; ICMP Fragmentation Needed
//! about a tunnel's packets (RFC 1191, RFC 4459) and server packets for a NAT-T mapping that is
//! gone in the packet path; refusals by a passthrough switch that is off in the dispatch. They
//! report [`Observation`]s; this module judges.
//!
//! It keeps the evidence it needs per client and server in bounded tables, turns it into a
//! [`Finding`] when it is enough, and marks a finding cleared when later packets contradict it
//! (the server answered after all). When the evidence is not enough it makes no finding: a
//! client's view ([`crate::Engine::findings_for`]) lists such cases as
//! [`Status::NotEnoughEvidence`], with what was seen and what is missing. A slow answer is an
//! answer: an IKE request is "never answered" only after [`IKE_TRIES`] tries over
//! [`IKE_WAIT`], or [`IKE_WAIT_ALONE`] without an answer; an error answer (INVALID_KE_PAYLOAD,
//! COOKIE, RFC 7296 §1.2, §2.6) is an answer too.
//!
//! Sans-IO like the rest of the engine: every call takes `now`; conclusions that need only time
//! to pass come from [`Diagnosis::poll_timeout`] and [`Diagnosis::handle_timeout`]. Memory is
//! bounded: at most [`WATCHES_MAX`] pieces of evidence in progress and [`FINDINGS_MAX`]
//! findings ([`FINDINGS_PER_CLIENT`] per client), the oldest dropped first; a finding goes
//! [`FINDING_TTL`] after its last evidence.

use core::time::Duration;
use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::output::Output;
use crate::passthrough::{Protocol, TunnelIds};
use crate::time::Instant;
use crate::verdict::DropReason;
use crate::{Event, passthrough};

/// IKE tries (the first send and its retransmissions) that, with [`IKE_WAIT`], show a request
/// is not answered.
pub const IKE_TRIES: u32 = 3;
/// How long [`IKE_TRIES`] tries must have waited (strongSwan's third try leaves after 11 s).
pub const IKE_WAIT: Duration = Duration::from_secs(10);
/// How long one IKE request may wait, however often it was sent, before it is unanswered.
pub const IKE_WAIT_ALONE: Duration = Duration::from_secs(30);
/// How long one unanswered IKE request waits before a client's view lists it as "not enough
/// evidence" (a retransmission lists it at once).
const NOTABLE_WAIT: Duration = Duration::from_secs(3);
/// How long a client must have sent ESP or GRE with nothing back before it is one way.
pub const SILENCE: Duration = Duration::from_secs(10);
/// The fewest ESP packets sent in that time for a one-way finding.
pub const ESP_MIN_PACKETS: u64 = 5;
/// The fewest GRE packets sent in that time for a one-way finding (PPP's LCP retries every 3 s).
pub const GRE_MIN_PACKETS: u64 = 3;
/// Refusals of a client's new raw ESP SA (`esp_server_busy`), or [`BUSY_SPAN`] of them,
/// before it is a finding: one refusal for a round trip is how sharing a server works.
pub const BUSY_REFUSALS: u32 = 3;
/// See [`BUSY_REFUSALS`].
pub const BUSY_SPAN: Duration = Duration::from_secs(2);
/// GRE packets of a call natpass never saw set up before they are a finding.
pub const ORPHAN_GRE_PACKETS: u64 = 3;
/// L2TP tunnel requests (SCCRQ and its retransmissions, RFC 2661 §5.8: 1, 2, 4 s) over
/// [`L2TP_WAIT`] that show it is not answered.
pub const L2TP_TRIES: u32 = 3;
/// See [`L2TP_TRIES`].
pub const L2TP_WAIT: Duration = Duration::from_secs(5);
/// How long one SCCRQ may wait, however often it was sent, before it is unanswered.
pub const L2TP_WAIT_ALONE: Duration = Duration::from_secs(30);
/// How often at most a module reports on one SA, call or flow carrying data.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The most pieces of evidence in progress (IKE exchanges, refusals, L2TP requests).
pub const WATCHES_MAX: usize = 4096;
/// The most findings kept.
pub const FINDINGS_MAX: usize = 256;
/// The most findings kept per LAN client.
pub const FINDINGS_PER_CLIENT: usize = 16;
/// How long evidence in progress is kept with nothing new.
pub const WATCH_IDLE: Duration = Duration::from_secs(600);
/// How long a finding is kept after its last evidence.
pub const FINDING_TTL: Duration = Duration::from_secs(3600);

macro_rules! finding_kinds {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, $title:literal, )*) => {
        /// What is wrong with a tunnel. Every kind has a counter in [`crate::Stats`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum FindingKind { $( $(#[doc = $doc])* $variant, )* }

        impl FindingKind {
            /// Every kind, in declaration order (the order of the counters).
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$variant,)*];
            /// The number of kinds.
            pub const COUNT: usize = Self::ALL.len();

            /// A short stable name, used in metrics and the API.
            pub fn name(self) -> &'static str {
                match self { $(FindingKind::$variant => $name,)* }
            }

            /// A title for people.
            pub fn title(self) -> &'static str {
                match self { $(FindingKind::$variant => $title,)* }
            }
        }
    };
}

finding_kinds! {
    /// The client sent IKE_SA_INIT or Main/Aggressive Mode message 1 and nothing came back.
    IkeNeverAnswered => "ike_never_answered", "IKE never answered",
    /// A large IKE message left as IP fragments and was never answered, while the smaller
    /// messages of the same exchange were.
    IkeLargeMessageLost => "ike_large_message_lost", "Large IKE message lost",
    /// The client sends ESP (raw or in UDP 4500) and none comes back.
    EspOneWay => "esp_one_way", "ESP one way",
    /// A NAT-T flow went quiet, its mapping expired, and the server's packets then arrived for
    /// a public port that is gone.
    NatTMappingLost => "nat_t_mapping_lost", "NAT-T mapping lost",
    /// natpass keeps refusing a client's new raw ESP SA while another client's waits for its
    /// first answer from the same server.
    EspServerBusy => "esp_server_busy", "Raw ESP waits for another client",
    /// A PPTP call is up but its GRE only leaves: none comes back.
    GreOneWay => "gre_one_way", "PPTP GRE one way",
    /// The PPTP server refused or ended a call, with a result code.
    PptpCallFailed => "pptp_call_failed", "PPTP call refused or ended",
    /// GRE of a PPTP call whose control connection natpass never saw.
    GreWithoutControl => "gre_without_control", "PPTP GRE without its control connection",
    /// A second client's L2TP tunnel to a server goes unanswered or refused while another
    /// client's, from the same public address, is up.
    L2tpOneClientPerAddress => "l2tp_one_client_per_address", "L2TP server takes one client per address",
    /// A tunnel's packets are too big for the path.
    PathMtu => "path_mtu", "Tunnel packets too big for the path",
    /// Refused because that protocol's passthrough is switched off.
    PassthroughDisabled => "passthrough_disabled", "VPN passthrough switched off",
}

impl FindingKind {
    /// The kind with short name `name` (see [`FindingKind::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl core::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a finding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The evidence shows it.
    Found,
    /// It was found, then later packets showed it no longer holds (the server answered after
    /// all, the switch went on).
    Cleared {
        /// When.
        at: Instant,
    },
    /// Something looks wrong, but what natpass saw is not enough to say what: no cause is
    /// given. Only in a client's view ([`crate::Engine::findings_for`]).
    NotEnoughEvidence,
}

/// UDP ports of a tunnel that rides UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// The client's port.
    pub client: u16,
    /// The public port natpass gave it (0 when not known).
    pub public: u16,
    /// The server's port.
    pub server: u16,
}

/// What carries a tunnel's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// ESP as IP protocol 50.
    Esp,
    /// ESP in UDP 4500 (NAT-T, RFC 3948).
    EspInUdp,
    /// Enhanced GRE, IP protocol 47 (PPTP).
    Gre,
}

impl Carrier {
    fn name(self) -> &'static str {
        match self {
            Self::Esp => "ESP",
            Self::EspInUdp => "ESP in UDP",
            Self::Gre => "GRE",
        }
    }
}

/// The PPTP control message that carried a result code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PptpMessage {
    /// Outgoing-Call-Reply (RFC 2637 §2.8): the server's answer to the client's call.
    OutgoingCallReply,
    /// Call-Disconnect-Notify (RFC 2637 §2.13): the server ended the call.
    CallDisconnectNotify,
}

/// The tunnel or flow a finding concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The passthrough protocol (its switch).
    pub protocol: Protocol,
    /// The LAN client.
    pub client: Ipv4Addr,
    /// The server on the WAN.
    pub server: Ipv4Addr,
    /// The public address the client's packets leave from, when it has one.
    pub public: Option<Ipv4Addr>,
    /// SPIs, Call IDs or tunnel IDs, when known.
    pub ids: Option<TunnelIds>,
    /// UDP ports, for a tunnel that rides UDP.
    pub ports: Option<Ports>,
}

/// What a kind of finding rests on besides packet counts and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detail {
    /// An IKE request without an answer.
    Ike {
        /// IKE's major version: 1 or 2.
        version: u8,
        /// The request's exchange type (RFC 7296 §3.1, RFC 2408 §3.1).
        exchange: u8,
        /// The first message of its exchange (no responder SPI yet).
        initial: bool,
        /// Times it was sent.
        tries: u32,
        /// Its length in bytes (the IKE header's length field).
        len: u32,
        /// It left as IP fragments.
        fragmented: bool,
        /// Earlier messages of the same IKE SA that were answered.
        answered: u32,
        /// The largest of them, in bytes.
        largest_answered: u32,
    },
    /// Data that only leaves.
    OneWay {
        /// What carries it.
        carrier: Carrier,
        /// The last data packet from the server, if one ever came.
        last_in: Option<Instant>,
        /// NAT-T: the last IKE message from the server on the same UDP flow.
        last_ike_in: Option<Instant>,
    },
    /// A NAT-T mapping that expired under its tunnel.
    NatT {
        /// The client's last packet on the flow.
        last_out: Instant,
        /// NAT-T keepalives the client sent on it.
        keepalives: u64,
        /// The last keepalive.
        last_keepalive: Option<Instant>,
        /// The time between its last two keepalives.
        keepalive_every: Option<Duration>,
        /// When the mapping expired.
        expired: Instant,
        /// The UDP mapping timer.
        udp_timeout: Duration,
    },
    /// A raw ESP SA refused while another client's waits.
    Busy {
        /// The client natpass waits on.
        waiting_client: Ipv4Addr,
        /// When that client's SA started waiting.
        waiting_since: Instant,
        /// When the refused client is let in at the latest.
        let_in_by: Instant,
    },
    /// A PPTP result code.
    Call {
        /// The message that carried it.
        message: PptpMessage,
        /// Result Code.
        result: u8,
        /// Error Code (meaningful with result General Error).
        error: u8,
        /// Cause Code (Call-Disconnect-Notify) or Cause Code (Outgoing-Call-Reply).
        cause: u16,
    },
    /// GRE natpass cannot place.
    Orphan {
        /// The Call ID the client's GRE carries.
        call_id: u16,
    },
    /// An L2TP request from a second client.
    L2tp {
        /// The client whose tunnel to the server, from the same public address, is up.
        other_client: Ipv4Addr,
        /// The server refused it (StopCCN) rather than not answering.
        refused: bool,
        /// SCCRQs sent.
        tries: u32,
        /// Public addresses in natpass's pool.
        pool: usize,
    },
    /// A packet too big for the path.
    Mtu {
        /// The MTU the path allows.
        mtu: u16,
        /// The size of the packet that did not fit.
        packet_len: u16,
        /// Who said so: a router on the way, or natpass.
        reporter: Ipv4Addr,
        /// natpass's own WAN MTU refused it.
        by_natpass: bool,
    },
    /// A switch that is off.
    Disabled {
        /// The drop reason counted.
        reason: DropReason,
    },
}

/// The packets that prove a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Packets from the client that count.
    pub packets_out: u64,
    /// Packets from the server that count.
    pub packets_in: u64,
    /// The first of them.
    pub first: Instant,
    /// The last of them.
    pub last: Instant,
    /// What else the finding rests on.
    pub detail: Detail,
}

/// One thing natpass found wrong with a tunnel, the packets that show it, and what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// Where it stands.
    pub status: Status,
    /// When natpass concluded it (for [`Status::NotEnoughEvidence`], when asked).
    pub since: Instant,
    /// The tunnel or flow.
    pub subject: Subject,
    /// The packets that show it.
    pub evidence: Evidence,
}

/// One key per finding: a kind, a client and server, and what tells apart several of one kind
/// between them (an SPI, a Call ID, a port; 0 when one is enough).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FindingKey {
    kind: FindingKind,
    client: Ipv4Addr,
    server: Ipv4Addr,
    tag: u64,
}

impl Finding {
    fn key(&self) -> FindingKey {
        let s = &self.subject;
        let tag = match (self.kind, s.ids, s.ports) {
            (FindingKind::EspOneWay, _, Some(p)) => u64::from(p.public),
            (FindingKind::EspOneWay, Some(TunnelIds::Esp { spi_out, .. }), None) => u64::from(spi_out),
            (FindingKind::NatTMappingLost, _, Some(p)) => u64::from(p.public),
            (FindingKind::GreOneWay | FindingKind::PptpCallFailed, Some(TunnelIds::Pptp { public_call_id, .. }), _) => {
                u64::from(public_call_id)
            }
            (FindingKind::PathMtu | FindingKind::PassthroughDisabled, ..) => s.protocol as u64,
            _ => 0,
        };
        FindingKey { kind: self.kind, client: s.client, server: s.server, tag }
    }
}

/// A server as seen from one public address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ServerAt {
    public: Ipv4Addr,
    server: Ipv4Addr,
}

/// What a server sent that natpass could not give to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Stray {
    /// IKE on port 500 with unknown SPIs while several clients talk to the server.
    Ike,
    /// Raw ESP with an SPI bound to no client (`esp_unknown_spi`).
    Esp,
    /// GRE with a Call ID no call has (`gre_unknown_call_id`).
    Gre,
}

/// The fields of an IKE header the diagnosis reads (RFC 7296 §3.1, RFC 2408 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IkeHeader {
    pub(crate) spi_i: u64,
    pub(crate) spi_r: u64,
    pub(crate) version: u8,
    pub(crate) exchange: u8,
    pub(crate) msg_id: u32,
    /// IKEv2's Response flag.
    pub(crate) response: bool,
    /// The length field: the whole message.
    pub(crate) len: u32,
}

/// An IKE message passing natpass, on UDP 500 or behind the non-ESP marker on 4500.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IkeSeen {
    pub(crate) at: ServerAtPublic,
    /// The client: the sender, or the one natpass delivered a server's message to (`None`:
    /// natpass could not tell whose it is).
    pub(crate) client: Option<Ipv4Addr>,
    pub(crate) from_client: bool,
    pub(crate) ports: Ports,
    pub(crate) header: IkeHeader,
    /// It left as IP fragments (or would, past natpass's WAN MTU).
    pub(crate) fragmented: bool,
}

/// A server and the public address between it and a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerAtPublic {
    pub(crate) public: Ipv4Addr,
    pub(crate) server: Ipv4Addr,
}

/// What a module knows of an SA, call or flow that carries data, reported at most every
/// [`REPORT_EVERY`] while the client sends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataReport {
    pub(crate) carrier: Carrier,
    pub(crate) subject: Subject,
    /// The first data packet from the client.
    pub(crate) first_out: Instant,
    /// Data packets from the client.
    pub(crate) packets_out: u64,
    /// Data packets from the server.
    pub(crate) packets_in: u64,
    pub(crate) last_in: Option<Instant>,
    pub(crate) last_ike_in: Option<Instant>,
}

/// A NAT-T flow whose mapping expired, and a server packet that arrived for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NatTGone {
    pub(crate) subject: Subject,
    pub(crate) last_out: Instant,
    pub(crate) keepalives: u64,
    pub(crate) last_keepalive: Option<Instant>,
    pub(crate) keepalive_every: Option<Duration>,
    pub(crate) expired: Instant,
    pub(crate) udp_timeout: Duration,
}

/// A client's new raw ESP SA refused while another's waits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EspRefused {
    pub(crate) subject: Subject,
    pub(crate) waiting_client: Ipv4Addr,
    pub(crate) waiting_since: Instant,
    pub(crate) let_in_by: Instant,
}

/// GRE with a Call ID no call through natpass has.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GreUnknown {
    pub(crate) from_client: bool,
    /// The client (from the LAN: the sender).
    pub(crate) client: Option<Ipv4Addr>,
    pub(crate) at: ServerAtPublic,
    pub(crate) call_id: u16,
    /// natpass carries a PPTP control connection between that client (from the WAN: any
    /// client) and that server.
    pub(crate) control_seen: bool,
}

/// A PPTP result code from the server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallResult {
    pub(crate) subject: Subject,
    pub(crate) message: PptpMessage,
    pub(crate) result: u8,
    pub(crate) error: u8,
    pub(crate) cause: u16,
}

/// An L2TP tunnel request (SCCRQ) from a client while another client's tunnel to the same
/// server leaves from the same public address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct L2tpShared {
    pub(crate) subject: Subject,
    pub(crate) other_client: Ipv4Addr,
    /// The other client's tunnel is up (the server answered it).
    pub(crate) other_up: bool,
    pub(crate) tries: u32,
    pub(crate) first: Instant,
    pub(crate) pool: usize,
}

/// ICMP Fragmentation Needed about a tunnel's packet, or natpass's own refusal of one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TooBig {
    pub(crate) subject: Subject,
    pub(crate) mtu: u16,
    pub(crate) packet_len: u16,
    pub(crate) reporter: Ipv4Addr,
    pub(crate) by_natpass: bool,
}

/// Something a module or the packet path saw that may matter to a diagnosis.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Observation {
    Ike(IkeSeen),
    Data(DataReport),
    /// The first data packet from the server on an SA, call or NAT-T flow.
    DataAnswered {
        kind: FindingKind,
        subject: Subject,
    },
    NatTGone(NatTGone),
    EspRefused(EspRefused),
    /// A client's new raw ESP SA to a server was let through.
    EspAccepted {
        client: Ipv4Addr,
        server: Ipv4Addr,
    },
    GreUnknown(GreUnknown),
    /// Raw ESP from a server some client sent ESP to, with an SPI natpass cannot place.
    EspUnplaced {
        public: Ipv4Addr,
        server: Ipv4Addr,
    },
    CallResult(CallResult),
    L2tpRequest(L2tpShared),
    /// The server refused a tunnel request (StopCCN before SCCRP).
    L2tpRefused(L2tpShared),
    /// The server answered a client's tunnel request (SCCRP).
    L2tpAnswered {
        client: Ipv4Addr,
        server: Ipv4Addr,
    },
    TooBig(TooBig),
    /// A packet refused because its protocol's switch is off.
    Disabled {
        protocol: Protocol,
        client: Ipv4Addr,
        server: Ipv4Addr,
        public: Option<Ipv4Addr>,
        reason: DropReason,
    },
}

/// Evidence in progress, by what it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum WatchKey {
    /// IKE from a client to a server.
    Ike { client: Ipv4Addr, server: Ipv4Addr },
    /// A client's raw ESP SAs refused for a server.
    Busy { client: Ipv4Addr, server: Ipv4Addr },
    /// GRE without a call, between a server and a public address.
    Orphan(ServerAt),
    /// A client's L2TP request to a server while another client's tunnel is up.
    L2tp { client: Ipv4Addr, server: Ipv4Addr },
}

/// An IKE request waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct Request {
    header: IkeHeader,
    fragmented: bool,
    tries: u32,
    first: Instant,
    last: Instant,
}

impl Request {
    fn same(&self, h: &IkeHeader) -> bool {
        let a = &self.header;
        (a.spi_i, a.spi_r, a.msg_id, a.exchange, a.len) == (h.spi_i, h.spi_r, h.msg_id, h.exchange, h.len)
    }
}

#[derive(Clone, Copy, Debug)]
struct IkeWatch {
    public: Ipv4Addr,
    ports: Ports,
    pending: Option<Request>,
    /// The IKE SA (its SPIi) whose answered messages are counted.
    sa: u64,
    answered: u32,
    largest_answered: u32,
    /// The last IKE from the server for this client.
    heard: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct BusyWatch {
    refused: EspRefused,
    count: u32,
    first: Instant,
}

#[derive(Clone, Copy, Debug)]
struct OrphanWatch {
    client: Ipv4Addr,
    call_id: u16,
    out: u64,
    inb: u64,
    first: Instant,
    last_in: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
enum WatchData {
    Ike(IkeWatch),
    Busy(BusyWatch),
    Orphan(OrphanWatch),
    L2tp { shared: L2tpShared, last: Instant },
}

#[derive(Clone, Copy, Debug)]
struct Watch {
    data: WatchData,
    /// The last evidence.
    last: Instant,
}

/// What a watch's evidence shows now.
#[derive(Clone, Copy, Debug)]
enum Judgement {
    Found(FindingKind, Subject, Evidence),
    NotEnough(FindingKind, Subject, Evidence),
    Nothing,
}

/// The diagnosis of one engine.
pub(crate) struct Diagnosis {
    watches: HashMap<WatchKey, Watch, FixedState>,
    findings: HashMap<FindingKey, Finding, FixedState>,
    /// The last packet a server sent to a public address that natpass could not give to a
    /// client: the server answers someone, so "never answered" or "one way" would be wrong.
    strays: HashMap<(ServerAt, Stray), Instant, FixedState>,
    /// No watch can mature nor anything expire before this (a lower bound, made exact at each
    /// run of [`Diagnosis::handle_timeout`]).
    wake: Option<Instant>,
    /// The time of the newest observation or timer.
    now: Instant,
}

fn after(t: Instant, d: Duration) -> Instant {
    t + d
}

/// The later of two optional times.
fn latest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The oldest finding among `it`, by its last evidence.
fn oldest<'a>(it: impl Iterator<Item = (&'a FindingKey, &'a Finding)>) -> Option<FindingKey> {
    it.min_by_key(|(_, f)| (f.evidence.last, f.since)).map(|(k, _)| *k)
}

/// A protocol's name for people.
fn label(p: Protocol) -> &'static str {
    match p {
        Protocol::Ipsec => "IPsec",
        Protocol::Pptp => "PPTP",
        Protocol::L2tp => "L2TP",
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 { format!("{s:.1} s") } else { format!("{} s", d.as_secs()) }
}

impl Diagnosis {
    pub(crate) fn new(seed: u64) -> Self {
        let h = |x: u64| FixedState::with_seed(seed ^ x);
        Self {
            watches: HashMap::with_hasher(h(0xd1a0)),
            findings: HashMap::with_hasher(h(0xd1a1)),
            strays: HashMap::with_hasher(h(0xd1a2)),
            wake: None,
            now: Instant::ZERO,
        }
    }

    fn arm(&mut self, at: Instant) {
        self.wake = passthrough::earliest(self.wake, Some(at));
    }

    /// Takes an observation made at `now`; new findings and cleared ones go to `out` as events
    /// and counters.
    pub(crate) fn observe(&mut self, now: Instant, obs: Observation, out: &mut Output) {
        self.now = self.now.max(now);
        match obs {
            Observation::Ike(m) => self.ike(now, &m, out),
            Observation::Data(r) => self.data(now, &r, out),
            Observation::DataAnswered { kind, subject } => {
                let f = blank(kind, subject, now);
                self.clear(now, f.key(), out);
            }
            Observation::NatTGone(g) => {
                self.conclude(now, FindingKind::NatTMappingLost, g.subject, out, |old| Evidence {
                    packets_out: 0,
                    packets_in: old.map_or(0, |o| o.packets_in) + 1,
                    first: old.map_or(now, |o| o.first),
                    last: now,
                    detail: Detail::NatT {
                        last_out: g.last_out,
                        keepalives: g.keepalives,
                        last_keepalive: g.last_keepalive,
                        keepalive_every: g.keepalive_every,
                        expired: g.expired,
                        udp_timeout: g.udp_timeout,
                    },
                })
            }
            Observation::EspRefused(r) => self.busy(now, r, out),
            Observation::EspAccepted { client, server } => {
                self.watches.remove(&WatchKey::Busy { client, server });
                let key = FindingKey { kind: FindingKind::EspServerBusy, client, server, tag: 0 };
                self.clear(now, key, out);
            }
            Observation::GreUnknown(g) => self.gre_unknown(now, &g, out),
            Observation::EspUnplaced { public, server } => self.stray(now, ServerAt { public, server }, Stray::Esp),
            Observation::CallResult(c) => self.call_result(now, &c, out),
            Observation::L2tpRequest(s) => {
                let key = WatchKey::L2tp { client: s.subject.client, server: s.subject.server };
                // The module counts the requests: its report replaces the last.
                *self.watch(now, key, WatchData::L2tp { shared: s, last: now }) =
                    WatchData::L2tp { shared: s, last: now };
                self.arm(after(s.first, L2TP_WAIT_ALONE));
                self.judge_and_apply(now, key, out);
            }
            Observation::L2tpRefused(s) => {
                self.watches.remove(&WatchKey::L2tp { client: s.subject.client, server: s.subject.server });
                if s.other_up {
                    self.conclude(now, FindingKind::L2tpOneClientPerAddress, s.subject, out, |_| {
                        l2tp_evidence(&s, now, true)
                    });
                }
            }
            Observation::L2tpAnswered { client, server } => {
                self.watches.remove(&WatchKey::L2tp { client, server });
                let key = FindingKey { kind: FindingKind::L2tpOneClientPerAddress, client, server, tag: 0 };
                self.clear(now, key, out);
            }
            Observation::TooBig(b) => self.conclude(now, FindingKind::PathMtu, b.subject, out, |old| {
                // The smallest MTU any report gave is the one the tunnel must fit.
                let (mtu, packet_len, reporter, by_natpass) = match old.map(|o| o.detail) {
                    Some(Detail::Mtu { mtu, packet_len, reporter, by_natpass }) if mtu <= b.mtu => {
                        (mtu, packet_len, reporter, by_natpass)
                    }
                    _ => (b.mtu, b.packet_len, b.reporter, b.by_natpass),
                };
                Evidence {
                    packets_out: 0,
                    packets_in: old.map_or(0, |o| o.packets_in) + 1,
                    first: old.map_or(now, |o| o.first),
                    last: now,
                    detail: Detail::Mtu { mtu, packet_len, reporter, by_natpass },
                }
            }),
            Observation::Disabled { protocol, client, server, public, reason } => {
                let subject = Subject { protocol, client, server, public, ids: None, ports: None };
                self.conclude(now, FindingKind::PassthroughDisabled, subject, out, |old| Evidence {
                    packets_out: old.map_or(0, |o| o.packets_out) + 1,
                    packets_in: 0,
                    first: old.map_or(now, |o| o.first),
                    last: now,
                    detail: Detail::Disabled { reason },
                });
            }
        }
    }

    /// A passthrough switch went on: its "switched off" findings are cleared.
    pub(crate) fn switch_on(&mut self, protocol: Protocol, out: &mut Output) {
        let now = self.now;
        let keys: Vec<FindingKey> = self
            .findings
            .iter()
            .filter(|(k, f)| k.kind == FindingKind::PassthroughDisabled && f.subject.protocol == protocol)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.clear(now, k, out);
        }
    }

    // --- IKE ---------------------------------------------------------------------------

    fn ike(&mut self, now: Instant, m: &IkeSeen, out: &mut Output) {
        let at = ServerAt { public: m.at.public, server: m.at.server };
        if !m.from_client {
            let Some(client) = m.client else {
                self.stray(now, at, Stray::Ike);
                return;
            };
            let key = WatchKey::Ike { client, server: m.at.server };
            let Some(Watch { data: WatchData::Ike(w), last }) = self.watches.get_mut(&key) else { return };
            *last = now;
            w.heard = Some(now);
            let answered = w.pending.is_some_and(|p| p.header.spi_i == m.header.spi_i);
            if answered
                && let Some(p) = w.pending.take()
                && w.sa == p.header.spi_i
            {
                w.answered += 1;
                w.largest_answered = w.largest_answered.max(p.header.len);
            }
            // An answer, even an error (INVALID_KE_PAYLOAD, COOKIE), or any IKE from the
            // server to this client: it is reachable.
            for kind in [FindingKind::IkeNeverAnswered, FindingKind::IkeLargeMessageLost] {
                if kind == FindingKind::IkeNeverAnswered || answered {
                    self.clear(now, FindingKey { kind, client, server: m.at.server, tag: 0 }, out);
                }
            }
            return;
        }
        let Some(client) = m.client else { return };
        if m.header.response {
            // The client answering the server's request: the server talks to it.
            return;
        }
        let key = WatchKey::Ike { client, server: m.at.server };
        let fresh = IkeWatch {
            public: m.at.public,
            ports: m.ports,
            pending: None,
            sa: m.header.spi_i,
            answered: 0,
            largest_answered: 0,
            heard: None,
        };
        let w = match self.watch(now, key, WatchData::Ike(fresh)) {
            WatchData::Ike(w) => w,
            _ => return,
        };
        w.public = m.at.public;
        w.ports = m.ports;
        if w.sa != m.header.spi_i {
            w.sa = m.header.spi_i;
            w.answered = 0;
            w.largest_answered = 0;
        }
        match &mut w.pending {
            Some(p) if p.same(&m.header) => {
                p.tries += 1;
                p.last = now;
                p.fragmented |= m.fragmented;
            }
            p => {
                *p = Some(Request { header: m.header, fragmented: m.fragmented, tries: 1, first: now, last: now });
            }
        }
        let first = w.pending.map_or(now, |p| p.first);
        self.arm(after(first, IKE_WAIT_ALONE));
        self.judge_and_apply(now, key, out);
    }

    fn judge_ike(&self, now: Instant, client: Ipv4Addr, server: Ipv4Addr, w: &IkeWatch) -> Judgement {
        let Some(p) = w.pending else { return Judgement::Nothing };
        let waited = now.since(p.first);
        let retried = p.tries >= IKE_TRIES && waited >= IKE_WAIT;
        let heard_any = self.strays.get(&(ServerAt { public: w.public, server }, Stray::Ike)).copied();
        let heard = latest(w.heard, heard_any).is_some_and(|h| h >= p.first);
        let initial = p.header.spi_r == 0;
        let subject = Subject {
            protocol: Protocol::Ipsec,
            client,
            server,
            public: Some(w.public),
            ids: Some(TunnelIds::Ike { spi_i: p.header.spi_i, spi_r: p.header.spi_r }),
            ports: Some(w.ports),
        };
        let evidence = Evidence {
            packets_out: u64::from(p.tries),
            packets_in: 0,
            first: p.first,
            last: p.last,
            detail: Detail::Ike {
                version: p.header.version,
                exchange: p.header.exchange,
                initial,
                tries: p.tries,
                len: p.header.len,
                fragmented: p.fragmented,
                answered: w.answered,
                largest_answered: w.largest_answered,
            },
        };
        if initial {
            if heard {
                // The server sends this client other IKE: it is reachable.
                return Judgement::Nothing;
            }
            // A first message always wants an answer: 30 s without one is enough alone.
            return if retried || waited >= IKE_WAIT_ALONE {
                Judgement::Found(FindingKind::IkeNeverAnswered, subject, evidence)
            } else if p.tries >= 2 || waited >= NOTABLE_WAIT {
                Judgement::NotEnough(FindingKind::IkeNeverAnswered, subject, evidence)
            } else {
                // One request a moment ago: nothing looks wrong yet.
                Judgement::Nothing
            };
        }
        // A later message may want no answer (IKEv1 Quick Mode message 3, Aggressive Mode
        // message 3, Informational): only its retransmissions show the client waits for one.
        if p.tries < 2 {
            return Judgement::Nothing;
        }
        let smaller_answered = w.answered > 0 && w.largest_answered < p.header.len;
        if p.fragmented && smaller_answered && retried {
            Judgement::Found(FindingKind::IkeLargeMessageLost, subject, evidence)
        } else {
            // Unanswered, but not fragmented, or not retried long enough: no cause to give.
            Judgement::NotEnough(FindingKind::IkeLargeMessageLost, subject, evidence)
        }
    }

    // --- data one way --------------------------------------------------------------------

    fn data(&mut self, now: Instant, r: &DataReport, out: &mut Output) {
        let kind = match r.carrier {
            Carrier::Gre => FindingKind::GreOneWay,
            Carrier::Esp | Carrier::EspInUdp => FindingKind::EspOneWay,
        };
        let quiet_since = latest(Some(r.first_out), r.last_in).unwrap_or(r.first_out);
        let min = if kind == FindingKind::GreOneWay { GRE_MIN_PACKETS } else { ESP_MIN_PACKETS };
        let mut one_way = now.since(quiet_since) >= SILENCE && r.packets_out >= min;
        let stray = match r.carrier {
            Carrier::Esp => Some(Stray::Esp),
            Carrier::Gre => Some(Stray::Gre),
            Carrier::EspInUdp => None,
        };
        // The server's packets arrive and natpass cannot place them: nothing is blocked upstream,
        // and a one-way finding made before they came no longer holds.
        let contradicted = match (stray, r.subject.public) {
            (Some(what), Some(public)) => self
                .strays
                .get(&(ServerAt { public, server: r.subject.server }, what))
                .is_some_and(|&t| t >= quiet_since),
            _ => false,
        };
        one_way &= !contradicted;
        let evidence = Evidence {
            packets_out: r.packets_out,
            packets_in: r.packets_in,
            first: r.first_out,
            last: now,
            detail: Detail::OneWay { carrier: r.carrier, last_in: r.last_in, last_ike_in: r.last_ike_in },
        };
        if one_way {
            self.conclude(now, kind, r.subject, out, |_| evidence);
        } else if contradicted || r.last_in.is_some_and(|t| now.since(t) < SILENCE) {
            let f = blank(kind, r.subject, now);
            self.clear(now, f.key(), out);
        }
    }

    // --- raw ESP refused -------------------------------------------------------------------

    fn busy(&mut self, now: Instant, r: EspRefused, out: &mut Output) {
        let key = WatchKey::Busy { client: r.subject.client, server: r.subject.server };
        let fresh = BusyWatch { refused: r, count: 0, first: now };
        if let WatchData::Busy(w) = self.watch(now, key, WatchData::Busy(fresh)) {
            w.refused = r;
            w.count += 1;
        }
        self.judge_and_apply(now, key, out);
    }

    fn judge_busy(now: Instant, w: &BusyWatch) -> Judgement {
        let r = &w.refused;
        let evidence = Evidence {
            packets_out: u64::from(w.count),
            packets_in: 0,
            first: w.first,
            last: now,
            detail: Detail::Busy {
                waiting_client: r.waiting_client,
                waiting_since: r.waiting_since,
                let_in_by: r.let_in_by,
            },
        };
        if w.count >= BUSY_REFUSALS || now.since(w.first) >= BUSY_SPAN {
            Judgement::Found(FindingKind::EspServerBusy, r.subject, evidence)
        } else {
            Judgement::NotEnough(FindingKind::EspServerBusy, r.subject, evidence)
        }
    }

    // --- PPTP ------------------------------------------------------------------------------

    fn gre_unknown(&mut self, now: Instant, g: &GreUnknown, out: &mut Output) {
        let key = WatchKey::Orphan(ServerAt { public: g.at.public, server: g.at.server });
        if g.from_client {
            let Some(client) = g.client else { return };
            if g.control_seen {
                return;
            }
            let fresh = OrphanWatch { client, call_id: g.call_id, out: 0, inb: 0, first: now, last_in: None };
            if let WatchData::Orphan(w) = self.watch(now, key, WatchData::Orphan(fresh)) {
                if w.client != client {
                    *w = fresh;
                }
                w.out += 1;
                w.call_id = g.call_id;
            }
        } else {
            let at = ServerAt { public: g.at.public, server: g.at.server };
            let watched = match self.watches.get_mut(&key) {
                Some(Watch { data: WatchData::Orphan(w), last }) => {
                    w.inb += 1;
                    w.last_in = Some(now);
                    *last = now;
                    true
                }
                _ => false,
            };
            // Only for a server some client talks to: the table stays as small as the LAN's use.
            if watched || g.control_seen {
                self.stray(now, at, Stray::Gre);
            }
            if !watched {
                return;
            }
        }
        self.judge_and_apply(now, key, out);
    }

    /// Notes a packet from the server at `at` that natpass could not give to a client.
    fn stray(&mut self, now: Instant, at: ServerAt, what: Stray) {
        if self.strays.len() < WATCHES_MAX || self.strays.contains_key(&(at, what)) {
            self.strays.insert((at, what), now);
            self.arm(after(now, WATCH_IDLE));
        }
    }

    fn judge_orphan(now: Instant, at: ServerAt, w: &OrphanWatch) -> Judgement {
        let subject = Subject {
            protocol: Protocol::Pptp,
            client: w.client,
            server: at.server,
            public: Some(at.public),
            ids: None,
            ports: None,
        };
        let evidence = Evidence {
            packets_out: w.out,
            packets_in: w.inb,
            first: w.first,
            last: now,
            detail: Detail::Orphan { call_id: w.call_id },
        };
        if w.out >= ORPHAN_GRE_PACKETS {
            Judgement::Found(FindingKind::GreWithoutControl, subject, evidence)
        } else {
            Judgement::NotEnough(FindingKind::GreWithoutControl, subject, evidence)
        }
    }

    fn call_result(&mut self, now: Instant, c: &CallResult, out: &mut Output) {
        let failed = match c.message {
            PptpMessage::OutgoingCallReply => c.result != 1,
            // Result 4 answers the client's own Call-Clear-Request: a normal hang-up.
            PptpMessage::CallDisconnectNotify => c.result != 4,
        };
        if !failed {
            return;
        }
        self.conclude(now, FindingKind::PptpCallFailed, c.subject, out, |old| Evidence {
            packets_out: 0,
            packets_in: old.map_or(0, |o| o.packets_in) + 1,
            first: old.map_or(now, |o| o.first),
            last: now,
            detail: Detail::Call { message: c.message, result: c.result, error: c.error, cause: c.cause },
        });
    }

    // --- watches ---------------------------------------------------------------------------

    /// The watch at `key`, made from `fresh` when there is none (dropping the oldest eighth
    /// of them when the table is full).
    fn watch(&mut self, now: Instant, key: WatchKey, fresh: WatchData) -> &mut WatchData {
        if !self.watches.contains_key(&key) && self.watches.len() >= WATCHES_MAX {
            let mut ages: Vec<(Instant, WatchKey)> = self.watches.iter().map(|(k, w)| (w.last, *k)).collect();
            let n = WATCHES_MAX / 8;
            ages.select_nth_unstable_by_key(n, |a| a.0);
            for (_, k) in &ages[..n] {
                self.watches.remove(k);
            }
        }
        self.arm(after(now, WATCH_IDLE));
        let w = self.watches.entry(key).or_insert(Watch { data: fresh, last: now });
        w.last = now;
        &mut w.data
    }

    fn judge(&self, now: Instant, key: &WatchKey, w: &Watch) -> Judgement {
        match (key, &w.data) {
            (WatchKey::Ike { client, server }, WatchData::Ike(i)) => self.judge_ike(now, *client, *server, i),
            (WatchKey::Busy { .. }, WatchData::Busy(b)) => Self::judge_busy(now, b),
            (WatchKey::Orphan(at), WatchData::Orphan(o)) => Self::judge_orphan(now, *at, o),
            (WatchKey::L2tp { .. }, WatchData::L2tp { shared, last }) => judge_l2tp(now, shared, *last),
            _ => Judgement::Nothing,
        }
    }

    fn judge_and_apply(&mut self, now: Instant, key: WatchKey, out: &mut Output) {
        let Some(w) = self.watches.get(&key) else { return };
        if let Judgement::Found(kind, subject, evidence) = self.judge(now, &key, w) {
            self.conclude(now, kind, subject, out, |_| evidence);
        }
    }

    // --- findings --------------------------------------------------------------------------

    /// Makes or updates the finding of `kind` about `subject`; `evidence` gets the old
    /// evidence, if any, and gives the new.
    fn conclude(
        &mut self,
        now: Instant,
        kind: FindingKind,
        subject: Subject,
        out: &mut Output,
        evidence: impl FnOnce(Option<&Evidence>) -> Evidence,
    ) {
        let key = blank(kind, subject, now).key();
        if let Some(f) = self.findings.get_mut(&key) {
            f.evidence = evidence(Some(&f.evidence));
            f.subject = subject;
            if matches!(f.status, Status::Cleared { .. }) {
                f.status = Status::Found;
                f.since = now;
                let f = *f;
                out.stats.count_finding(kind);
                out.event(Event::Finding(Box::new(f)));
            }
            self.arm(after(now, FINDING_TTL));
            return;
        }
        self.make_room(subject.client);
        let f = Finding { kind, status: Status::Found, since: now, subject, evidence: evidence(None) };
        self.findings.insert(key, f);
        self.arm(after(now, FINDING_TTL));
        out.stats.count_finding(kind);
        out.event(Event::Finding(Box::new(f)));
    }

    /// Drops the oldest findings until one more fits, for `client` and overall.
    fn make_room(&mut self, client: Ipv4Addr) {
        if self.findings.values().filter(|f| f.subject.client == client).count() >= FINDINGS_PER_CLIENT
            && let Some(k) = oldest(self.findings.iter().filter(|(_, f)| f.subject.client == client))
        {
            self.findings.remove(&k);
        }
        if self.findings.len() >= FINDINGS_MAX
            && let Some(k) = oldest(self.findings.iter())
        {
            self.findings.remove(&k);
        }
    }

    fn clear(&mut self, now: Instant, key: FindingKey, out: &mut Output) {
        if let Some(f) = self.findings.get_mut(&key)
            && f.status == Status::Found
        {
            f.status = Status::Cleared { at: now };
            out.event(Event::FindingCleared(Box::new(*f)));
        }
    }

    // --- timers and views ------------------------------------------------------------------

    /// When [`Diagnosis::handle_timeout`] has work, if ever.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    /// Concludes what time alone proves, and forgets old evidence and findings.
    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut Output) {
        self.now = self.now.max(now);
        let keys: Vec<WatchKey> = self.watches.keys().copied().collect();
        for k in keys {
            self.judge_and_apply(now, k, out);
        }
        self.watches.retain(|_, w| now.since(w.last) < WATCH_IDLE);
        self.strays.retain(|_, t| now.since(*t) < WATCH_IDLE);
        self.findings.retain(|_, f| {
            let last = match f.status {
                Status::Cleared { at } => at.max(f.evidence.last),
                _ => f.evidence.last,
            };
            now.since(last) < FINDING_TTL
        });
        let mut wake: Option<Instant> = None;
        for w in self.watches.values() {
            wake = passthrough::earliest(wake, Some(after(w.last, WATCH_IDLE)));
            let matures = match &w.data {
                WatchData::Ike(i) => {
                    i.pending.map(|p| after(p.first, if p.tries >= IKE_TRIES { IKE_WAIT } else { IKE_WAIT_ALONE }))
                }
                WatchData::L2tp { shared, .. } => Some(after(shared.first, L2TP_WAIT_ALONE)),
                _ => None,
            };
            // Only what has not matured yet needs waking for.
            wake = passthrough::earliest(wake, matures.filter(|&t| t > now));
        }
        for t in self.strays.values() {
            wake = passthrough::earliest(wake, Some(after(*t, WATCH_IDLE)));
        }
        for f in self.findings.values() {
            wake = passthrough::earliest(wake, Some(after(f.evidence.last, FINDING_TTL)));
        }
        self.wake = wake;
    }

    /// Every finding kept (found and cleared) and not past its time at `now`, newest first.
    pub(crate) fn findings(&self, now: Instant) -> Vec<Finding> {
        let mut v: Vec<Finding> =
            self.findings.values().filter(|f| now.since(f.evidence.last) < FINDING_TTL).copied().collect();
        v.sort_by(|a, b| b.since.cmp(&a.since).then(a.kind.cmp(&b.kind)));
        v
    }

    /// `client`'s findings, newest first, then what looks wrong without enough evidence yet.
    pub(crate) fn findings_for(&self, now: Instant, client: Ipv4Addr) -> Vec<Finding> {
        let mut v: Vec<Finding> = self.findings(now).into_iter().filter(|f| f.subject.client == client).collect();
        let mut open: Vec<Finding> = Vec::new();
        for (k, w) in &self.watches {
            let mine = match k {
                WatchKey::Ike { client: c, .. }
                | WatchKey::Busy { client: c, .. }
                | WatchKey::L2tp { client: c, .. } => *c == client,
                WatchKey::Orphan(_) => matches!(&w.data, WatchData::Orphan(o) if o.client == client),
            };
            if !mine {
                continue;
            }
            if let Judgement::NotEnough(kind, subject, evidence) = self.judge(now, k, w) {
                let found =
                    v.iter().any(|f| f.kind == kind && f.subject.server == subject.server && f.status == Status::Found);
                if !found {
                    open.push(Finding { kind, status: Status::NotEnoughEvidence, since: now, subject, evidence });
                }
            }
        }
        open.sort_by_key(|a| (a.kind, a.subject.server));
        v.extend(open);
        v
    }

    /// Watches and findings kept.
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.watches.len(), self.findings.len())
    }
}

fn l2tp_evidence(s: &L2tpShared, now: Instant, refused: bool) -> Evidence {
    Evidence {
        packets_out: u64::from(s.tries),
        packets_in: u64::from(refused),
        first: s.first,
        last: now,
        detail: Detail::L2tp { other_client: s.other_client, refused, tries: s.tries, pool: s.pool },
    }
}

fn judge_l2tp(now: Instant, s: &L2tpShared, last: Instant) -> Judgement {
    if !s.other_up {
        return Judgement::Nothing;
    }
    let waited = now.since(s.first);
    let evidence = l2tp_evidence(s, last, false);
    if (s.tries >= L2TP_TRIES && waited >= L2TP_WAIT) || waited >= L2TP_WAIT_ALONE {
        Judgement::Found(FindingKind::L2tpOneClientPerAddress, s.subject, evidence)
    } else {
        Judgement::NotEnough(FindingKind::L2tpOneClientPerAddress, s.subject, evidence)
    }
}

/// A finding of `kind` about `subject` with no evidence, for its key.
fn blank(kind: FindingKind, subject: Subject, now: Instant) -> Finding {
    Finding {
        kind,
        status: Status::Found,
        since: now,
        subject,
        evidence: Evidence {
            packets_out: 0,
            packets_in: 0,
            first: now,
            last: now,
            detail: Detail::Disabled { reason: DropReason::Malformed },
        },
    }
}

// --- words for people ----------------------------------------------------------------------

/// The name of an IKE exchange (RFC 7296 §3.1, RFC 2408 §3.1, RFC 2409 §5).
fn exchange_name(version: u8, exchange: u8, initial: bool) -> &'static str {
    use natpass_wire::ike::exchange as x;
    match (version, exchange, initial) {
        (2, x::IKE_SA_INIT, _) => "IKE_SA_INIT",
        (2, x::IKE_AUTH, _) => "IKE_AUTH",
        (2, x::CREATE_CHILD_SA, _) => "CREATE_CHILD_SA",
        (2, x::INFORMATIONAL, _) => "INFORMATIONAL",
        (1, x::V1_MAIN, true) => "Main Mode message 1",
        (1, x::V1_MAIN, false) => "a Main Mode message",
        (1, x::V1_AGGRESSIVE, true) => "Aggressive Mode message 1",
        (1, x::V1_AGGRESSIVE, false) => "an Aggressive Mode message",
        (1, x::V1_QUICK, _) => "a Quick Mode message",
        (1, x::V1_INFORMATIONAL, _) => "an Informational message",
        _ => "an IKE message",
    }
}

/// The meaning of an Outgoing-Call-Reply Result Code (RFC 2637 §2.8).
fn ocrp_result(code: u8) -> &'static str {
    match code {
        1 => "Connected",
        2 => "General Error",
        3 => "No Carrier",
        4 => "Busy",
        5 => "No Dial Tone",
        6 => "Time-out",
        7 => "Do Not Accept",
        _ => "unknown code",
    }
}

/// The meaning of a Call-Disconnect-Notify Result Code (RFC 2637 §2.13).
fn cdn_result(code: u8) -> &'static str {
    match code {
        1 => "Lost Carrier",
        2 => "General Error",
        3 => "Admin Shutdown",
        4 => "Request",
        _ => "unknown code",
    }
}

/// The meaning of a PPTP General Error Code (RFC 2637 §2.16).
fn pptp_error(code: u8) -> &'static str {
    match code {
        0 => "None",
        1 => "Not-Connected",
        2 => "Bad-Format",
        3 => "Bad-Value",
        4 => "No-Resource",
        5 => "Bad-Call ID",
        6 => "PAC-Error",
        _ => "unknown error",
    }
}

/// Bytes a tunnel may add around a packet, at most (outer IPv4 header included): ESP with
/// AES-CBC and a 16-byte ICV (RFC 4303 §2: SPI, sequence, IV, up to 15 bytes of padding, pad
/// length, next header, ICV), plus UDP for NAT-T; GRE with its key, sequence and
/// acknowledgment and PPP (RFC 2637 §4.1); L2TP over UDP with PPP (RFC 2661 §3.1).
fn overhead(protocol: Protocol, carrier: Option<Carrier>) -> u16 {
    match (protocol, carrier) {
        (Protocol::Ipsec, Some(Carrier::Esp)) => 20 + 8 + 16 + 15 + 2 + 16,
        (Protocol::Ipsec, _) => 20 + 8 + 8 + 16 + 15 + 2 + 16,
        (Protocol::Pptp, _) => 20 + 16 + 4,
        (Protocol::L2tp, _) => 20 + 8 + 16 + 4,
    }
}

impl Finding {
    /// One line: what is wrong, for whom.
    pub fn summary(&self) -> String {
        let s = &self.subject;
        let prefix = match self.status {
            Status::NotEnoughEvidence => "not enough evidence yet: ",
            _ => "",
        };
        format!("{prefix}{} ({} → {})", self.kind.title(), s.client, s.server)
    }

    /// What natpass saw that shows it: the packets, their counts and times, relative to `now`.
    pub fn explain(&self, now: Instant) -> String {
        let s = &self.subject;
        let e = &self.evidence;
        let (c, srv) = (s.client, s.server);
        let ago = |t: Instant| secs(now.since(t));
        let span = secs(e.last.since(e.first));
        let from = s.public.map_or(String::new(), |p| format!(" from {p}"));
        let mut text = match e.detail {
            Detail::Ike { version, exchange, initial, tries, len, fragmented, answered, largest_answered } => {
                let what = exchange_name(version, exchange, initial);
                let port = s.ports.map_or(500, |p| p.server);
                let times = if tries == 1 { "once".to_string() } else { format!("{tries} times over {span}") };
                let mut t = format!(
                    "{c} sent {what} (IKEv{version}, {len} bytes{}) to {srv}:{port}{from} {times}, the last {} ago",
                    if fragmented { ", in IP fragments" } else { "" },
                    ago(e.last)
                );
                if answered > 0 {
                    t.push_str(&format!(
                        "; {answered} earlier message{} of the same exchange {} answered (the largest {largest_answered} bytes)",
                        if answered == 1 { "" } else { "s" },
                        if answered == 1 { "was" } else { "were" },
                    ));
                }
                t.push_str(&format!("; no answer came back from {srv}."));
                t
            }
            Detail::OneWay { carrier, last_in, last_ike_in } => {
                let what = match (carrier, s.ids) {
                    (Carrier::Gre, Some(TunnelIds::Pptp { client_call_id, server_call_id, .. })) => {
                        format!("GRE for PPTP call {client_call_id} (server Call ID {server_call_id})")
                    }
                    (_, Some(TunnelIds::Esp { spi_out, .. })) => format!("{} (SPI {spi_out:#010x})", carrier.name()),
                    _ => carrier.name().to_string(),
                };
                let ports = s.ports.map_or(String::new(), |p| format!(" on UDP {}→{}", p.client, p.server));
                let mut t = format!(
                    "{c} sent {} packets of {what}{ports} to {srv} over {span}, the last {} ago; ",
                    e.packets_out,
                    ago(e.last)
                );
                match last_in {
                    Some(l) => t.push_str(&format!("the last one from {srv} came {} ago.", ago(l))),
                    None => t.push_str(&format!("none ever came back from {srv}.")),
                }
                if let Some(i) = last_ike_in {
                    t.push_str(&format!(" IKE on the same UDP flow was answered {} ago.", ago(i)));
                }
                t
            }
            Detail::NatT { last_out, keepalives, last_keepalive, keepalive_every, expired, udp_timeout } => {
                let p = s.ports.unwrap_or(Ports { client: 4500, public: 0, server: 4500 });
                let public = s.public.map_or_else(|| "natpass".to_string(), |a| a.to_string());
                let mut t = format!(
                    "{c}'s NAT-T flow {c}:{} → {srv}:{} (public {public}:{}) went quiet {} ago",
                    p.client,
                    p.server,
                    p.public,
                    ago(last_out)
                );
                match (keepalives, last_keepalive) {
                    (0, _) | (_, None) => t.push_str(" (it never sent a NAT-T keepalive)"),
                    (n, Some(k)) => {
                        t.push_str(&format!(
                            "; it had sent {n} keepalive{}, the last {} ago",
                            if n == 1 { "" } else { "s" },
                            ago(k)
                        ));
                        if let Some(every) = keepalive_every {
                            t.push_str(&format!(", {} apart", secs(every)));
                        }
                    }
                }
                t.push_str(&format!(
                    ". natpass's mapping expired {} ago, after {} without a packet; since then {} packet{} from {srv}:{} arrived for {public}:{}, which no longer leads anywhere.",
                    ago(expired),
                    secs(udp_timeout),
                    e.packets_in,
                    if e.packets_in == 1 { "" } else { "s" },
                    p.server,
                    p.public
                ));
                t
            }
            Detail::Busy { waiting_client, waiting_since, let_in_by } => format!(
                "natpass refused {} new raw ESP SA{} from {c} to {srv} over {span} (esp_server_busy): {waiting_client}'s new SA to {srv} is waiting for its first ESP from {srv} (for {} now), and raw ESP can learn one new SA per server at a time. {c} is let in when that answer comes, or {} at the latest.",
                e.packets_out,
                if e.packets_out == 1 { "" } else { "s" },
                ago(waiting_since),
                if let_in_by > now { format!("in {}", secs(let_in_by.since(now))) } else { "now".to_string() }
            ),
            Detail::Call { message, result, error, cause } => {
                let ids = match s.ids {
                    Some(TunnelIds::Pptp { client_call_id, server_call_id, .. }) => {
                        format!("call {client_call_id} (server Call ID {server_call_id})")
                    }
                    _ => "a call".to_string(),
                };
                let err = if result == 2 { format!(", error {error} ({})", pptp_error(error)) } else { String::new() };
                match message {
                    PptpMessage::OutgoingCallReply => format!(
                        "{srv} refused {c}'s {ids} with an Outgoing-Call-Reply: result {result} ({}){err}, cause {cause}, {} ago.",
                        ocrp_result(result),
                        ago(e.last)
                    ),
                    PptpMessage::CallDisconnectNotify => format!(
                        "{srv} ended {c}'s {ids} with a Call-Disconnect-Notify: result {result} ({}){err}, cause {cause}, {} ago.",
                        cdn_result(result),
                        ago(e.last)
                    ),
                }
            }
            Detail::Orphan { call_id } => format!(
                "{c} sent {} GRE packets with Call ID {call_id} to {srv} over {span} ({} came back from {srv}), but natpass never saw the PPTP control connection (TCP 1723) that set that call up; natpass dropped them (gre_unknown_call_id).",
                e.packets_out, e.packets_in
            ),
            Detail::L2tp { other_client, refused, tries, pool } => {
                let p = s.ports.map_or(String::new(), |p| format!(":{}", p.public));
                let public = s.public.map_or(String::new(), |a| a.to_string());
                let asked = if tries == 1 { "once".to_string() } else { format!("{tries} times over {span}") };
                let outcome =
                    if refused { format!("{srv} refused it (StopCCN)") } else { format!("{srv} never answered") };
                format!(
                    "{c} asked {srv} for an L2TP tunnel (SCCRQ) {asked} from {public}{p}, and {outcome}, while {other_client}'s L2TP tunnel to {srv} from the same public address is up. natpass's pool has {pool} public address{}.",
                    if pool == 1 { "" } else { "es" }
                )
            }
            Detail::Mtu { mtu, packet_len, reporter, by_natpass } => {
                if by_natpass {
                    format!(
                        "{c} sent a {packet_len}-byte {} packet to {srv} with Don't Fragment set; natpass's WAN MTU is {mtu}, so natpass refused it with ICMP Fragmentation Needed ({} time{}, the last {} ago).",
                        label(s.protocol),
                        e.packets_in,
                        if e.packets_in == 1 { "" } else { "s" },
                        ago(e.last)
                    )
                } else {
                    format!(
                        "{reporter} answered {c}'s {packet_len}-byte {} packet to {srv} with ICMP Fragmentation Needed: the path takes at most {mtu} bytes ({} time{}, the last {} ago).",
                        label(s.protocol),
                        e.packets_in,
                        if e.packets_in == 1 { "" } else { "s" },
                        ago(e.last)
                    )
                }
            }
            Detail::Disabled { reason } => format!(
                "natpass refused {} {} packet{} from {c} to {srv} over {span} ({reason}), the last {} ago: {} passthrough is switched off.",
                e.packets_out,
                label(s.protocol),
                if e.packets_out == 1 { "" } else { "s" },
                ago(e.last),
                label(s.protocol)
            ),
        };
        if self.status == Status::NotEnoughEvidence {
            text.push_str(&format!(" {}", self.missing()));
        }
        if let Status::Cleared { at } = self.status {
            text.push_str(&format!(" Cleared {} ago: later packets show it no longer holds.", ago(at)));
        }
        text
    }

    /// What is missing before natpass can name a cause ([`Status::NotEnoughEvidence`]).
    fn missing(&self) -> String {
        match (self.kind, self.evidence.detail) {
            (FindingKind::IkeNeverAnswered, _) => format!(
                "natpass names no cause before {IKE_TRIES} tries over {} s, or {} s without an answer.",
                IKE_WAIT.as_secs(),
                IKE_WAIT_ALONE.as_secs()
            ),
            (FindingKind::IkeLargeMessageLost, Detail::Ike { fragmented: false, .. }) => {
                "The message was not fragmented on its way out, so natpass cannot tell why it goes unanswered (the answer may be lost on the way back, or the server may drop the request): not enough evidence for a cause.".to_string()
            }
            (FindingKind::IkeLargeMessageLost, Detail::Ike { answered: 0, .. }) => {
                "No smaller message of this exchange was answered, so its size cannot be blamed: not enough evidence for a cause.".to_string()
            }
            (FindingKind::IkeLargeMessageLost, _) => {
                format!("natpass names no cause before {IKE_TRIES} tries over {} s.", IKE_WAIT.as_secs())
            }
            (FindingKind::EspServerBusy, _) => format!(
                "A refusal or two is how clients share a raw ESP server; natpass reports it after {BUSY_REFUSALS} refusals or {} s.",
                BUSY_SPAN.as_secs()
            ),
            (FindingKind::GreWithoutControl, _) => {
                format!("natpass reports it after {ORPHAN_GRE_PACKETS} such packets.")
            }
            (FindingKind::L2tpOneClientPerAddress, _) => format!(
                "natpass names no cause before {L2TP_TRIES} requests over {} s, or {} s without an answer.",
                L2TP_WAIT.as_secs(),
                L2TP_WAIT_ALONE.as_secs()
            ),
            _ => "natpass keeps watching.".to_string(),
        }
    }

    /// What to do about it, in plain words.
    pub fn fix(&self) -> String {
        let s = &self.subject;
        let (c, srv) = (s.client, s.server);
        if self.status == Status::NotEnoughEvidence {
            return "None yet: natpass names a cause only when its packets show one.".to_string();
        }
        match self.evidence.detail {
            Detail::Ike { version, .. } if self.kind == FindingKind::IkeLargeMessageLost => {
                let how = if version == 2 {
                    "Enable IKEv2 fragmentation (RFC 7383) on both the client and the server (strongSwan: fragmentation = yes; Windows and macOS clients use it when the server offers it)"
                } else {
                    "Enable IKE fragmentation on both ends (strongSwan: fragmentation = yes, which also covers IKEv1), or move to IKEv2 with RFC 7383 fragmentation"
                };
                format!(
                    "IP fragments are dropped between natpass and {srv} (by the ISP, a firewall, or the server's side). {how}; or send fewer certificates (no full chain), or lower the client's MTU so that IKE messages fit unfragmented."
                )
            }
            Detail::Ike { .. } => format!(
                "{srv} is unreachable, runs no IKE server, or UDP 500 is blocked on the way (by the ISP, a firewall upstream, or the server's own firewall). Check the server's address and that it listens on UDP 500 and 4500; try from another network to see whether your ISP blocks IPsec."
            ),
            Detail::OneWay { carrier: Carrier::Esp, .. } => format!(
                "Raw ESP (IP protocol 50) is blocked between natpass and {srv}, or {srv} no longer has this SA (restart the tunnel from {c}). Many networks drop protocol 50: force NAT-T on the client so ESP travels in UDP 4500 (strongSwan: encap = yes; Windows: AssumeUDPEncapsulationContextOnSendRule = 2)."
            ),
            Detail::OneWay { carrier: Carrier::EspInUdp, last_ike_in: Some(_), .. } => format!(
                "IKE on the same UDP flow gets through, so the path is open: {srv} has no SA for this ESP (its side of the tunnel is gone). Restart the tunnel from {c}; if it recurs, check the server's log for the SA's deletion."
            ),
            Detail::OneWay { carrier: Carrier::EspInUdp, .. } => format!(
                "UDP 4500 is blocked between natpass and {srv}, or {srv} no longer has this SA. Restart the tunnel from {c}; if IKE also goes unanswered, UDP 4500 is blocked upstream."
            ),
            Detail::OneWay { carrier: Carrier::Gre, .. } => format!(
                "GRE (IP protocol 47) is blocked between natpass and {srv}: by the ISP, a firewall upstream, or the server's firewall, which must allow protocol 47 and not only TCP 1723. PPTP cannot work without it; if it cannot be allowed, use another VPN protocol (IKEv2, L2TP/IPsec)."
            ),
            Detail::NatT { udp_timeout, .. } => format!(
                "Turn on NAT-T keepalives on {c} with an interval well below natpass's UDP timeout of {} s (20 s is usual: strongSwan keep_alive, Windows and macOS send them by default), or raise [timeouts] udp. Reconnect the VPN now: the server still sends to a public port that is gone.",
                udp_timeout.as_secs()
            ),
            Detail::Busy { .. } => format!(
                "Nothing to do if it passes within seconds: {c}'s retransmissions go through once the other client's SA is answered. If it keeps being refused, the other client's server does not answer it (see that client's findings); NAT-T (UDP encapsulation) avoids the wait altogether, since each client then has its own port."
            ),
            Detail::Call { message: PptpMessage::OutgoingCallReply, result, .. } => match result {
                4 | 7 => {
                    format!("{srv} takes no more calls now (busy or refusing): try later, or ask its administrator.")
                }
                _ => format!("{srv} could not place the call: check the server's log; reconnect later."),
            },
            Detail::Call { result, .. } => match result {
                1 => format!("{srv} lost the call's carrier: reconnect."),
                3 => format!(
                    "{srv} (its administrator or its PPP daemon) ended the call: most often a failed login or a refused PPP option. Check the user name and password, and the server's log."
                ),
                _ => format!("{srv} ended the call with an error: check the server's log, then reconnect."),
            },
            Detail::Orphan { .. } => format!(
                "natpass passes PPTP GRE only for calls whose control connection (TCP 1723) it carries: this call was set up before natpass started, or over another path. Disconnect the VPN on {c} and connect again."
            ),
            Detail::L2tp { pool, .. } => {
                let more = if pool > 1 {
                    "natpass pairs each LAN host with one public address of its pool (paired pooling), and these two landed on the same one: more addresses in [nat] public_addrs spread them further"
                } else {
                    "natpass spreads clients over public addresses when its pool has more than one (paired pooling): add an address to [nat] public_addrs"
                };
                format!(
                    "Most L2TP servers on Linux accept one client per public address: their IPsec policies are keyed by the address and port 1701. {more}. Otherwise connect one client at a time, or use IKEv2 for the second."
                )
            }
            Detail::Mtu { mtu, .. } => {
                let carrier = match s.ports {
                    Some(p) if p.server == 4500 => Some(Carrier::EspInUdp),
                    Some(_) => None,
                    None if s.protocol == Protocol::Ipsec => Some(Carrier::Esp),
                    None => None,
                };
                let over = overhead(s.protocol, carrier);
                format!(
                    "Set the VPN interface's MTU on {c} to at most {} ({mtu} minus up to {over} bytes the tunnel adds), or have the VPN server clamp TCP MSS; the tunnel then never sends packets the path cannot carry.",
                    mtu.saturating_sub(over)
                )
            }
            Detail::Disabled { .. } => format!(
                "Turn {} passthrough on: VPN > VPN Passthrough in the web admin, `natpass passthrough {} enable`, or passthrough.{} = true in the config file.",
                label(s.protocol),
                s.protocol.name(),
                s.protocol.name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;

    const C: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const S: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const P: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    fn out() -> Output {
        Output::new(&EngineConfig::default(), Instant::ZERO)
    }

    fn t(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn ike(from_client: bool, spi_r: u64, len: u32, fragmented: bool) -> Observation {
        Observation::Ike(IkeSeen {
            at: ServerAtPublic { public: P, server: S },
            client: Some(C),
            from_client,
            ports: Ports { client: 500, public: 500, server: 500 },
            header: IkeHeader {
                spi_i: 0xabc,
                spi_r,
                version: 2,
                exchange: if spi_r == 0 { 34 } else { 35 },
                msg_id: u32::from(spi_r != 0),
                response: !from_client,
                len,
            },
            fragmented,
        })
    }

    fn kinds(d: &Diagnosis) -> Vec<(FindingKind, Status)> {
        d.findings(t(0)).iter().map(|f| (f.kind, f.status)).collect()
    }

    #[test]
    fn ike_unanswered_three_times_over_ten_seconds_is_never_answered() {
        let mut d = Diagnosis::new(1);
        let mut o = out();
        for ms in [0, 4000, 11_200] {
            d.observe(t(ms), ike(true, 0, 300, false), &mut o);
        }
        assert_eq!(kinds(&d), [(FindingKind::IkeNeverAnswered, Status::Found)]);
        assert_eq!(o.stats.findings[FindingKind::IkeNeverAnswered as usize], 1);
        assert!(matches!(o.pop_event(), Some(Event::Finding(f)) if f.kind == FindingKind::IkeNeverAnswered));
        // The answer after all: cleared.
        d.observe(t(12_000), ike(false, 0x1, 300, false), &mut o);
        assert!(matches!(kinds(&d)[0].1, Status::Cleared { .. }));
        assert!(matches!(o.pop_event(), Some(Event::FindingCleared(_))));
    }

    #[test]
    fn a_slow_answer_is_no_finding_and_one_try_waits_thirty_seconds() {
        let mut d = Diagnosis::new(1);
        let mut o = out();
        d.observe(t(0), ike(true, 0, 300, false), &mut o);
        d.observe(t(4000), ike(true, 0, 300, false), &mut o);
        assert_eq!(d.findings_for(t(5000), C)[0].status, Status::NotEnoughEvidence);
        d.observe(t(7000), ike(false, 0x1, 300, false), &mut o);
        assert!(d.findings(t(0)).is_empty());
        assert!(d.findings_for(t(8000), C).is_empty());
        // A new exchange sent once and never answered: found by the timer after 30 s.
        let mut d = Diagnosis::new(1);
        d.observe(t(0), ike(true, 0, 300, false), &mut o);
        assert_eq!(d.poll_timeout().map(|w| w <= t(30_000)), Some(true));
        d.handle_timeout(t(29_000), &mut o);
        assert!(d.findings(t(0)).is_empty());
        d.handle_timeout(t(30_000), &mut o);
        assert_eq!(kinds(&d), [(FindingKind::IkeNeverAnswered, Status::Found)]);
    }

    #[test]
    fn a_fragmented_message_after_answered_small_ones_is_a_large_message_lost() {
        let mut d = Diagnosis::new(1);
        let mut o = out();
        d.observe(t(0), ike(true, 0, 300, false), &mut o);
        d.observe(t(50), ike(false, 0x1, 300, false), &mut o);
        for ms in [100, 4100, 11_300] {
            d.observe(t(ms), ike(true, 0x1, 3000, true), &mut o);
        }
        assert_eq!(kinds(&d), [(FindingKind::IkeLargeMessageLost, Status::Found)]);
        let f = d.findings(t(0))[0];
        assert!(f.explain(t(12_000)).contains("in IP fragments"), "{}", f.explain(t(12_000)));
        assert!(f.fix().contains("RFC 7383"));
        // The same, not fragmented: not enough evidence, no finding.
        let mut d = Diagnosis::new(1);
        d.observe(t(0), ike(true, 0, 300, false), &mut o);
        d.observe(t(50), ike(false, 0x1, 300, false), &mut o);
        for ms in [100, 4100, 11_300] {
            d.observe(t(ms), ike(true, 0x1, 1200, false), &mut o);
        }
        assert!(d.findings(t(0)).is_empty());
        let open = d.findings_for(t(12_000), C);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].status, Status::NotEnoughEvidence);
        assert!(open[0].explain(t(12_000)).contains("not enough evidence"));
    }

    #[test]
    fn findings_are_bounded_per_client_and_expire() {
        let mut d = Diagnosis::new(1);
        let mut o = out();
        for i in 0..40u8 {
            let server = Ipv4Addr::new(198, 51, 100, i);
            let obs = Observation::Disabled {
                protocol: Protocol::Pptp,
                client: C,
                server,
                public: None,
                reason: DropReason::PptpDisabled,
            };
            d.observe(t(u64::from(i) * 1000), obs, &mut o);
        }
        assert_eq!(d.len().1, FINDINGS_PER_CLIENT);
        // The oldest went: the newest server is still there, the first is not.
        let servers: Vec<Ipv4Addr> = d.findings(t(0)).iter().map(|f| f.subject.server).collect();
        assert!(servers.contains(&Ipv4Addr::new(198, 51, 100, 39)));
        assert!(!servers.contains(&Ipv4Addr::new(198, 51, 100, 0)));
        d.handle_timeout(t(40_000) + FINDING_TTL, &mut o);
        assert_eq!(d.len(), (0, 0));
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn switching_on_clears_the_switch_off_finding() {
        let mut d = Diagnosis::new(1);
        let mut o = out();
        let obs = Observation::Disabled {
            protocol: Protocol::Ipsec,
            client: C,
            server: S,
            public: Some(P),
            reason: DropReason::IpsecDisabled,
        };
        d.observe(t(0), obs, &mut o);
        d.observe(t(1000), obs, &mut o);
        let f = d.findings(t(0))[0];
        assert_eq!(f.evidence.packets_out, 2);
        assert!(f.fix().contains("natpass passthrough ipsec enable"));
        d.switch_on(Protocol::Pptp, &mut o);
        assert_eq!(d.findings(t(0))[0].status, Status::Found);
        d.switch_on(Protocol::Ipsec, &mut o);
        assert!(matches!(d.findings(t(0))[0].status, Status::Cleared { .. }));
    }

    #[test]
    fn cdn_request_is_a_normal_hang_up() {
        let mut d = Diagnosis::new(1);
        let mut o = out();
        let subject =
            Subject { protocol: Protocol::Pptp, client: C, server: S, public: Some(P), ids: None, ports: None };
        let cdn = |result| {
            Observation::CallResult(CallResult {
                subject,
                message: PptpMessage::CallDisconnectNotify,
                result,
                error: 0,
                cause: 0,
            })
        };
        d.observe(t(0), cdn(4), &mut o);
        assert!(d.findings(t(0)).is_empty());
        d.observe(t(0), cdn(3), &mut o);
        let f = d.findings(t(0))[0];
        assert!(f.explain(t(0)).contains("Admin Shutdown"), "{}", f.explain(t(0)));
    }
}
