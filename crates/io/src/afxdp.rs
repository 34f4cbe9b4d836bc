//! Linux AF_XDP sockets (XSK) in pure Rust over `libc`: the XDP program that steers frames to
//! them, one UMEM shared by two interfaces, and the four rings of each socket.
//!
//! - [`XdpProgram`]: a five-instruction XDP program (`bpf_redirect_map(&xsks,
//!   ctx->rx_queue_index, XDP_PASS)`) and its XSKMAP, loaded with `bpf(2)` and attached with
//!   netlink (`IFLA_XDP`): native (driver) mode, generic mode as the fallback, with the
//!   kernel's reason. A program already on the interface (left by a crash) is detached first
//!   and said so. The program passes to the kernel whatever has no socket, so one left behind
//!   by a SIGKILL does not black-hole the interface. Dropping it detaches it (only if it is
//!   still ours: `XDP_FLAGS_REPLACE`).
//! - [`XdpPair`]: one UMEM (a memory area cut into 2 KiB chunks) and one socket per receive
//!   queue of each interface, all but the first bound with `XDP_SHARED_UMEM` to the first,
//!   each with its own fill and completion rings; each side sends from its queue 0 socket.
//!   A frame received on one side can be sent from the other by its UMEM address, so it is
//!   translated in place and never copied by natpass ([`TxQueue::push_received`]). Zero-copy where the driver has it, copy mode otherwise;
//!   `need_wakeup`; optional busy polling (`SO_PREFER_BUSY_POLL`).
//! - [`set_receive_offloads`]: GRO and LRO off (ethtool ioctls). AF_XDP carries frames, not
//!   super-frames: LRO (and a NIC's own GRO) merge before any XDP program runs, and generic
//!   mode runs after software GRO. Native mode runs before software GRO, so there GRO off
//!   only keeps both modes alike (on veth it changed no measured rate).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

/// What can go wrong setting up AF_XDP.
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
        /// What the kernel said.
        cause: io::Error,
    },
    /// Netlink refused to attach or detach the program.
    #[error("attaching XDP to {iface} ({mode}): {cause}{}", if .extack.is_empty() { String::new() } else { format!(" ({})", .extack) })]
    Attach {
        /// The interface.
        iface: String,
        /// "native" or "generic".
        mode: &'static str,
        /// The errno.
        cause: io::Error,
        /// The kernel's extended ack message, if any.
        extack: String,
    },
    /// The interface has more receive queues than natpass opens sockets for (one per queue,
    /// up to the XSKMAP's [`MAX_QUEUES`]): frames the NIC spread to the others would be lost.
    #[error(
        "{iface} has {queues} receive queues and AF_XDP here serves at most {MAX_QUEUES} (a socket on each), so frames on the others would be lost: \
         `ethtool -L {iface} combined {MAX_QUEUES}` (or fewer) first, or backend = \"af_packet\""
    )]
    TooManyQueues {
        /// The interface.
        iface: String,
        /// Its receive queues.
        queues: usize,
    },
    /// The verifier refused the program.
    #[error("loading the BPF program: {cause}: {log}")]
    Load {
        /// The errno.
        cause: io::Error,
        /// The verifier's log.
        log: String,
    },
}

/// How many receive queues `iface` has in use (`/sys/class/net/IF/queues/rx-N`); `None`
/// when sysfs does not say.
pub fn rx_queues(iface: &str) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{iface}/queues")).ok()?;
    Some(dir.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
}

fn sys_err(call: &'static str, iface: &str) -> Error {
    Error::Sys { call, iface: iface.to_string(), cause: io::Error::last_os_error() }
}

// ---------------------------------------------------------------------------------------------
// bpf(2)

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `xdp_md.rx_queue_index`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
const XDP_PASS: i32 = 2;
/// Entries of the XSKMAP: queue indexes served.
const XSKMAP_ENTRIES: u32 = 64;
/// The most receive queues an interface may have for AF_XDP: one socket on each.
pub const MAX_QUEUES: usize = XSKMAP_ENTRIES as usize;

/// One BPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BpfInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl BpfInsn {
    pub(crate) const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self { code, regs: (src << 4) | (dst & 0xf), off, imm }
    }

    /// The opcode.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The destination register.
    pub fn dst(&self) -> u8 {
        self.regs & 0xf
    }

    /// The source register.
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// The offset.
    pub fn off(&self) -> i16 {
        self.off
    }

    /// The immediate.
    pub fn imm(&self) -> i32 {
        self.imm
    }
}

/// The XDP program, its XSKMAP's descriptor written into the `ld_imm64`:
///
/// ```text
/// r2 = *(u32 *)(r1 + 16)     ; ctx->rx_queue_index
/// r1 = map_fd ll             ; the XSKMAP
/// r3 = 2                     ; XDP_PASS when the queue has no socket
/// call bpf_redirect_map
/// exit
/// ```
pub fn xdp_program(map_fd: RawFd) -> [BpfInsn; 6] {
    [
        // BPF_LDX | BPF_MEM | BPF_W
        BpfInsn::new(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // BPF_LD | BPF_DW | BPF_IMM, src = BPF_PSEUDO_MAP_FD; two slots
        BpfInsn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        BpfInsn::new(0, 0, 0, 0, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K
        BpfInsn::new(0xb7, 3, 0, 0, XDP_PASS),
        // BPF_JMP | BPF_CALL
        BpfInsn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // BPF_JMP | BPF_EXIT
        BpfInsn::new(0x95, 0, 0, 0, 0),
    ]
}

/// `bpf(cmd, attr, size)` over a zeroed 128-byte attribute block the caller filled.
pub(crate) fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> io::Result<i32> {
    // SAFETY: `attr` is a live 128-byte buffer; the kernel reads (and for some commands
    // writes) at most `size` bytes of it, and zero bytes past the fields it knows are valid.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as libc::c_uint) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as i32) }
}

pub(crate) fn put_u32(a: &mut [u8], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_u64(a: &mut [u8], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` is a descriptor the kernel just returned to us and nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// How the program was attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// On the generic skb path (`XDP_FLAGS_SKB_MODE`), slower.
    Generic,
}

impl AttachMode {
    fn flag(self) -> u32 {
        match self {
            AttachMode::Native => XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which attach mode to ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeChoice {
    /// Native, else generic.
    #[default]
    Auto,
    /// Native only.
    Native,
    /// Generic only.
    Generic,
}

/// The XDP program and XSKMAP on one interface; detached when dropped.
pub struct XdpProgram {
    prog: OwnedFd,
    map: OwnedFd,
    ifindex: u32,
    iface: String,
    mode: AttachMode,
    /// Set by [`XdpProgram::leak`]: the test of what a crash leaves behind.
    leaked: bool,
}

/// What [`XdpProgram::attach`] did, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachReport {
    /// The mode chosen.
    pub mode: AttachMode,
    /// Why native mode was not used, when it was not.
    pub native_refused: Option<String>,
    /// The id of a program found on the interface and replaced (left by a crash, or by
    /// another tool).
    pub replaced: Option<u32>,
}

impl XdpProgram {
    /// Creates the XSKMAP, loads the program and attaches it to `iface`, replacing any XDP
    /// program already there.
    pub fn attach(iface: &str, choice: ModeChoice) -> Result<(Self, AttachReport), Error> {
        Self::attach_with(iface, choice, None)
    }

    /// As [`XdpProgram::attach`]; with `flows` (the fast path's map), the program sends the
    /// frames of that map's flows on to the kernel and the rest to the sockets.
    pub fn attach_with(iface: &str, choice: ModeChoice, flows: Option<RawFd>) -> Result<(Self, AttachReport), Error> {
        let ifindex = if_index(iface)?;
        let map = crate::fastpath::MapSpec {
            kind: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            entries: XSKMAP_ENTRIES,
            flags: 0,
            name: "natpass_xsk",
        }
        .create(iface)?;
        let insns = match flows {
            None => xdp_program(map.as_raw_fd()).to_vec(),
            Some(f) => crate::fastpath::program::program(
                crate::fastpath::program::Variant::Xdp { xsk_map: map.as_raw_fd() },
                f,
            ),
        };
        let prog = crate::fastpath::load(crate::fastpath::BPF_PROG_TYPE_XDP, &insns, "natpass_xsk")?;
        let nl = Netlink::open().map_err(|cause| Error::Sys {
            call: "socket(NETLINK_ROUTE)",
            iface: iface.into(),
            cause,
        })?;
        let existing =
            nl.xdp_attached(ifindex).map_err(|cause| Error::Sys { call: "RTM_GETLINK", iface: iface.into(), cause })?;
        let mut replaced = None;
        if let Some((id, mode)) = existing {
            replaced = Some(id);
            // Detach in the mode it was attached in; a stale program in the other mode would
            // make the kernel refuse ours.
            let flags = match mode {
                XDP_ATTACHED_SKB => XDP_FLAGS_SKB_MODE,
                XDP_ATTACHED_HW => XDP_FLAGS_HW_MODE,
                _ => XDP_FLAGS_DRV_MODE,
            };
            nl.set_xdp(ifindex, -1, flags, None).map_err(|(cause, extack)| Error::Attach {
                iface: iface.into(),
                mode: "detaching the program found there",
                cause,
                extack,
            })?;
        }
        let try_mode = |m: AttachMode| {
            nl.set_xdp(ifindex, prog.as_raw_fd(), m.flag() | XDP_FLAGS_UPDATE_IF_NOEXIST, None)
                .map_err(|(cause, extack)| Error::Attach { iface: iface.into(), mode: m.name(), cause, extack })
        };
        let (mode, native_refused) = match choice {
            ModeChoice::Native => (try_mode(AttachMode::Native).map(|()| AttachMode::Native)?, None),
            ModeChoice::Generic => (
                try_mode(AttachMode::Generic).map(|()| AttachMode::Generic)?,
                Some("generic mode was asked for".into()),
            ),
            ModeChoice::Auto => match try_mode(AttachMode::Native) {
                Ok(()) => (AttachMode::Native, None),
                Err(e) => (try_mode(AttachMode::Generic).map(|()| AttachMode::Generic)?, Some(e.to_string())),
            },
        };
        let p = Self { prog, map, ifindex, iface: iface.into(), mode, leaked: false };
        Ok((p, AttachReport { mode, native_refused, replaced }))
    }

    /// The attach mode.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The program's id (as `ip link` and `bpftool` show it).
    pub fn id(&self) -> io::Result<u32> {
        // struct bpf_prog_info: type u32, id u32, ...
        let mut info = [0u8; 256];
        let mut a = [0u8; 128];
        put_u32(&mut a, 0, self.prog.as_raw_fd() as u32);
        put_u32(&mut a, 4, info.len() as u32);
        put_u64(&mut a, 8, info.as_mut_ptr() as u64);
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
        Ok(u32::from_ne_bytes([info[4], info[5], info[6], info[7]]))
    }

    /// Steers frames of `queue` to the socket `xsk_fd`.
    pub fn insert(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()> {
        crate::fastpath::update_elem(&self.map, &queue.to_ne_bytes(), &(xsk_fd as u32).to_ne_bytes())
    }

    /// Leaves the program attached when dropped, as a crash would (for tests).
    pub fn leak(mut self) {
        self.leaked = true;
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // Only if it is still ours: another natpass may have replaced it meanwhile.
        if let Ok(nl) = Netlink::open() {
            let _ = nl.set_xdp(self.ifindex, -1, self.mode.flag() | XDP_FLAGS_REPLACE, Some(self.prog.as_raw_fd()));
        }
        let _ = &self.iface;
    }
}

/// The id and `XDP_ATTACHED_*` mode of the XDP program on `iface`, if any.
pub fn attached_program(iface: &str) -> Result<Option<(u32, u8)>, Error> {
    let ifindex = if_index(iface)?;
    let nl =
        Netlink::open().map_err(|cause| Error::Sys { call: "socket(NETLINK_ROUTE)", iface: iface.into(), cause })?;
    nl.xdp_attached(ifindex).map_err(|cause| Error::Sys { call: "RTM_GETLINK", iface: iface.into(), cause })
}

// ---------------------------------------------------------------------------------------------
// rtnetlink: IFLA_XDP

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const NLA_F_NESTED: u16 = 1 << 15;
const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;
/// `XDP_ATTACHED_*`: what `IFLA_XDP_ATTACHED` says.
pub const XDP_ATTACHED_DRV: u8 = 1;
/// Generic (skb) mode.
pub const XDP_ATTACHED_SKB: u8 = 2;
const XDP_ATTACHED_HW: u8 = 3;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NLMSGERR_ATTR_MSG: u16 = 1;

struct Netlink {
    fd: OwnedFd,
}

fn nla(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// The attributes in `b` as (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((kind, payload))
    })
}

impl Netlink {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = owned(raw);
        let one: libc::c_int = 1;
        // Best effort: the kernel's reason in acks, without our request echoed back.
        let _ = setsockopt(raw, libc::SOL_NETLINK, NETLINK_EXT_ACK, &one);
        let _ = setsockopt(raw, libc::SOL_NETLINK, NETLINK_CAP_ACK, &one);
        Ok(Self { fd })
    }

    /// Sends one request (header filled in here) and returns the reply messages' bytes.
    fn request(&self, kind: u16, flags: u16, body: &[u8]) -> io::Result<Vec<u8>> {
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: `msg` is a live buffer of `msg.len()` bytes; the kernel address is implied.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = vec![0u8; 65536];
        // SAFETY: `reply` is a live writable buffer of `reply.len()` bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        reply.truncate(n as usize);
        Ok(reply)
    }

    fn ifinfomsg(ifindex: u32) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[0] = libc::AF_UNSPEC as u8;
        b[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
        b
    }

    /// `IFLA_XDP` with `fd` (-1 detaches) and `flags`; the errno and the kernel's message.
    fn set_xdp(&self, ifindex: u32, fd: RawFd, flags: u32, expected: Option<RawFd>) -> Result<(), (io::Error, String)> {
        let mut inner = Vec::new();
        nla(&mut inner, IFLA_XDP_FD, &fd.to_ne_bytes());
        nla(&mut inner, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
        if let Some(e) = expected {
            nla(&mut inner, IFLA_XDP_EXPECTED_FD, &e.to_ne_bytes());
        }
        let mut body = Self::ifinfomsg(ifindex);
        nla(&mut body, IFLA_XDP | NLA_F_NESTED, &inner);
        let reply = self.request(libc::RTM_SETLINK, libc::NLM_F_ACK as u16, &body).map_err(|e| (e, String::new()))?;
        // nlmsghdr, then nlmsgerr: error i32, the request's header, then extended-ack TLVs.
        if reply.len() < 20 || u16::from_ne_bytes([reply[4], reply[5]]) != libc::NLMSG_ERROR as u16 {
            return Err((io::Error::other("no netlink ack"), String::new()));
        }
        let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if err == 0 {
            return Ok(());
        }
        let len = (u32::from_ne_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize).min(reply.len());
        let tlvs = reply.get(36..len).unwrap_or(&[]);
        let msg = attrs(tlvs)
            .find(|(k, _)| *k == NLMSGERR_ATTR_MSG)
            .map(|(_, p)| String::from_utf8_lossy(p).trim_end_matches('\0').to_string())
            .unwrap_or_default();
        Err((io::Error::from_raw_os_error(-err), msg))
    }

    /// The XDP program on `ifindex`: its id and `XDP_ATTACHED_*` mode.
    fn xdp_attached(&self, ifindex: u32) -> io::Result<Option<(u32, u8)>> {
        let reply = self.request(libc::RTM_GETLINK, 0, &Self::ifinfomsg(ifindex))?;
        if reply.len() < 32 {
            return Err(io::Error::other("short RTM_GETLINK reply"));
        }
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        if kind == libc::NLMSG_ERROR as u16 {
            let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
            return Err(io::Error::from_raw_os_error(-err));
        }
        let len = (u32::from_ne_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize).min(reply.len());
        let Some((_, xdp)) = attrs(&reply[32..len]).find(|(k, _)| *k == IFLA_XDP) else { return Ok(None) };
        let mut mode = 0u8;
        let mut id = 0u32;
        for (k, p) in attrs(xdp) {
            match k {
                IFLA_XDP_ATTACHED if !p.is_empty() => mode = p[0],
                IFLA_XDP_PROG_ID if p.len() >= 4 => id = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]),
                _ => {}
            }
        }
        Ok((mode != 0).then_some((id, mode)))
    }
}

// ---------------------------------------------------------------------------------------------
// Interfaces: index, MAC, MTU, receive offloads

use crate::sys::setsockopt;

fn ifreq_for(name: &str) -> Result<libc::ifreq, Error> {
    crate::sys::ifreq_for(name).ok_or_else(|| Error::NoSuchInterface(name.to_string()))
}

fn ioctl_socket(iface: &str) -> Result<OwnedFd, Error> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(sys_err("socket(AF_INET)", iface));
    }
    Ok(owned(raw))
}

pub(crate) fn if_index(iface: &str) -> Result<u32, Error> {
    let c = CString::new(iface).map_err(|_| Error::NoSuchInterface(iface.into()))?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 { Err(Error::NoSuchInterface(iface.into())) } else { Ok(i) }
}

/// An interface's index, MAC address and MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The index.
    pub ifindex: u32,
    /// The MAC address.
    pub mac: [u8; 6],
    /// The MTU.
    pub mtu: usize,
}

/// Reads `iface`'s index, MAC address and MTU.
pub fn interface(iface: &str) -> Result<Interface, Error> {
    let ifindex = if_index(iface)?;
    let s = ioctl_socket(iface)?;
    let mut ifr = ifreq_for(iface)?;
    // SAFETY: SIOCGIFHWADDR writes a sockaddr into our ifreq.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) } < 0 {
        return Err(sys_err("SIOCGIFHWADDR", iface));
    }
    // SAFETY: the kernel filled the hwaddr member of the union.
    let hw = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(hw.iter()) {
        *m = *b as u8;
    }
    // SAFETY: SIOCGIFMTU writes the MTU into our ifreq.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) } < 0 {
        return Err(sys_err("SIOCGIFMTU", iface));
    }
    // SAFETY: the kernel filled the mtu member of the union.
    let mtu = usize::try_from(unsafe { ifr.ifr_ifru.ifru_mtu }).unwrap_or(1500);
    Ok(Interface { ifindex, mac, mtu })
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETH_FLAG_LRO: u32 = 1 << 15;

fn ethtool(s: &OwnedFd, iface: &str, cmd: u32, data: u32) -> Result<u32, Error> {
    // struct ethtool_value { u32 cmd; u32 data; }
    let mut v = [cmd, data];
    ethtool_ioctl(s, iface, &mut v)?;
    Ok(v[1])
}

/// One SIOCETHTOOL call on `iface`: `buf` starts with the command and must be as large as
/// the struct the kernel writes back for it.
fn ethtool_ioctl(s: &OwnedFd, iface: &str, buf: &mut [u32]) -> Result<(), Error> {
    let mut ifr = ifreq_for(iface)?;
    ifr.ifr_ifru.ifru_data = buf.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL reads the command from, and writes its struct into, `buf`, which
    // each caller sizes for its command and which lives until the call returns.
    if unsafe { libc::ioctl(s.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) } < 0 {
        return Err(sys_err("SIOCETHTOOL", iface));
    }
    Ok(())
}

const ETHTOOL_GDRVINFO: u32 = 0x03;

/// The name of `iface`'s driver, as `ethtool -i` gives it ("veth", "virtio_net", "ixgbe").
pub fn driver(iface: &str) -> Result<String, Error> {
    let s = ioctl_socket(iface)?;
    // struct ethtool_drvinfo: u32 cmd, then driver[32], version[32], fw_version[32],
    // bus_info[32], erom_version[32], reserved2[12] and five u32: 196 bytes.
    let mut info = [0u32; 49];
    info[0] = ETHTOOL_GDRVINFO;
    ethtool_ioctl(&s, iface, &mut info)?;
    let bytes: Vec<u8> = info[1..9].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// Receive offloads of one interface (GRO and LRO), to restore them later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveOffloads {
    /// GRO was on.
    pub gro: bool,
    /// LRO was on.
    pub lro: bool,
}

/// Turns GRO and LRO on `iface` on or off (as in `ReceiveOffloads`); returns what they were.
/// AF_XDP hands over single frames, and a merged super-frame would not fit a UMEM chunk.
/// LRO merges in the NIC, before any XDP program; software GRO merges before a generic-mode
/// program but after a native one (for which only LRO matters). LRO is left alone when the
/// driver has no such flag.
pub fn set_receive_offloads(iface: &str, want: ReceiveOffloads) -> Result<ReceiveOffloads, Error> {
    let s = ioctl_socket(iface)?;
    let gro = ethtool(&s, iface, ETHTOOL_GGRO, 0)? != 0;
    if gro != want.gro {
        ethtool(&s, iface, ETHTOOL_SGRO, u32::from(want.gro))?;
    }
    let flags = ethtool(&s, iface, ETHTOOL_GFLAGS, 0).unwrap_or(0);
    let lro = flags & ETH_FLAG_LRO != 0;
    if lro != want.lro {
        let f = if want.lro { flags | ETH_FLAG_LRO } else { flags & !ETH_FLAG_LRO };
        ethtool(&s, iface, ETHTOOL_SFLAGS, f)?;
    }
    Ok(ReceiveOffloads { gro, lro })
}

// ---------------------------------------------------------------------------------------------
// Rings

/// One mmapped ring: a producer and a consumer index, flags, and `size` entries.
struct Ring {
    map: *mut u8,
    map_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    /// Our copy of the index we write.
    local: u32,
    /// The other side's index as last read.
    cached: u32,
}

impl Ring {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: i64,
        iface: &str,
    ) -> Result<Self, Error> {
        let map_len = off.desc as usize + size as usize * entry;
        // SAFETY: maps the ring the kernel allocated for this socket at `pgoff`; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(sys_err("mmap(xsk ring)", iface));
        }
        let map = map.cast::<u8>();
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the mapping; the
        // index words are 4-byte aligned and shared with the kernel, so only used atomically.
        let (producer, consumer, flags, desc) = unsafe {
            (
                map.add(off.producer as usize).cast::<AtomicU32>().cast_const(),
                map.add(off.consumer as usize).cast::<AtomicU32>().cast_const(),
                map.add(off.flags as usize).cast::<AtomicU32>().cast_const(),
                map.add(off.desc as usize),
            )
        };
        Ok(Self { map, map_len, producer, consumer, flags, desc, mask: size - 1, local: 0, cached: 0 })
    }

    fn atomic(&self, p: *const AtomicU32) -> &AtomicU32 {
        // SAFETY: `p` points at an index word inside our live mapping (see `map`).
        unsafe { &*p }
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }

    fn needs_wakeup(&self) -> bool {
        self.atomic(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // Producer side (fill, TX): `local` is our producer, `cached` the kernel's consumer.

    fn free_entries(&mut self, want: u32) -> u32 {
        let mut free = self.size() - self.local.wrapping_sub(self.cached);
        if free < want {
            self.cached = self.atomic(self.consumer).load(Ordering::Acquire);
            free = self.size() - self.local.wrapping_sub(self.cached);
        }
        free
    }

    fn submit(&mut self) {
        self.atomic(self.producer).store(self.local, Ordering::Release);
    }

    /// Outstanding entries the kernel has not consumed yet (producer rings).
    fn outstanding(&mut self) -> u32 {
        self.cached = self.atomic(self.consumer).load(Ordering::Acquire);
        self.local.wrapping_sub(self.cached)
    }

    // Consumer side (RX, completion): `local` is our consumer, `cached` the kernel's producer.

    fn available(&mut self) -> u32 {
        let mut n = self.cached.wrapping_sub(self.local);
        if n == 0 {
            self.cached = self.atomic(self.producer).load(Ordering::Acquire);
            n = self.cached.wrapping_sub(self.local);
        }
        n
    }

    fn release(&mut self) {
        self.atomic(self.consumer).store(self.local, Ordering::Release);
    }

    fn addr_slot(&self, idx: u32) -> *mut u64 {
        // SAFETY: `idx & mask` < size, and the descriptor area holds `size` u64 entries.
        unsafe { self.desc.cast::<u64>().add((idx & self.mask) as usize) }
    }

    fn desc_slot(&self, idx: u32) -> *mut libc::xdp_desc {
        // SAFETY: `idx & mask` < size, and the descriptor area holds `size` xdp_desc entries.
        unsafe { self.desc.cast::<libc::xdp_desc>().add((idx & self.mask) as usize) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map` was returned by mmap with `map_len` and is not used after this.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// UMEM and sockets

/// The UMEM's memory, unmapped when the last user drops it.
struct Area {
    base: *mut u8,
    len: usize,
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `base` was returned by mmap with `len`; the sockets that pinned it are closed
        // before (fields drop after `XdpPair`'s sockets), and no slice into it outlives this.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// Geometry and behaviour of an [`XdpPair`].
#[derive(Clone, Copy, Debug)]
pub struct XdpOptions {
    /// UMEM chunks (2 KiB each) in all.
    pub frames: u32,
    /// Entries of each RX, TX, fill and completion ring (a power of two).
    pub ring_size: u32,
    /// Native or generic XDP.
    pub mode: ModeChoice,
    /// Try zero-copy first (falls back to copy mode when the driver has none).
    pub zero_copy: bool,
    /// Busy polling: `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` (µs) and `SO_BUSY_POLL_BUDGET`
    /// on the sockets, so that `wake` runs the driver's NAPI in this thread.
    pub busy_poll: Option<(u32, u32)>,
    /// The kernel fast path's flow map: frames of its flows go on to the kernel (where its tc
    /// program forwards them) instead of to the sockets ([`crate::fastpath`]).
    pub flows: Option<RawFd>,
}

impl Default for XdpOptions {
    fn default() -> Self {
        Self { frames: 8192, ring_size: 2048, mode: ModeChoice::Auto, zero_copy: true, busy_poll: None, flows: None }
    }
}

/// The size of a UMEM chunk.
pub const CHUNK: usize = 2048;

const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// One AF_XDP socket and its four rings.
struct Xsk {
    fd: OwnedFd,
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    iface: String,
    /// Frames received on this socket.
    received: u64,
}

impl Xsk {
    /// A socket on `iface` queue `queue`: its rings, bound; `shared` is the socket whose UMEM
    /// it shares (None: register `area` as a new UMEM).
    fn open(
        iface: &str,
        ifindex: u32,
        queue: u32,
        area: &Area,
        opts: &XdpOptions,
        bind_flags: u16,
        shared: Option<RawFd>,
    ) -> Result<Self, Error> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys_err("socket(AF_XDP)", iface));
        }
        let fd = owned(raw);
        if shared.is_none() {
            let reg = libc::xdp_umem_reg {
                addr: area.base as u64,
                len: area.len as u64,
                chunk_size: CHUNK as u32,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            if setsockopt(raw, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg) < 0 {
                return Err(sys_err("XDP_UMEM_REG", iface));
            }
        }
        let n = opts.ring_size;
        for (opt, name) in [
            (libc::XDP_UMEM_FILL_RING, "XDP_UMEM_FILL_RING"),
            (libc::XDP_UMEM_COMPLETION_RING, "XDP_UMEM_COMPLETION_RING"),
            (libc::XDP_RX_RING, "XDP_RX_RING"),
            (libc::XDP_TX_RING, "XDP_TX_RING"),
        ] {
            if setsockopt(raw, libc::SOL_XDP, opt, &n) < 0 {
                return Err(sys_err(name, iface));
            }
        }
        // SAFETY: xdp_mmap_offsets is plain integers; all zero is valid.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `off`.
        let rc = unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(sys_err("XDP_MMAP_OFFSETS", iface));
        }
        let desc = size_of::<libc::xdp_desc>();
        let rx = Ring::map(raw, &off.rx, n, desc, libc::XDP_PGOFF_RX_RING, iface)?;
        let tx = Ring::map(raw, &off.tx, n, desc, libc::XDP_PGOFF_TX_RING, iface)?;
        let fill = Ring::map(raw, &off.fr, n, 8, libc::XDP_UMEM_PGOFF_FILL_RING as i64, iface)?;
        let comp = Ring::map(raw, &off.cr, n, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING as i64, iface)?;
        if let Some((usecs, budget)) = opts.busy_poll {
            let one: libc::c_int = 1;
            let (usecs, budget) = (usecs as libc::c_int, budget as libc::c_int);
            for (name, v, what) in [
                (SO_PREFER_BUSY_POLL, &one, "SO_PREFER_BUSY_POLL"),
                (SO_BUSY_POLL, &usecs, "SO_BUSY_POLL"),
                (SO_BUSY_POLL_BUDGET, &budget, "SO_BUSY_POLL_BUDGET"),
            ] {
                if setsockopt(raw, libc::SOL_SOCKET, name, v) < 0 {
                    return Err(sys_err(what, iface));
                }
            }
        }
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: if shared.is_some() { libc::XDP_SHARED_UMEM } else { bind_flags },
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared.map_or(0, |f| f as u32),
        };
        // SAFETY: binds to a sockaddr_xdp of the size given.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sxdp as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(sys_err("bind(AF_XDP)", iface));
        }
        Ok(Self { fd, rx, tx, fill, comp, iface: iface.into(), received: 0 })
    }

    /// Kicks the kernel to send what the TX ring holds (copy mode sends only on a kick).
    fn kick_tx(&self) {
        // SAFETY: sendto with no data on a bound AF_XDP socket only wakes its transmit path.
        unsafe {
            libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0);
        }
    }

    /// Wakes the receive path (fill ring refilled, or busy polling).
    fn kick_rx(&self) {
        // SAFETY: recvfrom with no buffer on a bound AF_XDP socket only drives its receive
        // path (and busy polls when enabled); no data is written.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    fn statistics(&self) -> io::Result<libc::xdp_statistics> {
        // SAFETY: xdp_statistics is plain integers; all zero is valid.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(st) }
    }
}

/// Where a frame handed out by [`XdpPair::receive`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done with it: the chunk goes back to the fill ring.
    Recycle,
    /// It was queued for sending ([`TxQueue::push_received`]): the chunk comes back through
    /// a completion ring.
    Sent,
}

/// Frames waiting to leave by one socket: received frames sent from where they lie, and
/// frames built in spare UMEM chunks. Made by [`XdpPair::tx_queue`].
pub struct TxQueue {
    area: Rc<Area>,
    /// Chunks this queue may build frames in.
    spare: Vec<u64>,
    /// (UMEM address, length) to put on the TX ring.
    pending: Vec<(u64, u32)>,
    /// A received frame was queued since the last [`TxQueue::take_sent_received`].
    sent_received: bool,
    /// Frames not queued: no spare chunk.
    pub no_buffer: u64,
}

/// Spare chunks a [`TxQueue`] keeps for frames it builds (ARP, pings, ICMP errors).
const SPARE: usize = 64;

impl TxQueue {
    /// Queues a frame of `len` bytes built by `fill` in a zeroed spare chunk; false (and the
    /// frame is lost) when none is left or it does not fit.
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        if len > CHUNK {
            self.no_buffer += 1;
            return false;
        }
        let Some(addr) = self.spare.pop() else {
            self.no_buffer += 1;
            return false;
        };
        // SAFETY: `addr` is a chunk this queue owns (from the pair's free list, not on any ring
        // and not handed out elsewhere), `addr + CHUNK <= area.len`, so the slice is in bounds
        // and aliases nothing else.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.area.base.add(addr as usize), len) };
        buf.fill(0);
        fill(buf);
        self.pending.push((addr, len as u32));
        true
    }

    /// Queues `frame` without copying it when it lies in this UMEM (a frame
    /// [`XdpPair::receive`] handed out, already rewritten in place); false when it does not.
    pub fn push_received(&mut self, frame: &[u8]) -> bool {
        let Some(addr) = self.umem_addr(frame) else { return false };
        self.pending.push((addr, frame.len() as u32));
        self.sent_received = true;
        true
    }

    /// The UMEM address of `frame`, when it lies inside one chunk of this UMEM.
    pub fn umem_addr(&self, frame: &[u8]) -> Option<u64> {
        let start = (frame.as_ptr() as usize).checked_sub(self.area.base as usize)?;
        let end = start.checked_add(frame.len())?;
        (end <= self.area.len && start / CHUNK == (end.max(1) - 1) / CHUNK).then_some(start as u64)
    }

    /// True once after a received frame was queued (the driver then does not recycle it).
    pub fn take_sent_received(&mut self) -> bool {
        std::mem::take(&mut self.sent_received)
    }

    /// The (UMEM address, length) of the frames queued and not yet on the ring.
    pub fn pending(&self) -> &[(u64, u32)] {
        &self.pending
    }

    /// The frames queued and not yet on the ring, in order (for a capture of what leaves).
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.pending.iter().map(|&(addr, len)| {
            // SAFETY: every pending (addr, len) lies inside one chunk of this UMEM (push_with:
            // a spare chunk with len <= CHUNK; push_received: checked by umem_addr). The chunk
            // is on no ring until XdpPair::transmit takes it, so the kernel does not write it,
            // and `&self` keeps this queue from writing it while the slice lives.
            unsafe { std::slice::from_raw_parts(self.area.base.add(addr as usize), len as usize) }
        })
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Counters of an [`XdpPair`] per side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames received.
    pub rx: u64,
    /// Frames put on the TX ring.
    pub tx: u64,
    /// Frames not sent: the TX ring was full.
    pub tx_ring_full: u64,
    /// Frames the kernel dropped (`XDP_STATISTICS`: no fill-ring chunk, RX ring full).
    pub kernel_rx_dropped: u64,
    /// TX kicks (sendto).
    pub tx_kicks: u64,
    /// Sent chunks the kernel gave back (completion ring).
    pub completed: u64,
}

/// AF_XDP sockets on two interfaces (LAN = 0, WAN = 1), one per receive queue, on one shared
/// UMEM, with the XDP program on each interface. A side sends from its queue 0 socket.
pub struct XdpPair {
    // Field order is drop order: sockets, then programs (detached), then the memory.
    /// Per side, the socket of each receive queue (index = queue).
    socks: [Vec<Xsk>; 2],
    /// Per side, the queue [`XdpPair::receive`] looks at first next time (round robin).
    next_queue: [usize; 2],
    progs: [XdpProgram; 2],
    area: Rc<Area>,
    /// Chunks owned by no ring and no queue.
    free: Vec<u64>,
    zero_copy: bool,
    busy_poll: bool,
    reports: [AttachReport; 2],
    stats: [XdpStats; 2],
    /// Addresses of received frames being handled, for [`XdpPair::receive`].
    batch: Vec<(u64, u32)>,
}

/// Frames taken from an RX ring per [`XdpPair::receive`] call.
pub const RX_BATCH: u32 = 64;
/// Frames copy-mode transmit sends per kick (the kernel's `TX_BATCH_SIZE`).
const TX_PER_KICK: u32 = 32;

impl XdpPair {
    /// Attaches the program to `ifaces` (LAN, WAN) and opens a socket on each of their receive
    /// queues, all on one UMEM of `opts.frames` chunks per queue of the side with more.
    pub fn open(ifaces: [&str; 2], opts: XdpOptions) -> Result<Self, Error> {
        if !opts.ring_size.is_power_of_two() || opts.frames < 4 * opts.ring_size {
            return Err(Error::Sys {
                call: "XdpOptions",
                iface: ifaces[0].into(),
                cause: io::Error::other("ring_size must be a power of two and frames at least 4 × ring_size"),
            });
        }
        let idx = [if_index(ifaces[0])?, if_index(ifaces[1])?];
        let mut queues = [1usize; 2];
        for (q, iface) in queues.iter_mut().zip(ifaces) {
            *q = rx_queues(iface).unwrap_or(1).max(1);
            if *q > MAX_QUEUES {
                return Err(Error::TooManyQueues { iface: iface.into(), queues: *q });
            }
        }
        // Every socket's fill ring takes up to half a ring of chunks: the UMEM grows with the
        // queues, so that transmit always has chunks left.
        let frames = opts.frames as usize * queues[0].max(queues[1]);
        let len = frames * CHUNK;
        // SAFETY: an anonymous private mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(sys_err("mmap(UMEM)", ifaces[0]));
        }
        let area = Rc::new(Area { base: base.cast(), len });
        let (p0, r0) = XdpProgram::attach_with(ifaces[0], opts.mode, opts.flows)?;
        let (p1, r1) = XdpProgram::attach_with(ifaces[1], opts.mode, opts.flows)?;
        let copy = libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP;
        let zc = libc::XDP_ZEROCOPY | libc::XDP_USE_NEED_WAKEUP;
        let (first, zero_copy) = match opts.zero_copy {
            true => match Xsk::open(ifaces[0], idx[0], 0, &area, &opts, zc, None) {
                Ok(s) => (s, true),
                Err(_) => (Xsk::open(ifaces[0], idx[0], 0, &area, &opts, copy, None)?, false),
            },
            false => (Xsk::open(ifaces[0], idx[0], 0, &area, &opts, copy, None)?, false),
        };
        let owner = first.fd.as_raw_fd();
        let mut socks: [Vec<Xsk>; 2] = [vec![first], Vec::new()];
        for side in 0..2 {
            for q in socks[side].len()..queues[side] {
                let sock = Xsk::open(ifaces[side], idx[side], q as u32, &area, &opts, 0, Some(owner))?;
                socks[side].push(sock);
            }
        }
        for ((prog, iface), side) in [&p0, &p1].into_iter().zip(ifaces).zip(&socks) {
            for (q, sock) in side.iter().enumerate() {
                prog.insert(q as u32, sock.fd.as_raw_fd()).map_err(|cause| Error::Sys {
                    call: "XSKMAP update",
                    iface: iface.into(),
                    cause,
                })?;
            }
        }
        let free: Vec<u64> = (0..frames as u64).rev().map(|i| i * CHUNK as u64).collect();
        let mut pair = Self {
            socks,
            next_queue: [0; 2],
            progs: [p0, p1],
            area,
            free,
            zero_copy,
            busy_poll: opts.busy_poll.is_some(),
            reports: [r0, r1],
            stats: [XdpStats::default(); 2],
            batch: Vec::with_capacity(RX_BATCH as usize),
        };
        // Half of each fill ring to start with; the rest of the chunks stay free for TX.
        for side in 0..2 {
            for q in 0..pair.socks[side].len() {
                pair.refill(side, q, opts.ring_size / 2);
            }
        }
        Ok(pair)
    }

    /// What attaching the program did on each side.
    pub fn reports(&self) -> &[AttachReport; 2] {
        &self.reports
    }

    /// The programs (ids, modes).
    pub fn programs(&self) -> &[XdpProgram; 2] {
        &self.progs
    }

    /// True when the sockets run zero-copy, false in copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Counters per side, with the kernel's drops (all queues).
    pub fn stats(&self) -> [XdpStats; 2] {
        let mut s = self.stats;
        for (st, side) in s.iter_mut().zip(&self.socks) {
            st.kernel_rx_dropped = side
                .iter()
                .filter_map(|sock| sock.statistics().ok())
                .map(|k| k.rx_dropped + k.rx_ring_full + k.rx_fill_ring_empty_descs)
                .sum();
        }
        s
    }

    /// The receive queues served on each side (a socket on each).
    pub fn queues(&self) -> [usize; 2] {
        [self.socks[0].len(), self.socks[1].len()]
    }

    /// Frames received on each queue of `side` so far, by queue.
    pub fn received_by_queue(&self, side: usize) -> Vec<u64> {
        self.socks[side].iter().map(|s| s.received).collect()
    }

    /// A transmit queue for one side, with spare chunks from the free list.
    pub fn tx_queue(&mut self) -> TxQueue {
        let mut q = TxQueue {
            area: Rc::clone(&self.area),
            spare: Vec::new(),
            pending: Vec::new(),
            sent_received: false,
            no_buffer: 0,
        };
        self.top_up(&mut q);
        q
    }

    fn top_up(&mut self, q: &mut TxQueue) {
        while q.spare.len() < SPARE {
            match self.free.pop() {
                Some(a) => q.spare.push(a),
                None => break,
            }
        }
    }

    /// Puts up to `want` free chunks on the fill ring of `side`'s queue `q`.
    fn refill(&mut self, side: usize, q: usize, want: u32) {
        let fill = &mut self.socks[side][q].fill;
        let n = fill.free_entries(want).min(want).min(self.free.len() as u32);
        for _ in 0..n {
            let Some(a) = self.free.pop() else { break };
            // SAFETY: the slot is one of the ring's entries and ours to write (free_entries).
            unsafe { fill.addr_slot(fill.local).write(a) };
            fill.local = fill.local.wrapping_add(1);
        }
        if n > 0 {
            fill.submit();
        }
    }

    /// True when an RX ring of `side` has frames (no system call).
    pub fn ready(&mut self, side: usize) -> bool {
        self.socks[side].iter_mut().any(|s| s.rx.available() > 0)
    }

    /// Hands up to [`RX_BATCH`] received frames of `side` to `f`, each as a mutable slice of
    /// its UMEM chunk; `f` says whether it queued the frame for sending. Returns how many.
    /// The frames come from one receive queue, the queues taken in turn.
    pub fn receive(&mut self, side: usize, mut f: impl FnMut(&mut [u8]) -> Disposition) -> usize {
        let queues = self.socks[side].len();
        let start = self.next_queue[side];
        let Some(q) = (0..queues).map(|i| (start + i) % queues).find(|&q| self.socks[side][q].rx.available() > 0)
        else {
            return 0;
        };
        self.next_queue[side] = (q + 1) % queues;
        let rx = &mut self.socks[side][q].rx;
        let n = rx.available().min(RX_BATCH);
        self.batch.clear();
        for i in 0..n {
            // SAFETY: entries [local, local + n) were produced by the kernel (available).
            let d = unsafe { rx.desc_slot(rx.local.wrapping_add(i)).read() };
            self.batch.push((d.addr, d.len));
        }
        rx.local = rx.local.wrapping_add(n);
        rx.release();
        let mut batch = std::mem::take(&mut self.batch);
        for &(addr, len) in &batch {
            let chunk = addr & !(CHUNK as u64 - 1);
            let ok = (addr as usize).saturating_add(len as usize) <= (chunk as usize + CHUNK).min(self.area.len);
            let disposition = if ok {
                // SAFETY: the kernel handed this chunk to us on the RX ring; it is on no ring
                // until we put it back, the range lies within one chunk of the live area, and
                // no other slice into it exists while `f` runs.
                let frame = unsafe { std::slice::from_raw_parts_mut(self.area.base.add(addr as usize), len as usize) };
                f(frame)
            } else {
                Disposition::Recycle
            };
            if disposition == Disposition::Recycle {
                self.free.push(chunk);
            }
        }
        self.stats[side].rx += u64::from(n);
        self.socks[side][q].received += u64::from(n);
        batch.clear();
        self.batch = batch;
        self.refill(side, q, n.max(RX_BATCH));
        if self.socks[side][q].fill.needs_wakeup() || self.busy_poll {
            self.socks[side][q].kick_rx();
        }
        n as usize
    }

    /// Puts `q`'s frames on `side`'s TX ring and kicks the kernel; frames that do not fit are
    /// dropped (their chunks freed). Also takes back completed chunks and tops `q` up with
    /// spare ones. Returns (queued, sent).
    pub fn transmit(&mut self, side: usize, q: &mut TxQueue) -> (usize, usize) {
        self.complete(side);
        let queued = q.pending.len();
        let sock = &mut self.socks[side][0];
        let n = sock.tx.free_entries(queued as u32).min(queued as u32) as usize;
        for &(addr, len) in &q.pending[..n] {
            let d = libc::xdp_desc { addr, len, options: 0 };
            // SAFETY: the slot is one of the ring's entries and ours to write (free_entries).
            unsafe { sock.tx.desc_slot(sock.tx.local).write(d) };
            sock.tx.local = sock.tx.local.wrapping_add(1);
        }
        for &(addr, _) in &q.pending[n..] {
            self.free.push(addr & !(CHUNK as u64 - 1));
        }
        q.pending.clear();
        if n > 0 {
            sock.tx.submit();
        }
        self.stats[side].tx += n as u64;
        self.stats[side].tx_ring_full += (queued - n) as u64;
        self.kick(side);
        self.top_up(q);
        (queued, n)
    }

    /// Drives copy-mode transmit: one kick per 32 frames still on the TX ring.
    fn kick(&mut self, side: usize) {
        let sock = &mut self.socks[side][0];
        let outstanding = sock.tx.outstanding();
        if outstanding == 0 || !(sock.tx.needs_wakeup() || self.busy_poll) {
            return;
        }
        for _ in 0..outstanding.div_ceil(TX_PER_KICK).min(8) {
            sock.kick_tx();
            self.stats[side].tx_kicks += 1;
        }
    }

    /// Takes completed TX chunks of `side` back into the free list (only its queue 0 socket
    /// sends).
    fn complete(&mut self, side: usize) {
        let comp = &mut self.socks[side][0].comp;
        let n = comp.available();
        for i in 0..n {
            // SAFETY: entries [local, local + n) were produced by the kernel (available).
            let a = unsafe { comp.addr_slot(comp.local.wrapping_add(i)).read() };
            self.free.push(a & !(CHUNK as u64 - 1));
        }
        if n > 0 {
            comp.local = comp.local.wrapping_add(n);
            comp.release();
            self.stats[side].completed += u64::from(n);
        }
    }

    /// Housekeeping when idle: completions taken back, TX kicked, fill rings topped up.
    pub fn service(&mut self) {
        for side in 0..2 {
            self.complete(side);
            self.kick(side);
            for q in 0..self.socks[side].len() {
                let want = self.socks[side][q].fill.size();
                self.refill(side, q, want / 2);
            }
        }
    }

    /// Waits until a socket has frames or `timeout_ms` passes; returns early on a signal.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .socks
            .iter()
            .flatten()
            .map(|s| libc::pollfd { fd: s.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
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

    /// Busy-polls both sockets once (drives NAPI in this thread when busy polling is on).
    pub fn poll_once(&self) {
        for s in self.socks.iter().flatten() {
            s.kick_rx();
        }
    }

    /// Chunks on no ring and in no queue.
    pub fn free_chunks(&self) -> usize {
        self.free.len()
    }

    /// The interface names.
    pub fn names(&self) -> [&str; 2] {
        [&self.socks[0][0].iface, &self.socks[1][0].iface]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_program_is_five_instructions_and_a_map() {
        let p = xdp_program(7);
        assert_eq!(p.len(), 6);
        assert_eq!(size_of::<BpfInsn>(), 8);
        // ld_imm64 with the map fd as a pseudo map fd in src_reg.
        assert_eq!((p[1].code, p[1].regs, p[1].imm), (0x18, 0x11, 7));
        // r3 = XDP_PASS, the action when the queue has no socket (no black hole).
        assert_eq!((p[3].code, p[3].regs & 0xf, p[3].imm), (0xb7, 3, XDP_PASS));
        assert_eq!(p[4].imm, BPF_FUNC_REDIRECT_MAP);
        assert_eq!(p[5].code, 0x95);
    }

    #[test]
    fn netlink_attributes_are_padded_and_read_back() {
        let mut b = Vec::new();
        nla(&mut b, IFLA_XDP_ATTACHED, &[1]);
        nla(&mut b, IFLA_XDP_PROG_ID, &42u32.to_ne_bytes());
        assert_eq!(b.len(), 16);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(k, p)| (k, p.to_vec())).collect();
        assert_eq!(got, vec![(IFLA_XDP_ATTACHED, vec![1]), (IFLA_XDP_PROG_ID, 42u32.to_ne_bytes().to_vec())]);
        // Truncated input ends the walk instead of reading past it.
        assert_eq!(attrs(&b[..10]).count(), 1);
    }
}
