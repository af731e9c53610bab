//! Contexts: create, destroy, make current, query.
//!
//! Invariants: thin wrappers; the current context is per thread, and only the
//! safe layer's cache (`Context::bind_to_thread`) decides when to change it.
//! Every call of this layer that may change the calling thread's current
//! context (the ones here that create, destroy or set one, and
//! `device::set` / `device::reset`) first counts itself in a per-thread
//! counter, [`current_changes`]: the safe layer's cache of which context is
//! current is valid only while that count is what it was when the cache was
//! written, so it is never wrong, even when these functions are called
//! directly.

use std::cell::Cell;
use std::ptr;

use ascend_sys::{aclrtContext, aclrtStream};

use super::table as acl;
use crate::error::Result;
use crate::result::check::check;

thread_local! {
    /// How many calls of this layer that may change the current context
    /// this thread has begun.
    static CHANGES: Cell<u64> = const { Cell::new(0) };
}

/// How many calls that may change the calling thread's current context
/// (`aclrtCreateContext`, `aclrtDestroyContext`, `aclrtSetCurrentContext`,
/// `aclrtSetDevice`, `aclrtResetDevice`) this thread has begun through this
/// layer. Whatever a thread knows about its current context holds only
/// while this number stays the same.
pub fn current_changes() -> u64 {
    CHANGES.with(Cell::get)
}

/// Counts a call that may change the current context, just before it is
/// made.
pub(super) fn changing_current() {
    CHANGES.with(|c| c.set(c.get().wrapping_add(1)));
}

/// `aclrtCreateContext`: a new context on `ordinal`, made current on the
/// calling thread.
pub fn create(ordinal: i32) -> Result<aclrtContext> {
    let f = acl()?.aclrtCreateContext()?;
    changing_current();
    let mut ctx: aclrtContext = ptr::null_mut();
    // SAFETY: `ctx` is a valid place for the handle.
    check("aclrtCreateContext", unsafe { f(&mut ctx, ordinal) })?;
    Ok(ctx)
}

/// `aclrtDestroyContext`.
///
/// # Safety
/// `ctx` was made by [`create`], is not destroyed yet, and none of its
/// streams, events or memory is used afterwards.
pub unsafe fn destroy(ctx: aclrtContext) -> Result<()> {
    let f = acl()?.aclrtDestroyContext()?;
    changing_current();
    // SAFETY: guaranteed by the caller.
    check("aclrtDestroyContext", unsafe { f(ctx) })
}

/// `aclrtSetCurrentContext`.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn set_current(ctx: aclrtContext) -> Result<()> {
    let f = acl()?.aclrtSetCurrentContext()?;
    changing_current();
    // SAFETY: guaranteed by the caller.
    check("aclrtSetCurrentContext", unsafe { f(ctx) })
}

/// `aclrtGetCurrentContext`.
pub fn get_current() -> Result<aclrtContext> {
    let f = acl()?.aclrtGetCurrentContext()?;
    let mut ctx: aclrtContext = ptr::null_mut();
    // SAFETY: `ctx` is a valid place for the handle.
    check("aclrtGetCurrentContext", unsafe { f(&mut ctx) })?;
    Ok(ctx)
}

/// `aclrtCtxGetCurrentDefaultStream`: the current context's default stream.
pub fn current_default_stream() -> Result<aclrtStream> {
    let f = acl()?.aclrtCtxGetCurrentDefaultStream()?;
    let mut s: aclrtStream = ptr::null_mut();
    // SAFETY: `s` is a valid place for the handle.
    check("aclrtCtxGetCurrentDefaultStream", unsafe { f(&mut s) })?;
    Ok(s)
}
