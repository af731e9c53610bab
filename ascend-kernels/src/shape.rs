//! Shape and index operators: aclnnPermute, aclnnRepeat, aclnnCat,
//! aclnnSlice, aclnnTril, aclnnTriu, aclnnInplaceTriu, aclnnIndexSelect,
//! aclnnGatherV2, aclnnEmbedding, aclnnConstantPadNd, aclnnRoll and
//! aclnnRepeatInterleaveIntWithDim, aclnnIndexCopy, aclnnInplaceIndexCopy,
//! aclnnIndexFillTensor, aclnnInplaceIndexFillTensor, aclnnReflectionPad1d,
//! aclnnScatter and aclnnInplaceScatter.
//!
//! Every one of them moves elements without changing them, so they are
//! written as copies between strided views, bytes of one element size, on
//! every dtype the kernels model. The copy engine ([`copy_view`]) merges
//! the innermost dimensions in which both views are contiguous into one run
//! and copies whole runs (`memmove`), splitting large copies over the rayon
//! pool. A permutation, a slice, a repetition or one concatenated piece is
//! a view of the source or of `out` handed to that engine.
//!
//! Index values are read when the kernel runs; a value outside the
//! documented range fails the kernel with a message naming it before
//! anything is written, so no element is read or written out of bounds.

use rayon::prelude::*;

use crate::broadcast::{check_dtype, check_view, fmt_shape, normalize_dim};
use crate::par::{CHUNK, PAR_MIN};
use crate::tensor::{DType, KernelError, TensorArg};

/// Maximum rank of every tensor of the family.
pub const MAX_RANK: usize = 8;

/// Element types of the data tensors (CANN lists these and the complex
/// types, which the kernels do not model).
pub const DATA_TYPES: [DType; 10] = DType::ALL;

/// Element types of index tensors.
pub const INDEX_TYPES: [DType; 2] = [DType::I32, DType::I64];

/// Base addresses the rayon tasks share; each task copies disjoint
/// destination runs (see [`copy_view`]).
#[derive(Clone, Copy)]
struct Addr(usize);

/// A view with dimension `d` fixed at `i` (removed).
fn fix_dim(t: &TensorArg, d: usize, i: i64) -> TensorArg {
    let mut v = t.clone();
    v.offset += i * t.strides[d];
    v.shape.remove(d);
    v.strides.remove(d);
    v
}

/// A view with dimension `d` narrowed to `[start, start + len)`.
fn narrow(t: &TensorArg, d: usize, start: i64, len: i64) -> TensorArg {
    let mut v = t.clone();
    v.offset += start * t.strides[d];
    v.shape[d] = len;
    v
}

/// The number of innermost elements both views hold contiguously (a run),
/// and the number of leading dimensions outside the run.
fn run_split(a: &TensorArg, b: &TensorArg) -> (usize, usize) {
    let mut run = 1i64;
    let mut k = a.rank();
    while k > 0 {
        let d = k - 1;
        let n = a.shape[d];
        if n != 1 && (a.strides[d] != run || b.strides[d] != run) {
            break;
        }
        run *= n;
        k -= 1;
    }
    (run.max(0) as usize, k)
}

/// The element offsets of the outer dimensions `..k` of `t`, in row-major
/// order.
fn outer_offsets(t: &TensorArg, k: usize) -> Vec<i64> {
    TensorArg {
        ptr: t.ptr,
        dtype: t.dtype,
        shape: t.shape[..k].to_vec(),
        strides: t.strides[..k].to_vec(),
        offset: t.offset,
    }
    .element_offsets()
}

/// Copies every element of `src` to the element of `dst` at the same index
/// (same shape, same dtype), as bytes. `parallel` allows the rayon pool.
///
/// # Safety
/// tensor.rs's module invariant for both views; `dst` writable; the views
/// are either the same view or do not overlap.
pub unsafe fn copy_view(src: &TensorArg, dst: &TensorArg, parallel: bool) {
    debug_assert_eq!(src.shape, dst.shape);
    debug_assert_eq!(src.dtype, dst.dtype);
    let n = dst.numel();
    if n == 0 {
        return;
    }
    let es = dst.dtype.size();
    let (run, k) = run_split(src, dst);
    let so = outer_offsets(src, k);
    let dof = outer_offsets(dst, k);
    let (sb, db) = (Addr(src.ptr as usize), Addr(dst.ptr as usize));
    // Copies `len` elements from element offset `s` of src to `d` of dst.
    let copy = move |s: i64, d: i64, len: usize| {
        let (sb, db) = (sb, db);
        // SAFETY: the offsets come from the views' own shapes and strides
        // (a run of `len` contiguous elements inside each view), which the
        // caller's invariant places inside live allocations; `copy` is a
        // memmove, so the same view as source and destination is fine.
        unsafe {
            std::ptr::copy(
                (sb.0 as *const u8).offset(s as isize * es as isize),
                (db.0 as *mut u8).offset(d as isize * es as isize),
                len * es,
            )
        }
    };
    let par = parallel && n >= PAR_MIN && rayon::current_num_threads() > 1;
    if !par {
        for (&s, &d) in so.iter().zip(&dof) {
            copy(s, d, run);
        }
    } else if so.len() == 1 {
        // One long run: cut it into chunks.
        let (s0, d0) = (so[0], dof[0]);
        (0..run.div_ceil(CHUNK)).into_par_iter().for_each(|c| {
            let lo = c * CHUNK;
            copy(s0 + lo as i64, d0 + lo as i64, CHUNK.min(run - lo));
        });
    } else {
        let per = CHUNK.div_ceil(run).max(1);
        so.par_chunks(per)
            .zip(dof.par_chunks(per))
            .for_each(|(s, d)| {
                for (&s, &d) in s.iter().zip(d) {
                    copy(s, d, run);
                }
            });
    }
}

/// Sets every element of the view to all-zero bytes (0, 0.0 or false in
/// every dtype).
///
/// # Safety
/// tensor.rs's module invariant for `t`, writable.
unsafe fn zero_view(t: &TensorArg) {
    let es = t.dtype.size();
    for off in t.element_offsets() {
        // SAFETY: the offset is an element of the view (caller's invariant).
        unsafe { std::ptr::write_bytes(t.ptr.offset(off as isize * es as isize), 0, es) };
    }
}

fn same_dtype(
    out: &TensorArg,
    src: &TensorArg,
    op: &str,
    src_name: &str,
) -> Result<(), KernelError> {
    if out.dtype != src.dtype {
        return Err(KernelError::invalid(format!(
            "{op}: the dtype of out ({}) must be the dtype of {src_name} ({}).",
            out.dtype.name(),
            src.dtype.name()
        )));
    }
    Ok(())
}

fn exact_shape(out: &TensorArg, want: &[i64], op: &str) -> Result<(), KernelError> {
    if out.shape != want {
        return Err(KernelError::invalid(format!(
            "{op}: the shape of out {} must be {}.",
            fmt_shape(&out.shape),
            fmt_shape(want)
        )));
    }
    Ok(())
}

/// Checks of a data tensor: view sanity, rank, dtype.
fn data(t: &TensorArg, name: &str) -> Result<(), KernelError> {
    check_view(t, name, MAX_RANK)?;
    check_dtype(t, name, &DATA_TYPES)
}

/// The shared gather: `out` (shape `self[..dim] ++ index_shape ++
/// self[dim+1..]`) takes, for each index position `k`, the slab of `self`
/// at `self[.., index[k], ..]`.
///
/// # Safety
/// tensor.rs's module invariant for the three views; `out` writable and
/// not overlapping the others.
unsafe fn gather(
    op: &str,
    self_: &TensorArg,
    dim: usize,
    index: &TensorArg,
    index_rank: usize,
    out: &TensorArg,
    allow_negative: bool,
) -> Result<(), KernelError> {
    let n = self_.shape[dim];
    // SAFETY: forwarded invariant.
    let mut idx = unsafe { index.read_i64() };
    let lo = if allow_negative { -n } else { 0 };
    if let Some((k, &bad)) = idx.iter().enumerate().find(|&(_, &v)| v < lo || v >= n) {
        return Err(KernelError::invalid(format!(
            "{op}: index value {bad} (at flat position {k}) is out of range [{lo}, {}) for dimension {dim} of size {n}; nothing was written.",
            n
        )));
    }
    idx.iter_mut().for_each(|v| {
        if *v < 0 {
            *v += n
        }
    });
    // `out` with the index dimensions merged into one position: the slab of
    // position k is `out` with dims dim..dim+index_rank fixed at k's
    // multi-index.
    let ishape = &out.shape[dim..dim + index_rank];
    let istr = &out.strides[dim..dim + index_rank];
    let mut slab_out = out.clone();
    slab_out.shape.drain(dim..dim + index_rank);
    slab_out.strides.drain(dim..dim + index_rank);
    let base_out = slab_out.offset;
    let positions = TensorArg {
        ptr: out.ptr,
        dtype: out.dtype,
        shape: ishape.to_vec(),
        strides: istr.to_vec(),
        offset: 0,
    }
    .element_offsets();
    let slab_in = fix_dim(self_, dim, 0);
    let one = |k: usize, parallel: bool| {
        let mut s = slab_in.clone();
        s.offset += idx[k] * self_.strides[dim];
        let mut d = slab_out.clone();
        d.offset = base_out + positions[k];
        // SAFETY: `idx[k]` is in [0, n) (checked above), so `s` is a slab
        // inside `self`; `d` is a slab inside `out`; both by the caller's
        // invariant, and they do not overlap.
        unsafe { copy_view(&s, &d, parallel) };
    };
    if out.numel() >= PAR_MIN && idx.len() > 1 && rayon::current_num_threads() > 1 {
        (0..idx.len()).into_par_iter().for_each(|k| one(k, false));
    } else {
        (0..idx.len()).for_each(|k| one(k, true));
    }
    Ok(())
}

/// aclnnIndexSelect: `out = self` with dimension `dim` replaced by the
/// rows `index` (1-D, or 0-D as one index) names.
pub mod index_select {
    use super::*;

    /// Arguments of `aclnnIndexSelectGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct IndexSelectArgs {
        pub self_: TensorArg,
        pub dim: i64,
        pub index: TensorArg,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnIndexSelect";

    /// `self` and `out`, a 0-D one seen as 1-D of one element.
    fn as_1d(t: &TensorArg) -> TensorArg {
        let mut v = t.clone();
        if v.rank() == 0 {
            v.shape = vec![1];
            v.strides = vec![1];
        }
        v
    }

    /// Phase-one validation.
    pub fn check(args: &IndexSelectArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        check_view(&args.index, "index", 1)?;
        check_dtype(&args.index, "index", &INDEX_TYPES)?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        let d = normalize_dim(args.dim, args.self_.rank(), &format!("{OP}: dim"))?;
        let mut want = args.self_.shape.clone();
        if want.is_empty() {
            if args.index.numel() != 1 {
                return Err(KernelError::invalid(format!(
                    "{OP}: a 0-D self takes exactly one index, but index has {} elements.",
                    args.index.numel()
                )));
            }
        } else {
            want[d] = args.index.numel() as i64;
        }
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &IndexSelectArgs) -> Result<(), KernelError> {
        check(args)?;
        let d = normalize_dim(args.dim, args.self_.rank(), "dim")?;
        let mut index = args.index.clone();
        index.shape = vec![index.numel() as i64];
        index.strides = vec![index.strides.first().copied().unwrap_or(1)];
        // SAFETY: forwarded invariant; shapes checked.
        unsafe {
            gather(
                OP,
                &as_1d(&args.self_),
                d,
                &index,
                1,
                &as_1d(&args.out),
                false,
            )
        }
    }
}

/// aclnnGatherV2: `out = self[..., index, ...]` along `dim`, `out`'s shape
/// `self[..dim] ++ index.shape ++ self[dim+1..]`; negative indices count
/// from the end.
pub mod gather_v2 {
    use super::*;

    /// Arguments of `aclnnGatherV2GetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct GatherV2Args {
        pub self_: TensorArg,
        pub dim: i64,
        pub index: TensorArg,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnGatherV2";

    /// Phase-one validation.
    pub fn check(args: &GatherV2Args) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        check_view(&args.index, "index", MAX_RANK)?;
        check_dtype(&args.index, "index", &INDEX_TYPES)?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        if args.self_.rank() == 0 {
            return Err(KernelError::invalid(format!(
                "{OP}: self must have at least 1 dimension, but it is 0-D."
            )));
        }
        let d = normalize_dim(args.dim, args.self_.rank(), &format!("{OP}: dim"))?;
        let s = &args.self_.shape;
        let want: Vec<i64> = s[..d]
            .iter()
            .chain(&args.index.shape)
            .chain(&s[d + 1..])
            .copied()
            .collect();
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &GatherV2Args) -> Result<(), KernelError> {
        check(args)?;
        let d = normalize_dim(args.dim, args.self_.rank(), "dim")?;
        // SAFETY: forwarded invariant; shapes checked.
        unsafe {
            gather(
                OP,
                &args.self_,
                d,
                &args.index,
                args.index.rank(),
                &args.out,
                true,
            )
        }
    }
}

/// aclnnEmbedding: `out[i.., :] = weight[indices[i..], :]`, `weight` 2-D,
/// `out`'s shape `indices.shape ++ [weight.shape[1]]`.
pub mod embedding {
    use super::*;

    /// Arguments of `aclnnEmbeddingGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct EmbeddingArgs {
        pub weight: TensorArg,
        pub indices: TensorArg,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnEmbedding";

    /// Phase-one validation.
    pub fn check(args: &EmbeddingArgs) -> Result<(), KernelError> {
        data(&args.weight, "weight")?;
        data(&args.out, "out")?;
        check_view(&args.indices, "indices", MAX_RANK - 1)?;
        check_dtype(&args.indices, "indices", &INDEX_TYPES)?;
        same_dtype(&args.out, &args.weight, OP, "weight")?;
        if args.weight.rank() != 2 {
            return Err(KernelError::invalid(format!(
                "{OP}: weight must be 2-D, but its shape is {}.",
                fmt_shape(&args.weight.shape)
            )));
        }
        let mut want = args.indices.shape.clone();
        want.push(args.weight.shape[1]);
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &EmbeddingArgs) -> Result<(), KernelError> {
        check(args)?;
        // SAFETY: forwarded invariant; shapes checked.
        unsafe {
            gather(
                OP,
                &args.weight,
                0,
                &args.indices,
                args.indices.rank(),
                &args.out,
                false,
            )
        }
    }
}

/// aclnnCat: the tensors of the list joined along `dim`.
pub mod cat {
    use super::*;

    /// Arguments of `aclnnCatGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct CatArgs {
        pub tensors: Vec<TensorArg>,
        pub dim: i64,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnCat";

    /// Phase-one validation.
    pub fn check(args: &CatArgs) -> Result<(), KernelError> {
        data(&args.out, "out")?;
        let Some(first) = args.tensors.first() else {
            return Err(KernelError::invalid(format!(
                "{OP}: tensors is an empty list."
            )));
        };
        if first.rank() == 0 {
            return Err(KernelError::invalid(format!(
                "{OP}: tensors[0] is 0-D; zero-dimensional tensors cannot be concatenated."
            )));
        }
        let d = normalize_dim(args.dim, first.rank(), &format!("{OP}: dim"))?;
        let mut total = 0i64;
        for (i, t) in args.tensors.iter().enumerate() {
            let name = format!("tensors[{i}]");
            data(t, &name)?;
            same_dtype(&args.out, t, OP, &name)?;
            let same_rest = t.rank() == first.rank()
                && (0..t.rank()).all(|j| j == d || t.shape[j] == first.shape[j]);
            if !same_rest {
                return Err(KernelError::invalid(format!(
                    "{OP}: {name} has shape {}, which must equal tensors[0]'s {} except in dimension {d}.",
                    fmt_shape(&t.shape),
                    fmt_shape(&first.shape)
                )));
            }
            total += t.shape[d];
        }
        let mut want = first.shape.clone();
        want[d] = total;
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &CatArgs) -> Result<(), KernelError> {
        check(args)?;
        let d = normalize_dim(args.dim, args.out.rank(), "dim")?;
        let mut at = 0;
        for t in &args.tensors {
            let piece = narrow(&args.out, d, at, t.shape[d]);
            // SAFETY: forwarded invariant; the piece is inside `out`.
            unsafe { copy_view(t, &piece, true) };
            at += t.shape[d];
        }
        Ok(())
    }
}

/// aclnnSlice: `out = self[start:end:step]` along `dim`.
pub mod slice {
    use super::*;

    /// Arguments of `aclnnSliceGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct SliceArgs {
        pub self_: TensorArg,
        pub dim: i64,
        pub start: i64,
        pub end: i64,
        pub step: i64,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnSlice";

    /// The dimension, the clamped start and the length of the slice.
    fn bounds(args: &SliceArgs) -> Result<(usize, i64, i64), KernelError> {
        if args.self_.rank() == 0 {
            return Err(KernelError::invalid(format!("{OP}: self must not be 0-D.")));
        }
        let d = normalize_dim(args.dim, args.self_.rank(), &format!("{OP}: dim"))?;
        if args.step < 1 {
            return Err(KernelError::invalid(format!(
                "{OP}: step must be positive, but got {}.",
                args.step
            )));
        }
        let n = args.self_.shape[d];
        let clamp = |v: i64| {
            let v = if v < 0 { v.saturating_add(n) } else { v };
            v.clamp(0, n)
        };
        let (s, e) = (clamp(args.start), clamp(args.end));
        // (e - s - 1) / step + 1 cannot overflow, whatever the step.
        let len = if e > s {
            (e - s - 1) / args.step + 1
        } else {
            0
        };
        Ok((d, s, len))
    }

    /// `self` seen through the slice.
    fn view(args: &SliceArgs, d: usize, s: i64, len: i64) -> TensorArg {
        let mut v = narrow(&args.self_, d, s, len);
        // With one element the stride is never used (and step may be huge);
        // with more, step < n keeps the product inside self's extent.
        if len > 1 {
            v.strides[d] *= args.step;
        }
        v
    }

    /// Phase-one validation.
    pub fn check(args: &SliceArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        let (d, _, len) = bounds(args)?;
        let mut want = args.self_.shape.clone();
        want[d] = len;
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &SliceArgs) -> Result<(), KernelError> {
        check(args)?;
        let (d, s, len) = bounds(args)?;
        // SAFETY: forwarded invariant; the sliced view addresses elements of
        // `self` only (start + (len-1)*step < n).
        unsafe { copy_view(&view(args, d, s, len), &args.out, true) };
        Ok(())
    }
}

/// aclnnPermute: `out` is `self` with its dimensions reordered by `dims`.
pub mod permute {
    use super::*;

    /// Arguments of `aclnnPermuteGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct PermuteArgs {
        pub self_: TensorArg,
        pub dims: Vec<i64>,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnPermute";

    fn order(args: &PermuteArgs) -> Result<Vec<usize>, KernelError> {
        let r = args.self_.rank();
        if args.dims.len() != r {
            return Err(KernelError::invalid(format!(
                "{OP}: dims has {} entries but self has {r} dimensions.",
                args.dims.len()
            )));
        }
        let mut seen = vec![false; r];
        let mut out = Vec::with_capacity(r);
        for &d in &args.dims {
            let d = normalize_dim(d, r, &format!("{OP}: dims entry"))?;
            if std::mem::replace(&mut seen[d], true) {
                return Err(KernelError::invalid(format!(
                    "{OP}: dims {:?} names dimension {d} twice.",
                    args.dims
                )));
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Phase-one validation.
    pub fn check(args: &PermuteArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        let o = order(args)?;
        let want: Vec<i64> = o.iter().map(|&d| args.self_.shape[d]).collect();
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &PermuteArgs) -> Result<(), KernelError> {
        check(args)?;
        let o = order(args)?;
        let mut v = args.self_.clone();
        v.shape = o.iter().map(|&d| args.self_.shape[d]).collect();
        v.strides = o.iter().map(|&d| args.self_.strides[d]).collect();
        // SAFETY: forwarded invariant; the permuted view addresses the same
        // elements as `self`.
        unsafe { copy_view(&v, &args.out, true) };
        Ok(())
    }
}

/// aclnnRepeat: `out` is `self` tiled `repeats[i]` times along each
/// dimension (`self` padded with leading 1s to `repeats.len()` dims).
pub mod repeat {
    use super::*;

    /// Arguments of `aclnnRepeatGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct RepeatArgs {
        pub self_: TensorArg,
        pub repeats: Vec<i64>,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnRepeat";

    /// `self`'s shape and strides padded to `repeats.len()` dims.
    fn padded(args: &RepeatArgs) -> (Vec<i64>, Vec<i64>) {
        let extra = args.repeats.len() - args.self_.rank();
        let mut shape = vec![1; extra];
        shape.extend(&args.self_.shape);
        let mut strides = vec![0; extra];
        strides.extend(&args.self_.strides);
        (shape, strides)
    }

    /// Phase-one validation.
    pub fn check(args: &RepeatArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        if args.repeats.len() < args.self_.rank() || args.repeats.len() > MAX_RANK {
            return Err(KernelError::invalid(format!(
                "{OP}: repeats has {} entries; it needs at least self's {} and at most {MAX_RANK}.",
                args.repeats.len(),
                args.self_.rank()
            )));
        }
        if let Some(r) = args.repeats.iter().find(|&&r| r < 0) {
            return Err(KernelError::invalid(format!(
                "{OP}: repeats {:?} has a negative entry {r}.",
                args.repeats
            )));
        }
        let (shape, _) = padded(args);
        let want: Result<Vec<i64>, _> = shape
            .iter()
            .zip(&args.repeats)
            .map(|(&s, &r)| s.checked_mul(r).ok_or(()))
            .collect();
        let want =
            want.map_err(|()| KernelError::invalid(format!("{OP}: the output size overflows.")))?;
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &RepeatArgs) -> Result<(), KernelError> {
        check(args)?;
        if args.out.numel() == 0 {
            return Ok(());
        }
        let (shape, strides) = padded(args);
        // Each out dimension d of size r*s split into (r, s); the source
        // repeats along r with stride 0.
        let mut src = args.self_.clone();
        let mut dst = args.out.clone();
        src.shape.clear();
        src.strides.clear();
        dst.shape.clear();
        dst.strides.clear();
        for (d, &r) in args.repeats.iter().enumerate() {
            let (s, st, ost) = (shape[d], strides[d], args.out.strides[d]);
            src.shape.extend([r, s]);
            src.strides.extend([0, st]);
            dst.shape.extend([r, s]);
            dst.strides.extend([s * ost, ost]);
        }
        // SAFETY: forwarded invariant; the split view of `out` addresses
        // exactly `out`'s elements, the broadcast source only `self`'s.
        unsafe { copy_view(&src, &dst, true) };
        Ok(())
    }
}

/// aclnnTril, aclnnTriu and aclnnInplaceTriu: the lower (upper) triangle of
/// the last two dimensions, relative to `diagonal`, kept; the rest zero.
pub mod triangle {
    use super::*;

    /// Arguments of `aclnnTrilGetWorkspaceSize` and `aclnnTriuGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct TriangleArgs {
        pub self_: TensorArg,
        pub diagonal: i64,
        pub out: TensorArg,
    }

    /// Arguments of `aclnnInplaceTriuGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct InplaceTriuArgs {
        pub self_ref: TensorArg,
        pub diagonal: i64,
    }

    fn check_common(op: &str, self_: &TensorArg, out: &TensorArg) -> Result<(), KernelError> {
        data(self_, "self")?;
        data(out, "out")?;
        same_dtype(out, self_, op, "self")?;
        if self_.rank() < 2 {
            return Err(KernelError::invalid(format!(
                "{op}: self must have at least 2 dimensions, but its shape is {}.",
                fmt_shape(&self_.shape)
            )));
        }
        exact_shape(out, &self_.shape, op)
    }

    /// Zeroes the elements of `t` outside the kept triangle.
    ///
    /// # Safety
    /// tensor.rs's module invariant for `t`, writable.
    unsafe fn mask(t: &TensorArg, diagonal: i64, lower: bool) {
        let r = t.rank();
        let (rows, cols) = (t.shape[r - 2], t.shape[r - 1]);
        let mut batch = t.clone();
        batch.shape.truncate(r - 2);
        batch.strides.truncate(r - 2);
        for off in batch.element_offsets() {
            for i in 0..rows {
                // Zeroed columns of row i: tril drops j > i + diagonal,
                // triu drops j < i + diagonal.
                let edge = i.saturating_add(diagonal);
                let (lo, hi) = if lower {
                    (edge.saturating_add(1).clamp(0, cols), cols)
                } else {
                    (0, edge.clamp(0, cols))
                };
                let row = TensorArg {
                    ptr: t.ptr,
                    dtype: t.dtype,
                    shape: vec![(hi - lo).max(0)],
                    strides: vec![t.strides[r - 1]],
                    offset: off + i * t.strides[r - 2] + lo * t.strides[r - 1],
                };
                // SAFETY: columns [lo, hi) of row i of one matrix of `t`.
                unsafe { zero_view(&row) };
            }
        }
    }

    macro_rules! out_of_place {
        ($name:ident, $op:literal, $lower:expr) => {
            /// The operator's checks and computation.
            pub mod $name {
                use super::*;

                /// Phase-one validation.
                pub fn check(args: &TriangleArgs) -> Result<(), KernelError> {
                    check_common($op, &args.self_, &args.out)
                }

                /// Phase-two computation.
                ///
                /// # Safety
                /// tensor.rs's module invariant for the tensors of `args`.
                pub unsafe fn run(args: &TriangleArgs) -> Result<(), KernelError> {
                    check(args)?;
                    // SAFETY: forwarded invariant; same shapes.
                    unsafe {
                        copy_view(&args.self_, &args.out, true);
                        mask(&args.out, args.diagonal, $lower);
                    }
                    Ok(())
                }
            }
        };
    }
    out_of_place!(tril, "aclnnTril", true);
    out_of_place!(triu, "aclnnTriu", false);

    /// aclnnInplaceTriu.
    pub mod inplace_triu {
        use super::*;

        /// Phase-one validation.
        pub fn check(args: &InplaceTriuArgs) -> Result<(), KernelError> {
            check_common("aclnnInplaceTriu", &args.self_ref, &args.self_ref)
        }

        /// Phase-two computation.
        ///
        /// # Safety
        /// tensor.rs's module invariant for `selfRef`.
        pub unsafe fn run(args: &InplaceTriuArgs) -> Result<(), KernelError> {
            check(args)?;
            // SAFETY: forwarded invariant.
            unsafe { mask(&args.self_ref, args.diagonal, false) };
            Ok(())
        }
    }
}

/// aclnnConstantPadNd: `self` padded (or, with negative amounts, cropped)
/// by `pad`, pairs `(before, after)` from the last dimension backwards,
/// new elements set to `value`.
pub mod constant_pad_nd {
    use super::*;
    use crate::broadcast::write_f64;
    use crate::scalar::Scalar;

    /// Arguments of `aclnnConstantPadNdGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct ConstantPadNdArgs {
        pub self_: TensorArg,
        pub pad: Vec<i64>,
        pub value: Scalar,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnConstantPadNd";

    /// `(before, after)` of every dimension of `self`.
    fn amounts(args: &ConstantPadNdArgs) -> Result<Vec<(i64, i64)>, KernelError> {
        let r = args.self_.rank();
        if args.pad.len() % 2 != 0 || args.pad.len() > 2 * r {
            return Err(KernelError::invalid(format!(
                "{OP}: pad must have an even number of entries, at most twice self's rank {r}, but has {}.",
                args.pad.len()
            )));
        }
        let mut out = vec![(0, 0); r];
        for (i, p) in args.pad.chunks(2).enumerate() {
            out[r - 1 - i] = (p[0], p[1]);
        }
        Ok(out)
    }

    fn out_shape(args: &ConstantPadNdArgs) -> Result<Vec<i64>, KernelError> {
        let am = amounts(args)?;
        let mut want = Vec::with_capacity(am.len());
        for (d, (&n, &(b, a))) in args.self_.shape.iter().zip(&am).enumerate() {
            let m = n.checked_add(b).and_then(|v| v.checked_add(a));
            match m {
                Some(m) if m >= 0 => want.push(m),
                _ => {
                    return Err(KernelError::invalid(format!(
                        "{OP}: padding ({b}, {a}) of dimension {d} of size {n} gives a negative or overflowing size."
                    )));
                }
            }
        }
        Ok(want)
    }

    /// Phase-one validation.
    pub fn check(args: &ConstantPadNdArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        exact_shape(&args.out, &out_shape(args)?, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &ConstantPadNdArgs) -> Result<(), KernelError> {
        check(args)?;
        let n = args.out.numel();
        // SAFETY (whole block): forwarded invariant; `out` is filled first,
        // then the kept region of `self` (a view inside it) is copied into
        // the matching region of `out`.
        unsafe {
            if args.out.dtype.is_float() {
                write_f64(&args.out, &vec![args.value.as_f64(); n]);
            } else {
                let v = args.value.as_i64();
                let v = if args.out.dtype == DType::Bool {
                    i64::from(v != 0)
                } else {
                    v
                };
                args.out.write_i64(&vec![v; n]);
            }
            let (mut src, mut dst) = (args.self_.clone(), args.out.clone());
            for (d, &(b, a)) in amounts(args)?.iter().enumerate() {
                let (cut_b, cut_a) = (b.saturating_neg().max(0), a.saturating_neg().max(0));
                let len = args.self_.shape[d]
                    .saturating_sub(cut_b)
                    .saturating_sub(cut_a);
                if len <= 0 {
                    return Ok(());
                }
                src = narrow(&src, d, cut_b, len);
                dst = narrow(&dst, d, b.max(0), len);
            }
            copy_view(&src, &dst, true);
        }
        Ok(())
    }
}

/// aclnnRoll: `out[.., i, ..] = x[.., (i - shift) mod n, ..]` along every
/// dimension of `dims` (a dimension named twice rolls by the sum).
pub mod roll {
    use super::*;

    /// Element types CANN lists for `x` (less UINT32, which the kernels do
    /// not model).
    pub const TYPES: [DType; 8] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::U8,
        DType::I32,
        DType::I64,
        DType::Bool,
    ];

    /// Arguments of `aclnnRollGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct RollArgs {
        pub x: TensorArg,
        pub shifts: Vec<i64>,
        pub dims: Vec<i64>,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnRoll";

    /// The shift of every dimension of `x`, in `[0, n)`.
    fn per_dim(args: &RollArgs) -> Result<Vec<i64>, KernelError> {
        if args.dims.len() != args.shifts.len() || args.dims.is_empty() {
            return Err(KernelError::invalid(format!(
                "{OP}: shifts ({} entries) and dims ({} entries) must have the same, non-zero length (the flattened roll without dims is not implemented).",
                args.shifts.len(),
                args.dims.len()
            )));
        }
        let r = args.x.rank();
        let mut out = vec![0i64; r];
        for (&d, &s) in args.dims.iter().zip(&args.shifts) {
            let d = normalize_dim(d, r, &format!("{OP}: dims entry"))?;
            if r > 0 && args.x.shape[d] > 0 {
                let n = args.x.shape[d];
                out[d] = (out[d] + s.rem_euclid(n)) % n;
            }
        }
        Ok(out)
    }

    /// Phase-one validation.
    pub fn check(args: &RollArgs) -> Result<(), KernelError> {
        check_view(&args.x, "x", MAX_RANK)?;
        check_view(&args.out, "out", MAX_RANK)?;
        check_dtype(&args.x, "x", &TYPES)?;
        same_dtype(&args.out, &args.x, OP, "x")?;
        per_dim(args)?;
        exact_shape(&args.out, &args.x.shape, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &RollArgs) -> Result<(), KernelError> {
        check(args)?;
        let shifts = per_dim(args)?;
        // Every rolled dimension splits into two pieces: out[s..] takes
        // x[..n-s], out[..s] takes x[n-s..]. Copy each combination.
        let mut pieces = vec![(args.x.clone(), args.out.clone())];
        for (d, &s) in shifts.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let n = args.x.shape[d];
            pieces = pieces
                .into_iter()
                .flat_map(|(x, o)| {
                    [
                        (narrow(&x, d, 0, n - s), narrow(&o, d, s, n - s)),
                        (narrow(&x, d, n - s, s), narrow(&o, d, 0, s)),
                    ]
                })
                .collect();
        }
        for (x, o) in &pieces {
            // SAFETY: forwarded invariant; each piece is a sub-view of `x`
            // and of `out` of the same shape.
            unsafe { copy_view(x, o, true) };
        }
        Ok(())
    }
}

/// aclnnRepeatInterleaveIntWithDim: every slice of `self` along `dim`
/// repeated `repeats` times in place (`[a, b]` by 2 is `[a, a, b, b]`).
pub mod repeat_interleave {
    use super::*;

    /// Element types CANN lists for `self`.
    pub const TYPES: [DType; 9] = [
        DType::U8,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::Bool,
        DType::F16,
        DType::BF16,
        DType::F32,
    ];

    /// Arguments of `aclnnRepeatInterleaveIntWithDimGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct RepeatInterleaveIntWithDimArgs {
        pub self_: TensorArg,
        pub repeats: i64,
        pub dim: i64,
        pub output_size: i64,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnRepeatInterleaveIntWithDim";

    /// `self` with a 0-D one seen as 1-D of one element.
    fn as_1d(t: &TensorArg) -> TensorArg {
        let mut v = t.clone();
        if v.rank() == 0 {
            v.shape = vec![1];
            v.strides = vec![1];
        }
        v
    }

    /// Phase-one validation.
    pub fn check(args: &RepeatInterleaveIntWithDimArgs) -> Result<(), KernelError> {
        check_view(&args.self_, "self", MAX_RANK)?;
        check_view(&args.out, "out", MAX_RANK)?;
        check_dtype(&args.self_, "self", &TYPES)?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        if args.repeats < 0 {
            return Err(KernelError::invalid(format!(
                "{OP}: repeats must not be negative, but got {}.",
                args.repeats
            )));
        }
        let s = as_1d(&args.self_);
        let d = normalize_dim(args.dim, args.self_.rank(), &format!("{OP}: dim"))?;
        let want_size = s.shape[d].checked_mul(args.repeats);
        if want_size != Some(args.output_size) {
            return Err(KernelError::invalid(format!(
                "{OP}: outputSize ({}) must be repeats ({}) times the size of dimension {d} ({}).",
                args.output_size, args.repeats, s.shape[d]
            )));
        }
        let mut want = s.shape.clone();
        want[d] = args.output_size;
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &RepeatInterleaveIntWithDimArgs) -> Result<(), KernelError> {
        check(args)?;
        if args.out.numel() == 0 {
            return Ok(());
        }
        let d = normalize_dim(args.dim, args.self_.rank(), "dim")?;
        let r = args.repeats;
        // Dimension d of `out` (n*r) split into (n, r); the source repeats
        // along r with stride 0.
        let (mut src, mut dst) = (as_1d(&args.self_), args.out.clone());
        let n = src.shape[d];
        let (sst, ost) = (src.strides[d], dst.strides[d]);
        src.shape.splice(d..=d, [n, r]);
        src.strides.splice(d..=d, [sst, 0]);
        dst.shape.splice(d..=d, [n, r]);
        dst.strides.splice(d..=d, [r * ost, ost]);
        // SAFETY: forwarded invariant; the split view of `out` addresses
        // exactly `out`'s elements, the broadcast source only `self`'s.
        unsafe { copy_view(&src, &dst, true) };
        Ok(())
    }
}

/// Whether two views address the same elements in the same order.
fn same_view(a: &TensorArg, b: &TensorArg) -> bool {
    a.ptr == b.ptr && a.offset == b.offset && a.shape == b.shape && a.strides == b.strides
}

/// aclnnIndexCopy and aclnnInplaceIndexCopy: `out = self`, then
/// `out[.., index[k], ..] = source[.., k, ..]` along `dim`.
pub mod index_copy {
    use super::*;

    /// Arguments of both operators (`out` is `selfRef` for the in-place form).
    #[derive(Debug, Clone)]
    pub struct IndexCopyArgs {
        pub self_: TensorArg,
        pub dim: i64,
        pub index: TensorArg,
        pub source: TensorArg,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnIndexCopy";

    /// A 0-D view seen as 1-D of one element.
    fn as_1d(t: &TensorArg) -> TensorArg {
        let mut v = t.clone();
        if v.rank() == 0 {
            v.shape = vec![1];
            v.strides = vec![1];
        }
        v
    }

    /// Phase-one validation.
    pub fn check(args: &IndexCopyArgs) -> Result<(), KernelError> {
        data(&args.self_, "selfRef")?;
        data(&args.source, "source")?;
        data(&args.out, "out")?;
        check_view(&args.index, "index", 1)?;
        check_dtype(&args.index, "index", &INDEX_TYPES)?;
        same_dtype(&args.out, &args.self_, OP, "selfRef")?;
        same_dtype(&args.source, &args.self_, OP, "selfRef")?;
        exact_shape(&args.out, &args.self_.shape, OP)?;
        let d = normalize_dim(args.dim, args.self_.rank(), &format!("{OP}: dim"))?;
        let (s, src) = (as_1d(&args.self_), as_1d(&args.source));
        let mut want = s.shape.clone();
        want[d] = args.index.numel() as i64;
        if src.shape != want {
            return Err(KernelError::invalid(format!(
                "{OP}: source has shape {}, but it must be selfRef's {} with dimension {d} of the index's {} elements.",
                fmt_shape(&args.source.shape),
                fmt_shape(&args.self_.shape),
                args.index.numel()
            )));
        }
        Ok(())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &IndexCopyArgs) -> Result<(), KernelError> {
        check(args)?;
        let d = normalize_dim(args.dim, args.self_.rank(), "dim")?;
        let out = as_1d(&args.out);
        let n = out.shape[d];
        // SAFETY: forwarded invariant.
        let idx = unsafe { args.index.read_i64() };
        if let Some((k, &bad)) = idx.iter().enumerate().find(|&(_, &v)| v < 0 || v >= n) {
            return Err(KernelError::invalid(format!(
                "{OP}: index value {bad} (at position {k}) is out of range [0, {n}) for dimension {d}; nothing was written."
            )));
        }
        let src = as_1d(&args.source);
        // SAFETY (whole block): forwarded invariant; every slab is inside
        // its tensor (indices checked above).
        unsafe {
            if !same_view(&args.self_, &args.out) {
                copy_view(&args.self_, &args.out, true);
            }
            for (k, &i) in idx.iter().enumerate() {
                copy_view(&fix_dim(&src, d, k as i64), &fix_dim(&out, d, i), true);
            }
        }
        Ok(())
    }
}

/// aclnnIndexFillTensor and aclnnInplaceIndexFillTensor: `out = self`,
/// then `out[.., i, ..] = value` along `dim` for every `i` of `index`.
pub mod index_fill {
    use super::*;
    use crate::broadcast::write_f64;
    use crate::scalar::Scalar;

    /// Element types CANN lists for `self`.
    pub const TYPES: [DType; 6] = [
        DType::F16,
        DType::F32,
        DType::I32,
        DType::I64,
        DType::Bool,
        DType::BF16,
    ];

    /// Arguments of both operators (`out` is `selfRef` for the in-place form).
    #[derive(Debug, Clone)]
    pub struct IndexFillArgs {
        pub self_: TensorArg,
        pub dim: i64,
        pub index: Vec<i64>,
        pub value: Scalar,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnIndexFillTensor";

    fn as_1d(t: &TensorArg) -> TensorArg {
        let mut v = t.clone();
        if v.rank() == 0 {
            v.shape = vec![1];
            v.strides = vec![1];
        }
        v
    }

    /// The dimension and the indices made non-negative.
    fn resolve(args: &IndexFillArgs) -> Result<(usize, Vec<i64>), KernelError> {
        let d = normalize_dim(args.dim, args.self_.rank(), &format!("{OP}: dim"))?;
        let n = as_1d(&args.self_).shape[d];
        let mut out = Vec::with_capacity(args.index.len());
        for &i in &args.index {
            if i < -n || i >= n {
                return Err(KernelError::invalid(format!(
                    "{OP}: index value {i} is out of range [{}, {n}) for dimension {d}.",
                    -n
                )));
            }
            out.push(if i < 0 { i + n } else { i });
        }
        Ok((d, out))
    }

    /// Phase-one validation.
    pub fn check(args: &IndexFillArgs) -> Result<(), KernelError> {
        check_view(&args.self_, "self", MAX_RANK)?;
        check_view(&args.out, "out", MAX_RANK)?;
        check_dtype(&args.self_, "self", &TYPES)?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        exact_shape(&args.out, &args.self_.shape, OP)?;
        resolve(args).map(|_| ())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &IndexFillArgs) -> Result<(), KernelError> {
        check(args)?;
        let (d, idx) = resolve(args)?;
        let out = as_1d(&args.out);
        // SAFETY (whole block): forwarded invariant; each slab is inside
        // `out` (indices resolved into [0, n)).
        unsafe {
            if !same_view(&args.self_, &args.out) {
                copy_view(&args.self_, &args.out, true);
            }
            for &i in &idx {
                let slab = fix_dim(&out, d, i);
                let m = slab.numel();
                if args.out.dtype.is_float() {
                    write_f64(&slab, &vec![args.value.as_f64(); m]);
                } else {
                    let v = args.value.as_i64();
                    let v = if args.out.dtype == DType::Bool {
                        i64::from(v != 0)
                    } else {
                        v
                    };
                    slab.write_i64(&vec![v; m]);
                }
            }
        }
        Ok(())
    }
}

/// aclnnReflectionPad1d: the last dimension of a 2-D or 3-D `self` padded
/// by `padding = [left, right]` with its reflection about the edges
/// (`[0, 1, 2]` by `[2, 2]` is `[2, 1, 0, 1, 2, 1, 0]`).
pub mod reflection_pad1d {
    use super::*;

    /// Arguments of `aclnnReflectionPad1dGetWorkspaceSize`.
    #[derive(Debug, Clone)]
    pub struct ReflectionPad1dArgs {
        pub self_: TensorArg,
        pub padding: Vec<i64>,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnReflectionPad1d";

    /// Phase-one validation.
    pub fn check(args: &ReflectionPad1dArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.out, "out")?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        let r = args.self_.rank();
        if r != 2 && r != 3 {
            return Err(KernelError::invalid(format!(
                "{OP}: self must be 2-D or 3-D, but its shape is {}.",
                fmt_shape(&args.self_.shape)
            )));
        }
        let w = args.self_.shape[r - 1];
        let ok = args.padding.len() == 2 && args.padding.iter().all(|&p| (0..w).contains(&p));
        if !ok {
            return Err(KernelError::invalid(format!(
                "{OP}: padding {:?} must be two values in [0, {w}) (less than the last dimension of self).",
                args.padding
            )));
        }
        let mut want = args.self_.shape.clone();
        want[r - 1] = w + args.padding[0] + args.padding[1];
        exact_shape(&args.out, &want, OP)
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &ReflectionPad1dArgs) -> Result<(), KernelError> {
        check(args)?;
        let d = args.self_.rank() - 1;
        let w = args.self_.shape[d];
        let (l, r) = (args.padding[0], args.padding[1]);
        // SAFETY (whole block): forwarded invariant; every column index is
        // inside its tensor (reflections of [-l, w + r) with l, r < w).
        unsafe {
            copy_view(&args.self_, &narrow(&args.out, d, l, w), true);
            for j in (0..l).chain(l + w..l + w + r) {
                let i = j - l;
                let src = if i < 0 { -i } else { 2 * (w - 1) - i };
                copy_view(
                    &fix_dim(&args.self_, d, src),
                    &fix_dim(&args.out, d, j),
                    false,
                );
            }
        }
        Ok(())
    }
}

/// aclnnScatter and aclnnInplaceScatter: `out = self`, then for every
/// position `p` of `index`, `out[p with p[dim] = index[p]]` is replaced by
/// (`reduce` 0), added to (1) or multiplied by (2) `src[p]`.
pub mod scatter {
    use super::*;
    use crate::broadcast::{read_f64, write_f64};

    /// Arguments of both operators (`out` is `selfRef` for the in-place form).
    #[derive(Debug, Clone)]
    pub struct ScatterArgs {
        pub self_: TensorArg,
        pub dim: i64,
        pub index: TensorArg,
        pub src: TensorArg,
        pub reduce: i64,
        pub out: TensorArg,
    }

    const OP: &str = "aclnnScatter";

    fn as_1d(t: &TensorArg) -> TensorArg {
        let mut v = t.clone();
        if v.rank() == 0 {
            v.shape = vec![1];
            v.strides = vec![1];
        }
        v
    }

    /// Phase-one validation.
    pub fn check(args: &ScatterArgs) -> Result<(), KernelError> {
        data(&args.self_, "self")?;
        data(&args.src, "src")?;
        data(&args.out, "out")?;
        check_view(&args.index, "index", MAX_RANK)?;
        check_dtype(&args.index, "index", &INDEX_TYPES)?;
        same_dtype(&args.out, &args.self_, OP, "self")?;
        same_dtype(&args.src, &args.self_, OP, "self")?;
        exact_shape(&args.out, &args.self_.shape, OP)?;
        if !(0..=2).contains(&args.reduce) {
            return Err(KernelError::invalid(format!(
                "{OP}: reduce must be 0 (replace), 1 (add) or 2 (multiply), but got {}.",
                args.reduce
            )));
        }
        let r = args.self_.rank();
        if args.index.rank() != r || args.src.rank() != r {
            return Err(KernelError::invalid(format!(
                "{OP}: self, index and src must have the same number of dimensions, but have {r}, {} and {}.",
                args.index.rank(),
                args.src.rank()
            )));
        }
        let d = normalize_dim(args.dim, r, &format!("{OP}: dim"))?;
        let (s, i, src) = (as_1d(&args.self_), as_1d(&args.index), as_1d(&args.src));
        for k in 0..s.rank() {
            if i.shape[k] > src.shape[k] || (k != d && i.shape[k] > s.shape[k]) {
                return Err(KernelError::invalid(format!(
                    "{OP}: index shape {} must be no larger than src {} in every dimension, and than self {} outside dimension {d}.",
                    fmt_shape(&args.index.shape),
                    fmt_shape(&args.src.shape),
                    fmt_shape(&args.self_.shape)
                )));
            }
        }
        Ok(())
    }

    /// Phase-two computation.
    ///
    /// # Safety
    /// tensor.rs's module invariant for the tensors of `args`.
    pub unsafe fn run(args: &ScatterArgs) -> Result<(), KernelError> {
        check(args)?;
        let d = normalize_dim(args.dim, args.self_.rank(), "dim")?;
        let (s, index, src) = (as_1d(&args.self_), as_1d(&args.index), as_1d(&args.src));
        let n = s.shape[d];
        // SAFETY: forwarded invariant.
        let idx = unsafe { index.read_i64() };
        if let Some((k, &bad)) = idx.iter().enumerate().find(|&(_, &v)| v < 0 || v >= n) {
            return Err(KernelError::invalid(format!(
                "{OP}: index value {bad} (at flat position {k}) is out of range [0, {n}) for dimension {d}; nothing was written."
            )));
        }
        // The part of src the index covers, and where each lands in `out`
        // (row-major positions over self's shape).
        let mut part = src.clone();
        part.shape = index.shape.clone();
        let ishape = &index.shape;
        let sstr = crate::tensor::contiguous_strides(&s.shape);
        let target: Vec<usize> = (0..idx.len())
            .map(|f| {
                let mut rem = f;
                let mut pos = 0i64;
                for k in (0..ishape.len()).rev() {
                    let n = ishape[k] as usize;
                    let c = (rem % n) as i64;
                    rem /= n;
                    pos += if k == d { idx[f] } else { c } * sstr[k];
                }
                pos as usize
            })
            .collect();
        let float = args.out.dtype.is_float();
        let boolean = args.out.dtype == DType::Bool;
        // SAFETY (whole block): forwarded invariant; the host vectors are
        // read whole before `out` is written.
        unsafe {
            if float {
                let mut v = read_f64(&args.self_);
                let sv = read_f64(&part);
                for (&t, &x) in target.iter().zip(&sv) {
                    v[t] = match args.reduce {
                        0 => x,
                        1 => v[t] + x,
                        _ => v[t] * x,
                    };
                }
                write_f64(&args.out, &v);
            } else {
                let mut v = args.self_.read_i64();
                let sv = part.read_i64();
                for (&t, &x) in target.iter().zip(&sv) {
                    let y = match args.reduce {
                        0 => x,
                        1 => v[t].wrapping_add(x),
                        _ => v[t].wrapping_mul(x),
                    };
                    v[t] = if boolean { i64::from(y != 0) } else { y };
                }
                args.out.write_i64(&v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Each operator against a plain-loop reference over row-major
    //! multi-indices, on contiguous and strided views and several dtypes.

    use super::cat::*;
    use super::embedding::*;
    use super::gather_v2::*;
    use super::index_select::*;
    use super::permute::*;
    use super::repeat::*;
    use super::slice::*;
    use super::triangle::*;
    use super::*;
    use crate::testutil::{Buf, Rng};

    /// Row-major multi-index of flat position `f` in `shape`.
    fn unravel(mut f: usize, shape: &[i64]) -> Vec<i64> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            let n = shape[d] as usize;
            idx[d] = (f % n) as i64;
            f /= n;
        }
        idx
    }

    /// Row-major flat position of `idx` in `shape`.
    fn ravel(idx: &[i64], shape: &[i64]) -> usize {
        idx.iter()
            .zip(shape)
            .fold(0usize, |acc, (&i, &n)| acc * n as usize + i as usize)
    }

    fn numel(shape: &[i64]) -> usize {
        shape.iter().product::<i64>() as usize
    }

    /// Distinct integer values 1..=n (exact in every dtype up to 127).
    fn ramp(dtype: DType, n: usize) -> Buf {
        let v: Vec<i64> = (0..n as i64).map(|i| i % 120 + 1).collect();
        Buf::from_i64(dtype, &v)
    }

    #[test]
    fn copy_view_long_runs_parallel_and_transposed() {
        // A contiguous copy larger than PAR_MIN, and a transposed one.
        let n = PAR_MIN * 3 + 17;
        let mut rng = Rng::new(1);
        let a = Buf::random(DType::F32, n, &mut rng);
        let b = Buf::zeros(DType::F32, n);
        // SAFETY: both buffers hold n elements.
        unsafe { copy_view(&a.flat(), &b.flat(), true) };
        assert_eq!(a.to_f32(), b.to_f32());
        let (r, c) = (300i64, 257i64);
        let a = ramp(DType::I16, (r * c) as usize);
        let b = Buf::zeros(DType::I16, (r * c) as usize);
        let src = a.view(&[c, r], &[1, c], 0);
        // SAFETY: the transposed view addresses a's r*c elements.
        unsafe { copy_view(&src, &b.tensor(&[c, r]), true) };
        let (av, bv) = (a.to_i64(), b.to_i64());
        for i in 0..c {
            for j in 0..r {
                assert_eq!(bv[(i * r + j) as usize], av[(j * c + i) as usize]);
            }
        }
    }

    /// GatherV2 reference: out[pre, k.., post] = self[pre, index[k..], post].
    fn gather_ref(s: &[i64], shape: &[i64], dim: usize, idx: &[i64], ishape: &[i64]) -> Vec<i64> {
        let n = shape[dim];
        let oshape: Vec<i64> = shape[..dim]
            .iter()
            .chain(ishape)
            .chain(&shape[dim + 1..])
            .copied()
            .collect();
        (0..numel(&oshape))
            .map(|f| {
                let o = unravel(f, &oshape);
                let k = ravel(&o[dim..dim + ishape.len()], ishape);
                let mut i = idx[k];
                if i < 0 {
                    i += n;
                }
                let mut si: Vec<i64> = o[..dim].to_vec();
                si.push(i);
                si.extend(&o[dim + ishape.len()..]);
                s[ravel(&si, shape)]
            })
            .collect()
    }

    #[test]
    fn gather_v2_matches_reference_every_dim_and_dtype() {
        let shape = [3i64, 4, 5];
        let idx = [2i64, -1, 0, 3, 1, -4];
        let ishape = [2i64, 3];
        for dt in [
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::I8,
            DType::I64,
            DType::Bool,
        ] {
            let s = ramp(dt, 60);
            let sv = s.to_i64();
            for dim in 0..3usize {
                let n = shape[dim];
                let ix: Vec<i64> = idx.iter().map(|&v| v.clamp(-n, n - 1)).collect();
                for it in [DType::I32, DType::I64] {
                    let ib = Buf::from_i64(it, &ix);
                    let want = gather_ref(&sv, &shape, dim, &ix, &ishape);
                    let oshape: Vec<i64> = shape[..dim]
                        .iter()
                        .chain(&ishape)
                        .chain(&shape[dim + 1..])
                        .copied()
                        .collect();
                    let o = Buf::zeros(dt, want.len());
                    let args = GatherV2Args {
                        self_: s.tensor(&shape),
                        dim: dim as i64 - 3,
                        index: ib.tensor(&ishape),
                        out: o.tensor(&oshape),
                    };
                    // SAFETY: buffers match the shapes.
                    unsafe { gather_v2::run(&args) }.unwrap();
                    let got = o.to_i64();
                    // Bytes are copied unchanged, BOOL included.
                    assert_eq!(got, want, "{dt:?} dim {dim}");
                }
            }
        }
    }

    #[test]
    fn index_select_strided_self_and_out_of_range() {
        // self is the transpose of a [5, 3] buffer: shape [3, 5].
        let s = ramp(DType::F32, 15);
        let sv = s.to_i64();
        let t = s.view(&[3, 5], &[1, 3], 0);
        let ib = Buf::from_i64(DType::I32, &[4, 0, 4]);
        let o = Buf::zeros(DType::F32, 9);
        let args = IndexSelectArgs {
            self_: t.clone(),
            dim: 1,
            index: ib.flat(),
            out: o.tensor(&[3, 3]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { index_select::run(&args) }.unwrap();
        let want: Vec<i64> = (0..3)
            .flat_map(|i| [4i64, 0, 4].map(|j| sv[(j * 3 + i) as usize]))
            .collect();
        assert_eq!(o.to_i64(), want);
        // Negative and too large indices fail the kernel before any write.
        for bad in [-1i64, 5] {
            let ib = Buf::from_i64(DType::I64, &[0, bad, 1]);
            let o = Buf::zeros(DType::F32, 9);
            let args = IndexSelectArgs {
                index: ib.flat(),
                out: o.tensor(&[3, 3]),
                ..args.clone()
            };
            // SAFETY: buffers match the shapes.
            let e = unsafe { index_select::run(&args) }.unwrap_err();
            assert!(
                e.message.contains(&format!("index value {bad}")),
                "{}",
                e.message
            );
            assert!(o.to_i64().iter().all(|&v| v == 0));
        }
        // Phase one: a 2-D index, a wrong out shape, a float index.
        let i2 = Buf::from_i64(DType::I64, &[0, 1]);
        for (index, out) in [
            (i2.tensor(&[1, 2]), o.tensor(&[3, 2])),
            (i2.flat(), o.tensor(&[3, 3])),
            (
                Buf::from_f32(DType::F32, &[0.0, 1.0]).flat(),
                o.tensor(&[3, 2]),
            ),
        ] {
            let a = IndexSelectArgs {
                index,
                out,
                ..args.clone()
            };
            assert_eq!(
                index_select::check(&a).unwrap_err().code,
                crate::tensor::PARAM_INVALID
            );
        }
    }

    #[test]
    fn embedding_rows_and_range() {
        let w = ramp(DType::BF16, 12); // [4, 3]
        let wv = w.to_i64();
        let ix = Buf::from_i64(DType::I64, &[3, 0, 2, 2]);
        let o = Buf::zeros(DType::BF16, 12);
        let args = EmbeddingArgs {
            weight: w.tensor(&[4, 3]),
            indices: ix.tensor(&[2, 2]),
            out: o.tensor(&[2, 2, 3]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { embedding::run(&args) }.unwrap();
        let want: Vec<i64> = [3usize, 0, 2, 2]
            .iter()
            .flat_map(|&r| wv[r * 3..r * 3 + 3].to_vec())
            .collect();
        assert_eq!(o.to_i64(), want);
        let bad = Buf::from_i64(DType::I32, &[4, 0, 0, 0]);
        let a = EmbeddingArgs {
            indices: bad.tensor(&[2, 2]),
            ..args.clone()
        };
        // SAFETY: buffers match the shapes.
        assert!(unsafe { embedding::run(&a) }.is_err());
        let a = EmbeddingArgs {
            weight: w.tensor(&[12]),
            ..args
        };
        assert!(embedding::check(&a).is_err());
    }

    #[test]
    fn cat_slice_permute_repeat_match_reference() {
        // Cat along dim 1 of [2,1,3], [2,2,3] (strided), [2,0,3].
        let a = ramp(DType::I32, 6);
        let b = ramp(DType::I32, 12);
        let bt = b.view(&[2, 2, 3], &[1, 6, 2], 0); // permuted view of b
        let e = Buf::zeros(DType::I32, 0);
        let o = Buf::zeros(DType::I32, 18);
        let args = CatArgs {
            tensors: vec![a.tensor(&[2, 1, 3]), bt.clone(), e.tensor(&[2, 0, 3])],
            dim: -2,
            out: o.tensor(&[2, 3, 3]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { cat::run(&args) }.unwrap();
        let (av, bv, ov) = (a.to_i64(), b.to_i64(), o.to_i64());
        for (f, &got) in ov.iter().enumerate() {
            let i = unravel(f, &[2, 3, 3]);
            let want = if i[1] == 0 {
                av[(i[0] * 3 + i[2]) as usize]
            } else {
                bv[(i[0] + (i[1] - 1) * 6 + i[2] * 2) as usize]
            };
            assert_eq!(got, want, "{i:?}");
        }
        let bad = CatArgs {
            tensors: vec![a.tensor(&[2, 1, 3]), a.tensor(&[1, 2, 3])],
            ..args.clone()
        };
        assert!(cat::check(&bad).is_err());
        assert!(
            cat::check(&CatArgs {
                tensors: vec![],
                ..args
            })
            .is_err()
        );

        // Slice [1:-1:2] and [-100:100] of dim 0 of [7, 2].
        let s = ramp(DType::F16, 14);
        let sv = s.to_i64();
        for (start, end, step, want_rows) in [
            (1i64, -1i64, 2i64, vec![1i64, 3, 5]),
            (-100, 100, 3, vec![0, 3, 6]),
            (5, 2, 1, vec![]),
            (2, i64::MAX, i64::MAX, vec![2]),
        ] {
            let o = Buf::zeros(DType::F16, want_rows.len() * 2);
            let args = SliceArgs {
                self_: s.tensor(&[7, 2]),
                dim: 0,
                start,
                end,
                step,
                out: o.tensor(&[want_rows.len() as i64, 2]),
            };
            // SAFETY: buffers match the shapes.
            unsafe { slice::run(&args) }.unwrap();
            let want: Vec<i64> = want_rows
                .iter()
                .flat_map(|&r| sv[r as usize * 2..r as usize * 2 + 2].to_vec())
                .collect();
            assert_eq!(o.to_i64(), want);
            assert!(slice::check(&SliceArgs { step: 0, ..args }).is_err());
        }

        // Permute [2,3,4] by (2, 0, 1).
        let p = ramp(DType::I64, 24);
        let pv = p.to_i64();
        let o = Buf::zeros(DType::I64, 24);
        let args = PermuteArgs {
            self_: p.tensor(&[2, 3, 4]),
            dims: vec![-1, 0, 1],
            out: o.tensor(&[4, 2, 3]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { permute::run(&args) }.unwrap();
        let ov = o.to_i64();
        for (f, &got) in ov.iter().enumerate() {
            let i = unravel(f, &[4, 2, 3]);
            assert_eq!(got, pv[ravel(&[i[1], i[2], i[0]], &[2, 3, 4])]);
        }
        assert!(
            permute::check(&PermuteArgs {
                dims: vec![0, 0, 1],
                ..args.clone()
            })
            .is_err()
        );
        assert!(
            permute::check(&PermuteArgs {
                dims: vec![0, 1],
                ..args
            })
            .is_err()
        );

        // Repeat [2,3] (transposed view) by (2, 1, 3) -> [2, 2, 9].
        let r = ramp(DType::U8, 6);
        let rv = r.to_i64();
        let src = r.view(&[2, 3], &[1, 2], 0);
        let o = Buf::zeros(DType::U8, 36);
        let args = RepeatArgs {
            self_: src,
            repeats: vec![2, 1, 3],
            out: o.tensor(&[2, 2, 9]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { repeat::run(&args) }.unwrap();
        let ov = o.to_i64();
        for (f, &got) in ov.iter().enumerate() {
            let i = unravel(f, &[2, 2, 9]);
            let (a, b) = (i[1] % 2, i[2] % 3);
            assert_eq!(got, rv[(a + b * 2) as usize]);
        }
        assert!(
            repeat::check(&RepeatArgs {
                repeats: vec![3],
                ..args.clone()
            })
            .is_err()
        );
        assert!(
            repeat::check(&RepeatArgs {
                repeats: vec![1, -1, 1],
                ..args
            })
            .is_err()
        );
    }

    #[test]
    fn tril_triu_every_diagonal() {
        let shape = [2i64, 3, 4];
        for dt in [DType::F32, DType::BF16, DType::I32] {
            let s = ramp(dt, 24);
            let sv = s.to_i64();
            for diag in -4i64..=5 {
                for lower in [true, false] {
                    let o = Buf::zeros(dt, 24);
                    let args = TriangleArgs {
                        self_: s.tensor(&shape),
                        diagonal: diag,
                        out: o.tensor(&shape),
                    };
                    // SAFETY: buffers match the shapes.
                    unsafe {
                        if lower {
                            tril::run(&args)
                        } else {
                            triu::run(&args)
                        }
                    }
                    .unwrap();
                    let want: Vec<i64> = (0..24)
                        .map(|f| {
                            let i = unravel(f, &shape);
                            let keep = if lower {
                                i[2] - i[1] <= diag
                            } else {
                                i[2] - i[1] >= diag
                            };
                            if keep { sv[f] } else { 0 }
                        })
                        .collect();
                    assert_eq!(o.to_i64(), want, "{dt:?} diag {diag} lower {lower}");
                }
            }
            // In place on a transposed view.
            let b = ramp(dt, 12);
            let bv = b.to_i64();
            let v = b.view(&[4, 3], &[1, 4], 0);
            // SAFETY: the view addresses b's 12 elements.
            unsafe {
                inplace_triu::run(&InplaceTriuArgs {
                    self_ref: v,
                    diagonal: 0,
                })
            }
            .unwrap();
            let got = b.to_i64();
            for r in 0..4 {
                for c in 0..3 {
                    let want = if c >= r { bv[(r + c * 4) as usize] } else { 0 };
                    assert_eq!(got[(r + c * 4) as usize], want);
                }
            }
        }
        let s = ramp(DType::F32, 4);
        let a = TriangleArgs {
            self_: s.flat(),
            diagonal: 0,
            out: s.flat(),
        };
        assert!(tril::check(&a).is_err());
    }
}

#[cfg(test)]
mod pad_tests {
    //! ConstantPadNd against a plain-loop reference.

    use super::constant_pad_nd::*;
    use super::*;
    use crate::scalar::Scalar;
    use crate::testutil::Buf;

    #[test]
    fn pads_and_crops() {
        // self [3, 4]; pad last dim (1, -2), first dim (-1, 2): out [4, 3].
        let s = Buf::from_i64(DType::F16, &(1..=12).collect::<Vec<i64>>());
        let o = Buf::zeros(DType::F16, 12);
        let args = ConstantPadNdArgs {
            self_: s.tensor(&[3, 4]),
            pad: vec![1, -2, -1, 2],
            value: Scalar::F64(-7.0),
            out: o.tensor(&[4, 3]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { constant_pad_nd::run(&args) }.unwrap();
        let mut want = Vec::new();
        for i in 0..4i64 {
            for j in 0..3i64 {
                // out (i, j) comes from self (i + 1, j - 1) when inside.
                let (si, sj) = (i + 1, j - 1);
                want.push(if (0..3).contains(&si) && (0..2).contains(&sj) {
                    si * 4 + sj + 1
                } else {
                    -7
                });
            }
        }
        assert_eq!(o.to_i64(), want);
        // Extreme amounts whose sum is small: everything cropped, all value.
        let o3 = Buf::zeros(DType::F16, 9);
        let extreme = ConstantPadNdArgs {
            pad: vec![i64::MIN, i64::MAX],
            out: o3.tensor(&[3, 3]),
            ..args.clone()
        };
        // SAFETY: buffers match the shapes.
        unsafe { constant_pad_nd::run(&extreme) }.unwrap();
        assert_eq!(o3.to_i64(), vec![-7; 9]);
        assert!(
            constant_pad_nd::check(&ConstantPadNdArgs {
                pad: vec![1],
                ..args.clone()
            })
            .is_err()
        );
        assert!(
            constant_pad_nd::check(&ConstantPadNdArgs {
                pad: vec![-3, -2],
                ..args.clone()
            })
            .is_err()
        );
        let o2 = Buf::zeros(DType::F16, 12);
        assert!(
            constant_pad_nd::check(&ConstantPadNdArgs {
                out: o2.tensor(&[3, 4]),
                ..args
            })
            .is_err()
        );
    }
}

#[cfg(test)]
mod roll_tests {
    //! Roll and RepeatInterleaveIntWithDim against plain-loop references.

    use super::repeat_interleave::*;
    use super::roll::*;
    use super::*;
    use crate::testutil::Buf;

    #[test]
    fn roll_two_dims_strided() {
        // x is the transpose of a [4, 3] buffer: shape [3, 4].
        let b = Buf::from_i64(DType::I32, &(1..=12).collect::<Vec<i64>>());
        let bv = b.to_i64();
        let x = b.view(&[3, 4], &[1, 3], 0);
        let o = Buf::zeros(DType::I32, 12);
        let args = RollArgs {
            x,
            shifts: vec![-1, 5, 1],
            dims: vec![-1, 0, 0],
            out: o.tensor(&[3, 4]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { roll::run(&args) }.unwrap();
        // dim 0 rolls by 6 mod 3 = 0, dim 1 by -1 mod 4 = 3.
        let got = o.to_i64();
        for i in 0..3i64 {
            for j in 0..4i64 {
                let sj = (j + 1).rem_euclid(4);
                assert_eq!(got[(i * 4 + j) as usize], bv[(sj * 3 + i) as usize]);
            }
        }
        assert!(
            roll::check(&RollArgs {
                dims: vec![],
                shifts: vec![],
                ..args.clone()
            })
            .is_err()
        );
        assert!(
            roll::check(&RollArgs {
                dims: vec![2],
                shifts: vec![1],
                ..args
            })
            .is_err()
        );
    }

    #[test]
    fn repeat_interleave_along_dims() {
        let b = Buf::from_i64(DType::F16, &(1..=6).collect::<Vec<i64>>());
        for (dim, oshape, want) in [
            (
                0i64,
                [6i64, 3],
                vec![1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 4, 5, 6],
            ),
            (
                -1,
                [2, 9],
                vec![1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6],
            ),
        ] {
            let (r, n) = if dim == 0 { (3, 2) } else { (3, 3) };
            let o = Buf::zeros(DType::F16, 18);
            let args = RepeatInterleaveIntWithDimArgs {
                self_: b.tensor(&[2, 3]),
                repeats: r,
                dim,
                output_size: n * r,
                out: o.tensor(&oshape),
            };
            // SAFETY: buffers match the shapes.
            unsafe { repeat_interleave::run(&args) }.unwrap();
            assert_eq!(o.to_i64(), want, "dim {dim}");
            let bad = RepeatInterleaveIntWithDimArgs {
                output_size: 5,
                ..args.clone()
            };
            assert!(repeat_interleave::check(&bad).is_err());
            let bad = RepeatInterleaveIntWithDimArgs {
                repeats: -1,
                ..args
            };
            assert!(repeat_interleave::check(&bad).is_err());
        }
    }
}

#[cfg(test)]
mod index_write_tests {
    //! IndexCopy and IndexFillTensor against plain-loop references.

    use super::index_copy::*;
    use super::index_fill::*;
    use super::*;
    use crate::scalar::Scalar;
    use crate::testutil::Buf;

    #[test]
    fn index_copy_columns_in_place_and_out_of_range() {
        // selfRef [2, 4] in place; source [2, 2] into columns 3 and 0.
        let s = Buf::from_i64(DType::BF16, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let src = Buf::from_i64(DType::BF16, &[10, 20, 30, 40]);
        let ix = Buf::from_i64(DType::I32, &[3, 0]);
        let args = IndexCopyArgs {
            self_: s.tensor(&[2, 4]),
            dim: -1,
            index: ix.flat(),
            source: src.tensor(&[2, 2]),
            out: s.tensor(&[2, 4]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { index_copy::run(&args) }.unwrap();
        assert_eq!(s.to_i64(), [20, 2, 3, 10, 40, 6, 7, 30]);
        let bad = Buf::from_i64(DType::I64, &[4, 0]);
        let a = IndexCopyArgs {
            index: bad.flat(),
            ..args.clone()
        };
        // SAFETY: buffers match the shapes.
        assert!(unsafe { index_copy::run(&a) }.is_err());
        assert_eq!(s.to_i64(), [20, 2, 3, 10, 40, 6, 7, 30]);
        let a = IndexCopyArgs {
            source: src.tensor(&[4]),
            ..args
        };
        assert!(index_copy::check(&a).is_err());
    }

    #[test]
    fn index_fill_rows_out_of_place() {
        let s = Buf::from_i64(DType::I64, &(1..=9).collect::<Vec<i64>>());
        let o = Buf::zeros(DType::I64, 9);
        let args = IndexFillArgs {
            self_: s.tensor(&[3, 3]),
            dim: 0,
            index: vec![0, -1],
            value: Scalar::I64(-5),
            out: o.tensor(&[3, 3]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { index_fill::run(&args) }.unwrap();
        assert_eq!(o.to_i64(), [-5, -5, -5, 4, 5, 6, -5, -5, -5]);
        assert!(
            index_fill::check(&IndexFillArgs {
                index: vec![3],
                ..args.clone()
            })
            .is_err()
        );
        let f = Buf::zeros(DType::I8, 9);
        assert!(
            index_fill::check(&IndexFillArgs {
                self_: f.tensor(&[3, 3]),
                out: f.tensor(&[3, 3]),
                ..args
            })
            .is_err()
        );
    }
}

#[cfg(test)]
mod reflection_tests {
    //! ReflectionPad1d against a plain-loop reference.

    use super::reflection_pad1d::*;
    use super::*;
    use crate::testutil::Buf;

    #[test]
    fn reflects_both_edges_on_a_strided_view() {
        // self [2, 4] as the transpose of a [4, 2] buffer; padding [3, 2].
        let b = Buf::from_i64(DType::I16, &(1..=8).collect::<Vec<i64>>());
        let bv = b.to_i64();
        let o = Buf::zeros(DType::I16, 18);
        let args = ReflectionPad1dArgs {
            self_: b.view(&[2, 4], &[1, 2], 0),
            padding: vec![3, 2],
            out: o.tensor(&[2, 9]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { reflection_pad1d::run(&args) }.unwrap();
        let got = o.to_i64();
        for i in 0..2i64 {
            for j in 0..9i64 {
                let mut c = j - 3;
                if c < 0 {
                    c = -c;
                }
                if c > 3 {
                    c = 6 - c;
                }
                assert_eq!(
                    got[(i * 9 + j) as usize],
                    bv[(c * 2 + i) as usize],
                    "({i}, {j})"
                );
            }
        }
        assert!(
            reflection_pad1d::check(&ReflectionPad1dArgs {
                padding: vec![4, 0],
                ..args.clone()
            })
            .is_err()
        );
        assert!(
            reflection_pad1d::check(&ReflectionPad1dArgs {
                self_: b.tensor(&[8]),
                ..args
            })
            .is_err()
        );
    }
}

#[cfg(test)]
mod scatter_tests {
    //! Scatter against a plain-loop reference.

    use super::scatter::*;
    use super::*;
    use crate::testutil::Buf;

    #[test]
    fn scatter_replace_add_mul_along_dim_1() {
        // self [2, 4]; index [2, 2] (dim 1); src [2, 3] (larger than index).
        let src = Buf::from_i64(DType::F32, &[10, 20, 30, 40, 50, 60]);
        let ix = Buf::from_i64(DType::I64, &[3, 3, 0, 2]);
        for reduce in 0..3i64 {
            let s = Buf::from_i64(DType::F32, &[1, 2, 3, 4, 5, 6, 7, 8]);
            let args = ScatterArgs {
                self_: s.tensor(&[2, 4]),
                dim: 1,
                index: ix.tensor(&[2, 2]),
                src: src.tensor(&[2, 3]),
                reduce,
                out: s.tensor(&[2, 4]),
            };
            // SAFETY: buffers match the shapes.
            unsafe { scatter::run(&args) }.unwrap();
            let mut want = vec![1i64, 2, 3, 4, 5, 6, 7, 8];
            for (i, j, v) in [(0usize, 3usize, 10i64), (0, 3, 20), (1, 0, 40), (1, 2, 50)] {
                let t = &mut want[i * 4 + j];
                *t = match reduce {
                    0 => v,
                    1 => *t + v,
                    _ => *t * v,
                };
            }
            assert_eq!(s.to_i64(), want, "reduce {reduce}");
            assert!(
                scatter::check(&ScatterArgs {
                    reduce: 3,
                    ..args.clone()
                })
                .is_err()
            );
            assert!(
                scatter::check(&ScatterArgs {
                    index: ix.tensor(&[4]),
                    ..args.clone()
                })
                .is_err()
            );
            let bad = Buf::from_i64(DType::I32, &[4, 0, 0, 0]);
            // SAFETY: buffers match the shapes.
            assert!(
                unsafe {
                    scatter::run(&ScatterArgs {
                        index: bad.tensor(&[2, 2]),
                        ..args
                    })
                }
                .is_err()
            );
        }
    }
}

#[cfg(test)]
mod large_tests {
    //! The parallel paths (more than `PAR_MIN` elements) against plain loops.

    use super::cat::*;
    use super::embedding::*;
    use super::*;
    use crate::testutil::{Buf, Rng};

    #[test]
    fn large_embedding_and_cat_match_plain_loops() {
        let (rows, width, count) = (97usize, 384usize, 300usize);
        let mut rng = Rng::new(7);
        let w = Buf::random(DType::F32, rows * width, &mut rng);
        let wv = w.to_f32();
        let idx: Vec<i64> = (0..count).map(|_| rng.below(rows as u64) as i64).collect();
        let ix = Buf::from_i64(DType::I64, &idx);
        let o = Buf::zeros(DType::F32, count * width);
        let args = EmbeddingArgs {
            weight: w.tensor(&[rows as i64, width as i64]),
            indices: ix.flat(),
            out: o.tensor(&[count as i64, width as i64]),
        };
        assert!(o.len >= PAR_MIN);
        // SAFETY: buffers match the shapes.
        unsafe { embedding::run(&args) }.unwrap();
        let got = o.to_f32();
        for (k, &r) in idx.iter().enumerate() {
            for c in 0..width {
                assert_eq!(got[k * width + c], wv[r as usize * width + c]);
            }
        }
        // Cat of the embedding output and the weight along dim 0.
        let o2 = Buf::zeros(DType::F32, (count + rows) * width);
        let args = CatArgs {
            tensors: vec![
                o.tensor(&[count as i64, width as i64]),
                w.tensor(&[rows as i64, width as i64]),
            ],
            dim: 0,
            out: o2.tensor(&[(count + rows) as i64, width as i64]),
        };
        // SAFETY: buffers match the shapes.
        unsafe { cat::run(&args) }.unwrap();
        let want: Vec<f32> = got.iter().chain(&wv).copied().collect();
        assert_eq!(o2.to_f32(), want);
    }
}
