// Exact bit-plane matrix products X W^T over packed planes (numlib.bitplane on CUDA).
//
// Input layout (numlib.bitplane_pack.PackedPlanes, copied to the device unchanged):
//   words  uint32 [bits][rows][kw], kw = ceil(K / 32); element (r, c) of plane p is bit
//          c % 32 (least significant first) of words[p][r][c / 32]; pad bits are zero.
//   pop    int64  [bits][rows]: ones per plane row (the rank-one corrections).
// Output: int64 [m][n], row-major, equal to numlib.bitplane.packed_matmul(X, W, ...) bit for
// bit (both compute the same integer exactly; nothing here rounds).
//
// Plane product P_ij of row x (plane i of X) and row w (plane j of W), true length K:
//   bipolar  AND: P = 4 popc(x & w) - 2 popc(x) - 2 popc(w) + K
//   bipolar  XOR: P = K - 2 popc(x ^ w)
//   unsigned/twos AND: P = popc(x & w)
//   unsigned/twos XOR: P = (popc(x) + popc(w) - popc(x ^ w)) / 2   (the sum is even)
// Recovery: out = sum_ij c_i d_j P_ij with c_i = 2^i (the top plane -2^(bits-1) for two's
// complement). Every P is affine in the popcount s = popc(op(x, w)):
//   P = alpha * s + beta_ij,  out = (sum_ij c_i d_j (alpha s_ij + beta_ij)) / delta
// with delta = 2 only for unsigned/twos XOR. Kernels accumulate alpha c_i d_j s_ij per word
// tile and add the beta terms once in the epilogue ("fused recovery").
//
// Overflow: |P_ij| <= K and sum_ij |c_i d_j| = (2^a - 1)(2^b - 1), so every partial sum obeys
// |acc| <= K (2^a - 1)(2^b - 1) < K 2^16 (times 2 before the final /2 for unsigned XOR); the
// output and its accumulator are int64 (exact for K < 2^46). Per-tile popcount sums are int32
// (a tile covers at most 2^16 bits) and the MMA accumulator is s32, which is exact for
// K < 2^31; the Python wrapper rejects K >= 2^31.
//
// Entry points (extern "C", no includes, NVRTC- and nvcc-compilable; numlib's gpu/bitplane.py
// loads them with cupy.RawModule), each for an int64 (_i64) or int32 (_i32) output:
//   bitplane_gemm_popc_*  portable, any sm >= 70 (uses only __popc and shared memory)
//   bitplane_gemm_mma_*   Tensor Cores, sm >= 80: mma.sync.aligned.m16n8k256 b1 AND+popc
//   bitplane_pack         codes -> packed planes and popcounts on the device
// The products take the same arguments:
//   (const unsigned* X, const unsigned* W, const long long* popx, const long long* popw,
//    Out* out, int m, int n, int kw, int K, int ax, int bw, int encoding, int identity)
// An int32 output is exact when K (2^a - 1)(2^b - 1) < 2^31 (the wrapper checks it).
// Hopper's binary AND path (wgmma, sm_90a only) is in bitplane_sm90a.cu.
// encoding: 0 bipolar, 1 unsigned, 2 twos; identity: 0 and, 1 xor; ax, bw in 1..8.
// Reference: Jia et al., "Efficient Arbitrary Precision Acceleration for Large Language Models
// on GPU Tensor Cores", ASP-DAC 2025, arXiv:2409.17870, sec. 3.

#define NL_MAX_BITS 8
#define NL_ENC_BIPOLAR 0
#define NL_ENC_UNSIGNED 1
#define NL_ENC_TWOS 2
#define NL_ID_AND 0
#define NL_ID_XOR 1

// Portable kernel: a 16 x 16 output tile per block of 16 x 16 threads, word tiles of 16.
#define PT_TILE 16
#define PT_KW 16

// MMA kernel: 4 warps per block, 2 (rows) x 2 (cols) warp tiles of 16 x 8.
#define MMA_WARPS_M 2
#define MMA_WARPS_N 2

__device__ __forceinline__ int nl_plane_weight(int p, int bits, int encoding) {
    int w = 1 << p;
    return (encoding == NL_ENC_TWOS && p == bits - 1) ? -w : w;
}

// alpha of P = alpha * s + beta for popcount s of the identity's operation.
__device__ __forceinline__ int nl_alpha(int encoding, int identity) {
    if (encoding == NL_ENC_BIPOLAR) return identity == NL_ID_AND ? 4 : -2;
    return identity == NL_ID_AND ? 1 : -1;
}

// beta_ij of P = alpha * s + beta_ij (times delta: see the file comment).
__device__ __forceinline__ long long nl_beta(int encoding, int identity, long long K,
                                             long long px, long long pw) {
    if (encoding == NL_ENC_BIPOLAR) return identity == NL_ID_AND ? K - 2 * px - 2 * pw : K;
    return identity == NL_ID_AND ? 0 : px + pw;
}

// sum_ij c_i d_j beta_ij for one output element (at most 64 terms).
__device__ __forceinline__ long long nl_beta_sum(const long long* popx, const long long* popw,
                                                 int row, int col, int m, int n, int ax,
                                                 int bw, int encoding, int identity,
                                                 long long K) {
    long long total = 0;
    for (int i = 0; i < ax; ++i) {
        long long px = popx[(long long)i * m + row];
        long long ci = nl_plane_weight(i, ax, encoding);
        for (int j = 0; j < bw; ++j) {
            long long pw = popw[(long long)j * n + col];
            total += ci * nl_plane_weight(j, bw, encoding) *
                     nl_beta(encoding, identity, K, px, pw);
        }
    }
    return total;
}

// The arguments of every product kernel (see the list above).
#define NL_GEMM_ARGS(Out)                                                                 \
    const unsigned *__restrict__ X, const unsigned *__restrict__ W,                       \
        const long long *__restrict__ popx, const long long *__restrict__ popw,           \
        Out *__restrict__ out, int m, int n, int kw, int K, int ax, int bw, int encoding, \
        int identity
#define NL_GEMM_PASS X, W, popx, popw, out, m, n, kw, K, ax, bw, encoding, identity

template <typename Out>
__device__ __forceinline__ void nl_gemm_popc(NL_GEMM_ARGS(Out)) {
    // +1 column of padding: thread tx reads Ws[j][tx][t], stride 17 words, conflict-free.
    __shared__ unsigned Xs[NL_MAX_BITS][PT_TILE][PT_KW + 1];
    __shared__ unsigned Ws[NL_MAX_BITS][PT_TILE][PT_KW + 1];

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row0 = blockIdx.y * PT_TILE, col0 = blockIdx.x * PT_TILE;
    const int row = row0 + ty, col = col0 + tx;
    const int tid = ty * PT_TILE + tx;  // 256 threads load one 16 x 16 word tile per plane
    const int lr = tid / PT_KW, lw = tid % PT_KW;
    const int alpha = nl_alpha(encoding, identity);
    const bool use_xor = identity == NL_ID_XOR;

    long long acc = 0;
    for (int w0 = 0; w0 < kw; w0 += PT_KW) {
        const int gw = w0 + lw;
        for (int i = 0; i < ax; ++i) {
            const int gr = row0 + lr;
            Xs[i][lr][lw] = (gr < m && gw < kw) ? X[((long long)i * m + gr) * kw + gw] : 0u;
        }
        for (int j = 0; j < bw; ++j) {
            const int gc = col0 + lr;
            Ws[j][lr][lw] = (gc < n && gw < kw) ? W[((long long)j * n + gc) * kw + gw] : 0u;
        }
        __syncthreads();
        const int nw = min(PT_KW, kw - w0);
        for (int i = 0; i < ax; ++i) {
            const int ci = alpha * nl_plane_weight(i, ax, encoding);
            for (int j = 0; j < bw; ++j) {
                int s = 0;
                if (use_xor) {
                    for (int t = 0; t < nw; ++t) s += __popc(Xs[i][ty][t] ^ Ws[j][tx][t]);
                } else {
                    for (int t = 0; t < nw; ++t) s += __popc(Xs[i][ty][t] & Ws[j][tx][t]);
                }
                acc += (long long)(ci * nl_plane_weight(j, bw, encoding)) * s;
            }
        }
        __syncthreads();
    }
    if (row < m && col < n) {
        acc += nl_beta_sum(popx, popw, row, col, m, n, ax, bw, encoding, identity, K);
        const bool halve = encoding != NL_ENC_BIPOLAR && use_xor;
        out[(long long)row * n + col] = (Out)(halve ? acc / 2 : acc);  // exact: acc is even
    }
}

extern "C" __global__ void bitplane_gemm_popc_i64(NL_GEMM_ARGS(long long)) {
    nl_gemm_popc(NL_GEMM_PASS);
}
extern "C" __global__ void bitplane_gemm_popc_i32(NL_GEMM_ARGS(int)) { nl_gemm_popc(NL_GEMM_PASS); }

__device__ __forceinline__ unsigned nl_load(const unsigned* __restrict__ P, int plane, int rows,
                                            int kw, int r, int w) {
    return (r < rows && w < kw) ? __ldg(&P[((long long)plane * rows + r) * kw + w]) : 0u;
}

// Tensor-Core kernel. One warp owns a 16 x 8 output tile and loops over all plane pairs; for
// each X plane i it walks k in chunks of 256 bits (8 words), loads the A fragment once and
// issues one m16n8k256 AND+popc MMA per W plane j into s32 accumulators d[j][0..3]. The MMA
// only computes s = popc(x AND w); the XOR identity is then taken through
// popc(x ^ w) = popc(x) + popc(w) - 2 popc(x & w), which gives the same integer, so both
// identities share the AND path (the legacy .xor.popc MMA is much slower on Hopper).
//
// Fragment layouts assumed (PTX ISA, section "Matrix Fragments for mma.m16n8k256", .b1 A row /
// B col / s32 C,D; groupID = lane >> 2, tig = lane % 4 (threadID_in_group)):
//   A (16 x 256 .b1), four .b32 registers a0..a3, 32 elements each:
//     a0: row groupID,     k = tig*32 + 0..31        a1: row groupID + 8, k = tig*32 + 0..31
//     a2: row groupID,     k = 128 + tig*32 + 0..31  a3: row groupID + 8, k = 128 + tig*32 + ...
//   B (256 x 8 .b1), two .b32 registers b0, b1:
//     b0: col groupID, k = tig*32 + 0..31            b1: col groupID, k = 128 + tig*32 + 0..31
//   C/D (16 x 8 .s32), four registers: c0, c1 at row groupID, cols tig*2 + {0, 1};
//     c2, c3 at row groupID + 8, the same cols.
// (the same pattern as the documented m16n8k32 .s8 layout with one register = 32 one-bit
// elements.) Each register therefore holds exactly one packed word: the 32 consecutive k of
// word (k0/32 + tig) or (k0/32 + 4 + tig). The order of bits inside a register is the same for
// A and B and AND+popc sums over all of them, so it does not matter here.
template <typename Out>
__device__ __forceinline__ void nl_gemm_mma(NL_GEMM_ARGS(Out)) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, tig = lane & 3;
    const int row0 = (blockIdx.y * MMA_WARPS_M + warp / MMA_WARPS_N) * 16;
    const int col0 = (blockIdx.x * MMA_WARPS_N + warp % MMA_WARPS_N) * 8;
    if (row0 >= m || col0 >= n) return;  // whole warp leaves together: no partial MMA

    // Output elements of this lane: e = 0..3 -> (row0 + g + 8 * (e >> 1), col0 + 2 tig + (e & 1)).
    long long acc[4] = {0, 0, 0, 0};
    long long pxs[4], pws[4];
    for (int i = 0; i < ax; ++i) {
        int d[NL_MAX_BITS][4];
#pragma unroll
        for (int j = 0; j < NL_MAX_BITS; ++j) d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0;
        for (int w0 = 0; w0 < kw; w0 += 8) {
            const unsigned a0 = nl_load(X, i, m, kw, row0 + g, w0 + tig);
            const unsigned a1 = nl_load(X, i, m, kw, row0 + g + 8, w0 + tig);
            const unsigned a2 = nl_load(X, i, m, kw, row0 + g, w0 + 4 + tig);
            const unsigned a3 = nl_load(X, i, m, kw, row0 + g + 8, w0 + 4 + tig);
#pragma unroll
            for (int j = 0; j < NL_MAX_BITS; ++j) {
                if (j < bw) {
                    const unsigned b0 = nl_load(W, j, n, kw, col0 + g, w0 + tig);
                    const unsigned b1 = nl_load(W, j, n, kw, col0 + g, w0 + 4 + tig);
                    asm volatile(
                        "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
                        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                        : "+r"(d[j][0]), "+r"(d[j][1]), "+r"(d[j][2]), "+r"(d[j][3])
                        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
                }
            }
        }
        // Epilogue for X plane i: P_ij from s = popc(x AND w), weighted into acc.
        const long long ci = nl_plane_weight(i, ax, encoding);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = row0 + g + 8 * (e >> 1);
            pxs[e] = r < m ? popx[(long long)i * m + r] : 0;
        }
#pragma unroll
        for (int j = 0; j < NL_MAX_BITS; ++j) {
            if (j < bw) {
                const long long cij = ci * nl_plane_weight(j, bw, encoding);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int c = col0 + 2 * tig + (e & 1);
                    pws[e] = c < n ? popw[(long long)j * n + c] : 0;
                    const long long s = d[j][e];
                    long long P;
                    if (encoding == NL_ENC_BIPOLAR) {
                        P = 4 * s - 2 * pxs[e] - 2 * pws[e] + (long long)K;  // = K - 2 popc(x^w)
                    } else {
                        P = s;  // = (popc(x) + popc(w) - popc(x^w)) / 2
                    }
                    acc[e] += cij * P;
                }
            }
        }
    }
    (void)identity;  // both identities give the same integer; see the comment above
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const int r = row0 + g + 8 * (e >> 1), c = col0 + 2 * tig + (e & 1);
        if (r < m && c < n) out[(long long)r * n + c] = (Out)acc[e];
    }
#elif defined(__CUDA_ARCH__)
    __trap();  // compiled for sm < 80: no b1 MMA; the Python wrapper never launches this
#endif
}

extern "C" __global__ void bitplane_gemm_mma_i64(NL_GEMM_ARGS(long long)) {
    nl_gemm_mma(NL_GEMM_PASS);
}
extern "C" __global__ void bitplane_gemm_mma_i32(NL_GEMM_ARGS(int)) { nl_gemm_mma(NL_GEMM_PASS); }

// Plane packing on the device (the preprocessing step): codes uint8 [rows][K] -> words
// uint32 [bits][rows][kw] in the PackedPlanes layout above, and popcounts int64 [bits][rows]
// (zeroed by the caller, accumulated here). One warp per (row, word): lane l holds the code of
// column 32 * word + l, and __ballot_sync gathers bit p of the 32 codes into one word, bit l
// from lane l, which is exactly the little-endian bit order of numlib.bitplane_pack. Columns
// past K contribute zero bits (the zero padding). Block: 32 x 8 threads (8 words of one row);
// grid: (rows, ceil(kw / 8)).
extern "C" __global__ void bitplane_pack(const unsigned char* __restrict__ codes,
                                         unsigned* __restrict__ words,
                                         unsigned long long* __restrict__ popcounts, int rows,
                                         int K, int kw, int bits) {
    const int lane = threadIdx.x, word = blockIdx.y * blockDim.y + threadIdx.y;
    const int row = blockIdx.x;
    if (word >= kw) return;  // whole warp: word depends on threadIdx.y only
    const int col = word * 32 + lane;
    const unsigned code = col < K ? codes[(long long)row * K + col] : 0u;
    for (int p = 0; p < bits; ++p) {
        const unsigned plane = __ballot_sync(0xffffffffu, (code >> p) & 1u);
        if (lane == 0) {
            words[((long long)p * rows + row) * kw + word] = plane;
            atomicAdd(&popcounts[(long long)p * rows + row], (unsigned long long)__popc(plane));
        }
    }
}

// Products with few rows of X (decode: one to a few tokens), any sm >= 70. The weights are read
// once, straight from global memory (coalesced: lane l takes words l, l + 32, ... of a row), and
// X, small, sits in shared memory. One warp per output column at a time, grid-stride; per X row
// r a lane accumulates D_r = sum_ij 2^(i+j) popc(x_ir AND w_jc) over its words (Horner-free:
// the weight is a shift), the warp sums the lanes, and lane r writes the recovery
//   out[r][c] = alpha D_r + beta_x PX_r + beta_w PW_c + gamma K
// with the affine constants and weighted popcounts of bitplane_sm90a.cu (two's complement
// codes arrive as offset binary). D_r <= K (2^a - 1)(2^b - 1) < 2^31 (the caller checks it).
// The kernel waits on memory, not on popcounts, so everything that can be loaded early is:
// a batch of GV_UNROLL words per lane and plane at once, the column's popcounts before its
// words, the lane's row popcounts once per warp. ROWS (4, 16 or 32, at least m) sizes the
// accumulators, and fewer registers let more warps hide the latency.
// Shared memory: X words, ax * m * kw (dynamic).
#define GV_WARPS 8
#define GV_UNROLL 4  // words per lane per batch

#define NL_GEMV_ARGS(Out)                                                                 \
    const unsigned *__restrict__ X, const unsigned *__restrict__ W,                       \
        const long long *__restrict__ popx, const long long *__restrict__ popw,           \
        Out *__restrict__ out, int m, int n, int kw, int K, int ax, int bw, int alpha,    \
        int beta_x, int beta_w, int gamma
#define NL_GEMV_PASS X, W, popx, popw, out, m, n, kw, K, ax, bw, alpha, beta_x, beta_w, gamma

template <int ROWS, typename Out>
__device__ __forceinline__ void nl_gemv(NL_GEMV_ARGS(Out)) {
    extern __shared__ unsigned xs[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    long long row_term = 0;  // lane r < m: beta_x PX_r + gamma K
    if (lane < m) {
        for (int i = ax - 1; i >= 0; --i) row_term = 2 * row_term + popx[(long long)i * m + lane];
        row_term = beta_x * row_term + (long long)gamma * K;
    }
    for (int q = threadIdx.x; q < ax * m * kw; q += blockDim.x) xs[q] = X[q];
    __syncthreads();
    for (int c = blockIdx.x * GV_WARPS + warp; c < n; c += gridDim.x * GV_WARPS) {
        int pop[NL_MAX_BITS];  // popcounts are at most K < 2^31
#pragma unroll
        for (int j = 0; j < NL_MAX_BITS; ++j) pop[j] = j < bw ? (int)popw[(long long)j * n + c] : 0;
        int acc[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) acc[r] = 0;
        for (int w0 = lane; w0 < kw; w0 += 32 * GV_UNROLL) {
            for (int j = 0; j < bw; ++j) {
                unsigned wv[GV_UNROLL];
#pragma unroll
                for (int u = 0; u < GV_UNROLL; ++u) {
                    const int w = w0 + 32 * u;
                    wv[u] = w < kw ? __ldg(&W[((long long)j * n + c) * kw + w]) : 0u;
                }
                for (int i = 0; i < ax; ++i) {
                    const unsigned* xi = xs + (long long)i * m * kw;
#pragma unroll
                    for (int u = 0; u < GV_UNROLL; ++u) {
                        const int w = w0 + 32 * u;
                        if (w >= kw) break;
#pragma unroll
                        for (int r = 0; r < ROWS; ++r)
                            if (r < m) acc[r] += __popc(xi[r * kw + w] & wv[u]) << (i + j);
                    }
                }
            }
        }
        long long pw = 0;
#pragma unroll
        for (int j = NL_MAX_BITS - 1; j >= 0; --j) pw = 2 * pw + pop[j];
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            if (r < m) {
                int total = acc[r];
                for (int off = 16; off > 0; off >>= 1)
                    total += __shfl_xor_sync(0xffffffffu, total, off);
                if (lane == r)
                    out[(long long)r * n + c] =
                        (Out)(alpha * (long long)total + row_term + beta_w * pw);
            }
        }
    }
}


// Blocks per multiprocessor: as many as the accumulators allow without spills (launch bounds).
#define NL_GEMV(ROWS, BLOCKS)                                                                 \
    extern "C" __global__ void __launch_bounds__(GV_WARPS * 32, BLOCKS)                     \
        bitplane_gemv##ROWS##_i32(NL_GEMV_ARGS(int)) {                                        \
        nl_gemv<ROWS>(NL_GEMV_PASS);                                                          \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(GV_WARPS * 32, BLOCKS)                     \
        bitplane_gemv##ROWS##_i64(NL_GEMV_ARGS(long long)) {                                  \
        nl_gemv<ROWS>(NL_GEMV_PASS);                                                          \
    }
NL_GEMV(4, 6)
NL_GEMV(16, 4)
NL_GEMV(32, 2)

// out[r][c] += row[r] + col[c] for an int32 m x n matrix (the rank-one corrections of the
// INT8 path, gpu/int8.py). Grid (ceil(n / 1024), m), four columns per thread: no index
// division, 16-byte accesses where n % 4 == 0 keeps the rows aligned.
extern "C" __global__ void int8_rank_one(int* __restrict__ out, const int* __restrict__ row,
                                         const int* __restrict__ col, int n) {
    const int c = 4 * (blockIdx.x * blockDim.x + threadIdx.x), r = blockIdx.y;
    int* o = out + (long long)r * n + c;
    const int base = row[r];
    if ((n & 3) == 0 && c < n) {
        int4 v = *reinterpret_cast<int4*>(o);
        const int4 d = *reinterpret_cast<const int4*>(col + c);
        v.x += base + d.x;
        v.y += base + d.y;
        v.z += base + d.z;
        v.w += base + d.w;
        *reinterpret_cast<int4*>(o) = v;
    } else {
        for (int q = 0; q < 4 && c + q < n; ++q) o[q] += base + col[c + q];
    }
}
