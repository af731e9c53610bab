//! aclnnRmsNorm: `y = x / sqrt(mean(x², over the trailing dims of gamma's
//! shape) + epsilon) * gamma`, with `rstdOut = 1 / sqrt(mean(x²) + eps)`.
//!
//! Shapes: `x` has 1 to 8 dims; `gamma` has n ≥ 1 dims equal to the last n
//! dims of `x`; `yOut` has `x`'s shape; `rstdOut` is FLOAT with `x`'s rank,
//! the leading dims of `x` and 1 for each normalised dim (x `(2,3,4,8)`,
//! gamma `(8)` → rstd `(2,3,4,1)`). dtype combinations x/gamma/y (A2/A3):
//! f16/f32/f16, bf16/f32/bf16, f16/f16/f16, bf16/bf16/bf16, f32/f32/f32.
//! Decision: a negative or NaN epsilon is refused (CANN documents only
//! small positive values such as the default 1e-6); rstdOut is required,
//! as the generated header has no Optional in its name. Computation is in
//! f32 (the mean of squares accumulates in f64 for stability), y and rstd
//! rounded once on store. Non-contiguous views are accepted.

use crate::broadcast::{check_dtype, check_view, fmt_shape};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnRmsNormGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct RmsNormArgs {
    pub x: TensorArg,
    pub gamma: TensorArg,
    pub epsilon: f64,
    pub y_out: TensorArg,
    pub rstd_out: TensorArg,
}

const FLOATS: [DType; 3] = [DType::F16, DType::BF16, DType::F32];

/// Phase-one validation.
pub fn check(args: &RmsNormArgs) -> Result<(), KernelError> {
    let (x, g) = (&args.x, &args.gamma);
    check_view(x, "x", 8)?;
    check_view(g, "gamma", 8)?;
    check_view(&args.y_out, "yOut", 8)?;
    check_view(&args.rstd_out, "rstdOut", 8)?;
    check_dtype(x, "x", &FLOATS)?;
    check_dtype(g, "gamma", &FLOATS)?;
    if x.rank() == 0 {
        return Err(KernelError::invalid(
            "The dim of x should be in range [1, 8], but got 0.".to_string(),
        ));
    }
    let combo_ok = g.dtype == x.dtype || g.dtype == DType::F32;
    if !combo_ok {
        return Err(KernelError::invalid(format!(
            "gamma dtype {} is not supported with x dtype {}; gamma must be {} or DT_FLOAT.",
            g.dtype.name(),
            x.dtype.name(),
            x.dtype.name()
        )));
    }
    if args.y_out.dtype != x.dtype {
        return Err(KernelError::invalid(format!(
            "yOut dtype should be the same as x dtype {}, but got {}.",
            x.dtype.name(),
            args.y_out.dtype.name()
        )));
    }
    if args.rstd_out.dtype != DType::F32 {
        return Err(KernelError::invalid(format!(
            "rstdOut dtype should be DT_FLOAT, but got {}.",
            args.rstd_out.dtype.name()
        )));
    }
    if g.rank() == 0 || g.rank() > x.rank() || x.shape[x.rank() - g.rank()..] != g.shape[..] {
        return Err(KernelError::invalid(format!(
            "gamma shape {} should equal the last dims of x shape {}.",
            fmt_shape(&g.shape),
            fmt_shape(&x.shape)
        )));
    }
    if args.y_out.shape != x.shape {
        return Err(KernelError::invalid(format!(
            "yOut shape {} should be the same as x shape {}.",
            fmt_shape(&args.y_out.shape),
            fmt_shape(&x.shape)
        )));
    }
    let lead = x.rank() - g.rank();
    let mut want = x.shape[..lead].to_vec();
    want.resize(x.rank(), 1);
    if args.rstd_out.shape != want {
        return Err(KernelError::invalid(format!(
            "rstdOut shape should be {}, but got {}.",
            fmt_shape(&want),
            fmt_shape(&args.rstd_out.shape)
        )));
    }
    if args.epsilon.is_nan() || args.epsilon < 0.0 {
        return Err(KernelError::invalid(format!(
            "epsilon should be a non-negative number, but got {}.",
            args.epsilon
        )));
    }
    Ok(())
}

/// Phase-two computation.
///
/// # Safety
/// tensor.rs's module invariant for every tensor of `args`.
pub unsafe fn run(args: &RmsNormArgs) -> Result<(), KernelError> {
    check(args)?;
    // SAFETY: forwarded invariant.
    let (xv, gv) = unsafe { (args.x.read_f32(), args.gamma.read_f32()) };
    let n = gv.len();
    let rows = xv.len().checked_div(n).unwrap_or(0);
    let mut y = vec![0f32; xv.len()];
    let mut rstd = vec![0f32; args.rstd_out.numel()];
    for r in 0..rows {
        let row = &xv[r * n..(r + 1) * n];
        let ms = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / n as f64;
        let rs = (1.0 / (ms + args.epsilon).sqrt()) as f32;
        rstd[r] = rs;
        for ((o, &v), &g) in y[r * n..(r + 1) * n].iter_mut().zip(row).zip(&gv) {
            *o = v * rs * g;
        }
    }
    if n == 0 {
        // Empty normalised dims: mean over nothing; rstd is 1/sqrt(eps).
        rstd.fill((1.0 / args.epsilon.sqrt()) as f32);
    }
    // SAFETY: forwarded invariant; inputs have been read.
    unsafe {
        args.y_out.write_f32(&y);
        args.rstd_out.write_f32(&rstd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close};

    fn reference(x: &[f32], g: &[f32], eps: f64) -> (Vec<f64>, Vec<f64>) {
        let n = g.len();
        let mut y = Vec::new();
        let mut rstd = Vec::new();
        for r in 0..x.len() / n {
            let mut s = 0f64;
            for j in 0..n {
                s += f64::from(x[r * n + j]).powi(2);
            }
            let rs = 1.0 / (s / n as f64 + eps).sqrt();
            rstd.push(rs);
            for j in 0..n {
                y.push(f64::from(x[r * n + j]) * rs * f64::from(g[j]));
            }
        }
        (y, rstd)
    }

    #[test]
    fn every_dtype_combination() {
        let mut rng = Rng::new(41);
        let combos = [
            (DType::F16, DType::F32),
            (DType::BF16, DType::F32),
            (DType::F16, DType::F16),
            (DType::BF16, DType::BF16),
            (DType::F32, DType::F32),
        ];
        for (xd, gd) in combos {
            for (xs, gs, rs) in [
                (vec![2i64, 3, 4, 8], vec![8i64], vec![2i64, 3, 4, 1]),
                (vec![5, 4, 6], vec![4, 6], vec![5, 1, 1]),
                (vec![1, 7], vec![7], vec![1, 1]),
            ] {
                let nx: i64 = xs.iter().product();
                let ng: i64 = gs.iter().product();
                let nr: i64 = rs.iter().product();
                let x = Buf::random(xd, nx as usize, &mut rng);
                let g = Buf::random(gd, ng as usize, &mut rng);
                let y = Buf::zeros(xd, nx as usize);
                let r = Buf::zeros(DType::F32, nr as usize);
                let args = RmsNormArgs {
                    x: x.tensor(&xs),
                    gamma: g.tensor(&gs),
                    epsilon: 1e-6,
                    y_out: y.tensor(&xs),
                    rstd_out: r.tensor(&rs),
                };
                // SAFETY: views cover their buffers.
                unsafe { run(&args) }.unwrap();
                let (wy, wr) = reference(&x.to_f32(), &g.to_f32(), 1e-6);
                assert_close(&y.to_f32(), &wy, xd, "y");
                assert_close(&r.to_f32(), &wr, DType::F32, "rstd");
            }
        }
    }

    #[test]
    fn strided_input_and_in_place() {
        let mut rng = Rng::new(42);
        // x is the transpose of a (4, 3) buffer: shape (3, 4).
        let xb = Buf::random(DType::F32, 12, &mut rng);
        let xv = xb.view(&[3, 4], &[1, 3], 0);
        // SAFETY: inside the buffer.
        let xd = unsafe { xv.read_f32() };
        let g = Buf::random(DType::F32, 4, &mut rng);
        let r = Buf::zeros(DType::F32, 3);
        let (wy, wr) = reference(&xd, &g.to_f32(), 0.1);
        // y written over x itself (same view).
        let args = RmsNormArgs {
            x: xv.clone(),
            gamma: g.tensor(&[4]),
            epsilon: 0.1,
            y_out: xv.clone(),
            rstd_out: r.tensor(&[3, 1]),
        };
        // SAFETY: views inside their buffers.
        unsafe { run(&args) }.unwrap();
        // SAFETY: as above.
        assert_close(&unsafe { xv.read_f32() }, &wy, DType::F32, "y");
        assert_close(&r.to_f32(), &wr, DType::F32, "rstd");
    }

    /// A change to valid arguments that makes them invalid.
    type Edit<'a> = Box<dyn Fn(&mut RmsNormArgs) + 'a>;

    #[test]
    fn invalid_inputs_are_refused() {
        let h = Buf::zeros(DType::F16, 64);
        let f = Buf::zeros(DType::F32, 64);
        let bf = Buf::zeros(DType::BF16, 64);
        let i = Buf::zeros(DType::I32, 64);
        let ok = RmsNormArgs {
            x: h.tensor(&[2, 4]),
            gamma: h.tensor(&[4]),
            epsilon: 1e-6,
            y_out: h.tensor(&[2, 4]),
            rstd_out: f.tensor(&[2, 1]),
        };
        check(&ok).unwrap();
        let cases: Vec<(Edit<'_>, &str)> = vec![
            (Box::new(|a| a.x = i.tensor(&[2, 4])), "x dtype DT_INT32"),
            (
                Box::new(|a| a.gamma = bf.tensor(&[4])),
                "gamma dtype DT_BF16",
            ),
            (Box::new(|a| a.y_out = f.tensor(&[2, 4])), "yOut dtype"),
            (
                Box::new(|a| a.rstd_out = h.tensor(&[2, 1])),
                "rstdOut dtype",
            ),
            (Box::new(|a| a.gamma = h.tensor(&[3])), "gamma shape"),
            (Box::new(|a| a.gamma = h.tensor(&[1, 2, 4])), "gamma shape"),
            (Box::new(|a| a.y_out = h.tensor(&[4, 2])), "yOut shape"),
            (Box::new(|a| a.rstd_out = f.tensor(&[2])), "rstdOut shape"),
            (Box::new(|a| a.epsilon = -1.0), "epsilon"),
            (Box::new(|a| a.x = h.tensor(&[])), "dim of x"),
            (Box::new(|a| a.x = h.tensor(&[1; 9])), "no more than 8"),
        ];
        for (f, needle) in cases {
            let mut a = ok.clone();
            f(&mut a);
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
