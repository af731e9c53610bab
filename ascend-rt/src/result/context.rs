//! Contexts: create, destroy, make current, query.
//!
//! Invariants: thin wrappers; the current context is per thread, and only the
//! safe layer's cache (`context::Context::bind_to_thread`) decides when to
//! change it.

use std::ptr;

use ascend_sys::{aclrtContext, aclrtStream};

use super::{acl, check};
use crate::error::Result;

/// `aclrtCreateContext`: a new context on `ordinal`, made current on the
/// calling thread.
pub fn create(ordinal: i32) -> Result<aclrtContext> {
    let f = acl()?.aclrtCreateContext()?;
    crate::context::forget_current();
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
    crate::context::forget_current();
    // SAFETY: guaranteed by the caller.
    check("aclrtDestroyContext", unsafe { f(ctx) })
}

/// `aclrtSetCurrentContext`.
///
/// # Safety
/// `ctx` is a live context.
pub unsafe fn set_current(ctx: aclrtContext) -> Result<()> {
    let f = acl()?.aclrtSetCurrentContext()?;
    crate::context::forget_current();
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
