//! Streams: creation, destruction, synchronisation, queries and host
//! functions.

use std::ffi::c_void;

use ascend_sys::*;

use super::write_out;
use crate::error::{MockError, MockResult};
use crate::gate::api_call;
use crate::runtime;
use crate::runtime::enqueue_named;
use crate::stream::{Stream, TaskKind, timeout_from_ms};

/// Every `ACL_STREAM_*` creation flag.
const STREAM_FLAGS: u32 = ACL_STREAM_FAST_LAUNCH
    | ACL_STREAM_FAST_SYNC
    | ACL_STREAM_PERSISTENT
    | ACL_STREAM_HUGE
    | ACL_STREAM_CPU_SCHEDULE
    | ACL_STREAM_DEVICE_USE_ONLY;

fn create_stream(out: *mut aclrtStream) -> MockResult<()> {
    if out.is_null() {
        return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "stream is NULL"));
    }
    let h = runtime::with_runtime(|rt| {
        let ctx = rt.current_context()?;
        let s = Stream::spawn(ctx.device, ctx.handle, false)?;
        let h = s.handle;
        rt.streams.insert(h, s);
        Ok(h)
    })?;
    // SAFETY: out was checked non-NULL; valid for writes by contract.
    unsafe { write_out(out, h.as_ptr(), "stream") }
}

/// Creates a stream in the current context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateStream(stream: *mut aclrtStream) -> aclError {
    api_call("aclrtCreateStream", || create_stream(stream))
}

/// Creates a stream; `priority` is reserved and `flag` takes
/// `ACL_STREAM_*` bits (accepted, without effect on the mock).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtCreateStreamWithConfig(
    stream: *mut aclrtStream,
    priority: u32,
    flag: u32,
) -> aclError {
    api_call("aclrtCreateStreamWithConfig", || {
        if flag & !STREAM_FLAGS != 0 {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!(
                    "flag {flag:#x} has bits outside the ACL_STREAM_* flags ({STREAM_FLAGS:#x})"
                ),
            ));
        }
        let _ = priority;
        create_stream(stream)
    })
}

fn destroy_stream(stream: aclrtStream, force: bool) -> MockResult<()> {
    if stream.is_null() {
        return Err(MockError::new(
            ACL_ERROR_INVALID_PARAM,
            "stream is NULL (the default stream cannot be destroyed)",
        ));
    }
    let s = runtime::with_runtime(|rt| {
        let s = rt.stream(stream)?;
        if s.is_default {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!(
                    "stream {} is a context's default stream and cannot be destroyed",
                    s.handle.id()
                ),
            ));
        }
        rt.streams.remove(&s.handle);
        Ok(s)
    })?;
    s.shutdown(force);
    Ok(())
}

/// Destroys a stream after its queued work has run.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDestroyStream(stream: aclrtStream) -> aclError {
    api_call("aclrtDestroyStream", || destroy_stream(stream, false))
}

/// Destroys a stream, dropping the work not yet started.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtDestroyStreamForce(stream: aclrtStream) -> aclError {
    api_call("aclrtDestroyStreamForce", || destroy_stream(stream, true))
}

fn synchronize(stream: aclrtStream, timeout: i32) -> MockResult<()> {
    let timeout = timeout_from_ms(timeout)?;
    let s = runtime::with_runtime(|rt| rt.stream(stream))?;
    s.synchronize_observed(timeout)
}

/// Waits for everything queued on the stream; reports a failed task.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeStream(stream: aclrtStream) -> aclError {
    api_call("aclrtSynchronizeStream", || synchronize(stream, -1))
}

/// Like `aclrtSynchronizeStream`, giving up after `timeout` ms
/// (`ACL_ERROR_RT_STREAM_SYNC_TIMEOUT`); -1 waits forever, 0 polls.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSynchronizeStreamWithTimeout(
    stream: aclrtStream,
    timeout: i32,
) -> aclError {
    api_call("aclrtSynchronizeStreamWithTimeout", || {
        synchronize(stream, timeout)
    })
}

/// Whether the stream has finished all queued work.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtStreamQuery(
    stream: aclrtStream,
    status: *mut aclrtStreamStatus,
) -> aclError {
    api_call("aclrtStreamQuery", || {
        let s = runtime::with_runtime(|rt| rt.stream(stream))?;
        let v = if s.query_observed() {
            ACL_STREAM_STATUS_COMPLETE
        } else {
            ACL_STREAM_STATUS_NOT_READY
        };
        // SAFETY: status is NULL or valid for writes (caller contract).
        unsafe { write_out(status, v, "status") }
    })
}

/// Makes the stream's later tasks wait for the event's latest record.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtStreamWaitEvent(stream: aclrtStream, event: aclrtEvent) -> aclError {
    api_call("aclrtStreamWaitEvent", || {
        let (s, e) = runtime::with_runtime(|rt| Ok((rt.stream(stream)?, rt.event(event)?)))?;
        e.wait_on(&s)
    })
}

/// The stream's number.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtStreamGetId(stream: aclrtStream, streamId: *mut i32) -> aclError {
    api_call("aclrtStreamGetId", || {
        let s = runtime::with_runtime(|rt| rt.stream(stream))?;
        // SAFETY: streamId is NULL or valid for writes (caller contract).
        unsafe { write_out(streamId, s.handle.id() as i32, "streamId") }
    })
}

/// `ACL_STOP_ON_FAILURE` drops the tasks after a failed one until the
/// failure is reported; `ACL_CONTINUE_ON_FAILURE` (default) runs them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSetStreamFailureMode(stream: aclrtStream, mode: u64) -> aclError {
    api_call("aclrtSetStreamFailureMode", || {
        let stop = match mode {
            m if m == u64::from(ACL_STOP_ON_FAILURE) => true,
            m if m == u64::from(ACL_CONTINUE_ON_FAILURE) => false,
            m => {
                return Err(MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!("mode {m} is neither ACL_CONTINUE_ON_FAILURE nor ACL_STOP_ON_FAILURE"),
                ));
            }
        };
        runtime::with_runtime(|rt| rt.stream(stream))?.set_stop_on_failure(stop);
        Ok(())
    })
}

/// Queues `fn(args)` on the stream's worker, in order with its other work.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtLaunchHostFunc(
    stream: aclrtStream,
    fn_: aclrtHostFunc,
    args: *mut c_void,
) -> aclError {
    api_call("aclrtLaunchHostFunc", || {
        let Some(f) = fn_ else {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "fn is NULL"));
        };
        let args = args as usize;
        enqueue_named(
            stream,
            "aclrtLaunchHostFunc",
            TaskKind::Host,
            Box::new(move || {
                // SAFETY: the caller provided a callable host function and
                // promises `args` stays valid until the stream runs it.
                unsafe { f(args as *mut c_void) };
                Ok(())
            }),
        )?;
        Ok(())
    })
}
