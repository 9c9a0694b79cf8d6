// Colour conversion kernels, compiled at run time with NVRTC (see src/gpu/kernels.rs).
// Each kernel has a plain-Rust reference in src/gpu/reference.rs that the GPU tests compare against.
//
// Conventions (the same as the CPU path):
// - YUV -> RGB: rgb = M * (y - y_off, u - c_off, v - c_off) * scale terms folded into M by the host;
//   4:2:0 chroma is taken from the sample that covers the pixel (nearest: each chroma sample covers 2x2 luma).
// - RGB -> YUV 4:2:0: luma per pixel; chroma from the mean of the 2x2 block's RGB (clamped to the frame at odd
//   edges); values rounded to nearest and clamped to the code range.
// - Samples are 8-bit (u8) or 16-bit little-endian words holding `bits`-bit values in the low bits (yuv420p10)
//   or high bits (P010/P016, shift = 16 - bits).

typedef unsigned char u8;
typedef unsigned short u16;

struct Coeffs {
    float m[9];      // row-major 3x3: rgb = m * (y', cb', cr')
    float y_off;     // code value of black
    float c_off;     // code value of zero chroma
    float y_scale;   // 1 / (white - black)
    float c_scale;   // 1 / (chroma excursion)
};

__device__ __forceinline__ float clamp01(float x) { return fminf(fmaxf(x, 0.0f), 1.0f); }

__device__ __forceinline__ unsigned short f2h(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

__device__ __forceinline__ float h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

template <typename T>
__device__ __forceinline__ float load_sample(const u8* base, size_t pitch, int x, int y, int shift) {
    const T* row = (const T*)(base + (size_t)y * pitch);
    return (float)(row[x] >> shift);
}

// Semi-planar (NV12 / P010 / P016) or planar (yuv420p / yuv420p10) 4:2:0 -> planar RGB in [0,1].
// For semi-planar input, `u` is the interleaved UV plane and `v` is ignored.
template <typename T, typename O>
__device__ void yuv420_to_rgb(const u8* y, size_t y_pitch, const u8* u, size_t u_pitch, const u8* v,
                              size_t v_pitch, int semi_planar, int shift, Coeffs c, O* out, int width,
                              int height) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int yy = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || yy >= height) return;
    float Y = (load_sample<T>(y, y_pitch, x, yy, shift) - c.y_off) * c.y_scale;
    int cx = x >> 1, cy = yy >> 1;
    float U, V;
    if (semi_planar) {
        U = load_sample<T>(u, u_pitch, 2 * cx, cy, shift);
        V = load_sample<T>(u, u_pitch, 2 * cx + 1, cy, shift);
    } else {
        U = load_sample<T>(u, u_pitch, cx, cy, shift);
        V = load_sample<T>(v, v_pitch, cx, cy, shift);
    }
    U = (U - c.c_off) * c.c_scale;
    V = (V - c.c_off) * c.c_scale;
    size_t plane = (size_t)width * height;
    size_t i = (size_t)yy * width + x;
    float r = c.m[0] * Y + c.m[1] * U + c.m[2] * V;
    float g = c.m[3] * Y + c.m[4] * U + c.m[5] * V;
    float b = c.m[6] * Y + c.m[7] * U + c.m[8] * V;
    if (sizeof(O) == 2) {
        ((u16*)out)[i] = f2h(r);
        ((u16*)out)[plane + i] = f2h(g);
        ((u16*)out)[2 * plane + i] = f2h(b);
    } else {
        ((float*)out)[i] = r;
        ((float*)out)[plane + i] = g;
        ((float*)out)[2 * plane + i] = b;
    }
}

extern "C" __global__ void yuv420_u8_to_rgb_f32(const u8* y, size_t yp, const u8* u, size_t up, const u8* v,
                                                size_t vp, int semi, int shift, Coeffs c, float* out, int w, int h) {
    yuv420_to_rgb<u8, float>(y, yp, u, up, v, vp, semi, shift, c, out, w, h);
}
extern "C" __global__ void yuv420_u16_to_rgb_f32(const u8* y, size_t yp, const u8* u, size_t up, const u8* v,
                                                 size_t vp, int semi, int shift, Coeffs c, float* out, int w, int h) {
    yuv420_to_rgb<u16, float>(y, yp, u, up, v, vp, semi, shift, c, out, w, h);
}
extern "C" __global__ void yuv420_u8_to_rgb_f16(const u8* y, size_t yp, const u8* u, size_t up, const u8* v,
                                                size_t vp, int semi, int shift, Coeffs c, u16* out, int w, int h) {
    yuv420_to_rgb<u8, u16>(y, yp, u, up, v, vp, semi, shift, c, out, w, h);
}
extern "C" __global__ void yuv420_u16_to_rgb_f16(const u8* y, size_t yp, const u8* u, size_t up, const u8* v,
                                                 size_t vp, int semi, int shift, Coeffs c, u16* out, int w, int h) {
    yuv420_to_rgb<u16, u16>(y, yp, u, up, v, vp, semi, shift, c, out, w, h);
}

struct InvCoeffs {
    float m[9];      // row-major 3x3: (y', cb', cr') = m * rgb
    float y_off, c_off, y_range, c_range;  // code = off + value * range
    float max_code;
};

template <typename I>
__device__ __forceinline__ float load_rgb(const I* in, size_t i) {
    if (sizeof(I) == 2) return clamp01(h2f(((const u16*)in)[i]));
    return clamp01(((const float*)in)[i]);
}

template <typename T>
__device__ __forceinline__ void store_code(u8* base, size_t pitch, int x, int y, float v, float max_code) {
    T* row = (T*)(base + (size_t)y * pitch);
    row[x] = (T)fminf(fmaxf(rintf(v), 0.0f), max_code);
}

// Planar RGB (clamped to [0,1]) -> planar YUV 4:2:0 (yuv420p or yuv420p10le). One thread per 2x2 block.
template <typename I, typename T>
__device__ void rgb_to_yuv420(const I* in, int width, int height, InvCoeffs c, u8* y, size_t yp, u8* u, size_t up,
                              u8* v, size_t vp) {
    int bx = blockIdx.x * blockDim.x + threadIdx.x;
    int by = blockIdx.y * blockDim.y + threadIdx.y;
    int x0 = bx * 2, y0 = by * 2;
    if (x0 >= width || y0 >= height) return;
    size_t plane = (size_t)width * height;
    float sr = 0.f, sg = 0.f, sb = 0.f;
    int n = 0;
    for (int dy = 0; dy < 2; ++dy) {
        for (int dx = 0; dx < 2; ++dx) {
            int x = x0 + dx, yy = y0 + dy;
            if (x >= width || yy >= height) continue;
            size_t i = (size_t)yy * width + x;
            float r = load_rgb(in, i), g = load_rgb(in, plane + i), b = load_rgb(in, 2 * plane + i);
            float Y = c.m[0] * r + c.m[1] * g + c.m[2] * b;
            store_code<T>(y, yp, x, yy, c.y_off + Y * c.y_range, c.max_code);
            sr += r; sg += g; sb += b; ++n;
        }
    }
    float inv = 1.0f / (float)n;
    sr *= inv; sg *= inv; sb *= inv;
    float U = c.m[3] * sr + c.m[4] * sg + c.m[5] * sb;
    float V = c.m[6] * sr + c.m[7] * sg + c.m[8] * sb;
    store_code<T>(u, up, bx, by, c.c_off + U * c.c_range, c.max_code);
    store_code<T>(v, vp, bx, by, c.c_off + V * c.c_range, c.max_code);
}

extern "C" __global__ void rgb_f32_to_yuv420_u8(const float* in, int w, int h, InvCoeffs c, u8* y, size_t yp, u8* u,
                                                size_t up, u8* v, size_t vp) {
    rgb_to_yuv420<float, u8>(in, w, h, c, y, yp, u, up, v, vp);
}
extern "C" __global__ void rgb_f32_to_yuv420_u16(const float* in, int w, int h, InvCoeffs c, u8* y, size_t yp,
                                                 u8* u, size_t up, u8* v, size_t vp) {
    rgb_to_yuv420<float, u16>(in, w, h, c, y, yp, u, up, v, vp);
}
extern "C" __global__ void rgb_f16_to_yuv420_u8(const u16* in, int w, int h, InvCoeffs c, u8* y, size_t yp, u8* u,
                                                size_t up, u8* v, size_t vp) {
    rgb_to_yuv420<u16, u8>(in, w, h, c, y, yp, u, up, v, vp);
}
extern "C" __global__ void rgb_f16_to_yuv420_u16(const u16* in, int w, int h, InvCoeffs c, u8* y, size_t yp,
                                                 u8* u, size_t up, u8* v, size_t vp) {
    rgb_to_yuv420<u16, u16>(in, w, h, c, y, yp, u, up, v, vp);
}
