//! The plain host reference of a MoE layer, written for clarity and independence from the
//! fused operators, plus the helpers an example needs to compare and show results.
//!
//! For each token, one at a time: router logits `x · gate.weight[e]`, scores, the routing
//! decision, then every chosen expert's MLP in turn, `y += w * down(silu(gate(x)) * up(x))`,
//! and the shared experts' MLP with weight 1. Dot products accumulate in f64; the logits,
//! scores and routing weights are rounded to f32 (what the device produces and consumes);
//! the output is accumulated in f64 and rounded to f32 once.
//!
//! Routing rules (see [`Gating`]); ties always go to the lower expert (or group) index, and
//! each token's experts are listed best first (by softmax probability, or by biased score):
//! - softmax: `p = softmax(logits)`, the top-k of `p`, optionally divided by their sum
//!   (+1e-20), times the scaling factor;
//! - sigmoid grouped: `s = sigmoid(logits)`, selection on `s + bias`: each group's score is
//!   its max or the sum of its top-2 biased scores, the best `topk_group` groups are kept,
//!   the top-k experts among them are chosen by biased score; their weights are the
//!   un-biased `s`, divided by their sum (+1e-20), times the scaling factor. Experts outside
//!   the kept groups are never chosen, as in DeepSeek-V3's inference code (which masks them
//!   with -inf) and CANN's `aclnnMoeGatingTopK`; the Hugging Face modelling code masks them
//!   with 0.0 instead, which differs only when a kept expert's biased score is negative.

use std::fmt::Write as _;

use ndarray::{Array1, Array2, ArrayRef, ArrayRef2, ArrayView1, Dimension};
use rand::RngExt;

use super::config::{ConfigError, Gating, GroupSelect, MoeConfig};
use super::weights::{Mlp, MoeWeights, parallel_map, stream_rng};

/// Added to the sum of the chosen weights before dividing, as DeepSeek's code and CANN's
/// `aclnnMoeGatingTopK` (`eps`) do.
pub const RENORM_EPS: f64 = 1e-20;

/// Everything the reference computes for a batch of T tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceOutput {
    /// Layer output `[T, H]`: the weighted routed experts plus the shared experts.
    pub y: Array2<f32>,
    /// Router logits `[T, E]` (what `x @ router_t` gives).
    pub logits: Array2<f32>,
    /// Chosen experts `[T, K]`, best first.
    pub experts: Array2<i32>,
    /// Routing weights `[T, K]`, in the order of `experts`.
    pub weights: Array2<f32>,
    /// Shared-expert output alone `[T, H]` (the `x1` input of `MoeFinalizeRoutingV2`);
    /// `None` without shared experts.
    pub shared: Option<Array2<f32>>,
    /// How many tokens chose each expert, `[E]`; sums to `T * K`.
    pub tokens_per_expert: Vec<usize>,
}

/// A routing decision for a batch: experts and weights, `[T, K]` each.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// Chosen experts, best first.
    pub experts: Array2<i32>,
    /// Their routing weights.
    pub weights: Array2<f32>,
}

/// Why the reference refused its input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("MoE reference: {what} has shape {found:?}, expected {expected:?}")]
    Shape {
        what: &'static str,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("MoE reference: {what} of token {token} contains a non-finite value")]
    NonFinite { what: &'static str, token: usize },
}

/// Runs the layer `weights` on `x [T, H]` (any T).
pub fn moe_reference(
    weights: &MoeWeights,
    x: &ArrayRef2<f32>,
) -> Result<ReferenceOutput, ReferenceError> {
    let config = weights.config();
    config.validate()?;
    let (h, e, k) = (config.hidden, config.n_routed_experts, config.top_k);
    let t = x.nrows();
    if x.ncols() != h {
        return Err(ReferenceError::Shape {
            what: "input x",
            expected: vec![t, h],
            found: x.shape().to_vec(),
        });
    }
    let per_token = parallel_map(t, |token| token_forward(weights, x.row(token), token));
    let mut out = ReferenceOutput {
        y: Array2::zeros((t, h)),
        logits: Array2::zeros((t, e)),
        experts: Array2::zeros((t, k)),
        weights: Array2::zeros((t, k)),
        shared: weights.shared_experts().map(|_| Array2::zeros((t, h))),
        tokens_per_expert: vec![0; e],
    };
    for (token, result) in per_token.into_iter().enumerate() {
        let result = result?;
        out.y.row_mut(token).assign(&ArrayView1::from(&result.y));
        out.logits
            .row_mut(token)
            .assign(&ArrayView1::from(&result.logits));
        out.weights
            .row_mut(token)
            .assign(&ArrayView1::from(&result.weights));
        for (slot, &expert) in result.experts.iter().enumerate() {
            out.experts[[token, slot]] = expert as i32;
            out.tokens_per_expert[expert] += 1;
        }
        if let (Some(shared), Some(values)) = (&mut out.shared, &result.shared) {
            shared.row_mut(token).assign(&ArrayView1::from(values));
        }
    }
    Ok(out)
}

/// The routing decision for given router logits `[T, E]` (for checking a device's gating
/// operator on the device's own logits). `bias` is the selection bias `[E]`, required by
/// sigmoid gating and ignored by softmax gating.
pub fn route_logits(
    config: &MoeConfig,
    logits: &ArrayRef2<f32>,
    bias: Option<&Array1<f32>>,
) -> Result<Routing, ReferenceError> {
    config.validate()?;
    let (e, k) = (config.n_routed_experts, config.top_k);
    let t = logits.nrows();
    if logits.ncols() != e {
        return Err(ReferenceError::Shape {
            what: "router logits",
            expected: vec![t, e],
            found: logits.shape().to_vec(),
        });
    }
    let bias: Option<Vec<f32>> = match (config.gating.uses_bias(), bias) {
        (false, _) => None,
        (true, Some(b)) if b.len() == e => Some(b.to_vec()),
        (true, found) => {
            return Err(ReferenceError::Shape {
                what: "selection bias",
                expected: vec![e],
                found: found.map_or(vec![], |b| b.shape().to_vec()),
            });
        }
    };
    let mut routing = Routing {
        experts: Array2::zeros((t, k)),
        weights: Array2::zeros((t, k)),
    };
    for (token, row) in logits.rows().into_iter().enumerate() {
        let row = row.to_vec();
        let (experts, weights) = route(config, &row, bias.as_deref(), token)?;
        for slot in 0..k {
            routing.experts[[token, slot]] = experts[slot] as i32;
            routing.weights[[token, slot]] = weights[slot];
        }
    }
    Ok(routing)
}

/// One token's share of [`ReferenceOutput`].
struct TokenResult {
    y: Vec<f32>,
    logits: Vec<f32>,
    experts: Vec<usize>,
    weights: Vec<f32>,
    shared: Option<Vec<f32>>,
}

fn token_forward(
    weights: &MoeWeights,
    x: ArrayView1<'_, f32>,
    token: usize,
) -> Result<TokenResult, ReferenceError> {
    let config = weights.config();
    if !x.iter().all(|v| v.is_finite()) {
        return Err(ReferenceError::NonFinite {
            what: "input x",
            token,
        });
    }
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let logits: Vec<f32> = weights
        .gate()
        .rows()
        .into_iter()
        .map(|w| dot(w, &x) as f32)
        .collect();
    let bias = weights.e_score_correction_bias().map(|b| b.to_vec());
    let (experts, routing_weights) = route(config, &logits, bias.as_deref(), token)?;

    let mut y = vec![0f64; config.hidden];
    for (&expert, &w) in experts.iter().zip(&routing_weights) {
        let out = mlp(&weights.experts()[expert], &x);
        for (acc, v) in y.iter_mut().zip(out) {
            *acc += f64::from(w) * v;
        }
    }
    let shared = weights.shared_experts().map(|m| mlp(m, &x));
    if let Some(shared) = &shared {
        for (acc, v) in y.iter_mut().zip(shared) {
            *acc += v;
        }
    }
    Ok(TokenResult {
        y: y.into_iter().map(|v| v as f32).collect(),
        logits,
        experts,
        weights: routing_weights,
        shared: shared.map(|s| s.into_iter().map(|v| v as f32).collect()),
    })
}

/// `down(silu(gate(x)) * up(x))` for one token, accumulated in f64.
fn mlp(m: &Mlp, x: &[f64]) -> Vec<f64> {
    let act: Vec<f64> = m
        .gate_proj
        .rows()
        .into_iter()
        .zip(m.up_proj.rows())
        .map(|(g, u)| silu(dot(g, x)) * dot(u, x))
        .collect();
    m.down_proj
        .rows()
        .into_iter()
        .map(|d| dot(d, &act))
        .collect()
}

/// `w · x` in f64. Eight partial sums instead of one let the additions overlap; the order
/// of summation is fixed, so the result is deterministic.
fn dot(w: ArrayView1<'_, f32>, x: &[f64]) -> f64 {
    let Some(w) = w.as_slice() else {
        // Rows of standard-layout arrays are contiguous; any other layout takes this path.
        return w.iter().zip(x).map(|(&a, &b)| f64::from(a) * b).sum();
    };
    let mut partial = [0f64; 8];
    let mut w_chunks = w.chunks_exact(8);
    let mut x_chunks = x.chunks_exact(8);
    for (wc, xc) in (&mut w_chunks).zip(&mut x_chunks) {
        for lane in 0..8 {
            partial[lane] += f64::from(wc[lane]) * xc[lane];
        }
    }
    let tail: f64 = w_chunks
        .remainder()
        .iter()
        .zip(x_chunks.remainder())
        .map(|(&a, &b)| f64::from(a) * b)
        .sum();
    partial.iter().sum::<f64>() + tail
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

/// One token's experts (best first) and weights from its logits `[E]`.
fn route(
    config: &MoeConfig,
    logits: &[f32],
    bias: Option<&[f32]>,
    token: usize,
) -> Result<(Vec<usize>, Vec<f32>), ReferenceError> {
    if !logits.iter().all(|v| v.is_finite()) {
        return Err(ReferenceError::NonFinite {
            what: "router logits",
            token,
        });
    }
    let k = config.top_k;
    match config.gating {
        Gating::Softmax { normalize, scaling } => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f64> = logits
                .iter()
                .map(|&l| (f64::from(l) - f64::from(max)).exp())
                .collect();
            let total: f64 = exps.iter().sum();
            let probs: Vec<f32> = exps.iter().map(|&v| (v / total) as f32).collect();
            let experts = top_k(&probs, 0..probs.len(), k);
            let chosen: Vec<f64> = experts.iter().map(|&e| f64::from(probs[e])).collect();
            let denominator = if normalize {
                chosen.iter().sum::<f64>() + RENORM_EPS
            } else {
                1.0
            };
            let weights = chosen
                .iter()
                .map(|&p| (p / denominator * f64::from(scaling)) as f32)
                .collect();
            Ok((experts, weights))
        }
        Gating::SigmoidGrouped {
            n_group,
            topk_group,
            group_select,
            scaling,
        } => {
            let bias = bias.ok_or(ReferenceError::Shape {
                what: "selection bias",
                expected: vec![logits.len()],
                found: vec![],
            })?;
            let scores: Vec<f32> = logits
                .iter()
                .map(|&l| (1.0 / (1.0 + (-f64::from(l)).exp())) as f32)
                .collect();
            let biased: Vec<f32> = scores.iter().zip(bias).map(|(s, b)| s + b).collect();
            if !biased.iter().all(|v| v.is_finite()) {
                return Err(ReferenceError::NonFinite {
                    what: "selection scores (sigmoid + bias)",
                    token,
                });
            }
            let per_group = logits.len() / n_group;
            let group_scores: Vec<f32> = biased
                .chunks(per_group)
                .map(|group| match group_select {
                    GroupSelect::Max => group[top_k(group, 0..group.len(), 1)[0]],
                    GroupSelect::SumTop2 => top_k(group, 0..group.len(), 2)
                        .iter()
                        .map(|&i| group[i])
                        .sum(),
                })
                .collect();
            let mut kept = top_k(&group_scores, 0..n_group, topk_group);
            kept.sort_unstable();
            let candidates = kept
                .iter()
                .flat_map(|&g| g * per_group..(g + 1) * per_group);
            let experts = top_k(&biased, candidates, k);
            let chosen: Vec<f64> = experts.iter().map(|&e| f64::from(scores[e])).collect();
            let denominator = chosen.iter().sum::<f64>() + RENORM_EPS;
            let weights = chosen
                .iter()
                .map(|&s| (s / denominator * f64::from(scaling)) as f32)
                .collect();
            Ok((experts, weights))
        }
    }
}

/// The `k` candidates with the largest `values`, largest first; ties go to the lower index.
/// `candidates` are indices into `values` in increasing order; `values` are finite.
fn top_k(values: &[f32], candidates: impl Iterator<Item = usize>, k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = candidates.collect();
    // A stable sort keeps increasing index order among equal values (0.0 and -0.0 are
    // equal here; finite values always compare).
    order.sort_by(|&a, &b| {
        values[b]
            .partial_cmp(&values[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order.truncate(k);
    order
}

/// Random hidden states `[config.tokens, H]`, standard normal (Box-Muller), the same for the
/// same `seed`; like the RMS-normalised activations a MoE layer receives.
pub fn random_tokens(config: &MoeConfig, seed: u64) -> Array2<f32> {
    let mut rng = stream_rng(seed, 0x746f_6b65_6e73);
    let n = config.tokens.saturating_mul(config.hidden);
    let mut values = Vec::with_capacity(n);
    while values.len() < n {
        // 1 - [0, 1) lies in (0, 1], so the logarithm is finite.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        values.push((r * theta.cos()) as f32);
        if values.len() < n {
            values.push((r * theta.sin()) as f32);
        }
    }
    Array2::from_shape_vec((config.tokens, config.hidden), values)
        .unwrap_or_else(|_| Array2::zeros((0, config.hidden)))
}

/// `max |actual - expected|`; infinite when any difference is NaN or infinite.
pub fn max_abs_err<D: Dimension>(
    actual: &ArrayRef<f32, D>,
    expected: &ArrayRef<f32, D>,
) -> Result<f32, ReferenceError> {
    same_shape(actual.shape(), expected.shape())?;
    Ok(actual
        .iter()
        .zip(expected.iter())
        .map(|(a, e)| finite_or_inf((a - e).abs()))
        .fold(0.0, f32::max))
}

/// `max |actual - expected| / max |expected|`: the largest error relative to the scale of
/// the expected output (element-wise ratios are meaningless where an output crosses zero).
/// Infinite when any difference is NaN or infinite, or when `expected` is all zero and
/// `actual` is not; 0 for empty arrays and for two equal arrays.
pub fn max_rel_err<D: Dimension>(
    actual: &ArrayRef<f32, D>,
    expected: &ArrayRef<f32, D>,
) -> Result<f32, ReferenceError> {
    let abs = max_abs_err(actual, expected)?;
    let scale = expected.iter().fold(0.0f32, |m, e| m.max(e.abs()));
    Ok(if abs == 0.0 {
        0.0
    } else {
        finite_or_inf(abs / scale)
    })
}

fn finite_or_inf(v: f32) -> f32 {
    if v.is_finite() { v } else { f32::INFINITY }
}

fn same_shape(actual: &[usize], expected: &[usize]) -> Result<(), ReferenceError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ReferenceError::Shape {
            what: "compared array",
            expected: expected.to_vec(),
            found: actual.to_vec(),
        })
    }
}

/// A text histogram of `tokens_per_expert` with bars up to `width` characters: one line per
/// expert for up to 64 experts, otherwise one line per bucket of consecutive experts (32
/// lines at most, e.g. 8 experts a line for 256), after a summary line.
pub fn histogram(tokens_per_expert: &[usize], width: usize) -> String {
    let n = tokens_per_expert.len();
    if n == 0 {
        return "tokens per expert: no experts\n".to_string();
    }
    let total: usize = tokens_per_expert.iter().sum();
    let min = tokens_per_expert.iter().copied().min().unwrap_or(0);
    let max = tokens_per_expert.iter().copied().max().unwrap_or(0);
    let idle = tokens_per_expert.iter().filter(|&&c| c == 0).count();
    let mut out = format!(
        "tokens per expert: {total} assignments over {n} experts, min {min}, max {max}, \
         mean {:.1}, {idle} idle\n",
        total as f64 / n as f64
    );
    let per_line = if n <= 64 { 1 } else { n.div_ceil(32) };
    let lines: Vec<(String, usize)> = tokens_per_expert
        .chunks(per_line)
        .enumerate()
        .map(|(line, counts)| {
            let first = line * per_line;
            let label = if counts.len() == 1 {
                format!("expert {first}")
            } else {
                format!("experts {first}-{}", first + counts.len() - 1)
            };
            (label, counts.iter().sum())
        })
        .collect();
    let label_width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let peak = lines.iter().map(|&(_, c)| c).max().unwrap_or(0);
    for (label, count) in &lines {
        // Round to nearest; any non-zero count gets at least one character.
        let bar = match (count * width + peak / 2).checked_div(peak) {
            None => 0,
            Some(len) if *count > 0 && width > 0 => len.max(1),
            Some(len) => len,
        };
        let _ = writeln!(
            out,
            "{label:<label_width$} |{}{} {count}",
            "#".repeat(bar),
            " ".repeat(width - bar)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::precision::Precision;
    use ndarray::array;

    /// One token through the layer, with everything in f64 and every loop written out:
    /// the "even more naive" computation the reference is checked against. Index loops
    /// mirror the formulas on purpose.
    #[allow(clippy::needless_range_loop)]
    fn naive_token(w: &MoeWeights, x: &[f32]) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
        let c = w.config();
        let (h, e, i, k) = (c.hidden, c.n_routed_experts, c.moe_intermediate, c.top_k);
        let mut logits = vec![0f64; e];
        for ex in 0..e {
            for hh in 0..h {
                logits[ex] += w.gate()[[ex, hh]] as f64 * x[hh] as f64;
            }
        }
        let mut chosen: Vec<usize> = Vec::new();
        let mut weights: Vec<f64> = Vec::new();
        match c.gating {
            Gating::Softmax { normalize, scaling } => {
                let mut max = f64::NEG_INFINITY;
                for &l in &logits {
                    if l > max {
                        max = l;
                    }
                }
                let mut sum = 0.0;
                for &l in &logits {
                    sum += (l - max).exp();
                }
                let p: Vec<f64> = logits.iter().map(|&l| (l - max).exp() / sum).collect();
                for _ in 0..k {
                    let mut best = usize::MAX;
                    for ex in 0..e {
                        if !chosen.contains(&ex) && (best == usize::MAX || p[ex] > p[best]) {
                            best = ex;
                        }
                    }
                    chosen.push(best);
                    weights.push(p[best]);
                }
                let mut sum = 0.0;
                for &v in &weights {
                    sum += v;
                }
                for v in &mut weights {
                    if normalize {
                        *v /= sum + 1e-20;
                    }
                    *v *= scaling as f64;
                }
            }
            Gating::SigmoidGrouped {
                n_group,
                topk_group,
                group_select,
                scaling,
            } => {
                let bias = w.e_score_correction_bias().unwrap();
                let s: Vec<f64> = logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect();
                let sel: Vec<f64> = (0..e).map(|ex| s[ex] + bias[ex] as f64).collect();
                let per = e / n_group;
                let mut group_score = vec![0f64; n_group];
                for g in 0..n_group {
                    let mut first = f64::NEG_INFINITY;
                    let mut second = f64::NEG_INFINITY;
                    for ex in g * per..(g + 1) * per {
                        if sel[ex] > first {
                            second = first;
                            first = sel[ex];
                        } else if sel[ex] > second {
                            second = sel[ex];
                        }
                    }
                    group_score[g] = match group_select {
                        GroupSelect::Max => first,
                        GroupSelect::SumTop2 => first + second,
                    };
                }
                let mut kept_groups: Vec<usize> = Vec::new();
                for _ in 0..topk_group {
                    let mut best = usize::MAX;
                    for g in 0..n_group {
                        if !kept_groups.contains(&g)
                            && (best == usize::MAX || group_score[g] > group_score[best])
                        {
                            best = g;
                        }
                    }
                    kept_groups.push(best);
                }
                for _ in 0..k {
                    let mut best = usize::MAX;
                    for ex in 0..e {
                        let allowed = kept_groups.contains(&(ex / per)) && !chosen.contains(&ex);
                        if allowed && (best == usize::MAX || sel[ex] > sel[best]) {
                            best = ex;
                        }
                    }
                    chosen.push(best);
                    weights.push(s[best]);
                }
                let mut sum = 0.0;
                for &v in &weights {
                    sum += v;
                }
                for v in &mut weights {
                    *v = *v / (sum + 1e-20) * scaling as f64;
                }
            }
        }
        let run = |m: &Mlp, width: usize, scale: f64, y: &mut Vec<f64>| {
            let mut act = vec![0f64; width];
            for ii in 0..width {
                let mut g = 0.0;
                let mut u = 0.0;
                for hh in 0..h {
                    g += m.gate_proj[[ii, hh]] as f64 * x[hh] as f64;
                    u += m.up_proj[[ii, hh]] as f64 * x[hh] as f64;
                }
                act[ii] = g / (1.0 + (-g).exp()) * u;
            }
            for hh in 0..h {
                let mut d = 0.0;
                for ii in 0..width {
                    d += m.down_proj[[hh, ii]] as f64 * act[ii];
                }
                y[hh] += scale * d;
            }
        };
        let mut y = vec![0f64; h];
        for (slot, &ex) in chosen.iter().enumerate() {
            run(&w.experts()[ex], i, weights[slot], &mut y);
        }
        if let Some(shared) = w.shared_experts() {
            run(shared, c.shared_intermediate(), 1.0, &mut y);
        }
        (chosen, weights, y)
    }

    fn check_against_naive(config: MoeConfig, seed: u64) {
        let w = MoeWeights::random(&config, seed).unwrap();
        let x = random_tokens(&config, seed + 100);
        let out = moe_reference(&w, &x).unwrap();
        for token in [0, config.tokens - 1] {
            let (experts, weights, y) = naive_token(&w, x.row(token).as_slice().unwrap());
            let got: Vec<usize> = out.experts.row(token).iter().map(|&e| e as usize).collect();
            assert_eq!(got, experts, "token {token} of {config}");
            for (slot, &nw) in weights.iter().enumerate() {
                let rw = out.weights[[token, slot]] as f64;
                assert!((rw - nw).abs() <= 1e-6 * nw.abs().max(1e-3), "{rw} vs {nw}");
            }
            let scale = y.iter().fold(0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0);
            for (hh, &ny) in y.iter().enumerate() {
                let ry = out.y[[token, hh]] as f64;
                assert!(
                    (ry - ny).abs() <= 1e-5 * scale,
                    "y[{token},{hh}]: {ry} vs {ny}"
                );
            }
        }
    }

    #[test]
    fn matches_the_naive_computation_with_sigmoid_grouped_gating() {
        check_against_naive(MoeConfig::small(), 21);
        // Max group scores, wider groups, no shared expert.
        check_against_naive(
            MoeConfig {
                n_routed_experts: 16,
                top_k: 3,
                n_shared_experts: 0,
                ..MoeConfig::small().with_gating(Gating::SigmoidGrouped {
                    n_group: 4,
                    topk_group: 2,
                    group_select: GroupSelect::Max,
                    scaling: 1.5,
                })
            },
            22,
        );
    }

    #[test]
    fn matches_the_naive_computation_with_softmax_gating() {
        for (normalize, scaling) in [(false, 1.0), (true, 2.5)] {
            let config = MoeConfig {
                n_shared_experts: 2,
                top_k: 3,
                ..MoeConfig::small().with_gating(Gating::Softmax { normalize, scaling })
            };
            check_against_naive(config, 23);
        }
    }

    /// Four experts in two groups {0, 1} and {2, 3}; H = 2 with x = [1, 0], so expert e's
    /// logit is `gate[e, 0]`, and each expert is a width-1 MLP whose output is easy to write.
    fn four_experts(gating: Gating, logits: [f32; 4], bias: Option<[f32; 4]>) -> MoeWeights {
        let config = MoeConfig {
            name: "four experts",
            hidden: 2,
            n_routed_experts: 4,
            top_k: 2,
            n_shared_experts: 1,
            moe_intermediate: 1,
            gating,
            tokens: 1,
            published_width: None,
        };
        let gate = Array2::from_shape_fn((4, 2), |(e, h)| if h == 0 { logits[e] } else { 0.5 });
        // Expert e: gate(x) = 1, up(x) = e + 1, down = [1, -1] * 10^e.
        let experts = (0..4)
            .map(|e| Mlp {
                gate_proj: array![[1.0, 0.0]],
                up_proj: array![[(e + 1) as f32, 0.0]],
                down_proj: array![[10f32.powi(e)], [-(10f32.powi(e))]],
            })
            .collect();
        let shared = Mlp {
            gate_proj: array![[2.0, 0.0]],
            up_proj: array![[1.0, 0.0]],
            down_proj: array![[0.0], [1.0]],
        };
        MoeWeights::from_parts(
            config,
            gate,
            bias.map(|b| Array1::from(b.to_vec())),
            experts,
            Some(shared),
        )
        .unwrap()
    }

    fn sigmoid(v: f32) -> f32 {
        1.0 / (1.0 + (-v).exp())
    }

    fn grouped(topk_group: usize, scaling: f32) -> Gating {
        Gating::SigmoidGrouped {
            n_group: 2,
            topk_group,
            group_select: GroupSelect::SumTop2,
            scaling,
        }
    }

    const X: [[f32; 2]; 1] = [[1.0, 0.0]];

    #[test]
    fn group_limiting_excludes_the_best_expert_in_a_weak_group() {
        // Scores: e0 0.881, e1 0.269 (group 0 sums to 1.150); e2 0.818, e3 0.731 (group 1
        // sums to 1.549). Expert 0 is the best single expert, but its group loses.
        let logits = [2.0, -1.0, 1.5, 1.0];
        let w = four_experts(grouped(1, 2.5), logits, Some([0.0; 4]));
        let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
        assert_eq!(out.experts, array![[2, 3]]);
        let (s2, s3) = (sigmoid(1.5), sigmoid(1.0));
        let expected = [s2 / (s2 + s3) * 2.5, s3 / (s2 + s3) * 2.5];
        for (got, want) in out.weights.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(out.tokens_per_expert, vec![0, 0, 1, 1]);
        // Keeping both groups lets expert 0 in.
        let w = four_experts(grouped(2, 2.5), logits, Some([0.0; 4]));
        let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
        assert_eq!(out.experts, array![[0, 2]]);
    }

    #[test]
    fn the_bias_changes_the_choice_but_not_the_weights() {
        // A bias of 0.6 on expert 1 lifts group 0 to 0.881 + 0.869 = 1.750 > 1.549, and
        // expert 1's biased score 0.869 above experts 2 and 3.
        let logits = [2.0, -1.0, 1.5, 1.0];
        let w = four_experts(grouped(1, 1.0), logits, Some([0.0, 0.6, 0.0, 0.0]));
        let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
        assert_eq!(out.experts, array![[0, 1]]);
        // Weights come from the un-biased sigmoid scores.
        let (s0, s1) = (sigmoid(2.0), sigmoid(-1.0));
        let expected = [s0 / (s0 + s1), s1 / (s0 + s1)];
        for (got, want) in out.weights.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // With the bias counted in the weights, they would differ clearly.
        assert!((out.weights[[0, 1]] - (s1 + 0.6) / (s0 + s1 + 0.6)).abs() > 0.1);

        // The output: sum of w_e * down_e * silu(1) * (e + 1), plus the shared expert
        // [0, silu(2) * 1], with x = [1, 0] and the 0.5 in gate[:, 1] not touching x.
        let silu1 = 1.0 / (1.0 + (-1.0f64).exp());
        let silu2 = 2.0 / (1.0 + (-2.0f64).exp());
        let routed =
            expected[0] as f64 * silu1 * 1.0 * 1.0 + expected[1] as f64 * silu1 * 2.0 * 10.0;
        let want = [routed, -routed + silu2];
        for (got, want) in out.y.iter().zip(want) {
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
        let shared = out.shared.as_ref().unwrap();
        assert!((shared[[0, 1]] as f64 - silu2).abs() < 1e-6 && shared[[0, 0]] == 0.0);
    }

    #[test]
    fn max_group_scores_and_ties_go_to_the_lower_index() {
        // Max of group 0 = 0.881 > max of group 1 = 0.818: group 0 wins under Max though it
        // loses under the sum of the top-2.
        let gating = Gating::SigmoidGrouped {
            n_group: 2,
            topk_group: 1,
            group_select: GroupSelect::Max,
            scaling: 1.0,
        };
        let w = four_experts(gating, [2.0, -1.0, 1.5, 1.0], Some([0.0; 4]));
        let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
        assert_eq!(out.experts, array![[0, 1]]);
        // All equal: groups and experts by index.
        let w = four_experts(grouped(1, 1.0), [0.3; 4], Some([0.0; 4]));
        let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
        assert_eq!(out.experts, array![[0, 1]]);
        assert_eq!(out.weights, array![[0.5, 0.5]]);
        let soft = Gating::Softmax {
            normalize: false,
            scaling: 1.0,
        };
        let w = four_experts(soft, [1.0, 2.0, 2.0, 2.0], None);
        let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
        assert_eq!(out.experts, array![[1, 2]]);
    }

    #[test]
    fn softmax_weights_are_the_top_k_probabilities() {
        let logits = [2.0f32, -1.0, 1.5, 1.0];
        let exps: Vec<f32> = logits.iter().map(|l| l.exp()).collect();
        let total: f32 = exps.iter().sum();
        let (p0, p2) = (exps[0] / total, exps[2] / total);
        for (normalize, scaling, expected) in [
            (false, 1.0, [p0, p2]),
            (false, 2.0, [2.0 * p0, 2.0 * p2]),
            (true, 1.0, [p0 / (p0 + p2), p2 / (p0 + p2)]),
            (true, 2.5, [2.5 * p0 / (p0 + p2), 2.5 * p2 / (p0 + p2)]),
        ] {
            let w = four_experts(Gating::Softmax { normalize, scaling }, logits, None);
            let out = moe_reference(&w, &ndarray::arr2(&X)).unwrap();
            assert_eq!(out.experts, array![[0, 2]]);
            for (got, want) in out.weights.iter().zip(expected) {
                assert!(
                    (got - want).abs() < 1e-6,
                    "{normalize} {scaling}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn route_logits_agrees_with_the_full_reference() {
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 31).unwrap();
        let x = random_tokens(&config, 32);
        let out = moe_reference(&w, &x).unwrap();
        let routing = route_logits(&config, &out.logits, w.e_score_correction_bias()).unwrap();
        assert_eq!(routing.experts, out.experts);
        assert_eq!(routing.weights, out.weights);
        assert_eq!(
            out.tokens_per_expert.iter().sum::<usize>(),
            config.tokens * config.top_k
        );
        // Logits from the device layout give the same numbers to within f32 rounding.
        let device_logits = x.dot(&w.router_t());
        assert!(max_abs_err(&device_logits, &out.logits).unwrap() < 1e-5);
        // Each row's experts are distinct, best first by biased score.
        let bias = w.e_score_correction_bias().unwrap();
        for (token, row) in out.experts.rows().into_iter().enumerate() {
            let sel: Vec<f32> = row
                .iter()
                .map(|&e| sigmoid(out.logits[[token, e as usize]]) + bias[e as usize])
                .collect();
            assert!(sel.windows(2).all(|p| p[0] >= p[1] - 1e-6), "{sel:?}");
            assert_ne!(row[0], row[1]);
        }
    }

    #[test]
    fn the_shared_expert_output_is_part_of_y() {
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 41).unwrap();
        let x = random_tokens(&config, 42);
        let out = moe_reference(&w, &x).unwrap();
        let shared = out.shared.as_ref().unwrap();
        // Without shared experts, y loses exactly the shared part.
        let none = MoeConfig {
            n_shared_experts: 0,
            ..config
        };
        let w0 = MoeWeights::from_parts(
            none,
            w.gate().clone(),
            w.e_score_correction_bias().cloned(),
            w.experts().to_vec(),
            None,
        )
        .unwrap();
        let out0 = moe_reference(&w0, &x).unwrap();
        assert!(out0.shared.is_none());
        assert!(max_abs_err(&(&out0.y + shared), &out.y).unwrap() < 1e-5);
        assert_eq!(out0.experts, out.experts);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 1).unwrap();
        let err = moe_reference(&w, &Array2::zeros((4, config.hidden + 1))).unwrap_err();
        assert_eq!(
            err,
            ReferenceError::Shape {
                what: "input x",
                expected: vec![4, config.hidden],
                found: vec![4, config.hidden + 1],
            }
        );
        let mut x = random_tokens(&config, 1);
        x[[5, 7]] = f32::NAN;
        assert_eq!(
            moe_reference(&w, &x).unwrap_err(),
            ReferenceError::NonFinite {
                what: "input x",
                token: 5
            }
        );
        let mut logits = Array2::zeros((2, config.n_routed_experts));
        logits[[1, 0]] = f32::INFINITY;
        let bias = w.e_score_correction_bias();
        assert!(matches!(
            route_logits(&config, &logits, bias),
            Err(ReferenceError::NonFinite { token: 1, .. })
        ));
        assert!(matches!(
            route_logits(&config, &Array2::zeros((2, 3)), bias),
            Err(ReferenceError::Shape {
                what: "router logits",
                ..
            })
        ));
        assert!(matches!(
            route_logits(&config, &Array2::zeros((2, 8)), None),
            Err(ReferenceError::Shape {
                what: "selection bias",
                ..
            })
        ));
        // Zero tokens is an empty batch, not an error.
        let out = moe_reference(&w, &Array2::zeros((0, config.hidden))).unwrap();
        assert_eq!(out.y.dim(), (0, config.hidden));
        assert_eq!(out.tokens_per_expert, vec![0; 8]);
    }

    #[test]
    fn half_precision_weights_run_through_the_same_reference() {
        let config = MoeConfig::small();
        let w = MoeWeights::random(&config, 51).unwrap();
        let x = random_tokens(&config, 52);
        let full = moe_reference(&w, &x).unwrap();
        let half = moe_reference(
            &w.rounded_to(Precision::Bf16),
            &Precision::Bf16.round_array(&x),
        )
        .unwrap();
        // bf16 keeps 8 significant bits: tokens routed alike move by about a percent of the
        // output's scale. A near-tie may route a token differently; most are routed alike.
        let mut alike = 0;
        for token in 0..config.tokens {
            if half.experts.row(token) == full.experts.row(token) {
                alike += 1;
                let rel = max_rel_err(&half.y.row(token), &full.y.row(token)).unwrap();
                assert!(rel > 0.0 && rel < 0.05, "token {token}: {rel}");
            }
        }
        assert!(alike * 2 > config.tokens, "{alike} of {}", config.tokens);
    }

    #[test]
    fn random_tokens_are_seeded_and_standard_normal() {
        let config = MoeConfig::small().with_tokens(64);
        let a = random_tokens(&config, 3);
        assert_eq!(a, random_tokens(&config, 3));
        assert_ne!(a, random_tokens(&config, 4));
        assert_eq!(a.dim(), (64, config.hidden));
        let mean = a.mean().unwrap();
        let var = a.mapv(|v| (v - mean) * (v - mean)).mean().unwrap();
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        assert!(a.iter().all(|v| v.is_finite()));
        let odd = MoeConfig {
            hidden: 3,
            ..config.with_tokens(1)
        };
        assert_eq!(random_tokens(&odd, 1).dim(), (1, 3));
    }

    #[test]
    fn error_helpers() {
        let a = array![[1.0f32, 2.0], [3.0, -100.0]];
        let b = array![[1.0f32, 2.5], [3.0, -101.0]];
        assert_eq!(max_abs_err(&a, &b).unwrap(), 1.0);
        // The largest error, 1, against the largest expected magnitude, 101.
        assert!((max_rel_err(&a, &b).unwrap() - 1.0 / 101.0).abs() < 1e-7);
        assert_eq!(max_abs_err(&a, &a).unwrap(), 0.0);
        assert_eq!(max_rel_err(&a, &a).unwrap(), 0.0);
        let zero = Array2::<f32>::zeros((2, 2));
        assert_eq!(max_rel_err(&zero, &zero).unwrap(), 0.0);
        assert_eq!(max_rel_err(&a, &zero).unwrap(), f32::INFINITY);
        let mut nan = a.clone();
        nan[[0, 0]] = f32::NAN;
        assert_eq!(max_abs_err(&nan, &a).unwrap(), f32::INFINITY);
        assert_eq!(max_rel_err(&nan, &a).unwrap(), f32::INFINITY);
        assert!(matches!(
            max_abs_err(&a, &array![[1.0f32, 2.0]]),
            Err(ReferenceError::Shape { .. })
        ));
        let empty = Array2::<f32>::zeros((0, 3));
        assert_eq!(max_rel_err(&empty, &empty).unwrap(), 0.0);
    }

    #[test]
    fn histogram_has_a_line_per_expert_or_bucket() {
        let text = histogram(&[0, 5, 10, 1], 10);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(
            lines[0].contains("16 assignments over 4 experts, min 0, max 10"),
            "{text}"
        );
        assert!(lines[0].contains("1 idle"));
        assert_eq!(lines[1], "expert 0 |           0");
        assert_eq!(lines[2], "expert 1 |#####      5");
        assert_eq!(lines[3], "expert 2 |########## 10");
        // A single token still shows.
        assert_eq!(lines[4], "expert 3 |#          1");

        let many: Vec<usize> = (0..256).map(|e| e % 8).collect();
        let text = histogram(&many, 20);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 32);
        assert!(lines[1].starts_with("experts 0-7 "), "{}", lines[1]);
        assert!(lines[32].starts_with("experts 248-255 "), "{}", lines[32]);
        assert!(lines[1].ends_with(" 28"));
        assert_eq!(histogram(&[], 10), "tokens per expert: no experts\n");
        assert_eq!(
            histogram(&[0, 0], 4).lines().nth(1),
            Some("expert 0 |     0")
        );
    }
}
