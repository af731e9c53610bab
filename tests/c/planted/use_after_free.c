/*
 * A planted use-after-free: a device buffer is freed, then cleared with
 * aclrtMemset. On the mock (sanitizer on, the default) the memset must fail
 * and aclGetRecentErrMsg must return a report starting with
 * "use-after-free". Exit status: 0 caught, 2 not caught, 1 a setup call
 * failed.
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
            fprintf(stderr, "use_after_free.c: %s returned %d: %s\n", #call, rc_,   \
                    m_ ? m_ : "(no message)");                                      \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define CLASS "use-after-free: "

int main(void)
{
    void *buf = NULL;
    MUST(aclInit(NULL));
    MUST(aclrtSetDevice(0));
    MUST(aclrtMalloc(&buf, 256, ACL_MEM_MALLOC_HUGE_FIRST));
    MUST(aclrtFree(buf));

    /* The bug: the buffer is gone. */
    aclError rc = aclrtMemset(buf, 256, 0, 256);
    const char *msg = aclGetRecentErrMsg();
    int caught = rc != ACL_SUCCESS && msg != NULL && strncmp(msg, CLASS, strlen(CLASS)) == 0;
    printf("aclrtMemset of a freed buffer returned %d: %s\n", rc, msg ? msg : "(no message)");

    MUST(aclrtResetDevice(0));
    MUST(aclFinalize());
    return caught ? 0 : 2;
}
