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

use super::executor::{get_workspace_size, kernel, opt};

/// Phase one of `aclnnMoeGatingTopKSoftmax`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeGatingTopKSoftmaxGetWorkspaceSize(
    x: *const aclTensor,
    finishedOptional: *const aclTensor,
    k: i64,
    yOut: *const aclTensor,
    expertIdxOut: *const aclTensor,
    rowIdxOut: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeGatingTopKSoftmaxGetWorkspaceSize",
        "aclnnMoeGatingTopKSoftmax",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let finished = b.opt_input("finishedOptional", finishedOptional)?;
            let y = b.output("yOut", yOut)?;
            let idx = b.output("expertIdxOut", expertIdxOut)?;
            let row = b.output("rowIdxOut", rowIdxOut)?;
            Ok(kernel(
                move |t| MoeGatingTopKSoftmaxArgs {
                    x: x.get(t),
                    finished: opt(finished, t),
                    k,
                    y_out: y.get(t),
                    expert_idx_out: idx.get(t),
                    row_idx_out: row.get(t),
                },
                gtks::check,
                gtks::run,
            ))
        },
    )
}
phase_two!(aclnnMoeGatingTopKSoftmax);

/// Phase one of `aclnnMoeGatingTopKSoftmaxV2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeGatingTopKSoftmaxV2GetWorkspaceSize(
    x: *const aclTensor,
    finishedOptional: *const aclTensor,
    k: i64,
    renorm: i64,
    outputSoftmaxResultFlag: bool,
    yOut: *const aclTensor,
    expertIdxOut: *const aclTensor,
    softmaxResultOutOptional: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeGatingTopKSoftmaxV2GetWorkspaceSize",
        "aclnnMoeGatingTopKSoftmaxV2",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let finished = b.opt_input("finishedOptional", finishedOptional)?;
            let y = b.output("yOut", yOut)?;
            let idx = b.output("expertIdxOut", expertIdxOut)?;
            let sm = b.opt_output("softmaxResultOutOptional", softmaxResultOutOptional)?;
            Ok(kernel(
                move |t| MoeGatingTopKSoftmaxV2Args {
                    x: x.get(t),
                    finished: opt(finished, t),
                    k,
                    renorm,
                    output_softmax_result_flag: outputSoftmaxResultFlag,
                    y_out: y.get(t),
                    expert_idx_out: idx.get(t),
                    softmax_result_out: opt(sm, t),
                },
                gtks2::check,
                gtks2::run,
            ))
        },
    )
}
phase_two!(aclnnMoeGatingTopKSoftmaxV2);

/// Phase one of `aclnnMoeGatingTopK` (grouped sigmoid/softmax routing).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeGatingTopKGetWorkspaceSize(
    x: *const aclTensor,
    biasOptional: *const aclTensor,
    k: i64,
    kGroup: i64,
    groupCount: i64,
    groupSelectMode: i64,
    renorm: i64,
    normType: i64,
    outFlag: bool,
    routedScalingFactor: f64,
    eps: f64,
    yOut: *const aclTensor,
    expertIdxOut: *const aclTensor,
    outOut: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeGatingTopKGetWorkspaceSize",
        "aclnnMoeGatingTopK",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let bias = b.opt_input("biasOptional", biasOptional)?;
            let y = b.output("yOut", yOut)?;
            let idx = b.output("expertIdxOut", expertIdxOut)?;
            let out = b.opt_output("outOut", outOut)?;
            Ok(kernel(
                move |t| MoeGatingTopKArgs {
                    x: x.get(t),
                    bias: opt(bias, t),
                    k,
                    k_group: kGroup,
                    group_count: groupCount,
                    group_select_mode: groupSelectMode,
                    renorm,
                    norm_type: normType,
                    out_flag: outFlag,
                    routed_scaling_factor: routedScalingFactor,
                    eps,
                    y_out: y.get(t),
                    expert_idx_out: idx.get(t),
                    out_out: opt(out, t),
                },
                gtk::check,
                gtk::run,
            ))
        },
    )
}
phase_two!(aclnnMoeGatingTopK);

/// Phase one of `aclnnMoeInitRoutingV2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeInitRoutingV2GetWorkspaceSize(
    x: *const aclTensor,
    expertIdx: *const aclTensor,
    activeNumOptional: i64,
    expertCapacityOptional: i64,
    expertNumOptional: i64,
    dropPadModeOptional: i64,
    expertTokensCountOrCumsumFlagOptional: i64,
    expertTokensBeforeCapacityFlagOptional: bool,
    expandedXOut: *const aclTensor,
    expandedRowIdxOut: *const aclTensor,
    expertTokensCountOrCumsumOutOptional: *const aclTensor,
    expertTokensBeforeCapacityOutOptional: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeInitRoutingV2GetWorkspaceSize",
        "aclnnMoeInitRoutingV2",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let idx = b.input("expertIdx", expertIdx)?;
            let ex = b.output("expandedXOut", expandedXOut)?;
            let row = b.output("expandedRowIdxOut", expandedRowIdxOut)?;
            let counts = b.opt_output(
                "expertTokensCountOrCumsumOutOptional",
                expertTokensCountOrCumsumOutOptional,
            )?;
            let before = b.opt_output(
                "expertTokensBeforeCapacityOutOptional",
                expertTokensBeforeCapacityOutOptional,
            )?;
            Ok(kernel(
                move |t| MoeInitRoutingV2Args {
                    x: x.get(t),
                    expert_idx: idx.get(t),
                    active_num: activeNumOptional,
                    expert_capacity: expertCapacityOptional,
                    expert_num: expertNumOptional,
                    drop_pad_mode: dropPadModeOptional,
                    expert_tokens_count_or_cumsum_flag: expertTokensCountOrCumsumFlagOptional,
                    expert_tokens_before_capacity_flag: expertTokensBeforeCapacityFlagOptional,
                    expanded_x_out: ex.get(t),
                    expanded_row_idx_out: row.get(t),
                    expert_tokens_count_or_cumsum_out: opt(counts, t),
                    expert_tokens_before_capacity_out: opt(before, t),
                },
                irv2::check,
                irv2::run,
            ))
        },
    )
}
phase_two!(aclnnMoeInitRoutingV2);

/// Phase one of `aclnnMoeInitRoutingV3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeInitRoutingV3GetWorkspaceSize(
    x: *const aclTensor,
    expertIdx: *const aclTensor,
    scaleOptional: *const aclTensor,
    offsetOptional: *const aclTensor,
    activeNum: i64,
    expertCapacity: i64,
    expertNum: i64,
    dropPadMode: i64,
    expertTokensNumType: i64,
    expertTokensNumFlag: bool,
    quantMode: i64,
    activeExpertRangeOptional: *const aclIntArray,
    rowIdxType: i64,
    expandedXOut: *const aclTensor,
    expandedRowIdxOut: *const aclTensor,
    expertTokensCountOrCumsumOut: *const aclTensor,
    expandedScaleOut: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeInitRoutingV3GetWorkspaceSize",
        "aclnnMoeInitRoutingV3",
        workspaceSize,
        executor,
        |b| {
            let x = b.input("x", x)?;
            let idx = b.input("expertIdx", expertIdx)?;
            let scale = b.opt_input("scaleOptional", scaleOptional)?;
            let offset = b.opt_input("offsetOptional", offsetOptional)?;
            let range = b.opt_int_array("activeExpertRangeOptional", activeExpertRangeOptional)?;
            let ex = b.output("expandedXOut", expandedXOut)?;
            let row = b.output("expandedRowIdxOut", expandedRowIdxOut)?;
            let counts = b.output("expertTokensCountOrCumsumOut", expertTokensCountOrCumsumOut)?;
            let scale_out = b.opt_output("expandedScaleOut", expandedScaleOut)?;
            Ok(kernel(
                move |t| MoeInitRoutingV3Args {
                    x: x.get(t),
                    expert_idx: idx.get(t),
                    scale: opt(scale, t),
                    offset: opt(offset, t),
                    active_num: activeNum,
                    expert_capacity: expertCapacity,
                    expert_num: expertNum,
                    drop_pad_mode: dropPadMode,
                    expert_tokens_num_type: expertTokensNumType,
                    expert_tokens_num_flag: expertTokensNumFlag,
                    quant_mode: quantMode,
                    active_expert_range: range.clone(),
                    row_idx_type: rowIdxType,
                    expanded_x_out: ex.get(t),
                    expanded_row_idx_out: row.get(t),
                    expert_tokens_count_or_cumsum_out: counts.get(t),
                    expanded_scale_out: opt(scale_out, t),
                },
                irv3::check,
                irv3::run,
            ))
        },
    )
}
phase_two!(aclnnMoeInitRoutingV3);

/// Phase one of `aclnnMoeComputeExpertTokens`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeComputeExpertTokensGetWorkspaceSize(
    sortedExperts: *const aclTensor,
    numExperts: i64,
    out: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeComputeExpertTokensGetWorkspaceSize",
        "aclnnMoeComputeExpertTokens",
        workspaceSize,
        executor,
        |b| {
            let sorted = b.input("sortedExperts", sortedExperts)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| MoeComputeExpertTokensArgs {
                    sorted_experts: sorted.get(t),
                    num_experts: numExperts,
                    out: out.get(t),
                },
                cet::check,
                cet::run,
            ))
        },
    )
}
phase_two!(aclnnMoeComputeExpertTokens);

/// Phase one of `aclnnMoeFinalizeRoutingV2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn aclnnMoeFinalizeRoutingV2GetWorkspaceSize(
    expandedX: *const aclTensor,
    expandedRowIdx: *const aclTensor,
    x1Optional: *const aclTensor,
    x2Optional: *const aclTensor,
    biasOptional: *const aclTensor,
    scalesOptional: *const aclTensor,
    expertIdxOptional: *const aclTensor,
    dropPadMode: i64,
    out: *const aclTensor,
    workspaceSize: *mut u64,
    executor: *mut *mut aclOpExecutor,
) -> aclnnStatus {
    get_workspace_size(
        "aclnnMoeFinalizeRoutingV2GetWorkspaceSize",
        "aclnnMoeFinalizeRoutingV2",
        workspaceSize,
        executor,
        |b| {
            let ex = b.input("expandedX", expandedX)?;
            let row = b.input("expandedRowIdx", expandedRowIdx)?;
            let x1 = b.opt_input("x1Optional", x1Optional)?;
            let x2 = b.opt_input("x2Optional", x2Optional)?;
            let bias = b.opt_input("biasOptional", biasOptional)?;
            let scales = b.opt_input("scalesOptional", scalesOptional)?;
            let idx = b.opt_input("expertIdxOptional", expertIdxOptional)?;
            let out = b.output("out", out)?;
            Ok(kernel(
                move |t| MoeFinalizeRoutingV2Args {
                    expanded_x: ex.get(t),
                    expanded_row_idx: row.get(t),
                    x1: opt(x1, t),
                    x2: opt(x2, t),
                    bias: opt(bias, t),
                    scales: opt(scales, t),
                    expert_idx: opt(idx, t),
                    drop_pad_mode: dropPadMode,
                    out: out.get(t),
                },
                frv2::check,
                frv2::run,
            ))
        },
    )
}
phase_two!(aclnnMoeFinalizeRoutingV2);
