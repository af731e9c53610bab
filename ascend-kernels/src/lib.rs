//! CPU implementations of the aclnn operators that the Ascend mock device
//! runs, with CANN's documented semantics and parameter checks.
//!
//! Each operator has a checking function (what CANN's phase one,
//! `aclnnXxxGetWorkspaceSize`, validates) and a running function (what the
//! device computes in phase two). f16 and bf16 are computed in f32 and
//! rounded once on store.

pub mod tensor;

pub use tensor::{DType, KernelError, TensorArg};
