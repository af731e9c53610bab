//! The aclnn operator layer's machinery: RAII descriptors
//! ([`descriptor`]) and the generic two-phase launch ([`launch`]) that
//! every typed operator in [`crate::ops`] goes through.
//!
//! This is the safe side: ownership, argument checks, access tracking and
//! workspaces from the pool. The C calls themselves are the result layer's
//! ([`crate::result::nnopbase`] for descriptors and executors,
//! [`crate::result::opapi`] for the operators' two phases).

pub mod descriptor;
pub mod launch;

pub use descriptor::{AclIntArray, AclScalar, AclTensor, AclTensorList};
pub use launch::{OpCall, Phase2, PreparedOp};
