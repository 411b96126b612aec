//! The accept loops: one per listener per shard. It owns the per-shard connection count and its
//! limit, the pause when the limit or the process's descriptors run out, and `TCP_NODELAY`; what
//! a connection does is the handler's business.
//!
//! Pausing means not calling accept: new connections wait in the kernel backlog (its length is
//! `Config::backlog`) and other shards of the reuse-port group keep accepting theirs. A pause at
//! the limit ends when a connection of this shard closes (a local wake, no polling). A pause on
//! `EMFILE`/`ENFILE`/`ENOBUFS`/`ENOMEM` ends at a close too, or after a backoff of 100 ms doubling
//! to 1 s, since descriptors may also be freed elsewhere in the process.

use std::{
    cell::Cell,
    future::Future,
    io,
    net::SocketAddr,
    pin::pin,
    rc::Rc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use monoio::{io::Canceller, net::TcpListener};

use crate::{
    notify::LocalNotify,
    shutdown::{until_shutdown, Shutdown},
    ShardId,
};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning per this interval per kind, so a flood of refused accepts cannot flood
/// the log.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Open connections of one shard, and the wake-up when one closes.
pub(crate) struct ConnTracker {
    open: Cell<usize>,
    /// Accepts in flight: counted against the limit so that several listeners cannot overshoot it.
    accepting: Cell<usize>,
    limit: usize,
    closed: LocalNotify,
    limit_log: LogThrottle,
    exhausted_log: LogThrottle,
}

impl ConnTracker {
    pub(crate) fn new(limit: usize) -> Self {
        ConnTracker {
            open: Cell::new(0),
            accepting: Cell::new(0),
            limit: limit.max(1),
            closed: LocalNotify::default(),
            limit_log: LogThrottle::default(),
            exhausted_log: LogThrottle::default(),
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.open.get()
    }

    fn at_limit(&self) -> bool {
        self.open.get() + self.accepting.get() >= self.limit
    }

    /// Completes when the shard has no open connection.
    pub(crate) async fn all_closed(&self) {
        while self.open.get() > 0 {
            self.closed.notified().await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's future with its guard beside it. Not an `async move` block: that stores the
    /// captured future twice (once as the capture, once in the await slot), which doubled the
    /// memory of every idle connection.
    struct Guarded<F> {
        #[pin]
        conn: F,
        _guard: ConnGuard,
    }
}

impl<F: std::future::Future<Output = ()>> std::future::Future for Guarded<F> {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.project().conn.poll(cx)
    }
}

/// Held by a connection's task; its drop is what "the connection ended" means.
struct ConnGuard {
    tracker: Rc<ConnTracker>,
}

impl ConnGuard {
    fn new(tracker: Rc<ConnTracker>) -> Self {
        tracker.open.set(tracker.open.get() + 1);
        ConnGuard { tracker }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.tracker.open.set(self.tracker.open.get() - 1);
        self.tracker.closed.notify_all();
    }
}

/// Reserves an accept slot; released when the accept returns, whatever it returned.
struct AcceptSlot<'a>(&'a ConnTracker);

impl<'a> AcceptSlot<'a> {
    fn new(tracker: &'a ConnTracker) -> Self {
        tracker.accepting.set(tracker.accepting.get() + 1);
        AcceptSlot(tracker)
    }
}

impl Drop for AcceptSlot<'_> {
    fn drop(&mut self) {
        self.0.accepting.set(self.0.accepting.get() - 1);
    }
}

/// "Log this at most once per `LOG_INTERVAL`", counting what was held back.
#[derive(Default)]
struct LogThrottle {
    last: Cell<Option<Instant>>,
    suppressed: Cell<u64>,
}

impl LogThrottle {
    /// `Some(number held back since the last line)` if a line may be written now.
    fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        match self.last.get() {
            Some(t) if now.duration_since(t) < LOG_INTERVAL => {
                self.suppressed.set(self.suppressed.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.suppressed.replace(0))
            }
        }
    }
}

/// Errors that mean "out of descriptors or memory": retrying at once would spin.
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Completes when either future does.
async fn either(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

pub(crate) struct AcceptLoop<H> {
    pub(crate) shard: ShardId,
    pub(crate) listener: TcpListener,
    pub(crate) addr: SocketAddr,
    /// This listener's index in `Config::listen`, passed to the handler.
    pub(crate) index: usize,
    pub(crate) handler: Rc<H>,
    pub(crate) conns: Rc<ConnTracker>,
    pub(crate) shutdown: Shutdown,
}

impl<H, HF> AcceptLoop<H>
where
    H: Fn(monoio::net::TcpStream, SocketAddr, usize) -> HF + 'static,
    HF: Future<Output = ()> + 'static,
{
    /// Accepts until shutdown, then returns, dropping (closing) the listener.
    pub(crate) async fn run(self) {
        let AcceptLoop {
            shard,
            listener,
            addr,
            index,
            handler,
            conns,
            shutdown,
        } = self;
        let mut backoff = MIN_BACKOFF;
        loop {
            while conns.at_limit() {
                if let Some(held_back) = conns.limit_log.allow() {
                    tracing::warn!(
                        shard,
                        %addr,
                        open = conns.open(),
                        limit = conns.limit,
                        held_back,
                        "connection limit reached; new connections wait in the backlog"
                    );
                }
                if until_shutdown(&mut conns.closed.notified(), &shutdown)
                    .await
                    .is_none()
                {
                    return;
                }
            }

            let slot = AcceptSlot::new(&conns);
            let canceller = Canceller::new();
            let mut accept = pin!(listener.cancelable_accept(canceller.handle()));
            let result = match until_shutdown(&mut accept, &shutdown).await {
                Some(result) => result,
                None => {
                    // Cancel rather than drop: a dropped in-flight io_uring accept could still
                    // complete and leak the accepted descriptor. If it won the race, the stream
                    // is closed here.
                    let _ = canceller.cancel();
                    let _ = accept.await;
                    return;
                }
            };
            drop(slot);

            match result {
                Ok((stream, peer)) => {
                    backoff = MIN_BACKOFF;
                    if let Err(e) = stream.set_nodelay(true) {
                        // The peer may already have reset the connection; the handler will see it.
                        tracing::debug!(shard, %peer, "cannot set TCP_NODELAY: {e}");
                    }
                    let guard = ConnGuard::new(conns.clone());
                    monoio::spawn(Guarded {
                        conn: handler(stream, peer, index),
                        _guard: guard,
                    });
                }
                Err(e) if is_exhaustion(&e) => {
                    if let Some(held_back) = conns.exhausted_log.allow() {
                        tracing::warn!(
                            shard,
                            %addr,
                            open = conns.open(),
                            held_back,
                            "accept failed: {e}; pausing for {backoff:?} or until a connection closes"
                        );
                    }
                    let pause = either(conns.closed.notified(), monoio::time::sleep(backoff));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if until_shutdown(&mut pin!(pause), &shutdown).await.is_none() {
                        return;
                    }
                }
                Err(e) => {
                    // ECONNABORTED, EPROTO, EPERM (firewall) ...: about one connection, not us.
                    tracing::debug!(shard, %addr, "accept failed: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_errors_are_recognised() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_exhaustion(&io::Error::from_raw_os_error(code)));
        }
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    #[test]
    fn log_throttle_allows_one_line_per_interval_and_counts_the_rest() {
        let t = LogThrottle::default();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        t.last.set(Some(Instant::now() - LOG_INTERVAL));
        assert_eq!(t.allow(), Some(2));
    }

    #[test]
    fn guards_count_open_connections() {
        let tracker = Rc::new(ConnTracker::new(2));
        let a = ConnGuard::new(tracker.clone());
        let b = ConnGuard::new(tracker.clone());
        assert!(tracker.at_limit());
        drop(a);
        assert_eq!(tracker.open(), 1);
        assert!(!tracker.at_limit());
        drop(b);
        assert_eq!(tracker.open(), 0);
    }
}
