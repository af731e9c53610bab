//! RAII owners of the aclnn meta objects: [`AclTensor`], [`AclScalar`],
//! [`AclIntArray`] and [`AclTensorList`].
//!
//! Invariants:
//! - Each owner holds one object made by the matching `aclCreate*` call
//!   and destroys it exactly once: in `destroy`, which returns the destroy
//!   call's error, or else in `Drop`. `raw` is null only once destroyed.
//! - A tensor list owns its member tensors (aclnn's rule): building one
//!   consumes the [`AclTensor`]s, which are then destroyed only through
//!   `aclDestroyTensorList`, never one by one.
//! - A scalar keeps its host value alive as long as the descriptor (whether
//!   `aclCreateScalar` copies it is not documented).
//! - A destroy call that fails in `Drop` is ignored: it cannot be returned,
//!   it leaves no device memory behind, and no descriptor has a context to
//!   record it in. Callers that want to see it call `destroy` (the operator
//!   launch does, and records it in the stream's context).

use std::ffi::c_void;

use ascend_sys::{aclIntArray, aclScalar, aclTensor, aclTensorList};

use crate::error::{Error, Result};
use crate::memory::DType;
use crate::result::nnopbase;
use crate::tensor::{Format, Layout};

/// Destroys `*raw` once with `destroy` (the matching `aclDestroy*` call
/// of the result layer) and nulls it; nothing when already null.
fn release<T>(raw: &mut *mut T, destroy: unsafe fn(*const T) -> Result<()>) -> Result<()> {
    if raw.is_null() {
        return Ok(());
    }
    let p = std::mem::replace(raw, std::ptr::null_mut());
    // SAFETY: `p` is the owner's object from its aclCreate* call, live until
    // now; `raw` is null from here on, so it is destroyed only this once.
    unsafe { destroy(p.cast_const()) }
}

fn to_i64(api: &'static str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(api, format!("{v} does not fit in int64")))
}

/// An `aclTensor` descriptor.
#[derive(Debug)]
pub struct AclTensor {
    raw: *mut aclTensor,
}

impl AclTensor {
    /// Destroys the object now (`aclDestroyTensor`), returning that call's error.
    pub fn destroy(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        release(&mut self.raw, nnopbase::destroy_tensor)
    }

    /// Describes `layout` over the buffer at `data` of `buffer_len`
    /// elements of `dtype`. The layout must fit in the buffer (checked).
    ///
    /// # Safety
    /// `data` is null or the base of a device allocation of at least
    /// `buffer_len` elements of `dtype` that stays allocated for as long as
    /// an operator may use the descriptor.
    pub unsafe fn new(
        layout: &Layout,
        dtype: DType,
        format: Format,
        data: *mut c_void,
        buffer_len: usize,
    ) -> Result<AclTensor> {
        const API: &str = "aclCreateTensor";
        layout.check_fits(API, buffer_len)?;
        let dims = layout
            .shape()
            .iter()
            .map(|&d| to_i64(API, d))
            .collect::<Result<Vec<_>>>()?;
        let strides = layout
            .strides()
            .iter()
            .map(|&d| to_i64(API, d))
            .collect::<Result<Vec<_>>>()?;
        // A dense view of the whole buffer describes its storage with the
        // view's shape (as CANN's examples do); any other view describes
        // the storage as the flat buffer it lives in.
        let storage =
            if layout.is_contiguous() && layout.offset() == 0 && layout.numel() == buffer_len {
                dims.clone()
            } else {
                vec![to_i64(API, buffer_len)?]
            };
        let offset = to_i64(API, layout.offset())?;
        // SAFETY: `data` is null or the base of a device buffer of
        // `buffer_len` elements (the storage described) that stays allocated
        // while the descriptor is used (caller), and the layout fits in it
        // (checked above).
        let raw = unsafe {
            nnopbase::create_tensor(
                &dims,
                dtype.acl(),
                &strides,
                offset,
                format.acl(),
                &storage,
                data,
            )
        }?;
        Ok(AclTensor { raw })
    }

    /// The raw descriptor.
    pub fn as_ptr(&self) -> *mut aclTensor {
        self.raw
    }

    fn into_raw(self) -> *mut aclTensor {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }
}

impl Drop for AclTensor {
    fn drop(&mut self) {
        // A failure cannot be returned from Drop (see the module docs).
        let _ = self.release();
    }
}

/// An `aclScalar`, keeping its host value alive.
#[derive(Debug)]
pub struct AclScalar {
    raw: *mut aclScalar,
    _value: Box<[u8; 8]>,
}

impl AclScalar {
    /// Destroys the object now (`aclDestroyScalar`), returning that call's error.
    pub fn destroy(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        release(&mut self.raw, nnopbase::destroy_scalar)
    }

    /// A scalar of `dtype` holding `value` (converted: f32, f16, bf16 round
    /// to nearest; integer types must hold it exactly).
    pub fn new(value: f64, dtype: DType) -> Result<AclScalar> {
        const API: &str = "aclCreateScalar";
        let mut bytes = Box::new([0u8; 8]);
        let exact_int = |lo: f64, hi: f64| -> Result<()> {
            if value.fract() == 0.0 && value >= lo && value <= hi {
                Ok(())
            } else {
                Err(Error::invalid(
                    API,
                    format!("{value} is not a value of {dtype}"),
                ))
            }
        };
        match dtype {
            DType::F32 => bytes[..4].copy_from_slice(&(value as f32).to_ne_bytes()),
            DType::F16 => bytes[..2].copy_from_slice(&half::f16::from_f64(value).to_ne_bytes()),
            DType::BF16 => bytes[..2].copy_from_slice(&half::bf16::from_f64(value).to_ne_bytes()),
            DType::I8 => {
                exact_int(i8::MIN as f64, i8::MAX as f64)?;
                bytes[0] = (value as i8) as u8;
            }
            DType::U8 => {
                exact_int(0.0, u8::MAX as f64)?;
                bytes[0] = value as u8;
            }
            DType::I32 => {
                exact_int(i32::MIN as f64, i32::MAX as f64)?;
                bytes[..4].copy_from_slice(&(value as i32).to_ne_bytes());
            }
            DType::I64 => {
                exact_int(-(2f64.powi(63)), 2f64.powi(63) - 1024.0)?;
                bytes.copy_from_slice(&(value as i64).to_ne_bytes());
            }
        }
        // SAFETY: `bytes` holds a value of `dtype` at its start and lives in
        // this struct, unchanged, as long as the descriptor.
        let raw = unsafe { nnopbase::create_scalar(bytes.as_mut_ptr().cast(), dtype.acl()) }?;
        Ok(AclScalar { raw, _value: bytes })
    }

    /// The raw descriptor.
    pub fn as_ptr(&self) -> *mut aclScalar {
        self.raw
    }
}

impl Drop for AclScalar {
    fn drop(&mut self) {
        // A failure cannot be returned from Drop (see the module docs).
        let _ = self.release();
    }
}

/// An `aclIntArray` (host values, copied in).
#[derive(Debug)]
pub struct AclIntArray {
    raw: *mut aclIntArray,
}

impl AclIntArray {
    /// Destroys the object now (`aclDestroyIntArray`), returning that call's error.
    pub fn destroy(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        release(&mut self.raw, nnopbase::destroy_int_array)
    }

    /// An array holding `values`.
    pub fn new(values: &[i64]) -> Result<AclIntArray> {
        let raw = nnopbase::create_int_array(values)?;
        Ok(AclIntArray { raw })
    }

    /// The raw descriptor.
    pub fn as_ptr(&self) -> *mut aclIntArray {
        self.raw
    }
}

impl Drop for AclIntArray {
    fn drop(&mut self) {
        // A failure cannot be returned from Drop (see the module docs).
        let _ = self.release();
    }
}

/// An `aclTensorList`, owning its member tensors.
#[derive(Debug)]
pub struct AclTensorList {
    raw: *mut aclTensorList,
    members: Vec<*mut aclTensor>,
}

impl AclTensorList {
    /// Destroys the object now (`aclDestroyTensorList`), returning that call's error.
    pub fn destroy(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        // Destroying the list also destroys the members, which nothing else
        // owns.
        release(&mut self.raw, nnopbase::destroy_tensor_list)
    }

    /// A list taking ownership of `tensors`. On failure the tensors are
    /// destroyed individually.
    pub fn new(tensors: Vec<AclTensor>) -> Result<AclTensorList> {
        let ptrs: Vec<*const aclTensor> = tensors.iter().map(|t| t.raw.cast_const()).collect();
        // SAFETY: `ptrs` holds live descriptors that `tensors` owns and no
        // list does; on success the list owns them, so they are released
        // from their owners below; on failure `tensors` still owns them and
        // destroys them on return.
        let raw = unsafe { nnopbase::create_tensor_list(&ptrs) }?;
        let members = tensors.into_iter().map(AclTensor::into_raw).collect();
        Ok(AclTensorList { raw, members })
    }

    /// The raw list.
    pub fn as_ptr(&self) -> *mut aclTensorList {
        self.raw
    }

    /// The raw descriptor of member `i`.
    pub fn member(&self, i: usize) -> Option<*mut aclTensor> {
        self.members.get(i).copied()
    }
}

impl Drop for AclTensorList {
    fn drop(&mut self) {
        // A failure cannot be returned from Drop (see the module docs).
        let _ = self.release();
    }
}
