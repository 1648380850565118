// Write-path microbenchmark: how fast can N threads put B bytes into one new file (page cache
// plus fsync) on this file system? Used to decide how melpipe's writer should write (docs/PERFORMANCE.md).
// build: cc -O2 -pthread bench/wbench.c -o wbench
// usage: wbench PATH BYTES THREADS MODE(write|pwrite|mmap|direct) [fallocate 0|1|2] [chunk_bytes] [writeback 0|1] [base]
// fallocate 2: size the file first (sparse, as melpipe's presize). base: byte offset of the first
// chunk (128 = after an .npy header, so chunks straddle pages as melpipe's task rows do).
// direct: O_DIRECT pwrite of aligned chunks (BYTES rounded up to 4 KiB, then truncated back).
// With writeback, one thread starts writeback every 32 MiB; several threads after each chunk.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static long long total; static int nthreads; static size_t chunk; static int fd; static char *map; static const char *mode;
static char *src; static int wb; static long long wb_every; static long long base;

static void *worker(void *arg) {
    long id = (long)arg;
    long long nchunks = (total + chunk - 1) / chunk;
    long long since = 0;
    for (long long c = id; c < nchunks; c += nthreads) {
        long long off = base + c * chunk; size_t n = chunk; if (off + n > base + total) n = base + total - off;
        if (mode[0] == 'm') memcpy(map + off, src, n);
        else if (mode[0] == 'd') { size_t a = (n + 4095) & ~(size_t)4095; if (pwrite(fd, src, a, off) != (ssize_t)a) { perror("pwrite O_DIRECT"); exit(1); } }
        else { size_t d = 0; while (d < n) { ssize_t w = pwrite(fd, src + d, n - d, off + d); if (w <= 0) { perror("pwrite"); exit(1);} d += w; } }
        since += n;
        // Start writeback of what this thread wrote, as melpipe's writer does every 32 MiB.
        if (wb && mode[0] != 'd' && since >= wb_every) { sync_file_range(fd, off + n - (nthreads == 1 ? since : n), nthreads == 1 ? since : n, SYNC_FILE_RANGE_WRITE); since = 0; }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage\n"); return 2; }
    const char *path = argv[1]; total = atoll(argv[2]); nthreads = atoi(argv[3]); mode = argv[4];
    int falloc = argc > 5 ? atoi(argv[5]) : 0; chunk = argc > 6 ? atoll(argv[6]) : (2 << 20);
    wb = argc > 7 ? atoi(argv[7]) : 1; base = argc > 8 ? atoll(argv[8]) : 0; wb_every = (nthreads == 1 || mode[0]=='w') ? (32 << 20) : 0;
    src = aligned_alloc(4096, chunk); for (size_t i = 0; i < chunk; i++) src[i] = (char)(i * 131 + 7);
    unlink(path);
    double t0 = now();
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (mode[0] == 'd' ? O_DIRECT : 0), 0644); if (fd < 0) { perror("open"); return 1; }
    if (falloc == 1 && fallocate(fd, 0, 0, base + total)) perror("fallocate");
    if (falloc == 2 && ftruncate(fd, base + total)) perror("ftruncate");
    if (mode[0] == 'm') { if (ftruncate(fd, total)) perror("ftruncate"); map = mmap(NULL, total, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0); if (map == MAP_FAILED) { perror("mmap"); return 1; } }
    if (mode[0] == 'w') nthreads = 1;
    pthread_t th[64];
    for (long i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    double t1 = now();
    if (mode[0] == 'm') munmap(map, total);
    if (mode[0] == 'd' && ftruncate(fd, total)) perror("ftruncate");
    fdatasync(fd);
    double t2 = now();
    close(fd);
    printf("%s threads=%d falloc=%d bytes=%lld write %.3f s fsync %.3f s total %.3f s (%.2f GB/s)\n", mode, nthreads, falloc, total, t1 - t0, t2 - t1, t2 - t0, total / (t2 - t0) / 1e9);
    unlink(path);
    return 0;
}
