//! What access tracking costs: batches of small device-to-device copies on
//! one stream with tracking on and off (on one stream it should cost only an
//! id comparison), and alternating between two streams (an event record and
//! a stream wait per switch). Runs on the mock device.

use std::hint::black_box;

use ascend_rt::{Backend, Context, DeviceBuffer};
use criterion::{Criterion, criterion_group, criterion_main};

const COPIES: usize = 64;
const LEN: usize = 1024;

fn tracking(c: &mut Criterion) {
    ascend_rt::init(Backend::Mock).expect("mock backend");
    let ctx = Context::new(0).expect("device 0");
    let a = ctx.new_stream().expect("stream");
    let b = ctx.new_stream().expect("stream");
    let src = DeviceBuffer::from_host(&ctx, &vec![1.0f32; LEN]).expect("src");
    let mut dst = DeviceBuffer::<f32>::zeroed(&ctx, LEN).expect("dst");

    let mut group = c.benchmark_group("d2d_copy_batch_64x4KiB");
    group.bench_function("one_stream_tracked", |bench| {
        bench.iter(|| {
            for _ in 0..COPIES {
                dst.copy_from(black_box(&src), &a).expect("copy");
            }
            a.synchronize().expect("sync");
        })
    });
    // SAFETY: every batch below ends with a.synchronize(), and only stream
    // `a` touches the buffers while tracking is off; it is turned back on
    // before another stream is used.
    unsafe {
        src.set_tracking(false);
        dst.set_tracking(false);
    }
    group.bench_function("one_stream_untracked", |bench| {
        bench.iter(|| {
            for _ in 0..COPIES {
                dst.copy_from(black_box(&src), &a).expect("copy");
            }
            a.synchronize().expect("sync");
        })
    });
    // SAFETY: turning tracking back on is always sound; all earlier work
    // has been synchronized.
    unsafe {
        src.set_tracking(true);
        dst.set_tracking(true);
    }
    group.bench_function("two_streams_alternating", |bench| {
        bench.iter(|| {
            for i in 0..COPIES {
                let s = if i % 2 == 0 { &a } else { &b };
                dst.copy_from(black_box(&src), s).expect("copy");
            }
            a.synchronize().expect("sync");
            b.synchronize().expect("sync");
        })
    });
    group.finish();
}

criterion_group!(benches, tracking);
criterion_main!(benches);
