//! opapi (`libopapi*`): the aclnn operators' two phases, and the generic
//! two-phase helpers every operator launch goes through.
//!
//! An operator is named by its two functions' typed getters on the
//! `OpApi` table ([`Operator`]; this crate writes them with its `operator!`
//! macro): `aclnnXxxGetWorkspaceSize` (phase one, whose arguments differ
//! per operator) and `aclnnXxx` (phase two, whose signature, [`Phase2`], is
//! the same for all). [`Operator::resolve`] looks both up, calling neither.
//! Then:
//!
//! - [`launch`]: phase one (the caller's closure calls the resolved
//!   function with its descriptors), the workspace of the size phase one
//!   asked for (from the caller: this layer has no allocator), phase two
//!   on a stream.
//! - [`prepare`]: phase one, `aclSetAclOpExecutorRepeatable`, the
//!   workspace; phase two then runs as often as asked ([`phase2`]).
//!
//! Invariants:
//! - Only [`Operator::resolve`] and [`Operator::is_available`] reach the
//!   `OpApi` table. Both functions of an operator are resolved before its
//!   phase one runs, so a missing symbol never leaves an executor behind;
//!   [`prepare`] resolves the executor calls it needs beforehand too.
//! - A failing phase is [`Error::Aclnn`](crate::Error::Aclnn) naming that
//!   function, with its status and the runtime's message; a phase one that
//!   reports success without an executor is
//!   [`Error::NullResult`](crate::Error::NullResult).
//! - An executor from phase one is consumed exactly once: by phase two, or,
//!   when the launch stops between the phases (the workspace could not be
//!   had), by making it repeatable and destroying it, which is the only
//!   way aclnn offers to release an executor whose phase two never runs. If
//!   either of those calls fails, the executor is leaked: no other call
//!   could release it.
//! - Nothing here knows about contexts, pools or tracking: the workspace
//!   and its ordering on the stream are the caller's.

use std::ffi::c_void;

use ascend_sys::{LoadError, OpApi, aclOpExecutor, aclnnStatus, aclrtStream};

use crate::error::Result;
use crate::result::check::{check_aclnn, null_result};
use crate::result::nnopbase;

/// Phase two of every aclnn operator: `aclnnXxx(workspace, workspaceSize,
/// executor, stream)`.
pub type Phase2 = unsafe extern "C" fn(
    workspace: *mut c_void,
    workspace_size: u64,
    executor: *mut aclOpExecutor,
    stream: aclrtStream,
) -> aclnnStatus;

/// A typed getter of the `OpApi` table: one of its methods, such as
/// `OpApi::aclnnAdd`.
pub type Getter<F> = fn(&OpApi) -> std::result::Result<F, LoadError>;

/// An operator, by its two functions: names (for errors) and typed getters.
/// `P1` is the type of its phase one.
#[derive(Debug, Clone, Copy)]
pub struct Operator<P1> {
    /// `aclnnXxxGetWorkspaceSize`.
    pub phase1_name: &'static str,
    /// The getter of phase one.
    pub phase1: Getter<P1>,
    /// `aclnnXxx`.
    pub phase2_name: &'static str,
    /// The getter of phase two.
    pub phase2: Getter<Phase2>,
}

/// The [`Operator`] of two `OpApi` functions, named once:
/// `operator!(aclnnAddGetWorkspaceSize, aclnnAdd)`.
macro_rules! operator {
    ($phase1:ident, $phase2:ident) => {
        $crate::result::opapi::Operator {
            phase1_name: stringify!($phase1),
            phase1: ascend_sys::OpApi::$phase1,
            phase2_name: stringify!($phase2),
            phase2: ascend_sys::OpApi::$phase2,
        }
    };
}
pub(crate) use operator;

/// An operator's two functions, resolved in the active backend.
#[derive(Debug, Clone, Copy)]
pub struct Phases<P1> {
    /// `aclnnXxxGetWorkspaceSize`.
    pub phase1_name: &'static str,
    /// Phase one.
    pub phase1: P1,
    /// `aclnnXxx`.
    pub phase2_name: &'static str,
    /// Phase two.
    pub phase2: Phase2,
}

impl<P1> Operator<P1> {
    /// Looks up both functions in the active backend, calling neither: an
    /// error names the first one it lacks.
    pub fn resolve(&self) -> Result<Phases<P1>> {
        let table = &crate::backend::api()?.opapi;
        Ok(Phases {
            phase1_name: self.phase1_name,
            phase1: (self.phase1)(table)?,
            phase2_name: self.phase2_name,
            phase2: (self.phase2)(table)?,
        })
    }

    /// Whether the active backend has both functions (to choose between an
    /// operator's versions).
    pub fn is_available(&self) -> Result<bool> {
        let table = &crate::backend::api()?.opapi;
        Ok((self.phase1)(table).is_ok() && (self.phase2)(table).is_ok())
    }
}

/// Phase one: `call` calls the operator's resolved phase one `p1` with its
/// descriptors and the two out-pointers it is given; its status is checked
/// (errors name `name`) and the workspace size and executor returned.
pub fn phase1<P1>(
    name: &'static str,
    p1: P1,
    call: impl FnOnce(P1, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
) -> Result<(u64, *mut aclOpExecutor)> {
    let mut size = 0u64;
    let mut exec: *mut aclOpExecutor = std::ptr::null_mut();
    let status = call(p1, &mut size, &mut exec);
    check_aclnn(name, status)?;
    if exec.is_null() {
        return Err(null_result(name));
    }
    Ok((size, exec))
}

/// Phase two, `p2` (named `name` in errors): queues the operator on
/// `stream`.
///
/// # Safety
/// `exec` is the executor of this operator's phase one, either never
/// launched (phase two consumes it) or repeatable; the descriptors it was
/// made with are alive; `workspace` is null when `size` is 0 and otherwise
/// device memory of at least `size` bytes that nothing else uses until
/// `stream` has passed the operator; `stream` is live and its context
/// current on this thread, and the tensors' memory stays valid until the
/// stream has passed the operator.
pub unsafe fn phase2(
    name: &'static str,
    p2: Phase2,
    workspace: *mut c_void,
    size: u64,
    exec: *mut aclOpExecutor,
    stream: aclrtStream,
) -> Result<()> {
    // SAFETY: guaranteed by the caller.
    check_aclnn(name, unsafe { p2(workspace, size, exec, stream) })
}

/// Releases the executor of a phase one whose phase two will not run: makes
/// it repeatable, then destroys it. Failures are ignored (the caller is
/// returning the error that stopped it); the executor is then leaked.
///
/// # Safety
/// `exec` is the live executor of a phase one whose phase two was never
/// called, and it is not used afterwards.
unsafe fn discard(exec: *mut aclOpExecutor) {
    // SAFETY: the executor is live and never launched (caller), so it may be
    // made repeatable; once it is, destroying it is its documented end.
    unsafe {
        if nnopbase::set_executor_repeatable(exec).is_ok() {
            let _ = nnopbase::destroy_executor(exec);
        }
    }
}

/// What a launch that reached phase two leaves: the workspace's owner (to
/// be given back once the caller is done with the launch) and phase two's
/// result.
#[derive(Debug)]
#[must_use]
pub struct Launched<W> {
    /// The owner of the workspace, from the caller's `workspace`.
    pub workspace: W,
    /// Phase two's result.
    pub status: Result<()>,
}

/// The two-phase launch of one operator: phase one through `call`, the
/// workspace of the size it asked for from `workspace` (an owner and the
/// memory's address), phase two on `stream`. An error before phase two
/// (phase one failed, or no workspace) releases the executor (see the
/// module docs) and is returned as `Err`; once phase two has been called,
/// its result is in [`Launched::status`].
///
/// # Safety
/// - `call` is the operator's phase one: it calls `op.phase1` with
///   descriptors that stay alive until this returns and with the
///   out-pointers it is given, or returns a failing status.
/// - `workspace(size)` returns null or the base of at least `size` bytes
///   of device memory (null only when `size` is 0) that stays valid while
///   its owner lives and that nothing else uses until `stream` has passed
///   the operator.
/// - `stream` is live, its context is current on this thread, and the
///   tensors' memory stays valid until the stream has passed the operator.
pub unsafe fn launch<P1, W>(
    op: &Phases<P1>,
    call: impl FnOnce(P1, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
    workspace: impl FnOnce(u64) -> Result<(W, *mut c_void)>,
    stream: aclrtStream,
) -> Result<Launched<W>>
where
    P1: Copy,
{
    let (size, exec) = phase1(op.phase1_name, op.phase1, call)?;
    let (owner, ptr) = match workspace(size) {
        Ok(w) => w,
        Err(e) => {
            // SAFETY: `exec` is phase one's, never launched, and dropped here.
            unsafe { discard(exec) };
            return Err(e);
        }
    };
    // SAFETY: `exec` is phase one's, consumed by this one phase two; the
    // descriptors, the workspace and the stream are as the caller
    // guarantees.
    let status = unsafe { phase2(op.phase2_name, op.phase2, ptr, size, exec, stream) };
    Ok(Launched {
        workspace: owner,
        status,
    })
}

/// A repeatable executor from [`prepare`], with its workspace.
#[derive(Debug)]
pub struct Prepared<W> {
    /// The executor, repeatable: released only by
    /// [`nnopbase::destroy_executor`].
    pub executor: *mut aclOpExecutor,
    /// The workspace size phase one asked for, in bytes.
    pub workspace_size: u64,
    /// The owner of the workspace, from the caller's `workspace`.
    pub workspace: W,
}

/// Phase one and `aclSetAclOpExecutorRepeatable`, then the workspace: the
/// result's executor runs phase two ([`phase2`]) as often as asked, until
/// [`nnopbase::destroy_executor`]. The executor calls are resolved before
/// phase one runs. A failing `aclSetAclOpExecutorRepeatable` leaves a
/// single-use executor that only its phase two would release: it is
/// leaked. When the workspace cannot be had, the (repeatable) executor is
/// destroyed.
///
/// # Safety
/// `call` is the operator's phase one, as for [`launch`], with descriptors
/// that stay alive as long as the executor.
pub unsafe fn prepare<P1, W>(
    op: &Phases<P1>,
    call: impl FnOnce(P1, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus,
    workspace: impl FnOnce(u64) -> Result<W>,
) -> Result<Prepared<W>>
where
    P1: Copy,
{
    nnopbase::resolve_executor_calls()?;
    let (size, exec) = phase1(op.phase1_name, op.phase1, call)?;
    // SAFETY: `exec` is the live executor phase one just returned.
    unsafe { nnopbase::set_executor_repeatable(exec) }?;
    match workspace(size) {
        Ok(owner) => Ok(Prepared {
            executor: exec,
            workspace_size: size,
            workspace: owner,
        }),
        Err(e) => {
            // SAFETY: the executor is repeatable and was never launched.
            let _ = unsafe { nnopbase::destroy_executor(exec) };
            Err(e)
        }
    }
}
