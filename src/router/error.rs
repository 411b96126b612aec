//! `InsertError`: why `Tree::insert` refused a pattern.
//!
//! Every error carries the route as registered, and a conflict also names the route already in the
//! tree, in full, so that a startup failure points at both lines of the route table.

/// Why a pattern could not be registered. The tree is unchanged after an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// Two parameters (or two catch-alls) at the same position have different names, so a
    /// request matching both could not say which name its value belongs to.
    #[error("route `{route}` conflicts with `{existing}`: a parameter at the same position has another name")]
    Conflict { route: String, existing: String },
    /// The same route, with the same parameter names, is already registered.
    #[error("route `{route}` is already registered")]
    Duplicate { route: String },
    /// The pattern breaks the syntax (see `Tree::insert`).
    #[error("malformed route `{route}`: {reason}")]
    Malformed { route: String, reason: &'static str },
}
