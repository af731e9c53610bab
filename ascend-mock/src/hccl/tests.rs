//! Tests of the exported HCCL functions, called as a C program would.
//!
//! Every collective is checked against a host computation written here
//! independently (values as f64, integer folds in i64, f16/bf16 folds in
//! f32 rounded once) for int8, int32, fp16, bf16 and fp32, with counts 0,
//! 1, 7 and 33. In this process the ranks share device 0 (each with its own
//! context and stream), so other tests that reset device 1 cannot disturb
//! them; worlds of 3 and 8 ranks on distinct devices, the root-info
//! rendezvous of 8 threads and the environment timeout run in a child
//! process with `ASCEND_MOCK_DEVICES=8`.

use std::ffi::{CStr, c_void};
use std::time::Duration;

use ascend_sys::*;
use half::{bf16, f16};

use super::set_comm_timeout;
use crate::exports::*;
use crate::tests_support::*;

#[track_caller]
fn hok(code: HcclResult) {
    assert_eq!(code, HCCL_SUCCESS, "failed: {:?}", take_message());
}

/// Asserts `code == want` and that this thread's message contains every
/// needle; returns the message.
#[track_caller]
fn herr(code: HcclResult, want: HcclResult, needles: &[&str]) -> String {
    let msg = take_message().unwrap_or_default();
    assert_eq!(code, want, "unexpected code; message: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
    msg
}

const DTYPES: [HcclDataType; 5] = [
    HCCL_DATA_TYPE_INT32,
    HCCL_DATA_TYPE_INT8,
    HCCL_DATA_TYPE_FP16,
    HCCL_DATA_TYPE_BFP16,
    HCCL_DATA_TYPE_FP32,
];
const OPS: [HcclReduceOp; 4] = [
    HCCL_REDUCE_SUM,
    HCCL_REDUCE_PROD,
    HCCL_REDUCE_MAX,
    HCCL_REDUCE_MIN,
];
const COUNTS: [usize; 4] = [0, 1, 7, 33];

fn width(dt: HcclDataType) -> usize {
    match dt {
        HCCL_DATA_TYPE_INT8 | HCCL_DATA_TYPE_UINT8 => 1,
        HCCL_DATA_TYPE_INT16 | HCCL_DATA_TYPE_UINT16 => 2,
        HCCL_DATA_TYPE_FP16 | HCCL_DATA_TYPE_BFP16 => 2,
        HCCL_DATA_TYPE_INT64 | HCCL_DATA_TYPE_UINT64 | HCCL_DATA_TYPE_FP64 => 8,
        _ => 4,
    }
}

fn is_float(dt: HcclDataType) -> bool {
    matches!(
        dt,
        HCCL_DATA_TYPE_FP16 | HCCL_DATA_TYPE_BFP16 | HCCL_DATA_TYPE_FP32 | HCCL_DATA_TYPE_FP64
    )
}

/// Encodes `v` (integers wrap to the type's width, as C casts do).
fn enc(dt: HcclDataType, v: f64) -> Vec<u8> {
    let i = v as i64;
    match dt {
        HCCL_DATA_TYPE_INT8 | HCCL_DATA_TYPE_UINT8 => vec![i as u8],
        HCCL_DATA_TYPE_INT16 | HCCL_DATA_TYPE_UINT16 => (i as u16).to_le_bytes().to_vec(),
        HCCL_DATA_TYPE_INT32 | HCCL_DATA_TYPE_UINT32 => (i as u32).to_le_bytes().to_vec(),
        HCCL_DATA_TYPE_INT64 | HCCL_DATA_TYPE_UINT64 => i.to_le_bytes().to_vec(),
        HCCL_DATA_TYPE_FP16 => f16::from_f64(v).to_le_bytes().to_vec(),
        HCCL_DATA_TYPE_BFP16 => bf16::from_f64(v).to_le_bytes().to_vec(),
        HCCL_DATA_TYPE_FP64 => v.to_le_bytes().to_vec(),
        _ => (v as f32).to_le_bytes().to_vec(),
    }
}

fn dec(dt: HcclDataType, b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a[..b.len()].copy_from_slice(b);
    match dt {
        HCCL_DATA_TYPE_INT8 => f64::from(b[0] as i8),
        HCCL_DATA_TYPE_UINT8 => f64::from(b[0]),
        HCCL_DATA_TYPE_INT16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
        HCCL_DATA_TYPE_UINT16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
        HCCL_DATA_TYPE_INT32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        HCCL_DATA_TYPE_UINT32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        HCCL_DATA_TYPE_INT64 | HCCL_DATA_TYPE_UINT64 => i64::from_le_bytes(a) as f64,
        HCCL_DATA_TYPE_FP16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
        HCCL_DATA_TYPE_BFP16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
        HCCL_DATA_TYPE_FP64 => f64::from_le_bytes(a),
        _ => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    }
}

fn enc_all(dt: HcclDataType, vals: &[f64]) -> Vec<u8> {
    vals.iter().flat_map(|v| enc(dt, *v)).collect()
}

/// Element `i` of rank `r`'s input in case `seed`, representable in `dt`.
fn value(dt: HcclDataType, r: usize, i: usize, seed: usize) -> f64 {
    let k = ((r * 7 + i * 3 + seed * 5) % 7) as f64 - 3.0;
    let v = if is_float(dt) {
        k * 1.375 + 0.25 * ((i + r) % 3) as f64
    } else {
        k
    };
    dec(dt, &enc(dt, v))
}

fn inputs(dt: HcclDataType, r: usize, len: usize, seed: usize) -> Vec<f64> {
    (0..len).map(|i| value(dt, r, i, seed)).collect()
}

/// The host reduction of one element over the ranks (rank order).
fn ref_reduce(dt: HcclDataType, op: HcclReduceOp, vals: &[f64]) -> Vec<u8> {
    if dt == HCCL_DATA_TYPE_FP64 {
        let mut acc = vals[0];
        for v in &vals[1..] {
            acc = match op {
                HCCL_REDUCE_SUM => acc + v,
                HCCL_REDUCE_PROD => acc * v,
                HCCL_REDUCE_MAX => acc.max(*v),
                _ => acc.min(*v),
            };
        }
        enc(dt, acc)
    } else if is_float(dt) {
        let mut acc = vals[0] as f32;
        for v in &vals[1..] {
            let v = *v as f32;
            acc = match op {
                HCCL_REDUCE_SUM => acc + v,
                HCCL_REDUCE_PROD => acc * v,
                HCCL_REDUCE_MAX => acc.max(v),
                _ => acc.min(v),
            };
        }
        enc(dt, f64::from(acc))
    } else {
        let mut acc = vals[0] as i64;
        for v in &vals[1..] {
            let v = *v as i64;
            acc = match op {
                HCCL_REDUCE_SUM => acc + v,
                HCCL_REDUCE_PROD => acc * v,
                HCCL_REDUCE_MAX => acc.max(v),
                _ => acc.min(v),
            };
        }
        enc(dt, acc as f64)
    }
}

/// Element-wise reference over `xs[rank][range]`.
fn ref_reduce_range(
    dt: HcclDataType,
    op: HcclReduceOp,
    xs: &[Vec<f64>],
    range: std::ops::Range<usize>,
) -> Vec<u8> {
    range
        .flat_map(|i| ref_reduce(dt, op, &xs.iter().map(|x| x[i]).collect::<Vec<_>>()))
        .collect()
}

fn upload(bytes: &[u8]) -> *mut c_void {
    let p = dev_alloc(bytes.len().max(1));
    if !bytes.is_empty() {
        // SAFETY: p holds at least bytes.len() bytes; bytes is a live slice.
        ok(unsafe {
            aclrtMemcpy(
                p,
                bytes.len(),
                bytes.as_ptr().cast(),
                bytes.len(),
                ACL_MEMCPY_HOST_TO_DEVICE,
            )
        });
    }
    p
}

fn download(p: *mut c_void, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    if len > 0 {
        // SAFETY: p holds at least len bytes; out is a live buffer of len.
        ok(unsafe {
            aclrtMemcpy(
                out.as_mut_ptr().cast(),
                len,
                p,
                len,
                ACL_MEMCPY_DEVICE_TO_HOST,
            )
        });
    }
    out
}

fn free(p: *mut c_void) {
    // SAFETY: p came from aclrtMalloc.
    ok(unsafe { aclrtFree(p) });
}

fn sync(stream: aclrtStream) {
    // SAFETY: stream is a live stream.
    ok(unsafe { aclrtSynchronizeStream(stream) });
}

fn init_all(devices: &[i32]) -> Vec<HcclComm> {
    init();
    let mut comms = vec![std::ptr::null_mut(); devices.len()];
    let mut devs = devices.to_vec();
    // SAFETY: devs and comms hold devices.len() entries.
    hok(unsafe { HcclCommInitAll(devs.len() as u32, devs.as_mut_ptr(), comms.as_mut_ptr()) });
    comms
}

fn destroy_all(comms: &[HcclComm]) {
    for c in comms {
        // SAFETY: c came from HcclCommInitAll.
        hok(unsafe { HcclCommDestroy(*c) });
    }
}

/// A rank's program: (rank, rank count, comm, stream).
type Program = fn(usize, usize, HcclComm, aclrtStream);

/// Runs `program` on one thread per rank (rank i on `devices[i]`, its own
/// context and stream).
fn run_world(devices: &[i32], program: Program) {
    let comms = init_all(devices);
    run_world_with(&comms, devices, program);
    destroy_all(&comms);
}

/// Runs `program` on one thread per rank of `comms` (rank i on
/// `devices[i]`, its own context and stream).
fn run_world_with(comms: &[HcclComm], devices: &[i32], program: Program) {
    for c in comms {
        set_comm_timeout(*c, Duration::from_secs(20)).unwrap();
    }
    let n = devices.len();
    let handles: Vec<usize> = comms.iter().map(|c| *c as usize).collect();
    std::thread::scope(|s| {
        for (r, (&dev, &comm)) in devices.iter().zip(&handles).enumerate() {
            s.spawn(move || {
                let ctx = own_context(dev);
                let stream = new_stream();
                program(r, n, comm as HcclComm, stream);
                // SAFETY: stream is live and idle.
                ok(unsafe { aclrtDestroyStream(stream) });
                drop_context(ctx);
            });
        }
    });
}

/// Every collective, dtype and count, checked on rank `r`.
fn collectives_program(r: usize, n: usize, comm: HcclComm, stream: aclrtStream) {
    let mut seed = 0;
    for &dt in &DTYPES {
        let w = width(dt);
        for &count in &COUNTS {
            seed += 1;
            let all = |len: usize| -> Vec<Vec<f64>> {
                (0..n).map(|q| inputs(dt, q, len, seed)).collect()
            };
            let what = |name: &str| format!("{name} dtype {dt} n={n} count={count} rank {r}");
            for &op in &OPS {
                // AllReduce (in place for SUM).
                let x = all(count);
                let send = upload(&enc_all(dt, &x[r]));
                let in_place = op == HCCL_REDUCE_SUM;
                let recv = if in_place {
                    send
                } else {
                    dev_alloc((count * w).max(1))
                };
                // SAFETY: buffers hold count elements of dt.
                hok(unsafe { HcclAllReduce(send, recv, count as u64, dt, op, comm, stream) });
                sync(stream);
                assert_eq!(
                    download(recv, count * w),
                    ref_reduce_range(dt, op, &x, 0..count),
                    "{} op {op}",
                    what("AllReduce")
                );
                free(send);
                if !in_place {
                    free(recv);
                }

                // ReduceScatter.
                let x = all(count * n);
                let send = upload(&enc_all(dt, &x[r]));
                let recv = dev_alloc((count * w).max(1));
                // SAFETY: send holds count*n elements, recv count.
                hok(unsafe { HcclReduceScatter(send, recv, count as u64, dt, op, comm, stream) });
                sync(stream);
                assert_eq!(
                    download(recv, count * w),
                    ref_reduce_range(dt, op, &x, r * count..(r + 1) * count),
                    "{} op {op}",
                    what("ReduceScatter")
                );
                free(send);
                free(recv);

                // Reduce to the last rank; other ranks pass no recvBuf.
                let root = n - 1;
                let x = all(count);
                let send = upload(&enc_all(dt, &x[r]));
                let recv = if r == root {
                    dev_alloc((count * w).max(1))
                } else {
                    std::ptr::null_mut()
                };
                // SAFETY: send holds count elements; recv too on the root.
                hok(unsafe {
                    HcclReduce(send, recv, count as u64, dt, op, root as u32, comm, stream)
                });
                sync(stream);
                if r == root {
                    assert_eq!(
                        download(recv, count * w),
                        ref_reduce_range(dt, op, &x, 0..count),
                        "{} op {op}",
                        what("Reduce")
                    );
                    free(recv);
                }
                free(send);
            }

            // Broadcast from the middle rank, in place.
            let root = n / 2;
            let x = all(count);
            let buf = upload(&enc_all(dt, &x[r]));
            // SAFETY: buf holds count elements.
            hok(unsafe { HcclBroadcast(buf, count as u64, dt, root as u32, comm, stream) });
            sync(stream);
            assert_eq!(
                download(buf, count * w),
                enc_all(dt, &x[root]),
                "{}",
                what("Broadcast")
            );
            free(buf);

            // AllGather.
            let x = all(count);
            let send = upload(&enc_all(dt, &x[r]));
            let recv = dev_alloc((count * n * w).max(1));
            // SAFETY: send holds count elements, recv count*n.
            hok(unsafe { HcclAllGather(send, recv, count as u64, dt, comm, stream) });
            sync(stream);
            let gathered: Vec<u8> = x.iter().flat_map(|v| enc_all(dt, v)).collect();
            assert_eq!(
                download(recv, count * n * w),
                gathered,
                "{}",
                what("AllGather")
            );
            free(send);
            free(recv);

            // Scatter from rank 0; other ranks pass no sendBuf.
            let x = all(count * n);
            let send = if r == 0 {
                upload(&enc_all(dt, &x[0]))
            } else {
                std::ptr::null_mut()
            };
            let recv = dev_alloc((count * w).max(1));
            // SAFETY: the root's send holds count*n elements, recv count.
            hok(unsafe { HcclScatter(send, recv, count as u64, dt, 0, comm, stream) });
            sync(stream);
            assert_eq!(
                download(recv, count * w),
                enc_all(dt, &x[0][r * count..(r + 1) * count]),
                "{}",
                what("Scatter")
            );
            if r == 0 {
                free(send);
            }
            free(recv);

            // AlltoAll.
            let x = all(count * n);
            let send = upload(&enc_all(dt, &x[r]));
            let recv = dev_alloc((count * n * w).max(1));
            // SAFETY: both buffers hold count*n elements.
            hok(unsafe {
                HcclAlltoAll(send, count as u64, dt, recv, count as u64, dt, comm, stream)
            });
            sync(stream);
            let expected: Vec<u8> = (0..n)
                .flat_map(|q| enc_all(dt, &x[q][r * count..(r + 1) * count]))
                .collect();
            assert_eq!(
                download(recv, count * n * w),
                expected,
                "{}",
                what("AlltoAll")
            );
            free(send);
            free(recv);

            // Point to point: a ring, then an exchange with every peer.
            p2p_checks(r, n, comm, stream, dt, count, seed);
        }
        alltoallv_checks(r, n, comm, stream, dt, seed);
    }
    // SAFETY: comm and stream are live.
    hok(unsafe { HcclBarrier(comm, stream) });
    sync(stream);
}

fn p2p_checks(
    r: usize,
    n: usize,
    comm: HcclComm,
    stream: aclrtStream,
    dt: HcclDataType,
    count: usize,
    seed: usize,
) {
    let w = width(dt);
    let x: Vec<Vec<f64>> = (0..n).map(|q| inputs(dt, q, count, seed + 100)).collect();
    let (next, prev) = ((r + 1) % n, (r + n - 1) % n);
    let send = upload(&enc_all(dt, &x[r]));
    let recv = dev_alloc((count * w).max(1));
    // Receive before send inside a group: the group runs sends first.
    // SAFETY: both buffers hold count elements.
    unsafe {
        hok(HcclGroupStart());
        hok(HcclRecv(recv, count as u64, dt, prev as u32, comm, stream));
        hok(HcclSend(send, count as u64, dt, next as u32, comm, stream));
        hok(HcclGroupEnd());
    }
    sync(stream);
    assert_eq!(
        download(recv, count * w),
        enc_all(dt, &x[prev]),
        "ring dtype {dt} n={n} count={count} rank {r}"
    );
    // Plain send then receive on one stream: the send deposits.
    // SAFETY: as above.
    unsafe {
        hok(HcclSend(send, count as u64, dt, next as u32, comm, stream));
        hok(HcclRecv(recv, count as u64, dt, prev as u32, comm, stream));
    }
    sync(stream);
    assert_eq!(download(recv, count * w), enc_all(dt, &x[prev]));
    free(send);
    free(recv);

    // Batch: rank r sends block q of its data to q and receives block r of
    // q's data from q; receives listed first.
    let x: Vec<Vec<f64>> = (0..n)
        .map(|q| inputs(dt, q, count * n, seed + 200))
        .collect();
    let send = upload(&enc_all(dt, &x[r]));
    let recv = dev_alloc((count * n * w).max(1));
    let mut items = Vec::new();
    for q in 0..n {
        items.push(HcclSendRecvItem {
            sendRecvType: HCCL_RECV,
            buf: (recv as usize + q * count * w) as *mut c_void,
            count: count as u64,
            dataType: dt,
            remoteRank: q as u32,
        });
    }
    for q in 0..n {
        items.push(HcclSendRecvItem {
            sendRecvType: HCCL_SEND,
            buf: (send as usize + q * count * w) as *mut c_void,
            count: count as u64,
            dataType: dt,
            remoteRank: q as u32,
        });
    }
    // SAFETY: items is a live array of items.len() entries.
    hok(unsafe { HcclBatchSendRecv(items.as_mut_ptr(), items.len() as u32, comm, stream) });
    sync(stream);
    let expected: Vec<u8> = (0..n)
        .flat_map(|q| enc_all(dt, &x[q][r * count..(r + 1) * count]))
        .collect();
    assert_eq!(
        download(recv, count * n * w),
        expected,
        "batch dtype {dt} n={n}"
    );
    free(send);
    free(recv);
}

fn prefix(counts: &[u64], gap: u64) -> Vec<u64> {
    let mut at = 0;
    counts
        .iter()
        .map(|c| {
            let d = at;
            at += c + gap;
            d
        })
        .collect()
}

fn alltoallv_checks(
    r: usize,
    n: usize,
    comm: HcclComm,
    stream: aclrtStream,
    dt: HcclDataType,
    seed: usize,
) {
    let w = width(dt);
    // counts[i][j]: what rank i sends to rank j (0..3, zeros included).
    let counts: Vec<Vec<u64>> = (0..n)
        .map(|i| (0..n).map(|j| ((i + 2 * j + seed) % 4) as u64).collect())
        .collect();
    let sdispls: Vec<Vec<u64>> = counts.iter().map(|c| prefix(c, 1)).collect();
    let send_len: Vec<usize> = (0..n)
        .map(|i| (counts[i].iter().sum::<u64>() + n as u64) as usize)
        .collect();
    let x: Vec<Vec<f64>> = (0..n)
        .map(|q| inputs(dt, q, send_len[q], seed + 300))
        .collect();
    let recv_counts: Vec<u64> = (0..n).map(|i| counts[i][r]).collect();
    let rdispls = prefix(&recv_counts, 2);
    let recv_len = (recv_counts.iter().sum::<u64>() + 2 * n as u64) as usize;
    let sentinel = 5.0;
    let mut expected = enc_all(dt, &vec![sentinel; recv_len]);
    for i in 0..n {
        let s = sdispls[i][r] as usize;
        let seg = enc_all(dt, &x[i][s..s + counts[i][r] as usize]);
        let at = rdispls[i] as usize * w;
        expected[at..at + seg.len()].copy_from_slice(&seg);
    }
    let send = upload(&enc_all(dt, &x[r]));
    let recv = upload(&enc_all(dt, &vec![sentinel; recv_len]));
    // SAFETY: the arrays hold n entries; the buffers cover every segment.
    hok(unsafe {
        HcclAlltoAllV(
            send,
            counts[r].as_ptr().cast(),
            sdispls[r].as_ptr().cast(),
            dt,
            recv,
            recv_counts.as_ptr().cast(),
            rdispls.as_ptr().cast(),
            dt,
            comm,
            stream,
        )
    });
    sync(stream);
    assert_eq!(
        download(recv, recv_len * w),
        expected,
        "AlltoAllV dtype {dt} n={n} rank {r}"
    );
    free(send);
    free(recv);

    // All counts zero: no buffers needed, and displacements do not matter.
    let zeros = vec![0u64; n];
    let far = vec![u64::MAX; n];
    // SAFETY: the arrays hold n entries; no buffer is touched.
    hok(unsafe {
        HcclAlltoAllV(
            std::ptr::null(),
            zeros.as_ptr().cast(),
            far.as_ptr().cast(),
            dt,
            std::ptr::null(),
            zeros.as_ptr().cast(),
            far.as_ptr().cast(),
            dt,
            comm,
            stream,
        )
    });
    sync(stream);
}

/// Every reducible type through AllReduce (sum, prod, max, min), and the
/// types that are only moved (INT128, HIF8, FP8) through AllGather and
/// Broadcast, byte for byte.
fn every_dtype_program(r: usize, n: usize, comm: HcclComm, stream: aclrtStream) {
    const REDUCIBLE: [HcclDataType; 12] = [
        HCCL_DATA_TYPE_INT8,
        HCCL_DATA_TYPE_INT16,
        HCCL_DATA_TYPE_INT32,
        HCCL_DATA_TYPE_INT64,
        HCCL_DATA_TYPE_UINT8,
        HCCL_DATA_TYPE_UINT16,
        HCCL_DATA_TYPE_UINT32,
        HCCL_DATA_TYPE_UINT64,
        HCCL_DATA_TYPE_FP16,
        HCCL_DATA_TYPE_BFP16,
        HCCL_DATA_TYPE_FP32,
        HCCL_DATA_TYPE_FP64,
    ];
    let count = 9;
    for &dt in &REDUCIBLE {
        let w = width(dt);
        // Non-negative, so signed and unsigned agree on max and min.
        let x: Vec<Vec<f64>> = (0..n)
            .map(|q| {
                (0..count)
                    .map(|i| ((i * 5 + q * 3) % 11) as f64 + if is_float(dt) { 0.5 } else { 0.0 })
                    .collect()
            })
            .collect();
        for &op in &OPS {
            let send = upload(&enc_all(dt, &x[r]));
            let recv = dev_alloc(count * w);
            // SAFETY: both buffers hold count elements of dt.
            hok(unsafe { HcclAllReduce(send, recv, count as u64, dt, op, comm, stream) });
            sync(stream);
            assert_eq!(
                download(recv, count * w),
                ref_reduce_range(dt, op, &x, 0..count),
                "AllReduce dtype {dt} op {op} n={n} rank {r}"
            );
            free(send);
            free(recv);
        }
    }
    let moved = [
        (HCCL_DATA_TYPE_INT128, 16),
        (HCCL_DATA_TYPE_HIF8, 1),
        (HCCL_DATA_TYPE_FP8E4M3, 1),
        (HCCL_DATA_TYPE_FP8E5M2, 1),
        (HCCL_DATA_TYPE_FP8E8M0, 1),
    ];
    for (dt, w) in moved {
        let count = 5;
        let bytes = |q: usize| -> Vec<u8> {
            (0..count * w)
                .map(|i| (i * 13 + q * 101 + dt as usize) as u8)
                .collect()
        };
        let send = upload(&bytes(r));
        let recv = dev_alloc(count * w * n);
        // SAFETY: send holds count elements, recv count * n.
        hok(unsafe { HcclAllGather(send, recv, count as u64, dt, comm, stream) });
        sync(stream);
        let all: Vec<u8> = (0..n).flat_map(bytes).collect();
        assert_eq!(download(recv, count * w * n), all, "AllGather dtype {dt}");
        // SAFETY: send holds count elements.
        hok(unsafe { HcclBroadcast(send, count as u64, dt, 0, comm, stream) });
        sync(stream);
        assert_eq!(download(send, count * w), bytes(0), "Broadcast dtype {dt}");
        free(send);
        free(recv);
    }
}

#[test]
fn every_data_type_on_two_ranks() {
    run_world(&[0, 0], every_dtype_program);
}

#[test]
fn collectives_on_one_rank() {
    run_world(&[0], collectives_program);
}

#[test]
fn collectives_on_two_ranks() {
    run_world(&[0, 0], collectives_program);
}

#[test]
fn collectives_on_three_ranks_sharing_a_device() {
    run_world(&[0, 0, 0], collectives_program);
}

#[test]
fn queries_names_and_error_strings() {
    let comms = init_all(&[0, 0]);
    let other = init_all(&[0]);
    let name = |c: HcclComm| {
        let mut buf = [0 as std::ffi::c_char; COMM_NAME_MAX_LENGTH];
        // SAFETY: buf holds COMM_NAME_MAX_LENGTH bytes.
        hok(unsafe { HcclGetCommName(c, buf.as_mut_ptr()) });
        // SAFETY: the name is NUL-terminated inside buf.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(name(comms[0]), name(comms[1]));
    assert_ne!(name(comms[0]), name(other[0]));
    assert!(!name(comms[0]).is_empty() && name(comms[0]).len() < COMM_NAME_MAX_LENGTH);
    for (i, c) in comms.iter().enumerate() {
        let (mut size, mut rank, mut err) = (0u32, 9u32, 7 as HcclResult);
        // SAFETY: valid output locations.
        unsafe {
            hok(HcclGetRankSize(*c, &mut size));
            hok(HcclGetRankId(*c, &mut rank));
            hok(HcclGetCommAsyncError(*c, &mut err));
        }
        assert_eq!((size, rank as usize, err), (2, i, HCCL_SUCCESS));
    }
    // SAFETY: NULL outputs are refused, not written.
    unsafe {
        herr(
            HcclGetRankSize(comms[0], std::ptr::null_mut()),
            HCCL_E_PTR,
            &["HcclGetRankSize", "rankSize"],
        );
        herr(
            HcclGetCommName(comms[0], std::ptr::null_mut()),
            HCCL_E_PTR,
            &["commName"],
        );
    }
    let mut seen = std::collections::HashSet::new();
    for code in 0..=HCCL_E_OOM {
        // SAFETY: HcclGetErrorString returns a static C string.
        let s = unsafe { CStr::from_ptr(HcclGetErrorString(code)) };
        assert!(seen.insert(s.to_owned()), "duplicate text for {code}");
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(HcclGetErrorString(999)) };
    assert!(unknown.to_string_lossy().contains("unknown"));
    // SAFETY: the cluster-info call reads nothing.
    let code =
        unsafe { HcclCommInitClusterInfo(c"rank_table.json".as_ptr(), 0, std::ptr::null_mut()) };
    herr(code, HCCL_E_NOT_SUPPORT, &["HcclCommInitClusterInfo"]);
    // SAFETY: no arguments.
    herr(unsafe { HcclGroupEnd() }, HCCL_E_PARA, &["HcclGroupStart"]);
    destroy_all(&comms);
    destroy_all(&other);
    // SAFETY: a destroyed handle is looked up, not dereferenced.
    let mut size = 0u32;
    herr(
        unsafe { HcclGetRankSize(comms[0], &mut size) },
        HCCL_E_PARA,
        &["not a live HCCL communicator"],
    );
}

#[test]
fn parameter_errors_are_refused_before_enqueue() {
    let comms = init_all(&[0, 0]);
    let ctx = own_context(0);
    let stream = new_stream();
    let c = comms[0];
    let f32t = HCCL_DATA_TYPE_FP32;
    let buf = dev_alloc(64);
    let host = host_alloc(64);
    let mut local = [0u8; 64];
    let stack = local.as_mut_ptr().cast::<c_void>();
    let null = std::ptr::null_mut::<c_void>();
    // SAFETY (whole block): every call is refused by its checks before any
    // buffer is read or written.
    unsafe {
        herr(
            HcclAllReduce(null, buf, 4, f32t, HCCL_REDUCE_SUM, c, stream),
            HCCL_E_PTR,
            &["HcclAllReduce", "sendBuf is NULL", "4 elements"],
        );
        herr(
            HcclAllReduce(
                buf,
                buf,
                4,
                f32t,
                HCCL_REDUCE_SUM,
                std::ptr::null_mut(),
                stream,
            ),
            HCCL_E_PTR,
            &["comm is NULL"],
        );
        herr(
            HcclAllReduce(
                buf,
                buf,
                4,
                f32t,
                HCCL_REDUCE_SUM,
                0x1234 as HcclComm,
                stream,
            ),
            HCCL_E_PARA,
            &["not a live HCCL communicator"],
        );
        herr(
            HcclAllReduce(buf, buf, 4, 99, HCCL_REDUCE_SUM, c, stream),
            HCCL_E_PARA,
            &["dataType 99"],
        );
        herr(
            HcclAllReduce(buf, buf, 4, f32t, 7, c, stream),
            HCCL_E_PARA,
            &["op 7"],
        );
        herr(
            HcclAllReduce(
                buf,
                buf,
                2,
                HCCL_DATA_TYPE_INT128,
                HCCL_REDUCE_SUM,
                c,
                stream,
            ),
            HCCL_E_NOT_SUPPORT,
            &["HCCL_DATA_TYPE_INT128"],
        );
        herr(
            HcclReduceScatter(
                buf,
                buf,
                1,
                HCCL_DATA_TYPE_FP8E4M3,
                HCCL_REDUCE_MAX,
                c,
                stream,
            ),
            HCCL_E_NOT_SUPPORT,
            &["FP8E4M3"],
        );
        herr(
            HcclAllReduce(host, buf, 4, f32t, HCCL_REDUCE_SUM, c, stream),
            HCCL_E_PARA,
            &[
                "wrong memory kind",
                "sendBuf",
                "pinned host memory",
                "16 bytes",
            ],
        );
        herr(
            HcclAllReduce(buf, stack, 4, f32t, HCCL_REDUCE_SUM, c, stream),
            HCCL_E_PARA,
            &["recvBuf", "host memory", "not device memory of device 0"],
        );
        let gone = dev_alloc(64);
        ok(aclrtFree(gone));
        let class = if crate::sanitizer::enabled() {
            "use-after-free: HcclAllReduce (call #"
        } else {
            "host memory"
        };
        herr(
            HcclAllReduce(gone, buf, 4, f32t, HCCL_REDUCE_SUM, c, stream),
            HCCL_E_PARA,
            &[class, "sendBuf"],
        );
        herr(
            HcclAllReduce(buf, buf, 100, f32t, HCCL_REDUCE_SUM, c, stream),
            HCCL_E_PARA,
            &[
                "runs past the end",
                "100 elements of HCCL_DATA_TYPE_FP32 (400 bytes)",
            ],
        );
        herr(
            HcclAllGather(buf, buf, 16, f32t, c, stream),
            HCCL_E_PARA,
            &["recvBuf", "runs past the end", "32 elements"],
        );
        herr(
            HcclBroadcast(buf, 4, f32t, 2, c, stream),
            HCCL_E_PARA,
            &["root 2 is out of range", "2 ranks"],
        );
        herr(
            HcclSend(buf, 4, f32t, 5, c, stream),
            HCCL_E_PARA,
            &["destRank 5"],
        );
        herr(
            HcclRecv(buf, 4, f32t, 2, c, stream),
            HCCL_E_PARA,
            &["srcRank 2"],
        );
        herr(
            HcclAlltoAll(buf, 2, f32t, buf, 3, f32t, c, stream),
            HCCL_E_PARA,
            &["sendCount 2 differs from recvCount 3"],
        );
        herr(
            HcclAlltoAll(buf, 2, f32t, buf, 2, HCCL_DATA_TYPE_INT32, c, stream),
            HCCL_E_PARA,
            &["differs from recvType"],
        );
        let counts = [1u64, 1];
        let far = [0u64, 100];
        herr(
            HcclAlltoAllV(
                buf,
                counts.as_ptr().cast(),
                far.as_ptr().cast(),
                f32t,
                buf,
                counts.as_ptr().cast(),
                counts.as_ptr().cast(),
                f32t,
                c,
                stream,
            ),
            HCCL_E_PARA,
            &["sendBuf", "runs past the end", "101 elements"],
        );
        herr(
            HcclAlltoAllV(
                buf,
                std::ptr::null(),
                counts.as_ptr().cast(),
                f32t,
                buf,
                counts.as_ptr().cast(),
                counts.as_ptr().cast(),
                f32t,
                c,
                stream,
            ),
            HCCL_E_PTR,
            &["sendCounts is NULL"],
        );
        let mut bad = [HcclSendRecvItem {
            sendRecvType: 5,
            buf,
            count: 1,
            dataType: f32t,
            remoteRank: 0,
        }];
        herr(
            HcclBatchSendRecv(bad.as_mut_ptr(), 1, c, stream),
            HCCL_E_PARA,
            &["sendRecvInfo[0].sendRecvType 5"],
        );
        herr(
            HcclBatchSendRecv(std::ptr::null_mut(), 2, c, stream),
            HCCL_E_PTR,
            &["sendRecvInfo is NULL"],
        );
        let mut none = [0i32; 1];
        let mut out = [std::ptr::null_mut(); 1];
        herr(
            HcclCommInitAll(0, none.as_mut_ptr(), out.as_mut_ptr()),
            HCCL_E_PARA,
            &["ndev is 0"],
        );
        none[0] = 64;
        herr(
            HcclCommInitAll(1, none.as_mut_ptr(), out.as_mut_ptr()),
            HCCL_E_PARA,
            &["devices[0]", "device 64 does not exist"],
        );
        // Counts of 0 need no buffers: an INT128 broadcast of nothing is fine
        // (it is enqueued as this rank's collective #1; rank 1 joins below).
        hok(HcclBroadcast(null, 0, HCCL_DATA_TYPE_INT128, 0, c, stream));
    }
    // Two ranks on one stream would deadlock: the second is refused.
    // SAFETY: rank 1's call is refused before anything is queued; then it
    // joins on a stream of its own.
    unsafe {
        herr(
            HcclBroadcast(null, 0, HCCL_DATA_TYPE_INT128, 0, comms[1], stream),
            HCCL_E_PARA,
            &["same stream", "collective #1 of rank 0"],
        );
        let other = new_stream();
        hok(HcclBroadcast(
            null,
            0,
            HCCL_DATA_TYPE_INT128,
            0,
            comms[1],
            other,
        ));
        sync(other);
        ok(aclrtDestroyStream(other));
    }
    sync(stream);
    free(buf);
    // SAFETY: host came from aclrtMallocHost; stream is live and idle.
    unsafe {
        ok(aclrtFreeHost(host));
        ok(aclrtDestroyStream(stream));
    }
    drop_context(ctx);
    destroy_all(&comms);
}

/// `HcclReduce` and `HcclScatter` check their rooted arguments before
/// anything is queued: the root is a rank, the root's result (Reduce) or
/// source (Scatter) buffer exists and is large enough, `recvCount *
/// rankSize` does not overflow, and reductions take the same types and
/// operations as `HcclAllReduce`. The buffer a rank does not use (the
/// receive buffer of a non-root Reduce, the send buffer of a non-root
/// Scatter) may be NULL.
#[test]
fn reduce_and_scatter_check_their_rooted_arguments() {
    let comms = init_all(&[0, 0]);
    let ctx = own_context(0);
    let stream = new_stream();
    let f32t = HCCL_DATA_TYPE_FP32;
    let sum = HCCL_REDUCE_SUM;
    let buf = dev_alloc(64);
    let big = dev_alloc(256);
    let null = std::ptr::null_mut::<c_void>();
    // SAFETY (whole block): every call is refused by its checks before any
    // buffer is read or written.
    unsafe {
        for (c, who) in [(comms[0], "root"), (comms[1], "non-root")] {
            herr(
                HcclReduce(buf, buf, 4, f32t, sum, 2, c, stream),
                HCCL_E_PARA,
                &["HcclReduce", "root 2 is out of range", "2 ranks"],
            );
            herr(
                HcclScatter(buf, buf, 4, f32t, u32::MAX, c, stream),
                HCCL_E_PARA,
                &["HcclScatter", "root 4294967295 is out of range"],
            );
            // Every rank's send buffer is read by Reduce.
            herr(
                HcclReduce(null, buf, 4, f32t, sum, 0, c, stream),
                HCCL_E_PTR,
                &["HcclReduce", "sendBuf is NULL", "4 elements"],
            );
            // Every rank's receive buffer is written by Scatter.
            herr(
                HcclScatter(buf, null, 4, f32t, 0, c, stream),
                HCCL_E_PTR,
                &["HcclScatter", "recvBuf is NULL", "4 elements"],
            );
            herr(
                HcclReduce(buf, buf, 4, f32t, 7, 0, c, stream),
                HCCL_E_PARA,
                &["op 7"],
            );
            herr(
                HcclReduce(buf, buf, 4, 99, sum, 0, c, stream),
                HCCL_E_PARA,
                &["dataType 99"],
            );
            herr(
                HcclScatter(buf, buf, 4, 99, 0, c, stream),
                HCCL_E_PARA,
                &["dataType 99"],
            );
            let msg = herr(
                HcclReduce(buf, buf, 2, HCCL_DATA_TYPE_INT128, sum, 0, c, stream),
                HCCL_E_NOT_SUPPORT,
                &["HCCL_DATA_TYPE_INT128", "cannot be reduced"],
            );
            assert!(msg.contains("HcclReduce"), "{who}: {msg}");
            herr(
                HcclReduce(buf, buf, 100, f32t, sum, 0, c, stream),
                HCCL_E_PARA,
                &["sendBuf", "runs past the end"],
            );
        }
        // The root's receive buffer of Reduce must exist and hold `count`.
        herr(
            HcclReduce(buf, null, 4, f32t, sum, 0, comms[0], stream),
            HCCL_E_PTR,
            &["recvBuf is NULL"],
        );
        herr(
            HcclReduce(big, buf, 32, f32t, sum, 0, comms[0], stream),
            HCCL_E_PARA,
            &["recvBuf", "runs past the end", "32 elements"],
        );
        // The root's send buffer of Scatter holds recvCount * rankSize.
        herr(
            HcclScatter(null, buf, 2, f32t, 0, comms[0], stream),
            HCCL_E_PTR,
            &["sendBuf is NULL", "4 elements"],
        );
        herr(
            HcclScatter(buf, big, 20, f32t, 0, comms[0], stream),
            HCCL_E_PARA,
            &["sendBuf", "runs past the end", "40 elements"],
        );
        herr(
            HcclScatter(buf, buf, u64::MAX / 2 + 1, f32t, 0, comms[0], stream),
            HCCL_E_PARA,
            &["overflows"],
        );
        // A non-root rank's receive buffer still holds recvCount.
        herr(
            HcclScatter(null, buf, 30, f32t, 0, comms[1], stream),
            HCCL_E_PARA,
            &["recvBuf", "runs past the end", "30 elements"],
        );
    }
    // Accepted: the unused buffer of a non-root rank is ignored, whether
    // NULL or a buffer (which keeps its contents).
    let other = new_stream();
    let sentinel = enc_all(f32t, &[-1.0; 8]);
    let x = [
        enc_all(f32t, &[1.0, 2.0, 3.0, 4.0]),
        enc_all(f32t, &[10.0, 20.0, 30.0, 40.0]),
    ];
    let send = [upload(&x[0]), upload(&x[1])];
    let recv = [dev_alloc(16), upload(&sentinel)];
    // SAFETY: send buffers hold 4 floats; the root's recv holds 4 floats.
    unsafe {
        hok(HcclReduce(send[1], null, 4, f32t, sum, 0, comms[1], other));
        hok(HcclReduce(
            send[0], recv[0], 4, f32t, sum, 0, comms[0], stream,
        ));
        hok(HcclReduce(
            send[0], recv[0], 4, f32t, sum, 0, comms[0], stream,
        ));
        hok(HcclReduce(
            send[1], recv[1], 4, f32t, sum, 0, comms[1], other,
        ));
    }
    sync(stream);
    sync(other);
    assert_eq!(
        download(recv[0], 16),
        enc_all(f32t, &[11.0, 22.0, 33.0, 44.0])
    );
    assert_eq!(
        download(recv[1], 32),
        sentinel,
        "a non-root recvBuf was written"
    );
    // Scatter from rank 1: rank 0's send buffer is not read, even when it
    // holds too little.
    let whole = upload(&enc_all(f32t, &[5.0, 6.0, 7.0, 8.0]));
    // SAFETY: the root's send holds 4 floats; every recv holds 2.
    unsafe {
        hok(HcclScatter(null, recv[0], 2, f32t, 1, comms[0], stream));
        hok(HcclScatter(whole, recv[1], 2, f32t, 1, comms[1], other));
    }
    sync(stream);
    sync(other);
    assert_eq!(download(recv[0], 8), enc_all(f32t, &[5.0, 6.0]));
    assert_eq!(download(recv[1], 8), enc_all(f32t, &[7.0, 8.0]));
    for p in [send[0], send[1], recv[0], recv[1], whole, buf, big] {
        free(p);
    }
    // SAFETY: other is live and idle.
    unsafe { ok(aclrtDestroyStream(other)) };
    // SAFETY: stream is live and idle.
    unsafe { ok(aclrtDestroyStream(stream)) };
    drop_context(ctx);
    destroy_all(&comms);
}

#[test]
fn a_thread_without_the_ranks_device_is_refused() {
    init();
    let comms = init_all(&[1]);
    let ctx = own_context(0);
    // SAFETY: refused before any pointer is used.
    let code = unsafe {
        HcclAllReduce(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comms[0],
            std::ptr::null_mut(),
        )
    };
    herr(
        code,
        HCCL_E_PARA,
        &[
            "current device is 0",
            "lives on device 1",
            "aclrtSetDevice(1)",
        ],
    );
    drop_context(ctx);
    let handle = comms[0] as usize;
    let code = std::thread::spawn(move || {
        // SAFETY: refused before any pointer is used (no context here).
        let code = unsafe { HcclBarrier(handle as HcclComm, std::ptr::null_mut()) };
        (code, take_message().unwrap_or_default())
    })
    .join()
    .unwrap();
    assert_eq!(code.0, HCCL_E_RUNTIME, "{}", code.1);
    assert!(code.1.contains("no current context"), "{}", code.1);
    destroy_all(&comms);
}

#[test]
fn mismatched_collectives_fail_on_every_rank() {
    let comms = init_all(&[0, 0]);
    let handles: Vec<usize> = comms.iter().map(|c| *c as usize).collect();
    std::thread::scope(|s| {
        for (r, &comm) in handles.iter().enumerate() {
            s.spawn(move || {
                let comm = comm as HcclComm;
                let ctx = own_context(0);
                let stream = new_stream();
                let buf = dev_alloc(64);
                // Rank 0 reduces 4 elements, rank 1 five.
                // SAFETY: buf holds 16 f32s.
                hok(unsafe {
                    HcclAllReduce(
                        buf,
                        buf,
                        4 + r as u64,
                        HCCL_DATA_TYPE_FP32,
                        HCCL_REDUCE_SUM,
                        comm,
                        stream,
                    )
                });
                // SAFETY: stream is live.
                let code = unsafe { aclrtSynchronizeStream(stream) };
                let msg = take_message().unwrap_or_default();
                assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
                assert!(
                    msg.contains("HCCL_E_PARA") && msg.contains("does not match"),
                    "{msg}"
                );
                // AlltoAllV whose counts disagree: rank 0 sends 1 to rank 1,
                // rank 1 expects 2.
                let send = [1u64, 1];
                let recv = [1 + r as u64, 1u64];
                let displs = [0u64, 4];
                // SAFETY: arrays of 2 entries; buf holds 16 f32s.
                hok(unsafe {
                    HcclAlltoAllV(
                        buf,
                        send.as_ptr().cast(),
                        displs.as_ptr().cast(),
                        HCCL_DATA_TYPE_FP32,
                        buf,
                        recv.as_ptr().cast(),
                        displs.as_ptr().cast(),
                        HCCL_DATA_TYPE_FP32,
                        comm,
                        stream,
                    )
                });
                // SAFETY: stream is live.
                let code = unsafe { aclrtSynchronizeStream(stream) };
                let msg = take_message().unwrap_or_default();
                assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
                assert!(msg.contains("recvCounts[0]"), "{msg}");
                let mut err = HCCL_SUCCESS;
                // SAFETY: valid output location.
                hok(unsafe { HcclGetCommAsyncError(comm, &mut err) });
                assert_eq!(err, HCCL_E_PARA);
                // SAFETY: stream is live; buf came from aclrtMalloc.
                unsafe {
                    ok(aclrtFree(buf));
                    ok(aclrtDestroyStream(stream));
                }
                drop_context(ctx);
            });
        }
    });
    destroy_all(&comms);
}

#[test]
fn a_rank_that_never_joins_times_out() {
    let comms = init_all(&[0, 0]);
    set_comm_timeout(comms[0], Duration::from_millis(200)).unwrap();
    let ctx = own_context(0);
    let (s0, s1) = (new_stream(), new_stream());
    let buf = dev_alloc(64);
    // SAFETY (whole block): buf holds 16 f32s; streams are live.
    unsafe {
        // Rank 1 never calls its first collective.
        hok(HcclAllReduce(
            buf,
            buf,
            4,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comms[0],
            s0,
        ));
        let code = aclrtSynchronizeStream(s0);
        let msg = take_message().unwrap_or_default();
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_TIMEOUT, "{msg}");
        assert!(
            msg.contains("HCCL_E_TIMEOUT") && msg.contains("ranks [1] did not join"),
            "{msg}"
        );
        let mut err = HCCL_SUCCESS;
        hok(HcclGetCommAsyncError(comms[0], &mut err));
        assert_eq!(err, HCCL_E_TIMEOUT);
        // When rank 1 arrives late, the collective is already abandoned.
        hok(HcclAllReduce(
            buf,
            buf,
            4,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comms[1],
            s1,
        ));
        assert_eq!(aclrtSynchronizeStream(s1), ACL_ERROR_RT_FFTS_PLUS_TIMEOUT);
        let _ = take_message();
        hok(HcclGetCommAsyncError(comms[1], &mut err));
        assert_eq!(err, HCCL_E_TIMEOUT);
        // The next collective of both ranks works.
        hok(HcclBarrier(comms[0], s0));
        hok(HcclBarrier(comms[1], s1));
        sync(s0);
        sync(s1);
        // A receive without a send times out too.
        hok(HcclRecv(buf, 4, HCCL_DATA_TYPE_FP32, 1, comms[0], s0));
        let code = aclrtSynchronizeStream(s0);
        let msg = take_message().unwrap_or_default();
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_TIMEOUT, "{msg}");
        assert!(msg.contains("no matching HcclSend"), "{msg}");
        ok(aclrtFree(buf));
        ok(aclrtDestroyStream(s0));
        ok(aclrtDestroyStream(s1));
    }
    drop_context(ctx);
    destroy_all(&comms);
}

#[test]
fn destroying_a_rank_releases_its_waiting_peers() {
    let comms = init_all(&[0, 0]);
    set_comm_timeout(comms[0], Duration::from_secs(60)).unwrap();
    let ctx = own_context(0);
    let stream = new_stream();
    let buf = dev_alloc(64);
    // SAFETY (whole block): buf holds 16 f32s; the stream is live.
    unsafe {
        hok(HcclAllReduce(
            buf,
            buf,
            4,
            HCCL_DATA_TYPE_FP32,
            HCCL_REDUCE_SUM,
            comms[0],
            stream,
        ));
        hok(HcclRecv(buf, 4, HCCL_DATA_TYPE_FP32, 1, comms[0], stream));
        hok(HcclCommDestroy(comms[1]));
        let code = aclrtSynchronizeStream(stream);
        let msg = take_message().unwrap_or_default();
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
        assert!(
            msg.contains("HCCL_E_UNAVAIL") && msg.contains("ranks [1] were destroyed"),
            "{msg}"
        );
        let mut err = HCCL_SUCCESS;
        hok(HcclGetCommAsyncError(comms[0], &mut err));
        assert_eq!(err, HCCL_E_UNAVAIL);
        // The receive failed the same way (the stream reports its first error).
        hok(HcclRecv(buf, 4, HCCL_DATA_TYPE_FP32, 1, comms[0], stream));
        let code = aclrtSynchronizeStream(stream);
        let msg = take_message().unwrap_or_default();
        assert_eq!(code, ACL_ERROR_RT_FFTS_PLUS_EXCEPTION, "{msg}");
        assert!(msg.contains("that rank was destroyed"), "{msg}");
        ok(aclrtFree(buf));
        ok(aclrtDestroyStream(stream));
        hok(HcclCommDestroy(comms[0]));
    }
    drop_context(ctx);
}

/// Joins `devices.len()` ranks through one root info, one thread each;
/// returns the communicators.
fn init_root_info(devices: &[i32]) -> Vec<HcclComm> {
    init();
    let mut info = HcclRootInfo::default();
    // SAFETY: info is a valid output location.
    hok(unsafe { HcclGetRootInfo(&mut info) });
    let n = devices.len() as u32;
    let info = &info;
    let comms: Vec<usize> = std::thread::scope(|s| {
        let joins: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(r, &dev)| {
                s.spawn(move || {
                    let ctx = own_context(dev);
                    let mut comm = std::ptr::null_mut();
                    // SAFETY: info is a root info; comm a valid output.
                    hok(unsafe { HcclCommInitRootInfo(n, info, r as u32, &mut comm) });
                    let mut rank = 0;
                    // SAFETY: valid output location.
                    hok(unsafe { HcclGetRankId(comm, &mut rank) });
                    assert_eq!(rank as usize, r);
                    drop_context(ctx);
                    comm as usize
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    comms.into_iter().map(|c| c as HcclComm).collect()
}

#[test]
fn root_info_rendezvous_from_threads() {
    let comms = init_root_info(&[0, 0, 0]);
    let mut size = 0;
    // SAFETY: valid output location.
    hok(unsafe { HcclGetRankSize(comms[2], &mut size) });
    assert_eq!(size, 3);
    destroy_all(&comms);
    // Wrong arguments are refused at once.
    let mut info = HcclRootInfo::default();
    // SAFETY (whole block): info and comm are valid locations.
    unsafe {
        let ctx = own_context(0);
        let mut comm = std::ptr::null_mut();
        herr(
            HcclCommInitRootInfo(2, &info, 0, &mut comm),
            HCCL_E_PARA,
            &["bad magic"],
        );
        hok(HcclGetRootInfo(&mut info));
        herr(
            HcclCommInitRootInfo(2, &info, 2, &mut comm),
            HCCL_E_PARA,
            &["rank 2 is out of range"],
        );
        herr(
            HcclCommInitRootInfo(2, std::ptr::null(), 0, &mut comm),
            HCCL_E_PTR,
            &["rootInfo is NULL"],
        );
        drop_context(ctx);
    }
}

/// The fallback root info (no listener): threads of the maker still meet
/// in memory and a stranger's nonce is refused (its timeout is checked in
/// the child process of `root_info_on_eight_devices_and_environment_timeout`).
#[test]
fn in_process_root_infos_join_threads_of_their_maker() {
    use super::root_info::RootInfo;

    init();
    let raw = RootInfo::new_in_process().encode();
    let info = HcclRootInfo {
        internal: raw.map(|b| b as _),
    };
    let info = &info;
    let comms: Vec<usize> = std::thread::scope(|s| {
        let joins: Vec<_> = (0..2u32)
            .map(|r| {
                s.spawn(move || {
                    let ctx = own_context(0);
                    let mut comm = std::ptr::null_mut();
                    // SAFETY: info is a root info; comm a valid output.
                    hok(unsafe { HcclCommInitRootInfo(2, info, r, &mut comm) });
                    drop_context(ctx);
                    comm as usize
                })
            })
            .collect();
        joins.into_iter().map(|j| j.join().unwrap()).collect()
    });
    let comms: Vec<HcclComm> = comms.into_iter().map(|c| c as HcclComm).collect();
    run_world_with(&comms, &[0, 0], collectives_program);
    destroy_all(&comms);

    let ctx = own_context(0);
    let mut comm = std::ptr::null_mut();
    // Another process's in-process root info.
    let mut foreign = RootInfo::new_in_process();
    foreign.nonce ^= 1 << 40;
    let foreign = HcclRootInfo {
        internal: foreign.encode().map(|b| b as _),
    };
    // SAFETY (whole block): the root infos and comm are valid locations.
    unsafe {
        herr(
            HcclCommInitRootInfo(2, &foreign, 0, &mut comm),
            HCCL_E_NOT_SUPPORT,
            &["in-process root info of another process"],
        );
    }
    drop_context(ctx);
}

mod hostile;
mod multiprocess;

// ---- child process: 8 devices ------------------------------------------

const CHILD_ENV: &str = "ASCEND_MOCK_HCCL_TEST_CHILD";

fn run_child(mode: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "hccl::tests::child_process",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .env("ASCEND_MOCK_DEVICES", "8")
    .env_remove("ASCEND_MOCK_MEMORY")
    .env_remove(super::TIMEOUT_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child {mode} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {mode} ran nothing:\n{text}"
    );
}

#[test]
fn collectives_on_three_and_eight_devices() {
    run_child("worlds", &[]);
}

#[test]
fn root_info_on_eight_devices_and_environment_timeout() {
    run_child("root-info", &[(super::TIMEOUT_ENV, "300")]);
    run_child("bad-timeout", &[(super::TIMEOUT_ENV, "soon")]);
}

/// Runs in a child process only (see `run_child`).
#[test]
#[ignore = "run by the tests above in a child process with 8 devices"]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "worlds" => {
            run_world(&[0, 1, 2], collectives_program);
            run_world(&[0, 1, 2, 3, 4, 5, 6, 7], collectives_program);
            run_world(&[0, 1, 2], every_dtype_program);
            run_world(&[0, 1, 2, 3, 4, 5, 6, 7], every_dtype_program);
        }
        "root-info" => {
            let devices: Vec<i32> = (0..8).collect();
            let comms = init_root_info(&devices);
            // Buffers on another device than the rank's are refused.
            let ctx1 = own_context(1);
            let other = dev_alloc(64);
            drop_context(ctx1);
            let ctx0 = own_context(0);
            // SAFETY: refused before the buffer is used.
            let code = unsafe {
                HcclAllReduce(
                    other,
                    other,
                    4,
                    HCCL_DATA_TYPE_FP32,
                    HCCL_REDUCE_SUM,
                    comms[0],
                    std::ptr::null_mut(),
                )
            };
            herr(
                code,
                HCCL_E_PARA,
                &[
                    "sendBuf",
                    "device memory of device 1",
                    "not device memory of device 0",
                ],
            );
            destroy_all(&comms);
            // Only rank 0 of two joins: HCCL_E_TIMEOUT after the
            // environment's 300 ms.
            let mut info = HcclRootInfo::default();
            let mut comm = std::ptr::null_mut();
            // SAFETY: info and comm are valid locations.
            unsafe {
                hok(HcclGetRootInfo(&mut info));
                herr(
                    HcclCommInitRootInfo(2, &info, 0, &mut comm),
                    HCCL_E_TIMEOUT,
                    &["ranks [1] never joined", "300 ms"],
                );
            }
            assert!(comm.is_null());
            // The same through an in-process root info (the fallback).
            let lonely = HcclRootInfo {
                internal: super::root_info::RootInfo::new_in_process()
                    .encode()
                    .map(|b| b as _),
            };
            // SAFETY: lonely and comm are valid locations.
            let code = unsafe { HcclCommInitRootInfo(2, &lonely, 1, &mut comm) };
            herr(code, HCCL_E_TIMEOUT, &["ranks [0] never joined", "300 ms"]);
            drop_context(ctx0);
            free(other);
        }
        "bad-timeout" => {
            let mut devs = [0i32];
            let mut comm = [std::ptr::null_mut()];
            init();
            // SAFETY: one device and one output slot.
            let code = unsafe { HcclCommInitAll(1, devs.as_mut_ptr(), comm.as_mut_ptr()) };
            herr(code, HCCL_E_PARA, &[super::TIMEOUT_ENV, "soon"]);
        }
        other => panic!("unknown child mode {other}"),
    }
}
