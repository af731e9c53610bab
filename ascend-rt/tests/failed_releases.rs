//! Failed releases on the operator path, each made to happen on purpose
//! with `fault::fail_nth`: every failed release (or failed step a release
//! needs) leaves its own object and nothing else, and the leftovers are
//! counted once each ([`common::leaks`]), also when several of them point
//! into each other.
//!
//! [`leaked_descriptors_over_a_leaked_buffer_count_once`] is the case the
//! faulty soak (`tests/soak.rs`) met by chance: a buffer whose `aclrtFree`
//! failed, a tensor descriptor of it whose `aclDestroyTensor` failed, and
//! a matmul executor over it that could not be discarded (its
//! `aclSetAclOpExecutorRepeatable` failed after phase one, when taking the
//! workspace surfaced an error another thread's `Drop` had recorded). The
//! device reset's leak report names all three, and the descriptor and the
//! executor stay alive in the mock, so a count of report lines plus live
//! objects saw five objects for three failed calls.
//!
//! The tests share the device's reset (each checks the report of the reset
//! its own context's drop makes), so they run one at a time.

#![cfg(feature = "mock")]

mod common;

use std::sync::{Arc, Mutex, MutexGuard};

use ascend_mock::{fault, sanitizer};
use ascend_rt::aclnn::OpCall;
use ascend_rt::{Context, DeviceBuffer, Error, Stream, TensorMut, TensorRef, ops};
use ascend_sys::*;
use common::leaks::{self, Leftovers};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time, starting with no fault rules and no reports.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::init();
    fault::clear();
    sanitizer::take_reports();
    guard
}

/// Makes the next call of `api` fail.
fn fail_next(api: &str) {
    fault::fail_nth(
        api,
        fault::call_count(api) + 1,
        ACL_ERROR_RT_FAILURE as aclError,
    );
}

/// Which of `apis` were called and failed by a rule since tracing began
/// (one entry per failed call).
fn failed_calls(trace: &[fault::TracedCall], rules: &[(&'static str, u64)]) -> Vec<&'static str> {
    trace
        .iter()
        .filter(|c| rules.contains(&(c.api, c.nth)))
        .map(|c| c.api)
        .collect()
}

/// A context of its own with one stream and three 8 x 8 f32 buffers.
struct Setup {
    ctx: Arc<Context>,
    s: Arc<Stream>,
    a: DeviceBuffer<f32>,
    w: DeviceBuffer<f32>,
    out: DeviceBuffer<f32>,
}

fn setup() -> Setup {
    let ctx = Context::new(0).expect("device 0 opens");
    let s = ctx.new_stream().expect("stream");
    let a = DeviceBuffer::from_host(&ctx, &[0.5f32; 64]).expect("upload");
    let w = DeviceBuffer::from_host(&ctx, &[0.125f32; 64]).expect("upload");
    let out = DeviceBuffer::from_host(&ctx, &[0f32; 64]).expect("upload");
    Setup { ctx, s, a, w, out }
}

/// Drops everything (the context last: its drop resets the device, whose
/// leak check reports what is left) and collects the leftovers not alive
/// before the test.
fn finish(setup: Setup, before: &std::collections::HashSet<u64>) -> (Leftovers, Vec<String>) {
    let Setup { ctx, s, a, w, out } = setup;
    drop((a, w, out, s));
    let _ = ctx.check_err();
    assert_eq!(
        Arc::strong_count(&ctx),
        1,
        "the test holds the last reference"
    );
    drop(ctx);
    fault::clear();
    let reports = sanitizer::take_reports();
    let others: Vec<_> = reports
        .iter()
        .filter(|r| r.class != sanitizer::ReportClass::Leak)
        .collect();
    assert!(
        others.is_empty(),
        "memory errors on a release path: {others:#?}"
    );
    let messages = reports.iter().map(|r| r.message.clone()).collect();
    (leaks::leftovers(&reports, before), messages)
}

#[test]
fn leaked_descriptors_over_a_leaked_buffer_count_once() {
    let _serial = serial();
    let before = leaks::live_serials();
    let mut t = setup();
    let w_addr = t.w.as_ptr() as usize;
    fault::trace_calls(true);
    let mut rules = Vec::new();

    // 1. A matmul whose second descriptor (w's) is not destroyed: the
    //    operator ran, the failure is recorded in the context.
    let nth = fault::call_count("aclDestroyTensor") + 2;
    fault::fail_nth("aclDestroyTensor", nth, ACL_ERROR_RT_FAILURE as aclError);
    rules.push(("aclDestroyTensor", nth));
    {
        let av = TensorRef::new(&t.a, &[8, 8]).unwrap();
        let wv = TensorRef::new(&t.w, &[8, 8]).unwrap();
        let mut ov = TensorMut::new(&mut t.out, &[8, 8]).unwrap();
        ops::matmul_into(&t.s, &av, &wv, &mut ov).expect("the operator itself is queued");
    }
    let recorded = t
        .ctx
        .check_err()
        .expect_err("the failed destroy is recorded");
    assert_eq!(recorded.api(), Some("aclDestroyTensor"), "{recorded}");

    // 2. A matmul over w whose phase one succeeds, after which another
    //    thread's Drop records a failure in the context (done here by
    //    hand): taking the workspace returns that error, so phase two never
    //    runs and the executor must be discarded; making it repeatable
    //    fails, which leaves it (aclnn has no other way to release it).
    let api = ascend_rt::api().unwrap();
    let p1 = api.opapi.aclnnMatmulGetWorkspaceSize().unwrap();
    let p2 = api.opapi.aclnnMatmul().unwrap();
    let nth = fault::call_count("aclSetAclOpExecutorRepeatable") + 1;
    fault::fail_nth(
        "aclSetAclOpExecutorRepeatable",
        nth,
        ACL_ERROR_RT_FAILURE as aclError,
    );
    rules.push(("aclSetAclOpExecutorRepeatable", nth));
    let r = {
        let av = TensorRef::new(&t.a, &[8, 8]).unwrap();
        let wv = TensorRef::new(&t.w, &[8, 8]).unwrap();
        let mut ov = TensorMut::new(&mut t.out, &[8, 8]).unwrap();
        let mut call = OpCall::new(&t.s).unwrap();
        let (da, dw) = (call.input(&av).unwrap(), call.input(&wv).unwrap());
        let dout = call.output(&mut ov).unwrap();
        let ctx = t.ctx.clone();
        let phase1 = move |ws: *mut u64, ex: *mut *mut aclOpExecutor| {
            // SAFETY: the descriptors live in `call` until `run` returns;
            // the out-pointers are run's.
            let status = unsafe { p1(da, dw, dout, 0, ws, ex) };
            ctx.record_err(Error::InvalidArgument {
                api: "another thread's Drop",
                reason: "a release failed meanwhile".into(),
            });
            status
        };
        call.run("aclnnMatmulGetWorkspaceSize", phase1, "aclnnMatmul", p2)
    };
    let e = r.expect_err("the recorded error stops the launch");
    assert!(
        matches!(&e, Error::InvalidArgument { api, .. } if *api == "another thread's Drop"),
        "{e}"
    );

    // 3. w itself cannot be freed.
    let spare = DeviceBuffer::from_host(&t.ctx, &[0f32; 1]).unwrap();
    rules.push(("aclrtFree", fault::call_count("aclrtFree") + 1));
    fail_next("aclrtFree");
    drop(std::mem::replace(&mut t.w, spare));
    let recorded = t.ctx.check_err().expect_err("the failed free is recorded");
    assert_eq!(recorded.api(), Some("aclrtFree"), "{recorded}");

    let trace = fault::take_trace();
    fault::trace_calls(false);
    let (left, messages) = finish(t, &before);
    let failed = failed_calls(&trace, &rules);
    assert_eq!(
        failed,
        [
            "aclDestroyTensor",
            "aclSetAclOpExecutorRepeatable",
            "aclrtFree"
        ],
        "every rule fired once"
    );
    // The reset's report named the tensor and the executor, which the
    // mock still holds: five names, three objects.
    assert_eq!(left.named_twice, 2, "{messages:#?}");
    assert_eq!(left.total(), failed.len(), "{:#?}", left.lines);
    assert_eq!(
        (
            left.of("device"),
            left.of("aclTensor"),
            left.of("aclOpExecutor")
        ),
        (1, 1, 1),
        "{:#?}",
        left.lines
    );
    let data = format!("data {w_addr:#x}");
    assert!(
        left.lines
            .iter()
            .any(|l| l.starts_with("aclTensor") && l.contains(&data)),
        "the tensor left is w's: {:#?}",
        left.lines
    );
    assert!(
        left.lines
            .iter()
            .any(|l| l.starts_with("aclOpExecutor") && l.contains("of aclnnMatmul")),
        "the executor left is the matmul's: {:#?}",
        left.lines
    );
    assert_eq!(leaks::destroy_live_objects(&before), 2);
    assert_eq!(leaks::leftovers(&[], &before).total(), 0);
}

/// A prepared matmul whose `aclDestroyAclOpExecutor` fails leaves the
/// executor alone: its descriptors and workspace are still released.
#[test]
fn prepared_executor_whose_destroy_fails_leaves_only_itself() {
    let _serial = serial();
    let before = leaks::live_serials();
    let mut t = setup();
    let prepared = {
        let av = TensorRef::new(&t.a, &[8, 8]).unwrap();
        let wv = TensorRef::new(&t.w, &[8, 8]).unwrap();
        let mut ov = TensorMut::new(&mut t.out, &[8, 8]).unwrap();
        let mut p = ops::prepare_matmul(&t.s, &av, &wv, &mut ov).expect("prepared");
        p.run(&t.s, &[&av, &wv], &mut [&mut ov]).expect("runs");
        p
    };
    fail_next("aclDestroyAclOpExecutor");
    drop(prepared);
    let recorded = t
        .ctx
        .check_err()
        .expect_err("the failed destroy is recorded");
    assert_eq!(
        recorded.api(),
        Some("aclDestroyAclOpExecutor"),
        "{recorded}"
    );
    assert_eq!(t.out.to_vec().unwrap(), vec![0.5f32; 64], "the product ran");
    let (left, _) = finish(t, &before);
    assert_eq!(left.total(), 1, "{:#?}", left.lines);
    assert_eq!(left.of("aclOpExecutor"), 1, "{:#?}", left.lines);
    assert_eq!(leaks::destroy_live_objects(&before), 1);
}

/// `prepare` whose `aclSetAclOpExecutorRepeatable` fails returns that
/// error and leaves only the single-use executor (no call releases one
/// whose phase two does not run); the descriptors are destroyed.
#[test]
fn prepare_whose_repeatable_fails_leaves_only_the_executor() {
    let _serial = serial();
    let before = leaks::live_serials();
    let mut t = setup();
    fail_next("aclSetAclOpExecutorRepeatable");
    let r = {
        let av = TensorRef::new(&t.a, &[8, 8]).unwrap();
        let wv = TensorRef::new(&t.w, &[8, 8]).unwrap();
        let mut ov = TensorMut::new(&mut t.out, &[8, 8]).unwrap();
        ops::prepare_matmul(&t.s, &av, &wv, &mut ov)
    };
    let e = r.expect_err("the injected failure is returned");
    assert_eq!(e.api(), Some("aclSetAclOpExecutorRepeatable"), "{e}");
    let (left, _) = finish(t, &before);
    assert_eq!(left.total(), 1, "{:#?}", left.lines);
    assert_eq!(left.of("aclOpExecutor"), 1, "{:#?}", left.lines);
    assert_eq!(leaks::destroy_live_objects(&before), 1);
}

#[test]
fn serial_of_reads_the_creation_number() {
    let line = "aclTensor 0x55d0 (data 0x7f00, storage of 256 bytes) created by aclCreateTensor (object #6948)";
    assert_eq!(leaks::serial_of(line), Some(6948));
    let block =
        "device buffer on device 0 0x7f00 of 256 bytes (256 charged) allocated by aclrtMalloc";
    assert_eq!(leaks::serial_of(block), None);
    assert_eq!(
        leaks::serial_of("aclTensor 0x1 created by x (object #)"),
        None
    );
}
