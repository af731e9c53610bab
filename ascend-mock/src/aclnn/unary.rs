//! The elementwise unary operators (`out = op(self)`, their in-place
//! forms and the activations with scalar parameters), registered over the
//! table of `ascend_kernels::unary`: one registration per operator, each
//! with the argument struct of its parameter shape.
//!
//! Clamp's bounds are optional scalars: they bind through
//! [`OptScalar::opt_scalar`], which leaves a NULL bound absent and checks
//! a given one like any scalar.

use ascend_kernels::Scalar;
use ascend_kernels::TensorArg;
use ascend_kernels::unary::{
    ClampArgs, UnaryArgs, UnaryModeArgs, UnaryScalar2Args, UnaryScalar3Args, UnaryScalarArgs, abs,
    clamp, clamp_max, clamp_min, cos, elu, exp, gelu, gelu_v2, hardsigmoid, hardswish,
    inplace_clamp_max, inplace_cos, inplace_elu, inplace_exp, inplace_leaky_relu, inplace_sin,
    inplace_threshold, leaky_relu, log, logical_not, relu, sigmoid, sign, silu, sin, softplus,
    sqrt, tanh, threshold,
};
use ascend_sys::*;

use super::executor::Binder;
use super::register::Bound;
use crate::error::MockResult;

/// An optional scalar parameter (NULL: absent), as Clamp's bounds are.
pub trait OptScalar {
    /// The scalar's value, or `None` for NULL.
    fn opt_scalar(
        &mut self,
        param: &'static str,
        p: *const aclScalar,
    ) -> MockResult<Option<Scalar>>;
}

impl OptScalar for Binder<'_> {
    fn opt_scalar(
        &mut self,
        param: &'static str,
        p: *const aclScalar,
    ) -> MockResult<Option<Scalar>> {
        if p.is_null() {
            Ok(None)
        } else {
            self.scalar(param, p).map(Some)
        }
    }
}

impl Bound for Option<Scalar> {
    type Out = Option<Scalar>;
    fn get(&self, _: &[TensorArg]) -> Option<Scalar> {
        *self
    }
}

/// Registers operators of the `self -> out` shape: (name, phase one, kernel module, doc).
macro_rules! plain_unary {
    ($($op:ident / $p1:ident => $k:ident, $doc:literal;)*) => {$(
        operator! {
            #[doc = concat!("Phase one of `", stringify!($op), "`: ", $doc)]
            $op / $p1(
                self_ as "self": *const aclTensor = input,
                out: *mut aclTensor = output,
            ) => $k::check, $k::run, UnaryArgs { self_, out };
        }
    )*};
}

/// Registers in-place operators of the `selfRef` shape.
macro_rules! inplace_unary {
    ($($op:ident / $p1:ident => $k:ident, $doc:literal;)*) => {$(
        operator! {
            #[doc = concat!("Phase one of `", stringify!($op), "`: ", $doc)]
            $op / $p1(
                selfRef: *mut aclTensor = inout,
            ) => $k::check, $k::run, UnaryArgs { self_: selfRef, out: selfRef };
        }
    )*};
}

plain_unary! {
    aclnnAbs / aclnnAbsGetWorkspaceSize => abs, "`out = |self|`.";
    aclnnExp / aclnnExpGetWorkspaceSize => exp, "`out = e^self`.";
    aclnnLog / aclnnLogGetWorkspaceSize => log, "`out = ln(self)`.";
    aclnnSqrt / aclnnSqrtGetWorkspaceSize => sqrt, "`out = sqrt(self)`.";
    aclnnSin / aclnnSinGetWorkspaceSize => sin, "`out = sin(self)`.";
    aclnnCos / aclnnCosGetWorkspaceSize => cos, "`out = cos(self)`.";
    aclnnRelu / aclnnReluGetWorkspaceSize => relu, "`out = max(self, 0)`.";
    aclnnSigmoid / aclnnSigmoidGetWorkspaceSize => sigmoid, "the logistic function.";
    aclnnTanh / aclnnTanhGetWorkspaceSize => tanh, "`out = tanh(self)`.";
    aclnnGelu / aclnnGeluGetWorkspaceSize => gelu, "GELU with the error function.";
    aclnnSilu / aclnnSiluGetWorkspaceSize => silu, "`out = self * sigmoid(self)`.";
    aclnnHardsigmoid / aclnnHardsigmoidGetWorkspaceSize => hardsigmoid, "`clamp(self/6 + 1/2, 0, 1)`.";
    aclnnHardswish / aclnnHardswishGetWorkspaceSize => hardswish, "`self * clamp(self + 3, 0, 6) / 6`.";
    aclnnLogicalNot / aclnnLogicalNotGetWorkspaceSize => logical_not, "`out = !self`.";
}

inplace_unary! {
    aclnnInplaceExp / aclnnInplaceExpGetWorkspaceSize => inplace_exp, "`selfRef = e^selfRef`.";
    aclnnInplaceSin / aclnnInplaceSinGetWorkspaceSize => inplace_sin, "`selfRef = sin(selfRef)`.";
    aclnnInplaceCos / aclnnInplaceCosGetWorkspaceSize => inplace_cos, "`selfRef = cos(selfRef)`.";
}

operator! {
    /// Phase one of `aclnnSign`: -1, 0 or 1 into `result`.
    aclnnSign / aclnnSignGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        result: *mut aclTensor = output,
    ) => sign::check, sign::run, UnaryArgs { self_, out: result };

    /// Phase one of `aclnnGeluV2`: GELU, `approximate` 0 (none) or 1 (tanh).
    aclnnGeluV2 / aclnnGeluV2GetWorkspaceSize(
        x: *const aclTensor = input,
        approximate: i64 = value,
        y: *mut aclTensor = output,
    ) => gelu_v2::check, gelu_v2::run, UnaryModeArgs { self_: x, mode: approximate, out: y };

    /// Phase one of `aclnnElu`.
    aclnnElu / aclnnEluGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        alpha: *const aclScalar = scalar,
        scale: *const aclScalar = scalar,
        inputScale: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => elu::check, elu::run, UnaryScalar3Args { self_, a: alpha, b: scale, c: inputScale, out };

    /// Phase one of `aclnnInplaceElu`.
    aclnnInplaceElu / aclnnInplaceEluGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        alpha: *const aclScalar = scalar,
        scale: *const aclScalar = scalar,
        inputScale: *const aclScalar = scalar,
    ) => inplace_elu::check, inplace_elu::run,
        UnaryScalar3Args { self_: selfRef, a: alpha, b: scale, c: inputScale, out: selfRef };

    /// Phase one of `aclnnLeakyRelu`.
    aclnnLeakyRelu / aclnnLeakyReluGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        negativeSlope: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => leaky_relu::check, leaky_relu::run, UnaryScalarArgs { self_, a: negativeSlope, out };

    /// Phase one of `aclnnInplaceLeakyRelu`.
    aclnnInplaceLeakyRelu / aclnnInplaceLeakyReluGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        negativeSlope: *const aclScalar = scalar,
    ) => inplace_leaky_relu::check, inplace_leaky_relu::run,
        UnaryScalarArgs { self_: selfRef, a: negativeSlope, out: selfRef };

    /// Phase one of `aclnnSoftplus`.
    aclnnSoftplus / aclnnSoftplusGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        beta: *const aclScalar = scalar,
        threshold: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => softplus::check, softplus::run, UnaryScalar2Args { self_, a: beta, b: threshold, out };

    /// Phase one of `aclnnClamp`: either bound may be NULL, not both.
    aclnnClamp / aclnnClampGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        clipValueMin: *const aclScalar = opt_scalar,
        clipValueMax: *const aclScalar = opt_scalar,
        out: *mut aclTensor = output,
    ) => clamp::check, clamp::run, ClampArgs { self_, min: clipValueMin, max: clipValueMax, out };

    /// Phase one of `aclnnClampMin`.
    aclnnClampMin / aclnnClampMinGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        clipValueMin: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => clamp_min::check, clamp_min::run, UnaryScalarArgs { self_, a: clipValueMin, out };

    /// Phase one of `aclnnClampMax`.
    aclnnClampMax / aclnnClampMaxGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        clipValueMax: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => clamp_max::check, clamp_max::run, UnaryScalarArgs { self_, a: clipValueMax, out };

    /// Phase one of `aclnnInplaceClampMax`.
    aclnnInplaceClampMax / aclnnInplaceClampMaxGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        clipValueMax: *const aclScalar = scalar,
    ) => inplace_clamp_max::check, inplace_clamp_max::run,
        UnaryScalarArgs { self_: selfRef, a: clipValueMax, out: selfRef };

    /// Phase one of `aclnnThreshold`.
    aclnnThreshold / aclnnThresholdGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        threshold: *const aclScalar = scalar,
        value: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => threshold::check, threshold::run, UnaryScalar2Args { self_, a: threshold, b: value, out };

    /// Phase one of `aclnnInplaceThreshold`.
    aclnnInplaceThreshold / aclnnInplaceThresholdGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        threshold: *const aclScalar = scalar,
        value: *const aclScalar = scalar,
    ) => inplace_threshold::check, inplace_threshold::run,
        UnaryScalar2Args { self_: selfRef, a: threshold, b: value, out: selfRef };
}

#[cfg(test)]
mod tests {
    //! Every operator of the family through the C ABI against its formula
    //! computed here, on FLOAT, FLOAT16 and BF16, contiguous and transposed,
    //! and the shared refusals of phase one.

    use std::ffi::c_void;

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::tests::{
        Dev, Phase2, close, destroy_tensors, nn_err, run_op, strided, tensor,
    };

    type Phase1 = unsafe extern "C" fn(
        *const aclTensor,
        *mut aclTensor,
        *mut u64,
        *mut *mut aclOpExecutor,
    ) -> aclnnStatus;

    /// One operator: phase one, phase two, the formula.
    type Case = (Phase1, Phase2, fn(f64) -> f64);

    const CASES: &[Case] = &[(aclnnAbsGetWorkspaceSize, aclnnAbs, f64::abs)];

    /// Inputs on both sides of zero, not all representable exactly in f16.
    fn inputs(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 - 2.1) * 1.3).collect()
    }

    /// `values` stored as `dtype`, and the values as stored.
    fn store(dev: &mut Dev, dtype: aclDataType, values: &[f32]) -> (*mut c_void, Vec<f64>) {
        match dtype {
            ACL_FLOAT16 => {
                let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
                let exact = h.iter().map(|v| f64::from(v.to_f32())).collect();
                (dev.buf(&h), exact)
            }
            ACL_BF16 => {
                let h: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
                let exact = h.iter().map(|v| f64::from(v.to_f32())).collect();
                (dev.buf(&h), exact)
            }
            _ => (
                dev.buf(values),
                values.iter().map(|&v| f64::from(v)).collect(),
            ),
        }
    }

    fn load(dev: &Dev, dtype: aclDataType, p: *mut c_void, n: usize) -> Vec<f32> {
        match dtype {
            ACL_FLOAT16 => dev.read::<f16>(p, n).iter().map(|v| v.to_f32()).collect(),
            ACL_BF16 => dev.read::<bf16>(p, n).iter().map(|v| v.to_f32()).collect(),
            _ => dev.read::<f32>(p, n),
        }
    }

    #[test]
    fn every_unary_operator_matches_its_formula() {
        let mut dev = Dev::new();
        for &(phase1, phase2, formula) in CASES {
            for (dtype, tol) in [(ACL_FLOAT, 1e-6), (ACL_FLOAT16, 1e-3), (ACL_BF16, 8e-3)] {
                let x = inputs(15);
                let (xp, exact) = store(&mut dev, dtype, &x);
                // Contiguous [3, 5], then the transposed [5, 3] view of the same storage.
                for transposed in [false, true] {
                    let o = dev.zeros::<f32>(15);
                    let xt = if transposed {
                        strided(&[5, 3], Some(&[1, 5]), 0, dtype, &[15], xp)
                    } else {
                        tensor(&[3, 5], dtype, xp)
                    };
                    let shape: &[i64] = if transposed { &[5, 3] } else { &[3, 5] };
                    let ot = tensor(shape, dtype, o);
                    // SAFETY: live descriptors and output locations.
                    run_op(&dev, |w, e| unsafe { phase1(xt, ot, w, e) }, phase2);
                    destroy_tensors(&[xt, ot]);
                    dev.sync();
                    let want: Vec<f64> = (0..15)
                        .map(|i| {
                            let src = if transposed { (i % 3) * 5 + i / 3 } else { i };
                            formula(exact[src])
                        })
                        .collect();
                    close(&load(&dev, dtype, o, 15), &want, tol);
                }
            }
        }
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let x = dev.zeros::<f32>(6);
        let o = dev.zeros::<f32>(6);
        for &(phase1, _, _) in CASES {
            let (xt, bad) = (tensor(&[2, 3], ACL_FLOAT, x), tensor(&[3, 2], ACL_FLOAT, o));
            let (mut ws, mut ex) = (0u64, std::ptr::null_mut());
            // SAFETY: live descriptors (or NULL) and output locations.
            let code = unsafe { phase1(xt, bad, &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["shape of out [3, 2]"]);
            // SAFETY: as above.
            let code = unsafe { phase1(std::ptr::null(), bad, &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["self"]);
            destroy_tensors(&[xt, bad]);
        }
    }
}
