//! The application's view of its shard: which shard it is, values kept per shard
//! ([`ShardLocals`]), and the mesh to run work on another shard.
//!
//! Messages between shards are closures ([`Job`]) that run on the target shard's thread with that
//! shard's [`ShardLocals`], and send back a `Send` answer. So "ask shard 3 for the user with id 7"
//! is `shard.call(3, move |store: &UserStore| store.get(7))`: the closure and its answer cross
//! threads, the store never does. This is the only way state crosses shards.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::panic::catch_unwind_silent;

/// A future that stays on its shard.
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// An answer crossing back to the caller's shard.
pub type JobReply = Box<dyn Any + Send>;

/// What a [`Job`] does once it has run: answered already, or answers when the future ends.
pub enum JobOutcome {
    Ready(JobReply),
    Later(LocalBoxFuture<'static, JobReply>),
}

/// Work sent to a shard: runs there, on its thread, with its locals.
pub type Job = Box<dyn FnOnce(&ShardLocals) -> JobOutcome + Send>;

/// The mesh as the HTTP layer uses it.
pub(crate) type JobMesh = shards::Mesh<Job, JobReply>;

/// Why a message to another shard got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    #[error("no shard {0}")]
    UnknownShard(usize),
    #[error("shard {0} has stopped")]
    Gone(usize),
    #[error("the target shard dropped the request without answering (it panicked or stopped)")]
    NoReply,
    #[error("shard {shard} keeps no {type_name}")]
    NoSuchLocal {
        shard: usize,
        type_name: &'static str,
    },
}

/// Values kept once per shard, found by type: the app's state, the rate limiter's buckets, a
/// cache. Jobs from other shards reach them by type.
#[derive(Default)]
pub struct ShardLocals {
    values: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
}

impl ShardLocals {
    /// Keeps `value` as this shard's `T`, replacing any earlier one.
    pub fn insert<T: 'static>(&self, value: Rc<T>) {
        self.values.borrow_mut().insert(TypeId::of::<T>(), value);
    }

    /// This shard's `T`, if one was inserted.
    pub fn get<T: 'static>(&self) -> Option<Rc<T>> {
        let value = self.values.borrow().get(&TypeId::of::<T>())?.clone();
        value.downcast::<T>().ok()
    }

    /// This shard's `T`, inserting `make()` first if there is none.
    pub fn get_or_insert_with<T: 'static>(&self, make: impl FnOnce() -> T) -> Rc<T> {
        if let Some(value) = self.get::<T>() {
            return value;
        }
        let value = Rc::new(make());
        self.insert(value.clone());
        value
    }
}

struct Inner {
    id: usize,
    count: usize,
    mesh: Option<JobMesh>,
    locals: ShardLocals,
}

/// The shard an app runs on. Cheap to clone (one `Rc`); never leaves its thread.
#[derive(Clone)]
pub struct ShardHandle {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for ShardHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardHandle")
            .field("id", &self.inner.id)
            .field("count", &self.inner.count)
            .finish()
    }
}

impl ShardHandle {
    pub(crate) fn new(id: usize, count: usize, mesh: JobMesh) -> Self {
        ShardHandle {
            inner: Rc::new(Inner {
                id,
                count,
                mesh: Some(mesh),
                locals: ShardLocals::default(),
            }),
        }
    }

    /// A shard with no mesh, alone in its world: for unit tests of handlers and middleware.
    /// Calls to itself run inline; calls to any other shard fail with `UnknownShard`.
    pub fn standalone() -> Self {
        ShardHandle {
            inner: Rc::new(Inner {
                id: 0,
                count: 1,
                mesh: None,
                locals: ShardLocals::default(),
            }),
        }
    }

    /// This shard's index, `0..count()`.
    pub fn id(&self) -> usize {
        self.inner.id
    }

    /// How many shards the server runs.
    pub fn count(&self) -> usize {
        self.inner.count
    }

    pub fn locals(&self) -> &ShardLocals {
        &self.inner.locals
    }

    /// Runs `f` on shard `to` with that shard's `T` and returns its answer. `to` may be this
    /// shard (then `f` runs inline, with no message). The closure must not block.
    pub async fn call<T, R, F>(&self, to: usize, f: F) -> Result<R, MeshError>
    where
        T: 'static,
        R: Send + 'static,
        F: FnOnce(&T) -> R + Send + 'static,
    {
        if to == self.id() {
            return run_on(&self.inner.locals, self.id(), f);
        }
        let job: Job = Box::new(move |locals: &ShardLocals| {
            let answer = locals.get::<T>().map(|value| f(&value));
            JobOutcome::Ready(Box::new(answer))
        });
        let reply = self.send_job(to, job).await?;
        unpack::<R>(reply).ok_or(MeshError::NoSuchLocal {
            shard: to,
            type_name: std::any::type_name::<T>(),
        })
    }

    /// Like [`call`](Self::call), but `f` starts a future on the target shard (which may itself
    /// await I/O or other shards); its output is the answer.
    pub async fn call_async<T, R, F, Fut>(&self, to: usize, f: F) -> Result<R, MeshError>
    where
        T: 'static,
        R: Send + 'static,
        F: FnOnce(Rc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if to == self.id() {
            let value = self.local_or_err::<T>()?;
            return Ok(f(value).await);
        }
        let job: Job = Box::new(move |locals: &ShardLocals| match locals.get::<T>() {
            Some(value) => {
                let fut = f(value);
                JobOutcome::Later(Box::pin(
                    async move { Box::new(Some(fut.await)) as JobReply },
                ))
            }
            None => JobOutcome::Ready(Box::new(None::<R>)),
        });
        let reply = self.send_job(to, job).await?;
        unpack::<R>(reply).ok_or(MeshError::NoSuchLocal {
            shard: to,
            type_name: std::any::type_name::<T>(),
        })
    }

    /// Fire-and-forget: runs `f` on shard `to` with its `T` (nothing happens if it keeps none).
    /// Never waits: a full inbox is an error, so a request handler is never held up by a busy
    /// shard.
    pub fn send<T, F>(&self, to: usize, f: F) -> Result<(), MeshError>
    where
        T: 'static,
        F: FnOnce(&T) + Send + 'static,
    {
        if to == self.id() {
            if let Some(value) = self.inner.locals.get::<T>() {
                f(&value);
            }
            return Ok(());
        }
        let Some(mesh) = &self.inner.mesh else {
            return Err(MeshError::UnknownShard(to));
        };
        let job: Job = Box::new(move |locals: &ShardLocals| {
            if let Some(value) = locals.get::<T>() {
                f(&value);
            }
            JobOutcome::Ready(Box::new(()))
        });
        mesh.send(to, job).map_err(|err| mesh_error(to, err))
    }

    fn local_or_err<T: 'static>(&self) -> Result<Rc<T>, MeshError> {
        self.inner.locals.get::<T>().ok_or(MeshError::NoSuchLocal {
            shard: self.id(),
            type_name: std::any::type_name::<T>(),
        })
    }

    async fn send_job(&self, to: usize, job: Job) -> Result<JobReply, MeshError> {
        let Some(mesh) = &self.inner.mesh else {
            return Err(MeshError::UnknownShard(to));
        };
        mesh.call(to, job).await.map_err(|err| mesh_error(to, err))
    }
}

fn run_on<T: 'static, R>(
    locals: &ShardLocals,
    shard: usize,
    f: impl FnOnce(&T) -> R,
) -> Result<R, MeshError> {
    let value = locals.get::<T>().ok_or(MeshError::NoSuchLocal {
        shard,
        type_name: std::any::type_name::<T>(),
    })?;
    Ok(f(&value))
}

fn unpack<R: 'static>(reply: JobReply) -> Option<R> {
    match reply.downcast::<Option<R>>() {
        Ok(answer) => *answer,
        // Only `call`/`call_async` build these jobs, always answering `Option<R>`.
        Err(_) => None,
    }
}

fn mesh_error<M>(to: usize, err: shards::MeshError<M>) -> MeshError {
    match err {
        shards::MeshError::UnknownShard(_) => MeshError::UnknownShard(to),
        shards::MeshError::NoReply => MeshError::NoReply,
        // `Full` only comes from the non-waiting `send`; the caller sees the shard as busy-gone.
        _ => MeshError::Gone(to),
    }
}

/// Runs one job that arrived in this shard's inbox. A job that panics is logged and dropped
/// (its caller gets `NoReply`); the shard carries on.
pub(crate) fn run_job(locals: &ShardLocals, env: shards::Envelope<Job, JobReply>) {
    let shards::Envelope { from, msg, reply } = env;
    match catch_unwind_silent(|| msg(locals)) {
        Ok(JobOutcome::Ready(answer)) => {
            if let Some(reply) = reply {
                reply.send(answer);
            }
        }
        Ok(JobOutcome::Later(fut)) => {
            monoio::spawn(async move {
                if let Ok(answer) = crate::panic::CatchUnwind::new(fut).await {
                    if let Some(reply) = reply {
                        reply.send(answer);
                    }
                } else {
                    tracing::error!(from, "a job sent by another shard panicked");
                }
            });
        }
        Err(panic) => tracing::error!(from, panic = %panic, "a job sent by another shard panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn locals_are_found_by_type() {
        let locals = ShardLocals::default();
        assert!(locals.get::<Cell<u32>>().is_none());
        locals.insert(Rc::new(Cell::new(7u32)));
        assert_eq!(locals.get::<Cell<u32>>().unwrap().get(), 7);
        let again = locals.get_or_insert_with(|| Cell::new(1u32));
        assert_eq!(again.get(), 7);
    }

    #[test]
    fn a_call_to_this_shard_runs_inline() {
        let shard = ShardHandle::standalone();
        shard.locals().insert(Rc::new(Cell::new(41u32)));
        let answer = futures_lite_block_on(shard.call(0, |c: &Cell<u32>| c.get() + 1));
        assert_eq!(answer, Ok(42));
        let missing = futures_lite_block_on(shard.call(0, |_: &String| ()));
        assert!(matches!(missing, Err(MeshError::NoSuchLocal { .. })));
        let other = futures_lite_block_on(shard.call(1, |c: &Cell<u32>| c.get()));
        assert_eq!(other, Err(MeshError::UnknownShard(1)));
    }

    /// These futures complete without waiting for anything, so polling once is enough.
    fn futures_lite_block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        match fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("future was not ready"),
        }
    }
}
