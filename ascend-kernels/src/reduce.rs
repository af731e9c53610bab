//! The reductions: aclnnReduceSum, aclnnMean (over a list of dims, keeping
//! them as size-1 dims or not) and aclnnArgMax (over one dim), and the
//! operators along one dim: aclnnLogSoftmax, aclnnCumsum and aclnnArgsort,
//! and the vector norm aclnnNorm.
//!
//! Shapes: the reduced dims are named by `dims` (`dim` for Mean), each in
//! `[-rank, rank-1]` (a rank-0 tensor accepts 0 and -1); `out` must have
//! exactly the reduced shape (`keepDims`: each reduced dim becomes 1;
//! otherwise it is removed). Decisions where CANN's documentation is
//! silent: an empty dim list reduces every dim (as aclnnAll documents); a
//! dim named twice is refused; `out`'s dtype must equal `dtype`.
//!
//! Accuracy: float sums accumulate in f64 with Neumaier compensation (f16,
//! bf16 and f32 inputs are exact in f64), rounded once on store; integer
//! sums accumulate in wrapping i64 (Mean: i128) and are then converted to
//! `out`'s dtype (integers wrap, floats round, bool is non-zero). Rows
//! are reduced in parallel on large tensors.
//!
//! ArgMax: ties give the first index; NaN counts as larger than every
//! number (the first NaN wins), as in PyTorch; reducing a dim of size 0 is
//! refused (there is no index to return).

use rayon::prelude::*;

use crate::broadcast::{check_dtype, check_view, fmt_shape, normalize_dim, read_f64, write_f64};
use crate::scalar::Scalar;
use crate::tensor::{DType, KernelError, TensorArg};

/// From this many elements on, rows are reduced by the rayon pool.
const PAR_MIN: usize = 1 << 15;

/// The dtypes of aclnnReduceSum's `self`, `dtype` and `out` (complex types
/// are not represented by the kernels).
pub const SUM_DTYPES: [DType; 10] = [
    DType::F16,
    DType::F32,
    DType::BF16,
    DType::F64,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::Bool,
];

/// The dtypes of aclnnMean's `self`, `dtype` and `out`.
pub const MEAN_DTYPES: [DType; 9] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I32,
    DType::I64,
    DType::I16,
    DType::I8,
    DType::U8,
];

/// The dtypes of aclnnArgMax's `self`.
pub const ARGMAX_DTYPES: [DType; 9] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
];

/// Which dims of a rank-`rank` tensor `dims` reduces (empty: all).
fn reduce_mask(rank: usize, dims: &[i64], what: &str) -> Result<Vec<bool>, KernelError> {
    let mut mask = vec![dims.is_empty(); rank];
    let mut seen = vec![false; rank.max(1)];
    for &d in dims {
        let i = normalize_dim(d, rank, what)?;
        if seen[i] {
            return Err(KernelError::invalid(format!(
                "{what} names dim {i} more than once (got {dims:?})."
            )));
        }
        seen[i] = true;
        if rank > 0 {
            mask[i] = true;
        }
    }
    Ok(mask)
}

/// The shape of the result of reducing `shape` over `mask`.
fn reduced_shape(shape: &[i64], mask: &[bool], keep: bool) -> Vec<i64> {
    shape
        .iter()
        .zip(mask)
        .filter_map(|(&d, &m)| match (m, keep) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// `t` with its kept dims first and its reduced dims last (both in order),
/// and the length of one reduced row.
fn rows_view(t: &TensorArg, mask: &[bool]) -> (TensorArg, usize) {
    let order: Vec<usize> = (0..t.rank())
        .filter(|&i| !mask[i])
        .chain((0..t.rank()).filter(|&i| mask[i]))
        .collect();
    let len: i64 = (0..t.rank())
        .filter(|&i| mask[i])
        .map(|i| t.shape[i])
        .product();
    let view = TensorArg {
        ptr: t.ptr,
        dtype: t.dtype,
        shape: order.iter().map(|&i| t.shape[i]).collect(),
        strides: order.iter().map(|&i| t.strides[i]).collect(),
        offset: t.offset,
    };
    (view, len as usize)
}

/// `f` applied to each of the `rows` consecutive rows of length `len` of
/// `data`, in parallel when `data` is large.
fn per_row<T: Copy + Send + Sync, R: Send>(
    data: &[T],
    rows: usize,
    len: usize,
    f: impl Fn(&[T]) -> R + Sync + Send,
) -> Vec<R> {
    if len == 0 {
        return (0..rows).map(|_| f(&[])).collect();
    }
    if data.len() >= PAR_MIN {
        data.par_chunks(len).map(&f).collect()
    } else {
        data.chunks(len).map(f).collect()
    }
}

/// Neumaier-compensated sum of `row`.
fn sum_f64(row: &[f64]) -> f64 {
    let (mut s, mut c) = (0f64, 0f64);
    for &v in row {
        let t = s + v;
        if s.abs() >= v.abs() {
            c += (s - t) + v;
        } else {
            c += (v - t) + s;
        }
        s = t;
    }
    s + c
}

fn is_int(d: DType) -> bool {
    !d.is_float()
}

/// The kernel dtype named by a `dtype` parameter, refused unless in `allowed`.
fn param_dtype(dtype: i32, allowed: &[DType]) -> Result<DType, KernelError> {
    match DType::from_acl(dtype) {
        Some(d) if allowed.contains(&d) => Ok(d),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
            Err(KernelError::invalid(format!(
                "dtype {dtype} should be in dtype support list [{}].",
                names.join(", ")
            )))
        }
    }
}

/// The checks shared by ReduceSum and Mean; returns the reduced mask.
fn check_reduce(
    self_: &TensorArg,
    dims: &[i64],
    keep: bool,
    dtype: i32,
    out: &TensorArg,
    allowed: &[DType],
    dims_name: &str,
) -> Result<Vec<bool>, KernelError> {
    check_view(self_, "self", 8)?;
    check_view(out, "out", 8)?;
    check_dtype(self_, "self", allowed)?;
    let want = param_dtype(dtype, allowed)?;
    if out.dtype != want {
        return Err(KernelError::invalid(format!(
            "out dtype {} should be the same as dtype {}.",
            out.dtype.name(),
            want.name()
        )));
    }
    let mask = reduce_mask(self_.rank(), dims, dims_name)?;
    let shape = reduced_shape(&self_.shape, &mask, keep);
    if out.shape != shape {
        return Err(KernelError::invalid(format!(
            "out shape {} should be {} (self {} reduced over {dims_name} {dims:?}, keepDim {keep}).",
            fmt_shape(&out.shape),
            fmt_shape(&shape),
            fmt_shape(&self_.shape)
        )));
    }
    Ok(mask)
}

/// Arguments of `aclnnReduceSumGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct ReduceSumArgs {
    pub self_: TensorArg,
    pub dims: Vec<i64>,
    pub keep_dims: bool,
    /// The `aclDataType` value of the `dtype` parameter.
    pub dtype: i32,
    pub out: TensorArg,
}

/// aclnnReduceSum: `out = sum(self, dims)`.
pub mod reduce_sum {
    use super::*;

    /// Phase-one validation.
    pub fn check(a: &ReduceSumArgs) -> Result<(), KernelError> {
        check_reduce(
            &a.self_,
            &a.dims,
            a.keep_dims,
            a.dtype,
            &a.out,
            &SUM_DTYPES,
            "dims",
        )
        .map(|_| ())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &ReduceSumArgs) -> Result<(), KernelError> {
        let mask = check_reduce(
            &a.self_,
            &a.dims,
            a.keep_dims,
            a.dtype,
            &a.out,
            &SUM_DTYPES,
            "dims",
        )?;
        let (view, len) = rows_view(&a.self_, &mask);
        let rows = a.out.numel();
        if is_int(a.self_.dtype) && is_int(a.out.dtype) {
            // SAFETY: forwarded invariant (the view is a permutation of self).
            let data = unsafe { view.read_i64() };
            let mut sums = per_row(&data, rows, len, |r| {
                r.iter().fold(0i64, |s, &v| s.wrapping_add(v))
            });
            if a.out.dtype == DType::Bool {
                sums.iter_mut().for_each(|s| *s = i64::from(*s != 0));
            }
            // SAFETY: forwarded invariant; every input was read.
            unsafe { a.out.write_i64(&sums) };
        } else {
            // SAFETY: forwarded invariant.
            let data = unsafe { read_f64(&view) };
            let sums = per_row(&data, rows, len, sum_f64);
            // SAFETY: forwarded invariant; every input was read.
            unsafe { write_f64(&a.out, &sums) };
        }
        Ok(())
    }
}

/// Arguments of `aclnnMeanGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct MeanArgs {
    pub self_: TensorArg,
    pub dim: Vec<i64>,
    pub keep_dim: bool,
    /// The `aclDataType` value of the `dtype` parameter.
    pub dtype: i32,
    pub out: TensorArg,
}

/// aclnnMean: `out = mean(self, dim)`; a mean over no element is NaN
/// (0 in an integer `out`), an integer `out` takes the mean truncated
/// toward zero.
pub mod mean {
    use super::*;

    /// Phase-one validation.
    pub fn check(a: &MeanArgs) -> Result<(), KernelError> {
        check_reduce(
            &a.self_,
            &a.dim,
            a.keep_dim,
            a.dtype,
            &a.out,
            &MEAN_DTYPES,
            "dim",
        )
        .map(|_| ())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &MeanArgs) -> Result<(), KernelError> {
        let mask = check_reduce(
            &a.self_,
            &a.dim,
            a.keep_dim,
            a.dtype,
            &a.out,
            &MEAN_DTYPES,
            "dim",
        )?;
        let (view, len) = rows_view(&a.self_, &mask);
        let rows = a.out.numel();
        let n = len as f64;
        let means = if is_int(a.self_.dtype) {
            // SAFETY: forwarded invariant (the view is a permutation of self).
            let data = unsafe { view.read_i64() };
            per_row(&data, rows, len, |r| {
                r.iter().map(|&v| i128::from(v)).sum::<i128>() as f64 / n
            })
        } else {
            // SAFETY: forwarded invariant.
            let data = unsafe { read_f64(&view) };
            per_row(&data, rows, len, |r| sum_f64(r) / n)
        };
        // SAFETY: forwarded invariant; every input was read.
        unsafe { write_f64(&a.out, &means) };
        Ok(())
    }
}

/// Arguments of `aclnnArgMaxGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct ArgMaxArgs {
    pub self_: TensorArg,
    pub dim: i64,
    pub keepdim: bool,
    pub out: TensorArg,
}

/// aclnnArgMax: the index of the largest element along `dim`.
pub mod arg_max {
    use super::*;

    fn mask(a: &ArgMaxArgs) -> Result<Vec<bool>, KernelError> {
        let t = &a.self_;
        check_view(t, "self", 8)?;
        check_view(&a.out, "out", 8)?;
        check_dtype(t, "self", &ARGMAX_DTYPES)?;
        check_dtype(&a.out, "out", &[DType::I32, DType::I64])?;
        let d = normalize_dim(a.dim, t.rank(), "dim")?;
        let mut mask = vec![false; t.rank()];
        if t.rank() > 0 {
            mask[d] = true;
            if t.shape[d] == 0 {
                return Err(KernelError::invalid(format!(
                    "self shape {} has size 0 in dim {}: argmax of an empty dim is undefined.",
                    fmt_shape(&t.shape),
                    a.dim
                )));
            }
        }
        let shape = reduced_shape(&t.shape, &mask, a.keepdim);
        if a.out.shape != shape {
            return Err(KernelError::invalid(format!(
                "out shape {} should be {} (self {} reduced over dim {}, keepdim {}).",
                fmt_shape(&a.out.shape),
                fmt_shape(&shape),
                fmt_shape(&t.shape),
                a.dim,
                a.keepdim
            )));
        }
        Ok(mask)
    }

    /// Phase-one validation.
    pub fn check(a: &ArgMaxArgs) -> Result<(), KernelError> {
        mask(a).map(|_| ())
    }

    /// Index of the first maximum of `row` (NaN above everything).
    fn first_max_f64(row: &[f64]) -> i64 {
        let mut best = 0usize;
        for (i, &v) in row.iter().enumerate().skip(1) {
            let b = row[best];
            if b.is_nan() {
                break;
            }
            if v.is_nan() || v > b {
                best = i;
            }
        }
        best as i64
    }

    /// Index of the first maximum of `row`.
    fn first_max_i64(row: &[i64]) -> i64 {
        let mut best = 0usize;
        for (i, &v) in row.iter().enumerate().skip(1) {
            if v > row[best] {
                best = i;
            }
        }
        best as i64
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &ArgMaxArgs) -> Result<(), KernelError> {
        let mask = mask(a)?;
        let (view, len) = rows_view(&a.self_, &mask);
        let rows = a.out.numel();
        let idx = if is_int(a.self_.dtype) {
            // SAFETY: forwarded invariant (the view is a permutation of self).
            let data = unsafe { view.read_i64() };
            per_row(&data, rows, len, first_max_i64)
        } else {
            // SAFETY: forwarded invariant.
            let data = unsafe { read_f64(&view) };
            per_row(&data, rows, len, first_max_f64)
        };
        // SAFETY: forwarded invariant; every input was read.
        unsafe { a.out.write_i64(&idx) };
        Ok(())
    }
}

/// The dtypes of aclnnLogSoftmax's `self` and `out`.
pub const LOG_SOFTMAX_DTYPES: [DType; 4] = [DType::F16, DType::F32, DType::F64, DType::BF16];

/// The dtypes of aclnnCumsum's `self`, `dtype` and `out`.
pub const CUMSUM_DTYPES: [DType; 9] = [
    DType::F32,
    DType::F16,
    DType::I32,
    DType::F64,
    DType::U8,
    DType::I8,
    DType::I16,
    DType::I64,
    DType::BF16,
];

/// The mask of the one dim `dim` names (none for a rank-0 tensor).
fn one_dim_mask(t: &TensorArg, dim: i64) -> Result<Vec<bool>, KernelError> {
    let d = normalize_dim(dim, t.rank(), "dim")?;
    let mut mask = vec![false; t.rank()];
    if t.rank() > 0 {
        mask[d] = true;
    }
    Ok(mask)
}

fn same_shape_as_self(self_: &TensorArg, out: &TensorArg) -> Result<(), KernelError> {
    if out.shape != self_.shape {
        return Err(KernelError::invalid(format!(
            "out shape {} should be the same as self shape {}.",
            fmt_shape(&out.shape),
            fmt_shape(&self_.shape)
        )));
    }
    Ok(())
}

/// Arguments of `aclnnLogSoftmaxGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct LogSoftmaxArgs {
    pub self_: TensorArg,
    pub dim: i64,
    pub out: TensorArg,
}

/// aclnnLogSoftmax: `out = x - max - log(sum(exp(x - max)))` along `dim`,
/// in f64; a row holding NaN gives NaN throughout.
pub mod log_softmax {
    use super::*;

    fn mask(a: &LogSoftmaxArgs) -> Result<Vec<bool>, KernelError> {
        check_view(&a.self_, "self", 8)?;
        check_view(&a.out, "out", 8)?;
        check_dtype(&a.self_, "self", &LOG_SOFTMAX_DTYPES)?;
        check_dtype(&a.out, "out", &LOG_SOFTMAX_DTYPES)?;
        same_shape_as_self(&a.self_, &a.out)?;
        one_dim_mask(&a.self_, a.dim)
    }

    /// Phase-one validation.
    pub fn check(a: &LogSoftmaxArgs) -> Result<(), KernelError> {
        mask(a).map(|_| ())
    }

    fn row(r: &[f64]) -> Vec<f64> {
        let max = if r.iter().any(|v| v.is_nan()) {
            f64::NAN
        } else {
            r.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        };
        let lse = max + r.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
        r.iter().map(|&v| v - lse).collect()
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &LogSoftmaxArgs) -> Result<(), KernelError> {
        let mask = mask(a)?;
        let (view, len) = rows_view(&a.self_, &mask);
        let (out_view, _) = rows_view(&a.out, &mask);
        let rows = a.self_.numel().checked_div(len).unwrap_or(0);
        // SAFETY: forwarded invariant (the view is a permutation of self).
        let data = unsafe { read_f64(&view) };
        let res: Vec<f64> = per_row(&data, rows, len, row).concat();
        // SAFETY: forwarded invariant (a permutation of out, in the same
        // order as the input view); every input was read.
        unsafe { write_f64(&out_view, &res) };
        Ok(())
    }
}

/// Arguments of `aclnnCumsumGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct CumsumArgs {
    pub self_: TensorArg,
    pub dim: i64,
    /// The `aclDataType` value of the `dtype` parameter.
    pub dtype: i32,
    pub out: TensorArg,
}

/// aclnnCumsum: `out[i] = self[0] + ... + self[i]` along `dim`.
pub mod cumsum {
    use super::*;

    fn mask(a: &CumsumArgs) -> Result<Vec<bool>, KernelError> {
        check_view(&a.self_, "self", 8)?;
        check_view(&a.out, "out", 8)?;
        check_dtype(&a.self_, "self", &CUMSUM_DTYPES)?;
        let want = param_dtype(a.dtype, &CUMSUM_DTYPES)?;
        if a.out.dtype != want {
            return Err(KernelError::invalid(format!(
                "out dtype {} should be the same as dtype {}.",
                a.out.dtype.name(),
                want.name()
            )));
        }
        same_shape_as_self(&a.self_, &a.out)?;
        one_dim_mask(&a.self_, a.dim)
    }

    /// Phase-one validation.
    pub fn check(a: &CumsumArgs) -> Result<(), KernelError> {
        mask(a).map(|_| ())
    }

    /// Running compensated sums of `r`.
    fn prefix_f64(r: &[f64]) -> Vec<f64> {
        let (mut s, mut c) = (0f64, 0f64);
        r.iter()
            .map(|&v| {
                let t = s + v;
                if s.abs() >= v.abs() {
                    c += (s - t) + v;
                } else {
                    c += (v - t) + s;
                }
                s = t;
                s + c
            })
            .collect()
    }

    /// Running wrapping sums of `r`.
    fn prefix_i64(r: &[i64]) -> Vec<i64> {
        let mut s = 0i64;
        r.iter()
            .map(|&v| {
                s = s.wrapping_add(v);
                s
            })
            .collect()
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &CumsumArgs) -> Result<(), KernelError> {
        let mask = mask(a)?;
        let (view, len) = rows_view(&a.self_, &mask);
        let (out_view, _) = rows_view(&a.out, &mask);
        let rows = a.self_.numel().checked_div(len).unwrap_or(0);
        if is_int(a.self_.dtype) && is_int(a.out.dtype) {
            // SAFETY: forwarded invariant (the view is a permutation of self).
            let data = unsafe { view.read_i64() };
            let res = per_row(&data, rows, len, prefix_i64).concat();
            // SAFETY: forwarded invariant (a permutation of out in the
            // input view's order); every input was read.
            unsafe { out_view.write_i64(&res) };
        } else {
            // SAFETY: forwarded invariant.
            let data = unsafe { read_f64(&view) };
            let res = per_row(&data, rows, len, prefix_f64).concat();
            // SAFETY: as above.
            unsafe { write_f64(&out_view, &res) };
        }
        Ok(())
    }
}

/// The dtypes of aclnnArgsort's `self`.
pub const ARGSORT_DTYPES: [DType; 8] = [
    DType::BF16,
    DType::F16,
    DType::F32,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
];

/// Arguments of `aclnnArgsortGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct ArgsortArgs {
    pub self_: TensorArg,
    pub dim: i64,
    pub descending: bool,
    pub out: TensorArg,
}

/// aclnnArgsort: the indices that sort each line along `dim`. The sort is
/// stable (equal values keep their order, in both directions) and NaN is
/// larger than every number (last ascending, first descending).
pub mod argsort {
    use std::cmp::Ordering;

    use super::*;

    fn mask(a: &ArgsortArgs) -> Result<Vec<bool>, KernelError> {
        check_view(&a.self_, "self", 8)?;
        check_view(&a.out, "out", 8)?;
        check_dtype(&a.self_, "self", &ARGSORT_DTYPES)?;
        check_dtype(&a.out, "out", &[DType::I64])?;
        same_shape_as_self(&a.self_, &a.out)?;
        one_dim_mask(&a.self_, a.dim)
    }

    /// Phase-one validation.
    pub fn check(a: &ArgsortArgs) -> Result<(), KernelError> {
        mask(a).map(|_| ())
    }

    /// Ascending order of floats with NaN above everything.
    fn cmp_f64(x: f64, y: f64) -> Ordering {
        match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        }
    }

    /// The stable sorting permutation of `r` under `cmp`.
    fn order<T: Copy>(r: &[T], descending: bool, cmp: impl Fn(T, T) -> Ordering) -> Vec<i64> {
        let mut idx: Vec<usize> = (0..r.len()).collect();
        if descending {
            idx.sort_by(|&i, &j| cmp(r[j], r[i]));
        } else {
            idx.sort_by(|&i, &j| cmp(r[i], r[j]));
        }
        idx.into_iter().map(|i| i as i64).collect()
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &ArgsortArgs) -> Result<(), KernelError> {
        let mask = mask(a)?;
        let (view, len) = rows_view(&a.self_, &mask);
        let (out_view, _) = rows_view(&a.out, &mask);
        let rows = a.self_.numel().checked_div(len).unwrap_or(0);
        let desc = a.descending;
        let res = if is_int(a.self_.dtype) {
            // SAFETY: forwarded invariant (the view is a permutation of self).
            let data = unsafe { view.read_i64() };
            per_row(&data, rows, len, |r| order(r, desc, |x: i64, y| x.cmp(&y))).concat()
        } else {
            // SAFETY: forwarded invariant.
            let data = unsafe { read_f64(&view) };
            per_row(&data, rows, len, |r| order(r, desc, cmp_f64)).concat()
        };
        // SAFETY: forwarded invariant (a permutation of out in the input
        // view's order); every input was read.
        unsafe { out_view.write_i64(&res) };
        Ok(())
    }
}

/// The dtypes of aclnnNorm's `self` and `out`.
pub const NORM_DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Arguments of `aclnnNormGetWorkspaceSize`.
#[derive(Debug, Clone)]
pub struct NormArgs {
    pub self_: TensorArg,
    pub p: Scalar,
    pub dim: Vec<i64>,
    pub keepdim: bool,
    pub out: TensorArg,
}

/// aclnnNorm: the vector p-norm over `dim`: `sum(|x|^p)^(1/p)`, with
/// `p = inf` the largest `|x|`, `p = -inf` the smallest, and `p = 0` the
/// count of non-zero elements (PyTorch's rule; CANN is silent).
pub mod norm {
    use super::*;

    fn mask(a: &NormArgs) -> Result<Vec<bool>, KernelError> {
        let t = &a.self_;
        check_view(t, "self", 8)?;
        check_view(&a.out, "out", 8)?;
        check_dtype(t, "self", &NORM_DTYPES)?;
        check_dtype(&a.out, "out", &NORM_DTYPES)?;
        if a.p.as_f64().is_nan() {
            return Err(KernelError::invalid(
                "pScalar should be a number, but got NaN.",
            ));
        }
        let mask = reduce_mask(t.rank(), &a.dim, "dim")?;
        let shape = reduced_shape(&t.shape, &mask, a.keepdim);
        if a.out.shape != shape {
            return Err(KernelError::invalid(format!(
                "out shape {} should be {} (self {} reduced over dim {:?}, keepdim {}).",
                fmt_shape(&a.out.shape),
                fmt_shape(&shape),
                fmt_shape(&t.shape),
                a.dim,
                a.keepdim
            )));
        }
        Ok(mask)
    }

    /// Phase-one validation.
    pub fn check(a: &NormArgs) -> Result<(), KernelError> {
        mask(a).map(|_| ())
    }

    /// The p-norm of `r`.
    fn p_norm(r: &[f64], p: f64) -> f64 {
        if p.is_infinite() {
            if r.iter().any(|v| v.is_nan()) {
                return f64::NAN;
            }
            if r.is_empty() {
                return 0.0;
            }
            let abs = r.iter().map(|v| v.abs());
            return if p > 0.0 {
                abs.fold(0.0, f64::max)
            } else {
                abs.fold(f64::INFINITY, f64::min)
            };
        }
        let abs = r.iter().map(|v| v.abs());
        if p == 0.0 {
            r.iter().filter(|&&v| v != 0.0).count() as f64
        } else if p == 1.0 {
            sum_f64(&abs.collect::<Vec<_>>())
        } else if p == 2.0 {
            sum_f64(&r.iter().map(|v| v * v).collect::<Vec<_>>()).sqrt()
        } else {
            sum_f64(&abs.map(|v| v.powf(p)).collect::<Vec<_>>()).powf(1.0 / p)
        }
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for every tensor of `a`.
    pub unsafe fn run(a: &NormArgs) -> Result<(), KernelError> {
        let mask = mask(a)?;
        let (view, len) = rows_view(&a.self_, &mask);
        let rows = a.out.numel();
        let p = a.p.as_f64();
        // SAFETY: forwarded invariant (the view is a permutation of self).
        let data = unsafe { read_f64(&view) };
        let res = per_row(&data, rows, len, |r| p_norm(r, p));
        // SAFETY: forwarded invariant; every input was read.
        unsafe { write_f64(&a.out, &res) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Buf, Rng, assert_close, strides};

    /// Plain-loop reference: reduce `x` (row-major, `shape`) over `mask`
    /// with `f` applied to each group's values in index order.
    fn reference(x: &[f64], shape: &[i64], mask: &[bool], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let st = strides(shape);
        let out_shape: Vec<i64> = shape
            .iter()
            .zip(mask)
            .map(|(&d, &m)| if m { 1 } else { d })
            .collect();
        let ost = strides(&out_shape);
        let nout: i64 = out_shape.iter().product();
        let mut groups: Vec<Vec<f64>> = vec![Vec::new(); nout as usize];
        for (i, &v) in x.iter().enumerate() {
            let mut o = 0i64;
            for k in 0..shape.len() {
                let c = (i as i64 / st[k]) % shape[k];
                if !mask[k] {
                    o += c * ost[k];
                }
            }
            groups[o as usize].push(v);
        }
        groups.iter().map(|g| f(g)).collect()
    }

    fn plain_sum(g: &[f64]) -> f64 {
        let mut s = 0f64;
        for &v in g {
            s += v;
        }
        s
    }

    #[test]
    fn sum_and_mean_every_float_dtype_and_dim_set() {
        let mut rng = Rng::new(7);
        let shape = [3i64, 4, 5];
        for dt in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let x = Buf::random(dt, 60, &mut rng);
            let xv = x.to_f64();
            for (dims, mask) in [
                (vec![-1i64], [false, false, true]),
                (vec![0, 2], [true, false, true]),
                (vec![], [true, true, true]),
                (vec![1], [false, true, false]),
            ] {
                for keep in [true, false] {
                    let os = reduced_shape(&shape, &mask, keep);
                    let n: i64 = os.iter().product();
                    let out = Buf::zeros(dt, n as usize);
                    let a = ReduceSumArgs {
                        self_: x.tensor(&shape),
                        dims: dims.clone(),
                        keep_dims: keep,
                        dtype: dt.acl(),
                        out: out.tensor(&os),
                    };
                    // SAFETY: views cover their buffers.
                    unsafe { reduce_sum::run(&a) }.unwrap();
                    let want = reference(&xv, &shape, &mask, plain_sum);
                    assert_close(&out.to_f32(), &want, dt, "sum");
                    let m = MeanArgs {
                        self_: x.tensor(&shape),
                        dim: dims.clone(),
                        keep_dim: keep,
                        dtype: dt.acl(),
                        out: out.tensor(&os),
                    };
                    // SAFETY: as above.
                    unsafe { mean::run(&m) }.unwrap();
                    let want = reference(&xv, &shape, &mask, |g| plain_sum(g) / g.len() as f64);
                    assert_close(&out.to_f32(), &want, dt, "mean");
                }
            }
        }
    }

    #[test]
    fn large_rows_run_in_parallel_and_accurately() {
        // 64 rows of 1024: above PAR_MIN, so the rayon path runs.
        let mut rng = Rng::new(8);
        let x = Buf::random(DType::F32, 64 * 1024, &mut rng);
        let out = Buf::zeros(DType::F32, 64);
        let a = ReduceSumArgs {
            self_: x.tensor(&[64, 1024]),
            dims: vec![1],
            keep_dims: false,
            dtype: DType::F32.acl(),
            out: out.tensor(&[64]),
        };
        // SAFETY: views cover their buffers.
        unsafe { reduce_sum::run(&a) }.unwrap();
        let want = reference(&x.to_f64(), &[64, 1024], &[false, true], plain_sum);
        assert_close(&out.to_f32(), &want, DType::F32, "sum");
    }

    #[test]
    fn integer_sums_wrap_and_cast() {
        let x = Buf::from_i64(DType::I32, &[i32::MAX as i64, 1, -5, 7, 0, 3]);
        // i32 → i64 out: exact.
        let o = Buf::zeros(DType::I64, 2);
        let a = ReduceSumArgs {
            self_: x.tensor(&[2, 3]),
            dims: vec![1],
            keep_dims: false,
            dtype: DType::I64.acl(),
            out: o.tensor(&[2]),
        };
        // SAFETY: views cover their buffers.
        unsafe { reduce_sum::run(&a) }.unwrap();
        assert_eq!(o.to_i64(), vec![i32::MAX as i64 - 4, 10]);
        // i32 out wraps.
        let o32 = Buf::zeros(DType::I32, 2);
        let a = ReduceSumArgs {
            out: o32.tensor(&[2]),
            dtype: DType::I32.acl(),
            ..a
        };
        // SAFETY: as above.
        unsafe { reduce_sum::run(&a) }.unwrap();
        assert_eq!(o32.to_i64(), vec![(i32::MAX as i64 - 4) as i32 as i64, 10]);
        // Mean of integers into f32 and into i32 (truncated).
        let mf = Buf::zeros(DType::F32, 3);
        let m = MeanArgs {
            self_: x.tensor(&[2, 3]),
            dim: vec![0],
            keep_dim: true,
            dtype: DType::F32.acl(),
            out: mf.tensor(&[1, 3]),
        };
        // SAFETY: as above.
        unsafe { mean::run(&m) }.unwrap();
        let want = [(f64::from(i32::MAX) + 7.0) / 2.0, 0.5, -1.0];
        assert_close(&mf.to_f32(), &want, DType::F32, "mean");
        let mi = Buf::zeros(DType::I32, 3);
        let m = MeanArgs {
            dtype: DType::I32.acl(),
            out: mi.tensor(&[1, 3]),
            ..m
        };
        // SAFETY: as above.
        unsafe { mean::run(&m) }.unwrap();
        assert_eq!(mi.to_i64(), vec![(i64::from(i32::MAX) + 7) / 2, 0, -1]);
    }

    #[test]
    fn strided_rank0_and_empty() {
        let mut rng = Rng::new(9);
        // self is the transpose of a (4, 3) buffer: shape (3, 4).
        let b = Buf::random(DType::F32, 12, &mut rng);
        let v = b.view(&[3, 4], &[1, 3], 0);
        // SAFETY: inside the buffer.
        let dense: Vec<f64> = unsafe { v.read_f32() }.into_iter().map(f64::from).collect();
        let o = Buf::zeros(DType::F32, 3);
        let a = ReduceSumArgs {
            self_: v.clone(),
            dims: vec![-1],
            keep_dims: false,
            dtype: DType::F32.acl(),
            out: o.tensor(&[3]),
        };
        // SAFETY: views inside their buffers.
        unsafe { reduce_sum::run(&a) }.unwrap();
        let want = reference(&dense, &[3, 4], &[false, true], plain_sum);
        assert_close(&o.to_f32(), &want, DType::F32, "strided sum");
        // Rank 0: sum over dim 0 is the value itself.
        let s = Buf::from_f32(DType::F32, &[2.5]);
        let so = Buf::zeros(DType::F32, 1);
        let a = ReduceSumArgs {
            self_: s.tensor(&[]),
            dims: vec![-1],
            keep_dims: true,
            dtype: DType::F32.acl(),
            out: so.tensor(&[]),
        };
        // SAFETY: as above.
        unsafe { reduce_sum::run(&a) }.unwrap();
        assert_eq!(so.to_f32(), vec![2.5]);
        // Zero-size reduced dim: sum 0, mean NaN.
        let e = Buf::zeros(DType::F32, 0);
        let eo = Buf::from_f32(DType::F32, &[9.0, 9.0]);
        let a = ReduceSumArgs {
            self_: e.tensor(&[2, 0]),
            dims: vec![1],
            keep_dims: false,
            dtype: DType::F32.acl(),
            out: eo.tensor(&[2]),
        };
        // SAFETY: as above.
        unsafe { reduce_sum::run(&a) }.unwrap();
        assert_eq!(eo.to_f32(), vec![0.0, 0.0]);
        let m = MeanArgs {
            self_: e.tensor(&[2, 0]),
            dim: vec![1],
            keep_dim: false,
            dtype: DType::F32.acl(),
            out: eo.tensor(&[2]),
        };
        // SAFETY: as above.
        unsafe { mean::run(&m) }.unwrap();
        assert!(eo.to_f32().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn argmax_ties_nan_and_dtypes() {
        let mut rng = Rng::new(10);
        for dt in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let x = Buf::random(dt, 24, &mut rng);
            let xv = x.to_f64();
            for (dim, mask) in [(1i64, [false, true, false]), (-1, [false, false, true])] {
                for keep in [true, false] {
                    let os = reduced_shape(&[2, 3, 4], &mask, keep);
                    let n: i64 = os.iter().product();
                    for odt in [DType::I32, DType::I64] {
                        let o = Buf::zeros(odt, n as usize);
                        let a = ArgMaxArgs {
                            self_: x.tensor(&[2, 3, 4]),
                            dim,
                            keepdim: keep,
                            out: o.tensor(&os),
                        };
                        // SAFETY: views cover their buffers.
                        unsafe { arg_max::run(&a) }.unwrap();
                        let want = reference(&xv, &[2, 3, 4], &mask, |g| {
                            let mut b = 0;
                            for (i, &v) in g.iter().enumerate() {
                                if v > g[b] {
                                    b = i;
                                }
                            }
                            b as f64
                        });
                        let got: Vec<f64> = o.to_i64().into_iter().map(|v| v as f64).collect();
                        assert_eq!(got, want, "{dt:?} dim {dim} keep {keep}");
                    }
                }
            }
        }
        // Ties: first index; NaN: first NaN.
        let x = Buf::from_f32(DType::F32, &[1.0, 3.0, 3.0, f32::NAN, 2.0, f32::NAN]);
        let o = Buf::zeros(DType::I64, 2);
        let a = ArgMaxArgs {
            self_: x.tensor(&[2, 3]),
            dim: 1,
            keepdim: false,
            out: o.tensor(&[2]),
        };
        // SAFETY: as above.
        unsafe { arg_max::run(&a) }.unwrap();
        assert_eq!(o.to_i64(), vec![1, 0]);
        // Integers compare exactly (values beyond f32's precision).
        let big = 1i64 << 40;
        let x = Buf::from_i64(DType::I64, &[big, big + 1, big]);
        let o = Buf::zeros(DType::I32, 1);
        let a = ArgMaxArgs {
            self_: x.tensor(&[3]),
            dim: 0,
            keepdim: true,
            out: o.tensor(&[1]),
        };
        // SAFETY: as above.
        unsafe { arg_max::run(&a) }.unwrap();
        assert_eq!(o.to_i64(), vec![1]);
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let f = Buf::zeros(DType::F32, 64);
        let i = Buf::zeros(DType::I64, 64);
        let ok = ReduceSumArgs {
            self_: f.tensor(&[2, 4]),
            dims: vec![1],
            keep_dims: true,
            dtype: DType::F32.acl(),
            out: f.tensor(&[2, 1]),
        };
        reduce_sum::check(&ok).unwrap();
        let cases: Vec<(ReduceSumArgs, &str)> = vec![
            (
                ReduceSumArgs {
                    dims: vec![2],
                    ..ok.clone()
                },
                "dims must be in range [-2, 1], but got 2",
            ),
            (
                ReduceSumArgs {
                    dims: vec![1, -1],
                    ..ok.clone()
                },
                "more than once",
            ),
            (
                ReduceSumArgs {
                    keep_dims: false,
                    ..ok.clone()
                },
                "out shape [2, 1] should be [2]",
            ),
            (
                ReduceSumArgs {
                    dtype: DType::I64.acl(),
                    ..ok.clone()
                },
                "out dtype DT_FLOAT should be the same as dtype DT_INT64",
            ),
            (
                ReduceSumArgs {
                    dtype: 12345,
                    ..ok.clone()
                },
                "dtype 12345",
            ),
            (
                ReduceSumArgs {
                    self_: f.tensor(&[1, 1, 1, 1, 1, 1, 1, 1, 1]),
                    ..ok.clone()
                },
                "no more than 8",
            ),
        ];
        for (a, want) in cases {
            let e = reduce_sum::check(&a).unwrap_err();
            assert_eq!(e.code, 161002);
            assert!(e.message.contains(want), "{} lacks {want}", e.message);
        }
        let m = MeanArgs {
            self_: i.tensor(&[2, 4]),
            dim: vec![0],
            keep_dim: false,
            dtype: DType::Bool.acl(),
            out: i.tensor(&[4]),
        };
        let e = mean::check(&m).unwrap_err();
        assert!(e.message.contains("dtype"), "{}", e.message);
        let am = ArgMaxArgs {
            self_: f.tensor(&[2, 0]),
            dim: 1,
            keepdim: false,
            out: i.tensor(&[2]),
        };
        assert!(arg_max::check(&am).unwrap_err().message.contains("size 0"));
        let am = ArgMaxArgs {
            self_: f.tensor(&[2, 4]),
            dim: 0,
            keepdim: false,
            out: f.tensor(&[4]),
        };
        assert!(
            arg_max::check(&am)
                .unwrap_err()
                .message
                .contains("out dtype")
        );
    }
    #[test]
    fn log_softmax_and_cumsum_along_each_dim() {
        let mut rng = Rng::new(11);
        let shape = [3i64, 4, 5];
        for dt in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let x = Buf::random(dt, 60, &mut rng);
            let xv = x.to_f64();
            for dim in [0i64, 1, -1] {
                let d = dim.rem_euclid(3) as usize;
                let st = strides(&shape);
                // Plain loops: for each element, the elements of its line.
                let line = |i: usize| -> (Vec<f64>, usize) {
                    let pos = (i as i64 / st[d]) % shape[d];
                    let base = i as i64 - pos * st[d];
                    let l = (0..shape[d])
                        .map(|k| xv[(base + k * st[d]) as usize])
                        .collect();
                    (l, pos as usize)
                };
                let want_ls: Vec<f64> = (0..60)
                    .map(|i| {
                        let (l, p) = line(i);
                        let mut s = 0f64;
                        for &v in &l {
                            s += v.exp();
                        }
                        l[p] - s.ln()
                    })
                    .collect();
                let want_cs: Vec<f64> = (0..60)
                    .map(|i| {
                        let (l, p) = line(i);
                        plain_sum(&l[..=p])
                    })
                    .collect();
                let out = Buf::zeros(dt, 60);
                let a = LogSoftmaxArgs {
                    self_: x.tensor(&shape),
                    dim,
                    out: out.tensor(&shape),
                };
                // SAFETY: views cover their buffers.
                unsafe { log_softmax::run(&a) }.unwrap();
                assert_close(&out.to_f32(), &want_ls, dt, "log_softmax");
                let c = CumsumArgs {
                    self_: x.tensor(&shape),
                    dim,
                    dtype: dt.acl(),
                    out: out.tensor(&shape),
                };
                // SAFETY: as above.
                unsafe { cumsum::run(&c) }.unwrap();
                assert_close(&out.to_f32(), &want_cs, dt, "cumsum");
            }
        }
    }

    #[test]
    fn log_softmax_nan_rank0_and_cumsum_integers_strided() {
        let x = Buf::from_f32(DType::F32, &[1.0, f32::NAN, 2.0, 0.0, 0.0, 0.0]);
        let o = Buf::zeros(DType::F32, 6);
        let a = LogSoftmaxArgs {
            self_: x.tensor(&[2, 3]),
            dim: 1,
            out: o.tensor(&[2, 3]),
        };
        // SAFETY: views cover their buffers.
        unsafe { log_softmax::run(&a) }.unwrap();
        let got = o.to_f32();
        assert!(got[..3].iter().all(|v| v.is_nan()));
        assert_close(&got[3..], &[-(3f64.ln()); 3], DType::F32, "uniform row");
        let s = Buf::from_f32(DType::F32, &[7.0]);
        let so = Buf::from_f32(DType::F32, &[9.0]);
        let a = LogSoftmaxArgs {
            self_: s.tensor(&[]),
            dim: 0,
            out: so.tensor(&[]),
        };
        // SAFETY: as above.
        unsafe { log_softmax::run(&a) }.unwrap();
        assert_eq!(so.to_f32(), vec![0.0]);
        // int8 transposed view (3, 2) of a (2, 3) buffer, into int64.
        let b = Buf::from_i64(DType::I8, &[100, 100, -3, 100, 1, 2]);
        let v = b.view(&[3, 2], &[1, 3], 0);
        let io = Buf::zeros(DType::I64, 6);
        let c = CumsumArgs {
            self_: v,
            dim: 0,
            dtype: DType::I64.acl(),
            out: io.tensor(&[3, 2]),
        };
        // SAFETY: views inside their buffers.
        unsafe { cumsum::run(&c) }.unwrap();
        // View rows: (100, 100), (100, 1), (-3, 2).
        assert_eq!(io.to_i64(), vec![100, 100, 200, 101, 197, 103]);
        // Refusals.
        let c = CumsumArgs {
            self_: b.tensor(&[2, 3]),
            dim: 2,
            dtype: DType::I64.acl(),
            out: io.tensor(&[2, 3]),
        };
        assert!(
            cumsum::check(&c)
                .unwrap_err()
                .message
                .contains("dim must be in range")
        );
        let c = CumsumArgs {
            dim: 1,
            dtype: DType::I32.acl(),
            ..c
        };
        assert!(
            cumsum::check(&c)
                .unwrap_err()
                .message
                .contains("out dtype DT_INT64")
        );
        let a = LogSoftmaxArgs {
            self_: b.tensor(&[2, 3]),
            dim: 1,
            out: o.tensor(&[2, 3]),
        };
        assert!(
            log_softmax::check(&a)
                .unwrap_err()
                .message
                .contains("self dtype DT_INT8")
        );
        let a = LogSoftmaxArgs {
            self_: o.tensor(&[2, 3]),
            dim: 1,
            out: o.tensor(&[3, 2]),
        };
        assert!(
            log_softmax::check(&a)
                .unwrap_err()
                .message
                .contains("out shape [3, 2]")
        );
    }
    #[test]
    fn argsort_every_dtype_both_directions_stable_nan() {
        let mut rng = Rng::new(12);
        let shape = [3i64, 5];
        for dt in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I8,
            DType::I32,
            DType::I64,
        ] {
            // Few distinct values, so ties occur.
            let vals: Vec<i64> = (0..15).map(|_| rng.below(4) as i64 - 2).collect();
            let x = Buf::from_i64(dt, &vals);
            for desc in [false, true] {
                for dim in [0i64, -1] {
                    let o = Buf::zeros(DType::I64, 15);
                    let a = ArgsortArgs {
                        self_: x.tensor(&shape),
                        dim,
                        descending: desc,
                        out: o.tensor(&shape),
                    };
                    // SAFETY: views cover their buffers.
                    unsafe { argsort::run(&a) }.unwrap();
                    let got = o.to_i64();
                    // Plain loops: selection of the next index by value,
                    // ties to the lower index.
                    let d = dim.rem_euclid(2) as usize;
                    let st = strides(&shape);
                    for (i, &g) in got.iter().enumerate() {
                        let pos = (i as i64 / st[d]) % shape[d];
                        let base = i as i64 - pos * st[d];
                        let line: Vec<i64> = (0..shape[d])
                            .map(|k| vals[(base + k * st[d]) as usize])
                            .collect();
                        let mut left: Vec<usize> = (0..line.len()).collect();
                        let mut want = Vec::new();
                        while !left.is_empty() {
                            let mut b = 0;
                            for k in 1..left.len() {
                                let better = if desc {
                                    line[left[k]] > line[left[b]]
                                } else {
                                    line[left[k]] < line[left[b]]
                                };
                                if better {
                                    b = k;
                                }
                            }
                            want.push(left.remove(b) as i64);
                        }
                        assert_eq!(g, want[pos as usize], "{dt:?} desc {desc} dim {dim}");
                    }
                }
            }
        }
        let x = Buf::from_f32(DType::F32, &[2.0, f32::NAN, -1.0, 2.0]);
        let o = Buf::zeros(DType::I64, 4);
        for (desc, want) in [(false, vec![2, 0, 3, 1]), (true, vec![1, 0, 3, 2])] {
            let a = ArgsortArgs {
                self_: x.tensor(&[4]),
                dim: 0,
                descending: desc,
                out: o.tensor(&[4]),
            };
            // SAFETY: as above.
            unsafe { argsort::run(&a) }.unwrap();
            assert_eq!(o.to_i64(), want);
        }
        let a = ArgsortArgs {
            self_: x.tensor(&[4]),
            dim: 0,
            descending: false,
            out: x.tensor(&[4]),
        };
        assert!(
            argsort::check(&a)
                .unwrap_err()
                .message
                .contains("out dtype DT_FLOAT")
        );
    }
    #[test]
    fn norm_every_p_dtype_and_dims() {
        let mut rng = Rng::new(13);
        let shape = [3i64, 4, 5];
        for dt in NORM_DTYPES {
            let x = Buf::random(dt, 60, &mut rng);
            let xv = x.to_f64();
            for p in [1.0f32, 2.0, 3.0, 0.5, 0.0, f32::INFINITY, f32::NEG_INFINITY] {
                for (dims, mask) in [
                    (vec![-1i64], [false, false, true]),
                    (vec![0, 1], [true, true, false]),
                ] {
                    for keep in [true, false] {
                        let os = reduced_shape(&shape, &mask, keep);
                        let n = os.iter().product::<i64>() as usize;
                        let o = Buf::zeros(dt, n);
                        let a = NormArgs {
                            self_: x.tensor(&shape),
                            p: Scalar::F32(p),
                            dim: dims.clone(),
                            keepdim: keep,
                            out: o.tensor(&os),
                        };
                        // SAFETY: views cover their buffers.
                        unsafe { norm::run(&a) }.unwrap();
                        let pf = f64::from(p);
                        let want = reference(&xv, &shape, &mask, |g| {
                            let mut acc = if pf == f64::NEG_INFINITY {
                                f64::INFINITY
                            } else {
                                0.0
                            };
                            for &v in g {
                                let v = v.abs();
                                if pf == f64::INFINITY {
                                    acc = acc.max(v);
                                } else if pf == f64::NEG_INFINITY {
                                    acc = acc.min(v);
                                } else if pf == 0.0 {
                                    acc += if v != 0.0 { 1.0 } else { 0.0 };
                                } else {
                                    acc += v.powf(pf);
                                }
                            }
                            if pf.is_infinite() || pf == 0.0 {
                                acc
                            } else {
                                acc.powf(1.0 / pf)
                            }
                        });
                        assert_close(&o.to_f32(), &want, dt, "norm");
                    }
                }
            }
        }
        let f = Buf::zeros(DType::F32, 8);
        let a = NormArgs {
            self_: f.tensor(&[2, 4]),
            p: Scalar::F32(2.0),
            dim: vec![1, 1],
            keepdim: false,
            out: f.tensor(&[2]),
        };
        assert!(
            norm::check(&a)
                .unwrap_err()
                .message
                .contains("more than once")
        );
        let a = NormArgs {
            p: Scalar::F32(f32::NAN),
            dim: vec![1],
            ..a
        };
        assert!(norm::check(&a).unwrap_err().message.contains("pScalar"));
    }
}
