// Fused log-mel kernels of melpipe (docs/FORMAT.md, Mathematics): samples of whole files in (f32 in [-1, 1), or
// raw PCM16 values scaled here by 1/32768, exactly as the host decoder does), finished feature
// rows out, in the stored dtype.
//
// Compiled at run time by NVRTC, once per device and configuration. src/plan.rs prepends a
// prelude of #defines (every size below is a compile-time constant, so loops unroll and the
// register FFT keeps its data in registers) and, for the register path, __constant__ tables of
// the window and the twiddles computed in f64 on the host. No CUDA header is included, so the
// kernels compile with nothing but libnvrtc.
//
// Per segment (one output row): reflect-pad the segment by N_FFT/2 on both sides (the segment,
// not the file), cut N_FRAMES frames of N_FFT samples every HOP, window, FFT, power; then
//   pool mean: mean power over frames, mel projection, 10·log10(max(x, 1e-10)), top_db;
//   pool none: mel projection of every frame, 10·log10, top_db over the segment.
// Rows of failed files are NaN; rows past the batch's end are left alone.
//
// Two kernels share the epilogue:
//   logmel_reg      N_FFT a power of two ≤ 64: one thread per frame, the whole FFT in
//                   registers (real FFT through an N/2-point complex radix-2 FFT), SEGS
//                   segments per block staged in shared memory.
//   logmel_tiled    any other configuration: one segment per block at a time, its frames in
//                   tiles through a mixed-radix FFT (radices 2, 4 and odd primes ≤ 32) or a
//                   direct DFT; nothing of a segment but one tile is ever held.

// Sample i of a batch: f32, or PCM16 (samples_i16 != 0) scaled by 2^-15 (exact in f32).
__device__ __forceinline__ float load_sample(const void* __restrict__ samples,
                                             unsigned int samples_i16, long long i) {
    if (samples_i16) {
        return (float)__ldg(static_cast<const short*>(samples) + i) * (1.0f / 32768.0f);
    }
    return __ldg(static_cast<const float*>(samples) + i);
}

#define SEG_OK 0
#define SEG_FAILED 1
#define SEG_ABSENT 2

#if OUT_F16
typedef unsigned short out_t;
// Round to nearest even, as half::f16::from_f32 does on the CPU.
__device__ __forceinline__ out_t to_out(float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}
// The bit pattern of half::f16::NAN, so CPU and GPU outputs are byte-identical.
__device__ __forceinline__ out_t out_nan() { return (unsigned short)0x7e00u; }
#else
typedef float out_t;
__device__ __forceinline__ out_t to_out(float v) { return v; }
// The bit pattern of f32::NAN.
__device__ __forceinline__ out_t out_nan() { return __int_as_float(0x7fc00000); }
#endif

// Bit reversal of `v` over `bits` bits; constant-folded when the loops around it unroll.
__host__ __device__ __forceinline__ constexpr int bitrev(int v, int bits) {
    int r = 0;
    for (int b = 0; b < bits; ++b) {
        r = (r << 1) | ((v >> b) & 1);
    }
    return r;
}

// Padded-segment index → shared-memory index, one spare word every 32: frames start HOP words
// apart, and without the skew a warp reading one sample of 32 frames hits few banks.
__device__ __forceinline__ int skew(int j) { return j + (j >> 5); }

// Index into the segment of padded index `j` (reflect padding, torch.nn.functional.pad
// mode="reflect"); valid because SEG_LEN > PAD, which the configuration checks.
__device__ __forceinline__ int reflect(int j) {
    int i = j - PAD;
    if (i < 0) i = -i;
    if (i >= SEG_LEN) i = 2 * (SEG_LEN - 1) - i;
    return i;
}

// The file holding batch row `row`: the last file whose first row is ≤ row. file_row0 has
// num_files + 1 ascending entries (the last is the batch's row count), so files without rows
// are never chosen.
__device__ __forceinline__ unsigned int file_of_row(const unsigned int* __restrict__ file_row0,
                                                    unsigned int num_files, unsigned int row) {
    unsigned int lo = 0, hi = num_files;
    while (hi - lo > 1) {
        unsigned int mid = (lo + hi) >> 1;
        if (file_row0[mid] <= row) lo = mid; else hi = mid;
    }
    return lo;
}

// Fills s_base/s_state for the block's SEGS rows, as the geometry of docs/FORMAT.md places them.
__device__ __forceinline__ void locate_segments(const unsigned long long* __restrict__ file_offset,
                                                const unsigned int* __restrict__ file_row0,
                                                const unsigned int* __restrict__ file_failed,
                                                unsigned int num_files, unsigned int total_rows,
                                                unsigned int row_first, long long* s_base,
                                                int* s_state, float* segmax) {
    const int s = threadIdx.x;
    if (s < SEGS) {
        const unsigned int row = row_first + s;
        long long base = 0;
        int state = SEG_ABSENT;
        if (row < total_rows) {
            const unsigned int f = file_of_row(file_row0, num_files, row);
            const unsigned int local = row - file_row0[f];
            const unsigned int long_idx = local / N_SHORT;
            const unsigned int short_idx = local - long_idx * N_SHORT;
            base = (long long)file_offset[f] + (long long)long_idx * LONG_HOP +
                   (long long)short_idx * SHORT_HOP;
            state = file_failed[f] ? SEG_FAILED : SEG_OK;
        }
        s_base[s] = base;
        s_state[s] = state;
        segmax[s] = 0.0f;
    }
}

// Mel power of output value `e` (mel m, frame t) of segment `s`: a sparse dot product of the
// filter's non-zero weights with the power spectrum (pool none) or the mean power (pool mean).
__device__ __forceinline__ float mel_value(const float* pw, const float* psum, int s, int e,
                                           const int* __restrict__ mel_lo,
                                           const int* __restrict__ mel_len,
                                           const int* __restrict__ mel_off,
                                           const float* __restrict__ mel_w) {
    const int m = e / OUT_FRAMES;
#if POOL_MEAN
    const float* src = psum + s * N_FREQS;
#else
    const int t = e - m * OUT_FRAMES;
    const float* src = pw + (s * N_FRAMES + t) * N_FREQS;
#endif
    const int lo = __ldg(mel_lo + m);
    const int n = __ldg(mel_len + m);
    const float* w = mel_w + __ldg(mel_off + m);
    float acc = 0.0f;
    for (int q = 0; q < n; ++q) acc = fmaf(__ldg(w + q), src[lo + q], acc);
    return acc;
}

// From the power spectra of the block's segments (pw: SEGS × N_FRAMES × N_FREQS) to the
// stored rows. Writes are in output order, so consecutive threads write consecutive values.
__device__ __forceinline__ void epilogue(const float* pw, float* psum, float* segmax,
                                         const int* s_state, unsigned int row_first,
                                         const int* __restrict__ mel_lo,
                                         const int* __restrict__ mel_len,
                                         const int* __restrict__ mel_off,
                                         const float* __restrict__ mel_w,
                                         out_t* __restrict__ out) {
    const int tid = threadIdx.x;
#if POOL_MEAN
    // Mean over frames in the power domain (Welch-style band energy), before the mel
    // projection: the projection is linear, so this equals the mean of the mel frames.
    for (int i = tid; i < SEGS * N_FREQS; i += BLOCK) {
        const int s = i / N_FREQS;
        const int k = i - s * N_FREQS;
        const float* p = pw + s * N_FRAMES * N_FREQS + k;
        float acc = 0.0f;
        for (int t = 0; t < N_FRAMES; ++t) acc += p[t * N_FREQS];
        psum[i] = acc / (float)N_FRAMES;
    }
    __syncthreads();
#endif
    const int per_seg = N_MELS * OUT_FRAMES;
#if HAS_TOP_DB
    // The segment's peak in the power domain: 10·log10 is monotonic, so the peak in dB is the
    // dB of the peak power. Powers are ≥ 0, so their bit patterns order as ints, and a max is
    // the same whatever order the atomics land in: the output stays deterministic.
    for (int i = tid; i < SEGS * per_seg; i += BLOCK) {
        const int s = i / per_seg;
        if (s_state[s] != SEG_OK) continue;
        const float p = mel_value(pw, psum, s, i - s * per_seg, mel_lo, mel_len, mel_off, mel_w);
        atomicMax((int*)&segmax[s], __float_as_int(p));
    }
    __syncthreads();
#endif
    for (int i = tid; i < SEGS * per_seg; i += BLOCK) {
        const int s = i / per_seg;
        const int state = s_state[s];
        if (state == SEG_ABSENT) continue;
        const size_t o = (size_t)row_first * per_seg + (size_t)i;
        if (state == SEG_FAILED) {
            out[o] = out_nan();
            continue;
        }
        const float p = mel_value(pw, psum, s, i - s * per_seg, mel_lo, mel_len, mel_off, mel_w);
        float db = 10.0f * log10f(fmaxf(p, 1e-10f));
#if HAS_TOP_DB
        const float floor_db = 10.0f * log10f(fmaxf(segmax[s], 1e-10f)) - TOP_DB;
        db = fmaxf(db, floor_db);
#endif
        out[o] = to_out(db);
    }
}

#if KERNEL_REG
// One radix-2 DIT stage of butterflies of span LEN over the register arrays. LEN is a template
// constant so that every index is one too, and the arrays stay in registers.
template <int LEN>
__device__ __forceinline__ void fft_stage(float (&re)[HALF_FFT], float (&im)[HALF_FFT]) {
#pragma unroll
    for (int i = 0; i < HALF_FFT; i += LEN) {
#pragma unroll
        for (int j = 0; j < LEN / 2; ++j) {
            const int a = i + j;
            const int b = a + LEN / 2;
            // exp(−2πi·j/LEN) = W^(j·N/LEN); index 0 is 1 and needs no multiply.
            const int w = j * (N_FFT / LEN);
            float vr = re[b], vi = im[b];
            if (w != 0) {
                const float wr = c_tw_re[w], wi = c_tw_im[w];
                const float tr = vr * wr - vi * wi;
                vi = vr * wi + vi * wr;
                vr = tr;
            }
            re[b] = re[a] - vr;
            im[b] = im[a] - vi;
            re[a] += vr;
            im[a] += vi;
        }
    }
}

// Stages LEN, 2·LEN, …, HALF_FFT.
template <int LEN>
struct FftStages {
    static __device__ __forceinline__ void run(float (&re)[HALF_FFT], float (&im)[HALF_FFT]) {
        fft_stage<LEN>(re, im);
        FftStages<LEN * 2>::run(re, im);
    }
};
template <>
struct FftStages<HALF_FFT * 2> {
    static __device__ __forceinline__ void run(float (&)[HALF_FFT], float (&)[HALF_FFT]) {}
};

// Power spectrum of one frame starting at padded index j0 of a staged segment, the whole FFT
// in registers. The N real samples are packed as N/2 complex values z[m] = x[2m] + i·x[2m+1],
// transformed by an iterative radix-2 DIT FFT (loaded in bit-reversed order), and split into
// the spectrum of x: X[k] = E[k] + W^k·O[k], E = (Z[k] + conj Z[M−k])/2,
// O = (Z[k] − conj Z[M−k])/(2i), W = exp(−2πi/N).
__device__ __forceinline__ void frame_power_reg(const float* seg, int j0, float* pw_out) {
    float re[HALF_FFT], im[HALF_FFT];
#pragma unroll
    for (int m = 0; m < HALF_FFT; ++m) {
        const int n = 2 * bitrev(m, LOG2_HALF);
        re[m] = c_window[n] * seg[skew(j0 + n)];
        im[m] = c_window[n + 1] * seg[skew(j0 + n + 1)];
    }
    FftStages<2>::run(re, im);
    {
        const float x0 = re[0] + im[0];
        const float xm = re[0] - im[0];
        pw_out[0] = x0 * x0;
        pw_out[HALF_FFT] = xm * xm;
    }
#pragma unroll
    for (int k = 1; k < HALF_FFT; ++k) {
        const float ar = re[k], ai = im[k];
        const float br = re[HALF_FFT - k], bi = -im[HALF_FFT - k];
        const float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
        const float odr = 0.5f * (ai - bi), odi = -0.5f * (ar - br);
        const float wr = c_tw_re[k], wi = c_tw_im[k];
        const float xr = er + wr * odr - wi * odi;
        const float xi = ei + wr * odi + wi * odr;
        pw_out[k] = xr * xr + xi * xi;
    }
}

extern "C" __global__ void __launch_bounds__(BLOCK)
logmel_reg(const void* __restrict__ samples, const unsigned long long* __restrict__ file_offset,
           const unsigned int* __restrict__ file_row0,
           const unsigned int* __restrict__ file_failed, unsigned int samples_i16,
           unsigned int num_files,
           unsigned int total_rows, const int* __restrict__ mel_lo,
           const int* __restrict__ mel_len, const int* __restrict__ mel_off,
           const float* __restrict__ mel_w, out_t* __restrict__ out) {
    extern __shared__ float smem[];
    float* stage = smem + SMEM_STAGE_OFF;  // SEGS × STAGE_STRIDE: skewed, padded segments
    float* pw = smem + SMEM_PW_OFF;        // SEGS × N_FRAMES × N_FREQS: power spectra
    float* psum = smem + SMEM_PSUM_OFF;    // SEGS × N_FREQS: mean power (pool mean)
    float* segmax = smem + SMEM_MAX_OFF;   // SEGS: peak mel power (top_db)
    __shared__ long long s_base[SEGS];
    __shared__ int s_state[SEGS];

    const unsigned int row_first = blockIdx.x * SEGS;
    locate_segments(file_offset, file_row0, file_failed, num_files, total_rows, row_first,
                    s_base, s_state, segmax);
    __syncthreads();

    // Stage each segment with its reflect padding; coalesced reads of the file's samples.
    for (int i = threadIdx.x; i < SEGS * PADDED_LEN; i += BLOCK) {
        const int s = i / PADDED_LEN;
        const int j = i - s * PADDED_LEN;
        float v = 0.0f;
        if (s_state[s] == SEG_OK) v = load_sample(samples, samples_i16, s_base[s] + reflect(j));
        stage[s * STAGE_STRIDE + skew(j)] = v;
    }
    __syncthreads();

    for (int slot = threadIdx.x; slot < SEGS * N_FRAMES; slot += BLOCK) {
        const int s = slot / N_FRAMES;
        const int t = slot - s * N_FRAMES;
        frame_power_reg(stage + s * STAGE_STRIDE, t * HOP, pw + slot * N_FREQS);
    }
    __syncthreads();

    epilogue(pw, psum, segmax, s_state, row_first, mel_lo, mel_len, mel_off, mel_w, out);
}
#endif  // KERNEL_REG

#if KERNEL_TILED
#if OUT_F16
__device__ __forceinline__ float from_out(out_t h) {
    float v;
    asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(h));
    return v;
}
#else
__device__ __forceinline__ float from_out(out_t v) { return v; }
#endif

// One in-place decimation-in-time stage of radix R over the tile's first `nt` frames: it
// combines R transforms of length LP (consecutive in the buffer) into one of length R·LP.
// Thread i takes butterfly i: frame f, group b, offset k; its inputs x_q (q < R) lie LP apart
// from b·R·LP + k, are multiplied by W_{R·LP}^{k·q} and go through an R-point DFT whose output
// p replaces x_p. The input was loaded in the plan's digit-reversed order (src/plan.rs).
// The R-point DFT of x (already twiddled), stored LP apart from `at`.
template <int R, int LP>
__device__ __forceinline__ void radix_dft(float (&xr)[R], float (&xi)[R], float* __restrict__ fre,
                                          float* __restrict__ fim, int at,
                                          const float* __restrict__ tw_re,
                                          const float* __restrict__ tw_im) {
    if (R == 2) {
        fre[at] = xr[0] + xr[1];
        fim[at] = xi[0] + xi[1];
        fre[at + LP] = xr[0] - xr[1];
        fim[at + LP] = xi[0] - xi[1];
    } else if (R == 4) {
        // W_4 = −i.
        const float ar = xr[0] + xr[2], ai = xi[0] + xi[2];
        const float br = xr[0] - xr[2], bi = xi[0] - xi[2];
        const float cr = xr[1] + xr[3], ci = xi[1] + xi[3];
        const float dr = xr[1] - xr[3], di = xi[1] - xi[3];
        fre[at] = ar + cr;
        fim[at] = ai + ci;
        fre[at + LP] = br + di;
        fim[at + LP] = bi - dr;
        fre[at + 2 * LP] = ar - cr;
        fim[at + 2 * LP] = ai - ci;
        fre[at + 3 * LP] = br - di;
        fim[at + 3 * LP] = bi + dr;
    } else {
        // A direct R-point DFT; W_R^(pq) = W_N^((pq mod R)·N/R), constant indices.
#pragma unroll
        for (int p = 0; p < R; ++p) {
            float yr = xr[0], yi = xi[0];
#pragma unroll
            for (int q = 1; q < R; ++q) {
                const int w = ((p * q) % R) * (N_FFT / R);
                const float wr = __ldg(tw_re + w), wi = __ldg(tw_im + w);
                yr += xr[q] * wr - xi[q] * wi;
                yi += xr[q] * wi + xi[q] * wr;
            }
            fre[at + p * LP] = yr;
            fim[at + p * LP] = yi;
        }
    }
}

// One in-place decimation-in-time stage of radix R over the tile's first `nt` frames: it
// combines R transforms of length LP (consecutive in the buffer) into one of length R·LP.
// Butterfly bf of a frame: group b = bf / LP, offset k = bf % LP; its inputs x_q (q < R) lie
// LP apart from b·R·LP + k, are multiplied by W_{R·LP}^{k·q} and go through an R-point DFT
// whose output p replaces x_p. The input was loaded in the plan's digit-reversed order
// (src/plan.rs). A thread keeps one butterfly (and its twiddles) over frames when a frame's
// butterflies fit the block, several frames at once.
template <int R, int LP>
__device__ __forceinline__ void fft_stage(float* __restrict__ fre, float* __restrict__ fim,
                                          const float* __restrict__ tw_re,
                                          const float* __restrict__ tw_im, int nt) {
    constexpr int L = R * LP;
    constexpr int GROUPS = FFT_M / R;  // butterflies per frame
    constexpr int TW_STEP = (FFT_M / L) * TW_SCALE;  // W_L^1 = W_N^TW_STEP
    constexpr int FPAR = GROUPS <= BLOCK ? BLOCK / GROUPS : 1;  // frames in parallel
    constexpr int BF_STEP = GROUPS <= BLOCK ? GROUPS : BLOCK;
    const int tid = threadIdx.x;
    if (tid >= FPAR * BF_STEP) return;
    for (int bf = tid % BF_STEP; bf < GROUPS; bf += BF_STEP) {
        const int b = bf / LP;
        const int k = bf - b * LP;
        float wr[R], wi[R];
#pragma unroll
        for (int q = 1; q < R; ++q) {
            const int w = k * q * TW_STEP;
            wr[q] = LP > 1 ? __ldg(tw_re + w) : 1.0f;
            wi[q] = LP > 1 ? __ldg(tw_im + w) : 0.0f;
        }
        for (int f = tid / BF_STEP; f < nt; f += FPAR) {
            const int base = f * FRAME_STRIDE + b * L + k;
            float xr[R], xi[R];
#pragma unroll
            for (int q = 0; q < R; ++q) {
                xr[q] = fre[base + q * LP];
                xi[q] = fim[base + q * LP];
            }
            if (LP > 1) {
#pragma unroll
                for (int q = 1; q < R; ++q) {
                    const float tr = xr[q] * wr[q] - xi[q] * wi[q];
                    xi[q] = xr[q] * wi[q] + xi[q] * wr[q];
                    xr[q] = tr;
                }
            }
            radix_dft<R, LP>(xr, xi, fre, fim, base, tw_re, tw_im);
        }
    }
}

// Any n_fft and segment length. A block takes one work item at a time (grid-stride): a row,
// or with pool none a chunk of a row's frames (`chunks` per row, so that a batch of few long
// rows still fills the GPU), and its frames TILE at a time: the tile's padded samples are
// staged, its windowed frames transformed together (mixed-radix stages, or a direct DFT when
// n_fft has a prime factor above the largest radix), then
//   pool mean: power summed per bin over the segment's frames (each thread its bins, frames in
//              order), mel, dB, top_db at the end (one chunk per row);
//   pool none: each frame's mel dB stored as its tile ends; with top_db the row's peak goes to
//              rowmax (an order-free atomic max of power bits) and logmel_clamp raises the row
//              to its floor afterwards (rounding is monotonic, so max(round(a), round(b)) =
//              round(max(a, b)): the bytes of the CPU's order).
// The work area is shared memory, or (WORK_GLOBAL) WORK_FLOATS of `work` per block.
extern "C" __global__ void __launch_bounds__(BLOCK)
logmel_tiled(const void* __restrict__ samples,
             const unsigned long long* __restrict__ file_offset,
             const unsigned int* __restrict__ file_row0,
             const unsigned int* __restrict__ file_failed, unsigned int samples_i16,
             unsigned int num_files,
             unsigned int total_rows, const int* __restrict__ mel_lo,
             const int* __restrict__ mel_len, const int* __restrict__ mel_off,
             const float* __restrict__ mel_w, const float* __restrict__ window,
             const float* __restrict__ tw_re, const float* __restrict__ tw_im,
             const int* __restrict__ perm, float* __restrict__ work_all, unsigned int chunks,
             unsigned int* __restrict__ rowmax, out_t* __restrict__ out) {
#if WORK_GLOBAL
    float* work = work_all + (size_t)blockIdx.x * WORK_FLOATS;
#else
    extern __shared__ float smem[];
    float* work = smem;
#endif
    float* stage = work + SMEM_STAGE_OFF;   // STAGE_STRIDE padded samples of one tile
    float* fre = work + SMEM_FRAME_OFF;     // TILE × FRAME_STRIDE: real parts / windowed frames
    float* fim = work + SMEM_FRAME_IM_OFF;  // TILE × FRAME_STRIDE: imaginary parts
    float* pw = work + SMEM_PW_OFF;         // TILE × N_FREQS: power spectra (pool none)
    float* psum = work + SMEM_PSUM_OFF;     // N_FREQS: summed power (pool mean)
    float* segmax = work + SMEM_MAX_OFF;    // 1: peak mel power (top_db)
    __shared__ long long s_base[1];
    __shared__ int s_state[1];
    const int tid = threadIdx.x;
    constexpr int per_seg = N_MELS * OUT_FRAMES;
    constexpr int n_tiles = (N_FRAMES + TILE - 1) / TILE;
    const int tiles_per_chunk = (n_tiles + (int)chunks - 1) / (int)chunks;
    const unsigned long long items = (unsigned long long)total_rows * chunks;

    for (unsigned long long item = blockIdx.x; item < items; item += gridDim.x) {
        const unsigned int row = (unsigned int)(item / chunks);
        const int chunk = (int)(item - (unsigned long long)row * chunks);
        const int f_begin = chunk * tiles_per_chunk * TILE;
        const int f_end = min(N_FRAMES, f_begin + tiles_per_chunk * TILE);
        __syncthreads();  // the previous item is done with the work area and s_base
        locate_segments(file_offset, file_row0, file_failed, num_files, total_rows, row,
                        s_base, s_state, segmax);
#if POOL_MEAN
        for (int k = tid; k < N_FREQS; k += BLOCK) psum[k] = 0.0f;
#endif
        __syncthreads();
        const long long base = s_base[0];
        const int state = s_state[0];
        const size_t row_out = (size_t)row * per_seg;
        if (state == SEG_FAILED) {
            if (chunk == 0)
                for (int e = tid; e < per_seg; e += BLOCK) out[row_out + e] = out_nan();
            continue;
        }
        for (int t0 = f_begin; t0 < f_end; t0 += TILE) {
            const int nt = min(TILE, f_end - t0);
            const int span = (nt - 1) * HOP + N_FFT;
            for (int i = tid; i < span; i += BLOCK)
                stage[i] = load_sample(samples, samples_i16, base + reflect(t0 * HOP + i));
            __syncthreads();
#if FFT_DIRECT
            for (int i = tid; i < nt * N_FFT; i += BLOCK) {
                const int f = i / N_FFT;
                const int n = i - f * N_FFT;
                fre[f * FRAME_STRIDE + n] = __ldg(window + n) * stage[f * HOP + n];
            }
            __syncthreads();
            // Direct DFT: the twiddle index k·n mod N advances by k per sample.
            for (int i = tid; i < nt * N_FREQS; i += BLOCK) {
                const int f = i / N_FREQS;
                const int k = i - f * N_FREQS;
                const float* x = fre + f * FRAME_STRIDE;
                float xr = 0.0f, xi = 0.0f;
                int idx = 0;
                for (int n = 0; n < N_FFT; ++n) {
                    xr = fmaf(x[n], __ldg(tw_re + idx), xr);
                    xi = fmaf(x[n], __ldg(tw_im + idx), xi);
                    idx += k;
                    if (idx >= N_FFT) idx -= N_FFT;
                }
                pw[f * N_FREQS + k] = xr * xr + xi * xi;
            }
            __syncthreads();
#if POOL_MEAN
            for (int k = tid; k < N_FREQS; k += BLOCK) {
                float acc = psum[k];
                for (int f = 0; f < nt; ++f) acc += pw[f * N_FREQS + k];
                psum[k] = acc;
            }
#endif
#else
            {
                // A thread keeps one position m (its input index and window values) over
                // frames when a frame fits the block.
                constexpr int FPAR = FFT_M <= BLOCK ? BLOCK / FFT_M : 1;
                constexpr int M_STEP = FFT_M <= BLOCK ? FFT_M : BLOCK;
                if (tid < FPAR * M_STEP) {
                    for (int m = tid % M_STEP; m < FFT_M; m += M_STEP) {
                        const int n = __ldg(perm + m);
#if FFT_PACKED
                        const float w0 = __ldg(window + 2 * n), w1 = __ldg(window + 2 * n + 1);
                        for (int f = tid / M_STEP; f < nt; f += FPAR) {
                            const float* x = stage + f * HOP + 2 * n;
                            fre[f * FRAME_STRIDE + m] = w0 * x[0];
                            fim[f * FRAME_STRIDE + m] = w1 * x[1];
                        }
#else
                        const float w0 = __ldg(window + n);
                        for (int f = tid / M_STEP; f < nt; f += FPAR) {
                            fre[f * FRAME_STRIDE + m] = w0 * stage[f * HOP + n];
                            fim[f * FRAME_STRIDE + m] = 0.0f;
                        }
#endif
                    }
                }
            }
            __syncthreads();
            FFT_STAGES
            // Power of bin k: for an even n_fft X[k] = E[k] + W^k·O[k] from Z[k] and
            // conj Z[M−k] (as in frame_power_reg). Each thread keeps its bins over the frames;
            // with pool mean it adds them to psum in frame order, without storing them.
            for (int k = tid; k < N_FREQS; k += BLOCK) {
#if FFT_PACKED
                const int kc = (k == 0 || k == FFT_M) ? 0 : k;
                const float wr = __ldg(tw_re + k), wi = __ldg(tw_im + k);
#endif
#if POOL_MEAN
                float acc = psum[k];
#endif
                for (int f = 0; f < nt; ++f) {
                    const float* zr = fre + f * FRAME_STRIDE;
                    const float* zi = fim + f * FRAME_STRIDE;
                    float pk;
#if FFT_PACKED
                    if (kc == 0) {
                        const float x = k == 0 ? zr[0] + zi[0] : zr[0] - zi[0];
                        pk = x * x;
                    } else {
                        const float ar = zr[k], ai = zi[k];
                        const float br = zr[FFT_M - k], bi = -zi[FFT_M - k];
                        const float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);
                        const float odr = 0.5f * (ai - bi), odi = -0.5f * (ar - br);
                        const float xr = er + wr * odr - wi * odi;
                        const float xi = ei + wr * odi + wi * odr;
                        pk = xr * xr + xi * xi;
                    }
#else
                    pk = zr[k] * zr[k] + zi[k] * zi[k];
#endif
#if POOL_MEAN
                    acc += pk;
#else
                    pw[f * N_FREQS + k] = pk;
#endif
                }
#if POOL_MEAN
                psum[k] = acc;
#endif
            }
#endif
#if !POOL_MEAN
            __syncthreads();
            for (int i = tid; i < nt * N_MELS; i += BLOCK) {
                const int m = i / nt;
                const int f = i - m * nt;
                const int lo = __ldg(mel_lo + m);
                const int n = __ldg(mel_len + m);
                const float* w = mel_w + __ldg(mel_off + m);
                const float* src = pw + f * N_FREQS + lo;
                float p = 0.0f;
                for (int q = 0; q < n; ++q) p = fmaf(__ldg(w + q), src[q], p);
#if HAS_TOP_DB
                atomicMax((int*)segmax, __float_as_int(p));
#endif
                out[row_out + (size_t)m * OUT_FRAMES + t0 + f] =
                    to_out(10.0f * log10f(fmaxf(p, 1e-10f)));
            }
#endif
            // No barrier here: the next tile writes only the stage before its first barrier,
            // and nothing reads the stage after this tile's first barrier; psum[k] and (pool
            // mean) the bins are each thread's own.
        }
#if POOL_MEAN
        for (int k = tid; k < N_FREQS; k += BLOCK) psum[k] = psum[k] / (float)N_FRAMES;
        __syncthreads();
#if HAS_TOP_DB
        for (int m = tid; m < N_MELS; m += BLOCK) {
            const float p = mel_value(pw, psum, 0, m, mel_lo, mel_len, mel_off, mel_w);
            atomicMax((int*)segmax, __float_as_int(p));
        }
        __syncthreads();
#endif
        for (int m = tid; m < N_MELS; m += BLOCK) {
            const float p = mel_value(pw, psum, 0, m, mel_lo, mel_len, mel_off, mel_w);
            float db = 10.0f * log10f(fmaxf(p, 1e-10f));
#if HAS_TOP_DB
            db = fmaxf(db, 10.0f * log10f(fmaxf(segmax[0], 1e-10f)) - TOP_DB);
#endif
            out[row_out + m] = to_out(db);
        }
#elif HAS_TOP_DB
        __syncthreads();  // segmax is final (no barrier ends the last tile)
        if (tid == 0) atomicMax((int*)(rowmax + row), __float_as_int(segmax[0]));
#endif
    }
}

#if !POOL_MEAN && HAS_TOP_DB
// After logmel_tiled with pool none and top_db: every value of a row raised to its floor, the
// row's peak (rowmax, power bits) in dB minus TOP_DB, compared after rounding to the stored
// dtype. Rows of failed files are NaN and stay so.
extern "C" __global__ void __launch_bounds__(BLOCK)
logmel_clamp(const unsigned int* __restrict__ rowmax, unsigned int total_rows,
             out_t* __restrict__ out) {
    constexpr int per_seg = N_MELS * OUT_FRAMES;
    const unsigned long long n = (unsigned long long)total_rows * per_seg;
    for (unsigned long long e = (unsigned long long)blockIdx.x * BLOCK + threadIdx.x; e < n;
         e += (unsigned long long)gridDim.x * BLOCK) {
        const unsigned int row = (unsigned int)(e / per_seg);
        const float peak = __int_as_float((int)__ldg(rowmax + row));
        const float floor_out = from_out(to_out(10.0f * log10f(fmaxf(peak, 1e-10f)) - TOP_DB));
        const float v = from_out(out[e]);
        if (v < floor_out) out[e] = to_out(floor_out);
    }
}
#endif
#endif  // KERNEL_TILED
