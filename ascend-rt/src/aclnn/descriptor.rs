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
use crate::result;
use crate::tensor::{Format, Layout};

fn nnopbase() -> Result<&'static ascend_sys::pfn::NnOpBase> {
    Ok(&crate::backend::api()?.nnopbase)
}

/// Calls `destroy` (the `aclDestroy*` function `api`, resolved by
/// `resolve`) on `*raw` once and nulls it; nothing when already null.
fn release<T>(
    raw: &mut *mut T,
    api: &'static str,
    resolve: impl FnOnce(
        &ascend_sys::pfn::NnOpBase,
    ) -> Result<unsafe extern "C" fn(*const T) -> ascend_sys::aclnnStatus>,
) -> Result<()> {
    if raw.is_null() {
        return Ok(());
    }
    let p = std::mem::replace(raw, std::ptr::null_mut());
    let f = resolve(nnopbase()?)?;
    // SAFETY: `p` is the owner's object from its aclCreate* call, live until
    // now; `raw` is null from here on, so it is destroyed only this once.
    result::check_aclnn(api, unsafe { f(p.cast_const()) })
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
        release(&mut self.raw, "aclDestroyTensor", |n| {
            Ok(n.aclDestroyTensor()?)
        })
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
        let create = nnopbase()?.aclCreateTensor()?;
        // SAFETY: the arrays live across the call and their lengths are the
        // counts passed; `data` is null or the base of a device buffer of
        // `buffer_len` elements that the layout fits in (checked above).
        let raw = unsafe {
            create(
                dims.as_ptr(),
                dims.len() as u64,
                dtype.acl(),
                strides.as_ptr(),
                offset,
                format.acl(),
                storage.as_ptr(),
                storage.len() as u64,
                data,
            )
        };
        if raw.is_null() {
            return Err(result::null_result(API));
        }
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
        release(&mut self.raw, "aclDestroyScalar", |n| {
            Ok(n.aclDestroyScalar()?)
        })
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
        let create = nnopbase()?.aclCreateScalar()?;
        // SAFETY: `bytes` holds a value of `dtype` at its start and lives in
        // this struct, as long as the descriptor.
        let raw = unsafe { create(bytes.as_mut_ptr().cast(), dtype.acl()) };
        if raw.is_null() {
            return Err(result::null_result(API));
        }
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
        release(&mut self.raw, "aclDestroyIntArray", |n| {
            Ok(n.aclDestroyIntArray()?)
        })
    }

    /// An array holding `values`.
    pub fn new(values: &[i64]) -> Result<AclIntArray> {
        let create = nnopbase()?.aclCreateIntArray()?;
        // SAFETY: `values` is a live slice of `len` elements.
        let raw = unsafe { create(values.as_ptr(), values.len() as u64) };
        if raw.is_null() {
            return Err(result::null_result("aclCreateIntArray"));
        }
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
        release(&mut self.raw, "aclDestroyTensorList", |n| {
            Ok(n.aclDestroyTensorList()?)
        })
    }

    /// A list taking ownership of `tensors`. On failure the tensors are
    /// destroyed individually.
    pub fn new(tensors: Vec<AclTensor>) -> Result<AclTensorList> {
        let create = nnopbase()?.aclCreateTensorList()?;
        let ptrs: Vec<*const aclTensor> = tensors.iter().map(|t| t.raw.cast_const()).collect();
        // SAFETY: `ptrs` holds `len` live descriptors; on success the list
        // owns them, so they are released from their owners below.
        let raw = unsafe { create(ptrs.as_ptr(), ptrs.len() as u64) };
        if raw.is_null() {
            // `tensors` still owns them and destroys them on return.
            return Err(result::null_result("aclCreateTensorList"));
        }
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
