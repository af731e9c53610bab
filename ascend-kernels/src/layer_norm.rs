//! aclnnLayerNorm: `out = (x - E[x]) / sqrt(Var[x] + eps) * w + b` over the
//! trailing dims named by `normalizedShape`, with the optional outputs
//! `meanOut = E[x]` and `rstdOut = 1 / sqrt(Var[x] + eps)`.
//!
//! Shapes: `input` is `[A1..Ai, R1..Rj]`; `normalizedShape` is `[R1..Rj]`
//! (not empty, at most input's rank, equal to input's trailing dims);
//! `weightOptional` and `biasOptional` (each may be NULL: 1 and 0) have
//! shape `[R1..Rj]`; `out` has input's shape; `meanOutOptional` and
//! `rstdOutOptional` have shape `[A1..Ai, 1..1]` (input's rank).
//! dtypes: input FLOAT, FLOAT16 or BFLOAT16; `out` input's dtype; weight
//! and bias input's dtype or FLOAT, and the same as each other when both
//! are given. Empty tensors are accepted.
//!
//! Decisions where the documentation is silent: mean and rstd take
//! input's dtype or FLOAT; a negative or NaN eps is refused; the variance
//! is the biased one (divided by the count, as the formula's Var), computed
//! in f64 in two passes; each output is rounded once on store. Rows run in
//! parallel on large tensors.

use rayon::prelude::*;

use crate::broadcast::{check_dtype, check_view, fmt_shape, read_f64, write_f64};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnLayerNormGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct LayerNormArgs {
    pub input: TensorArg,
    pub normalized_shape: Vec<i64>,
    pub weight: Option<TensorArg>,
    pub bias: Option<TensorArg>,
    pub eps: f64,
    pub out: TensorArg,
    pub mean_out: Option<TensorArg>,
    pub rstd_out: Option<TensorArg>,
}

const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// From this many elements on, rows are normalised by the rayon pool.
const PAR_MIN: usize = 1 << 15;

/// Phase-one validation.
pub fn check(a: &LayerNormArgs) -> Result<(), KernelError> {
    let x = &a.input;
    check_view(x, "input", 8)?;
    check_view(&a.out, "out", 8)?;
    check_dtype(x, "input", &FLOATS)?;
    if a.out.dtype != x.dtype {
        return Err(KernelError::invalid(format!(
            "out dtype {} should be the same as input dtype {}.",
            a.out.dtype.name(),
            x.dtype.name()
        )));
    }
    if a.out.shape != x.shape {
        return Err(KernelError::invalid(format!(
            "out shape {} should be the same as input shape {}.",
            fmt_shape(&a.out.shape),
            fmt_shape(&x.shape)
        )));
    }
    let ns = &a.normalized_shape;
    if ns.is_empty() || ns.len() > x.rank() || x.shape[x.rank() - ns.len()..] != ns[..] {
        return Err(KernelError::invalid(format!(
            "normalizedShape {} should be non-empty and equal the last dims of input shape {}.",
            fmt_shape(ns),
            fmt_shape(&x.shape)
        )));
    }
    let wdt = [x.dtype, DType::F32];
    for (t, n) in [(&a.weight, "weightOptional"), (&a.bias, "biasOptional")] {
        if let Some(t) = t {
            check_view(t, n, 8)?;
            check_dtype(t, n, &wdt)?;
            if t.shape != *ns {
                return Err(KernelError::invalid(format!(
                    "{n} shape {} should equal normalizedShape {}.",
                    fmt_shape(&t.shape),
                    fmt_shape(ns)
                )));
            }
        }
    }
    if let (Some(w), Some(b)) = (&a.weight, &a.bias)
        && w.dtype != b.dtype
    {
        return Err(KernelError::invalid(format!(
            "weightOptional dtype {} and biasOptional dtype {} should be the same.",
            w.dtype.name(),
            b.dtype.name()
        )));
    }
    let mut stat_shape = x.shape[..x.rank() - ns.len()].to_vec();
    stat_shape.resize(x.rank(), 1);
    for (t, n) in [
        (&a.mean_out, "meanOutOptional"),
        (&a.rstd_out, "rstdOutOptional"),
    ] {
        if let Some(t) = t {
            check_view(t, n, 8)?;
            check_dtype(t, n, &wdt)?;
            if t.shape != stat_shape {
                return Err(KernelError::invalid(format!(
                    "{n} shape should be {}, but got {}.",
                    fmt_shape(&stat_shape),
                    fmt_shape(&t.shape)
                )));
            }
        }
    }
    if a.eps.is_nan() || a.eps < 0.0 {
        return Err(KernelError::invalid(format!(
            "eps should be a non-negative number, but got {}.",
            a.eps
        )));
    }
    Ok(())
}

/// Phase-two computation.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `a`.
pub unsafe fn run(a: &LayerNormArgs) -> Result<(), KernelError> {
    check(a)?;
    let n = a.normalized_shape.iter().product::<i64>() as usize;
    // SAFETY: forwarded invariant.
    let x = unsafe { read_f64(&a.input) };
    // SAFETY: forwarded invariant.
    let w = a.weight.as_ref().map(|t| unsafe { read_f64(t) });
    // SAFETY: forwarded invariant.
    let b = a.bias.as_ref().map(|t| unsafe { read_f64(t) });
    // With no normalised element, x has no rows to count: the statistics
    // outputs say how many there are.
    let rows = x.len().checked_div(n).unwrap_or_else(|| {
        a.mean_out
            .as_ref()
            .or(a.rstd_out.as_ref())
            .map_or(0, |t| t.numel())
    });
    let eps = a.eps;
    let norm_row = |r: &[f64]| -> (Vec<f64>, f64, f64) {
        let mean = r.iter().sum::<f64>() / n as f64;
        let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        let y = r
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let g = w.as_ref().map_or(1.0, |w| w[j]);
                let c = b.as_ref().map_or(0.0, |b| b[j]);
                (v - mean) * rstd * g + c
            })
            .collect();
        (y, mean, rstd)
    };
    let res: Vec<(Vec<f64>, f64, f64)> = if n == 0 {
        (0..rows).map(|_| norm_row(&[])).collect()
    } else if x.len() >= PAR_MIN {
        x.par_chunks(n).map(norm_row).collect()
    } else {
        x.chunks(n).map(norm_row).collect()
    };
    let y: Vec<f64> = res.iter().flat_map(|r| r.0.iter().copied()).collect();
    // SAFETY: forwarded invariant; every input was read above.
    unsafe {
        write_f64(&a.out, &y);
        if let Some(t) = &a.mean_out {
            write_f64(t, &res.iter().map(|r| r.1).collect::<Vec<_>>());
        }
        if let Some(t) = &a.rstd_out {
            write_f64(t, &res.iter().map(|r| r.2).collect::<Vec<_>>());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    /// Plain loops in f64: (out, mean, rstd).
    fn reference(
        x: &[f64],
        n: usize,
        w: Option<&[f64]>,
        b: Option<&[f64]>,
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut y, mut m, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for row in 0..x.len() / n {
            let mut s = 0f64;
            for j in 0..n {
                s += x[row * n + j];
            }
            let mean = s / n as f64;
            let mut v = 0f64;
            for j in 0..n {
                v += (x[row * n + j] - mean).powi(2);
            }
            let rstd = 1.0 / (v / n as f64 + eps).sqrt();
            m.push(mean);
            r.push(rstd);
            for j in 0..n {
                let g = w.map_or(1.0, |w| w[j]);
                let c = b.map_or(0.0, |b| b[j]);
                y.push((x[row * n + j] - mean) * rstd * g + c);
            }
        }
        (y, m, r)
    }

    #[test]
    fn every_dtype_with_and_without_affine() {
        let mut rng = Rng::new(61);
        for dt in FLOATS {
            for wdt in [dt, DType::F32] {
                for (xs, ns, ss) in [
                    (vec![2i64, 3, 8], vec![8i64], vec![2i64, 3, 1]),
                    (vec![4, 5, 6], vec![5, 6], vec![4, 1, 1]),
                    (vec![64, 1024], vec![1024], vec![64, 1]),
                ] {
                    let nx = xs.iter().product::<i64>() as usize;
                    let n = ns.iter().product::<i64>() as usize;
                    let nr = nx / n;
                    let x = Buf::random(dt, nx, &mut rng);
                    let w = Buf::random(wdt, n, &mut rng);
                    let b = Buf::random(wdt, n, &mut rng);
                    for affine in [true, false] {
                        let y = Buf::zeros(dt, nx);
                        let m = Buf::zeros(wdt, nr);
                        let r = Buf::zeros(DType::F32, nr);
                        let a = LayerNormArgs {
                            input: x.tensor(&xs),
                            normalized_shape: ns.clone(),
                            weight: affine.then(|| w.tensor(&ns)),
                            bias: affine.then(|| b.tensor(&ns)),
                            eps: 1e-5,
                            out: y.tensor(&xs),
                            mean_out: Some(m.tensor(&ss)),
                            rstd_out: Some(r.tensor(&ss)),
                        };
                        // SAFETY: views cover their buffers.
                        unsafe { run(&a) }.unwrap();
                        let (wv, bv) = (w.to_f64(), b.to_f64());
                        let (wy, wm, wr) = reference(
                            &x.to_f64(),
                            n,
                            affine.then_some(&wv[..]),
                            affine.then_some(&bv[..]),
                            1e-5,
                        );
                        assert_close(&y.to_f32(), &wy, dt, "out");
                        assert_close(&m.to_f32(), &wm, wdt, "mean");
                        // rstd of random data can be large: compare relative.
                        assert_close(&r.to_f32(), &wr, DType::F32, "rstd");
                    }
                }
            }
        }
    }

    #[test]
    fn strided_input_and_refusals() {
        let mut rng = Rng::new(62);
        let xb = Buf::random(DType::F32, 12, &mut rng);
        let xv = xb.view(&[3, 4], &[1, 3], 0);
        // SAFETY: inside the buffer.
        let dense: Vec<f64> = unsafe { xv.read_f32() }
            .into_iter()
            .map(f64::from)
            .collect();
        let y = Buf::zeros(DType::F32, 12);
        let a = LayerNormArgs {
            input: xv.clone(),
            normalized_shape: vec![4],
            weight: None,
            bias: None,
            eps: 1e-5,
            out: y.tensor(&[3, 4]),
            mean_out: None,
            rstd_out: None,
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&a) }.unwrap();
        let (wy, _, _) = reference(&dense, 4, None, None, 1e-5);
        assert_close(&y.to_f32(), &wy, DType::F32, "out");
        let h = Buf::zeros(DType::F16, 12);
        let i = Buf::zeros(DType::I32, 12);
        let cases: Vec<(LayerNormArgs, &str)> = vec![
            (
                LayerNormArgs {
                    normalized_shape: vec![],
                    ..a.clone()
                },
                "normalizedShape [] should be non-empty",
            ),
            (
                LayerNormArgs {
                    normalized_shape: vec![3],
                    ..a.clone()
                },
                "normalizedShape [3]",
            ),
            (
                LayerNormArgs {
                    input: i.tensor(&[3, 4]),
                    ..a.clone()
                },
                "input dtype DT_INT32",
            ),
            (
                LayerNormArgs {
                    out: h.tensor(&[3, 4]),
                    ..a.clone()
                },
                "out dtype DT_FLOAT16",
            ),
            (
                LayerNormArgs {
                    weight: Some(y.tensor(&[4])),
                    bias: Some(h.tensor(&[4])),
                    ..a.clone()
                },
                "biasOptional dtype",
            ),
            (
                LayerNormArgs {
                    weight: Some(y.tensor(&[2, 2])),
                    ..a.clone()
                },
                "weightOptional shape [2, 2]",
            ),
            (
                LayerNormArgs {
                    mean_out: Some(y.tensor(&[3])),
                    ..a.clone()
                },
                "meanOutOptional shape should be [3, 1]",
            ),
            (
                LayerNormArgs {
                    eps: f64::NAN,
                    ..a.clone()
                },
                "eps",
            ),
        ];
        for (c, want) in cases {
            let e = check(&c).unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(e.message.contains(want), "{} lacks {want}", e.message);
        }
    }
}
