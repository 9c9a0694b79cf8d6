// NHWC f16 implicit-GEMM convolution (KSIZE x KSIZE, stride 1, zero padding KSIZE/2) on tensor cores:
// mma.sync m16n8k16 with f32 accumulators, ldmatrix fragments, a STAGES-deep cp.async pipeline over K = taps x
// input channels in KC-channel chunks. GEMM M = output pixels (flattened y * W + x, so any size works), N = output
// channels (BN per CTA), K = KSIZE^2 * cin.
// The epilogue does everything the IR fuses: bias, activation (one slope per channel covers none / ReLU / leaky /
// PReLU), up to two `v = v * s + residual` steps, then either an f16 store into a channel slice of an NHWC buffer
// (EPI 0) or the tail (EPI 1): pixel shuffle, the upsampled input added, clamp, planar store.
// The input may be read through a nearest 2^up_shift upsampling (RRDB's upsampling convs).
// Compile-time parameters (prepended #defines): BM BN WARPS_M WARPS_N KC STAGES KSIZE EPI IO_F16.

#define THREADS (WARPS_M * WARPS_N * 32)
#define WM (BM / WARPS_M)
#define WN (BN / WARPS_N)
#define MI (WM / 16)
#define NI (WN / 8)
#define AS (KC + 8)
#define BS (BN + 8)
#define A_STAGE (BM * AS)
#define B_STAGE (KC * BS)
#define TAPS (KSIZE * KSIZE)
#define PAD (KSIZE / 2)
#define A_CHUNKS (BM * KC / 8)
#define A_ITERS ((A_CHUNKS + THREADS - 1) / THREADS)
#define B_CHUNKS (KC * BN / 8)
#define B_ITERS ((B_CHUNKS + THREADS - 1) / THREADS)

extern "C" __global__ void __launch_bounds__(THREADS) conv_mma(const ConvArgs a) {
    extern __shared__ __align__(16) unsigned char smem[];
    half_t* sA = (half_t*)smem;
    half_t* sB = sA + STAGES * A_STAGE;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp % WARPS_M, wn = warp / WARPS_M;
    const int M = a.h * a.w;
    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int in_w = a.w >> a.up_shift;
    const half_t* in = (const half_t*)a.in;
    const half_t* wt = (const half_t*)a.wt;
    wait_previous_kernel();

    // The output pixels whose input rows this thread copies.
    int a_y[A_ITERS], a_x[A_ITERS];
    bool a_ok[A_ITERS];
#pragma unroll
    for (int i = 0; i < A_ITERS; ++i) {
        int c = tid + i * THREADS;
        int m = m0 + c / (KC / 8);
        a_ok[i] = c < A_CHUNKS && m < M;
        a_y[i] = a_ok[i] ? m / a.w : 0;
        a_x[i] = a_ok[i] ? m - a_y[i] * a.w : 0;
    }
    const int kchunks = a.cin / KC;
    const int KT = TAPS * kchunks;

    auto load_stage = [&](int stage, int kt) {
        int tap = kt / kchunks;
        int ci0 = (kt - tap * kchunks) * KC;
        int ky = tap / KSIZE, kx = tap - (tap / KSIZE) * KSIZE;
        half_t* dA = sA + stage * A_STAGE;
#pragma unroll
        for (int i = 0; i < A_ITERS; ++i) {
            int c = tid + i * THREADS;
            if (c < A_CHUNKS) {
                int row = c / (KC / 8), col = (c % (KC / 8)) * 8;
                int yy = a_y[i] + ky - PAD, xx = a_x[i] + kx - PAD;
                bool ok = a_ok[i] && yy >= 0 && yy < a.h && xx >= 0 && xx < a.w;
                const half_t* src = in;
                if (ok)
                    src = in + ((long long)(yy >> a.up_shift) * in_w + (xx >> a.up_shift)) * a.in_stride + a.in_off +
                          ci0 + col;
                cp_async16(smem_u32(dA + row * AS + col), src, ok ? 16 : 0);
            }
        }
        half_t* dB = sB + stage * B_STAGE;
#pragma unroll
        for (int i = 0; i < B_ITERS; ++i) {
            int c = tid + i * THREADS;
            if (c < B_CHUNKS) {
                int row = c / (BN / 8), col = (c % (BN / 8)) * 8;
                const half_t* src = wt + (long long)(tap * a.cin + ci0 + row) * a.cout_pad + n0 + col;
                cp_async16(smem_u32(dB + row * BS + col), src, 16);
            }
        }
    };

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int k = 0; k < 4; ++k) acc[i][j][k] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < KT) load_stage(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < KT; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        int nk = kt + STAGES - 1;
        if (nk < KT) load_stage(nk % STAGES, nk);
        cp_async_commit();
        const half_t* tA = sA + (kt % STAGES) * A_STAGE;
        const half_t* tB = sB + (kt % STAGES) * B_STAGE;
#pragma unroll
        for (int kk = 0; kk < KC; kk += 16) {
            unsigned af[MI][4];
            unsigned bf[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; ++mi) {
                int row = wm * WM + mi * 16 + (lane & 15);
                int col = kk + (lane >> 4) * 8;
                ldmatrix_x4(af[mi], smem_u32(tA + row * AS + col));
            }
#pragma unroll
            for (int ni = 0; ni < NI; ni += 2) {
                unsigned r[4];
                int krow = kk + (lane & 15);
                int ncol = wn * WN + ni * 8 + (lane >> 4) * 8;
                ldmatrix_x4_trans(r, smem_u32(tB + krow * BS + ncol));
                bf[ni][0] = r[0];
                bf[ni][1] = r[1];
                bf[ni + 1][0] = r[2];
                bf[ni + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) mma_16816(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
        }
    }
    cp_async_wait<0>();

#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                int m = m0 + wm * WM + mi * 16 + (lane >> 2) + hf * 8;
                int n = n0 + wn * WN + ni * 8 + (lane & 3) * 2;
                if (m >= M) continue;
                int y = m / a.w;
                store_pair(a, acc[mi][ni][hf * 2], acc[mi][ni][hf * 2 + 1], m, y, m - y * a.w, n);
            }
        }
    }
}
