//! The result layer: one thin function per AscendCL call, returning
//! [`Result`].
//!
//! Invariants:
//! - Each function calls exactly one C function of the active backend
//!   ([`crate::api`], initialised on first use) and nothing else, except
//!   `aclGetRecentErrMsg` right after a failure, whose text goes into the
//!   error.
//! - A function is `unsafe` when the C call needs guarantees only the caller
//!   can give (live handles, valid pointers and sizes); its `# Safety`
//!   section says which.
//! - Nothing here knows about contexts, threads or tracking: that is the
//!   safe layer's job.

pub mod context;
pub mod device;
pub mod event;
pub mod memory;
pub mod stream;

use std::ffi::CStr;

use ascend_sys::{Api, AscendCl, aclError};

use crate::error::{AclCode, Error, Result};

/// The AscendCL table of the active backend.
pub(crate) fn acl() -> Result<&'static AscendCl> {
    Ok(&crate::backend::api()?.acl)
}

/// `aclGetRecentErrMsg` of `api`, as text; empty when the runtime has no
/// message or does not export the function.
pub fn recent_message(api: &Api) -> String {
    let Ok(f) = api.acl.aclGetRecentErrMsg() else {
        return String::new();
    };
    // SAFETY: aclGetRecentErrMsg takes no arguments; it returns null or a
    // NUL-terminated string that stays valid until the next call on this
    // thread, and we copy it out before making any other call.
    unsafe {
        let p = f();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().trim_end().to_string()
        }
    }
}

/// Turns an `aclError` into a `Result`, capturing the runtime's message on
/// failure.
pub(crate) fn check(api: &'static str, code: aclError) -> Result<()> {
    if code == ascend_sys::ACL_SUCCESS {
        return Ok(());
    }
    let message = crate::backend::api()
        .map(recent_message)
        .unwrap_or_default();
    Err(Error::Acl {
        api,
        code: AclCode::from_raw(code),
        message,
    })
}

/// A NULL result of a pointer-returning call, with the runtime's message.
pub(crate) fn null_result(api: &'static str) -> Error {
    Error::NullResult {
        api,
        message: crate::backend::api()
            .map(recent_message)
            .unwrap_or_default(),
    }
}

/// Turns an `aclnnStatus` into a `Result`, capturing the runtime's message
/// on failure. For the operator layer.
pub fn check_aclnn(api: &'static str, status: ascend_sys::aclnnStatus) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    let message = crate::backend::api()
        .map(recent_message)
        .unwrap_or_default();
    Err(Error::Aclnn {
        api,
        code: crate::error::AclnnCode::from_raw(status),
        message,
    })
}

/// Turns an `HcclResult` into a `Result`; the message is
/// `HcclGetErrorString` of the code when the library has it, else the
/// runtime's recent message. For the collectives layer.
pub fn check_hccl(api: &'static str, code: ascend_sys::HcclResult) -> Result<()> {
    if code == ascend_sys::HCCL_SUCCESS {
        return Ok(());
    }
    let message = crate::backend::api()
        .map(|a| hccl_message(a, code))
        .unwrap_or_default();
    Err(Error::Hccl {
        api,
        code: crate::error::HcclCode::from_raw(code),
        message,
    })
}

fn hccl_message(api: &Api, code: ascend_sys::HcclResult) -> String {
    if let Ok(f) = api.hccl.HcclGetErrorString() {
        // SAFETY: HcclGetErrorString takes a plain code and returns null or a
        // static NUL-terminated string, copied out at once.
        let text = unsafe {
            let p = f(code);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            return t;
        }
    }
    recent_message(api)
}
