//! aclnnAddRmsNorm: `x = x1 + x2`, `y = x / sqrt(mean(x², over the
//! trailing dims of gamma's shape) + epsilon) * gamma`, with
//! `rstdOut = 1 / sqrt(mean(x²) + epsilon)` and `xOut = x`.
//!
//! Shapes: `x1` has 1 to 8 dims; `x2`, `yOut` and `xOut` have its shape;
//! `gamma` has n ≥ 1 dims equal to the last n dims of `x1`; `rstdOut` is
//! FLOAT with `x1`'s rank, its leading dims and 1 for each normalised dim.
//! dtypes: `x1`, `x2`, `gamma`, `yOut`, `xOut` all one of FLOAT, FLOAT16,
//! BFLOAT16 (the same one), `rstdOut` FLOAT. CANN documents that empty
//! tensors are not supported: a zero-size `x1` is refused.
//!
//! Decisions where the documentation is silent: a negative or NaN epsilon
//! is refused (as for aclnnRmsNorm); non-contiguous views are accepted
//! (CANN's newer pages say they are not supported; the mock is lenient
//! here and computes them exactly). The sum and the norm are computed in
//! f64 from the inputs as stored: `y` is normalised from the exact sum,
//! not from `xOut` rounded to the input dtype; each output is rounded once
//! on store. Rows are normalised in parallel on large tensors.

use rayon::prelude::*;

use crate::broadcast::{check_dtype, check_view, fmt_shape, read_f64, write_f64};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnAddRmsNormGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct AddRmsNormArgs {
    pub x1: TensorArg,
    pub x2: TensorArg,
    pub gamma: TensorArg,
    pub epsilon: f64,
    pub y_out: TensorArg,
    pub rstd_out: TensorArg,
    pub x_out: TensorArg,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// From this many elements on, rows are normalised by the rayon pool.
const PAR_MIN: usize = 1 << 15;

fn same_shape(t: &TensorArg, name: &str, want: &TensorArg) -> Result<(), KernelError> {
    if t.shape != want.shape {
        return Err(KernelError::invalid(format!(
            "{name} shape {} should be the same as x1 shape {}.",
            fmt_shape(&t.shape),
            fmt_shape(&want.shape)
        )));
    }
    Ok(())
}

fn same_dtype(t: &TensorArg, name: &str, want: DType) -> Result<(), KernelError> {
    if t.dtype != want {
        return Err(KernelError::invalid(format!(
            "{name} dtype {} should be the same as x1 dtype {}.",
            t.dtype.name(),
            want.name()
        )));
    }
    Ok(())
}

/// Phase-one validation.
pub fn check(a: &AddRmsNormArgs) -> Result<(), KernelError> {
    for (t, n) in [
        (&a.x1, "x1"),
        (&a.x2, "x2"),
        (&a.gamma, "gamma"),
        (&a.y_out, "yOut"),
        (&a.rstd_out, "rstdOut"),
        (&a.x_out, "xOut"),
    ] {
        check_view(t, n, 8)?;
    }
    let x = &a.x1;
    check_dtype(x, "x1", &FLOATS)?;
    for (t, n) in [
        (&a.x2, "x2"),
        (&a.gamma, "gamma"),
        (&a.y_out, "yOut"),
        (&a.x_out, "xOut"),
    ] {
        same_dtype(t, n, x.dtype)?;
    }
    check_dtype(&a.rstd_out, "rstdOut", &[DType::F32])?;
    if x.rank() == 0 {
        return Err(KernelError::invalid(
            "The dim of x1 should be in range [1, 8], but got 0.",
        ));
    }
    if x.numel() == 0 {
        return Err(KernelError::invalid(format!(
            "x1 shape {} is empty; empty tensors are not supported.",
            fmt_shape(&x.shape)
        )));
    }
    same_shape(&a.x2, "x2", x)?;
    same_shape(&a.y_out, "yOut", x)?;
    same_shape(&a.x_out, "xOut", x)?;
    let g = &a.gamma;
    if g.rank() == 0 || g.rank() > x.rank() || x.shape[x.rank() - g.rank()..] != g.shape[..] {
        return Err(KernelError::invalid(format!(
            "gamma shape {} should equal the last dims of x1 shape {}.",
            fmt_shape(&g.shape),
            fmt_shape(&x.shape)
        )));
    }
    let mut want = x.shape[..x.rank() - g.rank()].to_vec();
    want.resize(x.rank(), 1);
    if a.rstd_out.shape != want {
        return Err(KernelError::invalid(format!(
            "rstdOut shape should be {}, but got {}.",
            fmt_shape(&want),
            fmt_shape(&a.rstd_out.shape)
        )));
    }
    if a.epsilon.is_nan() || a.epsilon < 0.0 {
        return Err(KernelError::invalid(format!(
            "epsilon should be a non-negative number, but got {}.",
            a.epsilon
        )));
    }
    Ok(())
}

/// Phase-two computation.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `a`.
pub unsafe fn run(a: &AddRmsNormArgs) -> Result<(), KernelError> {
    check(a)?;
    // SAFETY: forwarded invariant.
    let (x1, x2, g) = unsafe { (read_f64(&a.x1), read_f64(&a.x2), read_f64(&a.gamma)) };
    let n = g.len();
    let x: Vec<f64> = x1.iter().zip(&x2).map(|(p, q)| p + q).collect();
    let eps = a.epsilon;
    let norm_row = |row: &[f64]| -> (Vec<f64>, f64) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / n as f64;
        let rs = 1.0 / (ms + eps).sqrt();
        (row.iter().zip(&g).map(|(v, gg)| v * rs * gg).collect(), rs)
    };
    let rows: Vec<(Vec<f64>, f64)> = if x.len() >= PAR_MIN {
        x.par_chunks(n).map(norm_row).collect()
    } else {
        x.chunks(n).map(norm_row).collect()
    };
    let y: Vec<f64> = rows.iter().flat_map(|(r, _)| r.iter().copied()).collect();
    let rstd: Vec<f64> = rows.iter().map(|(_, r)| *r).collect();
    // SAFETY: forwarded invariant; every input was read above, so outputs
    // aliasing inputs are safe.
    unsafe {
        write_f64(&a.x_out, &x);
        write_f64(&a.y_out, &y);
        write_f64(&a.rstd_out, &rstd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    /// Plain loops in f64: (x, y, rstd).
    fn reference(x1: &[f64], x2: &[f64], g: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = g.len();
        let (mut x, mut y, mut rstd) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..x1.len() / n {
            let mut s = 0f64;
            for j in 0..n {
                let v = x1[r * n + j] + x2[r * n + j];
                s += v * v;
            }
            let rs = 1.0 / (s / n as f64 + eps).sqrt();
            rstd.push(rs);
            for j in 0..n {
                let v = x1[r * n + j] + x2[r * n + j];
                x.push(v);
                y.push(v * rs * g[j]);
            }
        }
        (x, y, rstd)
    }

    #[test]
    fn every_dtype_and_shape() {
        let mut rng = Rng::new(51);
        for dt in FLOATS {
            for (xs, gs, rs) in [
                (vec![2i64, 3, 8], vec![8i64], vec![2i64, 3, 1]),
                (vec![5, 4, 6], vec![4, 6], vec![5, 1, 1]),
                (vec![7], vec![7], vec![1]),
                // Large enough for the parallel path.
                (vec![64, 1024], vec![1024], vec![64, 1]),
            ] {
                let nx = xs.iter().product::<i64>() as usize;
                let ng = gs.iter().product::<i64>() as usize;
                let nr = rs.iter().product::<i64>() as usize;
                let x1 = Buf::random(dt, nx, &mut rng);
                let x2 = Buf::random(dt, nx, &mut rng);
                let g = Buf::random(dt, ng, &mut rng);
                let (y, xo, r) = (
                    Buf::zeros(dt, nx),
                    Buf::zeros(dt, nx),
                    Buf::zeros(DType::F32, nr),
                );
                let a = AddRmsNormArgs {
                    x1: x1.tensor(&xs),
                    x2: x2.tensor(&xs),
                    gamma: g.tensor(&gs),
                    epsilon: 1e-6,
                    y_out: y.tensor(&xs),
                    rstd_out: r.tensor(&rs),
                    x_out: xo.tensor(&xs),
                };
                // SAFETY: views cover their buffers.
                unsafe { run(&a) }.unwrap();
                let (wx, wy, wr) = reference(&x1.to_f64(), &x2.to_f64(), &g.to_f64(), 1e-6);
                assert_close(&xo.to_f32(), &wx, dt, "xOut");
                assert_close(&y.to_f32(), &wy, dt, "yOut");
                assert_close(&r.to_f32(), &wr, DType::F32, "rstdOut");
            }
        }
    }

    #[test]
    fn strided_inputs_and_outputs_over_inputs() {
        let mut rng = Rng::new(52);
        // x1 is the transpose of a (4, 3) buffer: shape (3, 4).
        let b1 = Buf::random(DType::F32, 12, &mut rng);
        let v1 = b1.view(&[3, 4], &[1, 3], 0);
        let x2 = Buf::random(DType::F32, 12, &mut rng);
        let g = Buf::random(DType::F32, 4, &mut rng);
        let r = Buf::zeros(DType::F32, 3);
        // SAFETY: inside the buffer.
        let d1: Vec<f64> = unsafe { v1.read_f32() }
            .into_iter()
            .map(f64::from)
            .collect();
        let (wx, wy, wr) = reference(&d1, &x2.to_f64(), &g.to_f64(), 0.1);
        // yOut over x1 itself, xOut over x2 itself.
        let a = AddRmsNormArgs {
            x1: v1.clone(),
            x2: x2.tensor(&[3, 4]),
            gamma: g.tensor(&[4]),
            epsilon: 0.1,
            y_out: v1.clone(),
            rstd_out: r.tensor(&[3, 1]),
            x_out: x2.tensor(&[3, 4]),
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&a) }.unwrap();
        // SAFETY: as above.
        assert_close(&unsafe { v1.read_f32() }, &wy, DType::F32, "y");
        assert_close(&x2.to_f32(), &wx, DType::F32, "x");
        assert_close(&r.to_f32(), &wr, DType::F32, "rstd");
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let h = Buf::zeros(DType::F16, 64);
        let f = Buf::zeros(DType::F32, 64);
        let i = Buf::zeros(DType::I32, 64);
        let ok = AddRmsNormArgs {
            x1: h.tensor(&[2, 4]),
            x2: h.tensor(&[2, 4]),
            gamma: h.tensor(&[4]),
            epsilon: 1e-6,
            y_out: h.tensor(&[2, 4]),
            rstd_out: f.tensor(&[2, 1]),
            x_out: h.tensor(&[2, 4]),
        };
        check(&ok).unwrap();
        let cases: Vec<(AddRmsNormArgs, &str)> = vec![
            (
                AddRmsNormArgs {
                    x1: i.tensor(&[2, 4]),
                    ..ok.clone()
                },
                "x1 dtype DT_INT32",
            ),
            (
                AddRmsNormArgs {
                    x2: f.tensor(&[2, 4]),
                    ..ok.clone()
                },
                "x2 dtype DT_FLOAT",
            ),
            (
                AddRmsNormArgs {
                    gamma: f.tensor(&[4]),
                    ..ok.clone()
                },
                "gamma dtype",
            ),
            (
                AddRmsNormArgs {
                    x_out: h.tensor(&[4, 2]),
                    ..ok.clone()
                },
                "xOut shape [4, 2]",
            ),
            (
                AddRmsNormArgs {
                    x2: h.tensor(&[2, 4, 1]),
                    ..ok.clone()
                },
                "x2 shape",
            ),
            (
                AddRmsNormArgs {
                    gamma: h.tensor(&[2]),
                    ..ok.clone()
                },
                "gamma shape [2]",
            ),
            (
                AddRmsNormArgs {
                    rstd_out: f.tensor(&[2]),
                    ..ok.clone()
                },
                "rstdOut shape should be [2, 1]",
            ),
            (
                AddRmsNormArgs {
                    rstd_out: h.tensor(&[2, 1]),
                    ..ok.clone()
                },
                "rstdOut dtype",
            ),
            (
                AddRmsNormArgs {
                    epsilon: -1.0,
                    ..ok.clone()
                },
                "epsilon",
            ),
            (
                AddRmsNormArgs {
                    x1: h.tensor(&[0, 4]),
                    x2: h.tensor(&[0, 4]),
                    y_out: h.tensor(&[0, 4]),
                    x_out: h.tensor(&[0, 4]),
                    rstd_out: f.tensor(&[0, 1]),
                    ..ok.clone()
                },
                "empty",
            ),
        ];
        for (a, want) in cases {
            let e = check(&a).unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(e.message.contains(want), "{} lacks {want}", e.message);
        }
    }
}
