//! Packet I/O for natpass: capture files ([`pcap`]), Linux AF_PACKET sockets ([`afpacket`])
//! and AF_XDP sockets with their XDP program ([`afxdp`]). This is the one crate where
//! `unsafe` is allowed (kernel rings, socket calls, `bpf(2)`), only in [`afpacket`] and
//! [`afxdp`], each block with a `// SAFETY:` line; `unsafe_code` is denied everywhere else.

pub mod afpacket;
pub mod afxdp;
pub mod fastpath;
pub mod pcap;
mod sys;
