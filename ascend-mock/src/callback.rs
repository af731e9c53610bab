//! Report-thread callbacks: `aclrtSubscribeReport` binds a user thread to
//! a stream, `aclrtLaunchCallback` queues a stream task that hands a
//! callback to that thread, and `aclrtProcessReport`, called in a loop on
//! the bound thread, runs the callbacks.
//!
//! Threads are named by their `pthread_t` (what `pthread_create` returns
//! and `pthread_self` gives inside the thread), as CANN's callers pass it.
//!
//! Invariants: a stream is bound to at most one thread; each report runs
//! at most once, on its thread; a blocking report (`ACL_CALLBACK_BLOCK`)
//! holds its stream until the callback has run or its subscription was
//! removed, so unsubscribing never leaves a stream waiting forever.
//!
//! Layer: device core, above `stream` and `handle`.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ascend_sys::*;

use crate::error::{MockError, MockResult};
use crate::handle::Handle;
use crate::stream::{Stream, TaskKind};

unsafe extern "C" {
    /// The calling thread's id; POSIX gives it no preconditions.
    safe fn pthread_self() -> std::ffi::c_ulong;
}

/// The `pthread_t` of the calling thread, as a `u64`.
pub fn current_thread_id() -> u64 {
    pthread_self() as u64
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Ran,
    Dropped,
}

struct Done {
    state: Mutex<State>,
    changed: Condvar,
}

impl Done {
    fn finish(&self, state: State) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.changed.notify_all();
    }
}

struct Report {
    stream: Handle,
    func: unsafe extern "C" fn(*mut c_void),
    data: usize,
    done: Arc<Done>,
}

#[derive(Default)]
struct Hub {
    /// stream -> bound thread
    subscriptions: HashMap<Handle, u64>,
    /// thread -> reports waiting for `aclrtProcessReport`
    queues: HashMap<u64, VecDeque<Report>>,
}

static HUB: Mutex<Option<Hub>> = Mutex::new(None);
static HUB_CHANGED: Condvar = Condvar::new();

fn hub() -> MutexGuard<'static, Option<Hub>> {
    HUB.lock().unwrap_or_else(|e| e.into_inner())
}

/// Binds `stream`'s callbacks to `thread`.
pub fn subscribe(thread: u64, stream: &Stream) -> MockResult<()> {
    let mut guard = hub();
    let h = guard.get_or_insert_with(Hub::default);
    if let Some(t) = h.subscriptions.get(&stream.handle) {
        return Err(MockError::new(
            ACL_ERROR_REPEAT_SUBSCRIBE,
            format!(
                "stream {} is already subscribed by thread {t:#x}",
                stream.handle.id()
            ),
        ));
    }
    h.subscriptions.insert(stream.handle, thread);
    Ok(())
}

/// Removes the binding of `stream` to `thread`; reports of that stream
/// not yet processed are dropped (their streams continue).
pub fn unsubscribe(thread: u64, stream: &Stream) -> MockResult<()> {
    let mut guard = hub();
    let h = guard.get_or_insert_with(Hub::default);
    match h.subscriptions.get(&stream.handle) {
        Some(t) if *t == thread => {}
        _ => {
            return Err(MockError::new(
                ACL_ERROR_STREAM_NOT_SUBSCRIBE,
                format!(
                    "stream {} is not subscribed by thread {thread:#x}",
                    stream.handle.id()
                ),
            ));
        }
    }
    h.subscriptions.remove(&stream.handle);
    if let Some(q) = h.queues.get_mut(&thread) {
        q.retain(|r| {
            let keep = r.stream != stream.handle;
            if !keep {
                r.done.finish(State::Dropped);
            }
            keep
        });
    }
    Ok(())
}

/// Queues on `stream` a task that hands `func(data)` to the subscribed
/// thread; with `block`, later tasks of the stream wait for it to run.
pub fn launch(
    stream: &Stream,
    func: unsafe extern "C" fn(*mut c_void),
    data: *mut c_void,
    block: bool,
) -> MockResult<()> {
    if !hub()
        .as_ref()
        .is_some_and(|h| h.subscriptions.contains_key(&stream.handle))
    {
        return Err(MockError::new(
            ACL_ERROR_STREAM_NOT_SUBSCRIBE,
            format!(
                "stream {} has no subscribed report thread; call aclrtSubscribeReport first",
                stream.handle.id()
            ),
        ));
    }
    let handle = stream.handle;
    let data = data as usize;
    stream.push(
        "aclrtLaunchCallback",
        TaskKind::Host,
        Box::new(move || {
            let done = Arc::new(Done {
                state: Mutex::new(State::Pending),
                changed: Condvar::new(),
            });
            {
                let mut guard = hub();
                let h = guard.get_or_insert_with(Hub::default);
                let Some(&thread) = h.subscriptions.get(&handle) else {
                    return Err(MockError::new(
                        ACL_ERROR_STREAM_NOT_SUBSCRIBE,
                        "aclrtLaunchCallback: the stream was unsubscribed before the callback ran",
                    ));
                };
                h.queues.entry(thread).or_default().push_back(Report {
                    stream: handle,
                    func,
                    data,
                    done: done.clone(),
                });
            }
            HUB_CHANGED.notify_all();
            if block {
                let mut st = done.state.lock().unwrap_or_else(|e| e.into_inner());
                while *st == State::Pending {
                    st = done.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
            Ok(())
        }),
    )?;
    Ok(())
}

/// Runs one callback queued for the calling thread, waiting up to
/// `timeout` (`None`: forever).
pub fn process(timeout: Option<Duration>) -> MockResult<()> {
    let me = current_thread_id();
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut guard = hub();
    loop {
        let h = guard.get_or_insert_with(Hub::default);
        if let Some(r) = h.queues.get_mut(&me).and_then(VecDeque::pop_front) {
            drop(guard);
            // SAFETY: the callback and its data were supplied together to
            // aclrtLaunchCallback, whose contract makes them valid until the
            // callback has run.
            unsafe { (r.func)(r.data as *mut c_void) };
            r.done.finish(State::Ran);
            return Ok(());
        }
        let subscribed = h.subscriptions.values().any(|t| *t == me);
        guard = match deadline {
            None => HUB_CHANGED.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(if subscribed {
                        MockError::new(
                            ACL_ERROR_RT_REPORT_TIMEOUT,
                            format!(
                                "no callback arrived within {} ms",
                                timeout.unwrap_or_default().as_millis()
                            ),
                        )
                    } else {
                        MockError::new(
                            ACL_ERROR_RT_THREAD_SUBSCRIBE,
                            format!(
                                "thread {me:#x} is not subscribed to any stream (aclrtSubscribeReport) and no callback arrived"
                            ),
                        )
                    });
                }
                HUB_CHANGED
                    .wait_timeout(guard, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}
