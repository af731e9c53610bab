//! Fill, copy and cast: aclnnCast, aclnnInplaceCopy,
//! aclnnInplaceFillScalar, aclnnInplaceZero and aclnnArange, registered
//! over `ascend_kernels::conversion`.

use ascend_kernels::conversion::{
    ArangeArgs, CastArgs, InplaceCopyArgs, InplaceFillScalarArgs, InplaceZeroArgs, arange, cast,
    inplace_copy, inplace_fill_scalar, inplace_zero,
};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnCast`: `out = self` converted to `dtype`.
    aclnnCast / aclnnCastGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        dtype: aclDataType = value,
        out: *mut aclTensor = output,
    ) => cast::check, cast::run, CastArgs { self_, dtype, out };

    /// Phase one of `aclnnInplaceCopy`: `selfRef = src`, broadcast and converted.
    aclnnInplaceCopy / aclnnInplaceCopyGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        src: *const aclTensor = input,
    ) => inplace_copy::check, inplace_copy::run, InplaceCopyArgs { self_ref: selfRef, src };

    /// Phase one of `aclnnInplaceFillScalar`: every element of `selfRef` set to `value`.
    aclnnInplaceFillScalar / aclnnInplaceFillScalarGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        value: *const aclScalar = scalar,
    ) => inplace_fill_scalar::check, inplace_fill_scalar::run,
        InplaceFillScalarArgs { self_ref: selfRef, value };

    /// Phase one of `aclnnInplaceZero`: every element of `selfRef` set to 0.
    aclnnInplaceZero / aclnnInplaceZeroGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
    ) => inplace_zero::check, inplace_zero::run, InplaceZeroArgs { self_ref: selfRef };

    /// Phase one of `aclnnArange`: `out[i] = start + i * step` over `[start, end)`.
    aclnnArange / aclnnArangeGetWorkspaceSize(
        start: *const aclScalar = scalar,
        end: *const aclScalar = scalar,
        step: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => arange::check, arange::run, ArangeArgs { start, end, step, out };
}

#[cfg(test)]
mod tests {
    //! Each operator through the C ABI: values, conversions, broadcasting,
    //! strided views, zero-size tensors and the refusals of phase one.

    use std::ptr::{null, null_mut};

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::meta::{aclCreateScalar, aclDestroyScalar};
    use crate::aclnn::tests::{Dev, destroy_tensors, nn_err, run_op, strided, tensor};

    fn scalar<T: Copy>(v: T, dtype: aclDataType) -> *mut aclScalar {
        let mut v = v;
        // SAFETY: `v` is a live value of the dtype's size; it is copied.
        let s = unsafe { aclCreateScalar((&mut v as *mut T).cast(), dtype) };
        assert!(!s.is_null());
        s
    }

    fn destroy_scalars(ss: &[*mut aclScalar]) {
        for &s in ss {
            // SAFETY: each is a live descriptor destroyed once.
            assert_eq!(unsafe { aclDestroyScalar(s) }, ACLNN_SUCCESS);
        }
    }

    #[test]
    fn cast_between_types() {
        let mut dev = Dev::new();
        let x = [1.7f32, -2.5, 300.0, f32::NAN, -1e10, 0.1];
        let xp = dev.buf(&x);
        let xt = tensor(&[2, 3], ACL_FLOAT, xp);
        // FLOAT -> INT8: truncation, saturation, NaN to 0.
        let o8 = dev.zeros::<i8>(6);
        let t8 = tensor(&[2, 3], ACL_INT8, o8);
        // SAFETY (each phase one): live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnCastGetWorkspaceSize(xt, ACL_INT8, t8, w, e) },
            aclnnCast,
        );
        // FLOAT -> FLOAT16 and BF16: one rounding.
        let oh = dev.zeros::<f16>(6);
        let th = tensor(&[2, 3], ACL_FLOAT16, oh);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnCastGetWorkspaceSize(xt, ACL_FLOAT16, th, w, e) },
            aclnnCast,
        );
        let ob = dev.zeros::<bf16>(6);
        let tb = tensor(&[2, 3], ACL_BF16, ob);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnCastGetWorkspaceSize(xt, ACL_BF16, tb, w, e) },
            aclnnCast,
        );
        // FLOAT -> BOOL through the transposed view.
        let obool = dev.zeros::<u8>(6);
        let tv = strided(&[3, 2], Some(&[1, 3]), 0, ACL_FLOAT, &[6], xp);
        let tbool = tensor(&[3, 2], ACL_BOOL, obool);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnCastGetWorkspaceSize(tv, ACL_BOOL, tbool, w, e) },
            aclnnCast,
        );
        // INT32 -> INT8 wraps; INT64 -> FLOAT.
        let xi = dev.buf(&[300i32, -129, 5]);
        let ti = tensor(&[3], ACL_INT32, xi);
        let o2 = dev.zeros::<i8>(3);
        let t2 = tensor(&[3], ACL_INT8, o2);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnCastGetWorkspaceSize(ti, ACL_INT8, t2, w, e) },
            aclnnCast,
        );
        let xl = dev.buf(&[(1i64 << 40) + 1, -3]);
        let tl = tensor(&[2], ACL_INT64, xl);
        let of = dev.zeros::<f32>(2);
        let tf = tensor(&[2], ACL_FLOAT, of);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnCastGetWorkspaceSize(tl, ACL_FLOAT, tf, w, e) },
            aclnnCast,
        );
        dev.sync();
        assert_eq!(dev.read::<i8>(o8, 6), [1, -2, 127, 0, -128, 0]);
        let h: Vec<f32> = dev.read::<f16>(oh, 6).iter().map(|v| v.to_f32()).collect();
        assert_eq!(&h[..3], [f16::from_f32(1.7).to_f32(), -2.5, 300.0]);
        assert!(h[3].is_nan() && h[4] == f32::NEG_INFINITY);
        let b: Vec<f32> = dev.read::<bf16>(ob, 6).iter().map(|v| v.to_f32()).collect();
        assert_eq!(b[4], bf16::from_f32(-1e10).to_f32());
        // Transposed order: x[0], x[3], x[1], x[4], x[2], x[5].
        assert_eq!(dev.read::<u8>(obool, 6), [1, 1, 1, 1, 1, 1]);
        assert_eq!(dev.read::<i8>(o2, 3), [44, 127, 5]);
        assert_eq!(dev.read::<f32>(of, 2), [(1u64 << 40) as f32, -3.0]);
        destroy_tensors(&[xt, t8, th, tb, tv, tbool, ti, t2, tl, tf]);
    }

    #[test]
    fn copy_fill_zero_arange() {
        let mut dev = Dev::new();
        // Copy a FLOAT16 row broadcast into a [2, 3] FLOAT tensor.
        let src = dev.buf(&[f16::from_f32(0.5), f16::from_f32(-1.0), f16::from_f32(2.0)]);
        let st = tensor(&[3], ACL_FLOAT16, src);
        let dst = dev.zeros::<f32>(6);
        let dt = tensor(&[2, 3], ACL_FLOAT, dst);
        // SAFETY (each phase one): live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnInplaceCopyGetWorkspaceSize(dt, st, w, e) },
            aclnnInplaceCopy,
        );
        dev.sync();
        assert_eq!(dev.read::<f32>(dst, 6), [0.5, -1.0, 2.0, 0.5, -1.0, 2.0]);
        // Fill column 1 (a strided view) with 7, then zero row 0.
        let col = strided(&[2], Some(&[3]), 1, ACL_FLOAT, &[6], dst);
        let seven = scalar(7i32, ACL_INT32);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnInplaceFillScalarGetWorkspaceSize(col, seven, w, e) },
            aclnnInplaceFillScalar,
        );
        let row = strided(&[3], None, 0, ACL_FLOAT, &[6], dst);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnInplaceZeroGetWorkspaceSize(row, w, e) },
            aclnnInplaceZero,
        );
        dev.sync();
        assert_eq!(dev.read::<f32>(dst, 6), [0.0, 0.0, 0.0, 0.5, 7.0, 2.0]);
        // Arange into INT32 and FLOAT.
        let (s, e_, st1) = (
            scalar(2i64, ACL_INT64),
            scalar(11i64, ACL_INT64),
            scalar(3i64, ACL_INT64),
        );
        let oi = dev.zeros::<i32>(3);
        let ti = tensor(&[3], ACL_INT32, oi);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnArangeGetWorkspaceSize(s, e_, st1, ti, w, e) },
            aclnnArange,
        );
        let (fs, fe, fst) = (
            scalar(1.0f32, ACL_FLOAT),
            scalar(0.0f32, ACL_FLOAT),
            scalar(-0.25f32, ACL_FLOAT),
        );
        let of = dev.zeros::<f32>(4);
        let tf = tensor(&[4], ACL_FLOAT, of);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnArangeGetWorkspaceSize(fs, fe, fst, tf, w, e) },
            aclnnArange,
        );
        // Zero-size copy.
        let z = tensor(&[0, 3], ACL_FLOAT, dst);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnInplaceCopyGetWorkspaceSize(z, st, w, e) },
            aclnnInplaceCopy,
        );
        dev.sync();
        assert_eq!(dev.read::<i32>(oi, 3), [2, 5, 8]);
        assert_eq!(dev.read::<f32>(of, 4), [1.0, 0.75, 0.5, 0.25]);
        destroy_tensors(&[st, dt, col, row, ti, tf, z]);
        destroy_scalars(&[seven, s, e_, st1, fs, fe, fst]);
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let p = dev.zeros::<f32>(8);
        let a = tensor(&[2, 3], ACL_FLOAT, p);
        let h = tensor(&[2, 3], ACL_FLOAT16, p);
        let b = tensor(&[4, 3], ACL_FLOAT, p);
        let one = scalar(1i32, ACL_INT32);
        let zero = scalar(0i32, ACL_INT32);
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY (every call): live descriptors (or NULL) and output locations.
        unsafe {
            let code = aclnnCastGetWorkspaceSize(a, ACL_FLOAT, h, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["must be dtype (DT_FLOAT)"]);
            let code = aclnnCastGetWorkspaceSize(a, ACL_UINT16, h, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["not supported"]);
            let code = aclnnCastGetWorkspaceSize(null(), ACL_FLOAT16, h, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["self"]);
            let code = aclnnInplaceCopyGetWorkspaceSize(a, b, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["must broadcast"]);
            let code = aclnnInplaceCopyGetWorkspaceSize(a, null(), &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["src"]);
            let code = aclnnInplaceFillScalarGetWorkspaceSize(a, null(), &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["value"]);
            let code = aclnnInplaceZeroGetWorkspaceSize(null_mut(), &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["selfRef"]);
            let code = aclnnArangeGetWorkspaceSize(zero, one, zero, a, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["step must not be 0"]);
            let code = aclnnArangeGetWorkspaceSize(zero, one, one, a, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["1-D of 1 elements"]);
        }
        destroy_tensors(&[a, h, b]);
        destroy_scalars(&[one, zero]);
    }
}
