//! [`VirtualRange`] and [`PhysicalMem`]: reserved virtual address space
//! and physical device memory mapped into it (`aclrtReserveMemAddress`,
//! `aclrtMallocPhysical`, `aclrtMapMem` and their inverses).
//!
//! Invariants:
//! - A [`PhysicalMem`] owns one live handle of `size` bytes (a multiple of
//!   the granularity) and frees it on drop; while mapped, the range that
//!   maps it holds an `Arc` to it, so it is never freed while mapped.
//! - A [`VirtualRange`] owns one live reservation of `size` bytes; its
//!   `mappings` are exactly the live mappings in it (offset, memory), which
//!   never overlap and lie inside the range. Unmapping (and dropping,
//!   which unmaps every mapping and releases the reservation) first waits
//!   for all work queued on the device.

use std::ffi::c_void;
use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::result;

/// The allocation granularity of physical memory on `ctx`'s device
/// (`ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM`): sizes and map offsets are
/// multiples of it.
pub fn granularity(ctx: &Arc<Context>) -> Result<usize> {
    ctx.bind_to_thread()?;
    let prop = result::acl::memory::physical_prop(ctx.ordinal() as u32);
    result::acl::memory::allocation_granularity(
        &prop,
        ascend_sys::ACL_RT_MEM_ALLOC_GRANULARITY_MINIMUM,
    )
}

/// Physical device memory (`aclrtMallocPhysical`), mappable into a
/// [`VirtualRange`].
#[derive(Debug)]
pub struct PhysicalMem {
    handle: ascend_sys::aclrtDrvMemHandle,
    size: usize,
    ctx: Arc<Context>,
}

// SAFETY: the handle is an opaque token the runtime accepts from any
// thread; the value owns it and exposes no memory through `&self`.
unsafe impl Send for PhysicalMem {}
// SAFETY: as above; `&PhysicalMem` only reads the size.
unsafe impl Sync for PhysicalMem {}

impl PhysicalMem {
    /// Allocates `size` bytes on `ctx`'s device; `size` must be a non-zero
    /// multiple of [`granularity`].
    pub fn new(ctx: &Arc<Context>, size: usize) -> Result<Self> {
        let g = granularity(ctx)?;
        if size == 0 || size % g != 0 {
            return Err(Error::invalid(
                "PhysicalMem::new",
                format!("size {size} is not a non-zero multiple of the granularity {g}"),
            ));
        }
        let prop = result::acl::memory::physical_prop(ctx.ordinal() as u32);
        let handle = result::acl::memory::malloc_physical(size, &prop)?;
        Ok(PhysicalMem {
            handle,
            size,
            ctx: ctx.clone(),
        })
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Drop for PhysicalMem {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: the handle is live and owned by this value; no range maps
        // it (a mapping holds an Arc to it, so it would not be dropping).
        let _ = unsafe { result::acl::memory::free_physical(self.handle) };
    }
}

/// Reserved virtual address space (`aclrtReserveMemAddress`) with
/// [`PhysicalMem`] mapped into parts of it.
#[derive(Debug)]
pub struct VirtualRange {
    base: *mut c_void,
    size: usize,
    granularity: usize,
    mappings: Vec<(usize, Arc<PhysicalMem>)>,
    ctx: Arc<Context>,
}

// SAFETY: the range owns its reservation; the device pointer is only an
// address handed to device work, never dereferenced on the host here.
unsafe impl Send for VirtualRange {}
// SAFETY: `&VirtualRange` only reads the address and sizes.
unsafe impl Sync for VirtualRange {}

impl VirtualRange {
    /// Reserves `size` bytes (non-zero; rounded up to the granularity).
    pub fn reserve(ctx: &Arc<Context>, size: usize) -> Result<Self> {
        let g = granularity(ctx)?;
        if size == 0 {
            return Err(Error::invalid("VirtualRange::reserve", "size is 0"));
        }
        let rounded = size
            .checked_add(g - 1)
            .map(|s| s / g * g)
            .ok_or_else(|| Error::invalid("VirtualRange::reserve", "size overflows"))?;
        let base = result::acl::memory::reserve_mem_address(rounded)?;
        Ok(VirtualRange {
            base,
            size: rounded,
            granularity: g,
            mappings: Vec::new(),
            ctx: ctx.clone(),
        })
    }

    /// The start of the range (a device address).
    pub fn as_ptr(&self) -> *mut c_void {
        self.base
    }

    /// Its size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether `[offset, offset + len)` is entirely mapped.
    pub fn is_mapped(&self, offset: usize, len: usize) -> bool {
        let mut spans: Vec<(usize, usize)> = self
            .mappings
            .iter()
            .map(|(o, m)| (*o, *o + m.size()))
            .collect();
        spans.sort_unstable();
        let (mut at, end) = (offset, offset.saturating_add(len));
        for (s, e) in spans {
            if s <= at && at < e {
                at = e;
            }
        }
        at >= end
    }

    /// Maps all of `mem` at `offset` (a granularity multiple; the part must
    /// be inside the range and unmapped).
    pub fn map(&mut self, offset: usize, mem: Arc<PhysicalMem>) -> Result<()> {
        const API: &str = "VirtualRange::map";
        if offset % self.granularity != 0 {
            return Err(Error::invalid(
                API,
                format!(
                    "offset {offset} is not a multiple of the granularity {}",
                    self.granularity
                ),
            ));
        }
        if mem.size() > self.size.saturating_sub(offset) {
            return Err(Error::invalid(
                API,
                format!(
                    "{} bytes at offset {offset} do not fit in {} bytes",
                    mem.size(),
                    self.size
                ),
            ));
        }
        if let Some((o, m)) = self
            .mappings
            .iter()
            .find(|(o, m)| *o < offset + mem.size() && offset < *o + m.size())
        {
            return Err(Error::invalid(
                API,
                format!(
                    "offset {offset} overlaps the mapping at offset {o} of {} bytes",
                    m.size()
                ),
            ));
        }
        if Arc::ptr_eq(&mem.ctx, &self.ctx) || mem.ctx.ordinal() == self.ctx.ordinal() {
            self.ctx.bind_to_thread()?;
        } else {
            return Err(Error::invalid(API, "the memory belongs to another device"));
        }
        // SAFETY: offset + size lies inside the live reservation and
        // overlaps no mapping (checked above); the handle is live (owned by
        // `mem`) and unmapped: a handle mapped elsewhere is refused by the
        // runtime with an error, never undefined behaviour.
        unsafe {
            result::acl::memory::map_mem(
                self.base.cast::<u8>().add(offset).cast(),
                mem.size(),
                mem.handle,
            )
        }?;
        self.mappings.push((offset, mem));
        Ok(())
    }

    /// Unmaps the mapping at `offset` and returns its memory (which keeps
    /// its contents). Waits for all work on the device first
    /// (`aclrtSynchronizeDevice`), since the range is not tracked per
    /// stream and CANN's unmap does not wait.
    pub fn unmap(&mut self, offset: usize) -> Result<Arc<PhysicalMem>> {
        let Some(i) = self.mappings.iter().position(|(o, _)| *o == offset) else {
            return Err(Error::invalid(
                "VirtualRange::unmap",
                format!("nothing is mapped at offset {offset}"),
            ));
        };
        self.ctx.synchronize()?;
        // SAFETY: a live mapping starts there (the list is exact); the
        // device finished every queued task, so no work uses it.
        unsafe { result::acl::memory::unmap_mem(self.base.cast::<u8>().add(offset).cast()) }?;
        Ok(self.mappings.swap_remove(i).1)
    }
}

impl Drop for VirtualRange {
    fn drop(&mut self) {
        if self.mappings.is_empty() {
            let _ = self.ctx.bind_to_thread();
        } else if self.ctx.synchronize().is_err() {
            // Queued work may still use a mapping (see `unmap`): leave the
            // range and its memory mapped (the runtime reports and releases
            // them at reset or finalize) rather than pull memory from under
            // it.
            for (_, mem) in std::mem::take(&mut self.mappings) {
                std::mem::forget(mem);
            }
            return;
        }
        for (o, _) in std::mem::take(&mut self.mappings) {
            // SAFETY: each listed mapping is live and the device finished
            // every queued task (the synchronisation above succeeded).
            let _ = unsafe { result::acl::memory::unmap_mem(self.base.cast::<u8>().add(o).cast()) };
        }
        // SAFETY: the reservation is live, owned by this value, and has no
        // mapping left.
        let _ = unsafe { result::acl::memory::release_mem_address(self.base) };
    }
}
