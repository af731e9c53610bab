//! The process-wide state of the mock: initialisation, devices, contexts
//! and the handle tables of streams and events.
//!
//! Invariants:
//! - `RUNTIME` is `Some` exactly between a successful `aclInit` and the
//!   matching `aclFinalize`; every call that needs the runtime goes through
//!   `with_runtime`, which reports `ACL_ERROR_UNINITIALIZE` otherwise.
//! - Handles given to C are tagged ids ([`Handle`]), never addresses, so a
//!   stale or foreign handle is looked up and refused instead of being
//!   dereferenced. Ids are never reused within a process.
//! - The current context is per thread (kept in `handle`, a context id); a
//!   thread whose context was destroyed sees `ACL_ERROR_RT_CONTEXT_NULL`.
//! - A device has a default context while its `aclrtSetDevice` reference
//!   count is above zero; all threads that set the device share it.
//! - Leaks: `aclFinalize` (and `aclrtResetDevice` for one device) lists
//!   every object the caller left alive before releasing it, as one `leak`
//!   report (see `crate::sanitizer`).
//! - Once a device is lost (`crate::fault`), every lookup that reaches it
//!   (its id, a context, stream or event of it) fails with the lost-device
//!   error; `check_device_id` alone does not, so reset still works.
//! - Lock order: `RUNTIME`, then the memory registry, then a stream's or an
//!   event's own lock. Nothing blocks on a stream while holding `RUNTIME`:
//!   streams are taken out of the tables first and then drained.
//!
//! Layer: the top of the device core: it names `stream`, `event`, `memory`
//! and the hooks, never the sanitizer, an operator family or the exports
//! (families register their leak sources, the race tracker observes through
//! `hooks`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use ascend_sys::*;

use crate::config::{self, Config};
use crate::error::{self, MockError, MockResult, ReportClass};
use crate::event::Event;
use crate::fault;
use crate::gate::{self, CallSite};
pub(crate) use crate::handle::set_current_context;
use crate::handle::{self};
pub use crate::handle::{Handle, HandleKind};
use crate::hooks;
use crate::memory::{self, Location, MemKind};
use crate::report::{self, LeakPolicy};
use crate::stream::{Stream, Task, TaskKind};

/// An AscendCL context: a device and a default stream.
pub struct Context {
    /// This context's handle.
    pub handle: Handle,
    /// The device it belongs to.
    pub device: u32,
    /// Its default stream (used when a call passes a NULL stream).
    pub default_stream: Arc<Stream>,
    /// Created by `aclrtCreateContext` (true) or by `aclrtSetDevice`.
    pub explicit: bool,
    /// The call that created it.
    pub origin: Option<CallSite>,
}

/// Per-device bookkeeping.
#[derive(Default)]
pub struct Device {
    /// Outstanding `aclrtSetDevice` calls.
    pub refcount: u32,
    /// The default context while `refcount > 0`.
    pub default_context: Option<Handle>,
}

/// Everything that exists between `aclInit` and `aclFinalize`.
pub struct Runtime {
    /// The configuration fixed at `aclInit`.
    pub config: Config,
    /// One entry per device.
    pub devices: Vec<Device>,
    /// Live contexts (default and explicit).
    pub contexts: HashMap<Handle, Arc<Context>>,
    /// Live streams, default streams included.
    pub streams: HashMap<Handle, Arc<Stream>>,
    /// Live events.
    pub events: HashMap<Handle, Arc<Event>>,
    /// `(device, peer)`: device may access peer's memory
    /// (`aclrtDeviceEnablePeerAccess` called on `device`).
    pub peers: HashSet<(u32, u32)>,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Runtime>> {
    RUNTIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `aclInit` has succeeded and `aclFinalize` has not been called.
pub fn is_initialized() -> bool {
    lock().is_some()
}

/// Runs `f` on the runtime, or fails with `ACL_ERROR_UNINITIALIZE`.
pub(crate) fn with_runtime<T>(f: impl FnOnce(&mut Runtime) -> MockResult<T>) -> MockResult<T> {
    let mut guard = lock();
    match guard.as_mut() {
        Some(rt) => f(rt),
        None => Err(MockError::new(
            ACL_ERROR_UNINITIALIZE,
            "AscendCL is not initialised; call aclInit first",
        )),
    }
}

/// `aclInit`: fixes the configuration and creates the devices.
pub(crate) fn initialize() -> MockResult<()> {
    let mut guard = lock();
    if guard.is_some() {
        return Err(MockError::new(
            ACL_ERROR_REPEAT_INITIALIZE,
            "aclInit was already called; call aclFinalize before initialising again",
        ));
    }
    let cfg =
        config::activate().map_err(|e| MockError::new(ACL_ERROR_INVALID_PARAM, e.to_string()))?;
    memory::reset_registry(cfg.devices, cfg.memory_per_device);
    memory::reload_strict();
    *guard = Some(Runtime {
        devices: (0..cfg.devices).map(|_| Device::default()).collect(),
        config: cfg,
        contexts: HashMap::new(),
        streams: HashMap::new(),
        events: HashMap::new(),
        peers: HashSet::new(),
    });
    Ok(())
}

/// `aclFinalize`: drains and drops every stream, frees all memory, and
/// reports what the caller left alive (see [`leak_check`]).
pub(crate) fn finalize() -> MockResult<()> {
    let mut guard = lock();
    let rt = guard.take().ok_or_else(|| {
        MockError::new(
            ACL_ERROR_REPEAT_FINALIZE,
            "AscendCL is not initialised (aclFinalize was already called or aclInit never was)",
        )
    })?;
    config::deactivate();
    let mut leaks = if report::enabled() {
        rt.leaked_objects(None)
    } else {
        Vec::new()
    };
    // Detach memory while no new aclInit can start; free it after the
    // streams stopped.
    let blocks = memory::detach_all();
    drop(guard);
    if report::enabled() {
        leaks.splice(0..0, blocks.iter().map(describe_block));
        leaks.extend(registered_leaks(None));
    }
    // Streams stop outside the lock: their tasks may call back into the mock.
    let streams: Vec<_> = rt.streams.into_values().collect();
    for s in &streams {
        s.shutdown(false);
    }
    drop(streams);
    let virtual_leaks = memory::release_virtual(None);
    if report::enabled() {
        leaks.extend(virtual_leaks);
    }
    drop(rt.contexts);
    drop(rt.events);
    memory::free_detached(blocks);
    memory::purge_freed();
    hooks::finalized();
    set_current_context(None);
    leak_check("finalized AscendCL", leaks)
}

/// One line of a leak report for a block of memory.
pub(crate) fn describe_block(a: &memory::Allocation) -> String {
    let what = match a.kind {
        MemKind::Device(d) => format!("device buffer on device {d}"),
        MemKind::PinnedHost => "pinned host block".to_string(),
    };
    format!(
        "{what} {:#x} of {} bytes ({} charged) allocated by {}",
        a.base,
        a.requested,
        a.size,
        origin_text(a.origin)
    )
}

fn origin_text(site: Option<CallSite>) -> String {
    site.map_or_else(|| "an internal call".to_string(), |c| c.to_string())
}

/// A source of leak-report lines, registered by an operator family (see
/// [`register_leak_source`]): given `None` (`aclFinalize`) it lists every
/// object of the family still alive; given the blocks of a device being
/// reset, only the objects whose memory lies in them.
pub(crate) type LeakSource = fn(Option<&[memory::Allocation]>) -> Vec<String>;

/// The registered leak sources, in registration order, by name.
static LEAK_SOURCES: Mutex<Vec<(&'static str, LeakSource)>> = Mutex::new(Vec::new());

/// Registers `source` under `name` (once; a second registration under the
/// same name is ignored), so that reset and finalize list its leaks after
/// the runtime's own objects.
pub(crate) fn register_leak_source(name: &'static str, source: LeakSource) {
    let mut sources = LEAK_SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    if !sources.iter().any(|(n, _)| *n == name) {
        sources.push((name, source));
    }
}

/// The leak-report lines of every registered source (see [`LeakSource`]).
pub(crate) fn registered_leaks(blocks: Option<&[memory::Allocation]>) -> Vec<String> {
    // Copied out: a source takes its own family's lock.
    let sources: Vec<LeakSource> = LEAK_SOURCES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, s)| *s)
        .collect();
    sources.into_iter().flat_map(|s| s(blocks)).collect()
}

/// Emits a `leak` report listing `leaks` (if any) found `when` (e.g. "at
/// aclFinalize"); fails with `ACL_ERROR_RT_MEMORY_FREE` when the leak
/// policy says so.
pub(crate) fn leak_check(when: &str, leaks: Vec<String>) -> MockResult<()> {
    if leaks.is_empty() || !report::enabled() {
        return Ok(());
    }
    let text = format!(
        "{} {when}: {} object{} still alive, released by the runtime:\n  {}",
        gate::current_call_text(),
        leaks.len(),
        if leaks.len() == 1 { " is" } else { "s are" },
        leaks.join("\n  ")
    );
    let report = report::report(ReportClass::Leak, &text);
    error::set_message(&report.message);
    match report::leak_policy() {
        LeakPolicy::Report => Ok(()),
        LeakPolicy::Error => Err(MockError::new(ACL_ERROR_RT_MEMORY_FREE, report.message)),
    }
}

/// Whether `device` enabled access to `peer`'s memory.
pub fn peer_access_enabled(device: u32, peer: u32) -> bool {
    lock()
        .as_ref()
        .is_some_and(|rt| rt.peers.contains(&(device, peer)))
}

impl Runtime {
    /// Checks a device id against the configured count and fails for a
    /// lost device (see `crate::fault`).
    pub fn check_device(&self, device: i64) -> MockResult<u32> {
        let d = self.check_device_id(device)?;
        fault::check_device(d)?;
        Ok(d)
    }

    /// Checks a device id against the configured count only.
    pub fn check_device_id(&self, device: i64) -> MockResult<u32> {
        if device < 0 || device >= i64::from(self.config.devices) {
            return Err(MockError::new(
                ACL_ERROR_RT_INVALID_DEVICEID,
                format!(
                    "device {device} does not exist (the mock has {} devices, ids 0..{})",
                    self.config.devices, self.config.devices
                ),
            ));
        }
        Ok(device as u32)
    }

    /// The calling thread's current context (failing when its device is
    /// lost).
    pub fn current_context(&self) -> MockResult<Arc<Context>> {
        let ctx = handle::current_context()
            .and_then(|h| self.contexts.get(&h).cloned())
            .ok_or_else(|| {
                MockError::new(
                    ACL_ERROR_RT_CONTEXT_NULL,
                    "the calling thread has no current context; call aclrtSetDevice or aclrtSetCurrentContext first",
                )
            })?;
        fault::check_device(ctx.device)?;
        Ok(ctx)
    }

    /// Looks up a context handle (failing when its device is lost).
    pub fn context(&self, ptr: aclrtContext) -> MockResult<Arc<Context>> {
        let ctx = Handle::from_ptr(ptr, HandleKind::Context)
            .and_then(|h| self.contexts.get(&h).cloned())
            .ok_or_else(|| {
                MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!("{ptr:p} is not a live context"),
                )
            })?;
        fault::check_device(ctx.device)?;
        Ok(ctx)
    }

    /// Looks up a stream; NULL means the current context's default stream
    /// (failing when its device is lost).
    pub fn stream(&self, ptr: aclrtStream) -> MockResult<Arc<Stream>> {
        if ptr.is_null() {
            return Ok(self.current_context()?.default_stream.clone());
        }
        let s = Handle::from_ptr(ptr, HandleKind::Stream)
            .and_then(|h| self.streams.get(&h).cloned())
            .ok_or_else(|| {
                MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!("{ptr:p} is not a live stream"),
                )
            })?;
        fault::check_device(s.device)?;
        Ok(s)
    }

    /// Destroys the event `ptr` (records and waits already queued still
    /// complete) and tells the observer.
    pub fn destroy_event(&mut self, ptr: aclrtEvent) -> MockResult<()> {
        let e = self.event(ptr)?;
        self.events.remove(&e.handle);
        hooks::event_forgotten(e.handle.id());
        Ok(())
    }

    /// Looks up an event handle.
    pub fn event(&self, ptr: aclrtEvent) -> MockResult<Arc<Event>> {
        if ptr.is_null() {
            return Err(MockError::new(ACL_ERROR_INVALID_PARAM, "event is NULL"));
        }
        let e = Handle::from_ptr(ptr, HandleKind::Event)
            .and_then(|h| self.events.get(&h).cloned())
            .ok_or_else(|| {
                MockError::new(
                    ACL_ERROR_INVALID_PARAM,
                    format!("{ptr:p} is not a live event"),
                )
            })?;
        fault::check_device(e.device)?;
        Ok(e)
    }

    /// Creates a context on `device` with its default stream.
    pub fn create_context(&mut self, device: u32, explicit: bool) -> MockResult<Arc<Context>> {
        let handle = Handle::new(HandleKind::Context);
        let stream = Stream::spawn(device, handle, true)?;
        self.streams.insert(stream.handle, stream.clone());
        let ctx = Arc::new(Context {
            handle,
            device,
            default_stream: stream,
            explicit,
            origin: gate::current_call(),
        });
        self.contexts.insert(handle, ctx.clone());
        Ok(ctx)
    }

    /// Removes a context and every stream created in it from the tables;
    /// returns the streams so the caller can stop them outside the lock.
    pub fn remove_context(&mut self, handle: Handle) -> Vec<Arc<Stream>> {
        self.contexts.remove(&handle);
        let doomed: Vec<Handle> = self
            .streams
            .iter()
            .filter(|(_, s)| s.context == handle)
            .map(|(h, _)| *h)
            .collect();
        doomed
            .into_iter()
            .filter_map(|h| self.streams.remove(&h))
            .collect()
    }

    /// Removes everything that belongs to `device` (contexts, streams,
    /// events) and resets its reference count; returns the streams to stop.
    pub fn remove_device_objects(&mut self, device: u32) -> Vec<Arc<Stream>> {
        let dev = &mut self.devices[device as usize];
        dev.refcount = 0;
        dev.default_context = None;
        self.peers.retain(|&(a, b)| a != device && b != device);
        let ctxs: Vec<Handle> = self
            .contexts
            .values()
            .filter(|c| c.device == device)
            .map(|c| c.handle)
            .collect();
        let mut streams = Vec::new();
        for h in ctxs {
            streams.extend(self.remove_context(h));
        }
        self.events.retain(|_, e| e.device != device);
        streams
    }

    /// Leak-report lines for the streams (other than default ones),
    /// events and explicit contexts of `device` (`None`: of every device).
    pub fn leaked_objects(&self, device: Option<u32>) -> Vec<String> {
        let on = |d: u32| device.is_none_or(|x| x == d);
        let mut out: Vec<(u64, String)> = Vec::new();
        for c in self
            .contexts
            .values()
            .filter(|c| c.explicit && on(c.device))
        {
            out.push((
                c.handle.id(),
                format!(
                    "context {} on device {} created by {}",
                    c.handle.id(),
                    c.device,
                    origin_text(c.origin)
                ),
            ));
        }
        for s in self
            .streams
            .values()
            .filter(|s| !s.is_default && on(s.device))
        {
            out.push((
                s.handle.id(),
                format!(
                    "stream {} on device {} created by {}",
                    s.handle.id(),
                    s.device,
                    origin_text(s.origin)
                ),
            ));
        }
        for e in self.events.values().filter(|e| on(e.device)) {
            out.push((
                e.handle.id(),
                format!(
                    "event {} on device {} created by {}",
                    e.handle.id(),
                    e.device,
                    origin_text(e.origin)
                ),
            ));
        }
        out.sort_by_key(|(id, _)| *id);
        out.into_iter().map(|(_, line)| line).collect()
    }

    /// All streams of `device`.
    pub fn device_streams(&self, device: u32) -> Vec<Arc<Stream>> {
        self.streams
            .values()
            .filter(|s| s.device == device)
            .cloned()
            .collect()
    }
}

/// Queues `task` on `stream` (NULL: the current context's default stream)
/// for operator code. Returns `ACL_SUCCESS`, or the error code with this
/// thread's message set. A task's `Err` is reported by the stream's next
/// synchronisation.
pub fn enqueue(stream: aclrtStream, task: Task) -> aclError {
    crate::gate::api_call("enqueue", || {
        enqueue_named(stream, "task", TaskKind::Host, task).map(|_| ())
    })
}

/// Queues `task` under `name` on `stream` (NULL: the current context's
/// default stream); returns the stream and the task's sequence number.
pub fn enqueue_named(
    stream: aclrtStream,
    name: &'static str,
    kind: TaskKind,
    task: Task,
) -> MockResult<(Arc<Stream>, u64)> {
    let s = with_runtime(|rt| rt.stream(stream))?;
    let seq = s.push(name, kind, task)?;
    Ok((s, seq))
}

/// `aclrtFree` (`device`) and `aclrtFreeHost`: detaches the block at
/// `ptr` at once (the pointer is invalid from then on and its bytes count
/// as free) and returns it to the allocator once every stream has run the
/// work queued before the free. The observer may refuse the free first
/// (queued work not ordered before the host still uses the block).
pub(crate) fn free(ptr: usize, device: bool) -> MockResult<()> {
    if ptr == 0 {
        // CANN documents that aclrtFree refuses NULL; it is silent about
        // aclrtFreeHost, which the mock treats like free(NULL) unless the
        // run is strict (docs/mock.md, "NULL frees").
        if device || memory::strict() {
            let name = if device { "devPtr" } else { "hostPtr" };
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!("{name} is NULL"),
            ));
        }
        return Ok(());
    }
    if let Location::Device { device, .. } = memory::classify(ptr) {
        fault::check_device(device)?;
    }
    // Queued work not ordered before the free still uses the block.
    hooks::free(ptr, device, ACL_ERROR_RT_PARAM_INVALID)?;
    // Detach under the runtime lock so that a concurrent reset or finalize
    // cannot free the same block; note how far every stream's queue goes.
    let (block, waits) = with_runtime(|rt| {
        let block = memory::detach(ptr, device)?;
        let waits = rt
            .streams
            .values()
            .map(|s| (s.clone(), s.queued_point()))
            .collect::<Vec<_>>();
        Ok((block, waits))
    })?;
    memory::free_after(block, waits);
    Ok(())
}

/// `aclrtUnmapMem`: waits until every stream ran the work queued before
/// the call (CANN's unmap does not wait; the mock must not move the bytes
/// under a running task), then unmaps.
pub(crate) fn unmap(ptr: usize) -> MockResult<()> {
    let waits = with_runtime(|rt| {
        Ok(rt
            .streams
            .values()
            .map(|s| (s.clone(), s.queued_point()))
            .collect::<Vec<_>>())
    })?;
    for (s, seq) in waits {
        if !s.is_current_worker() {
            s.wait_for(seq, None);
        }
    }
    memory::unmap(ptr)
}

/// `aclrtResetDevice` (`force`: `aclrtResetDeviceForce`): drops one
/// reference on `device` (every reference when `force`); the last one
/// releases the device's contexts, streams (after their queued work),
/// events and memory, and reports what the caller left alive (the
/// runtime's objects, the blocks, and the registered leak sources').
pub(crate) fn reset_device(device: i32, force: bool) -> MockResult<()> {
    let checking = report::enabled();
    let released = with_runtime(|rt| {
        let d = rt.check_device_id(device.into())?;
        let dev = &mut rt.devices[d as usize];
        if dev.refcount == 0 {
            return Err(MockError::new(
                ACL_ERROR_INVALID_PARAM,
                format!(
                    "device {d} is not set (aclrtSetDevice was not called, or every call was already matched by a reset)"
                ),
            ));
        }
        dev.refcount -= 1;
        if dev.refcount > 0 && !force {
            return Ok(None);
        }
        let leaks = if checking {
            rt.leaked_objects(Some(d))
        } else {
            Vec::new()
        };
        let streams = rt.remove_device_objects(d);
        Ok(Some((d, streams, memory::detach_device(d), leaks)))
    })?;
    let Some((d, streams, blocks, mut leaks)) = released else {
        return Ok(());
    };
    if checking {
        leaks.splice(0..0, blocks.iter().map(describe_block));
        leaks.extend(registered_leaks(Some(&blocks)));
    }
    stop_streams(streams, false);
    let virtual_leaks = memory::release_virtual(Some(d));
    if checking {
        leaks.extend(virtual_leaks);
    }
    hooks::blocks_released(&blocks.iter().map(|b| b.base).collect::<Vec<_>>());
    memory::release_detached(blocks);
    leak_check(&format!("released device {d}"), leaks)
}

/// Stops `streams` (draining, or dropping their queued work when `force`).
pub(crate) fn stop_streams(streams: Vec<Arc<Stream>>, force: bool) {
    for s in &streams {
        s.shutdown(force);
    }
}
