//! `aclnnMoeInitRoutingV2`: permute token rows into expert order.
//!
//! With `expertIdx [N, K]` flattened row-major (source position `t·K + j`),
//! a **stable** sort by expert id gives `sortedRow` (equal ids keep source
//! order; CANN documents the op as deterministic and its golden generators
//! use a stable sort). Then:
//!
//! - dropless (`dropPadMode = 0`): `expandedRowIdxOut[sortedRow[i]] = i` and
//!   `expandedXOut[i] = x[sortedRow[i] / K]` for the first `R` rows, where
//!   `R = N·K` when `activeNum = 0` and `min(activeNum, N·K)` otherwise
//!   ("active" mode; `expandedRowIdxOut` still maps all `N·K` sources).
//!   `expertTokensCountOrCumsumFlag` 1 writes the cumulative counts per
//!   expert, 2 the counts, to an INT32 `[E]` output.
//! - drop/pad (`dropPadMode = 1`): `expandedXOut` is `[E, C, H]`; the `r`-th
//!   token of expert `e` in sorted order lands in slot `[e, r]` when
//!   `r < C`, and `expandedRowIdxOut` of that source is `e·C + r`; tokens
//!   beyond the capacity are dropped (`expandedRowIdxOut = -1`); unused slots
//!   are zero. `expertTokensBeforeCapacityFlag` writes the per-expert counts
//!   before dropping (INT32 `[E]`).
//!
//! Data checks at run time (they depend on device values): expert ids must be
//! `≥ 0`, and `< expertNum` whenever counts are written or in drop/pad mode;
//! otherwise `run` returns `ACLNN_ERR_PARAM_INVALID` without writing.

use super::{
    Rows, check_dtype, check_rank, check_same_dtype, check_shape, check_view, require,
    stable_argsort,
};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeInitRoutingV2";

/// Arguments of `aclnnMoeInitRoutingV2GetWorkspaceSize(x, expertIdx,
/// activeNum, expertCapacity, expertNum, dropPadMode,
/// expertTokensCountOrCumsumFlag, expertTokensBeforeCapacityFlag,
/// expandedXOut, expandedRowIdxOut, expertTokensCountOrCumsumOutOptional,
/// expertTokensBeforeCapacityOutOptional, ...)`.
#[derive(Debug, Clone)]
pub struct MoeInitRoutingV2Args {
    /// `[N, H]`, FLOAT16/BFLOAT16/FLOAT32.
    pub x: TensorArg,
    /// `[N, K]` INT32.
    pub expert_idx: TensorArg,
    pub active_num: i64,
    pub expert_capacity: i64,
    pub expert_num: i64,
    pub drop_pad_mode: i64,
    /// 0: none; 1: cumulative sum; 2: counts.
    pub expert_tokens_count_or_cumsum_flag: i64,
    pub expert_tokens_before_capacity_flag: bool,
    /// Dropless `[R, H]`, drop/pad `[E, C, H]`; dtype of `x`.
    pub expanded_x_out: TensorArg,
    /// `[N·K]` INT32.
    pub expanded_row_idx_out: TensorArg,
    /// `[E]` INT32, required in dropless mode when the flag is 1 or 2.
    pub expert_tokens_count_or_cumsum_out: Option<TensorArg>,
    /// `[E]` INT32, required in drop/pad mode when the flag is set.
    pub expert_tokens_before_capacity_out: Option<TensorArg>,
}

fn invalid(msg: String) -> KernelError {
    KernelError::invalid(format!("{OP}: {msg}"))
}

/// Validate what `aclnnMoeInitRoutingV2GetWorkspaceSize` validates.
pub fn check(args: &MoeInitRoutingV2Args) -> Result<(), KernelError> {
    let (x, ei) = (&args.x, &args.expert_idx);
    check_view(OP, "x", x)?;
    check_view(OP, "expertIdx", ei)?;
    check_dtype(OP, "x", x, &[DType::F16, DType::BF16, DType::F32])?;
    check_dtype(OP, "expertIdx", ei, &[DType::I32])?;
    check_rank(OP, "x", x, 2, 2)?;
    check_rank(OP, "expertIdx", ei, 2, 2)?;
    if x.shape[0] != ei.shape[0] {
        return Err(invalid(format!(
            "the first dim of x ({}) and expertIdx ({}) should be equal.",
            x.shape[0], ei.shape[0]
        )));
    }
    let (n, h, k) = (x.shape[0], x.shape[1], ei.shape[1]);
    for (name, v) in [
        ("activeNum", args.active_num),
        ("expertCapacity", args.expert_capacity),
        ("expertNum", args.expert_num),
    ] {
        if v < 0 {
            return Err(invalid(format!(
                "{name} cannot be less than 0, but got {v}."
            )));
        }
    }
    if args.drop_pad_mode != 0 && args.drop_pad_mode != 1 {
        return Err(invalid(format!(
            "dropPadMode should be 0 or 1, but got {}.",
            args.drop_pad_mode
        )));
    }
    let flag = args.expert_tokens_count_or_cumsum_flag;
    if !(0..=2).contains(&flag) {
        return Err(invalid(format!(
            "expertTokensCountOrCumsumFlag should be 0, 1 or 2, but got {flag}."
        )));
    }
    let drop = args.drop_pad_mode == 1;
    let (e, c) = (args.expert_num, args.expert_capacity);
    if drop && (c < 1 || e < 1) {
        return Err(invalid(format!(
            "expertCapacity and expertNum should be greater than 0 when dropPadMode is 1, but got {c} and {e}."
        )));
    }
    if drop && c > n {
        return Err(invalid(format!(
            "expertCapacity should be in range (0, {n}] (the first dim of x) when dropPadMode is 1, but got {c}."
        )));
    }
    if !drop && flag > 0 && e < 1 {
        return Err(invalid(format!(
            "expertNum should be greater than 0 when expertTokensCountOrCumsumFlag is {flag}, but got {e}."
        )));
    }
    let total = n * k;
    let xo = &args.expanded_x_out;
    check_view(OP, "expandedXOut", xo)?;
    check_same_dtype(OP, "expandedXOut", xo, "x", x.dtype)?;
    if drop {
        check_shape(OP, "expandedXOut", xo, &[e, c, h])?;
    } else {
        let rows = if args.active_num == 0 {
            total
        } else {
            args.active_num.min(total)
        };
        check_shape(OP, "expandedXOut", xo, &[rows, h])?;
    }
    let ro = &args.expanded_row_idx_out;
    check_view(OP, "expandedRowIdxOut", ro)?;
    check_dtype(OP, "expandedRowIdxOut", ro, &[DType::I32])?;
    check_shape(OP, "expandedRowIdxOut", ro, &[total])?;
    check_counts_present(args)?;
    if let Some((name, t)) = counts_output(args) {
        check_view(OP, name, t)?;
        check_dtype(OP, name, t, &[DType::I32])?;
        check_shape(OP, name, t, &[e])?;
    }
    Ok(())
}

/// The per-expert count output this call writes, if any.
fn counts_output(args: &MoeInitRoutingV2Args) -> Option<(&'static str, &TensorArg)> {
    const CUMSUM: &str = "expertTokensCountOrCumsumOutOptional";
    const BEFORE: &str = "expertTokensBeforeCapacityOutOptional";
    if args.drop_pad_mode == 0 && args.expert_tokens_count_or_cumsum_flag > 0 {
        Some((CUMSUM, args.expert_tokens_count_or_cumsum_out.as_ref()?))
    } else if args.drop_pad_mode == 1 && args.expert_tokens_before_capacity_flag {
        Some((BEFORE, args.expert_tokens_before_capacity_out.as_ref()?))
    } else {
        None
    }
}

fn check_counts_present(args: &MoeInitRoutingV2Args) -> Result<(), KernelError> {
    if args.drop_pad_mode == 0 && args.expert_tokens_count_or_cumsum_flag > 0 {
        require(
            OP,
            "expertTokensCountOrCumsumOutOptional",
            &args.expert_tokens_count_or_cumsum_out,
            "expertTokensCountOrCumsumFlag is 1 or 2 in dropless mode",
        )?;
    }
    if args.drop_pad_mode == 1 && args.expert_tokens_before_capacity_flag {
        require(
            OP,
            "expertTokensBeforeCapacityOutOptional",
            &args.expert_tokens_before_capacity_out,
            "expertTokensBeforeCapacityFlag is true in drop/pad mode",
        )?;
    }
    Ok(())
}

/// Compute `aclnnMoeInitRoutingV2`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; outputs are writable.
pub unsafe fn run(args: &MoeInitRoutingV2Args) -> Result<(), KernelError> {
    check(args)?;
    let (n, h, k) = (
        args.x.shape[0] as usize,
        args.x.shape[1] as usize,
        args.expert_idx.shape[1] as usize,
    );
    let total = n * k;
    let drop = args.drop_pad_mode == 1;
    // SAFETY: the caller upholds the invariant for every input.
    let ids = unsafe { args.expert_idx.read_i64() };
    let bounded = drop || args.expert_tokens_count_or_cumsum_flag > 0;
    let e = args.expert_num;
    if let Some((p, &bad)) = ids
        .iter()
        .enumerate()
        .find(|&(_, &v)| v < 0 || (bounded && v >= e))
    {
        let range = if bounded {
            format!("[0, {}]", e - 1)
        } else {
            "[0, +inf)".to_string()
        };
        return Err(invalid(format!(
            "expertIdx value {bad} at position {p} is outside {range}."
        )));
    }
    // SAFETY: as above.
    let xs = unsafe { args.x.read_f32() };
    let order = stable_argsort(&ids);
    let mut row_idx = vec![0i64; total];
    let mut counts = vec![0i64; if bounded { e as usize } else { 0 }];
    if bounded {
        for &v in &ids {
            counts[v as usize] += 1;
        }
    }
    // The source token of each row of expandedXOut (None: zero padding).
    let token_of_row: Vec<Option<usize>> = if drop {
        let c = args.expert_capacity as usize;
        let mut slots = vec![None; e as usize * c];
        let mut seg_start = 0;
        for (i, &src) in order.iter().enumerate() {
            let ex = ids[src] as usize;
            if i > 0 && ids[order[i - 1]] as usize != ex {
                seg_start = i;
            }
            let r = i - seg_start;
            if r < c {
                let slot = ex * c + r;
                row_idx[src] = slot as i64;
                slots[slot] = Some(src / k);
            } else {
                row_idx[src] = -1;
            }
        }
        slots
    } else {
        let rows = args.expanded_x_out.shape[0] as usize;
        for (i, &src) in order.iter().enumerate() {
            row_idx[src] = i as i64;
        }
        order.iter().take(rows).map(|&src| Some(src / k)).collect()
    };
    if !drop && args.expert_tokens_count_or_cumsum_flag == 1 {
        let mut acc = 0;
        for v in counts.iter_mut() {
            acc += *v;
            *v = acc;
        }
    }
    // SAFETY: check passed, so every output has the element count written
    // here; the caller upholds the invariant for outputs.
    unsafe {
        let out_rows = Rows::new(&args.expanded_x_out);
        let zeros = vec![0.0f32; h];
        for (i, t) in token_of_row.iter().enumerate() {
            let row = t.map_or(&zeros[..], |t| &xs[t * h..(t + 1) * h]);
            out_rows.write(i, row);
        }
        args.expanded_row_idx_out.write_i64(&row_idx);
        if let Some((_, t)) = counts_output(args) {
            t.write_i64(&counts);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_invalid, padded, padded_i64, round};

    struct Out {
        x: Vec<f64>,
        row: Vec<i64>,
        counts: Vec<i64>,
    }

    /// Reference: a counting sort by expert (bucket per expert, filled in
    /// source order), written independently of the kernel's argsort.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f64],
        ids: &[i64],
        n: usize,
        h: usize,
        k: usize,
        e: usize,
        drop: bool,
        cap: usize,
        rows: usize,
        flag: i64,
    ) -> Out {
        let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); e];
        for (p, &v) in ids.iter().enumerate() {
            buckets[v as usize].push(p);
        }
        let mut row = vec![0i64; n * k];
        let out_rows = if drop { e * cap } else { rows };
        let mut ox = vec![0.0; out_rows * h];
        let mut i = 0;
        for (ex, b) in buckets.iter().enumerate() {
            for (r, &p) in b.iter().enumerate() {
                let dst = if drop {
                    if r < cap { Some(ex * cap + r) } else { None }
                } else {
                    Some(i)
                };
                row[p] = dst.map_or(-1, |d| d as i64);
                if let Some(d) = dst.filter(|&d| d < out_rows) {
                    for c in 0..h {
                        ox[d * h + c] = x[(p / k) * h + c];
                    }
                }
                i += 1;
            }
        }
        let mut counts: Vec<i64> = buckets.iter().map(|b| b.len() as i64).collect();
        if !drop && flag == 1 {
            for j in 1..e {
                counts[j] += counts[j - 1];
            }
        }
        Out { x: ox, row, counts }
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        dtype: DType,
        n: usize,
        h: usize,
        k: usize,
        e: usize,
        drop: bool,
        cap: usize,
        active: usize,
        flag: i64,
        strided: bool,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let xv: Vec<f32> = (0..n * h).map(|_| rng.f32()).collect();
        // Experts drawn from the lower half only, so the upper half gets no tokens.
        let ids: Vec<i64> = (0..n * k)
            .map(|_| rng.below(e.div_ceil(2) as u64) as i64)
            .collect();
        let (_xb, x, _ib, ei) = if strided {
            let (xb, x) = padded(dtype, &[n as i64, h as i64], &xv);
            let (ib, ei) = padded_i64(DType::I32, &[n as i64, k as i64], &ids);
            (xb, x, ib, ei)
        } else {
            let xb = Buf::from_f32(dtype, &xv);
            let ib = Buf::from_i64(DType::I32, &ids);
            let x = xb.tensor(&[n as i64, h as i64]);
            let ei = ib.tensor(&[n as i64, k as i64]);
            (xb, x, ib, ei)
        };
        let rows = if active == 0 {
            n * k
        } else {
            active.min(n * k)
        };
        let xo_shape: Vec<i64> = if drop {
            vec![e as i64, cap as i64, h as i64]
        } else {
            vec![rows as i64, h as i64]
        };
        let xo = Buf::zeros(dtype, xo_shape.iter().product::<i64>() as usize);
        // Pre-fill with garbage: padded slots must come back as zero.
        // SAFETY: the flat view covers the buffer.
        unsafe { xo.flat().write_f32(&vec![7.0; xo.len]) };
        let ro = Buf::zeros(DType::I32, n * k);
        let co = Buf::zeros(DType::I32, e);
        let args = MoeInitRoutingV2Args {
            x,
            expert_idx: ei,
            active_num: active as i64,
            expert_capacity: cap as i64,
            expert_num: e as i64,
            drop_pad_mode: i64::from(drop),
            expert_tokens_count_or_cumsum_flag: flag,
            expert_tokens_before_capacity_flag: drop,
            expanded_x_out: xo.tensor(&xo_shape),
            expanded_row_idx_out: ro.tensor(&[(n * k) as i64]),
            expert_tokens_count_or_cumsum_out: (!drop && flag > 0).then(|| co.tensor(&[e as i64])),
            expert_tokens_before_capacity_out: drop.then(|| co.tensor(&[e as i64])),
        };
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args).unwrap() };
        let xr: Vec<f64> = xv.iter().map(|&v| round(dtype, f64::from(v))).collect();
        let want = reference(&xr, &ids, n, h, k, e, drop, cap, rows, flag);
        assert_eq!(xo.to_f64(), want.x, "expandedXOut");
        assert_eq!(ro.to_i64(), want.row, "expandedRowIdxOut");
        if drop || flag > 0 {
            assert_eq!(co.to_i64(), want.counts, "counts");
        }
    }

    #[test]
    fn dropless_matches_reference() {
        case(DType::F32, 9, 5, 3, 8, false, 0, 0, 1, false, 31);
        case(DType::F16, 6, 4, 2, 4, false, 0, 0, 2, true, 32);
        case(DType::BF16, 1, 3, 4, 4, false, 0, 0, 0, false, 33); // one token, k = E
        case(DType::F32, 7, 2, 2, 6, false, 0, 5, 2, false, 34); // active mode
        case(DType::F32, 3, 2, 2, 6, false, 0, 100, 1, true, 35); // activeNum > N·K
    }

    #[test]
    fn drop_pad_matches_reference() {
        case(DType::F32, 10, 3, 2, 4, true, 3, 0, 0, false, 41);
        case(DType::F16, 8, 4, 3, 6, true, 8, 0, 0, true, 42); // capacity = N
        case(DType::BF16, 5, 2, 1, 3, true, 1, 0, 0, false, 43);
    }

    #[test]
    fn documented_example() {
        // x rows 0.1/0.2/0.3, expertIdx [[1,2],[0,1],[0,2]], E=3, C=2, drop/pad.
        let x = Buf::from_f32(DType::F32, &[0.1, 0.1, 0.2, 0.2, 0.3, 0.3]);
        let ei = Buf::from_i64(DType::I32, &[1, 2, 0, 1, 0, 2]);
        let xo = Buf::zeros(DType::F32, 12);
        let ro = Buf::zeros(DType::I32, 6);
        let bc = Buf::zeros(DType::I32, 3);
        let args = MoeInitRoutingV2Args {
            x: x.tensor(&[3, 2]),
            expert_idx: ei.tensor(&[3, 2]),
            active_num: 0,
            expert_capacity: 2,
            expert_num: 3,
            drop_pad_mode: 1,
            expert_tokens_count_or_cumsum_flag: 0,
            expert_tokens_before_capacity_flag: true,
            expanded_x_out: xo.tensor(&[3, 2, 2]),
            expanded_row_idx_out: ro.tensor(&[6]),
            expert_tokens_count_or_cumsum_out: None,
            expert_tokens_before_capacity_out: Some(bc.tensor(&[3])),
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { run(&args).unwrap() };
        // Sorted: e0 ← sources 2 (t1), 4 (t2); e1 ← 0 (t0), 3 (t1); e2 ← 1 (t0), 5 (t2).
        assert_eq!(ro.to_i64(), vec![2, 4, 0, 3, 1, 5]);
        assert_eq!(bc.to_i64(), vec![2, 2, 2]);
        let got = xo.to_f32();
        let want = [0.2, 0.2, 0.3, 0.3, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.3, 0.3];
        assert_eq!(got, want.map(|v: f64| v as f32).to_vec());
    }

    #[test]
    fn refuses_invalid_arguments_and_data() {
        let x = Buf::zeros(DType::F32, 64);
        let ei = Buf::from_i64(DType::I32, &[0, 1, 2, 3, 0, 1]);
        let good = MoeInitRoutingV2Args {
            x: x.tensor(&[3, 4]),
            expert_idx: ei.tensor(&[3, 2]),
            active_num: 0,
            expert_capacity: 0,
            expert_num: 4,
            drop_pad_mode: 0,
            expert_tokens_count_or_cumsum_flag: 1,
            expert_tokens_before_capacity_flag: false,
            expanded_x_out: x.tensor(&[6, 4]),
            expanded_row_idx_out: ei.tensor(&[6]),
            expert_tokens_count_or_cumsum_out: Some(ei.tensor(&[4])),
            expert_tokens_before_capacity_out: None,
        };
        check(&good).unwrap();
        let set = |f: &dyn Fn(&mut MoeInitRoutingV2Args)| {
            let mut a = good.clone();
            f(&mut a);
            check(&a)
        };
        assert_invalid(set(&|a| a.x.dtype = DType::I8), "x dtype DT_INT8");
        assert_invalid(
            set(&|a| a.expert_idx.dtype = DType::I64),
            "expertIdx dtype DT_INT64",
        );
        assert_invalid(set(&|a| a.x = x.tensor(&[12])), "x should be 2D");
        assert_invalid(
            set(&|a| a.expert_idx = ei.tensor(&[2, 3])),
            "first dim of x (3) and expertIdx (2)",
        );
        assert_invalid(
            set(&|a| a.active_num = -1),
            "activeNum cannot be less than 0",
        );
        assert_invalid(
            set(&|a| a.expert_capacity = -1),
            "expertCapacity cannot be less than 0",
        );
        assert_invalid(
            set(&|a| a.expert_num = -1),
            "expertNum cannot be less than 0",
        );
        assert_invalid(
            set(&|a| a.drop_pad_mode = 2),
            "dropPadMode should be 0 or 1",
        );
        assert_invalid(
            set(&|a| a.expert_tokens_count_or_cumsum_flag = 3),
            "expertTokensCountOrCumsumFlag should be 0, 1 or 2",
        );
        assert_invalid(
            set(&|a| a.expert_num = 0),
            "expertNum should be greater than 0 when expertTokensCountOrCumsumFlag",
        );
        assert_invalid(
            set(&|a| a.expert_tokens_count_or_cumsum_out = None),
            "expertTokensCountOrCumsumOutOptional must not be null",
        );
        assert_invalid(
            set(&|a| a.expert_tokens_count_or_cumsum_out = Some(ei.tensor(&[3]))),
            "should be [4]",
        );
        assert_invalid(
            set(&|a| a.expanded_x_out = x.tensor(&[5, 4])),
            "the shape of expandedXOut should be [6, 4]",
        );
        assert_invalid(
            set(&|a| a.active_num = 4),
            "the shape of expandedXOut should be [4, 4]",
        );
        assert_invalid(
            set(&|a| a.expanded_x_out.dtype = DType::F16),
            "expandedXOut dtype DT_FLOAT16",
        );
        assert_invalid(
            set(&|a| a.expanded_row_idx_out = ei.tensor(&[5])),
            "expandedRowIdxOut should be [6]",
        );
        // drop/pad specific
        let dp = |f: &dyn Fn(&mut MoeInitRoutingV2Args)| {
            set(&|a| {
                a.drop_pad_mode = 1;
                a.expert_capacity = 2;
                a.expert_tokens_count_or_cumsum_flag = 0;
                a.expanded_x_out = x.tensor(&[4, 2, 4]);
                f(a)
            })
        };
        dp(&|_| {}).unwrap();
        assert_invalid(
            dp(&|a| a.expert_capacity = 0),
            "expertCapacity and expertNum should be greater than 0",
        );
        assert_invalid(
            dp(&|a| a.expert_capacity = 4),
            "expertCapacity should be in range (0, 3]",
        );
        assert_invalid(
            dp(&|a| a.expanded_x_out = x.tensor(&[6, 4])),
            "the shape of expandedXOut should be [4, 2, 4]",
        );
        assert_invalid(
            dp(&|a| a.expert_tokens_before_capacity_flag = true),
            "expertTokensBeforeCapacityOutOptional must not be null",
        );
        // Data: an expert id beyond expertNum is refused at run time.
        let bad = Buf::from_i64(DType::I32, &[0, 1, 2, 4, 0, 1]);
        let mut a = good.clone();
        a.expert_idx = bad.tensor(&[3, 2]);
        let out = Buf::zeros(DType::F32, 24);
        let ro = Buf::zeros(DType::I32, 6);
        let co = Buf::zeros(DType::I32, 4);
        a.expanded_x_out = out.tensor(&[6, 4]);
        a.expanded_row_idx_out = ro.tensor(&[6]);
        a.expert_tokens_count_or_cumsum_out = Some(co.tensor(&[4]));
        // SAFETY: every view lies inside its buffer.
        assert_invalid(
            unsafe { run(&a) },
            "expertIdx value 4 at position 3 is outside [0, 3]",
        );
        assert!(
            ro.to_i64().iter().all(|&v| v == 0),
            "nothing written on error"
        );
    }
}
