//! Hooks: how an observer above the device core (the sanitizer's race
//! tracker) learns what the core does, without the core naming it.
//!
//! The core calls the functions of this module at the points an observer
//! needs (a task that touches memory queued, a synchronous host access,
//! a free, an event recorded or waited for on a stream, an event reset, a
//! stream or event synchronised by the host, blocks released by a device
//! reset, a stream gone, the runtime finalised);
//! each forwards to the [`Observer`] installed with [`install`], or does
//! only the core's own part when none is installed. The observer is a
//! `&'static dyn Observer` in a `OnceLock`: one atomic load per hook, no
//! allocation, and hooks run only at those points, never per memory
//! access.
//!
//! The "around" hooks ([`queue`], [`record_event`], [`wait_event`],
//! [`synchronize`])
//! hand the observer the core's own step as a closure, so that the
//! observer can order its bookkeeping with that step (the race tracker
//! queues an event record under its lock, so that no task of the stream
//! slips in between). The closure is the core's code: the observer runs it
//! exactly once and never calls into the core otherwise from a hook.
//!
//! Layer: part of the device core, above `error` only; it names no other
//! core module (streams and events are named by their ids), so every core
//! module may call it.
//!
//! Invariants: at most one observer is ever installed (the first one
//! wins); every hook runs the core's step exactly once, observer or not.

use std::sync::OnceLock;

use ascend_sys::aclError;

use crate::error::MockResult;

/// What a task or host call does to a range of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    /// First byte.
    pub addr: usize,
    /// Bytes (0: no access).
    pub len: usize,
    /// Whether it writes (else it reads).
    pub write: bool,
}

impl Access {
    /// A read of `len` bytes at `addr`.
    pub fn read(addr: usize, len: usize) -> Access {
        Access {
            addr,
            len,
            write: false,
        }
    }

    /// A write of `len` bytes at `addr`.
    pub fn write(addr: usize, len: usize) -> Access {
        Access {
            addr,
            len,
            write: true,
        }
    }
}

/// What an observer of the device core is told. Ids are stream and event
/// handle ids (`Handle::id`).
pub(crate) trait Observer: Sync {
    /// `push` queues a task on `stream` that makes `accesses`; the
    /// observer runs it (or refuses with an error of `code`) and returns
    /// its sequence number.
    fn queue(
        &self,
        stream: u64,
        accesses: &[Access],
        code: aclError,
        push: &mut dyn FnMut() -> MockResult<u64>,
    ) -> MockResult<u64>;

    /// The host is about to make `accesses` at once (a synchronous copy or
    /// memset); an error (of `code`) refuses them.
    fn host_access(&self, accesses: &[Access], code: aclError) -> MockResult<()>;

    /// The device (`device`) or pinned host block at `ptr` is about to be
    /// freed; an error (of `code`) refuses the free.
    fn free(&self, ptr: usize, device: bool, code: aclError) -> MockResult<()>;

    /// `push` queues a record of `event` on `stream`; the observer runs it.
    fn record_event(
        &self,
        event: u64,
        stream: u64,
        push: &mut dyn FnMut() -> MockResult<()>,
    ) -> MockResult<()>;

    /// `push` queues a wait for `event` on `stream`; the observer runs it.
    fn wait_event(
        &self,
        event: u64,
        stream: u64,
        push: &mut dyn FnMut() -> MockResult<()>,
    ) -> MockResult<()>;

    /// `event` was reset: a later wait on it orders nothing until it is
    /// recorded again.
    fn event_forgotten(&self, event: u64);

    /// `sync` synchronises the host with `stream` and returns whether the
    /// wait was reached (all queued work done); the observer runs it.
    fn synchronize(&self, stream: u64, sync: &mut dyn FnMut() -> bool);

    /// `sync` checks or waits for the latest record of `event` and
    /// returns whether it was reached; the observer runs it.
    fn synchronize_event(&self, event: u64, sync: &mut dyn FnMut() -> bool);

    /// The blocks starting at `bases` were released without a free (a
    /// device reset).
    fn blocks_released(&self, bases: &[usize]);

    /// `stream`'s worker stopped: its queued work ran (`drained`) or was
    /// dropped.
    fn stream_gone(&self, stream: u64, drained: bool);

    /// `aclFinalize` released everything.
    fn finalized(&self);
}

static OBSERVER: OnceLock<&'static dyn Observer> = OnceLock::new();

/// Installs `observer` (a no-op when one is already installed).
pub(crate) fn install(observer: &'static dyn Observer) {
    let _ = OBSERVER.set(observer);
}

fn observer() -> Option<&'static dyn Observer> {
    OBSERVER.get().copied()
}

/// Runs an `FnOnce` step through an `FnMut` interface (run at most once).
fn once<T>(step: impl FnOnce() -> T) -> impl FnMut() -> T {
    let mut step = Some(step);
    move || (step.take().expect("a hook runs the core's step once"))()
}

/// Queues a task that makes `accesses` on `stream` with `push`, telling
/// the observer (which may refuse it with an error of `code`).
pub(crate) fn queue(
    stream: u64,
    accesses: &[Access],
    code: aclError,
    push: impl FnOnce() -> MockResult<u64>,
) -> MockResult<u64> {
    match observer() {
        Some(o) => o.queue(stream, accesses, code, &mut once(push)),
        None => push(),
    }
}

/// Tells the observer of synchronous host accesses (it may refuse them
/// with an error of `code`).
pub(crate) fn host_access(accesses: &[Access], code: aclError) -> MockResult<()> {
    match observer() {
        Some(o) => o.host_access(accesses, code),
        None => Ok(()),
    }
}

/// Tells the observer of a free of the block at `ptr` (it may refuse it
/// with an error of `code`).
pub(crate) fn free(ptr: usize, device: bool, code: aclError) -> MockResult<()> {
    match observer() {
        Some(o) => o.free(ptr, device, code),
        None => Ok(()),
    }
}

/// Queues a record of `event` on `stream` with `push`, telling the
/// observer.
pub(crate) fn record_event(
    event: u64,
    stream: u64,
    push: impl FnOnce() -> MockResult<()>,
) -> MockResult<()> {
    match observer() {
        Some(o) => o.record_event(event, stream, &mut once(push)),
        None => push(),
    }
}

/// Queues a wait for `event` on `stream` with `push`, telling the
/// observer.
pub(crate) fn wait_event(
    event: u64,
    stream: u64,
    push: impl FnOnce() -> MockResult<()>,
) -> MockResult<()> {
    match observer() {
        Some(o) => o.wait_event(event, stream, &mut once(push)),
        None => push(),
    }
}

/// Tells the observer that `event` was reset.
pub(crate) fn event_forgotten(event: u64) {
    if let Some(o) = observer() {
        o.event_forgotten(event);
    }
}

/// Synchronises the host with `stream` through `sync` (which returns the
/// result and whether the wait was reached), telling the observer.
pub(crate) fn synchronize<T>(stream: u64, sync: impl FnOnce() -> (T, bool)) -> T {
    let Some(o) = observer() else {
        return sync().0;
    };
    let mut step = Some(sync);
    let mut out = None;
    o.synchronize(stream, &mut || {
        let (r, reached) = (step.take().expect("a hook runs the core's step once"))();
        out = Some(r);
        reached
    });
    out.expect("the observer ran the synchronisation")
}

/// Checks or waits for the latest record of `event` through `sync` (which
/// returns the result and whether the record was reached), telling the
/// observer.
pub(crate) fn synchronize_event<T>(event: u64, sync: impl FnOnce() -> (T, bool)) -> T {
    let Some(o) = observer() else {
        return sync().0;
    };
    let mut step = Some(sync);
    let mut out = None;
    o.synchronize_event(event, &mut || {
        let (r, reached) = (step.take().expect("a hook runs the core's step once"))();
        out = Some(r);
        reached
    });
    out.expect("the observer ran the synchronisation")
}

/// Tells the observer that the blocks at `bases` were released without a
/// free.
pub(crate) fn blocks_released(bases: &[usize]) {
    if let Some(o) = observer() {
        o.blocks_released(bases);
    }
}

/// Tells the observer that `stream`'s worker stopped.
pub(crate) fn stream_gone(stream: u64, drained: bool) {
    if let Some(o) = observer() {
        o.stream_gone(stream, drained);
    }
}

/// Tells the observer that `aclFinalize` released everything.
pub(crate) fn finalized() {
    if let Some(o) = observer() {
        o.finalized();
    }
}
