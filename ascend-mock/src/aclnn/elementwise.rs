//! The elementwise operators: aclnnAdd, aclnnInplaceAdd, aclnnAdds and
//! aclnnMul, registered over the kernels of `ascend_kernels::elementwise`.

use ascend_kernels::elementwise::{
    AddArgs, AddsArgs, InplaceAddArgs, MulArgs, add, adds, inplace_add, mul,
};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnAdd`: `out = self + alpha * other`.
    aclnnAdd / aclnnAddGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        alpha: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => add::check, add::run, AddArgs { self_, other, alpha, out };

    /// Phase one of `aclnnInplaceAdd`: `selfRef += alpha * other`.
    aclnnInplaceAdd / aclnnInplaceAddGetWorkspaceSize(
        selfRef: *const aclTensor = inout,
        other: *const aclTensor = input,
        alpha: *const aclScalar = scalar,
    ) => inplace_add::check, inplace_add::run, InplaceAddArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnAdds`: `out = self + alpha * other` with a scalar
    /// `other`.
    aclnnAdds / aclnnAddsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => adds::check, adds::run, AddsArgs { self_, other, alpha, out };

    /// Phase one of `aclnnMul`: `out = self * other`.
    aclnnMul / aclnnMulGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => mul::check, mul::run, MulArgs { self_, other, out };
}
