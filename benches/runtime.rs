//! Runtime costs on the active backend (the mock on a machine without an
//! NPU), each beside a baseline measured in the same run:
//!
//! - `call_overhead`: a cheap call (an event status query) through
//!   `ascend-rt` against the same C call made directly through the
//!   `ascend-sys` table: what the safe layer adds (context binding, error
//!   checks).
//! - `copy_64MiB`: 64 MiB host -> device -> host, through pinned buffers on a
//!   stream and through the synchronous pageable path, against two plain host
//!   `memcpy`s of the same size (the same bytes moved).
//!
//! - `matmul`: f32 square matrix products through `ascend_rt::ops::matmul`
//!   (the whole path: descriptors, both aclnn phases, the stream), in
//!   FLOP/s; `cargo bench -p ascend-kernels --bench matmul` measures the
//!   kernel alone, the baseline for what the path costs.
//!
//! `cargo bench --bench runtime`; docs/performance.md has the numbers.

use std::hint::black_box;

use ascend_rt::{Backend, Context, DeviceBuffer, Event, PinnedBuffer, Tensor, ops};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn call_overhead(c: &mut Criterion) {
    let api = ascend_rt::init(Backend::from_env().unwrap_or(Backend::Auto)).expect("a backend");
    let ctx = Context::new(0).expect("device 0");
    let stream = ctx.new_stream().expect("stream");
    let event = Event::new(&ctx).expect("event");
    event.record(&stream).expect("record");
    stream.synchronize().expect("sync");

    let mut group = c.benchmark_group("call_overhead");
    group.bench_function("event_query_ascend_rt", |b| {
        b.iter(|| black_box(event.is_complete().expect("query")))
    });
    let query = api
        .acl
        .aclrtQueryEventStatus()
        .expect("aclrtQueryEventStatus");
    let handle = event.handle();
    group.bench_function("event_query_ascend_sys", |b| {
        b.iter(|| {
            let mut status = ascend_sys::ACL_EVENT_RECORDED_STATUS_NOT_READY;
            // SAFETY: `handle` is a live event (owned by `event`, alive for the
            // whole benchmark) and `status` is a valid output location.
            let rc = unsafe { query(black_box(handle), &mut status) };
            assert_eq!(rc, ascend_sys::ACL_SUCCESS);
            black_box(status)
        })
    });
    group.finish();
}

fn copies(c: &mut Criterion) {
    ascend_rt::init(Backend::from_env().unwrap_or(Backend::Auto)).expect("a backend");
    const BYTES: usize = 64 << 20;
    const N: usize = BYTES / 4;
    let ctx = Context::new(0).expect("device 0");
    let stream = ctx.new_stream().expect("stream");
    let data: Vec<f32> = (0..N).map(|i| i as f32).collect();
    let host_in = PinnedBuffer::from_slice(&ctx, &data).expect("pinned in");
    let mut host_out = PinnedBuffer::<f32>::zeroed(&ctx, N).expect("pinned out");
    let mut dev = DeviceBuffer::<f32>::zeroed(&ctx, N).expect("device buffer");
    let mut plain_out = vec![0f32; N];
    let mut plain_mid = vec![0f32; N];

    let mut group = c.benchmark_group("copy_64MiB");
    group.throughput(Throughput::Bytes(2 * BYTES as u64));
    group.sample_size(20);
    group.bench_function("host_memcpy_there_and_back", |b| {
        b.iter(|| {
            plain_mid.copy_from_slice(black_box(&data));
            plain_out.copy_from_slice(black_box(&plain_mid));
        })
    });
    group.bench_function("pinned_h2d_d2h_on_stream", |b| {
        b.iter(|| {
            dev.copy_from_pinned(&host_in, &stream).expect("h2d");
            dev.copy_to_pinned(&mut host_out, &stream).expect("d2h");
            stream.synchronize().expect("sync");
        })
    });
    group.bench_function("pageable_h2d_d2h_sync", |b| {
        b.iter(|| {
            dev.copy_from_host(black_box(&data)).expect("h2d");
            dev.copy_to_host(&mut plain_out).expect("d2h");
        })
    });
    group.finish();
    assert_eq!(
        host_out.as_slice().expect("read back")[N - 1],
        (N - 1) as f32
    );
}

fn matmul(c: &mut Criterion) {
    ascend_rt::init(Backend::from_env().unwrap_or(Backend::Auto)).expect("a backend");
    let ctx = Context::new(0).expect("device 0");
    let stream = ctx.new_stream().expect("stream");
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for n in [1024usize, 2048] {
        let data: Vec<f32> = (0..n * n)
            .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
            .collect();
        let a = Tensor::from_slice(&stream, &data, &[n, n]).expect("a");
        let b = Tensor::from_slice(&stream, &data, &[n, n]).expect("b");
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.bench_function(format!("f32_{n}x{n}x{n}"), |bench| {
            bench.iter(|| {
                let out = ops::matmul(&stream, &a, &b).expect("matmul");
                stream.synchronize().expect("sync");
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, call_overhead, copies, matmul);
criterion_main!(benches);
