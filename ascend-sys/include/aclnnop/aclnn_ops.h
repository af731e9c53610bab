/*
 * ascend-sys: every aclnn operator this project declares.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_OPS_H
#define ASCEND_SYS_ACLNNOP_ACLNN_OPS_H

#include "aclnn_add.h"
#include "aclnn_mul.h"
#include "aclnn_matmul.h"
#include "aclnn_rms_norm.h"
#include "aclnn_softmax.h"
#include "aclnn_swi_glu.h"
#include "aclnn_topk.h"
#include "aclnn_moe_gating_top_k_softmax.h"
#include "aclnn_moe_gating_top_k_softmax_v2.h"
#include "aclnn_moe_gating_top_k.h"
#include "aclnn_moe_init_routing_v2.h"
#include "aclnn_moe_init_routing_v3.h"
#include "aclnn_moe_compute_expert_tokens.h"
#include "aclnn_grouped_matmul_v3.h"
#include "aclnn_grouped_matmul_v4.h"
#include "aclnn_moe_finalize_routing_v2.h"

#endif
