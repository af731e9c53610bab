//! Shape and index operators: Permute, Repeat, RepeatInterleaveIntWithDim,
//! Roll, Cat, Slice, ConstantPadNd,
//! Tril, Triu, InplaceTriu, IndexSelect, GatherV2, Embedding, IndexCopy,
//! InplaceIndexCopy, IndexFillTensor, InplaceIndexFillTensor,
//! ReflectionPad1d, Scatter and InplaceScatter,
//! registered over `ascend_kernels::shape`.

use ascend_kernels::TensorArg;
use ascend_kernels::shape::cat::{self, CatArgs};
use ascend_kernels::shape::constant_pad_nd::{self, ConstantPadNdArgs};
use ascend_kernels::shape::embedding::{self, EmbeddingArgs};
use ascend_kernels::shape::gather_v2::{self, GatherV2Args};
use ascend_kernels::shape::index_copy::{self, IndexCopyArgs};
use ascend_kernels::shape::index_fill::{self, IndexFillArgs};
use ascend_kernels::shape::index_select::{self, IndexSelectArgs};
use ascend_kernels::shape::permute::{self, PermuteArgs};
use ascend_kernels::shape::reflection_pad1d::{self, ReflectionPad1dArgs};
use ascend_kernels::shape::repeat::{self, RepeatArgs};
use ascend_kernels::shape::repeat_interleave::{self, RepeatInterleaveIntWithDimArgs};
use ascend_kernels::shape::roll::{self, RollArgs};
use ascend_kernels::shape::scatter::{self, ScatterArgs};
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

    /// Phase one of `aclnnRoll`: `x` rolled by `shifts` along `dims`.
    aclnnRoll / aclnnRollGetWorkspaceSize(
        x: *const aclTensor = input,
        shifts: *const aclIntArray = int_array,
        dims: *const aclIntArray = int_array,
        out: *mut aclTensor = output,
    ) => roll::check, roll::run, RollArgs { x, shifts, dims, out };

    /// Phase one of `aclnnRepeatInterleaveIntWithDim`: each slice along `dim` repeated.
    aclnnRepeatInterleaveIntWithDim / aclnnRepeatInterleaveIntWithDimGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        repeats: i64 = value,
        dim: i64 = value,
        outputSize: i64 = value,
        out: *mut aclTensor = output,
    ) => repeat_interleave::check, repeat_interleave::run,
        RepeatInterleaveIntWithDimArgs { self_, repeats, dim, output_size: outputSize, out };

    /// Phase one of `aclnnIndexCopy`: `outRef = selfRef` with `source` copied to the indexed slices.
    aclnnIndexCopy / aclnnIndexCopyGetWorkspaceSize(
        selfRef: *mut aclTensor = input,
        dim: i64 = value,
        index: *const aclTensor = input,
        source: *const aclTensor = input,
        outRef: *mut aclTensor = output,
    ) => index_copy::check, index_copy::run,
        IndexCopyArgs { self_: selfRef, dim, index, source, out: outRef };

    /// Phase one of `aclnnInplaceIndexCopy`: `source` copied to the indexed slices of `selfRef`.
    aclnnInplaceIndexCopy / aclnnInplaceIndexCopyGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        dim: i64 = value,
        index: *const aclTensor = input,
        source: *const aclTensor = input,
    ) => index_copy::check, index_copy::run,
        IndexCopyArgs { self_: selfRef, dim, index, source, out: selfRef };

    /// Phase one of `aclnnIndexFillTensor`: `out = self` with the indexed slices set to `value`.
    aclnnIndexFillTensor / aclnnIndexFillTensorGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        index: *const aclIntArray = int_array,
        value: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => index_fill::check, index_fill::run, IndexFillArgs { self_, dim, index, value, out };

    /// Phase one of `aclnnInplaceIndexFillTensor`: the indexed slices of `selfRef` set to `value`.
    aclnnInplaceIndexFillTensor / aclnnInplaceIndexFillTensorGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        dim: i64 = value,
        index: *const aclIntArray = int_array,
        value: *const aclScalar = scalar,
    ) => index_fill::check, index_fill::run,
        IndexFillArgs { self_: selfRef, dim, index, value, out: selfRef };

    /// Phase one of `aclnnReflectionPad1d`: the last dimension padded by reflection.
    aclnnReflectionPad1d / aclnnReflectionPad1dGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        padding: *const aclIntArray = int_array,
        out: *mut aclTensor = output,
    ) => reflection_pad1d::check, reflection_pad1d::run, ReflectionPad1dArgs { self_, padding, out };

    /// Phase one of `aclnnScatter`: `src` scattered into a copy of `self` along `dim`.
    aclnnScatter / aclnnScatterGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        index: *const aclTensor = input,
        src: *const aclTensor = input,
        reduce: i64 = value,
        out: *mut aclTensor = output,
    ) => scatter::check, scatter::run, ScatterArgs { self_, dim, index, src, reduce, out };

    /// Phase one of `aclnnInplaceScatter`: `src` scattered into `selfRef` along `dim`.
    aclnnInplaceScatter / aclnnInplaceScatterGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        dim: i64 = value,
        index: *const aclTensor = input,
        src: *const aclTensor = input,
        reduce: i64 = value,
    ) => scatter::check, scatter::run,
        ScatterArgs { self_: selfRef, dim, index, src, reduce, out: selfRef };
}

#[cfg(test)]
mod tests {
    //! Each operator through the C ABI on every dtype family (FLOAT,
    //! FLOAT16, BF16, integers), strided inputs, zero-size and 0-D tensors,
    //! negative dims, in-place aliasing, run-time index errors reported by
    //! the stream, and phase one's refusals with CANN's codes. Expected
    //! values are computed here with plain loops.

    use std::ffi::c_void;
    use std::ptr::{null, null_mut};

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::meta::{
        aclCreateIntArray, aclCreateScalar, aclCreateTensorList, aclDestroyIntArray,
        aclDestroyScalar, aclDestroyTensorList,
    };
    use crate::aclnn::tests::{Dev, destroy_tensors, nn_err, run_op, strided, tensor};
    use crate::exports::{aclrtDestroyStream, aclrtSynchronizeStream};
    use crate::tests_support::{new_stream, take_message};

    const DTYPES: [aclDataType; 6] = [
        ACL_FLOAT,
        ACL_FLOAT16,
        ACL_BF16,
        ACL_INT32,
        ACL_INT8,
        ACL_INT64,
    ];

    /// Small integers (exact in every dtype) uploaded as `dt`.
    fn upload(dev: &mut Dev, dt: aclDataType, v: &[i64]) -> *mut c_void {
        match dt {
            ACL_FLOAT => dev.buf(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
            ACL_FLOAT16 => dev.buf(
                &v.iter()
                    .map(|&x| f16::from_f32(x as f32))
                    .collect::<Vec<_>>(),
            ),
            ACL_BF16 => dev.buf(
                &v.iter()
                    .map(|&x| bf16::from_f32(x as f32))
                    .collect::<Vec<_>>(),
            ),
            ACL_INT32 => dev.buf(&v.iter().map(|&x| x as i32).collect::<Vec<_>>()),
            ACL_INT8 => dev.buf(&v.iter().map(|&x| x as i8).collect::<Vec<_>>()),
            ACL_INT64 => dev.buf(v),
            _ => unreachable!("test dtypes"),
        }
    }

    fn zeros(dev: &mut Dev, dt: aclDataType, n: usize) -> *mut c_void {
        upload(dev, dt, &vec![0; n])
    }

    fn download(dev: &Dev, dt: aclDataType, p: *mut c_void, n: usize) -> Vec<i64> {
        match dt {
            ACL_FLOAT => dev.read::<f32>(p, n).iter().map(|&x| x as i64).collect(),
            ACL_FLOAT16 => dev
                .read::<f16>(p, n)
                .iter()
                .map(|x| x.to_f32() as i64)
                .collect(),
            ACL_BF16 => dev
                .read::<bf16>(p, n)
                .iter()
                .map(|x| x.to_f32() as i64)
                .collect(),
            ACL_INT32 => dev
                .read::<i32>(p, n)
                .iter()
                .map(|&x| i64::from(x))
                .collect(),
            ACL_INT8 => dev.read::<i8>(p, n).iter().map(|&x| i64::from(x)).collect(),
            ACL_INT64 => dev.read::<i64>(p, n),
            _ => unreachable!("test dtypes"),
        }
    }

    fn ramp(n: usize) -> Vec<i64> {
        (0..n as i64).map(|i| i % 100 + 1).collect()
    }

    fn int_array(v: &[i64]) -> *mut aclIntArray {
        // SAFETY: `v` is a live slice; the values are copied.
        let a = unsafe { aclCreateIntArray(v.as_ptr(), v.len() as u64) };
        assert!(!a.is_null());
        a
    }

    fn destroy_array(a: *mut aclIntArray) {
        // SAFETY: a live array destroyed once.
        assert_eq!(unsafe { aclDestroyIntArray(a) }, ACLNN_SUCCESS);
    }

    /// A tensor list owning `t`.
    fn list(t: &[*mut aclTensor]) -> *mut aclTensorList {
        let ptrs: Vec<*const aclTensor> = t.iter().map(|&p| p as *const aclTensor).collect();
        // SAFETY: live descriptors; the list takes ownership of them.
        let l = unsafe { aclCreateTensorList(ptrs.as_ptr(), ptrs.len() as u64) };
        assert!(!l.is_null());
        l
    }

    /// Phase one only, returning its status (the executor, if any, is
    /// never launched: refusals hand none out).
    fn phase1(f: impl FnOnce(*mut u64, *mut *mut aclOpExecutor) -> aclnnStatus) -> aclnnStatus {
        let mut ws = 0u64;
        let mut ex = null_mut();
        let code = f(&mut ws, &mut ex);
        assert!(code != ACLNN_SUCCESS, "phase one accepted");
        code
    }

    #[test]
    fn embedding_gather_index_select_every_dtype() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // weight / self [4, 3]; self also through a transposed view of [3, 4].
            let w = ramp(12);
            let wp = upload(&mut dev, dt, &w);
            let wt = tensor(&[4, 3], dt, wp);
            for it in [ACL_INT32, ACL_INT64] {
                let idx = [3i64, 0, 2, 2];
                let ip = if it == ACL_INT32 {
                    dev.buf(&idx.map(|v| v as i32))
                } else {
                    dev.buf(&idx)
                };
                let it2 = tensor(&[2, 2], it, ip);
                let it1 = tensor(&[4], it, ip);
                // Embedding: out [2, 2, 3].
                let op = zeros(&mut dev, dt, 12);
                let ot = tensor(&[2, 2, 3], dt, op);
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |ws, e| unsafe { aclnnEmbeddingGetWorkspaceSize(wt, it2, ot, ws, e) },
                    aclnnEmbedding,
                );
                // IndexSelect along dim -1 of the transposed view [3, 4]:
                // out[i][k] = view[i][idx[k]] = w[idx[k] * 3 + i].
                let tv = strided(&[3, 4], Some(&[1, 3]), 0, dt, &[12], wp);
                let sp = zeros(&mut dev, dt, 12);
                let st = tensor(&[3, 4], dt, sp);
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |ws, e| unsafe { aclnnIndexSelectGetWorkspaceSize(tv, -1, it1, st, ws, e) },
                    aclnnIndexSelect,
                );
                // GatherV2 along dim 1 with a 2-D index: out [4, 2, 2].
                let gp = zeros(&mut dev, dt, 16);
                let gt = tensor(&[4, 2, 2], dt, gp);
                let gi = [2i64, -1, 0, -3];
                let gip = dev.buf(&gi);
                let git = tensor(&[2, 2], ACL_INT64, gip);
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |ws, e| unsafe { aclnnGatherV2GetWorkspaceSize(wt, 1, git, gt, ws, e) },
                    aclnnGatherV2,
                );
                dev.sync();
                let want_e: Vec<i64> = idx
                    .iter()
                    .flat_map(|&r| w[r as usize * 3..][..3].to_vec())
                    .collect();
                assert_eq!(download(&dev, dt, op, 12), want_e, "Embedding {dt}");
                let want_s: Vec<i64> = (0..3)
                    .flat_map(|i| idx.iter().map(move |&k| (k * 3 + i) as usize))
                    .map(|f| w[f])
                    .collect();
                assert_eq!(download(&dev, dt, sp, 12), want_s, "IndexSelect {dt}");
                let want_g: Vec<i64> = (0..4)
                    .flat_map(|r| {
                        gi.iter()
                            .map(|&c| w[r * 3 + c.rem_euclid(3) as usize])
                            .collect::<Vec<_>>()
                    })
                    .collect();
                assert_eq!(download(&dev, dt, gp, 16), want_g, "GatherV2 {dt}");
                destroy_tensors(&[it2, it1, ot, tv, st, gt, git]);
            }
            destroy_tensors(&[wt]);
        }
    }

    #[test]
    fn gather_zero_size_and_0d() {
        let mut dev = Dev::new();
        let sp = dev.buf(&[5.0f32, 6.0, 7.0]);
        let st = tensor(&[3], ACL_FLOAT, sp);
        // A zero-size index gives a zero-size out.
        let ip = dev.zeros::<i64>(1);
        let i0 = tensor(&[0], ACL_INT64, ip);
        let o0 = tensor(&[0], ACL_FLOAT, null_mut());
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |ws, e| unsafe { aclnnIndexSelectGetWorkspaceSize(st, 0, i0, o0, ws, e) },
            aclnnIndexSelect,
        );
        // A 0-D index in GatherV2 removes the dimension: out is 0-D.
        let ix = dev.buf(&[-1i32]);
        let isc = tensor(&[], ACL_INT32, ix);
        let op = dev.zeros::<f32>(1);
        let osc = tensor(&[], ACL_FLOAT, op);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |ws, e| unsafe { aclnnGatherV2GetWorkspaceSize(st, 0, isc, osc, ws, e) },
            aclnnGatherV2,
        );
        // IndexSelect of a 0-D self with one index.
        let s0 = tensor(&[], ACL_FLOAT, sp);
        let i1 = dev.buf(&[0i64]);
        let i1t = tensor(&[1], ACL_INT64, i1);
        let op2 = dev.zeros::<f32>(1);
        let o2 = tensor(&[], ACL_FLOAT, op2);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |ws, e| unsafe { aclnnIndexSelectGetWorkspaceSize(s0, -1, i1t, o2, ws, e) },
            aclnnIndexSelect,
        );
        dev.sync();
        assert_eq!(dev.read::<f32>(op, 1), [7.0]);
        assert_eq!(dev.read::<f32>(op2, 1), [5.0]);
        destroy_tensors(&[st, i0, o0, isc, osc, s0, i1t, o2]);
    }

    #[test]
    fn out_of_range_index_fails_the_stream_without_writing() {
        let mut dev = Dev::new();
        let wp = dev.buf(&[1.0f32, 2.0, 3.0, 4.0]);
        let wt = tensor(&[2, 2], ACL_FLOAT, wp);
        let ip = dev.buf(&[1i64, 2]);
        let it = tensor(&[2], ACL_INT64, ip);
        let op = dev.zeros::<f32>(4);
        let ot = tensor(&[2, 2], ACL_FLOAT, op);
        let mut ws = 0u64;
        let mut ex = null_mut();
        // SAFETY: live descriptors and output locations.
        let code = unsafe { aclnnEmbeddingGetWorkspaceSize(wt, it, ot, &mut ws, &mut ex) };
        assert_eq!(code, ACLNN_SUCCESS, "{:?}", take_message());
        let stream = new_stream();
        // SAFETY: a fresh executor without workspace on a live stream.
        unsafe {
            assert_eq!(aclnnEmbedding(null_mut(), 0, ex, stream), ACLNN_SUCCESS);
            let code = aclrtSynchronizeStream(stream);
            nn_err(
                code,
                ACLNN_ERR_PARAM_INVALID,
                &["aclnnEmbedding", "index value 2", "out of range"],
            );
            assert_eq!(aclrtDestroyStream(stream), ACL_SUCCESS);
        }
        assert_eq!(dev.read::<f32>(op, 4), [0.0; 4]);
        destroy_tensors(&[wt, it, ot]);
    }

    #[test]
    fn cat_slice_permute_repeat_every_dtype() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // Cat along dim -1: a [2, 1], a transposed [2, 3] view of a
            // [3, 2] buffer, an empty [2, 0].
            let a = [7i64, 8];
            let b = ramp(6);
            let (ap, bp) = (upload(&mut dev, dt, &a), upload(&mut dev, dt, &b));
            let at = tensor(&[2, 1], dt, ap);
            let bt = strided(&[2, 3], Some(&[1, 2]), 0, dt, &[6], bp);
            let et = tensor(&[2, 0], dt, null_mut());
            let l = list(&[at, bt, et]);
            let op = zeros(&mut dev, dt, 8);
            let ot = tensor(&[2, 4], dt, op);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnCatGetWorkspaceSize(l, -1, ot, ws, e) },
                aclnnCat,
            );
            // Slice dim -1 of [2, 6] from -5 by 2 up to 100: columns 1, 3, 5.
            let s = ramp(12);
            let sp = upload(&mut dev, dt, &s);
            let st = tensor(&[2, 6], dt, sp);
            let slp = zeros(&mut dev, dt, 6);
            let slt = tensor(&[2, 3], dt, slp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnSliceGetWorkspaceSize(st, -1, -5, 100, 2, slt, ws, e) },
                aclnnSlice,
            );
            // Permute [2, 6] -> [6, 2] (dims given negative).
            let dims = int_array(&[-1, 0]);
            let pp = zeros(&mut dev, dt, 12);
            let pt = tensor(&[6, 2], dt, pp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnPermuteGetWorkspaceSize(st, dims, pt, ws, e) },
                aclnnPermute,
            );
            // Repeat [2, 1] by (2, 3) -> [4, 3].
            let reps = int_array(&[2, 3]);
            let rp = zeros(&mut dev, dt, 12);
            let rt = tensor(&[4, 3], dt, rp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnRepeatGetWorkspaceSize(at, reps, rt, ws, e) },
                aclnnRepeat,
            );
            destroy_array(dims);
            destroy_array(reps);
            dev.sync();
            // b as [3, 2] row-major, seen transposed: bt[i][j] = b[j * 2 + i].
            let want_cat: Vec<i64> = (0..2)
                .flat_map(|i| {
                    let mut row = vec![a[i]];
                    row.extend((0..3).map(|j| b[j * 2 + i]));
                    row
                })
                .collect();
            assert_eq!(download(&dev, dt, op, 8), want_cat, "Cat {dt}");
            let want_slice: Vec<i64> = (0..2)
                .flat_map(|i| [1, 3, 5].map(|j| s[i * 6 + j]))
                .collect();
            assert_eq!(download(&dev, dt, slp, 6), want_slice, "Slice {dt}");
            let want_perm: Vec<i64> = (0..6).flat_map(|j| [0, 1].map(|i| s[i * 6 + j])).collect();
            assert_eq!(download(&dev, dt, pp, 12), want_perm, "Permute {dt}");
            let want_rep: Vec<i64> = (0..4).flat_map(|i| [a[i % 2]; 3]).collect();
            assert_eq!(download(&dev, dt, rp, 12), want_rep, "Repeat {dt}");
            // SAFETY: the list owns at, bt, et and is destroyed once.
            assert_eq!(unsafe { aclDestroyTensorList(l) }, ACLNN_SUCCESS);
            destroy_tensors(&[ot, st, slt, pt, rt]);
        }
    }

    #[test]
    fn pad_and_triangles_every_dtype_with_inplace_aliasing() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // ConstantPadNd of [2, 3]: last dim (1, -1), first dim (0, 1),
            // value 9 -> [3, 3].
            let s = ramp(6);
            let sp = upload(&mut dev, dt, &s);
            let st = tensor(&[2, 3], dt, sp);
            let pad = int_array(&[1, -1, 0, 1]);
            let mut nine = 9i64;
            // SAFETY: a live i64; the value is copied.
            let value = unsafe { aclCreateScalar((&mut nine as *mut i64).cast(), ACL_INT64) };
            let pp = zeros(&mut dev, dt, 9);
            let pt = tensor(&[3, 3], dt, pp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnConstantPadNdGetWorkspaceSize(st, pad, value, pt, ws, e) },
                aclnnConstantPadNd,
            );
            // Tril/Triu of a transposed [3, 2] view, diagonal 0 and -1.
            let tv = strided(&[3, 2], Some(&[1, 3]), 0, dt, &[6], sp);
            let lp = zeros(&mut dev, dt, 6);
            let lt = tensor(&[3, 2], dt, lp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnTrilGetWorkspaceSize(tv, 0, lt, ws, e) },
                aclnnTril,
            );
            let up = zeros(&mut dev, dt, 6);
            let ut = tensor(&[3, 2], dt, up);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnTriuGetWorkspaceSize(tv, -1, ut, ws, e) },
                aclnnTriu,
            );
            dev.sync();
            // In place on a copy of self, as a [2, 3] matrix, diagonal 1.
            let ip = upload(&mut dev, dt, &s);
            let it = tensor(&[2, 3], dt, ip);
            run_op(
                &dev,
                // SAFETY: live descriptor and output locations.
                |ws, e| unsafe { aclnnInplaceTriuGetWorkspaceSize(it, 1, ws, e) },
                aclnnInplaceTriu,
            );
            dev.sync();
            let want_pad = vec![9, s[0], s[1], 9, s[3], s[4], 9, 9, 9];
            assert_eq!(download(&dev, dt, pp, 9), want_pad, "ConstantPadNd {dt}");
            // view[i][j] = s[j * 3 + i].
            let v = |i: usize, j: usize| s[j * 3 + i];
            let want_l: Vec<i64> = (0..3)
                .flat_map(|i| (0..2).map(move |j| if j <= i { v(i, j) } else { 0 }))
                .collect();
            let want_u: Vec<i64> = (0..3)
                .flat_map(|i| {
                    (0..2).map(move |j| if j as i64 >= i as i64 - 1 { v(i, j) } else { 0 })
                })
                .collect();
            assert_eq!(download(&dev, dt, lp, 6), want_l, "Tril {dt}");
            assert_eq!(download(&dev, dt, up, 6), want_u, "Triu {dt}");
            let want_i = vec![0, s[1], s[2], 0, 0, s[5]];
            assert_eq!(download(&dev, dt, ip, 6), want_i, "InplaceTriu {dt}");
            destroy_array(pad);
            // SAFETY: a live scalar destroyed once.
            assert_eq!(unsafe { aclDestroyScalar(value) }, ACLNN_SUCCESS);
            destroy_tensors(&[st, pt, tv, lt, ut, it]);
        }
    }

    #[test]
    fn roll_and_repeat_interleave_every_dtype() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // Roll a transposed [3, 2] view of a [2, 3] buffer by 1 along
            // dim 0 and -1 along dim -1.
            let s = ramp(6);
            let sp = upload(&mut dev, dt, &s);
            let tv = strided(&[3, 2], Some(&[1, 3]), 0, dt, &[6], sp);
            let (shifts, dims) = (int_array(&[1, -1]), int_array(&[0, -1]));
            let rp = zeros(&mut dev, dt, 6);
            let rt = tensor(&[3, 2], dt, rp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnRollGetWorkspaceSize(tv, shifts, dims, rt, ws, e) },
                aclnnRoll,
            );
            // RepeatInterleave of [2, 3] by 2 along dim -2 -> [4, 3]; a 0-D
            // self by 3 -> [3].
            let st = tensor(&[2, 3], dt, sp);
            let ip = zeros(&mut dev, dt, 12);
            let it = tensor(&[4, 3], dt, ip);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe {
                    aclnnRepeatInterleaveIntWithDimGetWorkspaceSize(st, 2, -2, 4, it, ws, e)
                },
                aclnnRepeatInterleaveIntWithDim,
            );
            let s0 = tensor(&[], dt, sp);
            let zp = zeros(&mut dev, dt, 3);
            let zt = tensor(&[3], dt, zp);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe {
                    aclnnRepeatInterleaveIntWithDimGetWorkspaceSize(s0, 3, 0, 3, zt, ws, e)
                },
                aclnnRepeatInterleaveIntWithDim,
            );
            dev.sync();
            // view[i][j] = s[j * 3 + i]; out[i][j] = view[(i - 1) mod 3][(j + 1) mod 2].
            let want_r: Vec<i64> = (0..3usize)
                .flat_map(|i| (0..2usize).map(move |j| ((i + 2) % 3, (j + 1) % 2)))
                .map(|(a, b)| s[b * 3 + a])
                .collect();
            assert_eq!(download(&dev, dt, rp, 6), want_r, "Roll {dt}");
            let want_i: Vec<i64> = (0..4)
                .flat_map(|i| s[(i / 2) * 3..][..3].to_vec())
                .collect();
            assert_eq!(
                download(&dev, dt, ip, 12),
                want_i,
                "RepeatInterleaveIntWithDim {dt}"
            );
            assert_eq!(download(&dev, dt, zp, 3), vec![s[0]; 3]);
            // Refusals: a dims entry out of range, an outputSize that does
            // not match, a NULL shifts.
            let bad = int_array(&[2, 0]);
            // SAFETY: live descriptors (or NULL) and output locations.
            unsafe {
                let code = phase1(|w, e| aclnnRollGetWorkspaceSize(tv, shifts, bad, rt, w, e));
                nn_err(code, ACLNN_ERR_PARAM_INVALID, &["dims"]);
                let code = phase1(|w, e| aclnnRollGetWorkspaceSize(tv, null(), dims, rt, w, e));
                nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["shifts"]);
                let code = phase1(|w, e| {
                    aclnnRepeatInterleaveIntWithDimGetWorkspaceSize(st, 2, 0, 5, it, w, e)
                });
                nn_err(code, ACLNN_ERR_PARAM_INVALID, &["outputSize"]);
            }
            for a in [shifts, dims, bad] {
                destroy_array(a);
            }
            destroy_tensors(&[tv, rt, st, it, s0, zt]);
        }
    }

    #[test]
    fn index_copy_and_fill_every_dtype_in_place_and_out() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // IndexCopy out of place: self [3, 2], rows 2 and 0 from source [2, 2].
            let s = ramp(6);
            let sp = upload(&mut dev, dt, &s);
            let st = tensor(&[3, 2], dt, sp);
            let srcp = upload(&mut dev, dt, &[50, 51, 52, 53]);
            let srct = tensor(&[2, 2], dt, srcp);
            let ip = dev.buf(&[2i64, 0]);
            let it = tensor(&[2], ACL_INT64, ip);
            let op = zeros(&mut dev, dt, 6);
            let ot = tensor(&[3, 2], dt, op);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnIndexCopyGetWorkspaceSize(st, 0, it, srct, ot, ws, e) },
                aclnnIndexCopy,
            );
            // In place through a transposed [2, 3] view: columns 1 of the
            // view (= row 1 of the buffer) from a source [2, 1].
            let cp = upload(&mut dev, dt, &s);
            let cv = strided(&[2, 3], Some(&[1, 2]), 0, dt, &[6], cp);
            let c1p = upload(&mut dev, dt, &[60, 61]);
            let c1t = tensor(&[2, 1], dt, c1p);
            let i1p = dev.buf(&[1i32]);
            let i1t = tensor(&[1], ACL_INT32, i1p);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnInplaceIndexCopyGetWorkspaceSize(cv, -1, i1t, c1t, ws, e) },
                aclnnInplaceIndexCopy,
            );
            dev.sync();
            let mut want = s.clone();
            want[4..6].copy_from_slice(&[50, 51]);
            want[0..2].copy_from_slice(&[52, 53]);
            assert_eq!(download(&dev, dt, op, 6), want, "IndexCopy {dt}");
            assert_eq!(
                download(&dev, dt, sp, 6),
                s,
                "IndexCopy left self alone {dt}"
            );
            let mut want = s.clone();
            want[2..4].copy_from_slice(&[60, 61]);
            assert_eq!(download(&dev, dt, cp, 6), want, "InplaceIndexCopy {dt}");
            destroy_tensors(&[st, srct, it, ot, cv, c1t, i1t]);
            if dt == ACL_INT8 {
                continue; // not in IndexFillTensor's dtype list
            }
            // IndexFillTensor along dim -1 with index [-1], value 7; in place along dim 0.
            let fp = zeros(&mut dev, dt, 6);
            let ft = tensor(&[3, 2], dt, fp);
            let st = tensor(&[3, 2], dt, sp);
            let idx = int_array(&[-1]);
            let mut seven = 7i64;
            // SAFETY: a live i64; the value is copied.
            let value = unsafe { aclCreateScalar((&mut seven as *mut i64).cast(), ACL_INT64) };
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe {
                    aclnnIndexFillTensorGetWorkspaceSize(st, -1, idx, value, ft, ws, e)
                },
                aclnnIndexFillTensor,
            );
            let gp = upload(&mut dev, dt, &s);
            let gt = tensor(&[3, 2], dt, gp);
            let rows = int_array(&[0, 2]);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe {
                    aclnnInplaceIndexFillTensorGetWorkspaceSize(gt, 0, rows, value, ws, e)
                },
                aclnnInplaceIndexFillTensor,
            );
            dev.sync();
            assert_eq!(
                download(&dev, dt, fp, 6),
                vec![s[0], 7, s[2], 7, s[4], 7],
                "IndexFillTensor {dt}"
            );
            assert_eq!(
                download(&dev, dt, gp, 6),
                vec![7, 7, s[2], s[3], 7, 7],
                "InplaceIndexFillTensor {dt}"
            );
            let bad = int_array(&[3]);
            // SAFETY: live descriptors and output locations.
            let code = phase1(|w, e| unsafe {
                aclnnInplaceIndexFillTensorGetWorkspaceSize(gt, 0, bad, value, w, e)
            });
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["index value 3"]);
            for a in [idx, rows, bad] {
                destroy_array(a);
            }
            // SAFETY: a live scalar destroyed once.
            assert_eq!(unsafe { aclDestroyScalar(value) }, ACLNN_SUCCESS);
            destroy_tensors(&[ft, st, gt]);
        }
    }

    #[test]
    fn reflection_pad1d_every_dtype() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // self [1, 2, 3] (3-D); padding [2, 2] -> [1, 2, 7].
            let s = ramp(6);
            let sp = upload(&mut dev, dt, &s);
            let st = tensor(&[1, 2, 3], dt, sp);
            let pad = int_array(&[2, 2]);
            let op = zeros(&mut dev, dt, 14);
            let ot = tensor(&[1, 2, 7], dt, op);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnReflectionPad1dGetWorkspaceSize(st, pad, ot, ws, e) },
                aclnnReflectionPad1d,
            );
            dev.sync();
            let want: Vec<i64> = (0..2)
                .flat_map(|i| [2, 1, 0, 1, 2, 1, 0].map(|c| s[i * 3 + c]))
                .collect();
            assert_eq!(download(&dev, dt, op, 14), want, "ReflectionPad1d {dt}");
            let big = int_array(&[3, 0]);
            // SAFETY: live descriptors and output locations.
            let code =
                phase1(|w, e| unsafe { aclnnReflectionPad1dGetWorkspaceSize(st, big, ot, w, e) });
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["padding"]);
            destroy_array(pad);
            destroy_array(big);
            destroy_tensors(&[st, ot]);
        }
    }

    #[test]
    fn scatter_every_dtype_and_reduction() {
        let mut dev = Dev::new();
        for dt in DTYPES {
            // self [2, 3]; index [1, 3] along dim 0; src [2, 3].
            let s = ramp(6);
            let sp = upload(&mut dev, dt, &s);
            let st = tensor(&[2, 3], dt, sp);
            let srcp = upload(&mut dev, dt, &[2, 3, 4, 9, 9, 9]);
            let srct = tensor(&[2, 3], dt, srcp);
            let ip = dev.buf(&[1i32, 0, 1]);
            let it = tensor(&[1, 3], ACL_INT32, ip);
            let op = zeros(&mut dev, dt, 6);
            let ot = tensor(&[2, 3], dt, op);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |ws, e| unsafe { aclnnScatterGetWorkspaceSize(st, 0, it, srct, 0, ot, ws, e) },
                aclnnScatter,
            );
            // In place, add then multiply, on a copy.
            let cp = upload(&mut dev, dt, &s);
            let ct = tensor(&[2, 3], dt, cp);
            for reduce in [1, 2] {
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |ws, e| unsafe {
                        aclnnInplaceScatterGetWorkspaceSize(ct, -2, it, srct, reduce, ws, e)
                    },
                    aclnnInplaceScatter,
                );
            }
            dev.sync();
            let want = vec![s[0], 3, s[2], 2, s[4], 4];
            assert_eq!(download(&dev, dt, op, 6), want, "Scatter {dt}");
            let want = vec![
                s[0],
                (s[1] + 3) * 3,
                s[2],
                (s[3] + 2) * 2,
                s[4],
                (s[5] + 4) * 4,
            ];
            let got = download(&dev, dt, cp, 6);
            let want: Vec<i64> = if dt == ACL_INT8 {
                want.iter().map(|&v| i64::from(v as i8)).collect()
            } else {
                want
            };
            assert_eq!(got, want, "InplaceScatter {dt}");
            // SAFETY: live descriptors and output locations.
            let code = phase1(|w, e| unsafe {
                aclnnScatterGetWorkspaceSize(st, 0, it, srct, 3, ot, w, e)
            });
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["reduce"]);
            destroy_tensors(&[st, srct, it, ot, ct]);
        }
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let sp = dev.buf(&[1.0f32; 12]);
        let st = tensor(&[3, 4], ACL_FLOAT, sp);
        let ip = dev.buf(&[0i64, 1]);
        let it = tensor(&[2], ACL_INT64, ip);
        let fi = tensor(&[2], ACL_FLOAT, sp);
        let op = dev.zeros::<f32>(12);
        let o24 = tensor(&[2, 4], ACL_FLOAT, op);
        let o34 = tensor(&[3, 4], ACL_FLOAT, op);
        let oh = tensor(&[2, 4], ACL_FLOAT16, op);
        let o43 = tensor(&[4, 3], ACL_FLOAT, op);
        let nul = null::<aclTensor>();
        // NULL tensors: 161001.
        let n = ACLNN_ERR_PARAM_NULLPTR;
        // SAFETY (every phase one below): live descriptors or NULL, and
        // live output locations.
        unsafe {
            nn_err(
                phase1(|w, e| aclnnEmbeddingGetWorkspaceSize(nul, it, o24, w, e)),
                n,
                &["weight"],
            );
            nn_err(
                phase1(|w, e| aclnnIndexSelectGetWorkspaceSize(st, 0, nul, o24, w, e)),
                n,
                &["index"],
            );
            nn_err(
                phase1(|w, e| aclnnGatherV2GetWorkspaceSize(st, 0, it, null_mut(), w, e)),
                n,
                &["out"],
            );
            nn_err(
                phase1(|w, e| aclnnCatGetWorkspaceSize(null(), 0, o24, w, e)),
                n,
                &["tensors"],
            );
            nn_err(
                phase1(|w, e| aclnnPermuteGetWorkspaceSize(st, null(), o43, w, e)),
                n,
                &["dims"],
            );
            nn_err(
                phase1(|w, e| aclnnRepeatGetWorkspaceSize(st, null(), o34, w, e)),
                n,
                &["repeats"],
            );
            nn_err(
                phase1(|w, e| aclnnTriuGetWorkspaceSize(nul, 0, o34, w, e)),
                n,
                &["self"],
            );
            nn_err(
                phase1(|w, e| aclnnInplaceTriuGetWorkspaceSize(null_mut(), 0, w, e)),
                n,
                &["selfRef"],
            );
        }
        // Invalid dtype, shape, dim: 161002.
        let i = ACLNN_ERR_PARAM_INVALID;
        let pads = int_array(&[1, 1, 1]);
        let dims = int_array(&[0, 0]);
        let mut zero = 0.0f32;
        // SAFETY: a live f32; the value is copied.
        let value = unsafe { aclCreateScalar((&mut zero as *mut f32).cast(), ACL_FLOAT) };
        // SAFETY: as above.
        unsafe {
            nn_err(
                phase1(|w, e| aclnnIndexSelectGetWorkspaceSize(st, 0, fi, o24, w, e)),
                i,
                &["index dtype"],
            );
            nn_err(
                phase1(|w, e| aclnnIndexSelectGetWorkspaceSize(st, 2, it, o24, w, e)),
                i,
                &["dim"],
            );
            nn_err(
                phase1(|w, e| aclnnIndexSelectGetWorkspaceSize(st, -1, it, o24, w, e)),
                i,
                &["shape of out"],
            );
            nn_err(
                phase1(|w, e| aclnnIndexSelectGetWorkspaceSize(st, 0, it, oh, w, e)),
                i,
                &["dtype of out"],
            );
            nn_err(
                phase1(|w, e| aclnnEmbeddingGetWorkspaceSize(it, it, o24, w, e)),
                i,
                &[],
            );
            nn_err(
                phase1(|w, e| aclnnGatherV2GetWorkspaceSize(st, -3, it, o24, w, e)),
                i,
                &["dim"],
            );
            nn_err(
                phase1(|w, e| aclnnSliceGetWorkspaceSize(st, 0, 0, 2, 0, o24, w, e)),
                i,
                &["step"],
            );
            nn_err(
                phase1(|w, e| aclnnSliceGetWorkspaceSize(st, 0, 0, 3, 1, o24, w, e)),
                i,
                &["shape of out"],
            );
            nn_err(
                phase1(|w, e| aclnnPermuteGetWorkspaceSize(st, dims, o43, w, e)),
                i,
                &["twice"],
            );
            nn_err(
                phase1(|w, e| aclnnRepeatGetWorkspaceSize(st, pads, o34, w, e)),
                i,
                &["shape of out"],
            );
            nn_err(
                phase1(|w, e| aclnnConstantPadNdGetWorkspaceSize(st, pads, value, o34, w, e)),
                i,
                &["even"],
            );
            nn_err(
                phase1(|w, e| aclnnTrilGetWorkspaceSize(it, 0, it, w, e)),
                i,
                &["at least 2"],
            );
        }
        // Cat: members that disagree outside dim, and an empty list.
        let a = tensor(&[3, 4], ACL_FLOAT, sp);
        let b = tensor(&[2, 3], ACL_FLOAT, sp);
        let l = list(&[a, b]);
        let empty = list(&[]);
        // SAFETY: as above.
        unsafe {
            nn_err(
                phase1(|w, e| aclnnCatGetWorkspaceSize(l, 0, o34, w, e)),
                i,
                &["tensors[1]"],
            );
            nn_err(
                phase1(|w, e| aclnnCatGetWorkspaceSize(empty, 0, o34, w, e)),
                i,
                &["empty"],
            );
            assert_eq!(aclDestroyTensorList(l), ACLNN_SUCCESS);
            assert_eq!(aclDestroyTensorList(empty), ACLNN_SUCCESS);
            assert_eq!(aclDestroyScalar(value), ACLNN_SUCCESS);
        }
        destroy_array(pads);
        destroy_array(dims);
        destroy_tensors(&[st, it, fi, o24, o34, oh, o43]);
    }
}
