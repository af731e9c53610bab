//! Two processes on one machine form one communicator through the safe
//! API: this test process makes the [`RootInfo`] and is rank 0; it
//! re-executes this test binary as rank 1 (the `rank_one` body, selected
//! by `ASCEND_RT_TWO_PROCESS_ROOT`, which carries the root info's bytes in
//! hex). Both ranks run all-reduce (every reduction in f32, and every one
//! HCCL supports in bf16), all-to-all-v (uneven counts, some zero; then
//! all zero), reduce to each root (the non-root rank passing no receive
//! buffer) and scatter, and check the results against host computations
//! of both ranks' inputs.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ascend_rt::hccl::{Communicator, ReduceOp, RootInfo};
use ascend_rt::{Backend, Context, DeviceBuffer, DeviceRepr, Stream};
use half::bf16;

const ROOT_ENV: &str = "ASCEND_RT_TWO_PROCESS_ROOT";

fn init() {
    ascend_mock::hccl::set_default_timeout(Some(Duration::from_secs(30)));
    ascend_rt::init(Backend::Mock).expect("the mock backend initialises");
}

/// Rank `r`'s input element `i`: small integers, exact in bf16 for every
/// reduction over two ranks.
fn val(r: usize, i: usize) -> f32 {
    ((r * 3 + i * 5) % 7) as f32 - 3.0
}

fn reduce(op: ReduceOp, a: f32, b: f32) -> f32 {
    match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Prod => a * b,
        ReduceOp::Max => a.max(b),
        ReduceOp::Min => a.min(b),
    }
}

/// Elements rank `src` sends to rank `dst`; `zeros` makes every count 0.
fn v_count(src: usize, dst: usize, zeros: bool) -> usize {
    if zeros { 0 } else { [[0, 3], [5, 2]][src][dst] }
}

/// The program of rank `r` of 2.
fn rank_program(ctx: &Arc<Context>, comm: &Communicator, stream: &Arc<Stream>) {
    let r = comm.rank();
    assert_eq!(comm.size(), 2);
    let len = 1000;
    let x: Vec<f32> = (0..len).map(|i| val(r, i)).collect();
    for op in ReduceOp::ALL {
        let want: Vec<f32> = (0..len).map(|i| reduce(op, val(0, i), val(1, i))).collect();
        let send = DeviceBuffer::from_host(ctx, &x).unwrap();
        let mut recv = DeviceBuffer::<f32>::zeroed(ctx, len).unwrap();
        comm.all_reduce(&send, &mut recv, op, stream).unwrap();
        assert_eq!(recv.to_vec().unwrap(), want, "f32 {op:?} on rank {r}");

        // HCCL has no bf16 product; ascend-rt refuses it before the call.
        if !op.supports(bf16::DTYPE) {
            continue;
        }
        let xb: Vec<bf16> = x.iter().map(|v| bf16::from_f32(*v)).collect();
        let mut buf = DeviceBuffer::from_host(ctx, &xb).unwrap();
        comm.all_reduce_in_place(&mut buf, op, stream).unwrap();
        let wantb: Vec<bf16> = want.iter().map(|v| bf16::from_f32(*v)).collect();
        assert_eq!(buf.to_vec().unwrap(), wantb, "bf16 {op:?} on rank {r}");
    }
    for zeros in [false, true] {
        let send_counts: Vec<usize> = (0..2).map(|d| v_count(r, d, zeros)).collect();
        let recv_counts: Vec<usize> = (0..2).map(|s| v_count(s, r, zeros)).collect();
        // Tails that must stay untouched: one element after the parts sent,
        // two after the parts received.
        let data = |s: usize| -> Vec<f32> {
            let n: usize = (0..2).map(|d| v_count(s, d, zeros)).sum::<usize>() + 1;
            (0..n).map(|i| 100.0 * s as f32 + i as f32).collect()
        };
        let send = DeviceBuffer::from_host(ctx, &data(r)).unwrap();
        let recv_len = recv_counts.iter().sum::<usize>() + 2;
        let mut recv = DeviceBuffer::from_host(ctx, &vec![-1f32; recv_len]).unwrap();
        comm.all_to_all_v(&send, &send_counts, &mut recv, &recv_counts, stream)
            .unwrap();
        let mut want = Vec::new();
        for s in 0..2 {
            let start: usize = (0..r).map(|d| v_count(s, d, zeros)).sum();
            want.extend_from_slice(&data(s)[start..start + v_count(s, r, zeros)]);
        }
        want.extend([-1f32; 2]);
        assert_eq!(
            recv.to_vec().unwrap(),
            want,
            "all-to-all-v on rank {r}, zeros {zeros}"
        );
    }
    // Reduce to each root in turn; the non-root rank passes no buffer.
    for root in 0..2 {
        let send = DeviceBuffer::from_host(ctx, &x).unwrap();
        let mut recv = DeviceBuffer::from_host(ctx, &vec![-1f32; len]).unwrap();
        let out = (r == root).then(|| (&mut recv).into());
        comm.reduce(&send, out, ReduceOp::Max, root, stream)
            .unwrap();
        let want: Vec<f32> = if r == root {
            (0..len).map(|i| val(0, i).max(val(1, i))).collect()
        } else {
            vec![-1f32; len]
        };
        assert_eq!(recv.to_vec().unwrap(), want, "reduce to {root} on rank {r}");
    }
    // Scatter from rank 1: rank r gets elements r * len..(r + 1) * len.
    let whole: Vec<f32> = (0..2 * len).map(|i| i as f32).collect();
    let src = DeviceBuffer::from_host(ctx, &whole).unwrap();
    let mut part = DeviceBuffer::<f32>::zeroed(ctx, len).unwrap();
    let send = (r == 1).then(|| (&src).into());
    comm.scatter(send, &mut part, 1, stream).unwrap();
    assert_eq!(
        part.to_vec().unwrap(),
        whole[r * len..(r + 1) * len].to_vec(),
        "scatter on rank {r}"
    );
    comm.barrier(stream).unwrap();
    stream.synchronize().unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn two_processes_all_reduce_and_all_to_all_v() {
    init();
    let ctx = Context::new(0).unwrap();
    let root = RootInfo::new(&ctx).unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "rank_one", "--ignored", "--nocapture"])
        .env(ROOT_ENV, hex(root.as_bytes()));
    // Rank 1 runs while this thread runs rank 0.
    let child = std::thread::spawn(move || cmd.output().expect("the child process starts"));
    let comm = Communicator::init_rank(&root, 2, 0, &ctx).unwrap();
    let stream = ctx.new_stream().unwrap();
    rank_program(&ctx, &comm, &stream);
    comm.destroy().unwrap();
    let out = child.join().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rank 1 failed:\n{text}");
    assert!(text.contains("1 passed"), "rank 1 ran nothing:\n{text}");
}

/// Rank 1, in the child process started by the test above.
#[test]
#[ignore = "rank 1 of two_processes_all_reduce_and_all_to_all_v, run in a child process"]
fn rank_one() {
    let Ok(h) = std::env::var(ROOT_ENV) else {
        return;
    };
    init();
    let root = RootInfo::from_bytes(&unhex(&h)).unwrap();
    let ctx = Context::new(0).unwrap();
    let comm = Communicator::init_rank(&root, 2, 1, &ctx).unwrap();
    let stream = ctx.new_stream().unwrap();
    rank_program(&ctx, &comm, &stream);
    comm.destroy().unwrap();
}
