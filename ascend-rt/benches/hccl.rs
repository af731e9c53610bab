//! What the safe collectives cost over raw HCCL calls: batches of 16
//! all-reduces of 1024 f32 on 2 ranks of the mock device, issued from one
//! thread, once through `Communicator::all_reduce` (argument checks, context
//! binding, access tracking) and once through the raw `HcclAllReduce` with
//! tracking turned off; then the same through `all_to_all_v`.

use std::hint::black_box;

use ascend_rt::hccl::{Communicator, ReduceOp};
use ascend_rt::{Backend, Device, DeviceBuffer};
use criterion::{Criterion, criterion_group, criterion_main};

const BATCH: usize = 16;
const LEN: usize = 1024;

fn collectives(c: &mut Criterion) {
    let api = ascend_rt::init(Backend::Mock).expect("mock backend");
    let comms = Communicator::init_all(&[Device::new(0), Device::new(1)]).expect("comms");
    let streams: Vec<_> = comms
        .iter()
        .map(|c| c.context().new_stream().expect("stream"))
        .collect();
    let xs: Vec<DeviceBuffer<f32>> = comms
        .iter()
        .map(|c| DeviceBuffer::from_host(c.context(), &vec![1.0f32; LEN]).expect("x"))
        .collect();
    let mut ys: Vec<DeviceBuffer<f32>> = comms
        .iter()
        .map(|c| DeviceBuffer::zeroed(c.context(), LEN).expect("y"))
        .collect();

    let mut group = c.benchmark_group("all_reduce_batch_16x4KiB_2_ranks");
    group.bench_function("safe", |bench| {
        bench.iter(|| {
            for _ in 0..BATCH {
                for r in 0..2 {
                    comms[r]
                        .all_reduce(black_box(&xs[r]), &mut ys[r], ReduceOp::Sum, &streams[r])
                        .expect("all_reduce");
                }
            }
            for s in &streams {
                s.synchronize().expect("sync");
            }
        })
    });
    let all_reduce = api.hccl.HcclAllReduce().expect("HcclAllReduce");
    for r in 0..2 {
        streams[r].synchronize().expect("sync");
        // SAFETY: all work on the buffers has been synchronized; below,
        // only stream r touches them, and every batch ends with a
        // synchronize; tracking goes back on before anything else.
        unsafe {
            xs[r].set_tracking(false);
            ys[r].set_tracking(false);
        }
    }
    group.bench_function("raw_ffi", |bench| {
        bench.iter(|| {
            for _ in 0..BATCH {
                for r in 0..2 {
                    comms[r].context().bind_to_thread().expect("bind");
                    // SAFETY: live communicator, stream and buffers of
                    // LEN f32 on rank r's device, distinct; synchronized
                    // at the end of the batch.
                    let rc = unsafe {
                        all_reduce(
                            xs[r].as_ptr().cast_mut(),
                            ys[r].as_ptr().cast_mut(),
                            LEN as u64,
                            ascend_sys::HCCL_DATA_TYPE_FP32,
                            ascend_sys::HCCL_REDUCE_SUM,
                            comms[r].handle(),
                            streams[r].handle(),
                        )
                    };
                    assert_eq!(rc, ascend_sys::HCCL_SUCCESS);
                }
            }
            for s in &streams {
                s.synchronize().expect("sync");
            }
        })
    });
    for r in 0..2 {
        // SAFETY: turning tracking back on is always sound; all earlier
        // work has been synchronized.
        unsafe {
            xs[r].set_tracking(true);
            ys[r].set_tracking(true);
        }
    }
    group.finish();

    let counts = [LEN / 2, LEN / 2];
    let mut group = c.benchmark_group("all_to_all_v_batch_16x4KiB_2_ranks");
    group.bench_function("safe", |bench| {
        bench.iter(|| {
            for _ in 0..BATCH {
                for r in 0..2 {
                    comms[r]
                        .all_to_all_v(black_box(&xs[r]), &counts, &mut ys[r], &counts, &streams[r])
                        .expect("all_to_all_v");
                }
            }
            for s in &streams {
                s.synchronize().expect("sync");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, collectives);
criterion_main!(benches);
