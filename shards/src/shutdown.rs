//! Graceful shutdown: the cross-thread trigger (`Trigger`, held by `Running` and the signal loop)
//! and the per-shard view of it (`Shutdown`, cloned into request handlers).
//!
//! The trigger reaches each shard over a one-slot flume channel; a small task in the shard waits
//! on it and then flips the local flag and wakes every local waiter. Flume's async receive wakes
//! the monoio runtime from another thread at once (monoio's `sync` feature), so nothing polls.
//! This module does not decide what "graceful" means: `Shard::serve` stops accepting and waits
//! for connections, the HTTP layer closes idle keep-alive connections when it sees the flag.

use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
};

use crate::notify::LocalNotify;

/// This shard's view of the shutdown signal. Cheap to clone; stays on the shard's thread.
#[derive(Clone)]
pub struct Shutdown {
    inner: Rc<Local>,
}

#[derive(Default)]
struct Local {
    triggered: Cell<bool>,
    notify: LocalNotify,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Shutdown {
            inner: Rc::new(Local::default()),
        }
    }

    /// True once shutdown was triggered (from any thread) and the shard has seen it.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.get()
    }

    /// Completes when shutdown is triggered; at once if it already was.
    pub async fn triggered(&self) {
        if self.is_triggered() {
            return;
        }
        self.inner.notify.notified().await;
    }

    pub(crate) fn fire(&self) {
        if !self.inner.triggered.replace(true) {
            self.inner.notify.notify_all();
        }
    }

    /// Runs inside the shard: waits for the remote trigger, then fires the local signal. Also fires
    /// when every `Trigger` is gone (`Running` dropped), so shards never outlive their owner's
    /// ability to stop them.
    pub(crate) async fn watch(self, remote: flume::Receiver<()>) {
        let _ = remote.recv_async().await;
        self.fire();
    }
}

/// The sending side: one slot per shard. Triggering twice is harmless.
pub(crate) struct Trigger {
    fired: AtomicBool,
    shards: Vec<flume::Sender<()>>,
}

impl Trigger {
    /// One trigger for `n` shards, and the receiver each shard's watcher waits on.
    pub(crate) fn new(n: usize) -> (Trigger, Vec<flume::Receiver<()>>) {
        let (shards, receivers) = (0..n).map(|_| flume::bounded(1)).unzip();
        (
            Trigger {
                fired: AtomicBool::new(false),
                shards,
            },
            receivers,
        )
    }

    pub(crate) fn fire(&self) {
        if self.fired.swap(true, Ordering::SeqCst) {
            return;
        }
        for tx in &self.shards {
            // Full: already fired; Disconnected: that shard has ended. Neither needs action.
            let _ = tx.try_send(());
        }
    }
}

/// Polls `fut` until it completes or shutdown is triggered, whichever comes first. `fut` is
/// borrowed, so the caller can still finish it (e.g. after cancelling an in-flight accept).
pub(crate) async fn until_shutdown<F: Future + Unpin>(
    fut: &mut F,
    shutdown: &Shutdown,
) -> Option<F::Output> {
    let mut stop = std::pin::pin!(shutdown.triggered());
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if let Poll::Ready(out) = Pin::new(&mut *fut).poll(cx) {
            return Poll::Ready(Some(out));
        }
        match stop.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
