//! `Params`: the parameters of one match, as (name, value) slices borrowed from the tree and the
//! request path.
//!
//! Up to `INLINE` parameters live in an array inside `Params` itself, so a lookup allocates nothing
//! for ordinary routes; a route with more spills to a `Vec` on the push that overflows.

/// How many parameters fit without allocating. Four covers every route of a GitHub-like API
/// (`/repos/:owner/:repo/issues/:number` has three).
const INLINE: usize = 4;

/// A parameter's name as the tree stores it. `Params` refers to it with a thin pointer, 8 bytes
/// instead of a `&str`'s 16: that keeps `Params` small enough to be moved with a few register
/// stores, where at 136 bytes it cost two `memcpy` calls per lookup (perf, `benches/router.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ParamName(Box<str>);

impl ParamName {
    pub(super) fn new(name: &str) -> Self {
        ParamName(name.into())
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A slot of the inline array; `None` only past `len`.
type Slot<'t, 'p> = Option<(&'t ParamName, &'p str)>;

/// The parameters captured by a match, in pattern order. A catch-all's value is the rest of the
/// path, possibly empty, including any '/'.
#[derive(Clone)]
pub struct Params<'t, 'p> {
    storage: Storage<'t, 'p>,
}

#[derive(Clone)]
enum Storage<'t, 'p> {
    Inline {
        slots: [Slot<'t, 'p>; INLINE],
        len: usize,
    },
    Spilled(Vec<Slot<'t, 'p>>),
}

impl<'t, 'p> Params<'t, 'p> {
    pub(super) fn new() -> Self {
        Params {
            storage: Storage::Inline {
                slots: [None; INLINE],
                len: 0,
            },
        }
    }

    /// The value of the parameter called `name`, if the matched pattern has one.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.iter()
            .find(|&(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// (name, value) pairs in the order they appear in the pattern.
    pub fn iter(&self) -> impl Iterator<Item = (&'t str, &'p str)> + '_ {
        self.slots()
            .iter()
            .flatten()
            .map(|&(name, value)| (name.as_str(), value))
    }

    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Inline { len, .. } => *len,
            Storage::Spilled(slots) => slots.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slots(&self) -> &[Slot<'t, 'p>] {
        match &self.storage {
            // `get`, not indexing: `len` never exceeds INLINE, but the optimiser need not know.
            Storage::Inline { slots, len } => slots.get(..*len).unwrap_or_default(),
            Storage::Spilled(slots) => slots,
        }
    }

    pub(super) fn push(&mut self, name: &'t ParamName, value: &'p str) {
        match &mut self.storage {
            Storage::Inline { slots, len } => {
                if let Some(slot) = slots.get_mut(*len) {
                    *slot = Some((name, value));
                    *len += 1;
                } else {
                    let mut spilled = Vec::with_capacity(INLINE * 2);
                    spilled.extend_from_slice(slots);
                    spilled.push(Some((name, value)));
                    self.storage = Storage::Spilled(spilled);
                }
            }
            Storage::Spilled(slots) => slots.push(Some((name, value))),
        }
    }

    /// Forgets the parameters pushed after the first `new_len`: the tree backtracks out of a
    /// branch.
    pub(super) fn truncate(&mut self, new_len: usize) {
        match &mut self.storage {
            Storage::Inline { len, .. } => *len = new_len.min(*len),
            Storage::Spilled(slots) => slots.truncate(new_len),
        }
    }
}

/// Equal when the (name, value) pairs are, whatever the storage.
impl PartialEq for Params<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Params<'_, '_> {}

impl std::fmt::Debug for Params<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_inline_capacity_and_keeps_order() {
        let names: Vec<ParamName> = ["a", "b", "c", "d", "e", "f"]
            .into_iter()
            .map(ParamName::new)
            .collect();
        let mut params = Params::new();
        for name in &names {
            params.push(name, name.as_str());
        }
        assert!(matches!(params.storage, Storage::Spilled(_)));
        assert_eq!(params.len(), 6);
        let keys: Vec<&str> = params.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f"]);
        params.truncate(2);
        assert_eq!(params.len(), 2);
        assert_eq!(params.get("b"), Some("b"));
        assert_eq!(params.get("e"), None);
    }

    #[test]
    fn truncate_then_push_overwrites_inline_slots() {
        let (a, b, c) = (
            ParamName::new("a"),
            ParamName::new("b"),
            ParamName::new("c"),
        );
        let mut params = Params::new();
        params.push(&a, "1");
        params.push(&b, "2");
        params.truncate(1);
        params.push(&c, "3");
        assert!(matches!(params.storage, Storage::Inline { .. }));
        assert_eq!(params.iter().collect::<Vec<_>>(), [("a", "1"), ("c", "3")]);
        assert_eq!(params.get("b"), None);
        let mut same = Params::new();
        same.push(&a, "1");
        same.push(&c, "3");
        assert_eq!(params, same);
    }

    #[test]
    fn inline_params_fit_in_an_inline_copy() {
        // Above 128 bytes the compiler moves `Params` with `memcpy` calls (see `ParamName`).
        assert!(std::mem::size_of::<Params<'_, '_>>() <= 128);
    }
}
