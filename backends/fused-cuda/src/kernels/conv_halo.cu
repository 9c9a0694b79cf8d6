// NHWC f16 3x3 conv on tensor cores with the weights resident in shared memory and halo tiles: each persistent CTA
// loads all 9 x CIN x BN weights once, then walks 16-pixel-wide, TH-row output tiles, loading each tile's
// (TH+2) x 18 input patch once for all nine taps (double-buffered with cp.async: the next tile's patch arrives
// while this one computes). mma.sync m16n8k16, f32 accumulators, ldmatrix fragments straight from the patch (a
// tap is an offset into it). Same arguments and fused epilogue as conv_mma (conv_common.cu).
// Compile-time parameters: BM (= 16 x TH) BN WARPS_M WARPS_N CIN EPI IO_F16.

#define THREADS (WARPS_M * WARPS_N * 32)
#define TW 16
#define TH (BM / TW)
#define PW (TW + 2)
#define PPIX ((TH + 2) * PW)
#define WM (BM / WARPS_M)
#define WN (BN / WARPS_N)
#define MI (WM / 16)
#define NI (WN / 8)
#define PS (CIN + 8)
#define BS (BN + 8)
#define W_ROWS (9 * CIN)
#define W_ELEMS (W_ROWS * BS)
#define P_ELEMS (PPIX * PS)
#define P_CHUNKS (PPIX * (CIN / 8))
#define W_CHUNKS (W_ROWS * (BN / 8))

extern "C" __global__ void __launch_bounds__(THREADS) conv_halo(const ConvArgs a) {
    extern __shared__ __align__(16) unsigned char smem[];
    half_t* sW = (half_t*)smem;
    half_t* sP = sW + W_ELEMS;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp % WARPS_M, wn = warp / WARPS_M;
    const int n0 = blockIdx.y * BN;
    const int tiles_x = (a.w + TW - 1) / TW, tiles_y = (a.h + TH - 1) / TH;
    const int ntiles = tiles_x * tiles_y;
    const int in_w = a.w >> a.up_shift;
    const half_t* in = (const half_t*)a.in;
    const half_t* wt = (const half_t*)a.wt;

    // Resident weights: rows tap * CIN + ci, the packed layout's own order.
    for (int c = tid; c < W_CHUNKS; c += THREADS) {
        int row = c / (BN / 8), col = (c % (BN / 8)) * 8;
        cp_async16(smem_u32(sW + row * BS + col), wt + (long long)row * a.cout_pad + n0 + col, 16);
    }
    cp_async_commit();
    wait_previous_kernel();

    auto load_patch = [&](int stage, int t) {
        int ty0 = (t / tiles_x) * TH - 1, tx0 = (t % tiles_x) * TW - 1;
        half_t* d = sP + stage * P_ELEMS;
        for (int c = tid; c < P_CHUNKS; c += THREADS) {
            int p = c / (CIN / 8), col = (c % (CIN / 8)) * 8;
            int yy = ty0 + p / PW, xx = tx0 + p % PW;
            bool ok = yy >= 0 && yy < a.h && xx >= 0 && xx < a.w;
            const half_t* src = in;
            if (ok)
                src = in + ((long long)(yy >> a.up_shift) * in_w + (xx >> a.up_shift)) * a.in_stride + a.in_off + col;
            cp_async16(smem_u32(d + p * PS + col), src, ok ? 16 : 0);
        }
    };

    // Patch index of tap (0, 0) for the A rows this lane addresses.
    int prow[MI];
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
        int r = wm * WM + mi * 16 + (lane & 15);
        prow[mi] = (r / TW) * PW + (r % TW);
    }

    int t = blockIdx.x;
    if (t < ntiles) load_patch(0, t);
    cp_async_commit();
    for (int it = 0; t < ntiles; t += gridDim.x, ++it) {
        int next = t + gridDim.x;
        if (next < ntiles) load_patch((it + 1) & 1, next);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const half_t* P = sP + (it & 1) * P_ELEMS;

        float acc[MI][NI][4];
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
            for (int j = 0; j < NI; ++j)
#pragma unroll
                for (int k = 0; k < 4; ++k) acc[i][j][k] = 0.0f;

        // Fully unrolled: every tap's patch and weight offsets become immediates (ncu on the H200: with the tap loop
        // rolled, integer address arithmetic kept the ALU pipe at 46 % and the tensor pipe at 26 %).
#pragma unroll
        for (int tap = 0; tap < 9; ++tap) {
            int toff = (tap / 3) * PW + (tap % 3);
#pragma unroll
            for (int kk = 0; kk < CIN; kk += 16) {
                unsigned af[MI][4];
                unsigned bf[NI][2];
#pragma unroll
                for (int mi = 0; mi < MI; ++mi)
                    ldmatrix_x4(af[mi], smem_u32(P + (prow[mi] + toff) * PS + kk + (lane >> 4) * 8));
#pragma unroll
                for (int ni = 0; ni < NI; ni += 2) {
                    unsigned r[4];
                    int krow = tap * CIN + kk + (lane & 15);
                    int ncol = wn * WN + ni * 8 + (lane >> 4) * 8;
                    ldmatrix_x4_trans(r, smem_u32(sW + krow * BS + ncol));
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

        int ty0 = (t / tiles_x) * TH, tx0 = (t % tiles_x) * TW;
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
            for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    int r = wm * WM + mi * 16 + (lane >> 2) + hf * 8;
                    int y = ty0 + r / TW, x = tx0 + r % TW;
                    if (y >= a.h || x >= a.w) continue;
                    int n = n0 + wn * WN + ni * 8 + (lane & 3) * 2;
                    store_pair(a, acc[mi][ni][hf * 2], acc[mi][ni][hf * 2 + 1], y * a.w + x, y, x, n);
                }
        // Every warp is done with this patch before the next iteration's prefetch overwrites it.
        __syncthreads();
    }
    cp_async_wait<0>();
}
