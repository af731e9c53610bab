//! The matrix products: aclnnMatmul and the grouped matmuls
//! aclnnGroupedMatmulV3 and aclnnGroupedMatmulV4 (tensor-list operands).

use ascend_kernels::grouped_matmul::{self, GroupedMatmulV3Args, GroupedMatmulV4Args};
use ascend_kernels::matmul::{self, MatmulArgs};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnMatmul`: `out = self @ mat2` (batched, broadcast).
    aclnnMatmul / aclnnMatmulGetWorkspaceSize(
        self_ as "self": *const aclTensor = input,
        mat2: *const aclTensor = input,
        out: *mut aclTensor = output,
        cubeMathType: i8 = value,
    ) => matmul::check, matmul::run, MatmulArgs { self_, mat2, out, cube_math_type: cubeMathType };

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
