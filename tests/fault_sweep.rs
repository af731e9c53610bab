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
//! Expected outcome of a run: `Err`, whose text names the failed API and says
//! the failure was injected, and no sanitizer report. Two kinds of failure
//! cannot reach the caller and are tolerated (the pass returns `Ok` with the
//! right `y`):
//! - `aclrtResetDevice` in `Context`'s `Drop`: nothing is left to return the
//!   error to, so it goes to stderr; the test then releases the device itself.
//! - none other; anything else that returns `Ok` fails the test.
//!
//! After every run the device reset's leak report must be absent, and no
//! aclnn descriptor or executor may be left in the mock's registry (the
//! reset's leak check sees descriptors only while their memory lives, so the
//! registry is read directly). When the failed call is one that releases an
//! object (`aclrtFree`, `aclDestroyTensor`, `aclrtDestroyEvent`, ...), the
//! mock did not release it, so at most that one object may be left (none
//! when `ascend-rt` retries, as the pool does at the context's end); the
//! test then destroys a leftover descriptor itself, so the next run starts
//! clean.
//!
//! A watchdog aborts the process when a run takes longer than
//! [`RUN_LIMIT`]. Panics are not caught: one fails the test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ascend::moe::{
    Gating, GroupSelect, MoeConfig, MoeLayer, MoeWeights, max_rel_err, moe_reference, random_tokens,
};
use ascend_mock::fault::{self, TracedCall};
use ascend_mock::sanitizer::{self, Report, ReportClass};
use ascend_mock::{AclnnLiveObject, AclnnObjectKind};
use ascend_rt::{Backend, Context, Error, Tensor};
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

/// What a pass reads back.
#[derive(Debug)]
struct PassOutput {
    y: Array2<f32>,
    experts: Array2<i32>,
}

/// One pass (see the module docs). Returns the context as a weak reference
/// too, so that the caller can check nothing kept it alive.
fn pass(weights: &MoeWeights, x: &Array2<f32>) -> (Result<PassOutput, Error>, Weak<Context>) {
    let ctx = match Context::new(0) {
        Ok(c) => c,
        Err(e) => return (Err(e), Weak::new()),
    };
    let weak = Arc::downgrade(&ctx);
    let run = || -> Result<PassOutput, Error> {
        let stream = ctx.new_stream()?;
        let layer = MoeLayer::<f32>::new(&stream, weights)?;
        let xd = Tensor::from_array(&stream, x.view())?;
        let out = layer.forward(&stream, &xd)?;
        let y = out.y.to_array_d::<ndarray::Ix2>()?;
        let experts = out.expert_idx.to_array_d::<ndarray::Ix2>()?;
        Ok(PassOutput { y, experts })
    };
    // Everything but the context is dropped when `run` returns.
    let r = run().and_then(|out| {
        ctx.pool().empty_cache()?;
        ctx.check_err()?;
        Ok(out)
    });
    drop(ctx);
    (r, weak)
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

/// Failures `ascend-rt` cannot return to anyone (see the module docs).
fn tolerated(api: &str) -> bool {
    api == "aclrtResetDevice"
}

/// How many objects a leak report lists (one line each after the first).
fn leaked_objects(r: &Report) -> usize {
    r.message
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The aclnn descriptors and executors alive in the mock (list members
/// aside): described, and destroyed so that the next run starts clean.
fn take_live_aclnn_objects() -> Vec<String> {
    let api = ascend_rt::api().expect("the backend is up");
    let live: Vec<AclnnLiveObject> = ascend_mock::aclnn_live_objects()
        .into_iter()
        .filter(|o| o.owner.is_none())
        .collect();
    live.iter()
        .map(|o| {
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
                    AclnnObjectKind::IntArray => {
                        api.nnopbase.aclDestroyIntArray().map(|f| f(p.cast()))
                    }
                    AclnnObjectKind::Executor => api
                        .nnopbase
                        .aclSetAclOpExecutorRepeatable()
                        .and_then(|rep| {
                            rep(p.cast());
                            api.nnopbase.aclDestroyAclOpExecutor().map(|f| f(p.cast()))
                        }),
                    _ => Ok(-1),
                }
            };
            format!(
                "{} {:#x} made by {} (destroyed by the test: {status:?})",
                o.kind.name(),
                o.address,
                o.created_by
            )
        })
        .collect()
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

struct Sweep {
    weights: MoeWeights,
    x: Array2<f32>,
    clean: PassOutput,
    trace: Vec<TracedCall>,
}

fn prepare(config: &MoeConfig, watchdog: &Watchdog) -> Sweep {
    let weights = MoeWeights::random(config, 11).expect("weights");
    let x = random_tokens(config, 12);
    let reference = moe_reference(&weights, &x).expect("reference");
    fault::clear();
    fault::trace_calls(true);
    let (r, weak) = {
        let _d = watchdog.arm(format!("{}: the traced clean pass", config.name));
        pass(&weights, &x)
    };
    let trace = fault::take_trace();
    fault::trace_calls(false);
    let clean = r.expect("the clean pass succeeds");
    assert!(weak.upgrade().is_none(), "the context outlived the pass");
    assert_eq!(
        clean.experts, reference.experts,
        "{}: routing differs from the reference",
        config.name
    );
    let err = max_rel_err(&clean.y, &reference.y).expect("same shapes");
    assert!(
        err < 1e-4,
        "{}: y differs from the reference by {err}",
        config.name
    );
    let reports = sanitizer::take_reports();
    assert!(
        reports.is_empty(),
        "the clean pass was reported: {reports:#?}"
    );
    let live = take_live_aclnn_objects();
    assert!(
        live.is_empty(),
        "the clean pass left aclnn objects: {live:#?}"
    );
    assert_eq!(trace.len() as u64, fault::call_count("*"));
    Sweep {
        weights,
        x,
        clean,
        trace,
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
        let _d = watchdog.arm(label.clone());
        pass(&s.weights, &s.x)
    };
    let fired = fault::call_count(call.api) >= call.nth;
    let mut problems = Vec::new();
    if weak.upgrade().is_some() {
        problems.push("the context outlived the pass (something kept it)".to_string());
    }
    if tolerated(call.api) {
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
            if out.y != s.clean.y || out.experts != s.clean.experts {
                problems.push("a tolerated failure changed the result".to_string());
            }
        }
        Ok(_) if !fired => problems.push("the call was never reached".to_string()),
        Ok(_) => problems.push("the pass succeeded although the call failed".to_string()),
    }
    let reports = sanitizer::take_reports();
    let live = take_live_aclnn_objects();
    let may_leak_one = releases_an_object(call.api);
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
            "{leaked} objects leaked: {:#?}; aclnn objects left: {live:#?}",
            reports.iter().map(|r| &r.message).collect::<Vec<_>>()
        ));
    }
    if problems.is_empty() {
        None
    } else {
        Some(format!("{label}: {}", problems.join("; ")))
    }
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
        let sweep = prepare(&config, &watchdog);
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
            config.name,
            sweep.trace.len(),
            points.len(),
            apis.len()
        );
        let mut covered = 0usize;
        for call in &points {
            for code in [specific_code(call.api), ACL_ERROR_RT_FAILURE as aclError] {
                if let Some(problem) = injected_run(&sweep, call, code, &watchdog, &mut tally) {
                    failures.push(problem);
                }
            }
            covered += 1;
        }
        assert_eq!(covered + unreachable.len(), sweep.trace.len());
        total_points += covered;
        // The runtime recovers: a clean pass after the sweep is right again.
        let again = prepare(&config, &watchdog);
        assert_eq!(
            again.clean.y, sweep.clean.y,
            "{}: the pass after the sweep",
            config.name
        );
    }
    println!(
        "fault sweep: {total_points} injection points, 2 codes each, in {:.1?}: \
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

/// Device loss (`fault::lose_device`) at points spread over the pass: from
/// that call on, everything on device 0 fails with
/// `ACL_ERROR_RT_LOST_HEARTBEAT`. The pass must end in an error that says
/// so, without a panic or a hang. What was alive on the lost device cannot
/// be released through it, so leak reports are expected here (the reset
/// releases everything); what must hold is that once the device is back,
/// a clean pass is correct and leaves nothing behind.
#[test]
fn losing_the_device_mid_pass_fails_cleanly_and_the_runtime_recovers() {
    let _serial = serial();
    let watchdog = Watchdog::new();
    let config = tiny_configs()[0];
    let sweep = prepare(&config, &watchdog);
    let n = sweep.trace.len();
    // Every 12th call, and the last one.
    let mut points: Vec<&TracedCall> = sweep.trace.iter().step_by(12).collect();
    points.extend(sweep.trace.last());
    let mut failures = Vec::new();
    for call in &points {
        fault::clear();
        sanitizer::take_reports();
        fault::lose_device(0, call.total);
        let label = format!(
            "device 0 lost from call {} of {n} ({})",
            call.total, call.api
        );
        let (r, weak) = {
            let _d = watchdog.arm(label.clone());
            pass(&sweep.weights, &sweep.x)
        };
        fault::clear();
        let _ = sanitizer::take_reports();
        let _ = take_live_aclnn_objects();
        if weak.upgrade().is_some() {
            failures.push(format!("{label}: the context outlived the pass"));
        }
        match r {
            Err(e) if e.to_string().contains("507010") || e.to_string().contains("is lost") => {}
            Err(e) if call.api == "aclrtResetDevice" => {
                failures.push(format!("{label}: unexpected error {e}"))
            }
            Err(e) => failures.push(format!(
                "{label}: the error does not say the device is lost: {e}"
            )),
            // Losing the device at the final reset cannot reach the caller.
            Ok(out) if call.api == "aclrtResetDevice" => {
                if out.y != sweep.clean.y {
                    failures.push(format!("{label}: wrong result"));
                }
            }
            Ok(_) => failures.push(format!("{label}: the pass succeeded on a lost device")),
        }
        // Back to a working device: a clean pass is right and clean.
        let (again, weak) = {
            let _d = watchdog.arm(format!("the clean pass after {label}"));
            pass(&sweep.weights, &sweep.x)
        };
        assert!(weak.upgrade().is_none());
        match again {
            Ok(out) if out.y == sweep.clean.y => {}
            Ok(_) => failures.push(format!("after {label}: wrong result")),
            Err(e) => failures.push(format!("after {label}: {e}")),
        }
        let reports = sanitizer::take_reports();
        if !reports.is_empty() {
            failures.push(format!("after {label}: reports {reports:#?}"));
        }
        let live = take_live_aclnn_objects();
        if !live.is_empty() {
            failures.push(format!("after {label}: aclnn objects left {live:#?}"));
        }
    }
    println!("device loss: {} points of {n} calls", points.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
