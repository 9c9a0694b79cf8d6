// The fused head: planar RGB (IO_T, pitched, read through the IoTable) -> first conv (3 -> cout, 3x3, pad 1) +
// bias + activation -> f16 NHWC channel slice. CUDA cores: 27 inputs per pixel, weights (f32) in shared memory.
// One thread per output pixel, 8 output channels at a time (cout is a multiple of 8).

// Must match `runtime::args::HeadArgs`.
struct HeadArgs {
    u64 io, wt, bias, slope, out;
    int h, w, cout, out_stride, out_off;
};

extern "C" __global__ void __launch_bounds__(128) head_conv(const HeadArgs a) {
    extern __shared__ float hs[];
    float* sw = hs;                  // [27][cout]
    float* sb = hs + 27 * a.cout;    // bias
    float* ss = sb + a.cout;         // slope
    for (int i = threadIdx.x; i < 27 * a.cout; i += blockDim.x) sw[i] = ((const float*)a.wt)[i];
    for (int i = threadIdx.x; i < a.cout; i += blockDim.x) {
        sb[i] = ((const float*)a.bias)[i];
        ss[i] = ((const float*)a.slope)[i];
    }
    __syncthreads();
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= (long long)a.h * a.w) return;
    int y = (int)(p / a.w), x = (int)(p - (p / a.w) * a.w);
    const IoTable* io = (const IoTable*)a.io;
    const io_t* img = (const io_t*)io->in;
    float v[27];
#pragma unroll
    for (int ky = 0; ky < 3; ++ky)
#pragma unroll
        for (int kx = 0; kx < 3; ++kx)
#pragma unroll
            for (int c = 0; c < 3; ++c) {
                int yy = y + ky - 1, xx = x + kx - 1;
                bool ok = yy >= 0 && yy < a.h && xx >= 0 && xx < a.w;
                v[(ky * 3 + kx) * 3 + c] =
                    ok ? io_load(img + ((long long)c * a.h + yy) * io->in_pitch + xx) : 0.0f;
            }
    half_t* out = (half_t*)a.out + p * a.out_stride + a.out_off;
    for (int n0 = 0; n0 < a.cout; n0 += 8) {
        float acc[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j] = sb[n0 + j];
#pragma unroll
        for (int t = 0; t < 27; ++t)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[j] += v[t] * sw[t * a.cout + n0 + j];
        unsigned pk[4];
#pragma unroll
        for (int j = 0; j < 8; j += 2) {
            float a0 = acc[j] < 0.0f ? acc[j] * ss[n0 + j] : acc[j];
            float a1 = acc[j + 1] < 0.0f ? acc[j + 1] * ss[n0 + j + 1] : acc[j + 1];
            pk[j / 2] = pack_h2(a0, a1);
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) ((unsigned*)(out + n0))[j] = pk[j];
    }
}
