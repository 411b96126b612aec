//! Method dispatch for one path: which handler answers which method, and the `Allow` header for
//! the rest (RFC 9110 §9.1, §10.2.1, §15.5.6).
//!
//! HEAD is answered by the GET handler when there is no HEAD handler (RFC 9110 §9.3.2: the same
//! response without content; the connection drops the body). OPTIONS without a handler is
//! answered with `Allow`.

use http::header::HeaderValue;
use http::Method;

/// The handlers of one path, by method, with an optional catch-all for any method.
#[derive(Debug, Clone)]
pub struct MethodTable<H> {
    entries: Vec<(Method, H)>,
    any: Option<H>,
    allow: HeaderValue,
}

/// What a request's method finds in a [`MethodTable`].
#[derive(Debug)]
pub enum MethodMatch<'a, H> {
    Handler(&'a H),
    /// OPTIONS with no handler for it: answer with `Allow`.
    Options(&'a HeaderValue),
    /// No handler for this method: 405 with `Allow`.
    NotAllowed(&'a HeaderValue),
}

/// The order methods are listed in `Allow`: the common ones first, then others by name.
fn rank(method: &Method) -> (u8, &str) {
    let r = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    };
    (r, method.as_str())
}

impl<H> Default for MethodTable<H> {
    fn default() -> Self {
        MethodTable {
            entries: Vec::new(),
            any: None,
            allow: HeaderValue::from_static("OPTIONS"),
        }
    }
}

impl<H> MethodTable<H> {
    /// Adds `handler` for `method` (`None`: any method not otherwise listed). Returns the handler
    /// back if that method already has one.
    pub fn insert(&mut self, method: Option<Method>, handler: H) -> Result<(), H> {
        match method {
            None if self.any.is_some() => return Err(handler),
            None => self.any = Some(handler),
            Some(m) if self.entries.iter().any(|(have, _)| *have == m) => return Err(handler),
            Some(m) => {
                self.entries.push((m, handler));
                self.entries.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)));
            }
        }
        self.allow = self.compute_allow();
        Ok(())
    }

    /// The methods this table answers, as an `Allow` value.
    pub fn allow(&self) -> &HeaderValue {
        &self.allow
    }

    fn compute_allow(&self) -> HeaderValue {
        allow_value(self.entries.iter().map(|(m, _)| m.clone()).collect())
    }

    /// `Allow` for the server as a whole (an `OPTIONS *`): every method some table names. A table's
    /// any-method handler adds nothing: what it takes cannot be listed.
    pub fn union_allow<'a>(tables: impl IntoIterator<Item = &'a MethodTable<H>>) -> HeaderValue
    where
        H: 'a,
    {
        let methods = tables
            .into_iter()
            .flat_map(|t| t.entries.iter().map(|(m, _)| m.clone()))
            .collect();
        allow_value(methods)
    }

    fn get(&self, method: &Method) -> Option<&H> {
        self.entries
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, h)| h)
    }

    /// The handler for `method`, or what to answer instead.
    pub fn lookup(&self, method: &Method) -> MethodMatch<'_, H> {
        if let Some(h) = self.get(method) {
            return MethodMatch::Handler(h);
        }
        if *method == Method::HEAD {
            if let Some(h) = self.get(&Method::GET) {
                return MethodMatch::Handler(h);
            }
        }
        if let Some(h) = &self.any {
            return MethodMatch::Handler(h);
        }
        if *method == Method::OPTIONS {
            return MethodMatch::Options(&self.allow);
        }
        MethodMatch::NotAllowed(&self.allow)
    }
}

/// The `Allow` list of `methods`: HEAD wherever GET is (a GET handler answers it), OPTIONS always,
/// each once, in `rank` order.
fn allow_value(mut methods: Vec<Method>) -> HeaderValue {
    if methods.contains(&Method::GET) {
        methods.push(Method::HEAD);
    }
    methods.push(Method::OPTIONS);
    methods.sort_by(|a, b| rank(a).cmp(&rank(b)));
    methods.dedup();
    let list = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&list).expect("method names are tokens, valid in a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(methods: &[Method]) -> MethodTable<&'static str> {
        let mut t = MethodTable::default();
        for m in methods {
            t.insert(Some(m.clone()), "h").unwrap();
        }
        t
    }

    #[test]
    fn head_is_answered_by_get() {
        let t = table(&[Method::GET]);
        assert!(matches!(t.lookup(&Method::HEAD), MethodMatch::Handler(_)));
    }

    #[test]
    fn allow_lists_registered_methods_plus_head_and_options_in_order() {
        let t = table(&[Method::DELETE, Method::POST, Method::GET]);
        assert_eq!(t.allow(), "GET, HEAD, POST, DELETE, OPTIONS");
        match t.lookup(&Method::PUT) {
            MethodMatch::NotAllowed(allow) => assert_eq!(allow, "GET, HEAD, POST, DELETE, OPTIONS"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_without_a_handler_answers_allow() {
        let t = table(&[Method::POST]);
        assert!(
            matches!(t.lookup(&Method::OPTIONS), MethodMatch::Options(a) if a == "POST, OPTIONS")
        );
    }

    #[test]
    fn a_method_twice_is_refused() {
        let mut t = table(&[Method::GET]);
        assert_eq!(t.insert(Some(Method::GET), "again"), Err("again"));
        assert!(t.insert(None, "any").is_ok());
        assert_eq!(t.insert(None, "any2"), Err("any2"));
    }

    #[test]
    fn any_catches_the_rest() {
        let mut t = table(&[Method::GET]);
        t.insert(None, "any").unwrap();
        assert!(matches!(
            t.lookup(&Method::PATCH),
            MethodMatch::Handler(&"any")
        ));
        assert!(matches!(t.lookup(&Method::GET), MethodMatch::Handler(&"h")));
    }

    #[test]
    fn union_allow_lists_each_method_of_any_table_once() {
        let a = table(&[Method::GET, Method::POST]);
        let b = table(&[Method::POST, Method::from_bytes(b"PURGE").unwrap()]);
        let c = table(&[]);
        assert_eq!(
            MethodTable::union_allow([&a, &b, &c]),
            "GET, HEAD, POST, OPTIONS, PURGE"
        );
        assert_eq!(MethodTable::<()>::union_allow([]), "OPTIONS");
    }

    #[test]
    fn extension_methods_are_listed_last() {
        let t = table(&[Method::from_bytes(b"PURGE").unwrap(), Method::GET]);
        assert_eq!(t.allow(), "GET, HEAD, OPTIONS, PURGE");
    }
}
