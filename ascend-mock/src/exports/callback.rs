//! The report-thread callback family: `aclrtSubscribeReport`,
//! `aclrtUnSubscribeReport`, `aclrtLaunchCallback`, `aclrtProcessReport`
//! (logic in `crate::callback`).

use std::ffi::c_void;

use ascend_sys::*;

use crate::callback;
use crate::error::MockError;
use crate::gate::api_call;
use crate::runtime;

/// Binds the callbacks of `stream` to the thread `threadId` (a `pthread_t`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSubscribeReport(threadId: u64, stream: aclrtStream) -> aclError {
    api_call("aclrtSubscribeReport", || {
        let s = runtime::with_runtime(|rt| rt.stream(stream))?;
        callback::subscribe(threadId, &s)
    })
}

/// Removes the binding made by `aclrtSubscribeReport`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtUnSubscribeReport(threadId: u64, stream: aclrtStream) -> aclError {
    api_call("aclrtUnSubscribeReport", || {
        let s = runtime::with_runtime(|rt| rt.stream(stream))?;
        callback::unsubscribe(threadId, &s)
    })
}

/// Queues a callback, run on the stream's subscribed thread by
/// `aclrtProcessReport`; `ACL_CALLBACK_BLOCK` holds the stream until it ran.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtLaunchCallback(
    fn_: aclrtCallback,
    userData: *mut c_void,
    blockType: aclrtCallbackBlockType,
    stream: aclrtStream,
) -> aclError {
    api_call("aclrtLaunchCallback", || {
        let Some(f) = fn_ else {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "fn is NULL"));
        };
        let block = match blockType {
            ACL_CALLBACK_BLOCK => true,
            ACL_CALLBACK_NO_BLOCK => false,
            other => {
                return Err(MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!(
                        "blockType {other} is neither ACL_CALLBACK_NO_BLOCK nor ACL_CALLBACK_BLOCK"
                    ),
                ));
            }
        };
        let s = runtime::with_runtime(|rt| rt.stream(stream))?;
        callback::launch(&s, f, userData, block)
    })
}

/// Runs one callback for the calling thread, waiting up to `timeout` ms
/// (-1 forever; 0 is refused, as CANN documents only -1 and > 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtProcessReport(timeout: i32) -> aclError {
    api_call("aclrtProcessReport", || {
        let t = match timeout {
            -1 => None,
            t if t > 0 => Some(std::time::Duration::from_millis(t as u64)),
            t => {
                return Err(MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!("timeout {t} ms is invalid (use -1 to wait forever, or > 0)"),
                ));
            }
        };
        callback::process(t)
    })
}
