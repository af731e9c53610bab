/*
 * ascend-sys: declaration of the aclnnNeg and aclnnInplaceNeg operators
 * (libopapi), two-phase form. Written for this project from CANN's public
 * operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_NEG_H
#define ASCEND_SYS_ACLNNOP_ACLNN_NEG_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnNegGetWorkspaceSize(const aclTensor *self, aclTensor *out, uint64_t *workspaceSize,
                                     aclOpExecutor **executor);
aclnnStatus aclnnNeg(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);
aclnnStatus aclnnInplaceNegGetWorkspaceSize(aclTensor *selfRef, uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnInplaceNeg(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
