/*
 * A plain AscendCL program, written as it would be for CANN: it includes
 * only the AscendCL headers and links against -lascendcl. The end-to-end
 * test tests/c_programs.rs builds it against ascend-sys/include and links it
 * to the mock device (libascend_mock.so, provided under the name
 * libascendcl.so), then runs it.
 *
 * It exercises the runtime calls: init, devices, contexts, streams, events,
 * device and pinned memory, every memcpy kind, memsets, timing, and the
 * error paths with their aclGetRecentErrMsg text. Exit status 0 means every
 * check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"

static int checks = 0;
static int failures = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        ++checks;                                                          \
        if (!(cond)) {                                                     \
            ++failures;                                                    \
            fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

#define ACL_OK(call)                                                        \
    do {                                                                    \
        aclError rc_ = (call);                                              \
        const char *msg_ = rc_ == ACL_SUCCESS ? NULL : aclGetRecentErrMsg(); \
        CHECK(rc_ == ACL_SUCCESS, "%s returned %d (%s)", #call, rc_, msg_ ? msg_ : "no message"); \
    } while (0)

/* A failing call must return an error and leave a message naming the call. */
static void expect_error(aclError rc, const char *call_name, const char *what)
{
    ++checks;
    if (rc == ACL_SUCCESS) {
        ++failures;
        fprintf(stderr, "FAILED: %s should fail (%s)\n", call_name, what);
        return;
    }
    const char *msg = aclGetRecentErrMsg();
    ++checks;
    if (msg == NULL || strstr(msg, call_name) == NULL) {
        ++failures;
        fprintf(stderr, "FAILED: %s returned %d but the message does not name it: %s\n", call_name, rc,
                msg ? msg : "(null)");
        return;
    }
    printf("  expected error from %s (%s): %d: %s\n", call_name, what, rc, msg);
    /* aclGetRecentErrMsg fetches and clears. */
    ++checks;
    if (aclGetRecentErrMsg() != NULL) {
        ++failures;
        fprintf(stderr, "FAILED: aclGetRecentErrMsg did not clear the message\n");
    }
}

static void test_devices(void)
{
    uint32_t count = 0;
    ACL_OK(aclrtGetDeviceCount(&count));
    CHECK(count >= 1, "device count %u", count);

    ACL_OK(aclrtSetDevice(0));
    int32_t dev = -1;
    ACL_OK(aclrtGetDevice(&dev));
    CHECK(dev == 0, "current device %d", dev);

    const char *soc = aclrtGetSocName();
    CHECK(soc != NULL && strlen(soc) > 0, "SoC name");

    aclrtRunMode mode;
    ACL_OK(aclrtGetRunMode(&mode));
    CHECK(mode == ACL_HOST, "run mode %d", (int)mode);

    size_t free_bytes = 0, total = 0;
    ACL_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free_bytes, &total));
    CHECK(total > 0 && free_bytes <= total, "mem info %zu/%zu", free_bytes, total);

    aclrtContext ctx = NULL;
    ACL_OK(aclrtGetCurrentContext(&ctx));
    CHECK(ctx != NULL, "default context");

    expect_error(aclrtSetDevice((int32_t)count + 7), "aclrtSetDevice", "invalid device id");
    printf("devices: %u, SoC %s, %zu of %zu bytes free\n", count, soc ? soc : "?", free_bytes, total);
}

static void test_memory(void)
{
    enum { N = 1024 };
    size_t bytes = N * sizeof(float);
    float *host = (float *)malloc(bytes);
    float *back = (float *)malloc(bytes);
    for (int i = 0; i < N; ++i) {
        host[i] = (float)i * 0.5f;
    }

    void *dev_a = NULL, *dev_b = NULL, *pinned = NULL;
    ACL_OK(aclrtMalloc(&dev_a, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    ACL_OK(aclrtMalloc(&dev_b, bytes, ACL_MEM_MALLOC_NORMAL_ONLY));
    ACL_OK(aclrtMallocHost(&pinned, bytes));
    CHECK(((uintptr_t)dev_a % 64) == 0, "device pointer 64-byte aligned");

    size_t free_before = 0, free_after = 0, total = 0;
    ACL_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free_before, &total));

    /* Every kind, synchronously. */
    ACL_OK(aclrtMemcpy(dev_a, bytes, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE));
    ACL_OK(aclrtMemcpy(dev_b, bytes, dev_a, bytes, ACL_MEMCPY_DEVICE_TO_DEVICE));
    ACL_OK(aclrtMemcpy(pinned, bytes, dev_b, bytes, ACL_MEMCPY_DEVICE_TO_HOST));
    ACL_OK(aclrtMemcpy(back, bytes, pinned, bytes, ACL_MEMCPY_HOST_TO_HOST));
    CHECK(memcmp(host, back, bytes) == 0, "H2D, D2D, D2H, H2H round trip");

    memset(back, 0, bytes);
    ACL_OK(aclrtMemcpy(dev_b, bytes, host, bytes, ACL_MEMCPY_DEFAULT));
    ACL_OK(aclrtMemcpy(dev_a, bytes, dev_b, bytes, ACL_MEMCPY_INNER_DEVICE_TO_DEVICE));
    ACL_OK(aclrtMemcpy(back, bytes, dev_a, bytes, ACL_MEMCPY_DEFAULT));
    CHECK(memcmp(host, back, bytes) == 0, "DEFAULT and INNER_DEVICE_TO_DEVICE round trip");

    ACL_OK(aclrtMemcpy(dev_a, bytes, host, bytes, ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE));
    ACL_OK(aclrtMemcpy(back, bytes, dev_a, bytes, ACL_MEMCPY_DEVICE_TO_HOST));
    CHECK(memcmp(host, back, bytes) == 0, "HOST_TO_BUF_TO_DEVICE round trip");

    /* Memset, synchronous. */
    ACL_OK(aclrtMemset(dev_a, bytes, 0x7f, bytes));
    ACL_OK(aclrtMemcpy(back, bytes, dev_a, bytes, ACL_MEMCPY_DEVICE_TO_HOST));
    const unsigned char *raw = (const unsigned char *)back;
    int all = 1;
    for (size_t i = 0; i < bytes; ++i) {
        all &= raw[i] == 0x7f;
    }
    CHECK(all, "aclrtMemset filled every byte");

    /* Errors: destMax smaller than count, a kind that lies about the pointers. */
    expect_error(aclrtMemcpy(dev_a, bytes / 2, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE), "aclrtMemcpy",
                 "destMax < count");
    expect_error(aclrtMemcpy(dev_a, bytes, host, bytes, ACL_MEMCPY_DEVICE_TO_DEVICE), "aclrtMemcpy",
                 "host source given as device");
    expect_error(aclrtMemcpy(host, bytes, dev_a, bytes, ACL_MEMCPY_HOST_TO_DEVICE), "aclrtMemcpy",
                 "kind reversed");
    expect_error(aclrtMemset(dev_a, bytes, 0, bytes * 2), "aclrtMemset", "count > maxCount");
    void *empty = NULL;
    expect_error(aclrtMalloc(&empty, 0, ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc", "size 0");

    ACL_OK(aclrtFree(dev_a));
    ACL_OK(aclrtGetMemInfo(ACL_HBM_MEM, &free_after, &total));
    CHECK(free_after > free_before, "freeing returns capacity (%zu -> %zu)", free_before, free_after);
    ACL_OK(aclrtFree(dev_b));
    ACL_OK(aclrtFreeHost(pinned));
    free(host);
    free(back);
    printf("memory: every memcpy kind, memset and the error paths\n");
}

static void test_streams_and_events(void)
{
    enum { N = 1 << 20 };
    size_t bytes = N * sizeof(int32_t);
    int32_t *pinned_in = NULL, *pinned_out = NULL;
    void *dev = NULL, *dev2 = NULL;
    ACL_OK(aclrtMallocHost((void **)&pinned_in, bytes));
    ACL_OK(aclrtMallocHost((void **)&pinned_out, bytes));
    ACL_OK(aclrtMalloc(&dev, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    ACL_OK(aclrtMalloc(&dev2, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    for (int i = 0; i < N; ++i) {
        pinned_in[i] = i;
        pinned_out[i] = -1;
    }

    aclrtStream producer = NULL, consumer = NULL;
    aclrtEvent start = NULL, stop = NULL, ready = NULL;
    ACL_OK(aclrtCreateStream(&producer));
    ACL_OK(aclrtCreateStreamWithConfig(&consumer, 0, ACL_STREAM_FAST_LAUNCH));
    ACL_OK(aclrtCreateEvent(&start));
    ACL_OK(aclrtCreateEventWithFlag(&stop, ACL_EVENT_TIME_LINE | ACL_EVENT_SYNC));
    ACL_OK(aclrtCreateEventWithFlag(&ready, ACL_EVENT_SYNC));

    /* Producer: H2D, memset a tail, then signal; consumer waits, D2D, D2H. */
    ACL_OK(aclrtRecordEvent(start, producer));
    ACL_OK(aclrtMemcpyAsync(dev, bytes, pinned_in, bytes, ACL_MEMCPY_HOST_TO_DEVICE, producer));
    ACL_OK(aclrtMemsetAsync((char *)dev + bytes / 2, bytes / 2, 0, bytes / 2, producer));
    ACL_OK(aclrtRecordEvent(ready, producer));
    ACL_OK(aclrtStreamWaitEvent(consumer, ready));
    ACL_OK(aclrtMemcpyAsync(dev2, bytes, dev, bytes, ACL_MEMCPY_DEVICE_TO_DEVICE, consumer));
    ACL_OK(aclrtMemcpyAsync(pinned_out, bytes, dev2, bytes, ACL_MEMCPY_DEVICE_TO_HOST, consumer));
    ACL_OK(aclrtRecordEvent(stop, consumer));

    ACL_OK(aclrtSynchronizeStream(consumer));
    aclrtStreamStatus status = ACL_STREAM_STATUS_NOT_READY;
    ACL_OK(aclrtStreamQuery(consumer, &status));
    CHECK(status == ACL_STREAM_STATUS_COMPLETE, "stream idle after synchronize");
    aclrtEventRecordedStatus recorded = ACL_EVENT_RECORDED_STATUS_NOT_READY;
    ACL_OK(aclrtQueryEventStatus(stop, &recorded));
    CHECK(recorded == ACL_EVENT_RECORDED_STATUS_COMPLETE, "stop event complete");
    ACL_OK(aclrtSynchronizeEvent(ready));

    int ok = 1;
    for (int i = 0; i < N; ++i) {
        int32_t want = i < N / 2 ? i : 0;
        if (pinned_out[i] != want) {
            ok = 0;
            fprintf(stderr, "element %d: %d, want %d\n", i, pinned_out[i], want);
            break;
        }
    }
    CHECK(ok, "data ordered across two streams by an event");

    float ms = -1.0f;
    ACL_OK(aclrtEventElapsedTime(&ms, start, stop));
    CHECK(ms >= 0.0f && ms < 60000.0f, "elapsed %f ms", ms);

    ACL_OK(aclrtSynchronizeDevice());
    ACL_OK(aclrtDestroyEvent(start));
    ACL_OK(aclrtDestroyEvent(stop));
    ACL_OK(aclrtDestroyEvent(ready));
    ACL_OK(aclrtDestroyStream(producer));
    ACL_OK(aclrtDestroyStream(consumer));
    ACL_OK(aclrtFree(dev));
    ACL_OK(aclrtFree(dev2));
    ACL_OK(aclrtFreeHost(pinned_in));
    ACL_OK(aclrtFreeHost(pinned_out));
    printf("streams and events: 4 MiB through two streams in %.3f ms\n", ms);
}

static void test_contexts(void)
{
    aclrtContext ctx = NULL, current = NULL;
    uint32_t count = 0;
    ACL_OK(aclrtGetDeviceCount(&count));
    int32_t other = count > 1 ? 1 : 0;
    ACL_OK(aclrtCreateContext(&ctx, other));
    ACL_OK(aclrtGetCurrentContext(&current));
    CHECK(current == ctx, "a created context becomes current");
    int32_t dev = -1;
    ACL_OK(aclrtGetDevice(&dev));
    CHECK(dev == other, "device follows the context (%d)", dev);
    aclrtStream def = NULL;
    ACL_OK(aclrtCtxGetCurrentDefaultStream(&def));
    void *p = NULL;
    ACL_OK(aclrtMalloc(&p, 256, ACL_MEM_MALLOC_HUGE_FIRST));
    ACL_OK(aclrtMemsetAsync(p, 256, 1, 256, NULL));
    ACL_OK(aclrtSynchronizeStream(NULL));
    ACL_OK(aclrtFree(p));
    ACL_OK(aclrtDestroyContext(ctx));
    printf("contexts: explicit context on device %d\n", other);
}

int main(void)
{
    ACL_OK(aclInit(NULL));
    expect_error(aclInit(NULL), "aclInit", "second initialisation");
    int32_t major = 0, minor = 0, patch = 0;
    ACL_OK(aclrtGetVersion(&major, &minor, &patch));
    printf("AscendCL interface %d.%d.%d\n", major, minor, patch);

    test_devices();
    test_memory();
    test_streams_and_events();
    test_contexts();

    ACL_OK(aclrtResetDevice(0));
    ACL_OK(aclFinalize());
    expect_error(aclFinalize(), "aclFinalize", "second finalisation");

    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
