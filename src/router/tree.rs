//! `Tree<T>`: a radix tree from path patterns to values, and the lookup of a request path in it.
//!
//! This module owns the pattern syntax, the conflict rules and the matching priority. It knows
//! nothing of HTTP: no methods, no status codes, no percent-decoding (the caller decodes, keeping
//! `%2F` as text so that an encoded slash never splits a segment), no trailing-slash tolerance
//! (the caller retries with or without the slash if it wants to).
//!
//! Shape: a static node holds a compressed run of literal bytes (`prefix`), its static children
//! indexed by their first byte, and at most one parameter child and one catch-all child. Those two
//! only hang off nodes whose bytes so far end with '/', since both always span whole segments. A
//! parameter node is followed by a static node whose prefix starts with '/', or ends the route.
//!
//! Priority: at each segment, a static continuation is tried first, then the parameter, then the
//! catch-all, backtracking when a branch fails further down. Because the static branch for a given
//! path is unique, this depth-first order picks the route whose segment kinds are smallest in
//! lexicographic order (static < parameter < catch-all), which is what `reference.rs` computes
//! naively for the differential test.
//!
//! Routes are never removed, so the first route to create a node is the oldest route through it;
//! a conflict reports that one.

use super::error::InsertError;
use super::params::{ParamName, Params};

/// A set of path patterns, each with a value. Built once at startup, then cloned per shard.
#[derive(Clone, Debug)]
pub struct Tree<T> {
    root: Node,
    /// Values and their patterns, in registration order; nodes refer to them by index.
    routes: Vec<Route<T>>,
}

/// The result of a lookup: the value, the parameters taken from the path, and the pattern as it
/// was registered (for logs and metrics labels).
#[derive(Debug)]
pub struct Match<'t, 'p, T> {
    pub value: &'t T,
    pub params: Params<'t, 'p>,
    pub pattern: &'t str,
}

#[derive(Clone, Debug)]
struct Route<T> {
    pattern: Box<str>,
    value: T,
}

#[derive(Clone, Debug, Default)]
struct Node {
    prefix: Box<[u8]>,
    /// `indices[i]` is the first byte of `children[i].prefix`. Scanned linearly: a SWAR search
    /// eight bytes at a time measured slower on `benches/router.rs`, even with a root of twenty
    /// children.
    indices: Vec<u8>,
    children: Vec<Node>,
    param: Option<Box<ParamNode>>,
    catch_all: Option<CatchAll>,
    /// The route that ends exactly after `prefix`.
    route: Option<usize>,
}

#[derive(Clone, Debug)]
struct ParamNode {
    name: ParamName,
    /// The oldest route through this parameter: the `existing` side of a name conflict.
    first_route: usize,
    /// The route that ends with this parameter.
    route: Option<usize>,
    /// What follows the parameter's segment; its prefix starts with '/'.
    next: Option<Node>,
}

#[derive(Clone, Debug)]
struct CatchAll {
    name: ParamName,
    route: usize,
}

/// A pattern cut into literal runs, each followed by what comes after it.
/// `/users/:id/keys` is `[("/users/", Param("id")), ("/keys", End)]`.
struct Piece<'a> {
    literal: &'a [u8],
    then: Then<'a>,
}

#[derive(Clone, Copy)]
enum Then<'a> {
    End,
    Param(&'a str),
    CatchAll(&'a str),
}

/// Why an insert clashed with the route at this index.
enum Clash {
    Conflict(usize),
    Duplicate,
}

impl<T> Default for Tree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Tree<T> {
    pub fn new() -> Self {
        Tree {
            root: Node::default(),
            routes: Vec::new(),
        }
    }

    /// Registers `pattern`. It must start with '/'. A segment starting with ':' is a named
    /// parameter matching one non-empty segment (`/users/:id`); a segment starting with '*' is a
    /// catch-all matching the rest of the path, '/' included, possibly empty (`/files/*path`), and
    /// must be the last segment. ':' or '*' elsewhere in a segment are literal. Names are non-empty
    /// and unique within a pattern.
    ///
    /// Errors: a parameter (or catch-all) at the same position as an existing one with another
    /// name, the same route twice, or a malformed pattern. A static segment beside a parameter, or
    /// a parameter beside a catch-all, is fine: the more specific one wins at lookup.
    pub fn insert(&mut self, pattern: &str, value: T) -> Result<(), InsertError> {
        let pieces = parse(pattern).map_err(|reason| InsertError::Malformed {
            route: pattern.to_owned(),
            reason,
        })?;
        let id = self.routes.len();
        match self.root.insert(&pieces, id) {
            Ok(()) => {
                self.routes.push(Route {
                    pattern: pattern.into(),
                    value,
                });
                Ok(())
            }
            Err(Clash::Duplicate) => Err(InsertError::Duplicate {
                route: pattern.to_owned(),
            }),
            Err(Clash::Conflict(existing)) => Err(InsertError::Conflict {
                route: pattern.to_owned(),
                existing: self
                    .routes
                    .get(existing)
                    .map(|route| route.pattern.to_string())
                    .unwrap_or_default(),
            }),
        }
    }

    /// Finds the value for a request path, already percent-decoded by the caller (opaque UTF-8).
    /// Allocates nothing unless the matched route has more than four parameters.
    pub fn at<'t, 'p>(&'t self, path: &'p str) -> Option<Match<'t, 'p, T>> {
        let mut params = Params::new();
        let id = self.root.lookup(path, 0, &mut params)?;
        let route = self.routes.get(id)?;
        Some(Match {
            value: &route.value,
            params,
            pattern: &route.pattern,
        })
    }

    /// The value registered for exactly this pattern (same spelling, same parameter names).
    pub fn get_mut(&mut self, pattern: &str) -> Option<&mut T> {
        let pieces = parse(pattern).ok()?;
        let id = self.root.find(&pieces)?;
        self.routes.get_mut(id).map(|route| &mut route.value)
    }

    /// The number of registered routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Registered patterns and their values, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> + '_ {
        self.routes
            .iter()
            .map(|route| (&*route.pattern, &route.value))
    }
}

/// Checks the syntax and cuts the pattern into pieces. Every piece's literal is non-empty: the
/// first starts with the leading '/', a parameter's or catch-all's is the '/' before it at
/// least, and the one after a parameter starts with the '/' that ends the parameter's segment.
fn parse(pattern: &str) -> Result<Vec<Piece<'_>>, &'static str> {
    if !pattern.starts_with('/') {
        return Err("must start with '/'");
    }
    let mut pieces = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut literal_start = 0;
    let mut segment_start = 1;
    let mut segments = pattern[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        let (name, then) = if let Some(name) = segment.strip_prefix(':') {
            if name.is_empty() {
                return Err("empty parameter name");
            }
            (name, Then::Param(name))
        } else if let Some(name) = segment.strip_prefix('*') {
            if name.is_empty() {
                return Err("empty catch-all name");
            }
            if !is_last {
                return Err("a catch-all must be the last segment");
            }
            (name, Then::CatchAll(name))
        } else {
            segment_start += segment.len() + 1;
            continue;
        };
        if names.contains(&name) {
            return Err("repeated parameter name");
        }
        names.push(name);
        pieces.push(Piece {
            literal: &pattern.as_bytes()[literal_start..segment_start],
            then,
        });
        literal_start = segment_start + segment.len();
        segment_start = literal_start + 1;
    }
    if literal_start < pattern.len() {
        pieces.push(Piece {
            literal: &pattern.as_bytes()[literal_start..],
            then: Then::End,
        });
    }
    Ok(pieces)
}

impl Node {
    /// Adds the route made of `pieces` below this node, whose prefix is to be matched against the
    /// first piece's literal. Conflicts can only be met on nodes that already exist: once a node
    /// is created everything below it is new, so a failed insert leaves at most some split nodes,
    /// which match exactly what the unsplit ones did.
    fn insert(&mut self, pieces: &[Piece<'_>], id: usize) -> Result<(), Clash> {
        let Some((piece, rest)) = pieces.split_first() else {
            return Ok(());
        };
        let mut literal = piece.literal;
        let mut node = self;
        if node.is_blank() {
            node.prefix = literal.into();
            return node.attach(piece.then, rest, id);
        }
        loop {
            let common = common_prefix_len(&node.prefix, literal);
            if common < node.prefix.len() {
                node.split_at(common);
            }
            literal = &literal[common..];
            let Some(&first) = literal.first() else {
                return node.attach(piece.then, rest, id);
            };
            let i = match node.indices.iter().position(|&b| b == first) {
                Some(i) => i,
                None => {
                    node.indices.push(first);
                    node.children.push(Node {
                        prefix: literal.into(),
                        ..Node::default()
                    });
                    let child = node.children.last_mut().expect("just pushed");
                    return child.attach(piece.then, rest, id);
                }
            };
            node = &mut node.children[i];
        }
    }

    /// Hangs what follows a literal (end, parameter or catch-all) on this node, where the literal
    /// ended.
    fn attach(&mut self, then: Then<'_>, rest: &[Piece<'_>], id: usize) -> Result<(), Clash> {
        match then {
            Then::End => set_route(&mut self.route, id),
            Then::Param(name) => {
                let param = self.param.get_or_insert_with(|| {
                    Box::new(ParamNode {
                        name: ParamName::new(name),
                        first_route: id,
                        route: None,
                        next: None,
                    })
                });
                if param.name.as_str() != name {
                    return Err(Clash::Conflict(param.first_route));
                }
                if rest.is_empty() {
                    set_route(&mut param.route, id)
                } else {
                    param
                        .next
                        .get_or_insert_with(Node::default)
                        .insert(rest, id)
                }
            }
            Then::CatchAll(name) => match &self.catch_all {
                Some(existing) if existing.name.as_str() != name => {
                    Err(Clash::Conflict(existing.route))
                }
                Some(_) => Err(Clash::Duplicate),
                None => {
                    self.catch_all = Some(CatchAll {
                        name: ParamName::new(name),
                        route: id,
                    });
                    Ok(())
                }
            },
        }
    }

    fn is_blank(&self) -> bool {
        self.prefix.is_empty()
            && self.children.is_empty()
            && self.param.is_none()
            && self.catch_all.is_none()
            && self.route.is_none()
    }

    /// Cuts the prefix after `at` bytes; the tail becomes the only child and keeps everything
    /// that hung off this node.
    fn split_at(&mut self, at: usize) {
        let tail = Node {
            prefix: self.prefix[at..].into(),
            indices: std::mem::take(&mut self.indices),
            children: std::mem::take(&mut self.children),
            param: self.param.take(),
            catch_all: self.catch_all.take(),
            route: self.route.take(),
        };
        self.prefix = self.prefix[..at].into();
        self.indices = vec![tail.prefix[0]];
        self.children = vec![tail];
    }

    /// The route registered with exactly these pieces, parameter names included.
    fn find(&self, pieces: &[Piece<'_>]) -> Option<usize> {
        let mut node = self;
        let mut pieces = pieces.iter().peekable();
        while let Some(piece) = pieces.next() {
            let mut literal = piece.literal;
            loop {
                literal = literal.strip_prefix(&*node.prefix)?;
                let Some(first) = literal.first() else { break };
                let i = node.indices.iter().position(|b| b == first)?;
                node = &node.children[i];
            }
            match piece.then {
                Then::End => return node.route,
                Then::CatchAll(name) => {
                    let catch_all = node.catch_all.as_ref()?;
                    return (catch_all.name.as_str() == name).then_some(catch_all.route);
                }
                Then::Param(name) => {
                    let param = node.param.as_deref()?;
                    if param.name.as_str() != name {
                        return None;
                    }
                    if pieces.peek().is_none() {
                        return param.route;
                    }
                    node = param.next.as_ref()?;
                }
            }
        }
        None
    }

    /// Matches `path[pos..]` against this node and below; returns the route's index. Recursion
    /// happens only where a wildcard sibling may need the path back, so its depth is bounded by
    /// the tree's, never by the request.
    fn lookup<'t, 'p>(
        &'t self,
        path: &'p str,
        mut pos: usize,
        params: &mut Params<'t, 'p>,
    ) -> Option<usize> {
        let bytes = path.as_bytes();
        let mut node = self;
        loop {
            if !has_prefix_at(bytes, pos, &node.prefix) {
                return None;
            }
            pos += node.prefix.len();
            let Some(&next) = bytes.get(pos) else {
                // The path ends here: this node's route, else an empty catch-all.
                if node.route.is_some() {
                    return node.route;
                }
                let catch_all = node.catch_all.as_ref()?;
                params.push(&catch_all.name, "");
                return Some(catch_all.route);
            };

            if let Some(i) = node.indices.iter().position(|&b| b == next) {
                let child = node.children.get(i)?;
                if node.param.is_none() && node.catch_all.is_none() {
                    node = child;
                    continue;
                }
                let mark = params.len();
                if let Some(id) = child.lookup(path, pos, params) {
                    return Some(id);
                }
                params.truncate(mark);
            }

            if let Some(param) = &node.param {
                // A '/' byte is never inside a multi-byte character, so `end` is a char boundary.
                let end = segment_end(bytes, pos);
                if end > pos {
                    let value = path.get(pos..end)?;
                    if end == bytes.len() {
                        if let Some(id) = param.route {
                            params.push(&param.name, value);
                            return Some(id);
                        }
                    } else if let Some(after) = &param.next {
                        if node.catch_all.is_none() {
                            params.push(&param.name, value);
                            node = after;
                            pos = end;
                            continue;
                        }
                        let mark = params.len();
                        params.push(&param.name, value);
                        if let Some(id) = after.lookup(path, end, params) {
                            return Some(id);
                        }
                        params.truncate(mark);
                    }
                }
            }

            let catch_all = node.catch_all.as_ref()?;
            params.push(&catch_all.name, path.get(pos..)?);
            return Some(catch_all.route);
        }
    }
}

fn set_route(slot: &mut Option<usize>, id: usize) -> Result<(), Clash> {
    match slot {
        Some(_) => Err(Clash::Duplicate),
        None => {
            *slot = Some(id);
            Ok(())
        }
    }
}

/// The index of the first '/' at or after `pos`, or the length: where a segment ends. Eight bytes
/// at a time, since parameter values such as commit hashes run to 40 bytes.
#[inline(always)]
fn segment_end(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const SLASHES: u64 = ONES * b'/' as u64;
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Lanes of `x` are zero where the byte is '/'; the lowest flagged lane is the first '/'
        // (a borrow only ever flags lanes above a zero one).
        let x = u64::from_le_bytes(word) ^ SLASHES;
        let flags = x.wrapping_sub(ONES) & !x & (ONES << 7);
        if flags != 0 {
            return pos + flags.trailing_zeros() as usize / 8;
        }
        pos += 8;
    }
    match bytes
        .get(pos..)
        .and_then(|tail| tail.iter().position(|&b| b == b'/'))
    {
        Some(len) => pos + len,
        None => bytes.len(),
    }
}

/// `bytes[pos..].starts_with(prefix)`, inline: prefixes are a few bytes long, and a call to
/// `memcmp` per node took 40% of a lookup (perf, `benches/router.rs`). Compares in words, the
/// last one overlapping the previous, so any length takes at most `len / 8 + 1` comparisons.
#[inline(always)]
fn has_prefix_at(bytes: &[u8], pos: usize, prefix: &[u8]) -> bool {
    let Some(candidate) = bytes.get(pos..).and_then(|rest| rest.get(..prefix.len())) else {
        return false;
    };
    let len = prefix.len();
    if len >= 8 {
        let mut i = 0;
        while i + 8 < len {
            if word::<8>(candidate, i) != word::<8>(prefix, i) {
                return false;
            }
            i += 8;
        }
        word::<8>(candidate, len - 8) == word::<8>(prefix, len - 8)
    } else if len >= 4 {
        word::<4>(candidate, 0) == word::<4>(prefix, 0)
            && word::<4>(candidate, len - 4) == word::<4>(prefix, len - 4)
    } else if len >= 2 {
        word::<2>(candidate, 0) == word::<2>(prefix, 0)
            && word::<2>(candidate, len - 2) == word::<2>(prefix, len - 2)
    } else {
        candidate.first() == prefix.first()
    }
}

/// The `N` bytes at `at` as an integer (`N` ≤ 8); callers keep `at + N` within `bytes`.
#[inline(always)]
fn word<const N: usize>(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(chunk) = bytes.get(at..at + N) {
        word[..N].copy_from_slice(chunk);
    }
    u64::from_le_bytes(word)
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::super::reference::Reference;
    use super::*;
    use proptest::prelude::*;

    /// (pattern, params) of the match, owned, for comparing answers.
    type Answer = Option<(String, Vec<(String, String)>)>;

    fn answer<T>(tree: &Tree<T>, path: &str) -> Answer {
        tree.at(path).map(|m| {
            let params = m.params.iter().map(|(k, v)| (k.into(), v.into()));
            (m.pattern.to_owned(), params.collect())
        })
    }

    fn tree_of(patterns: &[&str]) -> Tree<usize> {
        let mut tree = Tree::new();
        for (i, pattern) in patterns.iter().enumerate() {
            tree.insert(pattern, i)
                .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        }
        tree
    }

    /// Asserts that `path` matches `pattern` with exactly `params`.
    #[track_caller]
    fn assert_match(tree: &Tree<usize>, path: &str, pattern: &str, params: &[(&str, &str)]) {
        let found = tree
            .at(path)
            .unwrap_or_else(|| panic!("{path} matched nothing, expected {pattern}"));
        assert_eq!(found.pattern, pattern, "for {path}");
        assert_eq!(
            found.params.iter().collect::<Vec<_>>(),
            params,
            "for {path}"
        );
        assert_eq!(found.params.len(), params.len());
        for &(name, value) in params {
            assert_eq!(found.params.get(name), Some(value));
        }
    }

    #[track_caller]
    fn assert_miss(tree: &Tree<usize>, path: &str) {
        if let Some(found) = tree.at(path) {
            panic!("{path} matched {}, expected nothing", found.pattern);
        }
    }

    const TABLE: &[&str] = &[
        "/",
        "/users",
        "/users/",
        "/users/new",
        "/users/new/edit",
        "/users/:id",
        "/users/:id/profile",
        "/users/:id/posts/:post",
        "/users/*rest",
        "/files/*path",
        "/files/readme",
        "/:page",
        "/:page/about",
        "/api/v1/:resource/:id",
        "/api/v1/status",
        "/api/*rest",
        "/assets/app.js",
        "/assets/app.css",
        "/assets/:file",
    ];

    const PATHS: &[&str] = &[
        "/",
        "",
        "/users",
        "/users/",
        "/users/new",
        "/users/new/edit",
        "/users/new/profile",
        "/users/new/posts/7",
        "/users/42",
        "/users/42/profile",
        "/users/42/other",
        "/users/a/b/c",
        "/files/",
        "/files/readme",
        "/files/readme/x",
        "/files/a/b",
        "/contact",
        "/contact/about",
        "/contact/x",
        "/api/v1/status",
        "/api/v1/status/3",
        "/api/v1/widgets",
        "/api/v2",
        "/api/",
        "/assets/app.js",
        "/assets/app.json",
        "/assets/app",
        "//",
        "/users//profile",
    ];

    #[test]
    fn registration_order_does_not_matter() {
        let expected: Vec<Answer> = {
            let tree = tree_of(TABLE);
            PATHS.iter().map(|path| answer(&tree, path)).collect()
        };
        // Reversed, rotated, and a fixed pseudo-random shuffle per seed.
        let mut orders: Vec<Vec<&str>> = vec![TABLE.iter().rev().copied().collect()];
        for k in 1..TABLE.len() {
            orders.push(TABLE[k..].iter().chain(&TABLE[..k]).copied().collect());
        }
        for seed in 1..50u64 {
            let mut order = TABLE.to_vec();
            let mut state = seed;
            for i in (1..order.len()).rev() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            orders.push(order);
        }
        for order in orders {
            let tree = tree_of(&order);
            let answers: Vec<Answer> = PATHS.iter().map(|path| answer(&tree, path)).collect();
            assert_eq!(answers, expected, "order {order:?}");
        }
        // And the answers are the intended ones, for a few telling paths.
        let tree = tree_of(TABLE);
        assert_match(
            &tree,
            "/users/new/profile",
            "/users/:id/profile",
            &[("id", "new")],
        );
        assert_match(
            &tree,
            "/users/42/other",
            "/users/*rest",
            &[("rest", "42/other")],
        );
        assert_match(
            &tree,
            "/api/v1/status/3",
            "/api/v1/:resource/:id",
            &[("resource", "status"), ("id", "3")],
        );
        assert_match(
            &tree,
            "/assets/app.json",
            "/assets/:file",
            &[("file", "app.json")],
        );
        assert_match(
            &tree,
            "/contact/about",
            "/:page/about",
            &[("page", "contact")],
        );
        assert_miss(&tree, "/contact/x");
        assert_miss(&tree, "");
        assert_miss(&tree, "//");
    }

    #[test]
    fn conflicting_parameter_names_are_reported_with_both_routes() {
        let mut tree = tree_of(&["/users/:id", "/users/:id/keys"]);
        let err = tree.insert("/users/:name/x", 9).unwrap_err();
        assert_eq!(
            err,
            InsertError::Conflict {
                route: "/users/:name/x".into(),
                existing: "/users/:id".into(),
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("/users/:name/x") && message.contains("/users/:id"),
            "{message}"
        );
        // Deeper down, the oldest route through the clashing parameter is named.
        let mut tree = tree_of(&["/a/:x/b/:y/c", "/a/:x/b/:y"]);
        assert_eq!(
            tree.insert("/a/:x/b/:z", 9),
            Err(InsertError::Conflict {
                route: "/a/:x/b/:z".into(),
                existing: "/a/:x/b/:y/c".into(),
            })
        );
        // The failed inserts left the tree answering as before.
        assert_eq!(tree.len(), 2);
        assert_match(&tree, "/a/1/b/2", "/a/:x/b/:y", &[("x", "1"), ("y", "2")]);
        assert_miss(&tree, "/a/1/b/2/x");
    }

    #[test]
    fn conflicting_catch_all_names_are_reported_with_both_routes() {
        let mut tree = tree_of(&["/files/*path"]);
        assert_eq!(
            tree.insert("/files/*rest", 1),
            Err(InsertError::Conflict {
                route: "/files/*rest".into(),
                existing: "/files/*path".into(),
            })
        );
    }

    #[test]
    fn duplicate_routes_are_rejected() {
        let mut tree = tree_of(&["/", "/users/:id", "/files/*path", "/a/b", "/a/:x/c"]);
        for pattern in ["/", "/users/:id", "/files/*path", "/a/b", "/a/:x/c"] {
            assert_eq!(
                tree.insert(pattern, 9),
                Err(InsertError::Duplicate {
                    route: pattern.into()
                }),
            );
        }
        assert_eq!(tree.len(), 5);
        assert_eq!(tree.at("/users/1").map(|m| *m.value), Some(1));
    }

    #[test]
    fn malformed_patterns_are_rejected_with_a_reason() {
        let cases = [
            ("", "must start with '/'"),
            ("users", "must start with '/'"),
            ("*rest", "must start with '/'"),
            ("/:", "empty parameter name"),
            ("/users/:/x", "empty parameter name"),
            ("/*", "empty catch-all name"),
            ("/files/*path/x", "a catch-all must be the last segment"),
            ("/*a/*b", "a catch-all must be the last segment"),
            ("/:id/:id", "repeated parameter name"),
            ("/:id/*id", "repeated parameter name"),
        ];
        let mut tree = Tree::new();
        for (pattern, reason) in cases {
            assert_eq!(
                tree.insert(pattern, 0),
                Err(InsertError::Malformed {
                    route: pattern.into(),
                    reason
                }),
            );
        }
        assert!(tree.is_empty());
    }

    #[test]
    fn static_beats_parameter_beats_catch_all_with_backtracking() {
        // Inserted least specific first, to show that order plays no part.
        let tree = tree_of(&[
            "/users/*rest",
            "/users/:id/profile",
            "/users/:id",
            "/users/new/edit",
            "/users/new",
        ]);
        assert_match(&tree, "/users/new", "/users/new", &[]);
        assert_match(&tree, "/users/new/edit", "/users/new/edit", &[]);
        // The static branch fails below `new`: back to the parameter.
        assert_match(
            &tree,
            "/users/new/profile",
            "/users/:id/profile",
            &[("id", "new")],
        );
        // Both fail below: back to the catch-all, which gets the whole rest.
        assert_match(
            &tree,
            "/users/new/other",
            "/users/*rest",
            &[("rest", "new/other")],
        );
        assert_match(
            &tree,
            "/users/7/profile/x",
            "/users/*rest",
            &[("rest", "7/profile/x")],
        );
        // A static prefix of the segment is not the segment.
        assert_match(&tree, "/users/newer", "/users/:id", &[("id", "newer")]);
        assert_match(&tree, "/users/ne", "/users/:id", &[("id", "ne")]);
        // Parameters never match an empty segment; the catch-all may.
        assert_match(&tree, "/users/", "/users/*rest", &[("rest", "")]);
        assert_match(
            &tree,
            "/users//profile",
            "/users/*rest",
            &[("rest", "/profile")],
        );
    }

    #[test]
    fn static_beside_parameter_and_parameter_beside_catch_all_are_not_conflicts() {
        let mut tree = Tree::new();
        for (i, pattern) in ["/x/:id", "/x/new", "/x/*rest", "/x/:id/y"]
            .iter()
            .enumerate()
        {
            assert_eq!(tree.insert(pattern, i), Ok(()));
        }
        assert_eq!(tree.len(), 4);
    }

    #[test]
    fn matching_is_exact_and_case_sensitive() {
        let tree = tree_of(&["/users", "/Users/:id"]);
        assert_match(&tree, "/users", "/users", &[]);
        assert_miss(&tree, "/users/");
        assert_miss(&tree, "/USERS");
        assert_miss(&tree, "/user");
        assert_miss(&tree, "users");
        assert_match(&tree, "/Users/x", "/Users/:id", &[("id", "x")]);
        assert_miss(&tree, "/Users/x/");
    }

    #[test]
    fn colon_and_star_inside_a_segment_are_literal() {
        let tree = tree_of(&["/a:b", "/files/v*", "/x/:id", "/x/y:z"]);
        assert_match(&tree, "/a:b", "/a:b", &[]);
        assert_miss(&tree, "/ab");
        assert_match(&tree, "/files/v*", "/files/v*", &[]);
        assert_miss(&tree, "/files/v1");
        assert_match(&tree, "/x/y:z", "/x/y:z", &[]);
        assert_match(&tree, "/x/y:w", "/x/:id", &[("id", "y:w")]);
    }

    #[test]
    fn unicode_patterns_and_values() {
        // `café` and `cafè` share a prefix that ends inside the 'é'/'è' encoding.
        let tree = tree_of(&["/café/:nom", "/cafè/:nom", "/日本/*rest"]);
        assert_match(&tree, "/café/日本", "/café/:nom", &[("nom", "日本")]);
        assert_match(&tree, "/cafè/Ωmega", "/cafè/:nom", &[("nom", "Ωmega")]);
        assert_match(
            &tree,
            "/日本/東京/渋谷",
            "/日本/*rest",
            &[("rest", "東京/渋谷")],
        );
        assert_miss(&tree, "/cafe/x");
        assert_miss(&tree, "/caf");
    }

    #[test]
    fn encoded_slash_stays_inside_one_segment() {
        let tree = tree_of(&["/repos/:name", "/repos/:name/issues"]);
        assert_match(&tree, "/repos/a%2Fb", "/repos/:name", &[("name", "a%2Fb")]);
        assert_match(
            &tree,
            "/repos/a%2Fb/issues",
            "/repos/:name/issues",
            &[("name", "a%2Fb")],
        );
        assert_miss(&tree, "/repos/a/b");
    }

    #[test]
    fn catch_all_matches_empty_rest() {
        let tree = tree_of(&["/files/*path", "/*all"]);
        assert_match(&tree, "/files/", "/files/*path", &[("path", "")]);
        assert_match(
            &tree,
            "/files/a/b.txt",
            "/files/*path",
            &[("path", "a/b.txt")],
        );
        // No '/' after `files`: the catch-all's own segment is missing.
        assert_match(&tree, "/files", "/*all", &[("all", "files")]);
        assert_match(&tree, "/", "/*all", &[("all", "")]);
    }

    #[test]
    fn root_route() {
        let tree = tree_of(&["/"]);
        assert_match(&tree, "/", "/", &[]);
        assert_miss(&tree, "");
        assert_miss(&tree, "//");
        assert_miss(&tree, "/a");
        let tree = tree_of(&["/:page", "/"]);
        assert_match(&tree, "/", "/", &[]);
        assert_match(&tree, "/a", "/:page", &[("page", "a")]);
    }

    #[test]
    fn deep_nesting() {
        let pattern: String = (0..64).map(|i| format!("/s{i}/:p{i}")).collect();
        let path: String = (0..64).map(|i| format!("/s{i}/v{i}")).collect();
        let mut tree = tree_of(&[&pattern, "/s0/*rest"]);
        let found = tree.at(&path).expect("deep path matches");
        assert_eq!(found.pattern, pattern);
        assert_eq!(found.params.len(), 64);
        assert_eq!(found.params.get("p63"), Some("v63"));
        // One segment short falls back to the catch-all.
        let short = &path[..path.rfind('/').unwrap_or(0)];
        assert_eq!(tree.at(short).map(|m| m.pattern), Some("/s0/*rest"));
        *tree.get_mut(&pattern).expect("registered") = 7;
        assert_eq!(tree.at(&path).map(|m| *m.value), Some(7));
    }

    #[test]
    fn more_than_four_params_spill() {
        let tree = tree_of(&["/:a/:b/:c/:d/:e/:f", "/:a/:b/:c/:d/x"]);
        assert_match(
            &tree,
            "/1/2/3/4/5/6",
            "/:a/:b/:c/:d/:e/:f",
            &[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", "6"),
            ],
        );
        assert_match(
            &tree,
            "/1/2/3/4/x",
            "/:a/:b/:c/:d/x",
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
        );
    }

    #[test]
    fn get_mut_finds_exactly_the_registered_spelling() {
        let mut tree = tree_of(&["/users/:id", "/users/:id/keys", "/files/*path", "/a/b"]);
        *tree.get_mut("/users/:id/keys").expect("registered") += 10;
        assert_eq!(tree.at("/users/1/keys").map(|m| *m.value), Some(11));
        assert_eq!(tree.get_mut("/files/*path").copied(), Some(2));
        assert_eq!(tree.get_mut("/a/b").copied(), Some(3));
        for absent in [
            "/users/:name",
            "/users/1",
            "/users",
            "/a",
            "/a/",
            "/files/*p",
            "/files/x",
            "",
            "x",
        ] {
            assert_eq!(tree.get_mut(absent), None, "{absent}");
        }
        assert_eq!(
            tree.iter().map(|(p, v)| (p, *v)).collect::<Vec<_>>(),
            [
                ("/users/:id", 0),
                ("/users/:id/keys", 11),
                ("/files/*path", 2),
                ("/a/b", 3)
            ]
        );
    }

    #[test]
    fn word_compare_agrees_with_starts_with() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=24 {
            for pos in 0..=text.len() {
                let prefix = &text[3..3 + len];
                let expect = text[pos..].starts_with(prefix);
                assert_eq!(
                    has_prefix_at(&text, pos, prefix),
                    expect,
                    "len {len} pos {pos}"
                );
                // The same with one byte changed, at every index.
                for flip in 0..len {
                    let mut changed = prefix.to_vec();
                    changed[flip] ^= 0x20;
                    let expect = text[pos..].starts_with(&changed);
                    assert_eq!(has_prefix_at(&text, pos, &changed), expect);
                }
            }
        }
    }

    #[test]
    fn segment_end_finds_the_first_slash() {
        for len in 0..=20 {
            let plain = "é".repeat(len);
            let plain = &plain[..len - len % 2];
            for start in 0..=plain.len() {
                assert_eq!(segment_end(plain.as_bytes(), start), plain.len());
            }
            for slash in 0..len {
                let mut path = vec![b'x'; len];
                path[slash] = b'/';
                if slash + 3 < len {
                    path[slash + 3] = b'/';
                }
                for start in 0..=slash {
                    assert_eq!(segment_end(&path, start), slash, "len {len} slash {slash}");
                }
            }
        }
    }

    fn segment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a", "b", "ab", "é", "", ":p", ":q", "*rest", "*r", "a:b",
        ])
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..=4).prop_map(|s| format!("/{}", s.join("/")))
    }

    fn path() -> impl Strategy<Value = String> {
        let word = prop::sample::select(vec![
            "a",
            "b",
            "ab",
            "é",
            "",
            "x",
            "日本",
            "a%2Fb",
            "a:b",
            "abcdefghijkl",
            "abcdefghij",
        ]);
        (prop::collection::vec(word, 0..=5), any::<bool>()).prop_map(|(s, slash)| {
            let body = s.join("/");
            if slash {
                format!("/{body}")
            } else {
                body
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Same accept/reject of every insert and same answer for every path as the naive matcher.
        #[test]
        fn agrees_with_reference_matcher(
            patterns in prop::collection::vec(pattern(), 1..10),
            paths in prop::collection::vec(path(), 1..20),
        ) {
            let mut tree = Tree::new();
            let mut reference = Reference::default();
            let mut accepted = Vec::new();
            for (i, pattern) in patterns.iter().enumerate() {
                let got = tree.insert(pattern, i);
                let want = reference.insert(pattern);
                match (&got, &want) {
                    (Err(InsertError::Malformed { .. }), Err(InsertError::Malformed { .. })) => {}
                    _ => prop_assert_eq!(&got, &want, "inserting {}", pattern),
                }
                if got.is_ok() {
                    accepted.push(pattern);
                }
            }
            prop_assert_eq!(tree.len(), accepted.len());
            for pattern in &accepted {
                let value = tree.get_mut(pattern).copied();
                prop_assert_eq!(value.map(|i| &patterns[i]), Some(*pattern));
            }
            let mut paths = paths;
            // Paths spelled like the patterns hit the static parts (and `:p` is a fine value).
            paths.extend(patterns.iter().cloned());
            for path in &paths {
                let got = answer(&tree, path);
                let want = reference
                    .at(path)
                    .map(|(p, params)| (p, params.into_iter().map(|(k, v)| (k, v.to_owned())).collect()));
                prop_assert_eq!(&got, &want, "path {:?}", path);
                if let Some(found) = tree.at(path) {
                    prop_assert_eq!(&patterns[*found.value], found.pattern);
                }
            }
        }

        /// Any string, as a pattern or as a path, gives an answer, never a panic.
        #[test]
        fn never_panics_on_any_input(
            patterns in prop::collection::vec("[/:*aé]{0,10}", 0..10),
            paths in prop::collection::vec("[/:*aé]{0,10}|.{0,10}", 0..10),
        ) {
            let mut tree = Tree::new();
            for (i, pattern) in patterns.iter().enumerate() {
                let _ = tree.insert(pattern, i);
                let _ = tree.get_mut(pattern);
            }
            for path in &paths {
                let _ = tree.at(path);
            }
        }
    }
}
