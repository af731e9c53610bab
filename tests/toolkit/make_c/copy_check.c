/*
 * Copies through device memory and checks every byte: a synchronous round
 * trip host -> device -> device -> host, then the same with asynchronous
 * copies on two streams ordered by an event, then a memset. Prints what
 * the runtime reports about the devices. Exit status 0 only when every
 * check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"

static int failures = 0;

/* Runs an AscendCL call; on failure, says which and why, and counts it. */
#define ACL_CALL(call)                                                              \
    do {                                                                            \
        aclError rc_ = (call);                                                      \
        if (rc_ != ACL_SUCCESS) {                                                   \
            const char *msg_ = aclGetRecentErrMsg();                                \
            fprintf(stderr, "line %d: %s failed with %d: %s\n", __LINE__, #call, rc_, \
                    msg_ != NULL ? msg_ : "(no message)");                          \
            ++failures;                                                             \
            goto out;                                                               \
        }                                                                           \
    } while (0)

/* Compares n floats; reports the first difference. */
static int same(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (got[i] != want[i]) {
            fprintf(stderr, "%s: element %zu is %g, expected %g\n", what, i, got[i], want[i]);
            ++failures;
            return 0;
        }
    }
    printf("%s: %zu values match\n", what, n);
    return 1;
}

int main(void)
{
    enum { N = 4096 };
    const size_t bytes = N * sizeof(float);
    float *src = malloc(bytes), *dst = malloc(bytes), *zeros = calloc(N, sizeof(float));
    void *dev_a = NULL, *dev_b = NULL, *pinned = NULL;
    aclrtStream upload = NULL, download = NULL;
    aclrtEvent uploaded = NULL;
    int initialised = 0, device_set = 0;
    if (src == NULL || dst == NULL || zeros == NULL) {
        fprintf(stderr, "out of host memory\n");
        return 1;
    }
    for (size_t i = 0; i < N; ++i) {
        src[i] = (float)i * 0.5f - 7.0f;
    }

    ACL_CALL(aclInit(NULL));
    initialised = 1;
    uint32_t count = 0;
    ACL_CALL(aclrtGetDeviceCount(&count));
    const char *soc = aclrtGetSocName();
    printf("devices: %u, SoC: %s\n", count, soc != NULL ? soc : "(unknown)");
    ACL_CALL(aclrtSetDevice(0));
    device_set = 1;

    /* Synchronous round trip. */
    ACL_CALL(aclrtMalloc(&dev_a, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    ACL_CALL(aclrtMalloc(&dev_b, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    ACL_CALL(aclrtMemcpy(dev_a, bytes, src, bytes, ACL_MEMCPY_HOST_TO_DEVICE));
    ACL_CALL(aclrtMemcpy(dev_b, bytes, dev_a, bytes, ACL_MEMCPY_DEVICE_TO_DEVICE));
    memset(dst, 0, bytes);
    ACL_CALL(aclrtMemcpy(dst, bytes, dev_b, bytes, ACL_MEMCPY_DEVICE_TO_HOST));
    same("synchronous round trip", dst, src, N);

    /* Asynchronous: upload on one stream, download on another once the
     * upload's event has been reached. */
    ACL_CALL(aclrtMemset(dev_b, bytes, 0, bytes));
    ACL_CALL(aclrtMallocHost(&pinned, bytes));
    memcpy(pinned, src, bytes);
    ACL_CALL(aclrtCreateStream(&upload));
    ACL_CALL(aclrtCreateStream(&download));
    ACL_CALL(aclrtCreateEvent(&uploaded));
    memset(dst, 0, bytes);
    ACL_CALL(aclrtMemcpyAsync(dev_b, bytes, pinned, bytes, ACL_MEMCPY_HOST_TO_DEVICE, upload));
    ACL_CALL(aclrtRecordEvent(uploaded, upload));
    ACL_CALL(aclrtStreamWaitEvent(download, uploaded));
    ACL_CALL(aclrtMemcpyAsync(dst, bytes, dev_b, bytes, ACL_MEMCPY_DEVICE_TO_HOST, download));
    ACL_CALL(aclrtSynchronizeStream(download));
    ACL_CALL(aclrtSynchronizeEvent(uploaded));
    same("asynchronous copies ordered by an event", dst, src, N);

    /* A memset of device memory reads back as zeros. */
    ACL_CALL(aclrtMemset(dev_a, bytes, 0, bytes));
    ACL_CALL(aclrtMemcpy(dst, bytes, dev_a, bytes, ACL_MEMCPY_DEVICE_TO_HOST));
    same("memset", dst, zeros, N);

out:
    if (uploaded != NULL && aclrtDestroyEvent(uploaded) != ACL_SUCCESS) ++failures;
    if (download != NULL && aclrtDestroyStream(download) != ACL_SUCCESS) ++failures;
    if (upload != NULL && aclrtDestroyStream(upload) != ACL_SUCCESS) ++failures;
    if (pinned != NULL && aclrtFreeHost(pinned) != ACL_SUCCESS) ++failures;
    if (dev_b != NULL && aclrtFree(dev_b) != ACL_SUCCESS) ++failures;
    if (dev_a != NULL && aclrtFree(dev_a) != ACL_SUCCESS) ++failures;
    if (device_set && aclrtResetDevice(0) != ACL_SUCCESS) ++failures;
    if (initialised && aclFinalize() != ACL_SUCCESS) ++failures;
    free(src);
    free(dst);
    free(zeros);
    printf("copy_check: %s\n", failures == 0 ? "all checks passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
