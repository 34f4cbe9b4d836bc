//! The natpass command: `natpass replay` now; the router and its control plane come next.

#![forbid(unsafe_code)]

pub mod demo;
pub mod replay;
