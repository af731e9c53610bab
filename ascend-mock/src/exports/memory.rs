//! Memory: allocation, copies, memset, memory info and pointer attributes.
//!
//! Thin shells: each parses its arguments and calls the device core
//! (`memory` for allocations, `runtime::free` for frees, `copy` for
//! copies and memsets, which documents their checks, ordering and race
//! detection).
//!
//! `aclrtFree`/`aclrtFreeHost` return at once: the pointer is invalid
//! from then on and its bytes count as free, but the block goes back to
//! the allocator only after every stream has run the work queued before
//! the free, so a queued task never touches released memory. A bad free is
//! a `double free`, `invalid free` or `wrong memory kind` report, and a
//! free of device memory that queued work not ordered before the host
//! still uses is a `race` report (CANN's `aclrtFree` does not wait for
//! that work); the racing call fails with `ACL_ERROR_RT_PARAM_INVALID` and
//! does nothing.

use std::ffi::c_void;

use ascend_sys::*;

use super::write_out;
use crate::copy::{self, Shape};
use crate::error::{MockError, MockResult};
use crate::gate::api_call;
use crate::memory::{self, Location, MemKind, classify};
use crate::runtime;

fn malloc(dev_ptr: *mut *mut c_void, size: usize, align32: bool) -> MockResult<()> {
    if dev_ptr.is_null() {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "devPtr is NULL"));
    }
    let device = runtime::with_runtime(|rt| Ok(rt.current_context()?.device))?;
    let p = memory::allocate(size, MemKind::Device(device), align32)?;
    // SAFETY: dev_ptr was checked non-NULL; valid for writes by contract.
    unsafe { write_out(dev_ptr, p as *mut c_void, "devPtr") }
}

/// Allocates device memory on the current device: 512-byte aligned (64
/// under `ASCEND_MOCK_STRICT`),
/// charged `round_up(size, 32) + 32` bytes, zero-filled (CANN leaves it
/// uninitialised; callers must not rely on the zeros). Any policy value
/// is accepted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMalloc(
    devPtr: *mut *mut c_void,
    size: usize,
    policy: aclrtMemMallocPolicy,
) -> aclError {
    let _ = policy;
    api_call("aclrtMalloc", || malloc(devPtr, size, false))
}

/// Like `aclrtMalloc`, charging `round_up(size, 32)` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMallocAlign32(
    devPtr: *mut *mut c_void,
    size: usize,
    policy: aclrtMemMallocPolicy,
) -> aclError {
    let _ = policy;
    api_call("aclrtMallocAlign32", || malloc(devPtr, size, true))
}

/// Allocates pinned host memory (not charged to any device).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMallocHost(hostPtr: *mut *mut c_void, size: usize) -> aclError {
    api_call("aclrtMallocHost", || {
        if hostPtr.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "hostPtr is NULL"));
        }
        runtime::with_runtime(|_| Ok(()))?;
        let p = memory::allocate(size, MemKind::PinnedHost, false)?;
        // SAFETY: hostPtr was checked non-NULL; valid for writes by contract.
        unsafe { write_out(hostPtr, p as *mut c_void, "hostPtr") }
    })
}

/// Frees device memory from `aclrtMalloc`; an unknown pointer is an error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtFree(devPtr: *mut c_void) -> aclError {
    api_call("aclrtFree", || runtime::free(devPtr as usize, true))
}

/// Frees pinned host memory from `aclrtMallocHost`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtFreeHost(hostPtr: *mut c_void) -> aclError {
    api_call("aclrtFreeHost", || runtime::free(hostPtr as usize, false))
}

/// The shape of a 2-D copy of `height` rows of `width` bytes.
fn shape(dpitch: usize, spitch: usize, width: usize, height: usize) -> Shape {
    Shape {
        dpitch,
        spitch,
        width,
        rows: height,
    }
}

/// Copies `count` bytes at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy(
    dst: *mut c_void,
    destMax: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
) -> aclError {
    api_call("aclrtMemcpy", || copy::copy(dst, destMax, src, count, kind))
}

/// Queues a copy of `count` bytes on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpyAsync(
    dst: *mut c_void,
    destMax: usize,
    src: *const c_void,
    count: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtMemcpyAsync", || {
        copy::copy_async("aclrtMemcpyAsync", dst, destMax, src, count, kind, stream)
    })
}

/// Copies `height` rows of `width` bytes at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy2d(
    dst: *mut c_void,
    dpitch: usize,
    src: *const c_void,
    spitch: usize,
    width: usize,
    height: usize,
    kind: aclrtMemcpyKind,
) -> aclError {
    api_call("aclrtMemcpy2d", || {
        copy::copy_2d(dst, src, shape(dpitch, spitch, width, height), kind)
    })
}

/// Queues a copy of `height` rows of `width` bytes on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemcpy2dAsync(
    dst: *mut c_void,
    dpitch: usize,
    src: *const c_void,
    spitch: usize,
    width: usize,
    height: usize,
    kind: aclrtMemcpyKind,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtMemcpy2dAsync", || {
        let shape = shape(dpitch, spitch, width, height);
        copy::copy_2d_async("aclrtMemcpy2dAsync", dst, src, shape, kind, stream)
    })
}

/// Sets `count` bytes to the low byte of `value` at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemset(
    devPtr: *mut c_void,
    maxCount: usize,
    value: i32,
    count: usize,
) -> aclError {
    api_call("aclrtMemset", || {
        copy::memset(devPtr, maxCount, value, count)
    })
}

/// Queues a memset on the stream.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemsetAsync(
    devPtr: *mut c_void,
    maxCount: usize,
    value: i32,
    count: usize,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtMemsetAsync", || {
        copy::memset_async("aclrtMemsetAsync", devPtr, maxCount, value, count, stream)
    })
}

/// Free and total bytes of the current device (every attribute reports the
/// device's single memory pool).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetMemInfo(
    attr: aclrtMemAttr,
    free: *mut usize,
    total: *mut usize,
) -> aclError {
    api_call("aclrtGetMemInfo", || {
        if attr > ACL_MEM_P2P_HUGE1G {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("attr {attr} is not an aclrtMemAttr"),
            ));
        }
        if free.is_null() || total.is_null() {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                "free or total is NULL",
            ));
        }
        let device = runtime::with_runtime(|rt| Ok(rt.current_context()?.device))?;
        let (f, t) = memory::mem_info(device);
        // SAFETY: both pointers were checked non-NULL; valid for writes by
        // contract.
        unsafe {
            write_out(free, f as usize, "free")?;
            write_out(total, t as usize, "total")
        }
    })
}

/// Where `ptr` lives: device N, pinned host, or unregistered host memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtPointerGetAttributes(
    ptr: *const c_void,
    attributes: *mut aclrtPtrAttributes,
) -> aclError {
    api_call("aclrtPointerGetAttributes", || {
        if ptr.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "ptr is NULL"));
        }
        let mut a = aclrtPtrAttributes::default();
        match classify(ptr as usize) {
            Location::Device { device, size, .. } => {
                a.location.type_ = ACL_MEM_LOCATION_TYPE_DEVICE;
                a.location.id = device;
                a.pageSize = if size > 1 << 20 { 2 << 20 } else { 4096 };
            }
            Location::PinnedHost { .. } => {
                a.location.type_ = ACL_MEM_LOCATION_TYPE_HOST;
                a.pageSize = 4096;
            }
            Location::Host => {
                a.location.type_ = ACL_MEM_LOCATION_TYPE_UNREGISTERED;
                a.pageSize = 4096;
            }
        }
        // SAFETY: attributes is NULL or valid for writes (caller contract).
        unsafe { write_out(attributes, a, "attributes") }
    })
}
