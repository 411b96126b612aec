//! Handlers: async functions or closures `(Request, Ctx<S>) -> impl IntoResponse`.
//!
//! They run on their shard and never leave it, so neither they nor their futures need be `Send`.
//! Each is stored behind a pointer; a call costs one boxed future, which also catches a panic
//! (see [`crate::panic`]) so that it ends only its own request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::context::Ctx;
use crate::error::Error;
use crate::middleware::RequestId;
use crate::panic::catch_unwind_silent;
use crate::response::IntoResponse;
use crate::service::{Request, Response};
use crate::shard::LocalBoxFuture;

/// Something that answers a request. Implemented for every
/// `Fn(Request, Ctx<S>) -> impl Future<Output = impl IntoResponse>`.
pub trait Handler<S>: 'static {
    fn call(&self, req: Request, cx: Ctx<S>) -> LocalBoxFuture<'static, Response>;
}

impl<S, F, Fut, R> Handler<S> for F
where
    F: Fn(Request, Ctx<S>) -> Fut + 'static,
    Fut: Future<Output = R> + 'static,
    R: IntoResponse,
{
    fn call(&self, req: Request, cx: Ctx<S>) -> LocalBoxFuture<'static, Response> {
        // Kept before the call: the request moves into the handler, the id is for the log.
        let request_id = req.request_id.clone();
        let method = req.method().clone();
        // A panic while *creating* the future (a closure's synchronous part) is caught by the
        // app around the whole chain; one while polling it, here, with the request id.
        Box::pin(HandlerFuture {
            fut: self(req, cx),
            request_id,
            method,
        })
    }
}

pin_project_lite::pin_project! {
    /// A handler's future, turned into a response and shielded from its panics. One struct
    /// rather than nested async blocks: every layer of nesting copied the whole future once more.
    struct HandlerFuture<Fut> {
        #[pin]
        fut: Fut,
        request_id: Option<RequestId>,
        method: http::Method,
    }
}

impl<Fut, R> Future for HandlerFuture<Fut>
where
    Fut: Future<Output = R>,
    R: IntoResponse,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        let fut = this.fut;
        match catch_unwind_silent(|| fut.poll(cx)) {
            Ok(Poll::Ready(answer)) => Poll::Ready(answer.into_response()),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(panicked(panic, this.request_id.take(), this.method.clone())),
        }
    }
}

fn panicked(panic: String, request_id: Option<RequestId>, method: http::Method) -> Response {
    tracing::error!(
        request_id = request_id.as_ref().map(RequestId::as_str),
        %method,
        panic = %panic,
        "handler panicked; answered 500"
    );
    Error::panic_response(panic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::PathParams;
    use crate::error::ErrorInfo;
    use crate::shard::ShardHandle;
    use crate::testing::{block_on, request};
    use http::StatusCode;
    use std::rc::Rc;

    fn cx() -> Ctx<()> {
        Ctx::new(
            PathParams::default(),
            Rc::new(()),
            ShardHandle::standalone(),
        )
    }

    #[test]
    fn an_async_fn_is_a_handler() {
        async fn hello(_req: Request, _cx: Ctx) -> &'static str {
            "hello"
        }
        let res = block_on(Handler::call(
            &hello,
            request("GET / HTTP/1.1\r\n\r\n"),
            cx(),
        ));
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[test]
    fn a_panic_in_the_future_is_a_500_for_that_request() {
        let h = |_req: Request, _cx: Ctx| async move {
            if true {
                panic!("handler bug");
            }
            "unreachable"
        };
        let res = block_on(Handler::call(&h, request("GET / HTTP/1.1\r\n\r\n"), cx()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let info = res.extensions().get::<ErrorInfo>().unwrap();
        assert!(info.panicked);
        assert_eq!(info.cause.as_deref(), Some("handler bug"));
    }
}
