//! Broadcasting binary arithmetic: aclnnAdd, aclnnAdds, aclnnInplaceAdd and
//! aclnnMul, one submodule per operator, over a shared core.
//!
//! Semantics (CANN follows torch): `out = self + alpha * other` (Add, Adds,
//! InplaceAdd into `selfRef`) and `out = self * other` (Mul), numpy
//! broadcasting, at most 8 dims. Dtypes: FLOAT, FLOAT16, BF16, DOUBLE,
//! INT8, UINT8, INT16, INT32, INT64, BOOL (complex types are not modelled).
//!
//! Type promotion is torch's `promoteTypes`: bool < integers < floats; two
//! floats give the wider one, FLOAT16 with BF16 gives FLOAT; two integers
//! give the wider signed type (UINT8 with INT8 gives INT16). A scalar
//! operand (Adds' `other`) is torch's "wrapped number": it changes the
//! result only across categories (a float scalar makes an integer or bool
//! tensor FLOAT; an integer scalar makes a bool tensor INT64). The promoted
//! type must be castable to `out` (no float into an integer `out`, nothing
//! but bool into a bool `out`); for InplaceAdd, to `selfRef`. `alpha` must
//! be integral (no float scalar) when the promoted type is an integer, and
//! bool when it is bool.
//!
//! Computation: DOUBLE results in f64; other float results in f32 with one
//! rounding to the promoted type (and, when `out` differs, once more to
//! `out`, as a cast after the operation); integer results in wrapping i64
//! arithmetic truncated to the result width; bool results as logical or
//! (Add: `self || (alpha && other)`) and logical and (Mul). Non-contiguous
//! and stride-0 views are accepted everywhere. Inputs are fully read before
//! the output is written, so `out` may alias `self` or `other`.

use crate::broadcast::{broadcast_shapes, check_view, expand, fmt_shape, read_f64, write_f64};
use crate::par::zip_map;
use crate::scalar::Scalar;
use crate::tensor::{DType, KernelError, TensorArg};

/// Maximum rank of these operators.
pub const MAX_RANK: usize = 8;

/// Every dtype the arithmetic operators accept.
pub const SUPPORTED: [DType; 10] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::Bool,
];

/// Rank of a dtype within its category, for promotion.
fn float_rank(d: DType) -> u8 {
    match d {
        DType::F16 | DType::BF16 => 1,
        DType::F32 => 2,
        DType::F64 => 3,
        _ => 0,
    }
}

/// torch's `promoteTypes` restricted to [`SUPPORTED`].
pub fn promote(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    match (a, b) {
        (Bool, x) | (x, Bool) => x,
        (F16, BF16) | (BF16, F16) => F32,
        _ if a.is_float() && b.is_float() => {
            if float_rank(a) >= float_rank(b) {
                a
            } else {
                b
            }
        }
        _ if a.is_float() => a,
        _ if b.is_float() => b,
        (U8, I8) | (I8, U8) => I16,
        (U8, x) | (x, U8) => x,
        _ => {
            if a.size() >= b.size() {
                a
            } else {
                b
            }
        }
    }
}

/// Result type of a tensor combined with a wrapped-number scalar.
pub fn promote_with_scalar(t: DType, s: DType) -> DType {
    if t.is_float() {
        t
    } else if s.is_float() {
        DType::F32
    } else if t == DType::Bool && s != DType::Bool {
        DType::I64
    } else {
        t
    }
}

/// torch's `canCast`: float never into an integer or bool, nothing but bool
/// into bool.
pub fn can_cast(from: DType, to: DType) -> bool {
    if from.is_float() && !to.is_float() {
        return false;
    }
    !(from != DType::Bool && to == DType::Bool)
}

pub(crate) fn check_supported(t: &TensorArg, name: &str) -> Result<(), KernelError> {
    check_view(t, name, MAX_RANK)?;
    crate::broadcast::check_dtype(t, name, &SUPPORTED)
}

pub(crate) fn check_cast(
    promoted: DType,
    target: &TensorArg,
    name: &str,
) -> Result<(), KernelError> {
    if can_cast(promoted, target.dtype) {
        return Ok(());
    }
    Err(KernelError::invalid(format!(
        "Result dtype {} can't be cast to the desired output type {} of {name}.",
        promoted.name(),
        target.dtype.name()
    )))
}

pub(crate) fn check_alpha(alpha: &Scalar, promoted: DType) -> Result<(), KernelError> {
    if promoted == DType::Bool && alpha.dtype() != DType::Bool {
        return Err(KernelError::invalid(format!(
            "alpha must be a bool when the result dtype is DT_BOOL, but got {}.",
            alpha.dtype().name()
        )));
    }
    if !promoted.is_float() && alpha.dtype().is_float() {
        return Err(KernelError::invalid(format!(
            "For integral input tensors, alpha must not be a floating point number, but got {} of {}.",
            alpha.as_f64(),
            alpha.dtype().name()
        )));
    }
    Ok(())
}

pub(crate) fn broadcast_to(
    a: &TensorArg,
    b: &TensorArg,
    an: &str,
    bn: &str,
) -> Result<Vec<i64>, KernelError> {
    broadcast_shapes(&a.shape, &b.shape).ok_or_else(|| {
        KernelError::invalid(format!(
            "The shape of {an} {} and {bn} {} can't broadcast.",
            fmt_shape(&a.shape),
            fmt_shape(&b.shape)
        ))
    })
}

pub(crate) fn check_out_shape(
    out: &TensorArg,
    want: &[i64],
    name: &str,
) -> Result<(), KernelError> {
    if out.shape != want {
        return Err(KernelError::invalid(format!(
            "The shape of {name} should be {} (the broadcast shape), but got {}.",
            fmt_shape(want),
            fmt_shape(&out.shape)
        )));
    }
    Ok(())
}

/// The second operand of the shared core.
pub(crate) enum Rhs<'a> {
    Tensor(&'a TensorArg),
    Scalar(Scalar),
}

/// What to compute.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    /// `lhs + alpha * rhs`.
    Add(Scalar),
    /// `lhs - alpha * rhs`.
    Sub(Scalar),
    /// `lhs * rhs`.
    Mul,
    /// `lhs / rhs` (only computed in a float dtype: true division).
    Div,
    /// `lhs ^ rhs`.
    Pow,
    /// `rhs ^ lhs` (a scalar base, the tensor the exponent).
    PowRev,
    /// `lhs > rhs`, 1 or 0.
    Gt,
    /// `lhs == rhs`, 1 or 0.
    Eq,
}

impl Op {
    /// Whether the result is a truth value (0 or 1) rather than a number of
    /// the computation dtype.
    fn is_compare(self) -> bool {
        matches!(self, Op::Gt | Op::Eq)
    }

    fn f64(self, x: f64, y: f64) -> f64 {
        match self {
            Op::Add(al) => x + al.as_f64() * y,
            Op::Sub(al) => x - al.as_f64() * y,
            Op::Mul => x * y,
            Op::Div => x / y,
            Op::Pow => x.powf(y),
            Op::PowRev => y.powf(x),
            Op::Gt => f64::from(u8::from(x > y)),
            Op::Eq => f64::from(u8::from(x == y)),
        }
    }

    fn f32(self, x: f32, y: f32) -> f32 {
        match self {
            Op::Add(al) => x + al.as_f64() as f32 * y,
            Op::Sub(al) => x - al.as_f64() as f32 * y,
            Op::Mul => x * y,
            Op::Div => x / y,
            Op::Pow => x.powf(y),
            Op::PowRev => y.powf(x),
            Op::Gt => f32::from(u8::from(x > y)),
            Op::Eq => f32::from(u8::from(x == y)),
        }
    }

    /// Integer arithmetic, wrapped to `d`'s width (Div never runs here).
    fn int(self, d: DType, x: i64, y: i64) -> i64 {
        match self {
            Op::Add(al) => wrap_to(d, x.wrapping_add(al.as_i64().wrapping_mul(y))),
            Op::Sub(al) => wrap_to(d, x.wrapping_sub(al.as_i64().wrapping_mul(y))),
            Op::Mul => wrap_to(d, x.wrapping_mul(y)),
            Op::Div => unreachable!("division computes in a float dtype"),
            Op::Pow => wrap_to(d, int_pow(x, y)),
            Op::PowRev => wrap_to(d, int_pow(y, x)),
            Op::Gt => i64::from(x > y),
            Op::Eq => i64::from(x == y),
        }
    }

    /// Bool arithmetic (Add: or; Mul: and; comparisons of 0/1).
    fn bool(self, x: bool, y: bool) -> i64 {
        i64::from(match self {
            Op::Add(al) => x || (al.as_i64() != 0 && y),
            Op::Mul => x && y,
            Op::Gt => x & !y,
            Op::Eq => x == y,
            Op::Sub(_) | Op::Div | Op::Pow | Op::PowRev => {
                unreachable!("refused for bool results in phase one")
            }
        })
    }
}

/// `base ^ exp` in wrapping integer arithmetic; a negative exponent gives
/// the truncated quotient `1 / base^|exp|` (1 for base 1, ±1 for base -1,
/// 0 otherwise; 0 ^ negative is taken as 0).
fn int_pow(base: i64, exp: i64) -> i64 {
    if exp < 0 {
        return match base {
            1 => 1,
            -1 => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let (mut result, mut b, mut e) = (1i64, base, exp as u64);
    while e > 0 {
        if e & 1 == 1 {
            result = result.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    result
}

fn round_to(d: DType, v: f32) -> f32 {
    match d {
        DType::F16 => half::f16::from_f32(v).to_f32(),
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// Wrap an i64 to the width of integer dtype `d`, as the NPU's integer
/// arithmetic does.
fn wrap_to(d: DType, v: i64) -> i64 {
    match d {
        DType::I8 => i64::from(v as i8),
        DType::U8 => i64::from(v as u8),
        DType::I16 => i64::from(v as i16),
        DType::I32 => i64::from(v as i32),
        _ => v,
    }
}

/// `out = lhs op rhs` computed in `promoted`, after every input is read.
/// A scalar `rhs` of a comparison is first rounded to `promoted` (torch
/// compares in the common dtype).
///
/// # Safety
/// tensor.rs's invariant for every view; shapes already checked.
pub(crate) unsafe fn binary(
    lhs: &TensorArg,
    rhs: Rhs<'_>,
    out: &TensorArg,
    promoted: DType,
    op: Op,
) {
    let shape = out.shape.clone();
    let a = expand(lhs, &shape);
    let n = out.numel();
    if promoted == DType::F64 {
        // SAFETY: expanded views address only elements of their sources.
        let av = unsafe { read_f64(&a) };
        let bv = match &rhs {
            Rhs::Tensor(t) => {
                let b = expand(t, &shape);
                // SAFETY: as above.
                unsafe { read_f64(&b) }
            }
            Rhs::Scalar(s) => vec![s.as_f64(); n],
        };
        let res: Vec<f64> = zip_map(&av, &bv, |x, y| op.f64(x, y));
        // SAFETY: `out` is writable by the invariant; inputs are read.
        unsafe { write_f64(out, &res) };
    } else if promoted.is_float() {
        // SAFETY: expanded views address only elements of their sources.
        let av = unsafe { a.read_f32() };
        let bv = match &rhs {
            Rhs::Tensor(t) => {
                let b = expand(t, &shape);
                // SAFETY: as above.
                unsafe { b.read_f32() }
            }
            Rhs::Scalar(s) => {
                let v = s.as_f64() as f32;
                vec![
                    if op.is_compare() {
                        round_to(promoted, v)
                    } else {
                        v
                    };
                    n
                ]
            }
        };
        let mut res: Vec<f32> = zip_map(&av, &bv, |x, y| op.f32(x, y));
        if out.dtype != promoted && !op.is_compare() {
            for v in &mut res {
                *v = round_to(promoted, *v);
            }
        }
        // SAFETY: `out` is writable by the invariant; inputs are read.
        unsafe { out.write_f32(&res) };
    } else {
        // SAFETY: expanded views address only elements of their sources.
        let av = unsafe { a.read_i64() };
        let bv = match &rhs {
            Rhs::Tensor(t) => {
                let b = expand(t, &shape);
                // SAFETY: as above.
                unsafe { b.read_i64() }
            }
            Rhs::Scalar(s) => vec![s.as_i64(); n],
        };
        let res: Vec<i64> = if promoted == DType::Bool {
            zip_map(&av, &bv, |x, y| op.bool(x != 0, y != 0))
        } else {
            zip_map(&av, &bv, |x, y| op.int(promoted, x, y))
        };
        // SAFETY: `out` is writable by the invariant; inputs are read.
        unsafe { out.write_i64(&res) };
    }
}

/// aclnnAdd: `out = self + alpha * other`.
pub mod add {
    use super::*;

    /// Arguments of `aclnnAddGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct AddArgs {
        pub self_: TensorArg,
        pub other: TensorArg,
        pub alpha: Scalar,
        pub out: TensorArg,
    }

    /// Phase-one validation.
    pub fn check(args: &AddArgs) -> Result<(), KernelError> {
        check_supported(&args.self_, "self")?;
        check_supported(&args.other, "other")?;
        check_supported(&args.out, "out")?;
        let promoted = promote(args.self_.dtype, args.other.dtype);
        check_cast(promoted, &args.out, "out")?;
        check_alpha(&args.alpha, promoted)?;
        let shape = broadcast_to(&args.self_, &args.other, "self", "other")?;
        check_out_shape(&args.out, &shape, "out")
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `args`.
    pub unsafe fn run(args: &AddArgs) -> Result<(), KernelError> {
        check(args)?;
        let promoted = promote(args.self_.dtype, args.other.dtype);
        // SAFETY: forwarded invariant; shapes checked.
        unsafe {
            binary(
                &args.self_,
                Rhs::Tensor(&args.other),
                &args.out,
                promoted,
                Op::Add(args.alpha),
            )
        };
        Ok(())
    }
}

/// aclnnAdds: `out = self + alpha * other` with a scalar `other`.
pub mod adds {
    use super::*;

    /// Arguments of `aclnnAddsGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct AddsArgs {
        pub self_: TensorArg,
        pub other: Scalar,
        pub alpha: Scalar,
        pub out: TensorArg,
    }

    /// Phase-one validation.
    pub fn check(args: &AddsArgs) -> Result<(), KernelError> {
        check_supported(&args.self_, "self")?;
        check_supported(&args.out, "out")?;
        let promoted = promote_with_scalar(args.self_.dtype, args.other.dtype());
        check_cast(promoted, &args.out, "out")?;
        check_alpha(&args.alpha, promoted)?;
        check_out_shape(&args.out, &args.self_.shape, "out")
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `args`.
    pub unsafe fn run(args: &AddsArgs) -> Result<(), KernelError> {
        check(args)?;
        let promoted = promote_with_scalar(args.self_.dtype, args.other.dtype());
        // SAFETY: forwarded invariant; shapes checked.
        unsafe {
            binary(
                &args.self_,
                Rhs::Scalar(args.other),
                &args.out,
                promoted,
                Op::Add(args.alpha),
            )
        };
        Ok(())
    }
}

/// aclnnInplaceAdd: `selfRef += alpha * other`.
pub mod inplace_add {
    use super::*;

    /// Arguments of `aclnnInplaceAddGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct InplaceAddArgs {
        pub self_ref: TensorArg,
        pub other: TensorArg,
        pub alpha: Scalar,
    }

    /// Phase-one validation: `other` must broadcast to `selfRef`'s shape.
    pub fn check(args: &InplaceAddArgs) -> Result<(), KernelError> {
        check_supported(&args.self_ref, "selfRef")?;
        check_supported(&args.other, "other")?;
        let promoted = promote(args.self_ref.dtype, args.other.dtype);
        check_cast(promoted, &args.self_ref, "selfRef")?;
        check_alpha(&args.alpha, promoted)?;
        let shape = broadcast_to(&args.self_ref, &args.other, "selfRef", "other")?;
        check_out_shape(&args.self_ref, &shape, "selfRef")
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `args`.
    pub unsafe fn run(args: &InplaceAddArgs) -> Result<(), KernelError> {
        check(args)?;
        let promoted = promote(args.self_ref.dtype, args.other.dtype);
        // SAFETY: forwarded invariant; the core reads both inputs before it
        // writes `selfRef`.
        unsafe {
            binary(
                &args.self_ref,
                Rhs::Tensor(&args.other),
                &args.self_ref,
                promoted,
                Op::Add(args.alpha),
            )
        };
        Ok(())
    }
}

/// aclnnMul: `out = self * other`.
pub mod mul {
    use super::*;

    /// Arguments of `aclnnMulGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct MulArgs {
        pub self_: TensorArg,
        pub other: TensorArg,
        pub out: TensorArg,
    }

    /// Phase-one validation.
    pub fn check(args: &MulArgs) -> Result<(), KernelError> {
        check_supported(&args.self_, "self")?;
        check_supported(&args.other, "other")?;
        check_supported(&args.out, "out")?;
        let promoted = promote(args.self_.dtype, args.other.dtype);
        check_cast(promoted, &args.out, "out")?;
        let shape = broadcast_to(&args.self_, &args.other, "self", "other")?;
        check_out_shape(&args.out, &shape, "out")
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `args`.
    pub unsafe fn run(args: &MulArgs) -> Result<(), KernelError> {
        check(args)?;
        let promoted = promote(args.self_.dtype, args.other.dtype);
        // SAFETY: forwarded invariant; shapes checked.
        unsafe {
            binary(
                &args.self_,
                Rhs::Tensor(&args.other),
                &args.out,
                promoted,
                Op::Mul,
            )
        };
        Ok(())
    }
}

pub use add::AddArgs;
pub use adds::AddsArgs;
pub use inplace_add::InplaceAddArgs;
pub use mul::MulArgs;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close, round, strides};

    /// Reference: walk every output multi-index and map it into each input
    /// with explicit modulo-free broadcasting (index 0 on size-1 dims).
    fn reference(
        a: &[f32],
        ashape: &[i64],
        b: &[f32],
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
            res.push(f(
                f64::from(a[flat(ashape, &idx)]),
                f64::from(b[flat(bshape, &idx)]),
            ));
        }
        (shape, res)
    }

    #[test]
    fn add_and_mul_float_broadcasting() {
        let mut rng = Rng::new(21);
        let shapes: &[(&[i64], &[i64])] = &[
            (&[3, 4], &[3, 4]),
            (&[2, 1, 4], &[3, 1]),
            (&[5], &[]),
            (&[1, 6], &[4, 1]),
            (&[0, 3], &[3]),
        ];
        for &(sa, sb) in shapes {
            for dt in [DType::F32, DType::F16, DType::BF16] {
                let na: i64 = sa.iter().product();
                let nb: i64 = sb.iter().product();
                let a = Buf::random(dt, na as usize, &mut rng);
                let b = Buf::random(dt, nb as usize, &mut rng);
                let (shape, want) = reference(&a.to_f32(), sa, &b.to_f32(), sb, |x, y| x + 2.5 * y);
                let out = Buf::zeros(dt, want.len());
                let args = AddArgs {
                    self_: a.tensor(sa),
                    other: b.tensor(sb),
                    alpha: Scalar::F32(2.5),
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { add::run(&args) }.unwrap();
                assert_close(&out.to_f32(), &want, dt, "add");
                let (_, want) = reference(&a.to_f32(), sa, &b.to_f32(), sb, |x, y| x * y);
                let margs = MulArgs {
                    self_: a.tensor(sa),
                    other: b.tensor(sb),
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { mul::run(&margs) }.unwrap();
                assert_close(&out.to_f32(), &want, dt, "mul");
            }
        }
    }

    #[test]
    fn mixed_dtypes_promote() {
        let a = Buf::from_f32(DType::F16, &[1.5, -2.0]);
        let b = Buf::from_f32(DType::BF16, &[0.25, 4.0]);
        let out = Buf::zeros(DType::F32, 2);
        let args = AddArgs {
            self_: a.tensor(&[2]),
            other: b.tensor(&[2]),
            alpha: Scalar::I64(2),
            out: out.tensor(&[2]),
        };
        // SAFETY: views cover their buffers.
        unsafe { add::run(&args) }.unwrap();
        assert_eq!(out.to_f32(), vec![2.0, 6.0]);
        // int32 + f32 -> f32; u8 * i8 -> i16 (wrapping as i16).
        let i = Buf::from_i64(DType::I32, &[3, -4]);
        let f = Buf::from_f32(DType::F32, &[0.5, 0.25]);
        let o = Buf::zeros(DType::F32, 2);
        let m = MulArgs {
            self_: i.tensor(&[2]),
            other: f.tensor(&[2]),
            out: o.tensor(&[2]),
        };
        // SAFETY: views cover their buffers.
        unsafe { mul::run(&m) }.unwrap();
        assert_eq!(o.to_f32(), vec![1.5, -1.0]);
        let u = Buf::from_i64(DType::U8, &[200, 255]);
        let s = Buf::from_i64(DType::I8, &[-2, 100]);
        let o = Buf::zeros(DType::I16, 2);
        assert_eq!(promote(DType::U8, DType::I8), DType::I16);
        let m = MulArgs {
            self_: u.tensor(&[2]),
            other: s.tensor(&[2]),
            out: o.tensor(&[2]),
        };
        // SAFETY: views cover their buffers.
        unsafe { mul::run(&m) }.unwrap();
        // SAFETY: two i16 elements.
        assert_eq!(
            unsafe { o.flat().read_i64() },
            vec![-400, i64::from((255i64 * 100) as i16)]
        );
        // f64 keeps full precision.
        let d = Buf::zeros(DType::F64, 1);
        let dt = d.tensor(&[1]);
        // SAFETY: one f64 element.
        unsafe { write_f64(&dt, &[0.1]) };
        let o = Buf::zeros(DType::F64, 1);
        let args = AddsArgs {
            self_: dt.clone(),
            other: Scalar::F64(1e-12),
            alpha: Scalar::F32(1.0),
            out: o.tensor(&[1]),
        };
        // SAFETY: views cover their buffers.
        unsafe { adds::run(&args) }.unwrap();
        // SAFETY: one f64 element.
        assert_eq!(unsafe { read_f64(&o.tensor(&[1])) }, vec![0.1 + 1e-12]);
    }

    #[test]
    fn integers_and_bools() {
        let a = Buf::from_i64(DType::I32, &[i64::from(i32::MAX), 5, -7]);
        let b = Buf::from_i64(DType::I32, &[1, 2, 3]);
        let out = Buf::zeros(DType::I32, 3);
        let args = AddArgs {
            self_: a.tensor(&[3]),
            other: b.tensor(&[3]),
            alpha: Scalar::I32(-3),
            out: out.tensor(&[3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { add::run(&args) }.unwrap();
        // SAFETY: three i32 elements.
        let got = unsafe { out.flat().read_i64() };
        assert_eq!(got, vec![i64::from(i32::MAX - 3), -1, -16]);
        let t = Buf::from_i64(DType::Bool, &[0, 1, 0, 1]);
        let u = Buf::from_i64(DType::Bool, &[0, 0, 1, 1]);
        let o = Buf::zeros(DType::Bool, 4);
        let args = AddArgs {
            self_: t.tensor(&[4]),
            other: u.tensor(&[4]),
            alpha: Scalar::Bool(true),
            out: o.tensor(&[4]),
        };
        // SAFETY: views cover their buffers.
        unsafe { add::run(&args) }.unwrap();
        // SAFETY: four bool bytes.
        assert_eq!(unsafe { o.flat().read_i64() }, vec![0, 1, 1, 1]);
        let m = MulArgs {
            self_: t.tensor(&[4]),
            other: u.tensor(&[4]),
            out: o.tensor(&[4]),
        };
        // SAFETY: views cover their buffers.
        unsafe { mul::run(&m) }.unwrap();
        // SAFETY: four bool bytes.
        assert_eq!(unsafe { o.flat().read_i64() }, vec![0, 0, 0, 1]);
        // Int tensor + float scalar -> float out.
        let o = Buf::zeros(DType::F32, 3);
        let args = AddsArgs {
            self_: a.tensor(&[3]),
            other: Scalar::F32(0.5),
            alpha: Scalar::I8(2),
            out: o.tensor(&[3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { adds::run(&args) }.unwrap();
        assert_eq!(o.to_f32(), vec![i32::MAX as f32 + 1.0, 6.0, -6.0]);
    }

    #[test]
    fn adds_keeps_tensor_dtype_and_strided_views() {
        let mut rng = Rng::new(5);
        for dt in [DType::F16, DType::BF16, DType::F32] {
            let a = Buf::random(dt, 12, &mut rng);
            // Transposed view (4, 3) of a (3, 4) buffer.
            let v = a.view(&[4, 3], &[1, 4], 0);
            // SAFETY: inside the buffer.
            let av = unsafe { v.read_f32() };
            let out = Buf::zeros(dt, 12);
            let args = AddsArgs {
                self_: v.clone(),
                other: Scalar::F64(0.3),
                alpha: Scalar::F32(-1.5),
                out: out.tensor(&[4, 3]),
            };
            // SAFETY: views inside their buffers.
            unsafe { adds::run(&args) }.unwrap();
            let want: Vec<f64> = av
                .iter()
                .map(|&x| f64::from(x) - 1.5 * f64::from(0.3f64 as f32))
                .collect();
            assert_close(&out.to_f32(), &want, dt, "adds");
            let _ = round(dt, 0.0);
        }
    }

    #[test]
    fn inplace_add_aliases_self() {
        let mut rng = Rng::new(8);
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let s = Buf::random(dt, 6, &mut rng);
            let before = s.to_f32();
            let o = Buf::random(dt, 3, &mut rng);
            let ov = o.to_f32();
            // other (3) is read through a stride-2 view? no: use a slice of
            // `s` itself as `other` to exercise aliasing: row 0 of selfRef.
            let args = inplace_add::InplaceAddArgs {
                self_ref: s.tensor(&[2, 3]),
                other: s.tensor(&[3]),
                alpha: Scalar::F32(1.0),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_add::run(&args) }.unwrap();
            let want: Vec<f64> = (0..6)
                .map(|i| f64::from(before[i]) + f64::from(before[i % 3]))
                .collect();
            assert_close(&s.to_f32(), &want, dt, "inplace aliasing");
            let s2 = Buf::from_f32(dt, &before);
            let args = inplace_add::InplaceAddArgs {
                self_ref: s2.tensor(&[2, 3]),
                other: o.tensor(&[1, 3]),
                alpha: Scalar::I32(2),
            };
            // SAFETY: views cover their buffers.
            unsafe { inplace_add::run(&args) }.unwrap();
            let want: Vec<f64> = (0..6)
                .map(|i| f64::from(before[i]) + 2.0 * f64::from(ov[i % 3]))
                .collect();
            assert_close(&s2.to_f32(), &want, dt, "inplace");
        }
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let f = Buf::zeros(DType::F32, 64);
        let i = Buf::zeros(DType::I32, 64);
        let b = Buf::zeros(DType::Bool, 64);
        let expect = |r: Result<(), KernelError>, needle: &str| {
            let e = r.unwrap_err();
            assert_eq!(e.code, 161002, "{}", e.message);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        };
        let add = |s: TensorArg, o: TensorArg, a: Scalar, out: TensorArg| {
            add::check(&AddArgs {
                self_: s,
                other: o,
                alpha: a,
                out,
            })
        };
        expect(
            add(
                f.tensor(&[2, 3]),
                f.tensor(&[4, 3]),
                Scalar::F32(1.0),
                f.tensor(&[2, 3]),
            ),
            "can't broadcast",
        );
        expect(
            add(
                f.tensor(&[2, 3]),
                f.tensor(&[3]),
                Scalar::F32(1.0),
                f.tensor(&[3, 2]),
            ),
            "should be [2, 3]",
        );
        expect(
            add(
                f.tensor(&[3]),
                i.tensor(&[3]),
                Scalar::F32(1.0),
                i.tensor(&[3]),
            ),
            "can't be cast",
        );
        expect(
            add(
                i.tensor(&[3]),
                i.tensor(&[3]),
                Scalar::F32(1.5),
                i.tensor(&[3]),
            ),
            "alpha must not be a floating",
        );
        expect(
            add(
                b.tensor(&[3]),
                b.tensor(&[3]),
                Scalar::I32(1),
                b.tensor(&[3]),
            ),
            "alpha must be a bool",
        );
        expect(
            add(
                i.tensor(&[3]),
                i.tensor(&[3]),
                Scalar::I32(1),
                b.tensor(&[3]),
            ),
            "can't be cast",
        );
        expect(
            add(
                f.tensor(&[1; 9]),
                f.tensor(&[1]),
                Scalar::F32(1.0),
                f.tensor(&[1; 9]),
            ),
            "no more than 8",
        );
        expect(
            mul::check(&MulArgs {
                self_: f.tensor(&[2]),
                other: f.tensor(&[3]),
                out: f.tensor(&[2]),
            }),
            "can't broadcast",
        );
        expect(
            mul::check(&MulArgs {
                self_: f.tensor(&[2]),
                other: f.tensor(&[2]),
                out: i.tensor(&[2]),
            }),
            "can't be cast",
        );
        expect(
            adds::check(&AddsArgs {
                self_: i.tensor(&[2]),
                other: Scalar::F32(0.5),
                alpha: Scalar::I32(1),
                out: i.tensor(&[2]),
            }),
            "can't be cast",
        );
        expect(
            adds::check(&AddsArgs {
                self_: f.tensor(&[2]),
                other: Scalar::F32(0.5),
                alpha: Scalar::I32(1),
                out: f.tensor(&[3]),
            }),
            "should be [2]",
        );
        expect(
            inplace_add::check(&InplaceAddArgs {
                self_ref: f.tensor(&[3]),
                other: f.tensor(&[2, 3]),
                alpha: Scalar::F32(1.0),
            }),
            "selfRef should be [2, 3]",
        );
        expect(
            inplace_add::check(&InplaceAddArgs {
                self_ref: i.tensor(&[3]),
                other: f.tensor(&[3]),
                alpha: Scalar::I32(1),
            }),
            "can't be cast",
        );
        // run repeats the checks.
        // SAFETY: the check fails before memory is touched.
        let r = unsafe {
            mul::run(&MulArgs {
                self_: f.tensor(&[2]),
                other: f.tensor(&[3]),
                out: f.tensor(&[2]),
            })
        };
        expect(r, "can't broadcast");
    }
}
