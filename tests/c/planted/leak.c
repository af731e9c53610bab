/*
 * A planted leak: a device buffer and a stream are still alive when the
 * device is reset. The mock reports them at aclrtResetDevice (and releases
 * them, as CANN does); with ASCEND_MOCK_LEAKS=error, set here before
 * aclInit reads the settings, the reset also returns
 * ACL_ERROR_RT_MEMORY_FREE and aclGetRecentErrMsg returns the report,
 * which starts with "leak". Exit status: 0 caught, 2 not caught, 1 a setup
 * call failed.
 *
 * Plain AscendCL: includes only the AscendCL headers, links -lascendcl.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"

#define MUST(call)                                                                  \
    do {                                                                            \
        aclError rc_ = (call);                                                      \
        if (rc_ != ACL_SUCCESS) {                                                   \
            const char *m_ = aclGetRecentErrMsg();                                  \
            fprintf(stderr, "leak.c: %s returned %d: %s\n", #call, rc_,             \
                    m_ ? m_ : "(no message)");                                      \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define CLASS "leak: "

int main(void)
{
    void *buf = NULL;
    aclrtStream stream = NULL;
    if (setenv("ASCEND_MOCK_LEAKS", "error", 1) != 0) {
        return 1;
    }
    MUST(aclInit(NULL));
    MUST(aclrtSetDevice(0));
    MUST(aclrtMalloc(&buf, 4096, ACL_MEM_MALLOC_HUGE_FIRST));
    MUST(aclrtCreateStream(&stream));

    /* The bug: neither aclrtFree(buf) nor aclrtDestroyStream(stream). */
    aclError rc = aclrtResetDevice(0);
    const char *msg = aclGetRecentErrMsg();
    int caught = rc == ACL_ERROR_RT_MEMORY_FREE && msg != NULL &&
                 strncmp(msg, CLASS, strlen(CLASS)) == 0 && strstr(msg, "2 objects") != NULL;
    printf("aclrtResetDevice with a live buffer and stream returned %d: %s\n", rc,
           msg ? msg : "(no message)");

    MUST(aclFinalize());
    return caught ? 0 : 2;
}
