//! The app `percore serve` runs: `/plaintext` and `/json` (the usual benchmark routes),
//! `/healthz` (which shard answered), `POST|PUT /echo` (the request body back), the bundled
//! site's `index.html` at `/`, wrapped in the middleware the configuration asks for.

use bytes::Bytes;
use serde::Serialize;
use tracing::{error, warn};

use super::App;
use crate::config::ServeConfig;
use crate::context::Ctx;
use crate::metrics::metrics_handler;
use crate::middleware::{
    AccessLog, Cors, ErrorPages, RateLimit, RequestIds, SecurityHeaders, Timing,
};
use crate::response::{Html, IntoResponse, Json};
use crate::service::{Request, Response};
use crate::shard::ShardHandle;

/// What the built-in app reads once at start-up and shares with every shard.
#[derive(Debug, Clone, Default)]
pub struct BuiltinOptions {
    /// The bundled site's `index.html`; `None` if there is none.
    index_html: Option<Bytes>,
}

impl BuiltinOptions {
    /// Reads the site's front page (static files proper are a later layer).
    pub fn load(config: &ServeConfig) -> Self {
        let path = config.root.join("index.html");
        let index_html = match std::fs::read(&path) {
            Ok(html) => Some(Bytes::from(html)),
            Err(err) => {
                warn!(path = %path.display(), error = %err, "no index.html to serve at /");
                None
            }
        };
        BuiltinOptions { index_html }
    }
}

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    shard: usize,
}

async fn plaintext(_req: Request, _cx: Ctx) -> &'static str {
    "Hello, World!"
}

async fn json(_req: Request, _cx: Ctx) -> Json<Message> {
    Json(Message {
        message: "Hello, World!",
    })
}

async fn healthz(_req: Request, cx: Ctx) -> Json<Health> {
    Json(Health {
        status: "ok",
        shard: cx.shard_id(),
    })
}

async fn echo(req: Request, _cx: Ctx) -> Bytes {
    req.body.clone()
}

/// The built-in app for one shard.
pub fn builtin_app(shard: &ShardHandle, config: &ServeConfig, site: &BuiltinOptions) -> App {
    let mut app = App::new()
        .get("/plaintext", plaintext)
        .get("/json", json)
        .get("/healthz", healthz)
        .post("/echo", echo)
        .put("/echo", echo);
    if let Some(html) = site.index_html.clone() {
        app = app.get("/", move |_req: Request, _cx: Ctx| {
            let html = html.clone();
            async move { Html(html).into_response() as Response }
        });
    }
    let mw = &config.middleware;
    if !mw.enabled {
        return app;
    }
    // Outermost first. The request id comes first so every later layer (and the log) sees it;
    // the access log and timing wrap everything after them so they measure it; security headers
    // and error pages apply to every answer, 429s and preflights included; CORS sits outside the
    // rate limiter so a browser can read its 429.
    if mw.request_id {
        app = app.layer(RequestIds::new(shard.id()));
    }
    if let Some(access_log) = &mw.access_log {
        app = app.layer(AccessLog::new(access_log.clone()));
    }
    if let Some(timing) = &mw.timing {
        app = app
            .layer(Timing::new(timing.clone(), shard))
            .get("/metrics", metrics_handler::<()>);
    }
    if let Some(security) = &mw.security_headers {
        match SecurityHeaders::new(security) {
            Ok(layer) => app = app.layer(layer),
            Err(err) => error!(error = %err, "security headers off"),
        }
    }
    app = app.layer(ErrorPages::new());
    if let Some(cors) = &mw.cors {
        match Cors::new(cors.clone()) {
            Ok(layer) => app = app.layer(layer),
            Err(err) => error!(error = %err, "CORS off"),
        }
    }
    if let Some(limit) = &mw.rate_limit {
        app = app.layer(RateLimit::new(limit.clone(), shard));
    }
    app
}
