//! The MoE (mixture of experts) routing operators of a DeepSeek-style layer,
//! one module per operator, and the checks and row math they share.
//!
//! | module | operator |
//! |---|---|
//! | [`gating_top_k_softmax`] | aclnnMoeGatingTopKSoftmax |
//! | [`gating_top_k_softmax_v2`] | aclnnMoeGatingTopKSoftmaxV2 |
//! | [`gating_top_k`] | aclnnMoeGatingTopK (grouped sigmoid/softmax routing) |
//! | [`init_routing_v2`] | aclnnMoeInitRoutingV2 |
//! | [`init_routing_v3`] | aclnnMoeInitRoutingV3 |
//! | [`compute_expert_tokens`] | aclnnMoeComputeExpertTokens |
//! | [`finalize_routing_v2`] | aclnnMoeFinalizeRoutingV2 |
//!
//! Every `run` first repeats its `check` (so a `run` on unchecked arguments
//! returns the same error instead of touching memory), then validates the
//! index values it dereferences (expert ids, row indices) and returns
//! `ACLNN_ERR_PARAM_INVALID` for out-of-range data rather than reading or
//! writing outside a tensor. Inputs are read completely before any output is
//! written. Selections break ties towards the lower index.

use crate::tensor::{DType, KernelError, TensorArg};

pub mod compute_expert_tokens;
pub mod finalize_routing_v2;
pub mod gating_top_k;
pub mod gating_top_k_softmax;
pub mod gating_top_k_softmax_v2;
pub mod init_routing_v2;
pub mod init_routing_v3;

/// `[a, b, c]` for messages.
pub(crate) fn fmt_shape(shape: &[i64]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The view is well-formed: one stride per dimension, no negative size.
pub(crate) fn check_view(op: &str, name: &str, t: &TensorArg) -> Result<(), KernelError> {
    if t.strides.len() != t.shape.len() {
        return Err(KernelError::invalid(format!(
            "{op}: {name} has {} strides for {} dimensions.",
            t.strides.len(),
            t.shape.len()
        )));
    }
    if let Some(d) = t.shape.iter().find(|&&d| d < 0) {
        return Err(KernelError::invalid(format!(
            "{op}: {name} has a negative dimension {d} in shape {}.",
            fmt_shape(&t.shape)
        )));
    }
    Ok(())
}

/// The tensor's dtype is one of `allowed`.
pub(crate) fn check_dtype(
    op: &str,
    name: &str,
    t: &TensorArg,
    allowed: &[DType],
) -> Result<(), KernelError> {
    if allowed.contains(&t.dtype) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
    Err(KernelError::invalid(format!(
        "{op}: {name} dtype {} is not supported, should be in dtype support list [{}].",
        t.dtype.name(),
        names.join(", ")
    )))
}

/// The tensor's dtype equals `want` (the dtype of `other`).
pub(crate) fn check_same_dtype(
    op: &str,
    name: &str,
    t: &TensorArg,
    other: &str,
    want: DType,
) -> Result<(), KernelError> {
    if t.dtype == want {
        return Ok(());
    }
    Err(KernelError::invalid(format!(
        "{op}: {name} dtype {} should be the same as {other} dtype {}.",
        t.dtype.name(),
        want.name()
    )))
}

/// The tensor's rank lies in `lo..=hi`.
pub(crate) fn check_rank(
    op: &str,
    name: &str,
    t: &TensorArg,
    lo: usize,
    hi: usize,
) -> Result<(), KernelError> {
    let r = t.rank();
    if (lo..=hi).contains(&r) {
        return Ok(());
    }
    let want = if lo == hi {
        format!("{lo}")
    } else {
        format!("{lo}-{hi}")
    };
    Err(KernelError::invalid(format!(
        "{op}: {name} should be {want}D, but got {r}D with shape {}.",
        fmt_shape(&t.shape)
    )))
}

/// The tensor's shape equals `want`.
pub(crate) fn check_shape(
    op: &str,
    name: &str,
    t: &TensorArg,
    want: &[i64],
) -> Result<(), KernelError> {
    if t.shape == want {
        return Ok(());
    }
    Err(KernelError::invalid(format!(
        "{op}: the shape of {name} should be {}, but got {}.",
        fmt_shape(want),
        fmt_shape(&t.shape)
    )))
}

/// A required optional tensor, or a clear error naming why it is required.
pub(crate) fn require<'a>(
    op: &str,
    name: &str,
    t: &'a Option<TensorArg>,
    why: &str,
) -> Result<&'a TensorArg, KernelError> {
    t.as_ref()
        .ok_or_else(|| KernelError::invalid(format!("{op}: {name} must not be null when {why}.")))
}

/// A tensor seen as a sequence of rows along its last dimension (the leading
/// dimensions flattened in row-major order), so that large row gathers and
/// scatters run one row at a time instead of materialising the whole tensor.
pub(crate) struct Rows<'a> {
    t: &'a TensorArg,
    /// Element offset of the first element of each row.
    starts: Vec<i64>,
}

impl<'a> Rows<'a> {
    /// Rows of a validated tensor of rank ≥ 1.
    pub(crate) fn new(t: &'a TensorArg) -> Rows<'a> {
        let lead = t.rank().saturating_sub(1);
        let starts = TensorArg {
            ptr: t.ptr,
            dtype: t.dtype,
            shape: t.shape[..lead].to_vec(),
            strides: t.strides[..lead].to_vec(),
            offset: t.offset,
        }
        .element_offsets();
        Rows { t, starts }
    }

    /// A 1-D view of row `i`; the caller keeps `i` below the row count.
    pub(crate) fn view(&self, i: usize) -> TensorArg {
        let r = self.t.rank();
        TensorArg {
            ptr: self.t.ptr,
            dtype: self.t.dtype,
            shape: self.t.shape[r - 1..].to_vec(),
            strides: self.t.strides[r - 1..].to_vec(),
            offset: self.starts[i],
        }
    }

    /// Row `i` as f32.
    ///
    /// # Safety
    /// The tensor satisfies tensor.rs's module invariant.
    pub(crate) unsafe fn read(&self, i: usize) -> Vec<f32> {
        // SAFETY: row `i` is part of the tensor's view, covered by the invariant.
        unsafe { self.view(i).read_f32() }
    }

    /// Store `values` (one per column) into row `i`.
    ///
    /// # Safety
    /// The tensor satisfies tensor.rs's module invariant and is writable.
    pub(crate) unsafe fn write(&self, i: usize, values: &[f32]) {
        // SAFETY: row `i` is part of the tensor's view, covered by the invariant.
        unsafe { self.view(i).write_f32(values) }
    }
}

/// Max-subtracted softmax of one row, in f32.
pub(crate) fn softmax_row(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The logistic function in f32.
pub(crate) fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Positions of the `k` largest values, largest first, ties to the lower index.
pub(crate) fn top_k_desc(values: &[f32], k: usize) -> Vec<usize> {
    crate::topk::select_top_k(values, k, true, crate::topk::f32_order)
}

/// Stable argsort of integer keys: positions in key order, equal keys in
/// position order.
pub(crate) fn stable_argsort(keys: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    order
}

/// Test helpers shared by the operator tests: a seeded generator and host
/// buffers of any dtype that hand out strided views.
#[cfg(test)]
pub(crate) mod testkit {
    use half::{bf16, f16};

    use crate::tensor::{DType, TensorArg, contiguous_strides};

    pub use crate::testutil::{Buf, Rng};

    /// `v` as stored in `dtype` and read back.
    pub fn round(dtype: DType, v: f64) -> f64 {
        match dtype {
            DType::F16 => f64::from(f16::from_f64(v).to_f32()),
            DType::BF16 => f64::from(bf16::from_f64(v).to_f32()),
            DType::F32 => f64::from(v as f32),
            DType::I8 => f64::from(v as f32 as i8),
            _ => v,
        }
    }

    /// Relative tolerance of one result computed in f32 and stored in `dtype`.
    pub fn tol(dtype: DType) -> f64 {
        match dtype {
            DType::F16 => 2e-3,
            DType::BF16 => 1.6e-2,
            _ => 1e-5,
        }
    }

    /// A logical tensor of `shape` holding `vals` (row-major) stored
    /// non-contiguously: every dimension padded by one element and the view
    /// starting 3 elements in. Returns the storage and the view.
    pub fn padded(dtype: DType, shape: &[i64], vals: &[f32]) -> (Buf, TensorArg) {
        let storage: Vec<i64> = shape.iter().map(|&d| d + 1).collect();
        let strides = contiguous_strides(&storage);
        let len = 3 + storage.iter().product::<i64>() as usize;
        let buf = Buf::zeros(dtype, len);
        let view = buf.view(shape, &strides, 3);
        // SAFETY: the padded view lies inside `buf` (offset 3 plus the
        // storage extent).
        unsafe { view.write_f32(vals) };
        (buf, view)
    }

    /// As [`padded`], for integer values.
    pub fn padded_i64(dtype: DType, shape: &[i64], vals: &[i64]) -> (Buf, TensorArg) {
        let storage: Vec<i64> = shape.iter().map(|&d| d + 1).collect();
        let strides = contiguous_strides(&storage);
        let len = 3 + storage.iter().product::<i64>() as usize;
        let buf = Buf::zeros(dtype, len);
        let view = buf.view(shape, &strides, 3);
        // SAFETY: as in `padded`.
        unsafe { view.write_i64(vals) };
        (buf, view)
    }

    /// Assert `got` matches `want` within `tol(dtype)` relative error.
    pub fn assert_close(got: &[f64], want: &[f64], dtype: DType, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let t = tol(dtype);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= t * (1.0 + w.abs()),
                "{what}: element {i}: got {g}, want {w}"
            );
        }
    }

    /// Assert that `r` is a 161002 error whose message contains `needle`.
    pub fn assert_invalid(r: Result<(), crate::tensor::KernelError>, needle: &str) {
        let e = r.expect_err("expected the arguments to be refused");
        assert_eq!(e.code, crate::tensor::PARAM_INVALID, "{}", e.message);
        assert!(
            e.message.contains(needle),
            "message {:?} does not contain {needle:?}",
            e.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::finalize_routing_v2::{MoeFinalizeRoutingV2Args, run as finalize};
    use super::gating_top_k::{MoeGatingTopKArgs, run as gate};
    use super::init_routing_v2::{MoeInitRoutingV2Args, run as init_v2};
    use super::init_routing_v3::{MoeInitRoutingV3Args, run as init_v3};
    use super::testkit::{Buf, Rng};
    use crate::tensor::DType;

    /// Route tokens, let every expert be the identity, and combine: the
    /// result must be `Σ_k w[n, k] · x[n]` for kept tokens, which checks that
    /// the index spaces of gating, permutation and combination agree.
    #[test]
    fn gate_permute_combine_round_trip() {
        let (n, h, e, k) = (7usize, 5usize, 16usize, 4usize);
        let mut rng = Rng::new(99);
        let xv: Vec<f32> = (0..n * h).map(|_| rng.f32()).collect();
        let logits: Vec<f32> = (0..n * e).map(|_| rng.f32()).collect();
        let x = Buf::from_f32(DType::F32, &xv);
        let lg = Buf::from_f32(DType::F32, &logits);
        let w = Buf::zeros(DType::F32, n * k);
        let ids = Buf::zeros(DType::I32, n * k);
        let g = MoeGatingTopKArgs {
            x: lg.tensor(&[n as i64, e as i64]),
            bias: None,
            k: k as i64,
            k_group: 2,
            group_count: 4,
            group_select_mode: 1,
            renorm: 0,
            norm_type: 1,
            out_flag: false,
            routed_scaling_factor: 1.0,
            eps: 1e-20,
            y_out: w.tensor(&[n as i64, k as i64]),
            expert_idx_out: ids.tensor(&[n as i64, k as i64]),
            out_out: None,
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { gate(&g).unwrap() };
        let weights = w.to_f32();
        let nk = (n * k) as i64;

        let combine = |expanded: &Buf, ex_shape: &[i64], rows: &Buf, mode: i64| {
            let out = Buf::zeros(DType::F32, n * h);
            let f = MoeFinalizeRoutingV2Args {
                expanded_x: expanded.tensor(ex_shape),
                expanded_row_idx: rows.tensor(&[nk]),
                x1: None,
                x2: None,
                bias: None,
                scales: Some(w.tensor(&[n as i64, k as i64])),
                expert_idx: None,
                drop_pad_mode: mode,
                out: out.tensor(&[n as i64, h as i64]),
            };
            // SAFETY: contiguous views of their buffers.
            unsafe { finalize(&f).unwrap() };
            out.to_f32()
        };
        let expect = |kept: &dyn Fn(usize, usize) -> bool| -> Vec<f32> {
            (0..n * h)
                .map(|p| {
                    let (t, c) = (p / h, p % h);
                    (0..k)
                        .filter(|&j| kept(t, j))
                        .map(|j| weights[t * k + j] * xv[t * h + c])
                        .sum()
                })
                .collect()
        };
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
        };

        // V2 dropless → FinalizeRoutingV2 mode 2.
        let ex = Buf::zeros(DType::F32, n * k * h);
        let rows = Buf::zeros(DType::I32, n * k);
        let a = MoeInitRoutingV2Args {
            x: x.tensor(&[n as i64, h as i64]),
            expert_idx: ids.tensor(&[n as i64, k as i64]),
            active_num: 0,
            expert_capacity: 0,
            expert_num: e as i64,
            drop_pad_mode: 0,
            expert_tokens_count_or_cumsum_flag: 0,
            expert_tokens_before_capacity_flag: false,
            expanded_x_out: ex.tensor(&[nk, h as i64]),
            expanded_row_idx_out: rows.tensor(&[nk]),
            expert_tokens_count_or_cumsum_out: None,
            expert_tokens_before_capacity_out: None,
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { init_v2(&a).unwrap() };
        let got = combine(&ex, &[nk, h as i64], &rows, 2);
        assert!(close(&got, &expect(&|_, _| true)), "V2 dropless");

        // V2 drop/pad with capacity 1 → mode 3: only the first token (in
        // source order) of each expert survives.
        let ex = Buf::zeros(DType::F32, e * h);
        let mut b = a.clone();
        b.drop_pad_mode = 1;
        b.expert_capacity = 1;
        b.expanded_x_out = ex.tensor(&[e as i64, 1, h as i64]);
        // SAFETY: contiguous views of their buffers.
        unsafe { init_v2(&b).unwrap() };
        let got = combine(&ex, &[e as i64, 1, h as i64], &rows, 3);
        let idv = ids.to_i64();
        let first = |t: usize, j: usize| {
            let p = t * k + j;
            (0..p).all(|q| idv[q] != idv[p])
        };
        assert!(close(&got, &expect(&first)), "V2 drop/pad");

        // V3 with the expert range [4, 12), gather index → mode 2; rows
        // routed outside the range are -1 and contribute nothing.
        let ex = Buf::zeros(DType::F32, n * k * h);
        let counts = Buf::zeros(DType::I64, 8);
        let c = MoeInitRoutingV3Args {
            x: x.tensor(&[n as i64, h as i64]),
            expert_idx: ids.tensor(&[n as i64, k as i64]),
            scale: None,
            offset: None,
            active_num: nk,
            expert_capacity: 0,
            expert_num: e as i64,
            drop_pad_mode: 0,
            expert_tokens_num_type: 1,
            expert_tokens_num_flag: true,
            quant_mode: -1,
            active_expert_range: Some(vec![4, 12]),
            row_idx_type: 0,
            expanded_x_out: ex.tensor(&[nk, h as i64]),
            expanded_row_idx_out: rows.tensor(&[nk]),
            expert_tokens_count_or_cumsum_out: counts.tensor(&[8]),
            expanded_scale_out: None,
        };
        // SAFETY: contiguous views of their buffers.
        unsafe { init_v3(&c).unwrap() };
        let got = combine(&ex, &[nk, h as i64], &rows, 2);
        let in_range = |t: usize, j: usize| (4..12).contains(&idv[t * k + j]);
        assert!(close(&got, &expect(&in_range)), "V3 expert range");
    }
}
