//! Runtime glue: the only code that awaits on sockets. Starts the shards, builds each shard's
//! state and application, runs the ticker (Date cache, timeouts, parking), the shutdown watcher
//! and the mesh inbox, and hands every accepted connection to the HTTP/1.1 loop.

mod h1;
mod registry;
mod shard;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::info;

use crate::app::{App, RouteErrors};
use crate::config::ServeConfig;
use crate::service::Service;
use crate::shard::{run_job, Job, JobReply, ShardHandle};
use shard::ShardCtx;

/// Why the server could not start (or stopped abnormally).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Shards(#[from] shards::Error),
    #[error("{0}")]
    Routes(#[from] RouteErrors),
}

/// Builds one app per shard, on that shard's thread.
pub trait AppFactory<S>: Fn(&ShardHandle) -> App<S> + Send + Sync + 'static {}
impl<S, F: Fn(&ShardHandle) -> App<S> + Send + Sync + 'static> AppFactory<S> for F {}

/// The first route error any shard met, shared so `join` can report it.
type StartFailure = Arc<Mutex<Option<RouteErrors>>>;

/// Serves the built-in app (see [`crate::app::builtin_app`]) until SIGINT/SIGTERM.
pub fn run(config: ServeConfig) -> Result<(), ServeError> {
    let app_config = config.clone();
    run_app(config, move |shard| {
        crate::app::builtin_app(shard, &app_config)
    })
}

/// Serves the app `factory` builds (once per shard) until SIGINT/SIGTERM, then shuts down
/// gracefully. Route errors end start-up before any connection is accepted.
pub fn run_app<S: 'static>(
    config: ServeConfig,
    factory: impl AppFactory<S>,
) -> Result<(), ServeError> {
    let failure = StartFailure::default();
    let runtime = config.runtime.clone();
    let shard_failure = failure.clone();
    let factory = Arc::new(factory);
    shards::run(runtime, move |shard| {
        shard_main(
            shard,
            config.clone(),
            factory.clone(),
            shard_failure.clone(),
        )
    })?;
    take_failure(&failure)
}

/// A server started by [`start_app`], without signal handling: for tests and embedding.
pub struct RunningServer {
    running: shards::Running,
    failure: StartFailure,
}

impl RunningServer {
    /// The bound addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.running.local_addrs()
    }
    /// Starts a graceful shutdown (as SIGTERM would).
    pub fn shutdown(&self) {
        self.running.shutdown();
    }
    /// Waits for every shard to stop.
    pub fn join(self) -> Result<(), ServeError> {
        self.running.join()?;
        take_failure(&self.failure)
    }
}

/// Starts the app `factory` builds on every shard and returns at once. Route errors surface in
/// [`RunningServer::join`] (every shard stops without serving).
pub fn start_app<S: 'static>(
    config: ServeConfig,
    factory: impl AppFactory<S>,
) -> Result<RunningServer, ServeError> {
    let failure = StartFailure::default();
    let runtime = shards::Config {
        handle_signals: false,
        ..config.runtime.clone()
    };
    let shard_failure = failure.clone();
    let factory = Arc::new(factory);
    let running = shards::start(runtime, move |shard| {
        shard_main(
            shard,
            config.clone(),
            factory.clone(),
            shard_failure.clone(),
        )
    })?;
    Ok(RunningServer { running, failure })
}

fn take_failure(failure: &StartFailure) -> Result<(), ServeError> {
    match failure.lock().map(|mut f| f.take()) {
        Ok(Some(err)) => Err(ServeError::Routes(err)),
        _ => Ok(()),
    }
}

async fn shard_main<S: 'static, F: AppFactory<S>>(
    mut shard: shards::Shard<Job, JobReply>,
    config: ServeConfig,
    factory: Arc<F>,
    failure: StartFailure,
) {
    let handle = ShardHandle::new(shard.id(), shard.count(), shard.mesh());
    let mut app = match factory(&handle).finish() {
        Ok(app) => app,
        Err(err) => {
            if let Ok(mut first) = failure.lock() {
                first.get_or_insert(err);
            }
            return;
        }
    };
    app.attach(handle.clone());

    if let Some(mut inbox) = shard.take_inbox() {
        let handle = handle.clone();
        monoio::spawn(async move {
            while let Some(env) = inbox.recv().await {
                run_job(handle.locals(), env);
            }
        });
    }
    serve_connections(shard, config, app).await;
}

async fn serve_connections<A: Service>(
    shard: shards::Shard<Job, JobReply>,
    config: ServeConfig,
    app: A,
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
