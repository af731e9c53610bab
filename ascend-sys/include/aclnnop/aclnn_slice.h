/*
 * ascend-sys: declaration of the aclnnSlice operator(s) (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_SLICE_H
#define ASCEND_SYS_ACLNNOP_ACLNN_SLICE_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnSliceGetWorkspaceSize(const aclTensor *self, int64_t dim, int64_t start, int64_t end, int64_t step,
                                       aclTensor *out, uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnSlice(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
