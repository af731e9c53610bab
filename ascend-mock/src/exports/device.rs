//! Devices and contexts: `aclrtSetDevice`, `aclrtResetDevice`, contexts,
//! device queries and peer access.
//!
//! The reset that releases a device (the last `aclrtResetDevice`, or
//! `aclrtResetDeviceForce`) first lists what the caller left alive on it
//! (memory, streams, events, explicit contexts, aclnn tensors and
//! executors on its memory) as one `leak` report.

use std::sync::Arc;

use ascend_sys::*;

use super::write_out;
use crate::config;
use crate::error::{MockError, MockResult};
use crate::fault;
use crate::gate::api_call;
use crate::runtime::{self, Handle, HandleKind, set_current_context, stop_streams};
use crate::stream::{Stream, timeout_from_ms};

/// Number of mock devices (works before `aclInit` too).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDeviceCount(count: *mut u32) -> aclError {
    api_call("aclrtGetDeviceCount", || {
        let n = config::config().devices;
        // SAFETY: count is NULL or valid for writes (caller contract).
        unsafe { write_out(count, n, "count") }
    })
}

/// Takes a reference on `deviceId`, creating its default context and
/// stream on the first one, and makes that context current on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSetDevice(deviceId: i32) -> aclError {
    api_call("aclrtSetDevice", || {
        runtime::with_runtime(|rt| {
            let d = rt.check_device(deviceId.into())?;
            let ctx = match rt.devices[d as usize].default_context {
                Some(h) => h,
                None => rt.create_context(d, false)?.handle,
            };
            let dev = &mut rt.devices[d as usize];
            dev.default_context = Some(ctx);
            dev.refcount += 1;
            set_current_context(Some(ctx));
            Ok(())
        })
    })
}

/// Drops one reference on `deviceId`; the last one frees the device's
/// contexts, streams (after their queued work), events and memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtResetDevice(deviceId: i32) -> aclError {
    api_call("aclrtResetDevice", || {
        runtime::reset_device(deviceId, false)
    })
}

/// Frees the device's resources regardless of its reference count.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtResetDeviceForce(deviceId: i32) -> aclError {
    api_call("aclrtResetDeviceForce", || {
        runtime::reset_device(deviceId, true)
    })
}

/// The device of this thread's current context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDevice(deviceId: *mut i32) -> aclError {
    api_call("aclrtGetDevice", || {
        let d = runtime::with_runtime(|rt| Ok(rt.current_context()?.device))?;
        // SAFETY: deviceId is NULL or valid for writes (caller contract).
        unsafe { write_out(deviceId, d as i32, "deviceId") }
    })
}

/// Always `ACL_HOST`: the application runs on the host CPU.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetRunMode(runMode: *mut aclrtRunMode) -> aclError {
    api_call("aclrtGetRunMode", || {
        // SAFETY: runMode is NULL or valid for writes (caller contract).
        unsafe { write_out(runMode, ACL_HOST, "runMode") }
    })
}

/// The value of a device attribute (Ascend 910B-like numbers).
pub fn device_attribute(attr: aclrtDevAttr, device: u32, memory: u64) -> Option<i64> {
    Some(match attr {
        ACL_DEV_ATTR_AICPU_CORE_NUM => 6,
        ACL_DEV_ATTR_AICORE_CORE_NUM => 20,
        ACL_DEV_ATTR_CUBE_CORE_NUM => 20,
        ACL_DEV_ATTR_VECTOR_CORE_NUM => 40,
        ACL_DEV_ATTR_WARP_SIZE => 32,
        ACL_DEV_ATTR_UBUF_PER_VECTOR_CORE => 192 << 10,
        ACL_DEV_ATTR_TOTAL_GLOBAL_MEM_SIZE => memory as i64,
        ACL_DEV_ATTR_L2_CACHE_SIZE => 192 << 20,
        ACL_DEV_ATTR_PHY_CHIP_ID => i64::from(device),
        ACL_DEV_ATTR_NPU_ARCH => 2201,
        _ => return None,
    })
}

/// Device attributes: core counts, memory size, L2 size, chip id, arch.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetDeviceInfo(
    deviceId: u32,
    attr: aclrtDevAttr,
    value: *mut i64,
) -> aclError {
    api_call("aclrtGetDeviceInfo", || {
        let cfg = runtime::with_runtime(|rt| {
            rt.check_device(deviceId.into())?;
            Ok(rt.config.clone())
        })?;
        let v = device_attribute(attr, deviceId, cfg.memory_per_device).ok_or_else(|| {
            MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("device attribute {attr} is not supported"),
            )
        })?;
        // SAFETY: value is NULL or valid for writes (caller contract).
        unsafe { write_out(value, v, "value") }
    })
}

/// `ACL_RT_DEVICE_STATUS_NORMAL` for an existing device,
/// `ACL_RT_DEVICE_STATUS_ABNORMAL` once it is lost (see `crate::fault`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtQueryDeviceStatus(
    deviceId: i32,
    deviceStatus: *mut aclrtDeviceStatus,
) -> aclError {
    api_call("aclrtQueryDeviceStatus", || {
        let d = runtime::with_runtime(|rt| rt.check_device_id(deviceId.into()))?;
        let status = if fault::device_lost(d) {
            ACL_RT_DEVICE_STATUS_ABNORMAL
        } else {
            ACL_RT_DEVICE_STATUS_NORMAL
        };
        // SAFETY: deviceStatus is NULL or valid for writes (caller contract).
        unsafe { write_out(deviceStatus, status, "deviceStatus") }
    })
}

fn synchronize_device(timeout: i32) -> MockResult<()> {
    let timeout = timeout_from_ms(timeout)?;
    let streams = runtime::with_runtime(|rt| {
        let ctx = rt.current_context()?;
        Ok(rt.device_streams(ctx.device))
    })?;
    let mut first = Ok(());
    for s in streams {
        let r = s.synchronize_observed(timeout);
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// Waits for every stream of the current device.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeDevice() -> aclError {
    api_call("aclrtSynchronizeDevice", || synchronize_device(-1))
}

/// Waits for every stream of the current device, at most `timeout` ms per
/// stream (-1 forever).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeDeviceWithTimeout(timeout: i32) -> aclError {
    api_call("aclrtSynchronizeDeviceWithTimeout", || {
        synchronize_device(timeout)
    })
}

/// Creates an explicit context on `deviceId` and makes it current.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateContext(context: *mut aclrtContext, deviceId: i32) -> aclError {
    api_call("aclrtCreateContext", || {
        if context.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "context is NULL"));
        }
        let h = runtime::with_runtime(|rt| {
            let d = rt.check_device(deviceId.into())?;
            Ok(rt.create_context(d, true)?.handle)
        })?;
        set_current_context(Some(h));
        // SAFETY: context was checked non-NULL; valid for writes by contract.
        unsafe { write_out(context, h.as_ptr(), "context") }
    })
}

/// Destroys an explicit context and its streams (after their queued work).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDestroyContext(context: aclrtContext) -> aclError {
    api_call("aclrtDestroyContext", || {
        let streams = runtime::with_runtime(|rt| {
            let ctx = rt.context(context)?;
            if !ctx.explicit {
                return Err(MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!(
                        "{context:p} is the default context of device {}; release it with aclrtResetDevice",
                        ctx.device
                    ),
                ));
            }
            Ok(rt.remove_context(ctx.handle))
        })?;
        if Handle::from_ptr(context, HandleKind::Context) == current_handle() {
            set_current_context(None);
        }
        stop_streams(streams, false);
        Ok(())
    })
}

fn current_handle() -> Option<Handle> {
    runtime::with_runtime(|rt| Ok(rt.current_context()?.handle)).ok()
}

/// Makes `context` current on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSetCurrentContext(context: aclrtContext) -> aclError {
    api_call("aclrtSetCurrentContext", || {
        let h = runtime::with_runtime(|rt| Ok(rt.context(context)?.handle))?;
        set_current_context(Some(h));
        Ok(())
    })
}

/// This thread's current context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtGetCurrentContext(context: *mut aclrtContext) -> aclError {
    api_call("aclrtGetCurrentContext", || {
        let h = runtime::with_runtime(|rt| Ok(rt.current_context()?.handle))?;
        // SAFETY: context is NULL or valid for writes (caller contract).
        unsafe { write_out(context, h.as_ptr(), "context") }
    })
}

/// The default stream of this thread's current context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCtxGetCurrentDefaultStream(stream: *mut aclrtStream) -> aclError {
    api_call("aclrtCtxGetCurrentDefaultStream", || {
        let s: Arc<Stream> =
            runtime::with_runtime(|rt| Ok(rt.current_context()?.default_stream.clone()))?;
        // SAFETY: stream is NULL or valid for writes (caller contract).
        unsafe { write_out(stream, s.handle.as_ptr(), "stream") }
    })
}

/// 1 for two different existing devices (all mock devices share the host),
/// 0 for a device and itself.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDeviceCanAccessPeer(
    canAccessPeer: *mut i32,
    deviceId: i32,
    peerDeviceId: i32,
) -> aclError {
    api_call("aclrtDeviceCanAccessPeer", || {
        let (a, b) = runtime::with_runtime(|rt| {
            Ok((
                rt.check_device(deviceId.into())?,
                rt.check_device(peerDeviceId.into())?,
            ))
        })?;
        // SAFETY: canAccessPeer is NULL or valid for writes (caller contract).
        unsafe { write_out(canAccessPeer, i32::from(a != b), "canAccessPeer") }
    })
}

/// Checks the peer of the current device and records whether access to
/// it is `enabled`.
fn set_peer_access(peer: i32, enabled: bool) -> MockResult<()> {
    runtime::with_runtime(|rt| {
        let me = rt.current_context()?.device;
        let p = rt.check_device(peer.into())?;
        if p == me {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("peer device {p} is the current device"),
            ));
        }
        if enabled {
            rt.peers.insert((me, p));
        } else {
            rt.peers.remove(&(me, p));
        }
        Ok(())
    })
}

/// Enables access from the current device to `peerDeviceId`'s memory
/// (flags must be 0). Without it, a copy or memset acting on the current
/// device that touches the peer's memory is a `wrong memory kind` report.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDeviceEnablePeerAccess(peerDeviceId: i32, flags: u32) -> aclError {
    api_call("aclrtDeviceEnablePeerAccess", || {
        if flags != 0 {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("flags must be 0, got {flags}"),
            ));
        }
        set_peer_access(peerDeviceId, true)
    })
}

/// Disables access from the current device to `peerDeviceId`'s memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDeviceDisablePeerAccess(peerDeviceId: i32) -> aclError {
    api_call("aclrtDeviceDisablePeerAccess", || {
        set_peer_access(peerDeviceId, false)
    })
}
