//! Events: creation, record, reset, queries, synchronisation and timing.
//!
//! Status of a never-recorded event: `aclrtQueryEvent` and
//! `aclrtQueryEventStatus` report "not ready" (nothing was recorded),
//! `aclrtQueryEventWaitStatus` reports "complete" (a wait on it is a no-op),
//! and `aclrtSynchronizeEvent` returns at once.
//!
//! Failed work: when the latest record completed after a failed task on its
//! stream (see `crate::event`), `aclrtSynchronizeEvent`, its timeout variant,
//! `aclrtQueryEvent` and `aclrtQueryEventStatus` return that task's error
//! code (its message names the event, the stream and the call that queued
//! the failed task) instead of success, and the status is not written;
//! `aclrtQueryEventWaitStatus` reports "complete" (a wait would pass the
//! record, and fails on the waiting stream). Such a record has been reached
//! or dropped, never still pending: a failure is only ever reported for a
//! finished record, so the event may be destroyed at once. Real CANN likewise
//! reports a task exception from the event wait (`rtEventSynchronize`
//! failing with the task's runtime result).

use ascend_sys::*;

use super::write_out;
use crate::error::{MockError, MockResult};
use crate::event::{Event, elapsed_ms, epoch};
use crate::gate::api_call;
use crate::runtime;
use crate::stream::timeout_from_ms;

/// Every `ACL_EVENT_*` creation flag.
const EVENT_FLAGS: u32 = ACL_EVENT_SYNC
    | ACL_EVENT_CAPTURE_STREAM_PROGRESS
    | ACL_EVENT_TIME_LINE
    | ACL_EVENT_DEVICE_USE_ONLY
    | ACL_EVENT_EXTERNAL
    | ACL_EVENT_IPC;

fn create_event(out: *mut aclrtEvent, flags: u32) -> MockResult<()> {
    if out.is_null() {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "event is NULL"));
    }
    if flags & !EVENT_FLAGS != 0 {
        return Err(MockError::new(
            ACL_ERROR_INVALID_PARAM,
            format!("flag {flags:#x} has bits outside the ACL_EVENT_* flags ({EVENT_FLAGS:#x})"),
        ));
    }
    let h = runtime::with_runtime(|rt| {
        let ctx = rt.current_context()?;
        let e = Event::new(flags, ctx.device);
        let h = e.handle;
        rt.events.insert(h, e);
        Ok(h)
    })?;
    // SAFETY: out was checked non-NULL; valid for writes by contract.
    unsafe { write_out(out, h.as_ptr(), "event") }
}

/// Creates an event in the current context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateEvent(event: *mut aclrtEvent) -> aclError {
    api_call("aclrtCreateEvent", || {
        create_event(event, ACL_EVENT_SYNC | ACL_EVENT_TIME_LINE)
    })
}

/// Creates an event with `ACL_EVENT_*` flags.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateEventWithFlag(event: *mut aclrtEvent, flag: u32) -> aclError {
    api_call("aclrtCreateEventWithFlag", || create_event(event, flag))
}

/// Creates an event with `ACL_EVENT_*` flags (the "Ex" variant).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateEventExWithFlag(event: *mut aclrtEvent, flag: u32) -> aclError {
    api_call("aclrtCreateEventExWithFlag", || create_event(event, flag))
}

/// Destroys an event; records and waits already queued still complete.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDestroyEvent(event: aclrtEvent) -> aclError {
    api_call("aclrtDestroyEvent", || {
        runtime::with_runtime(|rt| rt.destroy_event(event))
    })
}

/// Queues a record of the event on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtRecordEvent(event: aclrtEvent, stream: aclrtStream) -> aclError {
    api_call("aclrtRecordEvent", || {
        let (e, s) = runtime::with_runtime(|rt| Ok((rt.event(event)?, rt.stream(stream)?)))?;
        e.record(&s)
    })
}

/// Queues a reset of the event (back to "not recorded") on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtResetEvent(event: aclrtEvent, stream: aclrtStream) -> aclError {
    api_call("aclrtResetEvent", || {
        let (e, s) = runtime::with_runtime(|rt| Ok((rt.event(event)?, rt.stream(stream)?)))?;
        e.reset(&s)
    })
}

fn lookup(event: aclrtEvent) -> MockResult<std::sync::Arc<Event>> {
    runtime::with_runtime(|rt| rt.event(event))
}

/// Deprecated status query: complete once the latest record ran.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtQueryEvent(
    event: aclrtEvent,
    status: *mut aclrtEventStatus,
) -> aclError {
    api_call("aclrtQueryEvent", || {
        let v = if lookup(event)?.observe(Event::is_complete, true)? {
            ACL_EVENT_STATUS_COMPLETE
        } else {
            ACL_EVENT_STATUS_NOT_READY
        };
        // SAFETY: status is NULL or valid for writes (caller contract).
        unsafe { write_out(status, v, "status") }
    })
}

/// Whether the latest record has run.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtQueryEventStatus(
    event: aclrtEvent,
    status: *mut aclrtEventRecordedStatus,
) -> aclError {
    api_call("aclrtQueryEventStatus", || {
        let v = if lookup(event)?.observe(Event::is_complete, true)? {
            ACL_EVENT_RECORDED_STATUS_COMPLETE
        } else {
            ACL_EVENT_RECORDED_STATUS_NOT_READY
        };
        // SAFETY: status is NULL or valid for writes (caller contract).
        unsafe { write_out(status, v, "status") }
    })
}

/// Whether a wait on the event would be satisfied now. A failed record
/// counts as reached: the wait itself then fails on the waiting stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtQueryEventWaitStatus(
    event: aclrtEvent,
    status: *mut aclrtEventWaitStatus,
) -> aclError {
    api_call("aclrtQueryEventWaitStatus", || {
        let v = if lookup(event)?.observe(Event::nothing_pending, false)? {
            ACL_EVENT_WAIT_STATUS_COMPLETE
        } else {
            ACL_EVENT_WAIT_STATUS_NOT_READY
        };
        // SAFETY: status is NULL or valid for writes (caller contract).
        unsafe { write_out(status, v, "status") }
    })
}

fn synchronize(event: aclrtEvent, timeout: i32) -> MockResult<()> {
    let timeout = timeout_from_ms(timeout)?;
    lookup(event)?.synchronize_observed(timeout)
}

/// Waits for the event's latest record; fails with the task's error when
/// work before the record failed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeEvent(event: aclrtEvent) -> aclError {
    api_call("aclrtSynchronizeEvent", || synchronize(event, -1))
}

/// Waits for the event's latest record at most `timeout` ms
/// (`ACL_ERROR_RT_EVENT_SYNC_TIMEOUT`); -1 waits forever, 0 polls.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeEventWithTimeout(
    event: aclrtEvent,
    timeout: i32,
) -> aclError {
    api_call("aclrtSynchronizeEventWithTimeout", || {
        synchronize(event, timeout)
    })
}

/// Milliseconds between two completed records. Not recorded:
/// `ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID`; recorded but not reached:
/// `ACL_ERROR_RT_EVENT_NOT_COMPLETE`; end before start:
/// `ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtEventElapsedTime(
    ms: *mut f32,
    startEvent: aclrtEvent,
    endEvent: aclrtEvent,
) -> aclError {
    api_call("aclrtEventElapsedTime", || {
        if ms.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "ms is NULL"));
        }
        let (a, b) = runtime::with_runtime(|rt| Ok((rt.event(startEvent)?, rt.event(endEvent)?)))?;
        let v = elapsed_ms(&a, &b)?;
        // SAFETY: ms was checked non-NULL; valid for writes by contract.
        unsafe { write_out(ms, v, "ms") }
    })
}

/// Completion time of the latest record, in microseconds since the mock
/// device started.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtEventGetTimestamp(
    event: aclrtEvent,
    timestamp: *mut u64,
) -> aclError {
    api_call("aclrtEventGetTimestamp", || {
        let t = lookup(event)?.timestamp()?;
        let us = t.saturating_duration_since(epoch()).as_micros() as u64;
        // SAFETY: timestamp is NULL or valid for writes (caller contract).
        unsafe { write_out(timestamp, us, "timestamp") }
    })
}
