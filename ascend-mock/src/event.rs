//! Events: completion markers recorded on streams.
//!
//! `aclrtRecordEvent` gives the record a generation number on the calling
//! thread (`recorded`) and queues a task that, when the stream reaches it,
//! raises `completed` to that generation and stamps the completion time.
//! `aclrtStreamWaitEvent` queues on the waiting stream a task that blocks
//! until `completed` reaches the generation recorded at the time of the
//! wait call; an event never recorded makes the wait a no-op.
//!
//! Failed work is sticky for events: when the stream reaches a record (or
//! drops it) while it holds an unreported task error (see `crate::stream`),
//! the record completes *failed* and keeps a copy of that error.
//! `aclrtSynchronizeEvent` and the status queries of a failed record return
//! the error instead of success, and `aclrtStreamWaitEvent` fails on the
//! waiting stream, so work ordered after a failure cannot pass as done. The
//! recording stream keeps its own copy until its synchronisation reports
//! it; records it reaches after that are clean again.
//!
//! Invariants: `completed <= recorded`; `completed` only grows (a record
//! finishing after a newer one does not lower it); a record task dropped
//! unrun (forced stream destruction) still raises `completed` but leaves no
//! timestamp, so no waiter blocks forever; `failure` belongs to the record
//! numbered `completed` and is cleared by a reset.
//!
//! Layer: device core, above `stream`; records, waits, resets and host
//! synchronisations reach the observer through `hooks`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ascend_sys::*;

use crate::error::{MockError, MockResult};
use crate::gate::{self, CallSite};
use crate::handle::{Handle, HandleKind};
use crate::hooks;
use crate::stream::{ErrorProbe, Stream, TaskKind, Wait};

/// The instant timestamps count from ("device boot" of the mock).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[derive(Default)]
struct EventState {
    recorded: u64,
    completed: u64,
    stamp: Option<Instant>,
    waits: u64,
    /// The recording stream's unreported error when it reached the record
    /// numbered `completed`.
    failure: Option<MockError>,
}

/// An AscendCL event.
pub struct Event {
    /// The handle given to C.
    pub handle: Handle,
    /// Creation flags (`ACL_EVENT_*`).
    pub flags: u32,
    /// The device of the context it was created in.
    pub device: u32,
    /// The call that created it.
    pub origin: Option<CallSite>,
    state: Mutex<EventState>,
    changed: Condvar,
}

/// Raises `completed` when dropped, whether or not the record ran.
struct RecordGuard {
    event: Arc<Event>,
    generation: u64,
    ran: bool,
    /// The recording stream's error, read when the record completes.
    probe: ErrorProbe,
}

impl RecordGuard {
    fn complete(&mut self, stamp: Option<Instant>) {
        // Read before taking the event's lock: the stream's lock is never
        // taken while an event's is held.
        let failure = self.probe.pending();
        let mut st = self.event.lock();
        if self.generation > st.completed {
            st.completed = self.generation;
            st.stamp = stamp;
            st.failure = failure;
        }
        drop(st);
        self.event.changed.notify_all();
        self.ran = true;
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if !self.ran {
            self.complete(None);
        }
    }
}

impl Event {
    /// A new, never-recorded event.
    pub fn new(flags: u32, device: u32) -> Arc<Event> {
        // Fix the epoch before any record can be stamped.
        epoch();
        Arc::new(Event {
            handle: Handle::new(HandleKind::Event),
            flags,
            device,
            origin: gate::current_call(),
            state: Mutex::new(EventState::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, EventState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a record of this event on `stream`.
    pub fn record(self: &Arc<Event>, stream: &Stream) -> MockResult<()> {
        let generation = {
            let mut st = self.lock();
            st.recorded += 1;
            st.recorded
        };
        let mut guard = RecordGuard {
            event: self.clone(),
            generation,
            ran: false,
            probe: stream.error_probe(),
        };
        hooks::record_event(self.handle.id(), stream.handle.id(), || {
            stream.push(
                "aclrtRecordEvent",
                TaskKind::Host,
                Box::new(move || {
                    guard.complete(Some(Instant::now()));
                    Ok(())
                }),
            )?;
            Ok(())
        })
    }

    /// Queues a reset (back to "not recorded") of this event on `stream`.
    pub fn reset(self: &Arc<Event>, stream: &Stream) -> MockResult<()> {
        hooks::event_forgotten(self.handle.id());
        let ev = self.clone();
        stream.push(
            "aclrtResetEvent",
            TaskKind::Host,
            Box::new(move || {
                let mut st = ev.lock();
                st.stamp = None;
                st.failure = None;
                st.recorded = st.completed;
                Ok(())
            }),
        )?;
        Ok(())
    }

    /// Makes `stream`'s later tasks wait for the latest record as of now.
    /// If that record completed failed, the wait task fails with its error,
    /// which `stream` then holds like any task error.
    pub fn wait_on(self: &Arc<Event>, stream: &Stream) -> MockResult<()> {
        let target = self.lock().recorded;
        if target == 0 {
            return Ok(());
        }
        let ev = self.clone();
        hooks::wait_event(self.handle.id(), stream.handle.id(), || {
            stream.push(
                "aclrtStreamWaitEvent",
                TaskKind::Host,
                Box::new(move || {
                    let mut st = ev.lock();
                    while st.completed < target {
                        st = ev.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.waits += 1;
                    match &st.failure {
                        Some(f) => Err(MockError::new(
                            f.code,
                            format!(
                                "the event {} this stream waited on was recorded after failed work: {}",
                                ev.handle.id(),
                                f.message
                            ),
                        )),
                        None => Ok(()),
                    }
                }),
            )?;
            Ok(())
        })
    }

    /// Whether the latest record has completed (false if never recorded
    /// or reset since).
    pub fn is_complete(&self) -> bool {
        let st = self.lock();
        st.recorded > 0 && st.completed >= st.recorded && st.stamp.is_some()
    }

    /// The error of failed work before the latest completed record, if the
    /// recording stream held one when it reached (or dropped) the record.
    pub fn failure(&self) -> Option<MockError> {
        let st = self.lock();
        st.failure.as_ref().map(|f| {
            MockError::new(
                f.code,
                format!(
                    "event {} was recorded after failed work: {}",
                    self.handle.id(),
                    f.message
                ),
            )
        })
    }

    /// Whether nothing recorded so far is still pending.
    pub fn nothing_pending(&self) -> bool {
        let st = self.lock();
        st.completed >= st.recorded
    }

    /// Whether `done` finds the event's work complete; if so the host has
    /// seen the work before its latest record complete (the observer is
    /// told, see `hooks::synchronize_event`). Work that was reached (or
    /// dropped) after a failure is the failed task's error when
    /// `failed_is_error`, so a poll cannot spin on a record its lost stream
    /// dropped.
    pub(crate) fn observe(
        &self,
        done: impl FnOnce(&Event) -> bool,
        failed_is_error: bool,
    ) -> MockResult<bool> {
        let complete = hooks::synchronize_event(self.handle.id(), || {
            let complete = done(self);
            (complete, complete)
        });
        if failed_is_error
            && (complete || self.nothing_pending())
            && let Some(f) = self.failure()
        {
            return Err(f);
        }
        Ok(complete)
    }

    /// Waits for the latest record (`timeout`: `None` forever), telling the
    /// observer when it was reached; fails with the task's error when work
    /// before the record failed, or with `ACL_ERROR_RT_EVENT_SYNC_TIMEOUT`.
    pub(crate) fn synchronize_observed(&self, timeout: Option<Duration>) -> MockResult<()> {
        let reached = hooks::synchronize_event(self.handle.id(), || {
            let reached = self.synchronize(timeout) == Wait::Reached;
            (reached, reached)
        });
        if reached {
            return self.failure().map_or(Ok(()), Err);
        }
        Err(MockError::new(
            ACL_ERROR_RT_EVENT_SYNC_TIMEOUT,
            format!(
                "event {} did not complete within {} ms",
                self.handle.id(),
                timeout.unwrap_or_default().as_millis()
            ),
        ))
    }

    /// Waits for the latest record as of now; `None` waits forever.
    pub fn synchronize(&self, timeout: Option<Duration>) -> Wait {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        let target = st.recorded;
        while st.completed < target {
            match deadline {
                None => st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Wait::TimedOut;
                    }
                    st = self
                        .changed
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        Wait::Reached
    }

    /// The completion time of the latest record.
    pub fn timestamp(&self) -> MockResult<Instant> {
        let st = self.lock();
        if st.recorded == 0 {
            return Err(MockError::new(
                ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID,
                format!("event {} has not been recorded", self.handle.id()),
            ));
        }
        if st.completed < st.recorded {
            return Err(MockError::new(
                ACL_ERROR_RT_EVENT_NOT_COMPLETE,
                format!(
                    "event {} has been recorded but the stream has not reached the record yet; synchronize first",
                    self.handle.id()
                ),
            ));
        }
        st.stamp.ok_or_else(|| {
            MockError::new(
                ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID,
                format!(
                    "event {} has no timestamp (it was reset, or its stream was destroyed before the record ran)",
                    self.handle.id()
                ),
            )
        })
    }
}

/// Milliseconds from `start`'s completion to `end`'s.
pub fn elapsed_ms(start: &Event, end: &Event) -> MockResult<f32> {
    let a = start.timestamp()?;
    let b = end.timestamp()?;
    if b < a {
        return Err(MockError::new(
            ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL,
            format!(
                "end event {} completed before start event {}",
                end.handle.id(),
                start.handle.id()
            ),
        ));
    }
    Ok((b - a).as_secs_f64() as f32 * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_wait_and_elapsed() {
        let ctx = Handle::new(HandleKind::Context);
        let s1 = Stream::spawn(0, ctx, false).unwrap();
        let s2 = Stream::spawn(0, ctx, false).unwrap();
        let start = Event::new(0, 0);
        let end = Event::new(0, 0);
        assert_eq!(
            start.timestamp().unwrap_err().code,
            ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID
        );
        start.record(&s1).unwrap();
        s1.push(
            "sleep",
            TaskKind::Host,
            Box::new(|| {
                std::thread::sleep(Duration::from_millis(30));
                Ok(())
            }),
        )
        .unwrap();
        end.record(&s1).unwrap();
        assert!(!end.is_complete());
        assert_eq!(
            end.timestamp().unwrap_err().code,
            ACL_ERROR_RT_EVENT_NOT_COMPLETE
        );
        end.wait_on(&s2).unwrap();
        s2.synchronize(None).unwrap();
        assert!(end.is_complete());
        let ms = elapsed_ms(&start, &end).unwrap();
        assert!(ms >= 29.0, "{ms}");
        assert_eq!(
            elapsed_ms(&end, &start).unwrap_err().code,
            ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL
        );
    }

    #[test]
    fn dropped_records_release_waiters() {
        let ctx = Handle::new(HandleKind::Context);
        let s = Stream::spawn(0, ctx, false).unwrap();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let g = gate.clone();
        s.push(
            "blocked",
            TaskKind::Host,
            Box::new(move || {
                drop(g.lock());
                Ok(())
            }),
        )
        .unwrap();
        let ev = Event::new(0, 0);
        ev.record(&s).unwrap();
        let s2 = s.clone();
        let stopper = std::thread::spawn(move || s2.shutdown(true));
        // Release the blocked task only once the forced shutdown is asked
        // for, so that the record behind it is dropped, never run.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !s.is_dropping() {
            assert!(std::time::Instant::now() < deadline, "shutdown never began");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        stopper.join().unwrap();
        assert_eq!(ev.synchronize(Some(Duration::from_secs(5))), Wait::Reached);
        assert!(!ev.is_complete());
    }

    fn failing(s: &Stream, code: aclError) {
        s.push(
            "bad",
            TaskKind::Host,
            Box::new(move || Err(MockError::new(code, "op: did not write its output"))),
        )
        .unwrap();
    }

    #[test]
    fn records_after_a_failed_task_report_it_until_the_stream_does() {
        let ctx = Handle::new(HandleKind::Context);
        let s = Stream::spawn(0, ctx, false).unwrap();
        let before = Event::new(0, 0);
        before.record(&s).unwrap();
        failing(&s, ACL_ERROR_RT_AICORE_EXCEPTION);
        let after = Event::new(0, 0);
        after.record(&s).unwrap();
        assert_eq!(after.synchronize(None), Wait::Reached);
        // The record before the failure is clean; the one after is not.
        assert!(before.failure().is_none());
        let f = after
            .failure()
            .expect("a record after a failed task is failed");
        assert_eq!(f.code, ACL_ERROR_RT_AICORE_EXCEPTION);
        assert!(
            f.message.contains("op: did not write its output"),
            "{}",
            f.message
        );
        // Reporting through the event does not consume the stream's error,
        // and asking again reports it again.
        assert!(after.failure().is_some());
        assert_eq!(
            s.synchronize(None).unwrap_err().code,
            ACL_ERROR_RT_AICORE_EXCEPTION
        );
        // The record keeps its failure after the stream reported it...
        assert!(after.failure().is_some());
        // ...and a new record, reached once the error was reported, is clean.
        after.record(&s).unwrap();
        assert_eq!(after.synchronize(None), Wait::Reached);
        assert!(after.failure().is_none());
        assert!(after.is_complete());
    }

    #[test]
    fn waits_on_a_failed_record_fail_the_waiting_stream() {
        let ctx = Handle::new(HandleKind::Context);
        let a = Stream::spawn(0, ctx, false).unwrap();
        let b = Stream::spawn(0, ctx, false).unwrap();
        failing(&a, ACL_ERROR_RT_AICORE_EXCEPTION);
        let ev = Event::new(0, 0);
        ev.record(&a).unwrap();
        ev.wait_on(&b).unwrap();
        let later = Event::new(0, 0);
        later.record(&b).unwrap();
        let err = b.synchronize(None).unwrap_err();
        assert_eq!(err.code, ACL_ERROR_RT_AICORE_EXCEPTION);
        assert!(err.message.contains("waited on"), "{}", err.message);
        assert!(later.failure().is_some());
        // A's own synchronisation still reports the original failure.
        assert_eq!(
            a.synchronize(None).unwrap_err().code,
            ACL_ERROR_RT_AICORE_EXCEPTION
        );
    }

    #[test]
    fn a_reset_clears_the_failure() {
        let ctx = Handle::new(HandleKind::Context);
        let s = Stream::spawn(0, ctx, false).unwrap();
        failing(&s, ACL_ERROR_RT_AICORE_EXCEPTION);
        let ev = Event::new(0, 0);
        ev.record(&s).unwrap();
        ev.reset(&s).unwrap();
        assert!(s.synchronize(None).is_err());
        assert!(ev.failure().is_none());
    }

    #[test]
    fn records_dropped_by_a_stop_on_failure_stream_are_failed() {
        let ctx = Handle::new(HandleKind::Context);
        let s = Stream::spawn(0, ctx, false).unwrap();
        s.set_stop_on_failure(true);
        failing(&s, ACL_ERROR_RT_AICORE_EXCEPTION);
        let ev = Event::new(0, 0);
        ev.record(&s).unwrap();
        assert_eq!(ev.synchronize(None), Wait::Reached);
        assert!(!ev.is_complete());
        assert_eq!(ev.failure().unwrap().code, ACL_ERROR_RT_AICORE_EXCEPTION);
        assert!(s.synchronize(None).is_err());
    }
}
