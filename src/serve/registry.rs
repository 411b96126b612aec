//! The shard's table of open connections, and the once-a-second sweep over it.
//!
//! Timeouts, parking and shutdown all work the same way: each connection arms its slot with a
//! deadline (in shard ticks) before it waits on the socket, and the sweep interrupts the waiting
//! operation of every slot whose deadline has passed. One sweep a second costs far less than a
//! timer per read. How a wait is interrupted depends on what it is ([`ReadInterrupt`]):
//! - a plain-TCP read on io_uring goes through monoio's `Canceller`: cancelled, it completes with
//!   its buffer, or with the bytes that raced in, so nothing read is lost. The price is a
//!   hash-set insert and remove per read (about 800 instructions);
//! - the same read on epoll has read nothing until it completes (the syscall runs inside the
//!   poll that returns its result), so it is simply dropped, and costs nothing extra;
//! - everything else (writes, TLS, HTTP/2, poll-based I/O) is woken and drops its future.
//!
//! Ways around the `Canceller` on io_uring that were tried and not kept (commit 12959d1;
//! bench/RESULTS.md, "Session 6"): `IORING_REGISTER_SYNC_CANCEL` by descriptor makes the kernel
//! walk every pending request per call, so parking 10,000 idle connections stalled the shard for
//! seconds; by opcode it is one walk, but it also cancels receives that application code on the
//! shard has in flight on the same ring.
//!
//! Because a cancelled read can give its buffer back, a connection can also be *parked*: an idle
//! keep-alive connection's read is interrupted after a second, it hands its buffers back to the
//! shard's pool, and waits for readability with no buffer. That is what keeps an idle connection's
//! memory small (see ARCHITECTURE.md, "Idle connections").

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use monoio::io::{CancelHandle, Canceller};

/// Tick value meaning "no deadline".
const NEVER: u64 = u64::MAX;

/// Why the sweep cancelled a connection's pending operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelReason {
    /// The armed deadline passed.
    Timeout,
    /// Idle for a full tick: release the buffers and wait small.
    Park,
    /// The shard is shutting down and this connection was idle.
    Shutdown,
}

/// What a connection is waiting for, as far as the sweep is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not waiting on the socket (running the app, or between steps).
    Busy,
    /// Waiting for the first byte of a next request with nothing buffered: may be parked or closed
    /// at shutdown.
    Idle { since: u64 },
    /// Already parked: only the deadline or shutdown applies.
    Parked,
    /// Waiting for the rest of a request, or for the peer to take a response.
    InRequest,
}

/// How the sweep interrupts a plain-TCP read on this shard (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadInterrupt {
    /// io_uring: monoio's `Canceller`.
    Cancel,
    /// epoll: the read is dropped.
    Drop,
}

/// The slot's side of [`ReadInterrupt`].
enum SlotInterrupt {
    /// Made by the first read after each cancel, not by the cancel itself: a parked connection
    /// has no read to cancel, and a canceller is an allocation of its own (about 80 bytes).
    Cancel(RefCell<Option<Canceller>>),
    Drop,
}

/// One connection's entry. Shared between the connection task and the sweep (`Rc`, one thread).
pub(crate) struct ConnSlot {
    interrupt: SlotInterrupt,
    deadline: Cell<u64>,
    wait: Cell<Wait>,
    reason: Cell<Option<CancelReason>>,
    /// The connection task's waker, for operations that are interrupted by dropping them rather
    /// than through the canceller (writes, poll-based I/O, reads on epoll). A task's waker does
    /// not change, so this is set once.
    waker: RefCell<Option<Waker>>,
}

impl ConnSlot {
    fn new(interrupt: ReadInterrupt) -> Self {
        ConnSlot {
            interrupt: match interrupt {
                ReadInterrupt::Cancel => SlotInterrupt::Cancel(RefCell::new(None)),
                ReadInterrupt::Drop => SlotInterrupt::Drop,
            },
            deadline: Cell::new(NEVER),
            wait: Cell::new(Wait::Busy),
            reason: Cell::new(None),
            waker: RefCell::new(None),
        }
    }

    /// Registers the connection task to be woken when the sweep interrupts this slot.
    pub(crate) fn watch(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// Whether the sweep has interrupted the current wait (the reason stays for `take_reason`).
    pub(crate) fn interrupted(&self) -> bool {
        self.reason.get().is_some()
    }

    /// The handle for the next plain-TCP read, or `None` when such a read is interrupted by
    /// dropping it (`Transport::read`).
    pub(crate) fn read_handle(&self) -> Option<CancelHandle> {
        match &self.interrupt {
            SlotInterrupt::Cancel(canceller) => Some(
                canceller
                    .borrow_mut()
                    .get_or_insert_with(Canceller::new)
                    .handle(),
            ),
            SlotInterrupt::Drop => None,
        }
    }

    /// Runs `fut` until it completes or the sweep interrupts this slot (then `None`, and
    /// `take_reason` says why). For waits that are cancelled by dropping them (poll-based I/O,
    /// writes, reads on epoll).
    pub(crate) async fn interruptible<F: Future>(&self, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        poll_fn(|cx| self.poll_interruptible(cx, fut.as_mut())).await
    }

    /// One poll of [`interruptible`](Self::interruptible), for a caller that pins `fut` in its
    /// own state (passing a future into an `async fn` stores it twice in the caller's).
    pub(crate) fn poll_interruptible<F: Future>(
        &self,
        cx: &mut Context<'_>,
        fut: Pin<&mut F>,
    ) -> Poll<Option<F::Output>> {
        if self.interrupted() {
            return Poll::Ready(None);
        }
        self.watch(cx.waker());
        fut.poll(cx).map(Some)
    }

    /// About to wait for a next request with nothing buffered.
    pub(crate) fn arm_idle(&self, now: u64, deadline: u64) {
        self.deadline.set(deadline);
        let wait = match self.wait.get() {
            Wait::Parked => Wait::Parked,
            _ => Wait::Idle { since: now },
        };
        self.wait.set(wait);
    }

    /// Parked: waiting small, still bounded by the idle deadline.
    pub(crate) fn mark_parked(&self) {
        self.wait.set(Wait::Parked);
    }

    /// About to wait on the socket in the middle of a request or response.
    pub(crate) fn arm_in_request(&self, deadline: u64) {
        self.deadline.set(deadline);
        self.wait.set(Wait::InRequest);
    }

    /// Back from the socket: no deadline while the connection works.
    pub(crate) fn disarm(&self) {
        self.deadline.set(NEVER);
        self.wait.set(Wait::Busy);
    }

    /// The reason of a cancellation that hit this slot, if any (cleared by reading it).
    pub(crate) fn take_reason(&self) -> Option<CancelReason> {
        self.reason.take()
    }

    fn cancel(&self, reason: CancelReason) {
        self.reason.set(Some(reason));
        if let SlotInterrupt::Cancel(canceller) = &self.interrupt {
            // Taken out first: cancelling runs driver code, not under the borrow. `cancel` fails
            // the operations using handles of this canceller; the fresh one it returns is
            // dropped, and the next read makes its own.
            let old = canceller.borrow_mut().take();
            if let Some(old) = old {
                drop(old.cancel());
            }
        }
        if let Some(waker) = self.waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// The open connections of one shard.
pub(crate) struct ConnRegistry {
    slots: RefCell<slab::Slab<Rc<ConnSlot>>>,
    interrupt: ReadInterrupt,
}

/// Removes the connection from the registry when the connection task ends, however it ends.
/// It owns its share of the registry (rather than borrowing it) so that a connection can own its
/// guard with the rest of its state, built before its task starts (`serve::h1::serve_h1`).
pub(crate) struct SlotGuard {
    registry: Rc<ConnRegistry>,
    key: usize,
    slot: Rc<ConnSlot>,
}

impl std::ops::Deref for SlotGuard {
    type Target = ConnSlot;
    fn deref(&self) -> &ConnSlot {
        &self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.registry.slots.borrow_mut().try_remove(self.key);
    }
}

impl ConnRegistry {
    pub(crate) fn new(interrupt: ReadInterrupt) -> Self {
        ConnRegistry {
            slots: RefCell::default(),
            interrupt,
        }
    }

    pub(crate) fn register(self: &Rc<Self>) -> SlotGuard {
        let slot = Rc::new(ConnSlot::new(self.interrupt));
        let key = self.slots.borrow_mut().insert(slot.clone());
        SlotGuard {
            registry: self.clone(),
            key,
            slot,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// The once-a-tick pass: time out what is overdue, park what has idled for a full tick.
    pub(crate) fn sweep(&self, now: u64) {
        // Collect first: cancelling can run driver code, and must not happen under the borrow.
        let due: Vec<(Rc<ConnSlot>, CancelReason)> = self
            .slots
            .borrow()
            .iter()
            .filter_map(|(_, slot)| {
                if now >= slot.deadline.get() {
                    return Some((slot.clone(), CancelReason::Timeout));
                }
                match slot.wait.get() {
                    // `since + 1 < now`: idle through at least one whole tick, so connections
                    // between two requests of a busy client are never parked.
                    Wait::Idle { since } if since + 1 < now => {
                        Some((slot.clone(), CancelReason::Park))
                    }
                    _ => None,
                }
            })
            .collect();
        for (slot, reason) in due {
            slot.cancel(reason);
        }
    }

    /// Shutdown: close every connection that is waiting for a next request. The others see the
    /// shard's shutdown flag and close after their current response.
    pub(crate) fn close_idle(&self) {
        let idle: Vec<Rc<ConnSlot>> = self
            .slots
            .borrow()
            .iter()
            .filter(|(_, slot)| matches!(slot.wait.get(), Wait::Idle { .. } | Wait::Parked))
            .map(|(_, slot)| slot.clone())
            .collect();
        for slot in idle {
            slot.cancel(CancelReason::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_times_out_overdue_slots_only() {
        let reg = Rc::new(ConnRegistry::new(ReadInterrupt::Drop));
        let a = reg.register();
        let b = reg.register();
        a.arm_in_request(5);
        b.arm_in_request(10);
        reg.sweep(5);
        assert_eq!(a.take_reason(), Some(CancelReason::Timeout));
        assert_eq!(b.take_reason(), None);
    }

    #[test]
    fn idle_slot_is_parked_after_a_full_tick() {
        let reg = Rc::new(ConnRegistry::new(ReadInterrupt::Drop));
        let a = reg.register();
        a.arm_idle(3, 100);
        reg.sweep(4);
        assert_eq!(a.take_reason(), None, "idle for less than a whole tick");
        reg.sweep(5);
        assert_eq!(a.take_reason(), Some(CancelReason::Park));
        a.mark_parked();
        reg.sweep(9);
        assert_eq!(a.take_reason(), None, "a parked slot is not parked again");
    }

    #[test]
    fn busy_slot_is_never_cancelled() {
        let reg = Rc::new(ConnRegistry::new(ReadInterrupt::Drop));
        let a = reg.register();
        a.arm_in_request(2);
        a.disarm();
        reg.sweep(1000);
        reg.close_idle();
        assert_eq!(a.take_reason(), None);
    }

    #[test]
    fn close_idle_hits_idle_and_parked_slots() {
        let reg = Rc::new(ConnRegistry::new(ReadInterrupt::Drop));
        let a = reg.register();
        let b = reg.register();
        let c = reg.register();
        a.arm_idle(1, 100);
        b.arm_idle(1, 100);
        b.mark_parked();
        c.arm_in_request(100);
        reg.close_idle();
        assert_eq!(a.take_reason(), Some(CancelReason::Shutdown));
        assert_eq!(b.take_reason(), Some(CancelReason::Shutdown));
        assert_eq!(c.take_reason(), None);
    }

    /// A cancel leaves the slot without a canceller (a parked connection does not keep one); the
    /// next read makes one. (That the cancel fails the pending read is monoio's part, covered by
    /// the timeout and parking tests in tests/ on io_uring.)
    #[test]
    fn cancel_keeps_no_canceller_until_the_next_read() {
        fn holds_canceller(slot: &ConnSlot) -> bool {
            match &slot.interrupt {
                SlotInterrupt::Cancel(canceller) => canceller.borrow().is_some(),
                SlotInterrupt::Drop => panic!("an io_uring slot"),
            }
        }
        let reg = Rc::new(ConnRegistry::new(ReadInterrupt::Cancel));
        let a = reg.register();
        assert!(a.read_handle().is_some());
        assert!(holds_canceller(&a));
        a.arm_idle(1, 100);
        reg.sweep(3);
        assert_eq!(a.take_reason(), Some(CancelReason::Park));
        assert!(!holds_canceller(&a));
        assert!(a.read_handle().is_some());
        assert!(holds_canceller(&a));
    }

    #[test]
    fn guard_removes_slot() {
        let reg = Rc::new(ConnRegistry::new(ReadInterrupt::Drop));
        {
            let _a = reg.register();
            assert_eq!(reg.len(), 1);
        }
        assert_eq!(reg.len(), 0);
    }
}
