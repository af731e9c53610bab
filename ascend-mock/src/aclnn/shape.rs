//! Shape and index operators: Permute, Repeat, Cat, Slice, ConstantPadNd,
//! Tril, Triu, InplaceTriu, IndexSelect, GatherV2 and Embedding,
//! registered over `ascend_kernels::shape`.

use ascend_kernels::TensorArg;
use ascend_kernels::shape::cat::{self, CatArgs};
use ascend_kernels::shape::constant_pad_nd::{self, ConstantPadNdArgs};
use ascend_kernels::shape::embedding::{self, EmbeddingArgs};
use ascend_kernels::shape::gather_v2::{self, GatherV2Args};
use ascend_kernels::shape::index_select::{self, IndexSelectArgs};
use ascend_kernels::shape::permute::{self, PermuteArgs};
use ascend_kernels::shape::repeat::{self, RepeatArgs};
use ascend_kernels::shape::slice::{self, SliceArgs};
use ascend_kernels::shape::triangle::{InplaceTriuArgs, TriangleArgs, inplace_triu, tril, triu};
use ascend_sys::*;

use super::executor::Binder;
use super::null_err;
use super::register::Bound;
use crate::error::MockResult;

/// A required `aclIntArray` parameter, its values copied in phase one.
pub(super) struct IntArray(Vec<i64>);

impl Bound for IntArray {
    type Out = Vec<i64>;
    fn get(&self, _: &[TensorArg]) -> Vec<i64> {
        self.0.clone()
    }
}

/// Binds a required `aclIntArray` (NULL is 161001).
pub(super) trait BindIntArray {
    fn int_array(&mut self, param: &'static str, p: *const aclIntArray) -> MockResult<IntArray>;
}

impl BindIntArray for Binder<'_> {
    fn int_array(&mut self, param: &'static str, p: *const aclIntArray) -> MockResult<IntArray> {
        match self.opt_int_array(param, p)? {
            Some(v) => Ok(IntArray(v)),
            None => Err(null_err(format!("{param} is NULL"))),
        }
    }
}

operator! {
    /// Phase one of `aclnnEmbedding`: `out = weight[indices, :]`.
    aclnnEmbedding / aclnnEmbeddingGetWorkspaceSize(
        weight: *const aclTensor = input,
        indices: *const aclTensor = input,
        out: *const aclTensor = output,
    ) => embedding::check, embedding::run, EmbeddingArgs { weight, indices, out };

    /// Phase one of `aclnnIndexSelect`: the rows `index` names along `dim`.
    aclnnIndexSelect / aclnnIndexSelectGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        index: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => index_select::check, index_select::run, IndexSelectArgs { self_, dim, index, out };

    /// Phase one of `aclnnGatherV2`: `self` gathered along `dim` by `index`.
    aclnnGatherV2 / aclnnGatherV2GetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        index: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => gather_v2::check, gather_v2::run, GatherV2Args { self_, dim, index, out };

    /// Phase one of `aclnnCat`: the list joined along `dim`.
    aclnnCat / aclnnCatGetWorkspaceSize(
        tensors: *const aclTensorList = input_list,
        dim: i64 = value,
        out: *mut aclTensor = output,
    ) => cat::check, cat::run, CatArgs { tensors, dim, out };

    /// Phase one of `aclnnSlice`: `self[start:end:step]` along `dim`.
    aclnnSlice / aclnnSliceGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        start: i64 = value,
        end: i64 = value,
        step: i64 = value,
        out: *mut aclTensor = output,
    ) => slice::check, slice::run, SliceArgs { self_, dim, start, end, step, out };

    /// Phase one of `aclnnPermute`: the dimensions reordered by `dims`.
    aclnnPermute / aclnnPermuteGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dims: *const aclIntArray = int_array,
        out: *mut aclTensor = output,
    ) => permute::check, permute::run, PermuteArgs { self_, dims, out };

    /// Phase one of `aclnnRepeat`: `self` tiled `repeats` times.
    aclnnRepeat / aclnnRepeatGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        repeats: *const aclIntArray = int_array,
        out: *mut aclTensor = output,
    ) => repeat::check, repeat::run, RepeatArgs { self_, repeats, out };

    /// Phase one of `aclnnConstantPadNd`: `self` padded with `value`.
    aclnnConstantPadNd / aclnnConstantPadNdGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        pad: *const aclIntArray = int_array,
        value: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => constant_pad_nd::check, constant_pad_nd::run, ConstantPadNdArgs { self_, pad, value, out };

    /// Phase one of `aclnnTril`: the lower triangle, the rest zero.
    aclnnTril / aclnnTrilGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        diagonal: i64 = value,
        out: *mut aclTensor = output,
    ) => tril::check, tril::run, TriangleArgs { self_, diagonal, out };

    /// Phase one of `aclnnTriu`: the upper triangle, the rest zero.
    aclnnTriu / aclnnTriuGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        diagonal: i64 = value,
        out: *mut aclTensor = output,
    ) => triu::check, triu::run, TriangleArgs { self_, diagonal, out };

    /// Phase one of `aclnnInplaceTriu`: `selfRef` keeps its upper triangle.
    aclnnInplaceTriu / aclnnInplaceTriuGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        diagonal: i64 = value,
    ) => inplace_triu::check, inplace_triu::run, InplaceTriuArgs { self_ref: selfRef, diagonal };
}
