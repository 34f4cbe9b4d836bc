//! Zero-copy typed views over the packets natpass reads and rewrites.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>`-style view with a private table of field
//! ranges, getters on `AsRef<[u8]>` and setters on `AsMut<[u8]>`.
//!
//! # Invariant
//!
//! Every view has a checked constructor (`new_checked`) that validates all lengths and offsets
//! once. If it returned `Ok`, no getter or setter of that view panics, whatever the bytes are.
//! Setters that change a length field (`set_total_len`, `set_header_len`) say so in their docs:
//! after calling them the view must be checked again. Parsing untrusted input must always go
//! through `new_checked`; `new_unchecked` is for buffers the caller has just built or checked.
//!
//! # Checksums
//!
//! Full sums follow RFC 1071; every setter used by the NAT fast path updates checksums
//! incrementally (RFC 1624), which the property tests compare against full recomputation.

#![forbid(unsafe_code)]

pub mod ah;
pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod gre;
pub mod icmp;
pub mod icmpv6;
pub mod ike;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod l2tp;
pub mod pptp;
pub mod tcp;
pub mod udp;

pub use ip::{AddrChange, IpProtocol};

/// Why a buffer could not be viewed as a packet of some protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    #[error("packet truncated")]
    Truncated,
    /// A header-length field is smaller than the fixed header or larger than the packet.
    #[error("bad header length")]
    BadHeaderLen,
    /// The version field is not the one this view handles.
    #[error("unsupported version")]
    BadVersion,
    /// A field holds a value the protocol does not allow here.
    #[error("malformed field")]
    Malformed,
}

/// The result of a view constructor.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian u16 at `at`; the caller has checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian u32 at `at`; the caller has checked the length.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a big-endian u16 at `at`; the caller has checked the length.
#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `at`; the caller has checked the length.
#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
