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
use ascend_kernels::unary::*;
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
    aclnnNeg / aclnnNegGetWorkspaceSize => neg, "`out = -self`.";
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
    aclnnInplaceNeg / aclnnInplaceNegGetWorkspaceSize => inplace_neg, "`selfRef = -selfRef`.";
    aclnnInplaceExp / aclnnInplaceExpGetWorkspaceSize => inplace_exp, "`selfRef = e^selfRef`.";
    aclnnInplaceSin / aclnnInplaceSinGetWorkspaceSize => inplace_sin, "`selfRef = sin(selfRef)`.";
    aclnnInplaceCos / aclnnInplaceCosGetWorkspaceSize => inplace_cos, "`selfRef = cos(selfRef)`.";
    aclnnInplaceLog / aclnnInplaceLogGetWorkspaceSize => inplace_log, "`selfRef = ln(selfRef)`.";
    aclnnInplaceSqrt / aclnnInplaceSqrtGetWorkspaceSize => inplace_sqrt, "`selfRef = sqrt(selfRef)`.";
    aclnnInplaceRelu / aclnnInplaceReluGetWorkspaceSize => inplace_relu, "`selfRef = max(selfRef, 0)`.";
    aclnnInplaceSigmoid / aclnnInplaceSigmoidGetWorkspaceSize => inplace_sigmoid, "the logistic function in place.";
    aclnnInplaceTanh / aclnnInplaceTanhGetWorkspaceSize => inplace_tanh, "`selfRef = tanh(selfRef)`.";
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
    //! computed here: the plain ones on FLOAT, FLOAT16 and BF16, contiguous
    //! and transposed; the in-place forms on a transposed `selfRef`; the
    //! scalar and mode parameters; integer, bool and DOUBLE inputs;
    //! zero-size and rank-0 tensors; and the refusals of phase one.

    use std::ffi::c_void;
    use std::ptr::{null, null_mut};

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::meta::{aclCreateScalar, aclDestroyScalar};
    use crate::aclnn::tests::{
        Dev, Phase2, close, destroy_tensors, nn_err, run_op, strided, tensor,
    };

    type Phase1 = unsafe extern "C" fn(
        *const aclTensor,
        *mut aclTensor,
        *mut u64,
        *mut *mut aclOpExecutor,
    ) -> aclnnStatus;

    /// One operator: phase one, phase two, the formula, and whether its
    /// inputs must be positive (Log, Sqrt).
    type Case = (Phase1, Phase2, fn(f64) -> f64, bool);

    fn erf(x: f64) -> f64 {
        // Simpson's rule on 2/√π ∫₀ˣ e^(-t²) dt (independent of the kernel's).
        let n = 1000;
        let h = x / f64::from(n);
        let mut s = 1.0 + (-x * x).exp();
        for k in 1..n {
            let t = f64::from(k) * h;
            s += (-t * t).exp() * if k % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * std::f64::consts::FRAC_2_SQRT_PI
    }

    const CASES: &[Case] = &[
        (aclnnAbsGetWorkspaceSize, aclnnAbs, f64::abs, false),
        (aclnnNegGetWorkspaceSize, aclnnNeg, |x| -x, false),
        (aclnnExpGetWorkspaceSize, aclnnExp, f64::exp, false),
        (aclnnLogGetWorkspaceSize, aclnnLog, f64::ln, true),
        (aclnnSqrtGetWorkspaceSize, aclnnSqrt, f64::sqrt, true),
        (aclnnSinGetWorkspaceSize, aclnnSin, f64::sin, false),
        (aclnnCosGetWorkspaceSize, aclnnCos, f64::cos, false),
        (aclnnReluGetWorkspaceSize, aclnnRelu, |x| x.max(0.0), false),
        (
            aclnnSigmoidGetWorkspaceSize,
            aclnnSigmoid,
            |x| 1.0 / (1.0 + (-x).exp()),
            false,
        ),
        (aclnnTanhGetWorkspaceSize, aclnnTanh, f64::tanh, false),
        (
            aclnnGeluGetWorkspaceSize,
            aclnnGelu,
            |x| 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
            false,
        ),
        (
            aclnnSiluGetWorkspaceSize,
            aclnnSilu,
            |x| x / (1.0 + (-x).exp()),
            false,
        ),
        (
            aclnnSignGetWorkspaceSize,
            aclnnSign,
            |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            },
            false,
        ),
        (
            aclnnHardsigmoidGetWorkspaceSize,
            aclnnHardsigmoid,
            |x| (x / 6.0 + 0.5).clamp(0.0, 1.0),
            false,
        ),
        (
            aclnnHardswishGetWorkspaceSize,
            aclnnHardswish,
            |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            false,
        ),
        (
            aclnnLogicalNotGetWorkspaceSize,
            aclnnLogicalNot,
            |x| if x == 0.0 { 1.0 } else { 0.0 },
            false,
        ),
    ];

    /// Inputs on both sides of zero (one exactly 0, some past ±3), not all
    /// representable exactly in f16; or positive ones.
    fn inputs(n: usize, positive: bool) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as f32 * 0.37 - 2.22) * 1.9;
                if positive { v.abs() + 0.05 } else { v }
            })
            .collect()
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
            ACL_DOUBLE => {
                let d: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
                (dev.buf(&d), d)
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
            ACL_DOUBLE => dev.read::<f64>(p, n).iter().map(|&v| v as f32).collect(),
            _ => dev.read::<f32>(p, n),
        }
    }

    const FLOAT_TYPES: [(aclDataType, f64); 3] =
        [(ACL_FLOAT, 2e-6), (ACL_FLOAT16, 2e-3), (ACL_BF16, 1e-2)];

    /// Index into the [3, 5] storage of element `i` of the [5, 3]
    /// transposed view (row-major).
    fn transposed_src(i: usize) -> usize {
        (i % 3) * 5 + i / 3
    }

    #[test]
    fn every_plain_operator_matches_its_formula() {
        let mut dev = Dev::new();
        for &(phase1, phase2, formula, positive) in CASES {
            for (dtype, tol) in FLOAT_TYPES {
                let x = inputs(15, positive);
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
                        .map(|i| formula(exact[if transposed { transposed_src(i) } else { i }]))
                        .collect();
                    close(&load(&dev, dtype, o, 15), &want, tol);
                }
            }
        }
    }

    /// A host scalar descriptor of `dtype` holding the bytes of `v`.
    fn scalar<T: Copy>(v: T, dtype: aclDataType) -> *mut aclScalar {
        let mut v = v;
        // SAFETY: `v` is a live value of the dtype's size; it is copied.
        let s = unsafe { aclCreateScalar((&mut v as *mut T).cast(), dtype) };
        assert!(!s.is_null());
        s
    }

    fn destroy_scalars(ss: &[*mut aclScalar]) {
        for &s in ss {
            // SAFETY: each is a live descriptor destroyed once.
            assert_eq!(unsafe { aclDestroyScalar(s) }, ACLNN_SUCCESS);
        }
    }

    /// Runs a one-tensor-in, one-out operator built by `phase1` on `x`
    /// (FLOAT, shape [n]) and returns `out`.
    fn run_f32(
        dev: &mut Dev,
        x: &[f32],
        phase1: impl FnOnce(
            *mut aclTensor,
            *mut aclTensor,
            *mut u64,
            *mut *mut aclOpExecutor,
        ) -> aclnnStatus,
        phase2: Phase2,
    ) -> Vec<f32> {
        let n = x.len();
        let xp = dev.buf(x);
        let o = dev.zeros::<f32>(n);
        let (xt, ot) = (
            tensor(&[n as i64], ACL_FLOAT, xp),
            tensor(&[n as i64], ACL_FLOAT, o),
        );
        run_op(dev, |w, e| phase1(xt, ot, w, e), phase2);
        destroy_tensors(&[xt, ot]);
        dev.sync();
        dev.read::<f32>(o, n)
    }

    #[test]
    fn scalar_and_mode_parameters() {
        let mut dev = Dev::new();
        let x = inputs(12, false);
        let want =
            |f: &dyn Fn(f64) -> f64| -> Vec<f64> { x.iter().map(|&v| f(f64::from(v))).collect() };

        let (a, s, i) = (
            scalar(1.5f32, ACL_FLOAT),
            scalar(2.0f64, ACL_DOUBLE),
            scalar(1i32, ACL_INT32),
        );
        // SAFETY (each phase one below): live descriptors and output locations.
        let got = run_f32(
            &mut dev,
            &x,
            |x, o, w, e| unsafe { aclnnEluGetWorkspaceSize(x, a, s, i, o, w, e) },
            aclnnElu,
        );
        close(
            &got,
            &want(&|v| {
                if v > 0.0 {
                    2.0 * v
                } else {
                    3.0 * (v.exp() - 1.0)
                }
            }),
            1e-6,
        );

        let slope = scalar(0.2f32, ACL_FLOAT);
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnLeakyReluGetWorkspaceSize(x, slope, o, w, e) },
            aclnnLeakyRelu,
        );
        close(
            &got,
            &want(&|v| if v < 0.0 { f64::from(0.2f32) * v } else { v }),
            1e-6,
        );

        let (beta, thr) = (scalar(2i64, ACL_INT64), scalar(3.0f32, ACL_FLOAT));
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnSoftplusGetWorkspaceSize(x, beta, thr, o, w, e) },
            aclnnSoftplus,
        );
        close(
            &got,
            &want(&|v| {
                if 2.0 * v > 3.0 {
                    v
                } else {
                    (2.0 * v).exp().ln_1p() / 2.0
                }
            }),
            1e-6,
        );

        let (lo, hi) = (scalar(-1.0f32, ACL_FLOAT), scalar(2.5f32, ACL_FLOAT));
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnClampGetWorkspaceSize(x, lo, hi, o, w, e) },
            aclnnClamp,
        );
        close(&got, &want(&|v| v.clamp(-1.0, 2.5)), 0.0);
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnClampGetWorkspaceSize(x, null(), hi, o, w, e) },
            aclnnClamp,
        );
        close(&got, &want(&|v| v.min(2.5)), 0.0);
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnClampGetWorkspaceSize(x, lo, null(), o, w, e) },
            aclnnClamp,
        );
        close(&got, &want(&|v| v.max(-1.0)), 0.0);
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnClampMinGetWorkspaceSize(x, lo, o, w, e) },
            aclnnClampMin,
        );
        close(&got, &want(&|v| v.max(-1.0)), 0.0);
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnClampMaxGetWorkspaceSize(x, hi, o, w, e) },
            aclnnClampMax,
        );
        close(&got, &want(&|v| v.min(2.5)), 0.0);

        let (t, val) = (scalar(0.5f32, ACL_FLOAT), scalar(-9i8, ACL_INT8));
        let got = run_f32(
            &mut dev,
            &x,
            // SAFETY: live descriptors and output locations.
            |x, o, w, e| unsafe { aclnnThresholdGetWorkspaceSize(x, t, val, o, w, e) },
            aclnnThreshold,
        );
        close(&got, &want(&|v| if v > 0.5 { v } else { -9.0 }), 0.0);

        for mode in [0i64, 1] {
            let got = run_f32(
                &mut dev,
                &x,
                // SAFETY: live descriptors and output locations.
                |x, o, w, e| unsafe { aclnnGeluV2GetWorkspaceSize(x, mode, o, w, e) },
                aclnnGeluV2,
            );
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let f: &dyn Fn(f64) -> f64 = if mode == 0 {
                &|v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))
            } else {
                &|v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
            };
            close(&got, &want(f), 2e-6);
        }
        destroy_scalars(&[a, s, i, slope, beta, thr, lo, hi, t, val]);
    }

    #[test]
    fn in_place_forms_on_a_transposed_self_ref() {
        let mut dev = Dev::new();
        let x = inputs(15, false);
        type InplaceRun =
            Box<dyn Fn(*mut aclTensor, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus>;
        /// Phase one, phase two, the formula.
        type InplaceCase = (InplaceRun, Phase2, fn(f64) -> f64);
        let (alpha, one) = (scalar(0.5f32, ACL_FLOAT), scalar(1.0f32, ACL_FLOAT));
        let (thr, val, hi) = (
            scalar(0.0f32, ACL_FLOAT),
            scalar(7.0f32, ACL_FLOAT),
            scalar(1.25f32, ACL_FLOAT),
        );
        // SAFETY (every closure): live descriptors and output locations.
        let cases: Vec<InplaceCase> = vec![
            (
                Box::new(|t, w, e| unsafe { aclnnInplaceExpGetWorkspaceSize(t, w, e) }),
                aclnnInplaceExp,
                f64::exp,
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(|t, w, e| unsafe { aclnnInplaceNegGetWorkspaceSize(t, w, e) }),
                aclnnInplaceNeg,
                |x| -x,
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(|t, w, e| unsafe { aclnnInplaceSinGetWorkspaceSize(t, w, e) }),
                aclnnInplaceSin,
                f64::sin,
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(|t, w, e| unsafe { aclnnInplaceCosGetWorkspaceSize(t, w, e) }),
                aclnnInplaceCos,
                f64::cos,
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(move |t, w, e| unsafe {
                    aclnnInplaceEluGetWorkspaceSize(t, alpha, one, one, w, e)
                }),
                aclnnInplaceElu,
                |v| if v > 0.0 { v } else { 0.5 * (v.exp() - 1.0) },
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(move |t, w, e| unsafe {
                    aclnnInplaceLeakyReluGetWorkspaceSize(t, alpha, w, e)
                }),
                aclnnInplaceLeakyRelu,
                |v| if v < 0.0 { 0.5 * v } else { v },
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(move |t, w, e| unsafe {
                    aclnnInplaceThresholdGetWorkspaceSize(t, thr, val, w, e)
                }),
                aclnnInplaceThreshold,
                |v| if v > 0.0 { v } else { 7.0 },
            ),
            (
                // SAFETY: live descriptors and output locations.
                Box::new(move |t, w, e| unsafe {
                    aclnnInplaceClampMaxGetWorkspaceSize(t, hi, w, e)
                }),
                aclnnInplaceClampMax,
                |v| v.min(1.25),
            ),
        ];
        for (phase1, phase2, formula) in &cases {
            for (dtype, tol) in FLOAT_TYPES {
                let (xp, exact) = store(&mut dev, dtype, &x);
                let t = strided(&[5, 3], Some(&[1, 5]), 0, dtype, &[15], xp);
                run_op(&dev, |w, e| phase1(t, w, e), *phase2);
                destroy_tensors(&[t]);
                dev.sync();
                // Every storage element was transformed in place.
                let want: Vec<f64> = exact.iter().map(|&v| formula(v)).collect();
                close(&load(&dev, dtype, xp, 15), &want, tol);
            }
        }
        destroy_scalars(&[alpha, one, thr, val, hi]);
    }

    #[test]
    fn plain_in_place_forms_on_a_transposed_self_ref() {
        type InplacePhase1 =
            unsafe extern "C" fn(*mut aclTensor, *mut u64, *mut *mut aclOpExecutor) -> aclnnStatus;
        /// Phase one, phase two, the formula, whether inputs must be positive.
        type PlainInplaceCase = (InplacePhase1, Phase2, fn(f64) -> f64, bool);
        let cases: [PlainInplaceCase; 5] = [
            (
                aclnnInplaceLogGetWorkspaceSize,
                aclnnInplaceLog,
                f64::ln,
                true,
            ),
            (
                aclnnInplaceSqrtGetWorkspaceSize,
                aclnnInplaceSqrt,
                f64::sqrt,
                true,
            ),
            (
                aclnnInplaceReluGetWorkspaceSize,
                aclnnInplaceRelu,
                |x| x.max(0.0),
                false,
            ),
            (
                aclnnInplaceSigmoidGetWorkspaceSize,
                aclnnInplaceSigmoid,
                |x| 1.0 / (1.0 + (-x).exp()),
                false,
            ),
            (
                aclnnInplaceTanhGetWorkspaceSize,
                aclnnInplaceTanh,
                f64::tanh,
                false,
            ),
        ];
        let mut dev = Dev::new();
        for (phase1, phase2, formula, positive) in cases {
            for (dtype, tol) in FLOAT_TYPES {
                let (xp, exact) = store(&mut dev, dtype, &inputs(15, positive));
                let t = strided(&[5, 3], Some(&[1, 5]), 0, dtype, &[15], xp);
                // SAFETY: a live descriptor and output locations.
                run_op(&dev, |w, e| unsafe { phase1(t, w, e) }, phase2);
                destroy_tensors(&[t]);
                dev.sync();
                let want: Vec<f64> = exact.iter().map(|&v| formula(v)).collect();
                close(&load(&dev, dtype, xp, 15), &want, tol);
            }
        }
        // An integer selfRef: Relu keeps it, Log refuses it (a float result).
        let xi = dev.buf(&[-3i32, 4]);
        let ti = tensor(&[2], ACL_INT32, xi);
        // SAFETY: a live descriptor and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnInplaceReluGetWorkspaceSize(ti, w, e) },
            aclnnInplaceRelu,
        );
        dev.sync();
        assert_eq!(dev.read::<i32>(xi, 2), [0, 4]);
        let (mut ws, mut ex) = (0u64, std::ptr::null_mut());
        // SAFETY: a live descriptor and output locations.
        let code = unsafe { aclnnInplaceLogGetWorkspaceSize(ti, &mut ws, &mut ex) };
        nn_err(
            code,
            ACLNN_ERR_PARAM_INVALID,
            &["aclnnInplaceLog", "selfRef"],
        );
        destroy_tensors(&[ti]);
    }

    #[test]
    fn integer_bool_and_double_inputs() {
        let mut dev = Dev::new();
        // Relu on INT32, Clamp on INT8 with integer bounds (wrapping stores).
        let xi: Vec<i32> = vec![-5, -1, 0, 3, 100];
        let (xp, o) = (dev.buf(&xi), dev.zeros::<i32>(5));
        let (xt, ot) = (tensor(&[5], ACL_INT32, xp), tensor(&[5], ACL_INT32, o));
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnReluGetWorkspaceSize(xt, ot, w, e) },
            aclnnRelu,
        );
        destroy_tensors(&[xt, ot]);
        dev.sync();
        assert_eq!(dev.read::<i32>(o, 5), [0, 0, 0, 3, 100]);

        let x8: Vec<i8> = vec![-128, -3, 0, 4, 127];
        let (xp, o) = (dev.buf(&x8), dev.zeros::<i8>(5));
        let (lo, hi) = (scalar(-2i32, ACL_INT32), scalar(5u8, ACL_UINT8));
        let (xt, ot) = (tensor(&[5], ACL_INT8, xp), tensor(&[5], ACL_INT8, o));
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnClampGetWorkspaceSize(xt, lo, hi, ot, w, e) },
            aclnnClamp,
        );
        destroy_tensors(&[xt, ot]);
        dev.sync();
        assert_eq!(dev.read::<i8>(o, 5), [-2, -2, 0, 4, 5]);

        // Exp of INT64 into FLOAT; Sqrt of BOOL into FLOAT16.
        let x64: Vec<i64> = vec![0, 1, 2, -1];
        let (xp, o) = (dev.buf(&x64), dev.zeros::<f32>(4));
        let (xt, ot) = (
            tensor(&[2, 2], ACL_INT64, xp),
            tensor(&[2, 2], ACL_FLOAT, o),
        );
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnExpGetWorkspaceSize(xt, ot, w, e) },
            aclnnExp,
        );
        destroy_tensors(&[xt, ot]);
        dev.sync();
        close(
            &dev.read::<f32>(o, 4),
            &[1.0, 1f64.exp(), 2f64.exp(), (-1f64).exp()],
            1e-6,
        );

        // LogicalNot of FLOAT into BOOL; Sign of BOOL keeps it.
        let xf = [0.0f32, -0.5, f32::NAN, 2.0];
        let (xp, o) = (dev.buf(&xf), dev.zeros::<u8>(4));
        let (xt, ot) = (tensor(&[4], ACL_FLOAT, xp), tensor(&[4], ACL_BOOL, o));
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnLogicalNotGetWorkspaceSize(xt, ot, w, e) },
            aclnnLogicalNot,
        );
        destroy_tensors(&[xt, ot]);
        dev.sync();
        assert_eq!(dev.read::<u8>(o, 4), [1, 0, 0, 0]);
        let xb = [0u8, 1, 1];
        let (xp, o) = (dev.buf(&xb), dev.zeros::<u8>(3));
        let (xt, ot) = (tensor(&[3], ACL_BOOL, xp), tensor(&[3], ACL_BOOL, o));
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnSignGetWorkspaceSize(xt, ot, w, e) },
            aclnnSign,
        );
        destroy_tensors(&[xt, ot]);
        dev.sync();
        assert_eq!(dev.read::<u8>(o, 3), [0, 1, 1]);

        // DOUBLE: Tanh and Sign (NaN stays NaN on DOUBLE).
        let xd = [0.5f64, -2.0, f64::NAN];
        let (xp, o) = (dev.buf(&xd), dev.zeros::<f64>(3));
        let (xt, ot) = (tensor(&[3], ACL_DOUBLE, xp), tensor(&[3], ACL_DOUBLE, o));
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnSignGetWorkspaceSize(xt, ot, w, e) },
            aclnnSign,
        );
        destroy_tensors(&[xt, ot]);
        dev.sync();
        let got = dev.read::<f64>(o, 3);
        assert_eq!(&got[..2], [1.0, -1.0]);
        assert!(got[2].is_nan());
        destroy_scalars(&[lo, hi]);
    }

    #[test]
    fn zero_size_and_rank_zero() {
        let mut dev = Dev::new();
        let p = dev.zeros::<f32>(1);
        let (xt, ot) = (tensor(&[2, 0], ACL_FLOAT, p), tensor(&[2, 0], ACL_FLOAT, p));
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnTanhGetWorkspaceSize(xt, ot, w, e) },
            aclnnTanh,
        );
        destroy_tensors(&[xt, ot]);
        let x = dev.buf(&[f16::from_f32(-0.75)]);
        let o = dev.zeros::<f16>(1);
        let (xt, ot) = (tensor(&[], ACL_FLOAT16, x), tensor(&[], ACL_FLOAT16, o));
        let lo = scalar(-0.5f32, ACL_FLOAT);
        // SAFETY: live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnClampMinGetWorkspaceSize(xt, lo, ot, w, e) },
            aclnnClampMin,
        );
        destroy_tensors(&[xt, ot]);
        destroy_scalars(&[lo]);
        dev.sync();
        assert_eq!(dev.read::<f16>(o, 1)[0].to_f32(), -0.5);
        assert_eq!(dev.read::<f32>(p, 1), [0.0]);
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let x = dev.zeros::<f32>(6);
        let o = dev.zeros::<f32>(6);
        let (mut ws, mut ex) = (0u64, null_mut());
        for &(phase1, _, _, _) in CASES {
            let (xt, bad) = (tensor(&[2, 3], ACL_FLOAT, x), tensor(&[3, 2], ACL_FLOAT, o));
            // SAFETY: live descriptors (or NULL) and output locations.
            let code = unsafe { phase1(xt, bad, &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["shape of out [3, 2]"]);
            // SAFETY: as above.
            let code = unsafe { phase1(null(), bad, &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["self"]);
            // SAFETY: as above.
            let code = unsafe { phase1(xt, null_mut(), &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["is NULL"]);
            destroy_tensors(&[xt, bad]);
        }
        let xt = tensor(&[2, 3], ACL_FLOAT, x);
        let ot = tensor(&[2, 3], ACL_FLOAT, o);
        let it = tensor(&[2, 3], ACL_INT32, o);
        let ht = tensor(&[2, 3], ACL_FLOAT16, o);
        let f = scalar(0.5f32, ACL_FLOAT);
        // SAFETY (every call below): live descriptors (or NULL) and output locations.
        unsafe {
            let code = aclnnGeluV2GetWorkspaceSize(xt, 2, ot, &mut ws, &mut ex);
            nn_err(
                code,
                ACLNN_ERR_PARAM_INVALID,
                &["approximate must be one of [0, 1]"],
            );
            let code = aclnnClampGetWorkspaceSize(xt, null(), null(), ot, &mut ws, &mut ex);
            nn_err(
                code,
                ACLNN_ERR_PARAM_NULLPTR,
                &["clipValueMin and clipValueMax"],
            );
            let code = aclnnClampGetWorkspaceSize(it, f, null(), it, &mut ws, &mut ex);
            nn_err(
                code,
                ACLNN_ERR_PARAM_INVALID,
                &["clipValueMin of dtype DT_FLOAT"],
            );
            let code = aclnnEluGetWorkspaceSize(xt, f, null(), f, ot, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["scale is NULL"]);
            let code = aclnnLeakyReluGetWorkspaceSize(it, f, it, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["self dtype DT_INT32"]);
            let code = aclnnSigmoidGetWorkspaceSize(xt, ht, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["must be the same as"]);
            let code = aclnnLogGetWorkspaceSize(it, it, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["floating type"]);
            let code = aclnnInplaceExpGetWorkspaceSize(it, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["selfRef"]);
            let code = aclnnInplaceThresholdGetWorkspaceSize(it, f, f, &mut ws, &mut ex);
            nn_err(
                code,
                ACLNN_ERR_PARAM_INVALID,
                &["threshold of dtype DT_FLOAT"],
            );
            let code = aclnnInplaceClampMaxGetWorkspaceSize(null_mut(), f, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["selfRef"]);
        }
        destroy_tensors(&[xt, ot, it, ht]);
        destroy_scalars(&[f]);
    }
}
