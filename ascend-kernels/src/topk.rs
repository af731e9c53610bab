//! `aclnnTopk`: the `k` largest (or smallest) elements along one dimension,
//! with their INT64 positions, plus the stable top-k selection the MoE
//! gating operators share.
//!
//! Decisions where CANN's documentation is silent:
//! - Among equal values the lower index comes first (a stable choice), for
//!   both `largest = true` and `false`; `-0.0` and `+0.0` are equal.
//! - NaN ranks above every number (as PyTorch orders it): first when
//!   `largest`, last otherwise. NaNs among themselves keep index order.
//! - `sorted = false` is refused, as CANN documents `sorted` as "must be
//!   true"; the output is always in rank order.
//! - A 0-D `self` is treated as one element along `dim ∈ {-1, 0}`.
//!
//! Values are copied bit for bit from `self` (no conversion), so INT64 and
//! DOUBLE inputs keep every bit. `run` reads all of `self` before writing.

use std::cmp::Ordering;

use crate::moe::{check_dtype, check_shape, check_view};
use crate::tensor::{DType, KernelError, TensorArg};

/// Arguments of `aclnnTopkGetWorkspaceSize(self, k, dim, largest, sorted,
/// valuesOut, indicesOut, ...)`.
#[derive(Debug, Clone)]
pub struct TopkArgs {
    /// `self`: the input.
    pub input: TensorArg,
    pub k: i64,
    pub dim: i64,
    /// `true`: the k largest, in descending order; `false`: the k smallest, ascending.
    pub largest: bool,
    pub sorted: bool,
    /// Same dtype as `input`, shape of `input` with `dim` replaced by `k`.
    pub values_out: TensorArg,
    /// INT64, same shape as `values_out`.
    pub indices_out: TensorArg,
}

const SUPPORTED: &[DType] = &[
    DType::I8,
    DType::U8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::F16,
    DType::F32,
    DType::F64,
    DType::BF16,
];

/// The normalised dimension and the output shape, for validated arguments.
fn plan(args: &TopkArgs) -> Result<(usize, Vec<i64>), KernelError> {
    let shape: Vec<i64> = if args.input.rank() == 0 {
        vec![1]
    } else {
        args.input.shape.clone()
    };
    let rank = shape.len() as i64;
    let lo = -rank;
    if args.dim < lo || args.dim >= rank {
        return Err(KernelError::invalid(format!(
            "aclnnTopk: dim must be in range [{lo}, {}), but got {}.",
            rank, args.dim
        )));
    }
    let d = if args.dim < 0 {
        args.dim + rank
    } else {
        args.dim
    } as usize;
    let size = shape[d];
    if args.k < 0 || args.k > size {
        return Err(KernelError::invalid(format!(
            "aclnnTopk: k must be in range [0, {size}] (the size of self along dim {}), but got {}.",
            args.dim, args.k
        )));
    }
    let mut out = shape;
    out[d] = args.k;
    Ok((d, out))
}

/// Validate what `aclnnTopkGetWorkspaceSize` validates.
pub fn check(args: &TopkArgs) -> Result<(), KernelError> {
    const OP: &str = "aclnnTopk";
    check_view(OP, "self", &args.input)?;
    check_view(OP, "valuesOut", &args.values_out)?;
    check_view(OP, "indicesOut", &args.indices_out)?;
    check_dtype(OP, "self", &args.input, SUPPORTED)?;
    if args.values_out.dtype != args.input.dtype {
        return Err(KernelError::invalid(format!(
            "aclnnTopk: valuesOut dtype {} must be the same as self dtype {}.",
            args.values_out.dtype.name(),
            args.input.dtype.name()
        )));
    }
    check_dtype(OP, "indicesOut", &args.indices_out, &[DType::I64])?;
    if args.input.rank() > 8 {
        return Err(KernelError::invalid(format!(
            "aclnnTopk: self must have at most 8 dimensions, but has {}.",
            args.input.rank()
        )));
    }
    if !args.sorted {
        return Err(KernelError::invalid(
            "aclnnTopk: sorted must be true, but got false.",
        ));
    }
    let (_, out_shape) = plan(args)?;
    let out_shape = if args.input.rank() == 0 {
        Vec::new()
    } else {
        out_shape
    };
    check_shape(OP, "valuesOut", &args.values_out, &out_shape)?;
    check_shape(OP, "indicesOut", &args.indices_out, &out_shape)?;
    Ok(())
}

/// Order of `(key, index)` pairs for a descending top-k with ties broken by
/// the lower index; `key_cmp` is the ascending order of keys (NaN handled by
/// the caller's key type).
fn rank_cmp<T>(
    a: &(T, usize),
    b: &(T, usize),
    largest: bool,
    key_cmp: &impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    let by_key = if largest {
        key_cmp(&b.0, &a.0)
    } else {
        key_cmp(&a.0, &b.0)
    };
    by_key.then(a.1.cmp(&b.1))
}

/// Positions of the `k` best keys, best first: largest (or smallest) key
/// first, equal keys in index order. `key_cmp` is a total ascending order.
pub(crate) fn select_top_k<T: Copy>(
    keys: &[T],
    k: usize,
    largest: bool,
    key_cmp: impl Fn(&T, &T) -> Ordering,
) -> Vec<usize> {
    let k = k.min(keys.len());
    if k == 0 {
        return Vec::new();
    }
    let mut pairs: Vec<(T, usize)> = keys.iter().copied().zip(0..).collect();
    let cmp = |a: &(T, usize), b: &(T, usize)| rank_cmp(a, b, largest, &key_cmp);
    if k < pairs.len() {
        pairs.select_nth_unstable_by(k - 1, cmp);
        pairs.truncate(k);
    }
    pairs.sort_unstable_by(cmp);
    pairs.into_iter().map(|(_, i)| i).collect()
}

/// Ascending total order on f32 with NaN above everything and `-0 == +0`.
pub(crate) fn f32_order(a: &f32, b: &f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Ascending total order on f64 with NaN above everything and `-0 == +0`.
fn f64_order(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Comparison keys of a whole tensor in row-major order.
enum Keys {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

/// Read every element of `t` as raw bytes, row-major, `dtype.size()` each.
///
/// # Safety
/// `t` satisfies tensor.rs's module invariant.
unsafe fn gather_bytes(t: &TensorArg) -> Vec<u8> {
    let size = t.dtype.size();
    let offs = t.element_offsets();
    let mut out = vec![0u8; offs.len() * size];
    for (dst, &o) in out.chunks_exact_mut(size).zip(&offs) {
        // SAFETY: the invariant makes element `o` (`size` bytes at byte
        // offset `o * size`) readable; `dst` is a distinct host slice of
        // exactly `size` bytes and u8 needs no alignment.
        unsafe {
            let src = t.ptr.offset(o as isize * size as isize);
            std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), size);
        }
    }
    out
}

/// Write raw element bytes (row-major, `dtype.size()` each) into `t`.
///
/// # Safety
/// `t` satisfies tensor.rs's module invariant and is writable; `bytes` holds
/// exactly `t.numel() * dtype.size()` bytes.
unsafe fn scatter_bytes(t: &TensorArg, bytes: &[u8]) {
    let size = t.dtype.size();
    for (i, &o) in t.element_offsets().iter().enumerate() {
        // SAFETY: the invariant makes element `o` writable; `bytes` has this
        // element's `size` bytes at `i * size` by the caller's contract.
        unsafe {
            let dst = t.ptr.offset(o as isize * size as isize);
            std::ptr::copy_nonoverlapping(bytes.as_ptr().add(i * size), dst, size);
        }
    }
}

/// Read `t` as f64 keys (exact for every float dtype).
///
/// # Safety
/// `t` satisfies tensor.rs's module invariant.
unsafe fn read_keys(t: &TensorArg) -> Keys {
    match t.dtype {
        DType::F64 => {
            // SAFETY: forwarded invariant.
            let raw = unsafe { gather_bytes(t) };
            Keys::Float(
                raw.chunks_exact(8)
                    .map(|c| f64::from_ne_bytes(c.try_into().expect("chunk of 8")))
                    .collect(),
            )
        }
        DType::F32 | DType::F16 | DType::BF16 => {
            // SAFETY: forwarded invariant.
            Keys::Float(unsafe { t.read_f32() }.into_iter().map(f64::from).collect())
        }
        // SAFETY: forwarded invariant.
        _ => Keys::Int(unsafe { t.read_i64() }),
    }
}

/// Compute `aclnnTopk`.
///
/// # Safety
/// Every tensor satisfies tensor.rs's module invariant; outputs are writable.
pub unsafe fn run(args: &TopkArgs) -> Result<(), KernelError> {
    check(args)?;
    let (d, out_shape) = plan(args)?;
    let shape: Vec<i64> = if args.input.rank() == 0 {
        vec![1]
    } else {
        args.input.shape.clone()
    };
    let n = shape[d] as usize;
    let k = args.k as usize;
    let outer: usize = shape[..d].iter().map(|&v| v as usize).product();
    let inner: usize = shape[d + 1..].iter().map(|&v| v as usize).product();
    let size = args.input.dtype.size();
    // SAFETY: the caller upholds the invariant for `input`.
    let raw = unsafe { gather_bytes(&args.input) };
    // SAFETY: as above.
    let keys = unsafe { read_keys(&args.input) };
    let total_out: usize = out_shape.iter().map(|&v| v as usize).product();
    let mut values = vec![0u8; total_out * size];
    let mut indices = vec![0i64; total_out];
    let largest = args.largest;
    for o in 0..outer {
        for i in 0..inner {
            let pos = |j: usize| (o * n + j) * inner + i;
            let chosen = match &keys {
                Keys::Float(v) => {
                    let lane: Vec<f64> = (0..n).map(|j| v[pos(j)]).collect();
                    select_top_k(&lane, k, largest, f64_order)
                }
                Keys::Int(v) => {
                    let lane: Vec<i64> = (0..n).map(|j| v[pos(j)]).collect();
                    select_top_k(&lane, k, largest, i64::cmp)
                }
            };
            for (r, &j) in chosen.iter().enumerate() {
                let dst = (o * k + r) * inner + i;
                let src = pos(j);
                values[dst * size..(dst + 1) * size]
                    .copy_from_slice(&raw[src * size..(src + 1) * size]);
                indices[dst] = j as i64;
            }
        }
    }
    // SAFETY: check passed, so values_out has `total_out` elements of the
    // input's dtype and the caller upholds the invariant for it.
    unsafe { scatter_bytes(&args.values_out, &values) };
    // SAFETY: indices_out is an INT64 tensor of `total_out` elements.
    unsafe { args.indices_out.write_i64(&indices) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::testkit::{Buf, Rng};
    use crate::tensor::PARAM_INVALID;

    fn args(input: TensorArg, k: i64, dim: i64, largest: bool, v: &Buf, ix: &Buf) -> TopkArgs {
        let mut shape = input.shape.clone();
        if !shape.is_empty() {
            let r = shape.len() as i64;
            let d = if dim < 0 { dim + r } else { dim } as usize;
            shape[d] = k;
        }
        TopkArgs {
            input,
            k,
            dim,
            largest,
            sorted: true,
            values_out: v.tensor(&shape),
            indices_out: ix.tensor(&shape),
        }
    }

    /// Naive reference: for each lane, repeatedly pick the best remaining
    /// element by a linear scan (first occurrence wins ties).
    fn naive(
        vals: &[f64],
        shape: &[usize],
        d: usize,
        k: usize,
        largest: bool,
    ) -> (Vec<f64>, Vec<i64>) {
        let outer: usize = shape[..d].iter().product();
        let inner: usize = shape[d + 1..].iter().product();
        let n = shape[d];
        let mut ov = vec![0.0; outer * k * inner];
        let mut oi = vec![0i64; outer * k * inner];
        for o in 0..outer {
            for i in 0..inner {
                let mut used = vec![false; n];
                for r in 0..k {
                    let mut best: Option<usize> = None;
                    for j in 0..n {
                        if used[j] {
                            continue;
                        }
                        let v = vals[(o * n + j) * inner + i];
                        let better = match best {
                            None => true,
                            Some(b) => {
                                let bv = vals[(o * n + b) * inner + i];
                                if largest { v > bv } else { v < bv }
                            }
                        };
                        if better {
                            best = Some(j);
                        }
                    }
                    let b = best.unwrap();
                    used[b] = true;
                    ov[(o * k + r) * inner + i] = vals[(o * n + b) * inner + i];
                    oi[(o * k + r) * inner + i] = b as i64;
                }
            }
        }
        (ov, oi)
    }

    #[test]
    fn matches_naive_on_random_inputs_all_float_dtypes_and_dims() {
        let mut rng = Rng::new(7);
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            for (shape, dim, k, largest) in [
                (vec![4usize, 9], 1i64, 3i64, true),
                (vec![4, 9], -1, 9, false),
                (vec![5, 3, 4], 1, 2, true),
                (vec![5, 3, 4], 0, 5, false),
                (vec![1, 6], 1, 0, true),
            ] {
                let n: usize = shape.iter().product();
                // Coarse values so that ties occur.
                let vals: Vec<f32> = (0..n).map(|_| (rng.below(7) as f32 - 3.0) * 0.5).collect();
                let inp = Buf::from_f32(dtype, &vals);
                let vals: Vec<f64> = inp.to_f32().into_iter().map(f64::from).collect();
                let shp: Vec<i64> = shape.iter().map(|&v| v as i64).collect();
                let d = if dim < 0 {
                    dim + shape.len() as i64
                } else {
                    dim
                } as usize;
                let out_n = n / shape[d] * k as usize;
                let v = Buf::zeros(dtype, out_n);
                let ix = Buf::zeros(DType::I64, out_n);
                let a = args(inp.tensor(&shp), k, dim, largest, &v, &ix);
                check(&a).unwrap();
                // SAFETY: all views cover their buffers exactly.
                unsafe { run(&a).unwrap() };
                let (wv, wi) = naive(&vals, &shape, d, k as usize, largest);
                let gv: Vec<f64> = v.to_f32().into_iter().map(f64::from).collect();
                assert_eq!(gv, wv, "{dtype:?} {shape:?} dim {dim} k {k}");
                assert_eq!(ix.to_i64(), wi, "{dtype:?} {shape:?} dim {dim} k {k}");
            }
        }
    }

    #[test]
    fn int64_values_keep_every_bit_and_non_contiguous_input() {
        let big = [i64::MAX - 1, i64::MAX, -5, i64::MIN, 3, i64::MAX];
        // Storage [3,2], viewed transposed as [2,3]: rows are (MAX-1, -5, 3), (MAX, MIN, MAX).
        let inp = Buf::from_i64(DType::I64, &big);
        let view = inp.view(&[2, 3], &[1, 2], 0);
        let v = Buf::zeros(DType::I64, 4);
        let ix = Buf::zeros(DType::I64, 4);
        let a = args(view, 2, 1, true, &v, &ix);
        // SAFETY: the transposed view stays inside the 6-element buffer.
        unsafe { run(&a).unwrap() };
        assert_eq!(v.to_i64(), vec![i64::MAX - 1, 3, i64::MAX, i64::MAX]);
        assert_eq!(ix.to_i64(), vec![0, 2, 0, 2]);
    }

    #[test]
    fn nan_ranks_above_numbers() {
        let inp = Buf::from_f32(DType::F32, &[1.0, f32::NAN, 3.0, -0.0, 0.0]);
        let v = Buf::zeros(DType::F32, 5);
        let ix = Buf::zeros(DType::I64, 5);
        let a = args(inp.tensor(&[5]), 5, 0, true, &v, &ix);
        // SAFETY: contiguous views of their buffers.
        unsafe { run(&a).unwrap() };
        assert_eq!(ix.to_i64(), vec![1, 2, 0, 3, 4]);
        let a = args(inp.tensor(&[5]), 5, 0, false, &v, &ix);
        // SAFETY: as above.
        unsafe { run(&a).unwrap() };
        assert_eq!(ix.to_i64(), vec![3, 4, 0, 2, 1]);
    }

    #[test]
    fn refuses_invalid_arguments() {
        let inp = Buf::zeros(DType::F32, 12);
        let v = Buf::zeros(DType::F32, 12);
        let ix = Buf::zeros(DType::I64, 12);
        let good = args(inp.tensor(&[3, 4]), 2, 1, true, &v, &ix);
        check(&good).unwrap();
        let mut cases: Vec<(TopkArgs, &str)> = Vec::new();
        let mut a = good.clone();
        a.k = 5;
        cases.push((a, "k must be in range [0, 4]"));
        let mut a = good.clone();
        a.k = -1;
        cases.push((a, "k must be in range"));
        let mut a = good.clone();
        a.dim = 2;
        cases.push((a, "dim must be in range [-2, 2)"));
        let mut a = good.clone();
        a.sorted = false;
        cases.push((a, "sorted must be true"));
        let mut a = good.clone();
        a.indices_out.dtype = DType::I32;
        cases.push((a, "indicesOut"));
        let mut a = good.clone();
        a.values_out.dtype = DType::F16;
        cases.push((
            a,
            "valuesOut dtype DT_FLOAT16 must be the same as self dtype DT_FLOAT",
        ));
        let mut a = good.clone();
        a.input.dtype = DType::Bool;
        a.values_out.dtype = DType::Bool;
        cases.push((a, "self"));
        let mut a = good.clone();
        a.values_out.shape = vec![3, 3];
        a.values_out.strides = vec![3, 1];
        cases.push((a, "valuesOut"));
        let mut a = good.clone();
        a.input.strides = vec![1];
        cases.push((a, "strides"));
        for (a, msg) in cases {
            let e = check(&a).unwrap_err();
            assert_eq!(e.code, PARAM_INVALID);
            assert!(
                e.message.contains(msg),
                "{} does not contain {msg}",
                e.message
            );
            // run refuses as well instead of touching memory.
            // SAFETY: run validates first and fails before any access.
            assert!(unsafe { run(&a) }.is_err());
        }
    }
}
