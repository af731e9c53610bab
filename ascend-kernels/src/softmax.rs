//! aclnnSoftmax: `out = exp(x - max) / Σ exp(x - max)` along one dim.
//!
//! `self` and `out`: FLOAT16, FLOAT, DOUBLE or BF16, at most 8 dims, the
//! same shape; `out` may have another of these dtypes (the result is cast
//! on store). `dim` in `[-rank, rank-1]` (a 0-D tensor accepts 0 and -1 and
//! gives 1). Non-contiguous views are accepted for both. The maximum along
//! the dim is subtracted before exponentiation, so large inputs do not
//! overflow. Computation is in f64 when either side is DOUBLE, otherwise in
//! f32 with one rounding on store. A slice that is entirely -inf gives NaN
//! (0/0), as torch does.

use crate::broadcast::{check_dtype, check_view, fmt_shape, normalize_dim, read_f64, write_f64};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnSoftmaxGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct SoftmaxArgs {
    pub self_: TensorArg,
    pub dim: i64,
    pub out: TensorArg,
}

const DTYPES: [DType; 4] = [DType::F16, DType::F32, DType::F64, DType::BF16];

/// Phase-one validation.
pub fn check(args: &SoftmaxArgs) -> Result<(), KernelError> {
    check_view(&args.self_, "self", 8)?;
    check_view(&args.out, "out", 8)?;
    check_dtype(&args.self_, "self", &DTYPES)?;
    check_dtype(&args.out, "out", &DTYPES)?;
    if args.out.shape != args.self_.shape {
        return Err(KernelError::invalid(format!(
            "out shape {} should be the same as self shape {}.",
            fmt_shape(&args.out.shape),
            fmt_shape(&args.self_.shape)
        )));
    }
    normalize_dim(args.dim, args.self_.rank(), "dim")?;
    Ok(())
}

/// The arithmetic the softmax needs, for f32 and f64.
trait Real: Copy + PartialOrd + std::ops::Sub<Output = Self> + std::ops::Div<Output = Self> {
    const NEG_INF: Self;
    const ZERO: Self;
    fn exp(self) -> Self;
    fn add(self, o: Self) -> Self;
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    const NEG_INF: f32 = f32::NEG_INFINITY;
    const ZERO: f32 = 0.0;
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn add(self, o: f32) -> f32 {
        self + o
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Real for f64 {
    const NEG_INF: f64 = f64::NEG_INFINITY;
    const ZERO: f64 = 0.0;
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Softmax in place over the middle axis of a row-major `(outer, len, inner)` buffer.
fn softmax_axis<T: Real>(v: &mut [T], len: usize, inner: usize) {
    if len == 0 || inner == 0 {
        return;
    }
    for block in v.chunks_mut(len * inner) {
        for j in 0..inner {
            let mut max = T::NEG_INF;
            for i in 0..len {
                let x = block[i * inner + j];
                // NaN propagates: any NaN makes the max NaN.
                if x > max || x.is_nan() {
                    max = x;
                }
            }
            let mut sum = T::ZERO;
            for i in 0..len {
                let e = (block[i * inner + j] - max).exp();
                block[i * inner + j] = e;
                sum = sum.add(e);
            }
            for i in 0..len {
                block[i * inner + j] = block[i * inner + j] / sum;
            }
        }
    }
}

/// Phase-two computation.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run(args: &SoftmaxArgs) -> Result<(), KernelError> {
    check(args)?;
    let x = &args.self_;
    let d = normalize_dim(args.dim, x.rank(), "dim")?;
    let (len, inner) = if x.rank() == 0 {
        (1, 1)
    } else {
        let inner: i64 = x.shape[d + 1..].iter().product();
        (x.shape[d] as usize, inner as usize)
    };
    if x.dtype == DType::F64 || args.out.dtype == DType::F64 {
        // SAFETY: forwarded invariant.
        let mut v = unsafe { read_f64(x) };
        softmax_axis(&mut v, len, inner);
        // SAFETY: forwarded invariant; the input has been read.
        unsafe { write_f64(&args.out, &v) };
    } else {
        // SAFETY: forwarded invariant.
        let mut v = unsafe { x.read_f32() };
        softmax_axis(&mut v, len, inner);
        // SAFETY: forwarded invariant; the input has been read.
        unsafe { args.out.write_f32(&v) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    /// Reference: for each element, index its whole slice by explicit
    /// multi-index arithmetic and use log-sum-exp in f64.
    fn reference(x: &[f32], shape: &[i64], dim: usize) -> Vec<f64> {
        let n = x.len();
        let st = crate::tensor::contiguous_strides(shape);
        (0..n)
            .map(|e| {
                let pos = (e as i64 / st[dim]) % shape[dim];
                let base = e as i64 - pos * st[dim];
                let vals: Vec<f64> = (0..shape[dim])
                    .map(|i| f64::from(x[(base + i * st[dim]) as usize]))
                    .collect();
                let m = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + vals.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                (f64::from(x[e]) - lse).exp()
            })
            .collect()
    }

    #[test]
    fn matches_reference_on_every_dim() {
        let mut rng = Rng::new(31);
        let shape = [3i64, 4, 5];
        for dt in [DType::F32, DType::F16, DType::BF16] {
            for dim in -3..3i64 {
                let vals: Vec<f32> = (0..60).map(|_| rng.f32() * 30.0).collect();
                let x = Buf::from_f32(dt, &vals);
                let out = Buf::zeros(dt, 60);
                let args = SoftmaxArgs {
                    self_: x.tensor(&shape),
                    dim,
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { run(&args) }.unwrap();
                let want = reference(&x.to_f32(), &shape, normalize_dim(dim, 3, "dim").unwrap());
                assert_close(&out.to_f32(), &want, dt, &format!("{dt:?} dim {dim}"));
            }
        }
    }

    #[test]
    fn large_values_and_double_and_views() {
        // Max subtraction: 1000 would overflow exp without it.
        let x = Buf::from_f32(DType::F32, &[1000.0, 1000.0, 999.0]);
        let out = Buf::zeros(DType::F64, 3);
        let args = SoftmaxArgs {
            self_: x.tensor(&[3]),
            dim: 0,
            out: out.tensor(&[3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { run(&args) }.unwrap();
        // SAFETY: three f64.
        let got = unsafe { read_f64(&out.tensor(&[3])) };
        let e = (-1f64).exp();
        let want = [1.0 / (2.0 + e), 1.0 / (2.0 + e), e / (2.0 + e)];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-7);
        }
        // Transposed input view, dim 1 of the view.
        let mut rng = Rng::new(3);
        let b = Buf::random(DType::BF16, 12, &mut rng);
        let v = b.view(&[4, 3], &[1, 4], 0);
        // SAFETY: inside the buffer.
        let vv = unsafe { v.read_f32() };
        let out = Buf::zeros(DType::F32, 12);
        let args = SoftmaxArgs {
            self_: v,
            dim: 1,
            out: out.tensor(&[4, 3]),
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&args) }.unwrap();
        assert_close(
            &out.to_f32(),
            &reference(&vv, &[4, 3], 1),
            DType::F32,
            "view",
        );
        // 0-D gives 1.
        let s = Buf::from_f32(DType::F16, &[3.0]);
        let args = SoftmaxArgs {
            self_: s.tensor(&[]),
            dim: -1,
            out: s.tensor(&[]),
        };
        // SAFETY: one element, in place.
        unsafe { run(&args) }.unwrap();
        assert_eq!(s.to_f32(), vec![1.0]);
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let f = Buf::zeros(DType::F32, 64);
        let i = Buf::zeros(DType::I32, 64);
        let cases = [
            (
                SoftmaxArgs {
                    self_: f.tensor(&[2, 3]),
                    dim: 2,
                    out: f.tensor(&[2, 3]),
                },
                "dim must be in range [-2, 1]",
            ),
            (
                SoftmaxArgs {
                    self_: f.tensor(&[2, 3]),
                    dim: -3,
                    out: f.tensor(&[2, 3]),
                },
                "dim must be",
            ),
            (
                SoftmaxArgs {
                    self_: i.tensor(&[2, 3]),
                    dim: 0,
                    out: f.tensor(&[2, 3]),
                },
                "self dtype DT_INT32",
            ),
            (
                SoftmaxArgs {
                    self_: f.tensor(&[2, 3]),
                    dim: 0,
                    out: i.tensor(&[2, 3]),
                },
                "out dtype",
            ),
            (
                SoftmaxArgs {
                    self_: f.tensor(&[2, 3]),
                    dim: 0,
                    out: f.tensor(&[3, 2]),
                },
                "should be the same",
            ),
            (
                SoftmaxArgs {
                    self_: f.tensor(&[1; 9]),
                    dim: 0,
                    out: f.tensor(&[1; 9]),
                },
                "no more than 8",
            ),
        ];
        for (a, needle) in cases {
            let e = check(&a).unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(
                e.message.contains(needle),
                "{:?} lacks {needle:?}",
                e.message
            );
        }
    }
}
