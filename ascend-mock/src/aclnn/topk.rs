//! aclnnTopk: the k largest or smallest values along a dimension and their
//! indices.

use ascend_kernels::topk::{self, TopkArgs};
use ascend_sys::*;

use super::executor::{get_workspace_size, kernel};

/// Phase one of `aclnnTopk`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnTopkGetWorkspaceSize(
    self_: *const aclTensor,
    k: i64,
    dim: i64,
    largest: bool,
    sorted: bool,
    valuesOut: *mut aclTensor,
    indicesOut: *mut aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnTopkGetWorkspaceSize",
        "aclnnTopk",
        workspaceSize,
        executor,
        |b| {
            let input = b.input("self", self_)?;
            let values = b.output("valuesOut", valuesOut)?;
            let indices = b.output("indicesOut", indicesOut)?;
            Ok(kernel(
                move |t| TopkArgs {
                    input: input.get(t),
                    k,
                    dim,
                    largest,
                    sorted,
                    values_out: values.get(t),
                    indices_out: indices.get(t),
                },
                topk::check,
                topk::run,
            ))
        },
    )
}
phase_two!(aclnnTopk);
