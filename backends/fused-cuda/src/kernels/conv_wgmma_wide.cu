// NHWC f16 3x3 conv for Hopper (sm_90a), 64 -> 64 channels, with the roles of conv_wgmma.cu's operands swapped:
// the weights are A (M = the 64 output channels) and a row of NPX output pixels is B (N = NPX, up to 256). A
// wgmma reads both operands from shared memory, A (2 KB) and B (NPX x 32 B) per k16 step; conv_wgmma's m64n64
// reads 4 KB per 64 x 64 x 16 MACs, as much as shared memory delivers in the time the tensor cores take for them,
// while m64n128 reads 6 KB for twice the MACs (m64n256: 10 KB for four times).
// Each warpgroup walks a column strip NPX pixels wide from row y0 to y1, keeping its input rows in a ring of four
// slots: output row y reads input rows y - 1, y, y + 1, and only row y + 2 is copied (cp.async) while row y's MMAs
// run. The slot of row y - 1, spent after the MMAs, stages the output row for 16-byte NHWC stores: stmatrix.trans
// turns the channel-major accumulators into pixel rows of 8 channels, XOR-swizzled by pixel so neither the
// stmatrix rows nor the 16-byte reads meet on a bank. Residuals (RRDB's trunk add) are applied to the staged f16
// values as they are stored. Strip segments are sized so that all warpgroups get one each.
//
// Shared memory, canonical no-swizzle K-major layout (8 rows x 16 bytes core matrices, 8-row groups SBO = 128 B):
// - Weights (A), as conv_wgmma.cu's B: byte(k, m) = (k / 8) * 1024 + m * 16 + (k % 8) * 2, k = tap * 64 + ci.
// - A ring slot (B), one input row: byte(px, ci) = (ci / 8) * SPLANE + px * 16 + (ci % 8) * 2, px = x - x0 + 1. A tap
//   (dy, dx) of output row y is the slot of row y + dy - 1 started dx pixels in.
// With WRS 1 the weights stay in registers instead (A from registers, the mma.sync A fragment layout), so an MMA
// reads only its 2 KB of B from shared memory and the CTA needs no weight copy there; 144 registers a thread hold
// the weights, so NPX is 64 (254 registers in all; at 128 ptxas spills).
// Compile-time parameters: NWG NPX (64, 128 or 256; 64 with WRS) WRS CIN (64) BN (64) TR (1: unused) IO_F16.

#define NACCW (NPX / 2)
#define SPLANE ((NPX + 2) * 16)
#define SLOT (8 * SPLANE)
#define NSLOT 4
#if CIN != 64 || BN != 64 || NPX * 128 > SLOT
#error "conv_wgmma_wide: 64 -> 64 channels, and a staged output row must fit in a slot"
#endif

// D (64 channels x NPX pixels, f32) = A * B + (accumulate ? D : 0), both from shared memory, K-major.
__device__ __forceinline__ void wgmma_px(float (&d)[NACCW], u64 da, u64 db, int accumulate) {
#if NPX == 64
    wgmma_ss(d, da, db, accumulate);
#elif NPX == 128
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
        "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
        "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(accumulate));
#elif NPX == 256
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
        "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
        "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
        "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
        "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"
        "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
        "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,"
        "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"
        "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "r"(accumulate));
#else
#error "conv_wgmma_wide: NPX must be 64, 128 or 256"
#endif
#if WRS && NPX != 64
#error "conv_wgmma_wide: with the weights in registers, NPX must be 64 (at 128 ptxas spills)"
#endif
}

// Four 8x8 b16 matrices from registers to shared memory, transposed: lane l's register q holds row l / 4, columns
// 2 (l % 4) and + 1 of matrix q, stored as column l / 4 of rows 2 (l % 4) and + 1, at the row addresses lanes
// 8q .. 8q + 7 give.
__device__ __forceinline__ void stmatrix_x4_trans(unsigned addr, unsigned r0, unsigned r1, unsigned r2, unsigned r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(addr), "r"(r0),
                 "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
}

__device__ __forceinline__ void ld_shared_v4(unsigned (&v)[4], unsigned addr) {
    asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3])
                 : "r"(addr));
}

// Byte offset of pixel p's 8-channel chunk c in a staged output row (128 bytes a pixel, chunks XOR-swizzled).
__device__ __forceinline__ int staged(int p, int c) { return p * 128 + ((c ^ (p & 7)) << 4); }

extern "C" __global__ void __launch_bounds__(THREADS) conv_wgmma_wide(const ConvArgs a) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x, wg = tid >> 7, wt = tid & 127, warp = wt >> 5, lane = tid & 31;
#if WRS
    unsigned char* sR = smem + wg * NSLOT * SLOT;
    // The weights as this thread's A fragments for the whole kernel: rows (output channels) 16 warp + lane / 4 and
    // + 8, K indices tap * 64 + 16 ks + 2 (lane % 4) and + 8, two halves a register.
    unsigned wa[9][4][4];
    {
        const half_t* w = (const half_t*)a.wt;
#pragma unroll
        for (int tap = 0; tap < 9; ++tap)
#pragma unroll
            for (int ks = 0; ks < 4; ++ks)
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const int m = warp * 16 + (lane >> 2) + 8 * (r & 1);
                    const int k = tap * 64 + ks * 16 + 2 * (lane & 3) + 8 * (r >> 1);
                    wa[tap][ks][r] = (unsigned)w[(long long)k * a.cout_pad + m] |
                                     ((unsigned)w[(long long)(k + 1) * a.cout_pad + m] << 16);
                }
    }
#else
    unsigned char* sW = smem;
    unsigned char* sR = smem + W_BYTES + wg * NSLOT * SLOT;
    wg_load_weights(sW, a, 0, tid);
    fence_proxy_async();
    __syncthreads();
    const u64 wdesc = smem_desc(smem_u32(sW), W_PLANE, 128);
#endif

    // This thread's two output channels (accumulator rows): 16 warp + lane / 4, and 8 more.
    const int m0 = warp * 16 + (lane >> 2);
    const float b0 = ((const float*)a.bias)[m0], b1 = ((const float*)a.bias)[m0 + 8];
    const float s0 = ((const float*)a.slope)[m0], s1 = ((const float*)a.slope)[m0 + 8];
    wait_previous_kernel();

    // The work: strips NPX pixels wide, cut into segments so that there are at most as many as warpgroups.
    const int workers = gridDim.x * NWG;
    const int strips = (a.w + NPX - 1) / NPX;
    const int per_strip = max(1, workers / strips);
    const int seg = (a.h + per_strip - 1) / per_strip;
    const int items = strips * ((a.h + seg - 1) / seg);
    const int in_w = a.w >> a.up_shift;
    const half_t* in = (const half_t*)a.in;

    // Input row y (output coordinates; zeros outside the image) of the strip at x0 into its ring slot: thread wt
    // moves channel plane wt % 8 of every 16th pixel.
    auto load_row = [&](int y, int x0) {
        const unsigned dst = smem_u32(sR + (y & (NSLOT - 1)) * SLOT) + (wt & 7) * SPLANE;
        const bool row_ok = y >= 0 && y < a.h;
        const half_t* row = in + (long long)((row_ok ? y : 0) >> a.up_shift) * in_w * a.in_stride + a.in_off +
                            (wt & 7) * 8;
#pragma unroll
        for (int px = wt >> 3; px < NPX + 2; px += 16) {
            const int xx = x0 - 1 + px;
            const bool ok = row_ok && xx >= 0 && xx < a.w;
            cp_async16(dst + px * 16, ok ? row + (long long)(xx >> a.up_shift) * a.in_stride : in, ok ? 16 : 0);
        }
    };

    for (int item = blockIdx.x * NWG + wg; item < items; item += workers) {
        const int x0 = (item % strips) * NPX, y0 = (item / strips) * seg, y1 = min(y0 + seg, a.h);
        load_row(y0 - 1, x0);
        load_row(y0, x0);
        cp_async_commit();
        load_row(y0 + 1, x0);
        cp_async_commit();
        for (int y = y0; y < y1; ++y) {
            cp_async_wait<0>();
            fence_proxy_async();
            wg_barrier(wg);
            float acc[NACCW];
#pragma unroll
            for (int i = 0; i < NACCW; ++i) acc[i] = 0.0f;
            wgmma_fence();
#pragma unroll
            for (int tap = 0; tap < 9; ++tap) {
                const u64 rdesc = smem_desc(smem_u32(sR + ((y - 1 + tap / 3) & (NSLOT - 1)) * SLOT), SPLANE, 128);
#pragma unroll
                for (int ks = 0; ks < 4; ++ks) {
                    // Descriptor start addresses are in 16-byte units: a pixel of a plane is one unit.
                    const u64 db = rdesc + (u64)(tap % 3 + ks * 2 * (SPLANE / 16));
#if WRS
                    wgmma_rs(acc, wa[tap][ks], db, tap | ks);
#else
                    const u64 da = wdesc + (u64)((tap * 8 + ks * 2) * (W_PLANE / 16));
                    wgmma_px(acc, da, db, tap | ks);
#endif
                }
            }
            wgmma_commit();
            // Row y + 2 goes into the slot row y - 2 held (its last reader, output row y - 1, is done).
            if (y + 2 <= y1) load_row(y + 2, x0);
            cp_async_commit();
            wgmma_wait_all();

            // Epilogue: bias and activation, f16 pixel rows into the spent slot of row y - 1, 16-byte stores.
            unsigned char* st = sR + ((y - 1) & (NSLOT - 1)) * SLOT;
            wg_barrier(wg);
            auto act = [&](float v, float b, float s) {
                v += b;
                return v < 0.0f ? v * s : v;
            };
#pragma unroll
            for (int j = 0; j < NPX / 8; j += 2) {
                // Matrices: (pixel block j, channels m0 block), (j, m0 + 8), (j + 1, m0), (j + 1, m0 + 8).
                const unsigned r0 = pack_h2(act(acc[j * 4 + 0], b0, s0), act(acc[j * 4 + 1], b0, s0));
                const unsigned r1 = pack_h2(act(acc[j * 4 + 2], b1, s1), act(acc[j * 4 + 3], b1, s1));
                const unsigned r2 = pack_h2(act(acc[j * 4 + 4], b0, s0), act(acc[j * 4 + 5], b0, s0));
                const unsigned r3 = pack_h2(act(acc[j * 4 + 6], b1, s1), act(acc[j * 4 + 7], b1, s1));
                const int q = lane >> 3, p = (j + (q >> 1)) * 8 + (lane & 7);
                stmatrix_x4_trans(smem_u32(st + staged(p, warp * 2 + (q & 1))), r0, r1, r2, r3);
            }
            wg_barrier(wg);
            half_t* orow = (half_t*)a.out + (long long)y * a.w * a.out_stride + a.out_off;
#pragma unroll 4
            for (int i = wt; i < NPX * 8; i += 128) {
                const int p = i >> 3, c = i & 7, x = x0 + p;
                if (x >= a.w || c * 8 >= a.cout) continue;
                unsigned v[4];
                ld_shared_v4(v, smem_u32(st + staged(p, c)));
                if (a.nres > 0) {
                    const long long m = (long long)y * a.w + x;
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        float lo = lo_h2(v[e]) * a.scale0, hi = hi_h2(v[e]) * a.scale0;
                        const int n = c * 8 + 2 * e;
                        if (a.res0) {
                            const half_t* r = (const half_t*)a.res0 + m * a.res0_stride + a.res0_off + n;
                            lo += h2f(r[0]);
                            hi += h2f(r[1]);
                        }
                        if (a.nres > 1) {
                            lo *= a.scale1;
                            hi *= a.scale1;
                            if (a.res1) {
                                const half_t* r = (const half_t*)a.res1 + m * a.res1_stride + a.res1_off + n;
                                lo += h2f(r[0]);
                                hi += h2f(r[1]);
                            }
                        }
                        v[e] = pack_h2(lo, hi);
                    }
                }
                st_global_v4(orow + (long long)x * a.out_stride + c * 8, v);
            }
        }
        // Every thread is done with the ring before the next segment's first rows overwrite it.
        wg_barrier(wg);
    }
    cp_async_wait<0>();
}
