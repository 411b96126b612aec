//! [`App`]: routes, groups and middleware, built once per shard; the [`Service`] the connection
//! loops call.
//!
//! ```ignore
//! let app = App::with_state(Counter::default())
//!     .get("/users/:id", get_user)
//!     .group("/api", |g| g.layer(ApiKey::new(key)).post("/items", add_item))
//!     .layer(RequestIds::new(shard.id()));
//! ```
//!
//! Registration never panics: a conflicting or duplicate route is recorded and reported by
//! [`App::finish`] (which `serve` calls before accepting), naming both routes.

mod builtin;
mod dispatch;

use std::rc::Rc;

use http::header::{HeaderName, HeaderValue};
use http::Method;

use crate::handler::Handler;
use crate::http1::DefaultFields;
use crate::middleware::{DynMiddleware, Layers, Middleware, Next};
use crate::panic::{catch_unwind_silent, CatchUnwind};
use crate::router::{InsertError, MethodTable};
use crate::service::{Request, Response, Service};
use crate::shard::ShardHandle;

pub use builtin::builtin_app;
use dispatch::{Route, RouteEntry, Routes};

/// What to do with a path that matches a route only with or without its trailing slash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrailingSlash {
    /// 308 to the registered form (the method and body are kept; RFC 9110 §15.4.9).
    #[default]
    Redirect,
    /// No match: 404.
    Strict,
}

/// A route that could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    Tree(#[from] InsertError),
    #[error("route {method} {pattern} is registered twice")]
    DuplicateMethod { method: String, pattern: String },
}

/// Every registration error of an app, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid routes: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct RouteErrors(pub Vec<RouteError>);

/// An application: a route table, its middleware, and per-shard state `S`.
pub struct App<S = ()> {
    routes: Routes<S>,
    layers: Vec<Rc<dyn DynMiddleware>>,
    /// Frozen from `layers` by `finish`, so a request does not touch the `Vec`.
    chain: Layers,
    errors: Vec<RouteError>,
    /// Fields for every response that lacks them: on plain and on TLS connections.
    defaults: [DefaultFields; 2],
}

impl App<()> {
    /// An app without state.
    pub fn new() -> Self {
        App::with_state(())
    }
}

impl Default for App<()> {
    fn default() -> Self {
        App::new()
    }
}

impl<S: 'static> App<S> {
    /// An app whose handlers see `state` (this shard's copy) through `Ctx::state`.
    pub fn with_state(state: S) -> Self {
        App {
            routes: Routes::new(Rc::new(state)),
            layers: Vec::new(),
            chain: Rc::from(Vec::new()),
            errors: Vec::new(),
            defaults: [DefaultFields::EMPTY, DefaultFields::EMPTY],
        }
    }

    /// Adds `handler` for `method` on `pattern` (`/users/:id`, `/files/*path`).
    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler<S>) -> Self {
        self.add(Some(method), pattern, Rc::new(handler), None);
        self
    }

    /// Adds `handler` for every method on `pattern` not registered otherwise.
    pub fn any(mut self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.add(None, pattern, Rc::new(handler), None);
        self
    }

    pub fn get(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::GET, pattern, handler)
    }
    pub fn post(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::POST, pattern, handler)
    }
    pub fn put(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::PUT, pattern, handler)
    }
    pub fn patch(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }
    pub fn delete(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }
    pub fn options(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::OPTIONS, pattern, handler)
    }

    /// Routes under `prefix` with their own middleware: `build` gets an empty [`Group`] and
    /// returns it filled. The group's layers run after the app's, only for its routes, whatever
    /// the order of `layer` and route calls inside it.
    pub fn group(mut self, prefix: &str, build: impl FnOnce(Group<S>) -> Group<S>) -> Self {
        let group = build(Group::new(prefix));
        for route in group.into_routes() {
            self.add(route.method, &route.pattern, route.handler, route.layers);
        }
        self
    }

    /// Adds an app-wide layer. The first added is the outermost: it sees the request first and
    /// the response last. App layers see every request, including 404s and redirects.
    pub fn layer(mut self, middleware: impl Middleware) -> Self {
        self.layers.push(Rc::new(middleware));
        self
    }

    /// Fields every response of this app gets unless it carries its own of the same name (a
    /// handler's or a layer's value wins): `always` on every connection, `tls_only` on TLS ones as
    /// well (`Strict-Transport-Security`). They are written as the response goes out, not
    /// inserted into each response's map, so they cost next to nothing; layers do not see them.
    /// Answers the connection makes itself (a 400 for a malformed request) do not get them.
    /// Security headers app-wide: `app.default_fields(security.always(), security.tls_only())`
    /// with [`SecurityHeaders`](crate::middleware::SecurityHeaders).
    pub fn default_fields(
        mut self,
        always: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        tls_only: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    ) -> Self {
        let always: Vec<_> = always.into_iter().collect();
        let tls = DefaultFields::new(always.iter().cloned().chain(tls_only));
        self.defaults = [DefaultFields::new(always), tls];
        self
    }

    /// The handler for requests no route matches (default: 404).
    pub fn fallback(mut self, handler: impl Handler<S>) -> Self {
        self.routes.fallback = Some(Rc::new(handler));
        self
    }

    /// How a path differing from a route only by a trailing slash is treated.
    pub fn trailing_slash(mut self, policy: TrailingSlash) -> Self {
        self.routes.trailing_slash = policy;
        self
    }

    /// This shard's state.
    pub fn state(&self) -> &Rc<S> {
        &self.routes.state
    }

    /// Checks the routes (every registration error at once) and freezes the middleware chain.
    pub fn finish(mut self) -> Result<Self, RouteErrors> {
        if !self.errors.is_empty() {
            return Err(RouteErrors(std::mem::take(&mut self.errors)));
        }
        self.chain = Rc::from(std::mem::take(&mut self.layers));
        let tables = self.routes.tree.iter().map(|(_, route)| &route.methods);
        self.routes.server_allow = MethodTable::union_allow(tables);
        Ok(self)
    }

    /// Binds the app to its shard (done by `serve`; tests may use `ShardHandle::standalone()`).
    pub fn attach(&mut self, shard: ShardHandle) {
        shard.locals().insert(self.routes.state.clone());
        self.routes.shard = shard;
    }

    fn add(
        &mut self,
        method: Option<Method>,
        pattern: &str,
        handler: Rc<dyn Handler<S>>,
        layers: Option<Layers>,
    ) {
        let group_layers = layers.clone();
        let entry = RouteEntry { handler, layers };
        let tree = &mut self.routes.tree;
        let result = match tree.get_mut(pattern) {
            Some(route) => {
                if route.group_layers.is_none() {
                    route.group_layers = group_layers;
                }
                route.methods.insert(method.clone(), entry).map_err(|_| {
                    RouteError::DuplicateMethod {
                        method: method.map_or("ANY".to_owned(), |m| m.to_string()),
                        pattern: pattern.to_owned(),
                    }
                })
            }
            None => {
                let mut methods = MethodTable::default();
                // A fresh table has no handler for any method yet.
                let _ = methods.insert(method, entry);
                let mut route = Route::new(pattern, methods);
                route.group_layers = group_layers;
                tree.insert(pattern, route).map_err(RouteError::from)
            }
        };
        if let Err(err) = result {
            self.errors.push(err);
        }
    }
}

impl<S: 'static> Service for App<S> {
    fn default_fields(&self, tls: bool) -> &DefaultFields {
        &self.defaults[usize::from(tls)]
    }

    async fn call(&self, req: Request) -> Response {
        // Handlers catch panics while polled (and log the request id); this catches the rest: a
        // panicking layer, or a handler closure panicking before it returns its future.
        let chain = catch_unwind_silent(|| Next::new(&self.chain, &self.routes).run(req));
        let outcome = match chain {
            Ok(fut) => CatchUnwind::new(fut).await,
            Err(panic) => Err(panic),
        };
        outcome.unwrap_or_else(|panic| {
            tracing::error!(panic = %panic, "middleware or handler panicked; answered 500");
            crate::error::Error::panic_response(panic)
        })
    }
}

/// Routes under a common prefix sharing middleware; see [`App::group`].
pub struct Group<S> {
    prefix: String,
    layers: Vec<Rc<dyn DynMiddleware>>,
    routes: Vec<PendingRoute<S>>,
}

struct PendingRoute<S> {
    method: Option<Method>,
    pattern: String,
    handler: Rc<dyn Handler<S>>,
    /// Layers of nested groups, innermost last; the enclosing group's go in front.
    inner: Vec<Rc<dyn DynMiddleware>>,
}

struct GroupRoute<S> {
    method: Option<Method>,
    pattern: String,
    handler: Rc<dyn Handler<S>>,
    layers: Option<Layers>,
}

fn join_paths(prefix: &str, pattern: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if pattern.is_empty() || pattern == "/" && !prefix.is_empty() {
        // `group("/api", |g| g.get("/", h))` is `/api`: a group's root has no trailing slash.
        return if prefix.is_empty() {
            "/".to_owned()
        } else {
            prefix.to_owned()
        };
    }
    let mut joined = String::with_capacity(prefix.len() + pattern.len() + 1);
    joined.push_str(prefix);
    if !pattern.starts_with('/') {
        joined.push('/');
    }
    joined.push_str(pattern);
    joined
}

impl<S: 'static> Group<S> {
    fn new(prefix: &str) -> Self {
        Group {
            prefix: prefix.to_owned(),
            layers: Vec::new(),
            routes: Vec::new(),
        }
    }

    pub fn route(mut self, method: Method, pattern: &str, handler: impl Handler<S>) -> Self {
        self.push(Some(method), pattern, Rc::new(handler));
        self
    }
    pub fn any(mut self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.push(None, pattern, Rc::new(handler));
        self
    }
    pub fn get(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::GET, pattern, handler)
    }
    pub fn post(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::POST, pattern, handler)
    }
    pub fn put(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::PUT, pattern, handler)
    }
    pub fn patch(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::PATCH, pattern, handler)
    }
    pub fn delete(self, pattern: &str, handler: impl Handler<S>) -> Self {
        self.route(Method::DELETE, pattern, handler)
    }

    /// A layer for every route of this group (and of groups nested in it).
    pub fn layer(mut self, middleware: impl Middleware) -> Self {
        self.layers.push(Rc::new(middleware));
        self
    }

    /// A group nested in this one: prefixes join, layers stack (this group's run first).
    pub fn group(mut self, prefix: &str, build: impl FnOnce(Group<S>) -> Group<S>) -> Self {
        let inner = build(Group::new(&join_paths(&self.prefix, prefix)));
        let inner_layers = inner.layers;
        for mut route in inner.routes {
            let mut layers = inner_layers.clone();
            layers.append(&mut route.inner);
            route.inner = layers;
            self.routes.push(route);
        }
        self
    }

    fn push(&mut self, method: Option<Method>, pattern: &str, handler: Rc<dyn Handler<S>>) {
        self.routes.push(PendingRoute {
            method,
            pattern: join_paths(&self.prefix, pattern),
            handler,
            inner: Vec::new(),
        });
    }

    fn into_routes(self) -> Vec<GroupRoute<S>> {
        let own = self.layers;
        self.routes
            .into_iter()
            .map(|route| {
                let mut layers = own.clone();
                layers.extend(route.inner);
                GroupRoute {
                    method: route.method,
                    pattern: route.pattern,
                    handler: route.handler,
                    layers: (!layers.is_empty()).then(|| Rc::from(layers)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
