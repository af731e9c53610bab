//! The call gate: the wrapper every exported function runs through.
//!
//! Every exported C function runs its body through [`api_call`] (aclnn
//! functions through `aclnn_call`, HCCL functions through `hccl_call`; all
//! three use [`guarded_call`]). The gate
//! - numbers the call ([`CallSite`], process-wide) and makes it the
//!   thread's current call, so that reports and task errors can cite it
//!   ("freed by aclrtFree (call #57)");
//! - counts it for fault injection (`fault`), which may fail it without
//!   running the body;
//! - runs the body with panics caught (a caught panic becomes the family's
//!   internal-error code), and
//! - turns an `Err` into its code, storing the message (prefixed with the
//!   API name unless it is a sanitizer report) for `aclGetRecentErrMsg`
//!   and the code for `aclrtPeekAtLastError`, optionally logging it
//!   (`ASCEND_MOCK_LOG=1`).
//!
//! Layer: above `error` and `fault`, below the device core; it names
//! nothing above itself.
//!
//! Invariants: no panic leaves [`guarded_call`]; call numbers increase by
//! one per call in the whole process; the current call is restored when
//! the call returns, so nested calls (a host function calling the API)
//! report their own number.

use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use ascend_sys::{ACL_ERROR_INTERNAL_ERROR, ACL_SUCCESS, aclError};

use crate::error::{MockError, MockResult, log_enabled, record_failure};
use crate::fault;

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
    let _ = enter_call(api);
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
    let (_site, _scope) = enter_call(name);
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

/// One numbered API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallSite {
    /// The exported function.
    pub api: &'static str,
    /// Its process-wide number (1 for the first call of the process).
    pub number: u64,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (call #{})", self.api, self.number)
    }
}

static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CURRENT: Cell<Option<CallSite>> = const { Cell::new(None) };
    static CURRENT_STREAM: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The number of API calls made so far in this process.
pub fn calls_so_far() -> u64 {
    CALLS.load(Ordering::SeqCst)
}

/// The call the calling thread is inside, if any.
pub fn current_call() -> Option<CallSite> {
    CURRENT.with(|c| c.get())
}

/// Describes the current call for a message (`"an internal call"` outside
/// any exported function), with the stream it queues work on, if any
/// (`"aclrtMemcpyAsync (call #9) on stream 4"`).
pub(crate) fn current_call_text() -> String {
    let call = current_call().map_or_else(|| "an internal call".to_string(), |c| c.to_string());
    match CURRENT_STREAM.with(|s| s.get()) {
        Some(id) => format!("{call} on stream {id}"),
        None => call,
    }
}

/// Names the stream the current call queues work on until the returned
/// scope is dropped.
pub(crate) fn stream_scope(stream_id: u64) -> StreamScope {
    StreamScope {
        previous: CURRENT_STREAM.with(|s| s.replace(Some(stream_id))),
    }
}

/// Restores the previous stream of [`stream_scope`] when dropped.
pub(crate) struct StreamScope {
    previous: Option<u64>,
}

impl Drop for StreamScope {
    fn drop(&mut self) {
        CURRENT_STREAM.with(|s| s.set(self.previous));
    }
}

/// Restores the enclosing call when an exported call returns.
pub(crate) struct CallScope {
    previous: Option<CallSite>,
}

impl Drop for CallScope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Numbers a call of `api` and makes it the thread's current call until
/// the returned scope is dropped.
pub(crate) fn enter_call(api: &'static str) -> (CallSite, CallScope) {
    let site = CallSite {
        api,
        number: CALLS.fetch_add(1, Ordering::SeqCst) + 1,
    };
    let previous = CURRENT.with(|c| c.replace(Some(site)));
    (site, CallScope { previous })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{fetch_recent_message, last_error};
    use ascend_sys::ACL_ERROR_INVALID_PARAM;
    use std::ffi::CStr;

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
