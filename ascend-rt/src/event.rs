//! Events: markers recorded on a stream, for waiting and timing.
//!
//! Invariants:
//! - An [`Event`] is a cheap, clonable handle to one runtime event; the
//!   event is destroyed when the last clone goes. A stream that waits on an
//!   event keeps a clone until it has passed the wait (see
//!   [`Stream::wait`]), so an event is never destroyed while in use.
//! - Before destroying an event that was recorded, `Drop` waits for the
//!   record to complete: AscendCL asks that no call still uses an event
//!   being destroyed. When that wait fails, it waits for the whole device
//!   instead; only when that fails too is the event kept (leaked).
//! - Failed work: a wait on (or status query of) a record that the stream
//!   reached after a failed task returns that task's error (the runtime
//!   reports failed work at synchronization points; see docs/mock.md). The
//!   event then remembers that its latest record is finished but failed, so
//!   `Drop` destroys it without waiting for the whole device and without
//!   reporting the already-returned error again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ascend_sys::aclrtEvent;

use crate::context::Context;
use crate::error::Result;
use crate::result;
use crate::stream::Stream;

#[derive(Debug)]
struct Inner {
    ctx: Arc<Context>,
    handle: aclrtEvent,
    recorded: AtomicBool,
    /// The runtime reported failed work for the latest record (a wait or a
    /// query returned the failed task's error): the record is finished.
    failed: AtomicBool,
}

// SAFETY: the event handle is usable from any thread (the runtime
// synchronises its own state); this type never dereferences it.
unsafe impl Send for Inner {}
// SAFETY: as above; all methods take `&self` and only pass the handle to
// the runtime.
unsafe impl Sync for Inner {}

/// An event of one context.
#[derive(Debug, Clone)]
pub struct Event {
    inner: Arc<Inner>,
}

impl Event {
    /// A new event (`aclrtCreateEvent`), usable for waits and timing.
    pub fn new(ctx: &Arc<Context>) -> Result<Event> {
        ctx.check_err()?;
        Event::create(ctx)
    }

    /// [`Event::new`] without looking at recorded errors.
    pub(crate) fn create(ctx: &Arc<Context>) -> Result<Event> {
        ctx.bind()?;
        let handle = result::acl::event::create()?;
        Ok(Event::wrap(ctx, handle))
    }

    /// A new event with `ACL_EVENT_*` flags (`aclrtCreateEventWithFlag`).
    /// Waiting on it needs `ACL_EVENT_SYNC`, timing `ACL_EVENT_TIME_LINE`.
    pub fn with_flags(ctx: &Arc<Context>, flags: u32) -> Result<Event> {
        ctx.bind_to_thread()?;
        let handle = result::acl::event::create_with_flag(flags)?;
        Ok(Event::wrap(ctx, handle))
    }

    fn wrap(ctx: &Arc<Context>, handle: aclrtEvent) -> Event {
        Event {
            inner: Arc::new(Inner {
                ctx: ctx.clone(),
                handle,
                recorded: AtomicBool::new(false),
                failed: AtomicBool::new(false),
            }),
        }
    }

    /// The context the event belongs to.
    pub fn context(&self) -> &Arc<Context> {
        &self.inner.ctx
    }

    /// The raw handle, for calls this crate does not wrap.
    pub fn handle(&self) -> aclrtEvent {
        self.inner.handle
    }

    /// Records the event on `stream`: it completes when the stream reaches
    /// this point.
    pub fn record(&self, stream: &Stream) -> Result<()> {
        self.inner.ctx.check_err()?;
        self.record_inner(stream)
    }

    pub(crate) fn record_inner(&self, stream: &Stream) -> Result<()> {
        stream.check_same_context(self.context(), "Event::record")?;
        self.inner.ctx.bind()?;
        // SAFETY: the event is live (we hold it) and so is the stream (the
        // caller's borrow).
        unsafe { result::acl::event::record(self.inner.handle, stream.handle()) }?;
        self.inner.recorded.store(true, Ordering::Release);
        self.inner.failed.store(false, Ordering::Release);
        Ok(())
    }

    /// Blocks until the event's last record completes. When work queued
    /// before the record failed, returns that work's error: the memory it
    /// should have written must not be read as a result.
    pub fn synchronize(&self) -> Result<()> {
        self.inner.ctx.check_err()?;
        self.synchronize_inner()
    }

    pub(crate) fn synchronize_inner(&self) -> Result<()> {
        self.inner.ctx.bind()?;
        // SAFETY: the event is live while we hold it.
        let r = unsafe { result::acl::event::synchronize(self.inner.handle) };
        if r.is_err() {
            self.inner.failed.store(true, Ordering::Release);
        }
        r
    }

    /// Whether a wait or query of the latest record returned an error:
    /// work before it failed, and the record is finished.
    pub(crate) fn reported_failure(&self) -> bool {
        self.inner.failed.load(Ordering::Acquire)
    }

    /// Whether the event's last record has completed.
    pub fn is_complete(&self) -> Result<bool> {
        self.inner.ctx.check_err()?;
        self.is_complete_inner()
    }

    pub(crate) fn is_complete_inner(&self) -> Result<bool> {
        self.inner.ctx.bind()?;
        // SAFETY: the event is live while we hold it.
        let r = unsafe { result::acl::event::query(self.inner.handle) };
        if r.is_err() {
            self.inner.failed.store(true, Ordering::Release);
        }
        r
    }

    /// Milliseconds from this event to `end`; both must have completed
    /// (synchronize `end` first).
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32> {
        self.inner.ctx.bind_to_thread()?;
        // SAFETY: both events are live while we hold them.
        unsafe { result::acl::event::elapsed_ms(self.inner.handle, end.inner.handle) }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let r = self.ctx.bind().and_then(|()| {
            let waited = if *self.recorded.get_mut() {
                // SAFETY: the event is live; waiting for its record means no
                // stream still refers to it when it is destroyed.
                unsafe { result::acl::event::synchronize(self.handle) }
            } else {
                Ok(())
            };
            let failed_before = *self.failed.get_mut();
            if waited.is_err() && failed_before {
                // The record finished after failed work, and that failure
                // was already returned by a wait or query of this event.
                // SAFETY: last clone; the runtime reports failed work only
                // for a finished record, so no stream refers to the event.
                return unsafe { result::acl::event::destroy(self.handle) };
            }
            if waited.is_err() && self.ctx.wait_all_work().is_err() {
                // Neither wait worked: a stream may still record it.
                return waited;
            }
            // SAFETY: last clone; its record (if any) completed (event or
            // device waited for above); waiting streams hold clones, so none
            // waits on it any more.
            let destroyed = unsafe { result::acl::event::destroy(self.handle) };
            waited.and(destroyed)
        });
        self.ctx.record_result(r);
    }
}
