//! The MoE routing operators: gating (aclnnMoeGatingTopKSoftmax, V2,
//! aclnnMoeGatingTopK), token routing (aclnnMoeInitRoutingV2, V3),
//! aclnnMoeComputeExpertTokens and aclnnMoeFinalizeRoutingV2.

use ascend_kernels::moe::compute_expert_tokens::{self as cet, MoeComputeExpertTokensArgs};
use ascend_kernels::moe::finalize_routing_v2::{self as frv2, MoeFinalizeRoutingV2Args};
use ascend_kernels::moe::gating_top_k::{self as gtk, MoeGatingTopKArgs};
use ascend_kernels::moe::gating_top_k_softmax::{self as gtks, MoeGatingTopKSoftmaxArgs};
use ascend_kernels::moe::gating_top_k_softmax_v2::{self as gtks2, MoeGatingTopKSoftmaxV2Args};
use ascend_kernels::moe::init_routing_v2::{self as irv2, MoeInitRoutingV2Args};
use ascend_kernels::moe::init_routing_v3::{self as irv3, MoeInitRoutingV3Args};
use ascend_sys::*;

operator! {
    /// Phase one of `aclnnMoeGatingTopKSoftmax`.
    aclnnMoeGatingTopKSoftmax / aclnnMoeGatingTopKSoftmaxGetWorkspaceSize(
        x: *const aclTensor = input,
        finishedOptional: *const aclTensor = opt_input,
        k: i64 = value,
        yOut: *const aclTensor = output,
        expertIdxOut: *const aclTensor = output,
        rowIdxOut: *const aclTensor = output,
    ) => gtks::check, gtks::run, MoeGatingTopKSoftmaxArgs {
        x,
        finished: finishedOptional,
        k,
        y_out: yOut,
        expert_idx_out: expertIdxOut,
        row_idx_out: rowIdxOut,
    };

    /// Phase one of `aclnnMoeGatingTopKSoftmaxV2`.
    aclnnMoeGatingTopKSoftmaxV2 / aclnnMoeGatingTopKSoftmaxV2GetWorkspaceSize(
        x: *const aclTensor = input,
        finishedOptional: *const aclTensor = opt_input,
        k: i64 = value,
        renorm: i64 = value,
        outputSoftmaxResultFlag: bool = value,
        yOut: *const aclTensor = output,
        expertIdxOut: *const aclTensor = output,
        softmaxResultOutOptional: *const aclTensor = opt_output,
    ) => gtks2::check, gtks2::run, MoeGatingTopKSoftmaxV2Args {
        x,
        finished: finishedOptional,
        k,
        renorm,
        output_softmax_result_flag: outputSoftmaxResultFlag,
        y_out: yOut,
        expert_idx_out: expertIdxOut,
        softmax_result_out: softmaxResultOutOptional,
    };

    /// Phase one of `aclnnMoeGatingTopK` (grouped sigmoid/softmax routing).
    aclnnMoeGatingTopK / aclnnMoeGatingTopKGetWorkspaceSize(
        x: *const aclTensor = input,
        biasOptional: *const aclTensor = opt_input,
        k: i64 = value,
        kGroup: i64 = value,
        groupCount: i64 = value,
        groupSelectMode: i64 = value,
        renorm: i64 = value,
        normType: i64 = value,
        outFlag: bool = value,
        routedScalingFactor: f64 = value,
        eps: f64 = value,
        yOut: *const aclTensor = output,
        expertIdxOut: *const aclTensor = output,
        outOut: *const aclTensor = opt_output,
    ) => gtk::check, gtk::run, MoeGatingTopKArgs {
        x,
        bias: biasOptional,
        k,
        k_group: kGroup,
        group_count: groupCount,
        group_select_mode: groupSelectMode,
        renorm,
        norm_type: normType,
        out_flag: outFlag,
        routed_scaling_factor: routedScalingFactor,
        eps,
        y_out: yOut,
        expert_idx_out: expertIdxOut,
        out_out: outOut,
    };

    /// Phase one of `aclnnMoeInitRoutingV2`.
    aclnnMoeInitRoutingV2 / aclnnMoeInitRoutingV2GetWorkspaceSize(
        x: *const aclTensor = input,
        expertIdx: *const aclTensor = input,
        activeNumOptional: i64 = value,
        expertCapacityOptional: i64 = value,
        expertNumOptional: i64 = value,
        dropPadModeOptional: i64 = value,
        expertTokensCountOrCumsumFlagOptional: i64 = value,
        expertTokensBeforeCapacityFlagOptional: bool = value,
        expandedXOut: *const aclTensor = output,
        expandedRowIdxOut: *const aclTensor = output,
        expertTokensCountOrCumsumOutOptional: *const aclTensor = opt_output,
        expertTokensBeforeCapacityOutOptional: *const aclTensor = opt_output,
    ) => irv2::check, irv2::run, MoeInitRoutingV2Args {
        x,
        expert_idx: expertIdx,
        active_num: activeNumOptional,
        expert_capacity: expertCapacityOptional,
        expert_num: expertNumOptional,
        drop_pad_mode: dropPadModeOptional,
        expert_tokens_count_or_cumsum_flag: expertTokensCountOrCumsumFlagOptional,
        expert_tokens_before_capacity_flag: expertTokensBeforeCapacityFlagOptional,
        expanded_x_out: expandedXOut,
        expanded_row_idx_out: expandedRowIdxOut,
        expert_tokens_count_or_cumsum_out: expertTokensCountOrCumsumOutOptional,
        expert_tokens_before_capacity_out: expertTokensBeforeCapacityOutOptional,
    };

    /// Phase one of `aclnnMoeInitRoutingV3`.
    aclnnMoeInitRoutingV3 / aclnnMoeInitRoutingV3GetWorkspaceSize(
        x: *const aclTensor = input,
        expertIdx: *const aclTensor = input,
        scaleOptional: *const aclTensor = opt_input,
        offsetOptional: *const aclTensor = opt_input,
        activeNum: i64 = value,
        expertCapacity: i64 = value,
        expertNum: i64 = value,
        dropPadMode: i64 = value,
        expertTokensNumType: i64 = value,
        expertTokensNumFlag: bool = value,
        quantMode: i64 = value,
        activeExpertRangeOptional: *const aclIntArray = opt_int_array,
        rowIdxType: i64 = value,
        expandedXOut: *const aclTensor = output,
        expandedRowIdxOut: *const aclTensor = output,
        expertTokensCountOrCumsumOut: *const aclTensor = output,
        expandedScaleOut: *const aclTensor = opt_output,
    ) => irv3::check, irv3::run, MoeInitRoutingV3Args {
        x,
        expert_idx: expertIdx,
        scale: scaleOptional,
        offset: offsetOptional,
        active_num: activeNum,
        expert_capacity: expertCapacity,
        expert_num: expertNum,
        drop_pad_mode: dropPadMode,
        expert_tokens_num_type: expertTokensNumType,
        expert_tokens_num_flag: expertTokensNumFlag,
        quant_mode: quantMode,
        active_expert_range: activeExpertRangeOptional,
        row_idx_type: rowIdxType,
        expanded_x_out: expandedXOut,
        expanded_row_idx_out: expandedRowIdxOut,
        expert_tokens_count_or_cumsum_out: expertTokensCountOrCumsumOut,
        expanded_scale_out: expandedScaleOut,
    };

    /// Phase one of `aclnnMoeComputeExpertTokens`.
    aclnnMoeComputeExpertTokens / aclnnMoeComputeExpertTokensGetWorkspaceSize(
        sortedExperts: *const aclTensor = input,
        numExperts: i64 = value,
        out: *const aclTensor = output,
    ) => cet::check, cet::run, MoeComputeExpertTokensArgs {
        sorted_experts: sortedExperts,
        num_experts: numExperts,
        out,
    };

    /// Phase one of `aclnnMoeFinalizeRoutingV2`.
    aclnnMoeFinalizeRoutingV2 / aclnnMoeFinalizeRoutingV2GetWorkspaceSize(
        expandedX: *const aclTensor = input,
        expandedRowIdx: *const aclTensor = input,
        x1Optional: *const aclTensor = opt_input,
        x2Optional: *const aclTensor = opt_input,
        biasOptional: *const aclTensor = opt_input,
        scalesOptional: *const aclTensor = opt_input,
        expertIdxOptional: *const aclTensor = opt_input,
        dropPadMode: i64 = value,
        out: *const aclTensor = output,
    ) => frv2::check, frv2::run, MoeFinalizeRoutingV2Args {
        expanded_x: expandedX,
        expanded_row_idx: expandedRowIdx,
        x1: x1Optional,
        x2: x2Optional,
        bias: biasOptional,
        scales: scalesOptional,
        expert_idx: expertIdxOptional,
        drop_pad_mode: dropPadMode,
        out,
    };
}
