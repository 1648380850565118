// How long the CUDA driver takes to start on this machine, step by step: cuInit, a device
// attribute, the primary context, a plain context, a first allocation. The GPU path of melpipe
// cannot compute before these (docs/PERFORMANCE.md). Runs each variant in a fresh process.
// build: cc -O2 bench/cuda_start.c -I/usr/local/cuda/include -o cuda_start -ldl
// usage: cuda_start primary|create|create-sched-blocking
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define CHECK(x) do { CUresult r = (x); if (r) { printf("%s failed: %d\n", #x, r); return 1; } } while (0)

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "primary";
    double t0 = now();
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    if (!h) { printf("no libcuda\n"); return 1; }
    CUresult (*Init)(unsigned) = dlsym(h, "cuInit");
    CUresult (*DevGet)(CUdevice *, int) = dlsym(h, "cuDeviceGet");
    CUresult (*Attr)(int *, CUdevice_attribute, CUdevice) = dlsym(h, "cuDeviceGetAttribute");
    CUresult (*Retain)(CUcontext *, CUdevice) = dlsym(h, "cuDevicePrimaryCtxRetain");
    CUresult (*SetFlags)(CUdevice, unsigned) = dlsym(h, "cuDevicePrimaryCtxSetFlags_v2");
    CUresult (*SetCur)(CUcontext) = dlsym(h, "cuCtxSetCurrent");
    CUresult (*Create)(CUcontext *, unsigned, CUdevice) = dlsym(h, "cuCtxCreate_v2");
    CUresult (*Alloc)(CUdeviceptr *, size_t) = dlsym(h, "cuMemAlloc_v2");
    CUresult (*Sync)(void) = dlsym(h, "cuCtxSynchronize");
    double t1 = now();
    CHECK(Init(0));
    double t2 = now();
    CUdevice d; int cc;
    CHECK(DevGet(&d, 0));
    CHECK(Attr(&cc, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d));
    double t3 = now();
    CUcontext c;
    if (!strcmp(mode, "primary")) { CHECK(Retain(&c, d)); CHECK(SetCur(c)); }
    else if (!strcmp(mode, "primary-blocking")) { CHECK(SetFlags(d, CU_CTX_SCHED_BLOCKING_SYNC)); CHECK(Retain(&c, d)); CHECK(SetCur(c)); }
    else { if (!Create) { printf("no cuCtxCreate_v2\n"); return 1; } CHECK(Create(&c, 0, d)); }
    double t4 = now();
    CUdeviceptr p; CHECK(Alloc(&p, 64 << 20)); CHECK(Sync());
    double t5 = now();
    printf("%-18s dlopen %.3f  cuInit %.3f  attribute %.3f  context %.3f  first alloc %.3f  total %.3f s\n",
           mode, t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0);
    return 0;
}
