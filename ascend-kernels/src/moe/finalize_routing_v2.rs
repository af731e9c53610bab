//! `aclnnMoeFinalizeRoutingV2`: un-permute the expert outputs, weight them
//! and add the shared-expert / residual terms.
//!
//! `out[n, :] = x1[n, :] + x2[n, :] + Σ_k scales[n, k] · (expandedX[r, :] + bias[expertIdx[n, k], :])`
//! with `r = expandedRowIdx[p]` and the index space chosen by `dropPadMode`:
//! column-major `p = k·N + n` for modes 0 and 1 (InitRouting v1), row-major
//! `p = n·K + k` for modes 2 and 3 (InitRoutingV2/V3). In the drop/pad modes
//! (1, 3) `expandedX` is `[E, C, H]` and `r` indexes its `E·C` rows.
//!
//! Optional terms: a missing `x1`/`x2`/`bias` contributes nothing; `x2`
//! needs `x1`, `bias` needs `expertIdxOptional`. Without `scalesOptional`
//! CANN fixes `K = 1` and the weight is 1, so `expandedRowIdx` is then `[N]`.
//! Scales are of `expandedX`'s dtype, or FLOAT32 with BFLOAT16 `expandedX`
//! (the documented mixed-precision case). Everything accumulates in f32 and
//! is rounded once to `out`'s dtype.
//!
//! Row indices of `-1` contribute nothing (dropped tokens in modes 1 and 3;
//! also accepted in modes 0 and 2, where CANN documents `[0, N·K-1]`, so that
//! a V3 result restricted to an expert range can be combined). Any other
//! index outside `expandedX`, or an expert id outside `bias`, makes `run`
//! return `ACLNN_ERR_PARAM_INVALID` before anything is written.

use super::{Rows, check_dtype, check_rank, check_same_dtype, check_shape, check_view, fmt_shape};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeFinalizeRoutingV2";

/// Arguments of `aclnnMoeFinalizeRoutingV2GetWorkspaceSize(expandedX,
/// expandedRowIdx, x1Optional, x2Optional, biasOptional, scalesOptional,
/// expertIdxOptional, dropPadMode, out, ...)`.
#[derive(Debug, Clone)]
pub struct MoeFinalizeRoutingV2Args {
    /// `[N·K, H]` (modes 0, 2) or `[E, C, H]` (modes 1, 3); FLOAT16/BFLOAT16/FLOAT32.
    pub expanded_x: TensorArg,
    /// `[N·K]` INT32.
    pub expanded_row_idx: TensorArg,
    /// `[N, H]`, dtype of `expanded_x`.
    pub x1: Option<TensorArg>,
    /// `[N, H]`, dtype of `expanded_x`; only with `x1`.
    pub x2: Option<TensorArg>,
    /// `[E, H]`, dtype of `expanded_x`; needs `expert_idx`.
    pub bias: Option<TensorArg>,
    /// `[N, K]`; absent means `K = 1` with weight 1.
    pub scales: Option<TensorArg>,
    /// `[N, K]` INT32.
    pub expert_idx: Option<TensorArg>,
    pub drop_pad_mode: i64,
    /// `[N, H]`, dtype of `expanded_x`.
    pub out: TensorArg,
}

fn invalid(msg: String) -> KernelError {
    KernelError::invalid(format!("{OP}: {msg}"))
}

/// `(N, K, H)` of validated arguments.
fn dims(args: &MoeFinalizeRoutingV2Args) -> (usize, usize, usize) {
    let n = args.out.shape[0] as usize;
    let h = args.out.shape[1] as usize;
    let k = args.scales.as_ref().map_or(1, |s| s.shape[1] as usize);
    (n, k, h)
}

/// Validate what `aclnnMoeFinalizeRoutingV2GetWorkspaceSize` validates.
pub fn check(args: &MoeFinalizeRoutingV2Args) -> Result<(), KernelError> {
    let ex = &args.expanded_x;
    check_view(OP, "expandedX", ex)?;
    check_view(OP, "expandedRowIdx", &args.expanded_row_idx)?;
    check_view(OP, "out", &args.out)?;
    check_dtype(OP, "expandedX", ex, &[DType::F16, DType::BF16, DType::F32])?;
    if !(0..=3).contains(&args.drop_pad_mode) {
        return Err(invalid(format!(
            "dropPadMode should be in range [0, 3], but got {}.",
            args.drop_pad_mode
        )));
    }
    let drop = args.drop_pad_mode % 2 == 1;
    if drop {
        check_rank(OP, "expandedX", ex, 3, 3)?;
    } else {
        check_rank(OP, "expandedX", ex, 2, 2)?;
    }
    check_same_dtype(OP, "out", &args.out, "expandedX", ex.dtype)?;
    check_rank(OP, "out", &args.out, 2, 2)?;
    let (n, h) = (args.out.shape[0], args.out.shape[1]);
    let ex_h = ex.shape[ex.rank() - 1];
    if ex_h != h {
        return Err(invalid(format!(
            "the last dim of expandedX ({ex_h}) should be equal to the last dim of out ({h})."
        )));
    }
    let k = match &args.scales {
        Some(s) => {
            check_view(OP, "scalesOptional", s)?;
            check_rank(OP, "scalesOptional", s, 2, 2)?;
            if s.shape[0] != n {
                return Err(invalid(format!(
                    "the first dim of scalesOptional should be {n} (NUM_ROWS), but got shape {}.",
                    fmt_shape(&s.shape)
                )));
            }
            let mixed = ex.dtype == DType::BF16 && s.dtype == DType::F32;
            if !mixed && s.dtype != ex.dtype {
                return Err(invalid(format!(
                    "scalesOptional dtype {} should be the same as expandedX dtype {} (or DT_FLOAT with DT_BF16 expandedX).",
                    s.dtype.name(),
                    ex.dtype.name()
                )));
            }
            s.shape[1]
        }
        None => 1,
    };
    check_dtype(OP, "expandedRowIdx", &args.expanded_row_idx, &[DType::I32])?;
    check_shape(OP, "expandedRowIdx", &args.expanded_row_idx, &[n * k])?;
    if !drop && ex.shape[0] != n * k {
        return Err(invalid(format!(
            "the first dim of expandedX should be NUM_ROWS * K = {}, but got shape {}.",
            n * k,
            fmt_shape(&ex.shape)
        )));
    }
    for (name, t) in [("x1Optional", &args.x1), ("x2Optional", &args.x2)] {
        if let Some(t) = t {
            check_view(OP, name, t)?;
            check_same_dtype(OP, name, t, "expandedX", ex.dtype)?;
            check_shape(OP, name, t, &[n, h])?;
        }
    }
    if args.x2.is_some() && args.x1.is_none() {
        return Err(invalid(
            "x2Optional cannot be given without x1Optional.".to_string(),
        ));
    }
    if let Some(e) = &args.expert_idx {
        check_view(OP, "expertIdxOptional", e)?;
        check_dtype(OP, "expertIdxOptional", e, &[DType::I32])?;
        check_shape(OP, "expertIdxOptional", e, &[n, k])?;
    }
    if let Some(b) = &args.bias {
        if args.expert_idx.is_none() {
            return Err(invalid(
                "expertIdxOptional must not be null when biasOptional is given.".to_string(),
            ));
        }
        check_view(OP, "biasOptional", b)?;
        check_same_dtype(OP, "biasOptional", b, "expandedX", ex.dtype)?;
        check_rank(OP, "biasOptional", b, 2, 2)?;
        let e = if drop { ex.shape[0] } else { b.shape[0] };
        check_shape(OP, "biasOptional", b, &[e, h])?;
    }
    Ok(())
}

/// Compute `aclnnMoeFinalizeRoutingV2`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; `out` is writable.
pub unsafe fn run(args: &MoeFinalizeRoutingV2Args) -> Result<(), KernelError> {
    check(args)?;
    let (n, k, h) = dims(args);
    // Rows of expandedX seen as [rows, H]: N·K dropless, E·C drop/pad.
    let ex_shape = &args.expanded_x.shape;
    let rows = ex_shape[..ex_shape.len() - 1].iter().product::<i64>() as usize;
    let row_major = args.drop_pad_mode >= 2;
    // SAFETY: the caller upholds the invariant for every input.
    let (ridx, x1, x2, bias, scales, eidx) = unsafe {
        (
            args.expanded_row_idx.read_i64(),
            args.x1.as_ref().map(|t| t.read_f32()),
            args.x2.as_ref().map(|t| t.read_f32()),
            args.bias.as_ref().map(|t| t.read_f32()),
            args.scales.as_ref().map(|t| t.read_f32()),
            args.expert_idx.as_ref().map(|t| t.read_i64()),
        )
    };
    if let Some((p, &r)) = ridx
        .iter()
        .enumerate()
        .find(|&(_, &r)| r < -1 || r >= rows as i64)
    {
        return Err(invalid(format!(
            "expandedRowIdx value {r} at position {p} is outside [-1, {}].",
            rows as i64 - 1
        )));
    }
    let n_bias = args.bias.as_ref().map_or(0, |b| b.shape[0]);
    let bad_expert = match (&bias, &eidx) {
        (Some(_), Some(ids)) => ids.iter().enumerate().find(|&(_, &e)| e < 0 || e >= n_bias),
        _ => None,
    };
    if let Some((p, &e)) = bad_expert {
        return Err(invalid(format!(
            "expertIdxOptional value {e} at position {p} is outside [0, {}].",
            n_bias - 1
        )));
    }
    // expandedX is read one referenced row at a time (it is the largest
    // input); `out` is written only after every read.
    let ex_rows = Rows::new(&args.expanded_x);
    let mut out = vec![0.0f32; n * h];
    for (i, acc) in out.chunks_exact_mut(h.max(1)).enumerate().take(n) {
        for (c, a) in acc.iter_mut().enumerate() {
            *a = x1.as_ref().map_or(0.0, |v| v[i * h + c])
                + x2.as_ref().map_or(0.0, |v| v[i * h + c]);
        }
        for j in 0..k {
            let p = if row_major { i * k + j } else { j * n + i };
            let r = ridx[p];
            if r < 0 {
                continue;
            }
            let r = r as usize;
            let w = scales.as_ref().map_or(1.0, |s| s[i * k + j]);
            let b = match (&bias, &eidx) {
                (Some(b), Some(ids)) => {
                    let e = ids[i * k + j] as usize;
                    Some(&b[e * h..(e + 1) * h])
                }
                _ => None,
            };
            // SAFETY: `r` is a row of expandedX (checked above); the caller
            // upholds the invariant for it.
            let src = unsafe { ex_rows.read(r) };
            for (c, a) in acc.iter_mut().enumerate() {
                *a += w * (src[c] + b.map_or(0.0, |b| b[c]));
            }
        }
    }
    // SAFETY: check passed, so `out` holds N·H elements; the caller upholds
    // the invariant for it.
    unsafe { args.out.write_f32(&out) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_close, assert_invalid, padded, round};

    struct Case {
        dtype: DType,
        scale_dtype: Option<DType>,
        n: usize,
        k: usize,
        h: usize,
        e: usize,
        cap: usize,
        mode: i64,
        x1: bool,
        x2: bool,
        bias: bool,
        strided: bool,
        seed: u64,
    }

    fn run_case(c: Case) {
        let mut rng = Rng::new(c.seed);
        let drop = c.mode % 2 == 1;
        let k = if c.scale_dtype.is_some() { c.k } else { 1 };
        let rows = if drop { c.e * c.cap } else { c.n * k };
        let exv: Vec<f32> = (0..rows * c.h).map(|_| rng.f32()).collect();
        // Row indices: a permutation of the expanded rows (dropless) or
        // random slots with some -1 (drop/pad).
        let mut perm: Vec<i64> = (0..(c.n * k) as i64).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let ridx: Vec<i64> = if drop {
            (0..c.n * k)
                .map(|_| rng.below(rows as u64 + 1) as i64 - 1)
                .collect()
        } else {
            perm
        };
        let ids: Vec<i64> = (0..c.n * k).map(|_| rng.below(c.e as u64) as i64).collect();
        let x1v: Vec<f32> = (0..c.n * c.h).map(|_| rng.f32()).collect();
        let x2v: Vec<f32> = (0..c.n * c.h).map(|_| rng.f32()).collect();
        let bv: Vec<f32> = (0..c.e * c.h).map(|_| rng.f32()).collect();
        let sv: Vec<f32> = (0..c.n * k).map(|_| rng.f32()).collect();
        let ex_shape: Vec<i64> = if drop {
            vec![c.e as i64, c.cap as i64, c.h as i64]
        } else {
            vec![rows as i64, c.h as i64]
        };
        let (_eb, exv_t) = if c.strided {
            padded(c.dtype, &ex_shape, &exv)
        } else {
            let b = Buf::from_f32(c.dtype, &exv);
            let t = b.tensor(&ex_shape);
            (b, t)
        };
        let rb = Buf::from_i64(DType::I32, &ridx);
        let ib = Buf::from_i64(DType::I32, &ids);
        let nh = [c.n as i64, c.h as i64];
        let (_x1b, x1t) = padded(c.dtype, &nh, &x1v);
        let x2b = Buf::from_f32(c.dtype, &x2v);
        let bb = Buf::from_f32(c.dtype, &bv);
        let sd = c.scale_dtype.unwrap_or(c.dtype);
        let sb = Buf::from_f32(sd, &sv);
        let out = Buf::zeros(c.dtype, c.n * c.h);
        let args = MoeFinalizeRoutingV2Args {
            expanded_x: exv_t,
            expanded_row_idx: rb.tensor(&[(c.n * k) as i64]),
            x1: c.x1.then_some(x1t),
            x2: c.x2.then(|| x2b.tensor(&nh)),
            bias: c.bias.then(|| bb.tensor(&[c.e as i64, c.h as i64])),
            scales: c.scale_dtype.map(|_| sb.tensor(&[c.n as i64, k as i64])),
            expert_idx: c.bias.then(|| ib.tensor(&[c.n as i64, k as i64])),
            drop_pad_mode: c.mode,
            out: out.tensor(&nh),
        };
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args).unwrap() };
        // Reference in f64, looping output element by element.
        let r = |d: DType, v: f32| round(d, f64::from(v));
        let mut want = vec![0.0f64; c.n * c.h];
        for i in 0..c.n {
            for col in 0..c.h {
                let mut v = 0.0;
                if c.x1 {
                    v += r(c.dtype, x1v[i * c.h + col]);
                }
                if c.x2 {
                    v += r(c.dtype, x2v[i * c.h + col]);
                }
                for j in 0..k {
                    let p = if c.mode >= 2 { i * k + j } else { j * c.n + i };
                    if ridx[p] < 0 {
                        continue;
                    }
                    let w = if c.scale_dtype.is_some() {
                        r(sd, sv[i * k + j])
                    } else {
                        1.0
                    };
                    let b = if c.bias {
                        r(c.dtype, bv[ids[i * k + j] as usize * c.h + col])
                    } else {
                        0.0
                    };
                    v += w * (r(c.dtype, exv[ridx[p] as usize * c.h + col]) + b);
                }
                want[i * c.h + col] = v;
            }
        }
        assert_close(&out.to_f64(), &want, c.dtype, "out");
    }

    fn base(seed: u64) -> Case {
        Case {
            dtype: DType::F32,
            scale_dtype: Some(DType::F32),
            n: 6,
            k: 3,
            h: 5,
            e: 4,
            cap: 4,
            mode: 2,
            x1: true,
            x2: true,
            bias: true,
            strided: false,
            seed,
        }
    }

    #[test]
    fn all_drop_pad_modes_match_reference() {
        for mode in 0..4 {
            run_case(Case {
                mode,
                ..base(80 + mode as u64)
            });
            run_case(Case {
                mode,
                strided: true,
                x2: false,
                bias: false,
                ..base(90 + mode as u64)
            });
        }
    }

    #[test]
    fn dtypes_and_optional_terms() {
        run_case(Case {
            dtype: DType::F16,
            scale_dtype: Some(DType::F16),
            ..base(101)
        });
        run_case(Case {
            dtype: DType::BF16,
            scale_dtype: Some(DType::BF16),
            mode: 3,
            ..base(102)
        });
        // Mixed precision: f32 scales with bf16 expandedX.
        run_case(Case {
            dtype: DType::BF16,
            scale_dtype: Some(DType::F32),
            mode: 2,
            ..base(103)
        });
        // No scales: K = 1, weight 1.
        run_case(Case {
            scale_dtype: None,
            mode: 2,
            ..base(104)
        });
        run_case(Case {
            scale_dtype: None,
            mode: 1,
            x1: false,
            x2: false,
            ..base(105)
        });
        // One token, nothing optional.
        run_case(Case {
            n: 1,
            x1: false,
            x2: false,
            bias: false,
            ..base(106)
        });
    }

    #[test]
    fn minus_one_rows_contribute_nothing() {
        let ex = Buf::from_f32(DType::F32, &[1.0, 2.0, 3.0, 4.0]);
        let ri = Buf::from_i64(DType::I32, &[-1, 1]);
        let sc = Buf::from_f32(DType::F32, &[10.0, 0.5]);
        let out = Buf::zeros(DType::F32, 2);
        let args = MoeFinalizeRoutingV2Args {
            expanded_x: ex.tensor(&[2, 1, 2]),
            expanded_row_idx: ri.tensor(&[2]),
            x1: None,
            x2: None,
            bias: None,
            scales: Some(sc.tensor(&[1, 2])),
            expert_idx: None,
            drop_pad_mode: 3,
            out: out.tensor(&[1, 2]),
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { run(&args).unwrap() };
        assert_eq!(out.to_f32(), vec![1.5, 2.0]);
    }

    #[test]
    fn refuses_invalid_arguments_and_data() {
        let f = Buf::zeros(DType::F32, 64);
        let i = Buf::zeros(DType::I32, 64);
        let good = MoeFinalizeRoutingV2Args {
            expanded_x: f.tensor(&[6, 4]),
            expanded_row_idx: i.tensor(&[6]),
            x1: Some(f.tensor(&[3, 4])),
            x2: Some(f.tensor(&[3, 4])),
            bias: Some(f.tensor(&[5, 4])),
            scales: Some(f.tensor(&[3, 2])),
            expert_idx: Some(i.tensor(&[3, 2])),
            drop_pad_mode: 2,
            out: f.tensor(&[3, 4]),
        };
        check(&good).unwrap();
        let set = |g: &dyn Fn(&mut MoeFinalizeRoutingV2Args)| {
            let mut a = good.clone();
            g(&mut a);
            check(&a)
        };
        assert_invalid(
            set(&|a| a.drop_pad_mode = 4),
            "dropPadMode should be in range [0, 3]",
        );
        assert_invalid(set(&|a| a.drop_pad_mode = 1), "expandedX should be 3D");
        assert_invalid(
            set(&|a| a.expanded_x.dtype = DType::I32),
            "expandedX dtype DT_INT32",
        );
        assert_invalid(
            set(&|a| a.out.dtype = DType::F16),
            "out dtype DT_FLOAT16 should be the same as expandedX",
        );
        assert_invalid(
            set(&|a| a.out = f.tensor(&[3, 5])),
            "last dim of expandedX (4) should be equal to the last dim of out (5)",
        );
        assert_invalid(
            set(&|a| a.expanded_x = f.tensor(&[5, 4])),
            "first dim of expandedX should be NUM_ROWS * K = 6",
        );
        assert_invalid(
            set(&|a| a.expanded_row_idx = i.tensor(&[5])),
            "the shape of expandedRowIdx should be [6]",
        );
        assert_invalid(
            set(&|a| a.expanded_row_idx.dtype = DType::I64),
            "expandedRowIdx dtype DT_INT64",
        );
        assert_invalid(
            set(&|a| a.scales = Some(f.tensor(&[2, 3]))),
            "first dim of scalesOptional should be 3",
        );
        assert_invalid(
            set(&|a| a.scales.as_mut().unwrap().dtype = DType::F16),
            "scalesOptional dtype DT_FLOAT16",
        );
        assert_invalid(
            set(&|a| a.scales = None),
            "the shape of expandedRowIdx should be [3]",
        );
        assert_invalid(
            set(&|a| a.x1 = None),
            "x2Optional cannot be given without x1Optional",
        );
        assert_invalid(
            set(&|a| a.x1 = Some(f.tensor(&[3, 3]))),
            "the shape of x1Optional should be [3, 4]",
        );
        assert_invalid(
            set(&|a| a.x2.as_mut().unwrap().dtype = DType::BF16),
            "x2Optional dtype DT_BF16",
        );
        assert_invalid(
            set(&|a| a.expert_idx = None),
            "expertIdxOptional must not be null when biasOptional",
        );
        assert_invalid(
            set(&|a| a.expert_idx.as_mut().unwrap().dtype = DType::I64),
            "expertIdxOptional dtype DT_INT64",
        );
        assert_invalid(
            set(&|a| a.expert_idx = Some(i.tensor(&[3, 1]))),
            "the shape of expertIdxOptional should be [3, 2]",
        );
        assert_invalid(
            set(&|a| a.bias = Some(f.tensor(&[5, 3]))),
            "the shape of biasOptional should be [5, 4]",
        );
        assert_invalid(
            set(&|a| a.bias.as_mut().unwrap().dtype = DType::F16),
            "biasOptional dtype DT_FLOAT16",
        );
        // Drop/pad: bias must have E = expandedX's first dim.
        assert_invalid(
            set(&|a| {
                a.drop_pad_mode = 3;
                a.expanded_x = f.tensor(&[2, 3, 4]);
            }),
            "the shape of biasOptional should be [2, 4]",
        );
        // Mixed precision is only bf16 + f32.
        let mut a = good.clone();
        for t in [
            &mut a.expanded_x,
            &mut a.out,
            a.x1.as_mut().unwrap(),
            a.x2.as_mut().unwrap(),
            a.bias.as_mut().unwrap(),
        ] {
            t.dtype = DType::BF16;
        }
        check(&a).unwrap();
        for t in [
            &mut a.expanded_x,
            &mut a.out,
            a.x1.as_mut().unwrap(),
            a.x2.as_mut().unwrap(),
            a.bias.as_mut().unwrap(),
        ] {
            t.dtype = DType::F16;
        }
        assert_invalid(
            check(&a),
            "scalesOptional dtype DT_FLOAT should be the same as expandedX dtype DT_FLOAT16",
        );
        // Data errors found at run time: a row index past expandedX, an
        // expert id past bias.
        let ex = Buf::zeros(DType::F32, 8);
        let out = Buf::from_f32(DType::F32, &[9.0; 4]);
        let bad_rows = Buf::from_i64(DType::I32, &[0, 2]);
        let ids = Buf::from_i64(DType::I32, &[0, 0]);
        let mk = |rows: &Buf, ids: &Buf| MoeFinalizeRoutingV2Args {
            expanded_x: ex.tensor(&[2, 2]),
            expanded_row_idx: rows.tensor(&[2]),
            x1: None,
            x2: None,
            bias: Some(ex.tensor(&[1, 2])),
            scales: Some(ex.tensor(&[2, 1])),
            expert_idx: Some(ids.tensor(&[2, 1])),
            drop_pad_mode: 0,
            out: out.tensor(&[2, 2]),
        };
        // SAFETY: all views lie inside their buffers.
        assert_invalid(
            unsafe { run(&mk(&bad_rows, &ids)) },
            "expandedRowIdx value 2 at position 1 is outside [-1, 1]",
        );
        let good_rows = Buf::from_i64(DType::I32, &[0, 1]);
        let bad_ids = Buf::from_i64(DType::I32, &[0, 1]);
        // SAFETY: as above.
        assert_invalid(
            unsafe { run(&mk(&good_rows, &bad_ids)) },
            "expertIdxOptional value 1 at position 1 is outside [0, 0]",
        );
        assert_eq!(out.to_f32(), vec![9.0; 4], "nothing written on error");
    }
}
