//! A DeepSeek-style Mixture-of-Experts layer: configuration, weights, a plain host
//! reference, and the layer on a device through CANN's fused MoE operators.
//!
//! Only [`layer`] touches a device. The pieces:
//! - [`config`]: [`MoeConfig`] (sizes, [`Gating`] rule, token count) with presets
//!   [`MoeConfig::small`], [`MoeConfig::v2_lite`] and [`MoeConfig::v3_routing`], and
//!   validation that every other piece relies on;
//! - [`weights`]: [`MoeWeights`] in Hugging Face DeepSeek layout, random or from a
//!   safetensors file, and the layouts the fused operators take;
//! - [`reference`](mod@reference): [`moe_reference`], the per-token, one-expert-at-a-time computation, and
//!   the helpers to compare ([`max_abs_err`], [`max_rel_err`]) and show ([`histogram`]);
//! - [`layer`]: [`MoeLayer`], the layer on a device through the fused operators (the
//!   pipeline below), checked against the reference in `tests/moe.rs`;
//! - [`precision`]: [`Precision`], for rounding host values exactly as a half-precision
//!   device upload does.
//!
//! # How the pieces map onto the fused-operator pipeline
//!
//! With `x [T, H]`, E routed experts, K = `top_k`, I = expert width, Is = shared width:
//!
//! | step | device operator | host data from this module |
//! |---|---|---|
//! | router logits `[T, E]` | `aclnnMatmul(x, router_t)` (logits in the layer's dtype; see [`layer`]) | [`MoeWeights::router_t`] `[H, E]`; compare with [`ReferenceOutput::logits`] |
//! | routing `[T, K]` experts + weights | softmax gating: `aclnnMoeGatingTopKSoftmax` (no renormalisation; scale afterwards if `scaling != 1`) or `aclnnMoeGatingTopKSoftmaxV2` (`renorm = 1` when `normalize`); sigmoid gating: `aclnnMoeGatingTopK` with `bias = e_score_correction_bias`, `k = top_k`, `kGroup = topk_group`, `groupCount = n_group`, `groupSelectMode =` [`GroupSelect::mode`], `renorm = 0`, `normType = 1`, `routedScalingFactor = scaling`, `eps = 1e-20` | [`MoeWeights::e_score_correction_bias`]; compare with [`ReferenceOutput::experts`] / [`ReferenceOutput::weights`], or with [`route_logits`] on the device's own logits |
//! | permute `[T*K, H]` + tokens per expert | `aclnnMoeInitRoutingV2` (dropless, count flag 2) or `aclnnMoeInitRoutingV3` (rowIdxType 0, count type 1): rows sorted by expert, `expandedRowIdx` row-major (`t*K + j`) | compare counts with [`ReferenceOutput::tokens_per_expert`] |
//! | gate + up `[T*K, 2I]` | `aclnnGroupedMatmulV4(expandedX, w13, groupList = counts, groupListType 1, groupType 0, splitItem 3)` | [`MoeWeights::w13`] `[E, H, 2I]` (gate half first) |
//! | activation `[T*K, I]` | `aclnnSwiGlu(dim = -1)`: `silu(first half) * second half` | |
//! | down `[T*K, H]` | `aclnnGroupedMatmulV4(act, w2, ...)` | [`MoeWeights::w2`] `[E, I, H]` |
//! | shared expert `[T, H]` | `aclnnMatmul(x, shared_w13)` → `aclnnSwiGlu` → `aclnnMatmul(·, shared_w2)` | [`MoeWeights::shared_w13`] `[H, 2Is]`, [`MoeWeights::shared_w2`] `[Is, H]`; compare with [`ReferenceOutput::shared`] |
//! | un-permute, weight, add shared `[T, H]` | `aclnnMoeFinalizeRoutingV2(expandedX = down output, expandedRowIdx, x1 = shared output, scales = routing weights, dropPadMode = 2)` | compare with [`ReferenceOutput::y`] |
//!
//! For f16/bf16 runs, upload [`MoeWeights::rounded_to`] and [`Precision::round_array`] of
//! the tokens, and run the reference on the same rounded values: the remaining difference
//! is then the device's half-precision intermediates alone. The reference chooses experts
//! from f32 logits; a device whose logits differ in the last bits may break a near-tie the
//! other way, so compare routing with [`route_logits`] on the device's logits when exact
//! agreement matters.

pub mod config;
pub mod ep;
pub mod layer;
pub mod precision;
pub mod reference;
pub mod weights;

pub use config::{ConfigError, Gating, GroupSelect, MoeConfig, V3_EXPERT_WIDTH, format_bytes};
pub use layer::{CheckError, MoeElement, MoeLayer, MoeOutput, PassCheck, check_pass};
pub use precision::Precision;
pub use reference::{
    ReferenceError, ReferenceOutput, Routing, histogram, max_abs_err, max_rel_err, moe_reference,
    random_tokens, route_logits,
};
pub use weights::{Mlp, MoeWeights, WeightsError, hf_name, load_safetensors};
