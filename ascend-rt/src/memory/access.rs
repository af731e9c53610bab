//! Access tracking: which streams may still be using a buffer, and the
//! waits that order new work after them.
//!
//! Invariants (for one buffer, while tracking is on):
//! - `writer` is the stream that last queued a write, `readers` the streams
//!   that queued reads since that write (each at most once).
//! - Before a write is queued on stream S, S waits for every other stream in
//!   `{writer} ∪ readers`; then `writer = S` and `readers` is empty.
//! - Before a read is queued on S, S waits for `writer` if it is another
//!   stream; then S is among `readers`.
//! - On one stream all of this is an id comparison: no event is made.
//! - Before the host reads the memory, the writer's queued work is waited
//!   for; before the host writes or frees it, everyone's is. A stream whose
//!   work has been waited for is forgotten.
//! - The tracked streams are held as `Arc`s, so they outlive the work queued
//!   on them that touches this buffer.
//! - Failed work: `writer_epoch` is the writer's failure epoch (see
//!   `crate::stream`) when the last write was queued. A host read waits for
//!   the writer and then fails with the writer's latest reported error if
//!   the epoch moved since: a failure of the writer's work was reported
//!   after the write was queued, so the write may never have happened. The
//!   writer is then kept, so every later read fails the same way until a
//!   new write is queued (or the host overwrites the whole buffer). This is
//!   conservative: a write that did run before the failure is refused too
//!   when it was not read before the failure was reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;
use crate::stream::Stream;

#[derive(Debug, Default)]
struct State {
    writer: Option<Arc<Stream>>,
    /// The writer's failure epoch when the last write was queued.
    writer_epoch: u64,
    readers: Vec<Arc<Stream>>,
}

/// The tracking state of one buffer.
#[derive(Debug)]
pub(crate) struct Access {
    enabled: AtomicBool,
    state: Mutex<State>,
}

impl Access {
    pub(crate) fn new() -> Access {
        Access {
            enabled: AtomicBool::new(true),
            state: Mutex::new(State::default()),
        }
    }

    /// Tracking that starts as if `s` had just written the memory: for a
    /// block of the pool, whose earlier work the allocating stream is
    /// ordered after.
    pub(crate) fn written_by(s: &Arc<Stream>) -> Access {
        Access {
            enabled: AtomicBool::new(true),
            state: Mutex::new(State {
                writer: Some(s.clone()),
                writer_epoch: s.failure_epoch(),
                readers: Vec::new(),
            }),
        }
    }

    /// Takes the streams that may still have work queued on the memory (the
    /// writer and the readers), forgetting them: for returning the memory
    /// to the pool. Empty while tracking is off.
    pub(crate) fn take_streams(&self) -> Vec<Arc<Stream>> {
        if !self.enabled() {
            return Vec::new();
        }
        let mut st = self.lock();
        let mut v = std::mem::take(&mut st.readers);
        if let Some(w) = st.writer.take()
            && !v.iter().any(|r| r.id() == w.id())
        {
            v.push(w);
        }
        v
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Turns tracking on or off. While off, nothing is recorded or waited
    /// for; what was recorded before stays.
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Orders a read about to be queued on `s` after the last write.
    pub(crate) fn before_read(&self, s: &Arc<Stream>) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let mut st = self.lock();
        if let Some(w) = &st.writer
            && w.id() != s.id()
        {
            s.join_inner(w)?;
        }
        if !st.readers.iter().any(|r| r.id() == s.id()) {
            st.readers.push(s.clone());
        }
        Ok(())
    }

    /// Orders a write about to be queued on `s` after every earlier use.
    pub(crate) fn before_write(&self, s: &Arc<Stream>) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let mut st = self.lock();
        let sid = s.id();
        let wid = st.writer.as_ref().map(|w| w.id());
        if let Some(w) = &st.writer
            && w.id() != sid
        {
            s.join_inner(w)?;
        }
        // Readers are distinct; skip the one that is also the writer.
        for r in &st.readers {
            if r.id() != sid && Some(r.id()) != wid {
                s.join_inner(r)?;
            }
        }
        if wid != Some(sid) {
            st.writer = Some(s.clone());
        }
        st.writer_epoch = s.failure_epoch();
        st.readers.clear();
        Ok(())
    }

    /// Waits (on the host) for the queued write, before the host reads;
    /// fails when that write's stream reported failed work since the write
    /// was queued.
    pub(crate) fn sync_writer(&self) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let mut st = self.lock();
        if let Some(w) = &st.writer {
            w.sync_point()?;
            if let Some(e) = w.failed_since(st.writer_epoch) {
                return Err(e);
            }
            st.writer = None;
        }
        Ok(())
    }

    /// Waits (on the host) for every queued use, before the host writes or
    /// frees the memory. With `reads` the host may also read it (a mutable
    /// view): then a failed write is an error as in [`Access::sync_writer`];
    /// without, the memory is about to be overwritten whole or freed, and a
    /// failed write no longer matters once its stream is waited for.
    pub(crate) fn sync_all(&self, reads: bool) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let mut st = self.lock();
        if let Some(w) = &st.writer {
            w.sync_point()?;
            if reads && let Some(e) = w.failed_since(st.writer_epoch) {
                return Err(e);
            }
            st.writer = None;
        }
        while let Some(r) = st.readers.last() {
            r.sync_point()?;
            st.readers.pop();
        }
        Ok(())
    }

    /// The ids of the streams recorded now: `(writer, readers)`.
    pub(crate) fn snapshot(&self) -> (Option<u64>, Vec<u64>) {
        let st = self.lock();
        (
            st.writer.as_ref().map(|w| w.id()),
            st.readers.iter().map(|r| r.id()).collect(),
        )
    }
}
