//! aclnnSwiGlu: split `x` in halves `A | B` along `dim` and compute
//! `out = silu(A) * B = A · sigmoid(A) · B`; the gate is the first half.
//!
//! `x`: FLOAT, FLOAT16 or BF16, 1 to 8 dims, even size along `dim`
//! (`dim` in `[-rank, rank-1]`); `out`: the same dtype, `x`'s shape with
//! that dim halved. CANN's kernel takes no non-contiguous input; like the
//! copy aclnn inserts for such views in phase one, a strided `x` is
//! gathered first, so any view works. Computation in f32, rounded once on
//! store.

use crate::broadcast::{check_dtype, check_view, fmt_shape, normalize_dim};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnSwiGluGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct SwiGluArgs {
    pub x: TensorArg,
    pub dim: i64,
    pub out: TensorArg,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Phase-one validation.
pub fn check(args: &SwiGluArgs) -> Result<(), KernelError> {
    let x = &args.x;
    check_view(x, "x", 8)?;
    check_view(&args.out, "out", 8)?;
    check_dtype(x, "x", &FLOATS)?;
    if args.out.dtype != x.dtype {
        return Err(KernelError::invalid(format!(
            "out dtype should be the same as x dtype {}, but got {}.",
            x.dtype.name(),
            args.out.dtype.name()
        )));
    }
    if x.rank() == 0 {
        return Err(KernelError::invalid(
            "The dim of x should be in range [1, 8], but got 0.".to_string(),
        ));
    }
    let d = normalize_dim(args.dim, x.rank(), "dim")?;
    if x.shape[d] % 2 != 0 {
        return Err(KernelError::invalid(format!(
            "The size of x along dim {} should be even, but x shape is {}.",
            args.dim,
            fmt_shape(&x.shape)
        )));
    }
    let mut want = x.shape.clone();
    want[d] /= 2;
    if args.out.shape != want {
        return Err(KernelError::invalid(format!(
            "out shape should be {}, but got {}.",
            fmt_shape(&want),
            fmt_shape(&args.out.shape)
        )));
    }
    Ok(())
}

/// Phase-two computation.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run(args: &SwiGluArgs) -> Result<(), KernelError> {
    check(args)?;
    let x = &args.x;
    let d = normalize_dim(args.dim, x.rank(), "dim")?;
    // SAFETY: forwarded invariant.
    let xv = unsafe { x.read_f32() };
    let half = (x.shape[d] / 2) as usize;
    let inner: i64 = x.shape[d + 1..].iter().product();
    let inner = inner as usize;
    let mut out = Vec::with_capacity(xv.len() / 2);
    if half > 0 && inner > 0 {
        for block in xv.chunks(2 * half * inner) {
            let (a, b) = block.split_at(half * inner);
            out.extend(a.iter().zip(b).map(|(&a, &b)| a / (1.0 + (-a).exp()) * b));
        }
    }
    // SAFETY: forwarded invariant; the input has been read.
    unsafe { args.out.write_f32(&out) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    /// Reference: per output multi-index, fetch A and B by explicit index
    /// arithmetic, compute in f64.
    fn reference(x: &[f32], shape: &[i64], d: usize) -> Vec<f64> {
        let mut oshape = shape.to_vec();
        oshape[d] /= 2;
        let total: i64 = oshape.iter().product();
        let xs = crate::tensor::contiguous_strides(shape);
        (0..total)
            .map(|t| {
                let mut rem = t;
                let mut off = 0i64;
                for k in (0..oshape.len()).rev() {
                    off += (rem % oshape[k]) * xs[k];
                    rem /= oshape[k];
                }
                let a = f64::from(x[off as usize]);
                let b = f64::from(x[(off + oshape[d] * xs[d]) as usize]);
                a / (1.0 + (-a).exp()) * b
            })
            .collect()
    }

    #[test]
    fn matches_reference() {
        let mut rng = Rng::new(51);
        let shape = [3i64, 4, 6];
        for dt in FLOATS {
            for dim in [-1i64, 0, 1, 2, -2] {
                let dd = normalize_dim(dim, 3, "dim").unwrap();
                if shape[dd] % 2 != 0 {
                    continue;
                }
                let vals: Vec<f32> = (0..72).map(|_| rng.f32() * 6.0).collect();
                let x = Buf::from_f32(dt, &vals);
                let mut os = shape.to_vec();
                os[dd] /= 2;
                let out = Buf::zeros(dt, 36);
                let args = SwiGluArgs {
                    x: x.tensor(&shape),
                    dim,
                    out: out.tensor(&os),
                };
                // SAFETY: views cover their buffers.
                unsafe { run(&args) }.unwrap();
                assert_close(
                    &out.to_f32(),
                    &reference(&x.to_f32(), &shape, dd),
                    dt,
                    &format!("{dt:?} {dim}"),
                );
            }
        }
    }

    #[test]
    fn strided_input_is_gathered() {
        let mut rng = Rng::new(52);
        let b = Buf::random(DType::F32, 24, &mut rng);
        // (4, 6) view: the transpose of a (6, 4) buffer.
        let v = b.view(&[4, 6], &[1, 4], 0);
        // SAFETY: inside the buffer.
        let vv = unsafe { v.read_f32() };
        let out = Buf::zeros(DType::F32, 12);
        let args = SwiGluArgs {
            x: v,
            dim: -1,
            out: out.tensor(&[4, 3]),
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&args) }.unwrap();
        assert_close(
            &out.to_f32(),
            &reference(&vv, &[4, 6], 1),
            DType::F32,
            "strided",
        );
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let f = Buf::zeros(DType::F32, 64);
        let h = Buf::zeros(DType::F16, 64);
        let i = Buf::zeros(DType::I32, 64);
        let cases = [
            (
                SwiGluArgs {
                    x: f.tensor(&[2, 5]),
                    dim: -1,
                    out: f.tensor(&[2, 2]),
                },
                "should be even",
            ),
            (
                SwiGluArgs {
                    x: f.tensor(&[2, 4]),
                    dim: 2,
                    out: f.tensor(&[2, 2]),
                },
                "dim must be in range",
            ),
            (
                SwiGluArgs {
                    x: f.tensor(&[2, 4]),
                    dim: -1,
                    out: f.tensor(&[2, 4]),
                },
                "out shape should be [2, 2]",
            ),
            (
                SwiGluArgs {
                    x: f.tensor(&[2, 4]),
                    dim: -1,
                    out: h.tensor(&[2, 2]),
                },
                "out dtype",
            ),
            (
                SwiGluArgs {
                    x: i.tensor(&[2, 4]),
                    dim: -1,
                    out: i.tensor(&[2, 2]),
                },
                "x dtype DT_INT32",
            ),
            (
                SwiGluArgs {
                    x: f.tensor(&[]),
                    dim: 0,
                    out: f.tensor(&[]),
                },
                "dim of x",
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
