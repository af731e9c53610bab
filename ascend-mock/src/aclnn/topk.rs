//! aclnnTopk: the k largest or smallest values along a dimension and their
//! indices.

use ascend_kernels::topk::{self, TopkArgs};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnTopk`.
    aclnnTopk / aclnnTopkGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        k: i64 = value,
        dim: i64 = value,
        largest: bool = value,
        sorted: bool = value,
        valuesOut: *mut aclTensor = output,
        indicesOut: *mut aclTensor = output,
    ) => topk::check, topk::run, TopkArgs {
        input: self_,
        k,
        dim,
        largest,
        sorted,
        values_out: valuesOut,
        indices_out: indicesOut,
    };
}
