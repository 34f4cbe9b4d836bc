//! natpass's link layer, independent of any socket backend: Ethernet frames in and out around
//! the NAT engine, for AF_PACKET today and AF_XDP beside it later.
//!
//! - ARP (RFC 826): natpass answers for its own addresses and resolves its next hops itself,
//!   with its own neighbour cache ([`neighbours`]): reachability in the manner of RFC 1122
//!   §2.3.2.1 and RFC 4861 §7.3 (an answer is trusted for a minute, then probed by unicast
//!   while still used; three requests a second apart; a bounded queue of packets waiting
//!   for an answer).
//! - IPv6 Neighbor Discovery (RFC 4861) ([`nd`]): natpass answers Neighbor Solicitations for
//!   its addresses and its link-local address, resolves and probes its IPv6 next hops in
//!   the same neighbour table design, and sends Router Advertisements on the LAN (prefix
//!   for SLAAC, MTU, RDNSS per RFC 8106).
//! - Pings to the router are answered (RFC 792 Echo, RFC 1122 §3.2.2.6; ICMPv6 Echo, RFC
//!   4443 §4.2) ([`echo`]).
//! - Checksum and segmentation offloads: unfinished TCP/UDP checksums are completed, and
//!   super-frames go through the engine whole and leave with the same request ([`offload`]).
//!
//! Sans-IO: [`Plane`] reads no clock and opens no socket. The driver passes each received
//! frame with what its backend knows of it ([`RxMeta`]) and `now`, sends what the plane put
//! into each side's [`FrameSink`], and calls [`Plane::handle_timeout`] every few
//! milliseconds.

#![forbid(unsafe_code)]

pub mod echo;
pub mod nd;
pub mod neighbours;
pub mod offload;
mod plane;
mod sink;

pub use offload::{RxMeta, Segmentation, TxOffload};
pub use plane::{Advertising, LinkConfig, LinkStats, Plane, PortConfig, PortV6};
pub use sink::{FrameQueue, FrameSink, QueuedFrame};
