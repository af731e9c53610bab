//! The aclnn layer of the mock device: the meta API of `libnnopbase`
//! (descriptors, executors) and the two-phase operators of `libopapi`,
//! which run the CPU kernels of `ascend-kernels` on the mock's streams.
//!
//! - [`meta`]: `aclnnInit`, the descriptor objects (`aclTensor`,
//!   `aclScalar`, arrays, lists) and the registry of every live one.
//! - [`executor`]: `aclOpExecutor`, the shared phase-one path (descriptor
//!   conversion, placement checks, kernel check) and phase-two path
//!   (workspace checks, enqueueing the kernel), and the executor functions
//!   of the meta API (repeatable, destroy, address updates).
//! - [`elementwise`], [`matmul`], [`norm`], [`topk`], [`moe`]: one
//!   `aclnnXxxGetWorkspaceSize`/`aclnnXxx` pair per operator; each only
//!   binds its parameters and builds the kernel's argument struct.
//!
//! Invariants:
//! - Every exported function runs through [`aclnn_call`] (or
//!   [`aclnn_call_value`]): failures return an `aclnnStatus` (161001,
//!   161002, 361001, 561xxx) and leave a message naming the function for
//!   `aclGetRecentErrMsg`; panics never cross the C boundary.
//! - Descriptors and executors are only reached through the registry, never
//!   by dereferencing a caller's pointer, so unknown, destroyed or
//!   wrongly-typed pointers are refused cleanly.
//! - A kernel only runs on memory that phase two found inside live device
//!   allocations of the executor's device; `aclrtFree` defers the release
//!   of a block until the work queued before it ran.

/// Defines the exported phase-two function `$name` of the operator of the
/// same name: `$name(workspace, workspaceSize, executor, stream)`.
macro_rules! phase_two {
    ($name:ident) => {
        #[doc = concat!(
                                                    "Phase two of `",
                                                    stringify!($name),
                                                    "`: queues the executor's kernel on `stream`."
                                                )]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            workspace: *mut std::ffi::c_void,
            workspaceSize: u64,
            executor: *mut ascend_sys::aclOpExecutor,
            stream: ascend_sys::aclrtStream,
        ) -> ascend_sys::aclnnStatus {
            super::executor::launch(
                stringify!($name),
                stringify!($name),
                workspace,
                workspaceSize,
                executor,
                stream,
            )
        }
    };
}

#[macro_use]
mod register;

pub mod attention;
pub mod binary;
pub mod conversion;
pub mod elementwise;
pub mod executor;
pub mod matmul;
pub mod meta;
pub mod moe;
pub mod norm;
pub mod reduce;
pub mod rope;
pub mod shape;
pub mod topk;
pub mod unary;

use ascend_kernels::KernelError;
use ascend_sys::{
    ACLNN_ERR_INNER, ACLNN_ERR_PARAM_INVALID, ACLNN_ERR_PARAM_NULLPTR, ACLNN_ERR_RUNTIME_ERROR,
    ACLNN_SUCCESS, aclnnStatus,
};

use crate::error::{MockError, MockResult};

/// Runs the body of the exported aclnn function `name`: `Ok` becomes
/// `ACLNN_SUCCESS`, an `Err` its code with the message recorded, a panic
/// `ACLNN_ERR_INNER`.
pub fn aclnn_call(name: &'static str, body: impl FnOnce() -> MockResult<()>) -> aclnnStatus {
    crate::gate::guarded_call(name, ACLNN_ERR_INNER, body)
}

/// Like [`aclnn_call`] for functions returning a value (the `aclCreate*`
/// family): on failure the message is recorded and `fallback` returned.
pub fn aclnn_call_value<T>(
    name: &'static str,
    fallback: T,
    body: impl FnOnce() -> MockResult<T>,
) -> T {
    let mut out = None;
    let code = aclnn_call(name, || {
        out = Some(body()?);
        Ok(())
    });
    match out {
        Some(v) if code == ACLNN_SUCCESS => v,
        _ => fallback,
    }
}

/// `ACLNN_ERR_PARAM_NULLPTR` with `message`.
pub(crate) fn null_err(message: impl Into<String>) -> MockError {
    MockError::new(ACLNN_ERR_PARAM_NULLPTR, message)
}

/// `ACLNN_ERR_PARAM_INVALID` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> MockError {
    MockError::new(ACLNN_ERR_PARAM_INVALID, message)
}

/// A runtime failure inside an aclnn call (no context, dead stream, ...)
/// becomes `ACLNN_ERR_RUNTIME_ERROR`, keeping the runtime's code in the
/// message.
pub(crate) fn runtime_err(err: MockError) -> MockError {
    MockError::new(
        ACLNN_ERR_RUNTIME_ERROR,
        format!("{} (runtime error {})", err.message, err.code),
    )
}

/// A kernel's refusal as a mock error with the same code and text.
pub(crate) fn kernel_err(err: KernelError) -> MockError {
    MockError::new(err.code, err.message)
}

#[cfg(test)]
mod tests;
