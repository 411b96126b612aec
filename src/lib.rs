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
pub mod config_file;
pub mod context;
pub mod error;
pub mod extract;
pub mod handler;
pub mod header_pool;
pub mod http1;
pub mod logging;
pub mod metrics;
pub mod middleware;
pub mod panic;
pub mod response;
pub mod router;
pub mod serve;
pub mod service;
pub mod shard;
pub mod static_files;
#[cfg(test)]
mod testing;
pub mod tls;

pub use app::{App, Group, TrailingSlash};
pub use context::Ctx;
pub use error::Error;
pub use extract::Validate;
pub use middleware::{Hook, Middleware, Next};
pub use response::{Html, IntoResponse, Json};
pub use service::{Request, Response};
pub use shard::ShardHandle;
