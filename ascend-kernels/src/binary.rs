//! More broadcasting binary operators over the core of
//! [`elementwise`](crate::elementwise) (its promotion rules and its `Op`):
//! subtraction, true division, multiplication by a scalar, comparisons,
//! powers, the in-place forms, and two operators of their own shape,
//! Addcdiv (three tensors) and InplaceMaskedFillScalar.
//!
//! Shared semantics (CANN follows torch): numpy broadcasting of the tensor
//! operands to `out`'s shape (an in-place `selfRef` must already have the
//! broadcast shape), ranks 0 to 8, any strided view; dtypes promote as in
//! `elementwise` (a scalar is a wrapped number); the result dtype must be
//! castable to `out`. Division is true division: integer and bool operands
//! divide in FLOAT (so `out` must be a float dtype); integer division by
//! zero therefore gives ±inf or NaN, never a trap. Comparisons compute in
//! the promoted dtype (a scalar rounded to it first) and store 1 or 0 in
//! any `out` dtype. Subtraction of bools is refused, as in torch. Integer
//! powers wrap; a negative integer exponent gives the truncated quotient
//! (`1`, `±1` for base `-1`, else 0). Inputs are read before the output is
//! written, so every in-place form may alias its operands.

use crate::broadcast::{
    broadcast_shapes, check_dtype, check_view, expand, fmt_shape, read_f64, write_f64,
};
use crate::elementwise::{
    MAX_RANK, Op, Rhs, SUPPORTED, binary, broadcast_to, check_alpha, check_cast, check_out_shape,
    check_supported, promote, promote_with_scalar,
};
use crate::scalar::Scalar;
use crate::tensor::{DType, KernelError, TensorArg};

/// How the result dtype follows from the promoted one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The promoted dtype itself.
    Arith,
    /// The promoted dtype if it is a float, else FLOAT.
    TrueDiv,
    /// 0/1 in any `out` dtype, computed in the promoted dtype.
    Compare,
}

/// One operator of this module.
struct Spec {
    name: &'static str,
    op: Op,
    kind: Kind,
    dtypes: &'static [DType],
}

/// The second operand as bound.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Tensor(&'a TensorArg, &'static str),
    Scalar(Scalar),
}

/// Everything but BOOL.
const NUMERIC: [DType; 9] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::I32,
    DType::I64,
];

/// Phase-one check of `out = lhs op rhs` (with `alpha` for Sub); returns
/// the computation dtype.
fn check_spec(
    spec: &Spec,
    lhs: (&TensorArg, &'static str),
    rhs: Operand<'_>,
    alpha: Option<Scalar>,
    out: (&TensorArg, &'static str),
    inplace: bool,
) -> Result<DType, KernelError> {
    let named = |e: KernelError| KernelError {
        code: e.code,
        message: format!("{}: {}", spec.name, e.message),
    };
    check_view(lhs.0, lhs.1, MAX_RANK).map_err(named)?;
    check_dtype(lhs.0, lhs.1, spec.dtypes).map_err(named)?;
    if !inplace {
        check_supported(out.0, out.1).map_err(named)?;
    }
    let (promoted, shape) = match rhs {
        Operand::Tensor(t, name) => {
            check_view(t, name, MAX_RANK).map_err(named)?;
            check_dtype(t, name, spec.dtypes).map_err(named)?;
            let shape = broadcast_to(lhs.0, t, lhs.1, name).map_err(named)?;
            (promote(lhs.0.dtype, t.dtype), shape)
        }
        Operand::Scalar(s) => (
            promote_with_scalar(lhs.0.dtype, s.dtype()),
            lhs.0.shape.clone(),
        ),
    };
    let compute = match spec.kind {
        Kind::TrueDiv if !promoted.is_float() => DType::F32,
        _ => promoted,
    };
    if compute == DType::Bool && matches!(spec.op, Op::Sub(_)) {
        return Err(KernelError::invalid(format!(
            "{}: subtraction of bool tensors is not supported; use a logical operator.",
            spec.name
        )));
    }
    if spec.kind != Kind::Compare {
        check_cast(compute, out.0, out.1).map_err(named)?;
    }
    if let Some(al) = alpha {
        check_alpha(&al, compute).map_err(named)?;
    }
    check_out_shape(out.0, &shape, out.1).map_err(named)?;
    Ok(compute)
}

/// Phase-two computation of a checked [`Spec`].
///
/// # Safety
/// tensor.rs's module invariant for every tensor.
unsafe fn run_spec(
    spec: &Spec,
    lhs: (&TensorArg, &'static str),
    rhs: Operand<'_>,
    alpha: Option<Scalar>,
    out: (&TensorArg, &'static str),
    inplace: bool,
) -> Result<(), KernelError> {
    let compute = check_spec(spec, lhs, rhs, alpha, out, inplace)?;
    let r = match rhs {
        Operand::Tensor(t, _) => Rhs::Tensor(t),
        Operand::Scalar(s) => Rhs::Scalar(s),
    };
    // SAFETY: forwarded invariant; shapes checked; the core reads every
    // input before it writes `out`.
    unsafe { binary(lhs.0, r, out.0, compute, spec.op) };
    Ok(())
}

/// Declares one operator module over [`check_spec`]/[`run_spec`]: its
/// argument struct, the spec, and how the struct maps to operands.
macro_rules! spec_op {
    ($(
        $(#[$doc:meta])*
        $module:ident: $args:ident { $($field:ident: $fty:ty),* $(,)? }
        => $name:literal, $op:expr, $kind:ident, $dtypes:expr,
        |$a:ident| ($lhs:expr, $rhs:expr, $alpha:expr, $out:expr, $inplace:expr);
    )*) => {$(
        $(#[$doc])*
        pub mod $module {
            use super::*;

            #[doc = concat!("Arguments of `", $name, "GetWorkspaceSize`.")]
            #[derive(Debug, Clone)]
            pub struct $args {
                $(pub $field: $fty,)*
            }

            fn spec(args: &$args) -> Spec {
                #[allow(unused_variables)]
                let $a = args;
                Spec { name: $name, op: $op, kind: Kind::$kind, dtypes: $dtypes }
            }

            /// Phase-one validation.
            pub fn check(args: &$args) -> Result<(), KernelError> {
                let $a = args;
                check_spec(&spec(args), $lhs, $rhs, $alpha, $out, $inplace).map(|_| ())
            }

            /// Phase-two computation.
            ///
            /// # Safety
            /// tensor.rs's module invariant for every tensor of `args`.
            pub unsafe fn run(args: &$args) -> Result<(), KernelError> {
                let $a = args;
                // SAFETY: forwarded invariant.
                unsafe { run_spec(&spec(args), $lhs, $rhs, $alpha, $out, $inplace) }
            }
        }
        pub use $module::$args;
    )*};
}

spec_op! {
    /// aclnnSub: `out = self - alpha * other`.
    sub: SubArgs { self_: TensorArg, other: TensorArg, alpha: Scalar, out: TensorArg }
        => "aclnnSub", Op::Sub(a.alpha), Arith, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Tensor(&a.other, "other"), Some(a.alpha), (&a.out, "out"), false);

    /// aclnnSubs: `out = self - alpha * other` with a scalar `other`.
    subs: SubsArgs { self_: TensorArg, other: Scalar, alpha: Scalar, out: TensorArg }
        => "aclnnSubs", Op::Sub(a.alpha), Arith, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Scalar(a.other), Some(a.alpha), (&a.out, "out"), false);

    /// aclnnInplaceSub: `selfRef -= alpha * other`.
    inplace_sub: InplaceSubArgs { self_ref: TensorArg, other: TensorArg, alpha: Scalar }
        => "aclnnInplaceSub", Op::Sub(a.alpha), Arith, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Tensor(&a.other, "other"), Some(a.alpha), (&a.self_ref, "selfRef"), true);

    /// aclnnInplaceSubs: `selfRef -= alpha * other` with a scalar `other`.
    inplace_subs: InplaceSubsArgs { self_ref: TensorArg, other: Scalar, alpha: Scalar }
        => "aclnnInplaceSubs", Op::Sub(a.alpha), Arith, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Scalar(a.other), Some(a.alpha), (&a.self_ref, "selfRef"), true);

    /// aclnnInplaceAdds: `selfRef += alpha * other` with a scalar `other`.
    inplace_adds: InplaceAddsArgs { self_ref: TensorArg, other: Scalar, alpha: Scalar }
        => "aclnnInplaceAdds", Op::Add(a.alpha), Arith, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Scalar(a.other), Some(a.alpha), (&a.self_ref, "selfRef"), true);

    /// aclnnDiv: `out = self / other`, true division.
    div: DivArgs { self_: TensorArg, other: TensorArg, out: TensorArg }
        => "aclnnDiv", Op::Div, TrueDiv, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Tensor(&a.other, "other"), None, (&a.out, "out"), false);

    /// aclnnDivs: `out = self / other` with a scalar `other`.
    divs: DivsArgs { self_: TensorArg, other: Scalar, out: TensorArg }
        => "aclnnDivs", Op::Div, TrueDiv, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Scalar(a.other), None, (&a.out, "out"), false);

    /// aclnnInplaceDiv: `selfRef /= other` (`selfRef` must be a float).
    inplace_div: InplaceDivArgs { self_ref: TensorArg, other: TensorArg }
        => "aclnnInplaceDiv", Op::Div, TrueDiv, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Tensor(&a.other, "other"), None, (&a.self_ref, "selfRef"), true);

    /// aclnnInplaceDivs: `selfRef /= other` with a scalar `other`.
    inplace_divs: InplaceDivsArgs { self_ref: TensorArg, other: Scalar }
        => "aclnnInplaceDivs", Op::Div, TrueDiv, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Scalar(a.other), None, (&a.self_ref, "selfRef"), true);

    /// aclnnMuls: `out = self * other` with a scalar `other`.
    muls: MulsArgs { self_: TensorArg, other: Scalar, out: TensorArg }
        => "aclnnMuls", Op::Mul, Arith, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Scalar(a.other), None, (&a.out, "out"), false);

    /// aclnnInplaceMul: `selfRef *= other`.
    inplace_mul: InplaceMulArgs { self_ref: TensorArg, other: TensorArg }
        => "aclnnInplaceMul", Op::Mul, Arith, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Tensor(&a.other, "other"), None, (&a.self_ref, "selfRef"), true);

    /// aclnnInplaceMuls: `selfRef *= other` with a scalar `other`.
    inplace_muls: InplaceMulsArgs { self_ref: TensorArg, other: Scalar }
        => "aclnnInplaceMuls", Op::Mul, Arith, &SUPPORTED,
        |a| ((&a.self_ref, "selfRef"), Operand::Scalar(a.other), None, (&a.self_ref, "selfRef"), true);

    /// aclnnGtScalar: `out = self > other`, 1 or 0.
    gt_scalar: GtScalarArgs { self_: TensorArg, other: Scalar, out: TensorArg }
        => "aclnnGtScalar", Op::Gt, Compare, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Scalar(a.other), None, (&a.out, "out"), false);

    /// aclnnEqTensor: `out = self == other`, 1 or 0.
    eq_tensor: EqTensorArgs { self_: TensorArg, other: TensorArg, out: TensorArg }
        => "aclnnEqTensor", Op::Eq, Compare, &SUPPORTED,
        |a| ((&a.self_, "self"), Operand::Tensor(&a.other, "other"), None, (&a.out, "out"), false);

    /// aclnnPowTensorTensor: `out = self ^ exponent`.
    pow_tensor_tensor: PowTensorTensorArgs { self_: TensorArg, exponent: TensorArg, out: TensorArg }
        => "aclnnPowTensorTensor", Op::Pow, Arith, &NUMERIC,
        |a| ((&a.self_, "self"), Operand::Tensor(&a.exponent, "exponent"), None, (&a.out, "out"), false);

    /// aclnnInplacePowTensorTensor: `selfRef = selfRef ^ exponent`.
    inplace_pow_tensor_tensor: InplacePowTensorTensorArgs { self_ref: TensorArg, exponent: TensorArg }
        => "aclnnInplacePowTensorTensor", Op::Pow, Arith, &NUMERIC,
        |a| ((&a.self_ref, "selfRef"), Operand::Tensor(&a.exponent, "exponent"), None, (&a.self_ref, "selfRef"), true);

    /// aclnnPowTensorScalar: `out = self ^ exponent` with a scalar exponent.
    pow_tensor_scalar: PowTensorScalarArgs { self_: TensorArg, exponent: Scalar, out: TensorArg }
        => "aclnnPowTensorScalar", Op::Pow, Arith, &NUMERIC,
        |a| ((&a.self_, "self"), Operand::Scalar(a.exponent), None, (&a.out, "out"), false);

    /// aclnnPowScalarTensor: `out = self ^ exponent` with a scalar base
    /// `self` (the exponent tensor gives the shape).
    pow_scalar_tensor: PowScalarTensorArgs { self_: Scalar, exponent: TensorArg, out: TensorArg }
        => "aclnnPowScalarTensor", Op::PowRev, Arith, &NUMERIC,
        |a| ((&a.exponent, "exponent"), Operand::Scalar(a.self_), None, (&a.out, "out"), false);
}

/// aclnnAddcdiv and aclnnInplaceAddcdiv: `out = self + value * tensor1 /
/// tensor2` over the broadcast of the three tensors, in FLOAT, FLOAT16,
/// BF16 or DOUBLE (integer tensors are refused, as torch refuses integer
/// addcdiv).
pub mod addcdiv {
    use super::*;

    const FLOATS: [DType; 4] = [DType::F32, DType::F16, DType::BF16, DType::F64];

    /// Arguments of `aclnnAddcdivGetWorkspaceSize` (for the in-place form,
    /// `out` is `selfRef`).
    #[derive(Debug, Clone)]
    pub struct AddcdivArgs {
        pub self_: TensorArg,
        pub tensor1: TensorArg,
        pub tensor2: TensorArg,
        pub value: Scalar,
        pub out: TensorArg,
    }

    fn check_named(
        args: &AddcdivArgs,
        name: &str,
        sn: &str,
        on: &str,
    ) -> Result<DType, KernelError> {
        let named = |e: KernelError| KernelError {
            code: e.code,
            message: format!("{name}: {}", e.message),
        };
        for (t, n) in [
            (&args.self_, sn),
            (&args.tensor1, "tensor1"),
            (&args.tensor2, "tensor2"),
        ] {
            check_view(t, n, MAX_RANK).map_err(named)?;
            check_dtype(t, n, &FLOATS).map_err(named)?;
        }
        check_supported(&args.out, on).map_err(named)?;
        let promoted = promote(
            promote(args.self_.dtype, args.tensor1.dtype),
            args.tensor2.dtype,
        );
        check_cast(promoted, &args.out, on).map_err(named)?;
        let s1 = broadcast_to(&args.self_, &args.tensor1, sn, "tensor1").map_err(named)?;
        let shape = broadcast_shapes(&s1, &args.tensor2.shape).ok_or_else(|| {
            KernelError::invalid(format!(
                "{name}: the shapes of {sn} {}, tensor1 {} and tensor2 {} can't broadcast.",
                fmt_shape(&args.self_.shape),
                fmt_shape(&args.tensor1.shape),
                fmt_shape(&args.tensor2.shape)
            ))
        })?;
        check_out_shape(&args.out, &shape, on).map_err(named)?;
        Ok(promoted)
    }

    /// Phase-one validation of aclnnAddcdiv.
    pub fn check(args: &AddcdivArgs) -> Result<(), KernelError> {
        check_named(args, "aclnnAddcdiv", "self", "out").map(|_| ())
    }

    /// Phase-one validation of aclnnInplaceAddcdiv.
    pub fn check_inplace(args: &AddcdivArgs) -> Result<(), KernelError> {
        check_named(args, "aclnnInplaceAddcdiv", "selfRef", "selfRef").map(|_| ())
    }

    unsafe fn compute(args: &AddcdivArgs, promoted: DType) {
        let shape = args.out.shape.clone();
        let (s, t1, t2) = (
            expand(&args.self_, &shape),
            expand(&args.tensor1, &shape),
            expand(&args.tensor2, &shape),
        );
        // SAFETY (whole block): expanded views address only elements of
        // their sources (tensor.rs's invariant, forwarded); every input is
        // read before `out` is written.
        unsafe {
            if promoted == DType::F64 {
                let v = args.value.as_f64();
                let (a, b, c) = (read_f64(&s), read_f64(&t1), read_f64(&t2));
                let r: Vec<f64> = (0..a.len()).map(|i| a[i] + v * b[i] / c[i]).collect();
                write_f64(&args.out, &r);
            } else {
                let v = args.value.as_f64() as f32;
                let (a, b, c) = (s.read_f32(), t1.read_f32(), t2.read_f32());
                let round = |x: f32| match promoted {
                    DType::F16 => half::f16::from_f32(x).to_f32(),
                    DType::BF16 => half::bf16::from_f32(x).to_f32(),
                    _ => x,
                };
                let r: Vec<f32> = (0..a.len())
                    .map(|i| round(a[i] + v * b[i] / c[i]))
                    .collect();
                args.out.write_f32(&r);
            }
        }
    }

    /// Phase-two computation of aclnnAddcdiv.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `args`.
    pub unsafe fn run(args: &AddcdivArgs) -> Result<(), KernelError> {
        let promoted = check_named(args, "aclnnAddcdiv", "self", "out")?;
        // SAFETY: forwarded invariant; shapes checked.
        unsafe { compute(args, promoted) };
        Ok(())
    }

    /// Phase-two computation of aclnnInplaceAddcdiv.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `args`.
    pub unsafe fn run_inplace(args: &AddcdivArgs) -> Result<(), KernelError> {
        let promoted = check_named(args, "aclnnInplaceAddcdiv", "selfRef", "selfRef")?;
        // SAFETY: forwarded invariant; shapes checked.
        unsafe { compute(args, promoted) };
        Ok(())
    }
}

/// aclnnInplaceMaskedFillScalar: `selfRef[i] = value` where `mask[i]` (a
/// BOOL tensor broadcast to `selfRef`'s shape) is true. The value is
/// converted to `selfRef`'s dtype as aclnnCast converts (a float into an
/// integer truncates toward zero and saturates; into BOOL, non-zero is
/// true).
pub mod inplace_masked_fill_scalar {
    use super::*;

    const TYPES: [DType; 7] = [
        DType::Bool,
        DType::I8,
        DType::I32,
        DType::I64,
        DType::F32,
        DType::F16,
        DType::BF16,
    ];

    /// Arguments of `aclnnInplaceMaskedFillScalarGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct MaskedFillScalarArgs {
        pub self_ref: TensorArg,
        pub mask: TensorArg,
        pub value: Scalar,
    }

    /// Phase-one validation.
    pub fn check(args: &MaskedFillScalarArgs) -> Result<(), KernelError> {
        let named = |e: KernelError| KernelError {
            code: e.code,
            message: format!("aclnnInplaceMaskedFillScalar: {}", e.message),
        };
        check_view(&args.self_ref, "selfRef", MAX_RANK).map_err(named)?;
        check_view(&args.mask, "mask", MAX_RANK).map_err(named)?;
        check_dtype(&args.self_ref, "selfRef", &TYPES).map_err(named)?;
        check_dtype(&args.mask, "mask", &[DType::Bool]).map_err(named)?;
        let shape = broadcast_to(&args.self_ref, &args.mask, "selfRef", "mask").map_err(named)?;
        if shape != args.self_ref.shape {
            return Err(KernelError::invalid(format!(
                "aclnnInplaceMaskedFillScalar: the shape of mask {} must broadcast to the shape of selfRef {}.",
                fmt_shape(&args.mask.shape),
                fmt_shape(&args.self_ref.shape)
            )));
        }
        Ok(())
    }

    /// `value` as an element of the integer or bool dtype `d`, converted
    /// like a cast: non-zero is true; a float truncates toward zero and
    /// saturates (NaN is 0); an integer wraps to the width.
    fn fill_value(value: Scalar, d: DType) -> i64 {
        let v = value.as_f64();
        match d {
            DType::Bool => i64::from(v != 0.0),
            _ if !value.dtype().is_float() => value.as_i64(),
            DType::I8 => i64::from(v as i8),
            DType::U8 => i64::from(v as u8),
            DType::I16 => i64::from(v as i16),
            DType::I32 => i64::from(v as i32),
            _ => v as i64,
        }
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for both tensors of `args`.
    pub unsafe fn run(args: &MaskedFillScalarArgs) -> Result<(), KernelError> {
        check(args)?;
        let t = &args.self_ref;
        let m = expand(&args.mask, &t.shape);
        // SAFETY (whole block): forwarded invariant; the expanded mask
        // addresses only its source's elements; both inputs are read before
        // `selfRef` is written.
        unsafe {
            let mask = m.read_bool();
            if t.dtype.is_float() {
                let mut v = read_f64(t);
                let fill = args.value.as_f64();
                v.iter_mut()
                    .zip(&mask)
                    .filter(|(_, m)| **m)
                    .for_each(|(e, _)| *e = fill);
                write_f64(t, &v);
            } else {
                let mut v = t.read_i64();
                let fill = fill_value(args.value, t.dtype);
                v.iter_mut()
                    .zip(&mask)
                    .filter(|(_, m)| **m)
                    .for_each(|(e, _)| *e = fill);
                t.write_i64(&v);
            }
        }
        Ok(())
    }
}

pub use addcdiv::AddcdivArgs;
pub use inplace_masked_fill_scalar::MaskedFillScalarArgs;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close, strides};

    /// Broadcast reference: every output multi-index mapped into each input
    /// (index 0 along its size-1 dims).
    fn reference(
        a: &[f64],
        ashape: &[i64],
        b: &[f64],
        bshape: &[i64],
        f: impl Fn(f64, f64) -> f64,
    ) -> (Vec<i64>, Vec<f64>) {
        let shape = broadcast_shapes(ashape, bshape).unwrap();
        let total: i64 = shape.iter().product();
        let flat = |own: &[i64], idx: &[i64]| -> usize {
            let lead = idx.len() - own.len();
            let st = strides(own);
            (0..own.len())
                .map(|d| {
                    if own[d] == 1 {
                        0
                    } else {
                        idx[lead + d] * st[d]
                    }
                })
                .sum::<i64>() as usize
        };
        let mut res = Vec::new();
        for t in 0..total {
            let mut idx = vec![0i64; shape.len()];
            let mut rem = t;
            for d in (0..shape.len()).rev() {
                idx[d] = rem % shape[d];
                rem /= shape[d];
            }
            res.push(f(a[flat(ashape, &idx)], b[flat(bshape, &idx)]));
        }
        (shape, res)
    }

    const SHAPES: &[(&[i64], &[i64])] = &[
        (&[3, 4], &[3, 4]),
        (&[2, 1, 4], &[3, 1]),
        (&[5], &[]),
        (&[1, 6], &[4, 1]),
        (&[0, 3], &[3]),
    ];

    #[test]
    fn sub_div_pow_eq_broadcast_on_float_dtypes() {
        let mut rng = Rng::new(3);
        for &(sa, sb) in SHAPES {
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let na = sa.iter().product::<i64>() as usize;
                let nb = sb.iter().product::<i64>() as usize;
                let a = Buf::random(dt, na, &mut rng);
                // Positive divisors and bases away from 0.
                let bvals: Vec<f32> = (0..nb).map(|_| rng.f32().abs() + 0.5).collect();
                let b = Buf::from_f32(dt, &bvals);
                let (av, bv) = (a.to_f64(), b.to_f64());
                let (shape, want) = reference(&av, sa, &bv, sb, |x, y| x - 1.5 * y);
                let n = want.len();
                let out = Buf::zeros(dt, n);
                let args = SubArgs {
                    self_: a.tensor(sa),
                    other: b.tensor(sb),
                    alpha: Scalar::F32(1.5),
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { sub::run(&args) }.unwrap();
                assert_close(&out.to_f32(), &want, dt, "sub");
                let (_, want) = reference(&av, sa, &bv, sb, |x, y| x / y);
                let args = DivArgs {
                    self_: a.tensor(sa),
                    other: b.tensor(sb),
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { div::run(&args) }.unwrap();
                assert_close(&out.to_f32(), &want, dt, "div");
                // Pow with the positive operand as the base.
                let (_, want) = reference(&bv, sb, &av, sa, f64::powf);
                let args = PowTensorTensorArgs {
                    self_: b.tensor(sb),
                    exponent: a.tensor(sa),
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { pow_tensor_tensor::run(&args) }.unwrap();
                assert_close(&out.to_f32(), &want, dt, "pow");
                // Eq of a tensor with itself broadcast: all ones; into BOOL.
                let bo = Buf::zeros(DType::Bool, n);
                let (_, want) = reference(&av, sa, &av, sa, |x, y| f64::from(u8::from(x == y)));
                let args = EqTensorArgs {
                    self_: a.tensor(sa),
                    other: a.tensor(sa),
                    out: bo.tensor(sa),
                };
                // SAFETY: views cover their buffers.
                unsafe { eq_tensor::run(&args) }.unwrap();
                assert_eq!(
                    bo.to_f64()[..want.len().min(na)],
                    want[..want.len().min(na)]
                );
            }
        }
    }

    #[test]
    fn scalar_operands_on_a_transposed_view() {
        let mut rng = Rng::new(9);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let a = Buf::random(dt, 12, &mut rng);
            let v = a.view(&[4, 3], &[1, 4], 0);
            // SAFETY: inside the buffer.
            let xs: Vec<f64> = unsafe { v.read_f32() }.into_iter().map(f64::from).collect();
            let out = Buf::zeros(dt, 12);
            let o = out.tensor(&[4, 3]);
            type Case = (Box<dyn Fn() -> Result<(), KernelError>>, fn(f64) -> f64);
            let (v1, o1) = (v.clone(), o.clone());
            let (v2, o2) = (v.clone(), o.clone());
            let (v3, o3) = (v.clone(), o.clone());
            let (v4, o4) = (v.clone(), o.clone());
            let (v5, o5) = (v.clone(), o.clone());
            // SAFETY (each closure): the views lie inside their buffers.
            let cases: Vec<Case> = vec![
                (
                    Box::new(move || unsafe {
                        subs::run(&SubsArgs {
                            self_: v1.clone(),
                            other: Scalar::F32(0.25),
                            alpha: Scalar::I32(2),
                            out: o1.clone(),
                        })
                    }),
                    |x| x - 0.5,
                ),
                (
                    // SAFETY: the views lie inside their buffers.
                    Box::new(move || unsafe {
                        divs::run(&DivsArgs {
                            self_: v2.clone(),
                            other: Scalar::I64(4),
                            out: o2.clone(),
                        })
                    }),
                    |x| x / 4.0,
                ),
                (
                    // SAFETY: the views lie inside their buffers.
                    Box::new(move || unsafe {
                        muls::run(&MulsArgs {
                            self_: v3.clone(),
                            other: Scalar::F64(-3.0),
                            out: o3.clone(),
                        })
                    }),
                    |x| -3.0 * x,
                ),
                (
                    // SAFETY: the views lie inside their buffers.
                    Box::new(move || unsafe {
                        pow_tensor_scalar::run(&PowTensorScalarArgs {
                            self_: v4.clone(),
                            exponent: Scalar::I32(2),
                            out: o4.clone(),
                        })
                    }),
                    |x| x * x,
                ),
                (
                    // SAFETY: the views lie inside their buffers.
                    Box::new(move || unsafe {
                        pow_scalar_tensor::run(&PowScalarTensorArgs {
                            self_: Scalar::F32(2.0),
                            exponent: v5.clone(),
                            out: o5.clone(),
                        })
                    }),
                    |x| 2f64.powf(x),
                ),
            ];
            for (run, f) in cases {
                run().unwrap();
                let want: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
                assert_close(&out.to_f32(), &want, dt, "scalar op");
            }
            // GtScalar into BOOL and into FLOAT (any out dtype).
            for od in [DType::Bool, DType::F32] {
                let g = Buf::zeros(od, 12);
                let args = GtScalarArgs {
                    self_: v.clone(),
                    other: Scalar::F32(0.1),
                    out: g.tensor(&[4, 3]),
                };
                // SAFETY: views inside their buffers.
                unsafe { gt_scalar::run(&args) }.unwrap();
                // The scalar is compared as stored in the tensor's dtype.
                let t = f64::from(crate::testutil::round(dt, 0.1));
                let want: Vec<f64> = xs.iter().map(|&x| f64::from(u8::from(x > t))).collect();
                assert_eq!(g.to_f64(), want);
            }
        }
    }

    #[test]
    fn integers_bools_and_true_division() {
        let a = Buf::from_i64(DType::I8, &[100, -100, 7, 0]);
        let b = Buf::from_i64(DType::I8, &[-100, 100, 2, 0]);
        let o = Buf::zeros(DType::I8, 4);
        let args = SubArgs {
            self_: a.tensor(&[4]),
            other: b.tensor(&[4]),
            alpha: Scalar::I8(1),
            out: o.tensor(&[4]),
        };
        // SAFETY: views cover their buffers.
        unsafe { sub::run(&args) }.unwrap();
        // 200 and -200 wrap in INT8.
        assert_eq!(o.to_i64(), [-56, 56, 5, 0]);
        // Integer division is true division into a float out.
        let f = Buf::zeros(DType::F32, 4);
        let args = DivArgs {
            self_: a.tensor(&[4]),
            other: b.tensor(&[4]),
            out: f.tensor(&[4]),
        };
        // SAFETY: views cover their buffers.
        unsafe { div::run(&args) }.unwrap();
        let got = f.to_f32();
        assert_eq!(&got[..3], [-1.0, -1.0, 3.5]);
        assert!(got[3].is_nan());
        let e = div::check(&DivArgs {
            self_: a.tensor(&[4]),
            other: b.tensor(&[4]),
            out: o.tensor(&[4]),
        })
        .unwrap_err();
        assert!(e.message.contains("can't be cast"), "{}", e.message);
        // Integer powers: wrapping, negative exponents.
        let base = Buf::from_i64(DType::I32, &[2, 3, -1, 1, 2, 0]);
        let exp = Buf::from_i64(DType::I32, &[10, 21, -3, -5, -1, 0]);
        let o32 = Buf::zeros(DType::I32, 6);
        let args = PowTensorTensorArgs {
            self_: base.tensor(&[6]),
            exponent: exp.tensor(&[6]),
            out: o32.tensor(&[6]),
        };
        // SAFETY: views cover their buffers.
        unsafe { pow_tensor_tensor::run(&args) }.unwrap();
        assert_eq!(
            o32.to_i64(),
            [1024, i64::from(3i32.wrapping_pow(21)), -1, 1, 0, 1]
        );
        // Comparisons across dtypes: U8 with I8 compares in INT16.
        let u = Buf::from_i64(DType::U8, &[200, 5, 0]);
        let s = Buf::from_i64(DType::I8, &[-56, 5, 1]);
        let bo = Buf::zeros(DType::Bool, 3);
        let args = EqTensorArgs {
            self_: u.tensor(&[3]),
            other: s.tensor(&[3]),
            out: bo.tensor(&[3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { eq_tensor::run(&args) }.unwrap();
        assert_eq!(bo.to_i64(), [0, 1, 0]);
        let args = GtScalarArgs {
            self_: u.tensor(&[3]),
            other: Scalar::I32(4),
            out: bo.tensor(&[3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { gt_scalar::run(&args) }.unwrap();
        assert_eq!(bo.to_i64(), [1, 1, 0]);
        // Bool Muls with a bool scalar stays bool (and); Eq of bools.
        let t = Buf::from_i64(DType::Bool, &[0, 1, 1]);
        let args = MulsArgs {
            self_: t.tensor(&[3]),
            other: Scalar::Bool(true),
            out: bo.tensor(&[3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { muls::run(&args) }.unwrap();
        assert_eq!(bo.to_i64(), [0, 1, 1]);
        // Bool subtraction is refused.
        let e = sub::check(&SubArgs {
            self_: t.tensor(&[3]),
            other: t.tensor(&[3]),
            alpha: Scalar::Bool(true),
            out: bo.tensor(&[3]),
        })
        .unwrap_err();
        assert!(e.message.contains("subtraction of bool"), "{}", e.message);
    }

    #[test]
    fn in_place_forms() {
        let mut rng = Rng::new(12);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let s = Buf::random(dt, 6, &mut rng);
            let before = s.to_f64();
            // other is row 0 of selfRef itself (aliasing).
            let args = InplaceSubArgs {
                self_ref: s.tensor(&[2, 3]),
                other: s.tensor(&[3]),
                alpha: Scalar::F32(2.0),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_sub::run(&args) }.unwrap();
            let want: Vec<f64> = (0..6).map(|i| before[i] - 2.0 * before[i % 3]).collect();
            assert_close(&s.to_f32(), &want, dt, "inplace sub");

            let s = Buf::from_f32(dt, &before.iter().map(|&v| v as f32).collect::<Vec<_>>());
            let m = Buf::from_f32(dt, &[2.0, -0.5]);
            let args = InplaceMulArgs {
                self_ref: s.tensor(&[3, 2]),
                other: m.tensor(&[2]),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_mul::run(&args) }.unwrap();
            let want: Vec<f64> = (0..6).map(|i| before[i] * [2.0, -0.5][i % 2]).collect();
            assert_close(&s.to_f32(), &want, dt, "inplace mul");
            let cur = s.to_f64();
            let t = s.tensor(&[3, 2]);
            // SAFETY (the four calls): views cover their buffers.
            unsafe {
                inplace_muls::run(&InplaceMulsArgs {
                    self_ref: t.clone(),
                    other: Scalar::F32(0.5),
                })
                .unwrap();
                inplace_adds::run(&InplaceAddsArgs {
                    self_ref: t.clone(),
                    other: Scalar::F32(1.0),
                    alpha: Scalar::F32(3.0),
                })
                .unwrap();
                inplace_subs::run(&InplaceSubsArgs {
                    self_ref: t.clone(),
                    other: Scalar::I32(1),
                    alpha: Scalar::I32(1),
                })
                .unwrap();
                inplace_divs::run(&InplaceDivsArgs {
                    self_ref: t.clone(),
                    other: Scalar::F32(2.0),
                })
                .unwrap();
            }
            let want: Vec<f64> = cur.iter().map(|&v| (v * 0.5 + 3.0 - 1.0) / 2.0).collect();
            assert_close(&s.to_f32(), &want, dt, "inplace scalar chain");
            let d = Buf::from_f32(dt, &[4.0, 2.0]);
            let cur = s.to_f64();
            let args = InplaceDivArgs {
                self_ref: s.tensor(&[3, 2]),
                other: d.tensor(&[1, 2]),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_div::run(&args) }.unwrap();
            let want: Vec<f64> = (0..6).map(|i| cur[i] / [4.0, 2.0][i % 2]).collect();
            assert_close(&s.to_f32(), &want, dt, "inplace div");
            let p = Buf::from_f32(dt, &[1.5, 2.0, 0.5, 1.0, 3.0, 2.5]);
            let pe = Buf::from_f32(dt, &[2.0]);
            let pv = p.to_f64();
            let args = InplacePowTensorTensorArgs {
                self_ref: p.tensor(&[6]),
                exponent: pe.tensor(&[]),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_pow_tensor_tensor::run(&args) }.unwrap();
            let want: Vec<f64> = pv.iter().map(|v| v * v).collect();
            assert_close(&p.to_f32(), &want, dt, "inplace pow");
        }
        // An integer selfRef cannot hold a true division.
        let i = Buf::from_i64(DType::I32, &[4, 6]);
        let e = inplace_divs::check(&InplaceDivsArgs {
            self_ref: i.tensor(&[2]),
            other: Scalar::I32(2),
        })
        .unwrap_err();
        assert!(
            e.message.contains("aclnnInplaceDivs") && e.message.contains("selfRef"),
            "{}",
            e.message
        );
        // selfRef must already have the broadcast shape.
        let f = Buf::zeros(DType::F32, 6);
        let e = inplace_mul::check(&InplaceMulArgs {
            self_ref: f.tensor(&[3]),
            other: f.tensor(&[2, 3]),
        })
        .unwrap_err();
        assert!(
            e.message.contains("selfRef should be [2, 3]"),
            "{}",
            e.message
        );
    }

    #[test]
    fn addcdiv_broadcasts_three_tensors() {
        let mut rng = Rng::new(4);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let s = Buf::random(dt, 3, &mut rng);
            let t1 = Buf::random(dt, 2, &mut rng);
            let d: Vec<f32> = (0..6).map(|_| rng.f32().abs() + 0.5).collect();
            let t2 = Buf::from_f32(dt, &d);
            let (sv, t1v, t2v) = (s.to_f64(), t1.to_f64(), t2.to_f64());
            let out = Buf::zeros(dt, 6);
            let args = AddcdivArgs {
                self_: s.tensor(&[3]),
                tensor1: t1.tensor(&[2, 1]),
                tensor2: t2.tensor(&[2, 3]),
                value: Scalar::F32(0.5),
                out: out.tensor(&[2, 3]),
            };
            // SAFETY: views cover their buffers.
            unsafe { addcdiv::run(&args) }.unwrap();
            let want: Vec<f64> = (0..6)
                .map(|i| sv[i % 3] + 0.5 * t1v[i / 3] / t2v[i])
                .collect();
            assert_close(&out.to_f32(), &want, dt, "addcdiv");
            // In place into a [2, 3] selfRef.
            let args = AddcdivArgs {
                self_: out.tensor(&[2, 3]),
                out: out.tensor(&[2, 3]),
                ..args
            };
            let prev = out.to_f64();
            // SAFETY: views cover their buffers.
            unsafe { addcdiv::run_inplace(&args) }.unwrap();
            let want: Vec<f64> = (0..6)
                .map(|i| prev[i] + 0.5 * t1v[i / 3] / t2v[i])
                .collect();
            assert_close(&out.to_f32(), &want, dt, "inplace addcdiv");
        }
        let i = Buf::zeros(DType::I32, 4);
        let e = addcdiv::check(&AddcdivArgs {
            self_: i.tensor(&[2]),
            tensor1: i.tensor(&[2]),
            tensor2: i.tensor(&[2]),
            value: Scalar::I32(1),
            out: i.tensor(&[2]),
        })
        .unwrap_err();
        assert!(e.message.contains("self dtype DT_INT32"), "{}", e.message);
        let f = Buf::zeros(DType::F32, 12);
        let e = addcdiv::check(&AddcdivArgs {
            self_: f.tensor(&[3]),
            tensor1: f.tensor(&[2, 1]),
            tensor2: f.tensor(&[4, 1, 1]),
            value: Scalar::I32(1),
            out: f.tensor(&[2, 3]),
        })
        .unwrap_err();
        assert!(e.message.contains("should be [4, 2, 3]"), "{}", e.message);
    }

    #[test]
    fn masked_fill_broadcasts_the_mask() {
        let mask = Buf::from_i64(DType::Bool, &[1, 0, 1]);
        for dt in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I32,
            DType::I8,
            DType::I64,
        ] {
            let vals: Vec<i64> = (1..=6).collect();
            let s = Buf::from_i64(dt, &vals);
            let args = MaskedFillScalarArgs {
                self_ref: s.tensor(&[2, 3]),
                mask: mask.tensor(&[3]),
                value: Scalar::F32(-2.75),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_masked_fill_scalar::run(&args) }.unwrap();
            let fill = if dt.is_float() { -2.75 } else { -2.0 };
            let want: Vec<f64> = (0..6)
                .map(|i| if i % 3 == 1 { vals[i] as f64 } else { fill })
                .collect();
            assert_eq!(s.to_f64(), want, "{dt:?}");
        }
        // A float value into INT8 saturates, like a cast.
        let s8 = Buf::from_i64(DType::I8, &[1, 2, 3]);
        let args = MaskedFillScalarArgs {
            self_ref: s8.tensor(&[3]),
            mask: mask.tensor(&[3]),
            value: Scalar::F64(300.5),
        };
        // SAFETY: views cover their buffers.
        unsafe { inplace_masked_fill_scalar::run(&args) }.unwrap();
        assert_eq!(s8.to_i64(), [127, 2, 127]);
        let b = Buf::from_i64(DType::Bool, &[0, 0, 0]);
        let args = MaskedFillScalarArgs {
            self_ref: b.tensor(&[3]),
            mask: mask.tensor(&[3]),
            value: Scalar::I32(5),
        };
        // SAFETY: views cover their buffers.
        unsafe { inplace_masked_fill_scalar::run(&args) }.unwrap();
        assert_eq!(b.to_i64(), [1, 0, 1]);
        // The mask must be BOOL and broadcast to selfRef's own shape.
        let f = Buf::zeros(DType::F32, 6);
        let e = inplace_masked_fill_scalar::check(&MaskedFillScalarArgs {
            self_ref: f.tensor(&[3]),
            mask: mask.tensor(&[2, 3]),
            value: Scalar::I32(0),
        })
        .unwrap_err();
        assert!(
            e.message
                .contains("must broadcast to the shape of selfRef [3]"),
            "{}",
            e.message
        );
        let e = inplace_masked_fill_scalar::check(&MaskedFillScalarArgs {
            self_ref: f.tensor(&[3]),
            mask: f.tensor(&[3]),
            value: Scalar::I32(0),
        })
        .unwrap_err();
        assert!(e.message.contains("mask dtype DT_FLOAT"), "{}", e.message);
    }

    #[test]
    fn double_and_rank_zero_operands() {
        let a = Buf::zeros(DType::F64, 3);
        let b = Buf::zeros(DType::F64, 1);
        // SAFETY: the views cover their buffers.
        unsafe {
            write_f64(&a.tensor(&[3]), &[0.1, -2.0, 1e300]);
            write_f64(&b.tensor(&[]), &[3.0]);
        }
        let out = Buf::zeros(DType::F64, 3);
        let run = |f: &dyn Fn() -> Result<(), KernelError>| {
            f().unwrap();
            // SAFETY: three f64 elements.
            unsafe { read_f64(&out.tensor(&[3])) }
        };
        // SAFETY (each closure): the views cover their buffers.
        let got = run(&|| unsafe {
            sub::run(&SubArgs {
                self_: a.tensor(&[3]),
                other: b.tensor(&[]),
                alpha: Scalar::F64(0.5),
                out: out.tensor(&[3]),
            })
        });
        assert_eq!(got, [0.1 - 1.5, -3.5, 1e300 - 1.5]);
        // SAFETY: the views lie inside their buffers.
        let got = run(&|| unsafe {
            div::run(&DivArgs {
                self_: a.tensor(&[3]),
                other: b.tensor(&[]),
                out: out.tensor(&[3]),
            })
        });
        assert_eq!(got, [0.1 / 3.0, -2.0 / 3.0, 1e300 / 3.0]);
        // SAFETY: the views lie inside their buffers.
        let got = run(&|| unsafe {
            pow_tensor_tensor::run(&PowTensorTensorArgs {
                self_: a.tensor(&[3]),
                exponent: b.tensor(&[]),
                out: out.tensor(&[3]),
            })
        });
        assert_eq!(got[..2], [0.1f64.powf(3.0), -8.0]);
        assert_eq!(got[2], f64::INFINITY);
        // Rank 0 with rank 0 gives rank 0; an INT16 scalar tensor.
        let x = Buf::from_i64(DType::I16, &[-7]);
        let y = Buf::from_i64(DType::I16, &[3]);
        let o = Buf::zeros(DType::I16, 1);
        let args = SubArgs {
            self_: x.tensor(&[]),
            other: y.tensor(&[]),
            alpha: Scalar::I64(-1),
            out: o.tensor(&[]),
        };
        // SAFETY: one element each.
        unsafe { sub::run(&args) }.unwrap();
        assert_eq!(o.to_i64(), [-4]);
        let f = Buf::zeros(DType::F32, 1);
        let args = DivArgs {
            self_: x.tensor(&[]),
            other: y.tensor(&[]),
            out: f.tensor(&[]),
        };
        // SAFETY: one element each.
        unsafe { div::run(&args) }.unwrap();
        assert_eq!(f.to_f32(), [-7.0 / 3.0]);
    }

    #[test]
    fn large_tensors_take_the_parallel_path() {
        let n = crate::par::PAR_MIN * 2 + 3;
        let a: Vec<f32> = (0..n).map(|i| (i % 101) as f32 - 50.0).collect();
        let b: Vec<f32> = (0..7).map(|i| i as f32 + 1.0).collect();
        let (ab, bb) = (Buf::from_f32(DType::F32, &a), Buf::from_f32(DType::F32, &b));
        let out = Buf::zeros(DType::F32, n);
        let rows = (n / 7) as i64;
        let m = rows as usize * 7;
        let args = DivArgs {
            self_: ab.tensor(&[rows, 7]),
            other: bb.tensor(&[7]),
            out: out.tensor(&[rows, 7]),
        };
        // SAFETY: views inside their buffers.
        unsafe { div::run(&args) }.unwrap();
        let got = out.to_f32();
        assert!((0..m).all(|i| got[i] == a[i] / b[i % 7]));
        let i = Buf::from_i64(DType::I32, &(0..n as i64).collect::<Vec<_>>());
        let o = Buf::zeros(DType::I32, n);
        let args = SubsArgs {
            self_: i.tensor(&[n as i64]),
            other: Scalar::I32(3),
            alpha: Scalar::I32(2),
            out: o.tensor(&[n as i64]),
        };
        // SAFETY: views cover their buffers.
        unsafe { subs::run(&args) }.unwrap();
        assert!(
            o.to_i64()
                .iter()
                .enumerate()
                .all(|(k, &v)| v == k as i64 - 6)
        );
    }

    #[test]
    fn refusals() {
        let f = Buf::zeros(DType::F32, 16);
        let b = Buf::zeros(DType::Bool, 16);
        let e = pow_tensor_tensor::check(&PowTensorTensorArgs {
            self_: b.tensor(&[2]),
            exponent: b.tensor(&[2]),
            out: b.tensor(&[2]),
        })
        .unwrap_err();
        assert!(e.message.contains("self dtype DT_BOOL"), "{}", e.message);
        let e = sub::check(&SubArgs {
            self_: f.tensor(&[2, 3]),
            other: f.tensor(&[4, 3]),
            alpha: Scalar::F32(1.0),
            out: f.tensor(&[2, 3]),
        })
        .unwrap_err();
        assert!(
            e.message.contains("aclnnSub") && e.message.contains("can't broadcast"),
            "{}",
            e.message
        );
        let i = Buf::zeros(DType::I32, 16);
        let e = subs::check(&SubsArgs {
            self_: i.tensor(&[2]),
            other: Scalar::I32(1),
            alpha: Scalar::F32(0.5),
            out: i.tensor(&[2]),
        })
        .unwrap_err();
        assert!(
            e.message.contains("alpha must not be a floating"),
            "{}",
            e.message
        );
        let e = muls::check(&MulsArgs {
            self_: i.tensor(&[2]),
            other: Scalar::F32(0.5),
            out: i.tensor(&[2]),
        })
        .unwrap_err();
        assert!(e.message.contains("can't be cast"), "{}", e.message);
        let e = eq_tensor::check(&EqTensorArgs {
            self_: f.tensor(&[1; 9]),
            other: f.tensor(&[1]),
            out: b.tensor(&[1; 9]),
        })
        .unwrap_err();
        assert!(e.message.contains("no more than 8"), "{}", e.message);
        let e = gt_scalar::check(&GtScalarArgs {
            self_: f.tensor(&[2]),
            other: Scalar::F32(0.0),
            out: b.tensor(&[3]),
        })
        .unwrap_err();
        assert_eq!(e.code, 161002);
        assert!(e.message.contains("out should be [2]"), "{}", e.message);
        // run repeats the check before touching memory.
        // SAFETY: the check fails first.
        let r = unsafe {
            div::run(&DivArgs {
                self_: f.tensor(&[2]),
                other: f.tensor(&[3]),
                out: f.tensor(&[2]),
            })
        };
        assert!(r.is_err());
    }
}
