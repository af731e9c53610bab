/*
 * HCCL across processes, written as a CANN program would be: one rank per
 * process, the root info made by rank 0 and handed to rank 1 out of band.
 * The end-to-end test tests/c_programs.rs builds it against
 * ascend-sys/include and links it with -lascendcl -lhccl to the mock.
 *
 * Rank 1 is started twice, once in each common way:
 *   - fork(): the program forks before either process calls into the
 *     runtime (a forked child keeps only the forking thread: the runtime's
 *     threads, and any lock one of them held, would be lost, so forking
 *     after HcclGetRootInfo, whose listener thread is running, can hang
 *     the child); rank 0 then makes the root info and writes it to rank 1
 *     through a pipe;
 *   - exec: rank 0 starts this program again (posix_spawn of
 *     /proc/self/exe) with the root info in hex on the command line.
 * Each time both ranks run AllReduce (sum), AllGather, AlltoAllV with
 * uneven and zero counts, Broadcast and a send/receive pair, and check the
 * results against the host. Exit status 0 means every check passed; rank 0
 * prints a summary line.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl/acl.h"
#include "hccl/hccl.h"

extern char **environ;

#define N 4096

static int checks = 0;
static int failures = 0;
static int me = 0;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        ++checks;                                                                 \
        if (!(cond)) {                                                            \
            ++failures;                                                           \
            fprintf(stderr, "FAILED rank %d %s:%d: %s: ", me, __FILE__, __LINE__, \
                    #cond);                                                       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

#define ACL_OK(call)                                                          \
    do {                                                                      \
        aclError rc_ = (call);                                                \
        const char *msg_ = rc_ == ACL_SUCCESS ? NULL : aclGetRecentErrMsg();  \
        CHECK(rc_ == ACL_SUCCESS, "%s returned %d (%s)", #call, rc_,          \
              msg_ ? msg_ : "no message");                                    \
    } while (0)

#define HCCL_OK(call)                                                         \
    do {                                                                      \
        HcclResult rc_ = (call);                                              \
        const char *msg_ = rc_ == HCCL_SUCCESS ? NULL : aclGetRecentErrMsg(); \
        CHECK(rc_ == HCCL_SUCCESS, "%s returned %d (%s: %s)", #call,          \
              (int)rc_, HcclGetErrorString(rc_), msg_ ? msg_ : "no message"); \
    } while (0)

static float input(int rank, int i) { return (float)(rank + 1) * 0.25f + (float)(i % 13); }

static void *upload(const float *src, size_t n)
{
    void *dev = NULL;
    ACL_OK(aclrtMalloc(&dev, n * sizeof(float) + 1, ACL_MEM_MALLOC_HUGE_FIRST));
    if (n > 0)
        ACL_OK(aclrtMemcpy(dev, n * sizeof(float), src, n * sizeof(float),
                           ACL_MEMCPY_HOST_TO_DEVICE));
    return dev;
}

static void download(float *dst, const void *dev, size_t n)
{
    if (n > 0)
        ACL_OK(aclrtMemcpy(dst, n * sizeof(float), dev, n * sizeof(float),
                           ACL_MEMCPY_DEVICE_TO_HOST));
}

/* Elements rank src sends to rank dst in AlltoAllV (rank 0 sends itself
 * nothing). */
static uint64_t vcount(int src, int dst)
{
    static const uint64_t c[2][2] = {{0, 3}, {5, 2}};
    return c[src][dst];
}

/* Rank `rank` of 2: joins and runs every check. */
static void run_rank(const HcclRootInfo *info, int rank, const char *how)
{
    static float host[2 * N];
    static float x[2 * N];
    me = rank;
    ACL_OK(aclrtSetDevice(0));
    aclrtStream stream = NULL;
    ACL_OK(aclrtCreateStream(&stream));
    HcclComm comm = NULL;
    HCCL_OK(HcclCommInitRootInfo(2, info, (uint32_t)rank, &comm));
    if (comm == NULL) {
        failures++;
        return;
    }

    /* AllReduce, in place. */
    for (int i = 0; i < N; ++i)
        x[i] = input(rank, i);
    void *buf = upload(x, N);
    HCCL_OK(HcclAllReduce(buf, buf, N, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_SUM, comm, stream));
    ACL_OK(aclrtSynchronizeStream(stream));
    download(host, buf, N);
    int bad = 0;
    for (int i = 0; i < N; ++i)
        bad += host[i] != input(0, i) + input(1, i);
    CHECK(bad == 0, "%s: HcclAllReduce: %d wrong elements", how, bad);

    /* AllGather. */
    void *all = upload(x, 2 * N);
    HCCL_OK(HcclAllGather(buf, all, N, HCCL_DATA_TYPE_FP32, comm, stream));
    ACL_OK(aclrtSynchronizeStream(stream));
    download(host, all, 2 * N);
    bad = 0;
    for (int i = 0; i < N; ++i)
        bad += host[i] != input(0, i) + input(1, i) || host[N + i] != host[i];
    CHECK(bad == 0, "%s: HcclAllGather: %d wrong elements", how, bad);

    /* AlltoAllV: uneven counts, one of them zero; two spare elements at
     * the end of the receive buffer stay untouched. */
    uint64_t sc[2], sd[2], rc[2], rd[2];
    uint64_t sent = 0, recvd = 0;
    for (int p = 0; p < 2; ++p) {
        sc[p] = vcount(rank, p);
        sd[p] = sent;
        sent += sc[p];
        rc[p] = vcount(p, rank);
        rd[p] = recvd;
        recvd += rc[p];
    }
    for (uint64_t i = 0; i < sent; ++i)
        x[i] = (float)(100 * rank) + (float)i;
    void *vs = upload(x, sent);
    for (uint64_t i = 0; i < recvd + 2; ++i)
        x[i] = -1.0f;
    void *vr = upload(x, recvd + 2);
    HCCL_OK(HcclAlltoAllV(vs, sc, sd, HCCL_DATA_TYPE_FP32, vr, rc, rd, HCCL_DATA_TYPE_FP32,
                          comm, stream));
    ACL_OK(aclrtSynchronizeStream(stream));
    download(host, vr, recvd + 2);
    bad = 0;
    for (int src = 0; src < 2; ++src) {
        uint64_t start = 0;
        for (int d = 0; d < rank; ++d)
            start += vcount(src, d);
        for (uint64_t i = 0; i < rc[src]; ++i)
            bad += host[rd[src] + i] != (float)(100 * src) + (float)(start + i);
    }
    bad += host[recvd] != -1.0f || host[recvd + 1] != -1.0f;
    CHECK(bad == 0, "%s: HcclAlltoAllV: %d wrong elements", how, bad);

    /* Broadcast from rank 1. */
    for (int i = 0; i < N; ++i)
        x[i] = input(rank, i) * 3.0f;
    void *bc = upload(x, N);
    HCCL_OK(HcclBroadcast(bc, N, HCCL_DATA_TYPE_FP32, 1, comm, stream));
    ACL_OK(aclrtSynchronizeStream(stream));
    download(host, bc, N);
    bad = 0;
    for (int i = 0; i < N; ++i)
        bad += host[i] != input(1, i) * 3.0f;
    CHECK(bad == 0, "%s: HcclBroadcast: %d wrong elements", how, bad);

    /* Rank 1 sends its input to rank 0. */
    if (rank == 1) {
        HCCL_OK(HcclSend(bc, N, HCCL_DATA_TYPE_FP32, 0, comm, stream));
    } else {
        HCCL_OK(HcclRecv(buf, N, HCCL_DATA_TYPE_FP32, 1, comm, stream));
    }
    ACL_OK(aclrtSynchronizeStream(stream));
    if (rank == 0) {
        download(host, buf, N);
        bad = 0;
        for (int i = 0; i < N; ++i)
            bad += host[i] != input(1, i) * 3.0f;
        CHECK(bad == 0, "%s: HcclSend/HcclRecv: %d wrong elements", how, bad);
    }

    HCCL_OK(HcclBarrier(comm, stream));
    ACL_OK(aclrtSynchronizeStream(stream));
    HCCL_OK(HcclCommDestroy(comm));
    ACL_OK(aclrtFree(buf));
    ACL_OK(aclrtFree(all));
    ACL_OK(aclrtFree(vs));
    ACL_OK(aclrtFree(vr));
    ACL_OK(aclrtFree(bc));
    ACL_OK(aclrtDestroyStream(stream));
}

static void to_hex(const HcclRootInfo *info, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < HCCL_ROOT_INFO_BYTES; ++i) {
        unsigned char b = (unsigned char)info->internal[i];
        out[2 * i] = digits[b >> 4];
        out[2 * i + 1] = digits[b & 15];
    }
    out[2 * HCCL_ROOT_INFO_BYTES] = 0;
}

static int from_hex(const char *s, HcclRootInfo *info)
{
    if (strlen(s) != 2 * HCCL_ROOT_INFO_BYTES)
        return -1;
    for (size_t i = 0; i < HCCL_ROOT_INFO_BYTES; ++i) {
        unsigned v = 0;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        info->internal[i] = (char)v;
    }
    return 0;
}

/* Writes or reads all `len` bytes of `buf` on `fd`; 0 on success. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int wait_child(pid_t pid, const char *how)
{
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "%s: waitpid", how);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s: rank 1 failed (status %d)", how, status);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "rank1") == 0) {
        HcclRootInfo info;
        if (from_hex(argv[2], &info) != 0) {
            fprintf(stderr, "bad root info argument\n");
            return 2;
        }
        ACL_OK(aclInit(NULL));
        run_rank(&info, 1, "exec");
        ACL_OK(aclrtResetDevice(0));
        ACL_OK(aclFinalize());
        return failures == 0 ? 0 : 1;
    }

    /* fork() before any runtime call; the root info goes through a pipe. */
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        HcclRootInfo info;
        close(fds[1]);
        if (read_all(fds[0], &info, sizeof info) != 0) {
            fprintf(stderr, "rank 1: no root info from rank 0\n");
            _exit(2);
        }
        close(fds[0]);
        ACL_OK(aclInit(NULL));
        run_rank(&info, 1, "fork");
        ACL_OK(aclrtResetDevice(0));
        ACL_OK(aclFinalize());
        fflush(NULL);
        _exit(failures == 0 ? 0 : 1);
    }
    CHECK(pid > 0, "fork failed");
    close(fds[0]);
    HcclRootInfo info;
    HCCL_OK(HcclGetRootInfo(&info));
    CHECK(pid < 0 || write_all(fds[1], &info, sizeof info) == 0, "writing the root info");
    close(fds[1]);
    ACL_OK(aclInit(NULL));
    run_rank(&info, 0, "fork");
    if (pid > 0)
        wait_child(pid, "fork");

    /* exec: the same program, rank 1, the root info in hex. */
    HcclRootInfo info2;
    HCCL_OK(HcclGetRootInfo(&info2));
    static char hex[2 * HCCL_ROOT_INFO_BYTES + 1];
    to_hex(&info2, hex);
    char *child_argv[] = {argv[0], "rank1", hex, NULL};
    pid_t pid2 = 0;
    int rc = posix_spawn(&pid2, "/proc/self/exe", NULL, NULL, child_argv, environ);
    CHECK(rc == 0, "posix_spawn failed: %d", rc);
    run_rank(&info2, 0, "exec");
    if (rc == 0)
        wait_child(pid2, "exec");
    ACL_OK(aclrtResetDevice(0));
    ACL_OK(aclFinalize());

    printf("hccl_mp: 2 processes (fork and exec), %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
