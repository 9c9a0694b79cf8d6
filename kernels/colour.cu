// Colour conversion kernels, compiled at run time with NVRTC (src/gpu/kernels.rs). Their plain-Rust twins are
// `yuv_to_rgb_planar` and `rgb_planar_to_yuv` in src/video/color.rs, with the same arithmetic step by step;
// tests/gpu.rs compares the two.
//
// Conventions (see src/video/color.rs): chroma is box-sited; a chroma sample covers a block of (1 << sx) x (1 << sy)
// luma samples (4:2:0: sx = sy = 1; 4:2:2: sx = 1, sy = 0; 4:4:4: sx = sy = 0). Upsampling replicates each chroma
// sample over its block, downsampling averages Cb/Cr over the block and rounds once (round half up); RGB is clamped
// to [0, 1] in both directions. Samples are 8-bit, or 16-bit words whose value sits in the low bits after a right
// shift by `shift` (0 for yuv4xxp10le/12le, 6 for P010, 0 for P016 with 16 bits).

typedef unsigned char u8;
typedef unsigned short u16;

struct Colour {
    float kr, kb, kg;        // luma coefficients
    float cr_r, cb_b;        // 2 (1 - Kr), 2 (1 - Kb)
    float y_off, y_scale;    // y' = (Y - y_off) / y_scale
    float c_off, c_scale;    // c' = (C - c_off) / c_scale
    float max;               // largest code
};

__device__ __forceinline__ float clamp01(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }

__device__ __forceinline__ u16 f2h(float x) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

template <typename T>
__device__ __forceinline__ float sample(const u8* base, size_t pitch, int x, int y, int shift) {
    const T* row = (const T*)(base + (size_t)y * pitch);
    return (float)(row[x] >> shift);
}

__device__ __forceinline__ float quantise(float v, float max) { return fminf(fmaxf(floorf(v + 0.5f), 0.0f), max); }

// Planar 4:2:0/4:2:2/4:4:4 (yuv4xxp, yuv4xxp10le, yuv4xxp12le) or semi-planar 4:2:0 (NV12/P010/P016: `u` is the
// interleaved CbCr plane, `v` unused) -> planar RGB [R plane, G plane, B plane] of f32 or f16.
template <typename T, bool HALF>
__device__ void yuv_to_rgb(const u8* y, size_t yp, const u8* u, size_t up, const u8* v, size_t vp, int semi,
                           int shift, int sx, int sy, Colour c, void* out, int w, int h) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int yy = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || yy >= h) return;
    float yn = (sample<T>(y, yp, x, yy, shift) - c.y_off) / c.y_scale;
    int cx = x >> sx, cy = yy >> sy;
    float U = semi ? sample<T>(u, up, 2 * cx, cy, shift) : sample<T>(u, up, cx, cy, shift);
    float V = semi ? sample<T>(u, up, 2 * cx + 1, cy, shift) : sample<T>(v, vp, cx, cy, shift);
    float cb = (U - c.c_off) / c.c_scale;
    float cr = (V - c.c_off) / c.c_scale;
    float rr = yn + c.cr_r * cr;
    float bb = yn + c.cb_b * cb;
    float gg = (yn - c.kr * rr - c.kb * bb) / c.kg;
    size_t n = (size_t)w * h, i = (size_t)yy * w + x;
    if (HALF) {
        u16* o = (u16*)out;
        o[i] = f2h(clamp01(rr));
        o[n + i] = f2h(clamp01(gg));
        o[2 * n + i] = f2h(clamp01(bb));
    } else {
        float* o = (float*)out;
        o[i] = clamp01(rr);
        o[n + i] = clamp01(gg);
        o[2 * n + i] = clamp01(bb);
    }
}

#define YUV2RGB(name, T, HALF)                                                                                 \
    extern "C" __global__ void name(const u8* y, size_t yp, const u8* u, size_t up, const u8* v, size_t vp,   \
                                    int semi, int shift, int sx, int sy, Colour c, void* out, int w, int h) { \
        yuv_to_rgb<T, HALF>(y, yp, u, up, v, vp, semi, shift, sx, sy, c, out, w, h);                           \
    }
YUV2RGB(yuv_u8_to_rgb_f32, u8, false)
YUV2RGB(yuv_u16_to_rgb_f32, u16, false)
YUV2RGB(yuv_u8_to_rgb_f16, u8, true)
YUV2RGB(yuv_u16_to_rgb_f16, u16, true)

template <bool HALF>
__device__ __forceinline__ float rgb_at(const void* in, size_t i) {
    if (HALF) return clamp01(h2f(((const u16*)in)[i]));
    return clamp01(((const float*)in)[i]);
}

template <typename T>
__device__ __forceinline__ void store(u8* base, size_t pitch, int x, int y, float code) {
    ((T*)(base + (size_t)y * pitch))[x] = (T)code;
}

// Planar RGB (clamped) -> planar Y'CbCr with chroma blocks of (1 << sx) x (1 << sy). One thread per chroma sample.
template <typename T, bool HALF>
__device__ void rgb_to_yuv(const void* in, int w, int h, int sx, int sy, Colour c, u8* y, size_t yp, u8* u,
                           size_t up, u8* v, size_t vp) {
    int bx = blockIdx.x * blockDim.x + threadIdx.x;
    int by = blockIdx.y * blockDim.y + threadIdx.y;
    int x0 = bx << sx, y0 = by << sy;
    if (x0 >= w || y0 >= h) return;
    size_t n = (size_t)w * h;
    float sb = 0.f, sr = 0.f, cnt = 0.f;
    for (int yy = y0; yy < min(y0 + (1 << sy), h); ++yy) {
        for (int x = x0; x < min(x0 + (1 << sx), w); ++x) {
            size_t i = (size_t)yy * w + x;
            float r = rgb_at<HALF>(in, i), g = rgb_at<HALF>(in, n + i), b = rgb_at<HALF>(in, 2 * n + i);
            float yn = c.kr * r + c.kg * g + c.kb * b;
            store<T>(y, yp, x, yy, quantise(yn * c.y_scale + c.y_off, c.max));
            sb += (b - yn) / c.cb_b;
            sr += (r - yn) / c.cr_r;
            cnt += 1.0f;
        }
    }
    store<T>(u, up, bx, by, quantise(sb / cnt * c.c_scale + c.c_off, c.max));
    store<T>(v, vp, bx, by, quantise(sr / cnt * c.c_scale + c.c_off, c.max));
}

#define RGB2YUV(name, T, HALF)                                                                                 \
    extern "C" __global__ void name(const void* in, int w, int h, int sx, int sy, Colour c, u8* y, size_t yp,  \
                                    u8* u, size_t up, u8* v, size_t vp) {                                     \
        rgb_to_yuv<T, HALF>(in, w, h, sx, sy, c, y, yp, u, up, v, vp);                                        \
    }
RGB2YUV(rgb_f32_to_yuv_u8, u8, false)
RGB2YUV(rgb_f32_to_yuv_u16, u16, false)
RGB2YUV(rgb_f16_to_yuv_u8, u8, true)
RGB2YUV(rgb_f16_to_yuv_u16, u16, true)
