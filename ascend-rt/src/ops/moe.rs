//! Mixture-of-experts operators: gating (`aclnnMoeGatingTopKSoftmax`,
//! `aclnnMoeGatingTopK`), routing (`aclnnMoeInitRoutingV3`, falling back to
//! `V2`) and un-permuting (`aclnnMoeFinalizeRoutingV2`).
//!
//! Index spaces: routing and finalize here use the row-major expanded
//! index space (`t·K + j`, FinalizeRoutingV2 `dropPadMode = 2`), which is
//! what InitRoutingV2/V3 produce.
//!
//! Operator versions: [`moe_init_routing`] binds `aclnnMoeInitRoutingV3`
//! (dropless, `expertTokensNumType = 1` counts as INT64, `rowIdxType = 0`)
//! and falls back to `aclnnMoeInitRoutingV2` (dropless, count flag 2) when
//! V3 is missing; V2 reports counts as INT32, which are widened to INT64 by
//! a host round trip of `E` integers so that the result has one type.

use std::sync::Arc;

use super::args::{AsView, float_only, on_device, output, rank_in, shape_is};
use crate::aclnn::OpCall;
use crate::error::{Error, Result};
use crate::memory::DeviceRepr;
use crate::result::opapi::operator;
use crate::stream::Stream;
use crate::tensor::{Tensor, TensorRef};

/// Outputs of [`moe_gating_top_k_softmax`].
#[derive(Debug)]
pub struct GatingTopKSoftmax<T: DeviceRepr> {
    /// `[.., k]`: the top-k softmax probabilities, best first.
    pub weights: Tensor<T>,
    /// `[.., k]` i32: their expert ids.
    pub expert_idx: Tensor<i32>,
    /// `[.., k]` i32: `row_idx[t, j] = j·N + t` (the column-major ids of
    /// InitRouting v1).
    pub row_idx: Tensor<i32>,
}

/// Softmax over the experts, then top-k (no renormalisation):
/// `x` `[N, E]` or `[B, S, E]` logits, `1 ≤ k ≤ min(E, 1024)`.
pub fn moe_gating_top_k_softmax<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    k: usize,
) -> Result<GatingTopKSoftmax<T>> {
    const API: &str = "ops::moe_gating_top_k_softmax";
    let x = x.as_view();
    float_only(API, "x", T::DTYPE)?;
    rank_in(API, "x", x.shape(), 2, 3)?;
    let e = *x.shape().last().unwrap_or(&0);
    if k == 0 || k > e || k > 1024 {
        return Err(Error::invalid(
            API,
            format!("k = {k} with {e} experts; 1 <= k <= min(E, 1024) is required"),
        ));
    }
    on_device(API, stream, &x)?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 2") = k;
    let mut weights = output::<T>(stream, &shape)?;
    let mut expert_idx = output::<i32>(stream, &shape)?;
    let mut row_idx = output::<i32>(stream, &shape)?;
    let op = operator!(
        aclnnMoeGatingTopKSoftmaxGetWorkspaceSize,
        aclnnMoeGatingTopKSoftmax
    )
    .resolve()?;
    let mut call = OpCall::new(stream)?;
    let dx = call.input(&x)?;
    let (dy, di, dr) = (
        call.output(&mut weights)?,
        call.output(&mut expert_idx)?,
        call.output(&mut row_idx)?,
    );
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned;
        // `finishedOptional` is absent (null).
        |p1, ws, ex| unsafe { p1(dx, std::ptr::null(), k as i64, dy, di, dr, ws, ex) },
    )?;
    Ok(GatingTopKSoftmax {
        weights,
        expert_idx,
        row_idx,
    })
}

/// How a group of experts is scored in [`moe_gating_top_k`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSelect {
    /// The largest biased score in the group (`groupSelectMode = 0`).
    Max,
    /// The sum of the two largest (`groupSelectMode = 1`, DeepSeek-V3).
    TopTwoSum,
}

/// The score function of [`moe_gating_top_k`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatingNorm {
    /// `softmax(x)` (`normType = 0`): weights are `s[idx] · scale`.
    Softmax,
    /// `sigmoid(x)` (`normType = 1`): weights are renormalised,
    /// `s[idx] / (Σ s[idx] + eps) · scale`.
    Sigmoid,
}

/// Attributes of [`moe_gating_top_k`], with builder-style setters.
///
/// Defaults of [`GatingTopKParams::new`]: one group (`group_count = 1`,
/// `k_group = 1`), [`GroupSelect::Max`], [`GatingNorm::Sigmoid`], routed
/// scaling factor 1, eps 1e-20, no score output.
/// [`GatingTopKParams::deepseek_v3`] is DeepSeek-V3's router.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatingTopKParams {
    /// Experts per token.
    pub k: usize,
    /// Groups kept per token.
    pub k_group: usize,
    /// Number of expert groups (`E % group_count == 0`).
    pub group_count: usize,
    /// Group score.
    pub group_select: GroupSelect,
    /// Score function.
    pub norm: GatingNorm,
    /// Factor applied to the final weights.
    pub routed_scaling_factor: f64,
    /// Epsilon of the renormalisation's denominator.
    pub eps: f64,
    /// Whether to also return the un-biased scores `[N, E]` (f32).
    pub output_scores: bool,
}

impl GatingTopKParams {
    /// `k` experts per token, other attributes at their defaults.
    pub fn new(k: usize) -> Self {
        GatingTopKParams {
            k,
            k_group: 1,
            group_count: 1,
            group_select: GroupSelect::Max,
            norm: GatingNorm::Sigmoid,
            routed_scaling_factor: 1.0,
            eps: 1e-20,
            output_scores: false,
        }
    }

    /// DeepSeek-V3: k 8, 8 groups with the best 4 kept, top-2-sum group
    /// score, sigmoid, routed scaling factor 2.5 (for 256 experts).
    pub fn deepseek_v3() -> Self {
        GatingTopKParams::new(8)
            .groups(8, 4)
            .group_select(GroupSelect::TopTwoSum)
            .routed_scaling_factor(2.5)
    }

    /// `group_count` groups of which `k_group` are kept.
    pub fn groups(mut self, group_count: usize, k_group: usize) -> Self {
        self.group_count = group_count;
        self.k_group = k_group;
        self
    }

    /// The group score.
    pub fn group_select(mut self, s: GroupSelect) -> Self {
        self.group_select = s;
        self
    }

    /// The score function.
    pub fn norm(mut self, n: GatingNorm) -> Self {
        self.norm = n;
        self
    }

    /// The routed scaling factor.
    pub fn routed_scaling_factor(mut self, f: f64) -> Self {
        self.routed_scaling_factor = f;
        self
    }

    /// The renormalisation epsilon.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Whether to return the scores too.
    pub fn output_scores(mut self, on: bool) -> Self {
        self.output_scores = on;
        self
    }

    fn check(&self, api: &'static str, e: usize) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid(api, reason));
        if e == 0 || e > 2048 {
            return bad(format!("{e} experts; 1..=2048 are supported"));
        }
        if self.group_count == 0 || e % self.group_count != 0 {
            return bad(format!(
                "{e} experts do not split into {} equal groups",
                self.group_count
            ));
        }
        let per_group = e / self.group_count;
        if self.k_group == 0 || self.k_group > self.group_count {
            return bad(format!(
                "k_group = {} must be in 1..={}",
                self.k_group, self.group_count
            ));
        }
        let reachable = self.k_group * per_group;
        if self.k == 0 || self.k > reachable {
            return bad(format!(
                "k = {} must be in 1..={reachable} (k_group · experts per group)",
                self.k
            ));
        }
        let mode = match self.group_select {
            GroupSelect::Max => 0,
            GroupSelect::TopTwoSum => 1,
        };
        if per_group <= mode {
            return bad(format!(
                "{per_group} experts per group are too few for {:?}",
                self.group_select
            ));
        }
        if per_group.div_ceil(32) * 32 * self.group_count > 2048 {
            return bad(format!(
                "groups of {per_group} padded to 32 times {} groups exceed 2048",
                self.group_count
            ));
        }
        if !self.routed_scaling_factor.is_finite() {
            return bad(format!(
                "routed_scaling_factor {} is not finite",
                self.routed_scaling_factor
            ));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad(format!("eps {} must be finite and non-negative", self.eps));
        }
        Ok(())
    }
}

/// Outputs of [`moe_gating_top_k`].
#[derive(Debug)]
pub struct GatingTopK<T: DeviceRepr> {
    /// `[N, k]`: routing weights.
    pub weights: Tensor<T>,
    /// `[N, k]` i32: expert ids, best first.
    pub expert_idx: Tensor<i32>,
    /// `[N, E]` f32 un-biased scores, when asked for.
    pub scores: Option<Tensor<f32>>,
}

/// DeepSeek-V3 style grouped routing (`aclnnMoeGatingTopK`): scores
/// `s = sigmoid(x)` (or softmax), selection on `s + bias`, restricted to
/// the best `k_group` of `group_count` groups; the weights are the
/// un-biased scores of the chosen experts, renormalised (sigmoid) and
/// scaled. `x` is `[N, E]` (or more leading token dimensions); `bias`
/// `[E]` of x's type.
pub fn moe_gating_top_k<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    bias: Option<&TensorRef<'_, T>>,
    params: &GatingTopKParams,
) -> Result<GatingTopK<T>> {
    const API: &str = "ops::moe_gating_top_k";
    let x = x.as_view();
    float_only(API, "x", T::DTYPE)?;
    rank_in(API, "x", x.shape(), 1, 8)?;
    let e = *x.shape().last().expect("rank >= 1");
    params.check(API, e)?;
    if let Some(b) = bias {
        shape_is(API, "bias", b.shape(), &[e])?;
        on_device(API, stream, b)?;
    }
    on_device(API, stream, &x)?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = params.k;
    let mut weights = output::<T>(stream, &shape)?;
    let mut expert_idx = output::<i32>(stream, &shape)?;
    let mut scores = if params.output_scores {
        Some(output::<f32>(stream, x.shape())?)
    } else {
        None
    };
    let op = operator!(aclnnMoeGatingTopKGetWorkspaceSize, aclnnMoeGatingTopK).resolve()?;
    let mut call = OpCall::new(stream)?;
    let dx = call.input(&x)?;
    let db = match bias {
        Some(b) => call.input(b)?,
        None => std::ptr::null(),
    };
    let dy = call.output(&mut weights)?;
    let di = call.output(&mut expert_idx)?;
    let ds = match scores.as_mut() {
        Some(s) => call.output(s)?.cast_const(),
        None => std::ptr::null(),
    };
    let p = *params;
    let mode = match p.group_select {
        GroupSelect::Max => 0,
        GroupSelect::TopTwoSum => 1,
    };
    let norm = match p.norm {
        GatingNorm::Softmax => 0,
        GatingNorm::Sigmoid => 1,
    };
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned;
        // absent optional tensors are null.
        |p1, ws, ex| unsafe {
            p1(
                dx,
                db,
                p.k as i64,
                p.k_group as i64,
                p.group_count as i64,
                mode,
                0, // renorm: only 0 (norm, then top-k) exists
                norm,
                p.output_scores,
                p.routed_scaling_factor,
                p.eps,
                dy,
                di,
                ds,
                ws,
                ex,
            )
        },
    )?;
    Ok(GatingTopK {
        weights,
        expert_idx,
        scores,
    })
}

/// Outputs of [`moe_init_routing`].
#[derive(Debug)]
pub struct MoeRouting<T: DeviceRepr> {
    /// `[N·K, H]`: token rows sorted by expert (stable).
    pub expanded_x: Tensor<T>,
    /// `[N·K]` i32: `expanded_row_idx[t·K + j]` is the expanded row of
    /// token `t`'s `j`-th choice.
    pub expanded_row_idx: Tensor<i32>,
    /// `[E]` i64: tokens routed to each expert (a [`GroupList::Counts`]
    /// list for `grouped_matmul`).
    ///
    /// [`GroupList::Counts`]: super::GroupList::Counts
    pub tokens_per_expert: Tensor<i64>,
}

/// Dropless MoE routing: permutes the rows of `x` `[N, H]` into expert
/// order for `expert_idx` `[N, K]` (i32, ids in `0..num_experts`, checked
/// by the operator) and counts the tokens of each expert.
pub fn moe_init_routing<T: DeviceRepr>(
    stream: &Arc<Stream>,
    x: &impl AsView<T>,
    expert_idx: &impl AsView<i32>,
    num_experts: usize,
) -> Result<MoeRouting<T>> {
    const API: &str = "ops::moe_init_routing";
    let (x, idx) = (x.as_view(), expert_idx.as_view());
    float_only(API, "x", T::DTYPE)?;
    rank_in(API, "x", x.shape(), 2, 2)?;
    rank_in(API, "expert_idx", idx.shape(), 2, 2)?;
    let (n, h) = (x.shape()[0], x.shape()[1]);
    let (n2, k) = (idx.shape()[0], idx.shape()[1]);
    if n != n2 {
        return Err(Error::invalid(
            API,
            format!("x has {n} rows but expert_idx has {n2}"),
        ));
    }
    if k == 0 {
        return Err(Error::invalid(API, "expert_idx has no columns (K = 0)"));
    }
    if num_experts == 0 || num_experts > 10240 {
        return Err(Error::invalid(
            API,
            format!("num_experts = {num_experts}; 1..=10240 are supported"),
        ));
    }
    let nk = n
        .checked_mul(k)
        .filter(|&v| v < (1 << 31))
        .ok_or_else(|| Error::invalid(API, format!("N·K = {n}·{k} does not fit in int32")))?;
    on_device(API, stream, &x)?;
    on_device(API, stream, &idx)?;
    let mut expanded_x = output::<T>(stream, &[nk, h])?;
    let mut expanded_row_idx = output::<i32>(stream, &[nk])?;
    let e = num_experts as i64;
    if operator!(aclnnMoeInitRoutingV3GetWorkspaceSize, aclnnMoeInitRoutingV3).is_available()? {
        let mut counts = output::<i64>(stream, &[num_experts])?;
        let op =
            operator!(aclnnMoeInitRoutingV3GetWorkspaceSize, aclnnMoeInitRoutingV3).resolve()?;
        let mut call = OpCall::new(stream)?;
        let (dx, di) = (call.input(&x)?, call.input(&idx)?);
        let dex = call.output(&mut expanded_x)?;
        let dri = call.output(&mut expanded_row_idx)?;
        let dc = call.output(&mut counts)?;
        let null = std::ptr::null();
        call.run_op(
            &op,
            // SAFETY: the descriptors live in `call` until phase 2
            // returned; unused optional inputs and the scale output are
            // null.
            |p1, ws, ex| unsafe {
                p1(
                    dx,
                    di,
                    null,
                    null,
                    nk as i64, // activeNum = N·K
                    0,         // expertCapacity: unused
                    e,
                    0,    // dropPadMode: dropless
                    1,    // expertTokensNumType: counts
                    true, // expertTokensNumFlag
                    -1,   // quantMode: none
                    std::ptr::null(),
                    0, // rowIdxType: gather (indexed by source)
                    dex,
                    dri,
                    dc,
                    null,
                    ws,
                    ex,
                )
            },
        )?;
        return Ok(MoeRouting {
            expanded_x,
            expanded_row_idx,
            tokens_per_expert: counts,
        });
    }
    let mut counts32 = output::<i32>(stream, &[num_experts])?;
    let op = operator!(aclnnMoeInitRoutingV2GetWorkspaceSize, aclnnMoeInitRoutingV2).resolve()?;
    let mut call = OpCall::new(stream)?;
    let (dx, di) = (call.input(&x)?, call.input(&idx)?);
    let dex = call.output(&mut expanded_x)?;
    let dri = call.output(&mut expanded_row_idx)?;
    let dc = call.output(&mut counts32)?;
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned.
        |p1, ws, ex| unsafe {
            p1(
                dx,
                di,
                0, // activeNum: dropless
                0, // expertCapacity
                e,
                0, // dropPadMode: dropless
                2, // expertTokensCountOrCumsumFlag: counts
                false,
                dex,
                dri,
                dc,
                std::ptr::null(),
                ws,
                ex,
            )
        },
    )?;
    let wide: Vec<i64> = counts32.to_vec()?.into_iter().map(i64::from).collect();
    Ok(MoeRouting {
        expanded_x,
        expanded_row_idx,
        tokens_per_expert: Tensor::from_slice(stream, &wide, &[num_experts])?,
    })
}

/// Un-permutes expert outputs (`aclnnMoeFinalizeRoutingV2`, dropless,
/// row-major index space): for each token `t`,
/// `out[t] = skip[t] + Σ_j scales[t,j] · (expanded_x[row_idx[t·K+j]] + bias[expert_idx[t,j]])`.
///
/// `expanded_x` `[N·K, H]`, `expanded_row_idx` `[N·K]` i32 (from
/// [`moe_init_routing`]), `scales` `[N, K]` (absent: K = 1 and weight 1),
/// `expert_idx` `[N, K]` i32 (required with `bias`), `skip` `[N, H]` (for
/// example the shared expert's output), `bias` `[E, H]`. N and K come from
/// `scales` or `expert_idx`; with neither, K = 1.
pub fn moe_finalize_routing<T: DeviceRepr>(
    stream: &Arc<Stream>,
    expanded_x: &impl AsView<T>,
    expanded_row_idx: &impl AsView<i32>,
    scales: Option<&TensorRef<'_, T>>,
    expert_idx: Option<&TensorRef<'_, i32>>,
    skip: Option<&TensorRef<'_, T>>,
    bias: Option<&TensorRef<'_, T>>,
) -> Result<Tensor<T>> {
    const API: &str = "ops::moe_finalize_routing";
    let (ex, ri) = (expanded_x.as_view(), expanded_row_idx.as_view());
    float_only(API, "expanded_x", T::DTYPE)?;
    rank_in(API, "expanded_x", ex.shape(), 2, 2)?;
    rank_in(API, "expanded_row_idx", ri.shape(), 1, 1)?;
    let (rows, h) = (ex.shape()[0], ex.shape()[1]);
    let (n, k) = match (scales, expert_idx) {
        (Some(s), _) => {
            rank_in(API, "scales", s.shape(), 2, 2)?;
            (s.shape()[0], s.shape()[1])
        }
        (None, Some(i)) => {
            rank_in(API, "expert_idx", i.shape(), 2, 2)?;
            (i.shape()[0], i.shape()[1])
        }
        (None, None) => (rows, 1),
    };
    if k == 0 {
        return Err(Error::invalid(
            API,
            "K = 0: scales/expert_idx have no columns",
        ));
    }
    if n.checked_mul(k) != Some(rows) {
        return Err(Error::invalid(
            API,
            format!("expanded_x has {rows} rows but N·K = {n}·{k}"),
        ));
    }
    shape_is(API, "expanded_row_idx", ri.shape(), &[rows])?;
    if let Some(i) = expert_idx {
        shape_is(API, "expert_idx", i.shape(), &[n, k])?;
        on_device(API, stream, i)?;
    }
    if let Some(s) = skip {
        shape_is(API, "skip", s.shape(), &[n, h])?;
        on_device(API, stream, s)?;
    }
    if let Some(b) = bias {
        if expert_idx.is_none() {
            return Err(Error::invalid(
                API,
                "bias needs expert_idx (which expert's bias each choice adds)",
            ));
        }
        rank_in(API, "bias", b.shape(), 2, 2)?;
        if b.shape()[1] != h {
            return Err(Error::invalid(
                API,
                format!("bias has shape {:?}; [E, {h}] is required", b.shape()),
            ));
        }
        on_device(API, stream, b)?;
    }
    if let Some(s) = scales {
        on_device(API, stream, s)?;
    }
    on_device(API, stream, &ex)?;
    on_device(API, stream, &ri)?;
    let mut out = output::<T>(stream, &[n, h])?;
    let op = operator!(
        aclnnMoeFinalizeRoutingV2GetWorkspaceSize,
        aclnnMoeFinalizeRoutingV2
    )
    .resolve()?;
    let mut call = OpCall::new(stream)?;
    let dex = call.input(&ex)?;
    let dri = call.input(&ri)?;
    let opt = |call: &mut OpCall<'_>, t: Option<&dyn crate::tensor::TensorArg>| call.input_opt(t);
    let dskip = opt(&mut call, skip.map(|t| t as _))?;
    let dbias = opt(&mut call, bias.map(|t| t as _))?;
    let dscales = opt(&mut call, scales.map(|t| t as _))?;
    let didx = opt(&mut call, expert_idx.map(|t| t as _))?;
    let dout = call.output(&mut out)?;
    call.run_op(
        &op,
        // SAFETY: the descriptors live in `call` until phase 2 returned;
        // absent optional tensors are null (x2 is never given).
        |p1, ws, exec| unsafe {
            p1(
                dex,
                dri,
                dskip,
                std::ptr::null(),
                dbias,
                dscales,
                didx,
                2, // dropPadMode: dropless, row-major index space
                dout,
                ws,
                exec,
            )
        },
    )?;
    Ok(out)
}
