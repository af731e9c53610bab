/*
 * A plain C program using the aclnn operator API as it would be written for
 * CANN: it includes the aclnn headers and links against -lascendcl
 * -lnnopbase -lopapi. tests/c_programs.rs builds it against
 * ascend-sys/include and links it to the mock device.
 *
 * It creates tensor descriptors over device memory, runs aclnnAdd,
 * aclnnMatmul and aclnnMoeGatingTopKSoftmax through both phases on a
 * stream, checks the results against values computed here, and checks the
 * error paths: a view past its allocation, destroying a descriptor twice,
 * and running a non-repeatable executor twice. Exit status 0 means every
 * check passed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "aclnn/aclnn_base.h"
#include "aclnnop/aclnn_add.h"
#include "aclnnop/aclnn_matmul.h"
#include "aclnnop/aclnn_moe_gating_top_k_softmax.h"

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

#define OK(call)                                                            \
    do {                                                                    \
        int rc_ = (int)(call);                                              \
        const char *msg_ = rc_ == 0 ? NULL : aclGetRecentErrMsg();          \
        CHECK(rc_ == 0, "%s returned %d (%s)", #call, rc_, msg_ ? msg_ : "no message"); \
    } while (0)

/* A failing call returns `want` and leaves a message naming `name`. */
static void expect_status(int rc, int want, const char *name, const char *what)
{
    ++checks;
    const char *msg = aclGetRecentErrMsg();
    if (rc != want || msg == NULL || strstr(msg, name) == NULL) {
        ++failures;
        fprintf(stderr, "FAILED: %s (%s): got %d, want %d, message %s\n", name, what, rc, want,
                msg ? msg : "(null)");
        return;
    }
    printf("  expected error from %s (%s): %d: %s\n", name, what, rc, msg);
}

static void *device_copy(const void *host, size_t bytes)
{
    void *p = NULL;
    OK(aclrtMalloc(&p, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    OK(aclrtMemcpy(p, bytes, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE));
    return p;
}

static aclTensor *make_tensor(const int64_t *shape, uint64_t rank, aclDataType dtype, void *data)
{
    int64_t strides[8];
    int64_t step = 1;
    for (uint64_t i = rank; i-- > 0;) {
        strides[i] = step;
        step *= shape[i];
    }
    aclTensor *t = aclCreateTensor(shape, rank, dtype, strides, 0, ACL_FORMAT_ND, shape, rank, data);
    CHECK(t != NULL, "aclCreateTensor failed: %s", aclGetRecentErrMsg());
    return t;
}

static int close_to(float got, double want)
{
    return fabs((double)got - want) <= 1e-5 * (1.0 + fabs(want));
}

static void test_add(aclrtStream stream)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    float b[3] = {0.5f, -1, 10};
    float out[6] = {0};
    int64_t s23[2] = {2, 3};
    int64_t s3[1] = {3};
    void *da = device_copy(a, sizeof a);
    void *db = device_copy(b, sizeof b);
    void *dout = device_copy(out, sizeof out);
    aclTensor *ta = make_tensor(s23, 2, ACL_FLOAT, da);
    aclTensor *tb = make_tensor(s3, 1, ACL_FLOAT, db);
    aclTensor *tout = make_tensor(s23, 2, ACL_FLOAT, dout);
    float alpha_value = 3.0f;
    aclScalar *alpha = aclCreateScalar(&alpha_value, ACL_FLOAT);
    CHECK(alpha != NULL, "aclCreateScalar failed");

    uint64_t ws = 1;
    aclOpExecutor *ex = NULL;
    OK(aclnnAddGetWorkspaceSize(ta, tb, alpha, tout, &ws, &ex));
    CHECK(ws == 0, "workspace %llu", (unsigned long long)ws);
    OK(aclnnAdd(NULL, ws, ex, stream));
    /* The executor was consumed by its phase two. */
    expect_status(aclnnAdd(NULL, 0, ex, stream), ACLNN_ERR_PARAM_INVALID, "aclnnAdd",
                  "phase two twice on a non-repeatable executor");
    /* Descriptors may be destroyed once phase two returned. */
    OK(aclDestroyTensor(ta));
    OK(aclDestroyTensor(tb));
    OK(aclDestroyTensor(tout));
    OK(aclDestroyScalar(alpha));
    expect_status(aclDestroyTensor(ta), ACLNN_ERR_PARAM_INVALID, "aclDestroyTensor", "destroyed twice");
    OK(aclrtSynchronizeStream(stream));
    OK(aclrtMemcpy(out, sizeof out, dout, sizeof out, ACL_MEMCPY_DEVICE_TO_HOST));
    for (int i = 0; i < 6; ++i) {
        double want = a[i] + 3.0 * b[i % 3];
        CHECK(close_to(out[i], want), "add[%d] = %f, want %f", i, out[i], want);
    }
    printf("aclnnAdd: out = self + 3 * other over a broadcast row\n");
    OK(aclrtFree(da));
    OK(aclrtFree(db));
    OK(aclrtFree(dout));
}

static void test_matmul(aclrtStream stream)
{
    enum { M = 3, K = 4, N = 2 };
    float a[M * K], b[K * N], out[M * N];
    for (int i = 0; i < M * K; ++i)
        a[i] = (float)(i % 5) - 1.5f;
    for (int i = 0; i < K * N; ++i)
        b[i] = 0.25f * (float)i;
    memset(out, 0, sizeof out);
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, so[2] = {M, N};
    void *da = device_copy(a, sizeof a);
    void *db = device_copy(b, sizeof b);
    void *dout = device_copy(out, sizeof out);
    aclTensor *ta = make_tensor(sa, 2, ACL_FLOAT, da);
    aclTensor *tb = make_tensor(sb, 2, ACL_FLOAT, db);
    aclTensor *tout = make_tensor(so, 2, ACL_FLOAT, dout);
    uint64_t ws = 0;
    aclOpExecutor *ex = NULL;
    OK(aclnnMatmulGetWorkspaceSize(ta, tb, tout, 1, &ws, &ex));
    OK(aclnnMatmul(NULL, ws, ex, stream));
    OK(aclrtSynchronizeStream(stream));
    OK(aclrtMemcpy(out, sizeof out, dout, sizeof out, ACL_MEMCPY_DEVICE_TO_HOST));
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double want = 0;
            for (int k = 0; k < K; ++k)
                want += (double)a[i * K + k] * b[k * N + j];
            CHECK(close_to(out[i * N + j], want), "matmul[%d,%d] = %f, want %f", i, j, out[i * N + j], want);
        }
    printf("aclnnMatmul: [%d,%d] @ [%d,%d]\n", M, K, K, N);

    /* A view larger than its allocation is refused in phase one. */
    int64_t big[2] = {64, K};
    aclTensor *tbig = make_tensor(big, 2, ACL_FLOAT, da);
    int64_t sbo[2] = {64, N};
    aclTensor *tbo = make_tensor(sbo, 2, ACL_FLOAT, dout);
    ex = NULL;
    expect_status(aclnnMatmulGetWorkspaceSize(tbig, tb, tbo, 1, &ws, &ex), ACLNN_ERR_PARAM_INVALID,
                  "aclnnMatmulGetWorkspaceSize", "view past its allocation");
    CHECK(ex == NULL, "no executor on failure");
    OK(aclDestroyTensor(tbig));
    OK(aclDestroyTensor(tbo));
    OK(aclDestroyTensor(ta));
    OK(aclDestroyTensor(tb));
    OK(aclDestroyTensor(tout));
    OK(aclrtFree(da));
    OK(aclrtFree(db));
    OK(aclrtFree(dout));
}

static void test_moe_gating(aclrtStream stream)
{
    enum { ROWS = 3, E = 4, TOPK = 2 };
    float x[ROWS * E] = {0.0f, 1.0f, 2.0f, 3.0f, 3.0f, -1.0f, 0.5f, 2.5f, 1.0f, 1.0f, 0.0f, 2.0f};
    float y[ROWS * TOPK];
    int32_t idx[ROWS * TOPK], row[ROWS * TOPK];
    memset(y, 0, sizeof y);
    memset(idx, 0, sizeof idx);
    memset(row, 0, sizeof row);
    int64_t sx[2] = {ROWS, E}, sk[2] = {ROWS, TOPK};
    void *dx = device_copy(x, sizeof x);
    void *dy = device_copy(y, sizeof y);
    void *didx = device_copy(idx, sizeof idx);
    void *drow = device_copy(row, sizeof row);
    aclTensor *tx = make_tensor(sx, 2, ACL_FLOAT, dx);
    aclTensor *ty = make_tensor(sk, 2, ACL_FLOAT, dy);
    aclTensor *tidx = make_tensor(sk, 2, ACL_INT32, didx);
    aclTensor *trow = make_tensor(sk, 2, ACL_INT32, drow);
    uint64_t ws = 0;
    aclOpExecutor *ex = NULL;
    OK(aclnnMoeGatingTopKSoftmaxGetWorkspaceSize(tx, NULL, TOPK, ty, tidx, trow, &ws, &ex));
    OK(aclnnMoeGatingTopKSoftmax(NULL, ws, ex, stream));
    OK(aclrtSynchronizeStream(stream));
    OK(aclrtMemcpy(y, sizeof y, dy, sizeof y, ACL_MEMCPY_DEVICE_TO_HOST));
    OK(aclrtMemcpy(idx, sizeof idx, didx, sizeof idx, ACL_MEMCPY_DEVICE_TO_HOST));
    OK(aclrtMemcpy(row, sizeof row, drow, sizeof row, ACL_MEMCPY_DEVICE_TO_HOST));
    for (int n = 0; n < ROWS; ++n) {
        const float *r = x + n * E;
        double mx = r[0], sum = 0, p[E];
        for (int e = 1; e < E; ++e)
            mx = r[e] > mx ? r[e] : mx;
        for (int e = 0; e < E; ++e)
            sum += (p[e] = exp(r[e] - mx));
        int taken[E] = {0};
        for (int j = 0; j < TOPK; ++j) {
            int best = -1;
            for (int e = 0; e < E; ++e)
                if (!taken[e] && (best < 0 || p[e] > p[best]))
                    best = e;
            taken[best] = 1;
            CHECK(idx[n * TOPK + j] == best, "expert[%d,%d] = %d, want %d", n, j, idx[n * TOPK + j], best);
            CHECK(close_to(y[n * TOPK + j], p[best] / sum), "weight[%d,%d] = %f, want %f", n, j,
                  y[n * TOPK + j], p[best] / sum);
            CHECK(row[n * TOPK + j] == j * ROWS + n, "rowIdx[%d,%d] = %d", n, j, row[n * TOPK + j]);
        }
    }
    printf("aclnnMoeGatingTopKSoftmax: %d tokens, %d experts, top-%d\n", ROWS, E, TOPK);
    OK(aclDestroyTensor(tx));
    OK(aclDestroyTensor(ty));
    OK(aclDestroyTensor(tidx));
    OK(aclDestroyTensor(trow));
    OK(aclrtFree(dx));
    OK(aclrtFree(dy));
    OK(aclrtFree(didx));
    OK(aclrtFree(drow));
}

int main(void)
{
    OK(aclInit(NULL));
    OK(aclnnInit(NULL));
    OK(aclrtSetDevice(0));
    aclrtStream stream = NULL;
    OK(aclrtCreateStream(&stream));

    test_add(stream);
    test_matmul(stream);
    test_moe_gating(stream);

    OK(aclrtDestroyStream(stream));
    OK(aclnnFinalize());
    OK(aclrtResetDevice(0));
    OK(aclFinalize());

    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
