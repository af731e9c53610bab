//! [`DeviceBuffer`]: a typed allocation of device memory.
//!
//! Invariants:
//! - `ptr` is null exactly when `len == 0` or the memory was released;
//!   otherwise it is an `aclrtMalloc` block of at least `len * size_of::<T>()`
//!   bytes on the context's device, owned by this value alone.
//! - All work on the memory goes through the access tracker: queued reads and writes
//!   are ordered across streams, host copies and the release wait for queued
//!   work first (unless tracking was turned off by the unsafe
//!   [`DeviceBuffer::set_tracking`]).
//! - A pooled buffer ([`DeviceBuffer::alloc_pooled`]) holds a block of its
//!   context's [`MemPool`](super::pool::MemPool) instead of its own
//!   allocation; releasing it returns the block to the pool together with
//!   the streams that may still use it, without waiting on the host (the
//!   pool orders the block's next use after them).
//! - The buffer holds an `Arc<Context>`, so the device stays set up for as
//!   long as the memory exists.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;

use ascend_sys::{
    ACL_MEM_MALLOC_HUGE_FIRST, ACL_MEMCPY_DEVICE_TO_DEVICE, ACL_MEMCPY_DEVICE_TO_HOST,
    ACL_MEMCPY_HOST_TO_DEVICE,
};

use super::access::Access;
use super::checks::{byte_len, same_device, same_len};
use super::dtype::DeviceRepr;
use super::pinned::PinnedBuffer;
use crate::context::Context;
use crate::device::Device;
use crate::error::Result;
use crate::result;
use crate::stream::Stream;

/// `len` elements of `T` in device memory.
#[derive(Debug)]
pub struct DeviceBuffer<T: DeviceRepr> {
    ptr: *mut c_void,
    len: usize,
    ctx: Arc<Context>,
    access: Access,
    /// Whether `ptr` is a block of the context's pool.
    pooled: bool,
    _marker: PhantomData<T>,
}

// The context binds itself to whichever thread calls, so moving is fine.
// SAFETY: the buffer owns its device memory; the host never dereferences
// `ptr`, which only reaches the runtime; T is Send.
unsafe impl<T: DeviceRepr> Send for DeviceBuffer<T> {}
// SAFETY: through `&DeviceBuffer` one can only queue or perform reads, whose
// bookkeeping is behind the tracker's mutex; writes need `&mut`.
unsafe impl<T: DeviceRepr> Sync for DeviceBuffer<T> {}

impl<T: DeviceRepr> DeviceBuffer<T> {
    /// Allocates `len` elements with unspecified contents.
    ///
    /// # Safety
    /// The contents are whatever the device memory held: write them (by a
    /// copy or memset) before reading them.
    pub unsafe fn alloc(ctx: &Arc<Context>, len: usize) -> Result<Self> {
        let bytes = byte_len::<T>(len, "DeviceBuffer::alloc")?;
        ctx.bind_to_thread()?;
        let ptr = if bytes == 0 {
            ptr::null_mut()
        } else {
            let p = result::acl::memory::malloc(bytes, ACL_MEM_MALLOC_HUGE_FIRST)?;
            if p.is_null() {
                return Err(result::null_result("aclrtMalloc"));
            }
            p
        };
        Ok(DeviceBuffer {
            ptr,
            len,
            ctx: ctx.clone(),
            access: Access::new(),
            pooled: false,
            _marker: PhantomData,
        })
    }

    /// Allocates `len` elements with unspecified contents from the context
    /// pool of `stream`'s context, for work on `stream`: the buffer starts as
    /// if `stream` had just written it, so any other stream or the host is
    /// ordered after the block's earlier users. Dropping it returns the
    /// block to the pool without waiting.
    ///
    /// # Safety
    /// As for [`Self::alloc`]: write the contents before reading them.
    pub unsafe fn alloc_pooled(stream: &Arc<Stream>, len: usize) -> Result<Self> {
        let bytes = byte_len::<T>(len, "DeviceBuffer::alloc_pooled")?;
        let ctx = stream.context();
        ctx.bind_to_thread()?;
        if bytes == 0 {
            return Ok(DeviceBuffer {
                ptr: ptr::null_mut(),
                len,
                ctx: ctx.clone(),
                access: Access::new(),
                pooled: false,
                _marker: PhantomData,
            });
        }
        let block = ctx.pool().allocate(stream, bytes)?;
        Ok(DeviceBuffer {
            ptr: block.ptr,
            len,
            ctx: ctx.clone(),
            access: Access::written_by(stream),
            pooled: true,
            _marker: PhantomData,
        })
    }

    /// Allocates `len` zeroed elements from the pool, the zeroing queued on
    /// `stream` (see [`Self::alloc_pooled`]).
    pub fn zeroed_pooled(stream: &Arc<Stream>, len: usize) -> Result<Self> {
        // SAFETY: the memset queued below writes every byte before any
        // later work, which the tracker orders after it, can read.
        let mut buf = unsafe { Self::alloc_pooled(stream, len) }?;
        buf.memset_async(0, stream)?;
        Ok(buf)
    }

    /// Whether the memory is a block of the context's pool.
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Allocates `len` elements set to zero.
    pub fn zeroed(ctx: &Arc<Context>, len: usize) -> Result<Self> {
        // SAFETY: every byte is written by the memset below before anyone
        // can read it.
        let mut buf = unsafe { Self::alloc(ctx, len) }?;
        buf.memset(0)?;
        Ok(buf)
    }

    /// Allocates a buffer holding a copy of `src`.
    pub fn from_host(ctx: &Arc<Context>, src: &[T]) -> Result<Self> {
        // SAFETY: every element is written by the copy below before anyone
        // can read it.
        let mut buf = unsafe { Self::alloc(ctx, src.len()) }?;
        buf.copy_from_host(src)?;
        Ok(buf)
    }

    /// A new buffer with the same contents, copied on `stream`.
    pub fn try_clone(&self, stream: &Arc<Stream>) -> Result<Self> {
        // SAFETY: every element is written by the copy below, which the
        // tracker orders before any later use of the new buffer.
        let mut out = unsafe { Self::alloc(&self.ctx, self.len) }?;
        out.copy_from(self, stream)?;
        Ok(out)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size in bytes.
    pub fn byte_len(&self) -> usize {
        self.len * T::DTYPE.size()
    }

    /// The device the memory is on.
    pub fn device(&self) -> Device {
        self.ctx.device()
    }

    /// The context the memory was allocated in.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The raw device pointer (null for an empty buffer). Using it behind
    /// the tracker's back is up to the caller; see [`Self::track_read`].
    pub fn as_ptr(&self) -> *const c_void {
        self.ptr
    }

    /// Declares that work about to be queued on `stream` reads this buffer,
    /// ordering it after the last write, and returns the device pointer to
    /// give that work. For operators and other calls this crate does not
    /// wrap.
    pub fn track_read(&self, stream: &Arc<Stream>) -> Result<*const c_void> {
        same_device("DeviceBuffer::track_read", stream, self.ctx.ordinal())?;
        self.access.before_read(stream)?;
        Ok(self.ptr)
    }

    /// Declares that work about to be queued on `stream` writes this
    /// buffer, ordering it after every earlier use, and returns the device
    /// pointer to give that work.
    pub fn track_write(&mut self, stream: &Arc<Stream>) -> Result<*mut c_void> {
        same_device("DeviceBuffer::track_write", stream, self.ctx.ordinal())?;
        self.access.before_write(stream)?;
        Ok(self.ptr)
    }

    /// Turns access tracking on or off for this buffer (it starts on).
    ///
    /// # Safety
    /// While tracking is off nothing orders work on this buffer: the caller
    /// must make sure (with events or synchronization) that no two streams
    /// race on it, that host copies and `memset` happen after queued work on
    /// it has finished, and that it is not dropped while queued work still
    /// uses it.
    pub unsafe fn set_tracking(&self, enabled: bool) {
        self.access.set_enabled(enabled);
    }

    /// Whether access tracking is on.
    pub fn is_tracking(&self) -> bool {
        self.access.enabled()
    }

    /// Ids of the streams the tracker holds now: `(last writer, readers)`.
    pub fn tracked_streams(&self) -> (Option<u64>, Vec<u64>) {
        self.access.snapshot()
    }

    /// Copies `src` into the buffer, after queued work on the buffer.
    pub fn copy_from_host(&mut self, src: &[T]) -> Result<()> {
        same_len(
            "DeviceBuffer::copy_from_host",
            "the source",
            src.len(),
            self.len,
        )?;
        if self.len == 0 {
            return Ok(());
        }
        self.ctx.bind_to_thread()?;
        self.access.sync_all(false)?;
        let bytes = self.byte_len();
        // SAFETY: `ptr` holds `bytes` bytes of device memory; `src` is a
        // host slice of exactly `bytes` bytes; no queued work uses the
        // buffer any more (sync_all) and `&mut self` excludes new work.
        unsafe {
            result::acl::memory::memcpy(
                self.ptr,
                bytes,
                src.as_ptr().cast(),
                bytes,
                ACL_MEMCPY_HOST_TO_DEVICE,
            )
        }
    }

    /// Copies the buffer into `dst`, after queued writes to the buffer.
    pub fn copy_to_host(&self, dst: &mut [T]) -> Result<()> {
        same_len(
            "DeviceBuffer::copy_to_host",
            "the destination",
            dst.len(),
            self.len,
        )?;
        if self.len == 0 {
            return Ok(());
        }
        self.ctx.bind_to_thread()?;
        self.access.sync_writer()?;
        let bytes = self.byte_len();
        // Any bit pattern is a valid T (DeviceRepr); new writes need `&mut self`.
        // SAFETY: `dst` is a writable host slice of exactly `bytes` bytes;
        // `ptr` holds `bytes` bytes; its last write has completed (sync_writer).
        unsafe {
            result::acl::memory::memcpy(
                dst.as_mut_ptr().cast(),
                bytes,
                self.ptr,
                bytes,
                ACL_MEMCPY_DEVICE_TO_HOST,
            )
        }
    }

    /// The contents, copied to the host after queued writes.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut v = vec![T::default(); self.len];
        self.copy_to_host(&mut v)?;
        Ok(v)
    }

    /// Sets every byte to `value`, after queued work on the buffer.
    pub fn memset(&mut self, value: u8) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        self.ctx.bind_to_thread()?;
        self.access.sync_all(false)?;
        let bytes = self.byte_len();
        // SAFETY: `ptr` is device memory of `bytes` bytes from aclrtMalloc;
        // no queued work uses it any more (sync_all).
        unsafe { result::acl::memory::memset(self.ptr, bytes, value, bytes) }
    }

    /// Queues setting every byte to `value` on `stream`.
    pub fn memset_async(&mut self, value: u8, stream: &Arc<Stream>) -> Result<()> {
        same_device("DeviceBuffer::memset_async", stream, self.ctx.ordinal())?;
        if self.len == 0 {
            return Ok(());
        }
        stream.context().bind_to_thread()?;
        self.access.before_write(stream)?;
        let bytes = self.byte_len();
        // SAFETY: `ptr` holds `bytes` bytes; the tracker ordered this write
        // after all earlier uses and keeps the memory (drop syncs) and the
        // stream (Arc) alive until it has run.
        unsafe { result::acl::memory::memset_async(self.ptr, bytes, value, bytes, stream.handle()) }
    }

    /// Queues a copy of `src` into this buffer on `stream`.
    pub fn copy_from(&mut self, src: &DeviceBuffer<T>, stream: &Arc<Stream>) -> Result<()> {
        same_len("DeviceBuffer::copy_from", "the source", src.len, self.len)?;
        same_device("DeviceBuffer::copy_from", stream, self.ctx.ordinal())?;
        same_device("DeviceBuffer::copy_from", stream, src.ctx.ordinal())?;
        if self.len == 0 {
            return Ok(());
        }
        stream.context().bind_to_thread()?;
        src.access.before_read(stream)?;
        self.access.before_write(stream)?;
        let bytes = self.byte_len();
        // SAFETY: both are distinct device allocations of `bytes` bytes
        // (`&mut self` and `&src` cannot alias); the tracker orders the copy
        // after earlier uses of both and keeps them alive until it has run.
        unsafe {
            result::acl::memory::memcpy_async(
                self.ptr,
                bytes,
                src.ptr,
                bytes,
                ACL_MEMCPY_DEVICE_TO_DEVICE,
                stream.handle(),
            )
        }
    }

    /// Queues a copy of the pinned buffer `src` into this buffer on
    /// `stream`. The host may keep reading `src`; writing it
    /// ([`PinnedBuffer::as_mut_slice`]) waits for the copy.
    pub fn copy_from_pinned(&mut self, src: &PinnedBuffer<T>, stream: &Arc<Stream>) -> Result<()> {
        same_len(
            "DeviceBuffer::copy_from_pinned",
            "the source",
            src.len(),
            self.len,
        )?;
        same_device("DeviceBuffer::copy_from_pinned", stream, self.ctx.ordinal())?;
        if self.len == 0 {
            return Ok(());
        }
        stream.context().bind_to_thread()?;
        src.access().before_read(stream)?;
        self.access.before_write(stream)?;
        let bytes = self.byte_len();
        // The trackers keep both alive, and the host from writing `src`, until it ran.
        // SAFETY: `src` is pinned host memory and `ptr` device memory, both of
        // `bytes` bytes; the trackers ordered the copy after earlier uses of both.
        unsafe {
            result::acl::memory::memcpy_async(
                self.ptr,
                bytes,
                src.as_raw_ptr().cast(),
                bytes,
                ACL_MEMCPY_HOST_TO_DEVICE,
                stream.handle(),
            )
        }
    }

    /// Queues a copy of this buffer into the pinned buffer `dst` on
    /// `stream`. Reading `dst` on the host ([`PinnedBuffer::as_slice`])
    /// waits for the copy.
    pub fn copy_to_pinned(&self, dst: &mut PinnedBuffer<T>, stream: &Arc<Stream>) -> Result<()> {
        same_len(
            "DeviceBuffer::copy_to_pinned",
            "the destination",
            dst.len(),
            self.len,
        )?;
        same_device("DeviceBuffer::copy_to_pinned", stream, self.ctx.ordinal())?;
        if self.len == 0 {
            return Ok(());
        }
        stream.context().bind_to_thread()?;
        self.access.before_read(stream)?;
        dst.access().before_write(stream)?;
        let bytes = self.byte_len();
        // The trackers keep both alive, and the host from reading `dst`, until it ran.
        // SAFETY: `dst` is pinned host memory and `ptr` device memory, both of
        // `bytes` bytes; the trackers ordered the copy after earlier uses of both.
        unsafe {
            result::acl::memory::memcpy_async(
                dst.as_raw_ptr().cast(),
                bytes,
                self.ptr,
                bytes,
                ACL_MEMCPY_DEVICE_TO_HOST,
                stream.handle(),
            )
        }
    }

    /// Frees the memory now, returning any error (which `Drop` would only
    /// record in the context). Waits for queued work on the buffer first.
    pub fn free(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        if self.ptr.is_null() {
            return Ok(());
        }
        if self.pooled {
            let users = self.access.take_streams();
            let p = std::mem::replace(&mut self.ptr, ptr::null_mut());
            // The pool's context is ours (the Arc keeps it): `pool()` needs
            // the Arc only to make the pool, which exists already.
            return self.ctx.pool().free(p, users);
        }
        self.ctx.bind()?;
        let waited = self.access.sync_all(false);
        if waited.is_err() && self.ctx.wait_all_work().is_err() {
            // Neither the streams nor the device could be waited for: the
            // memory may still be in use (the caller leaks it).
            return waited;
        }
        let p = std::mem::replace(&mut self.ptr, ptr::null_mut());
        // SAFETY: `p` is aclrtMalloc's, freed only here (ptr is now null);
        // its queued work finished (sync_all or the device wait), unless the
        // caller turned tracking off and took on that duty.
        let freed = unsafe { result::acl::memory::free(p) };
        waited.and(freed)
    }
}

impl<T: DeviceRepr> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        let r = self.release();
        if r.is_err() && !self.ptr.is_null() {
            // The memory could not be shown idle (or bound); leaking it is
            // the only sound choice.
            self.ptr = ptr::null_mut();
        }
        self.ctx.record_result(r);
    }
}
