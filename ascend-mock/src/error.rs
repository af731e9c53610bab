//! Errors of the mock and the per-thread error state behind
//! `aclGetRecentErrMsg`, `aclrtPeekAtLastError` and `aclrtGetLastError`:
//! the bottom layer of the mock, naming no other module of the crate.
//!
//! [`MockError`] is the one error type of the crate (a code and a reason);
//! [`ReportClass`] names the classes of sanitizer report, whose messages
//! are stored as they are (they already name the call). The call gate
//! (`gate`) turns a failed call into its code and stores the message here
//! with [`record_failure`].
//!
//! Invariants: the message slot holds at most one message per thread (the
//! most recent failure); `aclGetRecentErrMsg` moves it into a second slot
//! whose pointer stays valid until the next `aclGetRecentErrMsg` call on the
//! same thread; this module depends on no other module of the crate.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::OnceLock;

use ascend_sys::{ACL_SUCCESS, aclError};

/// A failed call: the AscendCL code and a human-readable reason.
///
/// The reason does not name the API; the call gate
/// ([`crate::gate::api_call`]) prefixes it.
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

/// Whether `ASCEND_MOCK_LOG` asks for a line per call.
pub(crate) fn log_enabled() -> bool {
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
    let line = if err.message.is_empty() {
        // Every failure carries its own text, so that no older message is
        // mistaken for this one.
        format!("{api}: failed with error {}", err.code)
    } else if ReportClass::of_message(&err.message).is_some() {
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

/// What kind of contract violation a report describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportClass {
    /// A pointer into a block that was already freed.
    UseAfterFree,
    /// A block freed twice.
    DoubleFree,
    /// A free of a pointer that is not the start of a live allocation.
    InvalidFree,
    /// An access past the end (or before the start) of an allocation.
    OutOfBounds,
    /// Host memory where device memory belongs, or the reverse, or memory
    /// of another device without peer access.
    WrongMemoryKind,
    /// Unordered accesses from two streams.
    Race,
    /// Objects still alive at `aclrtResetDevice` or `aclFinalize`.
    Leak,
}

impl ReportClass {
    /// Every class.
    pub const ALL: [ReportClass; 7] = [
        ReportClass::UseAfterFree,
        ReportClass::DoubleFree,
        ReportClass::InvalidFree,
        ReportClass::OutOfBounds,
        ReportClass::WrongMemoryKind,
        ReportClass::Race,
        ReportClass::Leak,
    ];

    /// The words every report of this class starts with.
    pub fn label(self) -> &'static str {
        match self {
            ReportClass::UseAfterFree => "use-after-free",
            ReportClass::DoubleFree => "double free",
            ReportClass::InvalidFree => "invalid free",
            ReportClass::OutOfBounds => "out of bounds",
            ReportClass::WrongMemoryKind => "wrong memory kind",
            ReportClass::Race => "race",
            ReportClass::Leak => "leak",
        }
    }

    /// The class whose label starts `message` (followed by `": "`).
    pub fn of_message(message: &str) -> Option<ReportClass> {
        ReportClass::ALL.into_iter().find(|c| {
            message
                .strip_prefix(c.label())
                .is_some_and(|rest| rest.starts_with(": "))
        })
    }
}

impl fmt::Display for ReportClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
