//! The middleware chain: an onion of layers around the router (or around one group's routes).
//!
//! A layer gets the request and [`Next`], the rest of the chain. It may act before calling
//! `next.run(req)`, after it (on the response), or answer early without calling it. Layers are
//! built per shard and need not be `Send`.
//!
//! ```ignore
//! struct Hello;
//! impl Middleware for Hello {
//!     async fn handle(&self, req: Request, next: Next<'_>) -> Response {
//!         let mut res = next.run(req).await;
//!         res.headers_mut().insert("x-hello", HeaderValue::from_static("world"));
//!         res
//!     }
//! }
//! ```
//!
//! Each layer costs one boxed future per request (the chain is a slice of trait objects, so it
//! can be assembled at run time from configuration). Layers that never await are better written
//! as a [`Hook`]: hooks compose at compile time into one layer (see `hook.rs`).

mod access_log;
mod client_ip;
mod cors;
mod errors;
mod hook;
mod rate_limit;
mod request_id;
mod security_headers;
mod timing;

use std::future::Future;
use std::rc::Rc;

// Each layer's module exports its layer type and its configuration.
pub use access_log::*;
pub use client_ip::*;
pub use cors::*;
pub use errors::{negotiate, ErrorFormat, ErrorPageCarry, ErrorPages};
pub use hook::Hook;
pub use rate_limit::*;
pub use request_id::{is_valid_id, RequestId, RequestIds};
pub use security_headers::*;
pub use timing::*;

use crate::service::{Request, Response};
use crate::shard::LocalBoxFuture;

/// One layer of the onion.
pub trait Middleware: 'static {
    fn handle(&self, req: Request, next: Next<'_>) -> impl Future<Output = Response>;
}

/// A [`Middleware`] behind a pointer, so layers of different types share one chain.
pub trait DynMiddleware: 'static {
    fn handle_dyn<'a>(&'a self, req: Request, next: Next<'a>) -> LocalBoxFuture<'a, Response>;
}

impl<M: Middleware> DynMiddleware for M {
    fn handle_dyn<'a>(&'a self, req: Request, next: Next<'a>) -> LocalBoxFuture<'a, Response> {
        Box::pin(self.handle(req, next))
    }
}

/// A shared, ordered list of layers: the first is the outermost.
pub type Layers = Rc<[Rc<dyn DynMiddleware>]>;

/// What the chain ends in.
pub trait Endpoint {
    fn call<'a>(&'a self, req: Request) -> LocalBoxFuture<'a, Response>;
}

enum End<'a> {
    Endpoint(&'a dyn Endpoint),
    Once(Box<dyn FnOnce(Request) -> LocalBoxFuture<'a, Response> + 'a>),
}

/// The rest of the chain after the current layer.
pub struct Next<'a> {
    rest: &'a [Rc<dyn DynMiddleware>],
    end: End<'a>,
}

impl<'a> Next<'a> {
    /// A chain of `layers` ending in `endpoint`.
    pub fn new(layers: &'a [Rc<dyn DynMiddleware>], endpoint: &'a dyn Endpoint) -> Self {
        Next {
            rest: layers,
            end: End::Endpoint(endpoint),
        }
    }

    /// A chain of `layers` ending in a one-off function (a matched route with its parameters).
    pub fn with_fn(
        layers: &'a [Rc<dyn DynMiddleware>],
        end: impl FnOnce(Request) -> LocalBoxFuture<'a, Response> + 'a,
    ) -> Self {
        Next {
            rest: layers,
            end: End::Once(Box::new(end)),
        }
    }

    /// Passes the request to the rest of the chain.
    pub fn run(self, req: Request) -> LocalBoxFuture<'a, Response> {
        match self.rest.split_first() {
            Some((layer, rest)) => layer.handle_dyn(
                req,
                Next {
                    rest,
                    end: self.end,
                },
            ),
            None => match self.end {
                End::Endpoint(endpoint) => endpoint.call(req),
                End::Once(f) => f(req),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::IntoResponse;
    use crate::testing::{block_on, request};
    use http::header::HeaderValue;
    use http::StatusCode;
    use std::cell::RefCell;

    struct Trace {
        name: &'static str,
        log: Rc<RefCell<Vec<String>>>,
    }

    impl Middleware for Trace {
        async fn handle(&self, req: Request, next: Next<'_>) -> Response {
            self.log.borrow_mut().push(format!("{} in", self.name));
            let res = next.run(req).await;
            self.log.borrow_mut().push(format!("{} out", self.name));
            res
        }
    }

    struct Deny;
    impl Middleware for Deny {
        async fn handle(&self, _req: Request, _next: Next<'_>) -> Response {
            StatusCode::FORBIDDEN.into_response()
        }
    }

    struct Ok200;
    impl Endpoint for Ok200 {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            Box::pin(async { "ok".into_response() })
        }
    }

    #[test]
    fn layers_wrap_like_an_onion_in_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let layers: Layers = Rc::from(vec![
            Rc::new(Trace {
                name: "a",
                log: log.clone(),
            }) as Rc<dyn DynMiddleware>,
            Rc::new(Trace {
                name: "b",
                log: log.clone(),
            }),
        ]);
        let res = block_on(Next::new(&layers, &Ok200).run(request("GET / HTTP/1.1\r\n\r\n")));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(*log.borrow(), ["a in", "b in", "b out", "a out"]);
    }

    #[test]
    fn a_layer_may_answer_early() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let layers: Layers = Rc::from(vec![
            Rc::new(Deny) as Rc<dyn DynMiddleware>,
            Rc::new(Trace {
                name: "never",
                log: log.clone(),
            }),
        ]);
        let res = block_on(Next::new(&layers, &Ok200).run(request("GET / HTTP/1.1\r\n\r\n")));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(log.borrow().is_empty());
        let _ = HeaderValue::from_static("x");
    }
}
