/*
 * ascend-sys: declaration of the aclnnEqTensor operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_EQ_TENSOR_H
#define ASCEND_SYS_ACLNNOP_ACLNN_EQ_TENSOR_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnEqTensorGetWorkspaceSize(const aclTensor *self, const aclTensor *other, aclTensor *out,
                                          uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnEqTensor(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                          aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
