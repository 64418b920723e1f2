// Exact bit-plane products X W^T on Hopper Tensor Cores: wgmma b1 AND + popc (sm_90a only).
//
// Same inputs and result as bitplane_gemm_* in bitplane.cu (PackedPlanes layout: words uint32
// [bits][rows][kw], pop int64 [bits][rows]) with one restriction: kw % 4 == 0, so every 16-byte
// chunk of a row is aligned (gpu/bitplane.py pads the words of other widths with zeros).
// Hopper has no binary MMA in the legacy mma.sync path at full rate; the binary AND product is
// only reachable through the warpgroup instruction
//   wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc
// which needs the architecture-specific target sm_90a (NVRTC or nvcc -arch=sm_90a).
//
// Block: two warpgroups (256 threads) own a 128 x BN output tile (BN = 128); warpgroup g owns
// rows 64 g .. 64 g + 63, one m64nBNk256 s32 accumulator (BN / 2 registers per thread).
// The k loop runs over stages of 512 bits (16 words, two wgmma k-steps), STAGES deep in
// shared memory, filled by cp.async (16-byte chunks, zero-filled past the matrix edges, which
// adds nothing to an AND popcount) STAGES - 2 stages ahead, while one group of MMAs stays in
// flight (wgmma.wait_group 1).
//
// One accumulator for all plane pairs (Horner's rule): with non-negative plane weights
// c_i d_j = 2^(i+j), D = sum_ij 2^(i+j) s_ij = sum_t 2^t sum_{i+j=t} s_ij, so pairs run in
// decreasing t and the accumulator is doubled whenever t drops. D <= K (2^a-1)(2^b-1) < 2^31
// (the caller checks it). The recovery is then affine in D and the weighted popcounts
// PX(r) = sum_i 2^i popc(x_i,r), PW(c) = sum_j 2^j popc(w_j,c):
//   out = alpha D + beta_x PX + beta_w PW + gamma K,
// bipolar (alpha, beta_x, beta_w, gamma) = (4, -2(2^b-1), -2(2^a-1), (2^a-1)(2^b-1)) from
// P_ij = 4 s - 2 popc(x) - 2 popc(w) + K; unsigned (1, 0, 0, 0). Two's complement codes are
// passed as offset binary (top plane inverted, gpu/bitplane.py): v = u' - 2^(a-1), so
// (1, -2^(b-1), -2^(a-1), 2^(a+b-2)). The XOR identity gives the same integers (bitplane.cu).
//
// Split K (gridDim.z > 1, for grids too small to fill the device, e.g. one token): block z
// takes stages [z kt_per_split, (z + 1) kt_per_split) of every pair and adds its share into a
// zeroed output with integer atomics; only z = 0 adds the popcount terms. Integer addition is
// exact modulo 2^32 (or 2^64), and the final value fits, so the result is exact whatever the
// order of the atomics.
//
// Shared-memory operand layout (no swizzle, "interleave" mode of the matrix descriptor): for
// each k-step of 256 bits a tile of R rows is stored as core matrices of 8 rows x 16 bytes
// (128 contiguous bytes, row r % 8 at byte 16 (r % 8)); the two cores of a row's 32 bytes are
// 128 bytes apart (leading-dimension byte offset, along K) and consecutive 8-row groups 256
// bytes apart (stride-dimension byte offset, along M or N). The b1 k256 operand has the same
// byte layout as a 16-bit k16 one (32 bytes per row). (Checked on an H200: swapping the two
// offsets gives wrong products.)
//
// Reference: Jia et al., "Efficient Arbitrary Precision Acceleration for Large Language Models
// on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870 (bit-plane decomposition, recovery
// fused in the epilogue); PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate".

#define WG_BM 128
#define WG_THREADS 256
#define WG_STAGE_WORDS 16
#define WG_KSTEP_BYTES(rows) ((rows) * 32)  // rows x 256 bits
#define WG_LBO 128                          // bytes between the two k-cores of a row
#define WG_SBO 256                          // bytes between 8-row groups

__device__ __forceinline__ unsigned long long wg_desc(unsigned saddr) {
    return (unsigned long long)((saddr & 0x3FFFF) >> 4) |
           ((unsigned long long)(WG_LBO >> 4) << 16) | ((unsigned long long)(WG_SBO >> 4) << 32);
}

// Copies plane `plane` of rows [row0, row0 + ROWS) and words [w0, w0 + 16) of a packed operand
// into one stage tile: ROWS * 4 chunks of 16 bytes. Lanes 0..7 take eight rows of one chunk,
// so a warp reads 64 contiguous bytes of each of 8 rows and writes 128 contiguous bytes of
// shared memory per chunk column (no bank conflicts).
template <int ROWS>
__device__ __forceinline__ void wg_load_tile(unsigned sbase, const unsigned* __restrict__ P,
                                             int plane, int rows, int kw, int row0, int w0) {
#pragma unroll
    for (int it = 0; it < ROWS * 4 / WG_THREADS; ++it) {
        const int q = threadIdx.x + WG_THREADS * it;
        const int rlo = q & 7, c = (q >> 3) & 3, rg = q >> 5;
        const int r = row0 + rg * 8 + rlo, w = w0 + 4 * c;
        const bool ok = r < rows && w < kw;
        const unsigned* src = ok ? P + ((long long)plane * rows + r) * kw + w : P;
        const unsigned dst =
            sbase + (c >> 1) * WG_KSTEP_BYTES(ROWS) + rg * 256 + (c & 1) * 128 + rlo * 16;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                     "r"(ok ? 16 : 0));
    }
}

#define WG_D8(i)                                                                      \
    "+r"(d[i]), "+r"(d[i + 1]), "+r"(d[i + 2]), "+r"(d[i + 3]), "+r"(d[i + 4]),       \
        "+r"(d[i + 5]), "+r"(d[i + 6]), "+r"(d[i + 7])

// One m64n128k256 binary MMA into 64 s32 accumulators per thread.
__device__ __forceinline__ void wg_mma(int (&d)[64], unsigned long long da,
                                       unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p;\n}\n"
        : WG_D8(0), WG_D8(8), WG_D8(16), WG_D8(24), WG_D8(32), WG_D8(40), WG_D8(48), WG_D8(56)
        : "l"(da), "l"(db));
}

template <int R>
__device__ __forceinline__ void wg_fence_operands(int (&d)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// Plane pair number p in Horner order: decreasing t = i + j, increasing i within one t.
__device__ __forceinline__ int wg_pair(int p, int ax, int bw, int& i) {
    for (int t = ax + bw - 2;; --t) {
        const int lo = max(0, t - (bw - 1)), count = min(ax - 1, t) - lo + 1;
        if (p < count) {
            i = lo + p;
            return t;
        }
        p -= count;
    }
}

__device__ __forceinline__ long long wg_weighted_popcount(const long long* __restrict__ pop,
                                                         int planes, int rows, int r) {
    long long total = 0;
    for (int p = planes - 1; p >= 0; --p) total = 2 * total + pop[(long long)p * rows + r];
    return total;
}

__device__ __forceinline__ void wg_store(int* out, int v) { *out = v; }
__device__ __forceinline__ void wg_store(long long* out, long long v) { *out = v; }
__device__ __forceinline__ void wg_store2(int* out, int a, int b) {
    *reinterpret_cast<int2*>(out) = make_int2(a, b);
}
__device__ __forceinline__ void wg_store2(long long* out, long long a, long long b) {
    *reinterpret_cast<longlong2*>(out) = make_longlong2(a, b);
}
__device__ __forceinline__ void wg_add(int* out, int v) { atomicAdd(out, v); }
__device__ __forceinline__ void wg_add(long long* out, long long v) {
    atomicAdd(reinterpret_cast<unsigned long long*>(out), (unsigned long long)v);
}

// A tile (A: 128 x 16 words, B: BN x 16 words) per stage, STAGES stages.
#define WG_ARGS(Out)                                                                      \
    const unsigned *__restrict__ X, const unsigned *__restrict__ W,                       \
        const long long *__restrict__ popx, const long long *__restrict__ popw,           \
        Out *__restrict__ out, int m, int n, int kw, int K, int ax, int bw, int alpha,    \
        int beta_x, int beta_w, int gamma, int kt_per_split
#define WG_PASS X, W, popx, popw, out, m, n, kw, K, ax, bw, alpha, beta_x, beta_w, gamma, \
                kt_per_split

template <int BN, int STAGES, typename Out>
__device__ __forceinline__ void wg_gemm(WG_ARGS(Out)) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ __align__(1024) unsigned char smem[];
    unsigned sbase;
    asm("{\n.reg .u64 t;\ncvta.to.shared.u64 t, %1;\ncvt.u32.u64 %0, t;\n}\n"
        : "=r"(sbase)
        : "l"(smem));
    constexpr int A_BYTES = WG_BM * WG_STAGE_WORDS * 4;
    constexpr int STAGE_BYTES = (WG_BM + BN) * WG_STAGE_WORDS * 4;
    const int row0 = blockIdx.y * WG_BM, col0 = blockIdx.x * BN;
    const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, tig = lane & 3;
    const int kt_count = (kw + WG_STAGE_WORDS - 1) / WG_STAGE_WORDS;
    const int kt_begin = blockIdx.z * kt_per_split;
    const int kt_local = min(kt_per_split, kt_count - kt_begin);
    const int iters = ax * bw * kt_local;
    const bool active = row0 + 64 * wg < m;  // warpgroup-uniform: rows past m need no MMA

    auto load_stage = [&](int it) {
        int i;
        const int t = wg_pair(it / kt_local, ax, bw, i);
        const int w0 = (kt_begin + it % kt_local) * WG_STAGE_WORDS;
        const unsigned s = sbase + (it % STAGES) * STAGE_BYTES;
        wg_load_tile<WG_BM>(s, X, i, m, kw, row0, w0);
        wg_load_tile<BN>(s + A_BYTES, W, t - i, n, kw, col0, w0);
    };
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) {
        if (s < iters) load_stage(s);
        asm volatile("cp.async.commit_group;\n" ::);
    }

    int d[BN / 2];
#pragma unroll
    for (int e = 0; e < BN / 2; ++e) d[e] = 0;
    int t_prev = ax + bw - 2;

    for (int it = 0; it < iters; ++it) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 3));
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        // Stage (it + STAGES - 2) % STAGES was last read by the MMAs of iteration it - 2,
        // which every warpgroup has waited for (wait_group 1 in iteration it - 1, then the
        // barrier above).
        if (it + STAGES - 2 < iters) load_stage(it + STAGES - 2);
        asm volatile("cp.async.commit_group;\n" ::);
        if (it % kt_local == 0) {
            int i;
            const int t = wg_pair(it / kt_local, ax, bw, i);
            if (t != t_prev) {  // t dropped by one: D <- 2 D (Horner), after the MMAs land
                asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
                wg_fence_operands(d);
#pragma unroll
                for (int e = 0; e < BN / 2; ++e) d[e] *= 2;
                t_prev = t;
            }
        }
        if (active) {
            const unsigned stage = sbase + (it % STAGES) * STAGE_BYTES;
            const unsigned a = stage + wg * (64 / 8) * 256, b = stage + A_BYTES;
            wg_fence_operands(d);
            asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
            for (int ks = 0; ks < WG_STAGE_WORDS / 8; ++ks)
                wg_mma(d, wg_desc(a + ks * WG_KSTEP_BYTES(WG_BM)),
                       wg_desc(b + ks * WG_KSTEP_BYTES(BN)));
            asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
            asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
        }
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    wg_fence_operands(d);
    if (!active) return;

    const bool split = gridDim.z > 1, corrections = blockIdx.z == 0;
    const int rbase = row0 + 64 * wg + 16 * warp + g;
    long long row_term[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = rbase + 8 * h;
        row_term[h] = corrections && r < m
                          ? beta_x * wg_weighted_popcount(popx, ax, m, r) + (long long)gamma * K
                          : 0;
    }
#pragma unroll
    for (int c8 = 0; c8 < BN / 8; ++c8) {
        const int c = col0 + 8 * c8 + 2 * tig;
        long long col_term[2];
#pragma unroll
        for (int q = 0; q < 2; ++q)
            col_term[q] = corrections && c + q < n
                              ? beta_w * wg_weighted_popcount(popw, bw, n, c + q)
                              : 0;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = rbase + 8 * h;
            if (r >= m) continue;
            const Out v0 = (Out)(alpha * (long long)d[4 * c8 + 2 * h] + row_term[h] + col_term[0]);
            const Out v1 =
                (Out)(alpha * (long long)d[4 * c8 + 2 * h + 1] + row_term[h] + col_term[1]);
            Out* dst = out + (long long)r * n + c;
            if (split) {
                if (c < n) wg_add(dst, v0);
                if (c + 1 < n) wg_add(dst + 1, v1);
            } else if (c + 1 < n && (n & 1) == 0) {
                wg_store2(dst, v0, v1);  // 8 (16) aligned bytes: c and n are even
            } else {
                if (c < n) wg_store(dst, v0);
                if (c + 1 < n) wg_store(dst + 1, v1);
            }
        }
    }
#else
    __trap();  // needs sm_90a; gpu/bitplane.py compiles this file for that target only
#endif
}


// 128 x 128 tiles, four stages (64 KiB), two blocks per multiprocessor. Measured on an H200
// at W1A1 4096^3: a 128 x 256 tile (128 accumulators, one block per multiprocessor, six
// stages) ran at 804 against 1498 TOPS, the second block hiding more latency than the wider
// tile saves in operand traffic; six stages instead of four changed nothing (1410 against
// 1484 TOPS; 2023 against 2030 at 8192^3).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 2)
    bitplane_gemm_wgmma_i32(WG_ARGS(int)) {
    wg_gemm<128, 4>(WG_PASS);
}
extern "C" __global__ void __launch_bounds__(WG_THREADS, 2)
    bitplane_gemm_wgmma_i64(WG_ARGS(long long)) {
    wg_gemm<128, 4>(WG_PASS);
}
