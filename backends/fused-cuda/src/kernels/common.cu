// Helpers shared by every fused-cuda kernel. No #include: NVRTC compiles this without the CUDA headers (since
// CUDA 12.2 cuda_fp16.h needs the runtime headers), so half precision is handled as raw 16-bit values with PTX.
typedef unsigned short half_t;
typedef unsigned long long u64;

__device__ __forceinline__ float h2f(half_t h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ half_t f2h(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// Two floats as f16x2: `lo` in the low half (the lower address).
__device__ __forceinline__ unsigned pack_h2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ float lo_h2(unsigned v) { return h2f((half_t)(v & 0xffffu)); }
__device__ __forceinline__ float hi_h2(unsigned v) { return h2f((half_t)(v >> 16)); }

__device__ __forceinline__ unsigned smem_u32(const void* p) {
    unsigned r;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}

// 16-byte global->shared copy; src_bytes 0 writes zeros (the conv's padding and the tile's tail).
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}

// Programmatic dependent launch (sm_90; nothing on older GPUs, whose launches are never dependent): waits until
// the previous kernel on the stream has finished and its writes are visible, then lets the next kernel's CTAs start
// on SMs as this one's leave. Every kernel calls it before it reads or writes activations or the IO table; only
// constant weights, biases and slopes are read before it.
__device__ __forceinline__ void wait_previous_kernel() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// D = A * B + D, m16n8k16, f16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Where the frame's input and output are: read by the head and the tail at run time, so one captured CUDA graph
// serves every frame whatever buffers the host passes (the plugin rewrites this table before each replay).
struct IoTable {
    u64 in;             // planar RGB input, IO_T
    u64 out;            // planar RGB output, IO_T
    long long in_pitch;  // elements between rows
    long long out_pitch; // elements between rows
};

#if IO_F16
typedef half_t io_t;
__device__ __forceinline__ float io_load(const io_t* p) { return h2f(*p); }
__device__ __forceinline__ void io_store(io_t* p, float v) { *p = f2h(v); }
#else
typedef float io_t;
__device__ __forceinline__ float io_load(const io_t* p) { return *p; }
__device__ __forceinline__ void io_store(io_t* p, float v) { *p = v; }
#endif

// Channel `n` of a pixel-shuffled conv output -> colour and sub-pixel.
__device__ __forceinline__ void unshuffle(int n, int r, int crd, int& c, int& dy, int& dx) {
    if (crd) {
        c = n / (r * r);
        int s = n - c * r * r;
        dy = s / r;
        dx = s - dy * r;
    } else {
        int s = n / 3;
        c = n - s * 3;
        dy = s / r;
        dx = s - dy * r;
    }
}

// The input image upsampled by `s` (nearest, or bilinear with half-pixel centres) at output pixel (oy, ox).
__device__ __forceinline__ float base_sample(const IoTable* io, int bilinear, int s, int c, int oy, int ox, int h,
                                             int w) {
    const io_t* img = (const io_t*)io->in + (long long)c * h * io->in_pitch;
    if (!bilinear) return io_load(img + (long long)(oy / s) * io->in_pitch + ox / s);
    float fy = fminf(fmaxf((oy + 0.5f) / s - 0.5f, 0.0f), (float)(h - 1));
    float fx = fminf(fmaxf((ox + 0.5f) / s - 0.5f, 0.0f), (float)(w - 1));
    int y0 = (int)fy, x0 = (int)fx;
    int y1 = min(y0 + 1, h - 1), x1 = min(x0 + 1, w - 1);
    float ty = fy - y0, tx = fx - x0;
    float a = io_load(img + (long long)y0 * io->in_pitch + x0), b = io_load(img + (long long)y0 * io->in_pitch + x1);
    float cc = io_load(img + (long long)y1 * io->in_pitch + x0), d = io_load(img + (long long)y1 * io->in_pitch + x1);
    float top = a * (1.0f - tx) + b * tx, bot = cc * (1.0f - tx) + d * tx;
    return top * (1.0f - ty) + bot * ty;
}
