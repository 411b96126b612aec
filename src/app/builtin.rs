//! The app `percore serve` runs: `/plaintext` and `/json` (the usual benchmark routes),
//! `/healthz` (which shard answered), `POST|PUT /echo` (the request body back), static mounts,
//! and the bundled site as the fallback for every other path, wrapped in the middleware the
//! configuration asks for.

use std::rc::Rc;

use bytes::Bytes;
use serde::Serialize;
use tracing::error;

use super::App;
use crate::config::ServeConfig;
use crate::context::Ctx;
use crate::metrics::metrics_handler;
use crate::middleware::{
    AccessLog, Cors, ErrorPages, RateLimit, RequestIds, SecurityHeaders, Timing,
};
use crate::response::Json;
use crate::service::Request;
use crate::shard::ShardHandle;
use crate::static_files::StaticFiles;

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

/// The built-in app for one shard: its routes, the static mounts, and the site's root as the
/// fallback for every other path.
pub fn builtin_app(shard: &ShardHandle, config: &ServeConfig) -> App {
    let mut app = App::new()
        .get("/plaintext", plaintext)
        .get("/json", json)
        .get("/healthz", healthz)
        .post("/echo", echo)
        .put("/echo", echo);
    for mount in &config.mounts {
        match StaticFiles::new(mount.clone()) {
            Ok(files) => {
                let files = Rc::new(files);
                let prefix = mount.prefix.trim_end_matches('/');
                app = app
                    .get(&format!("{prefix}/*path"), files.clone())
                    .get(prefix, files);
            }
            Err(err) => error!(error = %err, "static mount off"),
        }
    }
    if let Some(site) = &config.site {
        match StaticFiles::new(site.clone()) {
            Ok(files) => app = app.fallback(Rc::new(files)),
            Err(err) => error!(error = %err, "static files off"),
        }
    }
    let mw = &config.middleware;
    if !mw.enabled {
        return app;
    }
    // Outermost first. The request id comes first so every later layer (and the log) sees it;
    // the access log and timing wrap everything after them so they measure it; error pages apply
    // to every answer, 429s and preflights included; CORS sits outside the rate limiter so a
    // browser can read its 429. The layers that never await are hooks, and consecutive hooks go
    // in as one tuple: one layer, one future per request for all of them. Security headers are
    // the app's default fields, written as each response goes out (on every answer of the app,
    // as a layer there would be, and a handler's own value still wins).
    if let Some(security) = &mw.security_headers {
        match SecurityHeaders::new(security) {
            Ok(security) => app = app.default_fields(security.always(), security.tls_only()),
            Err(err) => error!(error = %err, "security headers off"),
        }
    }
    let ids = mw.request_id.then(|| RequestIds::new(shard.id()));
    let timing = mw
        .timing
        .as_ref()
        .map(|timing| Timing::new(timing.clone(), shard));
    if timing.is_some() {
        app = app.get("/metrics", metrics_handler::<()>);
    }
    let cors = mw
        .cors
        .as_ref()
        .and_then(|cors| match Cors::new(cors.clone()) {
            Ok(layer) => Some(layer),
            Err(err) => {
                error!(error = %err, "CORS off");
                None
            }
        });
    let inner = (timing, ErrorPages::new(), cors);
    app = match &mw.access_log {
        Some(access_log) => {
            if let Some(ids) = ids {
                app = app.layer(ids);
            }
            app.layer(AccessLog::new(access_log.clone())).layer(inner)
        }
        None => {
            let (timing, pages, cors) = inner;
            app.layer((ids, timing, pages, cors))
        }
    };
    // Async (it may ask another shard), so a layer of its own.
    if let Some(limit) = &mw.rate_limit {
        app = app.layer(RateLimit::new(limit.clone(), shard));
    }
    app
}
