// aclnn operators and an HCCL collective, checked against values computed
// on the host:
//   1. out = x + alpha * y (aclnnAdd, f32, 2-D tensors with descriptors);
//   2. out = out * y (aclnnMul) on the same stream, the workspace and
//      executor handled as the two-phase aclnn API prescribes;
//   3. an all-reduce (sum) of one buffer per device over two devices
//      (HcclCommInitAll), each rank on its own device's stream;
// and that the SoC it runs on is the one CMake found with npu-smi.
// Exit status 0 only when every result is right.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnn_add.h"
#include "aclnn_mul.h"
#include "hccl/hccl.h"

namespace {

int failures = 0;

bool ok(aclError rc, const char *what)
{
    if (rc == ACL_SUCCESS) {
        return true;
    }
    const char *msg = aclGetRecentErrMsg();
    std::fprintf(stderr, "%s failed with %d: %s\n", what, rc, msg != nullptr ? msg : "(no message)");
    ++failures;
    return false;
}

bool hccl_ok(HcclResult rc, const char *what)
{
    if (rc == HCCL_SUCCESS) {
        return true;
    }
    std::fprintf(stderr, "%s failed with HCCL error %d\n", what, static_cast<int>(rc));
    ++failures;
    return false;
}

void expect_close(const char *what, const std::vector<float> &got, const std::vector<float> &want)
{
    for (size_t i = 0; i < want.size(); ++i) {
        if (std::fabs(got[i] - want[i]) > 1e-5f * (1.0f + std::fabs(want[i]))) {
            std::fprintf(stderr, "%s: element %zu is %g, expected %g\n", what, i, got[i], want[i]);
            ++failures;
            return;
        }
    }
    std::printf("%s: %zu values match\n", what, want.size());
}

// A device buffer with an ND f32 tensor descriptor over it.
struct DeviceTensor {
    void *data = nullptr;
    aclTensor *desc = nullptr;

    bool create(const std::vector<int64_t> &shape, const std::vector<float> &host)
    {
        size_t bytes = host.size() * sizeof(float);
        if (!ok(aclrtMalloc(&data, bytes, ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc") ||
            !ok(aclrtMemcpy(data, bytes, host.data(), bytes, ACL_MEMCPY_HOST_TO_DEVICE), "aclrtMemcpy")) {
            return false;
        }
        std::vector<int64_t> strides(shape.size(), 1);
        for (size_t i = shape.size(); i-- > 1;) {
            strides[i - 1] = strides[i] * shape[i];
        }
        desc = aclCreateTensor(shape.data(), shape.size(), ACL_FLOAT, strides.data(), 0, ACL_FORMAT_ND, shape.data(),
                               shape.size(), data);
        if (desc == nullptr) {
            std::fprintf(stderr, "aclCreateTensor failed\n");
            ++failures;
            return false;
        }
        return true;
    }

    std::vector<float> read(size_t n)
    {
        std::vector<float> host(n, 0.0f);
        ok(aclrtMemcpy(host.data(), n * sizeof(float), data, n * sizeof(float), ACL_MEMCPY_DEVICE_TO_HOST),
           "aclrtMemcpy back");
        return host;
    }

    ~DeviceTensor()
    {
        if (desc != nullptr && aclDestroyTensor(desc) != ACL_SUCCESS) {
            ++failures;
        }
        if (data != nullptr && aclrtFree(data) != ACL_SUCCESS) {
            ++failures;
        }
    }
};

// Runs one prepared aclnn operator: workspace, launch, and frees the
// workspace after the stream is done with it.
bool launch(const char *name, uint64_t workspace_size, aclOpExecutor *executor, aclrtStream stream,
            aclnnStatus (*run)(void *, uint64_t, aclOpExecutor *, aclrtStream))
{
    void *workspace = nullptr;
    if (workspace_size > 0 && !ok(aclrtMalloc(&workspace, workspace_size, ACL_MEM_MALLOC_HUGE_FIRST), name)) {
        return false;
    }
    bool launched = ok(run(workspace, workspace_size, executor, stream), name);
    bool synced = ok(aclrtSynchronizeStream(stream), "aclrtSynchronizeStream");
    if (workspace != nullptr) {
        ok(aclrtFree(workspace), "aclrtFree workspace");
    }
    return launched && synced;
}

void operators(aclrtStream stream)
{
    const std::vector<int64_t> shape = {4, 8};
    const size_t n = 32;
    std::vector<float> x(n), y(n), zeros(n, 0.0f);
    for (size_t i = 0; i < n; ++i) {
        x[i] = 0.25f * static_cast<float>(i) - 3.0f;
        y[i] = 1.5f - 0.125f * static_cast<float>(i);
    }
    float alpha_value = 2.0f;

    DeviceTensor dx, dy, dout;
    if (!dx.create(shape, x) || !dy.create(shape, y) || !dout.create(shape, zeros)) {
        return;
    }
    aclScalar *alpha = aclCreateScalar(&alpha_value, ACL_FLOAT);
    if (alpha == nullptr) {
        std::fprintf(stderr, "aclCreateScalar failed\n");
        ++failures;
        return;
    }

    uint64_t workspace_size = 0;
    aclOpExecutor *executor = nullptr;
    if (ok(aclnnAddGetWorkspaceSize(dx.desc, dy.desc, alpha, dout.desc, &workspace_size, &executor),
           "aclnnAddGetWorkspaceSize") &&
        launch("aclnnAdd", workspace_size, executor, stream, aclnnAdd)) {
        std::vector<float> want(n);
        for (size_t i = 0; i < n; ++i) {
            want[i] = x[i] + alpha_value * y[i];
        }
        expect_close("aclnnAdd (x + 2 * y)", dout.read(n), want);
    }
    ok(aclDestroyScalar(alpha), "aclDestroyScalar");

    // out = out * y, in place on out.
    workspace_size = 0;
    executor = nullptr;
    if (ok(aclnnMulGetWorkspaceSize(dout.desc, dy.desc, dout.desc, &workspace_size, &executor),
           "aclnnMulGetWorkspaceSize") &&
        launch("aclnnMul", workspace_size, executor, stream, aclnnMul)) {
        std::vector<float> want(n);
        for (size_t i = 0; i < n; ++i) {
            want[i] = (x[i] + alpha_value * y[i]) * y[i];
        }
        expect_close("aclnnMul ((x + 2 * y) * y)", dout.read(n), want);
    }
}

void all_reduce()
{
    constexpr int ranks = 2;
    constexpr size_t n = 256;
    int32_t devices[ranks] = {0, 1};
    HcclComm comms[ranks] = {nullptr, nullptr};
    aclrtStream streams[ranks] = {nullptr, nullptr};
    void *send[ranks] = {nullptr, nullptr};
    void *recv[ranks] = {nullptr, nullptr};
    std::vector<float> inputs[ranks];
    bool ready = hccl_ok(HcclCommInitAll(ranks, devices, comms), "HcclCommInitAll");
    for (int r = 0; ready && r < ranks; ++r) {
        inputs[r].resize(n);
        for (size_t i = 0; i < n; ++i) {
            inputs[r][i] = static_cast<float>((r + 1) * static_cast<int>(i)) - 10.0f;
        }
        ready = ok(aclrtSetDevice(devices[r]), "aclrtSetDevice") && ok(aclrtCreateStream(&streams[r]), "aclrtCreateStream") &&
                ok(aclrtMalloc(&send[r], n * sizeof(float), ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc") &&
                ok(aclrtMalloc(&recv[r], n * sizeof(float), ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc") &&
                ok(aclrtMemcpy(send[r], n * sizeof(float), inputs[r].data(), n * sizeof(float),
                               ACL_MEMCPY_HOST_TO_DEVICE),
                   "aclrtMemcpy");
    }
    // Every rank's collective is queued before any stream is waited for.
    for (int r = 0; ready && r < ranks; ++r) {
        ready = ok(aclrtSetDevice(devices[r]), "aclrtSetDevice") &&
                hccl_ok(HcclAllReduce(send[r], recv[r], n, HCCL_DATA_TYPE_FP32, HCCL_REDUCE_SUM, comms[r], streams[r]),
                        "HcclAllReduce");
    }
    for (int r = 0; ready && r < ranks; ++r) {
        ready = ok(aclrtSetDevice(devices[r]), "aclrtSetDevice") &&
                ok(aclrtSynchronizeStream(streams[r]), "aclrtSynchronizeStream");
    }
    std::vector<float> want(n);
    for (size_t i = 0; i < n; ++i) {
        want[i] = inputs[0].empty() ? 0.0f : inputs[0][i] + inputs[1][i];
    }
    for (int r = 0; ready && r < ranks; ++r) {
        std::vector<float> got(n);
        if (ok(aclrtSetDevice(devices[r]), "aclrtSetDevice") &&
            ok(aclrtMemcpy(got.data(), n * sizeof(float), recv[r], n * sizeof(float), ACL_MEMCPY_DEVICE_TO_HOST),
               "aclrtMemcpy")) {
            expect_close(("HcclAllReduce (sum) on rank " + std::to_string(r)).c_str(), got, want);
        }
    }
    for (int r = 0; r < ranks; ++r) {
        if (comms[r] != nullptr) {
            hccl_ok(HcclCommDestroy(comms[r]), "HcclCommDestroy");
        }
        if (streams[r] == nullptr && send[r] == nullptr) {
            continue;
        }
        ok(aclrtSetDevice(devices[r]), "aclrtSetDevice");
        if (send[r] != nullptr) ok(aclrtFree(send[r]), "aclrtFree");
        if (recv[r] != nullptr) ok(aclrtFree(recv[r]), "aclrtFree");
        if (streams[r] != nullptr) ok(aclrtDestroyStream(streams[r]), "aclrtDestroyStream");
    }
}

} // namespace

int main()
{
    if (!ok(aclInit(nullptr), "aclInit")) {
        return 1;
    }
    uint32_t count = 0;
    ok(aclrtGetDeviceCount(&count), "aclrtGetDeviceCount");
    const char *soc = aclrtGetSocName();
    std::printf("devices: %u, SoC: %s (built for %s)\n", count, soc != nullptr ? soc : "(unknown)", BUILT_FOR_SOC);
    if (soc == nullptr || std::string(soc) != BUILT_FOR_SOC) {
        std::fprintf(stderr, "the device is not the SoC the program was built for\n");
        ++failures;
    }
    aclrtStream stream = nullptr;
    if (ok(aclrtSetDevice(0), "aclrtSetDevice") && ok(aclrtCreateStream(&stream), "aclrtCreateStream")) {
        operators(stream);
        ok(aclrtDestroyStream(stream), "aclrtDestroyStream");
    }
    if (count >= 2) {
        all_reduce();
    } else {
        std::fprintf(stderr, "the all-reduce needs 2 devices, the toolkit offers %u\n", count);
        ++failures;
    }
    ok(aclrtResetDevice(0), "aclrtResetDevice");
    ok(aclrtResetDevice(1), "aclrtResetDevice");
    ok(aclFinalize(), "aclFinalize");
    std::printf("aclnn_hccl_check: %s\n", failures == 0 ? "all checks passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
