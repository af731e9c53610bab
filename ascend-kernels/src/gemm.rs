//! The matrix-product engine behind aclnnMatmul and aclnnGroupedMatmul: a
//! thin wrapper over the `gemm` crate (f32, arbitrary row/column strides,
//! rayon parallelism), and [`F32Matrix`], which turns a 2-D tensor view into
//! an f32 operand.
//!
//! f32 views whose base is 4-byte aligned are used in place (any strides,
//! including transposed and broadcast ones); f16, bf16 and unaligned views
//! are converted to a contiguous f32 copy of exactly that 2-D slab, so a
//! caller converts only the operand blocks it multiplies (for example only
//! the experts that received tokens).
//!
//! Invariant: an [`F32Matrix`] that borrows device memory is valid only
//! while the view it was made from is (tensor.rs's module invariant).

use gemm::Parallelism;

use crate::tensor::{DType, TensorArg};

/// Below this many multiply-adds a product runs on the calling thread: the
/// cost of waking the pool exceeds the work.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// Whether a product of this size should use the thread pool itself.
pub fn worth_parallel(m: usize, n: usize, k: usize) -> bool {
    m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1
}

/// A strided f32 matrix: element `(i, j)` is at `ptr + i*rs + j*cs`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef {
    pub ptr: *const f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
}

/// `dst = a @ b`, overwriting the `a.rows × b.cols` matrix at `dst` (row
/// stride `dst_rs`, column stride `dst_cs`). `parallel` lets gemm use the
/// rayon pool.
///
/// # Safety
/// Every element `a` and `b` address must be a readable, 4-byte aligned
/// f32; every element of `dst` must be writable, distinct from every other
/// element of `dst` (no zero or overlapping strides) and not overlap `a` or
/// `b`; nothing else accesses `dst` meanwhile.
pub unsafe fn matmul_into(
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    a: MatRef,
    b: MatRef,
    parallel: bool,
) {
    debug_assert_eq!(a.cols, b.rows);
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside dst, which the caller lets us write.
                unsafe { *dst.offset(i as isize * dst_rs + j as isize * dst_cs) = 0.0 };
            }
        }
        return;
    }
    let par = if parallel {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: with read_dst = false gemm only writes dst (= a @ b) and reads
    // exactly the elements of a and b, all readable, aligned f32 and disjoint
    // from the writable, non-overlapping dst by the caller's contract.
    unsafe {
        gemm::gemm(
            m, n, k, dst, dst_cs, dst_rs, false, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs, 0.0f32,
            1.0f32, false, false, false, par,
        );
    }
}

/// An f32 operand made from a 2-D view: borrowed when the view is aligned
/// f32, otherwise an owned row-major copy.
pub struct F32Matrix {
    owned: Option<Vec<f32>>,
    borrowed: *const f32,
    pub rows: usize,
    pub cols: usize,
    rs: isize,
    cs: isize,
}

// SAFETY: an F32Matrix only reads the memory it describes; the borrowed form
// points into a view the mock keeps alive and unwritten for the kernel's run,
// and the owned form is a plain Vec.
unsafe impl Send for F32Matrix {}
// SAFETY: as above; shared use only reads.
unsafe impl Sync for F32Matrix {}

impl F32Matrix {
    /// The operand for a 2-D view. `round_to_f16` rounds f32 values to f16
    /// first (cubeMathType USE_FP16).
    ///
    /// # Safety
    /// tensor.rs's module invariant for `view`, which must have rank 2; the
    /// result must not outlive the view's memory.
    pub unsafe fn from_view(view: &TensorArg, round_to_f16: bool) -> F32Matrix {
        debug_assert_eq!(view.rank(), 2);
        let rows = view.shape[0].max(0) as usize;
        let cols = view.shape[1].max(0) as usize;
        let base = view
            .ptr
            .wrapping_offset((view.offset as isize).wrapping_mul(4));
        let aligned = (base as usize) % std::mem::align_of::<f32>() == 0;
        if view.dtype == DType::F32 && aligned && !round_to_f16 {
            return F32Matrix {
                owned: None,
                borrowed: base as *const f32,
                rows,
                cols,
                rs: view.strides[0] as isize,
                cs: view.strides[1] as isize,
            };
        }
        // Copy in memory order: the dimension with the smaller stride is
        // the inner loop, and the copy keeps that orientation (a transposed
        // view becomes a column-major operand), which gemm takes as is.
        let (rs, cs) = (view.strides[0], view.strides[1]);
        let col_major = cs.unsigned_abs() > rs.unsigned_abs();
        let (outer_n, inner_n, outer_s, inner_s) = if col_major {
            (cols, rows, cs, rs)
        } else {
            (rows, cols, rs, cs)
        };
        let shape = Slab {
            offset: view.offset,
            outer_n,
            inner_n,
            outer_s,
            inner_s,
        };
        // SAFETY (each arm): every (o, i) of the slab is an element of the
        // view, readable by the forwarded invariant.
        let mut data = unsafe {
            match view.dtype {
                DType::F32 => shape.gather::<f32>(view.ptr, |v| v),
                DType::F16 => shape.gather::<half::f16>(view.ptr, half::f16::to_f32),
                DType::BF16 => shape.gather::<half::bf16>(view.ptr, half::bf16::to_f32),
                _ => {
                    // Other dtypes are not matrix operands of any operator;
                    // convert through the generic row-major gather.
                    let mut d = view.read_f32();
                    if round_to_f16 {
                        round_all(&mut d);
                    }
                    return F32Matrix {
                        owned: Some(d),
                        borrowed: std::ptr::null(),
                        rows,
                        cols,
                        rs: cols as isize,
                        cs: 1,
                    };
                }
            }
        };
        if round_to_f16 {
            round_all(&mut data);
        }
        let (rs, cs) = if col_major {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        };
        F32Matrix {
            owned: Some(data),
            borrowed: std::ptr::null(),
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// The operand as a strided matrix reference.
    pub fn as_ref(&self) -> MatRef {
        let ptr = match &self.owned {
            Some(v) => v.as_ptr(),
            None => self.borrowed,
        };
        MatRef {
            ptr,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
}

/// Round every value to the nearest f16 (cubeMathType USE_FP16).
fn round_all(v: &mut [f32]) {
    for x in v {
        *x = half::f16::from_f32(*x).to_f32();
    }
}

/// A 2-D block of elements at `offset + o*outer_s + i*inner_s` for
/// `o < outer_n`, `i < inner_n`.
struct Slab {
    offset: i64,
    outer_n: usize,
    inner_n: usize,
    outer_s: i64,
    inner_s: i64,
}

impl Slab {
    /// Convert the block to f32, outer-major.
    ///
    /// # Safety
    /// Every addressed element of `base` must be a readable `T`.
    unsafe fn gather<T: Copy>(&self, base: *mut u8, conv: impl Fn(T) -> f32) -> Vec<f32> {
        let base = base as *const T;
        let mut out = Vec::with_capacity(self.outer_n * self.inner_n);
        for o in 0..self.outer_n as i64 {
            let row = self.offset + o * self.outer_s;
            if self.inner_s == 1 {
                // SAFETY: the inner_n elements from `row` are the block's
                // row, readable by the caller's guarantee; unaligned reads.
                out.extend(
                    (0..self.inner_n as isize)
                        .map(|i| conv(unsafe { base.offset(row as isize + i).read_unaligned() })),
                );
            } else {
                // SAFETY: as above, with the block's inner stride.
                out.extend((0..self.inner_n as i64).map(|i| {
                    conv(unsafe {
                        base.offset((row + i * self.inner_s) as isize)
                            .read_unaligned()
                    })
                }));
            }
        }
        out
    }
}

/// `a @ b` into a new row-major `a.rows × b.cols` vector.
///
/// # Safety
/// As [`matmul_into`] for `a` and `b`.
pub unsafe fn matmul_vec(a: MatRef, b: MatRef, parallel: bool) -> Vec<f32> {
    let mut out = vec![0f32; a.rows * b.cols];
    // SAFETY: `out` is a fresh, dense row-major buffer of the right size,
    // disjoint from the operands; operand validity is the caller's.
    unsafe { matmul_into(out.as_mut_ptr(), b.cols as isize, 1, a, b, parallel) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
            }
        }
        out
    }

    #[test]
    fn matches_naive_serial_and_parallel() {
        let mut rng = Rng::new(7);
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 2), (70, 90, 65), (130, 64, 257)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.f32()).collect();
            let want = naive(&a, &b, m, k, n);
            for par in [false, true] {
                let ar = MatRef {
                    ptr: a.as_ptr(),
                    rows: m,
                    cols: k,
                    rs: k as isize,
                    cs: 1,
                };
                let br = MatRef {
                    ptr: b.as_ptr(),
                    rows: k,
                    cols: n,
                    rs: n as isize,
                    cs: 1,
                };
                // SAFETY: both operands are dense buffers of the stated size.
                let got = unsafe { matmul_vec(ar, br, par) };
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (f64::from(*g) - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_k_gives_zeros() {
        let a: Vec<f32> = vec![];
        let ar = MatRef {
            ptr: a.as_ptr(),
            rows: 2,
            cols: 0,
            rs: 0,
            cs: 1,
        };
        let br = MatRef {
            ptr: a.as_ptr(),
            rows: 0,
            cols: 3,
            rs: 3,
            cs: 1,
        };
        // SAFETY: k = 0, so no operand element is read.
        let got = unsafe { matmul_vec(ar, br, false) };
        assert_eq!(got, vec![0.0; 6]);
    }
}
