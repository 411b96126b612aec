//! placeholder
mod common;
#[path = "common/h2frames.rs"]
mod h2frames;
