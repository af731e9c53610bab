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
//!   and makes no new device allocation;
//! - the router and gating run in the layer's element type `T`. Public NPU code routes with
//!   f32 logits; that needs an f32 copy of `x` (a cast operator, which the runtime does not
//!   bind) or mixed-type operators that CANN accepts only for some types (f32 scales go with
//!   bf16 but not f16 in `MoeFinalizeRoutingV2`). In f32 the two agree; in f16/bf16 the
//!   logits are rounded to `T` before gating, so a near-tie may be broken differently from
//!   a router in f32. [`MoeOutput::logits`] exposes the logits the gating saw, so a check can
//!   route them again on the host (`route_logits`).
//!
//! Not supported: softmax gating with renormalisation (`Gating::Softmax { normalize: true,
//! .. }`); it needs `aclnnMoeGatingTopKSoftmaxV2` (`renorm = 1`), which the typed operators
//! do not expose yet. [`MoeLayer::new`] refuses it with a clear error.

use std::sync::Arc;

use ascend_rt::ops::{self, GatingNorm, GatingTopKParams, GroupList};
use ascend_rt::{Context, DeviceBuffer, DeviceRepr, Error, Result, Stream, Tensor, bf16, f16};
use ndarray::{Array, ArrayRef, Dimension};

use super::config::{Gating, GroupSelect, MoeConfig};
use super::precision::Precision;
use super::weights::MoeWeights;

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
fn upload<T: MoeElement, D: Dimension>(ctx: &Arc<Context>, a: Array<f32, D>) -> Result<Tensor<T>> {
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
        config.validate().map_err(|e| Error::InvalidArgument {
            api: API,
            reason: e.to_string(),
        })?;
        if let Gating::Softmax {
            normalize: true, ..
        } = config.gating
        {
            return Err(Error::InvalidArgument {
                api: API,
                reason: "softmax gating with renormalisation needs aclnnMoeGatingTopKSoftmaxV2 \
                         (renorm = 1), which the typed operators do not bind"
                    .to_string(),
            });
        }
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

    /// The attributes of `aclnnMoeGatingTopK` for sigmoid gating.
    fn gating_params(&self) -> Option<GatingTopKParams> {
        match self.config.gating {
            Gating::SigmoidGrouped {
                n_group,
                topk_group,
                group_select,
                scaling,
            } => Some(
                GatingTopKParams::new(self.config.top_k)
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
        let logits = ops::matmul(stream, x, &self.router_t)?;
        let (routing_weights, expert_idx) = match self.gating_params() {
            Some(params) => {
                let bias = self.bias.as_ref().map(Tensor::view);
                let g = ops::moe_gating_top_k(stream, &logits, bias.as_ref(), &params)?;
                (g.weights, g.expert_idx)
            }
            None => {
                let g = ops::moe_gating_top_k_softmax(stream, &logits, c.top_k)?;
                let w = match &self.softmax_scale {
                    Some(s) => ops::mul(stream, &g.weights, s)?,
                    None => g.weights,
                };
                (w, g.expert_idx)
            }
        };
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
            Some((w13, w2)) => {
                let h = ops::matmul(stream, x, w13)?;
                let a = ops::swiglu(stream, &h, -1)?;
                drop(h);
                Some(ops::matmul(stream, &a, w2)?)
            }
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
}
