//! Runtime glue: the only code that awaits on sockets. Starts the shards, builds each shard's
//! state and application, runs the ticker (Date cache, timeouts, parking) and the shutdown
//! watcher, and hands every accepted connection to the HTTP/1.1 loop.

mod h1;
mod registry;
mod shard;

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

use crate::app::BuiltinApp;
use crate::config::ServeConfig;
use crate::service::Service;
use shard::ShardCtx;

/// Messages shards exchange over the mesh. None yet: the router issue brings the first users.
pub type ShardMessage = ();
pub type ShardReply = ();

/// Serves the built-in app until SIGINT/SIGTERM; returns after a graceful shutdown.
pub fn run(config: ServeConfig) -> Result<(), shards::Error> {
    let index_html = read_index_html(&config);
    let runtime = config.runtime.clone();
    shards::run(runtime, move |shard| {
        let app = BuiltinApp::new(index_html.clone());
        shard_main(shard, config.clone(), app)
    })
}

/// The bundled site's front page, read once at start-up (static files proper come later).
fn read_index_html(config: &ServeConfig) -> Option<Bytes> {
    let path = config.root.join("index.html");
    match std::fs::read(&path) {
        Ok(html) => Some(Bytes::from(html)),
        Err(err) => {
            warn!(path = %path.display(), error = %err, "no index.html to serve at /");
            None
        }
    }
}

async fn shard_main<S: Service>(
    shard: shards::Shard<ShardMessage, ShardReply>,
    config: ServeConfig,
    app: S,
) {
    let ctx = Rc::new(ShardCtx::new(shard.id(), config));
    if shard.id() == 0 {
        for addr in shard.local_addrs() {
            info!(shards = shard.count(), "percore listening on http://{addr}");
        }
    }

    let ticker_ctx = ctx.clone();
    monoio::spawn(async move {
        let mut interval = monoio::time::interval(Duration::from_secs(1));
        loop {
            interval.tick().await;
            ticker_ctx.tick();
        }
    });

    let shutdown = shard.shutdown();
    let shutdown_ctx = ctx.clone();
    monoio::spawn(async move {
        shutdown.triggered().await;
        shutdown_ctx.begin_shutdown();
    });

    let app = Rc::new(app);
    shard
        .serve(move |stream, peer| h1::serve_h1(stream, peer, ctx.clone(), app.clone()))
        .await;
}
