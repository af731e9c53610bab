//! `aclnnMoeGatingTopKSoftmaxV2`: top-k gating with an optional
//! renormalisation and an optional full-softmax output.
//!
//! - `renorm = 0`: `p = softmax(x)`, then the top-k of `p` (as v1); when
//!   `outputSoftmaxResultFlag` is set, `p` itself is written to
//!   `softmaxResultOutOptional` (FLOAT32, shape of `x`).
//! - `renorm = 1`: the top-k of the logits `x`, then a softmax over those k
//!   values (normalised top-k weights). The flag is ignored in this mode and
//!   `softmaxResultOutOptional` is not written, as CANN documents.
//!
//! Finished rows get expert index `E` with their weights computed as usual
//! (see [`super::gating_top_k_softmax`]). There is no `rowIdxOut` in V2.
//! Ties go to the lower expert index.

use super::gating_top_k_softmax::{check_gating_inputs, rows_and_experts, softmax_top_k};
use super::{
    check_dtype, check_same_dtype, check_shape, check_view, require, softmax_row, top_k_desc,
};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeGatingTopKSoftmaxV2";

/// Arguments of `aclnnMoeGatingTopKSoftmaxV2GetWorkspaceSize(x,
/// finishedOptional, k, renorm, outputSoftmaxResultFlag, yOut, expertIdxOut,
/// softmaxResultOutOptional, ...)`.
#[derive(Debug, Clone)]
pub struct MoeGatingTopKSoftmaxV2Args {
    /// `[N, E]` or `[B, S, E]`, FLOAT16/BFLOAT16/FLOAT32.
    pub x: TensorArg,
    /// BOOL, shape `x.shape[:-1]`.
    pub finished: Option<TensorArg>,
    pub k: i64,
    /// 0: softmax then top-k; 1: top-k then softmax.
    pub renorm: i64,
    pub output_softmax_result_flag: bool,
    /// dtype of `x`, shape `x.shape[:-1] + [k]`.
    pub y_out: TensorArg,
    /// INT32, shape of `y_out`.
    pub expert_idx_out: TensorArg,
    /// FLOAT32, shape of `x`; required when `renorm == 0` and the flag is set.
    pub softmax_result_out: Option<TensorArg>,
}

fn writes_softmax(args: &MoeGatingTopKSoftmaxV2Args) -> bool {
    args.renorm == 0 && args.output_softmax_result_flag
}

/// Validate what `aclnnMoeGatingTopKSoftmaxV2GetWorkspaceSize` validates.
pub fn check(args: &MoeGatingTopKSoftmaxV2Args) -> Result<(), KernelError> {
    let out = check_gating_inputs(OP, &args.x, args.finished.as_ref(), args.k)?;
    if args.renorm != 0 && args.renorm != 1 {
        return Err(KernelError::invalid(format!(
            "{OP}: renorm should be 0 or 1, but got {}.",
            args.renorm
        )));
    }
    for (name, t) in [
        ("yOut", &args.y_out),
        ("expertIdxOut", &args.expert_idx_out),
    ] {
        check_view(OP, name, t)?;
        check_shape(OP, name, t, &out)?;
    }
    check_same_dtype(OP, "yOut", &args.y_out, "x", args.x.dtype)?;
    check_dtype(OP, "expertIdxOut", &args.expert_idx_out, &[DType::I32])?;
    if writes_softmax(args) {
        let s = require(
            OP,
            "softmaxResultOutOptional",
            &args.softmax_result_out,
            "renorm is 0 and outputSoftmaxResultFlag is true",
        )?;
        check_view(OP, "softmaxResultOutOptional", s)?;
        check_dtype(OP, "softmaxResultOutOptional", s, &[DType::F32])?;
        check_shape(OP, "softmaxResultOutOptional", s, &args.x.shape)?;
    }
    Ok(())
}

/// Compute `aclnnMoeGatingTopKSoftmaxV2`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; outputs are writable.
pub unsafe fn run(args: &MoeGatingTopKSoftmaxV2Args) -> Result<(), KernelError> {
    check(args)?;
    let (n, e) = rows_and_experts(&args.x);
    let k = args.k as usize;
    // SAFETY: the caller upholds the invariant for every input.
    let logits = unsafe { args.x.read_f32() };
    // SAFETY: as above.
    let finished = args.finished.as_ref().map(|f| unsafe { f.read_bool() });
    let (y, idx) = if args.renorm == 0 {
        softmax_top_k(&logits, finished.as_deref(), n, e, k)
    } else {
        let mut y = Vec::with_capacity(n * k);
        let mut idx = Vec::with_capacity(n * k);
        for r in 0..n {
            let row = &logits[r * e..(r + 1) * e];
            let top = top_k_desc(row, k);
            let vals: Vec<f32> = top.iter().map(|&j| row[j]).collect();
            y.extend(softmax_row(&vals));
            let done = finished.as_ref().is_some_and(|f| f[r]);
            idx.extend(top.iter().map(|&j| if done { e as i64 } else { j as i64 }));
        }
        (y, idx)
    };
    let probs = writes_softmax(args).then(|| {
        (0..n)
            .flat_map(|r| softmax_row(&logits[r * e..(r + 1) * e]))
            .collect::<Vec<f32>>()
    });
    // SAFETY: check passed, so the outputs have N·k (and N·E) elements; the
    // caller upholds the invariant for outputs.
    unsafe {
        args.y_out.write_f32(&y);
        args.expert_idx_out.write_i64(&idx);
        if let (Some(p), Some(s)) = (probs, &args.softmax_result_out) {
            s.write_f32(&p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_close, assert_invalid, padded, round};

    fn softmax64(v: &[f64]) -> Vec<f64> {
        let m = v.iter().cloned().fold(f64::MIN, f64::max);
        let s: f64 = v.iter().map(|x| (x - m).exp()).sum();
        v.iter().map(|x| (x - m).exp() / s).collect()
    }

    /// Reference in f64: full sort of (value desc, index asc).
    fn reference(
        x: &[f64],
        fin: &[bool],
        n: usize,
        e: usize,
        k: usize,
        renorm: i64,
    ) -> (Vec<f64>, Vec<i64>, Vec<f64>) {
        let mut y = Vec::new();
        let mut ix = Vec::new();
        let mut sm = Vec::new();
        for r in 0..n {
            let row = &x[r * e..(r + 1) * e];
            let p = softmax64(row);
            sm.extend(p.iter().cloned());
            let key = if renorm == 0 { p.clone() } else { row.to_vec() };
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|&a, &b| key[b].partial_cmp(&key[a]).unwrap().then(a.cmp(&b)));
            let top = &order[..k];
            if renorm == 0 {
                y.extend(top.iter().map(|&j| p[j]));
            } else {
                let vals: Vec<f64> = top.iter().map(|&j| row[j]).collect();
                y.extend(softmax64(&vals));
            }
            ix.extend(
                top.iter()
                    .map(|&j| if fin[r] { e as i64 } else { j as i64 }),
            );
        }
        (y, ix, sm)
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        dtype: DType,
        lead: &[i64],
        e: usize,
        k: usize,
        renorm: i64,
        flag: bool,
        strided: bool,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let n = lead.iter().product::<i64>() as usize;
        let vals: Vec<f32> = (0..n * e).map(|_| rng.f32() * 3.0).collect();
        let mut shape = lead.to_vec();
        shape.push(e as i64);
        let (_b, x) = if strided {
            padded(dtype, &shape, &vals)
        } else {
            let b = Buf::from_f32(dtype, &vals);
            let t = b.tensor(&shape);
            (b, t)
        };
        let xv: Vec<f64> = vals.iter().map(|&v| round(dtype, f64::from(v))).collect();
        let fin: Vec<bool> = (0..n).map(|r| r % 2 == 0).collect();
        let fb = Buf::from_i64(
            DType::Bool,
            &fin.iter().map(|&b| i64::from(b)).collect::<Vec<_>>(),
        );
        let mut os = lead.to_vec();
        os.push(k as i64);
        let y = Buf::zeros(dtype, n * k);
        let ei = Buf::zeros(DType::I32, n * k);
        let sm = Buf::zeros(DType::F32, n * e);
        let args = MoeGatingTopKSoftmaxV2Args {
            x,
            finished: Some(fb.tensor(lead)),
            k: k as i64,
            renorm,
            output_softmax_result_flag: flag,
            y_out: y.tensor(&os),
            expert_idx_out: ei.tensor(&os),
            softmax_result_out: Some(sm.tensor(&shape)),
        };
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args).unwrap() };
        let (wy, wi, wsm) = reference(&xv, &fin, n, e, k, renorm);
        assert_close(&y.to_f64(), &wy, dtype, "yOut");
        assert_eq!(ei.to_i64(), wi);
        if renorm == 0 && flag {
            assert_close(&sm.to_f64(), &wsm, DType::F32, "softmaxResultOut");
        } else {
            assert!(
                sm.to_f32().iter().all(|&v| v == 0.0),
                "softmax output written"
            );
        }
    }

    #[test]
    fn matches_reference() {
        case(DType::F32, &[6], 10, 3, 0, true, false, 11);
        case(DType::F16, &[4], 8, 8, 0, false, true, 12); // k = E
        case(DType::BF16, &[2, 2], 7, 2, 1, true, false, 13); // renorm ignores the flag
        case(DType::F32, &[1], 5, 4, 1, false, true, 14); // one token
        case(DType::F16, &[3, 1], 16, 1, 1, false, false, 15);
    }

    #[test]
    fn refuses_invalid_arguments() {
        let x = Buf::zeros(DType::F32, 8);
        let o = Buf::zeros(DType::I32, 8);
        let good = MoeGatingTopKSoftmaxV2Args {
            x: x.tensor(&[2, 4]),
            finished: None,
            k: 2,
            renorm: 0,
            output_softmax_result_flag: true,
            y_out: x.tensor(&[2, 2]),
            expert_idx_out: o.tensor(&[2, 2]),
            softmax_result_out: Some(x.tensor(&[2, 4])),
        };
        check(&good).unwrap();
        let mut a = good.clone();
        a.renorm = 2;
        assert_invalid(check(&a), "renorm should be 0 or 1");
        let mut a = good.clone();
        a.softmax_result_out = None;
        assert_invalid(check(&a), "softmaxResultOutOptional must not be null");
        let mut a = good.clone();
        a.softmax_result_out.as_mut().unwrap().dtype = DType::F16;
        assert_invalid(check(&a), "softmaxResultOutOptional dtype DT_FLOAT16");
        let mut a = good.clone();
        a.softmax_result_out = Some(x.tensor(&[2, 2]));
        assert_invalid(
            check(&a),
            "the shape of softmaxResultOutOptional should be [2, 4]",
        );
        let mut a = good.clone();
        a.renorm = 1;
        a.softmax_result_out = None;
        check(&a).unwrap();
        let mut a = good.clone();
        a.k = 5;
        assert_invalid(check(&a), "k should be in range [0, 4]");
        let mut a = good.clone();
        a.expert_idx_out.dtype = DType::F32;
        assert_invalid(check(&a), "expertIdxOut dtype DT_FLOAT");
        let mut a = good.clone();
        a.y_out = x.tensor(&[2, 3]);
        assert_invalid(check(&a), "the shape of yOut should be [2, 2]");
    }
}
