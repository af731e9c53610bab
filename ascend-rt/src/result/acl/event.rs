//! Events: create, destroy, record, synchronize, query, elapsed time.
//!
//! Invariants: thin wrappers; event handles are owned by the safe layer's
//! `Event`, which keeps them alive while streams may still use them.

use std::ptr;

use ascend_sys::{aclrtEvent, aclrtStream};

use super::table as acl;
use crate::error::Result;
use crate::result::check::check;

/// `aclrtCreateEvent`: a plain event (usable for waits and timing).
pub fn create() -> Result<aclrtEvent> {
    let f = acl()?.aclrtCreateEvent()?;
    let mut e: aclrtEvent = ptr::null_mut();
    // SAFETY: `e` is a valid place for the handle.
    check("aclrtCreateEvent", unsafe { f(&mut e) })?;
    Ok(e)
}

/// `aclrtCreateEventWithFlag`: an event with `ACL_EVENT_*` flags.
pub fn create_with_flag(flag: u32) -> Result<aclrtEvent> {
    let f = acl()?.aclrtCreateEventWithFlag()?;
    let mut e: aclrtEvent = ptr::null_mut();
    // SAFETY: `e` is a valid place for the handle; flags are plain bits.
    check("aclrtCreateEventWithFlag", unsafe { f(&mut e, flag) })?;
    Ok(e)
}

/// `aclrtDestroyEvent`.
///
/// # Safety
/// `event` is live, no stream still waits on it or has a record of it
/// pending, and it is not used afterwards.
pub unsafe fn destroy(event: aclrtEvent) -> Result<()> {
    let f = acl()?.aclrtDestroyEvent()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtDestroyEvent", unsafe { f(event) })
}

/// `aclrtRecordEvent`: the event completes when `stream` reaches this point.
///
/// # Safety
/// Both handles are live (the stream may be null: the default stream).
pub unsafe fn record(event: aclrtEvent, stream: aclrtStream) -> Result<()> {
    let f = acl()?.aclrtRecordEvent()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtRecordEvent", unsafe { f(event, stream) })
}

/// `aclrtSynchronizeEvent`: blocks until the event completes.
///
/// # Safety
/// `event` is live.
pub unsafe fn synchronize(event: aclrtEvent) -> Result<()> {
    let f = acl()?.aclrtSynchronizeEvent()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtSynchronizeEvent", unsafe { f(event) })
}

/// `aclrtQueryEventStatus`: whether the last record has completed.
///
/// # Safety
/// `event` is live.
pub unsafe fn query(event: aclrtEvent) -> Result<bool> {
    let f = acl()?.aclrtQueryEventStatus()?;
    let mut status = ascend_sys::ACL_EVENT_RECORDED_STATUS_NOT_READY;
    // SAFETY: the event is live (caller); `status` is a valid place.
    check("aclrtQueryEventStatus", unsafe { f(event, &mut status) })?;
    Ok(status == ascend_sys::ACL_EVENT_RECORDED_STATUS_COMPLETE)
}

/// `aclrtEventElapsedTime`: milliseconds between two completed events.
///
/// # Safety
/// Both events are live.
pub unsafe fn elapsed_ms(start: aclrtEvent, end: aclrtEvent) -> Result<f32> {
    let f = acl()?.aclrtEventElapsedTime()?;
    let mut ms = 0f32;
    // SAFETY: the events are live (caller); `ms` is a valid place.
    check("aclrtEventElapsedTime", unsafe { f(&mut ms, start, end) })?;
    Ok(ms)
}
