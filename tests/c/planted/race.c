/*
 * A planted race, as a CANN user could write it by mistake: one stream
 * fills a device buffer while a second stream copies it out, with no event
 * between them. On the mock (sanitizer on, the default) the second copy
 * must be refused with an error and aclGetRecentErrMsg must return a
 * report starting with "race"; ordering the streams with an event must
 * make the same copy succeed. Exit status: 0 caught, 2 not caught, 1 a
 * setup call or the ordered copy failed.
 *
 * Self-contained: includes only the AscendCL headers and links against
 * -lascendcl.
 */
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"

#define SIZE 4096

#define MUST(call)                                                                 \
    do {                                                                           \
        aclError rc_ = (call);                                                     \
        if (rc_ != ACL_SUCCESS) {                                                  \
            const char *m_ = aclGetRecentErrMsg();                                 \
            fprintf(stderr, "race.c: %s returned %d: %s\n", #call, rc_,            \
                    m_ ? m_ : "(no message)");                                     \
            return 1;                                                              \
        }                                                                          \
    } while (0)

int main(void)
{
    void *a = NULL, *b = NULL;
    aclrtStream writer = NULL, reader = NULL;
    aclrtEvent filled = NULL;

    MUST(aclInit(NULL));
    MUST(aclrtSetDevice(0));
    MUST(aclrtCreateStream(&writer));
    MUST(aclrtCreateStream(&reader));
    MUST(aclrtCreateEvent(&filled));
    MUST(aclrtMalloc(&a, SIZE, ACL_MEM_MALLOC_HUGE_FIRST));
    MUST(aclrtMalloc(&b, SIZE, ACL_MEM_MALLOC_HUGE_FIRST));

    /* The bug: the reader stream copies `a` while the writer fills it. */
    MUST(aclrtMemsetAsync(a, SIZE, 7, SIZE, writer));
    aclError rc = aclrtMemcpyAsync(b, SIZE, a, SIZE, ACL_MEMCPY_DEVICE_TO_DEVICE, reader);
    if (rc == ACL_SUCCESS) {
        fprintf(stderr, "race.c: the racing aclrtMemcpyAsync was not refused\n");
        return 2;
    }
    const char *msg = aclGetRecentErrMsg();
    if (msg == NULL || strncmp(msg, "race", 4) != 0) {
        fprintf(stderr, "race.c: the racing call returned %d but the message is not a race report: %s\n",
                rc, msg ? msg : "(null)");
        return 2;
    }
    printf("refused with %d: %s\n", rc, msg);

    /* The fix: the reader waits for an event recorded after the fill. */
    MUST(aclrtRecordEvent(filled, writer));
    MUST(aclrtStreamWaitEvent(reader, filled));
    MUST(aclrtMemcpyAsync(b, SIZE, a, SIZE, ACL_MEMCPY_DEVICE_TO_DEVICE, reader));
    MUST(aclrtSynchronizeStream(reader));

    unsigned char host[SIZE];
    MUST(aclrtMemcpy(host, SIZE, b, SIZE, ACL_MEMCPY_DEVICE_TO_HOST));
    for (int i = 0; i < SIZE; ++i) {
        if (host[i] != 7) {
            fprintf(stderr, "race.c: byte %d is %d after the ordered copy, not 7\n", i, host[i]);
            return 1;
        }
    }

    MUST(aclrtSynchronizeStream(writer));
    MUST(aclrtFree(a));
    MUST(aclrtFree(b));
    MUST(aclrtDestroyEvent(filled));
    MUST(aclrtDestroyStream(writer));
    MUST(aclrtDestroyStream(reader));
    MUST(aclrtResetDevice(0));
    MUST(aclFinalize());
    printf("race.c: the race was reported and the ordered copy succeeded\n");
    return 0;
}
