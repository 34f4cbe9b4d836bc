//! The kernel fast path for established flows (flow offload), in pure Rust over `bpf(2)`.
//!
//! natpass's engine decides everything: which flows exist, how each is translated, when it
//! ends. For a plain NAPT flow it has seen answered (UDP, ICMP echo) or established (TCP),
//! natpass writes the translation of each direction into a BPF hash map, and a tc program on
//! the ingress of both interfaces (tcx, attached by a link that the kernel removes when natpass
//! exits, even by SIGKILL) translates the flow's later packets itself and redirects them to the
//! other interface, without waking natpass. Whatever the map does not hold exactly, and every
//! packet that could change the engine's state (TCP SYN, FIN, RST, fragments, IP options,
//! TTL 1, a bad checksum or length, a VPN protocol), goes on to natpass as before. This is what
//! Linux's nftables flowtable does for conntrack (its "fast path"), with the same trade: TCP
//! sequence windows are not checked for offloaded connections.
//!
//! - [`FlowKey`], [`FlowAction`]: one direction's map entry, encoded as the program reads it
//!   ([`program`] has the layout and the program itself).
//! - [`FastPath`]: the map, the tc program attached to the two interfaces, and the socket
//!   filter (AF_PACKET sees frames before tc, so the filter keeps what tc forwards out of
//!   natpass's sockets). For AF_XDP, natpass's XDP program classifies the same way
//!   ([`program::Variant::Xdp`]).
//! - [`FastPath::scan`]: every entry's packet and byte counters and the time of its last
//!   packet, read in batches, so that natpass keeps its sessions alive and counted.
//!
//! The checksum differences are RFC 1624 incremental updates, computed once per flow here.
#![allow(unsafe_code)]

pub mod program;

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::afxdp::{BpfInsn, Error, bpf, if_index, owned, put_u32, put_u64};

// The bpf(2) commands (shared with `afxdp`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_TCX_INGRESS: u32 = 46;
/// Addresses the tc program answers ARP for, at most.
const ARP_ENTRIES: u32 = 64;
const SO_ATTACH_BPF: libc::c_int = 50;

/// One direction of a flow as it arrives: the map's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The interface it arrives on.
    pub ifindex: u32,
    /// Its source address.
    pub src: Ipv4Addr,
    /// Its destination address.
    pub dst: Ipv4Addr,
    /// The IP protocol: 6, 17 or 1.
    pub protocol: u8,
    /// TCP/UDP: the source port; ICMP echo: the identifier.
    pub sport: u16,
    /// TCP/UDP: the destination port; ICMP echo: type and code (8, 0 for a request).
    pub dport: u16,
}

impl FlowKey {
    /// The key's bytes as the program builds them.
    pub fn encode(&self) -> [u8; program::KEY_SIZE as usize] {
        let mut k = [0u8; program::KEY_SIZE as usize];
        k[0..4].copy_from_slice(&self.src.octets());
        k[4..8].copy_from_slice(&self.dst.octets());
        k[8..10].copy_from_slice(&self.sport.to_be_bytes());
        k[10..12].copy_from_slice(&self.dport.to_be_bytes());
        k[12] = self.protocol;
        k[16..20].copy_from_slice(&self.ifindex.to_ne_bytes());
        k
    }

    /// The key of `bytes`, as [`FlowKey::encode`] wrote them.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; program::KEY_SIZE as usize] = b.get(..program::KEY_SIZE as usize)?.try_into().ok()?;
        Some(Self {
            src: Ipv4Addr::new(b[0], b[1], b[2], b[3]),
            dst: Ipv4Addr::new(b[4], b[5], b[6], b[7]),
            sport: u16::from_be_bytes([b[8], b[9]]),
            dport: u16::from_be_bytes([b[10], b[11]]),
            protocol: b[12],
            ifindex: u32::from_ne_bytes([b[16], b[17], b[18], b[19]]),
        })
    }
}

/// What the program does to a packet of a [`FlowKey`]: its new addresses and ports, the MAC
/// addresses, the interface it leaves by, that interface's MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowAction {
    /// The new source address.
    pub src: Ipv4Addr,
    /// The new destination address.
    pub dst: Ipv4Addr,
    /// The new source port (ICMP: the new identifier).
    pub sport: u16,
    /// The new destination port (ICMP: unused).
    pub dport: u16,
    /// The interface it leaves by.
    pub ifindex: u32,
    /// The next hop's MAC address.
    pub dst_mac: [u8; 6],
    /// The egress interface's MAC address.
    pub src_mac: [u8; 6],
    /// The egress interface's MTU (IP bytes).
    pub mtu: u16,
}

/// The 16-bit words of `b`, as the checksum sums them (native order, RFC 1071 §2 (B)).
fn words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks(2).map(|c| u32::from(u16::from_ne_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
}

/// The ones' complement difference that turns a checksum over `old` into one over `new`
/// (RFC 1624 eqn. 3: add ~m and m'), folded to 16 bits, as `csum_replace_by_diff` takes it.
fn diff(old: &[u8], new: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for w in words(old) {
        sum += !w & 0xffff;
    }
    for w in words(new) {
        sum += w;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

impl FlowAction {
    /// The value's bytes for a packet of `key`: the translation and the precomputed checksum
    /// differences (the TTL's decrement included in the IPv4 header's).
    pub fn encode(&self, key: &FlowKey) -> [u8; program::VALUE_SIZE as usize] {
        let mut v = [0u8; program::VALUE_SIZE as usize];
        let at = |o: i16| o as usize;
        let old_addrs = [key.src.octets(), key.dst.octets()].concat();
        let new_addrs = [self.src.octets(), self.dst.octets()].concat();
        v[at(program::V_ADDRS)..at(program::V_ADDRS) + 8].copy_from_slice(&new_addrs);
        let icmp = key.protocol == 1;
        // ICMP echo: the identifier changes; the type and code stay.
        let (old_ports, new_ports) = if icmp {
            (key.sport.to_be_bytes().to_vec(), self.sport.to_be_bytes().to_vec())
        } else {
            (
                [key.sport.to_be_bytes(), key.dport.to_be_bytes()].concat(),
                [self.sport.to_be_bytes(), self.dport.to_be_bytes()].concat(),
            )
        };
        let p = at(program::V_PORTS);
        v[p..p + 2].copy_from_slice(&self.sport.to_be_bytes());
        v[p + 2..p + 4].copy_from_slice(&if icmp { key.dport } else { self.dport }.to_be_bytes());
        v[at(program::V_IFINDEX)..at(program::V_IFINDEX) + 4].copy_from_slice(&self.ifindex.to_ne_bytes());
        let m = at(program::V_MACS);
        v[m..m + 6].copy_from_slice(&self.dst_mac);
        v[m + 6..m + 12].copy_from_slice(&self.src_mac);
        // TTL - 1 in the TTL/protocol word: ~x + (x - 1) = 0xfffe whatever the TTL (> 1).
        let mut l3 = diff(&old_addrs, &new_addrs) + 0xfffe;
        while l3 > 0xffff {
            l3 = (l3 & 0xffff) + (l3 >> 16);
        }
        let put = |v: &mut [u8], o: i16, x: u32| v[at(o)..at(o) + 4].copy_from_slice(&x.to_ne_bytes());
        put(&mut v, program::V_L3_DIFF, l3);
        // ICMP has no pseudo-header.
        put(&mut v, program::V_PSEUDO_DIFF, if icmp { 0 } else { diff(&old_addrs, &new_addrs) });
        put(&mut v, program::V_L4_DIFF, diff(&old_ports, &new_ports));
        v[at(program::V_MTU)..at(program::V_MTU) + 2].copy_from_slice(&self.mtu.to_ne_bytes());
        v
    }
}

/// What the program counted for one entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded, Ethernet headers included.
    pub bytes: u64,
    /// `CLOCK_MONOTONIC` of the last one, in nanoseconds (0: none yet).
    pub last_ns: u64,
}

impl FlowCounters {
    fn decode(v: &[u8]) -> Self {
        let u64_at = |o: i16| {
            let o = o as usize;
            v.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes).unwrap_or(0)
        };
        Self {
            packets: u64_at(program::V_PACKETS),
            bytes: u64_at(program::V_BYTES),
            last_ns: u64_at(program::V_LAST_NS),
        }
    }
}

/// A BPF map to create (`BPF_MAP_CREATE`).
pub(crate) struct MapSpec {
    /// `BPF_MAP_TYPE_*`.
    pub(crate) kind: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    /// Entries at most.
    pub(crate) entries: u32,
    /// `BPF_F_*`.
    pub(crate) flags: u32,
    /// Its name (as `bpftool` shows it), at most 15 bytes.
    pub(crate) name: &'static str,
}

/// `BPF_MAP_UPDATE_ELEM`: `key` to `value` in `map` (each as long as the map's sizes).
pub(crate) fn update_elem(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = [0u8; 128];
    put_u32(&mut a, 0, map.as_raw_fd() as u32);
    put_u64(&mut a, 8, key.as_ptr() as u64);
    put_u64(&mut a, 16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

impl MapSpec {
    /// Creates the map; `iface` names what it is for in the error.
    pub(crate) fn create(&self, iface: &str) -> Result<OwnedFd, Error> {
        let mut a = [0u8; 128];
        put_u32(&mut a, 0, self.kind);
        put_u32(&mut a, 4, self.key_size);
        put_u32(&mut a, 8, self.value_size);
        put_u32(&mut a, 12, self.entries);
        put_u32(&mut a, 16, self.flags);
        let n = self.name.len().min(15);
        a[28..28 + n].copy_from_slice(&self.name.as_bytes()[..n]);
        bpf(BPF_MAP_CREATE, &mut a).map(owned).map_err(|cause| Error::Sys {
            call: "bpf(BPF_MAP_CREATE)",
            iface: iface.into(),
            cause,
        })
    }
}

/// Loads `insns` as a program of `prog_type`; the verifier's log in the error.
pub(crate) fn load(prog_type: u32, insns: &[BpfInsn], name: &str) -> Result<OwnedFd, Error> {
    let license = b"Dual MIT/GPL\0";
    let mut log = vec![0u8; 65536];
    let mut a = [0u8; 128];
    put_u32(&mut a, 0, prog_type);
    put_u32(&mut a, 4, insns.len() as u32);
    put_u64(&mut a, 8, insns.as_ptr() as u64);
    put_u64(&mut a, 16, license.as_ptr() as u64);
    put_u32(&mut a, 24, 1);
    put_u32(&mut a, 28, log.len() as u32);
    put_u64(&mut a, 32, log.as_mut_ptr() as u64);
    let n = name.len().min(15);
    a[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => Ok(owned(fd)),
        Err(cause) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            // The end of the log says why.
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: String =
                text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            Err(Error::Load { cause, log: tail })
        }
    }
}

/// The flow map and the programs on two interfaces. Dropping it detaches everything.
pub struct FastPath {
    map: OwnedFd,
    /// (interface, address) → the MAC address to answer ARP requests with.
    arp: OwnedFd,
    capacity: u32,
    _tc: OwnedFd,
    filter: OwnedFd,
    /// The tcx links, one per interface: closing them detaches the program.
    _links: Vec<OwnedFd>,
    ifindexes: Vec<u32>,
}

impl FastPath {
    /// Creates a map of `capacity` entries (two per flow), loads the programs and attaches the
    /// tc program to the ingress of each of `ifaces`.
    pub fn open(ifaces: &[&str], capacity: u32) -> Result<Self, Error> {
        let iface = ifaces.join(",");
        let flows = MapSpec {
            kind: BPF_MAP_TYPE_HASH,
            key_size: program::KEY_SIZE,
            value_size: program::VALUE_SIZE,
            entries: capacity.max(2),
            flags: BPF_F_NO_PREALLOC,
            name: "natpass_flows",
        };
        let map = flows.create(&iface)?;
        let arp = MapSpec {
            kind: BPF_MAP_TYPE_HASH,
            key_size: 8,
            value_size: 8,
            entries: ARP_ENTRIES,
            flags: 0,
            name: "natpass_arp",
        }
        .create(&iface)?;
        let variant = program::Variant::Tc { arp: arp.as_raw_fd() };
        let tc = load(BPF_PROG_TYPE_SCHED_CLS, &program::program(variant, map.as_raw_fd()), "natpass_fast")?;
        let filter = load(
            BPF_PROG_TYPE_SOCKET_FILTER,
            &program::program(program::Variant::SocketFilter, map.as_raw_fd()),
            "natpass_hide",
        )?;
        let mut links = Vec::new();
        let mut ifindexes = Vec::new();
        for name in ifaces {
            let ifindex = if_index(name)?;
            let mut a = [0u8; 128];
            put_u32(&mut a, 0, tc.as_raw_fd() as u32);
            put_u32(&mut a, 4, ifindex);
            put_u32(&mut a, 8, BPF_TCX_INGRESS);
            let link = bpf(BPF_LINK_CREATE, &mut a).map_err(|cause| Error::Sys {
                call: "bpf(BPF_LINK_CREATE, tcx ingress)",
                iface: (*name).into(),
                cause,
            })?;
            links.push(owned(link));
            ifindexes.push(ifindex);
        }
        Ok(Self { map, arp, capacity: capacity.max(2), _tc: tc, filter, _links: links, ifindexes })
    }

    /// The map's descriptor, for natpass's XDP program.
    pub fn map_fd(&self) -> RawFd {
        self.map.as_raw_fd()
    }

    /// How many entries the map holds at most.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The interfaces' indexes, in the order given to [`FastPath::open`].
    pub fn ifindexes(&self) -> &[u32] {
        &self.ifindexes
    }

    /// Attaches the socket filter to the packet socket `fd`, so that frames tc forwards do
    /// not reach natpass too.
    pub fn filter_socket(&self, fd: RawFd) -> io::Result<()> {
        let prog = self.filter.as_raw_fd();
        // SAFETY: `prog` is a live int for the call, and its size is given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_ATTACH_BPF,
                (&prog as *const RawFd).cast(),
                std::mem::size_of::<RawFd>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Has the tc program answer ARP requests for `addr` arriving on interface `ifindex` with
    /// `mac` (natpass's own addresses; at most 64).
    pub fn answer_arp(&self, ifindex: u32, addr: Ipv4Addr, mac: [u8; 6]) -> io::Result<()> {
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&ifindex.to_ne_bytes());
        k[4..].copy_from_slice(&addr.octets());
        let mut v = [0u8; 8];
        v[..6].copy_from_slice(&mac);
        update_elem(&self.arp, &k, &v)
    }

    /// Writes (or replaces) one direction's entry; its counters start at zero.
    pub fn insert(&self, key: &FlowKey, action: &FlowAction) -> io::Result<()> {
        update_elem(&self.map, &key.encode(), &action.encode(key))
    }

    /// Writes (or replaces) many entries in one call. On failure, says how many of the first
    /// ones were written, and why the next was not.
    pub fn insert_batch(&self, entries: &[(FlowKey, FlowAction)]) -> Result<(), (usize, io::Error)> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(entries.len() * program::KEY_SIZE as usize);
        let mut values = Vec::with_capacity(entries.len() * program::VALUE_SIZE as usize);
        for (k, a) in entries {
            keys.extend_from_slice(&k.encode());
            values.extend_from_slice(&a.encode(k));
        }
        let mut a = [0u8; 128];
        put_u64(&mut a, 16, keys.as_ptr() as u64);
        put_u64(&mut a, 24, values.as_ptr() as u64);
        put_u32(&mut a, 32, entries.len() as u32);
        put_u32(&mut a, 36, self.map.as_raw_fd() as u32);
        match bpf(BPF_MAP_UPDATE_BATCH, &mut a) {
            Ok(_) => Ok(()),
            Err(e) => Err((u32::from_ne_bytes([a[32], a[33], a[34], a[35]]) as usize, e)),
        }
    }

    /// Removes one direction's entry (none there is not an error).
    pub fn remove(&self, key: &FlowKey) -> io::Result<()> {
        let k = key.encode();
        let mut a = [0u8; 128];
        put_u32(&mut a, 0, self.map.as_raw_fd() as u32);
        put_u64(&mut a, 8, k.as_ptr() as u64);
        match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// The counters of the entries of `keys` (one `BPF_MAP_LOOKUP_ELEM` each), given to `f`;
    /// keys with no entry are left out. Cheaper than [`FastPath::scan_some`] when the map is
    /// sparse: the kernel reads a batch by walking the buckets, empty ones too, and in a map
    /// sized for a million flows that holds a few, one batch walks all of them (milliseconds,
    /// in one system call).
    pub fn counters_of(&self, keys: &[FlowKey], mut f: impl FnMut(FlowKey, FlowCounters)) -> io::Result<()> {
        let mut value = [0u8; program::VALUE_SIZE as usize];
        for key in keys {
            let k = key.encode();
            let mut a = [0u8; 128];
            put_u32(&mut a, 0, self.map.as_raw_fd() as u32);
            put_u64(&mut a, 8, k.as_ptr() as u64);
            put_u64(&mut a, 16, value.as_mut_ptr() as u64);
            match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
                Ok(_) => f(*key, FlowCounters::decode(&value)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The map's hash buckets: its capacity rounded up to a power of two (as the kernel does).
    pub fn buckets(&self) -> u64 {
        u64::from(self.capacity).next_power_of_two()
    }

    /// Every entry's key and counters, read in batches (`BPF_MAP_LOOKUP_BATCH`).
    pub fn scan(&self, mut f: impl FnMut(FlowKey, FlowCounters)) -> io::Result<()> {
        let mut cursor = ScanCursor::default();
        while !self.scan_some(&mut cursor, &mut f)? {}
        Ok(())
    }

    /// The next batch of up to [`ScanCursor::BATCH`] entries after `cursor` (a new cursor
    /// starts at the beginning), each given to `f`; true once the map has been read to its
    /// end. Entries written or removed meanwhile may be read or missed, as with any read of
    /// a map that changes under it.
    pub fn scan_some(&self, cursor: &mut ScanCursor, mut f: impl FnMut(FlowKey, FlowCounters)) -> io::Result<bool> {
        const CHUNK: usize = ScanCursor::BATCH;
        let (ks, vs) = (program::KEY_SIZE as usize, program::VALUE_SIZE as usize);
        cursor.keys.resize(CHUNK * ks, 0);
        cursor.values.resize(CHUNK * vs, 0);
        let mut a = [0u8; 128];
        if let Some(token) = &cursor.token {
            put_u64(&mut a, 0, (token as *const u32) as u64);
        }
        let mut next: u32 = 0;
        put_u64(&mut a, 8, (&mut next as *mut u32) as u64);
        put_u64(&mut a, 16, cursor.keys.as_mut_ptr() as u64);
        put_u64(&mut a, 24, cursor.values.as_mut_ptr() as u64);
        put_u32(&mut a, 32, CHUNK as u32);
        put_u32(&mut a, 36, self.map.as_raw_fd() as u32);
        let r = bpf(BPF_MAP_LOOKUP_BATCH, &mut a);
        let count = u32::from_ne_bytes([a[32], a[33], a[34], a[35]]) as usize;
        let done = match r {
            Ok(_) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) => return Err(e),
        };
        for i in 0..count.min(CHUNK) {
            if let Some(k) = FlowKey::decode(&cursor.keys[i * ks..]) {
                f(k, FlowCounters::decode(&cursor.values[i * vs..(i + 1) * vs]));
            }
        }
        cursor.token = if done { None } else { Some(next) };
        Ok(done)
    }
}

/// Where a read of the flow map in batches ([`FastPath::scan_some`]) stands, and its buffers.
#[derive(Debug, Default)]
pub struct ScanCursor {
    /// The kernel's position after the last batch; none before the first.
    token: Option<u32>,
    keys: Vec<u8>,
    values: Vec<u8>,
}

impl ScanCursor {
    /// Entries read per call: a fraction of a millisecond of the router's CPU, and a few
    /// milliseconds when a flood keeps that CPU in softirq.
    pub const BATCH: usize = 256;
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of [`FlowCounters::last_ns`].
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec the call writes.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Internet checksum of `b` (RFC 1071), for checking the differences.
    fn checksum(b: &[u8]) -> u16 {
        let mut sum: u32 = words(b).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn apply(check: u16, d: u32) -> u16 {
        // csum_replace_by_diff: ~fold(~check + diff)
        let mut s = u32::from(!check) + d;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1624_the_precomputed_differences_give_the_checksums_of_the_rewritten_header() {
        let key = FlowKey {
            ifindex: 7,
            src: Ipv4Addr::new(192, 168, 1, 10),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 17,
            sport: 40000,
            dport: 443,
        };
        let act = FlowAction {
            src: Ipv4Addr::new(203, 0, 113, 1),
            dst: key.dst,
            sport: 1027,
            dport: 443,
            ifindex: 8,
            dst_mac: [2; 6],
            src_mac: [4; 6],
            mtu: 1500,
        };
        let v = act.encode(&key);
        let get = |o: i16| u32::from_ne_bytes(v[o as usize..o as usize + 4].try_into().unwrap());
        for ttl in [2u8, 64, 255] {
            let mut hdr = vec![0x45, 0, 0, 36, 0x12, 0x34, 0x40, 0, ttl, 17, 0, 0];
            hdr.extend_from_slice(&key.src.octets());
            hdr.extend_from_slice(&key.dst.octets());
            let c = checksum(&hdr);
            hdr[10..12].copy_from_slice(&c.to_ne_bytes());
            let mut new = hdr.clone();
            new[8] = ttl - 1;
            new[12..16].copy_from_slice(&act.src.octets());
            new[10..12].copy_from_slice(&apply(c, get(program::V_L3_DIFF)).to_ne_bytes());
            assert_eq!(checksum(&new), 0, "ttl {ttl}");
        }
        // The UDP checksum: pseudo-header and ports together.
        let pseudo_old = [&key.src.octets()[..], &key.dst.octets()].concat();
        let pseudo_new = [&act.src.octets()[..], &act.dst.octets()].concat();
        let ports_old = [key.sport.to_be_bytes(), key.dport.to_be_bytes()].concat();
        let ports_new = [act.sport.to_be_bytes(), act.dport.to_be_bytes()].concat();
        let body = [0u8, 8, 0, 0, 9, 9, 9, 9];
        let whole = |p: &[u8], q: &[u8]| [p, &[0, 17, 0, 16], q, &body].concat();
        let c = checksum(&whole(&pseudo_old, &ports_old));
        let c = apply(apply(c, get(program::V_PSEUDO_DIFF)), get(program::V_L4_DIFF));
        assert_eq!(c, checksum(&whole(&pseudo_new, &ports_new)));
    }

    #[test]
    fn keys_round_trip() {
        let k = FlowKey {
            ifindex: 3,
            src: Ipv4Addr::new(1, 2, 3, 4),
            dst: Ipv4Addr::new(5, 6, 7, 8),
            protocol: 1,
            sport: 0x1234,
            dport: 0x0800,
        };
        assert_eq!(FlowKey::decode(&k.encode()), Some(k));
    }
}
