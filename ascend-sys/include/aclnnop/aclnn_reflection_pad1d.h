/*
 * ascend-sys: declaration of the aclnnReflectionPad1d operator (libopapi),
 * two-phase form. Written for this project from CANN's public operator
 * documentation.
 */
#ifndef ASCEND_SYS_ACLNNOP_ACLNN_REFLECTION_PAD1D_H
#define ASCEND_SYS_ACLNNOP_ACLNN_REFLECTION_PAD1D_H

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnReflectionPad1dGetWorkspaceSize(const aclTensor *self, const aclIntArray *padding, aclTensor *out,
                                                 uint64_t *workspaceSize, aclOpExecutor **executor);
aclnnStatus aclnnReflectionPad1d(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                 const aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif
