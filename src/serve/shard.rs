//! Per-shard server state: the `Date` cache, the coarse clock, the connection registry, the
//! buffer pool, and the shutdown flag. Plain `Cell`/`RefCell`: it never leaves its thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;

use super::registry::{ConnRegistry, ReadInterrupt};
use crate::config::ServeConfig;
use crate::http1::DateCache;

/// Size of a fresh read buffer: one read takes a whole wrk pipeline batch of 16 requests.
pub(crate) const READ_BUF_SIZE: usize = 8 * 1024;
/// Read buffers and write buffers kept for reuse per shard; more are freed.
const POOL_CAP: usize = 64;
/// A write buffer grown past this by one big response is not pooled.
const MAX_POOLED_WRITE_BUF: usize = 64 * 1024;

pub(crate) struct ShardCtx {
    pub(crate) shard_id: usize,
    pub(crate) config: ServeConfig,
    date: RefCell<DateCache>,
    /// Seconds since the shard started, advanced by the ticker: deadlines are in these ticks.
    ticks: Cell<u64>,
    pub(crate) conns: Rc<ConnRegistry>,
    read_pool: RefCell<Vec<BytesMut>>,
    write_pool: RefCell<Vec<Vec<u8>>>,
    shutting_down: Cell<bool>,
    /// The shard's shutdown signal, for connections that must act on it while busy (HTTP/2
    /// sends GOAWAY at once, whatever its streams are doing).
    pub(crate) shutdown: shards::Shutdown,
}

impl ShardCtx {
    pub(crate) fn new(
        shard_id: usize,
        config: ServeConfig,
        shutdown: shards::Shutdown,
        interrupt: ReadInterrupt,
    ) -> Self {
        ShardCtx {
            shard_id,
            config,
            date: RefCell::new(DateCache::new(SystemTime::now())),
            ticks: Cell::new(0),
            conns: Rc::new(ConnRegistry::new(interrupt)),
            read_pool: RefCell::new(Vec::new()),
            write_pool: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            shutdown,
        }
    }

    pub(crate) fn date(&self) -> std::cell::Ref<'_, DateCache> {
        self.date.borrow()
    }

    pub(crate) fn now(&self) -> u64 {
        self.ticks.get()
    }

    /// The tick by which a wait of `timeout` started now must end. Rounded up to whole ticks, so a
    /// timeout fires between `timeout` and `timeout + 1 s` after it was armed.
    pub(crate) fn deadline(&self, timeout: Duration) -> u64 {
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        self.now().saturating_add(secs).saturating_add(1)
    }

    /// Called once a second by the shard's ticker.
    pub(crate) fn tick(&self) {
        self.date.borrow_mut().update(SystemTime::now());
        let now = self.ticks.get() + 1;
        self.ticks.set(now);
        self.conns.sweep(now);
        if let Some(hook) = self.config.shard_tick_hook {
            hook();
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        self.conns.close_idle();
    }

    pub(crate) fn take_read_buf(&self) -> BytesMut {
        self.read_pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(READ_BUF_SIZE))
    }

    /// Returns a read buffer for reuse; it must hold no unread bytes.
    pub(crate) fn give_read_buf(&self, mut buf: BytesMut) {
        buf.clear();
        let mut pool = self.read_pool.borrow_mut();
        // Only buffers that still own a whole allocation of the usual size are worth keeping.
        if pool.len() < POOL_CAP && buf.capacity() >= READ_BUF_SIZE / 2 {
            pool.push(buf);
        }
    }

    pub(crate) fn take_write_buf(&self) -> Vec<u8> {
        self.write_pool.borrow_mut().pop().unwrap_or_default()
    }

    pub(crate) fn give_write_buf(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut pool = self.write_pool.borrow_mut();
        if pool.len() < POOL_CAP && buf.capacity() > 0 && buf.capacity() <= MAX_POOLED_WRITE_BUF {
            pool.push(buf);
        }
    }
}
