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
// Block: two warpgroups (256 threads) own a 128 x 128 output tile; warpgroup g owns rows
// 64 g .. 64 g + 63, one m64n128 accumulator (64 s32 registers per thread). The k loop runs
// over stages of 1024 bits (32 words, four wgmma k-steps), WG_STAGES deep in shared memory,
// filled by cp.async (16-byte chunks, zero-filled past the matrix edges, which contributes
// nothing to an AND popcount). Plane pairs (i, j) run one after another through the same
// pipeline; after each pair the epilogue turns s = popc(x AND w) into the plane product
// P_ij (bipolar: 4 s - 2 popc(x) - 2 popc(w) + K; unsigned/two's complement: s; the XOR
// identity gives the same integer, see bitplane.cu) and adds c_i d_j P_ij into an int32 total.
// int32 is exact because the caller checks K (2^a - 1)(2^b - 1) < 2^31.
//
// Shared-memory operand layout (no swizzle, "interleave" mode of the matrix descriptor): for
// each k-step of 256 bits a tile of R rows is stored as core matrices of 8 rows x 16 bytes
// (128 contiguous bytes, row r % 8 at byte 16 (r % 8)); the two cores of a row's 32 bytes are
// 128 bytes apart (leading-dimension byte offset, along K) and consecutive 8-row groups 256
// bytes apart (stride-dimension byte offset, along M or N). The b1 k256 operand has the same
// byte layout as a 16-bit k16 one (32 bytes per row). Both offsets are kernel arguments so
// that a device check can confirm them (gpu/bitplane.py passes 128 and 256).
//
// Reference: Jia et al., "Efficient Arbitrary Precision Acceleration for Large Language Models
// on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870 (bit-plane decomposition, recovery
// fused in the epilogue); PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate".

#define WG_BM 128
#define WG_BN 128
#define WG_THREADS 256
#define WG_STAGE_WORDS 32
#define WG_STAGES 3
#define WG_TILE_BYTES (WG_BM * WG_STAGE_WORDS * 4)  // one operand, one stage: 16 KiB
#define WG_STAGE_BYTES (2 * WG_TILE_BYTES)          // A and B
#define WG_ENC_BIPOLAR 0
#define WG_ENC_TWOS 2

__device__ __forceinline__ int wg_plane_weight(int p, int bits, int encoding) {
    const int w = 1 << p;
    return (encoding == WG_ENC_TWOS && p == bits - 1) ? -w : w;
}

__device__ __forceinline__ unsigned long long wg_desc(unsigned saddr, unsigned lbo, unsigned sbo) {
    return (unsigned long long)((saddr & 0x3FFFF) >> 4) |
           ((unsigned long long)((lbo >> 4) & 0x3FFF) << 16) |
           ((unsigned long long)((sbo >> 4) & 0x3FFF) << 32);
}

// Copies plane `plane` of rows [row0, row0 + 128) and words [w0, w0 + 32) of a packed operand
// into one stage tile: 1024 chunks of 16 bytes, four per thread. Lanes 0..7 take eight rows of
// one chunk, so a warp reads 64 contiguous bytes of each of 8 rows and writes 128 contiguous
// bytes of shared memory per chunk column (no bank conflicts).
__device__ __forceinline__ void wg_load_tile(unsigned sbase, const unsigned* __restrict__ P,
                                             int plane, int rows, int kw, int row0, int w0) {
#pragma unroll
    for (int it = 0; it < 4; ++it) {
        const int q = threadIdx.x + WG_THREADS * it;
        const int rlo = q & 7, c = (q >> 3) & 7, rg = q >> 6;
        const int r = row0 + rg * 8 + rlo, w = w0 + 4 * c;
        const bool ok = r < rows && w < kw;
        const unsigned* src = ok ? P + ((long long)plane * rows + r) * kw + w : P;
        const unsigned dst = sbase + (c >> 1) * (WG_BM * 32) + rg * 256 + (c & 1) * 128 + rlo * 16;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                     "r"(ok ? 16 : 0));
    }
}

#define WG_D8(i)                                                                      \
    "+r"(d[i]), "+r"(d[i + 1]), "+r"(d[i + 2]), "+r"(d[i + 3]), "+r"(d[i + 4]),       \
        "+r"(d[i + 5]), "+r"(d[i + 6]), "+r"(d[i + 7])

__device__ __forceinline__ void wg_mma(int (&d)[64], unsigned long long da,
                                       unsigned long long db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k256.s32.b1.b1.and.popc "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p;\n}\n"
        : WG_D8(0), WG_D8(8), WG_D8(16), WG_D8(24), WG_D8(32), WG_D8(40), WG_D8(48), WG_D8(56)
        : "l"(da), "l"(db));
}

// Keeps the compiler from moving accumulator reads or writes across the asynchronous MMA.
__device__ __forceinline__ void wg_fence_operands(int (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

template <typename Out>
__device__ __forceinline__ void wg_gemm(const unsigned* __restrict__ X,
                                        const unsigned* __restrict__ W,
                                        const long long* __restrict__ popx,
                                        const long long* __restrict__ popw, Out* __restrict__ out,
                                        int m, int n, int kw, int K, int ax, int bw, int encoding,
                                        unsigned lbo, unsigned sbo) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ __align__(1024) unsigned char smem[];
    unsigned sbase;
    asm("{\n.reg .u64 t;\ncvta.to.shared.u64 t, %1;\ncvt.u32.u64 %0, t;\n}\n"
        : "=r"(sbase)
        : "l"(smem));
    const int row0 = blockIdx.y * WG_BM, col0 = blockIdx.x * WG_BN;
    const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, tig = lane & 3;
    const int kt_count = (kw + WG_STAGE_WORDS - 1) / WG_STAGE_WORDS;
    const int iters = ax * bw * kt_count;

    auto load_stage = [&](int it) {
        const int pair = it / kt_count, w0 = (it % kt_count) * WG_STAGE_WORDS;
        const unsigned s = sbase + (it % WG_STAGES) * WG_STAGE_BYTES;
        wg_load_tile(s, X, pair / bw, m, kw, row0, w0);
        wg_load_tile(s + WG_TILE_BYTES, W, pair % bw, n, kw, col0, w0);
    };
#pragma unroll
    for (int s = 0; s < WG_STAGES - 1; ++s) {
        if (s < iters) load_stage(s);
        asm volatile("cp.async.commit_group;\n" ::);
    }

    int d[64], total[64];
#pragma unroll
    for (int e = 0; e < 64; ++e) d[e] = total[e] = 0;

    for (int it = 0; it < iters; ++it) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(WG_STAGES - 2));
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        const unsigned a = sbase + (it % WG_STAGES) * WG_STAGE_BYTES + wg * (64 / 8) * 256;
        const unsigned b = sbase + (it % WG_STAGES) * WG_STAGE_BYTES + WG_TILE_BYTES;
        wg_fence_operands(d);
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int ks = 0; ks < WG_STAGE_WORDS / 8; ++ks)
            wg_mma(d, wg_desc(a + ks * WG_BM * 32, lbo, sbo), wg_desc(b + ks * WG_BN * 32, lbo, sbo));
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        wg_fence_operands(d);
        // Stage (it + STAGES - 1) % STAGES was last read in iteration it - 1, which every
        // thread has finished (the barrier above), so it can be refilled now.
        if (it + WG_STAGES - 1 < iters) load_stage(it + WG_STAGES - 1);
        asm volatile("cp.async.commit_group;\n" ::);

        if ((it + 1) % kt_count == 0) {  // plane pair finished: recover into the total
            const int pair = it / kt_count, i = pair / bw, j = pair % bw;
            const int cij = wg_plane_weight(i, ax, encoding) * wg_plane_weight(j, bw, encoding);
#pragma unroll
            for (int e = 0; e < 64; ++e) {
                int P = d[e];
                if (encoding == WG_ENC_BIPOLAR) {
                    const int r = row0 + 64 * wg + 16 * warp + g + 8 * ((e >> 1) & 1);
                    const int c = col0 + 8 * (e >> 2) + 2 * tig + (e & 1);
                    const int px = r < m ? (int)popx[(long long)i * m + r] : 0;
                    const int pw = c < n ? (int)popw[(long long)j * n + c] : 0;
                    P = 4 * P - 2 * px - 2 * pw + K;
                }
                total[e] += cij * P;
                d[e] = 0;
            }
        }
    }
#pragma unroll
    for (int e = 0; e < 64; ++e) {
        const int r = row0 + 64 * wg + 16 * warp + g + 8 * ((e >> 1) & 1);
        const int c = col0 + 8 * (e >> 2) + 2 * tig + (e & 1);
        if (r < m && c < n) out[(long long)r * n + c] = (Out)total[e];
    }
#else
    __trap();  // needs sm_90a; gpu/bitplane.py compiles this file for that target only
#endif
}

#define WG_ARGS(Out)                                                                      \
    const unsigned *__restrict__ X, const unsigned *__restrict__ W,                       \
        const long long *__restrict__ popx, const long long *__restrict__ popw,           \
        Out *__restrict__ out, int m, int n, int kw, int K, int ax, int bw, int encoding, \
        unsigned lbo, unsigned sbo
#define WG_PASS X, W, popx, popw, out, m, n, kw, K, ax, bw, encoding, lbo, sbo

extern "C" __global__ void __launch_bounds__(WG_THREADS)
    bitplane_gemm_wgmma_i32(WG_ARGS(int)) {
    wg_gemm(WG_PASS);
}
extern "C" __global__ void __launch_bounds__(WG_THREADS)
    bitplane_gemm_wgmma_i64(WG_ARGS(long long)) {
    wg_gemm(WG_PASS);
}
