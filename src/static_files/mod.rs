//! Static files: safe path resolution (`resolve`), content types (`mime`), validators and
//! conditional requests (`conditional`), byte ranges (`range`), content-coding negotiation
//! (`negotiate`) and compression (`compress`), the per-shard file cache (`cache`), and the
//! handler tying them together (`handler`). Everything but `cache` and `handler` is sans-IO.

pub mod cache;
pub mod compress;
pub mod conditional;
pub mod handler;
pub mod mime;
pub mod negotiate;
pub mod range;
pub mod resolve;

pub use handler::{StaticConfig, StaticError, StaticFiles};
