/*
 * ascend-sys: declaration of the aclnnConstantPadNd operator(s) (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_CONSTANT_PAD_ND_H
#define ASCEND_SYS_ACLNNOP_ACLNN_CONSTANT_PAD_ND_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnConstantPadNdGetWorkspaceSize(const aclTensor *self, const aclIntArray *pad, const aclScalar *value,
                                               aclTensor *out, uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnConstantPadNd(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
