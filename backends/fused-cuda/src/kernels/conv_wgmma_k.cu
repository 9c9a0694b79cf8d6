// NHWC f16 3x3 conv for Hopper (sm_90a) with more input channels than conv_wgmma's whole-patch buffers hold
// (RRDB's dense blocks: 96 to 192 channels in, 32 or 64 out). The same warpgroup MMAs and weight layout as
// conv_wgmma.cu; the weights (all CIN, BN output channels) stay resident, copied in as they are stored, but each
// tile's patch streams through two KCH-channel buffers per warpgroup: while chunk q's MMAs run, chunk q + 1 (or the
// next tile's first) is copied. The accumulators stay in the tensor pipe across a tile's chunks; the epilogue
// follows the last one (wgmma_common.cu's: staged 16-byte stores, residuals added on the way).
// With ARF 1 or 2, A comes from registers: each patch row's 64 x 16 fragment at each tap column is loaded once
// (ldmatrix) for the up to three output rows that read it, so with TR rows an MMA reads its A from shared memory
// (TR + 2) / (3 TR) times as often; N is only 32 here, so A is two thirds of an MMA's shared-memory reads. A chunk
// is then spent once its fragments are loaded, so the next one is copied from the start of its MMAs. The fragments
// load in steps, each into the next of ASETS register sets while the previous steps' MMAs run: with ARF 1 a step
// is a 16-channel slice at all three tap columns (two sets), with ARF 2 at one tap column (three smaller sets).
// Compile-time parameters: BN (32 or 64) NWG TR CIN KCH (a divisor of CIN, 32 or 64) ARF EPI (0) IO_F16.

#define CH (KCH / 8)
#define NCH (CIN / KCH)
// With A from registers a chunk is stored pixel by pixel, as TMA boxes of KCH channels x 66 pixels (one a patch
// row) land: ROW_BYTES a pixel, patch rows ROW_PX = 72 pixels apart, the 16-byte chunks swizzled (`swizzle_rows`),
// so the 8 pixels an ldmatrix phase reads fall in distinct banks; with rows a multiple of 8 pixels apart, the
// swizzle of pixel pix + pr ROW_PX + dx depends on the thread and dx only. The chunk arrives as TR + 2 tensor
// copies (`a.tmap`), or, for an upsampled input TMA cannot read, as cp.async copies in the same layout. (In 8-channel
// planes, as the MMAs reading A through a descriptor need, each 16-byte copy of a pixel went to another plane, and
// ncu counted twice the L2 sectors the copies needed.)
#define ROW_BYTES (KCH * 2)
#define ROW_PX 72
#if ARF
#define BUF_BYTES (((TR + 2) * ROW_PX * ROW_BYTES + 1023) / 1024 * 1024)
#else
#define BUF_BYTES (CH * PLANE)
#endif
// PROBE (measurement only, never in a product variant): 1 skips the global -> shared copies, 2 also the ldmatrix
// loads (zeros feed the MMAs), so the sweep can time what the MMAs alone, and with the fragment loads, cost.
#ifndef PROBE
#define PROBE 0
#endif
#define ADX (ARF == 2 ? 1 : 3)
#define ASETS (ARF == 2 ? 3 : 2)
#if TR * TW * SROW > BUF_BYTES || CIN % KCH != 0 || EPI != 0
#error "conv_wgmma_k: KCH must divide CIN, the output staging must fit in a chunk buffer, NHWC output only"
#endif

extern "C" __global__ void __launch_bounds__(THREADS) conv_wgmma_k(const ConvArgs a) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    // Everything from a 1024-aligned base (the swizzle is a function of the address; the host asks for 1 KB more).
    unsigned char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    unsigned char* sW = smem;
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, warp = wt >> 5, lane = tid & 31;
    unsigned char* sB = smem + W_BYTES + wg * 2 * BUF_BYTES;
    // The two chunk buffers' mbarriers, after every warpgroup's buffers (TMA only).
    const unsigned bar0 = smem_u32(smem + W_BYTES + NWG * 2 * BUF_BYTES) + wg * 16;
    const int n0 = blockIdx.y * BN;
    const int tiles_x = (a.w + TW - 1) / TW, tiles_y = (a.h + TR - 1) / TR;
    const int ntiles = tiles_x * tiles_y;

    // The CTA's weights are stored in their shared-memory layout, one BN block after another (pack.rs,
    // `kernel_weights`): plain 16-byte copies, in flight with the first patch chunk's.
    {
        const unsigned char* src = (const unsigned char*)a.wt + (long long)blockIdx.y * W_BYTES;
        for (int i = tid; i < W_BYTES / 16; i += THREADS) cp_async16(smem_u32(sW + i * 16), src + i * 16, 16);
        cp_async_commit();
    }

    // Chunk q of tile t: input channels q * KCH + [0, KCH) of its patch.
    auto load_chunk = [&](int stage, int t, int q) {
#if PROBE == 0 && ARF
        if (a.tmap) {
            if (wt == 0) {
                // The buffer's generic reads and writes (ordered by the caller's barrier) before the async write.
                fence_proxy_async();
                mbar_expect_tx(bar0 + stage * 8, PPIX * ROW_BYTES);
                const int ty0 = (t / tiles_x) * TR - 1, tx0 = (t % tiles_x) * TW - 1;
#pragma unroll
                for (int py = 0; py < TR + 2; ++py)
                    tma_load_3d(smem_u32(sB + stage * BUF_BYTES) + py * ROW_PX * ROW_BYTES, a.tmap, q * KCH, tx0,
                                ty0 + py, bar0 + stage * 8);
            }
        } else {
            wg_load_planes<CH, ROW_PX>(smem_u32(sB + stage * BUF_BYTES), a, t, tiles_x, q * KCH, wt);
        }
#elif PROBE == 0
        wg_load_planes<CH>(smem_u32(sB + stage * BUF_BYTES), a, t, tiles_x, q * KCH, wt);
#endif
    };
#if ARF
    if (a.tmap && wt == 0) {
        mbar_init(bar0);
        mbar_init(bar0 + 8);
        mbar_init_fence();
    }
    // Parity of each buffer's next TMA completion (bit = stage).
    unsigned phase = 0;
#endif

    float bias[BN / 8][2], slope[BN / 8][2];
    wg_load_bias(a, n0, lane, bias, slope);
    wait_previous_kernel();

    const u64 wdesc = smem_desc(smem_u32(sW), W_PLANE, 128);
    const int nworkers = gridDim.x * NWG;
    int t = blockIdx.x * NWG + wg;
    if (t < ntiles) load_chunk(0, t, 0);
    cp_async_commit();
    // Every warpgroup's MMAs read weights every thread copied (through the async proxy).
    cp_async_wait<1>();
    fence_proxy_async();
    __syncthreads();
    int stage = 0;
    for (; t < ntiles; t += nworkers) {
        float acc[TR][NACC];
#pragma unroll
        for (int r = 0; r < TR; ++r)
#pragma unroll
            for (int i = 0; i < NACC; ++i) acc[r][i] = 0.0f;
        // The chunk loop is unrolled so that no path touches the accumulators while MMAs are in flight (ptxas
        // serialises every wgmma otherwise).
        unsigned char* P = sB;
#if ARF
        unsigned fa[ASETS][TR + 2][ADX][4] = {};
#endif
#pragma unroll
        for (int q = 0; q < NCH; ++q) {
#if ARF
            if (a.tmap && PROBE == 0) {
                mbar_wait(bar0 + stage * 8, (phase >> stage) & 1);
                phase ^= 1u << stage;
            } else {
                cp_async_wait<0>();
            }
            wg_barrier(wg);
            P = sB + stage * BUF_BYTES;
            // The other buffer's last readers (the previous chunk's ldmatrix, or the previous tile's output
            // staging) finished before this barrier: the next chunk, this tile's or the next tile's first, is
            // copied there while this one's MMAs run.
            {
                const int tn = q + 1 < NCH ? t : t + nworkers;
                if (tn < ntiles) load_chunk(stage ^ 1, tn, (q + 1) % NCH);
                cp_async_commit();
            }
            // ldmatrix.x4: lanes 8 m .. 8 m + 7 address pixels 16 warp + 8 (m % 2) + [0, 8), channels
            // 8 (2 ks + m / 2) + [0, 8), so the four registers are the m16n8k16 A fragment (pixels x channels).
            // Patch pixel i = pix + pr ROW_PX + dx has chunk c at swizzle_rows(i * ROW_BYTES + 16 c), whose
            // swizzle term depends only on (lane % 8 + dx) % 8.
            const int m = lane >> 3;
            const unsigned p0 = smem_u32(P) + (warp * 16 + (m & 1) * 8 + (lane & 7)) * ROW_BYTES;
            unsigned swz[3];
#pragma unroll
            for (int dx = 0; dx < 3; ++dx) swz[dx] = ((((lane & 7) + dx) * ROW_BYTES >> 7) & (CH - 1)) << 4;
#pragma unroll
            for (int ks = 0; ks < KCH / 16; ++ks)
#pragma unroll
                for (int dg = 0; dg < 3 / ADX; ++dg) {
                    const int s = ((q * (KCH / 16) + ks) * (3 / ADX) + dg) % ASETS;
                    // At most the other sets' groups still run: this set's MMAs are done with its registers.
                    wgmma_wait<ASETS - 1>();
#pragma unroll
                    for (int pr = 0; pr < TR + 2; ++pr)
#pragma unroll
                        for (int d = 0; d < ADX; ++d) {
                            const int dx = dg * ADX + d;
                            const unsigned at =
                                p0 + (pr * ROW_PX + dx) * ROW_BYTES + (((2 * ks + (m >> 1)) << 4) ^ swz[dx]);
                            if (PROBE < 2) ldmatrix_x4(fa[s][pr][d], at);
                        }
                    wgmma_fence();
#pragma unroll
                    for (int pr = 0; pr < TR + 2; ++pr)
#pragma unroll
                        for (int d = 0; d < ADX; ++d)
#pragma unroll
                            for (int r = 0; r < TR; ++r) {
                                const int dy = pr - r;
                                if (dy < 0 || dy > 2) continue;
                                const int tap = dy * 3 + dg * ADX + d;
                                u64 db = wdesc + (u64)((tap * (CIN / 8) + q * CH + ks * 2) * (W_PLANE / 16));
                                wgmma_rs(acc[r], fa[s][pr][d], db, 1);
                            }
                    wgmma_commit();
                }
            stage ^= 1;
#else
            cp_async_wait<0>();
            fence_proxy_async();
            wg_barrier(wg);
            P = sB + stage * BUF_BYTES;
            const u64 pdesc = smem_desc(smem_u32(P), PLANE, 128);
            wgmma_fence();
#pragma unroll
            for (int r = 0; r < TR; ++r)
#pragma unroll
                for (int tap = 0; tap < 9; ++tap)
#pragma unroll
                    for (int ks = 0; ks < KCH / 16; ++ks) {
                        u64 da = pdesc + (u64)(((r + tap / 3) * PW + tap % 3) + ks * 2 * (PLANE / 16));
                        u64 db = wdesc + (u64)((tap * (CIN / 8) + q * CH + ks * 2) * (W_PLANE / 16));
                        wgmma_ss(acc[r], da, db, 1);
                    }
            wgmma_commit();
            // The previous chunk's MMAs are done once at most this group is pending: its buffer (which also held
            // the previous tile's output staging, finished before that tile's closing barrier) takes the next
            // chunk, this tile's or the next tile's first.
            wgmma_wait_one();
            wg_barrier(wg);
            const int tn = q + 1 < NCH ? t : t + nworkers;
            if (tn < ntiles) load_chunk(stage ^ 1, tn, (q + 1) % NCH);
            cp_async_commit();
            stage ^= 1;
#endif
        }
        wgmma_wait_all();

        const int ty0 = (t / tiles_x) * TR, tx0 = (t % tiles_x) * TW;
        wg_epilogue_nhwc(a, acc, bias, slope, P, ty0, tx0, n0, wg, wt, warp, lane);
        wg_barrier(wg);
    }
    cp_async_wait<0>();
}
