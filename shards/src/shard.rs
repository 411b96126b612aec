//! `Shard`: what `shard_main` receives. It owns this shard's listeners (until `serve` takes them),
//! its inbox (until `take_inbox`), its connection count and its view of shutdown. It lives and
//! dies on the shard's thread.

use std::{cell::RefCell, future::Future, net::SocketAddr, rc::Rc, sync::Arc, time::Duration};

use monoio::net::TcpListener;

use crate::{
    accept::{AcceptLoop, ConnTracker},
    driver::DriverKind,
    mesh::{Inbox, Mesh},
    shutdown::Shutdown,
    ShardId,
};

/// Per-shard context handed to `shard_main`. Not `Send`: it stays on its shard.
pub struct Shard<M, R> {
    pub(crate) id: ShardId,
    pub(crate) count: usize,
    pub(crate) driver: DriverKind,
    pub(crate) local_addrs: Arc<[SocketAddr]>,
    pub(crate) mesh: Mesh<M, R>,
    pub(crate) inbox: Option<Inbox<M, R>>,
    pub(crate) shutdown: Shutdown,
    pub(crate) listeners: RefCell<Vec<(TcpListener, SocketAddr)>>,
    pub(crate) conns: Rc<ConnTracker>,
    pub(crate) grace: Duration,
}

impl<M, R> Shard<M, R> {
    /// This shard's id, `0..count()`.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// How many shards run.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The driver this shard actually runs on.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// The bound addresses (port 0 resolved), one per `Config::listen` entry.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// A handle to the mesh, cheap to clone into request handlers.
    pub fn mesh(&self) -> Mesh<M, R> {
        self.mesh.clone()
    }

    /// This shard's incoming messages; `None` after the first call.
    pub fn take_inbox(&mut self) -> Option<Inbox<M, R>> {
        self.inbox.take()
    }

    /// This shard's view of the shutdown signal.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Connections accepted by `serve` whose handler has not finished.
    pub fn open_connections(&self) -> usize {
        self.conns.open()
    }

    /// Accepts on every listener of this shard and runs `handler(stream, peer, listener)` in a
    /// task per connection (`TCP_NODELAY` already set); `listener` is the index of the accepting
    /// address in `Config::listen`, so one server can treat its listeners differently (plain,
    /// TLS, redirect). Returns after shutdown: the listeners are closed at
    /// once, then it waits until every connection task has finished or `Config::grace` has
    /// passed. Tasks still running then are dropped with the runtime when `shard_main` returns.
    ///
    /// Listeners are taken by the first call; a second call only waits for shutdown.
    pub async fn serve<H, HF>(&self, handler: H)
    where
        H: Fn(monoio::net::TcpStream, SocketAddr, usize) -> HF + 'static,
        HF: Future<Output = ()> + 'static,
    {
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        let handler = Rc::new(handler);
        let loops: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(index, (listener, addr))| {
                monoio::spawn(
                    AcceptLoop {
                        shard: self.id,
                        listener,
                        addr,
                        index,
                        handler: handler.clone(),
                        conns: self.conns.clone(),
                        shutdown: self.shutdown.clone(),
                    }
                    .run(),
                )
            })
            .collect();
        for accept_loop in loops {
            accept_loop.await;
        }
        self.shutdown.triggered().await;

        let open = self.conns.open();
        if open > 0 {
            tracing::info!(shard = self.id, open, grace = ?self.grace, "draining connections");
        }
        if monoio::time::timeout(self.grace, self.conns.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                shard = self.id,
                open = self.conns.open(),
                "grace period over; dropping the remaining connections"
            );
        }
    }
}
