//! The elementwise operators: aclnnAdd, aclnnInplaceAdd, aclnnAdds and
//! aclnnMul. Each phase one binds its parameters and builds the kernel's
//! argument struct from `ascend_kernels::elementwise`; the shared path in
//! [`executor`](super::executor) does the rest.

use ascend_kernels::elementwise::{
    AddArgs, AddsArgs, InplaceAddArgs, MulArgs, add, adds, inplace_add, mul,
};
use ascend_sys::*;

use super::executor::{get_workspace_size, kernel};

/// Phase one of `aclnnAdd`: `out = self + alpha * other`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnAddGetWorkspaceSize(
    self_: *const aclTensor,
    other: *const aclTensor,
    alpha: *const aclScalar,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnAddGetWorkspaceSize",
        "aclnnAdd",
        workspaceSize,
        executor,
        |b| {
            let s = b.input("self", self_)?;
            let o = b.input("other", other)?;
            let alpha = b.scalar("alpha", alpha)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| AddArgs {
                    self_: s.get(t),
                    other: o.get(t),
                    alpha,
                    out: out.get(t),
                },
                add::check,
                add::run,
            ))
        },
    )
}
phase_two!(aclnnAdd);

/// Phase one of `aclnnInplaceAdd`: `selfRef += alpha * other`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnInplaceAddGetWorkspaceSize(
    selfRef: *const aclTensor,
    other: *const aclTensor,
    alpha: *const aclScalar,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnInplaceAddGetWorkspaceSize",
        "aclnnInplaceAdd",
        workspaceSize,
        executor,
        |b| {
            let s = b.inout("selfRef", selfRef)?;
            let o = b.input("other", other)?;
            let alpha = b.scalar("alpha", alpha)?;
            Ok(kernel(
                move |t| InplaceAddArgs {
                    self_ref: s.get(t),
                    other: o.get(t),
                    alpha,
                },
                inplace_add::check,
                inplace_add::run,
            ))
        },
    )
}
phase_two!(aclnnInplaceAdd);

/// Phase one of `aclnnAdds`: `out = self + alpha * other` with a scalar
/// `other`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnAddsGetWorkspaceSize(
    self_: *const aclTensor,
    other: *const aclScalar,
    alpha: *const aclScalar,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnAddsGetWorkspaceSize",
        "aclnnAdds",
        workspaceSize,
        executor,
        |b| {
            let s = b.input("self", self_)?;
            let other = b.scalar("other", other)?;
            let alpha = b.scalar("alpha", alpha)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| AddsArgs {
                    self_: s.get(t),
                    other,
                    alpha,
                    out: out.get(t),
                },
                adds::check,
                adds::run,
            ))
        },
    )
}
phase_two!(aclnnAdds);

/// Phase one of `aclnnMul`: `out = self * other`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMulGetWorkspaceSize(
    self_: *const aclTensor,
    other: *const aclTensor,
    out: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMulGetWorkspaceSize",
        "aclnnMul",
        workspaceSize,
        executor,
        |b| {
            let s = b.input("self", self_)?;
            let o = b.input("other", other)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| MulArgs {
                    self_: s.get(t),
                    other: o.get(t),
                    out: out.get(t),
                },
                mul::check,
                mul::run,
            ))
        },
    )
}
phase_two!(aclnnMul);
