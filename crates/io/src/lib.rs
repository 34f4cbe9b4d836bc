//! Packet I/O for natpass: capture files ([`pcap`]) and Linux AF_PACKET sockets
//! ([`afpacket`]). This is the one crate where `unsafe` is allowed (kernel rings, socket
//! calls), only in [`afpacket`], each block with a `// SAFETY:` line; `unsafe_code` is denied
//! everywhere else.

pub mod afpacket;
pub mod pcap;
