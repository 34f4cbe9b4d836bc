//! The natpass command: `natpass run` (the router on two Linux interfaces) and `natpass replay`
//! (captures offline). The VPN lab that runs it is the `natpass-lab` crate.

#![forbid(unsafe_code)]

pub mod admin_commands;
pub mod api_client;
pub mod capture_cmd;
pub mod check;
pub mod control_plane;
pub mod credentials;
pub mod daemon;
pub mod demo;
pub mod logging;
pub mod notify;
pub mod replay;
pub mod router;
pub mod tables;
pub mod token_file;
