//! [`MemPool`]: the stream-ordered caching allocator of one context, in the
//! manner of torch_npu's (and PyTorch's CUDA) caching allocator.
//!
//! # Policy
//!
//! - **Size classes.** A request is rounded up to a multiple of 512 bytes.
//!   Requests of at most 1 MiB are *small*: they are carved from 2 MiB
//!   segments. Larger ones are *large*: rounded up to a multiple of 2 MiB,
//!   each getting its own segment when nothing cached fits. Small and large
//!   blocks live in separate free lists, so a burst of small tensors never
//!   fragments the big segments.
//! - **Segments** are `aclrtMalloc`'d regions; they are kept after their
//!   blocks are freed (that is the cache) until [`MemPool::empty_cache`],
//!   or until an `aclrtMalloc` fails, when the pool releases its unused
//!   segments, synchronizes the device and tries again (a few times over
//!   at most 50 ms, for runtimes that make freed memory available
//!   asynchronously).
//! - **Best fit, split, merge.** A request takes the smallest free block of
//!   its class that fits; the rest is split off as a new free block when it
//!   is at least 512 bytes (small) or 2 MiB (large). A freed block merges
//!   with free neighbours of its segment, so a segment whose blocks are all
//!   free is one block again.
//! - **Stream order.** A freed block remembers the streams that may still
//!   have work queued on it (the buffer's tracked writer and readers, or
//!   the stream a workspace was used on). The stream that allocates it next
//!   may reuse it at once when those streams are itself: its new work runs
//!   after the old. Among fitting blocks, one without work on other streams
//!   is preferred. A block with work pending on another stream is handed out
//!   only after the allocating stream has been made to wait for that
//!   stream: an event is recorded on the old stream and
//!   `aclrtStreamWaitEvent` queued on the new one, so no host thread blocks.
//!   The event is recorded when the block is reused rather than when it was
//!   freed (as torch's `record_stream` does): it then covers the old work
//!   and possibly more, which is as safe, keeps the single-stream path free
//!   of events, and keeps the pool from holding events, which hold their
//!   context, which holds the pool (a cycle that would never be freed). The
//!   cost is a possibly longer wait when the old stream queued more work
//!   after the free. When a block is split, the part left free keeps the
//!   whole block's list: the allocating stream waited for those streams,
//!   but the next user of the remainder has not. Freed blocks name their
//!   streams by `Weak` reference
//!   for the same reason; a stream that has been dropped has finished its
//!   work (its `Drop` synchronizes), so it is forgotten.
//! - **The allocating stream owns the new buffer's first write.** A pooled
//!   [`DeviceBuffer`](super::DeviceBuffer) starts with that stream as its
//!   tracked writer, so use on any other stream, or by the host, is ordered
//!   after everything the block's previous owners queued.
//! - **Statistics** ([`PoolStats`]): bytes in use (rounded block sizes),
//!   bytes reserved (segments), the peak in use, the number of device
//!   allocations and releases made, cache hits (requests served without a
//!   device allocation) and cross-stream waits.
//!
//! Invariants: every block lies inside one live segment; the blocks of a
//! segment tile it exactly, in address order, with no two free neighbours;
//! a block is in the free list of its class exactly when it is free;
//! `in_use` is the sum of the sizes of the blocks handed out.
//!
//! Newer CANN releases have stream-ordered pools in the runtime
//! (`aclrtMemPool*`). They are not declared in our headers yet; when they
//! are, they can back this type where present, keeping the same statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ascend_sys::ACL_MEM_MALLOC_HUGE_FIRST;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::result;
use crate::stream::Stream;

/// Requests are rounded up to a multiple of this many bytes.
pub const ROUND: usize = 512;
/// Requests of at most this many bytes are small.
pub const SMALL_LIMIT: usize = 1 << 20;
/// Size of a segment that small blocks are carved from.
pub const SMALL_SEGMENT: usize = 2 << 20;
/// Large requests are rounded up to a multiple of this many bytes.
pub const LARGE_ROUND: usize = 2 << 20;

/// Counters of one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes of blocks handed out and not yet freed (rounded sizes).
    pub in_use: usize,
    /// Bytes of device memory the pool holds (all segments).
    pub reserved: usize,
    /// The highest `in_use` seen since the pool was made or the peak reset.
    pub peak_in_use: usize,
    /// `aclrtMalloc` calls made (segments created).
    pub device_allocs: u64,
    /// `aclrtFree` calls made (segments released).
    pub device_frees: u64,
    /// Requests served from cached memory, without a device allocation.
    pub cache_hits: u64,
    /// Requests served by a block with work pending on another stream,
    /// after making the allocating stream wait for it.
    pub cross_stream_waits: u64,
    /// Number of segments held.
    pub segments: usize,
    /// Number of free blocks cached.
    pub free_blocks: usize,
}

/// A stream that may still have work queued on a freed block.
#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    stream: Weak<Stream>,
}

#[derive(Debug)]
struct Block {
    size: usize,
    /// Base address of the segment holding the block.
    segment: usize,
    free: bool,
    small: bool,
    pending: Vec<Pending>,
}

/// A segment taken out of the pool to be released.
#[derive(Debug)]
struct Idle {
    base: usize,
    size: usize,
    small: bool,
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Segment {
    size: usize,
}

#[derive(Debug, Default)]
struct State {
    segments: BTreeMap<usize, Segment>,
    /// Every block, free or not, by address.
    blocks: BTreeMap<usize, Block>,
    /// Free blocks as `(size, address)`, one set per class.
    free_small: BTreeSet<(usize, usize)>,
    free_large: BTreeSet<(usize, usize)>,
    stats: PoolStats,
}

impl State {
    fn free_set(&mut self, small: bool) -> &mut BTreeSet<(usize, usize)> {
        if small {
            &mut self.free_small
        } else {
            &mut self.free_large
        }
    }
}

/// The caching allocator of one context. Get it with [`Context::pool`].
#[derive(Debug)]
pub struct MemPool {
    ctx: Weak<Context>,
    state: Mutex<State>,
}

/// A block handed out by the pool: `size` bytes (the rounded request) at
/// `ptr`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolBlock {
    pub(crate) ptr: *mut c_void,
}

fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

/// The block size and class (`true` = small) for a request of `bytes`.
fn size_class(bytes: usize) -> Option<(usize, bool)> {
    let rounded = round_up(bytes.max(1), ROUND)?;
    if rounded <= SMALL_LIMIT {
        Some((rounded, true))
    } else {
        Some((round_up(rounded, LARGE_ROUND)?, false))
    }
}

impl MemPool {
    pub(crate) fn new(ctx: Weak<Context>) -> MemPool {
        MemPool {
            ctx,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool's counters now.
    pub fn stats(&self) -> PoolStats {
        let st = self.lock();
        let mut s = st.stats;
        s.segments = st.segments.len();
        s.free_blocks = st.free_small.len() + st.free_large.len();
        s
    }

    /// Sets the peak to the current bytes in use.
    pub fn reset_peak(&self) {
        let mut st = self.lock();
        st.stats.peak_in_use = st.stats.in_use;
    }

    /// The block size a request of `bytes` takes from the pool (its size
    /// class), or `None` when the rounding overflows.
    pub fn block_size(bytes: usize) -> Option<usize> {
        size_class(bytes).map(|(s, _)| s)
    }

    /// Releases every segment none of whose memory is handed out, after
    /// the work still queued on it has finished. Memory in use is kept.
    pub fn empty_cache(&self) -> Result<()> {
        let ctx = self
            .ctx
            .upgrade()
            .ok_or_else(|| Error::invalid("MemPool::empty_cache", "the pool's context is gone"))?;
        ctx.bind_to_thread()?;
        self.release_unused().1
    }

    /// Releases unused segments; the context must be current. The waits
    /// and frees happen without the pool's lock held, so that work on the
    /// streams waited for (a host function dropping a pooled buffer, say)
    /// can still use the pool.
    /// Returns how many segments were freed, and the first error.
    fn release_unused(&self) -> (u64, Result<()>) {
        let idle = Self::take_unused(&mut self.lock());
        let mut first_err = None;
        let mut kept = Vec::new();
        let mut freed = 0u64;
        for seg in idle {
            // Queued work may still touch the memory: wait for it first.
            let mut waited = Ok(());
            for p in &seg.pending {
                if let Some(s) = p.stream.upgrade() {
                    waited = waited.and(s.sync_point());
                }
            }
            if let Err(e) = waited {
                // Fall back to waiting for the whole device (the context is
                // current); keep the segment only when that fails too.
                let fallback = result::acl::device::synchronize();
                first_err.get_or_insert(e);
                if fallback.is_err() {
                    kept.push(seg);
                    continue;
                }
            }
            // Taken out of the maps above, so no one else frees or hands it out.
            // SAFETY: `base` is this pool's aclrtMalloc segment; none of it is
            // handed out (one free block spanned it); its queued work finished.
            match unsafe { result::acl::memory::free(seg.base as *mut c_void) } {
                Ok(()) => freed += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                    kept.push(seg);
                }
            }
        }
        let mut st = self.lock();
        st.stats.device_frees += freed;
        for seg in kept {
            // Not released: it stays cached, as it was.
            st.stats.reserved += seg.size;
            st.segments.insert(seg.base, Segment { size: seg.size });
            st.free_set(seg.small).insert((seg.size, seg.base));
            st.blocks.insert(
                seg.base,
                Block {
                    size: seg.size,
                    segment: seg.base,
                    free: true,
                    small: seg.small,
                    pending: seg.pending,
                },
            );
        }
        let r = match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        };
        (freed, r)
    }

    /// Takes every segment that is one free block out of the pool.
    fn take_unused(st: &mut State) -> Vec<Idle> {
        let bases: Vec<usize> = st
            .segments
            .iter()
            .filter(|(base, seg)| {
                st.blocks
                    .get(base)
                    .is_some_and(|b| b.free && b.size == seg.size)
            })
            .map(|(base, _)| *base)
            .collect();
        let mut idle = Vec::with_capacity(bases.len());
        for base in bases {
            let (Some(block), Some(seg)) = (st.blocks.remove(&base), st.segments.remove(&base))
            else {
                continue;
            };
            st.free_set(block.small).remove(&(block.size, base));
            st.stats.reserved -= seg.size;
            idle.push(Idle {
                base,
                size: seg.size,
                small: block.small,
                pending: block.pending,
            });
        }
        idle
    }

    /// Hands out a block of at least `bytes` bytes (`bytes > 0`) for work
    /// queued on `stream`, whose context must be current.
    pub(crate) fn allocate(&self, stream: &Arc<Stream>, bytes: usize) -> Result<PoolBlock> {
        let (size, small) = size_class(bytes).ok_or_else(|| {
            Error::invalid(
                "MemPool::allocate",
                format!("{bytes} bytes do not fit in the address space"),
            )
        })?;
        let mut st = self.lock();
        if let Some(block) = Self::reuse(&mut st, stream, size, small)? {
            return Ok(block);
        }
        drop(st);
        let seg_size = if small { SMALL_SEGMENT } else { size };
        let base = match result::acl::memory::malloc(seg_size, ACL_MEM_MALLOC_HUGE_FIRST) {
            Ok(p) => p,
            Err(first) => {
                // Give back what is cached and try again (another thread may
                // have freed a fitting block meanwhile: look first).
                let (freed, _) = self.release_unused();
                if let Some(block) = Self::reuse(&mut self.lock(), stream, size, small)? {
                    return Ok(block);
                }
                if freed == 0 {
                    return Err(first);
                }
                Self::malloc_after_release(seg_size).map_err(|_| first)?
            }
        };
        if base.is_null() {
            return Err(result::null_result("aclrtMalloc"));
        }
        let addr = base as usize;
        let mut st = self.lock();
        st.stats.device_allocs += 1;
        st.stats.reserved += seg_size;
        st.segments.insert(addr, Segment { size: seg_size });
        st.blocks.insert(
            addr,
            Block {
                size: seg_size,
                segment: addr,
                free: true,
                small,
                pending: Vec::new(),
            },
        );
        Ok(Self::take(&mut st, addr, size))
    }

    /// A cached block for the request, ordered after its earlier users, if
    /// one fits.
    fn reuse(
        st: &mut State,
        stream: &Arc<Stream>,
        size: usize,
        small: bool,
    ) -> Result<Option<PoolBlock>> {
        if let Some(addr) = Self::find_free(st, size, small, stream.id()) {
            let waits = Self::order_after_pending(st, addr, stream)?;
            let found = st.blocks[&addr].size;
            st.free_set(small).remove(&(found, addr));
            st.stats.cache_hits += 1;
            if waits {
                st.stats.cross_stream_waits += 1;
            }
            return Ok(Some(Self::take(st, addr, size)));
        }
        Ok(None)
    }

    /// `aclrtMalloc` right after segments were freed. A runtime may make
    /// freed memory available only once it has processed the release (the
    /// mock does so after the work queued before the free), so the device
    /// is synchronized and a few short retries (50 ms in all) are made.
    fn malloc_after_release(size: usize) -> Result<*mut c_void> {
        let mut last = result::acl::device::synchronize()
            .and_then(|()| result::acl::memory::malloc(size, ACL_MEM_MALLOC_HUGE_FIRST));
        for _ in 0..10 {
            if last.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            last = result::acl::memory::malloc(size, ACL_MEM_MALLOC_HUGE_FIRST);
        }
        last
    }

    /// The best-fitting free block of the class: the smallest without work
    /// on other streams, else the smallest.
    fn find_free(st: &State, size: usize, small: bool, sid: u64) -> Option<usize> {
        let set = if small {
            &st.free_small
        } else {
            &st.free_large
        };
        let mut fallback = None;
        for &(_, addr) in set.range((size, 0)..) {
            let b = &st.blocks[&addr];
            if b.pending.iter().all(|p| p.id == sid) {
                return Some(addr);
            }
            fallback.get_or_insert(addr);
        }
        fallback
    }

    /// Makes `stream` wait for the other streams with work pending on the
    /// free block at `addr`; true when it had to.
    fn order_after_pending(st: &mut State, addr: usize, stream: &Arc<Stream>) -> Result<bool> {
        let mut waited = false;
        let block = st.blocks.get_mut(&addr).expect("free block is listed");
        for p in &block.pending {
            if p.id == stream.id() {
                continue;
            }
            if let Some(other) = p.stream.upgrade() {
                stream.join_inner(&other)?;
                waited = true;
            }
        }
        // The list stays: `take` hands it to the part of the block that is
        // split off, whose later users have not waited for anyone.
        Ok(waited)
    }

    /// Marks the free block at `addr` (already out of its free list) as
    /// handed out, splitting off the tail beyond `size` when it is big
    /// enough to be useful.
    fn take(st: &mut State, addr: usize, size: usize) -> PoolBlock {
        let (total, small, segment, pending) = {
            let b = st.blocks.get_mut(&addr).expect("block exists");
            b.free = false;
            (b.size, b.small, b.segment, std::mem::take(&mut b.pending))
        };
        let min_rest = if small { ROUND } else { LARGE_ROUND };
        if total - size >= min_rest {
            st.blocks.get_mut(&addr).expect("block exists").size = size;
            let rest = addr + size;
            st.blocks.insert(
                rest,
                Block {
                    size: total - size,
                    segment,
                    free: true,
                    small,
                    pending,
                },
            );
            st.free_set(small).insert((total - size, rest));
        }
        let taken = st.blocks[&addr].size;
        st.stats.in_use += taken;
        st.stats.peak_in_use = st.stats.peak_in_use.max(st.stats.in_use);
        PoolBlock {
            ptr: addr as *mut c_void,
        }
    }

    /// Returns the block at `ptr` to the cache; `users` are the streams that
    /// may still have work queued on it. Merges it with free neighbours.
    pub(crate) fn free(&self, ptr: *mut c_void, users: Vec<Arc<Stream>>) -> Result<()> {
        let addr = ptr as usize;
        let mut st = self.lock();
        let Some(block) = st.blocks.get_mut(&addr).filter(|b| !b.free) else {
            return Err(Error::invalid(
                "MemPool::free",
                format!("{ptr:p} is not a block handed out by this pool"),
            ));
        };
        block.free = true;
        for u in users {
            if !block.pending.iter().any(|p| p.id == u.id()) {
                block.pending.push(Pending {
                    id: u.id(),
                    stream: Arc::downgrade(&u),
                });
            }
        }
        let (mut start, mut size, small, segment) = (addr, block.size, block.small, block.segment);
        st.stats.in_use -= size;
        // Merge with the next block.
        let next = addr + size;
        if st
            .blocks
            .get(&next)
            .is_some_and(|n| n.free && n.segment == segment)
        {
            let n = st.blocks.remove(&next).expect("checked");
            st.free_set(small).remove(&(n.size, next));
            size += n.size;
            merge_pending(st.blocks.get_mut(&addr).expect("block"), n.pending);
        }
        // Merge with the previous block.
        let prev = st
            .blocks
            .range(..addr)
            .next_back()
            .filter(|(pa, p)| p.free && p.segment == segment && *pa + p.size == addr)
            .map(|(pa, _)| *pa);
        if let Some(pa) = prev {
            let me = st.blocks.remove(&addr).expect("block");
            let psize = st.blocks[&pa].size;
            st.free_set(small).remove(&(psize, pa));
            let p = st.blocks.get_mut(&pa).expect("block");
            p.size += size;
            merge_pending(p, me.pending);
            start = pa;
            size += psize;
        } else {
            st.blocks.get_mut(&addr).expect("block").size = size;
        }
        st.free_set(small).insert((size, start));
        Ok(())
    }

    /// Frees every segment, when the context is being destroyed (no block
    /// can be in use then: each pooled buffer holds the context). The
    /// context must be current.
    pub(crate) fn release_all(&self) -> Result<()> {
        self.release_unused().1
    }
}

fn merge_pending(into: &mut Block, more: Vec<Pending>) {
    for p in more {
        if !into.pending.iter().any(|q| q.id == p.id) {
            into.pending.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_as_documented() {
        assert_eq!(size_class(1), Some((512, true)));
        assert_eq!(size_class(0), Some((512, true)));
        assert_eq!(size_class(512), Some((512, true)));
        assert_eq!(size_class(513), Some((1024, true)));
        assert_eq!(size_class(SMALL_LIMIT), Some((SMALL_LIMIT, true)));
        assert_eq!(size_class(SMALL_LIMIT + 1), Some((LARGE_ROUND, false)));
        assert_eq!(size_class(5 << 20), Some((6 << 20, false)));
        assert_eq!(size_class(usize::MAX), None);
    }
}
