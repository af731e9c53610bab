/*
 * ascend-sys: declaration of the aclnnLayerNorm operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 * (aclnnLayerNormWithImplMode is not declared.)
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_LAYER_NORM_H
#define ASCEND_SYS_ACLNNOP_ACLNN_LAYER_NORM_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnLayerNormGetWorkspaceSize(const aclTensor *input, const aclIntArray *normalizedShape,
                                           const aclTensor *weightOptional,
                                           const aclTensor *biasOptional, double eps,
                                           aclTensor *out, aclTensor *meanOutOptional,
                                           aclTensor *rstdOutOptional, uint64_t *workspaceSize,
                                           aclOpExecutor **executor);
aclnnStatus aclnnLayerNorm(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                           aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
