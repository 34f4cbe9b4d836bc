//! The natpass command: `natpass run` (the router on two Linux interfaces) and `natpass replay`
//! (captures offline). The VPN lab that runs it is the `natpass-lab` crate.

#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod replay;
pub mod router;
