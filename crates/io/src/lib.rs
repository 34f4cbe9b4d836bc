//! Packet I/O for natpass: capture files now ([`pcap`]); the Linux AF_PACKET and AF_XDP
//! backends come next. This is the one crate where `unsafe` will be allowed (kernel rings),
//! each block with a `// SAFETY:` line; so far it has none.

#![forbid(unsafe_code)]

pub mod pcap;
