//! The natpass control plane: the one narrow interface to the data plane ([`interface`]),
//! the REST API's request and response types, shared by the server and the CLI ([`api`]),
//! the config file store with atomic saves ([`store`]), authentication ([`auth`]: argon2id
//! passwords, sessions, CSRF, login rate limiting, bearer tokens), and the HTTP server
//! ([`server`]) with the REST API, the web admin pages ([`web`]) and Prometheus metrics
//! ([`metrics`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod interface;
pub mod metrics;
pub mod server;
pub mod store;
pub mod web;
