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

/// A device physical-memory property (`aclrtPhysicalMemProp`) for
/// `device`: handle type none, pinned, huge pages.
pub fn physical_prop(device: u32) -> ascend_sys::aclrtPhysicalMemProp {
    ascend_sys::aclrtPhysicalMemProp {
        handleType: ascend_sys::ACL_MEM_HANDLE_TYPE_NONE,
        allocationType: ascend_sys::ACL_MEM_ALLOCATION_TYPE_PINNED,
        memAttr: ascend_sys::ACL_HBM_MEM_HUGE,
        location: ascend_sys::aclrtMemLocation {
            id: device,
            type_: ascend_sys::ACL_MEM_LOCATION_TYPE_DEVICE,
        },
        reserve: 0,
    }
}

/// `aclrtMemGetAllocationGranularity`: the granularity for `prop`.
pub fn allocation_granularity(
    prop: &ascend_sys::aclrtPhysicalMemProp,
    option: ascend_sys::aclrtMemGranularityOptions,
) -> Result<usize> {
    let f = acl()?.aclrtMemGetAllocationGranularity()?;
    let mut g = 0usize;
    let mut p = *prop;
    // SAFETY: `p` is a valid property read by the call; `g` a valid place.
    check("aclrtMemGetAllocationGranularity", unsafe {
        f(&mut p, option, &mut g)
    })?;
    Ok(g)
}

/// `aclrtReserveMemAddress`: reserves `size` bytes of virtual address space
/// (alignment 0, no expected address, normal pages).
pub fn reserve_mem_address(size: usize) -> Result<*mut c_void> {
    let f = acl()?.aclrtReserveMemAddress()?;
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: `p` is a valid place for the pointer; the rest are values.
    check("aclrtReserveMemAddress", unsafe {
        f(&mut p, size, 0, ptr::null_mut(), 0)
    })?;
    Ok(p)
}

/// `aclrtReleaseMemAddress`.
///
/// # Safety
/// `ptr` came from [`reserve_mem_address`], is not released yet, has no
/// mapping, and is not used afterwards.
pub unsafe fn release_mem_address(ptr: *mut c_void) -> Result<()> {
    let f = acl()?.aclrtReleaseMemAddress()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtReleaseMemAddress", unsafe { f(ptr) })
}

/// `aclrtMallocPhysical`: `size` bytes (a granularity multiple) of physical
/// memory with `prop`.
pub fn malloc_physical(
    size: usize,
    prop: &ascend_sys::aclrtPhysicalMemProp,
) -> Result<ascend_sys::aclrtDrvMemHandle> {
    let f = acl()?.aclrtMallocPhysical()?;
    let mut h: ascend_sys::aclrtDrvMemHandle = ptr::null_mut();
    // SAFETY: `h` is a valid place for the handle, `prop` a valid property.
    check("aclrtMallocPhysical", unsafe { f(&mut h, size, prop, 0) })?;
    Ok(h)
}

/// `aclrtFreePhysical`.
///
/// # Safety
/// `handle` came from [`malloc_physical`], is not freed yet, is not
/// mapped, and is not used afterwards.
pub unsafe fn free_physical(handle: ascend_sys::aclrtDrvMemHandle) -> Result<()> {
    let f = acl()?.aclrtFreePhysical()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtFreePhysical", unsafe { f(handle) })
}

/// `aclrtMapMem`: maps the whole of `handle` (`size` bytes) at `ptr`.
///
/// # Safety
/// `ptr` lies in a live reservation with `size` unmapped bytes from it,
/// and `handle` is a live, unmapped handle of `size` bytes.
pub unsafe fn map_mem(
    ptr: *mut c_void,
    size: usize,
    handle: ascend_sys::aclrtDrvMemHandle,
) -> Result<()> {
    let f = acl()?.aclrtMapMem()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtMapMem", unsafe { f(ptr, size, 0, handle, 0) })
}

/// `aclrtUnmapMem`.
///
/// # Safety
/// `ptr` starts a live mapping that no queued work uses and that is not
/// used afterwards.
pub unsafe fn unmap_mem(ptr: *mut c_void) -> Result<()> {
    let f = acl()?.aclrtUnmapMem()?;
    // SAFETY: guaranteed by the caller.
    check("aclrtUnmapMem", unsafe { f(ptr) })
}
