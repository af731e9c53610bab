//! The shape and routing rule of one DeepSeek-style MoE layer, with presets for published models.
//!
//! A [`MoeConfig`] is plain data; [`MoeConfig::validate`] checks the rules every consumer relies
//! on (non-zero sizes, `top_k` reachable under group limiting, sizes that fit the device's `i32`
//! dimensions and the host's address space). Weights, the reference and the device pipeline
//! all call it before they use a configuration, so a configuration they accept is valid.
//!
//! Published values (Hugging Face `config.json` of the models):
//! - DeepSeek-V2-Lite: `hidden_size` 2048, `n_routed_experts` 64, `num_experts_per_tok` 6,
//!   `n_shared_experts` 2, `moe_intermediate_size` 1408, `scoring_func` softmax,
//!   `norm_topk_prob` false, `routed_scaling_factor` 1.0, `n_group` 1 (no group limiting).
//! - DeepSeek-V3: `hidden_size` 7168, `n_routed_experts` 256, `num_experts_per_tok` 8,
//!   `n_group` 8, `topk_group` 4, `n_shared_experts` 1, `moe_intermediate_size` 2048,
//!   `scoring_func` sigmoid with `e_score_correction_bias`, `topk_method` noaux_tc,
//!   `norm_topk_prob` true, `routed_scaling_factor` 2.5.

use std::fmt;

use super::precision::Precision;

/// DeepSeek-V3's published expert width (`moe_intermediate_size`).
pub const V3_EXPERT_WIDTH: usize = 2048;

/// How a group's score is computed from its experts' biased scores (the `groupSelectMode`
/// attribute of `aclnnMoeGatingTopK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupSelect {
    /// The largest score in the group (`groupSelectMode` 0).
    Max,
    /// The sum of the two largest scores in the group (`groupSelectMode` 1; DeepSeek-V3).
    SumTop2,
}

impl GroupSelect {
    /// The `groupSelectMode` value of `aclnnMoeGatingTopK`.
    pub fn mode(self) -> i64 {
        match self {
            GroupSelect::Max => 0,
            GroupSelect::SumTop2 => 1,
        }
    }

    /// Experts a group needs for this rule to be defined.
    pub fn min_group_size(self) -> usize {
        match self {
            GroupSelect::Max => 1,
            GroupSelect::SumTop2 => 2,
        }
    }
}

/// The router's scoring and selection rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gating {
    /// DeepSeek-V2: `p = softmax(logits)`, the `top_k` largest `p` are chosen, their weights
    /// optionally divided by their sum (+1e-20), then multiplied by `scaling`.
    /// DeepSeek-V2-Lite uses `normalize: false, scaling: 1.0`.
    ///
    /// (DeepSeek-V2's own modelling code applies `scaling` only when it does not normalise;
    /// here the two are independent, which matches it whenever `normalize` is false or
    /// `scaling` is 1.)
    Softmax { normalize: bool, scaling: f32 },
    /// DeepSeek-V3: `s = sigmoid(logits)`; selection uses `s + e_score_correction_bias`:
    /// the experts are split into `n_group` equal groups, each scored by `group_select`, the
    /// best `topk_group` groups are kept and the `top_k` best experts among them are chosen.
    /// Their weights are the un-biased `s`, divided by their sum (+1e-20) and multiplied by
    /// `scaling`.
    SigmoidGrouped {
        n_group: usize,
        topk_group: usize,
        group_select: GroupSelect,
        scaling: f32,
    },
}

impl Gating {
    /// The factor the final routing weights are multiplied by (`routed_scaling_factor`).
    pub fn scaling(&self) -> f32 {
        match *self {
            Gating::Softmax { scaling, .. } | Gating::SigmoidGrouped { scaling, .. } => scaling,
        }
    }

    /// Whether the layer has an `e_score_correction_bias` (sigmoid gating only).
    pub fn uses_bias(&self) -> bool {
        matches!(self, Gating::SigmoidGrouped { .. })
    }
}

/// The size and routing rule of one MoE layer, and the number of tokens a run feeds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeConfig {
    /// A short name for reports (`"small"`, `"DeepSeek-V2-Lite"`, ...).
    pub name: &'static str,
    /// Model width H (`hidden_size`).
    pub hidden: usize,
    /// Routed experts E (`n_routed_experts`).
    pub n_routed_experts: usize,
    /// Experts chosen per token K (`num_experts_per_tok`).
    pub top_k: usize,
    /// Shared experts, run on every token with weight 1; stored as one MLP of width
    /// `n_shared_experts * moe_intermediate`, as Hugging Face checkpoints do. May be 0.
    pub n_shared_experts: usize,
    /// Expert width I (`moe_intermediate_size`).
    pub moe_intermediate: usize,
    /// Scoring and selection rule.
    pub gating: Gating,
    /// Tokens T of a run (rows of the input).
    pub tokens: usize,
    /// The published expert width when this preset scales it down to fit the machine
    /// (reported by [`MoeConfig::scaling_note`]); `None` for a full-size configuration.
    pub published_width: Option<usize>,
}

/// A configuration rule that a [`MoeConfig`] breaks.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("MoE config: {field} must be at least 1")]
    Zero { field: &'static str },
    #[error("MoE config: top_k {top_k} exceeds the {experts} routed experts")]
    TopKExceedsExperts { top_k: usize, experts: usize },
    #[error("MoE config: {experts} routed experts cannot be split into {n_group} equal groups")]
    GroupsDoNotDivide { experts: usize, n_group: usize },
    #[error("MoE config: topk_group {topk_group} must be between 1 and n_group {n_group}")]
    TopkGroupOutOfRange { topk_group: usize, n_group: usize },
    #[error(
        "MoE config: top_k {top_k} exceeds the {kept} experts in the kept groups \
         (topk_group {topk_group} x {per_group} experts per group)"
    )]
    TopKExceedsKeptExperts {
        top_k: usize,
        topk_group: usize,
        per_group: usize,
        kept: usize,
    },
    #[error(
        "MoE config: groups of {per_group} experts are too small for {select:?} group scores \
         (need at least {needed})"
    )]
    GroupTooSmall {
        per_group: usize,
        select: GroupSelect,
        needed: usize,
    },
    #[error("MoE config: routed scaling factor {scaling} must be finite and positive")]
    BadScaling { scaling: f32 },
    #[error("MoE config: {what} = {value} does not fit (limit {limit})")]
    TooLarge {
        what: &'static str,
        value: u128,
        limit: u128,
    },
}

impl MoeConfig {
    /// A layer small enough for unit tests and a sub-second mock run, with DeepSeek-V3's
    /// gating in miniature: hidden 128, 8 routed experts in 4 groups (best 2 groups kept,
    /// group score = sum of its top-2), top-2, 1 shared expert, expert width 64, scaling 2.5,
    /// 16 tokens. About 222 k parameters.
    pub fn small() -> MoeConfig {
        MoeConfig {
            name: "small",
            hidden: 128,
            n_routed_experts: 8,
            top_k: 2,
            n_shared_experts: 1,
            moe_intermediate: 64,
            gating: Gating::SigmoidGrouped {
                n_group: 4,
                topk_group: 2,
                group_select: GroupSelect::SumTop2,
                scaling: 2.5,
            },
            tokens: 16,
            published_width: None,
        }
    }

    /// DeepSeek-V2-Lite's MoE layer at full size (554 M parameters in a layer's routed
    /// experts): softmax scores, top-6 of 64, no renormalisation, scaling 1.0, 2 shared
    /// experts of width 1408. 64 tokens.
    pub fn v2_lite() -> MoeConfig {
        MoeConfig {
            name: "DeepSeek-V2-Lite",
            hidden: 2048,
            n_routed_experts: 64,
            top_k: 6,
            n_shared_experts: 2,
            moe_intermediate: 1408,
            gating: Gating::Softmax {
                normalize: false,
                scaling: 1.0,
            },
            tokens: 64,
            published_width: None,
        }
    }

    /// DeepSeek-V3's routing at full size (H 7168, 256 routed experts in 8 groups, best 4
    /// groups by the sum of their top-2, top-8, sigmoid scores with correction bias,
    /// renormalised, scaling 2.5, 1 shared expert) with the expert width scaled from 2048 to
    /// `width` so the weights fit this machine (see [`MoeConfig::scaling_note`]). 64 tokens.
    pub fn v3_routing(width: usize) -> MoeConfig {
        MoeConfig {
            name: "DeepSeek-V3 routing",
            hidden: 7168,
            n_routed_experts: 256,
            top_k: 8,
            n_shared_experts: 1,
            moe_intermediate: width,
            gating: Gating::SigmoidGrouped {
                n_group: 8,
                topk_group: 4,
                group_select: GroupSelect::SumTop2,
                scaling: 2.5,
            },
            tokens: 64,
            published_width: (width != V3_EXPERT_WIDTH).then_some(V3_EXPERT_WIDTH),
        }
    }

    /// This configuration with `tokens` tokens per run.
    pub fn with_tokens(mut self, tokens: usize) -> MoeConfig {
        self.tokens = tokens;
        self
    }

    /// This configuration with another gating rule.
    pub fn with_gating(mut self, gating: Gating) -> MoeConfig {
        self.gating = gating;
        self
    }

    /// Width of the shared-expert MLP: `n_shared_experts * moe_intermediate` (0 without one).
    pub fn shared_intermediate(&self) -> usize {
        self.n_shared_experts.saturating_mul(self.moe_intermediate)
    }

    /// Parameters of the router: `gate.weight [E, H]` plus the bias `[E]` for sigmoid gating.
    pub fn router_parameters(&self) -> u64 {
        let bias = if self.gating.uses_bias() {
            self.n_routed_experts as u64
        } else {
            0
        };
        mul(&[self.n_routed_experts, self.hidden]).saturating_add(bias)
    }

    /// Parameters of the routed experts: `E x 3 x H x I`.
    pub fn expert_parameters(&self) -> u64 {
        mul(&[self.n_routed_experts, 3, self.hidden, self.moe_intermediate])
    }

    /// Parameters of the shared-expert MLP: `3 x H x (n_shared x I)`.
    pub fn shared_parameters(&self) -> u64 {
        mul(&[3, self.hidden, self.shared_intermediate()])
    }

    /// All parameters of the layer.
    pub fn parameter_count(&self) -> u64 {
        self.router_parameters()
            .saturating_add(self.expert_parameters())
            .saturating_add(self.shared_parameters())
    }

    /// Bytes of all parameters stored as `precision`.
    pub fn parameter_bytes(&self, precision: Precision) -> u64 {
        self.parameter_count()
            .saturating_mul(precision.bytes() as u64)
    }

    /// What this preset scaled down from the published model and what that saves, e.g.
    /// `expert width 2048 -> 128 (V3's experts are 256 x 3 x 7168 x 2048 = 21.0 GiB in bf16;
    /// here 256 x 3 x 7168 x 128 = 1.3 GiB)`; `None` for a full-size configuration.
    pub fn scaling_note(&self, precision: Precision) -> Option<String> {
        let published = self.published_width?;
        let (e, h, i) = (self.n_routed_experts, self.hidden, self.moe_intermediate);
        let bytes = |width: usize| mul(&[e, 3, h, width]).saturating_mul(precision.bytes() as u64);
        Some(format!(
            "expert width {published} -> {i} ({name}'s experts are {e} x 3 x {h} x {published} \
             = {full} in {precision}; here {e} x 3 x {h} x {i} = {here})",
            name = self.name.split(' ').next().unwrap_or(self.name),
            full = format_bytes(bytes(published)),
            here = format_bytes(bytes(i)),
        ))
    }

    /// Checks every rule the weights, the reference and the device pipeline rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("hidden", self.hidden),
            ("n_routed_experts", self.n_routed_experts),
            ("top_k", self.top_k),
            ("moe_intermediate", self.moe_intermediate),
            ("tokens", self.tokens),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.top_k > self.n_routed_experts {
            return Err(ConfigError::TopKExceedsExperts {
                top_k: self.top_k,
                experts: self.n_routed_experts,
            });
        }
        let scaling = self.gating.scaling();
        if !(scaling.is_finite() && scaling > 0.0) {
            return Err(ConfigError::BadScaling { scaling });
        }
        if let Gating::SigmoidGrouped {
            n_group,
            topk_group,
            group_select,
            ..
        } = self.gating
        {
            if n_group == 0 {
                return Err(ConfigError::Zero { field: "n_group" });
            }
            if self.n_routed_experts % n_group != 0 {
                return Err(ConfigError::GroupsDoNotDivide {
                    experts: self.n_routed_experts,
                    n_group,
                });
            }
            if topk_group == 0 || topk_group > n_group {
                return Err(ConfigError::TopkGroupOutOfRange {
                    topk_group,
                    n_group,
                });
            }
            let per_group = self.n_routed_experts / n_group;
            if per_group < group_select.min_group_size() {
                return Err(ConfigError::GroupTooSmall {
                    per_group,
                    select: group_select,
                    needed: group_select.min_group_size(),
                });
            }
            let kept = topk_group * per_group;
            if self.top_k > kept {
                return Err(ConfigError::TopKExceedsKeptExperts {
                    top_k: self.top_k,
                    topk_group,
                    per_group,
                    kept,
                });
            }
        }
        // Device tensors describe each dimension with an i32-sized extent.
        let dim_limit = i32::MAX as u128;
        let h = self.hidden as u128;
        for (what, value) in [
            ("hidden", h),
            ("n_routed_experts", self.n_routed_experts as u128),
            ("2 x moe_intermediate", 2 * self.moe_intermediate as u128),
            (
                "2 x n_shared_experts x moe_intermediate",
                2 * self.n_shared_experts as u128 * self.moe_intermediate as u128,
            ),
            ("tokens x top_k", self.tokens as u128 * self.top_k as u128),
        ] {
            if value > dim_limit {
                return Err(ConfigError::TooLarge {
                    what,
                    value,
                    limit: dim_limit,
                });
            }
        }
        // Every host array must be addressable: the whole layer in f32, and the activations.
        let byte_limit = isize::MAX as u128;
        let params = self.n_routed_experts as u128 * h
            + self.n_routed_experts as u128
            + self.n_routed_experts as u128 * 3 * h * self.moe_intermediate as u128
            + 3 * h * self.n_shared_experts as u128 * self.moe_intermediate as u128;
        let activations = self.tokens as u128 * self.top_k as u128 * h;
        for (what, elements) in [
            ("layer parameters in f32 (bytes)", params),
            ("tokens x top_k x hidden in f32 (bytes)", activations),
        ] {
            if elements * 4 > byte_limit {
                return Err(ConfigError::TooLarge {
                    what,
                    value: elements * 4,
                    limit: byte_limit,
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for MoeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: hidden {}, {} routed experts, top-{}, {} shared, expert width {}, ",
            self.name,
            self.hidden,
            self.n_routed_experts,
            self.top_k,
            self.n_shared_experts,
            self.moe_intermediate
        )?;
        match self.gating {
            Gating::Softmax { normalize, scaling } => write!(
                f,
                "softmax scores, {}, scaling {scaling}",
                if normalize {
                    "renormalised"
                } else {
                    "not renormalised"
                }
            )?,
            Gating::SigmoidGrouped {
                n_group,
                topk_group,
                group_select,
                scaling,
            } => write!(
                f,
                "sigmoid scores + bias, best {topk_group} of {n_group} groups by {}, \
                 renormalised, scaling {scaling}",
                match group_select {
                    GroupSelect::Max => "max",
                    GroupSelect::SumTop2 => "sum of top-2",
                }
            )?,
        }
        write!(f, ", {} tokens", self.tokens)
    }
}

/// `n` bytes in binary units with one decimal (`"21.0 GiB"`, `"512 B"`).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Product of `dims` as `u64`, saturating instead of overflowing.
fn mul(dims: &[usize]) -> u64 {
    dims.iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for config in [
            MoeConfig::small(),
            MoeConfig::v2_lite(),
            MoeConfig::v3_routing(128),
            MoeConfig::v3_routing(V3_EXPERT_WIDTH),
        ] {
            assert_eq!(config.validate(), Ok(()), "{config}");
        }
    }

    #[test]
    fn small_has_a_few_hundred_thousand_parameters() {
        let c = MoeConfig::small();
        let n = c.parameter_count();
        assert!((100_000..1_000_000).contains(&n), "{n}");
        assert_eq!(n, 8 * 128 + 8 + 8 * 3 * 128 * 64 + 3 * 128 * 64);
        assert_eq!(c.parameter_bytes(Precision::F32), 4 * n);
        assert_eq!(c.scaling_note(Precision::Bf16), None);
    }

    #[test]
    fn v2_lite_matches_the_published_config() {
        let c = MoeConfig::v2_lite();
        assert_eq!(
            (
                c.hidden,
                c.n_routed_experts,
                c.top_k,
                c.n_shared_experts,
                c.moe_intermediate
            ),
            (2048, 64, 6, 2, 1408)
        );
        assert_eq!(
            c.gating,
            Gating::Softmax {
                normalize: false,
                scaling: 1.0
            }
        );
        assert!(!c.gating.uses_bias());
        assert_eq!(c.shared_intermediate(), 2816);
        assert_eq!(c.router_parameters(), 64 * 2048);
        assert_eq!(c.expert_parameters(), 64 * 3 * 2048 * 1408);
    }

    #[test]
    fn v3_routing_reports_what_was_scaled() {
        let c = MoeConfig::v3_routing(128);
        assert_eq!(
            (c.hidden, c.n_routed_experts, c.top_k, c.n_shared_experts),
            (7168, 256, 8, 1)
        );
        assert_eq!(
            c.gating,
            Gating::SigmoidGrouped {
                n_group: 8,
                topk_group: 4,
                group_select: GroupSelect::SumTop2,
                scaling: 2.5
            }
        );
        assert_eq!(c.router_parameters(), 256 * 7168 + 256);
        let note = c.scaling_note(Precision::Bf16).expect("scaled preset");
        // 256 x 3 x 7168 x 2048 x 2 bytes = 22_548_578_304 bytes = 21.0 GiB.
        assert_eq!(
            note,
            "expert width 2048 -> 128 (DeepSeek-V3's experts are 256 x 3 x 7168 x 2048 = 21.0 GiB \
             in bf16; here 256 x 3 x 7168 x 128 = 1.3 GiB)"
        );
        assert_eq!(
            c.parameter_bytes(Precision::Bf16),
            2 * (256 * 7168 + 256 + 256 * 3 * 7168 * 128 + 3 * 7168 * 128)
        );
        assert_eq!(
            MoeConfig::v3_routing(V3_EXPERT_WIDTH).scaling_note(Precision::Bf16),
            None
        );
    }

    #[test]
    fn display_names_the_rule() {
        let s = MoeConfig::small().to_string();
        assert!(s.contains("best 2 of 4 groups by sum of top-2"), "{s}");
        let s = MoeConfig::v2_lite().to_string();
        assert!(
            s.contains("softmax scores, not renormalised, scaling 1"),
            "{s}"
        );
    }

    fn grouped(n_group: usize, topk_group: usize, group_select: GroupSelect) -> Gating {
        Gating::SigmoidGrouped {
            n_group,
            topk_group,
            group_select,
            scaling: 1.0,
        }
    }

    #[test]
    fn validation_names_the_broken_rule() {
        let small = MoeConfig::small();
        let cases: Vec<(MoeConfig, ConfigError)> = vec![
            (
                MoeConfig { hidden: 0, ..small },
                ConfigError::Zero { field: "hidden" },
            ),
            (small.with_tokens(0), ConfigError::Zero { field: "tokens" }),
            (
                MoeConfig { top_k: 0, ..small },
                ConfigError::Zero { field: "top_k" },
            ),
            (
                MoeConfig {
                    top_k: 9,
                    gating: Gating::Softmax {
                        normalize: false,
                        scaling: 1.0,
                    },
                    ..small
                },
                ConfigError::TopKExceedsExperts {
                    top_k: 9,
                    experts: 8,
                },
            ),
            (
                small.with_gating(grouped(3, 1, GroupSelect::Max)),
                ConfigError::GroupsDoNotDivide {
                    experts: 8,
                    n_group: 3,
                },
            ),
            (
                small.with_gating(grouped(0, 1, GroupSelect::Max)),
                ConfigError::Zero { field: "n_group" },
            ),
            (
                small.with_gating(grouped(4, 5, GroupSelect::Max)),
                ConfigError::TopkGroupOutOfRange {
                    topk_group: 5,
                    n_group: 4,
                },
            ),
            (
                small.with_gating(grouped(4, 0, GroupSelect::Max)),
                ConfigError::TopkGroupOutOfRange {
                    topk_group: 0,
                    n_group: 4,
                },
            ),
            (
                MoeConfig {
                    top_k: 3,
                    gating: grouped(4, 1, GroupSelect::SumTop2),
                    ..small
                },
                ConfigError::TopKExceedsKeptExperts {
                    top_k: 3,
                    topk_group: 1,
                    per_group: 2,
                    kept: 2,
                },
            ),
            (
                small.with_gating(grouped(8, 2, GroupSelect::SumTop2)),
                ConfigError::GroupTooSmall {
                    per_group: 1,
                    select: GroupSelect::SumTop2,
                    needed: 2,
                },
            ),
            (
                small.with_gating(Gating::Softmax {
                    normalize: true,
                    scaling: f32::NAN,
                }),
                ConfigError::BadScaling { scaling: f32::NAN },
            ),
        ];
        for (config, expected) in cases {
            let err = config.validate().expect_err("invalid config accepted");
            // NaN != NaN, so compare the messages.
            assert_eq!(err.to_string(), expected.to_string());
        }
        // Max group scores accept one-expert groups.
        assert_eq!(
            small
                .with_gating(grouped(8, 2, GroupSelect::Max))
                .validate(),
            Ok(())
        );
    }

    #[test]
    fn validation_rejects_sizes_that_do_not_fit() {
        let huge = MoeConfig {
            moe_intermediate: usize::MAX / 2,
            ..MoeConfig::small()
        };
        assert!(matches!(
            huge.validate(),
            Err(ConfigError::TooLarge {
                what: "2 x moe_intermediate",
                ..
            })
        ));
        let wide = MoeConfig {
            hidden: 1 << 30,
            moe_intermediate: 1 << 29,
            ..MoeConfig::small()
        };
        let err = wide.validate().expect_err("too large");
        assert!(err.to_string().contains("layer parameters"), "{err}");
        // Saturating counts never overflow.
        assert_eq!(huge.parameter_count(), u64::MAX);
    }

    #[test]
    fn bytes_are_formatted_in_binary_units() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(22_548_578_304), "21.0 GiB");
    }
}
