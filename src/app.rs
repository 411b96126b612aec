//! The built-in application until the router lands: `/plaintext`, `/json`, `/healthz` (which
//! shard answered), `POST /echo` (the request body back), the bundled site's `index.html` at `/`,
//! and 404 for everything else.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, StatusCode};
use serde::Serialize;

use crate::service::{response, Body, Request, Response, Service};

static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    shard: usize,
}

/// The minimal app. Built once per shard.
#[derive(Debug, Clone, Default)]
pub struct BuiltinApp {
    /// The bundled site's `index.html`, read once at start-up; `None` if there is none.
    index_html: Option<Bytes>,
}

impl BuiltinApp {
    pub fn new(index_html: Option<Bytes>) -> Self {
        BuiltinApp { index_html }
    }

    fn route(&self, req: &Request) -> Response {
        // `path()` checks its UTF-8 on every call: once per request is enough.
        let path = req.path();
        if path == "/echo" {
            return echo(req);
        }
        let get_like = matches!(*req.method(), Method::GET | Method::HEAD);
        let body_and_type: Option<(Body, &HeaderValue)> = match path {
            "/plaintext" => Some(("Hello, World!".into(), &TEXT_PLAIN)),
            "/json" => {
                let json = serde_json::to_vec(&Message {
                    message: "Hello, World!",
                })
                .expect("serialising a struct of one &str cannot fail");
                Some((json.into(), &APPLICATION_JSON))
            }
            "/healthz" => {
                let json = serde_json::to_vec(&Health {
                    status: "ok",
                    shard: req.shard,
                })
                .expect("serialising a struct of a &str and a usize cannot fail");
                Some((json.into(), &APPLICATION_JSON))
            }
            "/" => self
                .index_html
                .clone()
                .map(|html| (Body::Full(html), &TEXT_HTML)),
            _ => None,
        };
        match body_and_type {
            Some(_) if !get_like => {
                let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                res
            }
            Some((body, content_type)) => {
                let mut res = response(body);
                res.headers_mut().insert(CONTENT_TYPE, content_type.clone());
                res
            }
            None => text(StatusCode::NOT_FOUND, "Not Found\n"),
        }
    }
}

impl Service for BuiltinApp {
    async fn call(&self, req: Request) -> Response {
        self.route(&req)
    }
}

/// `POST /echo` answers with the request body: a way to see what the server received.
fn echo(req: &Request) -> Response {
    if *req.method() != Method::POST && *req.method() != Method::PUT {
        let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST, PUT"));
        return res;
    }
    let mut res = response(req.body.clone());
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    res
}

/// A plain-text response with the given status.
pub fn text(status: StatusCode, body: &'static str) -> Response {
    let mut res = response(body);
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN.clone());
    res
}
