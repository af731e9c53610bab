//! Errors of the mock and the per-thread error state behind
//! `aclGetRecentErrMsg`, `aclrtPeekAtLastError` and `aclrtGetLastError`.
//!
//! Every exported C function runs its body through [`api_call`] (aclnn
//! functions through `aclnn_call`; both use [`guarded_call`]): the call is
//! numbered for sanitizer reports and counted for fault injection, the body
//! returns `Result<(), MockError>`, and the wrapper turns an `Err` into the
//! numeric code, stores the message (prefixed with the API name, unless it
//! is a sanitizer report) in this thread's slot, remembers the code for
//! `aclrtPeekAtLastError`, optionally logs it (`ASCEND_MOCK_LOG=1`), and
//! catches panics so that none crosses the C boundary (a caught panic
//! becomes `ACL_ERROR_INTERNAL_ERROR`).
//!
//! Invariants: the message slot holds at most one message per thread (the
//! most recent failure); `aclGetRecentErrMsg` moves it into a second slot
//! whose pointer stays valid until the next `aclGetRecentErrMsg` call on the
//! same thread.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use ascend_sys::{ACL_ERROR_INTERNAL_ERROR, ACL_SUCCESS, aclError};

use crate::fault;
use crate::sanitizer::{self, ReportClass};

/// A failed call: the AscendCL code and a human-readable reason.
///
/// The reason does not name the API; [`api_call`] prefixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockError {
    /// The `aclError` returned to the caller.
    pub code: aclError,
    /// Why the call failed.
    pub message: String,
}

impl MockError {
    /// An error with `code` and `message`.
    pub fn new(code: aclError, message: impl Into<String>) -> MockError {
        MockError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error {})", self.message, self.code)
    }
}

impl std::error::Error for MockError {}

/// The error of a failed stream task; reported by the next synchronisation
/// of that stream.
pub type TaskError = MockError;

/// Shorthand for the result of a mock operation.
pub type MockResult<T> = Result<T, MockError>;

thread_local! {
    /// The most recent failure message of this thread, not yet fetched.
    static PENDING_MSG: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// The message handed out by the last `aclGetRecentErrMsg` call.
    static FETCHED_MSG: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// The code of the most recent failed call of this thread.
    static LAST_ERROR: Cell<aclError> = const { Cell::new(ACL_SUCCESS) };
}

fn log_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED
        .get_or_init(|| std::env::var("ASCEND_MOCK_LOG").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Stores `message` as this thread's most recent error message.
pub fn set_message(message: &str) {
    // Interior NULs cannot be represented in a C string; replace them.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    PENDING_MSG.with(|m| *m.borrow_mut() = Some(text));
}

/// Records a failure of `api`: message, last-error code and the log line.
///
/// A sanitizer report (a message starting with a report class, see
/// [`ReportClass::of_message`]) is stored as it is, since it already
/// names the call; other messages are prefixed with `api`.
pub fn record_failure(api: &str, err: &MockError) {
    let line = if ReportClass::of_message(&err.message).is_some() {
        err.message.clone()
    } else {
        format!("{api}: {}", err.message)
    };
    if log_enabled() {
        eprintln!("[ascend-mock] {line} -> {}", err.code);
    }
    set_message(&line);
    LAST_ERROR.with(|c| c.set(err.code));
}

/// Runs the body of the exported function `name`, converting its result to
/// an `aclError` and recording failures (see the module documentation).
pub fn api_call(name: &'static str, body: impl FnOnce() -> MockResult<()>) -> aclError {
    guarded_call(name, ACL_ERROR_INTERNAL_ERROR, body)
}

/// Numbers and counts a call of an exported function that has no error
/// channel and so does not run through [`guarded_call`]
/// (`aclGetRecentErrMsg`, `aclDataTypeSize`, `HcclGetErrorString`, ...):
/// such calls are never failed by injection.
pub fn count_call(api: &'static str) {
    // Only the number and the count matter; the call scope ends at once.
    let _ = sanitizer::enter_call(api);
    fault::count_only(api);
}

/// The wrapper shared by every family of exported functions (runtime,
/// aclnn, HCCL): numbers the call for sanitizer reports, counts it for
/// fault injection (an injected failure skips `body`), runs `body` with
/// panics caught (a panic returns `panic_code`), and records a failure's
/// message and code. Success is 0 in every family.
pub fn guarded_call(
    name: &'static str,
    panic_code: i32,
    body: impl FnOnce() -> MockResult<()>,
) -> i32 {
    let (_site, _scope) = sanitizer::enter_call(name);
    let outcome = match fault::on_call(name) {
        Err(injected) => Ok(Err(injected)),
        Ok(()) => catch_unwind(AssertUnwindSafe(body)),
    };
    match outcome {
        Ok(Ok(())) => {
            if log_enabled() {
                eprintln!("[ascend-mock] {name}: ok");
            }
            ACL_SUCCESS
        }
        Ok(Err(err)) => {
            record_failure(name, &err);
            err.code
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            let err = MockError::new(
                panic_code,
                format!("internal error in the mock device: {what}"),
            );
            record_failure(name, &err);
            err.code
        }
    }
}

/// Like [`api_call`] for functions that return a value instead of an
/// `aclError` (e.g. `aclrtGetSocName`): on failure the message is recorded
/// and `fallback` is returned.
pub fn api_call_value<T>(
    name: &'static str,
    fallback: T,
    body: impl FnOnce() -> MockResult<T>,
) -> T {
    let mut out = None;
    let code = api_call(name, || {
        out = Some(body()?);
        Ok(())
    });
    match out {
        Some(v) if code == ACL_SUCCESS => v,
        _ => fallback,
    }
}

/// Moves this thread's pending message into the fetched slot and returns a
/// pointer to it, or null when there is none. The pointer stays valid until
/// the next call of this function on the same thread.
pub fn fetch_recent_message() -> *const std::ffi::c_char {
    let pending = PENDING_MSG.with(|m| m.borrow_mut().take());
    FETCHED_MSG.with(|f| {
        let mut slot = f.borrow_mut();
        *slot = pending;
        slot.as_deref().map_or(std::ptr::null(), CStr::as_ptr)
    })
}

/// The code of this thread's most recent failed call; `clear` resets it.
pub fn last_error(clear: bool) -> aclError {
    LAST_ERROR.with(|c| {
        if clear {
            c.replace(ACL_SUCCESS)
        } else {
            c.get()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ascend_sys::ACL_ERROR_INVALID_PARAM;

    fn take() -> Option<String> {
        let p = fetch_recent_message();
        if p.is_null() {
            None
        } else {
            // SAFETY: a non-null pointer from fetch_recent_message points to the
            // NUL-terminated string kept in this thread's slot until the next fetch.
            Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        }
    }

    #[test]
    fn api_call_records_message_and_code() {
        let code = api_call("aclTest", || {
            Err(MockError::new(ACL_ERROR_INVALID_PARAM, "bad thing"))
        });
        assert_eq!(code, ACL_ERROR_INVALID_PARAM);
        assert_eq!(last_error(false), ACL_ERROR_INVALID_PARAM);
        assert_eq!(last_error(true), ACL_ERROR_INVALID_PARAM);
        assert_eq!(last_error(false), ACL_SUCCESS);
        assert_eq!(take().as_deref(), Some("aclTest: bad thing"));
        assert_eq!(take(), None);
    }

    #[test]
    fn panics_become_internal_errors() {
        let code = api_call("aclPanics", || panic!("boom"));
        assert_eq!(code, ACL_ERROR_INTERNAL_ERROR);
        let msg = take().unwrap();
        assert!(msg.starts_with("aclPanics: internal error"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn value_calls_fall_back() {
        let v = api_call_value("aclValue", 7u32, || {
            Err(MockError::new(ACL_ERROR_INVALID_PARAM, "no"))
        });
        assert_eq!(v, 7);
        assert_eq!(api_call_value("aclValue", 7u32, || Ok(3)), 3);
        let _ = take();
    }
}
