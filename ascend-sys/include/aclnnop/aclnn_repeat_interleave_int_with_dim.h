/*
 * ascend-sys: declaration of the aclnnRepeatInterleaveIntWithDim operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_REPEAT_INTERLEAVE_INT_WITH_DIM_H
#define ASCEND_SYS_ACLNNOP_ACLNN_REPEAT_INTERLEAVE_INT_WITH_DIM_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnRepeatInterleaveIntWithDimGetWorkspaceSize(const aclTensor *self, int64_t repeats, int64_t dim,
                                                            int64_t outputSize, aclTensor *out, uint64_t *workspaceSize,
                                                            aclOpExecutor **executor);
aclnnStatus aclnnRepeatInterleaveIntWithDim(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                            aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
