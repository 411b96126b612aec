//! The router: a radix tree from path patterns to routes (`tree.rs`, `params.rs`, `error.rs`) and
//! the method table of each route (`methods.rs`). One copy per shard; no I/O, no HTTP framing.

mod error;
mod methods;
mod params;
#[cfg(test)]
mod reference;
mod tree;

pub use error::InsertError;
pub use methods::{MethodMatch, MethodTable};
pub use params::Params;
pub use tree::{Match, Tree};
