//! The caching pool on the mock: statistics, size classes, splitting and
//! merging, stream-ordered reuse on one and on two streams, `empty_cache`,
//! and a repeated allocation pattern that stops allocating after its first
//! pass.
#![cfg(feature = "mock")]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use ascend_rt::{DeviceBuffer, MemPool};

const MIB: usize = 1 << 20;

/// Serialises the test that fills the device's memory (the mock device has
/// 1 GiB, shared by every test of this binary) with the tests whose streams
/// sleep: the mock makes freed memory available only after the work queued
/// on every stream before the free.
static DEVICE_MEMORY: Mutex<()> = Mutex::new(());

#[test]
fn stats_count_use_reservation_peak_and_hits() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    assert_eq!(pool.stats().reserved, 0);

    let a = DeviceBuffer::<f32>::zeroed_pooled(&s, 1000).unwrap(); // 4000 B
    assert!(a.is_pooled());
    let st = pool.stats();
    assert_eq!(st.in_use, 4096);
    assert_eq!(st.reserved, 2 * MIB);
    assert_eq!(st.device_allocs, 1);
    assert_eq!(st.cache_hits, 0);
    assert_eq!(st.segments, 1);

    let b = DeviceBuffer::<u8>::zeroed_pooled(&s, 3 * MIB).unwrap(); // large
    let st = pool.stats();
    assert_eq!(st.in_use, 4096 + 4 * MIB);
    assert_eq!(st.reserved, 6 * MIB);
    assert_eq!(st.device_allocs, 2);
    assert_eq!(st.peak_in_use, 4096 + 4 * MIB);

    drop(b);
    drop(a);
    let st = pool.stats();
    assert_eq!(st.in_use, 0);
    assert_eq!(st.reserved, 6 * MIB, "freed memory stays cached");
    assert_eq!(st.peak_in_use, 4096 + 4 * MIB);

    let c = DeviceBuffer::<f32>::zeroed_pooled(&s, 900).unwrap();
    let d = DeviceBuffer::<u8>::zeroed_pooled(&s, 3 * MIB + 5).unwrap();
    let st = pool.stats();
    assert_eq!(st.device_allocs, 2, "both served from the cache");
    assert_eq!(st.cache_hits, 2);
    assert_eq!(st.cross_stream_waits, 0);
    assert_eq!(c.to_vec().unwrap(), vec![0.0; 900]);
    assert!(d.to_vec().unwrap().iter().all(|&x| x == 0));
    pool.reset_peak();
    assert_eq!(pool.stats().peak_in_use, pool.stats().in_use);
    assert_eq!(MemPool::block_size(1), Some(512));
    assert_eq!(MemPool::block_size(MIB + 1), Some(2 * MIB));
}

#[test]
fn small_blocks_split_a_segment_and_merge_back() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let a = DeviceBuffer::<u8>::zeroed_pooled(&s, 1000).unwrap(); // 1024
    let b = DeviceBuffer::<u8>::zeroed_pooled(&s, 512).unwrap(); // 512
    let c = DeviceBuffer::<u8>::zeroed_pooled(&s, 2000).unwrap(); // 2048
    let (pa, pb, pc) = (
        a.as_ptr() as usize,
        b.as_ptr() as usize,
        c.as_ptr() as usize,
    );
    assert_eq!(pb, pa + 1024, "b is split off right after a");
    assert_eq!(pc, pb + 512);
    assert_eq!(pool.stats().segments, 1);
    assert_eq!(pool.stats().free_blocks, 1, "the tail of the segment");

    drop(b);
    assert_eq!(
        pool.stats().free_blocks,
        2,
        "b cannot merge: a and c in use"
    );
    drop(a);
    assert_eq!(pool.stats().free_blocks, 2, "a merged with b");
    // a and b together (1536 bytes) come back at a's address.
    let ab = DeviceBuffer::<u8>::zeroed_pooled(&s, 1536).unwrap();
    assert_eq!(ab.as_ptr() as usize, pa);
    drop(ab);
    drop(c);
    let st = pool.stats();
    assert_eq!(st.free_blocks, 1, "the whole segment is one block again");
    assert_eq!(st.in_use, 0);
    // A request as big as the segment's limit for small blocks fits it.
    let big = DeviceBuffer::<u8>::zeroed_pooled(&s, MIB).unwrap();
    assert_eq!(big.as_ptr() as usize, pa);
    assert_eq!(pool.stats().device_allocs, 1);
}

#[test]
fn large_blocks_are_rounded_to_2_mib_and_split_when_reused() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let a = DeviceBuffer::<u8>::zeroed_pooled(&s, 7 * MIB).unwrap();
    assert_eq!(pool.stats().reserved, 8 * MIB);
    let base = a.as_ptr() as usize;
    drop(a);
    let b = DeviceBuffer::<u8>::zeroed_pooled(&s, 3 * MIB).unwrap();
    let c = DeviceBuffer::<u8>::zeroed_pooled(&s, 3 * MIB).unwrap();
    assert_eq!(b.as_ptr() as usize, base);
    assert_eq!(c.as_ptr() as usize, base + 4 * MIB);
    assert_eq!(pool.stats().device_allocs, 1);
    // Small requests never come from large segments.
    let small = DeviceBuffer::<u8>::zeroed_pooled(&s, 100).unwrap();
    assert_eq!(pool.stats().device_allocs, 2);
    assert_eq!(pool.stats().reserved, 10 * MIB);
    drop(small);
}

#[test]
fn reuse_on_the_same_stream_needs_no_wait() {
    let _serial = DEVICE_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    s.launch_host_fn(|| std::thread::sleep(Duration::from_millis(200)))
        .unwrap();
    let mut a = DeviceBuffer::<i32>::zeroed_pooled(&s, 4096).unwrap();
    a.memset_async(1, &s).unwrap();
    let pa = a.as_ptr();
    drop(a); // returns at once: the stream is still sleeping
    let b = DeviceBuffer::<i32>::zeroed_pooled(&s, 4096).unwrap();
    assert_eq!(b.as_ptr(), pa, "the same stream reuses the block at once");
    assert_eq!(pool.stats().cross_stream_waits, 0);
    assert!(b.to_vec().unwrap().iter().all(|&x| x == 0));
}

/// A block freed with a write still queued on a slow stream A and reused on
/// stream B: B must wait for A, or A's late write lands on B's data.
#[test]
fn reuse_on_another_stream_waits_for_the_old_work() {
    let _serial = DEVICE_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = common::ctx();
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    a.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    let mut old = DeviceBuffer::<u8>::zeroed_pooled(&a, 4096).unwrap();
    old.memset_async(0xAA, &a).unwrap(); // runs after the sleep
    let p = old.as_ptr();
    drop(old);

    let mut new = DeviceBuffer::<u8>::zeroed_pooled(&b, 4096).unwrap();
    assert_eq!(new.as_ptr(), p, "the only cached block is reused");
    assert_eq!(pool.stats().cross_stream_waits, 1);
    new.memset_async(0x55, &b).unwrap();
    assert!(new.to_vec().unwrap().iter().all(|&x| x == 0x55));
    a.synchronize().unwrap();
    assert!(
        new.to_vec().unwrap().iter().all(|&x| x == 0x55),
        "the old write on A landed after the reuse on B"
    );
}

/// A freed block is split for a second stream, which waits for the first;
/// the part left over still remembers the first stream, so a third stream
/// reusing it waits too (it once inherited only the second stream's
/// ordering, which orders nothing for the third).
#[test]
fn the_rest_of_a_split_block_still_waits_for_its_old_work() {
    let _serial = DEVICE_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = common::ctx();
    let (a, b, c) = (
        ctx.new_stream().unwrap(),
        ctx.new_stream().unwrap(),
        ctx.new_stream().unwrap(),
    );
    let pool = ctx.pool();
    a.launch_host_fn(|| std::thread::sleep(Duration::from_millis(300)))
        .unwrap();
    let mut x = DeviceBuffer::<u8>::zeroed_pooled(&a, 4096).unwrap();
    let mut y = DeviceBuffer::<u8>::zeroed_pooled(&a, 4096).unwrap();
    x.memset_async(0xAA, &a).unwrap(); // both run after the sleep
    y.memset_async(0xAA, &a).unwrap();
    let (px, py) = (x.as_ptr(), y.as_ptr());
    drop((x, y)); // merge back into one free block, pending on A

    let on_b = DeviceBuffer::<u8>::zeroed_pooled(&b, 4096).unwrap();
    assert_eq!(on_b.as_ptr(), px);
    let mut on_c = DeviceBuffer::<u8>::zeroed_pooled(&c, 4096).unwrap();
    assert_eq!(on_c.as_ptr(), py, "the rest of the split block");
    assert_eq!(
        pool.stats().cross_stream_waits,
        2,
        "B and C both wait for A"
    );
    on_c.memset_async(0x55, &c).unwrap();
    a.synchronize().unwrap();
    assert!(
        on_c.to_vec().unwrap().iter().all(|&v| v == 0x55),
        "A's old write landed after C's"
    );
}

/// Between a block used on another stream and a fresh one of the same
/// class, the allocator prefers the one that needs no wait.
#[test]
fn blocks_of_the_own_stream_are_preferred() {
    let ctx = common::ctx();
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let on_a = DeviceBuffer::<u8>::zeroed_pooled(&a, 2 * MIB + 1).unwrap();
    let on_b = DeviceBuffer::<u8>::zeroed_pooled(&b, 2 * MIB + 1).unwrap();
    let (pa, pb) = (on_a.as_ptr(), on_b.as_ptr());
    drop(on_a);
    drop(on_b);
    let again_b = DeviceBuffer::<u8>::zeroed_pooled(&b, 2 * MIB + 1).unwrap();
    assert_eq!(again_b.as_ptr(), pb);
    let again_a = DeviceBuffer::<u8>::zeroed_pooled(&a, 2 * MIB + 1).unwrap();
    assert_eq!(again_a.as_ptr(), pa);
    assert_eq!(pool.stats().cross_stream_waits, 0);
}

#[test]
fn empty_cache_releases_only_unused_segments() {
    let _serial = DEVICE_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let kept = DeviceBuffer::<f32>::zeroed_pooled(&s, 10).unwrap();
    let gone = DeviceBuffer::<u8>::zeroed_pooled(&s, 5 * MIB).unwrap();
    let also_gone = DeviceBuffer::<u8>::zeroed_pooled(&s, 3 * MIB).unwrap();
    assert_eq!(pool.stats().reserved, 2 * MIB + 6 * MIB + 4 * MIB);
    drop(gone);
    drop(also_gone);
    pool.empty_cache().unwrap();
    let st = pool.stats();
    assert_eq!(st.reserved, 2 * MIB, "the segment in use stays");
    assert_eq!(st.device_frees, 2);
    assert_eq!(st.segments, 1);
    assert_eq!(kept.to_vec().unwrap(), vec![0.0; 10]);
    drop(kept);
    pool.empty_cache().unwrap();
    assert_eq!(pool.stats().reserved, 0);
}

/// Intermediates of a repeated computation come from the cache after the
/// first pass: the device allocation counter stops moving.
#[test]
fn a_repeated_pattern_stops_allocating_after_its_first_pass() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let sizes = [1000usize, 300_000, 70, 600_000, 4096, 1];
    let pass = || {
        let mut live = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let mut b = DeviceBuffer::<f32>::zeroed_pooled(&s, n).unwrap();
            b.memset_async(i as u8, &s).unwrap();
            live.push(b);
            if i % 2 == 1 {
                live.remove(0);
            }
        }
        live.last().unwrap().to_vec().unwrap()
    };
    let first = pass();
    let allocs = pool.stats().device_allocs;
    assert!(allocs > 0);
    for _ in 0..5 {
        assert_eq!(pass(), first);
        assert_eq!(pool.stats().device_allocs, allocs);
    }
    assert!(pool.stats().cache_hits >= 5 * sizes.len() as u64);
}

#[test]
fn empty_pooled_buffers_take_nothing() {
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let b = DeviceBuffer::<f32>::zeroed_pooled(&s, 0).unwrap();
    assert!(b.is_empty());
    assert_eq!(ctx.pool().stats().reserved, 0);
    assert_eq!(b.to_vec().unwrap(), Vec::<f32>::new());
}

/// When the device is out of memory, the pool gives back its cached
/// segments and tries again before failing.
#[test]
fn an_allocation_that_does_not_fit_releases_the_cache_first() {
    let _serial = DEVICE_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let cached = DeviceBuffer::<u8>::zeroed_pooled(&s, 600 * MIB).unwrap();
    drop(cached);
    assert_eq!(pool.stats().reserved, 600 * MIB);
    // 600 MiB cached + 700 MiB new exceed the 1 GiB device.
    let big = DeviceBuffer::<u8>::zeroed_pooled(&s, 700 * MIB).unwrap();
    let st = pool.stats();
    assert_eq!(st.reserved, 700 * MIB);
    assert_eq!(st.device_frees, 1);
    assert_eq!(st.device_allocs, 2);
    drop(big);
    // Beyond the device even with an empty cache: a clean error.
    let err = DeviceBuffer::<u8>::zeroed_pooled(&s, 2048 * MIB).unwrap_err();
    assert!(err.to_string().contains("aclrtMalloc"), "{err}");
    assert_eq!(pool.stats().reserved, 0);
    assert_eq!(pool.stats().in_use, 0);
}

/// `empty_cache` waits for the work queued on the segments it releases;
/// that work may itself give a pooled buffer back (a host function dropping
/// it), which must not deadlock against the release.
#[test]
fn empty_cache_does_not_hold_the_pool_while_waiting() {
    let _serial = DEVICE_MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = common::ctx();
    let s = ctx.new_stream().unwrap();
    let pool = ctx.pool();
    let idle = DeviceBuffer::<u8>::zeroed_pooled(&s, 3 * MIB).unwrap();
    drop(idle); // cached, with work pending on `s`
    let held = DeviceBuffer::<u8>::zeroed_pooled(&s, 100).unwrap();
    s.launch_host_fn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(held); // back to the pool from the stream's worker
    })
    .unwrap();
    pool.empty_cache().unwrap(); // waits for `s`, which waits for the pool
    s.synchronize().unwrap();
    let st = pool.stats();
    assert_eq!(st.in_use, 0);
    assert_eq!(st.device_frees, 1, "the large segment");
    pool.empty_cache().unwrap();
    assert_eq!(pool.stats().reserved, 0);
}
