//! The one table of element types: each `aclDataType` with its CANN name,
//! its width, what kind of number it is, and the `HcclDataType` HCCL gives
//! the same type (HCCL numbers its types differently: FP16 is 3 there, 1
//! in AscendCL).
//!
//! Every crate that needs a fact about an element type (the runtime's
//! typed buffers, the mock's `aclDataTypeSize`, its descriptors and its
//! HCCL reductions, the kernels' dtypes) reads it here, so the facts are
//! written once.
//!
//! Invariants: `acl` values are unique; `hccl` values, where present, are
//! unique; `bits` is the storage width of one element (sub-byte types have
//! fewer than 8 bits; their [`size_of`] is 0, as `aclDataTypeSize` reports).

use crate::types::*;

/// What kind of number an element type holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// IEEE or CANN floating point (f16, bf16, f32, f64, the 8-, 6- and
    /// 4-bit float formats).
    Float,
    /// Two's-complement signed integer.
    Signed,
    /// Unsigned integer.
    Unsigned,
    /// A byte holding 0 or 1.
    Bool,
    /// A pair of floats.
    Complex,
    /// Strings, which have no fixed element size.
    String,
}

/// One element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElementType {
    /// Its `aclDataType` value.
    pub acl: aclDataType,
    /// CANN's name for it in messages (`DT_FLOAT`, ...).
    pub name: &'static str,
    /// Bits per element (0 for strings).
    pub bits: u32,
    /// What kind of number it is.
    pub kind: Kind,
    /// The `HcclDataType` of the same type, if HCCL has one.
    pub hccl: Option<HcclDataType>,
}

impl ElementType {
    /// Bytes per element as `aclDataTypeSize` reports it: 0 for strings
    /// and sub-byte types.
    pub const fn size(&self) -> usize {
        if self.bits % 8 == 0 {
            (self.bits / 8) as usize
        } else {
            0
        }
    }

    /// Whether it is a floating-point type.
    pub const fn is_float(&self) -> bool {
        matches!(self.kind, Kind::Float)
    }
}

macro_rules! element_types {
    ($($acl:ident $name:literal $bits:literal $kind:ident $($hccl:ident)?;)*) => {
        /// Every element type our headers declare, in `aclDataType` order.
        pub const ELEMENT_TYPES: &[ElementType] = &[$(
            ElementType {
                acl: $acl,
                name: $name,
                bits: $bits,
                kind: Kind::$kind,
                hccl: element_types!(@hccl $($hccl)?),
            },
        )*];
    };
    (@hccl) => { None };
    (@hccl $h:ident) => { Some($h) };
}

element_types! {
    ACL_FLOAT "DT_FLOAT" 32 Float HCCL_DATA_TYPE_FP32;
    ACL_FLOAT16 "DT_FLOAT16" 16 Float HCCL_DATA_TYPE_FP16;
    ACL_INT8 "DT_INT8" 8 Signed HCCL_DATA_TYPE_INT8;
    ACL_INT32 "DT_INT32" 32 Signed HCCL_DATA_TYPE_INT32;
    ACL_UINT8 "DT_UINT8" 8 Unsigned HCCL_DATA_TYPE_UINT8;
    ACL_INT16 "DT_INT16" 16 Signed HCCL_DATA_TYPE_INT16;
    ACL_UINT16 "DT_UINT16" 16 Unsigned HCCL_DATA_TYPE_UINT16;
    ACL_UINT32 "DT_UINT32" 32 Unsigned HCCL_DATA_TYPE_UINT32;
    ACL_INT64 "DT_INT64" 64 Signed HCCL_DATA_TYPE_INT64;
    ACL_UINT64 "DT_UINT64" 64 Unsigned HCCL_DATA_TYPE_UINT64;
    ACL_DOUBLE "DT_DOUBLE" 64 Float HCCL_DATA_TYPE_FP64;
    ACL_BOOL "DT_BOOL" 8 Bool;
    ACL_STRING "DT_STRING" 0 String;
    ACL_COMPLEX64 "DT_COMPLEX64" 64 Complex;
    ACL_COMPLEX128 "DT_COMPLEX128" 128 Complex;
    ACL_BF16 "DT_BF16" 16 Float HCCL_DATA_TYPE_BFP16;
    ACL_INT4 "DT_INT4" 4 Signed;
    ACL_UINT1 "DT_UINT1" 1 Unsigned;
    ACL_COMPLEX32 "DT_COMPLEX32" 32 Complex;
    ACL_HIFLOAT8 "DT_HIFLOAT8" 8 Float HCCL_DATA_TYPE_HIF8;
    ACL_FLOAT8_E5M2 "DT_FLOAT8_E5M2" 8 Float HCCL_DATA_TYPE_FP8E5M2;
    ACL_FLOAT8_E4M3FN "DT_FLOAT8_E4M3FN" 8 Float HCCL_DATA_TYPE_FP8E4M3;
    ACL_FLOAT8_E8M0 "DT_FLOAT8_E8M0" 8 Float HCCL_DATA_TYPE_FP8E8M0;
    ACL_FLOAT6_E3M2 "DT_FLOAT6_E3M2" 6 Float;
    ACL_FLOAT6_E2M3 "DT_FLOAT6_E2M3" 6 Float;
    ACL_FLOAT4_E2M1 "DT_FLOAT4_E2M1" 4 Float;
    ACL_FLOAT4_E1M2 "DT_FLOAT4_E1M2" 4 Float;
}

/// The element type of an `aclDataType` value, if it is one. A `const fn`,
/// so that crates can build their own constant lookups from the table.
pub const fn by_acl(dt: aclDataType) -> Option<&'static ElementType> {
    let mut i = 0;
    while i < ELEMENT_TYPES.len() {
        if ELEMENT_TYPES[i].acl == dt {
            return Some(&ELEMENT_TYPES[i]);
        }
        i += 1;
    }
    None
}

/// The element type of an `HcclDataType` value, if AscendCL has it too.
pub const fn by_hccl(dt: HcclDataType) -> Option<&'static ElementType> {
    let mut i = 0;
    while i < ELEMENT_TYPES.len() {
        if let Some(h) = ELEMENT_TYPES[i].hccl {
            if h == dt {
                return Some(&ELEMENT_TYPES[i]);
            }
        }
        i += 1;
    }
    None
}

/// `aclDataTypeSize`: bytes per element, 0 for undefined, string and
/// sub-byte types.
pub const fn size_of(dt: aclDataType) -> usize {
    match by_acl(dt) {
        Some(t) => t.size(),
        None => 0,
    }
}

/// CANN's name of an `aclDataType` (`DT_FLOAT`), or `DT_UNDEFINED`.
pub const fn name_of(dt: aclDataType) -> &'static str {
    match by_acl(dt) {
        Some(t) => t.name,
        None => "DT_UNDEFINED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_unique_and_sizes_are_whole_bytes_or_zero() {
        for (i, a) in ELEMENT_TYPES.iter().enumerate() {
            for b in &ELEMENT_TYPES[i + 1..] {
                assert_ne!(a.acl, b.acl, "{} and {}", a.name, b.name);
                if a.hccl.is_some() {
                    assert_ne!(a.hccl, b.hccl, "{} and {}", a.name, b.name);
                }
            }
        }
        assert_eq!(size_of(ACL_FLOAT), 4);
        assert_eq!(size_of(ACL_BF16), 2);
        assert_eq!(size_of(ACL_COMPLEX128), 16);
        assert_eq!(size_of(ACL_INT4), 0);
        assert_eq!(size_of(ACL_STRING), 0);
        assert_eq!(size_of(ACL_DT_UNDEFINED), 0);
        assert_eq!(by_hccl(HCCL_DATA_TYPE_FP16).unwrap().acl, ACL_FLOAT16);
        assert_eq!(by_hccl(HCCL_DATA_TYPE_INT128), None);
        assert_eq!(name_of(ACL_BF16), "DT_BF16");
    }
}
