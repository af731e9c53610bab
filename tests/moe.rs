//! End-to-end tests of the MoE layer on the mock device ([`MoeLayer`]) against the plain host
//! reference ([`moe_reference`]): both gating forms, f32/f16/bf16, experts without tokens,
//! one token, `top_k` equal to the expert count, pool reuse across passes, and weights read
//! from a safetensors file with Hugging Face names.

use std::sync::{Arc, Once};

use ascend::moe::layer::{to_element, to_f32};
use ascend::moe::{
    Gating, GroupSelect, MoeConfig, MoeElement, MoeLayer, MoeWeights, Precision, load_safetensors,
    max_rel_err, moe_reference, random_tokens, route_logits,
};
use ascend_rt::{Backend, Context, Error, Stream, Tensor, bf16, f16};
use ndarray::{Array2, Axis, Ix1, Ix2};

static SETUP: Once = Once::new();

fn stream() -> Arc<Stream> {
    SETUP.call_once(|| {
        ascend_rt::init(Backend::Mock).expect("the mock backend initialises");
    });
    Context::new(0)
        .expect("device 0 opens")
        .new_stream()
        .expect("a stream")
}

fn softmax(scaling: f32) -> Gating {
    Gating::Softmax {
        normalize: false,
        scaling,
    }
}

fn grouped(n_group: usize, topk_group: usize, scaling: f32) -> Gating {
    Gating::SigmoidGrouped {
        n_group,
        topk_group,
        group_select: GroupSelect::SumTop2,
        scaling,
    }
}

/// Mid-size layer: hidden 256, 32 experts in 4 groups (best 2 kept), top-4, width 128,
/// 1 shared expert, 64 tokens.
fn mid() -> MoeConfig {
    MoeConfig {
        name: "mid",
        hidden: 256,
        n_routed_experts: 32,
        top_k: 4,
        n_shared_experts: 1,
        moe_intermediate: 128,
        gating: grouped(4, 2, 2.5),
        tokens: 64,
        published_width: None,
    }
}

/// What a device pass and the reference agree on.
struct Comparison {
    /// Tokens whose chosen experts differ between the device and the reference.
    rerouted: usize,
    /// `max_rel_err` of `y` over the tokens routed alike.
    y_err: f32,
    /// `max_rel_err` of the device's routing weights against `route_logits` on the
    /// device's own logits.
    weight_err: f32,
    /// `max_rel_err` of the device logits against the reference's.
    logit_err: f32,
    /// Device tokens per expert.
    counts: Vec<usize>,
}

/// Runs `weights` (rounded to `T`) on the device and the reference on the same rounded
/// weights and tokens, and compares.
fn compare<T: MoeElement>(s: &Arc<Stream>, weights: &MoeWeights, seed: u64) -> Comparison {
    let config = *weights.config();
    let p = T::PRECISION;
    let w = weights.rounded_to(p);
    let x = p.round_array(&random_tokens(&config, seed));
    let layer = MoeLayer::<T>::new(s, &w).expect("layer uploads");
    let xd = Tensor::from_array(s, to_element::<T, _>(&x).view()).unwrap();
    let out = layer.forward(s, &xd).expect("forward runs");
    let reference = moe_reference(&w, &x).expect("reference runs");

    let y = to_f32(&out.y.to_array_d::<Ix2>().unwrap());
    let logits = to_f32(&out.logits.to_array_d::<Ix2>().unwrap());
    let experts = out.expert_idx.to_array_d::<Ix2>().unwrap();
    let routing_weights = to_f32(&out.routing_weights.to_array_d::<Ix2>().unwrap());
    let counts: Vec<usize> = out
        .tokens_per_expert
        .to_array_d::<Ix1>()
        .unwrap()
        .iter()
        .map(|&c| usize::try_from(c).expect("non-negative count"))
        .collect();

    // The device's gating must route its own logits exactly as the host rule does.
    let host = route_logits(&config, &logits, w.e_score_correction_bias()).unwrap();
    assert_eq!(experts, host.experts, "gating on the device's own logits");
    let weight_err = max_rel_err(&routing_weights, &host.weights).unwrap();

    // The counts are those of the device's own choices.
    let mut own = vec![0usize; config.n_routed_experts];
    for &e in &experts {
        own[e as usize] += 1;
    }
    assert_eq!(counts, own);
    assert_eq!(counts.iter().sum::<usize>(), config.tokens * config.top_k);

    let alike: Vec<usize> = (0..config.tokens)
        .filter(|&t| experts.row(t) == reference.experts.row(t))
        .collect();
    let y_err = if alike.is_empty() {
        0.0
    } else {
        max_rel_err(
            &y.select(Axis(0), &alike),
            &reference.y.select(Axis(0), &alike),
        )
        .unwrap()
    };
    if alike.len() == config.tokens {
        assert_eq!(counts, reference.tokens_per_expert);
    }
    Comparison {
        rerouted: config.tokens - alike.len(),
        y_err,
        weight_err,
        logit_err: max_rel_err(&logits, &reference.logits).unwrap(),
        counts,
    }
}

/// f32: identical routing and 1e-4 relative error.
fn check_f32(config: MoeConfig, seed: u64) -> Comparison {
    let s = stream();
    let weights = MoeWeights::random(&config, seed).unwrap();
    let c = compare::<f32>(&s, &weights, seed + 1);
    assert_eq!(c.rerouted, 0, "{}: f32 routing differs", config.name);
    assert!(
        c.logit_err < 1e-5,
        "{}: logits {}",
        config.name,
        c.logit_err
    );
    assert!(
        c.weight_err < 1e-5,
        "{}: weights {}",
        config.name,
        c.weight_err
    );
    assert!(c.y_err < 1e-4, "{}: y {}", config.name, c.y_err);
    c
}

#[test]
fn small_config_in_f32_matches_the_reference() {
    check_f32(MoeConfig::small(), 1);
    check_f32(MoeConfig::small().with_gating(softmax(1.0)), 2);
}

#[test]
fn softmax_gating_applies_a_scaling_factor() {
    check_f32(MoeConfig::small().with_gating(softmax(2.0)), 3);
}

#[test]
fn mid_size_config_in_f32_matches_for_both_gatings() {
    check_f32(mid(), 4);
    check_f32(mid().with_gating(softmax(1.0)), 5);
}

/// Half precision. The reference runs on the same rounded weights and tokens, so what
/// remains is the device's rounding of its stored intermediates to `T`: logits, routing
/// weights, the gate/up product, the activation, the down product, the shared output and
/// `y` (seven roundings of relative size 2^-11 in f16, 2^-8 in bf16), some of which pass
/// through a sum of K experts and the SwiGLU product. Seven roundings give 7 x 2^-8 = 2.7e-2
/// in bf16 and 3.4e-3 in f16 at worst when they all line up; the bounds below are that
/// worst case, relative to max |y|. The routing weights are one rounding of a value computed
/// from the same logits (2^-8 / 2^-11, doubled for the sigmoid's renormalisation).
///
/// Tokens whose logits lie within a rounding of a tie may choose other experts than the
/// reference (which routes on f32 logits); they are counted, bounded to an eighth of the
/// tokens, and left out of the comparison of `y`. Their routing is still checked: the
/// device's choice must be exactly `route_logits` on the device's own logits.
fn check_half<T: MoeElement>(config: MoeConfig, seed: u64, y_tol: f32, w_tol: f32) {
    let s = stream();
    let weights = MoeWeights::random(&config, seed).unwrap();
    let c = compare::<T>(&s, &weights, seed + 1);
    let name = format!("{} {}", config.name, T::PRECISION);
    eprintln!(
        "{name}: rerouted {} y {} w {} logits {}",
        c.rerouted, c.y_err, c.weight_err, c.logit_err
    );
    assert!(
        c.rerouted * 8 <= config.tokens,
        "{name}: {} of {} tokens rerouted",
        c.rerouted,
        config.tokens
    );
    assert!(c.weight_err < w_tol, "{name}: weights {}", c.weight_err);
    assert!(c.y_err < y_tol, "{name}: y {} (tolerance {y_tol})", c.y_err);
}

#[test]
fn f16_matches_the_reference_within_its_rounding() {
    check_half::<f16>(MoeConfig::small(), 6, 3.4e-3, 1e-3);
    check_half::<f16>(mid(), 7, 3.4e-3, 1e-3);
    check_half::<f16>(mid().with_gating(softmax(1.0)), 8, 3.4e-3, 1e-3);
}

#[test]
fn bf16_matches_the_reference_within_its_rounding() {
    check_half::<bf16>(MoeConfig::small(), 9, 2.7e-2, 8e-3);
    check_half::<bf16>(mid(), 10, 2.7e-2, 8e-3);
    check_half::<bf16>(mid().with_gating(softmax(1.0)), 11, 2.7e-2, 8e-3);
}

#[test]
fn experts_without_tokens_stay_idle() {
    // 2 tokens x top-2 reach at most 4 of 32 experts.
    let config = mid().with_tokens(2).with_gating(grouped(4, 2, 1.0));
    let config = MoeConfig { top_k: 2, ..config };
    let c = check_f32(config, 12);
    let idle = c.counts.iter().filter(|&&n| n == 0).count();
    assert!(idle >= 28, "{:?}", c.counts);
    let c = check_f32(config.with_gating(softmax(1.0)), 13);
    assert!(c.counts.iter().filter(|&&n| n == 0).count() >= 28);
}

#[test]
fn one_token() {
    check_f32(MoeConfig::small().with_tokens(1), 14);
    check_f32(mid().with_tokens(1).with_gating(softmax(1.0)), 15);
}

#[test]
fn top_k_equal_to_the_expert_count() {
    let all = MoeConfig {
        top_k: 8,
        ..MoeConfig::small()
    };
    let c = check_f32(all.with_gating(softmax(1.0)), 16);
    assert_eq!(c.counts, vec![16; 8]);
    let c = check_f32(all.with_gating(grouped(4, 4, 2.5)), 17);
    assert_eq!(c.counts, vec![16; 8]);
}

#[test]
fn no_shared_experts() {
    check_f32(
        MoeConfig {
            n_shared_experts: 0,
            ..MoeConfig::small()
        },
        18,
    );
}

#[test]
fn later_passes_make_no_device_allocation() {
    let s = stream();
    let config = mid();
    let weights = MoeWeights::random(&config, 19).unwrap();
    let layer = MoeLayer::<f32>::new(&s, &weights).unwrap();
    let x = random_tokens(&config, 20);
    let xd = Tensor::from_array(&s, x.view()).unwrap();
    let pool = s.context().pool();
    let first = layer.forward(&s, &xd).unwrap().y.to_vec().unwrap();
    let second = layer.forward(&s, &xd).unwrap().y.to_vec().unwrap();
    assert_eq!(first, second);
    let before = pool.stats();
    for _ in 3..=5 {
        let y = layer.forward(&s, &xd).unwrap().y.to_vec().unwrap();
        assert_eq!(y, first);
    }
    let after = pool.stats();
    assert_eq!(after.device_allocs, before.device_allocs, "{after:?}");
    assert!(after.cache_hits > before.cache_hits, "{after:?}");
}

#[test]
fn weights_from_a_safetensors_file_match_the_reference() {
    let config = MoeConfig::small();
    let original = MoeWeights::random(&config, 21).unwrap();
    let dir = std::env::temp_dir().join(format!("ascend-moe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("layer.safetensors");
    original
        .save_safetensors_as(&path, 3, Precision::Bf16)
        .unwrap();
    let loaded = load_safetensors(&path, 3, &config).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // The file holds bf16 values: what was loaded is the bf16 rounding of the original.
    assert_eq!(loaded, original.rounded_to(Precision::Bf16));
    let s = stream();
    let c = compare::<f32>(&s, &loaded, 22);
    assert_eq!(c.rerouted, 0);
    assert!(c.y_err < 1e-4, "{}", c.y_err);
    // Loading another layer's name fails with a clear error.
    assert!(load_safetensors(&path, 4, &config).is_err());
}

#[test]
fn bad_input_is_an_error() {
    let s = stream();
    let config = MoeConfig::small();
    let weights = MoeWeights::random(&config, 23).unwrap();
    let layer = MoeLayer::<f32>::new(&s, &weights).unwrap();
    let wrong = Tensor::from_array(&s, Array2::<f32>::zeros((4, 64)).view()).unwrap();
    match layer.forward(&s, &wrong) {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.contains("[tokens >= 1, 128]"))
        }
        other => panic!("{other:?}"),
    }
    let renorm = MoeWeights::random(
        &config.with_gating(Gating::Softmax {
            normalize: true,
            scaling: 1.0,
        }),
        24,
    )
    .unwrap();
    match MoeLayer::<f32>::new(&s, &renorm) {
        Err(Error::InvalidArgument { reason, .. }) => assert!(reason.contains("renorm")),
        other => panic!("{other:?}"),
    }
}
