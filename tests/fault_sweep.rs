//! The runtime under injected faults: every call a MoE forward pass makes to
//! the (mock) C API is failed in turn, and the pass must end in an error
//! naming that call, without a panic or a hang, and leave nothing alive on the
//! device once its objects are dropped.
//!
//! One *pass* is what a user does end to end: open device 0 ([`Context::new`]),
//! make a stream, upload a tiny layer's weights and the tokens, run
//! [`MoeLayer::forward`], read `y` and the chosen experts back to the host,
//! drop everything, empty the pool, check the context's recorded errors and
//! drop the context (whose `aclrtResetDevice` releases the device and runs the
//! mock's leak check). A traced clean pass (`fault::trace_calls`) lists the
//! calls in order; then for each call `api` (its `n`-th of that API) a fresh
//! pass runs with `fault::fail_nth(api, n, code)`, in the same process, with
//! the device fully released between runs so each run starts from nothing.
//! Rules are per API rather than by position among all calls, so a call that
//! the pass makes a varying number of times elsewhere cannot shift the target.
//!
//! A second pass, over two streams, covers what the MoE pass does not:
//! the access tracker's cross-stream waits (`aclrtStreamWaitEvent`, marker
//! events and their queries), a repeatable executor run twice
//! (`aclSetAclOpExecutorRepeatable`, `aclDestroyAclOpExecutor`), a host
//! function and a copy into pinned memory.
//!
//! Expected outcome of a run: `Err`, whose text names the failed API and says
//! the failure was injected, and no sanitizer report. Two failures are
//! deliberately not returned, and the pass must then return `Ok` with the
//! clean pass's values:
//! - `aclrtResetDevice` in `Context`'s `Drop`: nothing is left to return the
//!   error to, so it goes to stderr; the test then releases the device itself.
//! - `aclrtQueryEventStatus`: a stream asks whether the events it waited on
//!   have passed only to forget them early; a failed query keeps them a
//!   little longer, which costs nothing but memory.
//!
//! Anything else that returns `Ok` fails the test.
//!
//! After every run the device reset's leak report must be absent, and no
//! aclnn descriptor or executor may be left in the mock's registry and no
//! pinned host block alive (the reset's leak check sees descriptors only
//! while their memory lives, and pinned memory belongs to no device, so both
//! are read from the mock directly). When the failed call is one that releases an
//! object (`aclrtFree`, `aclDestroyTensor`, `aclrtDestroyEvent`, ...), the
//! mock did not release it, so at most that one object may be left (none
//! when `ascend-rt` retries, as the pool does at the context's end); the
//! test then destroys a leftover descriptor itself, so the next run starts
//! clean. The same single leftover is allowed when
//! `aclSetAclOpExecutorRepeatable` fails right after phase one: the
//! executor is then a single-use one that only its phase two would
//! release, and `ascend-rt` does not run an operator the caller only
//! prepared.
//!
//! Device faults: every task of device work a pass queues (copies,
//! memsets, operators; traced with `fault::trace_tasks`) is failed in turn
//! with `fault::fail_nth_task`, which lets the queueing call succeed and
//! fails the task when the stream reaches it, as an AI Core exception does.
//! The pass must end in an error that names the task's API and says the
//! failure was injected, with no report and nothing left alive: no
//! release fails here, so no leftover is allowed.
//!
//! A watchdog aborts the process when a run takes longer than
//! [`RUN_LIMIT`]. Panics are not caught: one fails the test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ascend::moe::{
    Gating, GroupSelect, MoeConfig, MoeLayer, MoeWeights, max_rel_err, moe_reference, random_tokens,
};
use ascend_mock::fault::{self, TracedCall, TracedTask};
use ascend_mock::sanitizer::{self, Report, ReportClass};
use ascend_mock::{AclnnLiveObject, AclnnObjectKind};
use ascend_rt::{Backend, Context, DeviceBuffer, Error, PinnedBuffer, Tensor, ops};
use ascend_sys::*;
use ndarray::Array2;

/// The longest one run may take before the watchdog aborts the process.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The fault state and the device are process-wide: the tests here take
/// turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    ascend_rt::init(Backend::Mock).expect("the mock backend initialises");
    sanitizer::set_mode(sanitizer::Mode::Report);
    sanitizer::set_leak_policy(sanitizer::LeakPolicy::Report);
    fault::clear();
    sanitizer::take_reports();
    guard
}

/// Aborts the process when a run is not disarmed within its limit. A test
/// cannot be failed from another thread, and a hung run would never reach
/// its own assertion, so the watchdog prints what hung and aborts.
struct Watchdog {
    armed: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Watchdog {
    fn new() -> Watchdog {
        Watchdog {
            armed: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Arms the watchdog for one run labelled `what`.
    fn arm(&self, what: String) -> Disarm<'_> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.armed.store(true, Ordering::SeqCst);
        let (armed, current) = (self.armed.clone(), self.generation.clone());
        let deadline = Instant::now() + RUN_LIMIT;
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                if !armed.load(Ordering::SeqCst) || current.load(Ordering::SeqCst) != generation {
                    return;
                }
            }
            if armed.load(Ordering::SeqCst) && current.load(Ordering::SeqCst) == generation {
                eprintln!("watchdog: {what} did not finish within {RUN_LIMIT:?}");
                std::process::abort();
            }
        });
        Disarm(self)
    }
}

struct Disarm<'a>(&'a Watchdog);

impl Drop for Disarm<'_> {
    fn drop(&mut self) {
        self.0.armed.store(false, Ordering::SeqCst);
    }
}

/// The tiniest layers that run every operator of a pass: sigmoid gating with
/// groups and a correction bias (`MoeGatingTopK`), and softmax gating with a
/// scaling factor (`MoeGatingTopKSoftmax` then `Mul`); both with a shared
/// expert (matmuls and SwiGLU), routing, grouped matmuls and finalize.
fn tiny_configs() -> [MoeConfig; 2] {
    let grouped = MoeConfig {
        name: "tiny-grouped",
        hidden: 8,
        n_routed_experts: 4,
        top_k: 2,
        n_shared_experts: 1,
        moe_intermediate: 4,
        gating: Gating::SigmoidGrouped {
            n_group: 2,
            topk_group: 1,
            group_select: GroupSelect::SumTop2,
            scaling: 2.5,
        },
        tokens: 3,
        published_width: None,
    };
    let softmax = MoeConfig {
        name: "tiny-softmax",
        gating: Gating::Softmax {
            normalize: false,
            scaling: 1.5,
        },
        ..grouped
    };
    [grouped, softmax]
}

/// What a pass reads back, flattened (compared exactly between runs).
type Values = Vec<f32>;

/// The outcome of one pass, with the context as a weak reference, so that
/// the caller can check that nothing kept it alive.
type Outcome = (Result<Values, Error>, Weak<Context>);

/// Runs `body` as one pass (see the module docs): opens device 0, runs it
/// (everything it made is dropped when it returns), empties the pool,
/// returns the context's recorded errors and drops the context.
fn run_pass(body: impl FnOnce(&Arc<Context>) -> Result<Values, Error>) -> Outcome {
    let ctx = match Context::new(0) {
        Ok(c) => c,
        Err(e) => return (Err(e), Weak::new()),
    };
    let weak = Arc::downgrade(&ctx);
    let r = body(&ctx).and_then(|out| {
        ctx.pool().empty_cache()?;
        ctx.check_err()?;
        Ok(out)
    });
    drop(ctx);
    (r, weak)
}

/// The MoE pass: upload, forward, read `y` and the chosen experts back
/// (as `y` followed by the expert ids).
fn moe_pass(weights: &MoeWeights, x: &Array2<f32>) -> Outcome {
    run_pass(|ctx| {
        let stream = ctx.new_stream()?;
        let layer = MoeLayer::<f32>::new(&stream, weights)?;
        let xd = Tensor::from_array(&stream, x.view())?;
        let out = layer.forward(&stream, &xd)?;
        let mut values = out.y.to_vec()?;
        values.extend(out.expert_idx.to_vec()?.into_iter().map(|e| e as f32));
        Ok(values)
    })
}

/// The pipeline's inputs, 4 x 4 each.
fn pipeline_inputs() -> (Vec<f32>, Vec<f32>) {
    let a = (0..16).map(|i| (i as f32 - 7.5) / 8.0).collect();
    let b = (0..16)
        .map(|i| ((i * 5 % 16) as f32 - 8.0) / 16.0)
        .collect();
    (a, b)
}

/// A pass over two streams that exercises what the MoE pass does not:
/// cross-stream waits of the access tracker (events recorded on one
/// stream and waited on by the other), a repeatable executor
/// ([`ascend_rt::aclnn::PreparedOp`]) run twice, a host function, and a
/// copy into pinned memory. Computes `out = (a + b/2) @ b + a` and returns
/// it with the host function's flag (1.0 once it ran), then `a` again,
/// staged through a pinned block that is dropped while its copy is queued.
fn pipeline_pass() -> Outcome {
    let (ha, hb) = pipeline_inputs();
    run_pass(|ctx| {
        let (s1, s2) = (ctx.new_stream()?, ctx.new_stream()?);
        let a = Tensor::from_slice(&s1, &ha, &[4, 4])?;
        let b = Tensor::from_slice(&s1, &hb, &[4, 4])?;
        let sum = ops::add(&s1, &a, &b, 0.5)?;
        // On the second stream: waits for the first stream's writes.
        let prod = ops::matmul(&s2, &sum, &b)?;
        let mut out = Tensor::<f32>::zeros(&s1, &[4, 4])?;
        let mut op = ops::prepare_add(&s1, &prod, &a, 1.0, &mut out)?;
        op.run(&s1, &[&prod, &a], &mut [&mut out])?;
        op.run(&s1, &[&prod, &a], &mut [&mut out])?;
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        s2.launch_host_fn(move || flag.store(true, Ordering::SeqCst))?;
        let mut pinned = PinnedBuffer::<f32>::zeroed(ctx, 16)?;
        out.buffer().copy_to_pinned(&mut pinned, &s2)?;
        let mut values = pinned.as_slice()?.to_vec();
        s2.synchronize()?;
        values.push(if ran.load(Ordering::SeqCst) { 1.0 } else { 0.0 });
        // A pinned block dropped while a copy from it is queued: its release
        // waits for that copy.
        let mut staged = PinnedBuffer::<f32>::zeroed(ctx, 16)?;
        staged.as_mut_slice()?.copy_from_slice(&ha);
        let mut back = DeviceBuffer::<f32>::zeroed(ctx, 16)?;
        back.copy_from_pinned(&staged, &s2)?;
        drop(staged);
        values.extend(back.to_vec()?);
        Ok(values)
    })
}

/// What `pipeline_pass` must return, computed on the host.
fn pipeline_expected() -> Values {
    let (a, b) = pipeline_inputs();
    let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + 0.5 * y).collect();
    let mut out = vec![0f32; 16];
    for i in 0..4 {
        for j in 0..4 {
            let p: f32 = (0..4).map(|k| sum[i * 4 + k] * b[k * 4 + j]).sum();
            out[i * 4 + j] = p + a[i * 4 + j];
        }
    }
    out.push(1.0);
    out.extend(a);
    out
}

/// The code a failure of `api` gets: CANN's code for that kind of call.
fn specific_code(api: &str) -> aclError {
    let code = match api {
        "aclrtMalloc" | "aclrtMallocHost" => ACL_ERROR_RT_MEMORY_ALLOCATION,
        "aclrtFree" | "aclrtFreeHost" => ACL_ERROR_RT_MEMORY_FREE,
        "aclrtCreateStream" | "aclrtCreateStreamWithConfig" => ACL_ERROR_RT_NO_STREAM_RESOURCE,
        "aclrtCreateEvent" | "aclrtCreateEventWithFlag" | "aclrtCreateEventExWithFlag" => {
            ACL_ERROR_RT_NO_EVENT_RESOURCE
        }
        "aclrtSynchronizeStream" | "aclrtSynchronizeEvent" | "aclrtSynchronizeDevice" => {
            ACL_ERROR_RT_TASK_TIMEOUT
        }
        "aclrtSetDevice" => ACL_ERROR_RT_NO_DEVICE,
        "aclrtGetCurrentContext" | "aclrtSetCurrentContext" => ACL_ERROR_RT_CONTEXT_NULL,
        a if a.starts_with("aclnn") && a.ends_with("GetWorkspaceSize") => {
            ACLNN_ERR_PARAM_INVALID as aclError
        }
        a if a.starts_with("aclnn") => ACLNN_ERR_RUNTIME_ERROR as aclError,
        a if a.starts_with("aclDestroy") || a.starts_with("aclCreate") => {
            ACLNN_ERR_INNER_NULLPTR as aclError
        }
        _ => ACL_ERROR_RT_INTERNAL_ERROR,
    };
    code as aclError
}

/// Calls that release an object: when one fails, that object stays alive.
fn releases_an_object(api: &str) -> bool {
    matches!(
        api,
        "aclrtFree"
            | "aclrtFreeHost"
            | "aclrtDestroyStream"
            | "aclrtDestroyStreamForce"
            | "aclrtDestroyEvent"
            | "aclrtDestroyContext"
    ) || api.starts_with("aclDestroy")
}

/// Failures `ascend-rt` deliberately does not return (see the module
/// docs).
fn tolerated(api: &str) -> bool {
    matches!(api, "aclrtResetDevice" | "aclrtQueryEventStatus")
}

/// Calls whose failure leaves one object that no documented call can
/// release (see the module docs).
fn strands_an_object(api: &str) -> bool {
    api == "aclSetAclOpExecutorRepeatable"
}

/// How many objects a leak report lists (one line each after the first).
fn leaked_objects(r: &Report) -> usize {
    r.message
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// What the device reset's leak check cannot see, because it is not tied
/// to a device: the aclnn descriptors and executors alive in the mock (list
/// members aside) and the pinned host blocks. Described, and released so
/// that the next run starts clean.
fn take_leftovers() -> Vec<String> {
    let api = ascend_rt::api().expect("the backend is up");
    let mut left = Vec::new();
    for block in ascend_mock::memory::live_blocks(Some(ascend_mock::memory::MemKind::PinnedHost)) {
        let free = api.acl.aclrtFreeHost().expect("aclrtFreeHost resolves");
        // SAFETY: a live pinned block that nothing of this test uses any more.
        let code = unsafe { free(block.base as *mut std::ffi::c_void) };
        left.push(format!(
            "pinned block {:#x} of {} bytes made by {:?} (freed by the test: {code})",
            block.base, block.requested, block.origin
        ));
    }
    let live: Vec<AclnnLiveObject> = ascend_mock::aclnn_live_objects()
        .into_iter()
        .filter(|o| o.owner.is_none())
        .collect();
    left.extend(live.iter().map(|o| {
        let p = o.address as *mut std::ffi::c_void;
        // SAFETY: `p` is a live object of the kind the registry names,
        // which nothing of this test uses any more.
        let status = unsafe {
            match o.kind {
                AclnnObjectKind::Tensor => api.nnopbase.aclDestroyTensor().map(|f| f(p.cast())),
                AclnnObjectKind::TensorList => {
                    api.nnopbase.aclDestroyTensorList().map(|f| f(p.cast()))
                }
                AclnnObjectKind::Scalar => api.nnopbase.aclDestroyScalar().map(|f| f(p.cast())),
                AclnnObjectKind::IntArray => api.nnopbase.aclDestroyIntArray().map(|f| f(p.cast())),
                AclnnObjectKind::Executor => {
                    api.nnopbase
                        .aclSetAclOpExecutorRepeatable()
                        .and_then(|rep| {
                            rep(p.cast());
                            api.nnopbase.aclDestroyAclOpExecutor().map(|f| f(p.cast()))
                        })
                }
                _ => Ok(-1),
            }
        };
        format!(
            "{} {:#x} made by {} (destroyed by the test: {status:?})",
            o.kind.name(),
            o.address,
            o.created_by
        )
    }));
    left
}

/// Gives back the device reference a failed `aclrtResetDevice` kept, so the
/// next run starts from a released device (and the leak check runs now).
fn release_device_reference() {
    let api = ascend_rt::api().expect("the backend is up");
    let reset = api
        .acl
        .aclrtResetDevice()
        .expect("aclrtResetDevice resolves");
    // SAFETY: device 0 exists and the failed reset left one reference of
    // the dropped context on it; nothing of this test uses it any more.
    let code = unsafe { reset(0) };
    assert_eq!(code, ACL_SUCCESS, "releasing device 0 again");
}

/// One pass to sweep: how to run it, its clean result, its calls and its
/// tasks of device work.
struct Sweep<'a> {
    name: &'static str,
    pass: &'a dyn Fn() -> Outcome,
    clean: Values,
    trace: Vec<TracedCall>,
    tasks: Vec<TracedTask>,
}

/// Runs `pass` clean, traced; `check` judges its result against the host.
fn prepare<'a>(
    name: &'static str,
    pass: &'a dyn Fn() -> Outcome,
    check: impl FnOnce(&[f32]),
    watchdog: &Watchdog,
) -> Sweep<'a> {
    fault::clear();
    fault::trace_calls(true);
    fault::trace_tasks(true);
    let (r, weak) = {
        let _d = watchdog.arm(format!("{name}: the traced clean pass"));
        pass()
    };
    let trace = fault::take_trace();
    let tasks = fault::take_task_trace();
    fault::trace_calls(false);
    fault::trace_tasks(false);
    let clean = r.unwrap_or_else(|e| panic!("{name}: the clean pass fails: {e}"));
    assert!(
        weak.upgrade().is_none(),
        "{name}: the context outlived the pass"
    );
    check(&clean);
    let reports = sanitizer::take_reports();
    assert!(
        reports.is_empty(),
        "{name}: the clean pass was reported: {reports:#?}"
    );
    let live = take_leftovers();
    assert!(
        live.is_empty(),
        "{name}: the clean pass left objects: {live:#?}"
    );
    assert_eq!(trace.len() as u64, fault::call_count("*"));
    assert_eq!(tasks.len() as u64, fault::task_count("*"));
    Sweep {
        name,
        pass,
        clean,
        trace,
        tasks,
    }
}

/// Checks a MoE pass's values (`y`, then the experts) against the host
/// reference.
fn moe_check(weights: &MoeWeights, x: &Array2<f32>) -> impl FnOnce(&[f32]) {
    let reference = moe_reference(weights, x).expect("reference");
    let name = weights.config().name;
    move |values: &[f32]| {
        let n = reference.y.len();
        let y = Array2::from_shape_vec(reference.y.raw_dim(), values[..n].to_vec())
            .expect("y has the reference's shape");
        let experts: Vec<i32> = values[n..].iter().map(|&e| e as i32).collect();
        assert_eq!(
            experts,
            reference.experts.iter().copied().collect::<Vec<_>>(),
            "{name}: routing differs from the reference"
        );
        let err = max_rel_err(&y, &reference.y).expect("same shapes");
        assert!(err < 1e-4, "{name}: y differs from the reference by {err}");
    }
}

fn pipeline_check(values: &[f32]) {
    let want = pipeline_expected();
    assert_eq!(values.len(), want.len());
    for (i, (g, w)) in values.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5,
            "pipeline element {i}: {g}, expected {w}"
        );
    }
}

/// What the injected runs did, for the summary line.
#[derive(Debug, Default)]
struct Tally {
    errors: usize,
    tolerated: usize,
    one_object_kept: usize,
}

/// One injected run; returns a description of what went wrong, if anything.
fn injected_run(
    s: &Sweep,
    call: &TracedCall,
    code: aclError,
    watchdog: &Watchdog,
    tally: &mut Tally,
) -> Option<String> {
    fault::clear();
    sanitizer::take_reports();
    fault::fail_nth(call.api, call.nth, code);
    let label = format!(
        "{} #{} ({} of all calls) failing with {code}",
        call.api, call.nth, call.total
    );
    let (r, weak) = {
        let _d = watchdog.arm(format!("{}: {label}", s.name));
        (s.pass)()
    };
    let fired = fault::call_count(call.api) >= call.nth;
    let mut problems = Vec::new();
    if weak.upgrade().is_some() {
        problems.push("the context outlived the pass (something kept it)".to_string());
    }
    if call.api == "aclrtResetDevice" {
        release_device_reference();
    }
    fault::clear();
    match &r {
        Err(_) => tally.errors += 1,
        Ok(_) => tally.tolerated += 1,
    }
    match &r {
        Err(e) => {
            let text = e.to_string();
            if !text.contains(call.api) || !text.contains("injected failure") {
                problems.push(format!("the error does not name the failed call: {text}"));
            }
        }
        Ok(out) if tolerated(call.api) => {
            if *out != s.clean {
                problems.push("a tolerated failure changed the result".to_string());
            }
        }
        Ok(_) if !fired => problems.push("the call was never reached".to_string()),
        Ok(_) => problems.push("the pass succeeded although the call failed".to_string()),
    }
    let reports = sanitizer::take_reports();
    let live = take_leftovers();
    let may_leak_one = releases_an_object(call.api) || strands_an_object(call.api);
    let leaked = reports
        .iter()
        .filter(|rep| rep.class == ReportClass::Leak)
        .map(leaked_objects)
        .sum::<usize>()
        + live.len();
    let others: Vec<&Report> = reports
        .iter()
        .filter(|rep| rep.class != ReportClass::Leak)
        .collect();
    if !others.is_empty() {
        problems.push(format!("reports: {others:#?}"));
    }
    if leaked == 1 && may_leak_one {
        tally.one_object_kept += 1;
    }
    if leaked > usize::from(may_leak_one) {
        problems.push(format!(
            "{leaked} objects leaked: {:#?}; left in the mock: {live:#?}",
            reports.iter().map(|r| &r.message).collect::<Vec<_>>()
        ));
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{}: {label}: {}", s.name, problems.join("; ")))
    }
}

/// Sweeps every call of `sweep` with two codes each; returns the number of
/// injection points and appends what went wrong to `failures`.
fn sweep_all(
    sweep: &Sweep<'_>,
    watchdog: &Watchdog,
    tally: &mut Tally,
    failures: &mut Vec<String>,
) -> usize {
    let points: Vec<&TracedCall> = sweep.trace.iter().filter(|c| c.injectable).collect();
    let unreachable: Vec<&str> = sweep
        .trace
        .iter()
        .filter(|c| !c.injectable)
        .map(|c| c.api)
        .collect();
    let mut apis: Vec<&str> = points.iter().map(|c| c.api).collect();
    apis.sort_unstable();
    apis.dedup();
    println!(
        "{}: {} calls, {} injection points over {} APIs ({apis:?}); without an error channel: {unreachable:?}",
        sweep.name,
        sweep.trace.len(),
        points.len(),
        apis.len()
    );
    let mut covered = 0usize;
    for call in &points {
        for code in [specific_code(call.api), ACL_ERROR_RT_FAILURE as aclError] {
            if let Some(problem) = injected_run(sweep, call, code, watchdog, tally) {
                failures.push(problem);
            }
        }
        covered += 1;
    }
    // Every call the pass makes is an injection point (calls without an
    // error channel cannot fail; none is made by these passes).
    assert_eq!(covered + unreachable.len(), sweep.trace.len());
    covered
}

fn report_sweep(what: &str, points: usize, start: Instant, tally: &Tally, failures: &[String]) {
    println!(
        "{what}: {points} injection points, 2 codes each, in {:.1?}: \
         {} runs failed with the injected call's error, {} tolerated (Ok, same result), \
         {} left the one object whose release failed",
        start.elapsed(),
        tally.errors,
        tally.tolerated,
        tally.one_object_kept
    );
    assert!(
        failures.is_empty(),
        "{} failing runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_call_of_a_moe_pass_can_fail_cleanly() {
    let _serial = serial();
    let watchdog = Watchdog::new();
    let start = Instant::now();
    let mut total_points = 0usize;
    let mut failures = Vec::new();
    let mut tally = Tally::default();
    for config in tiny_configs() {
        let weights = MoeWeights::random(&config, 11).expect("weights");
        let x = random_tokens(&config, 12);
        let pass = || moe_pass(&weights, &x);
        let sweep = prepare(config.name, &pass, moe_check(&weights, &x), &watchdog);
        total_points += sweep_all(&sweep, &watchdog, &mut tally, &mut failures);
        // The runtime recovers: a clean pass after the sweep is right again.
        let again = prepare(config.name, &pass, moe_check(&weights, &x), &watchdog);
        assert_eq!(
            again.clean, sweep.clean,
            "{}: the pass after the sweep",
            config.name
        );
    }
    report_sweep("MoE fault sweep", total_points, start, &tally, &failures);
}

#[test]
fn every_call_of_a_two_stream_pipeline_can_fail_cleanly() {
    let _serial = serial();
    let watchdog = Watchdog::new();
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut tally = Tally::default();
    let sweep = prepare(
        "two-stream pipeline",
        &pipeline_pass,
        pipeline_check,
        &watchdog,
    );
    let points = sweep_all(&sweep, &watchdog, &mut tally, &mut failures);
    let again = prepare(
        "two-stream pipeline",
        &pipeline_pass,
        pipeline_check,
        &watchdog,
    );
    assert_eq!(again.clean, sweep.clean, "the pipeline after the sweep");
    report_sweep("pipeline fault sweep", points, start, &tally, &failures);
}

/// Fails each task of device work of `sweep` in turn on the device (see
/// the module docs); returns the number of tasks and what went wrong.
fn fail_every_task(sweep: &Sweep<'_>, watchdog: &Watchdog) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    for task in &sweep.tasks {
        fault::clear();
        sanitizer::take_reports();
        fault::fail_nth_task(task.api, task.nth, ACL_ERROR_RT_AICORE_EXCEPTION);
        let label = format!(
            "{}: task {} of {} ({} #{}) failing on the device",
            sweep.name,
            task.total,
            sweep.tasks.len(),
            task.api,
            task.nth
        );
        let (r, weak) = {
            let _d = watchdog.arm(label.clone());
            (sweep.pass)()
        };
        let fired = fault::task_count(task.api) >= task.nth;
        fault::clear();
        let mut problems = Vec::new();
        if weak.upgrade().is_some() {
            problems.push("the context outlived the pass".to_string());
        }
        match r {
            Err(e) => {
                let text = e.to_string();
                if !text.contains(task.api)
                    || !text.contains("injected task failure")
                    || !text.contains("507015")
                {
                    problems.push(format!("the error does not name the failed task: {text}"));
                }
            }
            Ok(_) if !fired => problems.push("the task was never queued".to_string()),
            Ok(_) => problems.push("the pass succeeded although a task failed".to_string()),
        }
        let reports = sanitizer::take_reports();
        if !reports.is_empty() {
            problems.push(format!("reports: {reports:#?}"));
        }
        let live = take_leftovers();
        if !live.is_empty() {
            problems.push(format!("objects left: {live:#?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{label}: {}", problems.join("; ")));
        }
    }
    let mut apis: Vec<&str> = sweep.tasks.iter().map(|t| t.api).collect();
    apis.sort_unstable();
    apis.dedup();
    println!(
        "{}: {} tasks of device work over {} APIs ({apis:?}), each failed on the device",
        sweep.name,
        sweep.tasks.len(),
        apis.len()
    );
    (sweep.tasks.len(), failures)
}

#[test]
fn every_task_of_a_pass_can_fail_on_the_device_cleanly() {
    let _serial = serial();
    let watchdog = Watchdog::new();
    let start = Instant::now();
    let mut total = 0usize;
    let mut failures = Vec::new();
    for config in tiny_configs() {
        let weights = MoeWeights::random(&config, 11).expect("weights");
        let x = random_tokens(&config, 12);
        let pass = || moe_pass(&weights, &x);
        let sweep = prepare(config.name, &pass, moe_check(&weights, &x), &watchdog);
        let (n, f) = fail_every_task(&sweep, &watchdog);
        total += n;
        failures.extend(f);
        let again = prepare(config.name, &pass, moe_check(&weights, &x), &watchdog);
        assert_eq!(
            again.clean, sweep.clean,
            "{}: after the task sweep",
            config.name
        );
    }
    let pipeline = prepare(
        "two-stream pipeline",
        &pipeline_pass,
        pipeline_check,
        &watchdog,
    );
    let (n, f) = fail_every_task(&pipeline, &watchdog);
    total += n;
    failures.extend(f);
    println!(
        "task fault sweep: {total} tasks failed on the device in {:.1?}",
        start.elapsed()
    );
    assert!(total > 0, "the passes queue device work");
    assert!(
        failures.is_empty(),
        "{} failing runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Device loss (`fault::lose_device`) at points spread over a pass: from
/// that call on, everything on device 0 fails with
/// `ACL_ERROR_RT_LOST_HEARTBEAT`. The pass must end in an error that says
/// so, without a panic or a hang. What was alive on the lost device cannot
/// be released through it, so leak reports are expected here (the reset
/// releases everything); what must hold is that once the device is back,
/// a clean pass is correct and leaves nothing behind.
fn lose_the_device_during(sweep: &Sweep<'_>, every: usize, watchdog: &Watchdog) -> Vec<String> {
    let n = sweep.trace.len();
    let mut points: Vec<&TracedCall> = sweep.trace.iter().step_by(every).collect();
    points.extend(sweep.trace.last());
    let mut failures = Vec::new();
    for call in &points {
        fault::clear();
        sanitizer::take_reports();
        fault::lose_device(0, call.total);
        let label = format!(
            "{}: device 0 lost from call {} of {n} ({})",
            sweep.name, call.total, call.api
        );
        let (r, weak) = {
            let _d = watchdog.arm(label.clone());
            (sweep.pass)()
        };
        fault::clear();
        let _ = sanitizer::take_reports();
        let _ = take_leftovers();
        if weak.upgrade().is_some() {
            failures.push(format!("{label}: the context outlived the pass"));
        }
        match r {
            Err(e) if e.to_string().contains("507010") || e.to_string().contains("is lost") => {}
            Err(e) => failures.push(format!(
                "{label}: the error does not say the device is lost: {e}"
            )),
            // Losing the device at the final reset cannot reach the caller.
            Ok(out) if call.api == "aclrtResetDevice" => {
                if out != sweep.clean {
                    failures.push(format!("{label}: wrong result"));
                }
            }
            Ok(_) => failures.push(format!("{label}: the pass succeeded on a lost device")),
        }
        // Back to a working device: a clean pass is right and clean.
        let (again, weak) = {
            let _d = watchdog.arm(format!("the clean pass after {label}"));
            (sweep.pass)()
        };
        assert!(weak.upgrade().is_none());
        match again {
            Ok(out) if out == sweep.clean => {}
            Ok(_) => failures.push(format!("after {label}: wrong result")),
            Err(e) => failures.push(format!("after {label}: {e}")),
        }
        let reports = sanitizer::take_reports();
        if !reports.is_empty() {
            failures.push(format!("after {label}: reports {reports:#?}"));
        }
        let live = take_leftovers();
        if !live.is_empty() {
            failures.push(format!("after {label}: objects left {live:#?}"));
        }
    }
    println!(
        "{}: device lost at {} points of {n} calls",
        sweep.name,
        points.len()
    );
    failures
}

#[test]
fn losing_the_device_mid_pass_fails_cleanly_and_the_runtime_recovers() {
    let _serial = serial();
    let watchdog = Watchdog::new();
    let config = tiny_configs()[0];
    let weights = MoeWeights::random(&config, 11).expect("weights");
    let x = random_tokens(&config, 12);
    let pass = || moe_pass(&weights, &x);
    let moe = prepare(config.name, &pass, moe_check(&weights, &x), &watchdog);
    let mut failures = lose_the_device_during(&moe, 12, &watchdog);
    let pipeline = prepare(
        "two-stream pipeline",
        &pipeline_pass,
        pipeline_check,
        &watchdog,
    );
    failures.extend(lose_the_device_during(&pipeline, 5, &watchdog));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
