//! Devices: count, binding to the calling thread, reset, properties.
//!
//! Invariants: thin wrappers; `set` and `reset` change per-thread and
//! per-device runtime state, which the safe layer (`Context`) keeps balanced.

use std::ffi::CStr;

use ascend_sys::{aclrtDevAttr, aclrtMemAttr};

use super::table as acl;
use crate::error::Result;
use crate::result::check::{check, null_result};

/// `aclrtGetDeviceCount`.
pub fn count() -> Result<u32> {
    let f = acl()?.aclrtGetDeviceCount()?;
    let mut n = 0u32;
    // SAFETY: `n` is a valid place for the count.
    check("aclrtGetDeviceCount", unsafe { f(&mut n) })?;
    Ok(n)
}

/// `aclrtSetDevice`: binds `ordinal` to the calling thread (reference
/// counted against [`reset`]) and makes its default context current.
pub fn set(ordinal: i32) -> Result<()> {
    let f = acl()?.aclrtSetDevice()?;
    super::context::changing_current();
    // SAFETY: takes a plain integer; an invalid ordinal is an error code.
    check("aclrtSetDevice", unsafe { f(ordinal) })
}

/// `aclrtResetDevice`: releases one [`set`].
///
/// # Safety
/// When this drops the last reference, every resource of the device (its
/// default context, streams, events and memory) is freed: the caller must
/// hold no handle into it that is still used afterwards.
pub unsafe fn reset(ordinal: i32) -> Result<()> {
    let f = acl()?.aclrtResetDevice()?;
    super::context::changing_current();
    // SAFETY: the caller guarantees nothing uses the device's resources after
    // a final reset; the argument is a plain integer.
    check("aclrtResetDevice", unsafe { f(ordinal) })
}

/// `aclrtGetDevice`: the calling thread's current device.
pub fn get() -> Result<i32> {
    let f = acl()?.aclrtGetDevice()?;
    let mut d = 0i32;
    // SAFETY: `d` is a valid place for the ordinal.
    check("aclrtGetDevice", unsafe { f(&mut d) })?;
    Ok(d)
}

/// `aclrtSynchronizeDevice`: waits for all work of the current device.
pub fn synchronize() -> Result<()> {
    let f = acl()?.aclrtSynchronizeDevice()?;
    // SAFETY: no arguments.
    check("aclrtSynchronizeDevice", unsafe { f() })
}

/// `aclrtGetSocName`: the SoC's name, e.g. `Ascend910B1`.
pub fn soc_name() -> Result<String> {
    let f = acl()?.aclrtGetSocName()?;
    // SAFETY: no arguments; returns null or a NUL-terminated string owned by
    // the runtime that lives as long as the runtime; we copy it at once.
    let p = unsafe { f() };
    if p.is_null() {
        return Err(null_result("aclrtGetSocName"));
    }
    // SAFETY: `p` is non-null and NUL-terminated (see above).
    Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// `aclrtGetMemInfo`: `(free, total)` bytes of the current device.
pub fn mem_info(attr: aclrtMemAttr) -> Result<(usize, usize)> {
    let f = acl()?.aclrtGetMemInfo()?;
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both out-pointers are valid; `attr` is a plain enum value.
    check("aclrtGetMemInfo", unsafe { f(attr, &mut free, &mut total) })?;
    Ok((free, total))
}

/// `aclrtGetDeviceInfo`: one attribute of a device.
pub fn info(ordinal: u32, attr: aclrtDevAttr) -> Result<i64> {
    let f = acl()?.aclrtGetDeviceInfo()?;
    let mut v = 0i64;
    // SAFETY: `v` is a valid place for the value; the rest are plain values.
    check("aclrtGetDeviceInfo", unsafe { f(ordinal, attr, &mut v) })?;
    Ok(v)
}
