//! The matrix products: aclnnMatmul and the grouped matmuls
//! aclnnGroupedMatmulV3 and aclnnGroupedMatmulV4 (tensor-list operands).

use ascend_kernels::grouped_matmul::{self, GroupedMatmulV3Args, GroupedMatmulV4Args};
use ascend_kernels::matmul::{self, MatmulArgs};
use ascend_sys::*;

use super::executor::{get_workspace_size, kernel, opt, opt_list};

/// Phase one of `aclnnMatmul`: `out = self @ mat2` (batched, broadcast).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMatmulGetWorkspaceSize(
    self_: *const aclTensor,
    mat2: *const aclTensor,
    out: *mut aclTensor,
    cubeMathType: i8,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMatmulGetWorkspaceSize",
        "aclnnMatmul",
        workspaceSize,
        executor,
        |b| {
            let s = b.input("self", self_)?;
            let m = b.input("mat2", mat2)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| MatmulArgs {
                    self_: s.get(t),
                    mat2: m.get(t),
                    out: out.get(t),
                    cube_math_type: cubeMathType,
                },
                matmul::check,
                matmul::run,
            ))
        },
    )
}
phase_two!(aclnnMatmul);

/// Phase one of `aclnnGroupedMatmulV3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulV3GetWorkspaceSize(
    x: *const aclTensorList,
    weight: *const aclTensorList,
    biasOptional: *const aclTensorList,
    scaleOptional: *const aclTensorList,
    offsetOptional: *const aclTensorList,
    antiquantScaleOptional: *const aclTensorList,
    antiquantOffsetOptional: *const aclTensorList,
    groupListOptional: *const aclTensor,
    splitItem: i64,
    groupType: i64,
    y: *const aclTensorList,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnGroupedMatmulV3GetWorkspaceSize",
        "aclnnGroupedMatmulV3",
        workspaceSize,
        executor,
        |b| {
            let x = b.input_list("x", x)?;
            let weight = b.input_list("weight", weight)?;
            let bias = b.opt_input_list("biasOptional", biasOptional)?;
            let scale = b.opt_input_list("scaleOptional", scaleOptional)?;
            let offset = b.opt_input_list("offsetOptional", offsetOptional)?;
            let aq_scale = b.opt_input_list("antiquantScaleOptional", antiquantScaleOptional)?;
            let aq_offset = b.opt_input_list("antiquantOffsetOptional", antiquantOffsetOptional)?;
            let group_list = b.opt_input("groupListOptional", groupListOptional)?;
            let y = b.output_list("y", y)?;
            Ok(kernel(
                move |t| GroupedMatmulV3Args {
                    x: x.get(t),
                    weight: weight.get(t),
                    bias: opt_list(&bias, t),
                    scale: opt_list(&scale, t),
                    offset: opt_list(&offset, t),
                    antiquant_scale: opt_list(&aq_scale, t),
                    antiquant_offset: opt_list(&aq_offset, t),
                    group_list: opt(group_list, t),
                    split_item: splitItem,
                    group_type: groupType,
                    y: y.get(t),
                },
                grouped_matmul::check_v3,
                grouped_matmul::run_v3,
            ))
        },
    )
}
phase_two!(aclnnGroupedMatmulV3);

/// Phase one of `aclnnGroupedMatmulV4`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnGroupedMatmulV4GetWorkspaceSize(
    x: *const aclTensorList,
    weight: *const aclTensorList,
    biasOptional: *const aclTensorList,
    scaleOptional: *const aclTensorList,
    offsetOptional: *const aclTensorList,
    antiquantScaleOptional: *const aclTensorList,
    antiquantOffsetOptional: *const aclTensorList,
    perTokenScaleOptional: *const aclTensorList,
    groupListOptional: *const aclTensor,
    activationInputOptional: *const aclTensorList,
    activationQuantScaleOptional: *const aclTensorList,
    activationQuantOffsetOptional: *const aclTensorList,
    splitItem: i64,
    groupType: i64,
    groupListType: i64,
    actType: i64,
    out: *mut aclTensorList,
    activationFeatureOutOptional: *mut aclTensorList,
    dynQuantScaleOutOptional: *mut aclTensorList,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnGroupedMatmulV4GetWorkspaceSize",
        "aclnnGroupedMatmulV4",
        workspaceSize,
        executor,
        |b| {
            let x = b.input_list("x", x)?;
            let weight = b.input_list("weight", weight)?;
            let bias = b.opt_input_list("biasOptional", biasOptional)?;
            let scale = b.opt_input_list("scaleOptional", scaleOptional)?;
            let offset = b.opt_input_list("offsetOptional", offsetOptional)?;
            let aq_scale = b.opt_input_list("antiquantScaleOptional", antiquantScaleOptional)?;
            let aq_offset = b.opt_input_list("antiquantOffsetOptional", antiquantOffsetOptional)?;
            let pts = b.opt_input_list("perTokenScaleOptional", perTokenScaleOptional)?;
            let group_list = b.opt_input("groupListOptional", groupListOptional)?;
            let act_in = b.opt_input_list("activationInputOptional", activationInputOptional)?;
            let act_qs =
                b.opt_input_list("activationQuantScaleOptional", activationQuantScaleOptional)?;
            let act_qo = b.opt_input_list(
                "activationQuantOffsetOptional",
                activationQuantOffsetOptional,
            )?;
            let out = b.output_list("out", out)?;
            let act_out =
                b.opt_output_list("activationFeatureOutOptional", activationFeatureOutOptional)?;
            let dq_out = b.opt_output_list("dynQuantScaleOutOptional", dynQuantScaleOutOptional)?;
            Ok(kernel(
                move |t| GroupedMatmulV4Args {
                    x: x.get(t),
                    weight: weight.get(t),
                    bias: opt_list(&bias, t),
                    scale: opt_list(&scale, t),
                    offset: opt_list(&offset, t),
                    antiquant_scale: opt_list(&aq_scale, t),
                    antiquant_offset: opt_list(&aq_offset, t),
                    per_token_scale: opt_list(&pts, t),
                    group_list: opt(group_list, t),
                    activation_input: opt_list(&act_in, t),
                    activation_quant_scale: opt_list(&act_qs, t),
                    activation_quant_offset: opt_list(&act_qo, t),
                    split_item: splitItem,
                    group_type: groupType,
                    group_list_type: groupListType,
                    act_type: actType,
                    out: out.get(t),
                    activation_feature_out: opt_list(&act_out, t),
                    dyn_quant_scale_out: opt_list(&dq_out, t),
                },
                grouped_matmul::check,
                grouped_matmul::run,
            ))
        },
    )
}
phase_two!(aclnnGroupedMatmulV4);
