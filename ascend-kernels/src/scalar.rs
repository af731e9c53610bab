//! The value of an `aclScalar`: a single host-side number with its dtype.
//!
//! The mock builds a [`Scalar`] from the host pointer and `aclDataType`
//! given to `aclCreateScalar` (it maps the data type to a [`DType`] first and
//! refuses types the kernels do not know). A `Scalar` always holds a value of
//! exactly the dtype it reports, so operators can apply CANN's
//! type-promotion rules to it (a float scalar turns an integer tensor into a
//! float result; an integer scalar never widens a float tensor).

use half::{bf16, f16};

use crate::tensor::{DType, KernelError};

/// One host value of a known dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    F32(f32),
    F16(f16),
    BF16(bf16),
    F64(f64),
    I8(i8),
    U8(u8),
    I16(i16),
    I32(i32),
    I64(i64),
    Bool(bool),
}

impl Scalar {
    /// Read a scalar of `dtype` from host memory.
    ///
    /// # Safety
    /// `ptr` must point to `dtype.size()` readable bytes (any alignment), or
    /// be null (which is refused with `ACLNN_ERR_PARAM_NULLPTR`).
    pub unsafe fn from_raw(ptr: *const u8, dtype: DType) -> Result<Scalar, KernelError> {
        if ptr.is_null() {
            return Err(KernelError::null("scalar value"));
        }
        // SAFETY: the caller guarantees `dtype.size()` readable bytes at
        // `ptr`; every read below is of exactly that size and unaligned.
        let s = unsafe {
            match dtype {
                DType::F32 => Scalar::F32(ptr.cast::<f32>().read_unaligned()),
                DType::F16 => Scalar::F16(ptr.cast::<f16>().read_unaligned()),
                DType::BF16 => Scalar::BF16(ptr.cast::<bf16>().read_unaligned()),
                DType::F64 => Scalar::F64(ptr.cast::<f64>().read_unaligned()),
                DType::I8 => Scalar::I8(ptr.cast::<i8>().read_unaligned()),
                DType::U8 => Scalar::U8(ptr.read_unaligned()),
                DType::I16 => Scalar::I16(ptr.cast::<i16>().read_unaligned()),
                DType::I32 => Scalar::I32(ptr.cast::<i32>().read_unaligned()),
                DType::I64 => Scalar::I64(ptr.cast::<i64>().read_unaligned()),
                // A C `bool` byte: any non-zero byte is taken as true rather
                // than materialising an invalid Rust bool.
                DType::Bool => Scalar::Bool(ptr.read_unaligned() != 0),
            }
        };
        Ok(s)
    }

    /// The dtype of the held value.
    pub fn dtype(&self) -> DType {
        match self {
            Scalar::F32(_) => DType::F32,
            Scalar::F16(_) => DType::F16,
            Scalar::BF16(_) => DType::BF16,
            Scalar::F64(_) => DType::F64,
            Scalar::I8(_) => DType::I8,
            Scalar::U8(_) => DType::U8,
            Scalar::I16(_) => DType::I16,
            Scalar::I32(_) => DType::I32,
            Scalar::I64(_) => DType::I64,
            Scalar::Bool(_) => DType::Bool,
        }
    }

    /// The value as f64 (exact for every variant except i64 beyond 2^53).
    pub fn as_f64(&self) -> f64 {
        match *self {
            Scalar::F32(v) => f64::from(v),
            Scalar::F16(v) => f64::from(v.to_f32()),
            Scalar::BF16(v) => f64::from(v.to_f32()),
            Scalar::F64(v) => v,
            Scalar::I8(v) => f64::from(v),
            Scalar::U8(v) => f64::from(v),
            Scalar::I16(v) => f64::from(v),
            Scalar::I32(v) => f64::from(v),
            Scalar::I64(v) => v as f64,
            Scalar::Bool(v) => f64::from(u8::from(v)),
        }
    }

    /// The value as i64 (floats truncated toward zero, saturating).
    pub fn as_i64(&self) -> i64 {
        match *self {
            Scalar::I8(v) => i64::from(v),
            Scalar::U8(v) => i64::from(v),
            Scalar::I16(v) => i64::from(v),
            Scalar::I32(v) => i64::from(v),
            Scalar::I64(v) => v,
            Scalar::Bool(v) => i64::from(v),
            _ => self.as_f64() as i64,
        }
    }

    /// Whether the value is integral (true for integer and bool scalars, and
    /// for floats without a fractional part).
    pub fn is_integral_value(&self) -> bool {
        !self.dtype().is_float() || self.as_f64().fract() == 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_dtype() {
        let v = 2.5f32;
        // SAFETY: pointers to live locals of the stated dtype.
        unsafe {
            let s = Scalar::from_raw((&v as *const f32).cast(), DType::F32).unwrap();
            assert_eq!(s, Scalar::F32(2.5));
            assert_eq!(s.as_f64(), 2.5);
            let h = bf16::from_f32(-3.0);
            let s = Scalar::from_raw((&h as *const bf16).cast(), DType::BF16).unwrap();
            assert_eq!(s.as_f64(), -3.0);
            assert_eq!(s.dtype(), DType::BF16);
            let i = -7i64;
            let s = Scalar::from_raw((&i as *const i64).cast(), DType::I64).unwrap();
            assert_eq!(s.as_i64(), -7);
            assert!(s.is_integral_value());
            let b = 5u8;
            let s = Scalar::from_raw(&b, DType::Bool).unwrap();
            assert_eq!(s, Scalar::Bool(true));
            assert_eq!(s.as_f64(), 1.0);
            let hf = f16::from_f32(0.5);
            let s = Scalar::from_raw((&hf as *const f16).cast(), DType::F16).unwrap();
            assert!(!s.is_integral_value());
        }
    }

    #[test]
    fn null_is_refused() {
        // SAFETY: a null pointer is checked before any read.
        let e = unsafe { Scalar::from_raw(std::ptr::null(), DType::F32) }.unwrap_err();
        assert_eq!(e.code, crate::tensor::PARAM_NULLPTR);
    }
}
