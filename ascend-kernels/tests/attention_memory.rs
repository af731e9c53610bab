//! The attention kernel's memory does not grow as Q_S × KV_S: a counting
//! global allocator measures the peak heap the kernel adds during one
//! causal prefill at several sequence lengths. Linear growth quadruples
//! the peak from S to 4S; an S × S score matrix would multiply it by 16
//! (and alone would exceed the bound checked at the largest S).
//!
//! One test in this binary, so no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ascend_kernels::attention::{self, FusedInferAttentionScoreV2Args};
use ascend_kernels::{DType, TensorArg};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes the kernel allocates beyond what was live before it, for a
/// causal prefill of `s` tokens (B 1, N 2, KV_N 1, D 16, f16, BNSD).
fn peak_for(s: usize) -> usize {
    let (n, d) = (2usize, 16usize);
    let words = |elems: usize| vec![0x3C00_3C00_3C00_3C00u64; (elems * 2).div_ceil(8)];
    let q = words(n * s * d);
    let k = words(s * d);
    let v = words(s * d);
    let mut out = words(n * s * d);
    let mask = vec![0u8; 2048 * 2048];
    let t = |buf: *const u64, dt: DType, shape: &[i64]| {
        TensorArg::contiguous(buf as *mut u8, dt, shape)
    };
    let mut args = FusedInferAttentionScoreV2Args::dense(
        t(q.as_ptr(), DType::F16, &[1, n as i64, s as i64, d as i64]),
        t(k.as_ptr(), DType::F16, &[1, 1, s as i64, d as i64]),
        t(v.as_ptr(), DType::F16, &[1, 1, s as i64, d as i64]),
        t(
            out.as_mut_ptr(),
            DType::F16,
            &[1, n as i64, s as i64, d as i64],
        ),
        "BNSD",
        n as i64,
        0.25,
    );
    args.num_key_value_heads = 1;
    args.sparse_mode = 3;
    args.atten_mask = Some(TensorArg::contiguous(
        mask.as_ptr() as *mut u8,
        DType::Bool,
        &[2048, 2048],
    ));
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    // SAFETY: every view covers exactly its live buffer.
    unsafe { attention::run(&args) }.unwrap();
    // Every value is 1.0 (0x3C00), so each output row is 1.0 too.
    assert!(out.iter().all(|&w| w == 0x3C00_3C00_3C00_3C00));
    PEAK.load(Ordering::Relaxed) - before
}

#[test]
fn attention_peak_heap_grows_linearly_in_s() {
    // Start the thread pool (its allocations are not the kernel's).
    peak_for(64);
    let sizes = [512usize, 1024, 2048, 4096];
    let peaks: Vec<usize> = sizes.iter().map(|&s| peak_for(s)).collect();
    for (s, p) in sizes.iter().zip(&peaks) {
        println!(
            "S = {s}: peak kernel heap {p} bytes ({:.1} bytes per token; an S×S f32 score matrix would be {} bytes)",
            *p as f64 / *s as f64,
            s * s * 4
        );
    }
    // 4096 is 8 × 512: linear growth is about 8×, quadratic 64×.
    let ratio = peaks[3] as f64 / peaks[0] as f64;
    assert!(
        ratio < 12.0,
        "peak grew {ratio:.1}× from S = 512 to 4096: {peaks:?}"
    );
    // An S × S matrix of f32 at S = 4096 is 64 MiB; the kernel stays far below.
    assert!(
        peaks[3] < 4096 * 4096 * 4 / 8,
        "peak {} at S = 4096",
        peaks[3]
    );
}
