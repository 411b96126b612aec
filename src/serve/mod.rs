//! Runtime glue: the only code that awaits on sockets. Starts the shards, builds each shard's
//! state and application, runs the ticker (Date cache, timeouts, parking), the shutdown watcher
//! and the mesh inbox, and hands every accepted connection to the HTTP/1.1 loop.

mod body;
mod h1;
mod h2;
mod h2_flood;
mod h2_wire;
mod h2c_upgrade;
mod redirect;
mod registry;
mod shard;
mod transport;
mod write_batch;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tracing::info;

use crate::app::{App, RouteErrors};
use crate::config::ServeConfig;
use crate::service::Service;
use crate::shard::{run_job, Job, JobReply, ShardHandle};
use crate::tls::{TlsError, TlsShared, ALPN_H2};
use h1::{H1Exit, H1Options};
use monoio::io::IntoPollIo;
use monoio::net::TcpStream;
use registry::ReadInterrupt;
use shard::ShardCtx;

/// Why the server could not start (or stopped abnormally).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Shards(#[from] shards::Error),
    #[error("{0}")]
    Routes(#[from] RouteErrors),
    #[error("{0}")]
    Tls(#[from] TlsError),
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
    let runtime = runtime_config(&config);
    let tls = tls_shared(&config)?;
    reload_on_sighup(tls.clone());
    let shard_failure = failure.clone();
    let factory = Arc::new(factory);
    shards::run(runtime, move |shard| {
        shard_main(
            shard,
            config.clone(),
            tls.clone(),
            factory.clone(),
            shard_failure.clone(),
        )
    })?;
    take_failure(&failure)
}

/// The shards' listeners: the plain ones, then the TLS ones (the order `Listeners` relies on).
fn runtime_config(config: &ServeConfig) -> shards::Config {
    let mut runtime = config.runtime.clone();
    runtime.listen = config.listen.clone();
    if let Some(tls) = &config.tls {
        runtime.listen.extend_from_slice(&tls.listen);
    }
    runtime
}

fn tls_shared(config: &ServeConfig) -> Result<Option<Arc<TlsShared>>, TlsError> {
    config
        .tls
        .as_ref()
        .map(|tls| TlsShared::new(tls).map(Arc::new))
        .transpose()
}

/// SIGHUP reloads the certificate files for new handshakes (nginx's habit). Registered whether
/// or not TLS is on, so that a SIGHUP never kills the server by its default action.
fn reload_on_sighup(tls: Option<Arc<TlsShared>>) {
    let signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP]) {
        Ok(signals) => signals,
        Err(err) => {
            tracing::warn!("cannot handle SIGHUP: {err}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("percore-sighup".into())
        .spawn(move || {
            let mut signals = signals;
            for _ in signals.forever() {
                reload_tls(tls.as_deref());
            }
        });
    if let Err(err) = spawned {
        tracing::warn!("cannot handle SIGHUP: {err}");
    }
}

fn reload_tls(tls: Option<&TlsShared>) {
    match tls.map(TlsShared::reload) {
        None | Some(Ok(false)) => info!("SIGHUP: no certificate files to reload"),
        Some(Ok(true)) => info!("SIGHUP: certificate reloaded; new handshakes use it"),
        Some(Err(err)) => tracing::error!("SIGHUP: {err}; keeping the previous certificate"),
    }
}

/// A server started by [`start_app`], without signal handling: for tests and embedding.
pub struct RunningServer {
    running: shards::Running,
    failure: StartFailure,
    tls: Option<Arc<TlsShared>>,
}

impl RunningServer {
    /// The bound addresses (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.running.local_addrs()
    }
    /// Reloads the certificate files for new handshakes (as SIGHUP does for `run`).
    pub fn reload_tls(&self) -> Result<bool, TlsError> {
        self.tls.as_ref().map_or(Ok(false), |tls| tls.reload())
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
        ..runtime_config(&config)
    };
    let tls = tls_shared(&config)?;
    let shard_failure = failure.clone();
    let factory = Arc::new(factory);
    let shard_tls = tls.clone();
    let running = shards::start(runtime, move |shard| {
        shard_main(
            shard,
            config.clone(),
            shard_tls.clone(),
            factory.clone(),
            shard_failure.clone(),
        )
    })?;
    Ok(RunningServer {
        running,
        failure,
        tls,
    })
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
    tls: Option<Arc<TlsShared>>,
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
    let listeners = match Listeners::new(&shard, &config, tls.as_deref()) {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!("{err}");
            return;
        }
    };
    serve_connections(shard, config, listeners, app).await;
}

/// What each listener of a shard does with a connection, by index in the shards' listen list.
struct Listeners {
    plain: usize,
    redirect: Option<Rc<redirect::RedirectToHttps>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listeners {
    fn new<M, R>(
        shard: &shards::Shard<M, R>,
        config: &ServeConfig,
        tls: Option<&TlsShared>,
    ) -> Result<Listeners, TlsError> {
        let plain = config.listen.len();
        let redirect = match &config.tls {
            Some(tls_config) if tls_config.redirect_plain => {
                shard.local_addrs().get(plain).map(|https| {
                    Rc::new(redirect::RedirectToHttps {
                        https_port: https.port(),
                    })
                })
            }
            _ => None,
        };
        let tls = tls
            .map(|tls| tls.server_config().map(tokio_rustls::TlsAcceptor::from))
            .transpose()?;
        Ok(Listeners {
            plain,
            redirect,
            tls,
        })
    }
}

async fn serve_connections<A: Service>(
    shard: shards::Shard<Job, JobReply>,
    config: ServeConfig,
    listeners: Listeners,
    app: A,
) {
    let interrupt = match shard.driver() {
        shards::DriverKind::Epoll => ReadInterrupt::Drop,
        shards::DriverKind::IoUring(_) => ReadInterrupt::Cancel,
    };
    let ctx = Rc::new(ShardCtx::new(
        shard.id(),
        config,
        shard.shutdown(),
        interrupt,
    ));
    if shard.id() == 0 {
        for (i, addr) in shard.local_addrs().iter().enumerate() {
            let scheme = if i < listeners.plain { "http" } else { "https" };
            info!(
                shards = shard.count(),
                "percore listening on {scheme}://{addr}"
            );
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
    let listeners = Rc::new(listeners);
    shard
        .serve(move |stream, peer, index| {
            if index < listeners.plain && listeners.redirect.is_none() {
                let options = H1Options {
                    tls: false,
                    h2c: ctx.config.h2.enabled,
                };
                ConnFuture::Plain {
                    fut: h1::serve_h1(stream, peer, ctx.clone(), app.clone(), options),
                }
            } else {
                ConnFuture::Other {
                    fut: Box::pin(serve_connection(
                        stream,
                        peer,
                        index,
                        ctx.clone(),
                        listeners.clone(),
                        app.clone(),
                    )),
                }
            }
        })
        .await;
}

pin_project_lite::pin_project! {
    /// A connection's task. The plain HTTP/1.1 loop, by far the most common connection and the
    /// one that sits idle by the thousand, is stored inline and nothing else beside it; the rest
    /// (TLS, redirect, and HTTP/2 once a plain connection turns out to be h2c) behind a box, so
    /// their larger state does not size every plain connection's task (measured: inline, an idle
    /// plain keep-alive connection cost ~4.3 KiB of RSS; an `async fn` wrapper around the loop
    /// for the h2c hand-over added ~300 B more).
    #[project = ConnFutureProj]
    enum ConnFuture<P, O> {
        Plain { #[pin] fut: P },
        Other { fut: Pin<Box<O>> },
        Http2 { fut: Pin<Box<dyn Future<Output = ()>>> },
        Done,
    }
}

impl<A: Service, P: Future<Output = H1Exit<TcpStream, A>>, O: Future<Output = ()>> Future
    for ConnFuture<P, O>
{
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let h2c = match self.as_mut().project() {
                ConnFutureProj::Plain { fut } => match fut.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(H1Exit::Closed) => None,
                    Poll::Ready(H1Exit::Http2 {
                        stream,
                        read,
                        stream_one,
                        peer,
                        ctx,
                        app,
                    }) => match stream.into_poll_io() {
                        Ok(io) => {
                            let io = h2::Rewind::new(read.freeze(), io, stream_one);
                            let h2: Pin<Box<dyn Future<Output = ()>>> =
                                Box::pin(h2::serve_h2(io, peer, false, ctx, app));
                            Some(h2)
                        }
                        Err(err) => {
                            tracing::debug!(%peer, "cannot switch to HTTP/2: {err}");
                            None
                        }
                    },
                },
                ConnFutureProj::Other { fut } => return fut.as_mut().poll(cx),
                ConnFutureProj::Http2 { fut } => return fut.as_mut().poll(cx),
                ConnFutureProj::Done => return Poll::Ready(()),
            };
            match h2c {
                Some(fut) => self.set(ConnFuture::Http2 { fut }),
                None => {
                    self.set(ConnFuture::Done);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// A connection on a TLS listener, or on a plain one that redirects to HTTPS.
async fn serve_connection<A: Service>(
    stream: TcpStream,
    peer: SocketAddr,
    listener: usize,
    ctx: Rc<ShardCtx>,
    listeners: Rc<Listeners>,
    app: Rc<A>,
) {
    if listener >= listeners.plain {
        if let Some(acceptor) = &listeners.tls {
            serve_tls(stream, peer, acceptor, ctx, app).await;
        }
        return;
    }
    // Plain listeners without a redirect are served inline by `ConnFuture::Plain`.
    if let Some(redirect) = &listeners.redirect {
        let options = H1Options {
            tls: false,
            h2c: false,
        };
        h1::serve_h1(stream, peer, ctx, redirect.clone(), options).await;
    }
}

/// The TLS handshake (under the header timeout: a client that stalls it is cut off like one
/// that trickles a request head), then HTTP/2 or HTTP/1.1 as ALPN chose.
async fn serve_tls<A: Service>(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: &tokio_rustls::TlsAcceptor,
    ctx: Rc<ShardCtx>,
    app: Rc<A>,
) {
    let io = match stream.into_poll_io() {
        Ok(io) => io,
        Err(err) => {
            tracing::debug!(%peer, "cannot use the socket for TLS: {err}");
            return;
        }
    };
    let accepted = {
        let slot = ctx.conns.register();
        slot.arm_in_request(ctx.deadline(ctx.config.timeouts.header));
        let accepted = slot.interruptible(acceptor.accept(io)).await;
        slot.disarm();
        accepted
    };
    let tls = match accepted {
        Some(Ok(tls)) => tls,
        Some(Err(err)) => {
            tracing::debug!(%peer, "TLS handshake failed: {err}");
            return;
        }
        None => return,
    };
    if tls.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
        let tls = transport::SplitWrites(tls);
        Box::pin(h2::serve_h2(tls, peer, true, ctx, app)).await;
    } else {
        let options = H1Options {
            tls: true,
            h2c: false,
        };
        h1::serve_h1(tls, peer, ctx, app, options).await;
    }
}
