//! Shape helpers shared by the operators: numpy-style broadcasting, views
//! expanded to a broadcast shape (stride 0 along repeated dimensions), dim
//! normalisation, overlap tests between views, and f64 gathers/stores for
//! DOUBLE tensors (tensor.rs offers f32 and i64 forms only).
//!
//! Invariant: a view returned by [`expand`] addresses only elements its
//! source view addresses, so the source's memory invariant carries over.

use half::{bf16, f16};

use crate::tensor::{DType, KernelError, TensorArg};

/// `[a, b, c]` for messages.
pub fn fmt_shape(shape: &[i64]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The numpy broadcast of two shapes, or `None` when they do not broadcast.
pub fn broadcast_shapes(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0i64; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// `t` seen with shape `target` (which `t.shape` must broadcast to): leading
/// new dimensions and dimensions of size 1 get stride 0.
pub fn expand(t: &TensorArg, target: &[i64]) -> TensorArg {
    let lead = target.len() - t.rank();
    let mut strides = vec![0i64; target.len()];
    for (i, s) in strides.iter_mut().enumerate().skip(lead) {
        let d = i - lead;
        *s = if t.shape[d] == 1 && target[i] != 1 {
            0
        } else {
            t.strides[d]
        };
    }
    TensorArg {
        ptr: t.ptr,
        dtype: t.dtype,
        shape: target.to_vec(),
        strides,
        offset: t.offset,
    }
}

/// `dim` in `[-rank, rank-1]` made non-negative; a 0-D tensor accepts 0 and -1.
pub fn normalize_dim(dim: i64, rank: usize, what: &str) -> Result<usize, KernelError> {
    let r = rank.max(1) as i64;
    if dim < -r || dim >= r {
        return Err(KernelError::invalid(format!(
            "{what} must be in range [{}, {}], but got {dim}.",
            -r,
            r - 1
        )));
    }
    Ok(if dim < 0 {
        (dim + r) as usize
    } else {
        dim as usize
    })
}

/// Checks the basic sanity of a view: as many strides as dims, no negative
/// dimension, at most `max_rank` dims.
pub fn check_view(t: &TensorArg, name: &str, max_rank: usize) -> Result<(), KernelError> {
    if t.strides.len() != t.shape.len() {
        return Err(KernelError::invalid(format!(
            "{name} has {} dims but {} strides.",
            t.shape.len(),
            t.strides.len()
        )));
    }
    if t.shape.iter().any(|&d| d < 0) {
        return Err(KernelError::invalid(format!(
            "{name} shape {} has a negative dimension.",
            fmt_shape(&t.shape)
        )));
    }
    if t.rank() > max_rank {
        return Err(KernelError::invalid(format!(
            "The dim of {name} should be no more than {max_rank}, but got {}.",
            t.rank()
        )));
    }
    Ok(())
}

/// Refuse a dtype outside `allowed`.
pub fn check_dtype(t: &TensorArg, name: &str, allowed: &[DType]) -> Result<(), KernelError> {
    if allowed.contains(&t.dtype) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
    Err(KernelError::invalid(format!(
        "{name} dtype {} should be in dtype support list [{}].",
        t.dtype.name(),
        names.join(", ")
    )))
}

/// Byte range `[lo, hi)` a view touches, or `None` when it is empty.
pub fn byte_range(t: &TensorArg) -> Option<(usize, usize)> {
    let (lo, hi) = t.extent()?;
    let sz = t.dtype.size() as i64;
    let base = t.ptr as i64;
    Some(((base + lo * sz) as usize, (base + hi * sz) as usize))
}

/// Whether the memory two views touch may overlap.
pub fn may_overlap(a: &TensorArg, b: &TensorArg) -> bool {
    match (byte_range(a), byte_range(b)) {
        (Some((a0, a1)), Some((b0, b1))) => a0 < b1 && b0 < a1,
        _ => false,
    }
}

/// Gather the view as f64 in row-major order.
///
/// # Safety
/// tensor.rs's module invariant for `t`.
pub unsafe fn read_f64(t: &TensorArg) -> Vec<f64> {
    if t.dtype != DType::F64 {
        // SAFETY: forwarded invariant; every non-f64 dtype is exact in f32
        // (floats) or goes through i64 (integers) without loss.
        return unsafe {
            if t.dtype.is_float() {
                t.read_f32().into_iter().map(f64::from).collect()
            } else {
                t.read_i64().into_iter().map(|v| v as f64).collect()
            }
        };
    }
    let base = t.ptr as *const f64;
    t.element_offsets()
        .into_iter()
        // SAFETY: the module invariant makes each offset a readable f64;
        // read_unaligned tolerates any alignment.
        .map(|o| unsafe { base.offset(o as isize).read_unaligned() })
        .collect()
}

/// Store f64 values (row-major, one per view element), rounding once to the
/// view's dtype (integers truncate and saturate; bool is non-zero).
///
/// # Safety
/// tensor.rs's module invariant for `t`; the memory must be writable.
pub unsafe fn write_f64(t: &TensorArg, values: &[f64]) {
    let offs = t.element_offsets();
    debug_assert_eq!(offs.len(), values.len());
    // SAFETY (for each arm): the invariant makes every offset a writable
    // element of the view's dtype; writes are unaligned-tolerant.
    unsafe {
        match t.dtype {
            DType::F64 => store(t.ptr, &offs, values, |v| v),
            DType::F32 => store(t.ptr, &offs, values, |v| v as f32),
            DType::F16 => store(t.ptr, &offs, values, f16::from_f64),
            DType::BF16 => store(t.ptr, &offs, values, bf16::from_f64),
            DType::I8 => store(t.ptr, &offs, values, |v| v as i8),
            DType::U8 => store(t.ptr, &offs, values, |v| v as u8),
            DType::I16 => store(t.ptr, &offs, values, |v| v as i16),
            DType::I32 => store(t.ptr, &offs, values, |v| v as i32),
            DType::I64 => store(t.ptr, &offs, values, |v| v as i64),
            DType::Bool => store(t.ptr, &offs, values, |v| u8::from(v != 0.0)),
        }
    }
}

/// # Safety
/// Every `base + off * size_of::<T>()` must be a writable `T`.
unsafe fn store<T: Copy>(base: *mut u8, offs: &[i64], values: &[f64], conv: impl Fn(f64) -> T) {
    let base = base as *mut T;
    for (&o, &v) in offs.iter().zip(values) {
        // SAFETY: the caller guarantees the element is writable.
        unsafe { base.offset(o as isize).write_unaligned(conv(v)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_rules() {
        assert_eq!(broadcast_shapes(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shapes(&[2, 3], &[4, 3]), None);
        assert_eq!(broadcast_shapes(&[0, 1], &[1, 7]), Some(vec![0, 7]));
    }

    #[test]
    fn expanded_view_repeats() {
        let mut buf = [1.0f32, 2.0, 3.0];
        let t = TensorArg::contiguous(buf.as_mut_ptr().cast(), DType::F32, &[3, 1]);
        let e = expand(&t, &[2, 3, 2]);
        // SAFETY: the expanded view only addresses buf's three elements.
        let v = unsafe { e.read_f32() };
        assert_eq!(v, vec![1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]);
    }

    #[test]
    fn dims_and_overlap() {
        assert_eq!(normalize_dim(-1, 3, "dim").unwrap(), 2);
        assert_eq!(normalize_dim(0, 0, "dim").unwrap(), 0);
        assert_eq!(normalize_dim(3, 3, "dim").unwrap_err().code, 161002);
        let mut buf = [0f32; 8];
        let a = TensorArg::contiguous(buf.as_mut_ptr().cast(), DType::F32, &[4]);
        let mut b = a.clone();
        b.offset = 4;
        assert!(!may_overlap(&a, &b));
        b.offset = 3;
        assert!(may_overlap(&a, &b));
    }

    #[test]
    fn f64_round_trip() {
        let mut buf = [0f64; 3];
        let t = TensorArg::contiguous(buf.as_mut_ptr().cast(), DType::F64, &[3]);
        let vals = [0.1f64, -2.0, 1e300];
        // SAFETY: three f64 elements.
        unsafe {
            write_f64(&t, &vals);
            assert_eq!(read_f64(&t), vals.to_vec());
        }
    }
}
