//! Fill, copy and cast: aclnnCast, aclnnInplaceCopy,
//! aclnnInplaceFillScalar, aclnnInplaceZero and aclnnArange.
//!
//! One conversion rule serves them all (CANN documents no rounding or
//! overflow rule for Cast; this is torch's on the values it defines, and
//! saturation where C++ leaves a float-to-integer overflow undefined):
//! - float to float: one round-to-nearest-even from the exact value
//!   (FLOAT16/BF16 overflow to ±inf, NaN stays NaN);
//! - float to integer: truncation toward zero, saturated at the type's
//!   range, NaN to 0;
//! - integer to integer: two's complement wrap (300 into INT8 is 44);
//! - integer to float: one rounding of the exact value;
//! - anything to BOOL: non-zero (NaN included) is true; BOOL to anything
//!   is 0 or 1.
//!
//! Views may be strided; a source that overlaps the destination is read
//! whole before anything is written.

use crate::broadcast::{
    broadcast_shapes, check_dtype, check_view, expand, fmt_shape, read_f64, write_f64,
};
use crate::elementwise::SUPPORTED;
use crate::scalar::Scalar;
use crate::tensor::{DType, KernelError, TensorArg};

/// Maximum rank.
pub const MAX_RANK: usize = 8;

/// The kernel dtype of an `aclDataType` value (its public enum value), or
/// `None` for a dtype the kernels do not model.
pub fn dtype_from_acl(v: i32) -> Option<DType> {
    Some(match v {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::I8,
        3 => DType::I32,
        4 => DType::U8,
        6 => DType::I16,
        9 => DType::I64,
        11 => DType::F64,
        12 => DType::Bool,
        27 => DType::BF16,
        _ => return None,
    })
}

/// Writes every element of `src` (already of `dst`'s shape) into `dst`,
/// converted by the module's rule.
///
/// # Safety
/// tensor.rs's module invariant for both views; `dst` writable.
unsafe fn convert_into(src: &TensorArg, dst: &TensorArg) {
    // SAFETY (whole block): forwarded invariant; every element of `src` is
    // read before any element of `dst` is written.
    unsafe {
        if src.dtype.is_float() {
            // f16, bf16 and f32 values are exact in f64; write_f64 rounds
            // once into floats, saturates into integers, tests != 0 for bool.
            let v = read_f64(src);
            write_f64(dst, &v);
        } else if dst.dtype.is_float() {
            let v: Vec<f64> = src.read_i64().into_iter().map(|i| i as f64).collect();
            write_f64(dst, &v);
        } else {
            let mut v = src.read_i64();
            if dst.dtype == DType::Bool {
                v.iter_mut().for_each(|e| *e = i64::from(*e != 0));
            }
            // write_i64 truncates to the width: the two's complement wrap.
            dst.write_i64(&v);
        }
    }
}

/// Writes `n` copies of `value`, converted by the module's rule, into `dst`.
///
/// # Safety
/// tensor.rs's module invariant for `dst`, writable.
unsafe fn fill(dst: &TensorArg, value: Scalar) {
    let n = dst.numel();
    // SAFETY (whole block): forwarded invariant.
    unsafe {
        if value.dtype().is_float() || dst.dtype.is_float() {
            write_f64(dst, &vec![value.as_f64(); n]);
        } else {
            let v = if dst.dtype == DType::Bool {
                i64::from(value.as_i64() != 0)
            } else {
                value.as_i64()
            };
            dst.write_i64(&vec![v; n]);
        }
    }
}

/// aclnnCast: `out = self` converted to `dtype` (which `out` must have).
pub mod cast {
    use super::*;

    /// Arguments of `aclnnCastGetWorkspaceSize` (`dtype` is the raw
    /// `aclDataType` value).
    #[derive(Debug, Clone)]
    pub struct CastArgs {
        pub self_: TensorArg,
        pub dtype: i32,
        pub out: TensorArg,
    }

    /// Phase-one validation.
    pub fn check(args: &CastArgs) -> Result<(), KernelError> {
        check_view(&args.self_, "self", MAX_RANK)?;
        check_view(&args.out, "out", MAX_RANK)?;
        check_dtype(&args.self_, "self", &SUPPORTED)?;
        check_dtype(&args.out, "out", &SUPPORTED)?;
        let Some(d) = dtype_from_acl(args.dtype) else {
            return Err(KernelError::invalid(format!(
                "aclnnCast: dtype {} is not supported (FLOAT, FLOAT16, BF16, DOUBLE, INT8, UINT8, INT16, INT32, INT64, BOOL are).",
                args.dtype
            )));
        };
        if d != args.out.dtype {
            return Err(KernelError::invalid(format!(
                "aclnnCast: the dtype of out ({}) must be dtype ({}).",
                args.out.dtype.name(),
                d.name()
            )));
        }
        if args.out.shape != args.self_.shape {
            return Err(KernelError::invalid(format!(
                "aclnnCast: the shape of out {} must be the shape of self {}.",
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
    pub unsafe fn run(args: &CastArgs) -> Result<(), KernelError> {
        check(args)?;
        // SAFETY: forwarded invariant; same shapes.
        unsafe { convert_into(&args.self_, &args.out) };
        Ok(())
    }
}

/// aclnnInplaceCopy: `selfRef = src`, `src` broadcast to `selfRef`'s shape
/// and converted to its dtype.
pub mod inplace_copy {
    use super::*;

    /// Arguments of `aclnnInplaceCopyGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct InplaceCopyArgs {
        pub self_ref: TensorArg,
        pub src: TensorArg,
    }

    /// Phase-one validation.
    pub fn check(args: &InplaceCopyArgs) -> Result<(), KernelError> {
        check_view(&args.self_ref, "selfRef", MAX_RANK)?;
        check_view(&args.src, "src", MAX_RANK)?;
        check_dtype(&args.self_ref, "selfRef", &SUPPORTED)?;
        check_dtype(&args.src, "src", &SUPPORTED)?;
        if broadcast_shapes(&args.self_ref.shape, &args.src.shape).as_deref()
            != Some(&args.self_ref.shape[..])
        {
            return Err(KernelError::invalid(format!(
                "aclnnInplaceCopy: the shape of src {} must broadcast to the shape of selfRef {}.",
                fmt_shape(&args.src.shape),
                fmt_shape(&args.self_ref.shape)
            )));
        }
        Ok(())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for both tensors of `args`.
    pub unsafe fn run(args: &InplaceCopyArgs) -> Result<(), KernelError> {
        check(args)?;
        let src = expand(&args.src, &args.self_ref.shape);
        // SAFETY: forwarded invariant; the expanded view addresses only the
        // source's elements; convert_into reads it whole first.
        unsafe { convert_into(&src, &args.self_ref) };
        Ok(())
    }
}

/// aclnnInplaceFillScalar: every element of `selfRef` set to `value`.
pub mod inplace_fill_scalar {
    use super::*;

    /// Arguments of `aclnnInplaceFillScalarGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct InplaceFillScalarArgs {
        pub self_ref: TensorArg,
        pub value: Scalar,
    }

    /// Phase-one validation.
    pub fn check(args: &InplaceFillScalarArgs) -> Result<(), KernelError> {
        check_view(&args.self_ref, "selfRef", MAX_RANK)?;
        check_dtype(&args.self_ref, "selfRef", &SUPPORTED)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for `selfRef`.
    pub unsafe fn run(args: &InplaceFillScalarArgs) -> Result<(), KernelError> {
        check(args)?;
        // SAFETY: forwarded invariant.
        unsafe { fill(&args.self_ref, args.value) };
        Ok(())
    }
}

/// aclnnInplaceZero: every element of `selfRef` set to 0.
pub mod inplace_zero {
    use super::*;

    /// Arguments of `aclnnInplaceZeroGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct InplaceZeroArgs {
        pub self_ref: TensorArg,
    }

    /// Phase-one validation.
    pub fn check(args: &InplaceZeroArgs) -> Result<(), KernelError> {
        check_view(&args.self_ref, "selfRef", MAX_RANK)?;
        check_dtype(&args.self_ref, "selfRef", &SUPPORTED)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for `selfRef`.
    pub unsafe fn run(args: &InplaceZeroArgs) -> Result<(), KernelError> {
        check(args)?;
        // SAFETY: forwarded invariant.
        unsafe { fill(&args.self_ref, Scalar::I64(0)) };
        Ok(())
    }
}

/// aclnnArange: `out[i] = start + i * step` over `[start, end)`, a 1-D
/// `out` of `ceil((end - start) / step)` elements.
pub mod arange {
    use super::*;

    const OUT_TYPES: [DType; 6] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I32,
        DType::I64,
    ];

    /// Arguments of `aclnnArangeGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct ArangeArgs {
        pub start: Scalar,
        pub end: Scalar,
        pub step: Scalar,
        pub out: TensorArg,
    }

    /// The number of elements, after the documented checks.
    fn size(args: &ArangeArgs) -> Result<i64, KernelError> {
        let (s, e, st) = (args.start.as_f64(), args.end.as_f64(), args.step.as_f64());
        if [s, e, st].iter().any(|v| !v.is_finite()) {
            return Err(KernelError::invalid(format!(
                "aclnnArange: start ({s}), end ({e}) and step ({st}) must be finite."
            )));
        }
        if st == 0.0 {
            return Err(KernelError::invalid("aclnnArange: step must not be 0."));
        }
        if (st > 0.0 && s >= e) || (st < 0.0 && s <= e) {
            return Err(KernelError::invalid(format!(
                "aclnnArange: start ({s}) must be less than end ({e}) when step ({st}) is positive, greater when it is negative."
            )));
        }
        let n = ((e - s) / st).ceil();
        if n > i64::MAX as f64 / 2.0 {
            return Err(KernelError::invalid(format!(
                "aclnnArange: {n} elements are too many."
            )));
        }
        Ok(n as i64)
    }

    /// Phase-one validation.
    pub fn check(args: &ArangeArgs) -> Result<(), KernelError> {
        check_view(&args.out, "out", MAX_RANK)?;
        check_dtype(&args.out, "out", &OUT_TYPES)?;
        let n = size(args)?;
        if args.out.shape != [n] {
            return Err(KernelError::invalid(format!(
                "aclnnArange: out must be 1-D of {n} elements (ceil((end - start) / step)), but its shape is {}.",
                fmt_shape(&args.out.shape)
            )));
        }
        Ok(())
    }

    /// Phase-two computation: in exact integer arithmetic when `out` and
    /// the three scalars are integers, else in f64 rounded once to `out`.
    ///
    /// # Safety
    /// tensor.rs's module invariant for `out`.
    pub unsafe fn run(args: &ArangeArgs) -> Result<(), KernelError> {
        check(args)?;
        let n = args.out.numel();
        let integral = !args.out.dtype.is_float()
            && [args.start, args.end, args.step]
                .iter()
                .all(|s| !s.dtype().is_float());
        // SAFETY (both arms): forwarded invariant.
        unsafe {
            if integral {
                let (s, st) = (args.start.as_i64(), args.step.as_i64());
                let v: Vec<i64> = (0..n as i64)
                    .map(|i| s.wrapping_add(i.wrapping_mul(st)))
                    .collect();
                args.out.write_i64(&v);
            } else {
                let (s, st) = (args.start.as_f64(), args.step.as_f64());
                let v: Vec<f64> = (0..n).map(|i| s + i as f64 * st).collect();
                write_f64(&args.out, &v);
            }
        }
        Ok(())
    }
}

pub use arange::ArangeArgs;
pub use cast::CastArgs;
pub use inplace_copy::InplaceCopyArgs;
pub use inplace_fill_scalar::InplaceFillScalarArgs;
pub use inplace_zero::InplaceZeroArgs;

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;
    use crate::testutil::Buf;

    /// Independent reference of the conversion rule on one value given as
    /// f64 (its exact value) and whether the source is a float.
    fn reference(v: f64, to: DType) -> f64 {
        match to {
            DType::F32 => f64::from(v as f32),
            DType::F16 => f64::from(f16::from_f64(v).to_f32()),
            DType::BF16 => f64::from(bf16::from_f64(v).to_f32()),
            DType::F64 => v,
            DType::Bool => f64::from(u8::from(v != 0.0)),
            _ => {
                let (lo, hi) = match to {
                    DType::I8 => (-128.0, 127.0),
                    DType::U8 => (0.0, 255.0),
                    DType::I16 => (-32768.0, 32767.0),
                    DType::I32 => (-2147483648.0, 2147483647.0),
                    _ => (-9.223372036854776e18, 9.223372036854776e18),
                };
                if v.is_nan() {
                    0.0
                } else {
                    v.trunc().clamp(lo, hi)
                }
            }
        }
    }

    fn all() -> [DType; 10] {
        SUPPORTED
    }

    #[test]
    fn every_pair_from_floats() {
        let vals = [
            0.0f64,
            -0.0,
            1.5,
            -2.5,
            0.1,
            300.75,
            -129.5,
            70000.0,
            3.0e9,
            f64::NAN,
            f64::INFINITY,
            -1e-8,
        ];
        for from in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let src = Buf::zeros(from, vals.len());
            let st = src.tensor(&[vals.len() as i64]);
            // SAFETY: the view covers the buffer.
            unsafe { write_f64(&st, &vals) };
            // SAFETY: as above.
            let stored = unsafe { read_f64(&st) };
            for to in all() {
                let dst = Buf::zeros(to, vals.len());
                let args = CastArgs {
                    self_: st.clone(),
                    dtype: acl(to),
                    out: dst.tensor(&[vals.len() as i64]),
                };
                // SAFETY: both views cover their buffers.
                unsafe { cast::run(&args) }.unwrap();
                // SAFETY: the view covers the buffer.
                let got = unsafe { read_f64(&dst.flat()) };
                for (k, &s) in stored.iter().enumerate() {
                    let w = reference(s, to);
                    assert!(
                        got[k] == w || (got[k].is_nan() && w.is_nan()),
                        "{from:?} -> {to:?} of {s}: got {}, want {w}",
                        got[k]
                    );
                }
            }
        }
    }

    /// The aclDataType value of a kernel dtype.
    fn acl(d: DType) -> i32 {
        (0..64).find(|&v| dtype_from_acl(v) == Some(d)).unwrap()
    }

    #[test]
    fn every_pair_from_integers_and_bool_wraps() {
        let vals = [
            0i64,
            1,
            -1,
            127,
            128,
            255,
            256,
            300,
            -129,
            70000,
            2_147_483_648,
            i64::MAX,
        ];
        for from in [
            DType::I8,
            DType::U8,
            DType::I16,
            DType::I32,
            DType::I64,
            DType::Bool,
        ] {
            let src = Buf::from_i64(from, &vals);
            let stored = src.to_i64();
            for to in all() {
                let dst = Buf::zeros(to, vals.len());
                // A transposed [3, 4] view of the [4, 3] source.
                let args = CastArgs {
                    self_: src.view(&[3, 4], &[1, 3], 0),
                    dtype: acl(to),
                    out: dst.tensor(&[3, 4]),
                };
                // SAFETY: both views cover their buffers.
                unsafe { cast::run(&args) }.unwrap();
                let want: Vec<i64> = (0..12).map(|i| stored[(i % 4) * 3 + i / 4]).collect();
                if to.is_float() {
                    // SAFETY: the view covers the buffer.
                    let got = unsafe { read_f64(&dst.flat()) };
                    for (k, &w) in want.iter().enumerate() {
                        assert_eq!(got[k], reference(w as f64, to), "{from:?} -> {to:?} of {w}");
                    }
                } else {
                    let got = dst.to_i64();
                    for (k, &w) in want.iter().enumerate() {
                        let expect = match to {
                            DType::Bool => i64::from(w != 0),
                            DType::I8 => i64::from(w as i8),
                            DType::U8 => i64::from(w as u8),
                            DType::I16 => i64::from(w as i16),
                            DType::I32 => i64::from(w as i32),
                            _ => w,
                        };
                        assert_eq!(got[k], expect, "{from:?} -> {to:?} of {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn cast_refusals() {
        let f = Buf::zeros(DType::F32, 4);
        let h = Buf::zeros(DType::F16, 4);
        let expect = |args: CastArgs, needle: &str| {
            let e = cast::check(&args).unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        };
        expect(
            CastArgs {
                self_: f.tensor(&[4]),
                dtype: 7,
                out: h.tensor(&[4]),
            },
            "dtype 7 is not supported",
        );
        expect(
            CastArgs {
                self_: f.tensor(&[4]),
                dtype: acl(DType::F32),
                out: h.tensor(&[4]),
            },
            "must be dtype (DT_FLOAT)",
        );
        expect(
            CastArgs {
                self_: f.tensor(&[4]),
                dtype: acl(DType::F16),
                out: h.tensor(&[2, 2]),
            },
            "shape of out [2, 2]",
        );
    }

    #[test]
    fn inplace_copy_broadcasts_converts_and_aliases() {
        let src = Buf::from_f32(DType::F32, &[1.75, -2.5, 300.0]);
        let dst = Buf::zeros(DType::I8, 6);
        let args = InplaceCopyArgs {
            self_ref: dst.tensor(&[2, 3]),
            src: src.tensor(&[3]),
        };
        // SAFETY: both views cover their buffers.
        unsafe { inplace_copy::run(&args) }.unwrap();
        assert_eq!(dst.to_i64(), [1, -2, 127, 1, -2, 127]);
        // Copy a tensor onto its own transpose (aliasing): read first.
        let m = Buf::from_f32(DType::F16, &[1.0, 2.0, 3.0, 4.0]);
        let args = InplaceCopyArgs {
            self_ref: m.tensor(&[2, 2]),
            src: m.view(&[2, 2], &[1, 2], 0),
        };
        // SAFETY: both views cover the buffer.
        unsafe { inplace_copy::run(&args) }.unwrap();
        assert_eq!(m.to_f32(), [1.0, 3.0, 2.0, 4.0]);
        let e = inplace_copy::check(&InplaceCopyArgs {
            self_ref: dst.tensor(&[3]),
            src: dst.tensor(&[2, 3]),
        })
        .unwrap_err();
        assert!(
            e.message
                .contains("must broadcast to the shape of selfRef [3]"),
            "{}",
            e.message
        );
    }

    #[test]
    fn fill_and_zero_on_every_dtype_and_a_strided_view() {
        for d in all() {
            let b = Buf::from_i64(d, &[5, 5, 5, 5, 5, 5]);
            // Every other element.
            let v = b.view(&[3], &[2], 0);
            let args = InplaceFillScalarArgs {
                self_ref: v.clone(),
                value: Scalar::F32(-2.5),
            };
            // SAFETY: the view lies inside the buffer.
            unsafe { inplace_fill_scalar::run(&args) }.unwrap();
            let filled = reference(-2.5, d);
            let got = b.to_f64();
            for (i, &g) in got.iter().enumerate() {
                let w = if i % 2 == 0 { filled } else { 5.0 };
                assert_eq!(
                    g,
                    if d == DType::Bool && i % 2 == 1 {
                        1.0
                    } else {
                        w
                    },
                    "{d:?} {i}"
                );
            }
            // SAFETY: the view lies inside the buffer.
            unsafe {
                inplace_zero::run(&InplaceZeroArgs {
                    self_ref: b.view(&[2], &[3], 1),
                })
            }
            .unwrap();
            let got = b.to_f64();
            assert_eq!(got[1], 0.0);
            assert_eq!(got[4], 0.0);
        }
        // An integer value into INT8 wraps like a cast.
        let b = Buf::zeros(DType::I8, 2);
        // SAFETY: the view covers the buffer.
        unsafe {
            inplace_fill_scalar::run(&InplaceFillScalarArgs {
                self_ref: b.tensor(&[2]),
                value: Scalar::I32(300),
            })
        }
        .unwrap();
        assert_eq!(b.to_i64(), [44, 44]);
    }

    #[test]
    fn arange_sizes_values_and_refusals() {
        let o = Buf::zeros(DType::F32, 8);
        let args = ArangeArgs {
            start: Scalar::F32(0.5),
            end: Scalar::F32(2.6),
            step: Scalar::F64(0.5),
            out: o.tensor(&[5]),
        };
        // SAFETY: the view lies inside the buffer.
        unsafe { arange::run(&args) }.unwrap();
        assert_eq!(&o.to_f32()[..5], [0.5, 1.0, 1.5, 2.0, 2.5]);
        let i = Buf::zeros(DType::I64, 4);
        let args = ArangeArgs {
            start: Scalar::I64(10),
            end: Scalar::I32(0),
            step: Scalar::I8(-3),
            out: i.tensor(&[4]),
        };
        // SAFETY: the view covers the buffer.
        unsafe { arange::run(&args) }.unwrap();
        assert_eq!(i.to_i64(), [10, 7, 4, 1]);
        let h = Buf::zeros(DType::BF16, 3);
        let args = ArangeArgs {
            start: Scalar::I32(0),
            end: Scalar::I32(3),
            step: Scalar::Bool(true),
            out: h.tensor(&[3]),
        };
        // SAFETY: the view covers the buffer.
        unsafe { arange::run(&args) }.unwrap();
        assert_eq!(h.to_f32(), [0.0, 1.0, 2.0]);
        let expect = |args: ArangeArgs, needle: &str| {
            let e = arange::check(&args).unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        };
        let t = |shape: &[i64]| o.tensor(shape);
        expect(
            ArangeArgs {
                start: Scalar::I32(0),
                end: Scalar::I32(3),
                step: Scalar::I32(0),
                out: t(&[3]),
            },
            "step must not be 0",
        );
        expect(
            ArangeArgs {
                start: Scalar::I32(3),
                end: Scalar::I32(0),
                step: Scalar::I32(1),
                out: t(&[3]),
            },
            "must be less than end",
        );
        expect(
            ArangeArgs {
                start: Scalar::I32(0),
                end: Scalar::I32(3),
                step: Scalar::I32(1),
                out: t(&[4]),
            },
            "1-D of 3 elements",
        );
        expect(
            ArangeArgs {
                start: Scalar::F32(0.0),
                end: Scalar::F32(f32::INFINITY),
                step: Scalar::I32(1),
                out: t(&[3]),
            },
            "finite",
        );
        let u = Buf::zeros(DType::U8, 3);
        let e = arange::check(&ArangeArgs {
            start: Scalar::I32(0),
            end: Scalar::I32(3),
            step: Scalar::I32(1),
            out: u.tensor(&[3]),
        })
        .unwrap_err();
        assert!(e.message.contains("out dtype DT_UINT8"), "{}", e.message);
    }
}
