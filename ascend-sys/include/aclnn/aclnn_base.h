/*
 * ascend-sys: aclnn process initialisation (libnnopbase).
 * Written for this project from CANN's public API documentation.
 */
#ifndef ASCEND_SYS_ACLNN_BASE_H
#define ASCEND_SYS_ACLNN_BASE_H

#include "acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

aclnnStatus aclnnInit(const char *configPath);
aclnnStatus aclnnFinalize(void);

#ifdef __cplusplus
}
#endif

#endif /* ASCEND_SYS_ACLNN_BASE_H */
