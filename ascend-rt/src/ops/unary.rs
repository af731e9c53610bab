//! Elementwise unary operators, `out = op(x)`: each is one line of the
//! table below, which gives its name, its CANN functions and the element
//! types CANN documents for it.
//!
//! `op(stream, x)` returns a new tensor of `x`'s shape and type;
//! `op_into(stream, x, &mut out)` writes into `out`, which must have that
//! shape and type (the typed API keeps the output type equal to the
//! input's; CANN's conversions on store are reachable through the result
//! layer). `x` may be any strided view.
//!
//! Invariant: every argument check happens here, before any FFI call; an
//! element type the table does not list for an operator is
//! [`Error::InvalidArgument`] naming it.

use std::sync::Arc;

use super::args::{AsView, on_device, output, shape_is};
use super::elementwise::same_type;
use crate::aclnn::OpCall;
use crate::error::{Error, Result};
use crate::memory::{DType, DeviceRepr};
use crate::result::opapi::{Operator, operator};
use crate::stream::Stream;
use crate::tensor::{Tensor, TensorArgMut, TensorRef};

/// The phase one every operator of the table shares:
/// `(self, out, workspaceSize, executor)`.
type UnaryPhase1 = ascend_sys::pfn::opapi::aclnnAbsGetWorkspaceSize;

/// Checks and launches one unary operator.
fn run<T: DeviceRepr>(
    api: &'static str,
    dtypes: &[DType],
    op: Operator<UnaryPhase1>,
    stream: &Arc<Stream>,
    x: &TensorRef<'_, T>,
    out: &mut dyn TensorArgMut,
) -> Result<()> {
    if !dtypes.contains(&T::DTYPE) {
        let names: Vec<&str> = dtypes.iter().map(|d| d.name()).collect();
        return Err(Error::invalid(
            api,
            format!(
                "x has dtype {}; the operator takes {}",
                T::DTYPE,
                names.join(", ")
            ),
        ));
    }
    shape_is(api, "out", out.layout().shape(), x.shape())?;
    same_type(api, T::DTYPE, out.dtype())?;
    on_device(api, stream, x)?;
    let op = op.resolve()?;
    let mut call = OpCall::new(stream)?;
    let dx = call.input(x)?;
    let dout = call.output(out)?;
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned.
        |p1, ws, ex| unsafe { p1(dx, dout, ws, ex) },
    )
}

/// Defines `name` and `name_into` for each operator of the table.
macro_rules! unary_ops {
    ($(
        $(#[$doc:meta])*
        $name:ident, $into:ident => $phase1:ident, $phase2:ident, [$($dtype:ident),*];
    )*) => {$(
        $(#[$doc])*
        #[doc = concat!(
            "\n\n`", stringify!($phase2), "`, into a new tensor; element types ",
            $("`", stringify!($dtype), "` "),*, "."
        )]
        pub fn $name<T: DeviceRepr>(stream: &Arc<Stream>, x: &impl AsView<T>) -> Result<Tensor<T>> {
            let mut out = output::<T>(stream, x.as_view().shape())?;
            $into(stream, x, &mut out)?;
            Ok(out)
        }

        #[doc = concat!("[`", stringify!($name), "`] into `out` (of `x`'s shape and type).")]
        pub fn $into<T: DeviceRepr>(
            stream: &Arc<Stream>,
            x: &impl AsView<T>,
            out: &mut dyn TensorArgMut,
        ) -> Result<()> {
            run(
                concat!("ops::", stringify!($name)),
                &[$(DType::$dtype),*],
                operator!($phase1, $phase2),
                stream,
                &x.as_view(),
                out,
            )
        }
    )*};
}

unary_ops! {
    /// `|x|` (integers wrap: `|i8::MIN|` is `i8::MIN`).
    abs, abs_into => aclnnAbsGetWorkspaceSize, aclnnAbs, [F32, F16, BF16, I8, I32, I64, U8];
    /// `-x` (integers wrap: `-i8::MIN` is `i8::MIN`).
    neg, neg_into => aclnnNegGetWorkspaceSize, aclnnNeg, [F32, F16, BF16, I8, I32, I64];
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    //! Each operator of the table against its formula, on every element
    //! type the table lists, through a transposed view; and the checks.

    use half::{bf16, f16};

    use super::*;
    use crate::Context;

    /// An operator on tensors of `T`.
    type Op<T> = fn(&Arc<Stream>, &TensorRef<'_, T>) -> Result<Tensor<T>>;

    /// One operator: its function on f32 tensors, on f16, on bf16, on
    /// i32 (if it takes them), and the formula on f64.
    struct Case {
        f32: Op<f32>,
        f16: Op<f16>,
        bf16: Op<bf16>,
        i32: Option<Op<i32>>,
        formula: fn(f64) -> f64,
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                f32: |s, x| abs(s, x),
                f16: |s, x| abs(s, x),
                bf16: |s, x| abs(s, x),
                i32: Some(|s, x| abs(s, x)),
                formula: f64::abs,
            },
            Case {
                f32: |s, x| neg(s, x),
                f16: |s, x| neg(s, x),
                bf16: |s, x| neg(s, x),
                i32: Some(|s, x| neg(s, x)),
                formula: |x| -x,
            },
        ]
    }

    #[test]
    fn every_operator_matches_its_formula() -> Result<()> {
        let ctx = Context::new(0)?;
        let s = ctx.new_stream()?;
        let data: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.75).collect();
        // The transposed [4, 3] view of a [3, 4] tensor: element (i, j) is
        // data[j * 4 + i].
        let want_at = |i: usize, formula: fn(f64) -> f64, v: &dyn Fn(usize) -> f64| {
            let (r, c) = (i / 3, i % 3);
            formula(v(c * 4 + r))
        };
        for case in cases() {
            let x = Tensor::from_slice(&s, &data, &[3, 4])?;
            let got = (case.f32)(&s, &x.view().t()?)?.to_vec()?;
            for (i, g) in got.iter().enumerate() {
                let w = want_at(i, case.formula, &|k| f64::from(data[k]));
                assert!(
                    (f64::from(*g) - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{i}: {g} vs {w}"
                );
            }
            let h: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
            let x = Tensor::from_slice(&s, &h, &[3, 4])?;
            let got = (case.f16)(&s, &x.view().t()?)?.to_vec()?;
            for (i, g) in got.iter().enumerate() {
                let w = want_at(i, case.formula, &|k| f64::from(h[k].to_f32()));
                assert!((f64::from(g.to_f32()) - w).abs() <= 1e-3 * (1.0 + w.abs()));
            }
            let b: Vec<bf16> = data.iter().map(|&v| bf16::from_f32(v)).collect();
            let x = Tensor::from_slice(&s, &b, &[3, 4])?;
            let got = (case.bf16)(&s, &x.view().t()?)?.to_vec()?;
            for (i, g) in got.iter().enumerate() {
                let w = want_at(i, case.formula, &|k| f64::from(b[k].to_f32()));
                assert!((f64::from(g.to_f32()) - w).abs() <= 8e-3 * (1.0 + w.abs()));
            }
            if let Some(f) = case.i32 {
                let ints: Vec<i32> = (0..12).map(|i| i * 3 - 17).collect();
                let x = Tensor::from_slice(&s, &ints, &[3, 4])?;
                let got = f(&s, &x.view().t()?)?.to_vec()?;
                for (i, g) in got.iter().enumerate() {
                    let w = want_at(i, case.formula, &|k| f64::from(ints[k]));
                    assert_eq!(f64::from(*g), w, "{i}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn checks_happen_before_the_call() -> Result<()> {
        let ctx = Context::new(0)?;
        let s = ctx.new_stream()?;
        let x = Tensor::from_slice(&s, &[1.0f32, -2.0, 3.0, -4.0], &[2, 2])?;
        let mut wrong = Tensor::<f32>::zeros(&s, &[4])?;
        let e = abs_into(&s, &x, &mut wrong).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("ops::abs"), "{e}");
        Ok(())
    }
}
