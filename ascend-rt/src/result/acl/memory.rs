//! Memory: device and pinned host allocation, copies, memset.
//!
//! Invariants: thin wrappers; sizes are in bytes, as in C. Pointers are
//! checked by nobody here: every function that takes one is `unsafe`.

use std::ffi::c_void;
use std::ptr;

use ascend_sys::{aclrtMemMallocPolicy, aclrtMemcpyKind, aclrtStream};

use super::table as acl;
use crate::error::Result;
use crate::result::check::check;

/// `aclrtMalloc`: `size` bytes (non-zero) of device memory on the current
/// device; contents unspecified.
pub fn malloc(size: usize, policy: aclrtMemMallocPolicy) -> Result<*mut c_void> {
    let f = acl()?.aclrtMalloc()?;
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: `p` is a valid place for the pointer; size and policy are
    // plain values (a zero size is an error code, not undefined behaviour).
    check("aclrtMalloc", unsafe { f(&mut p, size, policy) })?;
    Ok(p)
}

/// `aclrtFree`.
///
/// # Safety
/// `ptr` came from [`malloc`], is not freed yet, no queued work uses it, and
/// it is not used afterwards.
pub unsafe fn free(ptr: *mut c_void) -> Result<()> {
    let f = acl()?.aclrtFree()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtFree", unsafe { f(ptr) })
}

/// `aclrtMallocHost`: `size` bytes of pinned host memory; contents
/// unspecified.
pub fn malloc_host(size: usize) -> Result<*mut c_void> {
    let f = acl()?.aclrtMallocHost()?;
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: `p` is a valid place for the pointer.
    check("aclrtMallocHost", unsafe { f(&mut p, size) })?;
    Ok(p)
}

/// `aclrtFreeHost`.
///
/// # Safety
/// `ptr` came from [`malloc_host`], is not freed yet, no queued work uses
/// it, and it is not used afterwards.
pub unsafe fn free_host(ptr: *mut c_void) -> Result<()> {
    let f = acl()?.aclrtFreeHost()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtFreeHost", unsafe { f(ptr) })
}

/// `aclrtMemcpy`: a synchronous copy of `count` bytes.
///
/// # Safety
/// `dst` is valid for `dst_max` bytes of writes and `src` for `count` bytes
/// of reads, of the kinds `kind` names; no queued work touches either range.
pub unsafe fn memcpy(
    dst: *mut c_void,
    dst_max: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
) -> Result<()> {
    let f = acl()?.aclrtMemcpy()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtMemcpy", unsafe { f(dst, dst_max, src, count, kind) })
}

/// `aclrtMemcpyAsync`: a copy of `count` bytes queued on `stream`.
///
/// # Safety
/// As [`memcpy`], and both ranges stay valid and untouched by the host and
/// by other streams until the stream has passed the copy. Host memory must
/// be pinned ([`malloc_host`]) for the copy to be asynchronous.
pub unsafe fn memcpy_async(
    dst: *mut c_void,
    dst_max: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> Result<()> {
    let f = acl()?.aclrtMemcpyAsync()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtMemcpyAsync", unsafe {
        f(dst, dst_max, src, count, kind, stream)
    })
}

/// `aclrtMemset`: sets `count` bytes to `value`, at once.
///
/// # Safety
/// `ptr` is ACL memory valid for `max` bytes; no queued work touches it.
pub unsafe fn memset(ptr: *mut c_void, max: usize, value: u8, count: usize) -> Result<()> {
    let f = acl()?.aclrtMemset()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtMemset", unsafe {
        f(ptr, max, i32::from(value), count)
    })
}

/// `aclrtMemsetAsync`: sets `count` bytes to `value`, queued on `stream`.
///
/// # Safety
/// As [`memset`], and the range stays valid until the stream has passed it.
pub unsafe fn memset_async(
    ptr: *mut c_void,
    max: usize,
    value: u8,
    count: usize,
    stream: aclrtStream,
) -> Result<()> {
    let f = acl()?.aclrtMemsetAsync()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtMemsetAsync", unsafe {
        f(ptr, max, i32::from(value), count, stream)
    })
}
