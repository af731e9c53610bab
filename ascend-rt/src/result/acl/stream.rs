//! Streams: create, destroy, synchronize, query, wait for events, host
//! functions.
//!
//! Invariants: thin wrappers. A null `aclrtStream` means the current
//! context's default stream, so the calling thread's current context decides
//! which stream that is.

use std::ffi::c_void;
use std::ptr;

use ascend_sys::{aclrtEvent, aclrtHostFunc, aclrtStream};

use super::table as acl;
use crate::error::Result;
use crate::result::check::check;

/// `aclrtCreateStream`: a new stream in the current context.
pub fn create() -> Result<aclrtStream> {
    let f = acl()?.aclrtCreateStream()?;
    let mut s: aclrtStream = ptr::null_mut();
    // SAFETY: `s` is a valid place for the handle.
    check("aclrtCreateStream", unsafe { f(&mut s) })?;
    Ok(s)
}

/// `aclrtDestroyStream`.
///
/// # Safety
/// `stream` is a live stream made by [`create`], its work is finished
/// (synchronize first) and it is not used afterwards.
pub unsafe fn destroy(stream: aclrtStream) -> Result<()> {
    let f = acl()?.aclrtDestroyStream()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtDestroyStream", unsafe { f(stream) })
}

/// `aclrtSynchronizeStream`: blocks until the stream's work is done.
///
/// # Safety
/// `stream` is a live stream (or null for the default stream).
pub unsafe fn synchronize(stream: aclrtStream) -> Result<()> {
    let f = acl()?.aclrtSynchronizeStream()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtSynchronizeStream", unsafe { f(stream) })
}

/// `aclrtStreamQuery`: whether all the stream's work is done.
///
/// # Safety
/// `stream` is a live stream (or null for the default stream).
pub unsafe fn query(stream: aclrtStream) -> Result<bool> {
    let f = acl()?.aclrtStreamQuery()?;
    let mut status = ascend_sys::ACL_STREAM_STATUS_RESERVED;
    // SAFETY: the stream is live (caller); `status` is a valid place.
    check("aclrtStreamQuery", unsafe { f(stream, &mut status) })?;
    Ok(status == ascend_sys::ACL_STREAM_STATUS_COMPLETE)
}

/// `aclrtStreamWaitEvent`: later work on `stream` waits for `event`.
///
/// # Safety
/// Both handles are live, and `event` stays alive until `stream` has passed
/// the wait.
pub unsafe fn wait_event(stream: aclrtStream, event: aclrtEvent) -> Result<()> {
    let f = acl()?.aclrtStreamWaitEvent()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtStreamWaitEvent", unsafe { f(stream, event) })
}

/// `aclrtLaunchHostFunc`: runs `func(args)` on a runtime thread when the
/// stream reaches this point; later work on the stream waits for it.
///
/// # Safety
/// `stream` is live; `func` may be called once with `args` from another
/// thread, so `args` must stay valid (and be `Send`-safe) until then; the
/// function must not call AscendCL.
pub unsafe fn launch_host_func(
    stream: aclrtStream,
    func: aclrtHostFunc,
    args: *mut c_void,
) -> Result<()> {
    let f = acl()?.aclrtLaunchHostFunc()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtLaunchHostFunc", unsafe { f(stream, func, args) })
}
