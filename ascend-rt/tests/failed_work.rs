//! End-to-end tests on the mock device: device work that fails on its
//! stream (a collective whose peer never joins, an operator whose input
//! values are refused when the task runs) must never let the host read the
//! memory it should have written as a result. Every host-side wait that
//! guards a read (`DeviceBuffer::to_vec`, `copy_to_host`, `Tensor::to_vec`,
//! `PinnedBuffer::as_slice`, `Event::synchronize`) returns the failure;
//! once reported, new work on the stream runs and reads normally. A host
//! function the stream skips after a failure is dropped with its stream,
//! not leaked.
//!
//! Tests that change the mock's global HCCL timeout take the `exclusive`
//! lock, and so do tests that need a stream's stored failure to stay theirs
//! or that make the runtime wait for the whole device: a device-wide wait
//! reports and clears every stream's stored failure (reads of failed output
//! still fail: the events recorded after the failure keep it). The others
//! take `shared`.

mod common;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use ascend_rt::hccl::{Communicator, ReduceOp};
use ascend_rt::ops::{self, GroupList};
use ascend_rt::{Device, DeviceBuffer, Error, PinnedBuffer, Stream, Tensor};

static LOCK: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    common::init();
    LOCK.read().unwrap_or_else(|p| p.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    common::init();
    LOCK.write().unwrap_or_else(|p| p.into_inner())
}

/// The HCCL timeout of a rank whose peer never joins, in these tests.
const JOIN_TIMEOUT: Duration = Duration::from_millis(200);

/// Two ranks on devices 0 and 1 with a stream each; rank 0 queues an
/// all-reduce into `recv` that rank 1 never joins, so it times out.
struct LonelyCollective {
    comms: Vec<Communicator>,
    stream: Arc<Stream>,
    /// Kept alive: dropping it waits for the collective that reads it, and
    /// that wait would report the failure (into the context) first.
    send: DeviceBuffer<f32>,
    recv: DeviceBuffer<f32>,
}

fn lonely_all_reduce() -> LonelyCollective {
    ascend_mock::hccl::set_default_timeout(Some(JOIN_TIMEOUT));
    let comms = Communicator::init_all(&[Device::new(0), Device::new(1)]).expect("HcclCommInitAll");
    ascend_mock::hccl::set_default_timeout(None);
    let ctx = comms[0].context().clone();
    let stream = ctx.new_stream().expect("stream");
    let send = DeviceBuffer::from_host(&ctx, &[1f32, 2.0, 3.0, 4.0]).unwrap();
    // SAFETY: the memory is left unwritten on purpose: only the collective
    // (which fails) would write it, and every read must then fail.
    let mut recv = unsafe { DeviceBuffer::<f32>::alloc(&ctx, 4) }.unwrap();
    comms[0]
        .all_reduce(&send, &mut recv, ReduceOp::Sum, &stream)
        .expect("the all-reduce is queued");
    LonelyCollective {
        comms,
        stream,
        send,
        recv,
    }
}

/// The error of a failed host read carries a device-side code and says
/// which task failed.
fn assert_task_failure(e: &Error, what: &str) {
    let text = e.to_string();
    assert!(
        matches!(e, Error::Acl { .. } | Error::Hccl { .. }),
        "{what}: {text}"
    );
    assert!(text.contains("failed"), "{what}: {text}");
}

#[test]
fn a_timed_out_collective_fails_the_read_of_its_receive_buffer() {
    let _g = exclusive();
    let LonelyCollective {
        comms,
        stream,
        send,
        mut recv,
    } = lonely_all_reduce();
    let err = recv
        .to_vec()
        .expect_err("the collective never wrote its receive buffer");
    assert_task_failure(&err, "to_vec");
    let text = err.to_string();
    assert!(
        text.contains("HCCL_E_TIMEOUT") || text.contains("timed out") || text.contains("timeout"),
        "the message names the HCCL failure: {text}"
    );
    // The same buffer stays unreadable: its only write failed.
    let mut host = [0f32; 4];
    assert_task_failure(
        &recv
            .copy_to_host(&mut host)
            .expect_err("still never written"),
        "copy_to_host",
    );
    assert_task_failure(&recv.to_vec().expect_err("still never written"), "to_vec");

    // Recovery: the failure was reported; new work on the stream runs and
    // its results read normally.
    recv.memset_async(0, &stream).unwrap();
    assert_eq!(recv.to_vec().unwrap(), vec![0.0; 4]);
    recv.copy_from_host(&[5.0, 6.0, 7.0, 8.0]).unwrap();
    assert_eq!(recv.to_vec().unwrap(), vec![5.0, 6.0, 7.0, 8.0]);
    stream.synchronize().unwrap();
    let ev = stream.record_event().unwrap();
    ev.synchronize().unwrap();
    drop((send, comms));
}

#[test]
fn an_event_after_a_timed_out_collective_reports_it() {
    let _g = exclusive();
    let c = lonely_all_reduce();
    let ev = c.stream.record_event().unwrap();
    let err = ev.synchronize().expect_err("the event follows failed work");
    assert_task_failure(&err, "Event::synchronize");
    // Asking again reports it again: the record stays failed.
    assert!(ev.synchronize().is_err());
    // The stream's own synchronize reports the failure too (once).
    assert_task_failure(
        &c.stream
            .synchronize()
            .expect_err("the stream holds the failure"),
        "Stream::synchronize",
    );
    c.stream.synchronize().unwrap();
    // A record after the report is clean.
    ev.record(&c.stream).unwrap();
    ev.synchronize().unwrap();
    // The receive buffer's write was never done: reading it still fails.
    assert!(c.recv.to_vec().is_err());
}

#[test]
fn dropping_a_buffer_a_failed_collective_read_reports_the_failure() {
    let _g = exclusive();
    let LonelyCollective {
        comms,
        stream: _stream,
        send,
        recv,
    } = lonely_all_reduce();
    let ctx = comms[0].context().clone();
    // The drop waits for the collective; the failure it finds cannot be
    // returned, so the context keeps it for its next call.
    drop(send);
    let err = ctx.check_err().expect_err("the drop recorded the failure");
    assert_task_failure(&err, "Context::check_err");
    ctx.check_err().unwrap();
    // The receive buffer is still refused: the failure was reported after
    // its write was queued.
    assert_task_failure(&recv.to_vec().expect_err("never written"), "to_vec");
}

#[test]
fn a_copy_of_failed_output_into_pinned_memory_is_not_readable() {
    let _g = exclusive();
    let c = lonely_all_reduce();
    let ctx = c.comms[0].context().clone();
    let mut pinned = PinnedBuffer::<f32>::zeroed(&ctx, 4).unwrap();
    c.recv.copy_to_pinned(&mut pinned, &c.stream).unwrap();
    assert_task_failure(
        &pinned.as_slice().expect_err("the copy follows failed work"),
        "PinnedBuffer::as_slice",
    );
    assert!(pinned.as_mut_slice().is_err());
    // A fresh copy of good data after the report reads normally.
    let good = DeviceBuffer::from_host(&ctx, &[9f32, 8.0, 7.0, 6.0]).unwrap();
    good.copy_to_pinned(&mut pinned, &c.stream).unwrap();
    assert_eq!(pinned.as_slice().unwrap(), &[9.0, 8.0, 7.0, 6.0]);
}

#[test]
fn another_stream_reading_failed_output_fails_too() {
    let _g = exclusive();
    let c = lonely_all_reduce();
    let ctx = c.comms[0].context().clone();
    let other = ctx.new_stream().unwrap();
    let mut copy = DeviceBuffer::<f32>::zeroed(&ctx, 4).unwrap();
    // Ordered after the collective through an event wait on `other`.
    copy.copy_from(&c.recv, &other).unwrap();
    assert_task_failure(
        &copy.to_vec().expect_err("its source was never written"),
        "to_vec of a copy",
    );
    // The failure reached `other` through its wait; the collective's own
    // stream still reports it as well.
    assert_task_failure(
        &c.stream
            .synchronize()
            .expect_err("the collective's stream failed"),
        "Stream::synchronize",
    );
    other.synchronize().unwrap();
}

/// A grouped matmul whose group list holds a negative count: the operator
/// is queued (the values live on the device) and fails when it runs.
fn failing_grouped_matmul(s: &Arc<Stream>) -> Tensor<f32> {
    let x = Tensor::from_slice(s, &[1f32; 4 * 2], &[4, 2]).unwrap();
    let w = Tensor::from_slice(s, &[1f32; 2 * 2 * 3], &[2, 2, 3]).unwrap();
    let counts = Tensor::from_slice(s, &[5i64, -1], &[2]).unwrap();
    ops::grouped_matmul(s, &x, &w, &counts, GroupList::Counts).expect("the launch is queued")
}

#[test]
fn an_operator_failing_on_the_stream_fails_the_read_of_its_output() {
    let _g = shared();
    let s = common::ctx().new_stream().unwrap();
    let y = failing_grouped_matmul(&s);
    let err = y.to_vec().expect_err("the operator never wrote its output");
    assert_task_failure(&err, "Tensor::to_vec");
    assert!(
        err.to_string().contains("negative"),
        "the message says why the operator failed: {err}"
    );
    assert!(y.to_vec().is_err());
    // Recovery: the same operator with a valid group list.
    let x = Tensor::from_slice(&s, &[1f32; 4 * 2], &[4, 2]).unwrap();
    let w = Tensor::from_slice(&s, &[1f32; 2 * 2 * 3], &[2, 2, 3]).unwrap();
    let counts = Tensor::from_slice(&s, &[3i64, 1], &[2]).unwrap();
    let y = ops::grouped_matmul(&s, &x, &w, &counts, GroupList::Counts).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![2.0; 4 * 3]);
}

#[test]
fn event_waits_and_queries_report_an_operator_failure() {
    let _g = shared();
    let s = common::ctx().new_stream().unwrap();
    let before = s.record_event().unwrap();
    let _y = failing_grouped_matmul(&s);
    let after = s.record_event().unwrap();
    before.synchronize().unwrap();
    assert_task_failure(
        &after.synchronize().expect_err("recorded after the failure"),
        "Event::synchronize",
    );
    assert!(after.is_complete().is_err(), "the status query reports it");
    assert!(s.synchronize().is_err());
    // Consumed by the stream's synchronize: later records are clean.
    let later = s.record_event().unwrap();
    later.synchronize().unwrap();
    assert!(later.is_complete().unwrap());
    // The failed event is still dropped cleanly: nothing is left recorded
    // in the context for the next call to report.
    drop(after);
    common::ctx().check_err().unwrap();
}

#[test]
fn pooled_blocks_of_a_failed_output_are_reused_cleanly() {
    let _g = shared();
    let s = common::ctx().new_stream().unwrap();
    let y = failing_grouped_matmul(&s);
    assert!(y.to_vec().is_err());
    // The failed output goes back to the pool and its block is reused for a
    // new tensor, which reads what was written into it.
    drop(y);
    let z = Tensor::from_slice(&s, &[3f32; 12], &[4, 3]).unwrap();
    assert_eq!(z.to_vec().unwrap(), vec![3.0; 12]);
    let zeros = Tensor::<f32>::zeros(&s, &[4, 3]).unwrap();
    assert_eq!(zeros.to_vec().unwrap(), vec![0.0; 12]);
    s.synchronize().unwrap();
    common::ctx().check_err().unwrap();
}

#[test]
fn a_timed_out_all_gather_into_a_pooled_buffer_fails_the_read() {
    // The shape of the expert-parallel MoE dispatch: counts all-gathered
    // into a pooled buffer, then read on the host.
    let _g = exclusive();
    ascend_mock::hccl::set_default_timeout(Some(JOIN_TIMEOUT));
    let comms = Communicator::init_all(&[Device::new(0), Device::new(1)]).expect("HcclCommInitAll");
    ascend_mock::hccl::set_default_timeout(None);
    let ctx = comms[0].context().clone();
    let s = ctx.new_stream().unwrap();
    let counts = DeviceBuffer::from_host(&ctx, &[3i64, 1, 4]).unwrap();
    // SAFETY: left unwritten on purpose: only the failing all-gather writes it.
    let mut all = unsafe { DeviceBuffer::<i64>::alloc_pooled(&s, 6) }.unwrap();
    comms[0].all_gather(&counts, &mut all, &s).unwrap();
    assert_task_failure(&all.to_vec().expect_err("never gathered"), "to_vec");
    // Reported once; the stream goes on.
    let again = counts.try_clone(&s).unwrap();
    assert_eq!(again.to_vec().unwrap(), vec![3, 1, 4]);
    drop((all, counts));
    s.synchronize().unwrap();
}

/// Puts `s` in stop-on-failure mode: after a failed task, the rest of its
/// queue is skipped.
fn stop_on_failure(s: &Stream) {
    let f = ascend_rt::api()
        .unwrap()
        .acl
        .aclrtSetStreamFailureMode()
        .unwrap();
    // SAFETY: a live stream of the bound context; a plain mode value.
    let code = unsafe { f(s.handle(), u64::from(ascend_sys::ACL_STOP_ON_FAILURE)) };
    assert_eq!(code, 0);
}

#[test]
fn a_host_function_the_runtime_skips_is_dropped_with_its_stream() {
    // Exclusive: another test's device-wide wait could clear the stored
    // failure before the stream reaches the host function, which would
    // then run.
    let _g = exclusive();
    let s = common::ctx().new_stream().unwrap();
    stop_on_failure(&s);
    let _y = failing_grouped_matmul(&s);
    // Queued behind the failure: the stream skips it.
    let witness = Arc::new(());
    let held = witness.clone();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    s.launch_host_fn(move || {
        let _held = held;
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    })
    .unwrap();
    assert!(s.synchronize().is_err(), "the operator failed");
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        Arc::strong_count(&witness),
        2,
        "kept while its stream lives"
    );
    drop(_y);
    drop(s);
    assert_eq!(
        Arc::strong_count(&witness),
        1,
        "the skipped host function (and what it captured) is dropped with its stream"
    );
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    // A host function that runs is consumed as before.
    let s = common::ctx().new_stream().unwrap();
    let held = witness.clone();
    s.launch_host_fn(move || drop(held)).unwrap();
    s.synchronize().unwrap();
    assert_eq!(Arc::strong_count(&witness), 1);
}

#[test]
fn a_failure_seen_through_another_stream_still_fails_reads_on_its_own() {
    // Exclusive: dropping `z` after its wait failed makes the runtime wait
    // for the whole device, which would clear other tests' stored failures.
    let _g = exclusive();
    let ctx = common::ctx();
    let (s1, s2) = (ctx.new_stream().unwrap(), ctx.new_stream().unwrap());
    // The operator fails on s1; s2 consumes its output (the tracker makes
    // s2 wait on an event of s1 recorded after the failure).
    let y = failing_grouped_matmul(&s1);
    let z = ops::add(&s2, &y, &y, 1.0).expect("queued");
    // Dropping z waits for its write on s2, which reports the failure.
    drop(z);
    // Whatever s2's failure made the runtime release or wait for, s1's own
    // failed output is still unreadable.
    assert_task_failure(
        &y.to_vec().expect_err("y was never written"),
        "Tensor::to_vec",
    );
    drop(y);
    let _ = ctx.check_err();
}
