// NHWC f16 3x3 conv for Hopper (sm_90a): warpgroup MMA (wgmma.mma_async m64nBNk16, f32 accumulators) reading both
// operands straight from shared memory through matrix descriptors, so no ldmatrix and no register fragments: the
// tensor cores pull A and B themselves while the warps only issue. All 9 x CIN x BN weights stay resident; each of
// the CTA's NWG warpgroups walks its own TR-row x 64-pixel output tiles with its own double-buffered input patch
// ((TR + 2) x 66 pixels, loaded once for all nine taps with cp.async; the next tile's patch arrives during this
// one's MMAs), so one warpgroup's epilogue overlaps another's MMAs. Same arguments as conv_mma; without residuals the
// epilogue stages the tile through shared memory for whole-run stores (NHWC, or the tail's pixel shuffle into planar
// RGB), with residuals it is conv_common.cu's.
//
// Shared memory holds both operands in the canonical no-swizzle K-major layout: 8 rows x 16 bytes core matrices,
// rows contiguous (16 B apart), 8-row groups SBO = 128 B apart, 8-element K chunks LBO apart.
// - Patch: byte(pixel, ci) = (ci / 8) * PLANE + pixel * 16 + (ci % 8) * 2. A tap's A operand for an output row is
//   the same bytes started (dy * 66 + dx) pixels later: 64 consecutive patch pixels are 64 consecutive output
//   pixels. PLANE is padded by 16 B so the 8 channel planes fall on different banks when the patch is written.
// - Weights: byte(k, n) = (k / 8) * (BN * 16) + n * 16 + (k % 8) * 2 with k = tap * CIN + ci.
// Compile-time parameters: BN (16, 32, 48 or 64) NWG TR CIN (64) EPI (0 NHWC slice, 1 the tail) IO_F16.

#define PATCH_BYTES ((CIN / 8) * PLANE)
#define CH (CIN / 8)
#if TR * TW * SROW > PATCH_BYTES || (EPI == 1 && TR * TW * BN * 4 > PATCH_BYTES)
#error "conv_wgmma: the output staging must fit in a patch buffer"
#endif

extern "C" __global__ void __launch_bounds__(THREADS) conv_wgmma(const ConvArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* sW = smem;
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, warp = wt >> 5, lane = tid & 31;
    unsigned char* sP = smem + W_BYTES + wg * 2 * PATCH_BYTES;
    const int n0 = blockIdx.y * BN;
    const int tiles_x = (a.w + TW - 1) / TW, tiles_y = (a.h + TR - 1) / TR;
    const int ntiles = tiles_x * tiles_y;

    wg_load_weights(sW, a, n0, tid);
    fence_proxy_async();
    __syncthreads();

    auto load_patch = [&](int stage, int t) {
        wg_load_planes<CH>(smem_u32(sP + stage * PATCH_BYTES), a, t, tiles_x, 0, wt);
    };

    float bias[BN / 8][2], slope[BN / 8][2];
    wg_load_bias(a, n0, lane, bias, slope);
    wait_previous_kernel();

#if EPI == 1
    // The tail's pixel shuffle, resolved once: where in the tile's staging each of this thread's channels goes
    // (-1: a padding channel past cout).
    const int S = a.shuffle, rows = TR * S, cols = TW * S, oh = a.h * S, ow = a.w * S;
    // The common tail (nearest input upsampling by the shuffle factor) adds the input in the staging pass.
    const bool base_near = a.base && !a.bilinear && a.base_factor == S;
    // The frame's IO table, read once: read after this kernel's own global stores, the compiler would have to
    // reload it (and wait for it) on every output row.
    const IoTable* io = (const IoTable*)a.io;
    const io_t* const io_in = (const io_t*)io->in;
    io_t* const io_out = (io_t*)io->out;
    const long long in_pitch = io->in_pitch, out_pitch = io->out_pitch;
    int soff[BN / 8][2], scol[BN / 8][2];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int n = n0 + j * 8 + (lane & 3) * 2 + e;
            int c = 0, dy = 0, dx = 0;
            if (n < a.cout) unshuffle(n, S, a.crd, c, dy, dx);
            soff[j][e] = n < a.cout ? (c * rows + dy) * cols + dx : -1;
            scol[j][e] = c;
        }
    // Every channel pair of this thread lands on two neighbouring sub-columns, 8-byte aligned: one store a pair.
    bool pairs = S % 2 == 0;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
        pairs = pairs && soff[j][0] >= 0 && soff[j][1] == soff[j][0] + 1 && soff[j][0] % 2 == 0;
    // The copy: quads per staged row and a thread's 128-quad step as (rows, quads). `fast`: no value needs a base
    // sample of its own, so the staging pass finishes every value (base added, clamped); `vec`: the output rows take
    // aligned 4-value stores.
    const int qpr = cols / 4, drow = 128 / qpr, dq = 128 % qpr;
    const bool fast = !a.base || base_near;
    const bool vec = fast && (a.out_f16 ? ((unsigned long long)a.out % 8 == 0 && a.out_pitch % 4 == 0)
                                        : ((unsigned long long)io_out % (4 * sizeof(io_t)) == 0 && out_pitch % 4 == 0));
#endif

    const u64 wdesc = smem_desc(smem_u32(sW), W_PLANE, 128);
    const int nworkers = gridDim.x * NWG;
    int t = blockIdx.x * NWG + wg;
    if (t < ntiles) load_patch(0, t);
    cp_async_commit();
    for (int it = 0; t < ntiles; t += nworkers, ++it) {
        cp_async_wait<0>();
        fence_proxy_async();
        wg_barrier(wg);
        unsigned char* P = sP + (it & 1) * PATCH_BYTES;
        const u64 pdesc = smem_desc(smem_u32(P), PLANE, 128);

        float acc[TR][NACC];
#pragma unroll
        for (int r = 0; r < TR; ++r)
#pragma unroll
            for (int i = 0; i < NACC; ++i) acc[r][i] = 0.0f;
        wgmma_fence();
#pragma unroll
        for (int r = 0; r < TR; ++r)
#pragma unroll
            for (int tap = 0; tap < 9; ++tap)
#pragma unroll
                for (int ks = 0; ks < CIN / 16; ++ks) {
                    // Descriptor start addresses are in 16-byte units: a patch pixel is one unit.
                    u64 da = pdesc + (u64)(((r + tap / 3) * PW + tap % 3) + ks * 2 * (PLANE / 16));
                    u64 db = wdesc + (u64)((tap * (CIN / 8) + ks * 2) * (W_PLANE / 16));
                    wgmma_ss(acc[r], da, db, tap | ks);
                }
        wgmma_commit();
        // The next tile's patch streams in while the tensor cores work on this one (its buffer was last read as
        // the previous tile's output staging, finished before that iteration's closing barrier).
        const int next = t + nworkers;
        if (next < ntiles) load_patch((it + 1) & 1, next);
        cp_async_commit();
        wgmma_wait_all();

        const int ty0 = (t / tiles_x) * TR, tx0 = (t % tiles_x) * TW;
#if EPI == 0
        wg_epilogue_nhwc(a, acc, bias, slope, P, ty0, tx0, n0, wg, wt, warp, lane);
#else
        if (a.nres == 0) {
            wg_barrier(wg);
            // The tail: f32 pixel-shuffled into planar [colour][sub-row][sub-column] for the tile (a channel pair
            // that lands on two neighbouring sub-columns, as with CRD and an even factor, in one 8-byte store), then
            // the warpgroup copies the tile's output rows four sub-columns a thread at a time (16-byte shared loads,
            // 8- or 16-byte global stores). No divisions by run-time values and no global loads in the per-element
            // code (the tail took 1.49 ms against a body conv's 0.45 with the same MMAs, bench/RESULTS.md).
            float* st = (float*)P;
#pragma unroll
            for (int r = 0; r < TR; ++r)
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const int px = warp * 16 + (lane >> 2) + hf * 8;
                    const int at = r * S * cols + px * S;
                    // The nearest-upsampled input at this pixel is the input pixel itself: three loads for all
                    // its sub-pixels, here, rather than one dependent load per output value below.
                    float b[3] = {0.0f, 0.0f, 0.0f};
                    const int y = min(ty0 + r, a.h - 1), x = min(tx0 + px, a.w - 1);
                    if (base_near) {
#pragma unroll
                        for (int c = 0; c < 3; ++c)
                            b[c] = io_load(io_in + ((long long)c * a.img_h + y) * in_pitch + x);
                    }
#pragma unroll
                    for (int j = 0; j < BN / 8; ++j) {
                        float v[2];
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            v[e] = acc[r][j * 4 + hf * 2 + e] + bias[j][e];
                            if (v[e] < 0.0f) v[e] *= slope[j][e];
                            if (base_near) v[e] += scol[j][e] == 0 ? b[0] : scol[j][e] == 1 ? b[1] : b[2];
                            if (fast && a.clip) v[e] = fminf(fmaxf(v[e], a.clip_lo), a.clip_hi);
                        }
                        if (pairs) {
                            st_shared_v2(st + soff[j][0] + at, v[0], v[1]);
                        } else {
#pragma unroll
                            for (int e = 0; e < 2; ++e)
                                if (soff[j][e] >= 0) st[soff[j][e] + at] = v[e];
                        }
                    }
                }
            wg_barrier(wg);
            // Quad q of staged row `row` (colour c, sub-row rr) is sub-columns 4q .. 4q + 3; each thread starts at
            // quad wt and steps 128 quads, carried into (q, rr, c) without divisions.
            int q = wt % qpr, rr = wt / qpr, c = 0;
            while (rr >= rows) rr -= rows, ++c;
            for (; c < 3; ) {
                const int oy = ty0 * S + rr, ox = tx0 * S + 4 * q;
                if (oy < oh) {
                    float v[4];
                    ld_shared_v4f(v, st + (c * rows + rr) * cols + 4 * q);
                    if (!fast) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            if (a.base)
                                v[e] += base_sample(io, a.bilinear, a.base_factor, c, oy, ox + e, a.img_h, a.img_w);
                            if (a.clip) v[e] = fminf(fmaxf(v[e], a.clip_lo), a.clip_hi);
                        }
                    }
                    const long long row = (long long)c * oh + oy;
                    if (vec && ox + 3 < ow) {
                        if (a.out_f16) {
                            st_global_v2((half_t*)a.out + row * a.out_pitch + ox, pack_h2(v[0], v[1]),
                                         pack_h2(v[2], v[3]));
                        } else {
                            io_store4(io_out + row * out_pitch + ox, v);
                        }
                    } else {
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            if (ox + e >= ow) break;
                            if (a.out_f16) {
                                ((half_t*)a.out)[row * a.out_pitch + ox + e] = f2h(v[e]);
                            } else {
                                io_store(io_out + row * out_pitch + ox + e, v[e]);
                            }
                        }
                    }
                }
                q += dq;
                rr += drow;
                if (q >= qpr) q -= qpr, ++rr;
                while (rr >= rows) rr -= rows, ++c;
            }
        } else {
            wg_store_pairs(a, acc, ty0, tx0, n0, warp, lane);
        }
#endif
        // Every warp of this warpgroup is done with this buffer before the next iteration's prefetch overwrites it.
        wg_barrier(wg);
    }
    cp_async_wait<0>();
}
