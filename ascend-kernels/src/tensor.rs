//! Strided tensor arguments as the mock device hands them to a kernel, and
//! the element conversions every kernel shares.
//!
//! A [`TensorArg`] is the Rust form of an `aclTensor`: a base address, a
//! dtype, a view shape, per-dimension strides in elements and an element
//! offset. Kernels read their inputs with [`TensorArg::read_f32`] (or the
//! integer and bool forms), which gathers the view in row-major order and
//! widens f16/bf16 to f32; they write results with [`TensorArg::write_f32`],
//! which rounds once to the tensor's dtype on store. Reading every input
//! before writing any output makes in-place operation (output aliasing an
//! input) safe.
//!
//! Invariant the caller (the mock) upholds before calling any `unsafe` method:
//! every element the view addresses, `offset + Σ index[d] * strides[d]` for
//! each index inside `shape`, lies inside one live allocation of at least
//! that many elements of `dtype`, and no other thread writes it meanwhile.

use ascend_sys::dtype::ElementType;
use ascend_sys::{
    ACL_BF16, ACL_BOOL, ACL_DOUBLE, ACL_FLOAT, ACL_FLOAT16, ACL_INT8, ACL_INT16, ACL_INT32,
    ACL_INT64, ACL_UINT8, aclDataType,
};
use half::{bf16, f16};

/// Element types the kernels understand (a subset of `aclDataType`). Their
/// sizes, kinds and CANN names come from the one table of element types,
/// `ascend_sys::dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    I32,
    I64,
    Bool,
}

/// The table's entry of each [`DType`], in declaration order (looked up
/// once, at compile time).
const ENTRIES: [&ElementType; 10] = {
    let all = DType::ALL;
    let mut out = [&ascend_sys::dtype::ELEMENT_TYPES[0]; 10];
    let mut i = 0;
    while i < all.len() {
        out[i] = match ascend_sys::dtype::by_acl(all[i].acl()) {
            Some(e) => e,
            None => panic!("every kernel dtype is in ascend_sys::dtype"),
        };
        i += 1;
    }
    out
};

impl DType {
    /// Every kernel dtype, in declaration order.
    pub const ALL: [DType; 10] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::Bool,
    ];

    /// Its `aclDataType`.
    pub const fn acl(self) -> aclDataType {
        match self {
            DType::F32 => ACL_FLOAT,
            DType::F16 => ACL_FLOAT16,
            DType::BF16 => ACL_BF16,
            DType::F64 => ACL_DOUBLE,
            DType::I8 => ACL_INT8,
            DType::U8 => ACL_UINT8,
            DType::I16 => ACL_INT16,
            DType::I32 => ACL_INT32,
            DType::I64 => ACL_INT64,
            DType::Bool => ACL_BOOL,
        }
    }

    /// The kernel dtype of an `aclDataType`, if the kernels know it.
    pub fn from_acl(dt: aclDataType) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.acl() == dt)
    }

    /// The table's entry.
    fn entry(self) -> &'static ElementType {
        ENTRIES[self as usize]
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        self.entry().size()
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        self.entry().is_float()
    }

    /// The CANN name, for error messages (`DT_FLOAT16`, ...).
    pub fn name(self) -> &'static str {
        self.entry().name
    }
}

/// A strided view of device memory, as described by an `aclTensor`.
#[derive(Debug, Clone)]
pub struct TensorArg {
    /// Address of element 0 of the storage (the view starts `offset` elements later).
    pub ptr: *mut u8,
    pub dtype: DType,
    /// View shape; empty for a scalar (one element).
    pub shape: Vec<i64>,
    /// Stride of each view dimension, in elements.
    pub strides: Vec<i64>,
    /// Element offset of the view's first element from `ptr`.
    pub offset: i64,
}

// SAFETY: a TensorArg is a description of memory (address plus layout); it
// is handed to the stream worker that runs the kernel, and the mock
// guarantees the memory stays allocated and unshared for that run.
unsafe impl Send for TensorArg {}
// SAFETY: as above; shared references only read the description.
unsafe impl Sync for TensorArg {}

impl TensorArg {
    /// A contiguous row-major view of `shape` at `ptr`.
    pub fn contiguous(ptr: *mut u8, dtype: DType, shape: &[i64]) -> TensorArg {
        TensorArg {
            ptr,
            dtype,
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// Number of elements in the view (`usize::MAX` when the count does not
    /// fit, which no allocation can hold).
    pub fn numel(&self) -> usize {
        if self.shape.iter().any(|&d| d <= 0) {
            return 0;
        }
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .unwrap_or(usize::MAX)
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Size of dimension `d`, which may be negative (from the end).
    pub fn dim(&self, d: isize) -> Option<i64> {
        let r = self.rank() as isize;
        let d = if d < 0 { d + r } else { d };
        (0..r).contains(&d).then(|| self.shape[d as usize])
    }

    /// Whether the view is row-major contiguous (dimensions of size 1 may
    /// have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1i64;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n != 1 && s != expect {
                return false;
            }
            expect *= n;
        }
        true
    }

    /// Element offsets (from `ptr`) of every view element, in row-major order.
    pub fn element_offsets(&self) -> Vec<i64> {
        let n = self.numel();
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return out;
        }
        if self.is_contiguous() {
            out.extend((0..n as i64).map(|i| self.offset + i));
            return out;
        }
        let rank = self.rank();
        let mut idx = vec![0i64; rank];
        let mut pos = self.offset;
        for _ in 0..n {
            out.push(pos);
            for d in (0..rank).rev() {
                idx[d] += 1;
                pos += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                pos -= self.strides[d] * self.shape[d];
                idx[d] = 0;
            }
        }
        out
    }

    /// The smallest and one past the largest element offset the view
    /// touches, or `None` when it is empty. Used to check a view against its
    /// allocation before any kernel runs.
    ///
    /// The bounds are computed exactly and saturate at the `i64` range, so a
    /// view whose offsets overflow 64 bits reports an extent no allocation
    /// contains.
    pub fn extent(&self) -> Option<(i64, i64)> {
        if self.numel() == 0 {
            return None;
        }
        let mut lo = i128::from(self.offset);
        let mut hi = i128::from(self.offset);
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            let span = i128::from(n - 1) * i128::from(s);
            if span < 0 {
                lo += span;
            } else {
                hi += span;
            }
        }
        let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        Some((clamp(lo), clamp(hi + 1)))
    }

    /// Gather the view as f32 in row-major order (floats widened, integers
    /// and bools converted).
    ///
    /// # Safety
    /// See the module invariant.
    pub unsafe fn read_f32(&self) -> Vec<f32> {
        let offs = self.element_offsets();
        // SAFETY: the module invariant makes every offset a readable element.
        unsafe {
            match self.dtype {
                DType::F32 => gather::<f32, _>(self.ptr, &offs, |v| v),
                DType::F16 => gather::<f16, _>(self.ptr, &offs, f16::to_f32),
                DType::BF16 => gather::<bf16, _>(self.ptr, &offs, bf16::to_f32),
                DType::F64 => gather::<f64, _>(self.ptr, &offs, |v| v as f32),
                DType::I8 => gather::<i8, _>(self.ptr, &offs, f32::from),
                DType::U8 => gather::<u8, _>(self.ptr, &offs, f32::from),
                DType::I16 => gather::<i16, _>(self.ptr, &offs, f32::from),
                DType::I32 => gather::<i32, _>(self.ptr, &offs, |v| v as f32),
                DType::I64 => gather::<i64, _>(self.ptr, &offs, |v| v as f32),
                DType::Bool => gather::<u8, _>(self.ptr, &offs, |v| if v != 0 { 1.0 } else { 0.0 }),
            }
        }
    }

    /// Gather the view as i64 in row-major order (floats truncated).
    ///
    /// # Safety
    /// See the module invariant.
    pub unsafe fn read_i64(&self) -> Vec<i64> {
        let offs = self.element_offsets();
        // SAFETY: the module invariant makes every offset a readable element.
        unsafe {
            match self.dtype {
                DType::I64 => gather::<i64, _>(self.ptr, &offs, |v| v),
                DType::I32 => gather::<i32, _>(self.ptr, &offs, i64::from),
                DType::I16 => gather::<i16, _>(self.ptr, &offs, i64::from),
                DType::I8 => gather::<i8, _>(self.ptr, &offs, i64::from),
                DType::U8 | DType::Bool => gather::<u8, _>(self.ptr, &offs, i64::from),
                DType::F32 => gather::<f32, _>(self.ptr, &offs, |v| v as i64),
                DType::F16 => gather::<f16, _>(self.ptr, &offs, |v| v.to_f32() as i64),
                DType::BF16 => gather::<bf16, _>(self.ptr, &offs, |v| v.to_f32() as i64),
                DType::F64 => gather::<f64, _>(self.ptr, &offs, |v| v as i64),
            }
        }
    }

    /// Gather the view as bools (non-zero is true).
    ///
    /// # Safety
    /// See the module invariant.
    pub unsafe fn read_bool(&self) -> Vec<bool> {
        // SAFETY: forwarded invariant.
        unsafe { self.read_i64() }
            .into_iter()
            .map(|v| v != 0)
            .collect()
    }

    /// Scatter `values` (row-major, one per view element) into the view,
    /// rounding once to the view's dtype (round-to-nearest-even for f16/bf16,
    /// saturating for integers).
    ///
    /// # Safety
    /// See the module invariant; the memory must also be writable.
    pub unsafe fn write_f32(&self, values: &[f32]) {
        let offs = self.element_offsets();
        assert_eq!(
            values.len(),
            offs.len(),
            "write_f32: {} values for {} elements",
            values.len(),
            offs.len()
        );
        // SAFETY: the module invariant makes every offset a writable element.
        unsafe {
            match self.dtype {
                DType::F32 => scatter(self.ptr, &offs, values, |v| v),
                DType::F16 => scatter(self.ptr, &offs, values, f16::from_f32),
                DType::BF16 => scatter(self.ptr, &offs, values, bf16::from_f32),
                DType::F64 => scatter(self.ptr, &offs, values, f64::from),
                DType::I8 => scatter(self.ptr, &offs, values, |v| v as i8),
                DType::U8 => scatter(self.ptr, &offs, values, |v| v as u8),
                DType::I16 => scatter(self.ptr, &offs, values, |v| v as i16),
                DType::I32 => scatter(self.ptr, &offs, values, |v| v as i32),
                DType::I64 => scatter(self.ptr, &offs, values, |v| v as i64),
                DType::Bool => scatter(self.ptr, &offs, values, |v| u8::from(v != 0.0)),
            }
        }
    }

    /// Scatter integer `values` into the view (converted to its dtype).
    ///
    /// # Safety
    /// See the module invariant; the memory must also be writable.
    pub unsafe fn write_i64(&self, values: &[i64]) {
        let offs = self.element_offsets();
        assert_eq!(
            values.len(),
            offs.len(),
            "write_i64: {} values for {} elements",
            values.len(),
            offs.len()
        );
        // SAFETY: the module invariant makes every offset a writable element.
        unsafe {
            match self.dtype {
                DType::I64 => scatter(self.ptr, &offs, values, |v| v),
                DType::I32 => scatter(self.ptr, &offs, values, |v| v as i32),
                DType::I16 => scatter(self.ptr, &offs, values, |v| v as i16),
                DType::I8 => scatter(self.ptr, &offs, values, |v| v as i8),
                DType::U8 | DType::Bool => scatter(self.ptr, &offs, values, |v| v as u8),
                DType::F32 => scatter(self.ptr, &offs, values, |v| v as f32),
                DType::F16 => scatter(self.ptr, &offs, values, |v| f16::from_f32(v as f32)),
                DType::BF16 => scatter(self.ptr, &offs, values, |v| bf16::from_f32(v as f32)),
                DType::F64 => scatter(self.ptr, &offs, values, |v| v as f64),
            }
        }
    }
}

/// Row-major strides (in elements) of a contiguous tensor of `shape`
/// (saturating at `i64::MAX` for shapes whose size does not fit).
pub fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1].saturating_mul(shape[d + 1].max(1));
    }
    strides
}

/// # Safety
/// Every `base + off * size_of::<T>()` must be a readable, aligned-or-not `T`.
unsafe fn gather<T: Copy, U>(base: *mut u8, offs: &[i64], conv: impl Fn(T) -> U) -> Vec<U> {
    let base = base as *const T;
    offs.iter()
        // SAFETY: the caller guarantees the element is readable; read_unaligned
        // tolerates storage that is not aligned for T.
        .map(|&o| conv(unsafe { base.offset(o as isize).read_unaligned() }))
        .collect()
}

/// # Safety
/// Every `base + off * size_of::<T>()` must be a writable `T`.
unsafe fn scatter<T: Copy, V: Copy>(
    base: *mut u8,
    offs: &[i64],
    values: &[V],
    conv: impl Fn(V) -> T,
) {
    let base = base as *mut T;
    for (&o, &v) in offs.iter().zip(values) {
        // SAFETY: the caller guarantees the element is writable.
        unsafe { base.offset(o as isize).write_unaligned(conv(v)) };
    }
}

/// Why a kernel refused its arguments: an aclnn status code and CANN-style text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (aclnn status {code})")]
pub struct KernelError {
    /// `ACLNN_ERR_PARAM_NULLPTR` (161001) or `ACLNN_ERR_PARAM_INVALID` (161002) mostly.
    pub code: i32,
    pub message: String,
}

/// `ACLNN_ERR_PARAM_NULLPTR`.
pub const PARAM_NULLPTR: i32 = 161001;
/// `ACLNN_ERR_PARAM_INVALID`.
pub const PARAM_INVALID: i32 = 161002;

impl KernelError {
    /// A rejected parameter (`ACLNN_ERR_PARAM_INVALID`).
    pub fn invalid(message: impl Into<String>) -> KernelError {
        KernelError {
            code: PARAM_INVALID,
            message: message.into(),
        }
    }

    /// A required pointer that was null (`ACLNN_ERR_PARAM_NULLPTR`).
    pub fn null(what: &str) -> KernelError {
        KernelError {
            code: PARAM_NULLPTR,
            message: format!("{what} must not be null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_gather_and_rounding_store() {
        // A 3x4 row-major buffer; view its transpose (4x3).
        let mut buf: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let t = TensorArg {
            ptr: buf.as_mut_ptr() as *mut u8,
            dtype: DType::F32,
            shape: vec![4, 3],
            strides: vec![1, 4],
            offset: 0,
        };
        assert!(!t.is_contiguous());
        assert_eq!(t.extent(), Some((0, 12)));
        // SAFETY: the view stays inside `buf`.
        let v = unsafe { t.read_f32() };
        assert_eq!(v, vec![0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]);

        let mut h = vec![f16::ZERO; 2];
        let ht = TensorArg::contiguous(h.as_mut_ptr() as *mut u8, DType::F16, &[2]);
        // SAFETY: two f16 elements.
        unsafe { ht.write_f32(&[1.0 / 3.0, 65504.0]) };
        assert_eq!(h[0], f16::from_f32(1.0 / 3.0));
        assert_eq!(h[1], f16::MAX);
    }

    #[test]
    fn overflowing_layouts_saturate() {
        // Found by fuzzing: huge dimensions overflowed these computations.
        assert_eq!(contiguous_strides(&[2, i64::MAX, 3]), vec![i64::MAX, 3, 1]);
        let t = TensorArg {
            ptr: std::ptr::null_mut(),
            dtype: DType::F32,
            shape: vec![1 << 40, 1 << 40],
            strides: vec![i64::MAX, -i64::MAX],
            offset: 0,
        };
        assert_eq!(t.numel(), usize::MAX);
        assert_eq!(t.extent(), Some((i64::MIN, i64::MAX)));
        let empty = TensorArg {
            shape: vec![i64::MAX, i64::MAX, 0],
            ..t
        };
        assert_eq!(empty.numel(), 0);
        assert_eq!(empty.extent(), None);
    }

    #[test]
    fn offset_slice_extent() {
        // shape (6,5), strides (10,1), offset 22 picks rows 2..8, cols 2..7 of a 10x10.
        let t = TensorArg {
            ptr: std::ptr::null_mut(),
            dtype: DType::F32,
            shape: vec![6, 5],
            strides: vec![10, 1],
            offset: 22,
        };
        assert_eq!(t.extent(), Some((22, 22 + 5 * 10 + 4 + 1)));
        assert_eq!(t.element_offsets()[5], 32);
    }
}
