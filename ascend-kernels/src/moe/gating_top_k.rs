//! `aclnnMoeGatingTopK`: DeepSeek-V3 grouped routing.
//!
//! For each token row of `x [N, E]`:
//! 1. `s = sigmoid(x)` (`normType = 1`) or `softmax(x)` (`normType = 0`);
//! 2. `sel = s + bias` (the bias only steers selection);
//! 3. the experts form `groupCount` consecutive groups of `E / groupCount`;
//!    a group's score is its largest `sel` (`groupSelectMode = 0`) or the sum
//!    of its two largest (`groupSelectMode = 1`);
//! 4. the `kGroup` best groups are kept, and the `k` experts with the largest
//!    `sel` among the kept groups are chosen, best first;
//! 5. the weights are the **un-biased** scores `w = s[idx]`; with sigmoid
//!    `yOut = w / (Σw + eps) · routedScalingFactor`, with softmax
//!    `yOut = w · routedScalingFactor` (no division: every CANN kernel does
//!    this, whatever the formula in the documentation suggests);
//! 6. with `outFlag`, `outOut [N, E]` (FLOAT32) receives `s`.
//!
//! Ties (equal group scores, equal `sel`) go to the lower group or expert
//! index. Everything is computed in f32; `yOut` is rounded once to `x`'s
//! dtype. Limits checked as CANN documents them: `E % groupCount == 0`,
//! `1 ≤ kGroup ≤ groupCount`, `1 ≤ k ≤ kGroup·E/groupCount`, `E ≤ 2048`,
//! `E/groupCount > groupSelectMode`, `align32(E/groupCount)·groupCount ≤ 2048`,
//! `renorm = 0`, `normType ∈ {0, 1}`, `groupSelectMode ∈ {0, 1}`. `x` may have 1 to 8
//! dimensions (CANN documents 0-8; a 0-D `x` has no expert axis and is
//! refused): the leading ones are flattened into `N` token rows, `yOut` and
//! `expertIdxOut` have `x`'s leading dimensions and `k` last, `outOut` has
//! `x`'s shape. `outOut` may be null when `outFlag` is false.

use super::{
    check_dtype, check_rank, check_same_dtype, check_shape, check_view, require, sigmoid,
    softmax_row, top_k_desc,
};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeGatingTopK";

/// Arguments of `aclnnMoeGatingTopKGetWorkspaceSize(x, biasOptional, k,
/// kGroup, groupCount, groupSelectMode, renorm, normType, outFlag,
/// routedScalingFactor, eps, yOut, expertIdxOut, outOut, ...)`.
#[derive(Debug, Clone)]
pub struct MoeGatingTopKArgs {
    /// Router logits `[N, E]`, FLOAT16/BFLOAT16/FLOAT32.
    pub x: TensorArg,
    /// Selection bias `[E]`, dtype of `x`.
    pub bias: Option<TensorArg>,
    pub k: i64,
    pub k_group: i64,
    pub group_count: i64,
    /// 0: group score = max; 1: sum of the top two.
    pub group_select_mode: i64,
    /// Only 0 is supported.
    pub renorm: i64,
    /// 0: softmax; 1: sigmoid.
    pub norm_type: i64,
    pub out_flag: bool,
    pub routed_scaling_factor: f64,
    pub eps: f64,
    /// Weights `[N, k]`, dtype of `x`.
    pub y_out: TensorArg,
    /// INT32 `[N, k]`.
    pub expert_idx_out: TensorArg,
    /// FLOAT32 `[N, E]`; required when `out_flag`.
    pub out_out: Option<TensorArg>,
}

fn invalid(msg: String) -> KernelError {
    KernelError::invalid(format!("{OP}: {msg}"))
}

/// Validate what `aclnnMoeGatingTopKGetWorkspaceSize` validates.
pub fn check(args: &MoeGatingTopKArgs) -> Result<(), KernelError> {
    let x = &args.x;
    check_view(OP, "x", x)?;
    check_dtype(OP, "x", x, &[DType::F16, DType::BF16, DType::F32])?;
    check_rank(OP, "x", x, 1, 8)?;
    let e = x.shape[x.rank() - 1];
    let mut top_shape = x.shape[..x.rank() - 1].to_vec();
    top_shape.push(args.k);
    if let Some(b) = &args.bias {
        check_view(OP, "biasOptional", b)?;
        check_same_dtype(OP, "biasOptional", b, "x", x.dtype)?;
        check_shape(OP, "biasOptional", b, &[e])?;
    }
    if !(1..=2048).contains(&e) {
        return Err(invalid(format!(
            "the expert count (last dim of x) should be in range [1, 2048], but got {e}."
        )));
    }
    let gc = args.group_count;
    if gc < 1 || e % gc != 0 {
        return Err(invalid(format!(
            "groupCount should be positive and divide the expert count {e}, but got {gc}."
        )));
    }
    if args.group_select_mode != 0 && args.group_select_mode != 1 {
        return Err(invalid(format!(
            "groupSelectMode should be 0 or 1, but got {}.",
            args.group_select_mode
        )));
    }
    let per = e / gc;
    if per <= args.group_select_mode {
        return Err(invalid(format!(
            "the experts per group (E / groupCount = {per}) should be greater than groupSelectMode {}.",
            args.group_select_mode
        )));
    }
    let aligned = (per + 31) / 32 * 32;
    if aligned * gc > 2048 {
        return Err(invalid(format!(
            "align32(E / groupCount) * groupCount should not be greater than 2048, but got {aligned} * {gc} = {}.",
            aligned * gc
        )));
    }
    if args.k_group < 1 || args.k_group > gc {
        return Err(invalid(format!(
            "kGroup should be in range [1, {gc}] (groupCount), but got {}.",
            args.k_group
        )));
    }
    let max_k = args.k_group * per;
    if args.k < 1 || args.k > max_k {
        return Err(invalid(format!(
            "k should be in range [1, {max_k}] (kGroup * E / groupCount), but got {}.",
            args.k
        )));
    }
    if args.renorm != 0 {
        return Err(invalid(format!(
            "renorm only supports 0, but got {}.",
            args.renorm
        )));
    }
    if args.norm_type != 0 && args.norm_type != 1 {
        return Err(invalid(format!(
            "normType should be 0 (softmax) or 1 (sigmoid), but got {}.",
            args.norm_type
        )));
    }
    for (name, t) in [
        ("yOut", &args.y_out),
        ("expertIdxOut", &args.expert_idx_out),
    ] {
        check_view(OP, name, t)?;
        check_shape(OP, name, t, &top_shape)?;
    }
    check_same_dtype(OP, "yOut", &args.y_out, "x", x.dtype)?;
    check_dtype(OP, "expertIdxOut", &args.expert_idx_out, &[DType::I32])?;
    if args.out_flag {
        let o = require(OP, "outOut", &args.out_out, "outFlag is true")?;
        check_view(OP, "outOut", o)?;
        check_dtype(OP, "outOut", o, &[DType::F32])?;
        check_shape(OP, "outOut", o, &x.shape)?;
    }
    Ok(())
}

/// Route one row: `(chosen experts best first, their un-biased scores, s)`.
fn route_row(
    args: &MoeGatingTopKArgs,
    logits: &[f32],
    bias: Option<&[f32]>,
) -> (Vec<usize>, Vec<f32>) {
    let e = logits.len();
    let s: Vec<f32> = if args.norm_type == 1 {
        logits.iter().map(|&v| sigmoid(v)).collect()
    } else {
        softmax_row(logits)
    };
    let sel: Vec<f32> = match bias {
        Some(b) => s.iter().zip(b).map(|(&v, &b)| v + b).collect(),
        None => s.clone(),
    };
    let gc = args.group_count as usize;
    let per = e / gc;
    let group_scores: Vec<f32> = sel
        .chunks_exact(per)
        .map(|g| {
            if args.group_select_mode == 0 {
                g.iter().copied().fold(f32::NEG_INFINITY, f32::max)
            } else {
                top_k_desc(g, 2).iter().map(|&j| g[j]).sum()
            }
        })
        .collect();
    let mut kept = top_k_desc(&group_scores, args.k_group as usize);
    kept.sort_unstable();
    let candidates: Vec<usize> = kept.iter().flat_map(|&g| g * per..(g + 1) * per).collect();
    let cand_sel: Vec<f32> = candidates.iter().map(|&j| sel[j]).collect();
    let chosen: Vec<usize> = top_k_desc(&cand_sel, args.k as usize)
        .into_iter()
        .map(|c| candidates[c])
        .collect();
    (chosen, s)
}

/// Compute `aclnnMoeGatingTopK`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; outputs are writable.
pub unsafe fn run(args: &MoeGatingTopKArgs) -> Result<(), KernelError> {
    check(args)?;
    let e = args.x.shape[args.x.rank() - 1] as usize;
    let n = args.x.numel() / e;
    let k = args.k as usize;
    // SAFETY: the caller upholds the invariant for every input.
    let logits = unsafe { args.x.read_f32() };
    // SAFETY: as above.
    let bias = args.bias.as_ref().map(|b| unsafe { b.read_f32() });
    let scale = args.routed_scaling_factor as f32;
    let eps = args.eps as f32;
    let mut y = Vec::with_capacity(n * k);
    let mut idx = Vec::with_capacity(n * k);
    let mut scores = Vec::with_capacity(if args.out_flag { n * e } else { 0 });
    for r in 0..n {
        let (chosen, s) = route_row(args, &logits[r * e..(r + 1) * e], bias.as_deref());
        let w: Vec<f32> = chosen.iter().map(|&j| s[j]).collect();
        if args.norm_type == 1 {
            let denom = w.iter().sum::<f32>() + eps;
            y.extend(w.iter().map(|&v| v / denom * scale));
        } else {
            y.extend(w.iter().map(|&v| v * scale));
        }
        idx.extend(chosen.iter().map(|&j| j as i64));
        if args.out_flag {
            scores.extend_from_slice(&s);
        }
    }
    // SAFETY: check passed, so the outputs hold N·k (and N·E) elements; the
    // caller upholds the invariant for outputs.
    unsafe {
        args.y_out.write_f32(&y);
        args.expert_idx_out.write_i64(&idx);
        if let (true, Some(o)) = (args.out_flag, &args.out_out) {
            o.write_f32(&scores);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_close, assert_invalid, padded, round};

    struct Case {
        dtype: DType,
        n: usize,
        e: usize,
        k: usize,
        k_group: usize,
        gc: usize,
        mode: i64,
        norm: i64,
        bias: bool,
        strided: bool,
        seed: u64,
    }

    /// Reference in f64, written as explicit loops: score every group by
    /// scanning it, pick groups and experts by repeated arg-max scans (first
    /// maximum wins ties).
    #[allow(clippy::needless_range_loop)]
    fn reference(
        c: &Case,
        x: &[f64],
        b: &[f64],
        rsf: f64,
        eps: f64,
    ) -> (Vec<f64>, Vec<i64>, Vec<f64>) {
        let per = c.e / c.gc;
        let mut y = Vec::new();
        let mut ix = Vec::new();
        let mut out = Vec::new();
        for r in 0..c.n {
            let row = &x[r * c.e..(r + 1) * c.e];
            let s: Vec<f64> = if c.norm == 1 {
                row.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect()
            } else {
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
                row.iter().map(|v| (v - m).exp() / z).collect()
            };
            let sel: Vec<f64> = (0..c.e).map(|j| s[j] + b[j]).collect();
            let mut gscore = vec![0.0; c.gc];
            for g in 0..c.gc {
                let mut best = f64::MIN;
                let mut second = f64::MIN;
                for j in g * per..(g + 1) * per {
                    if sel[j] > best {
                        second = best;
                        best = sel[j];
                    } else if sel[j] > second {
                        second = sel[j];
                    }
                }
                gscore[g] = if c.mode == 0 { best } else { best + second };
            }
            let mut group_kept = vec![false; c.gc];
            for _ in 0..c.k_group {
                let mut bg = usize::MAX;
                for g in 0..c.gc {
                    if !group_kept[g] && (bg == usize::MAX || gscore[g] > gscore[bg]) {
                        bg = g;
                    }
                }
                group_kept[bg] = true;
            }
            let mut taken = vec![false; c.e];
            let mut w = Vec::new();
            for _ in 0..c.k {
                let mut bj = usize::MAX;
                for j in 0..c.e {
                    if group_kept[j / per] && !taken[j] && (bj == usize::MAX || sel[j] > sel[bj]) {
                        bj = j;
                    }
                }
                taken[bj] = true;
                ix.push(bj as i64);
                w.push(s[bj]);
            }
            let sum: f64 = w.iter().sum();
            for v in w {
                y.push(if c.norm == 1 {
                    v / (sum + eps) * rsf
                } else {
                    v * rsf
                });
            }
            out.extend(s);
        }
        (y, ix, out)
    }

    fn run_case(c: Case) {
        let mut rng = Rng::new(c.seed);
        let (rsf, eps) = (2.5, 1e-20);
        // Quantised logits make ties between experts and groups likely.
        let vals: Vec<f32> = (0..c.n * c.e)
            .map(|_| (rng.below(9) as f32 - 4.0) * 0.25)
            .collect();
        let bvals: Vec<f32> = (0..c.e)
            .map(|_| if c.bias { rng.f32() * 0.1 } else { 0.0 })
            .collect();
        let (_xb, x) = if c.strided {
            padded(c.dtype, &[c.n as i64, c.e as i64], &vals)
        } else {
            let b = Buf::from_f32(c.dtype, &vals);
            let t = b.tensor(&[c.n as i64, c.e as i64]);
            (b, t)
        };
        let bb = Buf::from_f32(c.dtype, &bvals);
        let xv: Vec<f64> = vals.iter().map(|&v| round(c.dtype, f64::from(v))).collect();
        let bv: Vec<f64> = bvals
            .iter()
            .map(|&v| round(c.dtype, f64::from(v)))
            .collect();
        let y = Buf::zeros(c.dtype, c.n * c.k);
        let ei = Buf::zeros(DType::I32, c.n * c.k);
        let oo = Buf::zeros(DType::F32, c.n * c.e);
        let args = MoeGatingTopKArgs {
            x,
            bias: c.bias.then(|| bb.tensor(&[c.e as i64])),
            k: c.k as i64,
            k_group: c.k_group as i64,
            group_count: c.gc as i64,
            group_select_mode: c.mode,
            renorm: 0,
            norm_type: c.norm,
            out_flag: true,
            routed_scaling_factor: rsf,
            eps,
            y_out: y.tensor(&[c.n as i64, c.k as i64]),
            expert_idx_out: ei.tensor(&[c.n as i64, c.k as i64]),
            out_out: Some(oo.tensor(&[c.n as i64, c.e as i64])),
        };
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args).unwrap() };
        let (wy, wi, wo) = reference(&c, &xv, &bv, rsf, eps);
        assert_eq!(ei.to_i64(), wi, "expertIdxOut");
        assert_close(&y.to_f64(), &wy, c.dtype, "yOut");
        assert_close(&oo.to_f64(), &wo, DType::F32, "outOut");
    }

    #[test]
    fn deepseek_v3_shape_sigmoid_sum_of_top2() {
        run_case(Case {
            dtype: DType::F32,
            n: 5,
            e: 256,
            k: 8,
            k_group: 4,
            gc: 8,
            mode: 1,
            norm: 1,
            bias: true,
            strided: false,
            seed: 21,
        });
    }

    #[test]
    fn variants() {
        // bf16, max group score, softmax without division.
        run_case(Case {
            dtype: DType::BF16,
            n: 4,
            e: 32,
            k: 4,
            k_group: 2,
            gc: 4,
            mode: 0,
            norm: 0,
            bias: true,
            strided: false,
            seed: 22,
        });
        // f16, strided input, no bias.
        run_case(Case {
            dtype: DType::F16,
            n: 3,
            e: 24,
            k: 3,
            k_group: 3,
            gc: 6,
            mode: 1,
            norm: 1,
            bias: false,
            strided: true,
            seed: 23,
        });
        // k equal to all experts of the kept groups, one token.
        run_case(Case {
            dtype: DType::F32,
            n: 1,
            e: 16,
            k: 8,
            k_group: 2,
            gc: 4,
            mode: 0,
            norm: 1,
            bias: true,
            strided: false,
            seed: 24,
        });
        // one group holding every expert, k = E.
        run_case(Case {
            dtype: DType::F32,
            n: 2,
            e: 12,
            k: 12,
            k_group: 1,
            gc: 1,
            mode: 1,
            norm: 1,
            bias: true,
            strided: true,
            seed: 25,
        });
    }

    #[test]
    fn leading_dims_are_token_rows() {
        // x [2, 3, 16] (and a 1-D [16]) route exactly like the same rows as 2-D.
        let mut rng = Rng::new(26);
        let vals: Vec<f32> = (0..6 * 16).map(|_| rng.f32()).collect();
        let x = Buf::from_f32(DType::F32, &vals);
        let route = |shape: &[i64], rows: usize| {
            let y = Buf::zeros(DType::F32, rows * 4);
            let ei = Buf::zeros(DType::I32, rows * 4);
            let oo = Buf::zeros(DType::F32, rows * 16);
            let mut top = shape[..shape.len() - 1].to_vec();
            top.push(4);
            let args = MoeGatingTopKArgs {
                x: x.tensor(shape),
                bias: None,
                k: 4,
                k_group: 2,
                group_count: 4,
                group_select_mode: 1,
                renorm: 0,
                norm_type: 1,
                out_flag: true,
                routed_scaling_factor: 1.5,
                eps: 1e-20,
                y_out: y.tensor(&top),
                expert_idx_out: ei.tensor(&top),
                out_out: Some(oo.tensor(shape)),
            };
            check(&args).unwrap();
            // SAFETY: contiguous views inside their buffers (x holds 6 rows).
            unsafe { run(&args).unwrap() };
            (y.to_f32(), ei.to_i64(), oo.to_f32())
        };
        let flat = route(&[6, 16], 6);
        assert_eq!(route(&[2, 3, 16], 6), flat);
        let one = route(&[16], 1);
        assert_eq!(one.0[..], flat.0[..4]);
        assert_eq!(one.1[..], flat.1[..4]);
    }

    #[test]
    fn bias_steers_selection_but_not_weights() {
        // Two experts, one group: the bias makes expert 0 win although its
        // score is lower; the weight reported is its un-biased sigmoid.
        let x = Buf::from_f32(DType::F32, &[0.0, 1.0]);
        let b = Buf::from_f32(DType::F32, &[1.0, 0.0]);
        let y = Buf::zeros(DType::F32, 1);
        let ei = Buf::zeros(DType::I32, 1);
        let args = MoeGatingTopKArgs {
            x: x.tensor(&[1, 2]),
            bias: Some(b.tensor(&[2])),
            k: 1,
            k_group: 1,
            group_count: 1,
            group_select_mode: 0,
            renorm: 0,
            norm_type: 0,
            out_flag: false,
            routed_scaling_factor: 1.0,
            eps: 1e-20,
            y_out: y.tensor(&[1, 1]),
            expert_idx_out: ei.tensor(&[1, 1]),
            out_out: None,
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { run(&args).unwrap() };
        assert_eq!(ei.to_i64(), vec![0]);
        let want = 1.0 / (1.0 + 1f64.exp());
        assert!((y.to_f64()[0] - want).abs() < 1e-6);
    }

    #[test]
    fn refuses_invalid_arguments() {
        let x = Buf::zeros(DType::F32, 64 * 2);
        let o = Buf::zeros(DType::I32, 64);
        let good = MoeGatingTopKArgs {
            x: x.tensor(&[2, 64]),
            bias: Some(x.tensor(&[64])),
            k: 4,
            k_group: 2,
            group_count: 8,
            group_select_mode: 1,
            renorm: 0,
            norm_type: 1,
            out_flag: true,
            routed_scaling_factor: 1.0,
            eps: 1e-20,
            y_out: x.tensor(&[2, 4]),
            expert_idx_out: o.tensor(&[2, 4]),
            out_out: Some(x.tensor(&[2, 64])),
        };
        check(&good).unwrap();
        let set = |f: &dyn Fn(&mut MoeGatingTopKArgs)| {
            let mut a = good.clone();
            f(&mut a);
            a
        };
        assert_invalid(
            check(&set(&|a| a.group_count = 7)),
            "groupCount should be positive and divide",
        );
        assert_invalid(check(&set(&|a| a.group_count = 0)), "groupCount");
        assert_invalid(
            check(&set(&|a| a.k_group = 0)),
            "kGroup should be in range [1, 8]",
        );
        assert_invalid(
            check(&set(&|a| a.k_group = 9)),
            "kGroup should be in range [1, 8]",
        );
        assert_invalid(check(&set(&|a| a.k = 17)), "k should be in range [1, 16]");
        assert_invalid(check(&set(&|a| a.k = 0)), "k should be in range");
        assert_invalid(check(&set(&|a| a.renorm = 1)), "renorm only supports 0");
        assert_invalid(check(&set(&|a| a.norm_type = 2)), "normType should be 0");
        assert_invalid(
            check(&set(&|a| a.group_select_mode = 2)),
            "groupSelectMode should be 0 or 1",
        );
        assert_invalid(
            check(&set(&|a| {
                a.group_count = 64;
                a.k_group = 1;
                a.k = 1;
            })),
            "should be greater than groupSelectMode",
        );
        assert_invalid(
            check(&set(&|a| a.out_out = None)),
            "outOut must not be null",
        );
        assert_invalid(
            check(&set(&|a| a.out_out.as_mut().unwrap().dtype = DType::F16)),
            "outOut dtype DT_FLOAT16",
        );
        assert_invalid(
            check(&set(&|a| a.bias = Some(x.tensor(&[32])))),
            "the shape of biasOptional should be [64]",
        );
        assert_invalid(
            check(&set(&|a| a.bias.as_mut().unwrap().dtype = DType::F16)),
            "biasOptional dtype",
        );
        assert_invalid(
            check(&set(&|a| a.y_out.dtype = DType::BF16)),
            "yOut dtype DT_BF16",
        );
        assert_invalid(
            check(&set(&|a| a.expert_idx_out.dtype = DType::I64)),
            "expertIdxOut dtype DT_INT64",
        );
        assert_invalid(
            check(&set(&|a| a.y_out = x.tensor(&[2, 5]))),
            "the shape of yOut should be [2, 4]",
        );
        assert_invalid(check(&set(&|a| a.x = x.tensor(&[]))), "x should be 1-8D");
        assert_invalid(
            check(&set(&|a| a.x.dtype = DType::F64)),
            "x dtype DT_DOUBLE",
        );
        // E > 2048, and the aligned-group limit: 40 groups of 40 experts → 64·40 > 2048.
        let big = Buf::zeros(DType::F32, 4096);
        let a = set(&|a| {
            a.x = big.tensor(&[1, 4096]);
            a.bias = None;
            a.out_flag = false;
        });
        assert_invalid(check(&a), "should be in range [1, 2048]");
        let a = set(&|a| {
            a.x = big.tensor(&[1, 1600]);
            a.bias = None;
            a.out_flag = false;
            a.group_count = 40;
        });
        assert_invalid(check(&a), "align32(E / groupCount) * groupCount");
    }
}
