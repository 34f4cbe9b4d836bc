//! The fast path's BPF programs, written as instructions here (no compiler, no ELF loader):
//! one classifier, three endings.
//!
//! Every variant first **classifies** a frame: untagged Ethernet, IPv4 with a 20-byte header
//! (no options), not a fragment, TTL above 1, a valid header checksum, a total length the
//! frame holds; then UDP (its length field equal to the IP payload), TCP (data offset 5 to the
//! payload, none of SYN, FIN, RST) or an ICMP echo message. Its key (addresses, ports or ICMP
//! identifier and type/code, protocol, arrival interface) is looked up in the flow map, and
//! the packet must fit the egress MTU. Any other IPv4 misses, and goes the slow way: to natpass.
//! What is not IPv4 for this host (ARP, IPv6, VLAN, frames for others) passes untouched.
//!
//! - [`Variant::Tc`] (tcx ingress): answers ARP requests for natpass's addresses (RFC 826)
//!   itself, so that a host's first packet does not wait for natpass to wake; on a hit, rewrites addresses, ports or identifier, TTL
//!   and both MAC addresses with `bpf_skb_store_bytes`, patches the IPv4 and transport
//!   checksums with the entry's precomputed differences (`bpf_l3_csum_replace`,
//!   `bpf_l4_csum_replace`, pseudo-header aware so `CHECKSUM_PARTIAL` stays right), counts
//!   packets and bytes, stamps the time, and `bpf_redirect`s to the egress interface. An IPv4
//!   miss is dropped there: natpass's socket (a tap, served before tc) has its copy, and the
//!   kernel, which holds none of natpass's addresses, has nothing to do with it.
//! - [`Variant::SocketFilter`] (on natpass's AF_PACKET sockets, which see frames before tc):
//!   a hit is dropped from the socket, because tc takes it; a miss is delivered.
//! - [`Variant::Xdp`] (natpass's XDP program, AF_XDP backend): a hit goes on to the kernel
//!   (`XDP_PASS`), where tc takes it; a miss goes to natpass's AF_XDP socket.

use crate::afxdp::BpfInsn;

/// Which program to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The tcx ingress program that forwards, and answers ARP for the addresses in the map
    /// `arp` (see [`crate::fastpath::FastPath::answer_arp`]).
    Tc {
        /// The ARP map's descriptor.
        arp: i32,
    },
    /// The AF_PACKET socket filter that hides what tc forwards.
    SocketFilter,
    /// The XDP program: hits to the kernel, misses to the AF_XDP socket of XSKMAP `xsk_map`.
    Xdp {
        /// The XSKMAP's descriptor.
        xsk_map: i32,
    },
}

/// Size of a flow map key: see [`crate::fastpath::FlowKey`].
pub const KEY_SIZE: u32 = 20;
/// Size of a flow map value: see [`crate::fastpath::FlowAction`].
pub const VALUE_SIZE: u32 = 72;

// Value offsets (see `FlowAction::encode`).
pub(crate) const V_ADDRS: i16 = 0;
pub(crate) const V_PORTS: i16 = 8;
pub(crate) const V_IFINDEX: i16 = 12;
pub(crate) const V_MACS: i16 = 16;
pub(crate) const V_L3_DIFF: i16 = 28;
pub(crate) const V_PSEUDO_DIFF: i16 = 32;
pub(crate) const V_L4_DIFF: i16 = 36;
pub(crate) const V_MTU: i16 = 40;
pub(crate) const V_PACKETS: i16 = 48;
pub(crate) const V_BYTES: i16 = 56;
pub(crate) const V_LAST_NS: i16 = 64;

// Stack layout (offsets from r10). The frame's first 34 bytes (Ethernet, IPv4) are loaded at
// BUF, so that the IPv4 header lands 4-byte aligned (the verifier wants aligned stack access).
const BUF: i16 = -66;
const IP: i16 = BUF + 14; // -52
const L4: i16 = -32;
const KEY: i16 = -96;

// Helpers.
const MAP_LOOKUP_ELEM: i32 = 1;
const KTIME_GET_NS: i32 = 5;
const SKB_STORE_BYTES: i32 = 9;
const L3_CSUM_REPLACE: i32 = 10;
const L4_CSUM_REPLACE: i32 = 11;
const REDIRECT: i32 = 23;
const SKB_LOAD_BYTES: i32 = 26;
const REDIRECT_MAP: i32 = 51;
const XDP_GET_BUFF_LEN: i32 = 188;
const XDP_LOAD_BYTES: i32 = 189;

const BPF_F_PSEUDO_HDR: i32 = 0x10;
const BPF_F_MARK_MANGLED_0: i32 = 0x20;
/// tcx: continue with the next program or the stack.
const TCX_NEXT: i32 = -1;
/// tcx: drop.
const TCX_DROP: i32 = 2;
const XDP_PASS: i32 = 2;
/// What a socket filter returns to keep a whole frame.
const KEEP_ALL: i32 = 0x0004_0000;

// __sk_buff and xdp_md offsets.
const SKB_LEN: i16 = 0;
const SKB_PKT_TYPE: i16 = 4;
const SKB_VLAN_PRESENT: i16 = 20;
const SKB_IFINDEX: i16 = 40;
const SKB_GSO_SIZE: i16 = 176;
const XDP_INGRESS_IFINDEX: i16 = 12;
const XDP_RX_QUEUE_INDEX: i16 = 16;

/// Labels this program jumps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    /// Not IPv4 for us (ARP, IPv6, another host's frame): the kernel's as ever.
    Pass,
    /// IPv4 the map does not take: natpass's.
    Miss,
    Tcp,
    Udp,
    Icmp,
    Lookup,
    Fits,
    IcmpId,
    Ttl,
    Ports,
    Udp2,
    IcmpId2,
    Count,
    NotArp,
}

/// A small assembler: instructions, with forward jumps to labels patched at the end.
#[derive(Default)]
struct Asm {
    insns: Vec<BpfInsn>,
    fixups: Vec<(usize, Label)>,
    labels: Vec<(Label, usize)>,
}

// Opcodes.
const ALU64_K: u8 = 0x07; // | op
const ALU64_X: u8 = 0x0f;
const ADD: u8 = 0x00;
const SUB: u8 = 0x10;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const MOV: u8 = 0xb0;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const JLE: u8 = 0xb0;
const B: u8 = 0x10;
const H: u8 = 0x08;
const W: u8 = 0x00;
const DW: u8 = 0x18;

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(BpfInsn::new(code, dst, src, off, imm));
    }
    fn label(&mut self, l: Label) {
        self.labels.push((l, self.insns.len()));
    }
    fn mov_k(&mut self, dst: u8, imm: i32) {
        self.op(ALU64_K | MOV, dst, 0, 0, imm);
    }
    fn mov_x(&mut self, dst: u8, src: u8) {
        self.op(ALU64_X | MOV, dst, src, 0, 0);
    }
    fn alu_k(&mut self, op: u8, dst: u8, imm: i32) {
        self.op(ALU64_K | op, dst, 0, 0, imm);
    }
    fn alu_x(&mut self, op: u8, dst: u8, src: u8) {
        self.op(ALU64_X | op, dst, src, 0, 0);
    }
    /// `dst = *(size *)(src + off)`.
    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.op(0x61 - W + size, dst, src, off, 0);
    }
    /// `*(size *)(dst + off) = src`.
    fn stx(&mut self, size: u8, dst: u8, off: i16, src: u8) {
        self.op(0x63 - W + size, dst, src, off, 0);
    }
    /// `lock *(u64 *)(dst + off) += src`.
    fn atomic_add64(&mut self, dst: u8, off: i16, src: u8) {
        self.op(0xdb, dst, src, off, 0);
    }
    /// `dst = be16(dst)` (a byte swap on this little-endian machine).
    fn be16(&mut self, dst: u8) {
        self.op(0xdc, dst, 0, 0, 16);
    }
    fn jmp_k(&mut self, op: u8, dst: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.op(0x05 | op, dst, 0, 0, imm);
    }
    fn jmp_x(&mut self, op: u8, dst: u8, src: u8, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.op(0x0d | op, dst, src, 0, 0);
    }
    fn ja(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.op(0x05, 0, 0, 0, 0);
    }
    fn call(&mut self, helper: i32) {
        self.op(0x85, 0, 0, 0, helper);
    }
    fn exit(&mut self) {
        self.op(0x95, 0, 0, 0, 0);
    }
    fn ld_map(&mut self, dst: u8, fd: i32) {
        self.op(0x18, dst, 1, 0, fd);
        self.op(0, 0, 0, 0, 0);
    }
    /// `r2 = offset, r3 = r10 + to, r4 = len, call load_bytes(r1 = ctx)`; a miss on failure.
    fn load(&mut self, helper: i32, offset: i32, to: i16, len: i32) {
        self.load_or(helper, offset, to, len, Label::Miss);
    }

    /// [`Asm::load`], going to `fail` on failure.
    fn load_or(&mut self, helper: i32, offset: i32, to: i16, len: i32, fail: Label) {
        self.mov_x(1, 6);
        self.mov_k(2, offset);
        self.mov_x(3, 10);
        self.alu_k(ADD, 3, i32::from(to));
        self.mov_k(4, len);
        self.call(helper);
        self.jmp_k(JNE, 0, 0, fail);
    }
    /// `bpf_skb_store_bytes(ctx, offset, r8 + from, len, 0)`.
    fn store_from_value(&mut self, offset: i32, from: i16, len: i32) {
        self.store_from(8, offset, from, len);
    }
    /// `bpf_skb_store_bytes(ctx, offset, r10 + from, len, 0)`: from the stack.
    fn store_from_stack(&mut self, offset: i32, from: i16, len: i32) {
        self.store_from(10, offset, from, len);
    }
    fn store_from(&mut self, base: u8, offset: i32, from: i16, len: i32) {
        self.mov_x(1, 6);
        self.mov_k(2, offset);
        self.mov_x(3, base);
        self.alu_k(ADD, 3, i32::from(from));
        self.mov_k(4, len);
        self.mov_k(5, 0);
        self.call(SKB_STORE_BYTES);
    }
    /// `r8 = bpf_map_lookup_elem(map, r10 + key)`, going to `miss` when it is not there.
    fn lookup(&mut self, map: i32, key: i16, miss: Label) {
        self.ld_map(1, map);
        self.mov_x(2, 10);
        self.alu_k(ADD, 2, i32::from(key));
        self.call(MAP_LOOKUP_ELEM);
        self.jmp_k(JEQ, 0, 0, miss);
        self.mov_x(8, 0);
    }
    fn finish(mut self) -> Vec<BpfInsn> {
        for (at, to) in std::mem::take(&mut self.fixups) {
            let target = self.labels.iter().find(|(l, _)| *l == to).map(|&(_, i)| i);
            debug_assert!(target.is_some(), "label {to:?} is jumped to but never placed");
            // Every label this module jumps to is placed; a missing one is a bug here, caught
            // by the unit test, and the verifier would refuse the jump anyway.
            let target = target.unwrap_or(at + 1);
            let off = target as i64 - at as i64 - 1;
            self.insns[at] = BpfInsn::new(
                self.insns[at].code(),
                self.insns[at].dst(),
                self.insns[at].src(),
                off as i16,
                self.insns[at].imm(),
            );
        }
        self.insns
    }
}

// The ARP branch's copy of the frame: its ARP body (at 14) lands 4-byte aligned.
const ARP_BUF: i16 = -74;

/// tc: an ARP request (RFC 826) for one of natpass's addresses, answered here, from the
/// interface it came in on, before natpass wakes: `arp` maps (interface, address) to the MAC
/// address to answer with. natpass's socket, a tap, still gets the request (it learns the
/// sender, and answers too: a second, identical reply). Anything else goes on to `NotArp`.
fn arp_reply(a: &mut Asm, arp: i32) {
    a.load_or(SKB_LOAD_BYTES, 0, ARP_BUF, 42, Label::NotArp);
    // EtherType 0x0806, then hardware 1, protocol 0x0800, lengths 6 and 4, operation 1.
    a.ldx(H, 1, 10, ARP_BUF + 12);
    a.jmp_k(JNE, 1, 0x0608, Label::NotArp);
    a.ldx(W, 1, 10, ARP_BUF + 14);
    a.jmp_k(JNE, 1, 0x0008_0100, Label::NotArp);
    a.ldx(W, 1, 10, ARP_BUF + 18);
    a.jmp_k(JNE, 1, 0x0100_0406, Label::NotArp);
    // Key: the interface, the target address.
    a.ldx(W, 1, 6, SKB_IFINDEX);
    a.stx(W, 10, KEY, 1);
    a.ldx(W, 1, 10, ARP_BUF + 38);
    a.stx(W, 10, KEY + 4, 1);
    // The value (r8): the MAC address to answer with.
    a.lookup(arp, KEY, Label::NotArp);
    // Ethernet: to the asker, from us. ARP: reply; we are the sender (our MAC, the address
    // asked for), the asker the target.
    a.store_from_stack(0, ARP_BUF + 22, 6);
    a.store_from_value(6, 0, 6);
    a.store_from_value(22, 0, 6);
    a.store_from_stack(28, ARP_BUF + 38, 4);
    a.store_from_stack(32, ARP_BUF + 22, 6);
    a.store_from_stack(38, ARP_BUF + 28, 4);
    a.mov_k(1, 0x0200);
    a.stx(H, 10, ARP_BUF + 20, 1);
    a.store_from_stack(20, ARP_BUF + 20, 2);
    a.ldx(W, 1, 6, SKB_IFINDEX);
    a.mov_k(2, 0);
    a.call(REDIRECT);
    a.exit();
}

/// The program of `variant` over the flow map `flows`.
pub fn program(variant: Variant, flows: i32) -> Vec<BpfInsn> {
    let mut a = Asm::default();
    let load = match variant {
        Variant::Xdp { .. } => XDP_LOAD_BYTES,
        _ => SKB_LOAD_BYTES,
    };
    a.mov_x(6, 1);
    // r9 = the frame's length.
    match variant {
        Variant::Xdp { .. } => {
            // (A helper, not data_end - data: subtracting packet pointers needs CAP_PERFMON.)
            a.mov_x(1, 6);
            a.call(XDP_GET_BUFF_LEN);
            a.mov_x(9, 0);
        }
        Variant::Tc { arp } => {
            a.ldx(W, 9, 6, SKB_LEN);
            // Frames whose VLAN tag the driver took off, and (after ARP) frames for another
            // host.
            a.ldx(W, 1, 6, SKB_VLAN_PRESENT);
            a.jmp_k(JNE, 1, 0, Label::Pass);
            arp_reply(&mut a, arp);
            a.label(Label::NotArp);
            a.ldx(W, 1, 6, SKB_PKT_TYPE);
            a.jmp_k(JNE, 1, 0, Label::Pass);
        }
        Variant::SocketFilter => {
            a.ldx(W, 9, 6, SKB_LEN);
            // Frames for another host, and frames whose VLAN tag the driver took off.
            a.ldx(W, 1, 6, SKB_PKT_TYPE);
            a.jmp_k(JNE, 1, 0, Label::Pass);
            a.ldx(W, 1, 6, SKB_VLAN_PRESENT);
            a.jmp_k(JNE, 1, 0, Label::Pass);
        }
    }
    a.load_or(load, 0, BUF, 34, Label::Pass);
    // EtherType IPv4 (08 00 read little-endian), version 4 with a 20-byte header.
    a.ldx(H, 1, 10, BUF + 12);
    a.jmp_k(JNE, 1, 0x0008, Label::Pass);
    a.ldx(B, 1, 10, IP);
    a.jmp_k(JNE, 1, 0x45, Label::Miss);
    // Not a fragment: MF and the offset (0x3fff of the big-endian field) are zero.
    a.ldx(H, 1, 10, IP + 6);
    a.alu_k(AND, 1, 0xff3f);
    a.jmp_k(JNE, 1, 0, Label::Miss);
    // TTL above 1: the slow path sends Time Exceeded.
    a.ldx(B, 1, 10, IP + 8);
    a.jmp_k(JLE, 1, 1, Label::Miss);
    // The header checksum verifies: the 16-bit ones' complement sum is 0xffff.
    // (Summed here: socket filters may not call bpf_csum_diff.)
    a.mov_k(0, 0);
    for w in 0..10 {
        a.ldx(H, 1, 10, IP + 2 * w);
        a.alu_x(ADD, 0, 1);
    }
    for _ in 0..2 {
        a.mov_x(1, 0);
        a.alu_k(RSH, 1, 16);
        a.alu_k(AND, 0, 0xffff);
        a.alu_x(ADD, 0, 1);
    }
    a.jmp_k(JNE, 0, 0xffff, Label::Miss);
    // The total length fits in the frame: r7 = total length.
    a.ldx(H, 7, 10, IP + 2);
    a.be16(7);
    a.mov_x(1, 9);
    a.alu_k(SUB, 1, 14);
    a.jmp_x(JGT, 7, 1, Label::Miss);
    a.mov_x(9, 7);
    // The key: addresses, protocol, arrival interface; ports below.
    a.mov_k(1, 0);
    for off in [KEY, KEY + 8, KEY + 16] {
        a.stx(DW, 10, off, 1);
    }
    a.ldx(W, 1, 10, IP + 12);
    a.stx(W, 10, KEY, 1);
    a.ldx(W, 1, 10, IP + 16);
    a.stx(W, 10, KEY + 4, 1);
    a.ldx(B, 7, 10, IP + 9);
    a.stx(B, 10, KEY + 12, 7);
    match variant {
        Variant::Xdp { .. } => a.ldx(W, 1, 6, XDP_INGRESS_IFINDEX),
        _ => a.ldx(W, 1, 6, SKB_IFINDEX),
    }
    a.stx(W, 10, KEY + 16, 1);
    a.jmp_k(JEQ, 7, 6, Label::Tcp);
    a.jmp_k(JEQ, 7, 17, Label::Udp);
    a.jmp_k(JEQ, 7, 1, Label::Icmp);
    a.ja(Label::Miss);

    a.label(Label::Udp);
    a.load(load, 34, L4, 8);
    // The UDP length is the IP payload's.
    a.ldx(H, 1, 10, L4 + 4);
    a.be16(1);
    a.mov_x(2, 9);
    a.alu_k(SUB, 2, 20);
    a.jmp_x(JNE, 1, 2, Label::Miss);
    a.ja(Label::Ports);

    a.label(Label::Tcp);
    a.load(load, 34, L4, 14);
    // No SYN, FIN or RST: those change the connection's state, which natpass tracks.
    a.ldx(B, 1, 10, L4 + 13);
    a.alu_k(AND, 1, 0x07);
    a.jmp_k(JNE, 1, 0, Label::Miss);
    // A data offset of 5 or more words, within the payload.
    a.ldx(B, 1, 10, L4 + 12);
    a.alu_k(RSH, 1, 4);
    a.jmp_k(JLT, 1, 5, Label::Miss);
    a.alu_k(LSH, 1, 2);
    a.mov_x(2, 9);
    a.alu_k(SUB, 2, 20);
    a.jmp_x(JGT, 1, 2, Label::Miss);

    a.label(Label::Ports);
    a.ldx(W, 1, 10, L4);
    a.stx(W, 10, KEY + 8, 1);
    a.ja(Label::Lookup);

    a.label(Label::Icmp);
    a.load(load, 34, L4, 8);
    // The identifier stands in for the source port, type and code for the destination's.
    a.ldx(H, 1, 10, L4 + 4);
    a.stx(H, 10, KEY + 8, 1);
    a.ldx(H, 1, 10, L4);
    a.stx(H, 10, KEY + 10, 1);

    a.label(Label::Lookup);
    a.lookup(flows, KEY, Label::Miss);
    // It must fit the egress MTU, unless it is a GSO super-frame (cut up on transmit).
    a.ldx(H, 1, 8, V_MTU);
    a.jmp_x(JLE, 9, 1, Label::Fits);
    // (The socket filter decides as tc will, or a super-frame would go out twice.)
    if matches!(variant, Variant::Xdp { .. }) {
        a.ja(Label::Miss);
    } else {
        a.ldx(W, 1, 6, SKB_GSO_SIZE);
        a.jmp_k(JEQ, 1, 0, Label::Miss);
    }
    a.label(Label::Fits);
    match variant {
        Variant::SocketFilter => {
            a.mov_k(0, 0);
            a.exit();
        }
        Variant::Xdp { .. } => {
            a.mov_k(0, XDP_PASS);
            a.exit();
        }
        Variant::Tc { .. } => {
            // Addresses, then ports or the ICMP identifier.
            a.store_from_value(26, V_ADDRS, 8);
            a.jmp_k(JEQ, 7, 1, Label::IcmpId);
            a.store_from_value(34, V_PORTS, 4);
            a.ja(Label::Ttl);
            a.label(Label::IcmpId);
            a.store_from_value(38, V_PORTS, 2);
            a.label(Label::Ttl);
            a.ldx(B, 1, 10, IP + 8);
            a.alu_k(ADD, 1, -1);
            a.stx(B, 10, IP + 8, 1);
            a.mov_x(1, 6);
            a.mov_k(2, 22);
            a.mov_x(3, 10);
            a.alu_k(ADD, 3, i32::from(IP + 8));
            a.mov_k(4, 1);
            a.mov_k(5, 0);
            a.call(SKB_STORE_BYTES);
            a.store_from_value(0, V_MACS, 12);
            // IPv4 header checksum: addresses and TTL.
            a.mov_x(1, 6);
            a.mov_k(2, 24);
            a.mov_k(3, 0);
            a.ldx(W, 4, 8, V_L3_DIFF);
            a.mov_k(5, 0);
            a.call(L3_CSUM_REPLACE);
            // The transport checksum: the pseudo-header's addresses, then the ports. r9 is
            // free from here: the checksum's offset.
            let l4 = |a: &mut Asm, diff: i16, flags: i32| {
                a.mov_x(1, 6);
                a.mov_x(2, 9);
                a.mov_k(3, 0);
                a.ldx(W, 4, 8, diff);
                a.mov_k(5, flags);
                a.call(L4_CSUM_REPLACE);
            };
            a.jmp_k(JEQ, 7, 1, Label::IcmpId2);
            a.jmp_k(JEQ, 7, 17, Label::Udp2);
            a.mov_k(9, 34 + 16);
            l4(&mut a, V_PSEUDO_DIFF, BPF_F_PSEUDO_HDR);
            l4(&mut a, V_L4_DIFF, 0);
            a.ja(Label::Count);
            a.label(Label::Udp2);
            a.mov_k(9, 34 + 6);
            l4(&mut a, V_PSEUDO_DIFF, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
            l4(&mut a, V_L4_DIFF, BPF_F_MARK_MANGLED_0);
            a.ja(Label::Count);
            a.label(Label::IcmpId2);
            a.mov_k(9, 34 + 2);
            l4(&mut a, V_L4_DIFF, 0);
            a.label(Label::Count);
            a.mov_k(1, 1);
            a.atomic_add64(8, V_PACKETS, 1);
            a.ldx(W, 1, 6, SKB_LEN);
            a.atomic_add64(8, V_BYTES, 1);
            a.call(KTIME_GET_NS);
            a.stx(DW, 8, V_LAST_NS, 0);
            a.ldx(W, 1, 8, V_IFINDEX);
            a.mov_k(2, 0);
            a.call(REDIRECT);
            a.exit();
        }
    }
    match variant {
        Variant::Tc { .. } => {
            // natpass's socket, a tap, has had its copy of an IPv4 miss: the kernel, which
            // holds none of natpass's addresses, gets none of it (as if IPv4 were off there).
            a.label(Label::Miss);
            a.mov_k(0, TCX_DROP);
            a.exit();
            a.label(Label::Pass);
            a.mov_k(0, TCX_NEXT);
            a.exit();
        }
        Variant::SocketFilter => {
            a.label(Label::Miss);
            a.label(Label::Pass);
            a.mov_k(0, KEEP_ALL);
            a.exit();
        }
        Variant::Xdp { xsk_map } => {
            a.label(Label::Miss);
            a.label(Label::Pass);
            a.ld_map(1, xsk_map);
            a.ldx(W, 2, 6, XDP_RX_QUEUE_INDEX);
            a.mov_k(3, XDP_PASS);
            a.call(REDIRECT_MAP);
            a.exit();
        }
    }
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program_and_every_variant_ends_in_exit() {
        for v in [Variant::Tc { arp: 5 }, Variant::SocketFilter, Variant::Xdp { xsk_map: 3 }] {
            let p = program(v, 4);
            assert_eq!(p.last().map(|i| i.code()), Some(0x95), "{v:?}");
            for (i, insn) in p.iter().enumerate() {
                let class = insn.code() & 0x07;
                let is_jump = class == 0x05 && !matches!(insn.code(), 0x85 | 0x95);
                if is_jump {
                    let to = i as i64 + 1 + i64::from(insn.off());
                    assert!(to > i as i64 && (to as usize) < p.len(), "{v:?}: jump at {i} to {to}");
                }
            }
        }
    }
}
