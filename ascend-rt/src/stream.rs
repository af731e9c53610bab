//! Streams: ordered queues of device work.
//!
//! Invariants:
//! - A [`Stream`] is shared as `Arc<Stream>`; buffers that were used on a
//!   stream hold a clone, so a stream outlives the work queued on it that
//!   touches memory.
//! - Every stream has a process-unique [`Stream::id`]; access tracking
//!   compares ids, so one stream costs a comparison and no event.
//! - An event a stream waits on stays alive until the stream has passed the
//!   wait: the stream keeps it together with a marker event recorded right
//!   after the wait, and lets both go once the marker has completed (checked
//!   when many have piled up, and at every synchronize).
//! - Dropping an explicit stream synchronizes it, then destroys it; errors go
//!   to the context. When the synchronize fails, the whole device is waited
//!   for instead; only when that fails too is the stream kept (leaked). The
//!   default stream is the runtime's and is never destroyed.
//! - Failed work: a stream counts the failures of its work that a host wait
//!   reported (its `failure epoch`, with the latest error). A buffer notes
//!   the epoch when a write to it is queued; a host read of it fails with
//!   that error when the epoch moved since (see `crate::memory::access`).
//!   `Stream::sync_point` that reports a failure also synchronizes the
//!   stream, which consumes the runtime's stored error: work queued after
//!   that starts clean.
//! - Host functions: the closure of [`Stream::launch_host_fn`] lives in a
//!   process-wide table under an id, and the runtime gets only the id. The
//!   trampoline takes the closure out and runs it; a closure the runtime
//!   never ran (the stream stopped on a failure, the device was lost) is
//!   dropped when its stream is dropped after its work has ended. Nothing
//!   leaks, and no pointer handed to the runtime can dangle.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ascend_sys::aclrtStream;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::result;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many waited-on events a stream keeps before it prunes the finished
/// ones.
const PRUNE_AT: usize = 16;

/// A host function waiting to run.
type HostFn = Box<dyn FnOnce() + Send>;

/// Host functions launched and not run yet, by id, with their stream's id.
static HOST_FNS: Mutex<BTreeMap<usize, (u64, HostFn)>> = Mutex::new(BTreeMap::new());

/// The next host function id (0 is never used: the runtime sees it as a
/// pointer).
static NEXT_HOST_FN: AtomicUsize = AtomicUsize::new(1);

fn host_fns() -> MutexGuard<'static, BTreeMap<usize, (u64, HostFn)>> {
    // A panic never happens under this lock (host functions run outside
    // it), so poisoning can only come from an allocation failure.
    HOST_FNS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the host function whose id the runtime passes as `args`.
unsafe extern "C" fn run_host_fn(args: *mut c_void) {
    let id = args as usize;
    let Some((_, f)) = host_fns().remove(&id) else {
        return;
    };
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "ascend-rt: a host function panicked");
    }
}

/// Drops the host functions of stream `stream` that never ran.
fn drop_host_fns_of(stream: u64) {
    let dropped: Vec<HostFn> = {
        let mut table = host_fns();
        let ids: Vec<usize> = table
            .iter()
            .filter(|(_, (s, _))| *s == stream)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| table.remove(&id).map(|(_, f)| f))
            .collect()
    };
    // Dropped outside the lock: their captures may run arbitrary code.
    drop(dropped);
}

/// A stream of one context.
#[derive(Debug)]
pub struct Stream {
    id: u64,
    ctx: Arc<Context>,
    handle: aclrtStream,
    is_default: bool,
    /// Events this stream waits on (or waited on), each with a marker
    /// recorded on this stream after the wait.
    waits: Mutex<Vec<(Event, Event)>>,
    /// Failures of this stream's work reported to the host so far.
    failures: Mutex<Failures>,
}

/// The failures of a stream's work that host waits reported.
#[derive(Debug, Default)]
struct Failures {
    /// How many were reported; grows by one per reported failure.
    epoch: u64,
    /// The latest one.
    last: Option<Error>,
}

// SAFETY: a stream handle may be used from any thread; the runtime
// serialises submissions to it. This type never dereferences it, and its
// own mutable state is behind a mutex.
unsafe impl Send for Stream {}
// SAFETY: as above; every method takes `&self`.
unsafe impl Sync for Stream {}

impl Stream {
    pub(crate) fn new(ctx: &Arc<Context>) -> Result<Arc<Stream>> {
        ctx.bind_to_thread()?;
        let handle = result::acl::stream::create()?;
        Ok(Stream::wrap(ctx, handle, false))
    }

    pub(crate) fn default_of(ctx: &Arc<Context>) -> Arc<Stream> {
        Stream::wrap(ctx, std::ptr::null_mut(), true)
    }

    fn wrap(ctx: &Arc<Context>, handle: aclrtStream, is_default: bool) -> Arc<Stream> {
        Arc::new(Stream {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ctx: ctx.clone(),
            handle,
            is_default,
            waits: Mutex::new(Vec::new()),
            failures: Mutex::new(Failures::default()),
        })
    }

    /// A process-unique id (never reused).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The context the stream belongs to.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The raw handle (null for the default stream), for calls this crate
    /// does not wrap. Bind the context first.
    pub fn handle(&self) -> aclrtStream {
        self.handle
    }

    /// Whether this is the context's default stream.
    pub fn is_default(&self) -> bool {
        self.is_default
    }

    pub(crate) fn check_same_device(&self, ctx: &Arc<Context>, api: &'static str) -> Result<()> {
        if self.ctx.ordinal() == ctx.ordinal() {
            Ok(())
        } else {
            Err(Error::invalid(
                api,
                format!(
                    "the stream runs on {} but the event belongs to {}",
                    self.ctx.device(),
                    ctx.device()
                ),
            ))
        }
    }

    pub(crate) fn check_same_context(&self, ctx: &Arc<Context>, api: &'static str) -> Result<()> {
        if Arc::ptr_eq(&self.ctx, ctx) || self.ctx.handle() == ctx.handle() {
            Ok(())
        } else {
            Err(Error::invalid(
                api,
                format!(
                    "the stream belongs to a context of {} but the object to a context of {}",
                    self.ctx.device(),
                    ctx.device()
                ),
            ))
        }
    }

    /// Blocks until all work queued so far has finished.
    pub fn synchronize(&self) -> Result<()> {
        self.ctx.bind_to_thread()?;
        // SAFETY: the stream is live while `self` is.
        let r = unsafe { result::acl::stream::synchronize(self.handle) };
        if let Err(e) = &r {
            self.note_failure(e);
        }
        // Another thread may have queued a wait meanwhile: let go only of
        // the events whose marker has completed.
        self.prune_waits();
        r
    }

    /// Drops the waited-on events the stream has passed (marker complete,
    /// or reported failed, which the runtime does only for a finished
    /// record; the wait then failed on this stream, which reports it).
    fn prune_waits(&self) {
        let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        // Any other failed query keeps the entry; it is retried later.
        waits.retain(|(_, m)| {
            let done = matches!(m.is_complete_inner(), Ok(true));
            !done && !m.reported_failure()
        });
    }

    /// Counts a failure of this stream's work that a host wait reported.
    fn note_failure(&self, e: &Error) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.epoch += 1;
        f.last = Some(e.clone());
    }

    /// The number of failures of this stream's work reported so far.
    pub(crate) fn failure_epoch(&self) -> u64 {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .epoch
    }

    /// The latest reported failure if any was reported after `epoch` (a
    /// [`Stream::failure_epoch`] value): work queued on this stream before
    /// that report may not have run.
    pub(crate) fn failed_since(&self, epoch: u64) -> Option<Error> {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.epoch == epoch {
            return None;
        }
        f.last.clone()
    }

    /// Whether all work queued so far has finished.
    pub fn is_complete(&self) -> Result<bool> {
        self.ctx.bind_to_thread()?;
        // SAFETY: the stream is live while `self` is.
        unsafe { result::acl::stream::query(self.handle) }
    }

    /// Makes later work on this stream wait until `event` completes. The
    /// event may belong to another context of the same device. The stream
    /// keeps a clone of the event until it has passed the wait.
    pub fn wait(&self, event: &Event) -> Result<()> {
        self.ctx.check_err()?;
        self.wait_inner(event)
    }

    fn wait_inner(&self, event: &Event) -> Result<()> {
        self.check_same_device(event.context(), "Stream::wait")?;
        self.ctx.bind()?;
        // SAFETY: both are live; the clone kept below keeps the event alive
        // until this stream has passed the wait.
        unsafe { result::acl::stream::wait_event(self.handle, event.handle()) }?;
        let marker = Event::create(&self.ctx)?;
        marker.record_inner(self)?;
        let len = {
            let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
            waits.push((event.clone(), marker));
            waits.len()
        };
        if len >= PRUNE_AT {
            self.prune_waits();
        }
        Ok(())
    }

    /// Makes later work on this stream wait for all work queued on `other`
    /// so far (an event recorded on `other` now, waited on here).
    pub fn join(&self, other: &Stream) -> Result<()> {
        self.ctx.check_err()?;
        self.join_inner(other)
    }

    pub(crate) fn join_inner(&self, other: &Stream) -> Result<()> {
        if other.id == self.id {
            return Ok(());
        }
        let ev = Event::create(&other.ctx)?;
        ev.record_inner(other)?;
        self.wait_inner(&ev)
    }

    /// Records a new event on this stream and returns it.
    pub fn record_event(&self) -> Result<Event> {
        self.ctx.check_err()?;
        self.record_event_inner()
    }

    fn record_event_inner(&self) -> Result<Event> {
        let ev = Event::create(&self.ctx)?;
        ev.record_inner(self)?;
        Ok(ev)
    }

    /// Blocks until the work queued on this stream so far has finished, via
    /// an event (other work queued later is not waited for). When work
    /// before the point failed, returns its error, counts the failure, and
    /// synchronizes the whole stream to consume the runtime's stored copy of
    /// it (which would otherwise fail every later point too).
    pub(crate) fn sync_point(&self) -> Result<()> {
        let waited = self.record_event_inner()?.synchronize_inner();
        if let Err(e) = &waited {
            self.note_failure(e);
            // The stream's stored error is the one the event reported (the
            // runtime keeps the first failure): its result adds nothing.
            let _consumed = self.ctx.bind().and_then(|()| {
                // SAFETY: the stream is live while `self` is.
                unsafe { result::acl::stream::synchronize(self.handle) }
            });
            self.prune_waits();
        }
        waited
    }

    /// Runs `f` on a runtime thread once the stream reaches this point;
    /// later work on the stream waits until `f` returns. `f` must not call
    /// AscendCL (the runtime may deadlock); a panic in `f` is caught and
    /// reported on stderr.
    pub fn launch_host_fn<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<()> {
        self.ctx.bind_to_thread()?;
        let id = NEXT_HOST_FN.fetch_add(1, Ordering::Relaxed);
        host_fns().insert(id, (self.id, Box::new(f)));
        // The runtime gets the id, not a pointer: a call that never comes,
        // or comes for an id already dropped, finds nothing to run.
        let args = std::ptr::without_provenance_mut::<c_void>(id);
        // A host function that calls AscendCL can deadlock: not memory unsafety.
        // SAFETY: the stream is live; `run_host_fn` only reads `args` as an
        // integer, so it stays valid however late (or often) it comes.
        let r =
            unsafe { result::acl::stream::launch_host_func(self.handle, Some(run_host_fn), args) };
        if r.is_err() {
            // Never launched: drop it now (outside the table's lock).
            let f = host_fns().remove(&id);
            drop(f);
        }
        r
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut ended = false;
        let r = self.ctx.bind().and_then(|()| {
            // SAFETY: the stream is live until destroyed below.
            let waited = unsafe { result::acl::stream::synchronize(self.handle) };
            if waited.is_err() && self.ctx.wait_all_work().is_err() {
                // Neither wait worked: its work may still run.
                return waited;
            }
            ended = true;
            self.waits.get_mut().map(Vec::clear).ok();
            if self.is_default {
                return waited;
            }
            // SAFETY: explicit stream whose work has finished (it or the
            // whole device was synchronized), never used again.
            let destroyed = unsafe { result::acl::stream::destroy(self.handle) };
            waited.and(destroyed)
        });
        if ended {
            // The stream's work has ended: a host function still waiting
            // was skipped and will never run.
            drop_host_fns_of(self.id);
        }
        self.ctx.record_result(r);
    }
}
