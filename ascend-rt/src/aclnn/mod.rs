//! The aclnn operator layer's machinery: RAII descriptors
//! ([`descriptor`]) and the generic two-phase launch ([`launch`]) that
//! every typed operator in [`crate::ops`] goes through.

pub mod descriptor;
pub mod launch;

pub use descriptor::{AclIntArray, AclScalar, AclTensor, AclTensorList};
pub use launch::{OpCall, Phase2, PreparedOp};
