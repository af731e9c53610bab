/*
 * ascend-sys: declaration of the aclnnCat operator(s) (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_CAT_H
#define ASCEND_SYS_ACLNNOP_ACLNN_CAT_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnCatGetWorkspaceSize(const aclTensorList *tensors, int64_t dim, aclTensor *out, uint64_t *workspaceSize,
                                     aclOpExecutor **executor);
aclnnStatus aclnnCat(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
