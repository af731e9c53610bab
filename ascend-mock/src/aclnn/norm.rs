//! The normalisation and activation operators: aclnnRmsNorm, aclnnSoftmax
//! and aclnnSwiGlu.

use ascend_kernels::rms_norm::{self, RmsNormArgs};
use ascend_kernels::softmax::{self, SoftmaxArgs};
use ascend_kernels::swiglu::{self, SwiGluArgs};
use ascend_sys::*;

use super::executor::{get_workspace_size, kernel};

/// Phase one of `aclnnRmsNorm`: `y = x / rms(x) * gamma`, `rstd = 1 / rms(x)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnRmsNormGetWorkspaceSize(
    x: *const aclTensor,
    gamma: *const aclTensor,
    epsilon: f64,
    yOut: *const aclTensor,
    rstdOut: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnRmsNormGetWorkspaceSize",
        "aclnnRmsNorm",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let gamma = b.input("gamma", gamma)?;
            let y = b.output("yOut", yOut)?;
            let rstd = b.output("rstdOut", rstdOut)?;
            Ok(kernel(
                move |t| RmsNormArgs {
                    x: x.get(t),
                    gamma: gamma.get(t),
                    epsilon,
                    y_out: y.get(t),
                    rstd_out: rstd.get(t),
                },
                rms_norm::check,
                rms_norm::run,
            ))
        },
    )
}
phase_two!(aclnnRmsNorm);

/// Phase one of `aclnnSoftmax` along `dim`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnSoftmaxGetWorkspaceSize(
    self_: *const aclTensor,
    dim: i64,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnSoftmaxGetWorkspaceSize",
        "aclnnSoftmax",
        workspaceSize,
        executor,
        |b| {
            let s = b.input("self", self_)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| SoftmaxArgs {
                    self_: s.get(t),
                    dim,
                    out: out.get(t),
                },
                softmax::check,
                softmax::run,
            ))
        },
    )
}
phase_two!(aclnnSoftmax);

/// Phase one of `aclnnSwiGlu`: `x` split in halves `a, b` along `dim`,
/// `out = silu(a) * b`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnSwiGluGetWorkspaceSize(
    x: *const aclTensor,
    dim: i64,
    out: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnSwiGluGetWorkspaceSize",
        "aclnnSwiGlu",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| SwiGluArgs {
                    x: x.get(t),
                    dim,
                    out: out.get(t),
                },
                swiglu::check,
                swiglu::run,
            ))
        },
    )
}
phase_two!(aclnnSwiGlu);
