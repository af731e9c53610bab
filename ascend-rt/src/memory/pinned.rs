//! [`PinnedBuffer`]: page-locked host memory (`aclrtMallocHost`), the only
//! host memory that takes part in asynchronous copies.
//!
//! Invariants:
//! - `ptr` is an `aclrtMallocHost` block of `len * size_of::<T>()` bytes
//!   owned by this value (or dangling and unallocated when that size is 0),
//!   and every element is initialised (allocation zeroes or copies in,
//!   except through the unsafe [`PinnedBuffer::uninit`]).
//! - The host reaches the contents only through [`PinnedBuffer::as_slice`]
//!   (which waits for the queued write) and [`PinnedBuffer::as_mut_slice`]
//!   (which waits for all queued use), so it never reads memory a copy is
//!   still writing, nor writes memory a copy is still reading.
//! - Queued copies are ordered across streams by the same tracker as device
//!   buffers, and the release waits for them.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use super::access::Access;
use super::checks::byte_len;
use super::dtype::DeviceRepr;
use crate::context::Context;
use crate::error::Result;
use crate::result;

/// `len` elements of `T` in pinned host memory.
#[derive(Debug)]
pub struct PinnedBuffer<T: DeviceRepr> {
    ptr: NonNull<T>,
    len: usize,
    allocated: bool,
    ctx: Arc<Context>,
    access: Access,
    _marker: PhantomData<T>,
}

// SAFETY: the buffer owns its memory like a Box<[T]> (T: Send); the tracker
// is behind a mutex.
unsafe impl<T: DeviceRepr> Send for PinnedBuffer<T> {}
// SAFETY: `&PinnedBuffer` gives `&[T]` (T: Sync) only after the queued write
// completed, and lets one queue reads only; writes need `&mut`.
unsafe impl<T: DeviceRepr> Sync for PinnedBuffer<T> {}

impl<T: DeviceRepr> PinnedBuffer<T> {
    /// Allocates `len` elements with unspecified contents.
    ///
    /// # Safety
    /// The memory is uninitialised: fill every element (for example through
    /// a device-to-pinned copy) before reading it with `as_slice`.
    pub unsafe fn uninit(ctx: &Arc<Context>, len: usize) -> Result<Self> {
        let bytes = byte_len::<T>(len, "PinnedBuffer::uninit")?;
        ctx.bind_to_thread()?;
        let (ptr, allocated) = if bytes == 0 {
            (NonNull::dangling(), false)
        } else {
            let p = result::acl::memory::malloc_host(bytes)?;
            match NonNull::new(p.cast::<T>()) {
                Some(p) => (p, true),
                None => return Err(result::null_result("aclrtMallocHost")),
            }
        };
        Ok(PinnedBuffer {
            ptr,
            len,
            allocated,
            ctx: ctx.clone(),
            access: Access::new(),
            _marker: PhantomData,
        })
    }

    /// Allocates `len` elements set to zero.
    pub fn zeroed(ctx: &Arc<Context>, len: usize) -> Result<Self> {
        // SAFETY: every byte is zeroed below before the buffer is returned;
        // all-zero bytes are a valid T (DeviceRepr).
        let buf = unsafe { Self::uninit(ctx, len) }?;
        // SAFETY: `ptr` is valid for `len` elements and owned by `buf`.
        unsafe { std::ptr::write_bytes(buf.ptr.as_ptr(), 0, len) };
        Ok(buf)
    }

    /// Allocates a buffer holding a copy of `src`.
    pub fn from_slice(ctx: &Arc<Context>, src: &[T]) -> Result<Self> {
        // SAFETY: every element is written below before the buffer is
        // returned.
        let buf = unsafe { Self::uninit(ctx, src.len()) }?;
        // SAFETY: `ptr` is valid for `src.len()` elements, freshly allocated
        // and so distinct from `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf.ptr.as_ptr(), src.len()) };
        Ok(buf)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The context the memory was allocated in.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    pub(crate) fn as_raw_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The contents, once the queued write to them (if any) has finished.
    pub fn as_slice(&self) -> Result<&[T]> {
        if self.allocated {
            self.ctx.bind_to_thread()?;
            self.access.sync_writer()?;
        }
        // SAFETY: `ptr` is valid for `len` initialised elements; no queued
        // copy writes them any more (sync_writer) and new ones need `&mut`.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) })
    }

    /// The contents, mutably, once all queued use of them has finished.
    pub fn as_mut_slice(&mut self) -> Result<&mut [T]> {
        if self.allocated {
            self.ctx.bind_to_thread()?;
            self.access.sync_all(true)?;
        }
        // SAFETY: `ptr` is valid for `len` initialised elements; no queued
        // copy reads or writes them any more (sync_all), and `&mut self`
        // keeps new ones out while the slice lives.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// Turns access tracking on or off for this buffer (it starts on).
    ///
    /// # Safety
    /// While off, `as_slice`/`as_mut_slice` and the release no longer wait
    /// for queued copies: the caller must synchronize the streams that use
    /// the buffer before touching or dropping it.
    pub unsafe fn set_tracking(&self, enabled: bool) {
        self.access.set_enabled(enabled);
    }

    /// Frees the memory now, returning any error (which `Drop` would only
    /// record in the context). Waits for queued work on the buffer first.
    pub fn free(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        if !self.allocated {
            return Ok(());
        }
        self.ctx.bind()?;
        let waited = self.access.sync_all(false);
        if waited.is_err() && self.ctx.wait_all_work().is_err() {
            // Neither the streams nor the device could be waited for: a
            // copy may still use the block (the caller leaks it).
            return waited;
        }
        self.allocated = false;
        // SAFETY: the block came from aclrtMallocHost and is freed only here
        // (`allocated` is now false); queued copies have finished (their
        // streams, or the whole device, were waited for).
        let freed = unsafe { result::acl::memory::free_host(self.ptr.as_ptr().cast()) };
        waited.and(freed)
    }
}

impl<T: DeviceRepr> Drop for PinnedBuffer<T> {
    fn drop(&mut self) {
        let r = self.release();
        // When no wait worked the block is leaked: freeing memory a copy
        // may still use would be unsound.
        self.allocated = false;
        self.ctx.record_result(r);
    }
}
