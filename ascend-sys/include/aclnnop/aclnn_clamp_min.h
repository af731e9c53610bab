/*
 * ascend-sys: declaration of the aclnnClampMin operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_CLAMP_MIN_H
#define ASCEND_SYS_ACLNNOP_ACLNN_CLAMP_MIN_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnClampMinGetWorkspaceSize(const aclTensor *self, const aclScalar *clipValueMin,
                                          aclTensor *out, uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnClampMin(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                          aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
