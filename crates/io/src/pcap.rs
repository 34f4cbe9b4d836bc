//! Capture files: reading pcap and pcapng, writing pcap.
//!
//! - pcap: the libpcap file format (draft-ietf-opsawg-pcap), both byte orders, microsecond
//!   (magic 0xA1B2C3D4) and nanosecond (0xA1B23C4D) timestamps.
//! - pcapng: draft-ietf-opsawg-pcapng: Section Header, Interface Description (with
//!   `if_tsresol`), Enhanced and Simple Packet Blocks; other blocks are skipped.
//! - Link types (the LINKTYPE registry): Ethernet (1, with 802.1Q/802.1ad tags), BSD loopback
//!   NULL (0, host byte order) and LOOP (108, network order), raw IP (101, 228, 229), Linux
//!   cooked SLL (113) and SLL2 (276).
//!
//! The reader streams: it holds one packet at a time, so captures of any size replay.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Why a capture could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is neither pcap nor pcapng.
    #[error("{path}: not a pcap or pcapng file (magic {magic:#010x})")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first four bytes.
        magic: u32,
    },
    /// A record or block runs past the end of the file or is inconsistent.
    #[error("{path}: packet {packet}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The 1-based packet number where reading stopped.
        packet: u64,
        /// What is wrong.
        what: &'static str,
    },
}

/// The link layer of a captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Ethernet II (LINKTYPE_ETHERNET, 1).
    Ethernet,
    /// BSD loopback: a 4-byte address family (NULL 0 in host order, LOOP 108 in network order).
    Null,
    /// Raw IP (101, 228 IPv4, 229 IPv6).
    Raw,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// Any other link type, by number.
    Other(u32),
}

impl LinkKind {
    fn from_linktype(t: u32) -> Self {
        match t {
            1 => Self::Ethernet,
            0 | 108 => Self::Null,
            101 | 228 | 229 => Self::Raw,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            n => Self::Other(n),
        }
    }
}

/// Where the network-layer packet starts in a frame, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// IPv4 at this offset.
    Ipv4 {
        /// Offset of the IPv4 header in `data`.
        offset: usize,
    },
    /// IPv6 at this offset.
    Ipv6 {
        /// Offset of the IPv6 header in `data`.
        offset: usize,
    },
    /// ARP at this offset.
    Arp {
        /// Offset of the ARP packet in `data`.
        offset: usize,
    },
    /// Something else: the ethertype, address family or link type that was found.
    Other {
        /// The ethertype (Ethernet, SLL), address family (NULL) or link type number.
        ethertype_or_family: u32,
    },
}

/// One captured frame.
#[derive(Clone, Debug)]
pub struct CapturedPacket {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The link layer.
    pub link: LinkKind,
    /// The captured bytes.
    pub data: Vec<u8>,
    /// The network layer found in it.
    pub l3: L3,
}

/// PPPoE session stage (RFC 2516 §4): a 6-byte PPPoE header, then the PPP protocol field.
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// PPP protocol numbers of IPv4 and IPv6 (RFC 1332, RFC 5072).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// The network layer after an ethertype at `data[offset - 2..offset]`; a PPPoE session
/// frame carrying IPv4 or IPv6 (RFC 2516, as on a DSL line) is looked through.
fn by_ethertype(data: &[u8], et: u16, offset: usize) -> L3 {
    match et {
        0x0800 => L3::Ipv4 { offset },
        0x86dd => L3::Ipv6 { offset },
        0x0806 => L3::Arp { offset },
        ETHERTYPE_PPPOE_SESSION => {
            // Version and type 1 (0x11), code 0 (session data), then the PPP protocol.
            let ppp = data.get(offset..offset + 8).filter(|h| h[0] == 0x11 && h[1] == 0);
            match ppp.map(|h| u16::from_be_bytes([h[6], h[7]])) {
                Some(PPP_IPV4) => L3::Ipv4 { offset: offset + 8 },
                Some(PPP_IPV6) => L3::Ipv6 { offset: offset + 8 },
                _ => L3::Other { ethertype_or_family: u32::from(et) },
            }
        }
        other => L3::Other { ethertype_or_family: u32::from(other) },
    }
}

/// Finds the network layer of a frame.
pub fn classify(link: LinkKind, data: &[u8]) -> L3 {
    let u16_at = |i: usize| data.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match link {
        LinkKind::Ethernet => {
            let mut off = 12;
            // Up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, and the old 0x9100).
            for _ in 0..3 {
                match u16_at(off) {
                    Some(0x8100 | 0x88a8 | 0x9100) => off += 4,
                    Some(et) => return by_ethertype(data, et, off + 2),
                    None => break,
                }
            }
            L3::Other { ethertype_or_family: 0 }
        }
        LinkKind::Null => {
            let Some(b) = data.get(0..4) else {
                return L3::Other { ethertype_or_family: 0 };
            };
            let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            // The family is in the writer's byte order: take whichever reading is small.
            let fam = if le < 256 { le } else { be };
            match fam {
                2 => L3::Ipv4 { offset: 4 },
                24 | 28 | 30 => L3::Ipv6 { offset: 4 },
                f => L3::Other { ethertype_or_family: f },
            }
        }
        LinkKind::Raw => match data.first().map(|b| b >> 4) {
            Some(4) => L3::Ipv4 { offset: 0 },
            Some(6) => L3::Ipv6 { offset: 0 },
            _ => L3::Other { ethertype_or_family: 0 },
        },
        LinkKind::LinuxSll => u16_at(14).map_or(L3::Other { ethertype_or_family: 0 }, |et| by_ethertype(data, et, 16)),
        LinkKind::LinuxSll2 => u16_at(0).map_or(L3::Other { ethertype_or_family: 0 }, |et| by_ethertype(data, et, 20)),
        LinkKind::Other(n) => L3::Other { ethertype_or_family: n },
    }
}

enum Format {
    Pcap { big_endian: bool, nanos: bool, link: LinkKind },
    Pcapng { big_endian: bool, interfaces: Vec<(LinkKind, u64)> },
}

/// Reads a pcap or pcapng file one packet at a time.
pub struct PcapReader {
    path: PathBuf,
    input: BufReader<Box<dyn Read>>,
    format: Format,
    read: u64,
    total: u64,
    packets: u64,
    done: bool,
}

impl PcapReader {
    /// Opens `path` and reads its file header.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        let io = |source| PcapError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let total = file.metadata().map_err(io)?.len();
        Self::from_reader(path, Box::new(file), total)
    }

    /// Reads a capture held in memory (`name` stands for its path in errors).
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self, PcapError> {
        let total = bytes.len() as u64;
        Self::from_reader(name, Box::new(std::io::Cursor::new(bytes)), total)
    }

    /// Reads the file header of a capture of `total` bytes from `source`.
    fn from_reader(path: &Path, source: Box<dyn Read>, total: u64) -> Result<Self, PcapError> {
        let mut input = BufReader::with_capacity(1 << 16, source);
        let mut magic = [0u8; 4];
        input.read_exact(&mut magic).map_err(|_| PcapError::UnknownFormat { path: path.to_path_buf(), magic: 0 })?;
        let m = u32::from_le_bytes(magic);
        let mut r = Self {
            path: path.to_path_buf(),
            input,
            format: Format::Pcapng { big_endian: false, interfaces: Vec::new() },
            read: 4,
            total,
            packets: 0,
            done: false,
        };
        r.format = match m {
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 => {
                let big_endian = matches!(m, 0xd4c3_b2a1 | 0x4d3c_b2a1);
                let nanos = matches!(m, 0xa1b2_3c4d | 0x4d3c_b2a1);
                let mut h = [0u8; 20];
                r.fill(&mut h, "file header truncated")?;
                let lt = if big_endian {
                    u32::from_be_bytes([h[16], h[17], h[18], h[19]])
                } else {
                    u32::from_le_bytes([h[16], h[17], h[18], h[19]])
                };
                // The upper 16 bits may carry FCS information; the link type is the low 16.
                Format::Pcap { big_endian, nanos, link: LinkKind::from_linktype(lt & 0xffff) }
            }
            0x0a0d_0d0a => {
                // Section Header Block: length, then the byte-order magic.
                let mut h = [0u8; 8];
                r.fill(&mut h, "section header truncated")?;
                let big_endian = match u32::from_le_bytes([h[4], h[5], h[6], h[7]]) {
                    0x1a2b_3c4d => false,
                    0x4d3c_2b1a => true,
                    _ => return Err(r.corrupt("bad byte-order magic in the section header")),
                };
                let len = r.u32(&h[0..4], big_endian) as usize;
                if len < 28 || !len.is_multiple_of(4) {
                    return Err(r.corrupt("bad section header length"));
                }
                r.skip_bytes(len - 12)?;
                Format::Pcapng { big_endian, interfaces: Vec::new() }
            }
            _ => {
                return Err(PcapError::UnknownFormat { path: path.to_path_buf(), magic: m });
            }
        };
        Ok(r)
    }

    /// Bytes consumed so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The file's size.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    fn u32(&self, b: &[u8], big_endian: bool) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if big_endian { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }
    }

    fn corrupt(&self, what: &'static str) -> PcapError {
        PcapError::Corrupt { path: self.path.clone(), packet: self.packets + 1, what }
    }

    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), PcapError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.read += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.corrupt(what)),
            Err(source) => Err(PcapError::Io { path: self.path.clone(), source }),
        }
    }

    fn skip_bytes(&mut self, n: usize) -> Result<(), PcapError> {
        let mut left = n;
        let mut scratch = [0u8; 4096];
        while left > 0 {
            let k = left.min(scratch.len());
            self.fill(&mut scratch[..k], "block truncated")?;
            left -= k;
        }
        Ok(())
    }

    /// At a clean end of file: true. Reads one byte to tell.
    fn at_eof(&mut self) -> Result<bool, PcapError> {
        let buf = std::io::BufRead::fill_buf(&mut self.input)
            .map_err(|source| PcapError::Io { path: self.path.clone(), source })?;
        Ok(buf.is_empty())
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_packet(&mut self) -> Option<Result<CapturedPacket, PcapError>> {
        if self.done {
            return None;
        }
        let r = self.read_next();
        match &r {
            Ok(None) | Err(_) => self.done = true,
            Ok(Some(_)) => self.packets += 1,
        }
        r.transpose()
    }

    fn read_next(&mut self) -> Result<Option<CapturedPacket>, PcapError> {
        if self.at_eof()? {
            return Ok(None);
        }
        match &self.format {
            Format::Pcap { big_endian, nanos, link } => {
                let (be, nanos, link) = (*big_endian, *nanos, *link);
                let mut h = [0u8; 16];
                self.fill(&mut h, "record header truncated")?;
                let secs = u64::from(self.u32(&h[0..4], be));
                let frac = u64::from(self.u32(&h[4..8], be));
                let incl = self.u32(&h[8..12], be) as usize;
                if incl > 1 << 24 {
                    return Err(self.corrupt("record length over 16 MiB"));
                }
                let mut data = vec![0u8; incl];
                self.fill(&mut data, "record data truncated")?;
                let ts_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
                let l3 = classify(link, &data);
                Ok(Some(CapturedPacket { ts_ns, link, data, l3 }))
            }
            Format::Pcapng { .. } => self.read_pcapng_block(),
        }
    }

    fn read_pcapng_block(&mut self) -> Result<Option<CapturedPacket>, PcapError> {
        loop {
            if self.at_eof()? {
                return Ok(None);
            }
            let Format::Pcapng { big_endian, .. } = self.format else {
                return Ok(None);
            };
            let be = big_endian;
            let mut h = [0u8; 8];
            self.fill(&mut h, "block header truncated")?;
            let kind = self.u32(&h[0..4], be);
            let len = self.u32(&h[4..8], be) as usize;
            if kind == 0x0a0d_0d0a {
                // A new section: its own byte order, its own interfaces.
                let mut m = [0u8; 4];
                self.fill(&mut m, "section header truncated")?;
                let be = match u32::from_le_bytes(m) {
                    0x1a2b_3c4d => false,
                    0x4d3c_2b1a => true,
                    _ => return Err(self.corrupt("bad byte-order magic in the section header")),
                };
                let len = self.u32(&h[4..8], be) as usize;
                if len < 28 || !len.is_multiple_of(4) {
                    return Err(self.corrupt("bad section header length"));
                }
                self.skip_bytes(len - 12)?;
                self.format = Format::Pcapng { big_endian: be, interfaces: Vec::new() };
                continue;
            }
            if len < 12 || !len.is_multiple_of(4) || len > 1 << 24 {
                return Err(self.corrupt("bad block length"));
            }
            let mut body = vec![0u8; len - 12];
            self.fill(&mut body, "block truncated")?;
            let mut trailer = [0u8; 4];
            self.fill(&mut trailer, "block trailer truncated")?;
            match kind {
                1 => self.interface(&body, be)?,
                6 => {
                    if body.len() < 20 {
                        return Err(self.corrupt("enhanced packet block too short"));
                    }
                    let ifc = self.u32(&body[0..4], be) as usize;
                    let ts = (u64::from(self.u32(&body[4..8], be)) << 32) | u64::from(self.u32(&body[8..12], be));
                    let cap = self.u32(&body[12..16], be) as usize;
                    let Some(data) = body.get(20..20 + cap) else {
                        return Err(self.corrupt("enhanced packet data past its block"));
                    };
                    let Format::Pcapng { interfaces, .. } = &self.format else {
                        return Ok(None);
                    };
                    let Some(&(link, units)) = interfaces.get(ifc) else {
                        return Err(self.corrupt("packet names an undeclared interface"));
                    };
                    let ts_ns = if units >= 1_000_000_000 {
                        ts / (units / 1_000_000_000)
                    } else {
                        ts.saturating_mul(1_000_000_000 / units.max(1))
                    };
                    let data = data.to_vec();
                    let l3 = classify(link, &data);
                    return Ok(Some(CapturedPacket { ts_ns, link, data, l3 }));
                }
                3 => {
                    if body.len() < 4 {
                        return Err(self.corrupt("simple packet block too short"));
                    }
                    let orig = self.u32(&body[0..4], be) as usize;
                    let data = body[4..].get(..orig.min(body.len() - 4)).unwrap_or_default().to_vec();
                    let Format::Pcapng { interfaces, .. } = &self.format else {
                        return Ok(None);
                    };
                    let Some(&(link, _)) = interfaces.first() else {
                        return Err(self.corrupt("simple packet before any interface"));
                    };
                    let l3 = classify(link, &data);
                    return Ok(Some(CapturedPacket { ts_ns: 0, link, data, l3 }));
                }
                _ => {}
            }
        }
    }

    /// An Interface Description Block: link type and `if_tsresol` (option 9).
    fn interface(&mut self, body: &[u8], be: bool) -> Result<(), PcapError> {
        if body.len() < 8 {
            return Err(self.corrupt("interface description too short"));
        }
        let lt = if be { u16::from_be_bytes([body[0], body[1]]) } else { u16::from_le_bytes([body[0], body[1]]) };
        let mut units: u64 = 1_000_000;
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let code = if be { u16::from_be_bytes([opts[0], opts[1]]) } else { u16::from_le_bytes([opts[0], opts[1]]) };
            let olen = usize::from(if be {
                u16::from_be_bytes([opts[2], opts[3]])
            } else {
                u16::from_le_bytes([opts[2], opts[3]])
            });
            if code == 0 {
                break;
            }
            let Some(val) = opts.get(4..4 + olen) else {
                break;
            };
            if code == 9 && olen >= 1 {
                let v = val[0];
                let exp = u32::from(v & 0x7f);
                units = if v & 0x80 == 0 { 10u64.checked_pow(exp) } else { 2u64.checked_pow(exp) }.unwrap_or(1_000_000);
            }
            opts = opts.get(4 + olen.div_ceil(4) * 4..).unwrap_or_default();
        }
        if let Format::Pcapng { interfaces, .. } = &mut self.format {
            interfaces.push((LinkKind::from_linktype(u32::from(lt)), units));
        }
        Ok(())
    }
}

impl Iterator for PcapReader {
    type Item = Result<CapturedPacket, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet()
    }
}

/// Writes a classic pcap file of raw IPv4 packets (LINKTYPE_RAW, nanosecond timestamps).
pub struct PcapWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl PcapWriter {
    /// Creates `path` and writes the file header.
    pub fn create(path: &Path) -> Result<Self, PcapError> {
        let io = |source| PcapError::Io { path: path.to_path_buf(), source };
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&101u32.to_le_bytes());
        out.write_all(&h).map_err(io)?;
        Ok(Self { path: path.to_path_buf(), out })
    }

    /// Appends one packet.
    pub fn write_packet(&mut self, ts_ns: u64, packet: &[u8]) -> Result<(), PcapError> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(packet.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(packet.len() as u32).to_le_bytes());
        let r = self.out.write_all(&h).and_then(|()| self.out.write_all(packet));
        r.map_err(|source| PcapError::Io { path: self.path.clone(), source })
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), PcapError> {
        self.out.flush().map_err(|source| PcapError::Io { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("natpass-io-{}-{name}", std::process::id()))
    }

    #[test]
    fn pppoe_vlan_and_qinq_frames_are_looked_through() {
        let ip = [0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let eth = |tags: &[[u8; 4]], et: [u8; 2], rest: &[u8]| {
            let mut f = vec![0u8; 12];
            for t in tags {
                f.extend_from_slice(t);
            }
            f.extend_from_slice(&et);
            f.extend_from_slice(rest);
            f
        };
        // PPPoE session (RFC 2516): 0x11, code 0, session 0x1234, length, PPP 0x0021.
        let mut pppoe = vec![0x11, 0, 0x12, 0x34, 0, 22, 0x00, 0x21];
        pppoe.extend_from_slice(&ip);
        assert_eq!(classify(LinkKind::Ethernet, &eth(&[], [0x88, 0x64], &pppoe)), L3::Ipv4 { offset: 22 });
        // The same inside 802.1Q, and inside QinQ (802.1ad then 802.1Q).
        let q = [0x81, 0, 0, 7];
        let ad = [0x88, 0xa8, 0, 9];
        assert_eq!(classify(LinkKind::Ethernet, &eth(&[q], [0x88, 0x64], &pppoe)), L3::Ipv4 { offset: 26 });
        assert_eq!(classify(LinkKind::Ethernet, &eth(&[ad, q], [0x08, 0x00], &ip)), L3::Ipv4 { offset: 22 });
        // PPP IPv6, and PPP control (LCP 0xc021) is not IP.
        pppoe[7] = 0x57;
        assert_eq!(classify(LinkKind::Ethernet, &eth(&[], [0x88, 0x64], &pppoe)), L3::Ipv6 { offset: 22 });
        pppoe[6..8].copy_from_slice(&[0xc0, 0x21]);
        assert_eq!(
            classify(LinkKind::Ethernet, &eth(&[], [0x88, 0x64], &pppoe)),
            L3::Other { ethertype_or_family: 0x8864 }
        );
        // A truncated PPPoE header.
        assert_eq!(
            classify(LinkKind::Ethernet, &eth(&[], [0x88, 0x64], &[0x11, 0])),
            L3::Other { ethertype_or_family: 0x8864 }
        );
    }

    #[test]
    fn pcap_round_trip_keeps_nanoseconds() {
        let p = temp("rt.pcap");
        let mut w = PcapWriter::create(&p).unwrap();
        let pkt = [0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        w.write_packet(1_700_000_000_123_456_789, &pkt).unwrap();
        w.write_packet(1_700_000_001_000_000_001, &pkt[..]).unwrap();
        w.finish().unwrap();
        let got: Vec<_> = PcapReader::open(&p).unwrap().collect::<Result<_, _>>().unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_789);
        assert_eq!(got[1].ts_ns, 1_700_000_001_000_000_001);
        assert_eq!(got[0].l3, L3::Ipv4 { offset: 0 });
        assert_eq!(got[0].data, pkt);
    }

    #[test]
    fn truncated_and_unknown_files_are_errors() {
        let p = temp("trunc.pcap");
        let mut w = PcapWriter::create(&p).unwrap();
        w.write_packet(0, &[0x45; 40]).unwrap();
        w.finish().unwrap();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        let mut r = PcapReader::open(&p).unwrap();
        let e = r.next_packet().unwrap().unwrap_err().to_string();
        assert!(e.contains("packet 1") && e.contains("truncated"), "{e}");
        assert!(r.next_packet().is_none());
        std::fs::write(&p, b"hello world, not a capture").unwrap();
        let e = PcapReader::open(&p).err().unwrap().to_string();
        assert!(e.contains("not a pcap or pcapng"), "{e}");
        std::fs::remove_file(&p).unwrap();
        // The same from memory, as the fuzz target reads.
        let mut r = PcapReader::from_bytes(Path::new("mem.pcap"), full[..full.len() - 5].to_vec()).unwrap();
        let e = r.next_packet().unwrap().unwrap_err().to_string();
        assert!(e.contains("mem.pcap") && e.contains("truncated"), "{e}");
        assert!(PcapReader::from_bytes(Path::new("mem.pcap"), vec![0xd4, 0xc3]).is_err());
    }

    #[test]
    fn pcapng_with_tsresol_and_vlan() {
        // SHB, IDB (Ethernet, if_tsresol = 9 → ns), EPB with an 802.1Q-tagged IPv4 frame.
        let mut f = Vec::new();
        let block = |f: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let len = (12 + body.len()) as u32;
            f.extend_from_slice(&kind.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(body);
            f.extend_from_slice(&len.to_le_bytes());
        };
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        block(&mut f, 0x0a0d_0d0a, &shb);
        let mut idb = Vec::new();
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        block(&mut f, 1, &idb);
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        frame.extend_from_slice(&[0x45; 20]);
        frame.extend_from_slice(&[0, 0]); // pad to 4
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        let ts: u64 = 5_000_000_007;
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&38u32.to_le_bytes());
        epb.extend_from_slice(&38u32.to_le_bytes());
        epb.extend_from_slice(&frame);
        block(&mut f, 6, &epb);
        block(&mut f, 5, &[0u8; 8]); // an Interface Statistics Block, skipped
        let p = temp("ng.pcapng");
        std::fs::write(&p, &f).unwrap();
        let got: Vec<_> = PcapReader::open(&p).unwrap().collect::<Result<_, _>>().unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ts_ns, 5_000_000_007);
        assert_eq!(got[0].l3, L3::Ipv4 { offset: 18 });
        assert_eq!(got[0].data.len(), 38);
    }

    #[test]
    fn null_loopback_families() {
        assert_eq!(classify(LinkKind::Null, &[2, 0, 0, 0, 0x45]), L3::Ipv4 { offset: 4 });
        assert_eq!(classify(LinkKind::Null, &[0, 0, 0, 2, 0x45]), L3::Ipv4 { offset: 4 });
        assert_eq!(classify(LinkKind::Null, &[30, 0, 0, 0]), L3::Ipv6 { offset: 4 });
        assert_eq!(classify(LinkKind::LinuxSll, &[0; 3]), L3::Other { ethertype_or_family: 0 });
    }

    /// Every capture in the repository's `captures/` reads to the end, with the expected counts.
    #[test]
    fn reads_every_capture() {
        let dir = natpass_testkit::captures();
        let expect: &[(&str, usize)] = &[
            ("pptp_full_windows-client_pptpd.pcapng", 634),
            ("pptp_control_sli_tcpdump.pcap", 23),
            ("pptp_gre_data_only_natted-client.pcap", 402),
            ("l2tpv2_full_control_and_data.pcap", 168),
            ("ikev1_main_quick_labA.pcap", 9),
            ("ikev1_aggressive_quick_labA.pcap", 6),
            ("ikev1_main_certs.pcap", 10),
            ("ikev1_natt_keepalive_esp-in-udp_openswan.pcap", 35),
            ("ikev2_esp_labC.pcapng", 6),
            ("ikev2_ah_labC.pcapng", 6),
            ("ikev2_natt_multi-gateway_esp-in-udp.pcap", 834),
            ("ikev2_natt_ephemeral-ports.pcap", 7),
            ("ikev2_openswan_loopback_dltnull.pcap", 21),
            ("ikev1_esp_ipv6.pcap", 309),
            ("ikev2_esp_ipv6.pcap", 197),
            ("esp_raw_oneway_freeswan.pcap", 8),
            ("esp_in_udp_oneway_freeswan.pcap", 8),
            ("esp_raw_multi-sa_ipv4-ipv6_oneway.pcap", 240),
        ];
        for (name, count) in expect {
            let pkts: Vec<_> = PcapReader::open(&dir.join(name))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(pkts.len(), *count, "{name}");
        }
        let null = dir.join("ikev2_openswan_loopback_dltnull.pcap");
        assert!(PcapReader::open(&null).unwrap().all(|p| p.unwrap().l3 == L3::Ipv4 { offset: 4 }));
        let v6 = dir.join("ikev1_esp_ipv6.pcap");
        assert!(PcapReader::open(&v6).unwrap().all(|p| matches!(p.unwrap().l3, L3::Ipv6 { .. })));
        let arp = dir.join("ikev1_natt_keepalive_esp-in-udp_openswan.pcap");
        let n = PcapReader::open(&arp).unwrap().filter(|p| matches!(p.as_ref().unwrap().l3, L3::Arp { .. })).count();
        assert_eq!(n, 8);
    }
}
