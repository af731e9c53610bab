/*
 * ascend-sys: declaration of the aclnnAddRmsNorm operator (libopapi), two-phase
 * form. Written for this project from CANN's public operator documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_ADD_RMS_NORM_H
#define ASCEND_SYS_ACLNNOP_ACLNN_ADD_RMS_NORM_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnAddRmsNormGetWorkspaceSize(const aclTensor *x1, const aclTensor *x2, const aclTensor *gamma,
                                            double epsilon, const aclTensor *yOut,
                                            const aclTensor *rstdOut, const aclTensor *xOut,
                                            uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnAddRmsNorm(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                            aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
