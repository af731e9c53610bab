//! Elementwise unary operators over one shared kernel: each operator is an
//! entry of the `unary_ops!` table (its name, the dtypes `self` may
//! have, the rule for `out`'s dtype, the scalar parameters it takes, and
//! the function for float and integer elements).
//!
//! Semantics shared by every entry (CANN's aclnn unary operators): `out`
//! has `self`'s shape; ranks 0 to 8; non-contiguous views are accepted
//! (every element is read before any is written, so `out` may alias
//! `self`, which is how the in-place forms run). Float functions are
//! written in f64: FLOAT, FLOAT16 and BF16 elements are widened, computed
//! in f64, rounded to f32 and (FLOAT16, BF16) once more to `out`'s dtype
//! on store; DOUBLE elements compute in f64; integer and bool elements
//! compute in i64 and are truncated to `out`'s width (wrapping, as the
//! device's integer units do).
//! An entry without an integer function is a float operator: integer and
//! bool inputs are converted to the float dtype of `out` first (which its
//! [`OutDtype::FloatCastable`] rule makes a float), as CANN's Exp, Log,
//! Sqrt, Sin and Cos document for such inputs.
//!
//! Phase one refuses with `ACLNN_ERR_PARAM_INVALID` (161002): a dtype of
//! `self` outside the entry's list, an `out` dtype the entry's
//! [`OutDtype`] rule refuses, a shape of `out` other than `self`'s, a rank
//! above 8, a scalar parameter whose dtype the entry's [`ParamRule`]
//! refuses, a mode outside the documented values; and with
//! `ACLNN_ERR_PARAM_NULLPTR` (161001) a required scalar that is absent
//! (Clamp: both bounds absent).
//!
//! Large contiguous FLOAT, FLOAT16 and BF16 tensors whose `out` is `self`
//! itself or does not overlap it take a fast path: the rayon pool maps
//! chunks of the memory directly (see [`crate::par`]).

use half::{bf16, f16};

use crate::broadcast::{check_dtype, check_view, fmt_shape, may_overlap, read_f64, write_f64};
use crate::elementwise::can_cast;
use crate::par;
use crate::scalar::Scalar;
use crate::tensor::{DType, KernelError, PARAM_NULLPTR, TensorArg};

/// Maximum rank of the unary operators.
pub const MAX_RANK: usize = 8;

/// Arguments of a unary operator without parameters: `out = op(self)`.
#[derive(Debug, Clone)]
pub struct UnaryArgs {
    /// The input.
    pub self_: TensorArg,
    /// The output (the input itself for the in-place forms).
    pub out: TensorArg,
}

/// Arguments of a unary operator with one scalar parameter (LeakyRelu's
/// `negativeSlope`, ClampMin's and ClampMax's bound).
#[derive(Debug, Clone)]
pub struct UnaryScalarArgs {
    pub self_: TensorArg,
    pub a: Scalar,
    pub out: TensorArg,
}

/// Arguments of a unary operator with two scalar parameters (Softplus'
/// `beta`, `threshold`; Threshold's `threshold`, `value`).
#[derive(Debug, Clone)]
pub struct UnaryScalar2Args {
    pub self_: TensorArg,
    pub a: Scalar,
    pub b: Scalar,
    pub out: TensorArg,
}

/// Arguments of a unary operator with three scalar parameters (Elu's
/// `alpha`, `scale`, `inputScale`).
#[derive(Debug, Clone)]
pub struct UnaryScalar3Args {
    pub self_: TensorArg,
    pub a: Scalar,
    pub b: Scalar,
    pub c: Scalar,
    pub out: TensorArg,
}

/// Arguments of aclnnClamp: either bound may be absent (NULL), not both.
#[derive(Debug, Clone)]
pub struct ClampArgs {
    pub self_: TensorArg,
    pub min: Option<Scalar>,
    pub max: Option<Scalar>,
    pub out: TensorArg,
}

/// Arguments of a unary operator with an integer mode (GeluV2's
/// `approximate`).
#[derive(Debug, Clone)]
pub struct UnaryModeArgs {
    pub self_: TensorArg,
    pub mode: i64,
    pub out: TensorArg,
}

/// The parameters of one call, as bound: up to three scalars (absent ones
/// `None`) and a mode.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Params {
    pub scalars: [Option<Scalar>; 3],
    pub mode: i64,
}

/// The parameters resolved for the element functions: each scalar as a
/// float (`f`) and as an integer (`i`), whether it is present, the mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values {
    pub f: [f64; 3],
    pub i: [i64; 3],
    pub has: [bool; 3],
    pub mode: i64,
}

/// An argument struct of one of the unary shapes: its two tensors and its
/// parameters.
pub trait UnaryCall {
    /// `self` and `out` (for the in-place forms, the same tensor twice).
    fn tensors(&self) -> (&TensorArg, &TensorArg);
    /// The bound parameters.
    fn params(&self) -> Params;
}

impl UnaryCall for UnaryArgs {
    fn tensors(&self) -> (&TensorArg, &TensorArg) {
        (&self.self_, &self.out)
    }
    fn params(&self) -> Params {
        Params::default()
    }
}

impl UnaryCall for UnaryScalarArgs {
    fn tensors(&self) -> (&TensorArg, &TensorArg) {
        (&self.self_, &self.out)
    }
    fn params(&self) -> Params {
        Params {
            scalars: [Some(self.a), None, None],
            mode: 0,
        }
    }
}

impl UnaryCall for UnaryScalar2Args {
    fn tensors(&self) -> (&TensorArg, &TensorArg) {
        (&self.self_, &self.out)
    }
    fn params(&self) -> Params {
        Params {
            scalars: [Some(self.a), Some(self.b), None],
            mode: 0,
        }
    }
}

impl UnaryCall for UnaryScalar3Args {
    fn tensors(&self) -> (&TensorArg, &TensorArg) {
        (&self.self_, &self.out)
    }
    fn params(&self) -> Params {
        Params {
            scalars: [Some(self.a), Some(self.b), Some(self.c)],
            mode: 0,
        }
    }
}

impl UnaryCall for ClampArgs {
    fn tensors(&self) -> (&TensorArg, &TensorArg) {
        (&self.self_, &self.out)
    }
    fn params(&self) -> Params {
        Params {
            scalars: [self.min, self.max, None],
            mode: 0,
        }
    }
}

impl UnaryCall for UnaryModeArgs {
    fn tensors(&self) -> (&TensorArg, &TensorArg) {
        (&self.self_, &self.out)
    }
    fn params(&self) -> Params {
        Params {
            scalars: [None; 3],
            mode: self.mode,
        }
    }
}

/// What `out`'s dtype may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutDtype {
    /// Exactly `self`'s dtype.
    Same,
    /// Any dtype `self`'s can be cast to (no float into an integer, nothing
    /// but bool into bool).
    Castable,
    /// A float dtype `self`'s can be cast to (any float for integer and
    /// bool inputs): the float operators.
    FloatCastable,
    /// Any supported dtype (LogicalNot writes 0 or 1 into any).
    Any,
}

/// Which scalar parameters an operator takes and what their dtypes may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRule {
    /// None.
    None,
    /// Required scalars (named) of any dtype castable to FLOAT (every
    /// non-complex dtype).
    Float(&'static [&'static str]),
    /// Required scalars (named) whose dtype must be castable to `self`'s
    /// (no float scalar for an integer tensor, no non-bool for a bool one).
    ToSelf(&'static [&'static str]),
    /// Like `ToSelf`, but each may be absent; at least one must be given.
    OptToSelf(&'static [&'static str]),
    /// An integer mode (named) with its allowed values.
    Mode(&'static str, &'static [i64]),
}

/// Element function on f32 (FLOAT, FLOAT16, BF16).
pub type F32Fn = fn(f32, &Values) -> f32;
/// Element function on f64 (DOUBLE).
pub type F64Fn = fn(f64, &Values) -> f64;
/// Element function on integers and bools (as i64).
pub type IntFn = fn(i64, &Values) -> i64;

/// One unary operator of the table.
#[derive(Debug, Clone, Copy)]
pub struct Unary {
    /// The aclnn name (`aclnnAbs`).
    pub name: &'static str,
    /// Whether this is an in-place form (`selfRef` is both tensors).
    pub inplace: bool,
    /// The dtypes `self` may have.
    pub dtypes: &'static [DType],
    /// The rule for `out`'s dtype.
    pub out: OutDtype,
    /// The scalar parameters.
    pub params: ParamRule,
    /// The function on FLOAT, FLOAT16 and BF16 elements (their value as f32;
    /// the table's entries compute it in f64 and round to f32).
    pub f32: F32Fn,
    /// The function on DOUBLE elements.
    pub f64: F64Fn,
    /// The function on integer and bool elements; `None` for a float
    /// operator (integer inputs compute as floats).
    pub int: Option<IntFn>,
}

/// Every dtype a unary `out` may have.
const ALL: [DType; 10] = [
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

fn round_to(d: DType, v: f32) -> f32 {
    match d {
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::BF16 => bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

impl Unary {
    /// The names of `self` and `out` in messages.
    fn names(&self) -> (&'static str, &'static str) {
        if self.inplace {
            ("selfRef", "selfRef")
        } else {
            ("self", "out")
        }
    }

    /// Phase-one check of `out = op(x)` with parameters `p`.
    pub fn check(&self, x: &TensorArg, out: &TensorArg, p: &Params) -> Result<(), KernelError> {
        let (sn, on) = self.names();
        check_view(x, sn, MAX_RANK)?;
        check_view(out, on, MAX_RANK)?;
        check_dtype(x, sn, self.dtypes)?;
        if !self.inplace {
            check_dtype(out, on, &ALL)?;
        }
        let (from, to) = (x.dtype, out.dtype);
        let allowed = match self.out {
            OutDtype::Same => from == to,
            OutDtype::Castable => can_cast(from, to),
            OutDtype::FloatCastable => to.is_float() && can_cast(from, to),
            OutDtype::Any => true,
        };
        if !allowed {
            let rule = match self.out {
                OutDtype::Same => "the same as",
                OutDtype::Castable => "castable from",
                _ => "a floating type castable from",
            };
            return Err(KernelError::invalid(if self.inplace {
                format!(
                    "{}: the dtype of selfRef ({}) must be a floating type (the result of a floating operator is stored back into it).",
                    self.name,
                    to.name()
                )
            } else {
                format!(
                    "{}: the dtype of {on} ({}) must be {rule} the dtype of {sn} ({}).",
                    self.name,
                    to.name(),
                    from.name()
                )
            }));
        }
        if out.shape != x.shape {
            return Err(KernelError::invalid(format!(
                "{}: the shape of {on} {} must be the shape of {sn} {}.",
                self.name,
                fmt_shape(&out.shape),
                fmt_shape(&x.shape)
            )));
        }
        self.check_params(x.dtype, p)
    }

    fn check_params(&self, dtype: DType, p: &Params) -> Result<(), KernelError> {
        let (names, optional, to_self): (&[&str], bool, bool) = match self.params {
            ParamRule::None => return Ok(()),
            ParamRule::Mode(name, allowed) => {
                if allowed.contains(&p.mode) {
                    return Ok(());
                }
                return Err(KernelError::invalid(format!(
                    "{}: {name} must be one of {allowed:?}, but got {}.",
                    self.name, p.mode
                )));
            }
            ParamRule::Float(n) => (n, false, false),
            ParamRule::ToSelf(n) => (n, false, true),
            ParamRule::OptToSelf(n) => (n, true, true),
        };
        let mut any = false;
        for (k, name) in names.iter().enumerate() {
            let Some(s) = p.scalars[k] else {
                if optional {
                    continue;
                }
                return Err(KernelError {
                    code: PARAM_NULLPTR,
                    message: format!("{}: {name} must not be null.", self.name),
                });
            };
            any = true;
            if to_self && !can_cast(s.dtype(), dtype) {
                return Err(KernelError::invalid(format!(
                    "{}: {name} of dtype {} can't be cast to the dtype of self ({}).",
                    self.name,
                    s.dtype().name(),
                    dtype.name()
                )));
            }
        }
        if optional && !any {
            return Err(KernelError {
                code: PARAM_NULLPTR,
                message: format!(
                    "{}: {} must not all be null.",
                    self.name,
                    names.join(" and ")
                ),
            });
        }
        Ok(())
    }

    /// The parameters as numbers.
    fn values(p: &Params) -> Values {
        let mut v = Values {
            mode: p.mode,
            ..Values::default()
        };
        for (k, s) in p.scalars.iter().enumerate() {
            if let Some(s) = s {
                v.f[k] = s.as_f64();
                v.i[k] = s.as_i64();
                v.has[k] = true;
            }
        }
        v
    }

    /// Phase-two computation of `out = op(x)` with parameters `p`.
    ///
    /// # Safety
    /// tensor.rs's module invariant for both tensors.
    pub unsafe fn run(
        &self,
        x: &TensorArg,
        out: &TensorArg,
        p: &Params,
    ) -> Result<(), KernelError> {
        self.check(x, out, p)?;
        if x.numel() == 0 {
            return Ok(());
        }
        let v = Self::values(p);
        let (f32f, f64f) = (self.f32, self.f64);
        // SAFETY (every block below): the forwarded invariant; the whole
        // view of `x` is read before any element of `out` is written, or
        // (fast path) each element is read before the same element is
        // written, by one task, with no other overlap.
        unsafe {
            if let (Some(intf), false) = (self.int, x.dtype.is_float()) {
                let mut vals = x.read_i64();
                par::map_vec(&mut vals, |e| intf(e, &v));
                out.write_i64(&vals);
                return Ok(());
            }
            if x.dtype == DType::F64 || out.dtype == DType::F64 {
                let mut vals = read_f64(x);
                if x.dtype.is_float() && x.dtype != DType::F64 {
                    // A FLOAT16/BF16/FLOAT input into a DOUBLE out: compute
                    // in the input's precision, then widen.
                    let d = x.dtype;
                    par::map_vec(&mut vals, |e| f64::from(round_to(d, f32f(e as f32, &v))));
                } else {
                    par::map_vec(&mut vals, |e| f64f(e, &v));
                }
                write_f64(out, &vals);
                return Ok(());
            }
            if self.fast_path(x, out, &v) {
                return Ok(());
            }
            let mut vals = x.read_f32();
            // A float input computes in its own dtype (rounded there once
            // when `out` differs); an integer input in `out`'s.
            let compute = if x.dtype.is_float() {
                x.dtype
            } else {
                out.dtype
            };
            if compute != out.dtype {
                par::map_vec(&mut vals, |e| round_to(compute, f32f(e, &v)));
            } else {
                par::map_vec(&mut vals, |e| f32f(e, &v));
            }
            out.write_f32(&vals);
        }
        Ok(())
    }

    /// The contiguous fast path: FLOAT, FLOAT16 or BF16 in and out of the
    /// same dtype, both contiguous, `out` either `x` itself or disjoint from
    /// it. Returns whether it ran.
    ///
    /// # Safety
    /// tensor.rs's module invariant for both tensors.
    unsafe fn fast_path(&self, x: &TensorArg, out: &TensorArg, v: &Values) -> bool {
        let same = x.ptr == out.ptr && x.offset == out.offset && x.strides == out.strides;
        if x.dtype != out.dtype
            || !x.is_contiguous()
            || !out.is_contiguous()
            || (!same && may_overlap(x, out))
        {
            return false;
        }
        let n = x.numel();
        let f = self.f32;
        // SAFETY: both views are contiguous, so their `n` elements start at
        // `offset` and are valid by the invariant; they are the same memory
        // or disjoint, as `par::map` requires.
        unsafe {
            match x.dtype {
                DType::F32 => {
                    let s = x.ptr.cast::<f32>().offset(x.offset as isize);
                    let d = out.ptr.cast::<f32>().offset(out.offset as isize);
                    par::map(s, d, n, |e| f(e, v));
                }
                DType::F16 => {
                    let s = x.ptr.cast::<f16>().offset(x.offset as isize);
                    let d = out.ptr.cast::<f16>().offset(out.offset as isize);
                    par::map(s, d, n, |e| f16::from_f32(f(e.to_f32(), v)));
                }
                DType::BF16 => {
                    let s = x.ptr.cast::<bf16>().offset(x.offset as isize);
                    let d = out.ptr.cast::<bf16>().offset(out.offset as isize);
                    par::map(s, d, n, |e| bf16::from_f32(f(e.to_f32(), v)));
                }
                _ => return false,
            }
        }
        true
    }
}

/// The error function (for GELU), to about 1e-14: its Maclaurin series
/// below 3, the continued fraction of erfc from 3 to 6, ±1 beyond.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        let x2 = a * a;
        let (mut term, mut sum, mut n) = (a, a, 0.0f64);
        loop {
            n += 1.0;
            term *= -x2 / n;
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a < 6.0 {
        // erfc(a) = exp(-a²)/√π / (a + (1/2)/(a + (2/2)/(a + (3/2)/(a + ...))))
        let mut f = a;
        for k in (1..=80).rev() {
            f = a + (f64::from(k) / 2.0) / f;
        }
        1.0 - (-a * a).exp() * std::f64::consts::FRAC_2_SQRT_PI / 2.0 / f
    } else {
        1.0
    };
    r.copysign(x)
}

/// GELU, exact (`x·Φ(x)` with the error function).
fn gelu_erf(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// GELU, tanh approximation.
fn gelu_tanh(x: f64) -> f64 {
    const K: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)
    0.5 * x * (1.0 + (K * (x + 0.044_715 * x * x * x)).tanh())
}

/// `max(x, 0)`, NaN kept.
fn relu<T: PartialOrd + Default + Copy>(x: T) -> T {
    if x < T::default() { T::default() } else { x }
}

/// Clamp as CANN documents it, `max(min(x, hi), lo)` over the bounds
/// present (so `lo` wins when `lo > hi`), NaN kept.
fn clamp_f(x: f64, v: &Values) -> f64 {
    let mut y = x;
    if v.has[1] && y > v.f[1] {
        y = v.f[1];
    }
    if v.has[0] && y < v.f[0] {
        y = v.f[0];
    }
    y
}

fn clamp_i(x: i64, v: &Values) -> i64 {
    let mut y = x;
    if v.has[1] {
        y = y.min(v.i[1]);
    }
    if v.has[0] {
        y = y.max(v.i[0]);
    }
    y
}

/// Declares the table: one `pub const` [`Unary`] per operator. The float
/// body is written once in f64 (FLOAT, FLOAT16 and BF16 elements run it on
/// their value widened, and round once on store); `int [none]` marks a
/// float operator.
macro_rules! unary_ops {
    ($(
        $(#[$doc:meta])*
        $konst:ident = $name:literal, dtypes $dtypes:expr, out $out:ident, params $params:expr,
        float |$x:ident, $v:ident| $float:expr, int [$($int:tt)*];
    )*) => {$(
        $(#[$doc])*
        pub const $konst: Unary = Unary {
            name: $name,
            inplace: false,
            dtypes: $dtypes,
            out: OutDtype::$out,
            params: $params,
            f32: {
                #[allow(unused_variables)]
                fn f($x: f32, $v: &Values) -> f32 {
                    let $x = f64::from($x);
                    ($float) as f32
                }
                f
            },
            f64: {
                #[allow(unused_variables)]
                fn f($x: f64, $v: &Values) -> f64 {
                    $float
                }
                f
            },
            int: int_fn!($($int)*),
        };
    )*};
}

/// The integer function of a table entry.
macro_rules! int_fn {
    (none) => {
        None
    };
    (|$i:ident, $v:ident| $e:expr) => {
        Some({
            #[allow(unused_variables)]
            fn f($i: i64, $v: &Values) -> i64 {
                $e
            }
            f as IntFn
        })
    };
}

/// An in-place form of a table entry: the same operator under its own name,
/// with `selfRef` as both tensors.
const fn inplace(op: Unary, name: &'static str) -> Unary {
    Unary {
        name,
        inplace: true,
        ..op
    }
}

use DType::*;

/// Every float dtype.
const FLOATS: &[DType] = &[F32, F16, BF16, F64];
/// FLOAT, FLOAT16, BF16.
const FLOATS3: &[DType] = &[F32, F16, BF16];
/// Every dtype the float operators Log, Sqrt, Sin and Cos take.
const REAL: &[DType] = &[F32, F16, BF16, F64, I8, I16, I32, I64, U8, Bool];
/// Clamp's dtypes.
const CLAMP_TYPES: &[DType] = &[F32, F16, BF16, F64, I8, U8, I16, I32, I64];

unary_ops! {
    /// `aclnnAbs`: `out = |self|` (integers wrap: |-128| is -128 in INT8;
    /// bool stays as it is). `out` has `self`'s dtype.
    ABS = "aclnnAbs", dtypes &[F32, F16, F64, BF16, I8, I16, I32, I64, U8, Bool], out Same,
        params ParamRule::None,
        float |x, v| x.abs(), int [|i, v| i.wrapping_abs()];

    /// `aclnnNeg`: `out = -self` (integers wrap: -(-128) is -128 in INT8).
    /// `out` takes any dtype `self` casts to.
    NEG = "aclnnNeg", dtypes &[F32, F16, BF16, F64, I8, I32, I64], out Castable,
        params ParamRule::None,
        float |x, v| -x, int [|i, v| i.wrapping_neg()];

    /// `aclnnExp`: `out = e^self`. INT64 and BOOL inputs need a float `out`.
    EXP = "aclnnExp", dtypes &[F32, F16, BF16, F64, I64, Bool], out FloatCastable,
        params ParamRule::None,
        float |x, v| x.exp(), int [none];

    /// `aclnnLog`: the natural logarithm (NaN below 0, -inf at 0).
    LOG = "aclnnLog", dtypes REAL, out FloatCastable, params ParamRule::None,
        float |x, v| x.ln(), int [none];

    /// `aclnnSqrt`: the square root (NaN below 0).
    SQRT = "aclnnSqrt", dtypes REAL, out FloatCastable, params ParamRule::None,
        float |x, v| x.sqrt(), int [none];

    /// `aclnnSin`.
    SIN = "aclnnSin", dtypes REAL, out FloatCastable, params ParamRule::None,
        float |x, v| x.sin(), int [none];

    /// `aclnnCos`.
    COS = "aclnnCos", dtypes REAL, out FloatCastable, params ParamRule::None,
        float |x, v| x.cos(), int [none];

    /// `aclnnRelu`: `max(self, 0)` (NaN stays NaN).
    RELU = "aclnnRelu", dtypes &[F32, F16, BF16, F64, I8, I32, I64, U8], out Same,
        params ParamRule::None,
        float |x, v| relu(x), int [|i, v| relu(i)];

    /// `aclnnSigmoid`: `1 / (1 + e^-self)`.
    SIGMOID = "aclnnSigmoid", dtypes FLOATS, out Same, params ParamRule::None,
        float |x, v| 1.0 / (1.0 + (-x).exp()), int [none];

    /// `aclnnTanh`.
    TANH = "aclnnTanh", dtypes FLOATS, out Same, params ParamRule::None,
        float |x, v| x.tanh(), int [none];

    /// `aclnnGelu`: `self · Φ(self)` with the error function.
    GELU = "aclnnGelu", dtypes FLOATS3, out Same, params ParamRule::None,
        float |x, v| gelu_erf(x), int [none];

    /// `aclnnGeluV2`: GELU with `approximate` 0 (none: the error function)
    /// or 1 (tanh: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`).
    GELU_V2 = "aclnnGeluV2", dtypes FLOATS3, out Same,
        params ParamRule::Mode("approximate", &[0, 1]),
        float |x, v| if v.mode == 1 { gelu_tanh(x) } else { gelu_erf(x) }, int [none];

    /// `aclnnSilu`: `self · sigmoid(self)`.
    SILU = "aclnnSilu", dtypes FLOATS3, out Same, params ParamRule::None,
        float |x, v| x / (1.0 + (-x).exp()), int [none];

    /// `aclnnElu`: `scale·x` above 0, `alpha·scale·(e^(x·inputScale) - 1)`
    /// at or below 0.
    ELU = "aclnnElu", dtypes FLOATS, out Same,
        params ParamRule::Float(&["alpha", "scale", "inputScale"]),
        float |x, v| if x > 0.0 { v.f[1] * x } else if x <= 0.0 {
            v.f[0] * v.f[1] * ((x * v.f[2]).exp() - 1.0)
        } else { x }, int [none];

    /// `aclnnLeakyRelu`: `max(0, x) + negativeSlope·min(0, x)`.
    LEAKY_RELU = "aclnnLeakyRelu", dtypes FLOATS, out Same,
        params ParamRule::Float(&["negativeSlope"]),
        float |x, v| if x < 0.0 { v.f[0] * x } else { x }, int [none];

    /// `aclnnSoftplus`: `ln(1 + e^(beta·x)) / beta`, or `x` where
    /// `beta·x > threshold`.
    SOFTPLUS = "aclnnSoftplus", dtypes FLOATS3, out Same,
        params ParamRule::Float(&["beta", "threshold"]),
        float |x, v| if x * v.f[0] > v.f[1] { x } else {
            (x * v.f[0]).exp().ln_1p() / v.f[0]
        }, int [none];

    /// `aclnnHardsigmoid`: `min(max(x/6 + 1/2, 0), 1)`.
    HARDSIGMOID = "aclnnHardsigmoid", dtypes FLOATS3, out Same, params ParamRule::None,
        float |x, v| if x.is_nan() { x } else { (x / 6.0 + 0.5).clamp(0.0, 1.0) }, int [none];

    /// `aclnnHardswish`: `x · min(max(x + 3, 0), 6) / 6`.
    HARDSWISH = "aclnnHardswish", dtypes FLOATS3, out Same, params ParamRule::None,
        float |x, v| if x.is_nan() { x } else { x * (x + 3.0).clamp(0.0, 6.0) / 6.0 }, int [none];

    /// `aclnnClamp`: `max(min(x, clipValueMax), clipValueMin)` over the
    /// bounds given (NULL: no bound; not both NULL).
    CLAMP = "aclnnClamp", dtypes CLAMP_TYPES, out Same,
        params ParamRule::OptToSelf(&["clipValueMin", "clipValueMax"]),
        float |x, v| clamp_f(x, v), int [|i, v| clamp_i(i, v)];

    /// `aclnnClampMin`: `max(x, clipValueMin)`.
    CLAMP_MIN = "aclnnClampMin", dtypes CLAMP_TYPES, out Same,
        params ParamRule::ToSelf(&["clipValueMin"]),
        float |x, v| if x < v.f[0] { v.f[0] } else { x }, int [|i, v| i.max(v.i[0])];

    /// `aclnnClampMax`: `min(x, clipValueMax)`.
    CLAMP_MAX = "aclnnClampMax", dtypes CLAMP_TYPES, out Same,
        params ParamRule::ToSelf(&["clipValueMax"]),
        float |x, v| if x > v.f[0] { v.f[0] } else { x }, int [|i, v| i.min(v.i[0])];

    /// `aclnnLogicalNot`: 1 where `self` is zero (false), else 0 (NaN is
    /// non-zero), stored in `out`'s dtype.
    LOGICAL_NOT = "aclnnLogicalNot", dtypes REAL, out Any, params ParamRule::None,
        float |x, v| if x == 0.0 { 1.0 } else { 0.0 }, int [|i, v| i64::from(i == 0)];

    /// `aclnnThreshold`: `x` where `x > threshold`, else `value`.
    THRESHOLD = "aclnnThreshold", dtypes &[F32, F16, BF16, I8, U8, I16, I32, I64], out Same,
        params ParamRule::ToSelf(&["threshold", "value"]),
        float |x, v| if x <= v.f[0] { v.f[1] } else { x },
        int [|i, v| if i > v.i[0] { i } else { v.i[1] }];
}

fn sign_f32(x: f32, _: &Values) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        // ±0 and NaN.
        0.0
    }
}

fn sign_f64(x: f64, _: &Values) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

fn sign_int(i: i64, _: &Values) -> i64 {
    i.signum()
}

/// `aclnnSign`: -1, 0 or 1 (bool stays as it is). NaN gives 0 on FLOAT,
/// FLOAT16 and BF16 and NaN on DOUBLE (see docs/mock.md).
pub const SIGN: Unary = Unary {
    name: "aclnnSign",
    inplace: false,
    dtypes: &[F32, F16, BF16, F64, I32, I64, Bool],
    out: OutDtype::Same,
    params: ParamRule::None,
    f32: sign_f32,
    f64: sign_f64,
    int: Some(sign_int),
};

/// `aclnnInplaceNeg`.
pub const INPLACE_NEG: Unary = inplace(NEG, "aclnnInplaceNeg");
/// `aclnnInplaceExp`.
pub const INPLACE_EXP: Unary = inplace(EXP, "aclnnInplaceExp");
/// `aclnnInplaceSin`.
pub const INPLACE_SIN: Unary = inplace(SIN, "aclnnInplaceSin");
/// `aclnnInplaceCos`.
pub const INPLACE_COS: Unary = inplace(COS, "aclnnInplaceCos");
/// `aclnnInplaceElu`.
pub const INPLACE_ELU: Unary = inplace(ELU, "aclnnInplaceElu");
/// `aclnnInplaceLeakyRelu`.
pub const INPLACE_LEAKY_RELU: Unary = inplace(LEAKY_RELU, "aclnnInplaceLeakyRelu");
/// `aclnnInplaceThreshold`.
pub const INPLACE_THRESHOLD: Unary = inplace(THRESHOLD, "aclnnInplaceThreshold");
/// `aclnnInplaceClampMax`.
pub const INPLACE_CLAMP_MAX: Unary = inplace(CLAMP_MAX, "aclnnInplaceClampMax");
/// `aclnnInplaceLog`.
pub const INPLACE_LOG: Unary = inplace(LOG, "aclnnInplaceLog");
/// `aclnnInplaceSqrt`.
pub const INPLACE_SQRT: Unary = inplace(SQRT, "aclnnInplaceSqrt");
/// `aclnnInplaceRelu`.
pub const INPLACE_RELU: Unary = inplace(RELU, "aclnnInplaceRelu");
/// `aclnnInplaceSigmoid`.
pub const INPLACE_SIGMOID: Unary = inplace(SIGMOID, "aclnnInplaceSigmoid");
/// `aclnnInplaceTanh`.
pub const INPLACE_TANH: Unary = inplace(TANH, "aclnnInplaceTanh");

/// The kernel entry points of one operator of the table, as the mock's
/// registrations take them (`check`, `run`), over its argument struct.
macro_rules! entry_points {
    ($($module:ident => $konst:ident, $args:ty);* $(;)?) => {$(
        #[doc = concat!("The kernel of [`", stringify!($konst), "`].")]
        pub mod $module {
            use super::*;

            /// Phase-one check.
            pub fn check(args: &$args) -> Result<(), KernelError> {
                let (x, out) = args.tensors();
                $konst.check(x, out, &args.params())
            }

            /// Phase-two computation.
            ///
            /// # Safety
            /// tensor.rs's module invariant for both tensors of `args`.
            pub unsafe fn run(args: &$args) -> Result<(), KernelError> {
                let (x, out) = args.tensors();
                // SAFETY: forwarded invariant.
                unsafe { $konst.run(x, out, &args.params()) }
            }
        }
    )*};
}

entry_points! {
    abs => ABS, UnaryArgs;
    neg => NEG, UnaryArgs;
    inplace_neg => INPLACE_NEG, UnaryArgs;
    exp => EXP, UnaryArgs;
    inplace_exp => INPLACE_EXP, UnaryArgs;
    log => LOG, UnaryArgs;
    sqrt => SQRT, UnaryArgs;
    sin => SIN, UnaryArgs;
    inplace_sin => INPLACE_SIN, UnaryArgs;
    cos => COS, UnaryArgs;
    inplace_cos => INPLACE_COS, UnaryArgs;
    relu => RELU, UnaryArgs;
    sigmoid => SIGMOID, UnaryArgs;
    tanh => TANH, UnaryArgs;
    gelu => GELU, UnaryArgs;
    gelu_v2 => GELU_V2, UnaryModeArgs;
    silu => SILU, UnaryArgs;
    sign => SIGN, UnaryArgs;
    elu => ELU, UnaryScalar3Args;
    inplace_elu => INPLACE_ELU, UnaryScalar3Args;
    leaky_relu => LEAKY_RELU, UnaryScalarArgs;
    inplace_leaky_relu => INPLACE_LEAKY_RELU, UnaryScalarArgs;
    softplus => SOFTPLUS, UnaryScalar2Args;
    hardsigmoid => HARDSIGMOID, UnaryArgs;
    hardswish => HARDSWISH, UnaryArgs;
    clamp => CLAMP, ClampArgs;
    clamp_min => CLAMP_MIN, UnaryScalarArgs;
    clamp_max => CLAMP_MAX, UnaryScalarArgs;
    inplace_clamp_max => INPLACE_CLAMP_MAX, UnaryScalarArgs;
    logical_not => LOGICAL_NOT, UnaryArgs;
    threshold => THRESHOLD, UnaryScalar2Args;
    inplace_threshold => INPLACE_THRESHOLD, UnaryScalar2Args;
    inplace_log => INPLACE_LOG, UnaryArgs;
    inplace_sqrt => INPLACE_SQRT, UnaryArgs;
    inplace_relu => INPLACE_RELU, UnaryArgs;
    inplace_sigmoid => INPLACE_SIGMOID, UnaryArgs;
    inplace_tanh => INPLACE_TANH, UnaryArgs;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, round};

    fn none() -> Params {
        Params::default()
    }

    fn scalars(s: &[Option<Scalar>]) -> Params {
        let mut p = Params::default();
        p.scalars[..s.len()].copy_from_slice(s);
        p
    }

    fn f(v: f64) -> Option<Scalar> {
        Some(Scalar::F32(v as f32))
    }

    fn erf_ref(x: f64) -> f64 {
        // Independent reference: composite Simpson on 2/√π ∫₀ˣ e^(-t²) dt.
        let n = 2000;
        let h = x / f64::from(n);
        let g = |t: f64| (-t * t).exp();
        let mut s = g(0.0) + g(x);
        for k in 1..n {
            s += g(f64::from(k) * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_matches_known_values_and_quadrature() {
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
            (-1.0, -0.842_700_792_949_714_9),
        ] {
            assert!((erf(x) - want).abs() < 1e-13, "erf({x}) = {}", erf(x));
        }
        for k in -60..=60 {
            let x = f64::from(k) * 0.1;
            assert!((erf(x) - erf_ref(x)).abs() < 1e-11, "erf({x})");
        }
        assert_eq!(erf(7.0), 1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    /// One float case: operator, parameters, reference in f64.
    type FloatCase = (Unary, Params, fn(f64) -> f64);

    fn float_cases() -> Vec<FloatCase> {
        vec![
            (EXP, none(), f64::exp),
            (LOG, none(), f64::ln),
            (SQRT, none(), f64::sqrt),
            (SIN, none(), f64::sin),
            (COS, none(), f64::cos),
            (RELU, none(), |x| if x > 0.0 { x } else { 0.0 }),
            (SIGMOID, none(), |x| 1.0 / (1.0 + (-x).exp())),
            (TANH, none(), f64::tanh),
            (GELU, none(), |x| x * 0.5 * (1.0 + erf_ref(x / 2f64.sqrt()))),
            (GELU_V2, Params { mode: 0, ..none() }, |x| {
                x * 0.5 * (1.0 + erf_ref(x / 2f64.sqrt()))
            }),
            (GELU_V2, Params { mode: 1, ..none() }, |x| {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
            }),
            (SILU, none(), |x| x / (1.0 + (-x).exp())),
            (SIGN, none(), |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }),
            (ELU, scalars(&[f(1.5), f(2.0), f(0.5)]), |x| {
                if x > 0.0 {
                    2.0 * x
                } else {
                    1.5 * 2.0 * ((0.5 * x).exp() - 1.0)
                }
            }),
            (LEAKY_RELU, scalars(&[f(0.125)]), |x| {
                x.max(0.0) + 0.125 * x.min(0.0)
            }),
            (SOFTPLUS, scalars(&[f(2.0), f(1.0)]), |x| {
                if 2.0 * x > 1.0 {
                    x
                } else {
                    (1.0 + (2.0 * x).exp()).ln() / 2.0
                }
            }),
            (HARDSIGMOID, none(), |x| {
                if x <= -3.0 {
                    0.0
                } else if x >= 3.0 {
                    1.0
                } else {
                    x / 6.0 + 0.5
                }
            }),
            (HARDSWISH, none(), |x| {
                if x <= -3.0 {
                    0.0
                } else if x >= 3.0 {
                    x
                } else {
                    x * (x + 3.0) / 6.0
                }
            }),
            (CLAMP, scalars(&[f(-1.0), f(1.5)]), |x| x.clamp(-1.0, 1.5)),
            (CLAMP, scalars(&[None, f(0.5)]), |x| x.min(0.5)),
            (CLAMP, scalars(&[f(0.25), None]), |x| x.max(0.25)),
            (CLAMP_MIN, scalars(&[f(-0.5)]), |x| x.max(-0.5)),
            (CLAMP_MAX, scalars(&[f(0.75)]), |x| x.min(0.75)),
            (LOGICAL_NOT, none(), |x| if x == 0.0 { 1.0 } else { 0.0 }),
            (THRESHOLD, scalars(&[f(0.5), f(-7.0)]), |x| {
                if x > 0.5 { x } else { -7.0 }
            }),
        ]
    }

    /// 24 inputs across [-4.2, 4.6] including 0 (and values past ±3).
    fn grid() -> Vec<f32> {
        (0..24)
            .map(|i| (i as f32 - 11.0) * 0.4 - 0.2 * (i % 2) as f32)
            .collect()
    }

    fn tolerance(d: DType) -> f64 {
        match d {
            DType::F16 => 2e-3,
            DType::BF16 => 1e-2,
            DType::F64 => 1e-12,
            _ => 2e-6,
        }
    }

    #[test]
    fn every_float_entry_matches_its_reference_on_every_float_dtype_and_a_transposed_view() {
        for (op, p, reference) in float_cases() {
            for &d in op.dtypes.iter().filter(|d| d.is_float()) {
                let mut vals = grid();
                vals[11] = 0.0;
                let x = Buf::from_f32(d, &vals);
                let stored = if d == DType::F64 {
                    // SAFETY: 24 f64 elements.
                    unsafe { read_f64(&x.flat()) }
                } else {
                    x.to_f64()
                };
                // self: the [6, 4] transpose of the [4, 6] storage.
                let xv = x.view(&[6, 4], &[1, 6], 0);
                let out = Buf::zeros(d, 24);
                // SAFETY: both views cover their 24-element buffers.
                unsafe { op.run(&xv, &out.tensor(&[6, 4]), &p) }
                    .unwrap_or_else(|e| panic!("{} {d:?}: {e}", op.name));
                // SAFETY: 24 elements of `d`.
                let got = unsafe { read_f64(&out.flat()) };
                for (i, &g) in got.iter().enumerate() {
                    let src = (i % 4) * 6 + i / 4;
                    let want = reference(stored[src]);
                    let tol = tolerance(d) * (1.0 + want.abs());
                    assert!(
                        g == want || (g - want).abs() <= tol || (g.is_nan() && want.is_nan()),
                        "{} {d:?} at {}: got {g}, want {want}",
                        op.name,
                        stored[src]
                    );
                }
            }
        }
    }

    /// One integer case: operator, parameters, reference.
    type IntCase = (Unary, Params, fn(i64) -> i64);

    #[test]
    fn integer_entries_are_exact_on_every_integer_dtype() {
        let i = |v: i64| Some(Scalar::I64(v));
        let cases: Vec<IntCase> = vec![
            (ABS, none(), |x| x.abs()),
            (NEG, none(), |x| -x),
            (RELU, none(), |x| x.max(0)),
            (SIGN, none(), i64::signum),
            (CLAMP, scalars(&[i(-3), i(5)]), |x| x.clamp(-3, 5)),
            (CLAMP, scalars(&[None, i(2)]), |x| x.min(2)),
            (CLAMP_MIN, scalars(&[i(1)]), |x| x.max(1)),
            (CLAMP_MAX, scalars(&[i(4)]), |x| x.min(4)),
            (THRESHOLD, scalars(&[i(2), i(-1)]), |x| {
                if x > 2 { x } else { -1 }
            }),
            (LOGICAL_NOT, none(), |x| i64::from(x == 0)),
        ];
        for (op, p, reference) in cases {
            for &d in op
                .dtypes
                .iter()
                .filter(|d| !d.is_float() && **d != DType::Bool)
            {
                let vals: Vec<i64> = if d == DType::U8 {
                    (0..12).collect()
                } else {
                    (-6..6).collect()
                };
                let x = Buf::from_i64(d, &vals);
                let out = Buf::zeros(d, 12);
                let xv = x.view(&[4, 3], &[1, 4], 0);
                // SAFETY: both views cover 12 elements of their buffers.
                unsafe { op.run(&xv, &out.tensor(&[4, 3]), &p) }
                    .unwrap_or_else(|e| panic!("{} {d:?}: {e}", op.name));
                let want: Vec<i64> = (0..12)
                    .map(|k| reference(vals[(k % 3) * 4 + k / 3]))
                    .collect();
                // The reference truncated to the dtype's width, as stored.
                let want = Buf::from_i64(d, &want).to_i64();
                assert_eq!(out.to_i64(), want, "{} {d:?}", op.name);
            }
        }
        // Bool: Abs and Sign keep it, LogicalNot flips it.
        let b = Buf::from_i64(DType::Bool, &[0, 1, 1]);
        for (op, want) in [
            (ABS, [0, 1, 1]),
            (SIGN, [0, 1, 1]),
            (LOGICAL_NOT, [1, 0, 0]),
        ] {
            let o = Buf::zeros(DType::Bool, 3);
            // SAFETY: three bool bytes each.
            unsafe { op.run(&b.tensor(&[3]), &o.tensor(&[3]), &none()) }.unwrap();
            assert_eq!(o.to_i64(), want, "{}", op.name);
        }
        // INT8 wraps.
        let x = Buf::from_i64(DType::I8, &[-128]);
        let o = Buf::zeros(DType::I8, 1);
        // SAFETY: one element each.
        unsafe { ABS.run(&x.tensor(&[1]), &o.tensor(&[1]), &none()) }.unwrap();
        assert_eq!(o.to_i64(), [-128]);
    }

    #[test]
    fn float_operators_on_every_integer_dtype_they_list() {
        for (op, reference) in [
            (EXP, f64::exp as fn(f64) -> f64),
            (LOG, f64::ln),
            (SQRT, f64::sqrt),
            (SIN, f64::sin),
            (COS, f64::cos),
        ] {
            for &d in op.dtypes.iter().filter(|d| !d.is_float()) {
                let vals: Vec<i64> = if d == DType::Bool {
                    vec![0, 1, 1]
                } else {
                    vec![1, 4, 9]
                };
                let x = Buf::from_i64(d, &vals);
                for od in [DType::F32, DType::F16, DType::F64] {
                    let o = Buf::zeros(od, 3);
                    // SAFETY: three elements each.
                    unsafe { op.run(&x.tensor(&[3]), &o.tensor(&[3]), &none()) }
                        .unwrap_or_else(|e| panic!("{} {d:?} -> {od:?}: {e}", op.name));
                    // SAFETY: three elements of `od`.
                    let got = unsafe { read_f64(&o.flat()) };
                    for (k, &g) in got.iter().enumerate() {
                        let w = reference(vals[k] as f64);
                        assert!(
                            g == w || (g - w).abs() <= tolerance(od) * (1.0 + w.abs()),
                            "{} {d:?} -> {od:?}: got {g}, want {w}",
                            op.name
                        );
                    }
                }
                // An integer out is refused: the result is a float.
                let io = Buf::zeros(d, 3);
                let e = op
                    .check(&x.tensor(&[3]), &io.tensor(&[3]), &none())
                    .unwrap_err();
                assert!(e.message.contains("floating type"), "{}", e.message);
            }
        }
    }

    #[test]
    fn float_operators_take_integer_and_bool_inputs_into_float_outputs() {
        let x = Buf::from_i64(DType::I64, &[0, 1, 2, -1]);
        for (od, op, reference) in [
            (DType::F32, EXP, f64::exp as fn(f64) -> f64),
            (DType::F16, EXP, f64::exp),
            (DType::F64, SIN, f64::sin),
            (DType::BF16, COS, f64::cos),
        ] {
            let o = Buf::zeros(od, 4);
            // SAFETY: four elements each.
            unsafe { op.run(&x.tensor(&[4]), &o.tensor(&[4]), &none()) }.unwrap();
            // SAFETY: four elements of `od`.
            let got = unsafe { read_f64(&o.flat()) };
            for (k, &g) in got.iter().enumerate() {
                let w = reference([0.0, 1.0, 2.0, -1.0][k]);
                assert!(
                    (g - w).abs() <= tolerance(od) * (1.0 + w.abs()),
                    "{} {od:?}",
                    op.name
                );
            }
        }
        let b = Buf::from_i64(DType::Bool, &[0, 1]);
        let o = Buf::zeros(DType::F32, 2);
        // SAFETY: two elements each.
        unsafe { EXP.run(&b.tensor(&[2]), &o.tensor(&[2]), &none()) }.unwrap();
        assert_eq!(o.to_f32(), [1.0, std::f32::consts::E]);
        let u = Buf::from_i64(DType::U8, &[4, 9]);
        // SAFETY: two elements each.
        unsafe { SQRT.run(&u.tensor(&[2]), &o.tensor(&[2]), &none()) }.unwrap();
        assert_eq!(o.to_f32(), [2.0, 3.0]);
        // A FLOAT16 input into a FLOAT out computes in FLOAT16 (rounded there).
        let h = Buf::from_f32(DType::F16, &[0.3]);
        // SAFETY: one element each.
        unsafe { EXP.run(&h.tensor(&[1]), &o.tensor(&[1]), &none()) }.unwrap();
        assert_eq!(
            o.to_f32()[0],
            round(DType::F16, round(DType::F16, 0.3).exp())
        );
    }

    #[test]
    fn nan_inf_and_bound_rules() {
        let nan = f32::NAN;
        let x = Buf::from_f32(DType::F32, &[nan, f32::INFINITY, -0.0, -2.0]);
        let run = |op: Unary, p: Params, d: DType| {
            let src = Buf::from_f32(d, &x.to_f32());
            let o = Buf::zeros(d, 4);
            // SAFETY: four elements each.
            unsafe { op.run(&src.tensor(&[4]), &o.tensor(&[4]), &p) }.unwrap();
            // SAFETY: four elements of `d`.
            unsafe { read_f64(&o.flat()) }
        };
        // Sign: NaN gives 0 on FLOAT, NaN on DOUBLE.
        assert_eq!(run(SIGN, none(), DType::F32), [0.0, 1.0, 0.0, -1.0]);
        assert!(run(SIGN, none(), DType::F64)[0].is_nan());
        assert!(run(SIGN, none(), DType::BF16)[0] == 0.0);
        // Relu, Clamp and LeakyRelu keep NaN.
        assert!(run(RELU, none(), DType::F32)[0].is_nan());
        let c = run(CLAMP, scalars(&[f(-1.0), f(1.0)]), DType::F16);
        assert!(c[0].is_nan());
        assert_eq!(&c[1..], [1.0, 0.0, -1.0]);
        assert!(run(LEAKY_RELU, scalars(&[f(0.5)]), DType::F32)[0].is_nan());
        // Clamp with min > max gives min (CANN's formula max(min(x, max), min)).
        let c = run(CLAMP, scalars(&[f(2.0), f(1.0)]), DType::F32);
        assert_eq!(&c[1..], [2.0, 2.0, 2.0]);
        // LogicalNot: NaN is true, so its negation is 0; into an INT32 out.
        let o = Buf::zeros(DType::I32, 4);
        // SAFETY: four elements each.
        unsafe { LOGICAL_NOT.run(&x.tensor(&[4]), &o.tensor(&[4]), &none()) }.unwrap();
        assert_eq!(o.to_i64(), [0, 0, 1, 0]);
        // Exp of -inf, Log of 0 and of a negative.
        let y = Buf::from_f32(DType::F32, &[f32::NEG_INFINITY, 0.0, -1.0]);
        let o = Buf::zeros(DType::F32, 3);
        // SAFETY: three elements each.
        unsafe { LOG.run(&y.tensor(&[3]), &o.tensor(&[3]), &none()) }.unwrap();
        let l = o.to_f32();
        assert!(l[0].is_nan() && l[1] == f32::NEG_INFINITY && l[2].is_nan());
    }

    #[test]
    fn large_contiguous_tensors_take_the_parallel_path_in_and_out_of_place() {
        let n = par::PAR_MIN * 3 + 5;
        for d in [DType::F32, DType::F16, DType::BF16] {
            let vals: Vec<f32> = (0..n)
                .map(|i| ((i % 1000) as f32 - 500.0) / 100.0)
                .collect();
            let x = Buf::from_f32(d, &vals);
            let stored = x.to_f64();
            let out = Buf::zeros(d, n);
            // SAFETY: both views cover `n` elements.
            unsafe { SILU.run(&x.tensor(&[n as i64]), &out.tensor(&[n as i64]), &none()) }.unwrap();
            let got = out.to_f64();
            for i in (0..n).step_by(97) {
                let w = stored[i] / (1.0 + (-stored[i]).exp());
                assert!(
                    (got[i] - w).abs() <= tolerance(d) * (1.0 + w.abs()),
                    "{d:?} {i}"
                );
            }
            // In place (the aclnnInplace forms).
            let t = x.tensor(&[n as i64]);
            // SAFETY: the same view as self and out.
            unsafe { INPLACE_EXP.run(&t, &t, &none()) }.unwrap();
            let got = x.to_f64();
            for i in (0..n).step_by(89) {
                let w = stored[i].exp();
                assert!(
                    (got[i] - w).abs() <= tolerance(d) * (1.0 + w.abs()),
                    "{d:?} {i}"
                );
            }
        }
        // Overlapping but not identical views fall back to the gathering path:
        // out is self shifted by one element.
        let vals: Vec<f32> = (0..(n + 1)).map(|i| (i % 7) as f32).collect();
        let b = Buf::from_f32(DType::F32, &vals);
        let src = b.view(&[n as i64], &[1], 0);
        let dst = b.view(&[n as i64], &[1], 1);
        // SAFETY: both views lie inside the n + 1 elements.
        unsafe { ABS.run(&src, &dst, &none()) }.unwrap();
        let got = b.to_f32();
        assert!((0..n).all(|i| got[i + 1] == vals[i]));
    }

    #[test]
    fn zero_size_and_rank_zero() {
        let x = Buf::zeros(DType::F32, 1);
        let o = Buf::zeros(DType::F32, 1);
        // SAFETY: empty views touch nothing.
        unsafe { EXP.run(&x.tensor(&[0, 3]), &o.tensor(&[0, 3]), &none()) }.unwrap();
        assert_eq!(o.to_f32(), [0.0]);
        let x = Buf::from_f32(DType::F16, &[-2.0]);
        let o = Buf::zeros(DType::F16, 1);
        // SAFETY: one element each (rank 0).
        unsafe { HARDSWISH.run(&x.tensor(&[]), &o.tensor(&[]), &none()) }.unwrap();
        assert_eq!(o.to_f32(), [round(DType::F16, -2.0 / 6.0)]);
    }

    #[test]
    fn phase_one_refusals() {
        let fb = Buf::zeros(DType::F32, 8);
        let ib = Buf::zeros(DType::I32, 8);
        let expect = |r: Result<(), KernelError>, code: i32, needle: &str| {
            let e = r.unwrap_err();
            assert_eq!(e.code, code, "{}", e.message);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        };
        let ft = fb.tensor(&[2, 4]);
        let it = ib.tensor(&[2, 4]);
        let ht = TensorArg {
            dtype: DType::F16,
            ..ft.clone()
        };
        expect(
            EXP.check(&ft, &fb.tensor(&[4, 2]), &none()),
            161002,
            "shape of out [4, 2]",
        );
        expect(
            SIGMOID.check(&ft, &ht, &none()),
            161002,
            "must be the same as",
        );
        expect(
            LOG.check(&it, &it, &none()),
            161002,
            "floating type castable",
        );
        expect(INPLACE_EXP.check(&it, &it, &none()), 161002, "selfRef");
        expect(GELU.check(&it, &it, &none()), 161002, "dtype support list");
        expect(
            SIGN.check(
                &TensorArg {
                    dtype: DType::I8,
                    ..it.clone()
                },
                &it,
                &none(),
            ),
            161002,
            "self dtype DT_INT8",
        );
        expect(
            GELU_V2.check(&ft, &ft, &Params { mode: 2, ..none() }),
            161002,
            "approximate must be one of [0, 1]",
        );
        expect(
            CLAMP.check(&ft, &ft, &none()),
            161001,
            "must not all be null",
        );
        expect(
            CLAMP.check(&it, &it, &scalars(&[f(0.5), None])),
            161002,
            "clipValueMin of dtype DT_FLOAT can't be cast",
        );
        expect(
            INPLACE_THRESHOLD.check(&it, &it, &scalars(&[Some(Scalar::I32(1)), f(0.5)])),
            161002,
            "value of dtype DT_FLOAT",
        );
        expect(
            ELU.check(&ft, &ft, &scalars(&[f(1.0), None, f(1.0)])),
            161001,
            "scale",
        );
        let deep = fb.tensor(&[1; 9]);
        expect(RELU.check(&deep, &deep, &none()), 161002, "no more than 8");
        // run repeats the checks before touching memory.
        // SAFETY: the check fails first.
        expect(unsafe { TANH.run(&ft, &ht, &none()) }, 161002, "same as");
        // Accepted: Exp of FLOAT into DOUBLE, LogicalNot of FLOAT into BOOL.
        let dt = TensorArg {
            dtype: DType::F64,
            ..ft.clone()
        };
        EXP.check(&ft, &dt, &none()).unwrap();
        LOGICAL_NOT
            .check(
                &ft,
                &TensorArg {
                    dtype: DType::Bool,
                    ..ft.clone()
                },
                &none(),
            )
            .unwrap();
    }
}
