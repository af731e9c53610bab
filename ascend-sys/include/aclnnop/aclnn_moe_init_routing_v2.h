/*
 * ascend-sys: declaration of the aclnnMoeInitRoutingV2 operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_MOE_INIT_ROUTING_V2_H
#define ASCEND_SYS_ACLNNOP_ACLNN_MOE_INIT_ROUTING_V2_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnMoeInitRoutingV2GetWorkspaceSize(const aclTensor *x, const aclTensor *expertIdx,
                                                  int64_t activeNumOptional, int64_t expertCapacityOptional,
                                                  int64_t expertNumOptional, int64_t dropPadModeOptional,
                                                  int64_t expertTokensCountOrCumsumFlagOptional,
                                                  bool expertTokensBeforeCapacityFlagOptional,
                                                  const aclTensor *expandedXOut,
                                                  const aclTensor *expandedRowIdxOut,
                                                  const aclTensor *expertTokensCountOrCumsumOutOptional,
                                                  const aclTensor *expertTokensBeforeCapacityOutOptional,
                                                  uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnMoeInitRoutingV2(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                  aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
