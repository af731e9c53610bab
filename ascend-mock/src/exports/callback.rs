//! The subscription-based callback family (`aclrtSubscribeReport`,
//! `aclrtLaunchCallback`, `aclrtProcessReport`). Not supported by the mock
//! yet: each returns `ACL_ERROR_API_NOT_SUPPORT` with a message pointing to
//! `aclrtLaunchHostFunc`, which needs no subscribed thread.

use ascend_sys::*;

use crate::error::{MockError, api_call};

fn unsupported() -> Result<(), MockError> {
    Err(MockError::new(
        ACL_ERROR_API_NOT_SUPPORT,
        "the report-thread callback API is not supported by the mock device; use aclrtLaunchHostFunc",
    ))
}

/// Not supported (see the module documentation).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtSubscribeReport(threadId: u64, stream: aclrtStream) -> aclError {
    let _ = (threadId, stream);
    api_call("aclrtSubscribeReport", unsupported)
}

/// Not supported (see the module documentation).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtUnSubscribeReport(threadId: u64, stream: aclrtStream) -> aclError {
    let _ = (threadId, stream);
    api_call("aclrtUnSubscribeReport", unsupported)
}

/// Not supported (see the module documentation).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtLaunchCallback(
    fn_: aclrtCallback,
    userData: *mut std::ffi::c_void,
    blockType: aclrtCallbackBlockType,
    stream: aclrtStream,
) -> aclError {
    let _ = (fn_, userData, blockType, stream);
    api_call("aclrtLaunchCallback", unsupported)
}

/// Not supported (see the module documentation).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclrtProcessReport(timeout: i32) -> aclError {
    let _ = timeout;
    api_call("aclrtProcessReport", unsupported)
}
