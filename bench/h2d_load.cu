// A steady host-to-device copy load, to see whether the GPU's DMA slows other I/O beside it
// (docs/PERFORMANCE.md, 'Tried and rejected'): copies a page-locked host buffer to the device in
// a loop for SECONDS and prints the rate.
// build: nvcc -O2 bench/h2d_load.cu -o h2d_load    usage: h2d_load SECONDS [MiB (256)]
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include <time.h>
static double now() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define CK(x) do { cudaError_t e = (x); if (e) { printf("%s: %s\n", #x, cudaGetErrorString(e)); return 1; } } while (0)
int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    size_t bytes = (size_t)(argc > 2 ? atoi(argv[2]) : 256) << 20;
    void *h, *d;
    CK(cudaMallocHost(&h, bytes)); CK(cudaMalloc(&d, bytes));
    for (size_t i = 0; i < bytes; i += 4096) ((char *)h)[i] = (char)i;
    CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    double t0 = now(); size_t n = 0;
    while (now() - t0 < secs) { CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)); n++; }
    double t = now() - t0;
    printf("h2d %.2f GB/s over %.3f s\n", n * bytes / t / 1e9, t);
    return 0;
}
