//! `LocalNotify`: wake every task of one shard that waits for an event (a connection slot freed,
//! shutdown fired). Single-threaded on purpose (`Cell`/`RefCell`, no atomics): both events are
//! raised inside the shard. It owns nothing but the waiter slots.
//!
//! Why not a flume channel per waiter: flume removes a dropped waiter with a linear scan under a
//! mutex, and every idle keep-alive connection waits on shutdown, so closing 10k connections would
//! cost 10k² steps. Here a waiter owns a slot index and frees it in O(1).

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

#[derive(Default)]
pub(crate) struct LocalNotify {
    /// Bumped by every `notify_all`; a waiter created before the bump is done.
    epoch: Cell<u64>,
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl LocalNotify {
    /// A future that completes at the first `notify_all` after this call.
    pub(crate) fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            epoch: self.epoch.get(),
            slot: None,
        }
    }

    pub(crate) fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        // Take the wakers out first: waking may run nothing now (monoio queues the task), but a
        // waker's drop must not re-enter the RefCell while we hold it.
        let wakers: Vec<Waker> = {
            let mut slots = self.slots.borrow_mut();
            slots.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    #[cfg(test)]
    fn registered(&self) -> usize {
        let slots = self.slots.borrow();
        slots.wakers.len() - slots.free.len()
    }
}

pub(crate) struct Notified<'a> {
    notify: &'a LocalNotify,
    epoch: u64,
    slot: Option<usize>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.notify.epoch.get() != this.epoch {
            return Poll::Ready(());
        }
        let mut slots = this.notify.slots.borrow_mut();
        match this.slot {
            Some(i) => slots.wakers[i] = Some(cx.waker().clone()),
            None => {
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.wakers[i] = Some(cx.waker().clone());
                        i
                    }
                    None => {
                        slots.wakers.push(Some(cx.waker().clone()));
                        slots.wakers.len() - 1
                    }
                };
                this.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            let mut slots = self.notify.slots.borrow_mut();
            slots.wakers[i] = None;
            slots.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        task::Wake,
    };

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn notify_all_wakes_every_waiter_and_completes_them() {
        let n = LocalNotify::default();
        let count = Arc::new(CountWake(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut a = Box::pin(n.notified());
        let mut b = Box::pin(n.notified());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        n.notify_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(b.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn dropped_waiters_free_their_slot() {
        let n = LocalNotify::default();
        let waker = Waker::from(Arc::new(CountWake(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut f = Box::pin(n.notified());
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(n.registered(), 0);
        assert_eq!(n.slots.borrow().wakers.len(), 1, "slots are reused");
    }
}
