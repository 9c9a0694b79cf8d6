// The fused head: planar RGB (IO_T, pitched, read through the IoTable) -> first conv (3 -> cout, 3x3, pad 1) +
// bias + activation -> f16 NHWC channel slice. CUDA cores: 27 inputs per pixel, weights (f32) in shared memory.
// One thread per two output pixels, 8 output channels at a time (cout is a multiple of 8).

// Must match `runtime::args::HeadArgs`.
struct HeadArgs {
    u64 io, wt, bias, slope, out;
    int h, w, cout, out_stride, out_off;
};

// Four floats from shared memory (16-byte aligned) into w[at..at + 4].
__device__ __forceinline__ void lds4(const float* p, float (&w)[8], int at) {
    asm("ld.shared.v4.f32 {%0,%1,%2,%3}, [%4];\n"
        : "=f"(w[at]), "=f"(w[at + 1]), "=f"(w[at + 2]), "=f"(w[at + 3])
        : "r"(smem_u32(p)));
}

extern "C" __global__ void __launch_bounds__(128) head_conv(const HeadArgs a) {
    extern __shared__ __align__(16) float hs[];
    float* sw = hs;                  // [27][cout]
    float* sb = hs + 27 * a.cout;    // bias
    float* ss = sb + a.cout;         // slope
    for (int i = threadIdx.x; i < 27 * a.cout; i += blockDim.x) sw[i] = ((const float*)a.wt)[i];
    for (int i = threadIdx.x; i < a.cout; i += blockDim.x) {
        sb[i] = ((const float*)a.bias)[i];
        ss[i] = ((const float*)a.slope)[i];
    }
    __syncthreads();
    // Two pixels per thread share every weight read, and the weights come four channels per 16-byte shared load
    // (ncu on the H200: one scalar shared load per FMA made the head as slow as four body convs).
    const long long p0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * 2;
    const long long npix = (long long)a.h * a.w;
    if (p0 >= npix) return;
    const IoTable* io = (const IoTable*)a.io;
    const io_t* img = (const io_t*)io->in;
    float v[2][27];
#pragma unroll
    for (int q = 0; q < 2; ++q) {
        const long long p = min(p0 + q, npix - 1);
        const int y = (int)(p / a.w), x = (int)(p - (p / a.w) * a.w);
#pragma unroll
        for (int ky = 0; ky < 3; ++ky)
#pragma unroll
            for (int kx = 0; kx < 3; ++kx)
#pragma unroll
                for (int c = 0; c < 3; ++c) {
                    int yy = y + ky - 1, xx = x + kx - 1;
                    bool ok = yy >= 0 && yy < a.h && xx >= 0 && xx < a.w;
                    v[q][(ky * 3 + kx) * 3 + c] =
                        ok ? io_load(img + ((long long)c * a.h + yy) * io->in_pitch + xx) : 0.0f;
                }
    }
    for (int n0 = 0; n0 < a.cout; n0 += 8) {
        float acc[2][8];
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[0][j] = acc[1][j] = sb[n0 + j];
#pragma unroll
        for (int t = 0; t < 27; ++t) {
            float w[8];
            lds4(sw + t * a.cout + n0, w, 0);
            lds4(sw + t * a.cout + n0 + 4, w, 4);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                acc[0][j] += v[0][t] * w[j];
                acc[1][j] += v[1][t] * w[j];
            }
        }
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            if (p0 + q >= npix) break;
            unsigned pk[4];
#pragma unroll
            for (int j = 0; j < 8; j += 2) {
                float a0 = acc[q][j] < 0.0f ? acc[q][j] * ss[n0 + j] : acc[q][j];
                float a1 = acc[q][j + 1] < 0.0f ? acc[q][j + 1] * ss[n0 + j + 1] : acc[q][j + 1];
                pk[j / 2] = pack_h2(a0, a1);
            }
            half_t* out = (half_t*)a.out + (p0 + q) * a.out_stride + a.out_off + n0;
            asm volatile("st.global.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"l"(out), "r"(pk[0]), "r"(pk[1]), "r"(pk[2]),
                         "r"(pk[3])
                         : "memory");
        }
    }
}
