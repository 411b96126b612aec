//! Hooks: layers that act before and after the rest of the chain but never await.
//!
//! Most layers are of this shape: read or stamp the request, maybe answer early, then add to
//! the response (a request id, security headers, error pages, timing). Written as a
//! [`Middleware`](super::Middleware), each costs a boxed future (an allocation) and two moves of
//! the 152-byte response per request, ~150–250 instructions a layer before it does any work
//! (callgrind, pipelined `/plaintext`). A [`Hook`] is a plain pair of functions, and hooks
//! compose at compile time: a tuple of hooks (or `Option`s of hooks, for layers that
//! configuration turns off) is one hook, so a whole stack of them is one layer with one future.

use super::{Middleware, Next};
use crate::service::{Request, Response};

/// A layer in two halves: [`before`](Hook::before) on the way in, [`after`](Hook::after) on the
/// way out, with what the first half kept. Every `Hook` is a [`Middleware`].
///
/// In a tuple the first hook is the outermost, as in a layer list: `before`s run first to last,
/// `after`s last to first, and a hook that answers early still has its response passed through
/// the `after`s of the hooks outside it (as an onion's outer layers see an inner layer's answer).
// `result_large_err`: the `Err` is a whole response on purpose (an early answer is rare, and
// boxing it would allocate for no gain); the result never travels further than the caller.
#[allow(clippy::result_large_err)]
pub trait Hook: 'static {
    /// What `before` hands to `after` for one request.
    type Carry;
    /// Runs on the way in. `Err(response)` answers the request: the rest of the chain is skipped
    /// and this hook's own `after` does not run.
    fn before(&self, req: &mut Request) -> Result<Self::Carry, Response>;
    /// Runs on the way out, on the response of the rest of the chain.
    fn after(&self, carry: Self::Carry, res: &mut Response);
}

impl<H: Hook> Middleware for H {
    async fn handle(&self, mut req: Request, next: Next<'_>) -> Response {
        match self.before(&mut req) {
            Ok(carry) => {
                let mut res = next.run(req).await;
                self.after(carry, &mut res);
                res
            }
            Err(res) => res,
        }
    }
}

/// A hook that configuration may leave out: `None` passes everything through.
impl<H: Hook> Hook for Option<H> {
    type Carry = Option<H::Carry>;

    fn before(&self, req: &mut Request) -> Result<Self::Carry, Response> {
        match self {
            Some(hook) => hook.before(req).map(Some),
            None => Ok(None),
        }
    }

    fn after(&self, carry: Self::Carry, res: &mut Response) {
        if let (Some(hook), Some(carry)) = (self, carry) {
            hook.after(carry, res);
        }
    }
}

/// Tuples of hooks, outermost first. Each `before` that fails unwinds the `after`s of the hooks
/// before it (innermost of them first) onto its answer.
macro_rules! tuple_hook {
    ($($hook:ident $carry:ident),+) => {
        impl<$($hook: Hook),+> Hook for ($($hook,)+) {
            type Carry = ($($hook::Carry,)+);

            // `non_snake_case`: the hooks are bound to their type parameters' names; `unused_mut`:
            // the first hook's early answer has no outer `after` to pass through.
            #[allow(non_snake_case, unused_mut)]
            fn before(&self, req: &mut Request) -> Result<Self::Carry, Response> {
                let ($($hook,)+) = self;
                tuple_hook!(@before req; []; $($hook $carry),+)
            }

            #[allow(non_snake_case)]
            fn after(&self, carry: Self::Carry, res: &mut Response) {
                let ($($hook,)+) = self;
                let ($($carry,)+) = carry;
                tuple_hook!(@after res; $($hook $carry),+);
            }
        }
    };
    // `before`: run the next hook; on an early answer, run the `after`s of those already run
    // (listed in `$done`, outermost first) from the innermost out.
    (@before $req:ident; [$($done_hook:ident $done_carry:ident),*]; $hook:ident $carry:ident $(, $rest_hook:ident $rest_carry:ident)*) => {{
        let $carry = match $hook.before($req) {
            Ok(carry) => carry,
            Err(mut res) => {
                tuple_hook!(@after &mut res; $($done_hook $done_carry),*);
                return Err(res);
            }
        };
        tuple_hook!(@before $req; [$($done_hook $done_carry,)* $hook $carry]; $($rest_hook $rest_carry),*)
    }};
    (@before $req:ident; [$($done_hook:ident $done_carry:ident),*]; ) => {
        Ok(($($done_carry,)*))
    };
    // `after`, innermost first: recurse to the end of the list, then act on the way back.
    (@after $res:expr; ) => {};
    (@after $res:expr; $hook:ident $carry:ident $(, $rest_hook:ident $rest_carry:ident)*) => {
        tuple_hook!(@after $res; $($rest_hook $rest_carry),*);
        $hook.after($carry, $res);
    };
}

tuple_hook!(A a);
tuple_hook!(A a, B b);
tuple_hook!(A a, B b, C c);
tuple_hook!(A a, B b, C c, D d);
tuple_hook!(A a, B b, C c, D d, E e);
tuple_hook!(A a, B b, C c, D d, E e, F f);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers};
    use crate::response::IntoResponse;
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};
    use http::StatusCode;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Logs its halves; answers 403 on the way in when `deny`.
    struct Step {
        name: &'static str,
        deny: bool,
        log: Rc<RefCell<Vec<String>>>,
    }

    impl Hook for Step {
        type Carry = &'static str;
        fn before(&self, _req: &mut Request) -> Result<&'static str, Response> {
            self.log.borrow_mut().push(format!("{} before", self.name));
            if self.deny {
                return Err(StatusCode::FORBIDDEN.into_response());
            }
            Ok(self.name)
        }
        fn after(&self, carry: &'static str, res: &mut Response) {
            assert_eq!(carry, self.name, "each after gets its own before's carry");
            self.log.borrow_mut().push(format!("{} after", self.name));
            let value = format!("{}", res.headers().len());
            res.headers_mut()
                .append("x-seen", http::HeaderValue::from_str(&value).unwrap());
        }
    }

    struct Ok200;
    impl Endpoint for Ok200 {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            Box::pin(async { "ok".into_response() })
        }
    }

    fn step(name: &'static str, deny: bool, log: &Rc<RefCell<Vec<String>>>) -> Step {
        Step {
            name,
            deny,
            log: log.clone(),
        }
    }

    fn run(layer: impl DynMiddleware) -> Response {
        let layers: Layers = Rc::from(vec![Rc::new(layer) as Rc<dyn DynMiddleware>]);
        block_on(Next::new(&layers, &Ok200).run(request("GET / HTTP/1.1\r\n\r\n")))
    }

    #[test]
    fn a_tuple_runs_befores_in_order_and_afters_in_reverse() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let res = run((
            step("a", false, &log),
            step("b", false, &log),
            step("c", false, &log),
        ));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            *log.borrow(),
            ["a before", "b before", "c before", "c after", "b after", "a after"]
        );
        assert_eq!(res.headers().get_all("x-seen").iter().count(), 3);
    }

    #[test]
    fn an_early_answer_passes_through_the_outer_afters_only() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let res = run((
            step("a", false, &log),
            step("b", false, &log),
            step("deny", true, &log),
            step("never", false, &log),
        ));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            *log.borrow(),
            ["a before", "b before", "deny before", "b after", "a after"]
        );
    }

    #[test]
    fn the_first_hook_answering_skips_every_after() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let res = run((step("deny", true, &log), step("never", false, &log)));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(*log.borrow(), ["deny before"]);
    }

    #[test]
    fn none_passes_through_and_some_runs() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let res = run((None::<Step>, Some(step("b", false, &log)), None::<Step>));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(*log.borrow(), ["b before", "b after"]);
    }

    #[test]
    fn a_single_hook_is_a_layer_in_a_list() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let layers: Layers = Rc::from(vec![
            Rc::new(step("outer", false, &log)) as Rc<dyn DynMiddleware>,
            Rc::new(step("inner", true, &log)),
        ]);
        let res = block_on(Next::new(&layers, &Ok200).run(request("GET / HTTP/1.1\r\n\r\n")));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            *log.borrow(),
            ["outer before", "inner before", "outer after"]
        );
    }
}
