//! The matrix products: aclnnMatmul, the fixed-rank aclnnMm,
//! aclnnBatchMatMul and aclnnMv, the outer product aclnnGer, and the
//! grouped matmuls aclnnGroupedMatmulV3 and aclnnGroupedMatmulV4
//! (tensor-list operands).

use ascend_kernels::grouped_matmul::{self, GroupedMatmulV3Args, GroupedMatmulV4Args};
use ascend_kernels::matmul::{self, GerArgs, MatmulArgs};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnMatmul`: `out = self @ mat2` (batched, broadcast).
    aclnnMatmul / aclnnMatmulGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        mat2: *const aclTensor = input,
        out: *mut aclTensor = output,
        cubeMathType: i8 = value,
    ) => matmul::check, matmul::run, MatmulArgs { self_, mat2, out, cube_math_type: cubeMathType };

    /// Phase one of `aclnnMm`: `out = self @ mat2`, both 2-D.
    aclnnMm / aclnnMmGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        mat2: *const aclTensor = input,
        out: *mut aclTensor = output,
        cubeMathType: i8 = value,
    ) => matmul::check_mm, matmul::run_mm, MatmulArgs { self_, mat2, out, cube_math_type: cubeMathType };

    /// Phase one of `aclnnBatchMatMul`: `out = self @ mat2`, both 3-D.
    aclnnBatchMatMul / aclnnBatchMatMulGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        mat2: *const aclTensor = input,
        out: *mut aclTensor = output,
        cubeMathType: i8 = value,
    ) => matmul::check_bmm, matmul::run_bmm, MatmulArgs { self_, mat2, out, cube_math_type: cubeMathType };

    /// Phase one of `aclnnMv`: `out = self @ vec`.
    aclnnMv / aclnnMvGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        vec: *const aclTensor = input,
        out: *mut aclTensor = output,
        cubeMathType: i8 = value,
    ) => matmul::check_mv, matmul::run_mv, MatmulArgs { self_, mat2: vec, out, cube_math_type: cubeMathType };

    /// Phase one of `aclnnGer`: `out[i, j] = self[i] * vec2[j]`.
    aclnnGer / aclnnGerGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        vec2: *const aclTensor = input,
        out: *mut aclTensor = output,
    ) => matmul::check_ger, matmul::run_ger, GerArgs { self_, vec2, out };

    /// Phase one of `aclnnGroupedMatmulV3`.
    aclnnGroupedMatmulV3 / aclnnGroupedMatmulV3GetWorkspaceSize(
        x: *const aclTensorList = input_list,
        weight: *const aclTensorList = input_list,
        biasOptional: *const aclTensorList = opt_input_list,
        scaleOptional: *const aclTensorList = opt_input_list,
        offsetOptional: *const aclTensorList = opt_input_list,
        antiquantScaleOptional: *const aclTensorList = opt_input_list,
        antiquantOffsetOptional: *const aclTensorList = opt_input_list,
        groupListOptional: *const aclTensor = opt_input,
        splitItem: i64 = value,
        groupType: i64 = value,
        y: *const aclTensorList = output_list,
    ) => grouped_matmul::check_v3, grouped_matmul::run_v3, GroupedMatmulV3Args {
        x,
        weight,
        bias: biasOptional,
        scale: scaleOptional,
        offset: offsetOptional,
        antiquant_scale: antiquantScaleOptional,
        antiquant_offset: antiquantOffsetOptional,
        group_list: groupListOptional,
        split_item: splitItem,
        group_type: groupType,
        y,
    };

    /// Phase one of `aclnnGroupedMatmulV4`.
    aclnnGroupedMatmulV4 / aclnnGroupedMatmulV4GetWorkspaceSize(
        x: *const aclTensorList = input_list,
        weight: *const aclTensorList = input_list,
        biasOptional: *const aclTensorList = opt_input_list,
        scaleOptional: *const aclTensorList = opt_input_list,
        offsetOptional: *const aclTensorList = opt_input_list,
        antiquantScaleOptional: *const aclTensorList = opt_input_list,
        antiquantOffsetOptional: *const aclTensorList = opt_input_list,
        perTokenScaleOptional: *const aclTensorList = opt_input_list,
        groupListOptional: *const aclTensor = opt_input,
        activationInputOptional: *const aclTensorList = opt_input_list,
        activationQuantScaleOptional: *const aclTensorList = opt_input_list,
        activationQuantOffsetOptional: *const aclTensorList = opt_input_list,
        splitItem: i64 = value,
        groupType: i64 = value,
        groupListType: i64 = value,
        actType: i64 = value,
        out: *mut aclTensorList = output_list,
        activationFeatureOutOptional: *mut aclTensorList = opt_output_list,
        dynQuantScaleOutOptional: *mut aclTensorList = opt_output_list,
    ) => grouped_matmul::check, grouped_matmul::run, GroupedMatmulV4Args {
        x,
        weight,
        bias: biasOptional,
        scale: scaleOptional,
        offset: offsetOptional,
        antiquant_scale: antiquantScaleOptional,
        antiquant_offset: antiquantOffsetOptional,
        per_token_scale: perTokenScaleOptional,
        group_list: groupListOptional,
        activation_input: activationInputOptional,
        activation_quant_scale: activationQuantScaleOptional,
        activation_quant_offset: activationQuantOffsetOptional,
        split_item: splitItem,
        group_type: groupType,
        group_list_type: groupListType,
        act_type: actType,
        out,
        activation_feature_out: activationFeatureOutOptional,
        dyn_quant_scale_out: dynQuantScaleOutOptional,
    };
}

#[cfg(test)]
mod tests {
    //! aclnnMm, aclnnBatchMatMul, aclnnMv and aclnnGer through the C ABI
    //! against plain loops: odd sizes, a transposed operand, a broadcast
    //! batch, a strided vector; and the phase-one refusals (NULL operands,
    //! ranks, the documented cubeMathType rules).

    use std::ptr::null_mut;

    use half::f16;

    use super::*;
    use crate::aclnn::tests::{Dev, close, destroy_tensors, nn_err, run_op, strided, tensor};

    fn vals(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 997) as f32 / 498.5 - 1.0)
            .collect()
    }

    #[test]
    fn mm_bmm_mv_ger_match_loops() {
        let mut dev = Dev::new();
        // Mm: [13, 21] @ the transposed view of a [9, 21] buffer, FLOAT16.
        let (m, k, n) = (13usize, 21usize, 9usize);
        let a: Vec<f32> = vals(m * k, 1)
            .iter()
            .map(|&v| f16::from_f32(v).to_f32())
            .collect();
        let b: Vec<f32> = vals(n * k, 2)
            .iter()
            .map(|&v| f16::from_f32(v).to_f32())
            .collect();
        let ah: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
        let bh: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
        let (ap, bp) = (dev.buf(&ah), dev.buf(&bh));
        let op = dev.zeros::<f16>(m * n);
        let at = tensor(&[m as i64, k as i64], ACL_FLOAT16, ap);
        let bt = strided(
            &[k as i64, n as i64],
            Some(&[1, k as i64]),
            0,
            ACL_FLOAT16,
            &[(n * k) as i64],
            bp,
        );
        let ot = tensor(&[m as i64, n as i64], ACL_FLOAT16, op);
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnMmGetWorkspaceSize(at, bt, ot, 0, w, e) },
            aclnnMm,
        );
        // Bmm: [1, 4, 6] @ [3, 6, 5] (self's batch broadcast), FLOAT.
        let x = vals(24, 3);
        let y = vals(90, 4);
        let (xp, yp) = (dev.buf(&x), dev.buf(&y));
        let zp = dev.zeros::<f32>(60);
        let (xt, yt, zt) = (
            tensor(&[1, 4, 6], ACL_FLOAT, xp),
            tensor(&[3, 6, 5], ACL_FLOAT, yp),
            tensor(&[3, 4, 5], ACL_FLOAT, zp),
        );
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnBatchMatMulGetWorkspaceSize(xt, yt, zt, 1, w, e) },
            aclnnBatchMatMul,
        );
        // Mv: [7, 5] @ every other element of a 10-element vector, FLOAT.
        let mv_a = vals(35, 5);
        let mv_v = vals(10, 6);
        let (map, mvp) = (dev.buf(&mv_a), dev.buf(&mv_v));
        let mop = dev.zeros::<f32>(7);
        let (mat, mvt, mot) = (
            tensor(&[7, 5], ACL_FLOAT, map),
            strided(&[5], Some(&[2]), 0, ACL_FLOAT, &[10], mvp),
            tensor(&[7], ACL_FLOAT, mop),
        );
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnMvGetWorkspaceSize(mat, mvt, mot, 0, w, e) },
            aclnnMv,
        );
        // Ger: INT32 [3] x INT32 [2] -> INT64 [3, 2].
        let gx = [3i32, -4, 100000];
        let gy = [7i32, -2];
        let (gxp, gyp) = (dev.buf(&gx), dev.buf(&gy));
        let gop = dev.zeros::<i64>(6);
        let (gxt, gyt, got) = (
            tensor(&[3], ACL_INT32, gxp),
            tensor(&[2], ACL_INT32, gyp),
            tensor(&[3, 2], ACL_INT64, gop),
        );
        run_op(
            &dev,
            // SAFETY: live descriptors and output locations.
            |w, e| unsafe { aclnnGerGetWorkspaceSize(gxt, gyt, got, w, e) },
            aclnnGer,
        );
        destroy_tensors(&[at, bt, ot, xt, yt, zt, mat, mvt, mot, gxt, gyt, got]);
        dev.sync();

        let mut want = Vec::new();
        for i in 0..m {
            for j in 0..n {
                want.push(
                    (0..k)
                        .map(|p| f64::from(a[i * k + p]) * f64::from(b[j * k + p]))
                        .sum::<f64>(),
                );
            }
        }
        let got_mm: Vec<f32> = dev
            .read::<f16>(op, m * n)
            .iter()
            .map(|v| v.to_f32())
            .collect();
        close(&got_mm, &want, 3e-3);

        let mut want = Vec::new();
        for t in 0..3 {
            for i in 0..4 {
                for j in 0..5 {
                    want.push(
                        (0..6)
                            .map(|p| f64::from(x[i * 6 + p]) * f64::from(y[(t * 6 + p) * 5 + j]))
                            .sum::<f64>(),
                    );
                }
            }
        }
        close(&dev.read::<f32>(zp, 60), &want, 1e-5);

        let want: Vec<f64> = (0..7)
            .map(|i| {
                (0..5)
                    .map(|p| f64::from(mv_a[i * 5 + p]) * f64::from(mv_v[2 * p]))
                    .sum()
            })
            .collect();
        close(&dev.read::<f32>(mop, 7), &want, 1e-5);

        let want: Vec<i64> = gx
            .iter()
            .flat_map(|&a| gy.iter().map(move |&b| i64::from(a.wrapping_mul(b))))
            .collect();
        assert_eq!(dev.read::<i64>(gop, 6), want);
    }

    #[test]
    fn phase_one_refusals() {
        let mut dev = Dev::new();
        let p = dev.zeros::<f32>(64);
        let a = tensor(&[2, 3], ACL_FLOAT, p);
        let b = tensor(&[3, 4], ACL_FLOAT, p);
        let o = tensor(&[2, 4], ACL_FLOAT, p);
        let a3 = tensor(&[1, 2, 3], ACL_FLOAT, p);
        let h = tensor(&[2, 3], ACL_FLOAT16, p);
        let hb = tensor(&[3, 4], ACL_FLOAT16, p);
        let v = tensor(&[3], ACL_FLOAT, p);
        let ov = tensor(&[2], ACL_FLOAT, p);
        let (mut ws, mut ex) = (0u64, null_mut());
        // SAFETY (all calls): live descriptors or NULL, output locations.
        unsafe {
            nn_err(
                aclnnMmGetWorkspaceSize(null_mut(), b, o, 0, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["self"],
            );
            nn_err(
                aclnnMmGetWorkspaceSize(a3, b, o, 0, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dim of self should be 2 for aclnnMm"],
            );
            nn_err(
                aclnnMmGetWorkspaceSize(h, hb, o, 3, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["USE_HF32", "DT_FLOAT16"],
            );
            nn_err(
                aclnnBatchMatMulGetWorkspaceSize(a, b, o, 0, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["dim of self should be 3 for aclnnBatchMatMul"],
            );
            nn_err(
                aclnnBatchMatMulGetWorkspaceSize(a3, b, null_mut(), 0, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["out"],
            );
            nn_err(
                aclnnMvGetWorkspaceSize(a, null_mut(), ov, 0, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["vec"],
            );
            nn_err(
                aclnnMvGetWorkspaceSize(a, v, ov, 4, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["range [0, 3] for aclnnMv"],
            );
            nn_err(
                aclnnGerGetWorkspaceSize(v, v, o, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_INVALID,
                &["out shape should be [3, 3]"],
            );
            nn_err(
                aclnnGerGetWorkspaceSize(v, null_mut(), o, &mut ws, &mut ex),
                ACLNN_ERR_PARAM_NULLPTR,
                &["vec2"],
            );
        }
        destroy_tensors(&[a, b, o, a3, h, hb, v, ov]);
    }
}
