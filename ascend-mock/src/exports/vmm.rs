//! Virtual memory: `aclrtMemGetAllocationGranularity`,
//! `aclrtReserveMemAddress`/`aclrtReleaseMemAddress`,
//! `aclrtMallocPhysical`/`aclrtFreePhysical` and
//! `aclrtMapMem`/`aclrtUnmapMem`.
//!
//! Thin shells over the device core (`memory`, which documents the
//! design: reserved ranges are real address space, mapped parts are
//! registered device memory). Argument rules follow CANN's documentation:
//! reserved arguments (`alignment`, `offset`, `flags`) must be 0, sizes are
//! multiples of the granularity (2 MiB, 1 GiB for the `*_HUGE1G`
//! attributes), a mapping covers a whole handle. Bad arguments are
//! `ACL_ERROR_INVALID_PARAM`; a non-NULL `expectPtr` is
//! `ACL_ERROR_RT_MEMORY_ALLOCATION` (the mock cannot place a range).

use std::ffi::c_void;

use ascend_sys::*;

use super::write_out;
use crate::error::{MockError, MockResult};
use crate::gate::api_call;
use crate::memory;
use crate::runtime;

fn invalid(message: impl Into<String>) -> MockError {
    MockError::new(ACL_ERROR_INVALID_PARAM, message)
}

/// Checks `prop` and returns its device and granularity.
///
/// # Safety
/// `prop` is NULL or valid for reads.
unsafe fn check_prop(prop: *const aclrtPhysicalMemProp) -> MockResult<(u32, usize)> {
    if prop.is_null() {
        return Err(invalid("prop is NULL"));
    }
    // SAFETY: non-NULL and valid for reads by the caller's contract.
    let p = unsafe { prop.read() };
    if p.handleType != ACL_MEM_HANDLE_TYPE_NONE {
        return Err(invalid(format!(
            "prop->handleType {} is not ACL_MEM_HANDLE_TYPE_NONE",
            p.handleType
        )));
    }
    if p.allocationType != ACL_MEM_ALLOCATION_TYPE_PINNED {
        return Err(invalid(format!(
            "prop->allocationType {} is not ACL_MEM_ALLOCATION_TYPE_PINNED",
            p.allocationType
        )));
    }
    if p.location.type_ != ACL_MEM_LOCATION_TYPE_DEVICE {
        return Err(invalid(format!(
            "prop->location.type {} is not ACL_MEM_LOCATION_TYPE_DEVICE (the mock maps device memory only)",
            p.location.type_
        )));
    }
    if p.memAttr > ACL_MEM_P2P_HUGE1G {
        return Err(invalid(format!(
            "prop->memAttr {} is not an aclrtMemAttr",
            p.memAttr
        )));
    }
    let device = runtime::with_runtime(|rt| rt.check_device(p.location.id.into()))?;
    Ok((device, memory::vmm_granularity(p.memAttr)))
}

/// The allocation granularity for `prop`: 2 MiB (1 GiB for the
/// `*_HUGE1G` attributes), minimum and recommended alike.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMemGetAllocationGranularity(
    prop: *mut aclrtPhysicalMemProp,
    option: aclrtMemGranularityOptions,
    granularity: *mut usize,
) -> aclError {
    api_call("aclrtMemGetAllocationGranularity", || {
        if granularity.is_null() {
            return Err(invalid("granularity is NULL"));
        }
        if option != ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM
            && option != ACL_RT_MEM_ALLOC_GRANULARITY_RECOMMENDED
        {
            return Err(invalid(format!(
                "option {option} is neither ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM nor ACL_RT_MEM_ALLOC_GRANULARITY_RECOMMENDED"
            )));
        }
        // SAFETY: prop is NULL or valid for reads by contract.
        let (_, g) = unsafe { check_prop(prop) }?;
        // SAFETY: granularity was checked non-NULL; valid for writes by contract.
        unsafe { write_out(granularity, g, "granularity") }
    })
}

/// Reserves `size` bytes of virtual address space (rounded up to 2 MiB,
/// starting on a 2 MiB boundary). `alignment` must be 0, `expectPtr` NULL,
/// `flags` 0 (normal pages) or 1 (huge pages).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtReserveMemAddress(
    virPtr: *mut *mut c_void,
    size: usize,
    alignment: usize,
    expectPtr: *mut c_void,
    flags: u64,
) -> aclError {
    api_call("aclrtReserveMemAddress", || {
        if virPtr.is_null() {
            return Err(invalid("virPtr is NULL"));
        }
        if alignment != 0 {
            return Err(invalid(format!(
                "alignment {alignment} is not 0 (reserved)"
            )));
        }
        if flags > 1 {
            return Err(invalid(format!(
                "flags {flags} is neither 0 (normal pages) nor 1 (huge pages)"
            )));
        }
        if !expectPtr.is_null() {
            return Err(MockError::new(
                ACL_ERROR_RT_MEMORY_ALLOCATION,
                format!(
                    "expectPtr {expectPtr:p}: the mock cannot place a range at a requested address; pass NULL"
                ),
            ));
        }
        runtime::with_runtime(|_| Ok(()))?;
        let base = memory::reserve(size)?;
        // SAFETY: virPtr was checked non-NULL; valid for writes by contract.
        unsafe { write_out(virPtr, base as *mut c_void, "virPtr") }
    })
}

/// Releases a range from `aclrtReserveMemAddress`; nothing may be mapped
/// in it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtReleaseMemAddress(virPtr: *mut c_void) -> aclError {
    api_call("aclrtReleaseMemAddress", || {
        memory::release_reservation(virPtr as usize)
    })
}

/// Allocates physical device memory of `size` bytes (a multiple of the
/// granularity), charged to the device of `prop->location.id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMallocPhysical(
    handle: *mut aclrtDrvMemHandle,
    size: usize,
    prop: *const aclrtPhysicalMemProp,
    flags: u64,
) -> aclError {
    api_call("aclrtMallocPhysical", || {
        if handle.is_null() {
            return Err(invalid("handle is NULL"));
        }
        if flags != 0 {
            return Err(invalid(format!("flags {flags} is not 0 (reserved)")));
        }
        // SAFETY: prop is NULL or valid for reads by contract.
        let (device, g) = unsafe { check_prop(prop) }?;
        let h = memory::malloc_physical(size, device, g)?;
        // SAFETY: handle was checked non-NULL; valid for writes by contract.
        unsafe { write_out(handle, h as aclrtDrvMemHandle, "handle") }
    })
}

/// Frees physical memory from `aclrtMallocPhysical`; it must be unmapped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtFreePhysical(handle: aclrtDrvMemHandle) -> aclError {
    api_call("aclrtFreePhysical", || {
        if handle.is_null() {
            return Err(invalid("handle is NULL"));
        }
        runtime::with_runtime(|_| Ok(()))?;
        memory::free_physical(handle as usize)
    })
}

/// Maps the whole of `handle` (`size` is its size) at `virPtr`, a
/// granularity-aligned address inside a reserved range. `offset` and
/// `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtMapMem(
    virPtr: *mut c_void,
    size: usize,
    offset: usize,
    handle: aclrtDrvMemHandle,
    flags: u64,
) -> aclError {
    api_call("aclrtMapMem", || {
        if virPtr.is_null() {
            return Err(invalid("virPtr is NULL"));
        }
        if handle.is_null() {
            return Err(invalid("handle is NULL"));
        }
        if offset != 0 {
            return Err(invalid(format!("offset {offset} is not 0 (reserved)")));
        }
        if flags != 0 {
            return Err(invalid(format!("flags {flags} is not 0 (reserved)")));
        }
        runtime::with_runtime(|_| Ok(()))?;
        memory::map(virPtr as usize, size, handle as usize)
    })
}

/// Unmaps the mapping starting at `virPtr`, after the work queued on every
/// stream before the call has run; the handle keeps its bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtUnmapMem(virPtr: *mut c_void) -> aclError {
    api_call("aclrtUnmapMem", || runtime::unmap(virPtr as usize))
}
