//! The MoE layer on the device: [`MoeLayer`] holds one layer's weights in the layouts of
//! CANN's fused MoE operators and runs the whole layer on a stream with [`MoeLayer::forward`].
//!
//! The pipeline of a forward pass, every step an operator queued on the caller's stream:
//! router matmul (`x @ router_t`, logits `[T, E]`) → gating (`MoeGatingTopKSoftmax`, then a
//! multiplication by the scaling factor when it is not 1; or `MoeGatingTopK` with sigmoid
//! scores, the correction bias, groups, renormalisation and `routedScalingFactor`) →
//! `MoeInitRouting` (rows sorted by expert, tokens per expert) → grouped matmul with `w13`
//! → SwiGLU → grouped matmul with `w2` → the shared expert (matmul, SwiGLU, matmul) →
//! `MoeFinalizeRoutingV2` (un-permute, weight by the routing weights, add the shared
//! output). See the table in [the module docs](super) for the operators' attributes.
//!
//! Invariants:
//! - the device tensors match the [`MoeConfig`] they were built from (the weights checked
//!   it, and the shapes are derived from it);
//! - every intermediate and output of [`MoeLayer::forward`] comes from the context's caching
//!   pool, so once a pass has run, the next pass of the same token count reuses its blocks
//!   and makes no new device allocation; the weights have their own allocations (they
//!   live as long as the layer), so pool statistics show the activations alone;
//! - the router and gating run in the layer's element type `T`. Public NPU code routes with
//!   f32 logits; that needs an f32 copy of `x` (a cast operator, which the runtime does not
//!   bind) or mixed-type operators that CANN accepts only for some types (f32 scales go with
//!   bf16 but not f16 in `MoeFinalizeRoutingV2`). In f32 the two agree; in f16/bf16 the
//!   logits are rounded to `T` before gating, so a near-tie may be broken differently from
//!   a router in f32. [`MoeOutput::logits`] exposes the logits the gating saw, so a check can
//!   route them again on the host (`route_logits`).
//!
//! [`check_pass`] compares a pass with the host reference ([`PassCheck`]): the device's
//! gating against the host rule on the device's own logits, the counts against its own
//! choices, and `y` against the reference, where a token that broke a near-tie differently
//! is checked under the device's routing instead.
//!
//! Not supported: softmax gating with renormalisation (`Gating::Softmax { normalize: true,
//! .. }`); it needs `aclnnMoeGatingTopKSoftmaxV2` (`renorm = 1`), which the typed operators
//! do not expose yet. [`MoeLayer::new`] refuses it with a clear error.

use std::sync::Arc;

use ascend_rt::ops::{self, GatingNorm, GatingTopKParams, GroupList};
use ascend_rt::{Context, DeviceBuffer, DeviceRepr, Error, Result, Stream, Tensor, bf16, f16};
use ndarray::{Array, Array1, ArrayRef, ArrayRef2, ArrayView1, Dimension, Ix1, Ix2};

use super::config::{Gating, GroupSelect, MoeConfig};
use super::precision::Precision;
use super::reference::{ReferenceError, ReferenceOutput, max_abs_err, max_rel_err, route_logits};
use super::weights::{Mlp, MoeWeights};

/// The element types a [`MoeLayer`] runs in: `f32`, `f16` and `bf16`.
pub trait MoeElement: DeviceRepr {
    /// The matching host [`Precision`].
    const PRECISION: Precision;
    /// `x` rounded to this type (to nearest even).
    fn from_f32(x: f32) -> Self;
    /// The value as `f32` (exact).
    fn to_f32(self) -> f32;
    /// A vector converted element by element (for `f32`, the same vector, not a copy).
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self> {
        v.into_iter().map(Self::from_f32).collect()
    }
}

impl MoeElement for f32 {
    const PRECISION: Precision = Precision::F32;
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self> {
        v
    }
}

impl MoeElement for f16 {
    const PRECISION: Precision = Precision::F16;
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl MoeElement for bf16 {
    const PRECISION: Precision = Precision::Bf16;
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// A host `f32` array converted to `T` (rounded to nearest even).
pub fn to_element<T: MoeElement, D: Dimension>(a: &ArrayRef<f32, D>) -> Array<T, D> {
    a.mapv(T::from_f32)
}

/// A device-type array converted to `f32` (exact).
pub fn to_f32<T: MoeElement, D: Dimension>(a: &ArrayRef<T, D>) -> Array<f32, D> {
    a.mapv(T::to_f32)
}

/// Uploads a host array as a device tensor of `T` in its own allocation (weights live
/// as long as the layer, so they are kept out of the pool that recycles activations).
/// Converts the array in place of its storage, so no second host copy is made for f32.
pub(crate) fn upload<T: MoeElement, D: Dimension>(
    ctx: &Arc<Context>,
    a: Array<f32, D>,
) -> Result<Tensor<T>> {
    let shape = a.shape().to_vec();
    let numel = a.len();
    let flat = if a.is_standard_layout() {
        // Row-major storage: the elements are `numel` consecutive values from the offset.
        match a.into_raw_vec_and_offset() {
            (v, Some(offset)) if offset != 0 || v.len() != numel => {
                v[offset..offset + numel].to_vec()
            }
            (v, _) => v,
        }
    } else {
        a.iter().copied().collect()
    };
    let values = T::from_f32_vec(flat);
    Tensor::from_buffer(DeviceBuffer::from_host(ctx, &values)?, &shape)
}

/// What one forward pass produces, all on the device.
#[derive(Debug)]
pub struct MoeOutput<T: DeviceRepr> {
    /// Layer output `[T, H]`: weighted routed experts plus the shared expert.
    pub y: Tensor<T>,
    /// Router logits `[T, E]`, as the gating saw them.
    pub logits: Tensor<T>,
    /// Chosen experts `[T, K]` (i32), best first.
    pub expert_idx: Tensor<i32>,
    /// Routing weights `[T, K]`, in the order of `expert_idx`, scaling included.
    pub routing_weights: Tensor<T>,
    /// Tokens routed to each expert `[E]` (i64).
    pub tokens_per_expert: Tensor<i64>,
}

impl<T: DeviceRepr> MoeOutput<T> {
    /// The tokens per expert read back to the host (waits for the pass).
    pub fn tokens_per_expert_host(&self) -> Result<Vec<usize>> {
        Ok(self
            .tokens_per_expert
            .to_vec()?
            .into_iter()
            .map(|c| usize::try_from(c).unwrap_or(0))
            .collect())
    }
}

/// One DeepSeek-style MoE layer resident on a device in element type `T`.
#[derive(Debug)]
pub struct MoeLayer<T: MoeElement> {
    config: MoeConfig,
    /// `[H, E]`
    router_t: Tensor<T>,
    /// `[E]`, sigmoid gating only.
    bias: Option<Tensor<T>>,
    /// `[E, H, 2I]`
    w13: Tensor<T>,
    /// `[E, I, H]`
    w2: Tensor<T>,
    /// `[H, 2Is]` and `[Is, H]`, when the layer has shared experts.
    shared: Option<(Tensor<T>, Tensor<T>)>,
    /// `[1]` holding the softmax gating's scaling factor, when it is not 1.
    softmax_scale: Option<Tensor<T>>,
}

const API: &str = "MoeLayer";

impl<T: MoeElement> MoeLayer<T> {
    /// Uploads `weights` (rounded to `T`) in the fused operators' layouts, on `stream`.
    pub fn new(stream: &Arc<Stream>, weights: &MoeWeights) -> Result<MoeLayer<T>> {
        let config = *weights.config();
        check_supported(API, &config)?;
        let ctx = stream.context();
        let router_t = upload(ctx, weights.router_t())?;
        let bias = match weights.e_score_correction_bias() {
            Some(b) => Some(upload(ctx, b.clone())?),
            None => None,
        };
        let w13 = upload(ctx, weights.w13())?;
        let w2 = upload(ctx, weights.w2())?;
        let shared = match (weights.shared_w13(), weights.shared_w2()) {
            (Some(a), Some(b)) => Some((upload(ctx, a)?, upload(ctx, b)?)),
            _ => None,
        };
        let softmax_scale = match config.gating {
            Gating::Softmax { scaling, .. } if scaling != 1.0 => {
                Some(Tensor::from_slice(stream, &[T::from_f32(scaling)], &[1])?)
            }
            _ => None,
        };
        Ok(MoeLayer {
            config,
            router_t,
            bias,
            w13,
            w2,
            shared,
            softmax_scale,
        })
    }

    /// The configuration the layer was built from.
    pub fn config(&self) -> &MoeConfig {
        &self.config
    }

    /// Bytes of device memory the weights occupy.
    pub fn weight_bytes(&self) -> usize {
        let n = |t: &Tensor<T>| t.layout().numel();
        let mut elements = n(&self.router_t) + n(&self.w13) + n(&self.w2);
        elements += self.bias.as_ref().map_or(0, n);
        if let Some((a, b)) = &self.shared {
            elements += n(a) + n(b);
        }
        elements * T::DTYPE.size()
    }

    /// Runs the layer on `x [T, H]` (any T ≥ 1), queued on `stream`.
    pub fn forward(&self, stream: &Arc<Stream>, x: &Tensor<T>) -> Result<MoeOutput<T>> {
        let c = &self.config;
        let shape = x.shape();
        if shape.len() != 2 || shape[1] != c.hidden || shape[0] == 0 {
            return Err(Error::InvalidArgument {
                api: "MoeLayer::forward",
                reason: format!(
                    "x has shape {shape:?}; [tokens >= 1, {}] is required",
                    c.hidden
                ),
            });
        }
        let (logits, routing_weights, expert_idx) = route(
            stream,
            c,
            x,
            &self.router_t,
            self.bias.as_ref(),
            self.softmax_scale.as_ref(),
        )?;
        let routed = ops::moe_init_routing(stream, x, &expert_idx, c.n_routed_experts)?;
        let counts = &routed.tokens_per_expert;
        let up = ops::grouped_matmul(
            stream,
            &routed.expanded_x,
            &self.w13,
            counts,
            GroupList::Counts,
        )?;
        let act = ops::swiglu(stream, &up, -1)?;
        drop(up);
        let down = ops::grouped_matmul(stream, &act, &self.w2, counts, GroupList::Counts)?;
        drop(act);
        let shared = match &self.shared {
            Some((w13, w2)) => Some(shared_expert(stream, x, w13, w2)?),
            None => None,
        };
        let skip = shared.as_ref().map(Tensor::view);
        let y = ops::moe_finalize_routing(
            stream,
            &down,
            &routed.expanded_row_idx,
            Some(&routing_weights.view()),
            Some(&expert_idx.view()),
            skip.as_ref(),
            None,
        )?;
        Ok(MoeOutput {
            y,
            logits,
            expert_idx,
            routing_weights,
            tokens_per_expert: routed.tokens_per_expert,
        })
    }
}

/// Fails unless the device pipeline supports `config`: it must validate, and softmax gating
/// must not renormalise (see the module docs).
pub(crate) fn check_supported(api: &'static str, config: &MoeConfig) -> Result<()> {
    config.validate().map_err(|e| Error::InvalidArgument {
        api,
        reason: e.to_string(),
    })?;
    if let Gating::Softmax {
        normalize: true, ..
    } = config.gating
    {
        return Err(Error::InvalidArgument {
            api,
            reason: "softmax gating with renormalisation needs aclnnMoeGatingTopKSoftmaxV2 \
                     (renorm = 1), which the typed operators do not bind"
                .to_string(),
        });
    }
    Ok(())
}

/// The attributes of `aclnnMoeGatingTopK` for sigmoid gating; `None` for softmax gating.
fn gating_params(config: &MoeConfig) -> Option<GatingTopKParams> {
    match config.gating {
        Gating::SigmoidGrouped {
            n_group,
            topk_group,
            group_select,
            scaling,
        } => Some(
            GatingTopKParams::new(config.top_k)
                .groups(n_group, topk_group)
                .group_select(match group_select {
                    GroupSelect::Max => ops::GroupSelect::Max,
                    GroupSelect::SumTop2 => ops::GroupSelect::TopTwoSum,
                })
                .norm(GatingNorm::Sigmoid)
                .routed_scaling_factor(f64::from(scaling))
                .eps(super::reference::RENORM_EPS),
        ),
        Gating::Softmax { .. } => None,
    }
}

/// The router and gating steps of a pass on `x [T, H]`: logits `x @ router_t`, then the
/// configured gating (`softmax_scale` multiplies softmax weights when the scaling is not 1).
/// Returns `(logits [T, E], routing weights [T, K], expert ids [T, K])`. Shared by
/// [`MoeLayer`] and the expert-parallel layer, so both route a token identically.
pub(crate) fn route<T: MoeElement>(
    stream: &Arc<Stream>,
    config: &MoeConfig,
    x: &Tensor<T>,
    router_t: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    softmax_scale: Option<&Tensor<T>>,
) -> Result<(Tensor<T>, Tensor<T>, Tensor<i32>)> {
    let logits = ops::matmul(stream, x, router_t)?;
    let (weights, expert_idx) = match gating_params(config) {
        Some(params) => {
            let bias = bias.map(Tensor::view);
            let g = ops::moe_gating_top_k(stream, &logits, bias.as_ref(), &params)?;
            (g.weights, g.expert_idx)
        }
        None => {
            let g = ops::moe_gating_top_k_softmax(stream, &logits, config.top_k)?;
            let w = match softmax_scale {
                Some(s) => ops::mul(stream, &g.weights, s)?,
                None => g.weights,
            };
            (w, g.expert_idx)
        }
    };
    Ok((logits, weights, expert_idx))
}

/// The shared expert on `x [T, H]`: `swiglu(x @ w13) @ w2` with `w13 [H, 2Is]`, `w2 [Is, H]`.
pub(crate) fn shared_expert<T: MoeElement>(
    stream: &Arc<Stream>,
    x: &Tensor<T>,
    w13: &Tensor<T>,
    w2: &Tensor<T>,
) -> Result<Tensor<T>> {
    let h = ops::matmul(stream, x, w13)?;
    let a = ops::swiglu(stream, &h, -1)?;
    drop(h);
    ops::matmul(stream, &a, w2)
}

/// How one device pass compares with the host reference (see [`check_pass`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PassCheck {
    /// `max |y - expected| / max |expected|` over all tokens.
    pub max_rel_err: f32,
    /// `max |y - expected|` over all tokens.
    pub max_abs_err: f32,
    /// Tokens whose experts differ from the reference's (near-ties broken differently by
    /// logits that differ in the last bits); their expected `y` uses the device's routing.
    pub rerouted: usize,
    /// Whether the device chose exactly the experts the host rule chooses on the device's
    /// own logits.
    pub gating_matches: bool,
    /// `max_rel_err` of the device's routing weights against the host rule's weights on
    /// the device's own logits.
    pub weights_rel_err: f32,
    /// `max_rel_err` of the device's logits against the reference's.
    pub logits_rel_err: f32,
    /// Whether the device's tokens per expert count its own choices.
    pub counts_match: bool,
    /// The device's tokens per expert.
    pub tokens_per_expert: Vec<usize>,
}

impl PassCheck {
    /// Whether the pass is right within `tolerance` (relative error of `y`): gating and
    /// counts exact, `y` within the tolerance.
    pub fn passes(&self, tolerance: f32) -> bool {
        self.gating_matches && self.counts_match && self.max_rel_err <= tolerance
    }
}

/// Why a pass could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Device(#[from] Error),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("MoE check: the device chose expert {expert}, outside 0..{experts}")]
    ExpertOutOfRange { expert: i64, experts: usize },
}

/// Compares the pass `out` of a layer built from `weights` on tokens `x` (the values the
/// device saw, as f32) with `reference = moe_reference(weights, x)`. Waits for the pass.
pub fn check_pass<T: MoeElement>(
    weights: &MoeWeights,
    x: &ArrayRef2<f32>,
    out: &MoeOutput<T>,
    reference: &ReferenceOutput,
) -> std::result::Result<PassCheck, CheckError> {
    let config = weights.config();
    let y = to_f32(&out.y.to_array_d::<Ix2>()?);
    let logits = to_f32(&out.logits.to_array_d::<Ix2>()?);
    let experts = out.expert_idx.to_array_d::<Ix2>()?;
    let routing_weights = to_f32(&out.routing_weights.to_array_d::<Ix2>()?);
    let counts = out.tokens_per_expert.to_array_d::<Ix1>()?;

    let host = route_logits(config, &logits, weights.e_score_correction_bias())?;
    let gating_matches = experts == host.experts;
    let mut own = vec![0i64; config.n_routed_experts];
    for &e in &experts {
        let slot = usize::try_from(e).ok().and_then(|i| own.get_mut(i)).ok_or(
            CheckError::ExpertOutOfRange {
                expert: i64::from(e),
                experts: config.n_routed_experts,
            },
        )?;
        *slot += 1;
    }
    let counts_match = counts.iter().copied().eq(own.iter().copied());

    let mut expected = reference.y.clone();
    let mut rerouted = 0;
    for t in 0..config.tokens.min(experts.nrows()) {
        if experts.row(t) != reference.experts.row(t) {
            rerouted += 1;
            let row = mix(weights, x.row(t), host.experts.row(t), host.weights.row(t));
            expected.row_mut(t).assign(&row);
        }
    }
    Ok(PassCheck {
        max_rel_err: max_rel_err(&y, &expected)?,
        max_abs_err: max_abs_err(&y, &expected)?,
        rerouted,
        gating_matches,
        weights_rel_err: max_rel_err(&routing_weights, &host.weights)?,
        logits_rel_err: max_rel_err(&logits, &reference.logits)?,
        counts_match,
        tokens_per_expert: counts
            .iter()
            .map(|&c| usize::try_from(c).unwrap_or(0))
            .collect(),
    })
}

/// One token's output on the host for a given routing: `Σ_j w_j · expert_j(x)` plus the
/// shared experts, each MLP `down(silu(gate · x) * (up · x))`, in f32. `experts` come from
/// [`route_logits`], so they are in range.
fn mix(
    weights: &MoeWeights,
    x: ArrayView1<'_, f32>,
    experts: ArrayView1<'_, i32>,
    routing: ArrayView1<'_, f32>,
) -> Array1<f32> {
    let mlp = |m: &Mlp| -> Array1<f32> {
        let gate = m.gate_proj.dot(&x);
        let up = m.up_proj.dot(&x);
        let act = gate.mapv(|g| g / (1.0 + (-g).exp())) * up;
        m.down_proj.dot(&act)
    };
    let mut y = match weights.shared_experts() {
        Some(shared) => mlp(shared),
        None => Array1::zeros(x.len()),
    };
    for (&e, &w) in experts.iter().zip(routing.iter()) {
        if let Some(expert) = weights.experts().get(e as usize) {
            y.scaled_add(w, &mlp(expert));
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_conversions_round_like_precision() {
        for x in [0.1f32, -3.7, 1e-3, 65504.0, 1.0 / 3.0] {
            assert_eq!(f16::from_f32(x).to_f32(), Precision::F16.round(x));
            assert_eq!(
                <bf16 as MoeElement>::from_f32(x).to_f32(),
                Precision::Bf16.round(x)
            );
            assert_eq!(<f32 as MoeElement>::from_f32(x), x);
        }
        assert_eq!(<bf16 as MoeElement>::PRECISION, Precision::Bf16);
        let a = ndarray::array![[0.1f32, 0.2], [0.3, 0.4]];
        let h: Array<f16, _> = to_element(&a);
        assert_eq!(to_f32(&h), Precision::F16.round_array(&a));
    }

    #[test]
    fn mix_under_the_reference_routing_is_the_reference() {
        use crate::moe::{moe_reference, random_tokens};
        let config = MoeConfig::small().with_tokens(4);
        let weights = MoeWeights::random(&config, 3).unwrap();
        let x = random_tokens(&config, 4);
        let r = moe_reference(&weights, &x).unwrap();
        let y: Vec<Array1<f32>> = (0..4)
            .map(|t| mix(&weights, x.row(t), r.experts.row(t), r.weights.row(t)))
            .collect();
        let y = ndarray::stack(
            ndarray::Axis(0),
            &y.iter().map(|r| r.view()).collect::<Vec<_>>(),
        )
        .unwrap();
        let err: ndarray::Array2<f32> = y - &r.y;
        let scale = r.y.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(err.iter().all(|e| e.abs() <= 1e-5 * scale), "{err}");
    }
}
