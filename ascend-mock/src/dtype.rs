//! Element sizes of AscendCL data types (`aclDataTypeSize`), shared by the
//! exports, the runtime's leak lines and the operator families.
//!
//! Layer: a leaf; it names no other module of the crate.
//!
//! Invariant: the size is 0 exactly for the types without a whole-byte
//! element (undefined, string and sub-byte types).

use ascend_sys::*;

/// The size table behind `aclDataTypeSize`.
pub fn data_type_size(dt: aclDataType) -> usize {
    match dt {
        ACL_INT8 | ACL_UINT8 | ACL_BOOL | ACL_HIFLOAT8 | ACL_FLOAT8_E5M2 | ACL_FLOAT8_E4M3FN
        | ACL_FLOAT8_E8M0 => 1,
        ACL_FLOAT16 | ACL_INT16 | ACL_UINT16 | ACL_BF16 => 2,
        ACL_FLOAT | ACL_INT32 | ACL_UINT32 | ACL_COMPLEX32 => 4,
        ACL_INT64 | ACL_UINT64 | ACL_DOUBLE | ACL_COMPLEX64 => 8,
        ACL_COMPLEX128 => 16,
        _ => 0,
    }
}
