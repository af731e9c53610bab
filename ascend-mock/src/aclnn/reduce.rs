//! The reductions (aclnnReduceSum, aclnnMean, aclnnArgMax, aclnnNorm), the operators
//! along one dim (aclnnLogSoftmax, aclnnCumsum, aclnnArgsort), aclnnAddRmsNorm and
//! aclnnLayerNorm, registered over `ascend_kernels::reduce` and
//! `ascend_kernels::add_rms_norm` and `ascend_kernels::layer_norm`.
//!
//! ReduceSum's `dims` and Mean's `dim` are required integer arrays: they
//! bind through [`IntArrayParam::int_array`], which refuses NULL with
//! 161001 and copies the values into a [`Dims`].

use ascend_kernels::TensorArg;
use ascend_kernels::add_rms_norm::{self, AddRmsNormArgs};
use ascend_kernels::layer_norm::{self, LayerNormArgs};
use ascend_kernels::reduce::{
    ArgMaxArgs, ArgsortArgs, CumsumArgs, LogSoftmaxArgs, MeanArgs, NormArgs, ReduceSumArgs,
    arg_max, argsort, cumsum, log_softmax, mean, norm, reduce_sum,
};
use ascend_sys::*;

use super::executor::Binder;
use super::null_err;
use super::register::Bound;
use crate::error::MockResult;

/// The values of a required `aclIntArray` parameter.
#[derive(Debug, Clone)]
pub struct Dims(pub Vec<i64>);

impl Bound for Dims {
    type Out = Vec<i64>;
    fn get(&self, _: &[TensorArg]) -> Vec<i64> {
        self.0.clone()
    }
}

/// A required integer-array parameter (NULL: 161001).
pub trait IntArrayParam {
    /// The array's values.
    fn int_array(&mut self, param: &'static str, p: *const aclIntArray) -> MockResult<Dims>;
}

impl IntArrayParam for Binder<'_> {
    fn int_array(&mut self, param: &'static str, p: *const aclIntArray) -> MockResult<Dims> {
        match self.opt_int_array(param, p)? {
            Some(v) => Ok(Dims(v)),
            None => Err(null_err(format!("{param} is NULL"))),
        }
    }
}

operator! {
    /// Phase one of `aclnnReduceSum`: `out = sum(self, dims)`.
    aclnnReduceSum / aclnnReduceSumGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dims: *const aclIntArray = int_array,
        keepDims: bool = value,
        dtype: aclDataType = value,
        out: *mut aclTensor = output,
    ) => reduce_sum::check, reduce_sum::run, ReduceSumArgs {
        self_,
        dims,
        keep_dims: keepDims,
        dtype,
        out,
    };

    /// Phase one of `aclnnMean`: `out = mean(self, dim)`.
    aclnnMean / aclnnMeanGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: *const aclIntArray = int_array,
        keepDim: bool = value,
        dtype: aclDataType = value,
        out: *mut aclTensor = output,
    ) => mean::check, mean::run, MeanArgs { self_, dim, keep_dim: keepDim, dtype, out };

    /// Phase one of `aclnnArgMax`: the index of the maximum along `dim`.
    aclnnArgMax / aclnnArgMaxGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        keepdim: bool = value,
        out: *mut aclTensor = output,
    ) => arg_max::check, arg_max::run, ArgMaxArgs { self_, dim, keepdim, out };

    /// Phase one of `aclnnLogSoftmax` along `dim`.
    aclnnLogSoftmax / aclnnLogSoftmaxGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        out: *mut aclTensor = output,
    ) => log_softmax::check, log_softmax::run, LogSoftmaxArgs { self_, dim, out };

    /// Phase one of `aclnnCumsum`: running sums along `dim`, stored as `dtype`.
    aclnnCumsum / aclnnCumsumGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        dtype: aclDataType = value,
        out: *mut aclTensor = output,
    ) => cumsum::check, cumsum::run, CumsumArgs { self_, dim, dtype, out };

    /// Phase one of `aclnnLayerNorm` over the trailing `normalizedShape` dims.
    aclnnLayerNorm / aclnnLayerNormGetWorkspaceSize(
        input: *const aclTensor = input,
        normalizedShape: *const aclIntArray = int_array,
        weightOptional: *const aclTensor = opt_input,
        biasOptional: *const aclTensor = opt_input,
        eps: f64 = value,
        out: *mut aclTensor = output,
        meanOutOptional: *mut aclTensor = opt_output,
        rstdOutOptional: *mut aclTensor = opt_output,
    ) => layer_norm::check, layer_norm::run, LayerNormArgs {
        input,
        normalized_shape: normalizedShape,
        weight: weightOptional,
        bias: biasOptional,
        eps,
        out,
        mean_out: meanOutOptional,
        rstd_out: rstdOutOptional,
    };

    /// Phase one of `aclnnArgsort`: the stable sorting indices along `dim`.
    aclnnArgsort / aclnnArgsortGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dim: i64 = value,
        descending: bool = value,
        out: *mut aclTensor = output,
    ) => argsort::check, argsort::run, ArgsortArgs { self_, dim, descending, out };

    /// Phase one of `aclnnNorm`: the vector p-norm of `self` over `dim`.
    aclnnNorm / aclnnNormGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        pScalar: *const aclScalar = scalar,
        dim: *const aclIntArray = int_array,
        keepdim: bool = value,
        out: *mut aclTensor = output,
    ) => norm::check, norm::run, NormArgs { self_, p: pScalar, dim, keepdim, out };

    /// Phase one of `aclnnAddRmsNorm`: `xOut = x1 + x2`, `yOut` its RmsNorm
    /// times `gamma`, `rstdOut` the reciprocal RMS.
    aclnnAddRmsNorm / aclnnAddRmsNormGetWorkspaceSize(
        x1: *const aclTensor = input,
        x2: *const aclTensor = input,
        gamma: *const aclTensor = input,
        epsilon: f64 = value,
        yOut: *const aclTensor = output,
        rstdOut: *const aclTensor = output,
        xOut: *const aclTensor = output,
    ) => add_rms_norm::check, add_rms_norm::run, AddRmsNormArgs {
        x1,
        x2,
        gamma,
        epsilon,
        y_out: yOut,
        rstd_out: rstdOut,
        x_out: xOut,
    };
}

#[cfg(test)]
mod tests {
    use std::ptr::null_mut;

    use half::{bf16, f16};

    use super::super::tests::{Dev, close, destroy_tensors, nn_err, run_op, strided, tensor};
    use super::*;
    use crate::exports::*;

    fn int_array(v: &[i64]) -> *mut aclIntArray {
        // SAFETY: `v` is a live slice of the stated length; it is copied.
        let a = unsafe { aclCreateIntArray(v.as_ptr(), v.len() as u64) };
        assert!(!a.is_null());
        a
    }

    fn destroy_array(a: *mut aclIntArray) {
        // SAFETY: a live array destroyed once.
        assert_eq!(unsafe { aclDestroyIntArray(a) }, ACLNN_SUCCESS);
    }

    /// `vals` stored as `dtype` (f32, f16 or bf16), and the stored values.
    fn store(dev: &mut Dev, dtype: aclDataType, vals: &[f32]) -> (*mut std::ffi::c_void, Vec<f64>) {
        match dtype {
            ACL_FLOAT16 => {
                let h: Vec<f16> = vals.iter().map(|&v| f16::from_f32(v)).collect();
                (
                    dev.buf(&h),
                    h.iter().map(|v| f64::from(v.to_f32())).collect(),
                )
            }
            ACL_BF16 => {
                let h: Vec<bf16> = vals.iter().map(|&v| bf16::from_f32(v)).collect();
                (
                    dev.buf(&h),
                    h.iter().map(|v| f64::from(v.to_f32())).collect(),
                )
            }
            _ => (dev.buf(vals), vals.iter().map(|&v| f64::from(v)).collect()),
        }
    }

    /// `n` values of `dtype` read back as f32.
    fn load(dev: &Dev, dtype: aclDataType, p: *mut std::ffi::c_void, n: usize) -> Vec<f32> {
        match dtype {
            ACL_FLOAT16 => dev.read::<f16>(p, n).iter().map(|v| v.to_f32()).collect(),
            ACL_BF16 => dev.read::<bf16>(p, n).iter().map(|v| v.to_f32()).collect(),
            _ => dev.read::<f32>(p, n),
        }
    }

    fn tol(dtype: aclDataType) -> f64 {
        match dtype {
            ACL_FLOAT16 => 2e-3,
            ACL_BF16 => 1e-2,
            _ => 1e-5,
        }
    }

    const X: [f32; 12] = [
        1.0, -2.0, 0.5, 3.0, 0.25, -1.5, 2.0, 4.0, -0.75, 1.25, 0.0, -3.0,
    ];

    #[test]
    fn sum_and_mean_float_dtypes_negative_dims_keepdim() {
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            for keep in [true, false] {
                let mut dev = Dev::new();
                let (x, xv) = store(&mut dev, dt, &X);
                let (s, _) = store(&mut dev, dt, &[0.0; 3]);
                let (m, _) = store(&mut dev, dt, &[0.0; 3]);
                let xt = tensor(&[3, 4], dt, x);
                let os: &[i64] = if keep { &[3, 1] } else { &[3] };
                let st = tensor(os, dt, s);
                let mt = tensor(os, dt, m);
                let dims = int_array(&[-1]);
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |w, e| unsafe { aclnnReduceSumGetWorkspaceSize(xt, dims, keep, dt, st, w, e) },
                    aclnnReduceSum,
                );
                run_op(
                    &dev,
                    // SAFETY: live descriptors and output locations.
                    |w, e| unsafe { aclnnMeanGetWorkspaceSize(xt, dims, keep, dt, mt, w, e) },
                    aclnnMean,
                );
                destroy_array(dims);
                destroy_tensors(&[xt, st, mt]);
                dev.sync();
                let sums: Vec<f64> = xv.chunks(4).map(|r| r.iter().sum()).collect();
                let means: Vec<f64> = sums.iter().map(|s| s / 4.0).collect();
                close(&load(&dev, dt, s, 3), &sums, tol(dt));
                close(&load(&dev, dt, m, 3), &means, tol(dt));
            }
        }
    }

    #[test]
    fn sum_over_transposed_view_and_all_dims_integers() {
        let mut dev = Dev::new();
        // self is the transpose of a (4, 3) buffer: shape (3, 4), strides (1, 3).
        let x = dev.buf(&X);
        let o = dev.zeros::<f32>(4);
        let xt = strided(&[3, 4], Some(&[1, 3]), 0, ACL_FLOAT, &[12], x);
        let ot = tensor(&[1, 4], ACL_FLOAT, o);
        let dims = int_array(&[0]);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnReduceSumGetWorkspaceSize(xt, dims, true, ACL_FLOAT, ot, w, e) },
            aclnnReduceSum,
        );
        // Integers, all dims (empty list), into a rank-0 int64.
        let iv: Vec<i32> = vec![5, -7, 100, 2, 9, 1];
        let i = dev.buf(&iv);
        let io = dev.zeros::<i64>(1);
        let it = tensor(&[2, 3], ACL_INT32, i);
        let iot = tensor(&[], ACL_INT64, io);
        let none = int_array(&[]);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnReduceSumGetWorkspaceSize(it, none, false, ACL_INT64, iot, w, e) },
            aclnnReduceSum,
        );
        // Mean of int32 rows into f32.
        let mo = dev.zeros::<f32>(2);
        let mot = tensor(&[2], ACL_FLOAT, mo);
        let last = int_array(&[1]);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnMeanGetWorkspaceSize(it, last, false, ACL_FLOAT, mot, w, e) },
            aclnnMean,
        );
        destroy_array(dims);
        destroy_array(none);
        destroy_array(last);
        destroy_tensors(&[xt, ot, it, iot, mot]);
        dev.sync();
        // Column j of the (3, 4) view is row j of the buffer.
        let want: Vec<f64> = X
            .chunks(3)
            .map(|r| r.iter().map(|&v| f64::from(v)).sum())
            .collect();
        close(&dev.read::<f32>(o, 4), &want, 1e-6);
        assert_eq!(dev.read::<i64>(io, 1), vec![110]);
        close(&dev.read::<f32>(mo, 2), &[98.0 / 3.0, 4.0], 1e-6);
    }

    #[test]
    fn argmax_dtypes_keepdim_and_transposed() {
        let mut dev = Dev::new();
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            let (x, _) = store(&mut dev, dt, &X);
            let o = dev.zeros::<i64>(3);
            let xt = tensor(&[3, 4], dt, x);
            let ot = tensor(&[3, 1], ACL_INT64, o);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe { aclnnArgMaxGetWorkspaceSize(xt, -1, true, ot, w, e) },
                aclnnArgMax,
            );
            destroy_tensors(&[xt, ot]);
            dev.sync();
            assert_eq!(dev.read::<i64>(o, 3), vec![3, 3, 1], "{dt}");
        }
        // int32 self, transposed view, int32 out without keepdim.
        let iv: Vec<i32> = vec![5, -7, 100, 2, 9, 1];
        let i = dev.buf(&iv);
        let o = dev.zeros::<i32>(3);
        // The (3, 2) transpose of the (2, 3) buffer.
        let it = strided(&[3, 2], Some(&[1, 3]), 0, ACL_INT32, &[6], i);
        let ot = tensor(&[3], ACL_INT32, o);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnArgMaxGetWorkspaceSize(it, 1, false, ot, w, e) },
            aclnnArgMax,
        );
        destroy_tensors(&[it, ot]);
        dev.sync();
        // Rows of the view: (5, 2), (-7, 9), (100, 1).
        assert_eq!(dev.read::<i32>(o, 3), vec![0, 1, 0]);
    }

    #[test]
    fn add_rms_norm_float_dtypes_and_rstd_shape() {
        let g = [1.0f32, 0.5, 2.0, -1.0];
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            let mut dev = Dev::new();
            let (x1, x1v) = store(&mut dev, dt, &X);
            let x2vals: Vec<f32> = X.iter().map(|v| v * 0.5 - 0.25).collect();
            let (x2, x2v) = store(&mut dev, dt, &x2vals);
            let (gm, gv) = store(&mut dev, dt, &g);
            let (y, _) = store(&mut dev, dt, &[0.0; 12]);
            let (xo, _) = store(&mut dev, dt, &[0.0; 12]);
            let r = dev.zeros::<f32>(3);
            let ts = [
                tensor(&[3, 4], dt, x1),
                tensor(&[3, 4], dt, x2),
                tensor(&[4], dt, gm),
                tensor(&[3, 4], dt, y),
                tensor(&[3, 1], ACL_FLOAT, r),
                tensor(&[3, 4], dt, xo),
            ];
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe {
                    aclnnAddRmsNormGetWorkspaceSize(
                        ts[0], ts[1], ts[2], 1e-6, ts[3], ts[4], ts[5], w, e,
                    )
                },
                aclnnAddRmsNorm,
            );
            destroy_tensors(&ts);
            dev.sync();
            let (mut wx, mut wy, mut wr) = (Vec::new(), Vec::new(), Vec::new());
            for row in 0..3 {
                let xs: Vec<f64> = (0..4)
                    .map(|j| x1v[row * 4 + j] + x2v[row * 4 + j])
                    .collect();
                let ms = xs.iter().map(|v| v * v).sum::<f64>() / 4.0;
                let rs = 1.0 / (ms + 1e-6).sqrt();
                wr.push(rs);
                wy.extend(xs.iter().zip(&gv).map(|(v, gg)| v * rs * gg));
                wx.extend(xs);
            }
            close(&load(&dev, dt, xo, 12), &wx, tol(dt));
            close(&load(&dev, dt, y, 12), &wy, tol(dt));
            close(&dev.read::<f32>(r, 3), &wr, 1e-5);
        }
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let x = dev.zeros::<f32>(12);
        let o = dev.zeros::<f32>(12);
        let xt = tensor(&[3, 4], ACL_FLOAT, x);
        let o3 = tensor(&[3], ACL_FLOAT, o);
        let o31 = tensor(&[3, 1], ACL_FLOAT, o);
        let oi = tensor(&[3], ACL_INT64, o);
        let dims = int_array(&[-1]);
        let bad = int_array(&[2]);
        let dup = int_array(&[1, -1]);
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY (every call below): live descriptors or NULL where tested;
        // valid output locations.
        unsafe {
            nn_err(
                aclnnReduceSumGetWorkspaceSize(
                    xt,
                    null_mut(),
                    false,
                    ACL_FLOAT,
                    o3,
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_NULLPTR,
                &["dims"],
            );
            nn_err(
                aclnnMeanGetWorkspaceSize(null_mut(), dims, false, ACL_FLOAT, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["self"],
            );
            nn_err(
                aclnnReduceSumGetWorkspaceSize(xt, bad, false, ACL_FLOAT, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dims must be in range [-2, 1], but got 2"],
            );
            nn_err(
                aclnnMeanGetWorkspaceSize(xt, dup, false, ACL_FLOAT, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["more than once"],
            );
            nn_err(
                aclnnMeanGetWorkspaceSize(xt, dims, true, ACL_FLOAT, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out shape [3] should be [3, 1]"],
            );
            nn_err(
                aclnnReduceSumGetWorkspaceSize(xt, dims, false, ACL_FLOAT, o31, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out shape [3, 1] should be [3]"],
            );
            nn_err(
                aclnnMeanGetWorkspaceSize(xt, dims, false, ACL_BOOL, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dtype"],
            );
            nn_err(
                aclnnReduceSumGetWorkspaceSize(xt, dims, false, ACL_INT64, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out dtype DT_FLOAT should be the same as dtype DT_INT64"],
            );
            nn_err(
                aclnnArgMaxGetWorkspaceSize(xt, 2, false, oi, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dim must be in range [-2, 1], but got 2"],
            );
            nn_err(
                aclnnArgMaxGetWorkspaceSize(xt, 1, false, o3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out dtype DT_FLOAT"],
            );
            nn_err(
                aclnnArgMaxGetWorkspaceSize(xt, 1, false, null_mut(), &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["out"],
            );
            nn_err(
                aclnnAddRmsNormGetWorkspaceSize(
                    xt,
                    xt,
                    null_mut(),
                    1e-6,
                    xt,
                    o31,
                    xt,
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_NULLPTR,
                &["gamma"],
            );
            nn_err(
                aclnnAddRmsNormGetWorkspaceSize(xt, xt, o3, 1e-6, xt, o31, xt, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["gamma shape [3] should equal the last dims of x1 shape [3, 4]"],
            );
            nn_err(
                aclnnAddRmsNormGetWorkspaceSize(xt, xt, o3, 1e-6, xt, o3, xt, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["gamma shape"],
            );
        }
        for a in [dims, bad, dup] {
            destroy_array(a);
        }
        destroy_tensors(&[xt, o3, o31, oi]);
    }
    #[test]
    fn log_softmax_and_cumsum_dtypes_and_transposed() {
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            let mut dev = Dev::new();
            let (x, xv) = store(&mut dev, dt, &X);
            let (l, _) = store(&mut dev, dt, &[0.0; 12]);
            let (c, _) = store(&mut dev, dt, &[0.0; 12]);
            let xt = tensor(&[3, 4], dt, x);
            let lt = tensor(&[3, 4], dt, l);
            let ct = tensor(&[3, 4], dt, c);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe { aclnnLogSoftmaxGetWorkspaceSize(xt, -1, lt, w, e) },
                aclnnLogSoftmax,
            );
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe { aclnnCumsumGetWorkspaceSize(xt, -2, dt, ct, w, e) },
                aclnnCumsum,
            );
            destroy_tensors(&[xt, lt, ct]);
            dev.sync();
            let mut want_l = Vec::new();
            for r in xv.chunks(4) {
                let lse = r.iter().map(|v| v.exp()).sum::<f64>().ln();
                want_l.extend(r.iter().map(|v| v - lse));
            }
            let mut want_c = xv.clone();
            for i in 4..12 {
                want_c[i] += want_c[i - 4];
            }
            close(&load(&dev, dt, l, 12), &want_l, tol(dt));
            close(&load(&dev, dt, c, 12), &want_c, tol(dt));
        }
        // Cumsum of a transposed int32 view into int64, and refusals.
        let mut dev = Dev::new();
        let iv: Vec<i32> = vec![5, -7, 100, 2, 9, 1];
        let i = dev.buf(&iv);
        let o = dev.zeros::<i64>(6);
        // The (3, 2) transpose of the (2, 3) buffer: rows (5, 2), (-7, 9), (100, 1).
        let it = strided(&[3, 2], Some(&[1, 3]), 0, ACL_INT32, &[6], i);
        let ot = tensor(&[3, 2], ACL_INT64, o);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnCumsumGetWorkspaceSize(it, 1, ACL_INT64, ot, w, e) },
            aclnnCumsum,
        );
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY (every call): live descriptors or NULL where tested.
        unsafe {
            nn_err(
                aclnnCumsumGetWorkspaceSize(it, 1, ACL_INT32, ot, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out dtype DT_INT64 should be the same as dtype DT_INT32"],
            );
            nn_err(
                aclnnCumsumGetWorkspaceSize(it, -3, ACL_INT64, ot, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dim must be in range [-2, 1], but got -3"],
            );
            nn_err(
                aclnnLogSoftmaxGetWorkspaceSize(it, 0, ot, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["self dtype DT_INT32"],
            );
            nn_err(
                aclnnLogSoftmaxGetWorkspaceSize(null_mut(), 0, ot, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["self"],
            );
        }
        destroy_tensors(&[it, ot]);
        dev.sync();
        assert_eq!(dev.read::<i64>(o, 6), vec![5, 7, -7, 2, 100, 101]);
    }
    #[test]
    fn layer_norm_dtypes_optional_affine_and_refusals() {
        let w = [1.0f32, 0.5, 2.0, -1.0];
        let b = [0.0f32, 0.25, -0.5, 1.0];
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            for affine in [true, false] {
                let mut dev = Dev::new();
                let (x, xv) = store(&mut dev, dt, &X);
                let (wp, wv) = store(&mut dev, dt, &w);
                let (bp, bv) = store(&mut dev, dt, &b);
                let (y, _) = store(&mut dev, dt, &[0.0; 12]);
                let m = dev.zeros::<f32>(3);
                let r = dev.zeros::<f32>(3);
                let xt = tensor(&[3, 4], dt, x);
                let (wt, bt) = if affine {
                    (tensor(&[4], dt, wp), tensor(&[4], dt, bp))
                } else {
                    (null_mut(), null_mut())
                };
                let yt = tensor(&[3, 4], dt, y);
                let mt = tensor(&[3, 1], ACL_FLOAT, m);
                let rt = tensor(&[3, 1], ACL_FLOAT, r);
                let ns = int_array(&[4]);
                run_op(
                    &dev,
                    // SAFETY: live descriptors (or NULL optionals) and output locations.
                    |ws, e| unsafe {
                        aclnnLayerNormGetWorkspaceSize(xt, ns, wt, bt, 1e-5, yt, mt, rt, ws, e)
                    },
                    aclnnLayerNorm,
                );
                destroy_array(ns);
                destroy_tensors(&[xt, yt, mt, rt]);
                if affine {
                    destroy_tensors(&[wt, bt]);
                }
                dev.sync();
                let (mut wy, mut wm, mut wr) = (Vec::new(), Vec::new(), Vec::new());
                for row in xv.chunks(4) {
                    let mean = row.iter().sum::<f64>() / 4.0;
                    let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
                    let rstd = 1.0 / (var + 1e-5).sqrt();
                    wm.push(mean);
                    wr.push(rstd);
                    for (j, v) in row.iter().enumerate() {
                        let (g, c) = if affine { (wv[j], bv[j]) } else { (1.0, 0.0) };
                        wy.push((v - mean) * rstd * g + c);
                    }
                }
                close(&load(&dev, dt, y, 12), &wy, tol(dt));
                close(&dev.read::<f32>(m, 3), &wm, 1e-5);
                close(&dev.read::<f32>(r, 3), &wr, 1e-5);
            }
        }
        let mut dev = Dev::new();
        let x = dev.zeros::<f32>(12);
        let xt = tensor(&[3, 4], ACL_FLOAT, x);
        let bad = tensor(&[4, 3], ACL_FLOAT, x);
        let ns = int_array(&[3]);
        let ok = int_array(&[4]);
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY (every call): live descriptors or NULL where tested.
        unsafe {
            nn_err(
                aclnnLayerNormGetWorkspaceSize(
                    xt,
                    null_mut(),
                    null_mut(),
                    null_mut(),
                    1e-5,
                    xt,
                    null_mut(),
                    null_mut(),
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_NULLPTR,
                &["normalizedShape"],
            );
            nn_err(
                aclnnLayerNormGetWorkspaceSize(
                    xt,
                    ns,
                    null_mut(),
                    null_mut(),
                    1e-5,
                    xt,
                    null_mut(),
                    null_mut(),
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_INVALID,
                &["normalizedShape [3]"],
            );
            nn_err(
                aclnnLayerNormGetWorkspaceSize(
                    xt,
                    ok,
                    null_mut(),
                    null_mut(),
                    1e-5,
                    bad,
                    null_mut(),
                    null_mut(),
                    &mut ws,
                    &mut ex,
                ),
                ACLNN_ERR_PARAM_INVALID,
                &["out shape [4, 3]"],
            );
        }
        destroy_array(ns);
        destroy_array(ok);
        destroy_tensors(&[xt, bad]);
    }
    #[test]
    fn argsort_dtypes_directions_and_transposed() {
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            let mut dev = Dev::new();
            let (x, _) = store(&mut dev, dt, &X);
            let o = dev.zeros::<i64>(12);
            let xt = tensor(&[3, 4], dt, x);
            let ot = tensor(&[3, 4], ACL_INT64, o);
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe { aclnnArgsortGetWorkspaceSize(xt, -1, true, ot, w, e) },
                aclnnArgsort,
            );
            destroy_tensors(&[xt, ot]);
            dev.sync();
            // Rows (1, -2, 0.5, 3), (0.25, -1.5, 2, 4), (-0.75, 1.25, 0, -3).
            assert_eq!(
                dev.read::<i64>(o, 12),
                vec![3, 0, 2, 1, 3, 2, 0, 1, 1, 2, 0, 3],
                "{dt}"
            );
        }
        let mut dev = Dev::new();
        let iv: Vec<i32> = vec![5, -7, 100, 2, 9, 1];
        let i = dev.buf(&iv);
        let o = dev.zeros::<i64>(6);
        // The (3, 2) transpose: columns of the view are (5, -7, 100) and (2, 9, 1).
        let it = strided(&[3, 2], Some(&[1, 3]), 0, ACL_INT32, &[6], i);
        let ot = tensor(&[3, 2], ACL_INT64, o);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnArgsortGetWorkspaceSize(it, 0, false, ot, w, e) },
            aclnnArgsort,
        );
        let bad = tensor(&[3, 2], ACL_INT32, o);
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY (every call): live descriptors or NULL where tested.
        unsafe {
            nn_err(
                aclnnArgsortGetWorkspaceSize(it, 0, false, bad, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out dtype DT_INT32"],
            );
            nn_err(
                aclnnArgsortGetWorkspaceSize(it, 2, false, ot, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dim must be in range [-2, 1], but got 2"],
            );
        }
        destroy_tensors(&[it, ot, bad]);
        dev.sync();
        assert_eq!(dev.read::<i64>(o, 6), vec![1, 2, 0, 0, 2, 1]);
    }
    #[test]
    fn norm_p2_pinf_dtypes_and_refusals() {
        for dt in [ACL_FLOAT, ACL_FLOAT16, ACL_BF16] {
            let mut dev = Dev::new();
            let (x, xv) = store(&mut dev, dt, &X);
            let (o2, _) = store(&mut dev, dt, &[0.0; 3]);
            let (oi, _) = store(&mut dev, dt, &[0.0; 4]);
            let xt = tensor(&[3, 4], dt, x);
            let o2t = tensor(&[3, 1], dt, o2);
            let oit = tensor(&[4], dt, oi);
            let last = int_array(&[-1]);
            let first = int_array(&[0]);
            let mut two = 2.0f32;
            let mut inf = f32::INFINITY;
            // SAFETY: live f32 values; copied.
            let (p2, pinf) = unsafe {
                (
                    aclCreateScalar((&mut two as *mut f32).cast(), ACL_FLOAT),
                    aclCreateScalar((&mut inf as *mut f32).cast(), ACL_FLOAT),
                )
            };
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe { aclnnNormGetWorkspaceSize(xt, p2, last, true, o2t, w, e) },
                aclnnNorm,
            );
            run_op(
                &dev,
                // SAFETY: live descriptors and output locations.
                |w, e| unsafe { aclnnNormGetWorkspaceSize(xt, pinf, first, false, oit, w, e) },
                aclnnNorm,
            );
            let (mut ws, mut ex) = (0u64, null_mut());
            // SAFETY (every call): live descriptors or NULL where tested.
            unsafe {
                nn_err(
                    aclnnNormGetWorkspaceSize(xt, null_mut(), last, true, o2t, &mut ws, &mut ex),
                    ACLNN_ERR_PARAM_NULLPTR,
                    &["pScalar"],
                );
                nn_err(
                    aclnnNormGetWorkspaceSize(xt, p2, last, false, o2t, &mut ws, &mut ex),
                    ACLNN_ERR_PARAM_INVALID,
                    &["out shape [3, 1] should be [3]"],
                );
                assert_eq!(aclDestroyScalar(p2), ACLNN_SUCCESS);
                assert_eq!(aclDestroyScalar(pinf), ACLNN_SUCCESS);
            }
            destroy_array(last);
            destroy_array(first);
            destroy_tensors(&[xt, o2t, oit]);
            dev.sync();
            let want2: Vec<f64> = xv
                .chunks(4)
                .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
                .collect();
            let wanti: Vec<f64> = (0..4)
                .map(|j| (0..3).map(|i| xv[i * 4 + j].abs()).fold(0.0, f64::max))
                .collect();
            close(&load(&dev, dt, o2, 3), &want2, tol(dt));
            close(&load(&dev, dt, oi, 4), &wanti, tol(dt));
        }
    }
}
