/*
 * A plain HCCL program, written as it would be for CANN: one process drives
 * two devices from one thread. HcclCommInitAll creates one communicator per
 * device; each rank's collective is enqueued on that rank's stream (with the
 * rank's device current) before any stream is synchronised, so no thread per
 * rank is needed. The end-to-end test tests/c_programs.rs builds it against
 * ascend-sys/include and links it with -lascendcl -lhccl to the mock device.
 *
 * It checks AllReduce (sum, max), AllGather, Broadcast, Reduce (min, no
 * receive buffer on the non-root rank), Scatter, AlltoAllV with
 * uneven counts, a send/receive exchange inside HcclGroupStart/End, the
 * communicator queries, and error paths with their aclGetRecentErrMsg text.
 * Exit status 0 means every check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "hccl/hccl.h"

#define RANKS 2
#define N 1000

static int checks = 0;
static int failures = 0;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        ++checks;                                                             \
        if (!(cond)) {                                                        \
            ++failures;                                                       \
            fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

#define ACL_OK(call)                                                          \
    do {                                                                      \
        aclError rc_ = (call);                                                \
        const char *msg_ = rc_ == ACL_SUCCESS ? NULL : aclGetRecentErrMsg();  \
        CHECK(rc_ == ACL_SUCCESS, "%s returned %d (%s)", #call, rc_, msg_ ? msg_ : "no message"); \
    } while (0)

#define HCCL_OK(call)                                                         \
    do {                                                                      \
        HcclResult rc_ = (call);                                              \
        const char *msg_ = rc_ == HCCL_SUCCESS ? NULL : aclGetRecentErrMsg(); \
        CHECK(rc_ == HCCL_SUCCESS, "%s returned %d (%s: %s)", #call, (int)rc_, \
              HcclGetErrorString(rc_), msg_ ? msg_ : "no message");           \
    } while (0)

static aclrtStream streams[RANKS];
static void *send_buf[RANKS];
static void *recv_buf[RANKS];
static float host[N * RANKS];

static void upload(int rank, void *dev, const float *src, size_t n)
{
    ACL_OK(aclrtSetDevice(rank));
    ACL_OK(aclrtMemcpy(dev, n * sizeof(float), src, n * sizeof(float), ACL_MEMCPY_HOST_TO_DEVICE));
}

static void download(int rank, float *dst, const void *dev, size_t n)
{
    ACL_OK(aclrtSetDevice(rank));
    ACL_OK(aclrtMemcpy(dst, n * sizeof(float), dev, n * sizeof(float), ACL_MEMCPY_DEVICE_TO_HOST));
}

static void sync_all(void)
{
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        ACL_OK(aclrtSynchronizeStream(streams[r]));
    }
}

static float input(int rank, int i) { return (float)(rank + 1) * 0.5f + (float)(i % 17); }

static void all_reduce(HcclComm *comms)
{
    float in[N];
    for (int r = 0; r < RANKS; ++r) {
        for (int i = 0; i < N; ++i) {
            in[i] = input(r, i);
        }
        upload(r, send_buf[r], in, N);
    }
    /* Enqueue every rank's part before synchronising any stream. */
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclAllReduce(send_buf[r], recv_buf[r], N, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_SUM, comms[r],
                              streams[r]));
    }
    sync_all();
    for (int r = 0; r < RANKS; ++r) {
        download(r, host, recv_buf[r], N);
        int bad = 0;
        for (int i = 0; i < N; ++i) {
            float want = input(0, i) + input(1, i);
            bad += host[i] != want;
        }
        CHECK(bad == 0, "AllReduce sum: rank %d has %d wrong elements", r, bad);
    }
    /* Max, in place. */
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclAllReduce(send_buf[r], send_buf[r], N, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_MAX, comms[r],
                              streams[r]));
    }
    sync_all();
    for (int r = 0; r < RANKS; ++r) {
        download(r, host, send_buf[r], N);
        CHECK(host[5] == input(1, 5), "AllReduce max: rank %d got %f", r, (double)host[5]);
    }
    printf("  HcclAllReduce: sum and max over %d ranks of %d floats\n", RANKS, N);
}

static void all_gather_and_broadcast(HcclComm *comms)
{
    float in[N];
    for (int r = 0; r < RANKS; ++r) {
        for (int i = 0; i < N; ++i) {
            in[i] = input(r, i);
        }
        upload(r, send_buf[r], in, N);
    }
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclAllGather(send_buf[r], recv_buf[r], N, HCCL_DATA_TYPE_FP32, comms[r], streams[r]));
    }
    sync_all();
    for (int r = 0; r < RANKS; ++r) {
        download(r, host, recv_buf[r], N * RANKS);
        CHECK(host[3] == input(0, 3) && host[N + 3] == input(1, 3), "AllGather: rank %d out of order", r);
    }
    /* Broadcast rank 1's send buffer. */
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclBroadcast(send_buf[r], N, HCCL_DATA_TYPE_FP32, 1, comms[r], streams[r]));
    }
    sync_all();
    download(0, host, send_buf[0], N);
    CHECK(host[7] == input(1, 7), "Broadcast: rank 0 got %f", (double)host[7]);
    printf("  HcclAllGather and HcclBroadcast\n");
}

static void reduce_and_scatter(HcclComm *comms)
{
    float in[N * RANKS];
    for (int r = 0; r < RANKS; ++r) {
        for (int i = 0; i < N; ++i) {
            in[i] = input(r, i);
        }
        upload(r, send_buf[r], in, N);
    }
    /* Reduce (min) to rank 1; rank 0 passes no receive buffer. */
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclReduce(send_buf[r], r == 1 ? recv_buf[r] : NULL, N, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_MIN, 1,
                           comms[r], streams[r]));
    }
    sync_all();
    download(1, host, recv_buf[1], N);
    int bad = 0;
    for (int i = 0; i < N; ++i) {
        float a = input(0, i), b = input(1, i);
        bad += host[i] != (a < b ? a : b);
    }
    CHECK(bad == 0, "Reduce min: the root has %d wrong elements", bad);
    /* Scatter rank 0's N floats, N / RANKS to each rank; rank 1 passes no
       send buffer. */
    for (int i = 0; i < N; ++i) {
        in[i] = (float)(3 * i);
    }
    upload(0, send_buf[0], in, N);
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclScatter(r == 0 ? send_buf[r] : NULL, recv_buf[r], N / RANKS, HCCL_DATA_TYPE_FP32, 0, comms[r],
                            streams[r]));
    }
    sync_all();
    for (int r = 0; r < RANKS; ++r) {
        download(r, host, recv_buf[r], N / RANKS);
        bad = 0;
        for (int i = 0; i < N / RANKS; ++i) {
            bad += host[i] != (float)(3 * (r * (N / RANKS) + i));
        }
        CHECK(bad == 0, "Scatter: rank %d has %d wrong elements", r, bad);
    }
    printf("  HcclReduce and HcclScatter\n");
}

static void all_to_all_v(HcclComm *comms)
{
    /* counts[i][j]: elements rank i sends to rank j (a zero included). */
    uint64_t counts[RANKS][RANKS] = {{0, 3}, {2, 1}};
    uint64_t sdispls[RANKS][RANKS] = {{0, 0}, {0, 2}};
    uint64_t rcounts[RANKS][RANKS];
    uint64_t rdispls[RANKS][RANKS];
    for (int r = 0; r < RANKS; ++r) {
        uint64_t at = 0;
        for (int i = 0; i < RANKS; ++i) {
            rcounts[r][i] = counts[i][r];
            rdispls[r][i] = at;
            at += rcounts[r][i];
        }
        float in[8];
        for (int i = 0; i < 8; ++i) {
            in[i] = (float)(10 * r + i);
        }
        upload(r, send_buf[r], in, 8);
    }
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclAlltoAllV(send_buf[r], counts[r], sdispls[r], HCCL_DATA_TYPE_FP32, recv_buf[r], rcounts[r],
                              rdispls[r], HCCL_DATA_TYPE_FP32, comms[r], streams[r]));
    }
    sync_all();
    /* Rank 0 receives 2 elements from rank 1 (its 0, 1): 10, 11. */
    download(0, host, recv_buf[0], 2);
    CHECK(host[0] == 10.0f && host[1] == 11.0f, "AlltoAllV rank 0: %f %f", (double)host[0], (double)host[1]);
    /* Rank 1 receives 3 from rank 0 (0, 1, 2) then 1 from itself (its 2): 12. */
    download(1, host, recv_buf[1], 4);
    CHECK(host[0] == 0.0f && host[2] == 2.0f && host[3] == 12.0f, "AlltoAllV rank 1: %f %f %f",
          (double)host[0], (double)host[2], (double)host[3]);
    printf("  HcclAlltoAllV with uneven counts\n");
}

static void send_recv(HcclComm *comms)
{
    float in[N];
    for (int r = 0; r < RANKS; ++r) {
        for (int i = 0; i < N; ++i) {
            in[i] = input(r, i) * 3.0f;
        }
        upload(r, send_buf[r], in, N);
    }
    /* Each rank receives before it sends: the group makes that safe. */
    HCCL_OK(HcclGroupStart());
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        HCCL_OK(HcclRecv(recv_buf[r], N, HCCL_DATA_TYPE_FP32, (uint32_t)(1 - r), comms[r], streams[r]));
        HCCL_OK(HcclSend(send_buf[r], N, HCCL_DATA_TYPE_FP32, (uint32_t)(1 - r), comms[r], streams[r]));
    }
    HCCL_OK(HcclGroupEnd());
    sync_all();
    for (int r = 0; r < RANKS; ++r) {
        download(r, host, recv_buf[r], N);
        CHECK(host[9] == input(1 - r, 9) * 3.0f, "Send/Recv: rank %d got %f", r, (double)host[9]);
    }
    printf("  HcclSend/HcclRecv inside a group\n");
}

static void queries_and_errors(HcclComm *comms)
{
    uint32_t size = 0, rank = 9;
    HCCL_OK(HcclGetRankSize(comms[1], &size));
    HCCL_OK(HcclGetRankId(comms[1], &rank));
    CHECK(size == RANKS && rank == 1, "size %u rank %u", size, rank);
    char name0[COMM_NAME_MAX_LENGTH], name1[COMM_NAME_MAX_LENGTH];
    HCCL_OK(HcclGetCommName(comms[0], name0));
    HCCL_OK(HcclGetCommName(comms[1], name1));
    CHECK(strcmp(name0, name1) == 0 && name0[0] != '\0', "names %s / %s", name0, name1);
    HcclResult async = HCCL_E_INTERNAL;
    HCCL_OK(HcclGetCommAsyncError(comms[0], &async));
    CHECK(async == HCCL_SUCCESS, "async error %d", (int)async);

    ACL_OK(aclrtSetDevice(0));
    HcclResult rc = HcclAllReduce(NULL, recv_buf[0], 4, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_SUM, comms[0], streams[0]);
    const char *msg = aclGetRecentErrMsg();
    CHECK(rc == HCCL_E_PTR && msg != NULL && strstr(msg, "HcclAllReduce") && strstr(msg, "sendBuf"),
          "NULL sendBuf: %d %s", (int)rc, msg ? msg : "(null)");
    printf("  expected error (%s): %s\n", HcclGetErrorString(rc), msg ? msg : "(null)");

    /* Rank 1 lives on device 1; device 0 is current. */
    rc = HcclBarrier(comms[1], NULL);
    msg = aclGetRecentErrMsg();
    CHECK(rc == HCCL_E_PARA && msg != NULL && strstr(msg, "current device"), "wrong device: %d %s", (int)rc,
          msg ? msg : "(null)");

    rc = HcclAllReduce(send_buf[0], recv_buf[0], 4, HCCL_DATA_TYPE_INT128, HCCL_REDUCE_SUM, comms[0], streams[0]);
    msg = aclGetRecentErrMsg();
    CHECK(rc == HCCL_E_NOT_SUPPORT, "INT128 reduction: %d %s", (int)rc, msg ? msg : "(null)");

    rc = HcclAllReduce(send_buf[0], recv_buf[0], N * 4, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_SUM, comms[0], streams[0]);
    msg = aclGetRecentErrMsg();
    CHECK(rc == HCCL_E_PARA && msg != NULL && strstr(msg, "runs past the end"), "overrun: %d %s", (int)rc,
          msg ? msg : "(null)");
    printf("  expected error (%s): %s\n", HcclGetErrorString(rc), msg ? msg : "(null)");
}

int main(void)
{
    ACL_OK(aclInit(NULL));
    int32_t devices[RANKS] = {0, 1};
    HcclComm comms[RANKS] = {NULL, NULL};
    HCCL_OK(HcclCommInitAll(RANKS, devices, comms));
    for (int r = 0; r < RANKS; ++r) {
        ACL_OK(aclrtSetDevice(r));
        ACL_OK(aclrtCreateStream(&streams[r]));
        ACL_OK(aclrtMalloc(&send_buf[r], N * sizeof(float), ACL_MEM_MALLOC_HUGE_FIRST));
        ACL_OK(aclrtMalloc(&recv_buf[r], N * RANKS * sizeof(float), ACL_MEM_MALLOC_HUGE_FIRST));
    }
    if (failures == 0) {
        all_reduce(comms);
        all_gather_and_broadcast(comms);
        reduce_and_scatter(comms);
        all_to_all_v(comms);
        send_recv(comms);
        queries_and_errors(comms);
    }
    for (int r = 0; r < RANKS; ++r) {
        HCCL_OK(HcclCommDestroy(comms[r]));
        ACL_OK(aclrtSetDevice(r));
        ACL_OK(aclrtFree(send_buf[r]));
        ACL_OK(aclrtFree(recv_buf[r]));
        ACL_OK(aclrtDestroyStream(streams[r]));
    }
    ACL_OK(aclFinalize());
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
