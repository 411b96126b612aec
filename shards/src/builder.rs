//! Starting and stopping the shards: `Config`, `start`, `run` and `Running`. It owns the
//! threads, CPU pinning, the hand-over of listeners and mesh ends to each thread, start-up error
//! reporting, and signal handling in `run`. Each runtime is built inside its own thread because
//! `IORING_SETUP_SINGLE_ISSUER` binds a ring to the thread that creates it.

use std::{
    any::Any,
    cell::RefCell,
    future::Future,
    net::SocketAddr,
    rc::Rc,
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use monoio::net::TcpListener;

use crate::{
    accept::ConnTracker,
    driver::{self, DriverChoice, DriverKind, UringFlags},
    limits, listener,
    mesh::{MeshParts, ShardMesh},
    shutdown::{Shutdown, Trigger},
    Error, Shard, ShardId,
};

/// How to run the shards. `Config::default()` gives one shard per allowed core, pinned,
/// io_uring with the flag ladder, no listeners.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of shards; 0 = one per core this process may run on (its affinity mask).
    pub shards: usize,
    /// Pin shard i to the i-th allowed core (wrapping when there are more shards than cores).
    pub pin: bool,
    pub driver: DriverChoice,
    pub uring_flags: UringFlags,
    /// io_uring submission queue size (monoio raises anything below 256 to 256).
    pub ring_entries: u32,
    /// Addresses to listen on; each gets one socket per shard (see `listener.rs`).
    pub listen: Vec<SocketAddr>,
    pub backlog: i32,
    /// `SO_REUSEPORT`: lets a second percore of the same user share the port, for restarts
    /// without refused connections, at the price of not getting "address in use" from a second
    /// instance started by mistake.
    pub reuse_port: bool,
    /// None = `(RLIMIT_NOFILE soft limit - reserve) / shards`, read at `start`.
    pub max_conns_per_shard: Option<usize>,
    /// How long `Shard::serve` waits for open connections after shutdown.
    pub grace: Duration,
    /// `run` handles SIGINT/SIGTERM (first: graceful shutdown; second: exit(130)).
    pub handle_signals: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: 0,
            pin: true,
            driver: DriverChoice::Auto,
            uring_flags: UringFlags::Auto,
            ring_entries: 1024,
            listen: Vec::new(),
            backlog: 4096,
            reuse_port: true,
            max_conns_per_shard: None,
            grace: Duration::from_secs(10),
            handle_signals: true,
        }
    }
}

/// The running shards. Dropping it without `join` triggers shutdown and detaches the threads.
pub struct Running {
    local_addrs: Arc<[SocketAddr]>,
    drivers: Vec<DriverKind>,
    trigger: Arc<Trigger>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// The bound addresses (port 0 resolved), one per `Config::listen` entry.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn shards(&self) -> usize {
        self.threads.len()
    }

    /// The driver each shard runs on, by shard id.
    pub fn drivers(&self) -> &[DriverKind] {
        &self.drivers
    }

    /// Triggers graceful shutdown on every shard. Callable from any thread, any number of times.
    pub fn shutdown(&self) {
        self.trigger.fire();
    }

    /// Waits for every shard thread. A shard that panicked is an error (the first one is returned,
    /// after all threads have ended).
    pub fn join(mut self) -> Result<(), Error> {
        join_all(std::mem::take(&mut self.threads))
    }
}

fn join_all(threads: Vec<JoinHandle<()>>) -> Result<(), Error> {
    let mut first = Ok(());
    for (shard, thread) in threads.into_iter().enumerate() {
        if let Err(payload) = thread.join() {
            let e = Error::Panicked {
                shard,
                message: panic_message(payload.as_ref()),
            };
            tracing::error!("{e}");
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Binds every listener (in this thread, so errors come back here), spawns the shard threads,
/// builds each runtime inside its thread, and calls `shard_main` there. Returns once every shard
/// has its runtime; a shard that could not build one makes `start` fail (and stop the others).
pub fn start<M, R, F, Fut>(config: Config, shard_main: F) -> Result<Running, Error>
where
    M: Send + 'static,
    R: Send + 'static,
    F: Fn(Shard<M, R>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let shards = match config.shards {
        0 if !cores.is_empty() => cores.len(),
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if config.pin && cores.is_empty() {
        tracing::warn!("cannot read the CPU affinity mask; shards will not be pinned");
    }
    let max_conns = match config.max_conns_per_shard {
        Some(n) => n,
        None => limits::derived_conn_limit(shards, config.listen.len()).map_err(Error::Rlimit)?,
    };
    let bound = listener::bind_all(&config.listen, shards, config.backlog, config.reuse_port)?;
    let local_addrs: Arc<[SocketAddr]> = bound.local_addrs.into();
    let mesh = MeshParts::<M, R>::new(shards);
    let (trigger, remotes) = Trigger::new(shards);
    let trigger = Arc::new(trigger);
    let shard_main = Arc::new(shard_main);
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut go = Vec::with_capacity(shards);

    let mut threads = Vec::with_capacity(shards);
    for (id, (listeners, remote)) in bound.per_shard.into_iter().zip(remotes).enumerate() {
        let (go_tx, go_rx) = mpsc::channel();
        go.push(go_tx);
        let start = ShardStart {
            id,
            count: shards,
            core: if config.pin && !cores.is_empty() {
                Some(cores[id % cores.len()])
            } else {
                None
            },
            driver: config.driver,
            uring_flags: config.uring_flags,
            ring_entries: config.ring_entries,
            listeners,
            local_addrs: local_addrs.clone(),
            mesh: mesh.for_shard(id),
            remote,
            max_conns,
            grace: config.grace,
            shard_main: shard_main.clone(),
            ready: ready_tx.clone(),
            go: go_rx,
        };
        match std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || start.run())
        {
            Ok(thread) => threads.push(thread),
            Err(source) => {
                trigger.fire();
                let _ = join_all(threads);
                return Err(Error::Spawn { shard: id, source });
            }
        }
    }
    drop(ready_tx);

    // Each shard reports once; a thread that dies first drops its sender, so this cannot hang.
    let mut drivers = vec![None; shards];
    let mut failure = None;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok((id, Ok(kind))) => drivers[id] = Some(kind),
            Ok((_, Err(e))) => {
                failure.get_or_insert(e);
            }
            Err(mpsc::RecvError) => break,
        }
    }
    let lost = drivers.iter().position(Option::is_none);
    let all_ready = failure.is_none() && lost.is_none();
    // No `shard_main` runs unless every shard could start: a failed start leaves nothing behind.
    for tx in go {
        let _ = tx.send(all_ready);
    }
    if !all_ready {
        trigger.fire();
        let joined = join_all(threads);
        return Err(match (failure, joined) {
            (Some(e), _) | (None, Err(e)) => e,
            (None, Ok(())) => Error::StartupLost {
                shard: lost.unwrap_or(0),
            },
        });
    }
    Ok(Running {
        local_addrs,
        drivers: drivers.into_iter().flatten().collect(),
        trigger,
        threads,
    })
}

/// `start`, then block until SIGINT/SIGTERM (when `handle_signals`) or until every shard has
/// ended, then join. The first signal shuts every shard down gracefully; a second one exits the
/// process at once with status 130.
pub fn run<M, R, F, Fut>(config: Config, shard_main: F) -> Result<(), Error>
where
    M: Send + 'static,
    R: Send + 'static,
    F: Fn(Shard<M, R>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if !config.handle_signals {
        return start(config, shard_main)?.join();
    }
    use signal_hook::consts::{SIGINT, SIGTERM};
    // Registered before `start`, so no signal falls between the shards starting and the handler.
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(Error::Signals)?;
    let running = start(config, shard_main)?;
    let trigger = running.trigger.clone();
    let closer = signals.handle();
    // The join happens on a helper thread so that this thread can block on signals; the helper
    // closes the signal iterator when the shards are done, which ends the loop below.
    let joiner = std::thread::Builder::new()
        .name("shards-join".into())
        .spawn(move || {
            let result = running.join();
            closer.close();
            result
        })
        .map_err(Error::Supervisor)?;
    let mut seen = 0;
    for signal in signals.forever() {
        seen += 1;
        if seen == 1 {
            tracing::info!(
                signal,
                "shutting down gracefully (signal again to exit at once)"
            );
            trigger.fire();
        } else {
            tracing::warn!(signal, "second signal: exiting at once");
            std::process::exit(130);
        }
    }
    joiner.join().unwrap_or_else(|payload| {
        Err(Error::Panicked {
            shard: usize::MAX,
            message: panic_message(payload.as_ref()),
        })
    })
}

/// Everything one shard thread needs, moved into it.
struct ShardStart<M, R, F> {
    id: ShardId,
    count: usize,
    core: Option<core_affinity::CoreId>,
    driver: DriverChoice,
    uring_flags: UringFlags,
    ring_entries: u32,
    listeners: Vec<std::net::TcpListener>,
    local_addrs: Arc<[SocketAddr]>,
    mesh: ShardMesh<M, R>,
    remote: flume::Receiver<()>,
    max_conns: usize,
    grace: Duration,
    shard_main: Arc<F>,
    ready: mpsc::Sender<(ShardId, Result<DriverKind, Error>)>,
    /// `start`'s verdict once every shard has reported: run `shard_main` or end.
    go: mpsc::Receiver<bool>,
}

impl<M, R, F, Fut> ShardStart<M, R, F>
where
    F: Fn(Shard<M, R>) -> Fut,
    Fut: Future<Output = ()>,
{
    fn run(self) {
        let id = self.id;
        // `_closer` closes this shard's inbox when the thread ends, panics included.
        let (mesh, inbox, _closer) = self.mesh.split();
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                tracing::warn!(
                    shard = id,
                    core = core.id,
                    "cannot pin the shard to its core"
                );
            }
        }
        let (mut rt, kind) =
            match driver::build_runtime(id, self.driver, self.uring_flags, self.ring_entries) {
                Ok(built) => built,
                Err(e) => {
                    let _ = self.ready.send((id, Err(e)));
                    return;
                }
            };
        // Listeners are registered with this runtime's driver, so inside it.
        let listeners = rt.block_on(async {
            self.listeners
                .into_iter()
                .zip(self.local_addrs.iter().copied())
                .map(|(l, addr)| {
                    TcpListener::from_std(l)
                        .map(|l| (l, addr))
                        .map_err(|source| Error::Register {
                            shard: id,
                            addr,
                            source,
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let listeners = match listeners {
            Ok(l) => l,
            Err(e) => {
                let _ = self.ready.send((id, Err(e)));
                return;
            }
        };
        let _ = self.ready.send((id, Ok(kind)));
        drop(self.ready);
        if !matches!(self.go.recv(), Ok(true)) {
            return;
        }

        let shard_main = self.shard_main;
        let remote = self.remote;
        let shard = Shard {
            id,
            count: self.count,
            driver: kind,
            local_addrs: self.local_addrs,
            mesh,
            inbox: Some(inbox),
            shutdown: Shutdown::new(),
            listeners: RefCell::new(listeners),
            conns: Rc::new(ConnTracker::new(self.max_conns)),
            grace: self.grace,
        };
        rt.block_on(async move {
            monoio::spawn(shard.shutdown.clone().watch(remote));
            shard_main(shard).await;
        });
        tracing::debug!(shard = id, "shard ended");
    }
}
