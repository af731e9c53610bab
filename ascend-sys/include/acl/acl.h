/*
 * ascend-sys: umbrella header of AscendCL (libascendcl): process
 * initialisation, error messages and the runtime.
 *
 * Written for this project from CANN's public API documentation.
 */
#ifndef ASCEND_SYS_ACL_H
#define ASCEND_SYS_ACL_H

#include "acl_base.h"
#include "acl_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ACL_PKG_VERSION_MAX_SIZE 128
#define ACL_PKG_VERSION_PARTS_MAX_SIZE 64

aclError aclInit(const char *configPath);
aclError aclFinalize(void);
const char *aclGetRecentErrMsg(void);
aclError aclsysGetVersionStr(char *pkgName, char *versionStr);
aclError aclsysGetVersionNum(char *pkgName, int32_t *versionNum);

#ifdef __cplusplus
}
#endif

#endif /* ASCEND_SYS_ACL_H */
