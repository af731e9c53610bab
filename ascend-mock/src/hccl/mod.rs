//! HCCL on the mock device: communicators whose ranks live in this
//! process or in several processes of this machine (one mock device and
//! stream per rank) and collectives that run on the ranks' streams.
//!
//! - [`dtype`]: `HcclDataType`/`HcclReduceOp` and the reductions.
//! - [`root_info`]: the layout of the 4108-byte `HcclRootInfo`.
//! - [`comm`]: communicators (tagged handles, the registry of live ones),
//!   the groups their ranks share, and the rendezvous of
//!   `HcclCommInitRootInfo`.
//! - [`collective`]: the per-collective rendezvous (matched by sequence
//!   number), and what each collective reads, combines and writes (shared
//!   by both transports).
//! - [`p2p`]: `HcclSend`/`HcclRecv` mailboxes and `HcclGroupStart`/`End`.
//! - [`hub`]: the TCP listener `HcclGetRootInfo` opens on 127.0.0.1 and the
//!   rendezvous of ranks joining through it.
//! - [`coordinator`]: the thread in the root-info process that runs the
//!   collectives and forwards the sends of a communicator spanning
//!   processes.
//! - [`link`]: a rank's connection to that coordinator.
//! - [`wire`]: the messages on those connections and their byte format.
//! - [`exports`]: the `extern "C"` functions and their argument checks.
//!
//! Ranks of one process meet in memory; ranks of several processes send
//! their contributions over loopback TCP to the coordinator, which combines
//! them with the same code and answers each rank (a star through the
//! root-info process). docs/mock.md ("HCCL across processes") describes the
//! design, the failures and the limits.
//!
//! Invariants:
//! - Every exported function runs through [`hccl_call`] (the mock's shared
//!   wrapper): failures return an `HcclResult` and leave a message naming
//!   the function for `aclGetRecentErrMsg`; panics become
//!   `HCCL_E_INTERNAL`. Buffers outside the rank's device memory are
//!   sanitizer reports (`out of bounds`, `wrong memory kind`,
//!   `use-after-free`) as well as `HCCL_E_PARA`.
//! - Buffers reach a stream task only after they were found inside a live
//!   device allocation of the rank's device, with their whole element
//!   range; `aclrtFree` defers releasing a block until the stream work
//!   queued before the free has run, so the task's accesses stay valid.
//! - A collective writes data only once every rank's task has joined it
//!   (in one process the last task to arrive reads and writes for all;
//!   across processes each task reads its own input when it starts and
//!   writes its own part when the coordinator answers); while some rank is
//!   missing, waiting tasks give up after the timeout, and the collective
//!   is then abandoned for every rank, so no rank's buffers are touched
//!   after its task ended.
//! - Stream task failures carry an AscendCL code (as the real runtime
//!   reports HCCL failures at stream synchronisation), over either
//!   transport: a timeout is
//!   `ACL_ERROR_RT_FFTS_PLUS_TIMEOUT` (507048), any other collective
//!   failure `ACL_ERROR_RT_FFTS_PLUS_EXCEPTION` (507049); the message names
//!   the HCCL code, and `HcclGetCommAsyncError` returns it.
//!
//! The timeout is `ASCEND_MOCK_HCCL_TIMEOUT_MS` (default 30 s), or the
//! value set with [`set_default_timeout`], read when a communicator is
//! created; [`set_comm_timeout`] changes one communicator's. Timeouts are
//! at most [`MAX_TIMEOUT`] and communicators at most [`MAX_RANKS`] ranks.

pub mod collective;
pub mod comm;
pub mod coordinator;
pub mod dtype;
pub mod exports;
pub mod hub;
pub mod link;
pub mod p2p;
pub mod root_info;
pub mod wire;

use std::sync::Mutex;
use std::time::Duration;

use ascend_sys::*;

use crate::error::{MockError, MockResult};
use crate::gate::guarded_call;

/// The timeout used when neither the environment nor
/// [`set_default_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable holding the timeout in milliseconds.
pub const TIMEOUT_ENV: &str = "ASCEND_MOCK_HCCL_TIMEOUT_MS";

/// The most ranks a communicator may have. Every rank of a root info
/// holds a thread and a socket in the root process while it waits, and a
/// mock device is one process's memory: a few thousand ranks is far past
/// any test, and the bound keeps every per-rank table small (a `nRanks`
/// from the API or a peer is checked against it before anything is
/// allocated for it).
pub const MAX_RANKS: u32 = 4096;

/// The longest timeout accepted (24 hours): longer ones are refused from
/// the environment and from peers, and clamped when set through the Rust
/// API, so deadlines never overflow and no wait outlives a CI job.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

static TIMEOUT_OVERRIDE: Mutex<Option<Duration>> = Mutex::new(None);

/// Sets the timeout of communicators created from now on (`None`: back to
/// `ASCEND_MOCK_HCCL_TIMEOUT_MS` or [`DEFAULT_TIMEOUT`]); clamped to
/// 1 ms..=[`MAX_TIMEOUT`].
pub fn set_default_timeout(timeout: Option<Duration>) {
    *TIMEOUT_OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()) = timeout.map(clamp_timeout);
}

/// `timeout` within 1 ms..=[`MAX_TIMEOUT`].
pub(crate) fn clamp_timeout(timeout: Duration) -> Duration {
    timeout.clamp(Duration::from_millis(1), MAX_TIMEOUT)
}

/// The timeout a communicator created now gets; an unparsable
/// `ASCEND_MOCK_HCCL_TIMEOUT_MS` is `HCCL_E_PARA`.
pub fn default_timeout() -> MockResult<Duration> {
    if let Some(t) = *TIMEOUT_OVERRIDE.lock().unwrap_or_else(|e| e.into_inner()) {
        return Ok(t);
    }
    match std::env::var(TIMEOUT_ENV) {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 && u128::from(ms) <= MAX_TIMEOUT.as_millis() => {
                Ok(Duration::from_millis(ms))
            }
            _ => Err(para(format!(
                "{TIMEOUT_ENV}={v:?} is not a number of milliseconds from 1 to {}",
                MAX_TIMEOUT.as_millis()
            ))),
        },
    }
}

/// Sets the timeout of the communicator `comm` (and of every other rank of
/// its group); `HCCL_E_PARA` outside 1 ms..=[`MAX_TIMEOUT`].
pub fn set_comm_timeout(comm: HcclComm, timeout: Duration) -> MockResult<()> {
    if timeout < Duration::from_millis(1) || timeout > MAX_TIMEOUT {
        return Err(para(format!(
            "timeout {} ms is out of range (1 to {} ms)",
            timeout.as_millis(),
            MAX_TIMEOUT.as_millis()
        )));
    }
    comm::lookup(comm)?.group.set_timeout(timeout);
    Ok(())
}

/// An `HcclResult` as the code of a [`MockError`].
pub(crate) fn hccl_err(code: HcclResult, message: impl Into<String>) -> MockError {
    MockError::new(code as aclError, message)
}

/// `HCCL_E_PARA` with `message`.
pub(crate) fn para(message: impl Into<String>) -> MockError {
    hccl_err(HCCL_E_PARA, message)
}

/// `HCCL_E_PTR` with `message`.
pub(crate) fn ptr_err(message: impl Into<String>) -> MockError {
    hccl_err(HCCL_E_PTR, message)
}

/// A runtime failure (no context, dead stream, ...) inside an HCCL call
/// becomes `HCCL_E_RUNTIME`, keeping the runtime's code in the message.
pub(crate) fn runtime_err(err: MockError) -> MockError {
    hccl_err(
        HCCL_E_RUNTIME,
        format!("{} (runtime error {})", err.message, err.code),
    )
}

/// The stream task error for an HCCL failure `err` of `api` on the rank
/// described by `who`: an AscendCL code (507048 for a timeout, 507049
/// otherwise) and a message naming the HCCL code.
pub(crate) fn task_error(api: &str, who: &str, err: MockError) -> MockError {
    let code = err.code as HcclResult;
    let acl = if code == HCCL_E_TIMEOUT {
        ACL_ERROR_RT_FFTS_PLUS_TIMEOUT
    } else {
        ACL_ERROR_RT_FFTS_PLUS_EXCEPTION
    };
    MockError::new(
        acl,
        format!(
            "{api} on {who} failed with {}: {}",
            result_name(code),
            err.message
        ),
    )
}

/// Runs the body of the exported HCCL function `name` through the shared
/// wrapper ([`guarded_call`]: call numbering for sanitizer reports, fault
/// injection, the message for `aclGetRecentErrMsg`): `Ok` becomes
/// `HCCL_SUCCESS`, an `Err` its code, a panic `HCCL_E_INTERNAL`.
pub fn hccl_call(name: &'static str, body: impl FnOnce() -> MockResult<()>) -> HcclResult {
    guarded_call(name, HCCL_E_INTERNAL as aclError, body) as HcclResult
}

/// The C name of an `HcclResult`.
pub fn result_name(code: HcclResult) -> &'static str {
    macro_rules! names {
        ($($name:ident = $value:expr),* $(,)?) => {
            match code {
                HCCL_SUCCESS => "HCCL_SUCCESS",
                $(c if c == $value as HcclResult => stringify!($name),)*
                _ => "unknown HcclResult",
            }
        };
    }
    ascend_sys::for_each_hccl_result!(names)
}

#[cfg(test)]
mod tests;
