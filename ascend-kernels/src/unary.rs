//! Elementwise unary operators over one shared kernel: each operator is an
//! entry of the `unary_ops!` table (its name, the dtypes `self` may
//! have, the rule for `out`'s dtype, and the function for float and
//! integer elements).
//!
//! Semantics shared by every entry (CANN's aclnn unary operators): `out`
//! has `self`'s shape; ranks 0 to 8; non-contiguous views are accepted
//! (every element is read before any is written, so `out` may alias
//! `self`, which is how the in-place forms run). Floats compute in f32
//! for FLOAT, FLOAT16 and BF16 (rounded once to `out`'s dtype on store)
//! and in f64 for DOUBLE; integer and bool elements compute in i64 and are
//! truncated to `out`'s width (wrapping, as the device's integer units do).
//! Phase one refuses with `ACLNN_ERR_PARAM_INVALID` (161002): a dtype of
//! `self` outside the entry's list, an `out` dtype the entry's
//! [`OutDtype`] rule refuses, a shape of `out` other than `self`'s, a rank
//! above 8.

use crate::broadcast::{check_dtype, check_view, fmt_shape};
use crate::elementwise::can_cast;
use crate::tensor::{DType, KernelError, TensorArg};

/// Maximum rank of the unary operators.
pub const MAX_RANK: usize = 8;

/// Arguments of every unary operator: `out = op(self)`.
#[derive(Debug, Clone)]
pub struct UnaryArgs {
    /// The input.
    pub self_: TensorArg,
    /// The output (the input itself for the in-place forms).
    pub out: TensorArg,
}

/// What `out`'s dtype may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutDtype {
    /// Exactly `self`'s dtype.
    Same,
    /// Any dtype `self`'s can be cast to (no float into an integer, nothing
    /// but bool into bool).
    Castable,
}

/// One unary operator of the table.
#[derive(Debug, Clone, Copy)]
pub struct Unary {
    /// The aclnn name (`aclnnAbs`).
    pub name: &'static str,
    /// The dtypes `self` may have.
    pub dtypes: &'static [DType],
    /// The rule for `out`'s dtype.
    pub out: OutDtype,
    /// The function on FLOAT, FLOAT16 and BF16 elements (computed in f32).
    pub f32: fn(f32) -> f32,
    /// The function on DOUBLE elements.
    pub f64: fn(f64) -> f64,
    /// The function on integer and bool elements.
    pub int: fn(i64) -> i64,
}

impl Unary {
    /// Phase-one check.
    pub fn check(&self, args: &UnaryArgs) -> Result<(), KernelError> {
        check_view(&args.self_, "self", MAX_RANK)?;
        check_view(&args.out, "out", MAX_RANK)?;
        check_dtype(&args.self_, "self", self.dtypes)?;
        let (from, to) = (args.self_.dtype, args.out.dtype);
        let allowed = match self.out {
            OutDtype::Same => from == to,
            OutDtype::Castable => can_cast(from, to),
        };
        if !allowed {
            return Err(KernelError::invalid(format!(
                "{}: the dtype of out ({}) must be {} the dtype of self ({}).",
                self.name,
                to.name(),
                match self.out {
                    OutDtype::Same => "the same as",
                    OutDtype::Castable => "castable from",
                },
                from.name()
            )));
        }
        if args.out.shape != args.self_.shape {
            return Err(KernelError::invalid(format!(
                "{}: the shape of out {} must be the shape of self {}.",
                self.name,
                fmt_shape(&args.out.shape),
                fmt_shape(&args.self_.shape)
            )));
        }
        Ok(())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for both tensors of `args`.
    pub unsafe fn run(&self, args: &UnaryArgs) -> Result<(), KernelError> {
        self.check(args)?;
        let (x, out) = (&args.self_, &args.out);
        // SAFETY (each arm): forwarded invariant; the whole view is read
        // before any element of `out` is written.
        unsafe {
            match x.dtype {
                DType::F64 => {
                    let v: Vec<f64> = crate::broadcast::read_f64(x)
                        .into_iter()
                        .map(self.f64)
                        .collect();
                    crate::broadcast::write_f64(out, &v);
                }
                d if d.is_float() => {
                    let mut v = x.read_f32();
                    v.iter_mut().for_each(|e| *e = (self.f32)(*e));
                    out.write_f32(&v);
                }
                _ => {
                    let mut v = x.read_i64();
                    v.iter_mut().for_each(|e| *e = (self.int)(*e));
                    out.write_i64(&v);
                }
            }
        }
        Ok(())
    }
}

/// Declares the table: one `pub const` [`Unary`] per operator, the float
/// body written once for f32 and f64.
macro_rules! unary_ops {
    ($(
        $(#[$doc:meta])*
        $konst:ident = $name:literal, dtypes $dtypes:expr, out $out:ident,
        float |$x:ident| $float:expr, int |$i:ident| $int:expr;
    )*) => {$(
        $(#[$doc])*
        pub const $konst: Unary = Unary {
            name: $name,
            dtypes: $dtypes,
            out: OutDtype::$out,
            f32: {
                fn f($x: f32) -> f32 {
                    $float
                }
                f
            },
            f64: {
                fn f($x: f64) -> f64 {
                    $float
                }
                f
            },
            int: {
                fn f($i: i64) -> i64 {
                    $int
                }
                f
            },
        };
    )*};
}

use DType::*;

unary_ops! {
    /// `aclnnAbs`: `out = |self|` (integers wrap: |-128| is -128 in INT8;
    /// bool stays as it is). `out` has `self`'s dtype.
    ABS = "aclnnAbs", dtypes &[F32, F16, F64, BF16, I8, I16, I32, I64, U8, Bool], out Same,
        float |x| x.abs(), int |i| i.wrapping_abs();
}

/// The kernel entry points of one operator of the table, as the mock's
/// registrations take them (`check`, `run`).
macro_rules! entry_points {
    ($($module:ident => $konst:ident),* $(,)?) => {$(
        #[doc = concat!("The kernel of [`", stringify!($konst), "`].")]
        pub mod $module {
            use super::*;

            /// Phase-one check.
            pub fn check(args: &UnaryArgs) -> Result<(), KernelError> {
                $konst.check(args)
            }

            /// Phase-two computation.
            ///
            /// # Safety
            /// tensor.rs's module invariant for both tensors of `args`.
            pub unsafe fn run(args: &UnaryArgs) -> Result<(), KernelError> {
                // SAFETY: forwarded invariant.
                unsafe { $konst.run(args) }
            }
        }
    )*};
}

entry_points! {
    abs => ABS,
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn args_f32(x: &mut [f32], out: &mut [f32], shape: &[i64]) -> UnaryArgs {
        UnaryArgs {
            self_: TensorArg::contiguous(x.as_mut_ptr().cast(), DType::F32, shape),
            out: TensorArg::contiguous(out.as_mut_ptr().cast(), DType::F32, shape),
        }
    }

    #[test]
    fn abs_on_every_float_type_and_a_transposed_view() {
        let mut x = [-1.5f32, 2.0, -0.0, 3.25, -7.0, 8.5];
        let mut out = [0f32; 6];
        let mut a = args_f32(&mut x, &mut out, &[2, 3]);
        // Transposed input view: out[j][i] = |x[i][j]|.
        a.self_.shape = vec![3, 2];
        a.self_.strides = vec![1, 3];
        a.out.shape = vec![3, 2];
        a.out.strides = vec![2, 1];
        // SAFETY: both views address the six elements of their buffers.
        unsafe { abs::run(&a).unwrap() };
        assert_eq!(out, [1.5, 3.25, 2.0, 7.0, 0.0, 8.5]);

        let mut h: Vec<f16> = [-1.0f32, 0.5, -65504.0]
            .iter()
            .map(|&v| f16::from_f32(v))
            .collect();
        let t = TensorArg::contiguous(h.as_mut_ptr().cast(), DType::F16, &[3]);
        // In place, as aclnnInplace forms run.
        let a = UnaryArgs {
            self_: t.clone(),
            out: t,
        };
        // SAFETY: three f16 elements.
        unsafe { abs::run(&a).unwrap() };
        assert_eq!(
            h.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
            [1.0, 0.5, 65504.0]
        );
        let mut b = [bf16::from_f32(-3.0)];
        let mut bo = [bf16::ZERO];
        let a = UnaryArgs {
            self_: TensorArg::contiguous(b.as_mut_ptr().cast(), DType::BF16, &[]),
            out: TensorArg::contiguous(bo.as_mut_ptr().cast(), DType::BF16, &[]),
        };
        // SAFETY: one bf16 element each (rank 0).
        unsafe { abs::run(&a).unwrap() };
        assert_eq!(bo[0].to_f32(), 3.0);
    }

    #[test]
    fn abs_on_integers_wraps_and_keeps_bools() {
        let mut x = [-128i8, -5, 7];
        let mut out = [0i8; 3];
        let a = UnaryArgs {
            self_: TensorArg::contiguous(x.as_mut_ptr().cast(), DType::I8, &[3]),
            out: TensorArg::contiguous(out.as_mut_ptr().cast(), DType::I8, &[3]),
        };
        // SAFETY: three i8 elements each.
        unsafe { abs::run(&a).unwrap() };
        assert_eq!(out, [-128, 5, 7]);
        let mut b = [1u8, 0];
        let mut bo = [7u8, 7];
        let a = UnaryArgs {
            self_: TensorArg::contiguous(b.as_mut_ptr().cast(), DType::Bool, &[2]),
            out: TensorArg::contiguous(bo.as_mut_ptr().cast(), DType::Bool, &[2]),
        };
        // SAFETY: two bool bytes each.
        unsafe { abs::run(&a).unwrap() };
        assert_eq!(bo, [1, 0]);
    }

    #[test]
    fn checks_refuse_dtype_and_shape_mismatches() {
        let mut x = [0f32; 4];
        let mut out = [0f32; 4];
        let mut a = args_f32(&mut x, &mut out, &[4]);
        a.out.shape = vec![2, 2];
        a.out.strides = vec![2, 1];
        let e = abs::check(&a).unwrap_err();
        assert_eq!(e.code, 161002);
        assert!(e.message.contains("shape of out [2, 2]"), "{}", e.message);
        let mut a = args_f32(&mut x, &mut out, &[4]);
        a.out.dtype = DType::F16;
        let e = abs::check(&a).unwrap_err();
        assert!(e.message.contains("must be the same as"), "{}", e.message);
        let mut a = args_f32(&mut x, &mut out, &[1; 9]);
        a.out.shape = vec![1; 9];
        assert_eq!(abs::check(&a).unwrap_err().code, 161002);
    }
}
