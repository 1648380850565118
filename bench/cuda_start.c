// How long the CUDA driver takes to start on this machine, step by step: cuInit, a device
// attribute, the primary context, a plain context, a first allocation. The GPU path of melpipe
// cannot compute before these (docs/PERFORMANCE.md). Runs each variant in a fresh process.
// build: cc -O2 bench/cuda_start.c -I/usr/local/cuda/include -o cuda_start -ldl
// usage: cuda_start primary|create|create-sched-blocking
//        cuda_start teardown-explicit|teardown-exit  (primary context, then what a melpipe GPU run
//        holds at its end: 270 MB of registered host memory in 26 pieces, 4 x 8 MB cuMemHostAlloc,
//        4 x 64 MB of device memory; explicit frees them and releases the context, timing each
//        step, exit leaves it all to _exit. Time the process from outside for the exit's cost.)
//        cuda_start teardown-leak  (as teardown-explicit without unregistering the host memory:
//        the context's release takes the registrations with it; the memory is freed after)
//        TEARDOWN_PIECES=N cuts the registered 270 MB into N pieces instead of 26.
//        cuda_start teardown-dup2|teardown-close  (as teardown-explicit, then every descriptor of
//        /dev/nvidia* is replaced by /dev/null with dup2, or closed, timing each: whether the
//        driver's per-process teardown can run before the exit)
#include <cuda.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
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
    CUresult (*Reg)(void *, size_t, unsigned) = dlsym(h, "cuMemHostRegister_v2");
    CUresult (*Unreg)(void *) = dlsym(h, "cuMemHostUnregister");
    CUresult (*HAlloc)(void **, size_t, unsigned) = dlsym(h, "cuMemHostAlloc");
    CUresult (*HFree)(void *) = dlsym(h, "cuMemFreeHost");
    CUresult (*Free)(CUdeviceptr) = dlsym(h, "cuMemFree_v2");
    CUresult (*Release)(CUdevice) = dlsym(h, "cuDevicePrimaryCtxRelease_v2");
    double t1 = now();
    CHECK(Init(0));
    double t2 = now();
    CUdevice d; int cc;
    CHECK(DevGet(&d, 0));
    CHECK(Attr(&cc, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d));
    double t3 = now();
    CUcontext c;
    if (!strncmp(mode, "teardown", 8)) {
        CHECK(Retain(&c, d)); CHECK(SetCur(c));
        double ta = now();
        enum { NH = 4 };
        int NB = getenv("TEARDOWN_PIECES") ? atoi(getenv("TEARDOWN_PIECES")) : 26;
        if (NB < 1 || NB > 1024) NB = 26;
        size_t bl = (size_t)26 * 10656 * 1024 / NB / 4096 * 4096; void *b[1024], *hh[NH]; CUdeviceptr dp[NH];
        for (int i = 0; i < NB; i++) { b[i] = aligned_alloc(4096, bl); memset(b[i], 1, bl); CHECK(Reg(b[i], bl, 1)); }
        for (int i = 0; i < NH; i++) { CHECK(HAlloc(&hh[i], 8 << 20, 0)); memset(hh[i], 1, 8 << 20); CHECK(Alloc(&dp[i], 64 << 20)); }
        CHECK(Sync());
        double tb = now();
        printf("%-18s pieces %d cuInit %.3f context %.3f  pin+alloc %.3f", mode, NB, t2 - t1, ta - t3, tb - ta);
        if (strcmp(mode, "teardown-exit")) {
            if (strcmp(mode, "teardown-leak")) for (int i = 0; i < NB; i++) CHECK(Unreg(b[i]));
            double tc = now();
            for (int i = 0; i < NH; i++) { CHECK(HFree(hh[i])); CHECK(Free(dp[i])); }
            double td = now();
            CHECK(Release(d));
            double te = now();
            for (int i = 0; i < NB; i++) free(b[i]);
            double tf = now();
            printf("  unregister %.3f  free %.3f  context release %.3f  host free %.3f", tc - tb, td - tc, te - td, tf - te);
        }
        if (!strcmp(mode, "teardown-dup2") || !strcmp(mode, "teardown-close")) {
            int maps = 0; char line[512];
            FILE *m = fopen("/proc/self/maps", "r");
            while (m && fgets(line, sizeof line, m)) if (strstr(line, "/dev/nvidia")) maps++;
            if (m) fclose(m);
            printf("  maps of /dev/nvidia* %d", maps);
            int null = open("/dev/null", O_RDWR | O_CLOEXEC);
            DIR *dir = opendir("/proc/self/fd"); struct dirent *e; int fds[256], n = 0;
            while ((e = readdir(dir)) && n < 256) {
                char link[300], target[256]; snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
                ssize_t l = readlink(link, target, sizeof target - 1);
                if (l > 0) { target[l] = 0; if (!strncmp(target, "/dev/nvidia", 11)) fds[n++] = atoi(e->d_name); }
            }
            closedir(dir);
            for (int i = 0; i < n; i++) {
                char link[64], target[256]; snprintf(link, sizeof link, "/proc/self/fd/%d", fds[i]);
                ssize_t l = readlink(link, target, sizeof target - 1); target[l > 0 ? l : 0] = 0;
                double tf = now();
                if (!strcmp(mode, "teardown-dup2")) dup2(null, fds[i]); else close(fds[i]);
                printf("  %s %.3f", target + 5, now() - tf);
            }
        }
        printf("  inside %.3f s\n", now() - t0);
        fflush(stdout);
        if (!strcmp(mode, "teardown-dup2") || !strcmp(mode, "teardown-close")) exit(0); // run the library's exit handlers, as a Rust process does
        _exit(0);
    }
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
