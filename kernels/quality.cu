// Quality-gate reductions, compiled at run time with NVRTC (src/gpu/quality.rs). Their plain-Rust twins are
// `rgb_stats` and `luma_stats` in src/pipeline/quality.rs.
//
// Every sum is an integer (a count, or sums of integer codes), added with integer atomics: the result does not
// depend on the order blocks finish in, so a run's report is deterministic.

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// A float is NaN or infinite when its exponent bits are all ones.
__device__ __forceinline__ bool not_finite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

__device__ __forceinline__ u32 warp_sum_u32(u32 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Counts the values of `n` floats (planar RGB, the model's output) that are NaN or infinite into `count`.
extern "C" __global__ void count_non_finite_f32(const float* v, u64 n, u32* count) {
    u32 c = 0;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        c += not_finite(v[i]) ? 1u : 0u;
    c = warp_sum_u32(c);
    if ((threadIdx.x & 31) == 0 && c) atomicAdd(count, c);
}

extern "C" __global__ void count_non_finite_f16(const u16* v, u64 n, u32* count) {
    u32 c = 0;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        c += ((v[i] & 0x7c00u) == 0x7c00u) ? 1u : 0u;
    c = warp_sum_u32(c);
    if ((threadIdx.x & 31) == 0 && c) atomicAdd(count, c);
}

// Sums of the luma codes and their squares over every `step`th sample in each direction of a pitched plane
// (8-bit, or 16-bit words holding the code above `shift` low bits), and how many were summed:
// sums[0] = count, sums[1] = sum, sums[2] = sum of squares.
template <typename T>
__device__ void luma_sums(const u8* y, u64 pitch, int width, int height, int step, int shift, u64* sums) {
    int xs = (width + step - 1) / step, ys = (height + step - 1) / step;
    u64 n = 0, s = 0, ss = 0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < xs * ys; i += gridDim.x * blockDim.x) {
        int x = (i % xs) * step, r = (i / xs) * step;
        u64 code = (u64)(((const T*)(y + (u64)r * pitch))[x] >> shift);
        n += 1;
        s += code;
        ss += code * code;
    }
    n = warp_sum_u64(n);
    s = warp_sum_u64(s);
    ss = warp_sum_u64(ss);
    if ((threadIdx.x & 31) == 0 && n) {
        atomicAdd(&sums[0], n);
        atomicAdd(&sums[1], s);
        atomicAdd(&sums[2], ss);
    }
}

extern "C" __global__ void luma_sums_u8(const u8* y, u64 pitch, int width, int height, int step, int shift, u64* sums) {
    luma_sums<u8>(y, pitch, width, height, step, shift, sums);
}

extern "C" __global__ void luma_sums_u16(const u8* y, u64 pitch, int width, int height, int step, int shift, u64* sums) {
    luma_sums<u16>(y, pitch, width, height, step, shift, sums);
}
