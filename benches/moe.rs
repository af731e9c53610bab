//! The MoE layer's forward pass ([`MoeLayer::forward`]) at DeepSeek-V2-Lite's shapes (hidden
//! 2048, 64 experts, top-6, expert width 1408, 2 shared experts) on the active backend (the
//! mock on a machine without an NPU), for 128 and 512 tokens, in f32 and bf16.
//!
//! Throughput is in tokens (`Throughput::Elements`), so criterion reports tokens/s. Each
//! iteration queues a whole pass and waits for it; intermediates come from the pool, so
//! no device allocation is timed after the first pass.
//!
//! `cargo bench --bench moe`. The layer's weights are 6.6 GiB in f32 (3.3 GiB in bf16) on
//! the host and again on the (mock) device; only one dtype is resident at a time.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use ascend::moe::layer::to_element;
use ascend::moe::{MoeConfig, MoeElement, MoeLayer, MoeWeights, random_tokens};
use ascend_rt::{Backend, Context, Stream, Tensor, bf16};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

fn bench_dtype<T: MoeElement>(c: &mut Criterion, stream: &Arc<Stream>, weights: &MoeWeights) {
    let layer = MoeLayer::<T>::new(stream, weights).expect("the layer uploads");
    let mut group = c.benchmark_group(format!("moe_v2_lite_{}", T::PRECISION));
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for tokens in [128usize, 512] {
        let config = weights.config().with_tokens(tokens);
        let x = random_tokens(&config, 7);
        let xd = Tensor::from_array(stream, to_element::<T, _>(&x).view()).expect("tokens");
        group.throughput(Throughput::Elements(tokens as u64));
        group.bench_function(format!("forward_{tokens}_tokens"), |b| {
            b.iter(|| {
                let out = layer.forward(stream, &xd).expect("forward");
                stream.synchronize().expect("synchronize");
                black_box(out)
            })
        });
    }
    group.finish();
}

fn moe_forward(c: &mut Criterion) {
    ascend_rt::init(Backend::from_env().unwrap_or(Backend::Auto)).expect("a backend");
    let ctx = Context::new(0).expect("device 0");
    let stream = ctx.new_stream().expect("stream");
    let weights = MoeWeights::random(&MoeConfig::v2_lite(), 1).expect("weights");
    bench_dtype::<f32>(c, &stream, &weights);
    bench_dtype::<bf16>(c, &stream, &weights);
}

criterion_group!(benches, moe_forward);
criterion_main!(benches);
