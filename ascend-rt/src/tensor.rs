//! Tensors: typed, strided views of device buffers, and their conversion
//! to and from `ndarray`.
//!
//! - [`Layout`]: shape, strides and offset, all in **elements**, with
//!   checked constructors. A layout is only ever paired with a buffer whose
//!   length covers its extent (`offset + Σ (shape[i]-1)·strides[i] + 1`
//!   elements, or nothing for an empty tensor), so no view can reach outside
//!   its buffer; that is checked in Rust before any descriptor is made.
//! - [`Tensor<T>`] owns a [`DeviceBuffer<T>`] and a layout.
//! - [`TensorRef<'a, T>`] is a read-only view (it borrows the buffer
//!   shared); [`TensorMut<'a, T>`] a writable one (it borrows the buffer
//!   mutably), so Rust's borrowing forbids writing a buffer that is being
//!   read, exactly as for slices. Views are made by [`Tensor::view`] /
//!   [`Tensor::view_mut`] and narrowed by `transpose`, `t`, `narrow`,
//!   `select_range` and `reshape` (the last only where the layout is
//!   contiguous: views never copy).
//! - The erased traits [`TensorArg`] and [`TensorArgMut`] let the operator
//!   layer take any of these as an argument; they declare the access on the
//!   stream (the buffer's tracker orders it) and hand out the base address.
//!
//! `ndarray` conversion: [`Tensor::from_array`] uploads any
//! `ArrayView<T, D>` (any memory order; it is copied in logical order), and
//! [`TensorRef::to_array`] / [`TensorRef::to_array_d`] download a view
//! (waiting for its queued writes) into an `Array<T, IxDyn>` or an array of
//! a requested dimension, for every [`DeviceRepr`] type.

use std::ffi::c_void;
use std::sync::Arc;

use ndarray::{Array, ArrayView, Dimension, IxDyn};

use crate::error::{Error, Result};
use crate::memory::{DType, DeviceBuffer, DeviceRepr};
use crate::stream::Stream;

/// The most dimensions a tensor may have (aclnn operators take up to 8).
pub const MAX_DIMS: usize = 8;

/// Storage format of a tensor, as `aclFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `ACL_FORMAT_ND`: plain N-dimensional (the default).
    #[default]
    Nd,
    /// `ACL_FORMAT_NCHW`.
    Nchw,
    /// `ACL_FORMAT_NHWC`.
    Nhwc,
    /// `ACL_FORMAT_FRACTAL_NZ`: the NPU's blocked matrix format.
    FractalNz,
}

impl Format {
    /// The `aclFormat` value.
    pub fn acl(self) -> ascend_sys::aclFormat {
        match self {
            Format::Nd => ascend_sys::ACL_FORMAT_ND,
            Format::Nchw => ascend_sys::ACL_FORMAT_NCHW,
            Format::Nhwc => ascend_sys::ACL_FORMAT_NHWC,
            Format::FractalNz => ascend_sys::ACL_FORMAT_FRACTAL_NZ,
        }
    }
}

/// Shape, strides and offset of a view, in elements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1].max(1));
    }
    strides
}

fn numel_of(api: &'static str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        acc.checked_mul(d).ok_or_else(|| {
            Error::invalid(api, format!("shape {shape:?} has more elements than fit"))
        })
    })
}

impl Layout {
    /// A contiguous row-major layout of `shape`.
    pub fn contiguous(shape: &[usize]) -> Result<Layout> {
        Layout::new(shape, &contiguous_strides(shape), 0)
    }

    /// A general strided layout; fails when it has too many dimensions or
    /// its extent overflows.
    pub fn new(shape: &[usize], strides: &[usize], offset: usize) -> Result<Layout> {
        const API: &str = "Layout::new";
        if shape.len() != strides.len() {
            return Err(Error::invalid(
                API,
                format!(
                    "shape {shape:?} has {} dimensions but strides {strides:?} has {}",
                    shape.len(),
                    strides.len()
                ),
            ));
        }
        if shape.len() > MAX_DIMS {
            return Err(Error::invalid(
                API,
                format!(
                    "{} dimensions; at most {MAX_DIMS} are supported",
                    shape.len()
                ),
            ));
        }
        numel_of(API, shape)?;
        let l = Layout {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
        };
        l.extent().ok_or_else(|| {
            Error::invalid(
                API,
                format!(
                    "shape {shape:?}, strides {strides:?}, offset {offset} overflow the address space"
                ),
            )
        })?;
        if l.extent_i64_overflows() {
            return Err(Error::invalid(API, "the layout does not fit in int64"));
        }
        Ok(l)
    }

    fn extent_i64_overflows(&self) -> bool {
        self.extent().is_none_or(|e| i64::try_from(e).is_err())
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// The offset of the first element, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Elements of the buffer the view reaches: one past its last element
    /// (0 for an empty view). `None` on overflow.
    pub fn extent(&self) -> Option<usize> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        let mut last = self.offset;
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            last = last.checked_add((d - 1).checked_mul(s)?)?;
        }
        last.checked_add(1)
    }

    /// Whether the elements are row-major and dense (offset aside).
    pub fn is_contiguous(&self) -> bool {
        self.shape
            .iter()
            .zip(&self.strides)
            .zip(contiguous_strides(&self.shape))
            .all(|((&d, &s), c)| d <= 1 || s == c)
    }

    fn check_dim(&self, api: &'static str, dim: isize) -> Result<usize> {
        let r = self.rank() as isize;
        let d = if dim < 0 { dim + r } else { dim };
        if d < 0 || d >= r {
            return Err(Error::invalid(
                api,
                format!("dimension {dim} is out of range for rank {r}"),
            ));
        }
        Ok(d as usize)
    }

    /// Swaps dimensions `a` and `b` (negative counts from the end).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Layout> {
        let a = self.check_dim("transpose", a)?;
        let b = self.check_dim("transpose", b)?;
        let mut l = self.clone();
        l.shape.swap(a, b);
        l.strides.swap(a, b);
        Ok(l)
    }

    /// Keeps `len` entries of dimension `dim` starting at `start`.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Layout> {
        let d = self.check_dim("narrow", dim)?;
        let size = self.shape[d];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::invalid(
                "narrow",
                format!(
                    "range {start}..{} is outside dimension {d} of size {size}",
                    start.saturating_add(len)
                ),
            ));
        }
        let mut l = self.clone();
        l.shape[d] = len;
        if len > 0 {
            l.offset += start * self.strides[d];
        }
        Ok(l)
    }

    /// The same elements with another shape; only for contiguous layouts.
    pub fn reshape(&self, shape: &[usize]) -> Result<Layout> {
        let n = numel_of("reshape", shape)?;
        if n != self.numel() {
            return Err(Error::invalid(
                "reshape",
                format!(
                    "cannot reshape {:?} ({} elements) to {shape:?} ({n} elements)",
                    self.shape,
                    self.numel()
                ),
            ));
        }
        if !self.is_contiguous() {
            return Err(Error::invalid(
                "reshape",
                format!(
                    "the view (shape {:?}, strides {:?}) is not contiguous; reshaping it would need a copy",
                    self.shape, self.strides
                ),
            ));
        }
        let mut l = Layout::contiguous(shape)?;
        l.offset = self.offset;
        Ok(l)
    }

    /// Fails unless the layout fits in a buffer of `len` elements.
    pub fn check_fits(&self, api: &'static str, len: usize) -> Result<()> {
        match self.extent() {
            Some(e) if e <= len => Ok(()),
            _ => Err(Error::invalid(
                api,
                format!(
                    "the view (shape {:?}, strides {:?}, offset {}) reaches element {} of a buffer of {len}",
                    self.shape,
                    self.strides,
                    self.offset,
                    self.extent()
                        .map_or("beyond usize".into(), |e| e.to_string())
                ),
            )),
        }
    }

    /// Buffer positions of the elements, in logical row-major order.
    fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.numel();
        let mut idx = vec![0usize; self.rank()];
        let mut pos = self.offset;
        let mut first = true;
        (0..n).map(move |_| {
            if first {
                first = false;
                return pos;
            }
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                pos += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                pos -= self.strides[d] * self.shape[d];
                idx[d] = 0;
            }
            pos
        })
    }
}

/// A tensor argument of an operator, of any element type: read-only use.
pub trait TensorArg {
    /// The element type.
    fn dtype(&self) -> DType;
    /// The layout of the view.
    fn layout(&self) -> &Layout;
    /// The format.
    fn format(&self) -> Format;
    /// Length of the underlying buffer, in elements.
    fn buffer_len(&self) -> usize;
    /// The device of the buffer.
    fn ordinal(&self) -> i32;
    /// Declares a read about to be queued on `stream` and returns the
    /// buffer's base address.
    fn track_read(&self, stream: &Arc<Stream>) -> Result<*const c_void>;
}

/// A tensor argument the operator writes.
pub trait TensorArgMut: TensorArg {
    /// Declares a write about to be queued on `stream` and returns the
    /// buffer's base address.
    fn track_write(&mut self, stream: &Arc<Stream>) -> Result<*mut c_void>;
}

/// A device tensor owning its buffer.
#[derive(Debug)]
pub struct Tensor<T: DeviceRepr> {
    buf: DeviceBuffer<T>,
    layout: Layout,
    format: Format,
}

/// A read-only view of a tensor or buffer.
#[derive(Debug, Clone)]
pub struct TensorRef<'a, T: DeviceRepr> {
    buf: &'a DeviceBuffer<T>,
    layout: Layout,
    format: Format,
}

/// A writable view of a tensor or buffer.
#[derive(Debug)]
pub struct TensorMut<'a, T: DeviceRepr> {
    buf: &'a mut DeviceBuffer<T>,
    layout: Layout,
    format: Format,
}

impl<T: DeviceRepr> Tensor<T> {
    /// A contiguous tensor of `shape` over `buf`, whose length must be the
    /// number of elements.
    pub fn from_buffer(buf: DeviceBuffer<T>, shape: &[usize]) -> Result<Tensor<T>> {
        let layout = Layout::contiguous(shape)?;
        if layout.numel() != buf.len() {
            return Err(Error::invalid(
                "Tensor::from_buffer",
                format!(
                    "shape {shape:?} has {} elements but the buffer holds {}",
                    layout.numel(),
                    buf.len()
                ),
            ));
        }
        Ok(Tensor {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// A tensor with any layout that fits in `buf`.
    pub fn from_buffer_strided(buf: DeviceBuffer<T>, layout: Layout) -> Result<Tensor<T>> {
        layout.check_fits("Tensor::from_buffer_strided", buf.len())?;
        Ok(Tensor {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// A contiguous tensor with unspecified contents from the context pool
    /// of `stream`, for work on `stream`.
    ///
    /// # Safety
    /// Write every element before reading it (as for
    /// [`DeviceBuffer::alloc_pooled`]).
    pub unsafe fn uninit(stream: &Arc<Stream>, shape: &[usize]) -> Result<Tensor<T>> {
        let layout = Layout::contiguous(shape)?;
        // SAFETY: the caller writes the contents before reading them.
        let buf = unsafe { DeviceBuffer::alloc_pooled(stream, layout.numel()) }?;
        Ok(Tensor {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// A contiguous zero tensor from the pool, zeroed on `stream`.
    pub fn zeros(stream: &Arc<Stream>, shape: &[usize]) -> Result<Tensor<T>> {
        let layout = Layout::contiguous(shape)?;
        let buf = DeviceBuffer::zeroed_pooled(stream, layout.numel())?;
        Ok(Tensor {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// Uploads an `ndarray` view (any dimension, any memory order) into a
    /// new contiguous tensor from the pool of `stream`'s context.
    pub fn from_array<D: Dimension>(
        stream: &Arc<Stream>,
        array: ArrayView<'_, T, D>,
    ) -> Result<Tensor<T>> {
        let shape = array.shape().to_vec();
        let layout = Layout::contiguous(&shape)?;
        let host: Vec<T> = match array.as_slice() {
            Some(s) => s.to_vec(),
            None => array.iter().copied().collect(),
        };
        // SAFETY: every element is written by the copy below before any
        // read can be queued.
        let mut buf = unsafe { DeviceBuffer::alloc_pooled(stream, host.len()) }?;
        buf.copy_from_host(&host)?;
        Ok(Tensor {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// Uploads host data of the given shape.
    pub fn from_slice(stream: &Arc<Stream>, data: &[T], shape: &[usize]) -> Result<Tensor<T>> {
        let layout = Layout::contiguous(shape)?;
        if layout.numel() != data.len() {
            return Err(Error::invalid(
                "Tensor::from_slice",
                format!(
                    "shape {shape:?} has {} elements but the data has {}",
                    layout.numel(),
                    data.len()
                ),
            ));
        }
        // SAFETY: every element is written by the copy below.
        let mut buf = unsafe { DeviceBuffer::alloc_pooled(stream, data.len()) }?;
        buf.copy_from_host(data)?;
        Ok(Tensor {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// Sets the format the descriptor announces (ND by default).
    pub fn with_format(mut self, format: Format) -> Tensor<T> {
        self.format = format;
        self
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// The buffer.
    pub fn buffer(&self) -> &DeviceBuffer<T> {
        &self.buf
    }

    /// The buffer and the layout.
    pub fn into_parts(self) -> (DeviceBuffer<T>, Layout) {
        (self.buf, self.layout)
    }

    /// A read-only view of the whole tensor.
    pub fn view(&self) -> TensorRef<'_, T> {
        TensorRef {
            buf: &self.buf,
            layout: self.layout.clone(),
            format: self.format,
        }
    }

    /// A writable view of the whole tensor.
    pub fn view_mut(&mut self) -> TensorMut<'_, T> {
        TensorMut {
            buf: &mut self.buf,
            layout: self.layout.clone(),
            format: self.format,
        }
    }

    /// Downloads the tensor (after its queued writes).
    pub fn to_array(&self) -> Result<Array<T, IxDyn>> {
        self.view().to_array()
    }

    /// Downloads the tensor into an array of dimension `D`.
    pub fn to_array_d<D: Dimension>(&self) -> Result<Array<T, D>> {
        self.view().to_array_d()
    }

    /// Downloads the tensor as a flat vector in logical order.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.view().to_vec()
    }
}

impl<'a, T: DeviceRepr> TensorRef<'a, T> {
    /// A view of a whole buffer with the given shape.
    pub fn new(buf: &'a DeviceBuffer<T>, shape: &[usize]) -> Result<Self> {
        Self::strided(buf, Layout::contiguous(shape)?)
    }

    /// A view of a buffer with any layout that fits in it.
    pub fn strided(buf: &'a DeviceBuffer<T>, layout: Layout) -> Result<Self> {
        layout.check_fits("TensorRef::strided", buf.len())?;
        Ok(TensorRef {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// The buffer viewed.
    pub fn buffer(&self) -> &'a DeviceBuffer<T> {
        self.buf
    }

    /// Swaps two dimensions.
    pub fn transpose(self, a: isize, b: isize) -> Result<Self> {
        let layout = self.layout.transpose(a, b)?;
        Ok(TensorRef { layout, ..self })
    }

    /// Swaps the last two dimensions (a matrix transpose).
    pub fn t(self) -> Result<Self> {
        if self.layout.rank() < 2 {
            return Err(Error::invalid(
                "TensorRef::t",
                format!("rank {} has no two dimensions to swap", self.layout.rank()),
            ));
        }
        self.transpose(-2, -1)
    }

    /// Keeps `len` entries of `dim` from `start`.
    pub fn narrow(self, dim: isize, start: usize, len: usize) -> Result<Self> {
        let layout = self.layout.narrow(dim, start, len)?;
        Ok(TensorRef { layout, ..self })
    }

    /// Another shape over the same contiguous elements.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let layout = self.layout.reshape(shape)?;
        Ok(TensorRef { layout, ..self })
    }

    /// Downloads the view, in logical order, after its queued writes.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let all = self.buf.to_vec()?;
        Ok(self.layout.positions().map(|p| all[p]).collect())
    }

    /// Downloads the view into an `Array<T, IxDyn>`.
    pub fn to_array(&self) -> Result<Array<T, IxDyn>> {
        let v = self.to_vec()?;
        Array::from_shape_vec(IxDyn(&self.layout.shape), v)
            .map_err(|e| Error::invalid("TensorRef::to_array", e.to_string()))
    }

    /// Downloads the view into an array of dimension `D`; fails when the
    /// rank differs.
    pub fn to_array_d<D: Dimension>(&self) -> Result<Array<T, D>> {
        let rank = self.layout.rank();
        self.to_array()?.into_dimensionality::<D>().map_err(|_| {
            Error::invalid(
                "TensorRef::to_array_d",
                format!(
                    "the tensor has rank {rank} but the array type has {:?} dimensions",
                    D::NDIM
                ),
            )
        })
    }
}

impl<'a, T: DeviceRepr> TensorMut<'a, T> {
    /// A writable view of a whole buffer with the given shape.
    pub fn new(buf: &'a mut DeviceBuffer<T>, shape: &[usize]) -> Result<Self> {
        Self::strided(buf, Layout::contiguous(shape)?)
    }

    /// A writable view with any layout that fits in the buffer.
    pub fn strided(buf: &'a mut DeviceBuffer<T>, layout: Layout) -> Result<Self> {
        layout.check_fits("TensorMut::strided", buf.len())?;
        Ok(TensorMut {
            buf,
            layout,
            format: Format::Nd,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// A read-only view of the same elements (borrowing this one).
    pub fn as_ref(&self) -> TensorRef<'_, T> {
        TensorRef {
            buf: self.buf,
            layout: self.layout.clone(),
            format: self.format,
        }
    }

    /// Swaps two dimensions.
    pub fn transpose(self, a: isize, b: isize) -> Result<Self> {
        let layout = self.layout.transpose(a, b)?;
        Ok(TensorMut { layout, ..self })
    }

    /// Keeps `len` entries of `dim` from `start`.
    pub fn narrow(self, dim: isize, start: usize, len: usize) -> Result<Self> {
        let layout = self.layout.narrow(dim, start, len)?;
        Ok(TensorMut { layout, ..self })
    }

    /// Another shape over the same contiguous elements.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let layout = self.layout.reshape(shape)?;
        Ok(TensorMut { layout, ..self })
    }
}

macro_rules! impl_arg {
    ($ty:ty, $($lt:lifetime)?) => {
        impl<$($lt,)? T: DeviceRepr> TensorArg for $ty {
            fn dtype(&self) -> DType {
                T::DTYPE
            }
            fn layout(&self) -> &Layout {
                &self.layout
            }
            fn format(&self) -> Format {
                self.format
            }
            fn buffer_len(&self) -> usize {
                self.buf.len()
            }
            fn ordinal(&self) -> i32 {
                self.buf.context().ordinal()
            }
            fn track_read(&self, stream: &Arc<Stream>) -> Result<*const c_void> {
                self.buf.track_read(stream)
            }
        }
    };
}
impl_arg!(Tensor<T>,);
impl_arg!(TensorRef<'a, T>, 'a);
impl_arg!(TensorMut<'a, T>, 'a);

impl<T: DeviceRepr> TensorArgMut for Tensor<T> {
    fn track_write(&mut self, stream: &Arc<Stream>) -> Result<*mut c_void> {
        self.buf.track_write(stream)
    }
}

impl<T: DeviceRepr> TensorArgMut for TensorMut<'_, T> {
    fn track_write(&mut self, stream: &Arc<Stream>) -> Result<*mut c_void> {
        self.buf.track_write(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_layouts() {
        let l = Layout::contiguous(&[2, 3, 4]).unwrap();
        assert_eq!(l.strides(), &[12, 4, 1]);
        assert_eq!(l.extent(), Some(24));
        assert!(l.is_contiguous());
        assert_eq!(Layout::contiguous(&[]).unwrap().extent(), Some(1));
        assert_eq!(Layout::contiguous(&[3, 0]).unwrap().extent(), Some(0));
    }

    #[test]
    fn transpose_and_narrow_follow_the_reference_examples() {
        // Transposed view of a [2,4] buffer: shape [4,2], strides [1,4].
        let t = Layout::contiguous(&[2, 4])
            .unwrap()
            .transpose(0, 1)
            .unwrap();
        assert_eq!((t.shape(), t.strides()), (&[4, 2][..], &[1, 4][..]));
        assert!(!t.is_contiguous());
        assert_eq!(t.extent(), Some(8));
        // Rows 2..8, cols 2..7 of a 10x10 buffer: shape (6,5), offset 22.
        let s = Layout::contiguous(&[10, 10])
            .unwrap()
            .narrow(0, 2, 6)
            .unwrap()
            .narrow(1, 2, 5)
            .unwrap();
        assert_eq!(s.shape(), &[6, 5]);
        assert_eq!(s.strides(), &[10, 1]);
        assert_eq!(s.offset(), 22);
        assert_eq!(s.extent(), Some(22 + 5 * 10 + 4 + 1));
        assert_eq!(
            s.positions().take(6).collect::<Vec<_>>(),
            vec![22, 23, 24, 25, 26, 32]
        );
    }

    #[test]
    fn bad_views_are_refused() {
        let l = Layout::contiguous(&[2, 3]).unwrap();
        assert!(l.narrow(1, 2, 2).is_err());
        assert!(l.transpose(0, 2).is_err());
        assert!(l.transpose(-3, 0).is_err());
        assert!(l.transpose(0, 1).unwrap().reshape(&[6]).is_err());
        assert!(l.reshape(&[4]).is_err());
        assert_eq!(l.reshape(&[3, 2]).unwrap().strides(), &[2, 1]);
        assert!(Layout::new(&[2], &[1, 1], 0).is_err());
        assert!(Layout::new(&[usize::MAX, 2], &[2, 1], 0).is_err());
        assert!(Layout::new(&[1; 9], &[1; 9], 0).is_err());
        let e = Layout::new(&[4], &[2], 1)
            .unwrap()
            .check_fits("t", 7)
            .unwrap_err();
        assert!(e.to_string().contains("reaches element 8"), "{e}");
        Layout::new(&[4], &[2], 1)
            .unwrap()
            .check_fits("t", 8)
            .unwrap();
    }
}
