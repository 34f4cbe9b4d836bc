//! The flow table: sessions, EIM mappings, public ports and per-host accounting
//! (RFC 4787 §4.1 REQ-1/2/3, §4.3 REQ-5/6, RFC 5382 REQ-1, RFC 6888 REQ-4/8).

pub(crate) mod ports;
pub(crate) mod session;
pub(crate) mod table;
pub(crate) mod tcp_window;
pub(crate) mod wheel;

pub use session::Proto;
