//! The normalisation and activation operators: aclnnRmsNorm, aclnnSoftmax
//! and aclnnSwiGlu.

use ascend_kernels::rms_norm::{self, RmsNormArgs};
use ascend_kernels::softmax::{self, SoftmaxArgs};
use ascend_kernels::swiglu::{self, SwiGluArgs};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnRmsNorm`: `y = x / rms(x) * gamma`, `rstd = 1 / rms(x)`.
    aclnnRmsNorm / aclnnRmsNormGetWorkspaceSize(
        x: *const aclTensor = input,
        gamma: *const aclTensor = input,
        epsilon: f64 = value,
        yOut: *const aclTensor = output,
        rstdOut: *const aclTensor = output,
    ) => rms_norm::check, rms_norm::run, RmsNormArgs {
        x,
        gamma,
        epsilon,
        y_out: yOut,
        rstd_out: rstdOut,
    };

    /// Phase one of `aclnnSoftmax` along `dim`.
    aclnnSoftmax / aclnnSoftmaxGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        out: *mut aclTensor = output,
    ) => softmax::check, softmax::run, SoftmaxArgs { self_, dim, out };

    /// Phase one of `aclnnSwiGlu`: `x` split in halves `a, b` along `dim`,
    /// `out = silu(a) * b`.
    aclnnSwiGlu / aclnnSwiGluGetWorkspaceSize(
        x: *const aclTensor = input,
        dim: i64 = value,
        out: *const aclTensor = output,
    ) => swiglu::check, swiglu::run, SwiGluArgs { x, dim, out };
}
