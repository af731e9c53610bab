//! Fault injection: failing chosen calls, losing a device, and perturbing
//! the timing of stream tasks, so that error paths and missing
//! synchronisation show up in tests.
//!
//! - Call failures: [`fail_nth`] (or `ASCEND_MOCK_FAIL=API:N:CODE[,...]`)
//!   makes the N-th call of `API` (1-based; `*` counts every call) return
//!   `CODE` without running, with a message saying it was injected. `CODE`
//!   is a number or the name of an AscendCL, aclnn or HCCL code
//!   (`ACL_ERROR_RT_MEMORY_ALLOCATION`).
//! - Task failures: [`fail_nth_task`] (or
//!   `ASCEND_MOCK_FAIL_TASK=API:N:CODE[,...]`) makes the N-th queued task of
//!   `API` (`*` counts every such task) fail with `CODE` when the stream
//!   reaches it, without running: the queueing call succeeds, and the
//!   failure surfaces the way a device fault does, at the next
//!   synchronisation of the stream or wait on a later event. Only device
//!   work counts as a task here, as the code that queues a task says
//!   (`stream::TaskKind`): asynchronous copies and memsets
//!   (`aclrtMemcpyAsync`, `aclrtMemcpy2dAsync`, `aclrtMemsetAsync`),
//!   operators (phase two, counted under the operator's name, `aclnnAdd`)
//!   and HCCL collectives and transfers; event records and waits, host
//!   functions and report callbacks are not.
//! - Device loss: [`lose_device`] (or `ASCEND_MOCK_DEVICE_LOST=DEV:N`):
//!   from the N-th call on, every call that acts on device `DEV` (through
//!   its id, a context, stream or event of it, or its memory), and every
//!   task still queued on its streams, fails with
//!   `ACL_ERROR_RT_LOST_HEARTBEAT` (507010), the runtime's code for a
//!   device that stopped answering. `aclrtQueryDeviceStatus` reports
//!   `ACL_RT_DEVICE_STATUS_ABNORMAL`; `aclrtResetDevice` and `aclFinalize`
//!   still release the device's resources.
//! - Jitter: [`set_jitter`] (or `ASCEND_MOCK_JITTER=SEED[:MAX_US]`, default
//!   `MAX_US` 500): before each stream task runs, its worker sleeps a
//!   pseudo-random time in `0..=MAX_US` microseconds drawn from the seed,
//!   the stream and the task's sequence number.
//!
//! Counting: every exported call passes through `on_call` (from the
//! call gate, `gate`), which counts it per API and in total.
//! Counts start at process start and restart at [`clear`]. Calls without
//! an error channel (`aclGetRecentErrMsg`, `aclDataTypeSize`, ...) are
//! counted too but never fail. [`trace_calls`] also records every call in
//! order ([`take_trace`]), so that a sweep knows which API the N-th call is
//! and whether it can be failed. The environment
//! is read once, when the first `aclInit` is called (so `aclInit:1:CODE`
//! works); an invalid value makes that `aclInit` fail.
//!
//! Invariants: a rule fires at most once (on exactly the N-th count); a
//! lost device stays lost until [`clear`].
//!
//! Layer: gate layer, above `error` only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ascend_sys::*;

use crate::error::{MockError, MockResult};

/// The error code of a lost device.
pub const DEVICE_LOST_CODE: aclError = ACL_ERROR_RT_LOST_HEARTBEAT;

/// Default upper bound of a jitter delay, in microseconds.
pub const DEFAULT_JITTER_US: u64 = 500;

/// Seeded delays before stream tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    /// The seed.
    pub seed: u64,
    /// The longest delay, in microseconds.
    pub max_us: u64,
}

#[derive(Debug, Clone)]
struct Rule {
    api: String,
    nth: u64,
    code: aclError,
    source: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct LostRule {
    device: u32,
    from: u64,
}

/// One call recorded by [`trace_calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracedCall {
    /// The exported function.
    pub api: &'static str,
    /// Its count among the calls of `api` (1-based, as [`fail_nth`] counts).
    pub nth: u64,
    /// Its count among all calls (as `"*"` counts).
    pub total: u64,
    /// Whether an injected rule can fail it (false for functions without an
    /// error channel).
    pub injectable: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    task_rules: Vec<Rule>,
    task_counts: HashMap<&'static str, u64>,
    task_total: u64,
    /// The tasks queued since [`trace_tasks`] turned tracing on.
    task_trace: Option<Vec<TracedTask>>,
    lost: Vec<LostRule>,
    counts: HashMap<&'static str, u64>,
    total: u64,
    env_loaded: bool,
    /// The calls recorded since [`trace_calls`] turned tracing on.
    trace: Option<Vec<TracedCall>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// Bit `d` set: device `d` is lost (devices are fewer than 64).
static LOST: AtomicU64 = AtomicU64::new(0);
static JITTER_ON: AtomicBool = AtomicBool::new(false);
static JITTER: Mutex<Option<Jitter>> = Mutex::new(None);

fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

/// Makes the `n`-th call of `api` (1-based, counted since process start or
/// the last [`clear`]; `"*"` counts every call) fail with `code`.
pub fn fail_nth(api: &str, n: u64, code: aclError) {
    with_state(|s| {
        s.rules.push(Rule {
            api: api.to_string(),
            nth: n,
            code,
            source: "fault::fail_nth",
        })
    });
}

/// Makes the `n`-th queued task of `api` (1-based, counted since process
/// start or the last [`clear`]; `"*"` counts every task of device work)
/// fail with `code` when its stream reaches it.
pub fn fail_nth_task(api: &str, n: u64, code: aclError) {
    with_state(|s| {
        s.task_rules.push(Rule {
            api: api.to_string(),
            nth: n,
            code,
            source: "fault::fail_nth_task",
        })
    });
}

/// One queued task recorded by [`trace_tasks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracedTask {
    /// The API that queued it (the operator's name for phase two).
    pub api: &'static str,
    /// Its count among the tasks of `api` (as [`fail_nth_task`] counts).
    pub nth: u64,
    /// Its count among all tasks of device work (as `"*"` counts).
    pub total: u64,
}

/// Starts (`true`, discarding an earlier trace) or stops (`false`)
/// recording every queued task of device work, in order.
pub fn trace_tasks(on: bool) {
    with_state(|s| s.task_trace = on.then(Vec::new));
}

/// Takes the tasks recorded since task tracing was turned on (it goes on).
pub fn take_task_trace() -> Vec<TracedTask> {
    with_state(|s| {
        s.task_trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// How many tasks of `api` were queued (`"*"`: of every API of device
/// work) since process start or the last [`clear`].
pub fn task_count(api: &str) -> u64 {
    with_state(|s| {
        if api == "*" {
            s.task_total
        } else {
            s.task_counts.get(api).copied().unwrap_or(0)
        }
    })
}

/// Counts a task of device work queued under `name` (the stream calls
/// this only for tasks their queueing code marked as device work) and
/// returns the injected failure it must report instead of running, when a
/// task rule says so.
pub(crate) fn on_task(name: &'static str) -> Option<MockError> {
    with_state(|s| {
        s.task_total += 1;
        let n = {
            let c = s.task_counts.entry(name).or_insert(0);
            *c += 1;
            *c
        };
        let total = s.task_total;
        if let Some(t) = s.task_trace.as_mut() {
            t.push(TracedTask {
                api: name,
                nth: n,
                total,
            });
        }
        fired(&s.task_rules, name, n, total, "task")
    })
}

/// Makes `device` lost from the `n`-th call (counted as for `*`) on.
pub fn lose_device(device: u32, n: u64) {
    with_state(|s| {
        s.lost.push(LostRule { device, from: n });
        mark_lost(s);
    });
}

/// Sets or removes the jitter of stream tasks.
pub fn set_jitter(jitter: Option<Jitter>) {
    *JITTER.lock().unwrap_or_else(|e| e.into_inner()) = jitter;
    JITTER_ON.store(jitter.is_some_and(|j| j.max_us > 0), Ordering::SeqCst);
}

/// Starts (`true`, discarding an earlier trace) or stops (`false`)
/// recording every call, from any thread, in order.
pub fn trace_calls(on: bool) {
    with_state(|s| s.trace = on.then(Vec::new));
}

/// Takes the calls recorded since tracing was turned on (tracing goes on).
pub fn take_trace() -> Vec<TracedCall> {
    with_state(|s| s.trace.as_mut().map(std::mem::take).unwrap_or_default())
}

/// Removes every rule (call and task), lost device and jitter, and
/// restarts the counts and the traces (tracing stays on if it was). The environment is not read
/// again.
pub fn clear() {
    with_state(|s| {
        s.rules.clear();
        s.task_rules.clear();
        s.lost.clear();
        s.counts.clear();
        s.total = 0;
        s.task_counts.clear();
        s.task_total = 0;
        if let Some(t) = s.trace.as_mut() {
            t.clear();
        }
        if let Some(t) = s.task_trace.as_mut() {
            t.clear();
        }
    });
    LOST.store(0, Ordering::SeqCst);
    set_jitter(None);
}

/// How many calls of `api` were made (`"*"`: of every API) since process
/// start or the last [`clear`].
pub fn call_count(api: &str) -> u64 {
    with_state(|s| {
        if api == "*" {
            s.total
        } else {
            s.counts.get(api).copied().unwrap_or(0)
        }
    })
}

/// Whether `device` is lost.
pub fn device_lost(device: u32) -> bool {
    device < 64 && LOST.load(Ordering::Relaxed) & (1 << device) != 0
}

/// Fails with the lost-device error when `device` is lost.
pub fn check_device(device: u32) -> MockResult<()> {
    if device_lost(device) {
        return Err(lost_error(device));
    }
    Ok(())
}

/// The error of an operation on the lost `device`.
pub fn lost_error(device: u32) -> MockError {
    MockError::new(
        DEVICE_LOST_CODE,
        format!(
            "device {device} is lost (heartbeat lost; injected with ASCEND_MOCK_DEVICE_LOST or fault::lose_device)"
        ),
    )
}

fn mark_lost(s: &State) {
    for r in &s.lost {
        if s.total >= r.from && r.device < 64 {
            LOST.fetch_or(1 << r.device, Ordering::SeqCst);
        }
    }
}

/// The error of the rule among `rules` that fires for the `n`-th `what`
/// (`"call"` or `"task"`) of `api`, the `total`-th of all: "injected
/// failure (fault::fail_nth: call 3 of aclrtMalloc fails with 207001)",
/// "injected task failure (...)".
fn fired(rules: &[Rule], api: &str, n: u64, total: u64, what: &str) -> Option<MockError> {
    let r = rules
        .iter()
        .find(|r| (r.api == api && r.nth == n) || (r.api == "*" && r.nth == total))?;
    let which = if r.api == "*" {
        format!("{what} {total} of all {what}s")
    } else {
        format!("{what} {n} of {api}")
    };
    let kind = if what == "task" {
        "task failure"
    } else {
        "failure"
    };
    Some(MockError::new(
        r.code,
        format!(
            "injected {kind} ({}: {which} fails with {})",
            r.source, r.code
        ),
    ))
}

/// Counts a call of `api` and fails it when a rule says so. Called by the
/// shared wrappers of every exported function.
pub(crate) fn on_call(api: &'static str) -> MockResult<()> {
    let env_error = if api == "aclInit" {
        load_env_once()
    } else {
        Ok(())
    };
    let fired = with_state(|s| {
        s.total += 1;
        let n = {
            let c = s.counts.entry(api).or_insert(0);
            *c += 1;
            *c
        };
        if !s.lost.is_empty() {
            mark_lost(s);
        }
        let total = s.total;
        if let Some(t) = s.trace.as_mut() {
            t.push(TracedCall {
                api,
                nth: n,
                total,
                injectable: true,
            });
        }
        fired(&s.rules, api, n, total, "call")
    });
    env_error.map_err(|why| MockError::new(ACL_ERROR_INVALID_PARAM, why))?;
    match fired {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Counts a call of a function that has no error channel
/// (`aclGetRecentErrMsg`, `aclDataTypeSize`, ...): never injected.
pub(crate) fn count_only(api: &'static str) {
    with_state(|s| {
        s.total += 1;
        let n = {
            let c = s.counts.entry(api).or_insert(0);
            *c += 1;
            *c
        };
        if !s.lost.is_empty() {
            mark_lost(s);
        }
        let total = s.total;
        if let Some(t) = s.trace.as_mut() {
            t.push(TracedCall {
                api,
                nth: n,
                total,
                injectable: false,
            });
        }
    });
}

/// The delay before task `seq` of stream `stream_id`, if jitter is on.
pub(crate) fn jitter_delay(stream_id: u64, seq: u64) -> Option<Duration> {
    if !JITTER_ON.load(Ordering::Relaxed) {
        return None;
    }
    let j = (*JITTER.lock().unwrap_or_else(|e| e.into_inner()))?;
    if j.max_us == 0 {
        return None;
    }
    let r = splitmix64(j.seed ^ splitmix64(stream_id ^ splitmix64(seq)));
    Some(Duration::from_micros(r % (j.max_us + 1)))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Expands a code list to a `&[(name, value)]` table.
macro_rules! code_table {
    ($($name:ident = $value:expr),* $(,)?) => {
        &[$((stringify!($name), $value as i64)),*]
    };
}

/// The named AscendCL, aclnn and HCCL codes.
fn code_tables() -> [&'static [(&'static str, i64)]; 3] {
    [
        ascend_sys::for_each_acl_error!(code_table),
        ascend_sys::for_each_aclnn_error!(code_table),
        ascend_sys::for_each_hccl_result!(code_table),
    ]
}

/// Parses an error code: a number or a known code name.
pub fn parse_code(text: &str) -> Result<aclError, String> {
    let t = text.trim();
    if let Ok(v) = t.parse::<i64>() {
        return i32::try_from(v).map_err(|_| format!("code {t} does not fit in 32 bits"));
    }
    code_tables()
        .iter()
        .flat_map(|t| t.iter())
        .find(|(name, _)| *name == t)
        .map(|(_, v)| *v as aclError)
        .ok_or_else(|| format!("{t:?} is neither a number nor a known error code name"))
}

/// Parses `API:N:CODE[,API:N:CODE...]` into `(api, n, code)` triples.
pub fn parse_fail_spec(text: &str) -> Result<Vec<(String, u64, aclError)>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parts: Vec<&str> = item.split(':').collect();
        let [api, n, code] = parts.as_slice() else {
            return Err(format!("{item:?} is not API:N:CODE"));
        };
        let api = api.trim();
        if api.is_empty() {
            return Err(format!("{item:?} names no API"));
        }
        let n: u64 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("{item:?}: N must be a call number >= 1"))?;
        out.push((api.to_string(), n, parse_code(code)?));
    }
    Ok(out)
}

/// Parses `DEV:N`.
pub fn parse_lost_spec(text: &str) -> Result<(u32, u64), String> {
    let (d, n) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not DEV:N"))?;
    let d: u32 = d
        .trim()
        .parse()
        .ok()
        .filter(|d| *d < 64)
        .ok_or_else(|| format!("{text:?}: DEV must be a device id below 64"))?;
    let n: u64 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{text:?}: N must be a call number >= 1"))?;
    Ok((d, n))
}

/// Parses `SEED[:MAX_US]`.
pub fn parse_jitter_spec(text: &str) -> Result<Jitter, String> {
    let t = text.trim();
    let (seed, max) = match t.split_once(':') {
        Some((s, m)) => (s, Some(m)),
        None => (t, None),
    };
    let seed: u64 = seed
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: SEED must be an unsigned integer"))?;
    let max_us = match max {
        Some(m) => m
            .trim()
            .parse()
            .ok()
            .filter(|m| *m <= 1_000_000)
            .ok_or_else(|| format!("{text:?}: MAX_US must be an integer up to 1000000"))?,
        None => DEFAULT_JITTER_US,
    };
    Ok(Jitter { seed, max_us })
}

fn load_env_once() -> Result<(), String> {
    if with_state(|s| s.env_loaded) {
        return Ok(());
    }
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    let fail = match var("ASCEND_MOCK_FAIL") {
        Some(v) => parse_fail_spec(&v).map_err(|e| format!("ASCEND_MOCK_FAIL: {e}"))?,
        None => Vec::new(),
    };
    let fail_task = match var("ASCEND_MOCK_FAIL_TASK") {
        Some(v) => parse_fail_spec(&v).map_err(|e| format!("ASCEND_MOCK_FAIL_TASK: {e}"))?,
        None => Vec::new(),
    };
    let lost = match var("ASCEND_MOCK_DEVICE_LOST") {
        Some(v) => Some(parse_lost_spec(&v).map_err(|e| format!("ASCEND_MOCK_DEVICE_LOST: {e}"))?),
        None => None,
    };
    let jitter = match var("ASCEND_MOCK_JITTER") {
        Some(v) => Some(parse_jitter_spec(&v).map_err(|e| format!("ASCEND_MOCK_JITTER: {e}"))?),
        None => None,
    };
    with_state(|s| {
        s.env_loaded = true;
        s.rules
            .extend(fail.into_iter().map(|(api, nth, code)| Rule {
                api,
                nth,
                code,
                source: "ASCEND_MOCK_FAIL",
            }));
        s.task_rules
            .extend(fail_task.into_iter().map(|(api, nth, code)| Rule {
                api,
                nth,
                code,
                source: "ASCEND_MOCK_FAIL_TASK",
            }));
        if let Some((device, from)) = lost {
            s.lost.push(LostRule { device, from });
        }
    });
    if jitter.is_some() {
        set_jitter(jitter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse_fail_spec("aclrtMalloc:3:207001, *:10:ACL_ERROR_RT_LOST_HEARTBEAT").unwrap(),
            vec![
                ("aclrtMalloc".to_string(), 3, 207001),
                ("*".to_string(), 10, 507010)
            ]
        );
        assert_eq!(parse_code("ACLNN_ERR_PARAM_INVALID"), Ok(161002));
        assert_eq!(parse_code("HCCL_E_PARA"), Ok(1));
        assert!(parse_code("NOPE").is_err());
        assert!(parse_fail_spec("aclrtMalloc:0:1").is_err());
        assert!(parse_fail_spec("aclrtMalloc:3").is_err());
        assert!(parse_fail_spec(":3:1").is_err());
        assert_eq!(parse_lost_spec("1:40"), Ok((1, 40)));
        assert!(parse_lost_spec("64:1").is_err());
        assert!(parse_lost_spec("1").is_err());
        assert_eq!(
            parse_jitter_spec("7"),
            Ok(Jitter {
                seed: 7,
                max_us: DEFAULT_JITTER_US
            })
        );
        assert_eq!(
            parse_jitter_spec("7:20"),
            Ok(Jitter {
                seed: 7,
                max_us: 20
            })
        );
        assert!(parse_jitter_spec("x:1").is_err());
        assert!(parse_jitter_spec("1:99999999").is_err());
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let a = splitmix64(1 ^ splitmix64(2 ^ splitmix64(3)));
        let b = splitmix64(1 ^ splitmix64(2 ^ splitmix64(3)));
        assert_eq!(a, b);
        assert_ne!(splitmix64(1), splitmix64(2));
    }
}
