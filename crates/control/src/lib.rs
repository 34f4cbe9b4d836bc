//! The natpass control plane: the one narrow interface to the data plane ([`interface`]),
//! the REST API's request and response types, shared by the server and the CLI ([`api`]),
//! the config file store with atomic saves ([`store`]), authentication ([`auth`]: argon2id
//! passwords, sessions, CSRF, login rate limiting, bearer tokens), the request handlers
//! ([`server`]) of the REST API, the web admin pages ([`web`]) and Prometheus metrics
//! ([`metrics`]), and the bounded HTTP/1.1 server they run in ([`http`], HTTPS by [`tls`]);
//! reloading the config file on SIGHUP ([`reload`]); packet capture in the data plane
//! ([`capture`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod capture;
pub mod http;
pub mod interface;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod store;
pub mod tls;
pub mod web;
