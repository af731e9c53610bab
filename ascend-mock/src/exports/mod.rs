//! The exported AscendCL C functions, one submodule per topic. Each
//! function is a thin shell: it runs its body through
//! [`api_call`](crate::gate::api_call) and keeps the logic in the runtime
//! modules (`runtime`, `stream`, `event`, `memory`).
//!
//! Every module holding exported functions is glob re-exported here, so
//! that the symbol table in `resolve.rs` (generated from the headers) can
//! name each function as `exports::<name>`; a family adds its one
//! `pub use` line, and no list of function names is kept by hand.
//!
//! Pointer arguments follow the AscendCL contract: an output pointer is
//! either NULL (refused with `ACL_ERROR_INVALID_PARAM`) or valid for a
//! write of its type; [`write_out`] does the check and the write.

mod callback;
mod device;
mod event;
mod init;
mod memory;
mod stream;
mod vmm;

pub use callback::*;
pub use device::*;
pub use event::*;
pub use init::*;
pub use memory::*;
pub use stream::*;
pub use vmm::*;

pub use crate::aclnn::attention::*;
pub use crate::aclnn::binary::*;
pub use crate::aclnn::conversion::*;
pub use crate::aclnn::elementwise::*;
pub use crate::aclnn::executor::*;
pub use crate::aclnn::matmul::*;
pub use crate::aclnn::meta::*;
pub use crate::aclnn::moe::*;
pub use crate::aclnn::norm::*;
pub use crate::aclnn::reduce::*;
pub use crate::aclnn::rope::*;
pub use crate::aclnn::shape::*;
pub use crate::aclnn::topk::*;
pub use crate::aclnn::unary::*;
pub use crate::hccl::exports::*;

use ascend_sys::ACL_ERROR_INVALID_PARAM;

use crate::error::{MockError, MockResult};

/// Writes `value` through the output pointer `ptr` named `name`, refusing
/// NULL.
///
/// # Safety
/// `ptr` must be NULL or valid for a write of `T` (properly aligned).
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T, name: &str) -> MockResult<()> {
    if ptr.is_null() {
        return Err(MockError::new(
            ACL_ERROR_INVALID_PARAM,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-null, and the caller guarantees validity for writes.
    unsafe { ptr.write(value) };
    Ok(())
}
