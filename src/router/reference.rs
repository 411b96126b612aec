//! A naive router, for the differential test of `Tree` only: it keeps the patterns in a list, splits
//! every path into segments and tries every route. It is written to be obviously right, not fast.
//!
//! The rules, stated once more in the plainest form:
//! - a pattern is '/' followed by segments separated by '/'; `:name` is a parameter, `*name` a
//!   catch-all (last segment only); names are non-empty and unique within the pattern;
//! - a parameter matches one non-empty segment; a catch-all matches the rest of the path from its
//!   segment on, possibly empty; a static segment matches itself;
//! - among the routes that match, the winner has the smallest list of segment kinds in
//!   lexicographic order, with static < parameter < catch-all;
//! - two routes clash if, after the same static segments and same-named wildcards, they have a
//!   parameter (or a catch-all) at the same position with different names (conflict), or if they
//!   are equal (duplicate).

use super::error::InsertError;

/// Declaration order is the priority order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Static,
    Param,
    CatchAll,
}

#[derive(Clone, Debug)]
struct Segment {
    kind: Kind,
    /// The literal text of a static segment, the name of a wildcard.
    text: String,
}

#[derive(Default)]
pub(super) struct Reference {
    routes: Vec<(String, Vec<Segment>)>,
}

impl Reference {
    pub(super) fn insert(&mut self, pattern: &str) -> Result<(), InsertError> {
        let malformed = |reason| InsertError::Malformed {
            route: pattern.to_owned(),
            reason,
        };
        let Some(body) = pattern.strip_prefix('/') else {
            return Err(malformed("must start with '/'"));
        };
        let texts: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let segment = if let Some(name) = text.strip_prefix(':') {
                Segment {
                    kind: Kind::Param,
                    text: name.to_owned(),
                }
            } else if let Some(name) = text.strip_prefix('*') {
                if i + 1 != texts.len() {
                    return Err(malformed("a catch-all must be the last segment"));
                }
                Segment {
                    kind: Kind::CatchAll,
                    text: name.to_owned(),
                }
            } else {
                Segment {
                    kind: Kind::Static,
                    text: text.to_string(),
                }
            };
            if segment.kind != Kind::Static {
                if segment.text.is_empty() {
                    return Err(malformed("empty parameter name"));
                }
                let seen = segments
                    .iter()
                    .any(|s: &Segment| s.kind != Kind::Static && s.text == segment.text);
                if seen {
                    return Err(malformed("repeated parameter name"));
                }
            }
            segments.push(segment);
        }

        for (existing, other) in &self.routes {
            let mut i = 0;
            loop {
                match (segments.get(i), other.get(i)) {
                    (None, None) => {
                        return Err(InsertError::Duplicate {
                            route: pattern.to_owned(),
                        })
                    }
                    (Some(a), Some(b)) if a.kind == b.kind => {
                        if a.text != b.text {
                            if a.kind == Kind::Static {
                                break;
                            }
                            return Err(InsertError::Conflict {
                                route: pattern.to_owned(),
                                existing: existing.clone(),
                            });
                        }
                    }
                    _ => break,
                }
                i += 1;
            }
        }
        self.routes.push((pattern.to_owned(), segments));
        Ok(())
    }

    /// The matched pattern and its parameters.
    pub(super) fn at<'p>(&self, path: &'p str) -> Option<(String, Vec<(String, &'p str)>)> {
        let body = path.strip_prefix('/')?;
        // (byte offset in `path`, text) of each segment.
        let mut parts = Vec::new();
        let mut offset = 1;
        for text in body.split('/') {
            parts.push((offset, text));
            offset += text.len() + 1;
        }

        let mut matches = Vec::new();
        for (pattern, segments) in &self.routes {
            if let Some(params) = match_route(path, &parts, segments) {
                let kinds: Vec<Kind> = segments.iter().map(|s| s.kind).collect();
                matches.push((kinds, pattern.clone(), params));
            }
        }
        matches.sort_by(|a, b| a.0.cmp(&b.0));
        if let [first, second, ..] = matches.as_slice() {
            assert_ne!(first.0, second.0, "two routes of equal rank match {path}");
        }
        matches
            .into_iter()
            .next()
            .map(|(_, pattern, params)| (pattern, params))
    }
}

fn match_route<'p>(
    path: &'p str,
    parts: &[(usize, &'p str)],
    segments: &[Segment],
) -> Option<Vec<(String, &'p str)>> {
    let mut params = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let &(offset, text) = parts.get(i)?;
        match segment.kind {
            Kind::Static if text == segment.text => {}
            Kind::Static => return None,
            Kind::Param if text.is_empty() => return None,
            Kind::Param => params.push((segment.text.clone(), text)),
            Kind::CatchAll => {
                params.push((segment.text.clone(), &path[offset..]));
                return Some(params);
            }
        }
    }
    (segments.len() == parts.len()).then_some(params)
}
