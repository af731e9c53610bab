//! The mock as a sanitizer: the public face of its reports and the race
//! tracker.
//!
//! Every exported call gets a process-wide number from the call gate
//! ([`CallSite`]), so reports can cite the calls involved ("freed by
//! aclrtFree (call #57)"). Pointer checks live next to the state they
//! inspect in the device core (`memory`: live allocations and the bounded
//! history of freed blocks; `copy`: copy ranges), leak checks in `runtime`
//! at `aclrtResetDevice` and `aclFinalize` (with the leak sources that
//! operator families register), and race detection (happens-before between
//! streams and the host, by vector clocks) in [`race`], which the core
//! reaches only through the hooks it installs (`hooks::Observer`). All of
//! them file their reports in the report sink (`report`, re-exported
//! here): its [`Mode`], the kept [`reports`] and the [`LeakPolicy`].
//!
//! Layer: above the device core; nothing in the core names this module.
//!
//! Invariants: every report's message starts with its class's label
//! followed by `": "`; at most [`MAX_REPORTS`] reports are kept (the oldest
//! are dropped first).

pub use crate::error::ReportClass;
pub(crate) use crate::gate::current_call_text;
pub use crate::gate::{CallSite, calls_so_far, current_call};
pub(crate) use crate::report::reload_env;
pub use crate::report::{
    LeakPolicy, MAX_REPORTS, Mode, Report, enabled, leak_policy, mode, report, reports,
    set_leak_policy, set_mode, take_reports, violation,
};

pub mod race;

#[cfg(test)]
mod tests;
