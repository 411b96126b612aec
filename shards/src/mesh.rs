//! The mesh: every shard can send a message to every shard (itself included) and, with `call`,
//! await a reply. It owns the inboxes and the reply channels, not what the messages mean.
//!
//! One bounded flume channel per shard (its inbox), all built before the threads start, so any
//! shard can reach any other from its first instruction. Flume's async side wakes a monoio
//! runtime from another thread (monoio's `sync` feature); the reply of a `call` travels on a
//! `futures_channel::oneshot`.
//!
//! Capacity: [`INBOX_CAPACITY`] envelopes per inbox. When an inbox is full, [`Mesh::send`]
//! (fire-and-forget, not async) returns [`MeshError::Full`] with the message, while
//! [`Mesh::call`] and [`Mesh::send_async`] wait for space. A shard that handles its inbox by
//! `call`ing a shard that is `call`ing it back, with both inboxes full, deadlocks: handle inbox
//! messages without awaiting other shards, or spawn a task per message.
//!
//! A shard whose `shard_main` has returned is *closed*: its inbox is drained (pending `call`s get
//! [`MeshError::NoReply`]) and later sends fail with [`MeshError::Gone`]. This is done with an
//! explicit flag rather than by dropping the receiver, because a monoio task that was waiting on
//! the inbox when its runtime ended is never dropped, and would keep the channel open forever.

use std::{
    fmt,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use futures_channel::oneshot;

use crate::ShardId;

/// Envelopes an inbox holds before `send` reports `Full` and `call` waits.
pub const INBOX_CAPACITY: usize = 1024;

/// A message as it arrives: who sent it, the message, and where to answer if it came by `call`.
pub struct Envelope<M, R> {
    pub from: ShardId,
    pub msg: M,
    pub reply: Option<Reply<R>>,
}

impl<M: fmt::Debug, R> fmt::Debug for Envelope<M, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("from", &self.from)
            .field("msg", &self.msg)
            .field("wants_reply", &self.reply.is_some())
            .finish()
    }
}

/// The answer slot of a `call`. Dropping it without `send` makes the caller see `NoReply`.
pub struct Reply<R> {
    tx: oneshot::Sender<R>,
}

impl<R> Reply<R> {
    /// Answers the call. If the caller has gone away meanwhile, the reply is dropped.
    pub fn send(self, r: R) {
        let _ = self.tx.send(r);
    }
}

/// Why a message did not get through. Carries the message back whenever it was not delivered.
#[derive(thiserror::Error)]
pub enum MeshError<M> {
    /// The target's inbox is full (only from the non-waiting `send`).
    #[error("the target shard's inbox is full")]
    Full(M),
    /// The target shard has ended.
    #[error("the target shard has ended")]
    Gone(M),
    /// No shard has this id.
    #[error("no such shard")]
    UnknownShard(M),
    /// The call was delivered but the target dropped the `Reply` (or ended) without answering.
    #[error("the target shard did not reply")]
    NoReply,
}

impl<M> fmt::Debug for MeshError<M> {
    // Hand-written so that `M` need not be `Debug` (the message is often a closure or a handle).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MeshError::Full(_) => "Full(..)",
            MeshError::Gone(_) => "Gone(..)",
            MeshError::UnknownShard(_) => "UnknownShard(..)",
            MeshError::NoReply => "NoReply",
        })
    }
}

impl<M> MeshError<M> {
    /// The undelivered message, if the error carries it.
    pub fn into_msg(self) -> Option<M> {
        match self {
            MeshError::Full(m) | MeshError::Gone(m) | MeshError::UnknownShard(m) => Some(m),
            MeshError::NoReply => None,
        }
    }
}

/// One shard's inbox as every shard sees it. Receiver clones are kept by all shards so any of them
/// can drain a closed inbox (see module docs).
struct Mailbox<M, R> {
    tx: flume::Sender<Envelope<M, R>>,
    rx: flume::Receiver<Envelope<M, R>>,
    open: Arc<AtomicBool>,
}

impl<M, R> Clone for Mailbox<M, R> {
    fn clone(&self) -> Self {
        Mailbox {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            open: self.open.clone(),
        }
    }
}

impl<M, R> Mailbox<M, R> {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Drops every queued envelope: their `Reply`s go with them, so callers see `NoReply`.
    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

/// All inboxes, built in the starting thread and split per shard.
pub(crate) struct MeshParts<M, R> {
    boxes: Vec<Mailbox<M, R>>,
}

impl<M, R> MeshParts<M, R> {
    pub(crate) fn new(shards: usize) -> Self {
        let boxes = (0..shards)
            .map(|_| {
                let (tx, rx) = flume::bounded(INBOX_CAPACITY);
                Mailbox {
                    tx,
                    rx,
                    open: Arc::new(AtomicBool::new(true)),
                }
            })
            .collect();
        MeshParts { boxes }
    }

    /// What shard `me` takes into its thread.
    pub(crate) fn for_shard(&self, me: ShardId) -> ShardMesh<M, R> {
        ShardMesh {
            me,
            boxes: self.boxes.clone(),
        }
    }
}

/// The `Send` form of a shard's mesh, moved into its thread and turned into `Mesh` + `Inbox`.
pub(crate) struct ShardMesh<M, R> {
    me: ShardId,
    boxes: Vec<Mailbox<M, R>>,
}

impl<M, R> ShardMesh<M, R> {
    pub(crate) fn split(self) -> (Mesh<M, R>, Inbox<M, R>, InboxCloser<M, R>) {
        let own = self.boxes[self.me].clone();
        let inbox = Inbox {
            mailbox: own.clone(),
        };
        let closer = InboxCloser { mailbox: own };
        let mesh = Mesh {
            inner: Rc::new(MeshInner {
                me: self.me,
                boxes: self.boxes,
            }),
        };
        (mesh, inbox, closer)
    }
}

/// Closes a shard's inbox when dropped: at the end of its thread, panics included.
pub(crate) struct InboxCloser<M, R> {
    mailbox: Mailbox<M, R>,
}

impl<M, R> Drop for InboxCloser<M, R> {
    fn drop(&mut self) {
        // Flag first, then drain: a sender that enqueues after our drain re-reads the flag after
        // its send and drains itself (SeqCst orders the flag store before our last `try_recv`).
        self.mailbox.open.store(false, Ordering::SeqCst);
        self.mailbox.drain();
    }
}

/// A handle to the mesh from one shard. Cheap to clone; stays on the shard's thread.
pub struct Mesh<M, R> {
    inner: Rc<MeshInner<M, R>>,
}

impl<M, R> Clone for Mesh<M, R> {
    fn clone(&self) -> Self {
        Mesh {
            inner: self.inner.clone(),
        }
    }
}

struct MeshInner<M, R> {
    me: ShardId,
    boxes: Vec<Mailbox<M, R>>,
}

impl<M, R> Mesh<M, R> {
    /// This shard's id.
    pub fn me(&self) -> ShardId {
        self.inner.me
    }

    /// How many shards there are (ids `0..shards()`).
    pub fn shards(&self) -> usize {
        self.inner.boxes.len()
    }

    fn mailbox(&self, to: ShardId) -> Option<&Mailbox<M, R>> {
        self.inner.boxes.get(to)
    }

    fn envelope(&self, msg: M, reply: Option<Reply<R>>) -> Envelope<M, R> {
        Envelope {
            from: self.inner.me,
            msg,
            reply,
        }
    }

    /// Fire-and-forget. Never waits: a full inbox gives `Full(msg)` back. A message that races
    /// with the target's end may be dropped silently.
    pub fn send(&self, to: ShardId, msg: M) -> Result<(), MeshError<M>> {
        let Some(mb) = self.mailbox(to) else {
            return Err(MeshError::UnknownShard(msg));
        };
        if !mb.is_open() {
            return Err(MeshError::Gone(msg));
        }
        match mb.tx.try_send(self.envelope(msg, None)) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(env)) => return Err(MeshError::Full(env.msg)),
            Err(flume::TrySendError::Disconnected(env)) => return Err(MeshError::Gone(env.msg)),
        }
        if !mb.is_open() {
            mb.drain();
        }
        Ok(())
    }

    /// Like `send`, but waits for space in the target's inbox instead of returning `Full`.
    pub async fn send_async(&self, to: ShardId, msg: M) -> Result<(), MeshError<M>> {
        let Some(mb) = self.mailbox(to) else {
            return Err(MeshError::UnknownShard(msg));
        };
        if !mb.is_open() {
            return Err(MeshError::Gone(msg));
        }
        if let Err(flume::SendError(env)) = mb.tx.send_async(self.envelope(msg, None)).await {
            return Err(MeshError::Gone(env.msg));
        }
        if !mb.is_open() {
            mb.drain();
        }
        Ok(())
    }

    /// Request/reply: delivers `msg` (waiting for inbox space) and awaits the answer. A shard may
    /// call itself, as long as another task of it reads the inbox meanwhile.
    pub async fn call(&self, to: ShardId, msg: M) -> Result<R, MeshError<M>> {
        let Some(mb) = self.mailbox(to) else {
            return Err(MeshError::UnknownShard(msg));
        };
        if !mb.is_open() {
            return Err(MeshError::Gone(msg));
        }
        let (tx, rx) = oneshot::channel();
        let env = self.envelope(msg, Some(Reply { tx }));
        if let Err(flume::SendError(env)) = mb.tx.send_async(env).await {
            return Err(MeshError::Gone(env.msg));
        }
        if !mb.is_open() {
            mb.drain();
        }
        rx.await.map_err(|_canceled| MeshError::NoReply)
    }
}

/// This shard's incoming messages. Taken once from the `Shard`.
pub struct Inbox<M, R> {
    mailbox: Mailbox<M, R>,
}

impl<M, R> Inbox<M, R> {
    /// The next message. Every shard holds a sender to every inbox, so this does not return `None`
    /// while the shard runs: race it against `Shutdown::triggered` (or run it in a task that ends
    /// with the shard) to stop. `None` once the inbox is closed.
    pub async fn recv(&mut self) -> Option<Envelope<M, R>> {
        if !self.mailbox.is_open() {
            return None;
        }
        self.mailbox.rx.recv_async().await.ok()
    }

    /// A message if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Envelope<M, R>> {
        if !self.mailbox.is_open() {
            return None;
        }
        self.mailbox.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_to_unknown_shard_returns_the_message() {
        let parts = MeshParts::<u32, ()>::new(2);
        let (mesh, _inbox, _closer) = parts.for_shard(0).split();
        match mesh.send(5, 7) {
            Err(MeshError::UnknownShard(7)) => {}
            other => panic!("expected UnknownShard(7), got {other:?}"),
        }
    }

    #[test]
    fn send_to_full_inbox_returns_full_with_the_message() {
        let parts = MeshParts::<usize, ()>::new(2);
        let (mesh, _inbox, _closer) = parts.for_shard(0).split();
        for i in 0..INBOX_CAPACITY {
            assert!(mesh.send(1, i).is_ok());
        }
        match mesh.send(1, 99) {
            Err(MeshError::Full(99)) => {}
            other => panic!("expected Full(99), got {other:?}"),
        }
    }

    #[test]
    fn closed_shard_is_gone_and_its_queue_is_drained() {
        let parts = MeshParts::<u32, u32>::new(2);
        let (mesh0, _inbox0, _closer0) = parts.for_shard(0).split();
        let (_mesh1, mut inbox1, closer1) = parts.for_shard(1).split();
        assert!(mesh0.send(1, 1).is_ok());
        drop(closer1);
        assert!(inbox1.try_recv().is_none());
        assert!(matches!(mesh0.send(1, 2), Err(MeshError::Gone(2))));
    }
}
