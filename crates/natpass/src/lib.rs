//! The natpass command: `natpass run` (the router on two Linux interfaces), `natpass lab`
//! (real VPN peers through it in network namespaces) and `natpass replay` (captures offline).

#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod lab;
pub mod replay;
pub mod router;
