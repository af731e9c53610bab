//! The broadcasting binary operators beyond Add and Mul (subtraction, true
//! division, scalar multiplication, comparisons, powers and their in-place
//! forms), Addcdiv and InplaceMaskedFillScalar, registered over
//! `ascend_kernels::binary`.

use ascend_kernels::binary::{
    AddcdivArgs, DivArgs, DivsArgs, EqTensorArgs, GtScalarArgs, InplaceAddsArgs, InplaceDivArgs,
    InplaceDivsArgs, InplaceMulArgs, InplaceMulsArgs, InplacePowTensorTensorArgs, InplaceSubArgs,
    InplaceSubsArgs, MaskedFillScalarArgs, MulsArgs, PowScalarTensorArgs, PowTensorScalarArgs,
    PowTensorTensorArgs, SubArgs, SubsArgs, addcdiv, div, divs, eq_tensor, gt_scalar, inplace_adds,
    inplace_div, inplace_divs, inplace_masked_fill_scalar, inplace_mul, inplace_muls,
    inplace_pow_tensor_tensor, inplace_sub, inplace_subs, muls, pow_scalar_tensor,
    pow_tensor_scalar, pow_tensor_tensor, sub, subs,
};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnSub`: `out = self - alpha * other`.
    aclnnSub / aclnnSubGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        alpha: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => sub::check, sub::run, SubArgs { self_, other, alpha, out };

    /// Phase one of `aclnnSubs`: `out = self - alpha * other`, scalar `other`.
    aclnnSubs / aclnnSubsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => subs::check, subs::run, SubsArgs { self_, other, alpha, out };

    /// Phase one of `aclnnInplaceSub`: `selfRef -= alpha * other`.
    aclnnInplaceSub / aclnnInplaceSubGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclTensor = input,
        alpha: *const aclScalar = scalar,
    ) => inplace_sub::check, inplace_sub::run, InplaceSubArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnInplaceSubs`: `selfRef -= alpha * other`, scalar `other`.
    aclnnInplaceSubs / aclnnInplaceSubsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
    ) => inplace_subs::check, inplace_subs::run, InplaceSubsArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnInplaceAdds`: `selfRef += alpha * other`, scalar `other`.
    aclnnInplaceAdds / aclnnInplaceAddsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
    ) => inplace_adds::check, inplace_adds::run, InplaceAddsArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnDiv`: `out = self / other`, true division.
    aclnnDiv / aclnnDivGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => div::check, div::run, DivArgs { self_, other, out };

    /// Phase one of `aclnnDivs`: `out = self / other`, scalar `other`.
    aclnnDivs / aclnnDivsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => divs::check, divs::run, DivsArgs { self_, other, out };

    /// Phase one of `aclnnInplaceDiv`: `selfRef /= other`.
    aclnnInplaceDiv / aclnnInplaceDivGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclTensor = input,
    ) => inplace_div::check, inplace_div::run, InplaceDivArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnInplaceDivs`: `selfRef /= other`, scalar `other`.
    aclnnInplaceDivs / aclnnInplaceDivsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
    ) => inplace_divs::check, inplace_divs::run, InplaceDivsArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnMuls`: `out = self * other`, scalar `other`.
    aclnnMuls / aclnnMulsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => muls::check, muls::run, MulsArgs { self_, other, out };

    /// Phase one of `aclnnInplaceMul`: `selfRef *= other`.
    aclnnInplaceMul / aclnnInplaceMulGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclTensor = input,
    ) => inplace_mul::check, inplace_mul::run, InplaceMulArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnInplaceMuls`: `selfRef *= other`, scalar `other`.
    aclnnInplaceMuls / aclnnInplaceMulsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
    ) => inplace_muls::check, inplace_muls::run, InplaceMulsArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnGtScalar`: `out = self > other`.
    aclnnGtScalar / aclnnGtScalarGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => gt_scalar::check, gt_scalar::run, GtScalarArgs { self_, other, out };

    /// Phase one of `aclnnEqTensor`: `out = self == other`.
    aclnnEqTensor / aclnnEqTensorGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => eq_tensor::check, eq_tensor::run, EqTensorArgs { self_, other, out };

    /// Phase one of `aclnnPowTensorTensor`: `out = self ^ exponent`.
    aclnnPowTensorTensor / aclnnPowTensorTensorGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        exponent: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => pow_tensor_tensor::check, pow_tensor_tensor::run, PowTensorTensorArgs { self_, exponent, out };

    /// Phase one of `aclnnInplacePowTensorTensor`: `selfRef = selfRef ^ exponent`.
    aclnnInplacePowTensorTensor / aclnnInplacePowTensorTensorGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        exponent: *const aclTensor = input,
    ) => inplace_pow_tensor_tensor::check, inplace_pow_tensor_tensor::run,
        InplacePowTensorTensorArgs { self_ref: selfRef, exponent };

    /// Phase one of `aclnnPowTensorScalar`: `out = self ^ exponent`, scalar exponent.
    aclnnPowTensorScalar / aclnnPowTensorScalarGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        exponent: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => pow_tensor_scalar::check, pow_tensor_scalar::run, PowTensorScalarArgs { self_, exponent, out };

    /// Phase one of `aclnnPowScalarTensor`: `out = self ^ exponent`, scalar base.
    aclnnPowScalarTensor / aclnnPowScalarTensorGetWorkspaceSize(
        self_ as "self": *const aclScalar = scalar,
        exponent: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => pow_scalar_tensor::check, pow_scalar_tensor::run, PowScalarTensorArgs { self_, exponent, out };

    /// Phase one of `aclnnAddcdiv`: `out = self + value * tensor1 / tensor2`.
    aclnnAddcdiv / aclnnAddcdivGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        tensor1: *const aclTensor = input,
        tensor2: *const aclTensor = input,
        value: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => addcdiv::check, addcdiv::run, AddcdivArgs { self_, tensor1, tensor2, value, out };

    /// Phase one of `aclnnInplaceAddcdiv`: `selfRef += value * tensor1 / tensor2`.
    aclnnInplaceAddcdiv / aclnnInplaceAddcdivGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        tensor1: *const aclTensor = input,
        tensor2: *const aclTensor = input,
        value: *const aclScalar = scalar,
    ) => addcdiv::check_inplace, addcdiv::run_inplace,
        AddcdivArgs { self_: selfRef, tensor1, tensor2, value, out: selfRef };

    /// Phase one of `aclnnInplaceMaskedFillScalar`: `selfRef[mask] = value`.
    aclnnInplaceMaskedFillScalar / aclnnInplaceMaskedFillScalarGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        mask: *const aclTensor = input,
        value: *const aclScalar = scalar,
    ) => inplace_masked_fill_scalar::check, inplace_masked_fill_scalar::run,
        MaskedFillScalarArgs { self_ref: selfRef, mask, value };
}
