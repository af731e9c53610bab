/*
 * ascend-sys: declaration of the aclnnRotaryPositionEmbedding operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_ROTARY_POSITION_EMBEDDING_H
#define ASCEND_SYS_ACLNNOP_ACLNN_ROTARY_POSITION_EMBEDDING_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnRotaryPositionEmbeddingGetWorkspaceSize(const aclTensor *x, const aclTensor *cos, const aclTensor *sin,
                                                      int64_t mode, aclTensor *out, uint64_t *workspaceSize,
                                                      aclOpExecutor **executor);
aclnnStatus aclnnRotaryPositionEmbedding(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor, aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
