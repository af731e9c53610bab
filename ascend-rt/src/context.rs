//! Contexts: the device binding every other object hangs off, and binding
//! to the calling thread.
//!
//! Invariants:
//! - A [`Context`] made by [`Context::new`] holds one `aclrtSetDevice`
//!   reference on its device and gives it back (`aclrtResetDevice`) when
//!   dropped; one made by [`Context::new_explicit`] owns an
//!   `aclrtCreateContext` context and destroys it when dropped. Streams,
//!   events and buffers hold an `Arc<Context>`, so the context outlives them.
//! - Every public safe call first runs [`Context::bind_to_thread`]: it
//!   surfaces an error recorded by an earlier `Drop`, then makes the context
//!   current on
//!   the calling thread unless this thread's cache says it already is.
//!   `Drop` and the internal steps of a call bind without that check, so a
//!   recorded error never stops a release. The
//!   cache is a thread-local holding the id of the last context bound here;
//!   ids are never reused, so a stale id can never match a live context.
//!   The result-layer calls that change the current context
//!   (`result::acl::device::set`/`reset`, `result::acl::context::*`) count themselves
//!   ([`result::acl::context::current_changes`]), and the cache holds that
//!   count as of its writing: once it moved, the cache no longer matches,
//!   so it is never wrong even when those calls are used directly. Code
//!   that changes the current context through raw `ascend_sys` calls must
//!   call [`Context::bind_to_thread_force`] before using ours again.
//! - `Drop` never panics: failures are stored in the context (the first one
//!   wins) and returned by its next fallible call ([`Context::check_err`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ascend_sys::aclrtContext;

use crate::device::{Device, MemInfo};
use crate::error::{Error, Result};
use crate::memory::pool::MemPool;
use crate::result;
use crate::stream::Stream;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Id of the context last made current on this thread (0: none known),
    /// and [`result::acl::context::current_changes`] right after it was.
    static CURRENT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Notes that context `id` is current on this thread now.
fn set_current(id: u64) {
    CURRENT.with(|c| c.set((id, result::acl::context::current_changes())));
}

/// Whether this thread's cache says context `id` is current: it was made
/// current here, and no result-layer call that may change the current
/// context has begun since.
fn is_current(id: u64) -> bool {
    CURRENT.with(Cell::get) == (id, result::acl::context::current_changes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The device's default context, held through `aclrtSetDevice`.
    Default,
    /// A context from `aclrtCreateContext`.
    Explicit,
}

/// A device context.
#[derive(Debug)]
pub struct Context {
    id: u64,
    device: Device,
    handle: aclrtContext,
    kind: Kind,
    error: Mutex<Option<Error>>,
    /// Whether `error` may hold something (lets `check_err` skip the lock).
    has_error: AtomicBool,
    default_stream: Mutex<Weak<Stream>>,
    /// The caching allocator, made on first use.
    pool: OnceLock<MemPool>,
}

// The runtime lets any thread make a context current and use it.
// SAFETY: the handle is never dereferenced here, only passed to the runtime,
// which allows any thread; the mutable state is behind mutexes and atomics.
unsafe impl Send for Context {}
// SAFETY: as above; every method takes `&self` and synchronises through the
// runtime or a mutex.
unsafe impl Sync for Context {}

impl Context {
    /// The default context of device `ordinal`: binds the device to the
    /// calling thread (`aclrtSetDevice`) and keeps that binding until the
    /// context is dropped. Contexts made this way for one device share the
    /// runtime's default context.
    pub fn new(ordinal: i32) -> Result<Arc<Context>> {
        result::acl::device::set(ordinal)?;
        let handle = match result::acl::context::get_current() {
            Ok(h) => h,
            Err(e) => {
                // SAFETY: we took the reference just above and made nothing
                // on the device since.
                let _ = unsafe { result::acl::device::reset(ordinal) };
                return Err(e);
            }
        };
        Ok(Context::wrap(Device::new(ordinal), handle, Kind::Default))
    }

    /// A new, separate context on device `ordinal` (`aclrtCreateContext`),
    /// destroyed when dropped.
    pub fn new_explicit(ordinal: i32) -> Result<Arc<Context>> {
        let handle = result::acl::context::create(ordinal)?;
        Ok(Context::wrap(Device::new(ordinal), handle, Kind::Explicit))
    }

    fn wrap(device: Device, handle: aclrtContext, kind: Kind) -> Arc<Context> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // Both creating calls leave the new context current on this thread.
        set_current(id);
        Arc::new(Context {
            id,
            device,
            handle,
            kind,
            error: Mutex::new(None),
            has_error: AtomicBool::new(false),
            default_stream: Mutex::new(Weak::new()),
            pool: OnceLock::new(),
        })
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> i32 {
        self.device.ordinal()
    }

    /// The raw handle, for calls this crate does not wrap.
    pub fn handle(&self) -> aclrtContext {
        self.handle
    }

    /// Whether this is the device's default context (from [`Context::new`]).
    pub fn is_default(&self) -> bool {
        self.kind == Kind::Default
    }

    /// Makes this context current on the calling thread, unless it already
    /// is; first returns any error recorded by an earlier `Drop`.
    pub fn bind_to_thread(&self) -> Result<()> {
        self.check_err()?;
        self.bind()
    }

    /// Makes this context current on the calling thread unless it already
    /// is, without looking at recorded errors: for `Drop` and for the
    /// internal steps of a call that has checked them already.
    pub(crate) fn bind(&self) -> Result<()> {
        if !is_current(self.id) {
            self.bind_to_thread_force()?;
        }
        Ok(())
    }

    /// Makes this context current on the calling thread unconditionally.
    pub fn bind_to_thread_force(&self) -> Result<()> {
        // SAFETY: `handle` is live for as long as `self` is (it is released
        // only in Drop).
        unsafe { result::acl::context::set_current(self.handle) }?;
        set_current(self.id);
        Ok(())
    }

    /// Returns (and clears) the first error recorded by a `Drop` of an
    /// object of this context.
    pub fn check_err(&self) -> Result<()> {
        if !self.has_error.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        self.has_error.store(false, Ordering::Release);
        match slot.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records an error that could not be returned (from a `Drop`); the
    /// first one is kept until [`Context::check_err`] returns it.
    pub fn record_err(&self, err: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(err);
        }
        self.has_error.store(true, Ordering::Release);
    }

    /// Records the error of a `Result` that cannot be returned.
    pub(crate) fn record_result(&self, r: Result<()>) {
        if let Err(e) = r {
            self.record_err(e);
        }
    }

    /// Waits for all work of the device, without looking at recorded
    /// errors: the fallback of a release whose targeted wait (an event, a
    /// stream) failed, so that the object can still be released once
    /// nothing can be using it. When this fails too, the caller keeps
    /// (leaks) the object.
    ///
    /// The device's wait returns a failed task's error once, after that
    /// work ended; so when it fails, a second wait tells a reported task
    /// failure (the second succeeds: everything has ended) from a device
    /// that cannot be waited for (it fails again). The first error is
    /// recorded for [`Context::check_err`], so it is not lost.
    pub(crate) fn wait_all_work(&self) -> Result<()> {
        self.bind()?;
        match result::acl::device::synchronize() {
            Ok(()) => Ok(()),
            Err(first) => {
                result::acl::device::synchronize()?;
                self.record_err(first);
                Ok(())
            }
        }
    }

    /// Free and total memory of the device.
    pub fn memory_info(&self) -> Result<MemInfo> {
        self.bind_to_thread()?;
        let (free, total) = result::acl::device::mem_info(ascend_sys::ACL_HBM_MEM)?;
        Ok(MemInfo { free, total })
    }

    /// Waits for all work on the device (`aclrtSynchronizeDevice`).
    pub fn synchronize(&self) -> Result<()> {
        self.bind_to_thread()?;
        result::acl::device::synchronize()
    }

    /// The context's caching memory pool (made on first use), which
    /// operator workspaces and pooled buffers
    /// ([`DeviceBuffer::alloc_pooled`](crate::DeviceBuffer::alloc_pooled))
    /// come from. Its segments are released by
    /// [`MemPool::empty_cache`] or when the context is dropped.
    pub fn pool(self: &Arc<Self>) -> &MemPool {
        self.pool.get_or_init(|| MemPool::new(Arc::downgrade(self)))
    }

    /// A new stream in this context.
    pub fn new_stream(self: &Arc<Self>) -> Result<Arc<Stream>> {
        Stream::new(self)
    }

    /// The context's default stream (the runtime's null stream). The same
    /// `Arc` is returned while any clone of it lives.
    pub fn default_stream(self: &Arc<Self>) -> Arc<Stream> {
        let mut cached = self
            .default_stream
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.upgrade() {
            return s;
        }
        let s = Stream::default_of(self);
        *cached = Arc::downgrade(&s);
        s
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Pooled buffers hold the context, so none is in use: give the
        // cached segments back while the context still exists.
        let pool_result = match self.pool.get() {
            Some(pool) => self.bind().and_then(|()| pool.release_all()),
            None => Ok(()),
        };
        let r = match self.kind {
            // SAFETY: every object of this context holds an Arc to it, so
            // none is left; this gives back the reference `new` took.
            Kind::Default => unsafe { result::acl::device::reset(self.ordinal()) },
            // SAFETY: as above; the handle came from aclrtCreateContext and
            // is destroyed only here.
            Kind::Explicit => unsafe { result::acl::context::destroy(self.handle) },
        };
        CURRENT.with(|c| {
            if c.get().0 == self.id {
                c.set((0, 0));
            }
        });
        // Nobody is left to read an error recorded in this context; report
        // it on stderr rather than lose it (ignoring a closed stderr: Drop
        // must not panic).
        use std::io::Write as _;
        if let Err(e) = pool_result {
            let _ = writeln!(
                std::io::stderr(),
                "ascend-rt: releasing the memory pool of {} failed: {e}",
                self.device
            );
        }
        if let Err(e) = r {
            let _ = writeln!(
                std::io::stderr(),
                "ascend-rt: releasing {} failed: {e}",
                self.device
            );
        }
        if let Some(e) = self.error.get_mut().ok().and_then(Option::take) {
            let _ = writeln!(
                std::io::stderr(),
                "ascend-rt: unreported error on {}: {e}",
                self.device
            );
        }
    }
}
