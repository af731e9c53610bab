//! `aclnnMoeInitRoutingV3`: dropless permutation of token rows into expert
//! order, restricted to an active expert range, with optional per-row scale
//! gathering or dynamic int8 quantisation.
//!
//! With `expertIdx [N, K]` flattened row-major (source `t·K + j`) and the
//! active range `[start, end)` (`activeExpertRangeOptional`, default
//! `[0, expertNum)`): ids outside the range sort last (ids below `start` are
//! treated as +∞), `order` is a **stable** argsort, and `A` (availableIdxNum)
//! is the number of ids inside the range. Then for `i < A`:
//! - `expandedXOut[i] = x[order[i] / K]` (quantised when `quantMode = 1`);
//! - `rowIdxType = 0` ("gather"): `expandedRowIdxOut[order[i]] = i`, every
//!   other entry `-1` — indexed by source, what FinalizeRoutingV2 mode 2 reads;
//! - `rowIdxType = 1` ("scatter"): `expandedRowIdxOut[i] = order[i]`;
//! - `expandedScaleOut[i] = scale[order[i] / K]` when a `[N]` scale is given
//!   (non-quantised), or the row's dynamic quantisation scale.
//!
//! Counts (INT64), over the active range: `expertTokensNumType = 1` counts per
//! expert `[end - start]`, `0` their inclusive cumulative sum, `2` rows of
//! `(expert id, count)` for the experts with tokens, in id order, in an
//! `[E, 2]` output whose remaining rows are zero.
//!
//! Dynamic quantisation (`quantMode = 1`, float `x`): the row is multiplied by
//! the smoothing scale of its expert (`scaleOptional [end - start, H]`) when
//! given, `s = max|row| / 127`, `q = round(row / s)` (round half to even,
//! saturated to int8; an all-zero row gives `s = 0`, `q = 0`), and `s` goes
//! to `expandedScaleOut`.
//!
//! Decisions where CANN leaves things unspecified: entries past `A` (rows of
//! `expandedXOut`, `expandedScaleOut`, and `expandedRowIdxOut` for
//! `rowIdxType = 1`) are "undefined" on the device; here they are written as
//! zero (`-1` for row indices) so results are deterministic. `activeNum` is
//! documented as unused and required to equal `N·K`; 0 is accepted as well
//! and means the same. Static quantisation (`quantMode = 0`) and drop/pad
//! mode are refused, as the A2/A3 implementation refuses them;
//! `expertTokensNumType = 0` (cumsum) is accepted although A2/A3 kernels only
//! implement 1 and 2.

use super::{Rows, check_dtype, check_rank, check_shape, check_view, fmt_shape, require};
use crate::tensor::{DType, KernelError, TensorArg};

const OP: &str = "aclnnMoeInitRoutingV3";

/// Arguments of `aclnnMoeInitRoutingV3GetWorkspaceSize(x, expertIdx,
/// scaleOptional, offsetOptional, activeNum, expertCapacity, expertNum,
/// dropPadMode, expertTokensNumType, expertTokensNumFlag, quantMode,
/// activeExpertRangeOptional, rowIdxType, expandedXOut, expandedRowIdxOut,
/// expertTokensCountOrCumsumOut, expandedScaleOut, ...)`.
#[derive(Debug, Clone)]
pub struct MoeInitRoutingV3Args {
    /// `[N, H]`: FLOAT16/BFLOAT16/FLOAT32, or INT8 without quantisation.
    pub x: TensorArg,
    /// `[N, K]` INT32.
    pub expert_idx: TensorArg,
    /// FLOAT32: `[N]` without quantisation, `[end - start, H]` for dynamic quantisation.
    pub scale: Option<TensorArg>,
    /// Must be null (unused by the supported modes).
    pub offset: Option<TensorArg>,
    pub active_num: i64,
    pub expert_capacity: i64,
    pub expert_num: i64,
    pub drop_pad_mode: i64,
    /// 0: cumsum; 1: count; 2: (expert, count) pairs.
    pub expert_tokens_num_type: i64,
    pub expert_tokens_num_flag: bool,
    /// -1: none; 1: dynamic per-row int8.
    pub quant_mode: i64,
    /// The `aclIntArray` `[expertStart, expertEnd)`, if given.
    pub active_expert_range: Option<Vec<i64>>,
    /// 0: gather index; 1: scatter index.
    pub row_idx_type: i64,
    /// `[N·K, H]`: dtype of `x`, INT8 when quantising.
    pub expanded_x_out: TensorArg,
    /// `[N·K]` INT32.
    pub expanded_row_idx_out: TensorArg,
    /// INT64 `[end - start]` (types 0, 1) or `[E, 2]` (type 2).
    pub expert_tokens_count_or_cumsum_out: TensorArg,
    /// `[N·K]` FLOAT32; required when quantising or when `scale` is given.
    pub expanded_scale_out: Option<TensorArg>,
}

fn invalid(msg: String) -> KernelError {
    KernelError::invalid(format!("{OP}: {msg}"))
}

/// The active range `[start, end)` of validated arguments.
fn range(args: &MoeInitRoutingV3Args) -> (i64, i64) {
    match args.active_expert_range.as_deref() {
        Some([s, e]) => (*s, *e),
        _ => (0, args.expert_num),
    }
}

/// Validate what `aclnnMoeInitRoutingV3GetWorkspaceSize` validates.
pub fn check(args: &MoeInitRoutingV3Args) -> Result<(), KernelError> {
    let (x, ei) = (&args.x, &args.expert_idx);
    check_view(OP, "x", x)?;
    check_view(OP, "expertIdx", ei)?;
    check_dtype(
        OP,
        "x",
        x,
        &[DType::F16, DType::BF16, DType::F32, DType::I8],
    )?;
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
    let total = n * k;
    if args.active_num != 0 && args.active_num != total {
        return Err(invalid(format!(
            "activeNum should be equal to NUM_ROWS * K = {total} (or 0), but got {}.",
            args.active_num
        )));
    }
    if args.expert_capacity < 0 {
        return Err(invalid(format!(
            "expertCapacity cannot be less than 0, but got {}.",
            args.expert_capacity
        )));
    }
    if args.drop_pad_mode != 0 {
        return Err(invalid(format!(
            "dropPadMode only supports 0 (dropless), but got {}.",
            args.drop_pad_mode
        )));
    }
    let ty = args.expert_tokens_num_type;
    if !(0..=2).contains(&ty) {
        return Err(invalid(format!(
            "expertTokensNumType should be 0 (cumsum), 1 (count) or 2 (key_value), but got {ty}."
        )));
    }
    let e = args.expert_num;
    let max_e = if ty == 2 { 5120 } else { 10240 };
    if e < 0 || e > max_e {
        return Err(invalid(format!(
            "expertNum should be in range [0, {max_e}] for expertTokensNumType {ty}, but got {e}."
        )));
    }
    if !args.expert_tokens_num_flag {
        return Err(invalid(
            "expertTokensNumFlag only supports true, but got false.".to_string(),
        ));
    }
    match args.quant_mode {
        -1 | 1 => {}
        0 => {
            return Err(invalid(
                "quantMode 0 (static quant) is not supported; use -1 (none) or 1 (dynamic quant)."
                    .to_string(),
            ));
        }
        q => {
            return Err(invalid(format!(
                "quantMode should be -1 (none) or 1 (dynamic quant), but got {q}."
            )));
        }
    }
    if let Some(r) = args.active_expert_range.as_ref().filter(|r| r.len() != 2) {
        return Err(invalid(format!(
            "activeExpertRangeOptional should have 2 elements [expertStart, expertEnd), but got {}.",
            r.len()
        )));
    }
    let (start, end) = range(args);
    if start < 0 || start >= end || end > e {
        return Err(invalid(format!(
            "activeExpertRange [{start}, {end}) should satisfy 0 <= expertStart < expertEnd <= expertNum ({e})."
        )));
    }
    if args.row_idx_type != 0 && args.row_idx_type != 1 {
        return Err(invalid(format!(
            "rowIdxType should be 0 or 1, but got {}.",
            args.row_idx_type
        )));
    }
    let quant = args.quant_mode == 1;
    if quant && x.dtype == DType::I8 {
        return Err(invalid(
            "x dtype DT_INT8 cannot be quantised; quantMode 1 needs DT_FLOAT16, DT_BF16 or DT_FLOAT."
                .to_string(),
        ));
    }
    if args.offset.is_some() {
        return Err(invalid(
            "offsetOptional should be null when quantMode is -1 or 1.".to_string(),
        ));
    }
    if let Some(s) = &args.scale {
        check_view(OP, "scaleOptional", s)?;
        check_dtype(OP, "scaleOptional", s, &[DType::F32])?;
        if quant {
            check_shape(OP, "scaleOptional", s, &[end - start, h])?;
        } else {
            check_shape(OP, "scaleOptional", s, &[n])?;
        }
    }
    let xo = &args.expanded_x_out;
    check_view(OP, "expandedXOut", xo)?;
    let want = if quant { DType::I8 } else { x.dtype };
    if xo.dtype != want {
        return Err(invalid(format!(
            "expandedXOut dtype should be {} for quantMode {}, but got {}.",
            want.name(),
            args.quant_mode,
            xo.dtype.name()
        )));
    }
    check_shape(OP, "expandedXOut", xo, &[total, h])?;
    let ro = &args.expanded_row_idx_out;
    check_view(OP, "expandedRowIdxOut", ro)?;
    check_dtype(OP, "expandedRowIdxOut", ro, &[DType::I32])?;
    check_shape(OP, "expandedRowIdxOut", ro, &[total])?;
    let co = &args.expert_tokens_count_or_cumsum_out;
    check_view(OP, "expertTokensCountOrCumsumOut", co)?;
    check_dtype(OP, "expertTokensCountOrCumsumOut", co, &[DType::I64])?;
    let cshape = if ty == 2 {
        vec![e, 2]
    } else {
        vec![end - start]
    };
    check_shape(OP, "expertTokensCountOrCumsumOut", co, &cshape)?;
    if quant || args.scale.is_some() {
        let why = if quant {
            "quantMode is 1"
        } else {
            "scaleOptional is given"
        };
        let so = require(OP, "expandedScaleOut", &args.expanded_scale_out, why)?;
        check_view(OP, "expandedScaleOut", so)?;
        check_dtype(OP, "expandedScaleOut", so, &[DType::F32])?;
        check_shape(OP, "expandedScaleOut", so, &[total])?;
    } else if let Some(so) = &args.expanded_scale_out {
        check_view(OP, "expandedScaleOut", so)?;
        check_dtype(OP, "expandedScaleOut", so, &[DType::F32])?;
        if so.shape != [total] {
            return Err(invalid(format!(
                "the shape of expandedScaleOut should be [{total}], but got {}.",
                fmt_shape(&so.shape)
            )));
        }
    }
    Ok(())
}

/// Round half to even and saturate to int8.
fn quantise(v: f32) -> f32 {
    v.round_ties_even().clamp(-128.0, 127.0)
}

/// Compute `aclnnMoeInitRoutingV3`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; outputs are writable.
pub unsafe fn run(args: &MoeInitRoutingV3Args) -> Result<(), KernelError> {
    check(args)?;
    let (n, h, k) = (
        args.x.shape[0] as usize,
        args.x.shape[1] as usize,
        args.expert_idx.shape[1] as usize,
    );
    let total = n * k;
    let (start, end) = range(args);
    let quant = args.quant_mode == 1;
    // SAFETY: the caller upholds the invariant for every input.
    let ids = unsafe { args.expert_idx.read_i64() };
    // SAFETY: as above.
    let xs = unsafe { args.x.read_f32() };
    // SAFETY: as above.
    let scale = args.scale.as_ref().map(|s| unsafe { s.read_f32() });

    let key = |v: i64| if v < start { i64::MAX } else { v };
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&p| key(ids[p]));
    let avail = ids.iter().filter(|&&v| (start..end).contains(&v)).count();

    let mut row_idx = vec![-1i64; total];
    for (i, &src) in order.iter().take(avail).enumerate() {
        if args.row_idx_type == 0 {
            row_idx[src] = i as i64;
        } else {
            row_idx[i] = src as i64;
        }
    }
    // Row `i < avail` of the outputs, from the inputs already read: the
    // expanded row (quantised when asked) and its scale.
    let expanded_row = |i: usize| -> (Vec<f32>, f32) {
        let src = order[i];
        let t = src / k;
        let row = &xs[t * h..(t + 1) * h];
        if !quant {
            return (row.to_vec(), scale.as_ref().map_or(0.0, |s| s[t]));
        }
        let smooth = scale.as_ref().map(|s| {
            let e = (ids[src] - start) as usize;
            &s[e * h..(e + 1) * h]
        });
        let scaled: Vec<f32> = match smooth {
            Some(m) => row.iter().zip(m).map(|(&a, &b)| a * b).collect(),
            None => row.to_vec(),
        };
        let s = scaled.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
        let q = scaled
            .iter()
            .map(|&v| if s > 0.0 { quantise(v / s) } else { 0.0 })
            .collect();
        (q, s)
    };

    let width = (end - start) as usize;
    let mut counts = vec![0i64; width];
    for &v in &ids {
        if (start..end).contains(&v) {
            counts[(v - start) as usize] += 1;
        }
    }
    let tokens: Vec<i64> = match args.expert_tokens_num_type {
        0 => counts
            .iter()
            .scan(0i64, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect(),
        1 => counts,
        _ => {
            let mut pairs = vec![0i64; args.expert_num as usize * 2];
            let nonzero = counts.iter().enumerate().filter(|&(_, &c)| c > 0);
            for (row, (j, &c)) in nonzero.enumerate() {
                pairs[row * 2] = start + j as i64;
                pairs[row * 2 + 1] = c;
            }
            pairs
        }
    };
    // SAFETY: check passed, so every output has the element count written
    // here; the caller upholds the invariant for outputs.
    unsafe {
        let out_rows = Rows::new(&args.expanded_x_out);
        let mut exs = vec![0.0f32; total];
        for (i, sc) in exs.iter_mut().enumerate().take(avail) {
            let (row, s) = expanded_row(i);
            out_rows.write(i, &row);
            *sc = s;
        }
        let zeros = vec![0.0f32; h];
        for i in avail..total {
            out_rows.write(i, &zeros);
        }
        args.expanded_row_idx_out.write_i64(&row_idx);
        args.expert_tokens_count_or_cumsum_out.write_i64(&tokens);
        if let Some(so) = args
            .expanded_scale_out
            .as_ref()
            .filter(|_| quant || scale.is_some())
        {
            so.write_f32(&exs);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng, assert_invalid, padded, padded_i64, round};

    struct Ref {
        x: Vec<f64>,
        row: Vec<i64>,
        scale: Vec<f64>,
        tokens: Vec<i64>,
    }

    /// Reference: walk the experts of the range in order and, for each,
    /// scan all sources in order (an O(E·N·K) bucket walk).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f64],
        ids: &[i64],
        sc: Option<&[f64]>,
        n: usize,
        h: usize,
        k: usize,
        e: usize,
        start: i64,
        end: i64,
        ty: i64,
        rit: i64,
        quant: bool,
    ) -> Ref {
        let total = n * k;
        let mut rx = vec![0.0; total * h];
        let mut row = vec![-1i64; total];
        let mut scale = vec![0.0; total];
        let mut counts = Vec::new();
        let mut i = 0usize;
        for ex in start..end {
            let mut c = 0;
            for p in 0..total {
                if ids[p] != ex {
                    continue;
                }
                c += 1;
                let t = p / k;
                if rit == 0 {
                    row[p] = i as i64;
                } else {
                    row[i] = p as i64;
                }
                if quant {
                    let vals: Vec<f64> = (0..h)
                        .map(|c| {
                            x[t * h + c] * sc.map_or(1.0, |m| m[(ex - start) as usize * h + c])
                        })
                        .collect();
                    let mx = vals.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                    let s = mx / 127.0;
                    for c in 0..h {
                        rx[i * h + c] = if s > 0.0 {
                            (vals[c] / s).round_ties_even().clamp(-128.0, 127.0)
                        } else {
                            0.0
                        };
                    }
                    scale[i] = s;
                } else {
                    for c in 0..h {
                        rx[i * h + c] = x[t * h + c];
                    }
                    if let Some(m) = sc {
                        scale[i] = m[t];
                    }
                }
                i += 1;
            }
            counts.push(c);
        }
        let tokens = match ty {
            0 => {
                let mut acc = 0;
                counts
                    .iter()
                    .map(|c| {
                        acc += c;
                        acc
                    })
                    .collect()
            }
            1 => counts,
            _ => {
                let mut v = vec![0i64; e * 2];
                let mut r = 0;
                for (j, &c) in counts.iter().enumerate() {
                    if c > 0 {
                        v[r * 2] = start + j as i64;
                        v[r * 2 + 1] = c;
                        r += 1;
                    }
                }
                v
            }
        };
        Ref {
            x: rx,
            row,
            scale,
            tokens,
        }
    }

    struct Case {
        dtype: DType,
        n: usize,
        h: usize,
        k: usize,
        e: usize,
        range: Option<(i64, i64)>,
        ty: i64,
        rit: i64,
        quant: bool,
        scale: bool,
        strided: bool,
        seed: u64,
    }

    fn run_case(c: Case) {
        let mut rng = Rng::new(c.seed);
        let xv: Vec<f32> = (0..c.n * c.h).map(|_| rng.f32() * 2.0).collect();
        // Ids only in the lower 3/4, so some experts get no tokens.
        let ids: Vec<i64> = (0..c.n * c.k)
            .map(|_| rng.below((c.e * 3).div_ceil(4) as u64) as i64)
            .collect();
        let (start, end) = c.range.unwrap_or((0, c.e as i64));
        let (_xb, x, _ib, ei) = if c.strided {
            let (xb, x) = padded(c.dtype, &[c.n as i64, c.h as i64], &xv);
            let (ib, ei) = padded_i64(DType::I32, &[c.n as i64, c.k as i64], &ids);
            (xb, x, ib, ei)
        } else {
            let xb = Buf::from_f32(c.dtype, &xv);
            let ib = Buf::from_i64(DType::I32, &ids);
            let (x, ei) = (
                xb.tensor(&[c.n as i64, c.h as i64]),
                ib.tensor(&[c.n as i64, c.k as i64]),
            );
            (xb, x, ib, ei)
        };
        let sc_shape: Vec<i64> = if c.quant {
            vec![end - start, c.h as i64]
        } else {
            vec![c.n as i64]
        };
        let sc_vals: Vec<f32> = (0..sc_shape.iter().product::<i64>())
            .map(|_| rng.f32() + 1.5)
            .collect();
        let sb = Buf::from_f32(DType::F32, &sc_vals);
        let total = c.n * c.k;
        let xo = Buf::zeros(if c.quant { DType::I8 } else { c.dtype }, total * c.h);
        let ro = Buf::zeros(DType::I32, total);
        let cshape: Vec<i64> = if c.ty == 2 {
            vec![c.e as i64, 2]
        } else {
            vec![end - start]
        };
        let co = Buf::zeros(DType::I64, cshape.iter().product::<i64>() as usize);
        let so = Buf::zeros(DType::F32, total);
        let args = MoeInitRoutingV3Args {
            x,
            expert_idx: ei,
            scale: c.scale.then(|| sb.tensor(&sc_shape)),
            offset: None,
            active_num: total as i64,
            expert_capacity: 0,
            expert_num: c.e as i64,
            drop_pad_mode: 0,
            expert_tokens_num_type: c.ty,
            expert_tokens_num_flag: true,
            quant_mode: if c.quant { 1 } else { -1 },
            active_expert_range: c.range.map(|(s, e)| vec![s, e]),
            row_idx_type: c.rit,
            expanded_x_out: xo.tensor(&[total as i64, c.h as i64]),
            expanded_row_idx_out: ro.tensor(&[total as i64]),
            expert_tokens_count_or_cumsum_out: co.tensor(&cshape),
            expanded_scale_out: Some(so.tensor(&[total as i64])),
        };
        check(&args).unwrap();
        // SAFETY: every view lies inside its buffer.
        unsafe { run(&args).unwrap() };
        let xr: Vec<f64> = xv.iter().map(|&v| round(c.dtype, f64::from(v))).collect();
        let scr: Vec<f64> = sc_vals.iter().map(|&v| f64::from(v)).collect();
        let want = reference(
            &xr,
            &ids,
            c.scale.then_some(&scr[..]),
            c.n,
            c.h,
            c.k,
            c.e,
            start,
            end,
            c.ty,
            c.rit,
            c.quant,
        );
        assert_eq!(ro.to_i64(), want.row, "expandedRowIdxOut");
        assert_eq!(co.to_i64(), want.tokens, "expertTokensCountOrCumsumOut");
        let gx = xo.to_f64();
        if c.quant {
            // f32 vs f64 may differ by one step on a value near .5.
            for (i, (g, w)) in gx.iter().zip(&want.x).enumerate() {
                assert!((g - w).abs() <= 1.0, "expandedXOut[{i}]: {g} vs {w}");
            }
            for (g, w) in so.to_f64().iter().zip(&want.scale) {
                assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "scale {g} vs {w}");
            }
        } else {
            assert_eq!(gx, want.x, "expandedXOut");
            let gs: Vec<f64> = so.to_f64();
            let ws: Vec<f64> = want.scale.iter().map(|&v| f64::from(v as f32)).collect();
            assert_eq!(gs, ws, "expandedScaleOut");
        }
    }

    #[test]
    fn dropless_variants_match_reference() {
        let base = |seed| Case {
            dtype: DType::F32,
            n: 8,
            h: 4,
            k: 3,
            e: 8,
            range: None,
            ty: 1,
            rit: 0,
            quant: false,
            scale: false,
            strided: false,
            seed,
        };
        run_case(base(51));
        run_case(Case {
            ty: 0,
            rit: 1,
            scale: true,
            ..base(52)
        });
        run_case(Case {
            ty: 2,
            range: Some((2, 5)),
            ..base(53)
        });
        run_case(Case {
            dtype: DType::BF16,
            range: Some((1, 4)),
            rit: 1,
            strided: true,
            scale: true,
            ..base(54)
        });
        run_case(Case {
            dtype: DType::F16,
            n: 1,
            k: 8,
            ty: 2,
            ..base(55)
        }); // one token, k = E
        run_case(Case {
            dtype: DType::I8,
            ty: 0,
            range: Some((3, 8)),
            ..base(56)
        });
    }

    #[test]
    fn dynamic_quant_matches_reference() {
        let base = |seed| Case {
            dtype: DType::BF16,
            n: 6,
            h: 16,
            k: 2,
            e: 8,
            range: None,
            ty: 2,
            rit: 0,
            quant: true,
            scale: false,
            strided: false,
            seed,
        };
        run_case(base(61));
        run_case(Case {
            scale: true,
            range: Some((2, 6)),
            ty: 1,
            ..base(62)
        });
        run_case(Case {
            dtype: DType::F32,
            scale: true,
            rit: 1,
            strided: true,
            ..base(63)
        });
    }

    #[test]
    fn refuses_invalid_arguments() {
        let x = Buf::zeros(DType::F32, 64);
        let ei = Buf::zeros(DType::I32, 64);
        let co = Buf::zeros(DType::I64, 64);
        let good = MoeInitRoutingV3Args {
            x: x.tensor(&[3, 4]),
            expert_idx: ei.tensor(&[3, 2]),
            scale: None,
            offset: None,
            active_num: 6,
            expert_capacity: 0,
            expert_num: 8,
            drop_pad_mode: 0,
            expert_tokens_num_type: 1,
            expert_tokens_num_flag: true,
            quant_mode: -1,
            active_expert_range: Some(vec![2, 6]),
            row_idx_type: 0,
            expanded_x_out: x.tensor(&[6, 4]),
            expanded_row_idx_out: ei.tensor(&[6]),
            expert_tokens_count_or_cumsum_out: co.tensor(&[4]),
            expanded_scale_out: None,
        };
        check(&good).unwrap();
        let set = |f: &dyn Fn(&mut MoeInitRoutingV3Args)| {
            let mut a = good.clone();
            f(&mut a);
            check(&a)
        };
        assert_invalid(set(&|a| a.x.dtype = DType::I32), "x dtype DT_INT32");
        assert_invalid(
            set(&|a| a.expert_idx.dtype = DType::I64),
            "expertIdx dtype DT_INT64",
        );
        assert_invalid(
            set(&|a| a.expert_idx = ei.tensor(&[2, 3])),
            "first dim of x (3) and expertIdx (2)",
        );
        assert_invalid(
            set(&|a| a.active_num = 5),
            "activeNum should be equal to NUM_ROWS * K = 6",
        );
        assert_invalid(
            set(&|a| a.expert_capacity = -1),
            "expertCapacity cannot be less than 0",
        );
        assert_invalid(set(&|a| a.drop_pad_mode = 1), "dropPadMode only supports 0");
        assert_invalid(
            set(&|a| a.expert_tokens_num_type = 3),
            "expertTokensNumType should be 0",
        );
        assert_invalid(
            set(&|a| a.expert_num = 10241),
            "expertNum should be in range [0, 10240]",
        );
        assert_invalid(
            set(&|a| {
                a.expert_tokens_num_type = 2;
                a.expert_num = 5121;
            }),
            "expertNum should be in range [0, 5120]",
        );
        assert_invalid(
            set(&|a| a.expert_tokens_num_flag = false),
            "expertTokensNumFlag only supports true",
        );
        assert_invalid(
            set(&|a| a.quant_mode = 0),
            "quantMode 0 (static quant) is not supported",
        );
        assert_invalid(set(&|a| a.quant_mode = 2), "quantMode should be -1");
        assert_invalid(
            set(&|a| a.active_expert_range = Some(vec![1])),
            "should have 2 elements",
        );
        assert_invalid(
            set(&|a| a.active_expert_range = Some(vec![4, 4])),
            "0 <= expertStart < expertEnd <= expertNum (8)",
        );
        assert_invalid(
            set(&|a| a.active_expert_range = Some(vec![0, 9])),
            "expertEnd <= expertNum",
        );
        assert_invalid(
            set(&|a| a.active_expert_range = Some(vec![-1, 3])),
            "0 <= expertStart",
        );
        assert_invalid(set(&|a| a.row_idx_type = 2), "rowIdxType should be 0 or 1");
        assert_invalid(
            set(&|a| a.offset = Some(x.tensor(&[1]))),
            "offsetOptional should be null",
        );
        assert_invalid(
            set(&|a| a.scale = Some(x.tensor(&[4]))),
            "the shape of scaleOptional should be [3]",
        );
        assert_invalid(
            set(&|a| a.scale = Some(x.tensor(&[3]))),
            "expandedScaleOut must not be null when scaleOptional is given",
        );
        assert_invalid(
            set(&|a| {
                a.scale = Some(ei.tensor(&[3]));
                a.expanded_scale_out = Some(x.tensor(&[6]));
            }),
            "scaleOptional dtype DT_INT32",
        );
        assert_invalid(
            set(&|a| a.expanded_x_out.dtype = DType::F16),
            "expandedXOut dtype should be DT_FLOAT",
        );
        assert_invalid(
            set(&|a| a.expanded_x_out = x.tensor(&[5, 4])),
            "the shape of expandedXOut should be [6, 4]",
        );
        assert_invalid(
            set(&|a| a.expanded_row_idx_out.dtype = DType::I64),
            "expandedRowIdxOut dtype DT_INT64",
        );
        assert_invalid(
            set(&|a| a.expert_tokens_count_or_cumsum_out = co.tensor(&[8])),
            "should be [4]",
        );
        assert_invalid(set(&|a| a.expert_tokens_num_type = 2), "should be [8, 2]");
        assert_invalid(
            set(&|a| a.expert_tokens_count_or_cumsum_out.dtype = DType::I32),
            "expertTokensCountOrCumsumOut dtype DT_INT32",
        );
        // Quantisation specifics.
        let q = |f: &dyn Fn(&mut MoeInitRoutingV3Args)| {
            set(&|a| {
                a.quant_mode = 1;
                a.expanded_x_out.dtype = DType::I8;
                a.expanded_scale_out = Some(x.tensor(&[6]));
                f(a)
            })
        };
        q(&|_| {}).unwrap();
        q(&|a| a.scale = Some(x.tensor(&[4, 4]))).unwrap();
        assert_invalid(
            q(&|a| a.scale = Some(x.tensor(&[3]))),
            "the shape of scaleOptional should be [4, 4]",
        );
        assert_invalid(
            q(&|a| a.expanded_x_out.dtype = DType::F32),
            "expandedXOut dtype should be DT_INT8",
        );
        assert_invalid(
            q(&|a| a.expanded_scale_out = None),
            "expandedScaleOut must not be null when quantMode is 1",
        );
        assert_invalid(
            q(&|a| {
                a.x.dtype = DType::I8;
            }),
            "cannot be quantised",
        );
    }
}
