//! From a request to its handler: tree lookup, method table, trailing-slash redirect, 405/404.

use std::rc::Rc;

use http::header::{HeaderValue, ALLOW, LOCATION};
use http::StatusCode;

use crate::context::{Ctx, PathParams};
use crate::error::Error;
use crate::handler::Handler;
use crate::http1::TargetForm;
use crate::middleware::{Endpoint, Layers, Next};
use crate::response::IntoResponse;
use crate::router::{MethodMatch, MethodTable, Tree};
use crate::service::{Request, Response};
use crate::shard::{LocalBoxFuture, ShardHandle};

use super::TrailingSlash;

/// One handler of a route, with its group's layers.
pub(super) struct RouteEntry<S> {
    pub(super) handler: Rc<dyn Handler<S>>,
    pub(super) layers: Option<Layers>,
}

/// A registered path: its parameter names and its method table.
pub(super) struct Route<S> {
    names: Rc<[Box<str>]>,
    pub(super) methods: MethodTable<RouteEntry<S>>,
    /// The layers of the group that registered this path, also run around the answers no
    /// handler gives (the OPTIONS 204, the 405), so a group's CORS layer sees its preflights.
    pub(super) group_layers: Option<Layers>,
}

impl<S> Route<S> {
    pub(super) fn new(pattern: &str, methods: MethodTable<RouteEntry<S>>) -> Self {
        let names = pattern
            .split('/')
            .filter_map(|seg| seg.strip_prefix(':').or_else(|| seg.strip_prefix('*')))
            .map(Box::<str>::from)
            .collect();
        Route {
            names,
            methods,
            group_layers: None,
        }
    }
}

/// The routing half of an app: the end of the app-wide middleware chain.
pub(super) struct Routes<S> {
    pub(super) tree: Tree<Route<S>>,
    pub(super) state: Rc<S>,
    pub(super) shard: ShardHandle,
    pub(super) fallback: Option<Rc<dyn Handler<S>>>,
    pub(super) trailing_slash: TrailingSlash,
    /// `Allow` for `OPTIONS *` (RFC 9110 §9.3.7: the server in general): every method some route
    /// takes. Set by `App::finish`.
    pub(super) server_allow: HeaderValue,
}

impl<S: 'static> Routes<S> {
    pub(super) fn new(state: Rc<S>) -> Self {
        Routes {
            tree: Tree::new(),
            state,
            shard: ShardHandle::standalone(),
            fallback: None,
            trailing_slash: TrailingSlash::default(),
            server_allow: HeaderValue::from_static("OPTIONS"),
        }
    }

    fn cx(&self, params: PathParams) -> Ctx<S> {
        Ctx::new(params, self.state.clone(), self.shard.clone())
    }

    /// Where the other form of `req`'s path (with or without a trailing slash) goes, if a route
    /// takes it: the redirect target, percent-encoded as the client sent it, query kept.
    fn slash_redirect(&self, req: &Request) -> Option<HeaderValue> {
        let path = req.path();
        if self.trailing_slash != TrailingSlash::Redirect || path == "/" {
            return None;
        }
        let other = match path.strip_suffix('/') {
            Some(without) => without.to_owned(),
            None => format!("{path}/"),
        };
        self.tree.at(&other)?;
        let raw = req.target().raw_path();
        let mut location = match raw.strip_suffix('/') {
            Some(without) => without.to_owned(),
            None => format!("{raw}/"),
        };
        // `//evil.example` would be read as another host (RFC 3986 §4.2).
        if location.starts_with("//") {
            return None;
        }
        if let Some(query) = req.query_str() {
            location.push('?');
            location.push_str(query);
        }
        HeaderValue::from_str(&location).ok()
    }
}

impl<S: 'static> Endpoint for Routes<S> {
    fn call<'a>(&'a self, req: Request) -> LocalBoxFuture<'a, Response> {
        if req.target().form() == TargetForm::Asterisk {
            // Only OPTIONS takes the asterisk-form (the parser refuses it otherwise).
            let mut res = StatusCode::NO_CONTENT.into_response();
            res.headers_mut().insert(ALLOW, self.server_allow.clone());
            return ready(res);
        }
        let found = self.tree.at(req.path()).map(|m| {
            let params = if m.value.names.is_empty() {
                PathParams::default()
            } else {
                PathParams::new(&m.value.names, m.params.iter().map(|(_, v)| v))
            };
            (m.value, params)
        });
        let Some((route, params)) = found else {
            if let Some(location) = self.slash_redirect(&req) {
                let mut res = StatusCode::PERMANENT_REDIRECT.into_response();
                res.headers_mut().insert(LOCATION, location);
                return Box::pin(async move { res });
            }
            return match &self.fallback {
                Some(fallback) => fallback.call(req, self.cx(PathParams::default())),
                None => ready(Error::not_found("Not Found").into_response()),
            };
        };
        match route.methods.lookup(req.method()) {
            MethodMatch::Handler(entry) => {
                let cx = self.cx(params).with_query(req.target().query_shared());
                match &entry.layers {
                    None => entry.handler.call(req, cx),
                    Some(layers) => {
                        Next::with_fn(layers, move |req| entry.handler.call(req, cx)).run(req)
                    }
                }
            }
            MethodMatch::Options(allow) => {
                let mut res = StatusCode::NO_CONTENT.into_response();
                res.headers_mut().insert(ALLOW, allow.clone());
                through_group(route, req, res)
            }
            MethodMatch::NotAllowed(allow) => {
                let mut res = Error::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
                    .into_response();
                res.headers_mut().insert(ALLOW, allow.clone());
                through_group(route, req, res)
            }
        }
    }
}

/// Answers `res`, through the route's group layers if it has any.
fn through_group<S>(route: &Route<S>, req: Request, res: Response) -> LocalBoxFuture<'_, Response> {
    match &route.group_layers {
        Some(layers) => Next::with_fn(layers, move |_req| ready(res)).run(req),
        None => ready(res),
    }
}

fn ready<'a>(res: Response) -> LocalBoxFuture<'a, Response> {
    Box::pin(std::future::ready(res))
}
