//! Cross-origin resource sharing: the server's half of the Fetch standard's CORS protocol
//! (<https://fetch.spec.whatwg.org/#http-cors-protocol>). The layer answers preflight requests
//! itself and adds `Access-Control-*` headers to responses for allowed origins; the browser does
//! the enforcing. It never refuses a request: CORS decides which pages may *read* a response, it
//! is not access control (a non-browser client sends whatever it likes).
//!
//! Decisions, with the spec rule or the common practice behind each (Fetch anchors in `#...`):
//! - A request without `Origin` is not a CORS request and passes through untouched (one header
//!   lookup): this is the hot path. Fetch "CORS protocol and HTTP caches"
//!   (#cors-protocol-and-http-caches) would also put `Vary: Origin` (or
//!   `Access-Control-Allow-Origin: *`) on those responses, so that a cache cannot hand a
//!   no-`Origin` response to a CORS request; this layer does not, which only matters for
//!   cacheable responses to URLs fetched both ways.
//! - An origin that is not allowed gets no CORS header at all, neither on a preflight nor on the
//!   actual response: the browser then refuses the read (#cors-check).
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`,
//!   #cors-preflight-request) is always answered here with `204 No Content`, without calling the
//!   routes (an app's own `OPTIONS` handlers do not see preflights). When the origin, the
//!   requested method or one of the requested headers is not allowed, the 204 carries no CORS
//!   header (as rs/cors does; the reason is logged at debug level) rather than a 4xx
//!   (actix-cors): a preflight is a question, and "no CORS headers" is the "no" every browser
//!   understands.
//! - The allowed methods and headers are sent as the whole configured list, not just what was
//!   asked, so one preflight fills the browser's preflight cache for all of them
//!   (#cors-preflight-fetch). GET, HEAD and POST always pass the method check: they are
//!   CORS-safelisted (#cors-safelisted-method) and a browser never checks them against
//!   `Access-Control-Allow-Methods`, so refusing them here would protect nothing. Methods are
//!   compared case-sensitively (RFC 9110 §9.1; Fetch uppercases only the six standard methods,
//!   so `patch` stays `patch`), header names case-insensitively (RFC 9110 §5.1).
//! - Origins are compared byte for byte with the serialized origin the browser sends
//!   (#origin-header; HTML's "ASCII serialization of an origin": lowercase scheme and host, no
//!   default port). Configured origins are normalised to that form when the layer is built, and
//!   a value that is not an origin (a path, a wildcard host, userinfo) is a construction error.
//! - "Any origin" without credentials answers `Access-Control-Allow-Origin: *`, the same for
//!   every origin (including `null`: `*` only exposes what is public anyway), so no
//!   `Vary: Origin`.
//! - "Any origin" with credentials echoes the request's origin (`*` is not allowed with
//!   credentials, #http-responses), as most servers do, except `null`: a `null` origin
//!   (sandboxed iframes, `file:`, some redirects) is something any page can produce, so it is
//!   echoed only when listed explicitly.
//! - Whenever the answer depends on the origin (a list, or credentials) responses get
//!   `Vary: Origin`, appended to any `Vary` the handler set. Preflight answers always vary on
//!   `Origin` (without it the request would have gone to the routes),
//!   `Access-Control-Request-Method` and `Access-Control-Request-Headers`.
//!
//! Requests without `Origin` get no CORS headers, but do get `Vary: Origin` when the answer
//! depends on the origin (Fetch, "CORS protocol and HTTP caches"), so a shared cache never
//! serves their response to a cross-origin request.
//!
//! Add it app-wide with [`App::layer`](crate::App::layer), or to a group with
//! [`Group::layer`](crate::Group::layer): a group's layers also wrap the router's own answers for
//! the group's paths (the OPTIONS 204 and the 405), so its preflights reach it.

use crate::http1::trim_ows;
use std::time::Duration;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{Method, StatusCode};

use super::Hook;
use crate::service::{response, Body, Request, Response};

/// Which origins may read responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Every origin (`*`; with credentials, the request's origin is echoed, except `null`).
    Any,
    /// Exactly these origins, written `scheme://host[:port]` (or `null`); normalised to the form
    /// browsers send (lowercase, default port dropped) when the layer is built.
    List(Vec<String>),
}

impl Default for AllowedOrigins {
    /// No origin: the layer does nothing until origins are configured.
    fn default() -> Self {
        AllowedOrigins::List(Vec::new())
    }
}

/// Which request headers a cross-origin request may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHeaders {
    /// These names (beyond the CORS-safelisted ones the browser never asks about).
    List(Vec<HeaderName>),
    /// Whatever the preflight asks for, echoed back (also works with credentials, where `*`
    /// would not).
    Mirror,
}

impl Default for AllowedHeaders {
    fn default() -> Self {
        AllowedHeaders::List(Vec::new())
    }
}

/// Configuration of the [`Cors`] layer.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Default: none (the layer adds nothing until origins are listed).
    pub allowed_origins: AllowedOrigins,
    /// Methods a preflight may ask for. GET, HEAD and POST are always allowed (see the module
    /// docs). Default: GET, HEAD, POST, PUT, PATCH, DELETE.
    pub allowed_methods: Vec<Method>,
    /// Default: an empty list (only CORS-safelisted headers).
    pub allowed_headers: AllowedHeaders,
    /// Response headers scripts may read beyond the CORS-safelisted ones
    /// (`Access-Control-Expose-Headers`). Default: none.
    pub exposed_headers: Vec<HeaderName>,
    /// Whether cookies and HTTP auth may be sent (`Access-Control-Allow-Credentials: true`; the
    /// origin is then always echoed, never `*`). Default: false.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`, whole seconds;
    /// browsers cap it: Chromium at 2 h, Firefox at 24 h; `None`: the browser default, 5 s).
    /// Default: 10 minutes.
    pub max_age: Option<Duration>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: AllowedOrigins::default(),
            allowed_methods: vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ],
            allowed_headers: AllowedHeaders::default(),
            exposed_headers: Vec::new(),
            allow_credentials: false,
            max_age: Some(Duration::from_secs(600)),
        }
    }
}

/// A [`CorsConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsConfigError {
    #[error("CORS origin {origin:?} is not an origin (scheme://host[:port]): {reason}")]
    InvalidOrigin {
        origin: String,
        reason: &'static str,
    },
}

/// How the request's origin is matched, precomputed from [`AllowedOrigins`].
#[derive(Debug)]
enum OriginRule {
    /// Any origin, answered with `*` (no credentials).
    Wildcard,
    /// Any origin but `null`, echoed (credentials).
    EchoAny,
    /// These serialized origins; the matching value is sent back as is.
    List(Vec<HeaderValue>),
}

#[derive(Debug)]
enum HeaderRule {
    /// The allowed names, and the same joined into `Access-Control-Allow-Headers` (`None` when
    /// the list is empty).
    List(Vec<HeaderName>, Option<HeaderValue>),
    Mirror,
}

/// The CORS layer. Build it with [`Cors::new`], once per shard: every header value is
/// precomputed, so an answer costs a few map inserts.
#[derive(Debug)]
pub struct Cors {
    origins: OriginRule,
    credentials: bool,
    methods: Vec<Method>,
    allow_methods: Option<HeaderValue>,
    headers: HeaderRule,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

static TRUE: HeaderValue = HeaderValue::from_static("true");
static ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
static VARY_ORIGIN: HeaderValue = HeaderValue::from_static("origin");
static VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

impl Cors {
    /// Checks and precomputes `config`; fails on an origin that is not `scheme://host[:port]`.
    pub fn new(config: CorsConfig) -> Result<Cors, CorsConfigError> {
        let origins = match config.allowed_origins {
            AllowedOrigins::Any if config.allow_credentials => OriginRule::EchoAny,
            AllowedOrigins::Any => OriginRule::Wildcard,
            AllowedOrigins::List(list) => {
                let mut values = Vec::with_capacity(list.len());
                for origin in list {
                    let value = serialize_origin(&origin)
                        .and_then(|s| {
                            HeaderValue::from_str(&s).map_err(|_| "not a valid header value")
                        })
                        .map_err(|reason| CorsConfigError::InvalidOrigin {
                            origin: origin.clone(),
                            reason,
                        })?;
                    if !values.contains(&value) {
                        values.push(value);
                    }
                }
                OriginRule::List(values)
            }
        };
        let headers = match config.allowed_headers {
            AllowedHeaders::Mirror => HeaderRule::Mirror,
            AllowedHeaders::List(names) => {
                let joined = join(names.iter().map(HeaderName::as_str));
                HeaderRule::List(names, joined)
            }
        };
        Ok(Cors {
            origins,
            credentials: config.allow_credentials,
            allow_methods: join(config.allowed_methods.iter().map(Method::as_str)),
            methods: config.allowed_methods,
            headers,
            expose_headers: join(config.exposed_headers.iter().map(HeaderName::as_str)),
            max_age: config.max_age.map(|age| HeaderValue::from(age.as_secs())),
        })
    }

    /// Whether the answer depends on the request's origin (then `Vary: Origin`, Fetch
    /// #cors-protocol-and-http-caches).
    fn varies_on_origin(&self) -> bool {
        !matches!(self.origins, OriginRule::Wildcard)
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, or `None` if it is not allowed.
    fn allow_origin(&self, origin: &[u8]) -> Option<HeaderValue> {
        match &self.origins {
            OriginRule::Wildcard => Some(ANY_ORIGIN.clone()),
            OriginRule::EchoAny if origin == b"null" => None,
            // Any field value the parser accepted is a valid `HeaderValue`; `ok()` all the same.
            OriginRule::EchoAny => HeaderValue::from_bytes(origin).ok(),
            OriginRule::List(list) => list.iter().find(|v| v.as_bytes() == origin).cloned(),
        }
    }

    /// Whether a preflight may ask for `method` (the `Access-Control-Request-Method` value).
    fn method_allowed(&self, method: &[u8]) -> bool {
        // Fetch #cors-safelisted-method: GET, HEAD, POST,, never checked by the browser.
        matches!(method, b"GET" | b"HEAD" | b"POST")
            || self.methods.iter().any(|m| m.as_str().as_bytes() == method)
    }

    /// The `Access-Control-Allow-Headers` value for a preflight asking for `requested` (the
    /// `Access-Control-Request-Headers` lines), or `Err` naming a header that is not allowed.
    fn allow_headers<'r>(
        &self,
        mut requested: impl Iterator<Item = &'r [u8]>,
    ) -> Result<Option<HeaderValue>, &'r [u8]> {
        match &self.headers {
            HeaderRule::Mirror => {
                // Several lines are one comma-separated list (RFC 9110 §5.3).
                let mut echoed: Vec<u8> = Vec::new();
                for line in requested {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if !echoed.is_empty() {
                        echoed.extend_from_slice(b", ");
                    }
                    echoed.extend_from_slice(line);
                }
                if echoed.is_empty() {
                    return Ok(None);
                }
                Ok(HeaderValue::from_bytes(&echoed).ok())
            }
            HeaderRule::List(names, joined) => {
                let refused = requested.find_map(|line| {
                    line.split(|&b| b == b',')
                        .map(trim_ows)
                        .filter(|name| !name.is_empty())
                        .find(|name| {
                            !names
                                .iter()
                                .any(|n| n.as_str().as_bytes().eq_ignore_ascii_case(name))
                        })
                });
                match refused {
                    Some(name) => Err(name),
                    None => Ok(joined.clone()),
                }
            }
        }
    }

    /// The answer to a preflight: 204, with the CORS headers only if everything asked is allowed.
    fn preflight(&self, req: &Request) -> Response {
        let mut res = response(Body::Empty);
        *res.status_mut() = StatusCode::NO_CONTENT;
        let headers = res.headers_mut();
        headers.insert(VARY, VARY_PREFLIGHT.clone());
        let origin = req.headers().get("origin").unwrap_or_default();
        let Some(allow_origin) = self.allow_origin(origin) else {
            refused("origin", origin);
            return res;
        };
        let method = req
            .headers()
            .get("access-control-request-method")
            .unwrap_or_default();
        if !self.method_allowed(method) {
            refused("method", method);
            return res;
        }
        let allow_headers =
            match self.allow_headers(req.headers().get_all("access-control-request-headers")) {
                Ok(value) => value,
                Err(name) => {
                    refused("header", name);
                    return res;
                }
            };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
        }
        if let Some(methods) = &self.allow_methods {
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods.clone());
        }
        if let Some(allowed) = allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed);
        }
        if let Some(max_age) = &self.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        res
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    fn decorate(&self, headers: &mut HeaderMap, allow_origin: Option<HeaderValue>) {
        if self.varies_on_origin() {
            append_vary_origin(headers);
        }
        let Some(allow_origin) = allow_origin else {
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
        }
        if let Some(expose) = &self.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// What the way out needs: whether the request had an `Origin`, and if so the
/// `Access-Control-Allow-Origin` value it earned (none for an origin not allowed).
pub enum CorsCarry {
    NoOrigin,
    Origin(Option<HeaderValue>),
}

impl Hook for Cors {
    type Carry = CorsCarry;

    fn before(&self, req: &mut Request) -> Result<CorsCarry, Response> {
        let Some(origin) = req.headers().get("origin") else {
            return Ok(CorsCarry::NoOrigin);
        };
        // Fetch #cors-preflight-request: OPTIONS with Origin and Access-Control-Request-Method.
        if req.method() == Method::OPTIONS
            && req.headers().contains("access-control-request-method")
        {
            return Err(self.preflight(req));
        }
        Ok(CorsCarry::Origin(self.allow_origin(origin)))
    }

    fn after(&self, carry: CorsCarry, res: &mut Response) {
        match carry {
            // Fetch, "CORS protocol and HTTP caches": when the answer depends on the origin, a
            // response to a request *without* Origin must say `Vary: Origin` too, or a cache
            // would hand it (without CORS headers) to a later cross-origin request.
            CorsCarry::NoOrigin => {
                if self.varies_on_origin() {
                    append_vary_origin(res.headers_mut());
                }
            }
            CorsCarry::Origin(allow_origin) => self.decorate(res.headers_mut(), allow_origin),
        }
    }
}

/// Logs why a preflight gets no CORS headers: the browser's console only says "no
/// Access-Control-Allow-Origin", whatever the reason.
fn refused(what: &'static str, value: &[u8]) {
    tracing::debug!(
        refused = what,
        value = %String::from_utf8_lossy(value),
        "CORS preflight answered without CORS headers"
    );
}

/// `Vary: origin`, unless the response already varies on it (or on everything, `*`); an existing
/// `Vary` is kept and a field line added (RFC 9110 §12.5.5, §5.3: lines of a list combine).
fn append_vary_origin(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|line| {
        line.as_bytes()
            .split(|&b| b == b',')
            .map(trim_ows)
            .any(|token| token == b"*" || token.eq_ignore_ascii_case(b"origin"))
    });
    if !present {
        headers.append(VARY, VARY_ORIGIN.clone());
    }
}

/// `items` joined with ", " as one header value; `None` for no items.
fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let joined = items.collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        return None;
    }
    // Method names and header names are tokens: always a valid header value.
    HeaderValue::from_str(&joined).ok()
}

/// `origin` in the form a browser sends it in `Origin` (HTML's ASCII serialization of an
/// origin: `scheme://host[:port]`, lowercase, no default port), or why it is not an origin.
fn serialize_origin(origin: &str) -> Result<String, &'static str> {
    if origin == "null" {
        return Ok(origin.to_owned());
    }
    if !origin.is_ascii() {
        return Err("write an internationalised host in its ASCII (xn--) form");
    }
    let (scheme, authority) = origin
        .split_once("://")
        .ok_or("expected scheme://host[:port]")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err("invalid scheme");
    }
    if authority.contains(['/', '?', '#']) {
        return Err("an origin has no path, query or fragment (remove any trailing slash)");
    }
    if authority.contains('@') {
        return Err("an origin has no user information");
    }
    if authority.contains('*') {
        return Err("wildcards are not supported: list each origin");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, rest) = v6.split_once(']').ok_or("unclosed [ in an IPv6 host")?;
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("invalid IPv6 host");
        }
        let port = match rest {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 host")?,
            ),
        };
        (&authority[..addr.len() + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("empty host");
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err("invalid host");
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(port) = port {
        let port: u16 = port.parse().map_err(|_| "invalid port")?;
        let default = match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        };
        if default != Some(port) {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers, Next};
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};
    use std::cell::Cell;
    use std::rc::Rc;

    /// Answers 200 "ok" (with `Vary: accept-encoding` when asked) and counts its calls.
    #[derive(Default)]
    struct Handler {
        calls: Cell<u32>,
        vary: Option<&'static str>,
    }
    impl Endpoint for Handler {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            self.calls.set(self.calls.get() + 1);
            let mut res = response("ok");
            if let Some(vary) = self.vary {
                res.headers_mut()
                    .insert(VARY, HeaderValue::from_static(vary));
            }
            Box::pin(async move { res })
        }
    }

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            allowed_origins: AllowedOrigins::List(origins.iter().map(|s| s.to_string()).collect()),
            ..CorsConfig::default()
        }
    }

    fn run_with(config: CorsConfig, handler: &Handler, raw: &str) -> Response {
        let layer = Cors::new(config).expect("valid config");
        let layers: Layers = Rc::from(vec![Rc::new(layer) as Rc<dyn DynMiddleware>]);
        block_on(Next::new(&layers, handler).run(request(raw)))
    }

    fn run(config: CorsConfig, raw: &str) -> Response {
        run_with(config, &Handler::default(), raw)
    }

    fn header<'r>(res: &'r Response, name: &str) -> Option<&'r str> {
        res.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn varies(res: &Response) -> Vec<String> {
        res.headers()
            .get_all(VARY)
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    }

    fn has_cors_headers(res: &Response) -> bool {
        res.headers()
            .keys()
            .any(|name| name.as_str().starts_with("access-control-"))
    }

    const PREFLIGHT: &str = "OPTIONS /items HTTP/1.1\r\nOrigin: https://app.example\r\n\
        Access-Control-Request-Method: PUT\r\n\r\n";

    #[test]
    fn requests_without_origin_get_no_cors_headers_but_vary_on_origin() {
        let handler = Handler::default();
        let res = run_with(
            config(&["https://app.example"]),
            &handler,
            "GET /items HTTP/1.1\r\n\r\n",
        );
        assert_eq!(handler.calls.get(), 1);
        assert!(!has_cors_headers(&res));
        assert_eq!(varies(&res), ["origin"]);
    }

    #[test]
    fn requests_without_origin_need_no_vary_when_any_origin_gets_a_wildcard() {
        let mut any = config(&[]);
        any.allowed_origins = AllowedOrigins::Any;
        let res = run(any, "GET /items HTTP/1.1\r\n\r\n");
        assert!(!has_cors_headers(&res));
        assert!(res.headers().get(VARY).is_none());
    }

    #[test]
    fn allowed_origin_is_echoed_on_actual_responses() {
        let res = run(
            config(&["https://other.example", "https://app.example"]),
            "GET /items HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
        );
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(header(&res, "access-control-allow-credentials"), None);
        assert_eq!(varies(&res), ["origin"]);
    }

    #[test]
    fn disallowed_origin_gets_no_cors_headers() {
        let handler = Handler::default();
        let res = run_with(
            config(&["https://app.example"]),
            &handler,
            "GET /items HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n",
        );
        assert_eq!(handler.calls.get(), 1, "the request itself is served");
        assert!(!has_cors_headers(&res));
        assert_eq!(varies(&res), ["origin"], "the answer depends on the origin");
    }

    #[test]
    fn origins_are_compared_exactly_as_serialized() {
        for sent in [
            "https://APP.example",
            "https://app.example/",
            "http://app.example",
            "https://app.example:8443",
            "https://app.example.evil",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nOrigin: {sent}\r\n\r\n");
            let res = run(config(&["https://app.example"]), &raw);
            assert!(!has_cors_headers(&res), "{sent} matched");
        }
    }

    #[test]
    fn configured_origins_are_normalised_to_the_serialized_form() {
        assert_eq!(
            serialize_origin("HTTPS://App.Example").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            serialize_origin("https://app.example:443").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            serialize_origin("http://app.example:80").unwrap(),
            "http://app.example"
        );
        assert_eq!(
            serialize_origin("http://app.example:8080").unwrap(),
            "http://app.example:8080"
        );
        assert_eq!(
            serialize_origin("http://[::1]:3000").unwrap(),
            "http://[::1]:3000"
        );
        assert_eq!(serialize_origin("http://[::1]").unwrap(), "http://[::1]");
        assert_eq!(serialize_origin("null").unwrap(), "null");
        let res = run(
            config(&["HTTPS://App.Example:443"]),
            "GET / HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
        );
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("https://app.example")
        );
    }

    #[test]
    fn a_configured_value_that_is_not_an_origin_is_a_construction_error() {
        for bad in [
            "https://app.example/",
            "https://app.example/path",
            "app.example",
            "https://*.example.com",
            "https://user@app.example",
            "https://app.example:99999",
            "https://app.example:",
            "https://",
            "https://bücher.example",
            "https://app example",
            "*",
        ] {
            let err = Cors::new(config(&[bad])).err();
            assert!(
                matches!(err, Some(CorsConfigError::InvalidOrigin { .. })),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn null_origin_is_allowed_only_when_listed() {
        let raw = "GET / HTTP/1.1\r\nOrigin: null\r\n\r\n";
        let res = run(config(&["https://app.example"]), raw);
        assert!(!has_cors_headers(&res));
        let res = run(config(&["null"]), raw);
        assert_eq!(header(&res, "access-control-allow-origin"), Some("null"));
        let credentialed_any = CorsConfig {
            allowed_origins: AllowedOrigins::Any,
            allow_credentials: true,
            ..CorsConfig::default()
        };
        let res = run(credentialed_any, raw);
        assert!(!has_cors_headers(&res), "null is never echoed by 'any'");
    }

    #[test]
    fn any_origin_without_credentials_is_a_wildcard_without_vary() {
        let any = CorsConfig {
            allowed_origins: AllowedOrigins::Any,
            ..CorsConfig::default()
        };
        let res = run(
            any,
            "GET / HTTP/1.1\r\nOrigin: https://whoever.example\r\n\r\n",
        );
        assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
        assert!(res.headers().get(VARY).is_none());
    }

    #[test]
    fn credentials_echo_the_origin_and_never_send_a_wildcard() {
        let any = CorsConfig {
            allowed_origins: AllowedOrigins::Any,
            allow_credentials: true,
            ..CorsConfig::default()
        };
        let res = run(
            any,
            "GET / HTTP/1.1\r\nOrigin: https://whoever.example\r\n\r\n",
        );
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("https://whoever.example")
        );
        assert_eq!(
            header(&res, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(varies(&res), ["origin"]);
    }

    #[test]
    fn exposed_headers_are_listed_on_actual_responses() {
        let cfg = CorsConfig {
            exposed_headers: vec![
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("etag"),
            ],
            ..config(&["https://app.example"])
        };
        let res = run(cfg, "GET / HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n");
        assert_eq!(
            header(&res, "access-control-expose-headers"),
            Some("x-request-id, etag")
        );
    }

    #[test]
    fn vary_is_appended_to_the_handlers_vary() {
        let handler = Handler {
            vary: Some("accept-encoding"),
            ..Handler::default()
        };
        let res = run_with(
            config(&["https://app.example"]),
            &handler,
            "GET / HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
        );
        assert_eq!(varies(&res), ["accept-encoding", "origin"]);
    }

    #[test]
    fn vary_origin_is_not_repeated() {
        for existing in ["Origin", "accept, origin", "*"] {
            let handler = Handler {
                vary: Some(existing),
                ..Handler::default()
            };
            let res = run_with(
                config(&["https://app.example"]),
                &handler,
                "GET / HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
            );
            assert_eq!(res.headers().get_all(VARY).iter().count(), 1, "{existing}");
        }
    }

    #[test]
    fn preflight_is_answered_without_calling_the_routes() {
        let handler = Handler::default();
        let res = run_with(config(&["https://app.example"]), &handler, PREFLIGHT);
        assert_eq!(handler.calls.get(), 0);
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(res.body().is_empty());
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(
            header(&res, "access-control-allow-methods"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE")
        );
        assert_eq!(header(&res, "access-control-max-age"), Some("600"));
        assert_eq!(header(&res, "access-control-allow-headers"), None);
        assert_eq!(
            varies(&res),
            [
                "origin",
                "access-control-request-method",
                "access-control-request-headers"
            ]
        );
    }

    #[test]
    fn preflight_from_a_disallowed_origin_gets_no_cors_headers() {
        let handler = Handler::default();
        let res = run_with(config(&["https://other.example"]), &handler, PREFLIGHT);
        assert_eq!(handler.calls.get(), 0);
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(!has_cors_headers(&res));
        assert!(varies(&res).contains(&"origin".to_owned()));
    }

    #[test]
    fn preflight_for_a_disallowed_method_gets_no_cors_headers() {
        let cfg = CorsConfig {
            allowed_methods: vec![Method::GET, Method::DELETE],
            ..config(&["https://app.example"])
        };
        let res = run(cfg.clone(), PREFLIGHT);
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(!has_cors_headers(&res));
        // Methods are case-sensitive: `delete` is not `DELETE`.
        let lower = PREFLIGHT.replace("Method: PUT", "Method: delete");
        assert!(!has_cors_headers(&run(cfg.clone(), &lower)));
        let listed = PREFLIGHT.replace("Method: PUT", "Method: DELETE");
        assert!(has_cors_headers(&run(cfg, &listed)));
    }

    #[test]
    fn preflight_for_a_safelisted_method_is_allowed_even_if_unlisted() {
        let cfg = CorsConfig {
            allowed_methods: vec![],
            allowed_headers: AllowedHeaders::List(vec![HeaderName::from_static("x-token")]),
            ..config(&["https://app.example"])
        };
        let raw = "OPTIONS / HTTP/1.1\r\nOrigin: https://app.example\r\n\
            Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-token\r\n\r\n";
        let res = run(cfg, raw);
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(header(&res, "access-control-allow-methods"), None);
        assert_eq!(
            header(&res, "access-control-allow-headers"),
            Some("x-token")
        );
    }

    #[test]
    fn preflight_headers_are_checked_against_the_list() {
        let cfg = CorsConfig {
            allowed_headers: AllowedHeaders::List(vec![
                HeaderName::from_static("content-type"),
                HeaderName::from_static("x-token"),
            ]),
            ..config(&["https://app.example"])
        };
        let asking = |list: &str| {
            format!(
                "OPTIONS / HTTP/1.1\r\nOrigin: https://app.example\r\n\
                 Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: {list}\r\n\r\n"
            )
        };
        let res = run(cfg.clone(), &asking("content-type,X-Token"));
        assert_eq!(
            header(&res, "access-control-allow-headers"),
            Some("content-type, x-token")
        );
        assert!(!has_cors_headers(&run(
            cfg.clone(),
            &asking("content-type, authorization")
        )));
        // Two lines form one list (RFC 9110 §5.3).
        let two_lines = "OPTIONS / HTTP/1.1\r\nOrigin: https://app.example\r\n\
            Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: x-token\r\n\
            Access-Control-Request-Headers: x-other\r\n\r\n";
        assert!(!has_cors_headers(&run(cfg, two_lines)));
    }

    #[test]
    fn preflight_headers_are_mirrored_when_configured() {
        let cfg = CorsConfig {
            allowed_headers: AllowedHeaders::Mirror,
            allow_credentials: true,
            ..config(&["https://app.example"])
        };
        let raw = "OPTIONS / HTTP/1.1\r\nOrigin: https://app.example\r\n\
            Access-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: authorization, x-a\r\n\
            Access-Control-Request-Headers: x-b\r\n\r\n";
        let res = run(cfg.clone(), raw);
        assert_eq!(
            header(&res, "access-control-allow-headers"),
            Some("authorization, x-a, x-b")
        );
        assert_eq!(
            header(&res, "access-control-allow-credentials"),
            Some("true")
        );
        let res = run(cfg, PREFLIGHT);
        assert_eq!(header(&res, "access-control-allow-headers"), None);
        assert!(has_cors_headers(&res));
    }

    #[test]
    fn options_without_request_method_is_an_actual_request() {
        let handler = Handler::default();
        let res = run_with(
            config(&["https://app.example"]),
            &handler,
            "OPTIONS / HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
        );
        assert_eq!(handler.calls.get(), 1);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(header(&res, "access-control-allow-methods"), None);
    }

    #[test]
    fn max_age_is_omitted_when_unset() {
        let cfg = CorsConfig {
            max_age: None,
            ..config(&["https://app.example"])
        };
        let res = run(cfg, PREFLIGHT);
        assert!(has_cors_headers(&res));
        assert_eq!(header(&res, "access-control-max-age"), None);
    }

    #[test]
    fn default_config_allows_no_origin() {
        let res = run(
            CorsConfig::default(),
            "GET / HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
        );
        assert!(!has_cors_headers(&res));
    }
}
