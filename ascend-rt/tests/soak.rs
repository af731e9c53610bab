//! Concurrency soak on the mock device, with the mock's jitter on (seeded
//! random delays before every stream task, so that a missing wait shows up
//! as a wrong value or a sanitizer report rather than passing by luck).
//!
//! - [`safe_api_soak`]: 8 threads, each with 3 streams of its own and 6
//!   device buffers with a host shadow, run a seeded random mix of
//!   queued memsets, device copies, additions (into slots, and into pooled
//!   tensors from the shared pool) and matrix products on random streams,
//!   host writes and checked read-backs; buffers are also
//!   handed between threads through a shared exchange, so one thread's
//!   stream uses memory another thread's stream wrote. Ordering is left to
//!   ascend-rt's access tracker (events between streams). Every value read
//!   back is compared with the host computation.
//! - [`raw_abi_soak`]: the same idea through the raw C ABI
//!   (`ascend_sys::Api` from `ascend_mock::resolve`), where nothing orders
//!   anything implicitly: each thread fills a buffer on one stream, records
//!   an event, and the next thread in a ring waits for that event on its
//!   own stream before copying the buffer out and checking it.
//!
//! - [`soak_under_faults`]: 4 threads run the safe mix while about one call
//!   in 40 fails (`fault::fail_nth`): errors come back, known values stay
//!   right, and the only reports are leaks of objects whose release failed.
//!
//! All are bounded (the safe soaks by time, [`BUDGET`] or 2 s; the ring by
//! [`RING_ROUNDS`], since its threads move in lockstep) and run under a
//! watchdog that aborts the process on a hang; the first two end with no
//! sanitizer report at all (no leak at the device's release, no race, no
//! memory error).

mod common;

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ascend_mock::fault::{self, Jitter};
use ascend_mock::sanitizer;
use ascend_rt::{Context, DeviceBuffer, Stream, TensorMut, TensorRef, ops};
use ascend_sys::*;
use common::leaks;

/// How long each soak keeps issuing work.
const BUDGET: Duration = Duration::from_secs(3);
/// A soak that has not finished by then is hung.
const WATCHDOG: Duration = Duration::from_secs(120);
/// Elements per buffer: an 8 x 8 matrix.
const N: usize = 64;

/// The tests share the jitter setting and the sanitizer's reports.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::init();
    sanitizer::take_reports();
    guard
}

/// Aborts the process unless dropped within [`WATCHDOG`]: a deadlock would
/// otherwise hang the test run instead of failing it.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn arm(what: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < WATCHDOG {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("watchdog: {what} did not finish within {WATCHDOG:?}");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Turns the jitter on for the lifetime of the guard.
struct JitterOn;

impl JitterOn {
    fn new(seed: u64) -> JitterOn {
        fault::set_jitter(Some(Jitter { seed, max_us: 100 }));
        JitterOn
    }
}

impl Drop for JitterOn {
    fn drop(&mut self) {
        fault::set_jitter(None);
    }
}

/// A small seeded generator (splitmix64): the mix of operations is the same
/// for the same seed; only the timing varies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A value in [-1, 1) with few bits, so host and device agree closely.
    fn value(&mut self) -> f32 {
        (self.below(256) as f32 - 128.0) / 128.0
    }
}

/// A device buffer and what the host computed it must hold.
struct Slot {
    buf: DeviceBuffer<f32>,
    shadow: Vec<f32>,
}

fn close(got: &[f32], want: &[f32]) -> Result<(), String> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // NaN fails too: only a finite, close value passes.
        let fine = (g - w).abs() <= 1e-4 * w.abs().max(1.0);
        if !fine {
            return Err(format!("element {i}: device {g}, host {w}"));
        }
    }
    Ok(())
}

fn host_matmul(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; N];
    for i in 0..8 {
        for j in 0..8 {
            out[i * 8 + j] = (0..8).map(|k| a[i * 8 + k] * b[k * 8 + j]).sum();
        }
    }
    out
}

/// What one thread of the safe soak did.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ops: usize,
    checks: usize,
    handoffs: usize,
}

/// One thread of [`safe_api_soak`].
fn safe_worker(
    id: usize,
    ctx: Arc<Context>,
    exchange: Arc<Mutex<Vec<Slot>>>,
    deadline: Instant,
) -> Result<Counts, String> {
    let fail = |what: &str, e: ascend_rt::Error| format!("thread {id}: {what}: {e}");
    let mut rng = Rng(0x50a4 + id as u64);
    let streams: Vec<Arc<Stream>> = (0..3)
        .map(|_| ctx.new_stream())
        .collect::<Result<_, _>>()
        .map_err(|e| fail("new stream", e))?;
    // A mixing matrix with entries 1/8 keeps products bounded.
    let w_host = vec![0.125f32; N];
    let w = DeviceBuffer::from_host(&ctx, &w_host).map_err(|e| fail("upload", e))?;
    let mut slots: Vec<Slot> = (0..6)
        .map(|_| {
            let shadow: Vec<f32> = (0..N).map(|_| rng.value()).collect();
            DeviceBuffer::from_host(&ctx, &shadow).map(|buf| Slot { buf, shadow })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| fail("upload", e))?;
    let mut counts = Counts::default();
    while Instant::now() < deadline {
        let s = &streams[rng.below(streams.len())];
        let (i, j, k) = (rng.below(6), rng.below(6), rng.below(6));
        match rng.below(9) {
            0 => {
                let byte = [0x00u8, 0x3e, 0x3f][rng.below(3)];
                let v = f32::from_bits(u32::from_ne_bytes([byte; 4]));
                slots[i]
                    .buf
                    .memset_async(byte, s)
                    .map_err(|e| fail("memset_async", e))?;
                slots[i].shadow = vec![v; N];
            }
            1 if i != j => {
                let (dst, src) = pair(&mut slots, i, j);
                dst.buf
                    .copy_from(&src.buf, s)
                    .map_err(|e| fail("copy_from", e))?;
                dst.shadow = src.shadow.clone();
            }
            2 if k != i && k != j => {
                let alpha = if rng.below(2) == 0 { 0.5 } else { -0.5 };
                let want: Vec<f32> = slots[i]
                    .shadow
                    .iter()
                    .zip(&slots[j].shadow)
                    .map(|(a, b)| a + alpha as f32 * b)
                    .collect();
                let (out, a, b) = triple(&mut slots, k, i, j);
                let av = TensorRef::new(&a.buf, &[N]).map_err(|e| fail("view", e))?;
                let bv = TensorRef::new(&b.buf, &[N]).map_err(|e| fail("view", e))?;
                let mut ov = TensorMut::new(&mut out.buf, &[N]).map_err(|e| fail("view", e))?;
                ops::add_into(s, &av, &bv, alpha, &mut ov).map_err(|e| fail("add", e))?;
                out.shadow = want;
            }
            3 if i != j => {
                // A pooled result (its block comes from the context's pool,
                // shared with the other threads' streams), copied into a slot.
                let want: Vec<f32> = slots[i].shadow.iter().map(|a| a * 0.25).collect();
                let (dst, src) = pair(&mut slots, j, i);
                let sv = TensorRef::new(&src.buf, &[N]).map_err(|e| fail("view", e))?;
                let t = ops::add(s, &sv, &sv, -0.75).map_err(|e| fail("add", e))?;
                dst.buf
                    .copy_from(t.buffer(), s)
                    .map_err(|e| fail("copy_from", e))?;
                dst.shadow = want;
            }
            4 if k != i => {
                let want = host_matmul(&slots[i].shadow, &w_host);
                let (out, a, _) = triple(&mut slots, k, i, i);
                let av = TensorRef::new(&a.buf, &[8, 8]).map_err(|e| fail("view", e))?;
                let wv = TensorRef::new(&w, &[8, 8]).map_err(|e| fail("view", e))?;
                let mut ov = TensorMut::new(&mut out.buf, &[8, 8]).map_err(|e| fail("view", e))?;
                ops::matmul_into(s, &av, &wv, &mut ov).map_err(|e| fail("matmul", e))?;
                out.shadow = want;
            }
            5 => {
                let fresh: Vec<f32> = (0..N).map(|_| rng.value()).collect();
                slots[i]
                    .buf
                    .copy_from_host(&fresh)
                    .map_err(|e| fail("copy_from_host", e))?;
                slots[i].shadow = fresh;
            }
            6 | 7 => {
                let got = slots[i].buf.to_vec().map_err(|e| fail("to_vec", e))?;
                close(&got, &slots[i].shadow)
                    .map_err(|e| format!("thread {id}: slot {i} after {} ops: {e}", counts.ops))?;
                counts.checks += 1;
            }
            8 => {
                // Hand a buffer to whichever thread takes it next, and take
                // one another thread (or this one) left, still in flight.
                let mut shared = exchange.lock().unwrap_or_else(|p| p.into_inner());
                if !shared.is_empty() {
                    let pick = rng.below(shared.len());
                    let theirs = shared.swap_remove(pick);
                    let mine = std::mem::replace(&mut slots[i], theirs);
                    shared.push(mine);
                    counts.handoffs += 1;
                }
            }
            _ => continue,
        }
        counts.ops += 1;
    }
    for (i, slot) in slots.iter().enumerate() {
        let got = slot.buf.to_vec().map_err(|e| fail("final to_vec", e))?;
        close(&got, &slot.shadow).map_err(|e| format!("thread {id}: final slot {i}: {e}"))?;
        counts.checks += 1;
    }
    // Leave the slots in the exchange for others to finish with: they are
    // checked there at the end.
    exchange
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(slots);
    ctx.check_err().map_err(|e| fail("recorded error", e))?;
    Ok(counts)
}

/// Two distinct slots, mutably and immutably.
fn pair(slots: &mut [Slot], dst: usize, src: usize) -> (&mut Slot, &Slot) {
    assert_ne!(dst, src);
    if dst < src {
        let (lo, hi) = slots.split_at_mut(src);
        (&mut lo[dst], &hi[0])
    } else {
        let (lo, hi) = slots.split_at_mut(dst);
        (&mut hi[0], &lo[src])
    }
}

/// `out` mutably and `a`, `b` (which may be equal) immutably; `out` differs
/// from both.
fn triple(slots: &mut [Slot], out: usize, a: usize, b: usize) -> (&mut Slot, &Slot, &Slot) {
    assert!(out != a && out != b);
    let (before, rest) = slots.split_at_mut(out);
    let (o, after) = rest.split_first_mut().expect("out is in range");
    let get = |i: usize| -> &Slot {
        if i < out {
            &before[i]
        } else {
            &after[i - out - 1]
        }
    };
    (o, get(a), get(b))
}

#[test]
fn safe_api_soak() {
    let _serial = serial();
    let _watchdog = Watchdog::arm("the safe-API soak");
    let _jitter = JitterOn::new(7);
    let ctx = Context::new(0).expect("device 0 opens");
    let exchange: Arc<Mutex<Vec<Slot>>> = Arc::new(Mutex::new(Vec::new()));
    // Seed the exchange so that hand-offs start at once.
    {
        let mut rng = Rng(99);
        let mut shared = exchange.lock().unwrap();
        for _ in 0..4 {
            let shadow: Vec<f32> = (0..N).map(|_| rng.value()).collect();
            let buf = DeviceBuffer::from_host(&ctx, &shadow).expect("upload");
            shared.push(Slot { buf, shadow });
        }
    }
    let threads = 8;
    let deadline = Instant::now() + BUDGET;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|id| {
            let (ctx, exchange) = (ctx.clone(), exchange.clone());
            std::thread::spawn(move || safe_worker(id, ctx, exchange, deadline))
        })
        .collect();
    let mut total = Counts::default();
    let mut errors = Vec::new();
    for h in handles {
        match h.join().expect("a soak thread panicked") {
            Ok(c) => {
                total.ops += c.ops;
                total.checks += c.checks;
                total.handoffs += c.handoffs;
            }
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // Every buffer ends in the exchange; check them all once more.
    let slots = std::mem::take(&mut *exchange.lock().unwrap());
    for slot in &slots {
        close(&slot.buf.to_vec().expect("read back"), &slot.shadow).expect("final value");
    }
    drop(slots);
    ctx.check_err().expect("no recorded error");
    drop(ctx);
    println!(
        "safe soak: {threads} threads x 3 streams, {} operations, {} checked read-backs, {} hand-offs between threads in {:.1?}",
        total.ops,
        total.checks,
        total.handoffs,
        start.elapsed()
    );
    assert!(total.handoffs > 0 && total.checks > threads);
    let reports = sanitizer::take_reports();
    assert!(reports.is_empty(), "sanitizer reports: {reports:#?}");
}

// ------------------------------------------------------- under faults

/// The kinds of object (as [`leaks::Leftovers`] names them) that one
/// failed call of `api` may leave behind, one object at most:
/// - a failed release keeps its own object (the mock does not release
///   it); a failed `aclSetAclOpExecutorRepeatable` keeps an executor whose
///   phase 2 will not run, which only a repeatable executor's destroy
///   could release (see `ascend_rt::aclnn`);
/// - a failed device-wide wait, the last resort of a release whose own
///   wait failed (nothing then shows the object idle, so freeing it would
///   be unsound), or a failed context binding before a release, keeps the
///   object being released: memory, a stream, an event or a prepared
///   executor.
///
/// Everything else leaves nothing. The sets are either single kinds or
/// [`WAITED_FOR`], so matching leftovers to failures narrowest first is
/// exact ([`unexplained`]).
fn may_leave(api: &str) -> &'static [&'static str] {
    match api {
        "aclrtFree" => &["device"],
        "aclrtFreeHost" => &["pinned"],
        "aclrtDestroyStream" => &["stream"],
        "aclrtDestroyEvent" => &["event"],
        "aclDestroyTensor" => &["aclTensor"],
        "aclDestroyScalar" => &["aclScalar"],
        "aclDestroyIntArray" => &["aclIntArray"],
        "aclDestroyFloatArray" => &["aclFloatArray"],
        "aclDestroyBoolArray" => &["aclBoolArray"],
        "aclDestroyTensorList" => &["aclTensorList"],
        "aclDestroyScalarList" => &["aclScalarList"],
        "aclDestroyAclOpExecutor" | "aclSetAclOpExecutorRepeatable" => &["aclOpExecutor"],
        "aclrtSynchronizeDevice" | "aclrtSetCurrentContext" => WAITED_FOR,
        _ => &[],
    }
}

/// What a release waits for (or binds the context for) before it frees.
const WAITED_FOR: &[&str] = &["device", "pinned", "stream", "event", "aclOpExecutor"];

/// The leftovers (kind → count) that no failed call accounts for, when
/// each call of `failed` accounts for at most one object of a kind in its
/// [`may_leave`]. Calls with the fewest kinds are matched first, which is
/// exact because those sets are nested.
fn unexplained(left: &BTreeMap<String, usize>, failed: &[&str]) -> BTreeMap<String, usize> {
    let mut rest = left.clone();
    let mut calls: Vec<&[&str]> = failed
        .iter()
        .map(|a| may_leave(a))
        .filter(|k| !k.is_empty())
        .collect();
    calls.sort_by_key(|k| k.len());
    for kinds in calls {
        if let Some(k) = kinds.iter().find(|k| rest.get(**k).is_some_and(|n| *n > 0)) {
            *rest.get_mut(*k).expect("found above") -= 1;
        }
    }
    rest.retain(|_, n| *n > 0);
    rest
}

#[test]
fn unexplained_matches_each_failure_to_one_object_of_its_kinds() {
    let left = |kinds: &[(&str, usize)]| -> BTreeMap<String, usize> {
        kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    // A device-wide wait may account for an event or for memory, one of them.
    let fine = left(&[("event", 1), ("device", 1)]);
    assert!(unexplained(&fine, &["aclrtSynchronizeDevice", "aclrtFree"]).is_empty());
    let short: usize = unexplained(&fine, &["aclrtSynchronizeDevice"])
        .values()
        .sum();
    assert_eq!(short, 1, "one wait, two objects");
    // A wait never accounts for a descriptor; a failed call that releases
    // nothing accounts for nothing.
    let tensors = left(&[("aclTensor", 2)]);
    assert_eq!(
        unexplained(
            &tensors,
            &["aclDestroyTensor", "aclrtSynchronizeDevice", "aclrtMalloc"]
        ),
        left(&[("aclTensor", 1)])
    );
    // Narrowest first: the wait is kept for the stream the free cannot take.
    let both = left(&[("device", 1), ("stream", 1)]);
    assert!(unexplained(&both, &["aclrtSetCurrentContext", "aclrtFree"]).is_empty());
}

/// What one thread of the faulty soak saw.
#[derive(Debug, Default, Clone, Copy)]
struct FaultCounts {
    ops: usize,
    errors: usize,
    checks: usize,
}

/// One thread of [`soak_under_faults`]: the safe soak's mix on 2 streams
/// while calls fail at random. A failed operation makes the buffers it
/// touched unknown until a host write succeeds on them again; every known
/// buffer read back must hold the host's value.
fn faulty_worker(id: usize, ctx: Arc<Context>, deadline: Instant) -> FaultCounts {
    let mut rng = Rng(0xfa17 + id as u64);
    let mut counts = FaultCounts::default();
    let mut streams = Vec::new();
    while streams.len() < 2 && Instant::now() < deadline {
        match ctx.new_stream() {
            Ok(s) => streams.push(s),
            Err(_) => counts.errors += 1,
        }
    }
    let w_host = vec![0.125f32; N];
    let mut w = None;
    // Slots: a buffer, its shadow, and whether the shadow is known.
    let mut slots: Vec<(DeviceBuffer<f32>, Vec<f32>, bool)> = Vec::new();
    while Instant::now() < deadline {
        if w.is_none() {
            match DeviceBuffer::from_host(&ctx, &w_host) {
                Ok(b) => w = Some(b),
                Err(_) => counts.errors += 1,
            }
            continue;
        }
        if slots.len() < 4 {
            let shadow: Vec<f32> = (0..N).map(|_| rng.value()).collect();
            match DeviceBuffer::from_host(&ctx, &shadow) {
                Ok(b) => slots.push((b, shadow, true)),
                Err(_) => counts.errors += 1,
            }
            continue;
        }
        let Some(w) = w.as_ref() else { continue };
        let s = &streams[rng.below(streams.len())];
        let (i, j) = (rng.below(4), rng.below(4));
        counts.ops += 1;
        let ok = match rng.below(6) {
            0 => {
                let r = slots[i].0.memset_async(0, s);
                slots[i].1 = vec![0.0; N];
                r.is_ok()
            }
            1 if i != j => {
                let (lo, hi) = slots.split_at_mut(i.max(j));
                let (dst, src) = if i < j {
                    (&mut lo[i], &hi[0])
                } else {
                    (&mut hi[0], &lo[j])
                };
                let r = dst.0.copy_from(&src.0, s);
                dst.1 = src.1.clone();
                dst.2 = src.2;
                r.is_ok()
            }
            2 if i != j => {
                let want: Vec<f32> = slots[i]
                    .1
                    .iter()
                    .zip(&slots[j].1)
                    .map(|(a, b)| a - 0.5 * b)
                    .collect();
                let known = slots[i].2 && slots[j].2;
                let (lo, hi) = slots.split_at_mut(i.max(j));
                let (out, a) = if i < j {
                    (&mut hi[0], &lo[i])
                } else {
                    (&mut lo[j], &hi[0])
                };
                // out = a - b/2 with b = out itself is not allowed (aliasing),
                // so this computes slot j := slot i - slot j / 2 through a
                // fresh tensor and a copy.
                let r = (|| -> ascend_rt::Result<()> {
                    let av = TensorRef::new(&a.0, &[N])?;
                    let bv = TensorRef::new(&out.0, &[N])?;
                    let t = ops::add(s, &av, &bv, -0.5)?;
                    out.0.copy_from(t.buffer(), s)
                })();
                out.1 = want;
                out.2 = known;
                r.is_ok()
            }
            3 if i != j => {
                let want = host_matmul(&slots[i].1, &w_host);
                let known = slots[i].2;
                let (lo, hi) = slots.split_at_mut(i.max(j));
                let (out, a) = if i < j {
                    (&mut hi[0], &lo[i])
                } else {
                    (&mut lo[j], &hi[0])
                };
                let r = (|| -> ascend_rt::Result<()> {
                    let av = TensorRef::new(&a.0, &[8, 8])?;
                    let wv = TensorRef::new(w, &[8, 8])?;
                    let mut ov = TensorMut::new(&mut out.0, &[8, 8])?;
                    ops::matmul_into(s, &av, &wv, &mut ov)
                })();
                out.1 = want;
                out.2 = known;
                r.is_ok()
            }
            4 => {
                let fresh: Vec<f32> = (0..N).map(|_| rng.value()).collect();
                let r = slots[i].0.copy_from_host(&fresh);
                slots[i].1 = fresh;
                // Known again only if the write went through.
                slots[i].2 = r.is_ok();
                r.is_ok()
            }
            _ => match slots[i].0.to_vec() {
                Ok(got) => {
                    if slots[i].2 {
                        if let Err(e) = close(&got, &slots[i].1) {
                            panic!("thread {id}: slot {i} after {} ops: {e}", counts.ops);
                        }
                        counts.checks += 1;
                    }
                    true
                }
                Err(_) => false,
            },
        };
        if !ok {
            counts.errors += 1;
            // What the failed operation wrote is unknown.
            slots[i].2 = false;
            slots[j].2 = false;
        }
    }
    counts
}

/// The safe soak with calls failing at random (about one in 40 of the
/// first 40 000, seeded), jitter on: errors are returned, never a panic or
/// a hang; buffers whose value is known read back right; and once
/// everything is dropped, the only sanitizer reports are leaks: no memory
/// error and no race on any error path, and every object left is one that
/// a failed call accounts for, one object per call, of a kind that call
/// may leave ([`may_leave`]: its own object for a failed release, the
/// object being released for a failed last-resort wait or binding).
#[test]
fn soak_under_faults() {
    let _serial = serial();
    let _watchdog = Watchdog::arm("the soak under faults");
    let _jitter = JitterOn::new(23);
    // Objects alive before are not this test's leftovers.
    let before = leaks::live_serials();
    // Counting restarts here: call n below is the n-th from now on.
    fault::clear();
    fault::trace_calls(true);
    let mut rng = Rng(404);
    let mut doomed = std::collections::HashSet::new();
    for n in 1..40_000u64 {
        if rng.below(40) == 0 {
            fault::fail_nth("*", n, ACL_ERROR_RT_FAILURE as aclError);
            doomed.insert(n);
        }
    }
    let rules = doomed.len();
    let threads = 4;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(2);
    let ctx = loop {
        // Opening the device may be one of the failing calls.
        if let Ok(ctx) = Context::new(0) {
            break ctx;
        }
    };
    let handles: Vec<_> = (0..threads)
        .map(|id| {
            let ctx = ctx.clone();
            std::thread::spawn(move || faulty_worker(id, ctx, deadline))
        })
        .collect();
    let mut total = FaultCounts::default();
    for h in handles {
        let c = h.join().expect("a faulty soak thread panicked");
        total.ops += c.ops;
        total.errors += c.errors;
        total.checks += c.checks;
    }
    // Stop failing, then release everything.
    let trace = fault::take_trace();
    fault::trace_calls(false);
    fault::clear();
    let _ = ctx.check_err();
    drop(ctx);
    // Dropping the context released the device (and ran its leak check)
    // unless a reference was kept by a failed aclrtResetDevice, the undo
    // of a failed Context::new: release it here so that what the device
    // holds is still counted. Otherwise the device is not set any more and
    // the forced reset refuses.
    let force = ascend_rt::api()
        .expect("the backend is up")
        .acl
        .aclrtResetDeviceForce()
        .expect("aclrtResetDeviceForce resolves");
    // SAFETY: every object of the soak is dropped; nothing uses device 0.
    let forced = unsafe { force(0) } == ACL_SUCCESS;
    // The calls that did fail: doomed ones that can fail.
    let failed: Vec<&str> = trace
        .iter()
        .filter(|c| c.injectable && doomed.contains(&c.total))
        .map(|c| c.api)
        .collect();
    let release_failures: Vec<&str> = failed
        .iter()
        .copied()
        .filter(|a| !may_leave(a).is_empty())
        .collect();
    let reports = sanitizer::take_reports();
    // Each object once: the device reset's report also names the
    // descriptors and executors over memory it frees, which stay alive.
    let left = leaks::leftovers(&reports, &before);
    // Later tests start without this one's descriptors and executors.
    leaks::destroy_live_objects(&before);
    println!(
        "soak under faults: {threads} threads, {} operations, {} errors, {} checked read-backs, \
         {} calls failed of {} ({rules} rules), {} of them releases, {} objects left \
         ({} named twice{}), in {:.1?}",
        total.ops,
        total.errors,
        total.checks,
        failed.len(),
        trace.len(),
        release_failures.len(),
        left.total(),
        left.named_twice,
        if forced {
            "; the device was released by a forced reset"
        } else {
            ""
        },
        start.elapsed()
    );
    let mut by_api = BTreeMap::new();
    for a in &release_failures {
        *by_api.entry(*a).or_insert(0) += 1;
    }
    println!("failed releases {by_api:?}; left {:?}", left.by_kind);
    let others: Vec<_> = reports
        .iter()
        .filter(|r| r.class != sanitizer::ReportClass::Leak)
        .collect();
    assert!(
        others.is_empty(),
        "memory errors on error paths: {others:#?}"
    );
    let extra = unexplained(&left.by_kind, &release_failures);
    assert!(
        extra.is_empty(),
        "{} objects left after {} failed releases; none of them accounts for {extra:?}: {:#?}",
        left.total(),
        release_failures.len(),
        left.lines
    );
    assert!(total.errors > 0 && total.checks > 0);
}

// ------------------------------------------------------------ raw C ABI

/// A raw pointer moved to another thread; what it points to is device
/// memory or a runtime handle, which any thread may use.
#[derive(Clone, Copy)]
struct Raw(*mut c_void);

// SAFETY: the pointers are device memory and runtime handles, valid on any
// thread; the test orders their uses with events and channels.
unsafe impl Send for Raw {}

const BYTES: usize = 4096;

fn ok(api: &Api, what: &str, code: aclError) {
    if code != ACL_SUCCESS {
        let msg = api
            .acl
            .aclGetRecentErrMsg()
            .ok()
            // SAFETY: aclGetRecentErrMsg returns null or a C string valid
            // until the next call on this thread; copied at once.
            .map(|f| unsafe {
                let p = f();
                if p.is_null() {
                    String::new()
                } else {
                    std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            })
            .unwrap_or_default();
        panic!("{what} failed with {code}: {msg}");
    }
}

/// Rounds of the ring; every thread runs all of them (the ring moves in
/// lockstep, so all must agree on when to stop).
const RING_ROUNDS: usize = 1000;

/// The hand-off of one round: the sender's buffer, the event recorded after
/// filling it, and the byte it was filled with.
type HandOff = (Raw, Raw, u8);

/// One thread of the ring: each round it fills its own shared buffer on
/// stream `fill`, records `filled` and hands (buffer, event, value) to the
/// next thread; it takes the previous thread's hand-off, makes stream
/// `drain` wait for that event, copies the buffer out to pinned memory and
/// checks every byte. It refills its buffer only after the next thread has
/// acknowledged reading it.
fn ring_worker(
    id: usize,
    api: &Api,
    mine: Raw,
    to_next: mpsc::Sender<HandOff>,
    from_prev: mpsc::Receiver<HandOff>,
    ack_to_prev: mpsc::Sender<()>,
    ack_from_next: mpsc::Receiver<()>,
) {
    let acl = &api.acl;
    let null = std::ptr::null_mut;
    // SAFETY (whole function): every call gets handles and pointers made
    // here, or handed over by the ring together with the event that orders
    // them, all live until the end; sizes are those allocated.
    unsafe {
        ok(api, "aclrtSetDevice", acl.aclrtSetDevice().unwrap()(0));
        let (mut fill, mut drain, mut filled) = (null(), null(), null());
        let create_stream = acl.aclrtCreateStream().unwrap();
        ok(api, "aclrtCreateStream", create_stream(&mut fill));
        ok(api, "aclrtCreateStream", create_stream(&mut drain));
        ok(
            api,
            "aclrtCreateEvent",
            acl.aclrtCreateEvent().unwrap()(&mut filled),
        );
        let (mut local, mut host) = (null(), null());
        let policy = ACL_MEM_MALLOC_HUGE_FIRST;
        ok(
            api,
            "aclrtMalloc",
            acl.aclrtMalloc().unwrap()(&mut local, BYTES, policy),
        );
        ok(
            api,
            "aclrtMallocHost",
            acl.aclrtMallocHost().unwrap()(&mut host, BYTES),
        );
        let memset_async = acl.aclrtMemsetAsync().unwrap();
        let memcpy_async = acl.aclrtMemcpyAsync().unwrap();
        let record = acl.aclrtRecordEvent().unwrap();
        let wait = acl.aclrtStreamWaitEvent().unwrap();
        let sync = acl.aclrtSynchronizeStream().unwrap();
        let mut value = id as u8;
        for round in 0..RING_ROUNDS {
            value = value.wrapping_mul(31).wrapping_add(7);
            let v = i32::from(value);
            ok(
                api,
                "aclrtMemsetAsync",
                memset_async(mine.0, BYTES, v, BYTES, fill),
            );
            ok(api, "aclrtRecordEvent", record(filled, fill));
            to_next.send((mine, Raw(filled), value)).unwrap();

            let (theirs, their_event, expected) = from_prev.recv().unwrap();
            ok(api, "aclrtStreamWaitEvent", wait(drain, their_event.0));
            // Clobber the local copy first, so a copy that ran early shows.
            ok(
                api,
                "aclrtMemsetAsync",
                memset_async(local, BYTES, 0xAA, BYTES, drain),
            );
            let d2d = ACL_MEMCPY_DEVICE_TO_DEVICE;
            let d2h = ACL_MEMCPY_DEVICE_TO_HOST;
            ok(
                api,
                "aclrtMemcpyAsync",
                memcpy_async(local, BYTES, theirs.0, BYTES, d2d, drain),
            );
            ok(
                api,
                "aclrtMemcpyAsync",
                memcpy_async(host, BYTES, local, BYTES, d2h, drain),
            );
            ok(api, "aclrtSynchronizeStream", sync(drain));
            let bytes = std::slice::from_raw_parts(host.cast::<u8>(), BYTES);
            let wrong = bytes.iter().position(|&b| b != expected);
            assert!(
                wrong.is_none(),
                "thread {id}, round {round}: byte {wrong:?} is {:#x}, expected {expected:#x}",
                wrong.map_or(0, |i| bytes[i])
            );
            // The previous thread may now refill its buffer and re-record.
            ack_to_prev.send(()).unwrap();
            ack_from_next.recv().unwrap();
        }
        ok(api, "aclrtSynchronizeStream", sync(fill));
        ok(api, "aclrtFree", acl.aclrtFree().unwrap()(local));
        ok(api, "aclrtFreeHost", acl.aclrtFreeHost().unwrap()(host));
        ok(
            api,
            "aclrtDestroyEvent",
            acl.aclrtDestroyEvent().unwrap()(filled),
        );
        let destroy_stream = acl.aclrtDestroyStream().unwrap();
        ok(api, "aclrtDestroyStream", destroy_stream(fill));
        ok(api, "aclrtDestroyStream", destroy_stream(drain));
        ok(api, "aclrtResetDevice", acl.aclrtResetDevice().unwrap()(0));
    }
}

#[test]
fn raw_abi_soak() {
    let _serial = serial();
    let _watchdog = Watchdog::arm("the raw-ABI soak");
    let _jitter = JitterOn::new(11);
    // The ring's threads borrow the tables (scoped threads), so nothing is
    // leaked for them to outlive the test.
    let api = &Api::from_resolver(ascend_mock::resolve, "soak");
    let acl = &api.acl;
    let threads = 4;
    // The shared buffers, one per thread, outlive the ring.
    let mut shared = Vec::new();
    // SAFETY: plain calls with out-pointers to locals; the buffers are freed
    // after every thread has joined.
    unsafe {
        ok(api, "aclrtSetDevice", acl.aclrtSetDevice().unwrap()(0));
        for _ in 0..threads {
            let mut p = std::ptr::null_mut();
            ok(
                api,
                "aclrtMalloc",
                acl.aclrtMalloc().unwrap()(&mut p, BYTES, ACL_MEM_MALLOC_HUGE_FIRST),
            );
            shared.push(Raw(p));
        }
    }
    let start = Instant::now();
    let (mut data_tx, mut data_rx) = (Vec::new(), Vec::new());
    let (mut ack_tx, mut ack_rx) = (Vec::new(), Vec::new());
    for _ in 0..threads {
        let (t, r) = mpsc::channel::<HandOff>();
        data_tx.push(t);
        data_rx.push(Some(r));
        let (t, r) = mpsc::channel::<()>();
        ack_tx.push(t);
        ack_rx.push(Some(r));
    }
    // Thread i receives data on channel i and acks on channel i; it sends
    // data to i + 1 and acks to i - 1.
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let next = (i + 1) % threads;
                let prev = (i + threads - 1) % threads;
                let to_next = data_tx[next].clone();
                let from_prev = data_rx[i].take().unwrap();
                let ack_to_prev = ack_tx[prev].clone();
                let ack_from_next = ack_rx[i].take().unwrap();
                let mine = shared[i];
                scope.spawn(move || {
                    ring_worker(i, api, mine, to_next, from_prev, ack_to_prev, ack_from_next)
                })
            })
            .collect();
        drop((data_tx, ack_tx));
        for h in handles {
            h.join().expect("a ring thread failed");
        }
    });
    // SAFETY: every thread has joined, so nothing uses the buffers.
    unsafe {
        for p in &shared {
            ok(api, "aclrtFree", acl.aclrtFree().unwrap()(p.0));
        }
        ok(api, "aclrtResetDevice", acl.aclrtResetDevice().unwrap()(0));
    }
    println!(
        "raw soak: {threads} threads in a ring, {RING_ROUNDS} rounds each (every hand-off checked) in {:.1?}",
        start.elapsed()
    );
    let reports = sanitizer::take_reports();
    assert!(reports.is_empty(), "sanitizer reports: {reports:#?}");
}
