//! percore: a thread-per-core HTTP server on io_uring.
//!
//! Layers, bottom up: [`shards`] (pinned monoio runtimes, listeners, mesh, shutdown) →
//! [`http1`] (the sans-IO HTTP/1.1 core) → [`serve`] (the connection loops, the only code that
//! awaits on sockets) → [`service`] (the application boundary) → [`app`] (the built-in app).
//! See ARCHITECTURE.md.

#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod header_pool;
pub mod http1;
pub mod serve;
pub mod service;
