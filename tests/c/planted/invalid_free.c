/*
 * A planted invalid free: aclrtFree of a pointer inside a device block
 * rather than at its start. On the mock (sanitizer on, the default) that
 * free must fail and aclGetRecentErrMsg must return a report starting with
 * "invalid free"; the block itself is then freed properly. Exit status: 0
 * caught, 2 not caught, 1 a setup call failed.
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
            fprintf(stderr, "invalid_free.c: %s returned %d: %s\n", #call, rc_,     \
                    m_ ? m_ : "(no message)");                                      \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define CLASS "invalid free: "

int main(void)
{
    void *buf = NULL;
    MUST(aclInit(NULL));
    MUST(aclrtSetDevice(0));
    MUST(aclrtMalloc(&buf, 1024, ACL_MEM_MALLOC_HUGE_FIRST));

    /* The bug: a pointer 64 bytes into the block, which aclrtMalloc never returned. */
    aclError rc = aclrtFree((char *)buf + 64);
    const char *msg = aclGetRecentErrMsg();
    int caught = rc != ACL_SUCCESS && msg != NULL && strncmp(msg, CLASS, strlen(CLASS)) == 0;
    printf("aclrtFree inside a block returned %d: %s\n", rc, msg ? msg : "(no message)");

    MUST(aclrtFree(buf));
    MUST(aclrtResetDevice(0));
    MUST(aclFinalize());
    return caught ? 0 : 2;
}
