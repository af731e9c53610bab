//! The broadcasting binary operators beyond Add and Mul (subtraction, true
//! division, scalar multiplication, comparisons, powers and their in-place
//! forms), Addcdiv and InplaceMaskedFillScalar, registered over
//! `ascend_kernels::binary`.

use ascend_kernels::binary::{
    AddcdivArgs, DivArgs, DivsArgs, EqTensorArgs, GtScalarArgs, InplaceAddsArgs, InplaceDivArgs,
    InplaceDivsArgs, InplaceMulArgs, InplaceMulsArgs, InplacePowTensorTensorArgs, InplaceSubArgs,
    InplaceSubsArgs, MaskedFillScalarArgs, MulsArgs, PowScalarTensorArgs, PowTensorScalarArgs,
    PowTensorTensorArgs, SubArgs, SubsArgs, addcdiv, div, divs, eq_tensor, gt_scalar, inplace_adds,
    inplace_div, inplace_divs, inplace_masked_fill_scalar, inplace_mul, inplace_muls,
    inplace_pow_tensor_tensor, inplace_sub, inplace_subs, muls, pow_scalar_tensor,
    pow_tensor_scalar, pow_tensor_tensor, sub, subs,
};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnSub`: `out = self - alpha * other`.
    aclnnSub / aclnnSubGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        alpha: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => sub::check, sub::run, SubArgs { self_, other, alpha, out };

    /// Phase one of `aclnnSubs`: `out = self - alpha * other`, scalar `other`.
    aclnnSubs / aclnnSubsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => subs::check, subs::run, SubsArgs { self_, other, alpha, out };

    /// Phase one of `aclnnInplaceSub`: `selfRef -= alpha * other`.
    aclnnInplaceSub / aclnnInplaceSubGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclTensor = input,
        alpha: *const aclScalar = scalar,
    ) => inplace_sub::check, inplace_sub::run, InplaceSubArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnInplaceSubs`: `selfRef -= alpha * other`, scalar `other`.
    aclnnInplaceSubs / aclnnInplaceSubsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
    ) => inplace_subs::check, inplace_subs::run, InplaceSubsArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnInplaceAdds`: `selfRef += alpha * other`, scalar `other`.
    aclnnInplaceAdds / aclnnInplaceAddsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
        alpha: *const aclScalar = scalar,
    ) => inplace_adds::check, inplace_adds::run, InplaceAddsArgs { self_ref: selfRef, other, alpha };

    /// Phase one of `aclnnDiv`: `out = self / other`, true division.
    aclnnDiv / aclnnDivGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => div::check, div::run, DivArgs { self_, other, out };

    /// Phase one of `aclnnDivs`: `out = self / other`, scalar `other`.
    aclnnDivs / aclnnDivsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => divs::check, divs::run, DivsArgs { self_, other, out };

    /// Phase one of `aclnnInplaceDiv`: `selfRef /= other`.
    aclnnInplaceDiv / aclnnInplaceDivGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclTensor = input,
    ) => inplace_div::check, inplace_div::run, InplaceDivArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnInplaceDivs`: `selfRef /= other`, scalar `other`.
    aclnnInplaceDivs / aclnnInplaceDivsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
    ) => inplace_divs::check, inplace_divs::run, InplaceDivsArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnMuls`: `out = self * other`, scalar `other`.
    aclnnMuls / aclnnMulsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => muls::check, muls::run, MulsArgs { self_, other, out };

    /// Phase one of `aclnnInplaceMul`: `selfRef *= other`.
    aclnnInplaceMul / aclnnInplaceMulGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclTensor = input,
    ) => inplace_mul::check, inplace_mul::run, InplaceMulArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnInplaceMuls`: `selfRef *= other`, scalar `other`.
    aclnnInplaceMuls / aclnnInplaceMulsGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        other: *const aclScalar = scalar,
    ) => inplace_muls::check, inplace_muls::run, InplaceMulsArgs { self_ref: selfRef, other };

    /// Phase one of `aclnnGtScalar`: `out = self > other`.
    aclnnGtScalar / aclnnGtScalarGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => gt_scalar::check, gt_scalar::run, GtScalarArgs { self_, other, out };

    /// Phase one of `aclnnEqTensor`: `out = self == other`.
    aclnnEqTensor / aclnnEqTensorGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        other: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => eq_tensor::check, eq_tensor::run, EqTensorArgs { self_, other, out };

    /// Phase one of `aclnnPowTensorTensor`: `out = self ^ exponent`.
    aclnnPowTensorTensor / aclnnPowTensorTensorGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        exponent: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => pow_tensor_tensor::check, pow_tensor_tensor::run, PowTensorTensorArgs { self_, exponent, out };

    /// Phase one of `aclnnInplacePowTensorTensor`: `selfRef = selfRef ^ exponent`.
    aclnnInplacePowTensorTensor / aclnnInplacePowTensorTensorGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        exponent: *const aclTensor = input,
    ) => inplace_pow_tensor_tensor::check, inplace_pow_tensor_tensor::run,
        InplacePowTensorTensorArgs { self_ref: selfRef, exponent };

    /// Phase one of `aclnnPowTensorScalar`: `out = self ^ exponent`, scalar exponent.
    aclnnPowTensorScalar / aclnnPowTensorScalarGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        exponent: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => pow_tensor_scalar::check, pow_tensor_scalar::run, PowTensorScalarArgs { self_, exponent, out };

    /// Phase one of `aclnnPowScalarTensor`: `out = self ^ exponent`, scalar base.
    aclnnPowScalarTensor / aclnnPowScalarTensorGetWorkspaceSize(
        self_ as "self": *const aclScalar = scalar,
        exponent: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => pow_scalar_tensor::check, pow_scalar_tensor::run, PowScalarTensorArgs { self_, exponent, out };

    /// Phase one of `aclnnAddcdiv`: `out = self + value * tensor1 / tensor2`.
    aclnnAddcdiv / aclnnAddcdivGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        tensor1: *const aclTensor = input,
        tensor2: *const aclTensor = input,
        value: *const aclScalar = scalar,
        out: *mut aclTensor = output,
    ) => addcdiv::check, addcdiv::run, AddcdivArgs { self_, tensor1, tensor2, value, out };

    /// Phase one of `aclnnInplaceAddcdiv`: `selfRef += value * tensor1 / tensor2`.
    aclnnInplaceAddcdiv / aclnnInplaceAddcdivGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        tensor1: *const aclTensor = input,
        tensor2: *const aclTensor = input,
        value: *const aclScalar = scalar,
    ) => addcdiv::check_inplace, addcdiv::run_inplace,
        AddcdivArgs { self_: selfRef, tensor1, tensor2, value, out: selfRef };

    /// Phase one of `aclnnInplaceMaskedFillScalar`: `selfRef[mask] = value`.
    aclnnInplaceMaskedFillScalar / aclnnInplaceMaskedFillScalarGetWorkspaceSize(
        selfRef: *mut aclTensor = inout,
        mask: *const aclTensor = input,
        value: *const aclScalar = scalar,
    ) => inplace_masked_fill_scalar::check, inplace_masked_fill_scalar::run,
        MaskedFillScalarArgs { self_ref: selfRef, mask, value };
}

#[cfg(test)]
mod tests {
    //! Every operator of the family through the C ABI, values checked
    //! against formulas computed here: broadcasting, FLOAT16/BF16 and
    //! integer dtypes, a transposed view, the in-place forms, zero-size
    //! tensors and the refusals of phase one.

    use std::ffi::c_void;
    use std::ptr::{null, null_mut};

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::meta::{aclCreateScalar, aclDestroyScalar};
    use crate::aclnn::tests::{Dev, close, destroy_tensors, nn_err, run_op, strided, tensor};

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

    fn f32s(dev: &Dev, p: *mut c_void, n: usize) -> Vec<f32> {
        dev.read::<f32>(p, n)
    }

    #[test]
    fn tensor_tensor_operators_broadcast() {
        let mut dev = Dev::new();
        // self [2, 3], other [3]: out [2, 3].
        let a = [1.0f32, -2.0, 3.5, 0.5, 4.0, -6.0];
        let b = [2.0f32, 0.5, 1.5];
        let (ap, bp) = (dev.buf(&a), dev.buf(&b));
        let o = dev.zeros::<f32>(6);
        let (at, bt, ot) = (
            tensor(&[2, 3], ACL_FLOAT, ap),
            tensor(&[3], ACL_FLOAT, bp),
            tensor(&[2, 3], ACL_FLOAT, o),
        );
        let alpha = scalar(2.0f32, ACL_FLOAT);
        let want = |f: fn(f64, f64) -> f64| -> Vec<f64> {
            (0..6)
                .map(|i| f(f64::from(a[i]), f64::from(b[i % 3])))
                .collect()
        };
        // SAFETY (each phase one): live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnSubGetWorkspaceSize(at, bt, alpha, ot, w, e) },
            aclnnSub,
        );
        dev.sync();
        close(&f32s(&dev, o, 6), &want(|x, y| x - 2.0 * y), 1e-6);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnDivGetWorkspaceSize(at, bt, ot, w, e) },
            aclnnDiv,
        );
        dev.sync();
        close(&f32s(&dev, o, 6), &want(|x, y| x / y), 1e-6);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnPowTensorTensorGetWorkspaceSize(bt, at, ot, w, e) },
            aclnnPowTensorTensor,
        );
        dev.sync();
        close(&f32s(&dev, o, 6), &want(|x, y| y.powf(x)), 1e-6);
        let bo = dev.zeros::<u8>(6);
        let bot = tensor(&[2, 3], ACL_BOOL, bo);
        let c = dev.buf(&[1.0f32, -2.0, 0.0]);
        let ct = tensor(&[3], ACL_FLOAT, c);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnEqTensorGetWorkspaceSize(at, ct, bot, w, e) },
            aclnnEqTensor,
        );
        dev.sync();
        assert_eq!(dev.read::<u8>(bo, 6), [1, 1, 0, 0, 0, 0]);
        // Addcdiv: self [3] + 0.5 * a [2, 3] / b [3].
        let value = scalar(0.5f64, ACL_DOUBLE);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnAddcdivGetWorkspaceSize(bt, at, bt, value, ot, w, e) },
            aclnnAddcdiv,
        );
        dev.sync();
        close(&f32s(&dev, o, 6), &want(|x, y| y + 0.5 * x / y), 1e-6);
        destroy_tensors(&[at, bt, ot, bot, ct]);
        destroy_scalars(&[alpha, value]);
    }

    #[test]
    fn scalar_operators_on_half_types_and_a_transposed_view() {
        let mut dev = Dev::new();
        let vals: Vec<f32> = (0..6).map(|i| i as f32 * 0.75 - 2.0).collect();
        let h: Vec<f16> = vals.iter().map(|&v| f16::from_f32(v)).collect();
        let bh: Vec<bf16> = vals.iter().map(|&v| bf16::from_f32(v)).collect();
        let (s1, s2, two) = (
            scalar(0.5f32, ACL_FLOAT),
            scalar(1i32, ACL_INT32),
            scalar(2i64, ACL_INT64),
        );
        for (dtype, p) in [(ACL_FLOAT16, dev.buf(&h)), (ACL_BF16, dev.buf(&bh))] {
            // The [3, 2] transpose of the [2, 3] storage.
            let xt = strided(&[3, 2], Some(&[1, 3]), 0, dtype, &[6], p);
            let read = |dev: &Dev, o| -> Vec<f32> {
                if dtype == ACL_FLOAT16 {
                    dev.read::<f16>(o, 6).iter().map(|v| v.to_f32()).collect()
                } else {
                    dev.read::<bf16>(o, 6).iter().map(|v| v.to_f32()).collect()
                }
            };
            let stored: Vec<f64> = (0..6)
                .map(|i| {
                    let v = vals[(i % 2) * 3 + i / 2];
                    if dtype == ACL_FLOAT16 {
                        f64::from(f16::from_f32(v).to_f32())
                    } else {
                        f64::from(bf16::from_f32(v).to_f32())
                    }
                })
                .collect();
            let tol = if dtype == ACL_FLOAT16 { 2e-3 } else { 1e-2 };
            let o = dev.zeros::<u16>(6);
            let ot = tensor(&[3, 2], dtype, o);
            // SAFETY (each closure): live descriptors and output locations.
            let cases: Vec<ScalarCase> = vec![
                (
                    Box::new(move |w, e| unsafe {
                        aclnnSubsGetWorkspaceSize(xt, s1, s2, ot, w, e)
                    }),
                    aclnnSubs,
                    |x| x - 0.5,
                ),
                (
                    // SAFETY: live descriptors (or NULL) and output locations.
                    Box::new(move |w, e| unsafe { aclnnDivsGetWorkspaceSize(xt, two, ot, w, e) }),
                    aclnnDivs,
                    |x| x / 2.0,
                ),
                (
                    // SAFETY: live descriptors (or NULL) and output locations.
                    Box::new(move |w, e| unsafe { aclnnMulsGetWorkspaceSize(xt, s1, ot, w, e) }),
                    aclnnMuls,
                    |x| x * 0.5,
                ),
                (
                    // SAFETY: live descriptors (or NULL) and output locations.
                    Box::new(move |w, e| unsafe {
                        aclnnPowTensorScalarGetWorkspaceSize(xt, two, ot, w, e)
                    }),
                    aclnnPowTensorScalar,
                    |x| x * x,
                ),
                (
                    // SAFETY: live descriptors (or NULL) and output locations.
                    Box::new(move |w, e| unsafe {
                        aclnnPowScalarTensorGetWorkspaceSize(two, xt, ot, w, e)
                    }),
                    aclnnPowScalarTensor,
                    |x| 2f64.powf(x),
                ),
            ];
            for (p1, p2, f) in &cases {
                run_op(&dev, p1, *p2);
                dev.sync();
                let want: Vec<f64> = stored.iter().map(|&x| f(x)).collect();
                close(&read(&dev, o), &want, tol);
            }
            let g = dev.zeros::<u8>(6);
            let gt = tensor(&[3, 2], ACL_BOOL, g);
            // SAFETY: live descriptors and output locations.
            run_op(
                &dev,
                |w, e| unsafe { aclnnGtScalarGetWorkspaceSize(xt, s1, gt, w, e) },
                aclnnGtScalar,
            );
            dev.sync();
            let want: Vec<u8> = stored.iter().map(|&x| u8::from(x > 0.5)).collect();
            assert_eq!(dev.read::<u8>(g, 6), want);
            destroy_tensors(&[xt, ot, gt]);
        }
        destroy_scalars(&[s1, s2, two]);
    }

    type Phase2Fn = crate::aclnn::tests::Phase2;
    /// A phase one closure.
    type P1 = Box<dyn Fn(*mut u64, *mut *mut aclOpExecutor) -> aclnnStatus>;
    /// Phase one, phase two, the formula.
    type ScalarCase = (P1, Phase2Fn, fn(f64) -> f64);

    #[test]
    fn in_place_forms_and_integers() {
        let mut dev = Dev::new();
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = dev.buf(&x);
        let t = tensor(&[2, 3], ACL_FLOAT, p);
        let row = dev.buf(&[1.0f32, 2.0, 4.0]);
        let rt = tensor(&[3], ACL_FLOAT, row);
        let (one, half) = (scalar(1.0f32, ACL_FLOAT), scalar(0.5f32, ACL_FLOAT));
        let mut cur: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let r = [1.0, 2.0, 4.0];
        // SAFETY (each phase one): live descriptors and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnInplaceSubGetWorkspaceSize(t, rt, one, w, e) },
            aclnnInplaceSub,
        );
        cur.iter_mut().enumerate().for_each(|(i, v)| *v -= r[i % 3]);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceMulGetWorkspaceSize(t, rt, w, e) },
            aclnnInplaceMul,
        );
        cur.iter_mut().enumerate().for_each(|(i, v)| *v *= r[i % 3]);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceAddsGetWorkspaceSize(t, half, one, w, e) },
            aclnnInplaceAdds,
        );
        cur.iter_mut().for_each(|v| *v += 0.5);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceSubsGetWorkspaceSize(t, one, half, w, e) },
            aclnnInplaceSubs,
        );
        cur.iter_mut().for_each(|v| *v -= 0.5);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceMulsGetWorkspaceSize(t, half, w, e) },
            aclnnInplaceMuls,
        );
        cur.iter_mut().for_each(|v| *v *= 0.5);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceDivGetWorkspaceSize(t, rt, w, e) },
            aclnnInplaceDiv,
        );
        cur.iter_mut().enumerate().for_each(|(i, v)| *v /= r[i % 3]);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceDivsGetWorkspaceSize(t, half, w, e) },
            aclnnInplaceDivs,
        );
        cur.iter_mut().for_each(|v| *v /= 0.5);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplacePowTensorTensorGetWorkspaceSize(t, rt, w, e) },
            aclnnInplacePowTensorTensor,
        );
        cur.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = v.powf(r[i % 3]));
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceAddcdivGetWorkspaceSize(t, rt, rt, half, w, e) },
            aclnnInplaceAddcdiv,
        );
        cur.iter_mut().for_each(|v| *v += 0.5);
        let mask = dev.buf(&[0u8, 1]);
        let mt = strided(&[2, 1], None, 0, ACL_BOOL, &[2, 1], mask);
        let fill = scalar(-9i32, ACL_INT32);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnInplaceMaskedFillScalarGetWorkspaceSize(t, mt, fill, w, e) },
            aclnnInplaceMaskedFillScalar,
        );
        cur[3..].iter_mut().for_each(|v| *v = -9.0);
        dev.sync();
        close(&f32s(&dev, p, 6), &cur, 1e-5);

        // INT32: Sub wraps, Div into FLOAT, Muls keeps INT32.
        let a = dev.buf(&[i32::MIN, 7, -7]);
        let b = dev.buf(&[1i32, 2, 2]);
        let (at, bt) = (tensor(&[3], ACL_INT32, a), tensor(&[3], ACL_INT32, b));
        let oi = dev.zeros::<i32>(3);
        let oit = tensor(&[3], ACL_INT32, oi);
        let of = dev.zeros::<f32>(3);
        let oft = tensor(&[3], ACL_FLOAT, of);
        let ione = scalar(1i8, ACL_INT8);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnSubGetWorkspaceSize(at, bt, ione, oit, w, e) },
            aclnnSub,
        );
        dev.sync();
        assert_eq!(dev.read::<i32>(oi, 3), [i32::MAX, 5, -9]);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnDivGetWorkspaceSize(at, bt, oft, w, e) },
            aclnnDiv,
        );
        dev.sync();
        assert_eq!(f32s(&dev, of, 3), [i32::MIN as f32, 3.5, -3.5]);
        let three = scalar(3i64, ACL_INT64);
        run_op(
            &dev,
            // SAFETY: live descriptors (or NULL) and output locations.
            |w, e| unsafe { aclnnMulsGetWorkspaceSize(bt, three, oit, w, e) },
            aclnnMuls,
        );
        dev.sync();
        assert_eq!(dev.read::<i32>(oi, 3), [3, 6, 6]);
        destroy_tensors(&[t, rt, mt, at, bt, oit, oft]);
        destroy_scalars(&[one, half, fill, ione, three]);
    }

    #[test]
    fn zero_size_and_refusals() {
        let mut dev = Dev::new();
        let p = dev.zeros::<f32>(8);
        let e0 = tensor(&[0, 4], ACL_FLOAT, p);
        let e1 = tensor(&[4], ACL_FLOAT, p);
        // SAFETY (every call below): live descriptors (or NULL) and output locations.
        run_op(
            &dev,
            |w, e| unsafe { aclnnDivGetWorkspaceSize(e0, e1, e0, w, e) },
            aclnnDiv,
        );
        dev.sync();
        let (mut ws, mut ex) = (0u64, null_mut());
        let a = tensor(&[2, 3], ACL_FLOAT, p);
        let b = tensor(&[4, 3], ACL_FLOAT, p);
        let i = tensor(&[2, 3], ACL_INT32, p);
        let bl = tensor(&[2, 3], ACL_BOOL, p);
        let one = scalar(1.0f32, ACL_FLOAT);
        // SAFETY: live descriptors (or NULL) and output locations.
        unsafe {
            let code = aclnnSubGetWorkspaceSize(a, b, one, a, &mut ws, &mut ex);
            nn_err(
                code,
                ACLNN_ERR_PARAM_INVALID,
                &["aclnnSub", "can't broadcast"],
            );
            let code = aclnnSubGetWorkspaceSize(a, a, null(), a, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["alpha"]);
            let code = aclnnDivGetWorkspaceSize(i, i, i, &mut ws, &mut ex);
            nn_err(
                code,
                ACLNN_ERR_PARAM_INVALID,
                &["DT_FLOAT can't be cast", "DT_INT32"],
            );
            let code = aclnnInplaceDivsGetWorkspaceSize(i, one, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["selfRef"]);
            let code = aclnnSubGetWorkspaceSize(bl, bl, one, bl, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["subtraction of bool"]);
            let code = aclnnPowTensorTensorGetWorkspaceSize(bl, bl, bl, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["DT_BOOL"]);
            let code = aclnnEqTensorGetWorkspaceSize(a, null(), bl, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["other"]);
            let code = aclnnPowScalarTensorGetWorkspaceSize(null(), a, a, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["self"]);
            let code = aclnnInplaceMaskedFillScalarGetWorkspaceSize(a, a, one, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["mask dtype DT_FLOAT"]);
            let code = aclnnInplaceMaskedFillScalarGetWorkspaceSize(e1, bl, one, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["can't broadcast"]);
            let code = aclnnAddcdivGetWorkspaceSize(i, i, i, one, i, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["aclnnAddcdiv", "DT_INT32"]);
            let code = aclnnGtScalarGetWorkspaceSize(a, one, e1, &mut ws, &mut ex);
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["out should be [2, 3]"]);
        }
        destroy_tensors(&[e0, e1, a, b, i, bl]);
        destroy_scalars(&[one]);
    }
}
