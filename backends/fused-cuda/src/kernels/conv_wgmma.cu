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

#define THREADS (NWG * 128)
#define TW 64
#define PW (TW + 2)
#define PPIX ((TR + 2) * PW)
#define PLANE (PPIX * 16 + 16)
#define PATCH_BYTES ((CIN / 8) * PLANE)
#define W_PLANE (BN * 16)
#define W_BYTES (9 * (CIN / 8) * W_PLANE)
#define NACC (BN / 2)
#define CH (CIN / 8)
#define PPT (128 / CH)
#define SROW (BN * 2 + 16)
#if TR * TW * SROW > PATCH_BYTES || (EPI == 1 && TR * TW * BN * 4 > PATCH_BYTES)
#error "conv_wgmma: the output staging must fit in a patch buffer"
#endif

// 16 bytes from shared to global memory.
__device__ __forceinline__ void st_global_v4(half_t* dst, const unsigned* src) {
    asm volatile("st.global.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"l"(dst), "r"(src[0]), "r"(src[1]), "r"(src[2]),
                 "r"(src[3])
                 : "memory");
}

__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void wg_barrier(int wg) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(wg + 1) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

// Matrix descriptor, no swizzle: start address, LBO (K direction) and SBO (M/N direction), all in 16-byte units.
__device__ __forceinline__ u64 smem_desc(unsigned addr, unsigned lbo, unsigned sbo) {
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)((lbo >> 4) & 0x3FFF) << 16) | ((u64)((sbo >> 4) & 0x3FFF) << 32);
}

// D (64 x BN, f32) = A * B + (accumulate ? D : 0), A and B from shared memory (K-major, no transpose).
__device__ __forceinline__ void wgmma_ss(float (&d)[NACC], u64 da, u64 db, int accumulate) {
#if BN == 64
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(accumulate));
#elif BN == 48
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n48k16.f32.f16.f16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23}, %24, %25, p, 1, 1, "
        "0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
        : "l"(da), "l"(db), "r"(accumulate));
#elif BN == 32
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "l"(da), "l"(db), "r"(accumulate));
#elif BN == 16
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
        : "l"(da), "l"(db), "r"(accumulate));
#else
#error "conv_wgmma: BN must be 16, 32, 48 or 64"
#endif
}

extern "C" __global__ void __launch_bounds__(THREADS) conv_wgmma(const ConvArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    unsigned char* sW = smem;
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, warp = wt >> 5, lane = tid & 31;
    unsigned char* sP = smem + W_BYTES + wg * 2 * PATCH_BYTES;
    const int n0 = blockIdx.y * BN;
    const int tiles_x = (a.w + TW - 1) / TW, tiles_y = (a.h + TR - 1) / TR;
    const int ntiles = tiles_x * tiles_y;
    const int in_w = a.w >> a.up_shift;
    const half_t* in = (const half_t*)a.in;
    const half_t* wt_g = (const half_t*)a.wt;

    // Resident weights, transposed from the packed [k][cout_pad] rows into K-major core matrices: one thread
    // gathers 8 consecutive k of one output channel (once per CTA: the CTAs are persistent).
    for (int i = tid; i < 9 * (CIN / 8) * BN; i += THREADS) {
        int kc = i / BN, n = i % BN;
        const half_t* src = wt_g + (long long)(kc * 8) * a.cout_pad + n0 + n;
        unsigned v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
            v[j] = (unsigned)src[(2 * j) * a.cout_pad] | ((unsigned)src[(2 * j + 1) * a.cout_pad] << 16);
        unsigned* dst = (unsigned*)(sW + kc * W_PLANE + n * 16);
#pragma unroll
        for (int j = 0; j < 4; ++j) dst[j] = v[j];
    }
    fence_proxy_async();
    __syncthreads();

    // The patch: thread `wt` always moves channel chunk wt % CH of every PPT-th pixel, so a patch row costs a few
    // instructions per 16-byte copy (ncu: the generic per-chunk index arithmetic was 40 % of all instructions).
    auto load_patch = [&](int stage, int t) {
        const int ty0 = (t / tiles_x) * TR - 1, tx0 = (t % tiles_x) * TW - 1;
        const int ch = wt % CH, px0 = wt / CH;
        const unsigned d0 = smem_u32(sP + stage * PATCH_BYTES) + ch * PLANE;
#pragma unroll
        for (int py = 0; py < TR + 2; ++py) {
            const int yy = ty0 + py;
            const bool row_ok = yy >= 0 && yy < a.h;
            const half_t* row =
                in + (long long)((row_ok ? yy : 0) >> a.up_shift) * in_w * a.in_stride + a.in_off + ch * 8;
#pragma unroll
            for (int px = px0; px < PW; px += PPT) {
                const int xx = tx0 + px;
                const bool ok = row_ok && xx >= 0 && xx < a.w;
                cp_async16(d0 + (py * PW + px) * 16, ok ? row + (long long)(xx >> a.up_shift) * a.in_stride : in,
                           ok ? 16 : 0);
            }
        }
    };

    // Bias and activation slope of the channels this thread's accumulators hold: n = n0 + 8 j + 2 (lane % 4) + e.
    float bias[BN / 8][2], slope[BN / 8][2];
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            int n = n0 + j * 8 + (lane & 3) * 2 + e;
            bias[j][e] = ((const float*)a.bias)[n];
            slope[j][e] = ((const float*)a.slope)[n];
        }

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
        if (a.nres == 0) {
            // Bias and activation in registers, then the tile through this patch's buffer (every warp's MMAs are
            // done with it after the barrier) so global stores are whole runs.
            wg_barrier(wg);
#if EPI == 0
            // f16 NHWC: 16-byte chunks; a tile row is one contiguous run when the output slice is the whole buffer.
#pragma unroll
            for (int r = 0; r < TR; ++r)
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const int px = r * TW + warp * 16 + (lane >> 2) + hf * 8;
#pragma unroll
                    for (int j = 0; j < BN / 8; ++j) {
                        float v0 = acc[r][j * 4 + hf * 2] + bias[j][0];
                        float v1 = acc[r][j * 4 + hf * 2 + 1] + bias[j][1];
                        if (v0 < 0.0f) v0 *= slope[j][0];
                        if (v1 < 0.0f) v1 *= slope[j][1];
                        *(unsigned*)(P + px * SROW + (j * 8 + (lane & 3) * 2) * 2) = pack_h2(v0, v1);
                    }
                }
            wg_barrier(wg);
#pragma unroll
            for (int c = wt; c < TR * TW * (BN / 8); c += 128) {
                const int px = c / (BN / 8), ch = c % (BN / 8);
                const int y = ty0 + px / TW, x = tx0 + px % TW, n = n0 + ch * 8;
                if (y < a.h && x < a.w && n < a.cout) {
                    const unsigned* s4 = (const unsigned*)(P + px * SROW + ch * 16);
                    st_global_v4((half_t*)a.out + ((long long)y * a.w + x) * a.out_stride + a.out_off + n, s4);
                }
            }
#else
            // The tail: f32 pixel-shuffled into planar [colour][sub-row][sub-column] for the tile, then the
            // warpgroup walks the tile's output rows, consecutive threads on consecutive columns (coalesced planar
            // stores). No divisions by run-time values and no global loads in the per-element code.
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
                    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            if (soff[j][e] < 0) continue;
                            float v = acc[r][j * 4 + hf * 2 + e] + bias[j][e];
                            if (v < 0.0f) v *= slope[j][e];
                            if (base_near) {
                                v += scol[j][e] == 0 ? b[0] : scol[j][e] == 1 ? b[1] : b[2];
                                if (a.clip) v = fminf(fmaxf(v, a.clip_lo), a.clip_hi);
                            }
                            st[soff[j][e] + at] = v;
                        }
                }
            wg_barrier(wg);
            for (int c = 0; c < 3; ++c)
                for (int rr = 0; rr < rows; ++rr) {
                    const int oy = ty0 * S + rr;
                    if (oy >= oh) break;
                    const float* srow = st + (c * rows + rr) * cols;
                    half_t* orow16 = (half_t*)a.out + ((long long)c * oh + oy) * a.out_pitch;
                    io_t* orow = io_out + ((long long)c * oh + oy) * out_pitch;
                    for (int cc = wt; cc < cols; cc += 128) {
                        const int ox = tx0 * S + cc;
                        if (ox >= ow) break;
                        float v = srow[cc];
                        if (!base_near) {
                            if (a.base) v += base_sample(io, a.bilinear, a.base_factor, c, oy, ox, a.img_h, a.img_w);
                            if (a.clip) v = fminf(fmaxf(v, a.clip_lo), a.clip_hi);
                        }
                        if (a.out_f16) {
                            orow16[ox] = f2h(v);
                        } else {
                            io_store(orow + ox, v);
                        }
                    }
                }
#endif
        } else {
#pragma unroll
            for (int r = 0; r < TR; ++r) {
                const int y = ty0 + r;
#pragma unroll
                for (int hf = 0; hf < 2; ++hf) {
                    const int x = tx0 + warp * 16 + (lane >> 2) + hf * 8;
                    if (y >= a.h || x >= a.w) continue;
#pragma unroll
                    for (int j = 0; j < BN / 8; ++j) {
                        const int n = n0 + j * 8 + (lane & 3) * 2;
                        store_pair(a, acc[r][j * 4 + hf * 2], acc[r][j * 4 + hf * 2 + 1], y * a.w + x, y, x, n);
                    }
                }
            }
        }
        // Every warp of this warpgroup is done with this buffer before the next iteration's prefetch overwrites it.
        wg_barrier(wg);
    }
    cp_async_wait<0>();
}
