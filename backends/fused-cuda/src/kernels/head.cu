// The fused head: planar RGB (IO_T, pitched, read through the IoTable) -> first conv (3 -> cout, 3x3, pad 1) +
// bias + activation -> f16 NHWC channel slice. Two kernels (HEAD_MMA picks one), the same arguments and weights
// (f32 [27][cout], k = (ky * 3 + kx) * 3 + c):
// - head_conv, CUDA cores: 27 inputs per pixel, weights in shared memory; one thread per two output pixels, 8
//   output channels at a time (cout is a multiple of 8).
// - head_mma, tensor cores (mma.sync m16n8k16, sm_80+; cout up to 64): K = the 27 inputs padded to 32, a warp per
//   16 pixels of a row, the A fragments loaded straight from the image (f16), the weights held as B fragments.

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

#if !HEAD_MMA
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
    wait_previous_kernel();
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
#else
extern "C" __global__ void __launch_bounds__(128) head_mma(const HeadArgs a) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int nb = a.cout / 8;
    // B fragments of the 8 output-channel blocks j and the two K steps s: column g, rows 16 s + 8 r + 2 t and + 1
    // (zero past the 27 inputs); bias and slope of this thread's accumulator columns 8 j + 2 t and + 1.
    const float* wt = (const float*)a.wt;
    unsigned bw[8][2][2];
    float bias[8][2], slope[8][2];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int n = min(8 * j + g, a.cout - 1);
#pragma unroll
        for (int s = 0; s < 2; ++s)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int k = 16 * s + 8 * r + 2 * t;
                bw[j][s][r] = pack_h2(k < 27 ? wt[k * a.cout + n] : 0.0f, k + 1 < 27 ? wt[(k + 1) * a.cout + n] : 0.0f);
            }
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int c = min(8 * j + 2 * t + e, a.cout - 1);
            bias[j][e] = ((const float*)a.bias)[c];
            slope[j][e] = ((const float*)a.slope)[c];
        }
    }
    wait_previous_kernel();
    // The image offsets of this thread's eight K indices i = 4 s + 2 r + e (k = 16 s + 8 r + 2 t + e): colour plane
    // and tap; a padding index gets a row offset that is never inside the image.
    const IoTable* io = (const IoTable*)a.io;
    const io_t* img = (const io_t*)io->in;
    const long long pitch = io->in_pitch;
    int kdy[8], kdx[8];
    long long koff[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int k = 16 * (i >> 2) + 8 * ((i >> 1) & 1) + 2 * t + (i & 1);
        const int tap = k / 3, c = k - tap * 3;
        kdy[i] = k < 27 ? tap / 3 - 1 : -(1 << 20);
        kdx[i] = k < 27 ? tap % 3 - 1 : 0;
        koff[i] = k < 27 ? ((long long)c * a.h + kdy[i]) * pitch + kdx[i] : 0;
    }
    const int tiles_x = (a.w + 15) / 16, ntiles = a.h * tiles_x;
    const int nwarps = (gridDim.x * blockDim.x) >> 5;
    for (int tile = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; tile < ntiles; tile += nwarps) {
        const int y = tile / tiles_x, x0 = (tile - y * tiles_x) * 16;
        // A fragments: register r * 2 + q of K step s holds pixel x0 + g + 8 q, inputs k and k + 1.
        unsigned af[2][4];
#pragma unroll
        for (int s = 0; s < 2; ++s)
#pragma unroll
            for (int r = 0; r < 2; ++r)
#pragma unroll
                for (int q = 0; q < 2; ++q) {
                    const int x = x0 + g + 8 * q;
                    float v[2];
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int i = 4 * s + 2 * r + e;
                        const int yy = y + kdy[i], xx = x + kdx[i];
                        const bool ok = yy >= 0 && yy < a.h && xx >= 0 && xx < a.w;
                        v[e] = ok ? io_load(img + koff[i] + (long long)y * pitch + x) : 0.0f;
                    }
                    af[s][r * 2 + q] = pack_h2(v[0], v[1]);
                }
        float acc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
            if (j < nb) {
                mma_16816(acc[j], af[0], bw[j][0][0], bw[j][0][1]);
                mma_16816(acc[j], af[1], bw[j][1][0], bw[j][1][1]);
            }
        }
#pragma unroll
        for (int q = 0; q < 2; ++q) {
            const int x = x0 + g + 8 * q;
            if (x >= a.w) continue;
            half_t* out = (half_t*)a.out + ((long long)y * a.w + x) * a.out_stride + a.out_off + 2 * t;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                if (j >= nb) break;
                float v0 = acc[j][2 * q] + bias[j][0], v1 = acc[j][2 * q + 1] + bias[j][1];
                if (v0 < 0.0f) v0 *= slope[j][0];
                if (v1 < 0.0f) v1 *= slope[j][1];
                *(unsigned*)(out + 8 * j) = pack_h2(v0, v1);
            }
        }
    }
}
#endif
