//! `aclnnMoeGatingTopKSoftmax`: softmax over the experts of each token, then
//! the top-k experts and their probabilities, plus the column-major row ids
//! that `MoeInitRouting` v1 consumes.
//!
//! `x` is `[N, E]` or `[B, S, E]` (then `N = B·S` rows). Outputs have `x`'s
//! leading dimensions and `k` last. `rowIdxOut[n, j] = j·N + n`.
//!
//! Finished rows (`finishedOptional[n] == true`): CANN documents only that
//! their expert indices are filled with `E` (the expert count). Their `yOut`
//! values are the ordinary softmax top-k values, as in the kernel lineage
//! this operator comes from (a finished row still computes, only its experts
//! are made invalid); `rowIdxOut` is unaffected.
//!
//! Softmax is computed in f32 with the row maximum subtracted; ties between
//! equal probabilities go to the lower expert index.

use super::{
    check_dtype, check_rank, check_same_dtype, check_shape, check_view, softmax_row, top_k_desc,
};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeGatingTopKSoftmax";

/// Arguments of `aclnnMoeGatingTopKSoftmaxGetWorkspaceSize(x, finishedOptional,
/// k, yOut, expertIdxOut, rowIdxOut, ...)`.
#[derive(Debug, Clone)]
pub struct MoeGatingTopKSoftmaxArgs {
    /// Gating logits `[N, E]` or `[B, S, E]`, FLOAT16/BFLOAT16/FLOAT32.
    pub x: TensorArg,
    /// BOOL, shape `x.shape[:-1]`.
    pub finished: Option<TensorArg>,
    pub k: i64,
    /// dtype of `x`, shape `x.shape[:-1] + [k]`.
    pub y_out: TensorArg,
    /// INT32, shape of `y_out`.
    pub expert_idx_out: TensorArg,
    /// INT32, shape of `y_out`.
    pub row_idx_out: TensorArg,
}

/// Checks shared with V2: `x`, `finished`, `k`, and the shape every top-k
/// output must have. Returns that output shape.
pub(crate) fn check_gating_inputs(
    op: &str,
    x: &TensorArg,
    finished: Option<&TensorArg>,
    k: i64,
) -> Result<Vec<i64>, KernelError> {
    check_view(op, "x", x)?;
    check_dtype(op, "x", x, &[DType::F16, DType::BF16, DType::F32])?;
    check_rank(op, "x", x, 2, 3)?;
    let e = x.shape[x.rank() - 1];
    let lead = &x.shape[..x.rank() - 1];
    if let Some(f) = finished {
        check_view(op, "finishedOptional", f)?;
        check_dtype(op, "finishedOptional", f, &[DType::Bool])?;
        check_shape(op, "finishedOptional", f, lead)?;
    }
    if k < 0 || k > e {
        return Err(KernelError::invalid(format!(
            "{op}: k should be in range [0, {e}] (the last dim of x), but got {k}."
        )));
    }
    if k > 1024 {
        return Err(KernelError::invalid(format!(
            "{op}: k should not be greater than 1024, but got {k}."
        )));
    }
    let mut out = lead.to_vec();
    out.push(k);
    Ok(out)
}

/// Validate what `aclnnMoeGatingTopKSoftmaxGetWorkspaceSize` validates.
pub fn check(args: &MoeGatingTopKSoftmaxArgs) -> Result<(), KernelError> {
    let out = check_gating_inputs(OP, &args.x, args.finished.as_ref(), args.k)?;
    for (name, t) in [
        ("yOut", &args.y_out),
        ("expertIdxOut", &args.expert_idx_out),
        ("rowIdxOut", &args.row_idx_out),
    ] {
        check_view(OP, name, t)?;
        check_shape(OP, name, t, &out)?;
    }
    check_same_dtype(OP, "yOut", &args.y_out, "x", args.x.dtype)?;
    check_dtype(OP, "expertIdxOut", &args.expert_idx_out, &[DType::I32])?;
    check_dtype(OP, "rowIdxOut", &args.row_idx_out, &[DType::I32])?;
    Ok(())
}

/// Row count `N` and expert count `E` of a checked `x`.
pub(crate) fn rows_and_experts(x: &TensorArg) -> (usize, usize) {
    let e = x.shape[x.rank() - 1] as usize;
    let n = x.shape[..x.rank() - 1].iter().product::<i64>() as usize;
    (n, e)
}

/// Top-k of each row's softmax: `(values, indices)` row-major `[N, k]`,
/// indices of finished rows replaced by `E`.
pub(crate) fn softmax_top_k(
    logits: &[f32],
    finished: Option<&[bool]>,
    n: usize,
    e: usize,
    k: usize,
) -> (Vec<f32>, Vec<i64>) {
    let mut y = Vec::with_capacity(n * k);
    let mut idx = Vec::with_capacity(n * k);
    for r in 0..n {
        let p = softmax_row(&logits[r * e..(r + 1) * e]);
        let done = finished.is_some_and(|f| f[r]);
        for j in top_k_desc(&p, k) {
            y.push(p[j]);
            idx.push(if done { e as i64 } else { j as i64 });
        }
    }
    (y, idx)
}

/// Compute `aclnnMoeGatingTopKSoftmax`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; outputs are writable.
pub unsafe fn run(args: &MoeGatingTopKSoftmaxArgs) -> Result<(), KernelError> {
    check(args)?;
    let (n, e) = rows_and_experts(&args.x);
    let k = args.k as usize;
    // SAFETY: the caller upholds the invariant for every input.
    let logits = unsafe { args.x.read_f32() };
    // SAFETY: as above.
    let finished = args.finished.as_ref().map(|f| unsafe { f.read_bool() });
    let (y, idx) = softmax_top_k(&logits, finished.as_deref(), n, e, k);
    let row_idx: Vec<i64> = (0..n * k)
        .map(|p| {
            let (r, j) = (p / k, p % k);
            (j * n + r) as i64
        })
        .collect();
    // SAFETY: check passed, so each output holds N·k elements; the caller
    // upholds the invariant for outputs.
    unsafe {
        args.y_out.write_f32(&y);
        args.expert_idx_out.write_i64(&idx);
        args.row_idx_out.write_i64(&row_idx);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_close, assert_invalid, padded, round};

    /// Reference in f64: sort all experts by probability (descending, then
    /// index) with a full sort and take the first k.
    fn reference(
        x: &[f64],
        fin: &[bool],
        n: usize,
        e: usize,
        k: usize,
    ) -> (Vec<f64>, Vec<i64>, Vec<i64>) {
        let mut y = vec![0.0; n * k];
        let mut ix = vec![0i64; n * k];
        let mut rows = vec![0i64; n * k];
        for r in 0..n {
            let row = &x[r * e..(r + 1) * e];
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            let p: Vec<f64> = row.iter().map(|v| (v - m).exp() / s).collect();
            let mut order: Vec<usize> = (0..e).collect();
            order.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap().then(a.cmp(&b)));
            for j in 0..k {
                y[r * k + j] = p[order[j]];
                ix[r * k + j] = if fin[r] { e as i64 } else { order[j] as i64 };
                rows[r * k + j] = (j * n + r) as i64;
            }
        }
        (y, ix, rows)
    }

    fn run_case(
        dtype: DType,
        lead: &[i64],
        e: usize,
        k: usize,
        strided: bool,
        with_fin: bool,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let n: usize = lead.iter().product::<i64>() as usize;
        let vals: Vec<f32> = (0..n * e).map(|_| rng.f32() * 4.0).collect();
        let mut shape = lead.to_vec();
        shape.push(e as i64);
        let (_xs, x) = if strided {
            padded(dtype, &shape, &vals)
        } else {
            let b = Buf::from_f32(dtype, &vals);
            let t = b.tensor(&shape);
            (b, t)
        };
        let xv: Vec<f64> = vals.iter().map(|&v| round(dtype, f64::from(v))).collect();
        let fin: Vec<bool> = (0..n).map(|r| with_fin && r % 3 == 1).collect();
        let fin_buf = Buf::from_i64(
            DType::Bool,
            &fin.iter().map(|&b| i64::from(b)).collect::<Vec<_>>(),
        );
        let mut out_shape = lead.to_vec();
        out_shape.push(k as i64);
        let y = Buf::zeros(dtype, n * k);
        let ei = Buf::zeros(DType::I32, n * k);
        let ri = Buf::zeros(DType::I32, n * k);
        let args = MoeGatingTopKSoftmaxArgs {
            x,
            finished: with_fin.then(|| fin_buf.tensor(lead)),
            k: k as i64,
            y_out: y.tensor(&out_shape),
            expert_idx_out: ei.tensor(&out_shape),
            row_idx_out: ri.tensor(&out_shape),
        };
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args).unwrap() };
        let (wy, wi, wr) = reference(&xv, &fin, n, e, k);
        assert_close(&y.to_f64(), &wy, dtype, "yOut");
        assert_eq!(ei.to_i64(), wi, "expertIdxOut");
        assert_eq!(ri.to_i64(), wr, "rowIdxOut");
    }

    #[test]
    fn matches_reference() {
        run_case(DType::F32, &[7], 16, 4, false, false, 1);
        run_case(DType::F16, &[5], 8, 2, false, true, 2);
        run_case(DType::BF16, &[2, 3], 6, 3, false, true, 3);
        run_case(DType::F32, &[4, 2], 5, 5, true, true, 4); // k = E, 3-D, strided
        run_case(DType::F32, &[1], 9, 1, true, false, 5); // one token
        run_case(DType::F16, &[3], 4, 0, false, false, 6); // k = 0
    }

    #[test]
    fn ties_prefer_lower_expert() {
        let x = Buf::from_f32(DType::F32, &[1.0, 2.0, 2.0, 1.0]);
        let y = Buf::zeros(DType::F32, 3);
        let ei = Buf::zeros(DType::I32, 3);
        let ri = Buf::zeros(DType::I32, 3);
        let args = MoeGatingTopKSoftmaxArgs {
            x: x.tensor(&[1, 4]),
            finished: None,
            k: 3,
            y_out: y.tensor(&[1, 3]),
            expert_idx_out: ei.tensor(&[1, 3]),
            row_idx_out: ri.tensor(&[1, 3]),
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { run(&args).unwrap() };
        assert_eq!(ei.to_i64(), vec![1, 2, 0]);
    }

    #[test]
    fn refuses_invalid_arguments() {
        let x = Buf::zeros(DType::F16, 12);
        let f = Buf::zeros(DType::Bool, 3);
        let o = Buf::zeros(DType::I32, 12);
        let good = MoeGatingTopKSoftmaxArgs {
            x: x.tensor(&[3, 4]),
            finished: Some(f.tensor(&[3])),
            k: 2,
            y_out: Buf::zeros(DType::F16, 0).tensor(&[3, 2]),
            expert_idx_out: o.tensor(&[3, 2]),
            row_idx_out: o.tensor(&[3, 2]),
        };
        check(&good).unwrap();
        let mut a = good.clone();
        a.k = 5;
        assert_invalid(check(&a), "k should be in range [0, 4]");
        let mut a = good.clone();
        a.k = -1;
        assert_invalid(check(&a), "k should be in range");
        let mut a = good.clone();
        a.x.dtype = DType::I32;
        assert_invalid(check(&a), "x dtype DT_INT32 is not supported");
        let mut a = good.clone();
        a.x = x.tensor(&[12]);
        assert_invalid(check(&a), "x should be 2-3D");
        let mut a = good.clone();
        a.finished = Some(f.tensor(&[3, 1]));
        assert_invalid(check(&a), "the shape of finishedOptional should be [3]");
        let mut a = good.clone();
        a.finished.as_mut().unwrap().dtype = DType::I8;
        assert_invalid(check(&a), "finishedOptional dtype DT_INT8");
        let mut a = good.clone();
        a.y_out.dtype = DType::F32;
        assert_invalid(
            check(&a),
            "yOut dtype DT_FLOAT should be the same as x dtype DT_FLOAT16",
        );
        let mut a = good.clone();
        a.expert_idx_out.dtype = DType::I64;
        assert_invalid(check(&a), "expertIdxOut dtype DT_INT64");
        let mut a = good.clone();
        a.row_idx_out = o.tensor(&[3, 3]);
        assert_invalid(check(&a), "the shape of rowIdxOut should be [3, 2]");
        // k > 1024 with a wide enough x.
        let wide = Buf::zeros(DType::F32, 2000);
        let mut a = good.clone();
        a.x = wide.tensor(&[1, 2000]);
        a.finished = None;
        a.k = 1025;
        assert_invalid(check(&a), "not be greater than 1024");
        // run refuses what check refuses, before touching memory.
        let mut a = good.clone();
        a.k = 9;
        // SAFETY: run validates first and fails before any access.
        assert!(unsafe { run(&a) }.is_err());
    }
}
