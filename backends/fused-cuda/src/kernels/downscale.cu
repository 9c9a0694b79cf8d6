// The final bicubic resize (ONNX Resize cubic, half-pixel centres, coefficient a, no antialias, taps clamped to
// the edge) of the tail's planar f16 intermediate into the planar IO_T output, with an optional clamp after.
// One thread per output pixel, all three colours.

// Must match `runtime::args::DownArgs`.
struct DownArgs {
    u64 src, io;
    int src_h, src_w, dst_h, dst_w, clip;
    float scale, coeff_a, clip_lo, clip_hi;
    long long src_pitch;
};

__device__ __forceinline__ void cubic_w(float a, float t, float (&w)[4]) {
    float x0 = t + 1.0f, x1 = t, x2 = 1.0f - t, x3 = 2.0f - t;
    w[0] = ((a * x0 - 5.0f * a) * x0 + 8.0f * a) * x0 - 4.0f * a;
    w[1] = ((a + 2.0f) * x1 - (a + 3.0f)) * x1 * x1 + 1.0f;
    w[2] = ((a + 2.0f) * x2 - (a + 3.0f)) * x2 * x2 + 1.0f;
    w[3] = ((a * x3 - 5.0f * a) * x3 + 8.0f * a) * x3 - 4.0f * a;
}

extern "C" __global__ void __launch_bounds__(256) downscale_cubic(const DownArgs a) {
    wait_previous_kernel();
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= (long long)a.dst_h * a.dst_w) return;
    int oy = (int)(p / a.dst_w), ox = (int)(p - (p / a.dst_w) * a.dst_w);
    float fy = (oy + 0.5f) / a.scale - 0.5f, fx = (ox + 0.5f) / a.scale - 0.5f;
    float iy = floorf(fy), ix = floorf(fx);
    float wy[4], wx[4];
    cubic_w(a.coeff_a, fy - iy, wy);
    cubic_w(a.coeff_a, fx - ix, wx);
    int ty[4], tx[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        ty[i] = min(max((int)iy + i - 1, 0), a.src_h - 1);
        tx[i] = min(max((int)ix + i - 1, 0), a.src_w - 1);
    }
    const IoTable* io = (const IoTable*)a.io;
    const half_t* src = (const half_t*)a.src;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        const half_t* plane = src + (long long)c * a.src_h * a.src_pitch;
        float v = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            float r = 0.0f;
#pragma unroll
            for (int i = 0; i < 4; ++i) r += wx[i] * h2f(plane[(long long)ty[j] * a.src_pitch + tx[i]]);
            v += wy[j] * r;
        }
        if (a.clip) v = fminf(fmaxf(v, a.clip_lo), a.clip_hi);
        io_store((io_t*)io->out + ((long long)c * a.dst_h + oy) * io->out_pitch + ox, v);
    }
}
