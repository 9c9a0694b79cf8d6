// What both tensor-core convs share: their argument struct and the fused epilogue.
// EPI 0 stores f16 into a channel slice of an NHWC buffer; EPI 1 is the tail (pixel shuffle, the upsampled input
// added, clamp, planar store in the IO type or planar f16 for a following resize).

// Must match `runtime::args::ConvArgs` field for field.
struct ConvArgs {
    u64 in, wt, bias, slope, res0, res1, out, io;
    int h, w, up_shift, cin, cout, cout_pad;
    int in_stride, in_off, res0_stride, res0_off, res1_stride, res1_off, out_stride, out_off;
    float scale0, scale1;
    int nres;
    // Tail (EPI 1).
    int shuffle, crd, base, bilinear, base_factor, img_h, img_w, clip, out_f16;
    float clip_lo, clip_hi;
    long long out_pitch;
    // conv_wgmma_k: the input slice's TMA descriptor in global memory (0: copied with cp.async).
    u64 tmap;
};

__device__ __forceinline__ float epilogue(const ConvArgs& a, float v, int m, int n) {
    v += ((const float*)a.bias)[n];
    if (v < 0.0f) v *= ((const float*)a.slope)[n];
    if (a.nres > 0) {
        v *= a.scale0;
        if (a.res0) v += h2f(((const half_t*)a.res0)[(long long)m * a.res0_stride + a.res0_off + n]);
    }
    if (a.nres > 1) {
        v *= a.scale1;
        if (a.res1) v += h2f(((const half_t*)a.res1)[(long long)m * a.res1_stride + a.res1_off + n]);
    }
    return v;
}

// Stores output channels n and n + 1 of pixel m = y * w + x.
__device__ __forceinline__ void store_pair(const ConvArgs& a, float acc0, float acc1, int m, int y, int x, int n) {
#if EPI == 0
    if (n < a.cout) {
        float v0 = epilogue(a, acc0, m, n);
        float v1 = epilogue(a, acc1, m, n + 1);
        *(unsigned*)((half_t*)a.out + (long long)m * a.out_stride + a.out_off + n) = pack_h2(v0, v1);
    }
#else
    int oh = a.h * a.shuffle;
    const IoTable* io = (const IoTable*)a.io;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        int nn = n + e;
        if (nn >= a.cout) continue;
        float v = epilogue(a, e ? acc1 : acc0, m, nn);
        int c, dy, dx;
        unshuffle(nn, a.shuffle, a.crd, c, dy, dx);
        int oy = y * a.shuffle + dy, ox = x * a.shuffle + dx;
        if (a.base) v += base_sample(io, a.bilinear, a.base_factor, c, oy, ox, a.img_h, a.img_w);
        if (a.clip) v = fminf(fmaxf(v, a.clip_lo), a.clip_hi);
        if (a.out_f16) {
            ((half_t*)a.out)[((long long)c * oh + oy) * a.out_pitch + ox] = f2h(v);
        } else {
            io_store((io_t*)io->out + ((long long)c * oh + oy) * io->out_pitch + ox, v);
        }
    }
#endif
}
