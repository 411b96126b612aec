//! Panics stop at the request (or job) that caused them: the connection and the shard carry on.
//!
//! Release builds keep unwinding on purpose (see Cargo.toml): a panicking handler unwinds to
//! here, becomes a 500, and is logged with its message. `AssertUnwindSafe` is sound in the sense
//! that matters: per-shard state is `RefCell`/`Cell`, whose borrows are released while unwinding;
//! a handler that leaves its own state half-updated is a bug the 500 and the log make visible.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic into `Err(its message)`.
pub fn catch_unwind_silent<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

pin_project_lite::pin_project! {
    /// A future that completes with `Err(panic message)` if polling its inner future panics.
    pub struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> CatchUnwind<F> {
    pub fn new(inner: F) -> Self {
        CatchUnwind { inner }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind_silent(|| inner.poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_future_becomes_an_error_with_its_message() {
        let fut = CatchUnwind::new(async { panic!("boom {}", 7) });
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        let out = fut.as_mut().poll(&mut Context::from_waker(waker));
        assert_eq!(out, Poll::Ready(Err::<(), _>("boom 7".to_owned())));
    }
}
