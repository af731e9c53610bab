/*
 * ascend-sys: declaration of the aclnnMoeInitRoutingV3 operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_MOE_INIT_ROUTING_V3_H
#define ASCEND_SYS_ACLNNOP_ACLNN_MOE_INIT_ROUTING_V3_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnMoeInitRoutingV3GetWorkspaceSize(const aclTensor *x, const aclTensor *expertIdx,
                                                  const aclTensor *scaleOptional,
                                                  const aclTensor *offsetOptional, int64_t activeNum,
                                                  int64_t expertCapacity, int64_t expertNum,
                                                  int64_t dropPadMode, int64_t expertTokensNumType,
                                                  bool expertTokensNumFlag, int64_t quantMode,
                                                  const aclIntArray *activeExpertRangeOptional,
                                                  int64_t rowIdxType, const aclTensor *expandedXOut,
                                                  const aclTensor *expandedRowIdxOut,
                                                  const aclTensor *expertTokensCountOrCumsumOut,
                                                  const aclTensor *expandedScaleOut, uint64_t *workspaceSize,
                                                  aclOpExecutor **executor);
aclnnStatus aclnnMoeInitRoutingV3(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                  aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
