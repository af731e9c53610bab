//! The expert-parallel MoE layer ([`ExpertParallelLayer`]) against the single-device layer
//! ([`MoeLayer`]) on the same weights and tokens, on 8 mock devices: N = 1, 2, 3, 4, 8 ranks,
//! token counts that N does not divide (and fewer tokens than ranks), routing that leaves
//! ranks without rows, both gating rules, f16 and bf16, ranks on any distinct devices, and the
//! arguments it refuses.

use std::sync::{Arc, Once};

use ascend::moe::ep::{EpOutput, ExpertParallelLayer};
use ascend::moe::layer::to_element;
use ascend::moe::{
    Gating, MoeConfig, MoeElement, MoeLayer, MoeWeights, Precision, max_rel_err, random_tokens,
};
use ascend_rt::{Backend, Context, Error, Stream, Tensor, bf16, f16};
use ndarray::{Array1, Array2};

const DEVICES: u32 = 8;

static SETUP: Once = Once::new();

/// The mock with 8 devices, configured before its first use in this test binary.
fn setup() {
    SETUP.call_once(|| {
        ascend_mock::configure(ascend_mock::Config {
            devices: DEVICES,
            ..ascend_mock::Config::default()
        })
        .expect("the mock is not initialised yet in this process");
        ascend_rt::init(Backend::Mock).expect("the mock backend initialises");
    });
}

fn stream0() -> Arc<Stream> {
    setup();
    Context::new(0).unwrap().new_stream().unwrap()
}

/// The single-device layer's output `[T, H]` (f32) on tokens `x` (already rounded to `T`),
/// and its tokens per expert.
fn single<T: MoeElement>(weights: &MoeWeights, x: &Array2<f32>) -> (Array2<f32>, Vec<usize>) {
    let s = stream0();
    let layer = MoeLayer::<T>::new(&s, weights).expect("single-device layer uploads");
    let xd = Tensor::from_array(&s, to_element::<T, _>(x).view()).unwrap();
    let out = layer.forward(&s, &xd).expect("single-device pass");
    let y = out.y.to_array_d::<ndarray::Ix2>().unwrap().mapv(T::to_f32);
    (y, out.tokens_per_expert_host().unwrap())
}

/// Runs the EP layer on `ranks` devices and checks the bookkeeping of its stats against
/// the single-device layer's tokens per expert; returns (EP output, single output, pass).
fn run<T: MoeElement>(
    weights: &MoeWeights,
    x: &Array2<f32>,
    ranks: usize,
) -> (Array2<f32>, Array2<f32>, EpOutput<T>) {
    setup();
    let config = *weights.config();
    let (want, per_expert) = single::<T>(weights, x);
    let ep = ExpertParallelLayer::<T>::with_ranks(weights, ranks).expect("EP layer uploads");
    let xs = ep.scatter(x).unwrap();
    let out = ep.forward(&xs).expect("EP pass");
    let got = out.gather().unwrap();
    assert_eq!(got.dim(), want.dim());

    let t = x.nrows();
    let k = config.top_k;
    let split = ep.token_split(t);
    assert_eq!(out.stats.len(), ranks);
    let mut experts_seen = 0;
    for (r, st) in out.stats.iter().enumerate() {
        assert_eq!(st.home_tokens, split.size(r), "rank {r} home tokens");
        assert_eq!(st.rows_sent.iter().sum::<usize>(), st.home_tokens * k);
        // Rows received per local expert are exactly the single layer's tokens per expert.
        assert_eq!(
            st.rows_per_local_expert,
            per_expert[st.experts.clone()].to_vec(),
            "rank {r} experts {:?}",
            st.experts
        );
        assert_eq!(
            st.rows_received(),
            st.rows_per_local_expert.iter().sum::<usize>()
        );
        // What rank r received from s is what s sent to r.
        for (src, other) in out.stats.iter().enumerate() {
            assert_eq!(
                st.rows_received_from[src], other.rows_sent[r],
                "{src} -> {r}"
            );
        }
        assert_eq!(st.experts.start, experts_seen, "blocks are contiguous");
        experts_seen = st.experts.end;
        assert!(st.phases.total_ms() >= 0.0);
    }
    assert_eq!(experts_seen, config.n_routed_experts);
    let received: usize = out.stats.iter().map(|s| s.rows_received()).sum();
    assert_eq!(received, t * k);
    (got, want, out)
}

/// EP against single-device in f32 within 1e-5 relative (of max |y|).
fn check_f32(weights: &MoeWeights, x: &Array2<f32>, ranks: usize) -> EpOutput<f32> {
    let (got, want, out) = run::<f32>(weights, x, ranks);
    let err = max_rel_err(&got, &want).unwrap();
    assert!(
        err <= 1e-5,
        "{} on {ranks} ranks, {} tokens: relative error {err}",
        weights.config().name,
        x.nrows()
    );
    out
}

fn weights_and_tokens(config: MoeConfig, seed: u64) -> (MoeWeights, Array2<f32>) {
    let w = MoeWeights::random(&config, seed).unwrap();
    let x = random_tokens(&config, seed + 100);
    (w, x)
}

#[test]
fn f32_matches_the_single_device_layer_on_1_2_4_and_8_ranks() {
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(32), 1);
    for ranks in [1, 2, 4, 8] {
        let out = check_f32(&w, &x, ranks);
        if ranks == 1 || ranks == 8 {
            // One source, or one expert per rank: rows arrive already grouped.
            assert!(out.stats.iter().all(|s| !s.regrouped), "{ranks} ranks");
        }
        if ranks == 2 {
            // 32 tokens over 4 experts a rank from 2 sources: some rank must regroup.
            assert!(out.stats.iter().any(|s| s.regrouped), "{:?}", out.stats);
        }
    }
}

#[test]
fn token_counts_that_ranks_do_not_divide() {
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(13), 2);
    for ranks in [2, 4, 8] {
        let out = check_f32(&w, &x, ranks);
        let homes: Vec<usize> = out.stats.iter().map(|s| s.home_tokens).collect();
        assert_eq!(homes.iter().sum::<usize>(), 13);
        assert!(homes.iter().max().unwrap() - homes.iter().min().unwrap() <= 1);
    }
    // Fewer tokens than ranks: ranks 3..8 have no home tokens but still serve experts.
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(3), 3);
    let out = check_f32(&w, &x, 8);
    assert!(out.stats[3..].iter().all(|s| s.home_tokens == 0));
    assert_eq!(out.y[7].shape(), &[0, 128]);
}

#[test]
fn experts_that_ranks_do_not_divide() {
    // 8 experts over 3 ranks: blocks of 3, 3 and 2.
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(20), 4);
    let out = check_f32(&w, &x, 3);
    let blocks: Vec<_> = out.stats.iter().map(|s| s.experts.clone()).collect();
    assert_eq!(blocks, vec![0..3, 3..6, 6..8]);
}

/// Sigmoid gating with a selection bias of +10 on experts 0..4 (groups 0 and 1): every
/// token picks its 2 experts among them, so on 4 ranks ranks 2 and 3 (experts 4..8) receive
/// no rows, and on 8 ranks ranks 4..8 receive none.
#[test]
fn routing_that_leaves_ranks_without_rows() {
    let config = MoeConfig::small().with_tokens(24);
    let base = MoeWeights::random(&config, 5).unwrap();
    let bias = Array1::from_shape_fn(8, |e| if e < 4 { 10.0 } else { 0.0 });
    let w = MoeWeights::from_parts(
        config,
        base.gate().clone(),
        Some(bias),
        base.experts().to_vec(),
        base.shared_experts().cloned(),
    )
    .unwrap();
    let x = random_tokens(&config, 6);
    let out = check_f32(&w, &x, 4);
    assert!(out.stats[0].rows_received() + out.stats[1].rows_received() == 24 * 2);
    assert_eq!(out.stats[2].rows_received(), 0);
    assert_eq!(out.stats[3].rows_received(), 0);
    assert!(out.stats.iter().all(|s| s.rows_sent[2] == 0));
    let out = check_f32(&w, &x, 8);
    assert!(out.stats[4..].iter().all(|s| s.rows_received() == 0));
}

#[test]
fn softmax_gating_with_scaling_and_two_shared_experts() {
    let config = MoeConfig {
        n_shared_experts: 2,
        gating: Gating::Softmax {
            normalize: false,
            scaling: 1.5,
        },
        ..MoeConfig::small().with_tokens(18)
    };
    let (w, x) = weights_and_tokens(config, 7);
    check_f32(&w, &x, 2);
    check_f32(&w, &x, 4);
    // No shared expert at all.
    let config = MoeConfig {
        n_shared_experts: 0,
        ..config
    };
    let (w, x) = weights_and_tokens(config, 8);
    check_f32(&w, &x, 4);
}

/// f16 and bf16. Both layers run the same operators on the same rounded values; a row's
/// results do not depend on which other rows share its matmul, and the permutations and
/// all-to-all copies are exact, so the two outputs agree to the bit unless a matmul sums in
/// another order for another row count. The bound allows one rounding of the stored
/// intermediates (2^-11 in f16, 2^-8 in bf16) relative to max |y|.
#[test]
fn half_precision_matches_the_single_device_layer() {
    let config = MoeConfig::small().with_tokens(21);
    let w = MoeWeights::random(&config, 9).unwrap();
    for p in [Precision::F16, Precision::Bf16] {
        let wp = w.rounded_to(p);
        let x = p.round_array(&random_tokens(&config, 10));
        for ranks in [2, 4] {
            let (got, want) = match p {
                Precision::F16 => {
                    let (g, w, _) = run::<f16>(&wp, &x, ranks);
                    (g, w)
                }
                _ => {
                    let (g, w, _) = run::<bf16>(&wp, &x, ranks);
                    (g, w)
                }
            };
            let tol = match p {
                Precision::F16 => 2f32.powi(-11),
                _ => 2f32.powi(-8),
            };
            let err = max_rel_err(&got, &want).unwrap();
            assert!(err <= tol, "{p} on {ranks} ranks: {err} > {tol}");
        }
    }
}

#[test]
fn ranks_on_any_distinct_devices() {
    setup();
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(19), 13);
    let (want, _) = single::<f32>(&w, &x);
    let devices = [6, 1, 3, 4];
    let ep = ExpertParallelLayer::<f32>::new(&w, &devices).unwrap();
    for (r, &d) in devices.iter().enumerate() {
        assert_eq!(ep.stream(r).unwrap().context().ordinal(), d);
        assert_eq!(ep.owner_of(2 * r + 1), Some(r));
    }
    assert_eq!(ep.owner_of(8), None);
    let xs = ep.scatter(&x).unwrap();
    assert_eq!(xs[0].buffer().device().ordinal(), 6);
    let out = ep.forward(&xs).unwrap();
    let devices_seen: Vec<i32> = out.stats.iter().map(|s| s.device).collect();
    assert_eq!(devices_seen, devices);
    let err = max_rel_err(&out.gather().unwrap(), &want).unwrap();
    assert!(err <= 1e-5, "{err}");
}

#[test]
fn repeated_passes_give_the_same_output() {
    setup();
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(16), 11);
    let ep = ExpertParallelLayer::<f32>::with_ranks(&w, 4).unwrap();
    let xs = ep.scatter(&x).unwrap();
    let a = ep.forward(&xs).unwrap().gather().unwrap();
    let b = ep.forward(&xs).unwrap().gather().unwrap();
    assert_eq!(a, b);
}

/// Threads calling `forward` on one layer with different tokens: the passes take turns
/// (their collectives must not meet each other's), and each output is its own tokens'.
#[test]
fn concurrent_forward_calls_take_turns() {
    setup();
    let config = MoeConfig::small().with_tokens(16);
    let w = MoeWeights::random(&config, 14).unwrap();
    let ep = ExpertParallelLayer::<f32>::with_ranks(&w, 4).unwrap();
    let inputs: Vec<Array2<f32>> = (0..3).map(|i| random_tokens(&config, 20 + i)).collect();
    let wants: Vec<Array2<f32>> = inputs.iter().map(|x| single::<f32>(&w, x).0).collect();
    let scattered: Vec<Vec<Tensor<f32>>> = inputs.iter().map(|x| ep.scatter(x).unwrap()).collect();
    for _ in 0..3 {
        let outs: Vec<Array2<f32>> = std::thread::scope(|scope| {
            let threads: Vec<_> = scattered
                .iter()
                .map(|xs| scope.spawn(|| ep.forward(xs).unwrap().gather().unwrap()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (got, want) in outs.iter().zip(&wants) {
            assert!(max_rel_err(got, want).unwrap() <= 1e-5);
        }
    }
}

fn invalid_reason(e: Error) -> String {
    match e {
        Error::InvalidArgument { reason, .. } => reason,
        other => panic!("expected an invalid-argument error, got {other}"),
    }
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    setup();
    let (w, x) = weights_and_tokens(MoeConfig::small().with_tokens(8), 12);
    let e = ExpertParallelLayer::<f32>::with_ranks(&w, 0).unwrap_err();
    assert!(invalid_reason(e).contains("0 ranks"));
    // More ranks than experts.
    let e = ExpertParallelLayer::<f32>::with_ranks(&w, 9).unwrap_err();
    assert!(invalid_reason(e).contains("every rank owns an expert"));
    // More ranks than devices.
    let config = MoeConfig {
        n_routed_experts: 16,
        gating: Gating::Softmax {
            normalize: false,
            scaling: 1.0,
        },
        ..MoeConfig::small()
    };
    let big = MoeWeights::random(&config, 1).unwrap();
    let e = ExpertParallelLayer::<f32>::with_ranks(&big, 9).unwrap_err();
    assert!(invalid_reason(e).contains("ASCEND_MOCK_DEVICES"));
    let e = ExpertParallelLayer::<f32>::new(&w, &[0, 1, 1]).unwrap_err();
    assert!(invalid_reason(e).contains("twice"));

    let ep = ExpertParallelLayer::<f32>::with_ranks(&w, 2).unwrap();
    let mut xs = ep.scatter(&x).unwrap();
    let e = ep.forward(&xs[..1]).unwrap_err();
    assert!(invalid_reason(e).contains("1 input tensors for 2 ranks"));
    xs.swap(0, 1);
    let e = ep.forward(&xs).unwrap_err();
    assert!(invalid_reason(e).contains("is on device 1 but rank 0"));
    let e = ep.scatter(&Array2::zeros((4, 3))).unwrap_err();
    assert!(invalid_reason(e).contains("[tokens >= 1, 128]"));
}
