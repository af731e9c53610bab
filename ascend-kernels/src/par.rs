//! Parallel elementwise loops over contiguous memory, for the fast paths of
//! the elementwise kernels: a large contiguous tensor is cut into chunks
//! that the rayon pool maps independently (each chunk a plain indexed loop
//! the compiler can vectorise); a small one runs on the calling thread.
//!
//! Invariant: [`map`] touches element `i` of the destination only from the
//! task that read element `i` of the source, and after that read, so a
//! destination that is the source itself (an in-place operator) is safe,
//! while any other overlap is excluded by its contract.

use rayon::prelude::*;

/// Below this many elements one thread does the whole loop.
pub const PAR_MIN: usize = 1 << 15;

/// Elements per parallel task.
pub const CHUNK: usize = 1 << 13;

/// A raw pointer the pool's tasks may share: the tasks of [`map`] touch
/// disjoint index ranges of the memory behind it.
struct Shared<T>(*mut T);

// SAFETY: the pointer is only dereferenced inside `map`, whose tasks touch
// disjoint index ranges (see the module invariant); the memory outlives the
// call, which joins every task before returning.
unsafe impl<T> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `dst[i] = f(src[i])` for every `i < n`, in parallel when `n` is large.
///
/// # Safety
/// `src` must be valid for `n` reads of `T` and `dst` for `n` writes of
/// `U` (any alignment), and the two ranges must either not overlap or be
/// the same address with `size_of::<T>() == size_of::<U>()` (in place); no
/// other thread may write either range meanwhile.
pub unsafe fn map<T: Copy, U: Copy>(
    src: *const T,
    dst: *mut U,
    n: usize,
    f: impl Fn(T) -> U + Sync,
) {
    let (s, d) = (Shared(src as *mut T), Shared(dst));
    let body = |lo: usize, hi: usize| {
        for i in lo..hi {
            // SAFETY: `i < n`, so both elements lie in the ranges the caller
            // guarantees; element `i` of `dst` is written only here, after
            // element `i` of `src` was read (the in-place case).
            unsafe {
                let v = s.get().add(i).read_unaligned();
                d.get().add(i).write_unaligned(f(v));
            }
        }
    };
    if n < PAR_MIN || rayon::current_num_threads() < 2 {
        body(0, n);
        return;
    }
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .for_each(|c| body(c * CHUNK, ((c + 1) * CHUNK).min(n)));
}

/// `v[i] = f(v[i])` over a host vector, in parallel when it is large.
pub fn map_vec<T: Copy + Send + Sync>(v: &mut [T], f: impl Fn(T) -> T + Sync + Send) {
    if v.len() < PAR_MIN || rayon::current_num_threads() < 2 {
        v.iter_mut().for_each(|e| *e = f(*e));
    } else {
        v.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|e| *e = f(*e)));
    }
}

/// `f(a[i], b[i])` for every `i`, in parallel when the slices are large.
pub fn zip_map<T: Copy + Sync, U: Send>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Vec<U> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PAR_MIN || rayon::current_num_threads() < 2 {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    } else {
        a.par_iter()
            .with_min_len(CHUNK)
            .zip(b.par_iter())
            .map(|(&x, &y)| f(x, y))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_in_place_and_out_of_place_over_chunk_boundaries() {
        let n = PAR_MIN * 2 + 17;
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut dst = vec![0f64; n];
        // SAFETY: both vectors hold `n` elements and do not overlap.
        unsafe { map(src.as_ptr(), dst.as_mut_ptr(), n, |x| f64::from(x) * 2.0) };
        assert!(dst.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f64));
        let mut same = src.clone();
        let p = same.as_mut_ptr();
        // SAFETY: in place: the same address, the same element size.
        unsafe { map(p, p, n, |x| x + 1.0) };
        assert!(same.iter().enumerate().all(|(i, &v)| v == i as f32 + 1.0));
        let mut v: Vec<i64> = (0..n as i64).collect();
        map_vec(&mut v, |x| -x);
        assert!(v.iter().enumerate().all(|(i, &x)| x == -(i as i64)));
        let w: Vec<i64> = (0..n as i64).collect();
        let z = zip_map(&v, &w, |x, y| x * 3 + y);
        assert_eq!(z.len(), n);
        assert!(z.iter().enumerate().all(|(i, &x)| x == -2 * i as i64));
    }
}
