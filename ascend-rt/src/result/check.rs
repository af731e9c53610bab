//! Status codes to [`Result`]s, for every module of the result layer.
//!
//! Invariants: a failure is returned as the [`Error`] variant of its
//! library, naming the C function, with its code and the message the
//! runtime gave right after it (read here, before any other call); success
//! is `Ok` and reads nothing.

use std::ffi::CStr;

use ascend_sys::{Api, aclError};

use crate::backend::{api, recent_message};
use crate::error::{AclCode, AclnnCode, Error, HcclCode, Result};

/// Turns an `aclError` into a `Result`, capturing the runtime's message on
/// failure.
pub(crate) fn check(name: &'static str, code: aclError) -> Result<()> {
    if code == ascend_sys::ACL_SUCCESS {
        return Ok(());
    }
    Err(Error::Acl {
        api: name,
        code: AclCode::from_raw(code),
        message: api().map(recent_message).unwrap_or_default(),
    })
}

/// A NULL result of a pointer-returning call, with the runtime's message.
pub(crate) fn null_result(name: &'static str) -> Error {
    Error::NullResult {
        api: name,
        message: api().map(recent_message).unwrap_or_default(),
    }
}

/// Turns an `aclnnStatus` into a `Result`, capturing the runtime's message
/// on failure. For the operator layer.
pub fn check_aclnn(name: &'static str, status: ascend_sys::aclnnStatus) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    Err(Error::Aclnn {
        api: name,
        code: AclnnCode::from_raw(status),
        message: api().map(recent_message).unwrap_or_default(),
    })
}

/// Turns an `HcclResult` into a `Result`; the message is
/// `HcclGetErrorString` of the code when the library has it, else the
/// runtime's recent message. For the collectives layer.
pub fn check_hccl(name: &'static str, code: ascend_sys::HcclResult) -> Result<()> {
    if code == ascend_sys::HCCL_SUCCESS {
        return Ok(());
    }
    let message = api()
        .map(|a| error_string(a, code).unwrap_or_else(|| recent_message(a)))
        .unwrap_or_default();
    Err(Error::Hccl {
        api: name,
        code: HcclCode::from_raw(code),
        message,
    })
}

/// `HcclGetErrorString` of `code`, when `api`'s HCCL has it and the text is
/// not empty.
fn error_string(api: &Api, code: ascend_sys::HcclResult) -> Option<String> {
    let f = api.hccl.HcclGetErrorString().ok()?;
    // SAFETY: HcclGetErrorString takes a plain code and returns null or a
    // static NUL-terminated string, copied out at once.
    let text = unsafe {
        let p = f(code);
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    text.filter(|t| !t.is_empty())
}
