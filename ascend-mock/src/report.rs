//! The sanitizer's report sink: its mode, the kept reports and the leak
//! policy.
//!
//! Checks of the device core (freed-block and range checks in `memory`,
//! leak checks in `runtime`) and of the sanitizer proper (`sanitizer::race`)
//! all end here, in [`violation`] or [`report`]:
//!
//! - [`Mode::Report`] (the default): the report is kept (see [`reports`]),
//!   printed to stderr, and the offending call fails with an AscendCL code
//!   whose `aclGetRecentErrMsg` text is the report itself.
//! - [`Mode::Abort`]: as `Report`, then the process aborts.
//! - [`Mode::Off`]: nothing is kept or printed and there is no freed-block
//!   history and no leak check; calls that would break the mock's memory
//!   safety (a copy past the end of a block, a double free) still fail,
//!   with a plain message.
//!
//! The mode comes from [`set_mode`], else from `ASCEND_MOCK_SANITIZER`
//! (`off`, `report`, `abort`), read when first needed and again at each
//! `aclInit`. A leak report does not make reset or finalize fail unless
//! [`set_leak_policy`] (or `ASCEND_MOCK_LEAKS=error`) says so.
//!
//! Layer: just above the call gate (a report cites the current call) and
//! below the device core, which files its reports here; the public face
//! is `crate::sanitizer`, which re-exports these items.
//!
//! Invariants: every report's message starts with its class's label
//! followed by `": "`; at most [`MAX_REPORTS`] reports are kept (the oldest
//! are dropped first).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use ascend_sys::aclError;

use crate::error::{MockError, ReportClass};
use crate::gate::{CallSite, current_call};

/// One sanitizer report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The class.
    pub class: ReportClass,
    /// The full text, starting with the class label.
    pub message: String,
    /// The call during which the violation was found, if any.
    pub call: Option<CallSite>,
}

/// What the sanitizer does with a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No reports, no freed-block history, no leak checks.
    Off,
    /// Keep, print and fail the call (the default).
    Report,
    /// Print the first report and abort the process.
    Abort,
}

impl Mode {
    /// Parses `off`, `report` or `abort` (also `0`/`1`, case-insensitive).
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "0" | "none" => Ok(Mode::Off),
            "report" | "on" | "1" | "" => Ok(Mode::Report),
            "abort" => Ok(Mode::Abort),
            other => Err(format!(
                "ASCEND_MOCK_SANITIZER={other:?} is not one of off, report, abort"
            )),
        }
    }

    fn code(self) -> u8 {
        match self {
            Mode::Off => 1,
            Mode::Report => 2,
            Mode::Abort => 3,
        }
    }

    fn from_code(c: u8) -> Option<Mode> {
        match c {
            1 => Some(Mode::Off),
            2 => Some(Mode::Report),
            3 => Some(Mode::Abort),
            _ => None,
        }
    }
}

/// What a leak report does to `aclrtResetDevice` and `aclFinalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakPolicy {
    /// Report, then release everything and succeed (CANN frees it).
    Report,
    /// Report, release everything, and fail with
    /// `ACL_ERROR_RT_MEMORY_FREE` (207002).
    Error,
}

/// The most reports kept for [`reports`].
pub const MAX_REPORTS: usize = 4096;

/// 0: not yet decided; otherwise `Mode::code`.
static MODE: AtomicU8 = AtomicU8::new(0);
/// Set by [`set_mode`]: the environment no longer decides.
static MODE_EXPLICIT: AtomicBool = AtomicBool::new(false);
static LEAKS_ARE_ERRORS: AtomicU8 = AtomicU8::new(0);
static LEAKS_EXPLICIT: AtomicBool = AtomicBool::new(false);
static REPORTS: Mutex<Vec<Report>> = Mutex::new(Vec::new());

/// Sets the mode for the rest of the process (the environment is no longer
/// consulted).
pub fn set_mode(mode: Mode) {
    MODE_EXPLICIT.store(true, Ordering::SeqCst);
    MODE.store(mode.code(), Ordering::SeqCst);
}

/// The mode in effect.
pub fn mode() -> Mode {
    if let Some(m) = Mode::from_code(MODE.load(Ordering::Relaxed)) {
        return m;
    }
    // An invalid variable is reported by aclInit; until then, report.
    let m = env_mode().unwrap_or(Mode::Report);
    let _ = MODE.compare_exchange(0, m.code(), Ordering::SeqCst, Ordering::SeqCst);
    Mode::from_code(MODE.load(Ordering::SeqCst)).unwrap_or(Mode::Report)
}

/// Whether checks that need bookkeeping (freed history, leaks) run.
pub fn enabled() -> bool {
    mode() != Mode::Off
}

fn env_mode() -> Result<Mode, String> {
    match std::env::var("ASCEND_MOCK_SANITIZER") {
        Ok(v) => Mode::parse(&v),
        Err(_) => Ok(Mode::Report),
    }
}

fn env_leak_policy() -> Result<LeakPolicy, String> {
    match std::env::var("ASCEND_MOCK_LEAKS") {
        Err(_) => Ok(LeakPolicy::Report),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "report" => Ok(LeakPolicy::Report),
            "error" => Ok(LeakPolicy::Error),
            other => Err(format!(
                "ASCEND_MOCK_LEAKS={other:?} is not one of report, error"
            )),
        },
    }
}

/// Re-reads `ASCEND_MOCK_SANITIZER` and `ASCEND_MOCK_LEAKS` (at `aclInit`)
/// unless the Rust API set them.
pub(crate) fn reload_env() -> Result<(), String> {
    if !MODE_EXPLICIT.load(Ordering::SeqCst) {
        MODE.store(env_mode()?.code(), Ordering::SeqCst);
    }
    if !LEAKS_EXPLICIT.load(Ordering::SeqCst) {
        let p = env_leak_policy()?;
        LEAKS_ARE_ERRORS.store(u8::from(p == LeakPolicy::Error), Ordering::SeqCst);
    }
    Ok(())
}

/// Sets what leak reports do to reset and finalize.
pub fn set_leak_policy(policy: LeakPolicy) {
    LEAKS_EXPLICIT.store(true, Ordering::SeqCst);
    LEAKS_ARE_ERRORS.store(u8::from(policy == LeakPolicy::Error), Ordering::SeqCst);
}

/// The leak policy in effect.
pub fn leak_policy() -> LeakPolicy {
    if LEAKS_ARE_ERRORS.load(Ordering::SeqCst) == 1 {
        LeakPolicy::Error
    } else {
        LeakPolicy::Report
    }
}

/// Every report kept so far (oldest first).
pub fn reports() -> Vec<Report> {
    REPORTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Takes and clears the kept reports.
pub fn take_reports() -> Vec<Report> {
    std::mem::take(&mut *REPORTS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Records, prints (and in abort mode, aborts on) a report of `class`
/// whose text after the label is `text`. Returns the report (also in
/// `Off` mode, where nothing is kept or printed).
pub fn report(class: ReportClass, text: &str) -> Report {
    let r = Report {
        class,
        message: format!("{}: {text}", class.label()),
        call: current_call(),
    };
    let mode = mode();
    if mode == Mode::Off {
        return r;
    }
    eprintln!("[ascend-mock sanitizer] {}", r.message);
    {
        let mut kept = REPORTS.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_REPORTS {
            kept.remove(0);
        }
        kept.push(r.clone());
    }
    if mode == Mode::Abort {
        eprintln!("[ascend-mock sanitizer] aborting (ASCEND_MOCK_SANITIZER=abort)");
        std::process::abort();
    }
    r
}

/// The error for a violation found during a call: the report's text with
/// `code` (in `Off` mode, the plain text, nothing reported).
pub fn violation(class: ReportClass, code: aclError, text: &str) -> MockError {
    if mode() == Mode::Off {
        return MockError::new(code, text);
    }
    MockError::new(code, report(class, text).message)
}
