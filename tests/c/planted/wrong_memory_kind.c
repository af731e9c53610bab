/*
 * A planted wrong memory kind: aclrtMemset, which clears device memory, is
 * given an ordinary host buffer. On the mock (sanitizer on, the default)
 * the memset must fail and aclGetRecentErrMsg must return a report starting
 * with "wrong memory kind". Exit status: 0 caught, 2 not caught, 1 a setup
 * call failed.
 *
 * Plain AscendCL: includes only the AscendCL headers, links -lascendcl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"

#define MUST(call)                                                                  \
    do {                                                                            \
        aclError rc_ = (call);                                                      \
        if (rc_ != ACL_SUCCESS) {                                                   \
            const char *m_ = aclGetRecentErrMsg();                                  \
            fprintf(stderr, "wrong_memory_kind.c: %s returned %d: %s\n", #call,     \
                    rc_, m_ ? m_ : "(no message)");                                 \
            return 1;                                                               \
        }                                                                           \
    } while (0)

#define CLASS "wrong memory kind: "

int main(void)
{
    MUST(aclInit(NULL));
    MUST(aclrtSetDevice(0));
    unsigned char *host = malloc(256);
    if (host == NULL) {
        return 1;
    }

    /* The bug: host memory where device memory belongs. */
    aclError rc = aclrtMemset(host, 256, 0, 256);
    const char *msg = aclGetRecentErrMsg();
    int caught = rc != ACL_SUCCESS && msg != NULL && strncmp(msg, CLASS, strlen(CLASS)) == 0;
    printf("aclrtMemset of host memory returned %d: %s\n", rc, msg ? msg : "(no message)");

    free(host);
    MUST(aclrtResetDevice(0));
    MUST(aclFinalize());
    return caught ? 0 : 2;
}
