//! Streams: an in-order task queue run by one worker thread per stream.
//!
//! Every asynchronous operation (copy, memset, event record and wait, host
//! function, operator) is a [`Task`] queued with `runtime::enqueue` or
//! [`Stream::push`]. Tasks get consecutive sequence numbers starting at 1;
//! `completed` is the sequence number of the last finished task, so a
//! synchronisation waits for `completed >= submitted-at-call-time`.
//!
//! Invariants:
//! - Tasks run one at a time, in submission order, on the stream's worker.
//! - A failed task (an `Err`, or a panic caught on the worker) stores its
//!   error; the next synchronisation of the stream returns and clears it.
//!   The first unreported error wins. With `ACL_STOP_ON_FAILURE` the tasks
//!   queued after a failure are dropped unrun until that error is reported.
//! - The stored error is sticky for events: from the failed task until a
//!   stream synchronisation clears it, every event record that the stream
//!   reaches (or drops) copies it through an [`ErrorProbe`], so waiting for
//!   that event reports the failure too (see `crate::event`). The error is
//!   stored before the worker moves past the failed task, so a record
//!   queued after it always sees it.
//! - [`Stream::shutdown`] ends the worker and joins it (drain: run what is
//!   queued; force: drop it); dropping the last `Arc<Stream>` does a drain
//!   shutdown, so no worker thread outlives its stream.
//! - `history` keeps the last [`HISTORY_LEN`] tasks run (name, sequence
//!   number and the API call that queued them), for diagnostics; a task's
//!   error names that call too.
//! - Fault injection (see `crate::fault`): with jitter on, the worker
//!   sleeps a seeded random delay before each task; once the stream's
//!   device is lost, its tasks are dropped unrun and fail with the
//!   lost-device error; a task of device work ([`TaskKind::Device`], as
//!   its queueing code says) that a task rule fails is replaced, when
//!   queued, by one that returns the injected error.
//!
//! Layer: device core, above `handle` and `hooks` only; it tells the
//! observer of host synchronisations and of its end through `hooks`.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use ascend_sys::*;

use crate::error::{MockError, MockResult, TaskError};
use crate::fault;
use crate::gate::{self, CallSite};
use crate::handle::{self, Handle, HandleKind};
use crate::hooks;

/// A unit of stream work.
pub type Task = Box<dyn FnOnce() -> Result<(), TaskError> + Send>;

/// What a queued task is, as the code that queues it says: device work
/// (a copy, a memset, an operator's phase two, an HCCL collective or
/// transfer) or host-side bookkeeping (an event record or wait, a host
/// function, a report callback). Task fault injection
/// (`fault::fail_nth_task`, `ASCEND_MOCK_FAIL_TASK`) counts and fails only
/// device work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Work the device itself would do.
    Device,
    /// Work of the runtime on the host side of the stream.
    Host,
}

/// How many finished task names a stream remembers.
pub const HISTORY_LEN: usize = 64;

struct Queued {
    seq: u64,
    name: &'static str,
    kind: TaskKind,
    /// The API call that queued the task.
    call: Option<CallSite>,
    task: Task,
}

/// A task the stream has run, as kept in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RanTask {
    /// The task's name (`aclrtMemcpyAsync`, an operator, ...).
    pub name: &'static str,
    /// Whether it was device work.
    pub kind: TaskKind,
    /// Its sequence number on the stream.
    pub seq: u64,
    /// The API call that queued it.
    pub call: Option<CallSite>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    No,
    Drain,
    Drop,
}

struct Queue {
    tasks: VecDeque<Queued>,
    submitted: u64,
    completed: u64,
    /// The first unreported task error and the call that queued the task.
    error: Option<(TaskError, Option<CallSite>)>,
    stop_on_failure: bool,
    shutdown: Shutdown,
    history: VecDeque<RanTask>,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Formats a stored task error as the host sees it: the message names the
/// stream and the call that queued the failed task.
fn reported(stream_id: u64, e: &TaskError, call: Option<CallSite>) -> MockError {
    let queued = call.map_or_else(String::new, |c| format!(" (queued by {c})"));
    MockError::new(
        e.code,
        format!("a task on stream {stream_id}{queued} failed: {}", e.message),
    )
}

/// A read-only view of a stream's stored task error, for the tasks queued
/// on the stream (event records): it does not keep the worker alive, so a
/// task may hold it without making the stream outlive itself.
#[derive(Clone)]
pub struct ErrorProbe {
    shared: Arc<Shared>,
    stream_id: u64,
}

impl ErrorProbe {
    /// The stream's unreported task error, if any, without clearing it.
    pub fn pending(&self) -> Option<MockError> {
        let q = self.shared.lock();
        q.error
            .as_ref()
            .map(|(e, call)| reported(self.stream_id, e, *call))
    }
}

/// An AscendCL stream.
pub struct Stream {
    /// The handle given to C.
    pub handle: Handle,
    /// The device the stream runs on.
    pub device: u32,
    /// The context it was created in.
    pub context: Handle,
    /// Whether it is a context's default stream.
    pub is_default: bool,
    /// The call that created it.
    pub origin: Option<CallSite>,
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    worker_id: ThreadId,
}

/// Outcome of waiting with a deadline.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// The awaited point was reached.
    Reached,
    /// The deadline passed first.
    TimedOut,
}

impl Stream {
    /// Starts a stream and its worker thread.
    pub fn spawn(device: u32, context: Handle, is_default: bool) -> MockResult<Arc<Stream>> {
        let handle = Handle::new(HandleKind::Stream);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                submitted: 0,
                completed: 0,
                error: None,
                stop_on_failure: false,
                shutdown: Shutdown::No,
                history: VecDeque::new(),
            }),
            changed: Condvar::new(),
        });
        let for_worker = shared.clone();
        let id = handle.id();
        let worker = std::thread::Builder::new()
            .name(format!("ascend-mock-stream-{id}"))
            .spawn(move || {
                // Host functions run with the stream's context current.
                handle::set_current_context(Some(context));
                worker_loop(&for_worker, device, id)
            })
            .map_err(|e| {
                MockError::new(
                    ACL_ERROR_RT_NO_STREAM_RESOURCE,
                    format!("could not start the stream's worker thread: {e}"),
                )
            })?;
        let worker_id = worker.thread().id();
        Ok(Arc::new(Stream {
            handle,
            device,
            context,
            is_default,
            origin: gate::current_call(),
            shared,
            worker: Mutex::new(Some(worker)),
            worker_id,
        }))
    }

    /// Queues `task` of `kind` under `name`; returns its sequence number.
    pub fn push(&self, name: &'static str, kind: TaskKind, task: Task) -> MockResult<u64> {
        // Device work counts for task fault injection. An injected task
        // failure replaces the task (dropped here, outside the queue's
        // lock): it fails when the stream reaches it, like a fault of the
        // device.
        let injected = match kind {
            TaskKind::Device => fault::on_task(name),
            TaskKind::Host => None,
        };
        let task = match injected {
            Some(err) => {
                drop(task);
                Box::new(move || Err(err)) as Task
            }
            None => task,
        };
        let mut q = self.shared.lock();
        if q.shutdown != Shutdown::No {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("stream {} is being destroyed", self.handle.id()),
            ));
        }
        q.submitted += 1;
        let seq = q.submitted;
        q.tasks.push_back(Queued {
            seq,
            name,
            kind,
            call: gate::current_call(),
            task,
        });
        drop(q);
        self.shared.changed.notify_all();
        Ok(seq)
    }

    /// Queues `task` under `name` as device work ([`TaskKind::Device`]);
    /// returns its sequence number.
    pub fn push_device(&self, name: &'static str, task: Task) -> MockResult<u64> {
        self.push(name, TaskKind::Device, task)
    }

    /// Waits until the task with sequence number `seq` (and so everything
    /// before it) has finished, or until `timeout` passes.
    pub fn wait_for(&self, seq: u64, timeout: Option<Duration>) -> Wait {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = self.shared.lock();
        while q.completed < seq {
            match deadline {
                None => {
                    q = self
                        .shared
                        .changed
                        .wait(q)
                        .unwrap_or_else(|e| e.into_inner())
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Wait::TimedOut;
                    }
                    q = self
                        .shared
                        .changed
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        Wait::Reached
    }

    /// Waits for everything queued so far, then returns (and clears) the
    /// error of a failed task, if any. `timeout`: `None` waits forever.
    pub fn synchronize(&self, timeout: Option<Duration>) -> MockResult<()> {
        if std::thread::current().id() == self.worker_id {
            return Err(MockError::new(
                ACL_ERROR_RT_PARAM_INVALID,
                format!(
                    "stream {} cannot be synchronised from one of its own tasks",
                    self.handle.id()
                ),
            ));
        }
        let target = self.shared.lock().submitted;
        if self.wait_for(target, timeout) == Wait::TimedOut {
            return Err(MockError::new(
                ACL_ERROR_RT_STREAM_SYNC_TIMEOUT,
                format!(
                    "stream {} did not finish within {} ms",
                    self.handle.id(),
                    timeout.unwrap_or_default().as_millis()
                ),
            ));
        }
        self.take_error()
    }

    /// Synchronises like [`Stream::synchronize`], telling the observer
    /// (`hooks::synchronize`) whether the wait was reached (even if a task
    /// failed): the race tracker then lets the host absorb the stream's
    /// clock.
    pub fn synchronize_observed(&self, timeout: Option<Duration>) -> MockResult<()> {
        hooks::synchronize(self.handle.id(), || {
            let r = self.synchronize(timeout);
            let reached = !self.is_current_worker()
                && !matches!(&r, Err(e) if e.code == ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
            (r, reached)
        })
    }

    /// Whether every queued task has finished ([`Stream::is_idle`]),
    /// telling the observer (`hooks::synchronize`) when so: the host has
    /// then seen that work complete.
    pub fn query_observed(&self) -> bool {
        hooks::synchronize(self.handle.id(), || {
            let idle = self.is_idle();
            (idle, idle)
        })
    }

    /// Whether the calling thread is this stream's worker (inside a task).
    pub fn is_current_worker(&self) -> bool {
        std::thread::current().id() == self.worker_id
    }

    /// The sequence number of the last task queued so far.
    pub fn queued_point(&self) -> u64 {
        self.shared.lock().submitted
    }

    /// Waits until everything queued so far has run (without consuming a
    /// task error). A no-op when called from this stream's own worker.
    pub fn wait_for_queued(&self) {
        if std::thread::current().id() == self.worker_id {
            return;
        }
        let target = self.shared.lock().submitted;
        self.wait_for(target, None);
    }

    /// Returns and clears the stored task error; the message names the
    /// call that queued the failed task.
    pub fn take_error(&self) -> MockResult<()> {
        match self.shared.lock().error.take() {
            Some((e, call)) => Err(reported(self.handle.id(), &e, call)),
            None => Ok(()),
        }
    }

    /// Whether a forced shutdown (queued tasks dropped unrun) was asked for.
    #[cfg(test)]
    pub(crate) fn is_dropping(&self) -> bool {
        self.shared.lock().shutdown == Shutdown::Drop
    }

    /// A view of this stream's stored task error, for tasks queued on it.
    pub fn error_probe(&self) -> ErrorProbe {
        ErrorProbe {
            shared: self.shared.clone(),
            stream_id: self.handle.id(),
        }
    }

    /// Whether every queued task has finished.
    pub fn is_idle(&self) -> bool {
        let q = self.shared.lock();
        q.completed == q.submitted
    }

    /// Sets `ACL_STOP_ON_FAILURE` (true) or `ACL_CONTINUE_ON_FAILURE`.
    pub fn set_stop_on_failure(&self, stop: bool) {
        self.shared.lock().stop_on_failure = stop;
    }

    /// The names of the most recently run tasks, oldest first.
    pub fn history(&self) -> Vec<&'static str> {
        self.shared.lock().history.iter().map(|t| t.name).collect()
    }

    /// The most recently run tasks with the calls that queued them, oldest
    /// first.
    pub fn recent_tasks(&self) -> Vec<RanTask> {
        self.shared.lock().history.iter().copied().collect()
    }

    /// Ends the worker: runs the queued tasks first, or drops them when
    /// `force`. Joins the worker unless called from it.
    pub fn shutdown(&self, force: bool) {
        {
            let mut q = self.shared.lock();
            let wanted = if force {
                Shutdown::Drop
            } else {
                Shutdown::Drain
            };
            if q.shutdown != Shutdown::Drop {
                q.shutdown = wanted;
            }
        }
        self.shared.changed.notify_all();
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = worker
            && std::thread::current().id() != self.worker_id
        {
            // A panic escaping the worker was already turned into a task error.
            let _ = w.join();
            // Its work ran or was dropped: nothing of it can race any more.
            hooks::stream_gone(self.handle.id(), !force);
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

fn worker_loop(shared: &Shared, device: u32, stream_id: u64) {
    loop {
        let mut q = shared.lock();
        while q.tasks.is_empty() && q.shutdown == Shutdown::No {
            q = shared.changed.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.shutdown == Shutdown::Drop || (q.tasks.is_empty() && q.shutdown == Shutdown::Drain) {
            let dropped: Vec<Queued> = q.tasks.drain(..).collect();
            q.completed = q.submitted;
            drop(q);
            // Tasks are dropped outside the lock: their drop guards may
            // touch events.
            drop(dropped);
            shared.changed.notify_all();
            return;
        }
        let Some(item) = q.tasks.pop_front() else {
            continue;
        };
        let skip = q.stop_on_failure && q.error.is_some();
        drop(q);
        if !skip && let Some(delay) = fault::jitter_delay(stream_id, item.seq) {
            std::thread::sleep(delay);
        }
        let result = if skip {
            drop(item.task);
            Ok(())
        } else if fault::device_lost(device) {
            // Store the error before dropping the task: a dropped event
            // record copies the stream's error from its drop guard.
            let mut q = shared.lock();
            if q.error.is_none() {
                q.error = Some((fault::lost_error(device), item.call));
            }
            drop(q);
            drop(item.task);
            Ok(())
        } else {
            match catch_unwind(AssertUnwindSafe(item.task)) {
                Ok(r) => r,
                Err(_) => Err(MockError::new(
                    ACL_ERROR_RT_INTERNAL_ERROR,
                    format!("task {} panicked on the stream worker", item.name),
                )),
            }
        };
        let mut q = shared.lock();
        if let Err(e) = result
            && q.error.is_none()
        {
            q.error = Some((e, item.call));
        }
        q.completed = item.seq;
        if q.history.len() == HISTORY_LEN {
            q.history.pop_front();
        }
        q.history.push_back(RanTask {
            name: item.name,
            kind: item.kind,
            seq: item.seq,
            call: item.call,
        });
        drop(q);
        shared.changed.notify_all();
    }
}

/// Converts an AscendCL timeout in ms (-1 forever, 0 poll) to a duration.
pub(crate) fn timeout_from_ms(timeout: i32) -> MockResult<Option<Duration>> {
    match timeout {
        -1 => Ok(None),
        t if t >= 0 => Ok(Some(Duration::from_millis(t as u64))),
        t => Err(MockError::new(
            ACL_ERROR_INVALID_PARAM,
            format!("timeout {t} ms is invalid (use -1 to wait forever, or >= 0)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn ctx() -> Handle {
        Handle::new(HandleKind::Context)
    }

    #[test]
    fn tasks_run_in_order_and_sync_waits() {
        let s = Stream::spawn(0, ctx(), false).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        for i in 0..50 {
            let log = log.clone();
            s.push(
                "t",
                TaskKind::Host,
                Box::new(move || {
                    if i == 0 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    log.lock().unwrap().push(i);
                    Ok(())
                }),
            )
            .unwrap();
        }
        s.synchronize(None).unwrap();
        assert_eq!(*log.lock().unwrap(), (0..50).collect::<Vec<_>>());
        assert!(s.is_idle());
        assert_eq!(s.history().len(), 50);
    }

    #[test]
    fn errors_surface_once_at_sync() {
        let s = Stream::spawn(0, ctx(), false).unwrap();
        s.push(
            "bad",
            TaskKind::Host,
            Box::new(|| Err(MockError::new(ACL_ERROR_INVALID_PARAM, "op: broken"))),
        )
        .unwrap();
        let err = s.synchronize(None).unwrap_err();
        assert_eq!(err.code, ACL_ERROR_INVALID_PARAM);
        assert!(err.message.contains("op: broken"), "{}", err.message);
        s.synchronize(None).unwrap();
        s.push(
            "panics",
            TaskKind::Host,
            Box::new(|| panic!("inside a task")),
        )
        .unwrap();
        assert_eq!(
            s.synchronize(None).unwrap_err().code,
            ACL_ERROR_RT_INTERNAL_ERROR
        );
    }

    #[test]
    fn task_errors_and_history_name_the_queueing_call() {
        let s = Stream::spawn(0, ctx(), false).unwrap();
        let mut number = 0;
        let code = crate::gate::api_call("aclQueueForTest", || {
            number = gate::current_call().unwrap().number;
            s.push(
                "bad",
                TaskKind::Host,
                Box::new(|| Err(MockError::new(ACL_ERROR_INVALID_PARAM, "op: broken"))),
            )
            .map(|_| ())
        });
        assert_eq!(code, ACL_SUCCESS);
        let err = s.synchronize(None).unwrap_err();
        assert!(
            err.message.starts_with(&format!(
                "a task on stream {} (queued by aclQueueForTest (call #{number})) failed: op: broken",
                s.handle.id()
            )),
            "{}",
            err.message
        );
        let ran = s.recent_tasks();
        assert_eq!(ran.len(), 1);
        assert_eq!((ran[0].name, ran[0].seq), ("bad", 1));
        assert_eq!(ran[0].call.map(|c| c.api), Some("aclQueueForTest"));
    }

    #[test]
    fn stop_on_failure_skips_later_tasks() {
        let s = Stream::spawn(0, ctx(), false).unwrap();
        s.set_stop_on_failure(true);
        let ran = Arc::new(AtomicU32::new(0));
        s.push(
            "bad",
            TaskKind::Host,
            Box::new(|| Err(MockError::new(ACL_ERROR_INVALID_PARAM, "x"))),
        )
        .unwrap();
        let r = ran.clone();
        s.push(
            "later",
            TaskKind::Host,
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
        )
        .unwrap();
        assert!(s.synchronize(None).is_err());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn sync_times_out_and_force_drops_work() {
        let s = Stream::spawn(0, ctx(), false).unwrap();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let g = gate.clone();
        s.push(
            "blocked",
            TaskKind::Host,
            Box::new(move || {
                let (m, c) = &*g;
                let mut open = m.lock().unwrap();
                while !*open {
                    open = c.wait(open).unwrap();
                }
                Ok(())
            }),
        )
        .unwrap();
        let ran = Arc::new(AtomicU32::new(0));
        let r = ran.clone();
        s.push(
            "never",
            TaskKind::Host,
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
        )
        .unwrap();
        let err = s.synchronize(Some(Duration::from_millis(10))).unwrap_err();
        assert_eq!(err.code, ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
        assert!(!s.is_idle());
        // Force shutdown from another thread while the first task blocks;
        // release it so the worker can observe the shutdown.
        let s2 = s.clone();
        let stopper = std::thread::spawn(move || s2.shutdown(true));
        std::thread::sleep(Duration::from_millis(10));
        {
            let (m, c) = &*gate;
            *m.lock().unwrap() = true;
            c.notify_all();
        }
        stopper.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert!(s.push("late", TaskKind::Host, Box::new(|| Ok(()))).is_err());
    }

    #[test]
    fn timeouts_convert() {
        assert_eq!(timeout_from_ms(-1).unwrap(), None);
        assert_eq!(timeout_from_ms(0).unwrap(), Some(Duration::ZERO));
        assert!(timeout_from_ms(-5).is_err());
    }
}
