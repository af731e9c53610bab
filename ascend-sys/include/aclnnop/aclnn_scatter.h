/*
 * ascend-sys: declaration of the aclnnScatter and aclnnInplaceScatter
 * operators (libopapi), two-phase form. Written for this project from
 * CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_SCATTER_H
#define ASCEND_SYS_ACLNNOP_ACLNN_SCATTER_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnScatterGetWorkspaceSize(const aclTensor *self, int64_t dim, const aclTensor *index, const aclTensor *src,
                                         int64_t reduce, aclTensor *out, uint64_t *workspaceSize,
                                         aclOpExecutor **executor);
aclnnStatus aclnnScatter(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, const aclrtStream stream);

aclnnStatus aclnnInplaceScatterGetWorkspaceSize(aclTensor *selfRef, int64_t dim, const aclTensor *index,
                                                const aclTensor *src, int64_t reduce, uint64_t *workspaceSize,
                                                aclOpExecutor **executor);
aclnnStatus aclnnInplaceScatter(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
