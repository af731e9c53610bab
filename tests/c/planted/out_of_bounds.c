/*
 * A planted out-of-bounds copy: 512 bytes copied into a device buffer of
 * 256, with a destMax that claims 512. On the mock (sanitizer on, the
 * default) the copy must fail and aclGetRecentErrMsg must return a report
 * starting with "out of bounds". Exit status: 0 caught, 2 not caught, 1 a
 * setup call failed.
 *
 * Plain AscendCL: includes only the AscendCL headers, links -lascendcl.
 */
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"

#define MUST(call)                                                                  \
    do {                                                                            \
        aclError rc_ = (call);                                                      \
        if (rc_ != ACL_SUCCESS) {                                                   \
            const char *m_ = aclGetRecentErrMsg();                                  \
            fprintf(stderr, "out_of_bounds.c: %s returned %d: %s\n", #call, rc_,    \
                    m_ ? m_ : "(no message)");                                      \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define CLASS "out of bounds: "

int main(void)
{
    static unsigned char host[512];
    void *dev = NULL;
    memset(host, 0x5a, sizeof host);
    MUST(aclInit(NULL));
    MUST(aclrtSetDevice(0));
    MUST(aclrtMalloc(&dev, 256, ACL_MEM_MALLOC_HUGE_FIRST));

    /* The bug: the destination holds 256 bytes, destMax says 512. */
    aclError rc = aclrtMemcpy(dev, sizeof host, host, sizeof host, ACL_MEMCPY_HOST_TO_DEVICE);
    const char *msg = aclGetRecentErrMsg();
    int caught = rc != ACL_SUCCESS && msg != NULL && strncmp(msg, CLASS, strlen(CLASS)) == 0;
    printf("aclrtMemcpy past the end returned %d: %s\n", rc, msg ? msg : "(no message)");

    MUST(aclrtFree(dev));
    MUST(aclrtResetDevice(0));
    MUST(aclFinalize());
    return caught ? 0 : 2;
}
