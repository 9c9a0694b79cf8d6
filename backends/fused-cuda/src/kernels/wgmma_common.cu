// What the Hopper warpgroup-MMA convs share (conv_wgmma.cu, conv_wgmma_k.cu, conv_wgmma_wide.cu): fences, barriers,
// descriptors, the wgmma instruction for each output width BN (NACC = BN / 2 accumulators a thread) and, with A from
// registers, for N = 32 and 64.

// Shapes both kernels share (NWG warpgroups, TR-row x 64-pixel tiles, BN output channels, CIN input channels).
#define NACC (BN / 2)
#define THREADS (NWG * 128)
#define TW 64
#define PW (TW + 2)
#define PPIX ((TR + 2) * PW)
#define PLANE (PPIX * 16 + 16)
#define W_PLANE (BN * 16)
#define W_BYTES (9 * (CIN / 8) * W_PLANE)
#define SROW (BN * 2 + 16)

// 16 bytes from shared to global memory.
__device__ __forceinline__ void st_global_v4(half_t* dst, const unsigned* src) {
    asm volatile("st.global.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"l"(dst), "r"(src[0]), "r"(src[1]), "r"(src[2]),
                 "r"(src[3])
                 : "memory");
}

// Two floats to shared memory (8-byte aligned).
__device__ __forceinline__ void st_shared_v2(float* dst, float a, float b) {
    asm volatile("st.shared.v2.f32 [%0], {%1,%2};\n" ::"r"(smem_u32(dst)), "f"(a), "f"(b) : "memory");
}

// Four floats from shared memory (16-byte aligned).
__device__ __forceinline__ void ld_shared_v4f(float (&v)[4], const float* src) {
    asm volatile("ld.shared.v4.f32 {%0,%1,%2,%3}, [%4];\n"
                 : "=f"(v[0]), "=f"(v[1]), "=f"(v[2]), "=f"(v[3])
                 : "r"(smem_u32(src)));
}

// 8 bytes to global memory.
__device__ __forceinline__ void st_global_v2(half_t* dst, unsigned lo, unsigned hi) {
    asm volatile("st.global.v2.b32 [%0], {%1,%2};\n" ::"l"(dst), "r"(lo), "r"(hi) : "memory");
}

// Four output values of the IO type to global memory (8 or 16 bytes, aligned).
__device__ __forceinline__ void io_store4(io_t* dst, const float (&v)[4]) {
#if IO_F16
    st_global_v2(dst, pack_h2(v[0], v[1]), pack_h2(v[2], v[3]));
#else
    asm volatile("st.global.v4.f32 [%0], {%1,%2,%3,%4};\n" ::"l"(dst), "f"(v[0]), "f"(v[1]), "f"(v[2]), "f"(v[3])
                 : "memory");
#endif
}

__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void wg_barrier(int wg) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(wg + 1) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// At most one committed group still running (the one just committed).
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// At most N committed groups still running (the latest N).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

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

// D (64 x N, f32) = A * B + (accumulate ? D : 0) for N = 32 or 64 (16 or 32 accumulators a thread), A from
// registers (the mma.sync m16n8k16 A fragment of rows 16 warp .. 16 warp + 15), B K-major from shared memory.
__device__ __forceinline__ void wgmma_rs(float (&d)[16], const unsigned (&a)[4], u64 db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, {%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_rs(float (&d)[32], const unsigned (&a)[4], u64 db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
        "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
        "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
        "}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

// The resident weights, transposed from the packed [k][cout_pad] rows into K-major core matrices: one thread
// gathers 8 consecutive k of one output channel (once per CTA: the CTAs are persistent). Every thread of the CTA.
__device__ __forceinline__ void wg_load_weights(unsigned char* sW, const ConvArgs& a, int n0, int tid) {
    const half_t* wt_g = (const half_t*)a.wt;
    for (int i = tid; i < 9 * (CIN / 8) * BN; i += THREADS) {
        int kc = i / BN, n = i % BN;
        const half_t* src = wt_g + (long long)(kc * 8) * a.cout_pad + n0 + n;
        unsigned* dst = (unsigned*)(sW + kc * W_PLANE + n * 16);
#pragma unroll
        for (int j = 0; j < 4; ++j)
            dst[j] = (unsigned)src[(2 * j) * a.cout_pad] | ((unsigned)src[(2 * j + 1) * a.cout_pad] << 16);
    }
}

// The byte offset of a 16-byte chunk in pixel rows of 16 NP bytes (NP = 2, 4 or 8) as TMA's 32-, 64- or 128-byte
// swizzle places it: the chunk index XOR address bits 7.. (offsets from a 1024-aligned base), so the 8 pixels an
// ldmatrix phase reads (consecutive rows, the same chunk) fall in distinct banks.
template <int NP>
__device__ __forceinline__ unsigned swizzle_rows(unsigned off) {
    return off ^ (((off >> 7) & (NP - 1)) << 4);
}

// mbarrier and TMA (sm_90): a warpgroup's patch chunks arrive as one tensor copy each, counted in bytes.
__device__ __forceinline__ void mbar_init(unsigned bar) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(unsigned bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
    unsigned done = 0;
    while (!done) {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    }
}
// Box {c, x, y} of the tensor map at global address `map` into shared memory at dst, completing on `bar`.
__device__ __forceinline__ void tma_load_3d(unsigned dst, u64 map, int c, int x, int y, unsigned bar) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
        "[%5];\n" ::"r"(dst),
        "l"(map), "r"(c), "r"(x), "r"(y), "r"(bar)
        : "memory");
}

// Copies the 8-channel planes [0, NP) (input channels c0 + 8 p) of tile t's (TR + 2) x 66 patch to dst with
// cp.async, zeros outside the image: thread wt always moves plane wt % NP of every (128 / NP)-th pixel, so a patch
// row costs a few instructions a 16-byte copy (ncu: generic per-chunk index arithmetic was 40 % of all
// instructions). Without ROW_PX, in planes for the MMAs that read A through a descriptor; with it, pixel by pixel
// as TMA boxes land (16 NP bytes a pixel, patch rows ROW_PX pixels apart, 16-byte chunks swizzled:
// `swizzle_rows`; dst 1024-aligned).
template <int NP, int ROW_PX = 0>
__device__ __forceinline__ void wg_load_planes(unsigned dst, const ConvArgs& a, int t, int tiles_x, int c0, int wt) {
    const int ty0 = (t / tiles_x) * TR - 1, tx0 = (t % tiles_x) * TW - 1;
    const int ch = wt % NP, px0 = wt / NP;
    const int in_w = a.w >> a.up_shift;
    const half_t* in = (const half_t*)a.in;
    const unsigned d0 = dst + ch * PLANE;
#pragma unroll
    for (int py = 0; py < TR + 2; ++py) {
        const int yy = ty0 + py;
        const bool row_ok = yy >= 0 && yy < a.h;
        const half_t* row =
            in + (long long)((row_ok ? yy : 0) >> a.up_shift) * in_w * a.in_stride + a.in_off + c0 + ch * 8;
#pragma unroll
        for (int px = px0; px < PW; px += 128 / NP) {
            const int xx = tx0 + px;
            const bool ok = row_ok && xx >= 0 && xx < a.w;
            const unsigned at = ROW_PX ? dst + swizzle_rows<NP>((py * ROW_PX + px) * NP * 16 + ch * 16)
                                       : d0 + (py * PW + px) * 16;
            cp_async16(at, ok ? row + (long long)(xx >> a.up_shift) * a.in_stride : in,
                       ok ? 16 : 0);
        }
    }
}

// Bias and activation slope of the channels a thread's accumulators hold: n = n0 + 8 j + 2 (lane % 4) + e.
__device__ __forceinline__ void wg_load_bias(const ConvArgs& a, int n0, int lane, float (&bias)[BN / 8][2],
                                             float (&slope)[BN / 8][2]) {
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            int n = n0 + j * 8 + (lane & 3) * 2 + e;
            bias[j][e] = ((const float*)a.bias)[n];
            slope[j][e] = ((const float*)a.slope)[n];
        }
}

// A finished tile through conv_common.cu's per-pair epilogue (residuals, or the tail with them): 4-byte stores.
__device__ __forceinline__ void wg_store_pairs(const ConvArgs& a, float (&acc)[TR][NACC], int ty0, int tx0, int n0,
                                               int warp, int lane) {
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

// 16 bytes from global memory (a residual input: written by earlier kernels, so not through the read-only path).
__device__ __forceinline__ void ld_global_v4(unsigned (&d)[4], const half_t* src) {
    asm volatile("ld.global.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "l"(src)
                 : "memory");
}

// The 8 halves of 16 bytes as floats.
__device__ __forceinline__ void unpack_h8(float (&v)[8], const unsigned* u) {
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = h2f((half_t)(u[e / 2] >> (16 * (e % 2))));
}

// v = v * scale + (res ? the 8 halves at res + i : 0), in place.
__device__ __forceinline__ void add_residual8(float (&v)[8], float scale, const half_t* res, long long i) {
    unsigned r[4] = {0, 0, 0, 0};
    if (res) ld_global_v4(r, res + i);
    float rv[8];
    unpack_h8(rv, r);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = v[e] * scale + rv[e];
}

// The NHWC epilogue of a finished tile: bias and activation from registers, f16 into the spent buffer P (every
// warp's MMAs are done with it after the barrier), then whole 16-byte chunks to global (a tile row is one contiguous
// run when the output slice is the whole buffer), each scaled and added to its residuals' 16 bytes on the way.
// (Per-pair stores with 4-byte residual loads cost RRDB's residual convs twice their time without them; they
// remain for residual slices only 2-channel aligned, which the plan allows.) The caller closes with a warpgroup
// barrier before P is written again.
__device__ __forceinline__ void wg_epilogue_nhwc(const ConvArgs& a, float (&acc)[TR][NACC],
                                                 const float (&bias)[BN / 8][2], const float (&slope)[BN / 8][2],
                                                 unsigned char* P, int ty0, int tx0, int n0, int wg, int wt, int warp,
                                                 int lane) {
    if ((a.res0_off | a.res0_stride | a.res1_off | a.res1_stride) % 8 != 0) {
        wg_store_pairs(a, acc, ty0, tx0, n0, warp, lane);
        return;
    }
    wg_barrier(wg);
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
            half_t* dst = (half_t*)a.out + ((long long)y * a.w + x) * a.out_stride + a.out_off + n;
            if (a.nres == 0) {
                st_global_v4(dst, s4);
            } else {
                const long long m = (long long)y * a.w + x;
                float v[8];
                unpack_h8(v, s4);
                add_residual8(v, a.scale0, (const half_t*)a.res0, m * a.res0_stride + a.res0_off + n);
                if (a.nres > 1)
                    add_residual8(v, a.scale1, (const half_t*)a.res1, m * a.res1_stride + a.res1_off + n);
                const unsigned o[4] = {pack_h2(v[0], v[1]), pack_h2(v[2], v[3]), pack_h2(v[4], v[5]),
                                       pack_h2(v[6], v[7])};
                st_global_v4(dst, o);
            }
        }
    }
}
