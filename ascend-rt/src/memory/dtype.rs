//! Element types that may live in device memory, and their `aclDataType`.
//!
//! Invariants: [`DeviceRepr`] is sealed and implemented only for plain
//! numeric types (`f32`, `f16`, `bf16`, `i8`, `i32`, `i64`, `u8`) for which
//! every bit pattern of their size is a valid value, which have no padding
//! and no drop glue. That is what lets buffers copy raw bytes between host
//! and device.

use ascend_sys::aclDataType;
use half::{bf16, f16};

/// An element type of device memory, named by AscendCL's `aclDataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `f32`, `ACL_FLOAT`.
    F32,
    /// `half::f16`, `ACL_FLOAT16`.
    F16,
    /// `half::bf16`, `ACL_BF16`.
    BF16,
    /// `i8`, `ACL_INT8`.
    I8,
    /// `i32`, `ACL_INT32`.
    I32,
    /// `i64`, `ACL_INT64`.
    I64,
    /// `u8`, `ACL_UINT8`.
    U8,
}

impl DType {
    /// Every supported type.
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::I32,
        DType::I64,
        DType::U8,
    ];

    /// The matching `aclDataType`.
    pub fn acl(self) -> aclDataType {
        match self {
            DType::F32 => ascend_sys::ACL_FLOAT,
            DType::F16 => ascend_sys::ACL_FLOAT16,
            DType::BF16 => ascend_sys::ACL_BF16,
            DType::I8 => ascend_sys::ACL_INT8,
            DType::I32 => ascend_sys::ACL_INT32,
            DType::I64 => ascend_sys::ACL_INT64,
            DType::U8 => ascend_sys::ACL_UINT8,
        }
    }

    /// The matching `HcclDataType` (HCCL numbers its types differently from
    /// `aclDataType`: FP16 is 3 there, BFP16 11), from the one table of
    /// element types. Every type here has one.
    pub fn hccl(self) -> ascend_sys::HcclDataType {
        self.entry()
            .hccl
            .expect("every DType has an HCCL type in ascend_sys::dtype")
    }

    /// The entry of `ascend_sys::dtype`'s table.
    fn entry(self) -> &'static ascend_sys::dtype::ElementType {
        ascend_sys::dtype::by_acl(self.acl()).expect("every DType is in ascend_sys::dtype")
    }

    /// The type for an `aclDataType`, if it is one we support.
    pub fn from_acl(dt: aclDataType) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.acl() == dt)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        self.entry().size()
    }

    /// The Rust name of the type.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A type whose values can be copied to and from device memory byte for
/// byte. Sealed: implemented for `f32`, `f16`, `bf16`, `i8`, `i32`, `i64`
/// and `u8`.
///
/// # Safety
/// Implementors have no padding, no drop glue, and every bit pattern of
/// their size is a valid value; `DTYPE.size()` equals their size.
pub unsafe trait DeviceRepr:
    sealed::Sealed + Copy + Default + Send + Sync + std::fmt::Debug + 'static
{
    /// The element type's AscendCL name.
    const DTYPE: DType;
}

macro_rules! device_repr {
    ($($t:ty => $d:ident),* $(,)?) => {
        $(
            impl sealed::Sealed for $t {}
            // SAFETY: a plain number: no padding, no drop glue, every bit
            // pattern valid; the size is checked by the unit test below.
            unsafe impl DeviceRepr for $t {
                const DTYPE: DType = DType::$d;
            }
        )*
    };
}

device_repr! {
    f32 => F32,
    f16 => F16,
    bf16 => BF16,
    i8 => I8,
    i32 => I32,
    i64 => I64,
    u8 => U8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: DeviceRepr>() {
        assert_eq!(T::DTYPE.size(), std::mem::size_of::<T>(), "{}", T::DTYPE);
        assert_eq!(DType::from_acl(T::DTYPE.acl()), Some(T::DTYPE));
    }

    #[test]
    fn sizes_and_acl_types_match() {
        check::<f32>();
        check::<f16>();
        check::<bf16>();
        check::<i8>();
        check::<i32>();
        check::<i64>();
        check::<u8>();
        assert_eq!(DType::BF16.acl(), 27);
        assert_eq!(DType::F16.acl(), 1);
        assert_eq!(DType::I64.acl(), 9);
        assert_eq!(DType::from_acl(ascend_sys::ACL_DOUBLE), None);
    }

    #[test]
    fn hccl_types_follow_hccl_numbering() {
        assert_eq!(DType::F32.hccl(), 4);
        assert_eq!(DType::F16.hccl(), 3);
        assert_eq!(DType::BF16.hccl(), 11);
        assert_eq!(DType::I8.hccl(), 0);
        assert_eq!(DType::I32.hccl(), 2);
        assert_eq!(DType::I64.hccl(), 5);
        assert_eq!(DType::U8.hccl(), 7);
        let mut seen: Vec<_> = DType::ALL.iter().map(|d| d.hccl()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), DType::ALL.len());
    }
}
