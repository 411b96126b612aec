//! `Params`: the parameters of one match, as (name, value) slices borrowed from the tree and the
//! request path.
//!
//! Up to `INLINE` parameters live in an array inside `Params` itself, so a lookup allocates nothing
//! for ordinary routes; a route with more spills to a `Vec` on the push that overflows.

/// How many parameters fit without allocating. Four covers every route of a GitHub-like API
/// (`/repos/:owner/:repo/issues/:number` has three).
const INLINE: usize = 4;

/// One parameter: the name from the pattern (lives as long as the tree) and the raw value from the
/// path (lives as long as the path).
type Param<'t, 'p> = (&'t str, &'p str);

/// The parameters captured by a match, in pattern order. A catch-all's value is the rest of the
/// path, possibly empty, including any '/'.
#[derive(Clone, PartialEq, Eq)]
pub struct Params<'t, 'p> {
    storage: Storage<'t, 'p>,
}

#[derive(Clone, PartialEq, Eq)]
enum Storage<'t, 'p> {
    Inline {
        items: [Param<'t, 'p>; INLINE],
        len: usize,
    },
    Spilled(Vec<Param<'t, 'p>>),
}

impl<'t, 'p> Params<'t, 'p> {
    pub(super) fn new() -> Self {
        Params {
            storage: Storage::Inline {
                items: [("", ""); INLINE],
                len: 0,
            },
        }
    }

    /// The value of the parameter called `name`, if the matched pattern has one.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.as_slice()
            .iter()
            .find(|(key, _)| *key == name)
            .map(|&(_, value)| value)
    }

    /// (name, value) pairs in the order they appear in the pattern.
    pub fn iter(&self) -> impl Iterator<Item = (&'t str, &'p str)> + '_ {
        self.as_slice().iter().copied()
    }

    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Inline { len, .. } => *len,
            Storage::Spilled(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> &[Param<'t, 'p>] {
        match &self.storage {
            // `get` instead of indexing: `len` never exceeds INLINE, but the optimiser need not know.
            Storage::Inline { items, len } => items.get(..*len).unwrap_or_default(),
            Storage::Spilled(items) => items,
        }
    }

    pub(super) fn push(&mut self, name: &'t str, value: &'p str) {
        match &mut self.storage {
            Storage::Inline { items, len } => {
                if let Some(slot) = items.get_mut(*len) {
                    *slot = (name, value);
                    *len += 1;
                } else {
                    let mut spilled = Vec::with_capacity(INLINE * 2);
                    spilled.extend_from_slice(items);
                    spilled.push((name, value));
                    self.storage = Storage::Spilled(spilled);
                }
            }
            Storage::Spilled(items) => items.push((name, value)),
        }
    }

    /// Forgets the parameters pushed after the first `len`: the tree backtracks out of a branch.
    pub(super) fn truncate(&mut self, new_len: usize) {
        match &mut self.storage {
            Storage::Inline { len, .. } => *len = new_len.min(*len),
            Storage::Spilled(items) => items.truncate(new_len),
        }
    }
}

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
        let mut params = Params::new();
        let names = ["a", "b", "c", "d", "e", "f"];
        for name in names {
            params.push(name, name);
        }
        assert!(matches!(params.storage, Storage::Spilled(_)));
        assert_eq!(params.len(), 6);
        assert_eq!(params.iter().map(|(k, _)| k).collect::<Vec<_>>(), names);
        params.truncate(2);
        assert_eq!(params.len(), 2);
        assert_eq!(params.get("b"), Some("b"));
        assert_eq!(params.get("e"), None);
    }

    #[test]
    fn truncate_then_push_overwrites_inline_slots() {
        let mut params = Params::new();
        params.push("a", "1");
        params.push("b", "2");
        params.truncate(1);
        params.push("c", "3");
        assert!(matches!(params.storage, Storage::Inline { .. }));
        assert_eq!(params.iter().collect::<Vec<_>>(), [("a", "1"), ("c", "3")]);
        assert_eq!(params.get("b"), None);
    }
}
