//! Linux AF_PACKET sockets (packet(7)): a TPACKET_V3 receive ring read in whole blocks and
//! batched transmission with `sendmmsg(2)`, bypassing the qdisc (PACKET_QDISC_BYPASS).
//!
//! The receive ring is a shared memory area the kernel fills block by block; a block belongs to
//! user space while its status has `TP_STATUS_USER` and goes back when we write
//! `TP_STATUS_KERNEL`. Frames are handed out as `&mut [u8]` inside the ring, so a driver can
//! translate them in place and copy them once into a [`TxBatch`].
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// What can go wrong opening or using a packet socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The interface name is not one of this namespace's interfaces.
    #[error("interface {0:?} does not exist in this network namespace (see `ip link`)")]
    NoSuchInterface(String),
    /// A system call failed.
    #[error("{call} on {iface}: {cause}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The interface.
        iface: String,
        /// What the kernel said (in the message, so not also a `source`).
        cause: io::Error,
    },
}

/// The kind of receive ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingVersion {
    /// TPACKET_V3: the kernel fills variable-size frames into blocks and hands a block over
    /// when it is full or after `block_timeout_ms`: few wake-ups under load, but at low rates
    /// a frame may wait up to the timeout.
    V3,
    /// TPACKET_V2: one fixed-size slot per frame, handed over (and woken) per frame: the
    /// lowest latency, more wake-ups.
    V2,
}

/// Ring geometry.
#[derive(Clone, Copy, Debug)]
pub struct RingOptions {
    /// The receive ring's kind.
    pub version: RingVersion,
    /// Bytes per block (a power of two multiple of the page size).
    pub block_size: usize,
    /// Blocks in the ring.
    pub block_count: usize,
    /// Milliseconds after which the kernel hands over a block that is not full.
    pub block_timeout_ms: u32,
    /// Ask for a virtio-net header with every frame (PACKET_VNET_HDR): segmentation-offload
    /// super-frames and unfinished checksums then come with what the kernel knows of them,
    /// and frames sent may be super-frames the kernel cuts up.
    pub vnet_hdr: bool,
}

impl Default for RingOptions {
    fn default() -> Self {
        Self { version: RingVersion::V3, block_size: 1 << 18, block_count: 64, block_timeout_ms: 1, vnet_hdr: true }
    }
}

/// The virtio-net header (`struct virtio_net_hdr`, virtio 1.x §5.1.6, little-endian) that
/// PACKET_VNET_HDR puts before each frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `NEEDS_CSUM` (1): the checksum at `csum_start + csum_offset` is unfinished.
    pub flags: u8,
    /// `GSO_NONE` (0), `TCPV4` (1), `UDP` (3), `TCPV6` (4), `UDP_L4` (5); `| ECN` (0x80).
    pub gso_type: u8,
    /// Bytes of headers (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts, from the frame's first byte.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// The header's length.
    pub const LEN: usize = 10;
    /// `flags`: the checksum is unfinished.
    pub const NEEDS_CSUM: u8 = 1;
    /// `gso_type`: TCP over IPv4.
    pub const GSO_TCPV4: u8 = 1;
    /// `gso_type`: UDP segmentation (USO).
    pub const GSO_UDP_L4: u8 = 5;

    /// Reads one from 10 bytes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..Self::LEN)?;
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Writes it into `b[..10]`.
    pub fn write(&self, b: &mut [u8]) {
        if let Some(b) = b.get_mut(..Self::LEN) {
            b[0] = self.flags;
            b[1] = self.gso_type;
            b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
            b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
            b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
            b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        }
    }

    /// True for a segmentation-offload super-frame.
    pub fn is_gso(&self) -> bool {
        self.gso_type & 0x7f != 0
    }
}

/// What the kernel told us about one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The frame's length on the wire (may exceed the captured length).
    pub wire_len: usize,
    /// The transport checksum was left for offload (TP_STATUS_CSUMNOTREADY): it is not valid
    /// and must be computed before the frame leaves.
    pub csum_not_ready: bool,
    /// The kernel removed an 802.1Q tag (TP_STATUS_VLAN_VALID).
    pub vlan_stripped: bool,
    /// The frame was sent by this host (PACKET_OUTGOING).
    pub outgoing: bool,
    /// The virtio-net header, when the socket asked for them.
    pub vnet: Option<VnetHdr>,
}

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_OUTGOING: u8 = 4;

// struct tpacket_block_desc: version u32, offset_to_priv u32, then tpacket_hdr_v1.
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST: usize = 16;
// struct tpacket3_hdr.
const PKT_NEXT: usize = 0;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_HDR_LEN: usize = 48;
// struct sockaddr_ll follows the header at TPACKET_ALIGN(sizeof(tpacket3_hdr)).
const SLL_PKTTYPE: usize = PKT_HDR_LEN + 10;
// struct tpacket2_hdr: status, len, snaplen, mac, net, ...; sockaddr_ll at 32.
const V2_STATUS: usize = 0;
const V2_LEN: usize = 4;
const V2_SNAPLEN: usize = 8;
const V2_MAC: usize = 12;
const V2_SLL_PKTTYPE: usize = 32 + 10;
/// A V2 slot with virtio-net headers holds a 64 KB super-frame and its headers.
const V2_BIG_FRAME: usize = 17 * 4096;
/// Frames handed out per `receive` call with V2.
const V2_BATCH: usize = 256;

/// One AF_PACKET socket bound to an interface, with its receive ring.
pub struct PacketSocket {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    opts: RingOptions,
    /// Bytes per unit handed over: a block (V3) or a frame slot (V2).
    slot_size: usize,
    /// Units in the ring.
    slot_count: usize,
    next_block: usize,
    ifindex: i32,
    name: String,
    mac: [u8; 6],
    mtu: usize,
    vnet_hdr: bool,
}

fn sys_err(call: &'static str, iface: &str) -> Error {
    Error::Sys { call, iface: iface.to_string(), cause: io::Error::last_os_error() }
}

use crate::sys::setsockopt;

fn ifreq_for(name: &str) -> Result<libc::ifreq, Error> {
    crate::sys::ifreq_for(name).ok_or_else(|| Error::NoSuchInterface(name.to_string()))
}

impl PacketSocket {
    /// Opens a packet socket on `iface` (all ethertypes), maps its receive ring and binds it.
    pub fn open(iface: &str, opts: RingOptions) -> Result<Self, Error> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
        if raw < 0 {
            let cause = io::Error::last_os_error();
            let call = if cause.kind() == io::ErrorKind::PermissionDenied {
                "socket(AF_PACKET) (needs root or CAP_NET_RAW)"
            } else {
                "socket(AF_PACKET)"
            };
            return Err(Error::Sys { call, iface: iface.to_string(), cause });
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ifr = ifreq_for(iface)?;
        // SAFETY: SIOCGIFINDEX reads the name and writes the index into our ifreq.
        if unsafe { libc::ioctl(raw, libc::SIOCGIFINDEX, &mut ifr) } < 0 {
            return Err(Error::NoSuchInterface(iface.to_string()));
        }
        // SAFETY: the kernel filled the ifindex member of the union.
        let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };
        // SAFETY: SIOCGIFHWADDR writes a sockaddr into our ifreq.
        if unsafe { libc::ioctl(raw, libc::SIOCGIFHWADDR, &mut ifr) } < 0 {
            return Err(sys_err("SIOCGIFHWADDR", iface));
        }
        let mut mac = [0u8; 6];
        // SAFETY: the kernel filled the hwaddr member of the union.
        let hw = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
        for (m, b) in mac.iter_mut().zip(hw.iter()) {
            *m = *b as u8;
        }
        // SAFETY: SIOCGIFMTU writes the MTU into our ifreq.
        if unsafe { libc::ioctl(raw, libc::SIOCGIFMTU, &mut ifr) } < 0 {
            return Err(sys_err("SIOCGIFMTU", iface));
        }
        // SAFETY: the kernel filled the mtu member of the union.
        let mtu = usize::try_from(unsafe { ifr.ifr_ifru.ifru_mtu }).unwrap_or(1500);

        let version: libc::c_int = match opts.version {
            RingVersion::V3 => TPACKET_V3,
            RingVersion::V2 => TPACKET_V2,
        };
        if setsockopt(raw, libc::SOL_PACKET, PACKET_VERSION, &version) < 0 {
            return Err(sys_err("PACKET_VERSION", iface));
        }
        let one: libc::c_int = 1;
        // Best effort: older kernels lack these, and the socket works without them.
        let _ = setsockopt(raw, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &one);
        let _ = setsockopt(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
        // Before the ring: the kernel refuses to change it once a ring exists.
        let vnet_hdr = opts.vnet_hdr && setsockopt(raw, libc::SOL_PACKET, PACKET_VNET_HDR, &one) == 0;
        let (slot_size, slot_count, ring_len) = match opts.version {
            RingVersion::V3 => {
                let frame_size = 2048u32;
                let req = libc::tpacket_req3 {
                    tp_block_size: opts.block_size as u32,
                    tp_block_nr: opts.block_count as u32,
                    tp_frame_size: frame_size,
                    tp_frame_nr: (opts.block_size * opts.block_count) as u32 / frame_size,
                    tp_retire_blk_tov: opts.block_timeout_ms,
                    tp_sizeof_priv: 0,
                    tp_feature_req_word: 0,
                };
                if setsockopt(raw, libc::SOL_PACKET, PACKET_RX_RING, &req) < 0 {
                    return Err(sys_err("PACKET_RX_RING", iface));
                }
                (opts.block_size, opts.block_count, opts.block_size * opts.block_count)
            }
            RingVersion::V2 => {
                // One frame per block when frames must hold super-frames; else small frames
                // packed into the configured blocks.
                let (frame, block) = if vnet_hdr { (V2_BIG_FRAME, V2_BIG_FRAME) } else { (2048, opts.block_size) };
                let total = opts.block_size * opts.block_count;
                let blocks = (total / block).max(1);
                let req = libc::tpacket_req {
                    tp_block_size: block as u32,
                    tp_block_nr: blocks as u32,
                    tp_frame_size: frame as u32,
                    tp_frame_nr: (blocks * (block / frame)) as u32,
                };
                if setsockopt(raw, libc::SOL_PACKET, PACKET_RX_RING, &req) < 0 {
                    return Err(sys_err("PACKET_RX_RING", iface));
                }
                (frame, blocks * (block / frame), blocks * block)
            }
        };
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        let ring = if ring == libc::MAP_FAILED {
            // SAFETY: as above, without MAP_LOCKED (RLIMIT_MEMLOCK may forbid it).
            let r = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    ring_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    raw,
                    0,
                )
            };
            if r == libc::MAP_FAILED {
                return Err(sys_err("mmap(rx ring)", iface));
            }
            r
        } else {
            ring
        };
        let sock = Self {
            fd,
            ring: ring.cast(),
            ring_len,
            opts,
            slot_size,
            slot_count,
            next_block: 0,
            ifindex,
            name: iface.to_string(),
            mac,
            mtu,
            vnet_hdr,
        };
        // SAFETY: sockaddr_ll is a plain C struct; all zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: binds to a sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(sys_err("bind", iface));
        }
        Ok(sock)
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface's MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// True when frames come and go with a [`VnetHdr`] (and a [`TxBatch`] for this socket
    /// must be made with [`TxBatch::with_vnet_hdr`]).
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    fn block_status(&self, slot: usize) -> &AtomicU32 {
        let at = match self.opts.version {
            RingVersion::V3 => BLK_STATUS,
            RingVersion::V2 => V2_STATUS,
        };
        // SAFETY: the offset is inside the mapped ring (slot < slot_count), 4-byte aligned
        // (slots are page or 16-byte aligned, the status word at 0 or 8), and the kernel
        // writes this word concurrently, so it is only accessed atomically.
        unsafe { &*self.ring.add(slot * self.slot_size + at).cast::<AtomicU32>() }
    }

    /// True when the next block (V3) or frame (V2) is ready to read (no system call).
    pub fn ready(&self) -> bool {
        self.block_status(self.next_block).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Hands every frame of the next ready block to `f` (the frame starts at the Ethernet
    /// header and may be changed in place), returns the block to the kernel and says how many
    /// frames there were; 0 when no block is ready.
    pub fn receive(&mut self, mut f: impl FnMut(&mut [u8], FrameInfo)) -> usize {
        if !self.ready() {
            return 0;
        }
        if self.opts.version == RingVersion::V2 {
            return self.receive_frames(f);
        }
        let base = self.next_block * self.opts.block_size;
        // SAFETY: the block [base, base + block_size) lies inside the ring and belongs to user
        // space until its status is written back below; nothing else aliases it meanwhile.
        let block = unsafe { std::slice::from_raw_parts_mut(self.ring.add(base), self.opts.block_size) };
        let rd = |b: &[u8], at: usize| b.get(at..at + 4).map_or(0, |x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]));
        let count = rd(block, BLK_NUM_PKTS) as usize;
        let mut off = rd(block, BLK_FIRST) as usize;
        for _ in 0..count {
            if off + PKT_HDR_LEN + 16 > block.len() {
                break;
            }
            let next = rd(block, off + PKT_NEXT) as usize;
            let snap = rd(block, off + PKT_SNAPLEN) as usize;
            let len = rd(block, off + PKT_LEN) as usize;
            let status = rd(block, off + PKT_STATUS);
            let mac = usize::from(u16::from_ne_bytes([block[off + PKT_MAC], block[off + PKT_MAC + 1]]));
            let info = self.frame_info(block, off + mac, len, status, block[off + SLL_PKTTYPE]);
            if let Some(frame) = block.get_mut(off + mac..off + mac + snap) {
                f(frame, info);
            }
            if next == 0 {
                break;
            }
            off += next;
        }
        self.block_status(self.next_block).store(TP_STATUS_KERNEL, Ordering::Release);
        self.next_block = (self.next_block + 1) % self.slot_count;
        count
    }

    /// What the ring says of the frame at `mac` in `area` (a V3 block or a V2 slot): its
    /// status bits, packet type and, when asked for, the virtio-net header just before it.
    fn frame_info(&self, area: &[u8], mac: usize, wire_len: usize, status: u32, pkttype: u8) -> FrameInfo {
        let vnet = if self.vnet_hdr {
            mac.checked_sub(VnetHdr::LEN).and_then(|at| area.get(at..)).and_then(VnetHdr::parse)
        } else {
            None
        };
        FrameInfo {
            wire_len,
            csum_not_ready: status & TP_STATUS_CSUMNOTREADY != 0,
            vlan_stripped: status & TP_STATUS_VLAN_VALID != 0,
            outgoing: pkttype == PACKET_OUTGOING,
            vnet,
        }
    }

    /// TPACKET_V2: hands out ready frames one slot at a time (up to a batch), returning each
    /// slot to the kernel after `f`.
    fn receive_frames(&mut self, mut f: impl FnMut(&mut [u8], FrameInfo)) -> usize {
        let mut n = 0;
        while n < V2_BATCH && self.ready() {
            let base = self.next_block * self.slot_size;
            // SAFETY: the slot [base, base + slot_size) lies inside the ring and belongs to
            // user space until its status is written back below; nothing else aliases it.
            let slot = unsafe { std::slice::from_raw_parts_mut(self.ring.add(base), self.slot_size) };
            let rd =
                |b: &[u8], at: usize| b.get(at..at + 4).map_or(0, |x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]));
            let status = rd(slot, V2_STATUS);
            let len = rd(slot, V2_LEN) as usize;
            let snap = rd(slot, V2_SNAPLEN) as usize;
            let mac = usize::from(u16::from_ne_bytes([slot[V2_MAC], slot[V2_MAC + 1]]));
            let vnet = if self.vnet_hdr {
                mac.checked_sub(VnetHdr::LEN).and_then(|at| VnetHdr::parse(&slot[at..]))
            } else {
                None
            };
            let info = FrameInfo {
                wire_len: len,
                csum_not_ready: status & TP_STATUS_CSUMNOTREADY != 0,
                vlan_stripped: status & TP_STATUS_VLAN_VALID != 0,
                outgoing: slot[V2_SLL_PKTTYPE] == PACKET_OUTGOING,
                vnet,
            };
            if let Some(frame) = slot.get_mut(mac..mac + snap) {
                f(frame, info);
            }
            self.block_status(self.next_block).store(TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (self.next_block + 1) % self.slot_count;
            n += 1;
        }
        n
    }

    /// Sends the frames in `batch` with as few `sendmmsg` calls as it takes, then empties it.
    /// Returns how many frames the kernel took; frames it refused (full queue) are dropped.
    pub fn send(&self, batch: &mut TxBatch) -> usize {
        let n = batch.ends.len();
        if n == 0 {
            return 0;
        }
        let TxBatch { bytes, ends, iovs, msgs, .. } = batch;
        iovs.clear();
        let mut start = 0;
        for &end in ends.iter() {
            iovs.push(libc::iovec { iov_base: bytes[start..end].as_ptr() as *mut libc::c_void, iov_len: end - start });
            start = end;
        }
        // SAFETY: mmsghdr is a plain C struct; all zero is valid.
        msgs.resize_with(n, || unsafe { std::mem::zeroed() });
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        let mut spins = 0;
        while sent < n && spins < 4 {
            // SAFETY: msgs[..n] point at iovecs that point into `batch.bytes`, none of which
            // changes until this function returns; the socket is bound, so no address is needed.
            let rc = unsafe {
                libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr().add(sent), (n - sent) as u32, libc::MSG_DONTWAIT)
            };
            if rc <= 0 {
                spins += 1;
                continue;
            }
            sent += rc as usize;
        }
        batch.clear();
        sent
    }

    /// Waits until one of `sockets` has a ready block, or `timeout_ms` passes (-1: forever).
    /// Returns early (with no error) when a signal arrives.
    pub fn wait(sockets: &[&PacketSocket], timeout_ms: i32) -> io::Result<()> {
        let mut fds: Vec<libc::pollfd> = sockets
            .iter()
            .map(|s| libc::pollfd { fd: s.fd.as_raw_fd(), events: libc::POLLIN | libc::POLLERR, revents: 0 })
            .collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: `ring` was returned by mmap with `ring_len` and is not used after this.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_len);
        }
    }
}

/// Frames waiting to be sent on one socket, packed in one buffer.
#[derive(Default)]
pub struct TxBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    vnet_hdr: bool,
    /// `sendmmsg` arguments, kept between sends so that sending allocates nothing.
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl TxBatch {
    /// An empty batch for a socket without virtio-net headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch for a socket that has them (`vnet_hdr`) or not.
    pub fn with_vnet_hdr(vnet_hdr: bool) -> Self {
        Self { vnet_hdr, ..Self::default() }
    }

    /// Appends one frame built by `f` in a zeroed area of `len` bytes (an ordinary frame: no
    /// offload asked of the kernel).
    pub fn push_with(&mut self, len: usize, f: impl FnOnce(&mut [u8])) {
        self.push_offloaded(VnetHdr::default(), len, f);
    }

    /// Appends one frame with the offloads `hdr` asks of the kernel (checksum, segmentation);
    /// on a socket without virtio-net headers `hdr` is not sent.
    pub fn push_offloaded(&mut self, hdr: VnetHdr, len: usize, f: impl FnOnce(&mut [u8])) {
        let start = self.bytes.len();
        let lead = if self.vnet_hdr { VnetHdr::LEN } else { 0 };
        self.bytes.resize(start + lead + len, 0);
        if self.vnet_hdr {
            hdr.write(&mut self.bytes[start..]);
        }
        f(&mut self.bytes[start + lead..]);
        self.ends.push(self.bytes.len());
    }

    /// The queued frames, each with its virtio-net header first when the batch has them.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| &self.bytes[a..b])
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Forgets every frame.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// The IPv4 addresses the kernel has on `iface` (getifaddrs(3)), to refuse running beside a
/// kernel that answers ARP and sends resets for the same addresses.
pub fn kernel_ipv4_addrs(iface: &str) -> io::Result<Vec<std::net::Ipv4Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_name is a NUL-terminated C string for every node.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() == iface.as_bytes() && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points at a sockaddr of its family.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: for AF_INET the sockaddr is a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                out.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

impl std::os::fd::AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
