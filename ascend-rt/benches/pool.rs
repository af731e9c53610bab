//! What the caching pool saves: allocating and releasing device buffers of
//! mixed sizes directly (`aclrtMalloc`/`aclrtFree`, the release waiting for
//! the stream) against taking them from the pool (a cache hit, the release
//! queued-ordered, no wait); and the launch path of a small operator with a
//! one-shot executor against a prepared, repeatable one. Runs on the mock.

use std::hint::black_box;

use ascend_rt::ops;
use ascend_rt::{Backend, Context, DeviceBuffer, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

const SIZES: [usize; 4] = [256, 4096, 300_000, 1 << 20];

fn pool(c: &mut Criterion) {
    ascend_rt::init(Backend::Mock).expect("mock backend");
    let ctx = Context::new(0).expect("device 0");
    let s = ctx.new_stream().expect("stream");

    let mut group = c.benchmark_group("alloc_free_4_sizes");
    group.bench_function("aclrtMalloc", |bench| {
        bench.iter(|| {
            for n in SIZES {
                // SAFETY: never read; dropped at once.
                let b = unsafe { DeviceBuffer::<f32>::alloc(&ctx, black_box(n)) }.expect("alloc");
                drop(b);
            }
        })
    });
    group.bench_function("pool", |bench| {
        bench.iter(|| {
            for n in SIZES {
                // SAFETY: never read; dropped at once.
                let b =
                    unsafe { DeviceBuffer::<f32>::alloc_pooled(&s, black_box(n)) }.expect("alloc");
                drop(b);
            }
        })
    });
    group.finish();

    let a = Tensor::from_slice(&s, &vec![0.5f32; 64 * 64], &[64, 64]).expect("a");
    let b = Tensor::from_slice(&s, &vec![0.25f32; 64 * 64], &[64, 64]).expect("b");
    let mut out = Tensor::<f32>::zeros(&s, &[64, 64]).expect("out");
    let mut group = c.benchmark_group("matmul_64_launch_x16");
    group.bench_function("one_shot", |bench| {
        bench.iter(|| {
            for _ in 0..16 {
                ops::matmul_into(&s, &a, &b, &mut out).expect("matmul");
            }
            s.synchronize().expect("sync");
        })
    });
    let mut prepared = ops::prepare_matmul(&s, &a, &b, &mut out).expect("prepare");
    group.bench_function("prepared", |bench| {
        bench.iter(|| {
            for _ in 0..16 {
                prepared.run(&s, &[&a, &b], &mut [&mut out]).expect("run");
            }
            s.synchronize().expect("sync");
        })
    });
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
