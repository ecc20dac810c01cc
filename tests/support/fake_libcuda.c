/* A libcuda.so.1 of the CUDA driver API calls gpubundle-compute-probe makes, on host
 * memory: the probe's whole data path (context, allocation, chunked copies, the kernel's
 * arguments, checking every value, error names) runs without a GPU. Not a CUDA driver:
 * the "kernel" is the transform the PTX describes, done in C. Behaviour by environment:
 *   FAKE_CUDA_DEVICES   GPUs to report (default 1; 0: CUDA_ERROR_NO_DEVICE from cuInit)
 *   FAKE_CUDA_TOTAL     bytes of "device memory" (default 1 GiB); larger allocations
 *                       fail with CUDA_ERROR_OUT_OF_MEMORY
 *   FAKE_CUDA_CORRUPT   a word index the kernel gets wrong
 *   FAKE_CUDA_PTX_ERROR an error code cuModuleLoadDataEx returns
 *   FAKE_CUDA_SKIP_TAIL words at the end the kernel leaves untouched (a grid bug) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
enum { OK = 0, INVALID_VALUE = 1, OOM = 2, NOT_INIT = 3, NO_DEVICE = 100,
       INVALID_PTX = 218, UNSUPPORTED_PTX = 222, NOT_FOUND = 500 };

static long env_long(const char *name, long fallback) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : fallback;
}
static size_t used;
static size_t total(void) { return (size_t)env_long("FAKE_CUDA_TOTAL", 1L << 30); }

CUresult cuGetErrorName(CUresult e, const char **name) {
    switch (e) {
    case OK: *name = "CUDA_SUCCESS"; return OK;
    case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return OK;
    case OOM: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return OK;
    case NOT_INIT: *name = "CUDA_ERROR_NOT_INITIALIZED"; return OK;
    case NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; return OK;
    case INVALID_PTX: *name = "CUDA_ERROR_INVALID_PTX"; return OK;
    case UNSUPPORTED_PTX: *name = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"; return OK;
    case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return OK;
    default: return INVALID_VALUE;
    }
}
CUresult cuInit(unsigned flags) { (void)flags; return env_long("FAKE_CUDA_DEVICES", 1) ? OK : NO_DEVICE; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *n) { *n = (int)env_long("FAKE_CUDA_DEVICES", 1); return OK; }
CUresult cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return OK; }
CUresult cuDeviceGetName(char *name, int len, int dev) { snprintf(name, len, "Fake GPU %d", dev); return OK; }
CUresult cuDeviceGetUuid(unsigned char *uuid, int dev) {
    for (int i = 0; i < 16; i++) uuid[i] = (unsigned char)(0x10 * dev + i);
    return OK;
}
CUresult cuDeviceGetAttribute(int *value, int attr, int dev) {
    (void)dev;
    *value = attr == 16 ? 4 : attr == 75 ? 9 : 0; /* 4 SMs, compute capability 9.0 */
    return OK;
}
CUresult cuCtxCreate_v2(void **ctx, unsigned flags, int dev) { (void)flags; (void)dev; *ctx = malloc(1); used = 0; return OK; }
CUresult cuCtxDestroy_v2(void *ctx) { free(ctx); return OK; }
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes) { *free_bytes = total() - used; *total_bytes = total(); return OK; }
CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned n, int *opts, void **vals) {
    long err = env_long("FAKE_CUDA_PTX_ERROR", 0);
    if (err) {
        for (unsigned i = 0; i < n; i++)
            if (opts[i] == 5) snprintf((char *)vals[i], 64, "ptxas fatal: fake failure");
        return (CUresult)err;
    }
    if (!strstr((const char *)image, ".entry gpubundle_transform(")) return INVALID_PTX;
    *module = malloc(1);
    return OK;
}
CUresult cuModuleGetFunction(void **f, void *module, const char *name) {
    (void)module;
    if (strcmp(name, "gpubundle_transform")) return NOT_FOUND;
    *f = (void *)1;
    return OK;
}
CUresult cuModuleUnload(void *module) { free(module); return OK; }
CUresult cuMemAlloc_v2(uint64_t *dptr, size_t size) {
    if (size > total() - used) return OOM;
    void *p = malloc(size);
    if (!p) return OOM;
    used += size;
    *dptr = (uint64_t)(uintptr_t)p;
    return OK;
}
CUresult cuMemFree_v2(uint64_t dptr) { free((void *)(uintptr_t)dptr); return OK; }
CUresult cuMemAllocHost_v2(void **p, size_t size) { *p = malloc(size); return *p ? OK : OOM; }
CUresult cuMemFreeHost(void *p) { free(p); return OK; }
CUresult cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t n) { memcpy((void *)(uintptr_t)dst, src, n); return OK; }
CUresult cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n) { memcpy(dst, (void *)(uintptr_t)src, n); return OK; }
CUresult cuEventCreate(void **ev, unsigned flags) { (void)flags; *ev = malloc(1); return OK; }
CUresult cuEventRecord(void *ev, void *stream) { (void)ev; (void)stream; return OK; }
CUresult cuEventSynchronize(void *ev) { (void)ev; return OK; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { (void)a; (void)b; *ms = 0.5f; return OK; }
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned shared, void *stream, void **params, void **extra) {
    (void)f; (void)gy; (void)gz; (void)by; (void)bz; (void)shared; (void)stream; (void)extra;
    if (!gx || !bx || !params) return INVALID_VALUE;
    uint32_t *data = (uint32_t *)(uintptr_t)*(uint64_t *)params[0];
    uint64_t count = *(uint64_t *)params[1];
    uint32_t mul = *(uint32_t *)params[2], add = *(uint32_t *)params[3];
    uint64_t skip = (uint64_t)env_long("FAKE_CUDA_SKIP_TAIL", 0);
    for (uint64_t i = 0; i + skip < count; i++) data[i] = data[i] * mul + add;
    long corrupt = env_long("FAKE_CUDA_CORRUPT", -1);
    if (corrupt >= 0 && (uint64_t)corrupt < count) data[corrupt] ^= 1;
    return OK;
}
