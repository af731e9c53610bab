//! The elementwise unary operators (`out = op(self)` and the in-place
//! forms), registered over the table of `ascend_kernels::unary`: one
//! registration per operator, all with the same argument struct.

use ascend_kernels::unary::{UnaryArgs, abs};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnAbs`: `out = |self|`.
    aclnnAbs / aclnnAbsGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => abs::check, abs::run, UnaryArgs { self_, out };
}

#[cfg(test)]
mod tests {
    //! Every operator of the family through the C ABI against its formula
    //! computed here, on FLOAT, FLOAT16 and BF16, contiguous and transposed,
    //! and the shared refusals of phase one.

    use std::ffi::c_void;

    use half::{bf16, f16};

    use super::*;
    use crate::aclnn::tests::{
        Dev, Phase2, close, destroy_tensors, nn_err, run_op, strided, tensor,
    };

    type Phase1 = unsafe extern "C" fn(
        *const aclTensor,
        *mut aclTensor,
        *mut u64,
        *mut *mut aclOpExecutor,
    ) -> aclnnStatus;

    /// One operator: phase one, phase two, the formula.
    type Case = (Phase1, Phase2, fn(f64) -> f64);

    const CASES: &[Case] = &[(aclnnAbsGetWorkspaceSize, aclnnAbs, f64::abs)];

    /// Inputs on both sides of zero, not all representable exactly in f16.
    fn inputs(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 - 2.1) * 1.3).collect()
    }

    /// `values` stored as `dtype`, and the values as stored.
    fn store(dev: &mut Dev, dtype: aclDataType, values: &[f32]) -> (*mut c_void, Vec<f64>) {
        match dtype {
            ACL_FLOAT16 => {
                let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
                let exact = h.iter().map(|v| f64::from(v.to_f32())).collect();
                (dev.buf(&h), exact)
            }
            ACL_BF16 => {
                let h: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
                let exact = h.iter().map(|v| f64::from(v.to_f32())).collect();
                (dev.buf(&h), exact)
            }
            _ => (
                dev.buf(values),
                values.iter().map(|&v| f64::from(v)).collect(),
            ),
        }
    }

    fn load(dev: &Dev, dtype: aclDataType, p: *mut c_void, n: usize) -> Vec<f32> {
        match dtype {
            ACL_FLOAT16 => dev.read::<f16>(p, n).iter().map(|v| v.to_f32()).collect(),
            ACL_BF16 => dev.read::<bf16>(p, n).iter().map(|v| v.to_f32()).collect(),
            _ => dev.read::<f32>(p, n),
        }
    }

    #[test]
    fn every_unary_operator_matches_its_formula() {
        let mut dev = Dev::new();
        for &(phase1, phase2, formula) in CASES {
            for (dtype, tol) in [(ACL_FLOAT, 1e-6), (ACL_FLOAT16, 1e-3), (ACL_BF16, 8e-3)] {
                let x = inputs(15);
                let (xp, exact) = store(&mut dev, dtype, &x);
                // Contiguous [3, 5], then the transposed [5, 3] view of the same storage.
                for transposed in [false, true] {
                    let o = dev.zeros::<f32>(15);
                    let xt = if transposed {
                        strided(&[5, 3], Some(&[1, 5]), 0, dtype, &[15], xp)
                    } else {
                        tensor(&[3, 5], dtype, xp)
                    };
                    let shape: &[i64] = if transposed { &[5, 3] } else { &[3, 5] };
                    let ot = tensor(shape, dtype, o);
                    // SAFETY: live descriptors and output locations.
                    run_op(&dev, |w, e| unsafe { phase1(xt, ot, w, e) }, phase2);
                    destroy_tensors(&[xt, ot]);
                    dev.sync();
                    let want: Vec<f64> = (0..15)
                        .map(|i| {
                            let src = if transposed { (i % 3) * 5 + i / 3 } else { i };
                            formula(exact[src])
                        })
                        .collect();
                    close(&load(&dev, dtype, o, 15), &want, tol);
                }
            }
        }
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let x = dev.zeros::<f32>(6);
        let o = dev.zeros::<f32>(6);
        for &(phase1, _, _) in CASES {
            let (xt, bad) = (tensor(&[2, 3], ACL_FLOAT, x), tensor(&[3, 2], ACL_FLOAT, o));
            let (mut ws, mut ex) = (0u64, std::ptr::null_mut());
            // SAFETY: live descriptors (or NULL) and output locations.
            let code = unsafe { phase1(xt, bad, &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_INVALID, &["shape of out [3, 2]"]);
            // SAFETY: as above.
            let code = unsafe { phase1(std::ptr::null(), bad, &mut ws, &mut ex) };
            nn_err(code, ACLNN_ERR_PARAM_NULLPTR, &["self"]);
            destroy_tensors(&[xt, bad]);
        }
    }
}
