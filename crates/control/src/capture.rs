//! Packet capture from inside the router (`natpass capture`): what natpass receives and sends
//! on each side, as pcapng. `tcpdump` on the interfaces does not see what natpass sends (its
//! AF_PACKET sockets bypass the qdisc and its taps; AF_XDP skips the kernel's stack), so the
//! data plane copies the frames itself, at the point they leave or arrive.
//!
//! The data plane keeps one [`Tap`] at a time, started, drained and stopped by
//! [`crate::interface::Command`]s; it is bounded in rate ([`Tap::MAX_PPS`], a token bucket)
//! and in memory ([`Tap::MAX_BUFFER`] between two drains); frames beyond either are counted as
//! dropped, never queued. A tap nobody drains for [`Tap::IDLE_NS`] is stopped by the router.
//! Records are pcapng Enhanced Packet Blocks (interface 0 the LAN, 1 the WAN, with the
//! direction in `epb_flags`), so a drain's bytes are appended to a file that starts with
//! [`pcapng_header`].

use std::net::Ipv4Addr;

use natpass_engine::Side;
use serde::{Deserialize, Serialize};

/// Which packets a capture keeps, by protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// GRE (PPTP's data).
    Gre,
    /// ESP.
    Esp,
    /// AH.
    Ah,
    /// ARP.
    Arp,
}

impl CaptureProto {
    /// Every protocol, as the CLI lists them.
    pub const ALL: [CaptureProto; 7] = [Self::Tcp, Self::Udp, Self::Icmp, Self::Gre, Self::Esp, Self::Ah, Self::Arp];

    /// The IPv4 protocol number (`None` for ARP).
    pub fn ip_protocol(self) -> Option<u8> {
        match self {
            Self::Tcp => Some(6),
            Self::Udp => Some(17),
            Self::Icmp => Some(1),
            Self::Gre => Some(47),
            Self::Esp => Some(50),
            Self::Ah => Some(51),
            Self::Arp => None,
        }
    }
}

/// What to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSpec {
    /// The sides, LAN then WAN.
    pub sides: [bool; 2],
    /// Only this protocol.
    pub proto: Option<CaptureProto>,
    /// Only packets from or to this address (ARP: sender or target).
    pub host: Option<Ipv4Addr>,
    /// Bytes kept of each frame (at most [`MAX_SNAPLEN`]).
    pub snaplen: u32,
}

/// The largest snap length: a whole offload super-frame.
pub const MAX_SNAPLEN: u32 = 65_535;

/// Whether a frame was received or sent by natpass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// natpass received it.
    In,
    /// natpass sent it.
    Out,
}

const ETH_HEADER: usize = 14;

/// Whether an Ethernet frame matches `spec`'s protocol and host (sides are the caller's).
pub fn matches(spec: &CaptureSpec, frame: &[u8]) -> bool {
    if spec.proto.is_none() && spec.host.is_none() {
        return true;
    }
    let Some(mut ethertype) = frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]])) else { return false };
    let mut off = ETH_HEADER;
    // 802.1Q / 802.1ad tags, up to two.
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        let Some(b) = frame.get(off + 2..off + 4) else { return false };
        ethertype = u16::from_be_bytes([b[0], b[1]]);
        off += 4;
    }
    let host_is = |a: Option<&[u8]>, b: Option<&[u8]>| match spec.host {
        None => true,
        Some(h) => [a, b].iter().flatten().any(|x| *x == h.octets()),
    };
    match ethertype {
        0x0806 => {
            // ARP for IPv4 over Ethernet: sender address at 14, target at 24.
            spec.proto.is_none_or(|p| p == CaptureProto::Arp)
                && host_is(frame.get(off + 14..off + 18), frame.get(off + 24..off + 28))
        }
        0x0800 => {
            let Some(&protocol) = frame.get(off + 9) else { return false };
            spec.proto.is_none_or(|p| p.ip_protocol() == Some(protocol))
                && host_is(frame.get(off + 12..off + 16), frame.get(off + 16..off + 20))
        }
        _ => spec.proto.is_none() && spec.host.is_none(),
    }
}

/// A running capture in the data plane.
#[derive(Debug)]
pub struct Tap {
    id: u64,
    spec: CaptureSpec,
    buf: Vec<u8>,
    packets: u64,
    dropped: u64,
    tokens: f64,
    refilled_ns: u64,
    drained_ns: u64,
}

/// What a drain or a stop hands back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// pcapng Enhanced Packet Blocks.
    pub blocks: Vec<u8>,
    /// Frames captured since the start.
    pub packets: u64,
    /// Frames that matched but were not kept (rate or memory bound) since the start.
    pub dropped: u64,
}

impl Tap {
    /// Frames kept per second at most (a burst of a tenth of it).
    pub const MAX_PPS: u32 = 20_000;
    /// Bytes held between two drains at most.
    pub const MAX_BUFFER: usize = 4 << 20;
    /// A tap not drained for this long (10 s) is stopped.
    pub const IDLE_NS: u64 = 10_000_000_000;

    /// A capture named `id`, started at `now_ns`.
    pub fn new(id: u64, mut spec: CaptureSpec, now_ns: u64) -> Self {
        spec.snaplen = spec.snaplen.clamp(64, MAX_SNAPLEN);
        let burst = f64::from(Self::MAX_PPS) / 10.0;
        Self {
            id,
            spec,
            buf: Vec::new(),
            packets: 0,
            dropped: 0,
            tokens: burst,
            refilled_ns: now_ns,
            drained_ns: now_ns,
        }
    }

    /// Its name.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether frames of `side` are captured (the cheap test before [`Tap::record`]).
    #[inline]
    pub fn wants(&self, side: Side) -> bool {
        self.spec.sides[side as usize]
    }

    /// Keeps `frame` (received or sent on `side` at `now_ns`, stamped with `unix_us`) when it
    /// matches and the bounds allow.
    pub fn record(&mut self, side: Side, dir: Direction, frame: &[u8], now_ns: u64, unix_us: u64) {
        if !self.wants(side) || !matches(&self.spec, frame) {
            return;
        }
        let rate = f64::from(Self::MAX_PPS);
        let elapsed = now_ns.saturating_sub(self.refilled_ns) as f64 / 1e9;
        self.tokens = (self.tokens + elapsed * rate).min(rate / 10.0);
        self.refilled_ns = now_ns;
        let kept = frame.len().min(self.spec.snaplen as usize);
        if self.tokens < 1.0 || self.buf.len() + kept + 48 > Self::MAX_BUFFER {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1.0;
        self.packets += 1;
        epb(&mut self.buf, side as u32, dir, unix_us, &frame[..kept], frame.len());
    }

    /// The blocks kept since the last drain, at `now_ns`.
    pub fn drain(&mut self, now_ns: u64) -> Drained {
        self.drained_ns = now_ns;
        Drained { blocks: std::mem::take(&mut self.buf), packets: self.packets, dropped: self.dropped }
    }

    /// Whether nobody drained it for [`Tap::IDLE_NS`].
    pub fn idle(&self, now_ns: u64) -> bool {
        now_ns.saturating_sub(self.drained_ns) > Self::IDLE_NS
    }
}

fn push_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn push_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn pad4(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

/// Appends one block of `kind` whose body `body` writes (the lengths around it are filled in).
fn block(out: &mut Vec<u8>, kind: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    push_u32(out, kind);
    push_u32(out, 0);
    body(out);
    pad4(out);
    let total = (out.len() - start + 4) as u32;
    push_u32(out, total);
    out[start + 4..start + 8].copy_from_slice(&total.to_le_bytes());
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    push_u16(out, code);
    push_u16(out, value.len() as u16);
    out.extend_from_slice(value);
    pad4(out);
}

/// One Enhanced Packet Block: interface `iface`, microseconds since the epoch, the direction
/// in `epb_flags` (RFC draft pcapng §4.3.1: 01 inbound, 10 outbound).
fn epb(out: &mut Vec<u8>, iface: u32, dir: Direction, unix_us: u64, data: &[u8], orig_len: usize) {
    block(out, 6, |b| {
        push_u32(b, iface);
        push_u32(b, (unix_us >> 32) as u32);
        push_u32(b, unix_us as u32);
        push_u32(b, data.len() as u32);
        push_u32(b, orig_len as u32);
        b.extend_from_slice(data);
        pad4(b);
        let flags: u32 = match dir {
            Direction::In => 1,
            Direction::Out => 2,
        };
        option(b, 2, &flags.to_le_bytes());
        option(b, 0, &[]);
    });
}

/// The start of a pcapng file: a Section Header Block and one Interface Description Block per
/// interface (LAN, then WAN: Ethernet, microsecond timestamps, named).
pub fn pcapng_header(interfaces: &[&str], snaplen: u32) -> Vec<u8> {
    let mut out = Vec::new();
    block(&mut out, 0x0A0D_0D0A, |b| {
        push_u32(b, 0x1A2B_3C4D);
        push_u16(b, 1);
        push_u16(b, 0);
        b.extend_from_slice(&(-1i64).to_le_bytes());
        option(b, 4, concat!("natpass ", env!("CARGO_PKG_VERSION")).as_bytes());
        option(b, 0, &[]);
    });
    for name in interfaces {
        block(&mut out, 1, |b| {
            push_u16(b, 1); // LINKTYPE_ETHERNET
            push_u16(b, 0);
            push_u32(b, snaplen);
            option(b, 2, name.as_bytes());
            option(b, 0, &[]);
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f
    }

    fn spec(proto: Option<CaptureProto>, host: Option<[u8; 4]>) -> CaptureSpec {
        CaptureSpec { sides: [true, true], proto, host: host.map(Ipv4Addr::from), snaplen: 65535 }
    }

    #[test]
    fn filters_by_protocol_and_host() {
        let tcp = ipv4(6, [192, 168, 1, 10], [198, 51, 100, 7]);
        assert!(matches(&spec(None, None), &tcp));
        assert!(matches(&spec(Some(CaptureProto::Tcp), None), &tcp));
        assert!(!matches(&spec(Some(CaptureProto::Udp), None), &tcp));
        assert!(matches(&spec(None, Some([198, 51, 100, 7])), &tcp));
        assert!(!matches(&spec(None, Some([198, 51, 100, 8])), &tcp));
        let gre = ipv4(47, [203, 0, 113, 1], [198, 51, 100, 7]);
        assert!(matches(&spec(Some(CaptureProto::Gre), Some([203, 0, 113, 1])), &gre));
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        arp[14 + 14..14 + 18].copy_from_slice(&[192, 168, 1, 10]);
        arp[14 + 24..14 + 28].copy_from_slice(&[192, 168, 1, 1]);
        assert!(matches(&spec(Some(CaptureProto::Arp), Some([192, 168, 1, 1])), &arp));
        assert!(!matches(&spec(Some(CaptureProto::Tcp), None), &arp));
        let mut tagged = vec![0u8; 4];
        tagged.extend_from_slice(&tcp);
        tagged[..12].copy_from_slice(&tcp[..12]);
        tagged[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        tagged[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
        assert!(matches(&spec(Some(CaptureProto::Tcp), Some([192, 168, 1, 10])), &tagged));
        assert!(!matches(&spec(Some(CaptureProto::Tcp), None), &tcp[..20]), "truncated");
    }

    #[test]
    fn a_flood_is_bounded_in_rate_and_memory() {
        let mut t = Tap::new(1, spec(None, None), 0);
        let frame = ipv4(17, [192, 168, 1, 10], [198, 51, 100, 7]);
        // One second of 100,000 frames/s: at most MAX_PPS plus the burst kept.
        for i in 0..100_000u64 {
            t.record(Side::Lan, Direction::In, &frame, i * 10_000, i);
        }
        let d = t.drain(1_000_000_000);
        let max = u64::from(Tap::MAX_PPS) + u64::from(Tap::MAX_PPS) / 10;
        assert!(d.packets <= max && d.packets >= u64::from(Tap::MAX_PPS) * 9 / 10, "{}", d.packets);
        assert_eq!(d.packets + d.dropped, 100_000);
        // Big frames fill the buffer before the rate bound: it never grows past MAX_BUFFER.
        let big = vec![0u8; 9000];
        let mut t = Tap::new(2, spec(None, None), 0);
        for i in 0..2_000u64 {
            t.record(Side::Wan, Direction::Out, &big, i * 1_000_000, i);
        }
        let d = t.drain(3_000_000_000);
        assert!(d.blocks.len() <= Tap::MAX_BUFFER && d.dropped > 0, "{} {}", d.blocks.len(), d.dropped);
        assert!(!t.idle(3_000_000_000) && t.idle(3_000_000_000 + Tap::IDLE_NS + 1));
    }

    #[test]
    fn only_the_sides_asked_for() {
        let mut t = Tap::new(1, CaptureSpec { sides: [false, true], ..spec(None, None) }, 0);
        let frame = ipv4(1, [192, 168, 1, 10], [198, 51, 100, 7]);
        t.record(Side::Lan, Direction::In, &frame, 1, 1);
        t.record(Side::Wan, Direction::Out, &frame, 2, 2);
        assert_eq!(t.drain(3).packets, 1);
    }

    #[test]
    fn blocks_are_whole_pcapng_blocks() {
        let h = pcapng_header(&["lan0", "wan0"], 65535);
        assert_eq!(&h[..4], &0x0A0D_0D0Au32.to_le_bytes());
        let mut t = Tap::new(1, CaptureSpec { snaplen: 20, ..spec(None, None) }, 0);
        let mut frame = ipv4(6, [1, 2, 3, 4], [5, 6, 7, 8]);
        frame.resize(100, 0);
        t.record(Side::Wan, Direction::Out, &frame, 0, 0x1_0000_0002);
        let b = t.drain(1).blocks;
        let len = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
        assert_eq!(len, b.len());
        assert_eq!(&b[len - 4..], &b[4..8], "the length closes the block");
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 1, "interface 1: the WAN");
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 64, "snap length, at least 64");
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 100, "original length");
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 1, "timestamp, high word");
    }
}

/// The API's path: `POST` a [`CaptureRequest`] to start ([`CaptureStarted`]), `GET ?id=N`
/// for the blocks kept since the last call (`application/octet-stream`, with
/// [`PACKETS_HEADER`] and [`DROPPED_HEADER`]), `DELETE ?id=N` to stop ([`CaptureStopped`]).
pub const PATH: &str = "/api/v1/capture";
/// The answer header with the frames captured so far.
pub const PACKETS_HEADER: &str = "X-Natpass-Capture-Packets";
/// The answer header with the frames not kept so far (rate or memory bound).
pub const DROPPED_HEADER: &str = "X-Natpass-Capture-Dropped";

/// Which sides a capture listens on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sides {
    /// The LAN interface.
    Lan,
    /// The WAN interface.
    Wan,
    /// Both.
    #[default]
    Both,
}

impl Sides {
    /// LAN, then WAN.
    pub fn flags(self) -> [bool; 2] {
        match self {
            Self::Lan => [true, false],
            Self::Wan => [false, true],
            Self::Both => [true, true],
        }
    }
}

/// The body of `POST /api/v1/capture`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// The sides (default both).
    #[serde(default)]
    pub side: Sides,
    /// Only this protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<CaptureProto>,
    /// Only packets from or to this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Ipv4Addr>,
    /// Bytes kept per frame (default and most: [`MAX_SNAPLEN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
}

impl CaptureRequest {
    /// What the data plane is asked for.
    pub fn spec(&self) -> CaptureSpec {
        CaptureSpec {
            sides: self.side.flags(),
            proto: self.proto,
            host: self.host,
            snaplen: self.snaplen.unwrap_or(MAX_SNAPLEN).clamp(64, MAX_SNAPLEN),
        }
    }
}

/// The answer to a start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStarted {
    /// The capture's id, for the drains and the stop.
    pub id: u64,
    /// The interfaces (pcapng interface 0 and 1), LAN then WAN.
    pub interfaces: Vec<String>,
    /// Bytes kept per frame.
    pub snaplen: u32,
    /// Frames kept per second at most.
    pub max_pps: u32,
    /// Bytes held between two drains at most.
    pub max_buffer: usize,
    /// Seconds without a drain after which the router stops the capture.
    pub idle_secs: u64,
}

/// The answer to a stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStopped {
    /// Frames captured.
    pub packets: u64,
    /// Frames not kept (rate or memory bound).
    pub dropped: u64,
}
