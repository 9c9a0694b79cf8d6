//! The few CUDA driver calls the runtime makes (cudarc's raw `sys`, loaded at run time), as small RAII types
//! whose errors name the call. Everything here assumes the model's context is current on the calling thread.

use std::ffi::{c_void, CStr};

use cudarc::driver::sys;

use crate::error::{Error, Result};

/// Turns a driver result into our error.
pub fn check(call: &'static str, r: sys::CUresult) -> Result<()> {
    if r == sys::CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    let mut name: *const std::ffi::c_char = std::ptr::null();
    let mut text: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: out-pointers to static strings owned by the driver.
    unsafe {
        sys::cuGetErrorName(r, &mut name);
        sys::cuGetErrorString(r, &mut text);
    }
    let s = |p: *const std::ffi::c_char| {
        // SAFETY: the driver returns null or a static NUL-terminated string.
        if p.is_null() {
            format!("{r:?}")
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    Err(Error::Cuda {
        call,
        message: format!("{} ({})", s(name), s(text)),
        oom: r == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY,
    })
}

/// Whether libcuda can be loaded (cudarc panics on first use otherwise).
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library.
    unsafe { sys::is_culib_present() }
}

/// The driver's CUDA version (e.g. 13000).
pub fn driver_version() -> Result<i32> {
    if !driver_present() {
        return Err(Error::DriverMissing("libcuda.so.1 cannot be loaded (no NVIDIA driver on this machine)".into()));
    }
    let mut v = 0;
    // SAFETY: valid out-pointer; cuDriverGetVersion needs no cuInit.
    check("cuDriverGetVersion", unsafe { sys::cuDriverGetVersion(&mut v) })?;
    Ok(v)
}

/// A device's primary context, retained for as long as this lives.
pub struct Context {
    /// The context.
    pub ctx: sys::CUcontext,
    /// The device.
    pub dev: sys::CUdevice,
    /// Compute capability as `major * 10 + minor`.
    pub sm: u32,
    /// Streaming multiprocessors.
    pub sms: u32,
}

impl Context {
    /// Retains device `index`'s primary context (the one the host's CUDA runtime uses) and makes it current.
    pub fn primary(index: u32) -> Result<Context> {
        driver_version()?;
        let mut dev = 0;
        let mut ctx = std::ptr::null_mut();
        // SAFETY: plain driver calls with valid out-pointers.
        unsafe {
            check("cuInit", sys::cuInit(0))?;
            check("cuDeviceGet", sys::cuDeviceGet(&mut dev, index as i32))?;
            check("cuDevicePrimaryCtxRetain", sys::cuDevicePrimaryCtxRetain(&mut ctx, dev))?;
        }
        // Owned from here: dropped (released) on any error below.
        let mut c = Context { ctx, dev, sm: 0, sms: 0 };
        c.make_current()?;
        let attr = |a| {
            let mut v = 0;
            // SAFETY: valid out-pointer and device.
            check("cuDeviceGetAttribute", unsafe { sys::cuDeviceGetAttribute(&mut v, a, dev) }).map(|_| v as u32)
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        c.sm = major * 10 + minor;
        c.sms = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        Ok(c)
    }

    /// Makes the context current on this thread.
    pub fn make_current(&self) -> Result<()> {
        // SAFETY: the context is retained by `self`.
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.ctx) })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: balances the retain in `primary`.
        unsafe { sys::cuDevicePrimaryCtxRelease_v2(self.dev) };
    }
}

/// Device memory, freed on drop.
pub struct DeviceBuffer {
    /// Device address.
    pub ptr: u64,
    /// Size in bytes.
    pub bytes: usize,
}

impl DeviceBuffer {
    /// Allocates `bytes` (at least 1).
    pub fn new(bytes: usize) -> Result<DeviceBuffer> {
        let mut ptr = 0;
        // SAFETY: valid out-pointer.
        check("cuMemAlloc", unsafe { sys::cuMemAlloc_v2(&mut ptr, bytes.max(1)) })?;
        Ok(DeviceBuffer { ptr, bytes })
    }

    /// Allocates and fills from host data (synchronously).
    pub fn from_slice<T: Copy>(data: &[T]) -> Result<DeviceBuffer> {
        let bytes = std::mem::size_of_val(data);
        let b = DeviceBuffer::new(bytes)?;
        // SAFETY: `data` is `bytes` long, the buffer as large; the null stream makes the copy complete on return
        // for pageable memory.
        check("cuMemcpyHtoD", unsafe { sys::cuMemcpyHtoD_v2(b.ptr, data.as_ptr() as *const c_void, bytes) })?;
        Ok(b)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by cuMemAlloc and freed once.
        unsafe { sys::cuMemFree_v2(self.ptr) };
    }
}

/// A TMA descriptor (`CUtensorMap`, 128 bytes) for boxes of an NHWC f16 activation slice: `channels` channels from
/// `ptr` (16-byte aligned), `w` x `h` pixels `stride` elements apart; a box is `boxd` = [channels, pixels, rows]
/// (its channels 32, 64 or 128 bytes: each box pixel lands as one row of that many bytes, its 16-byte chunks
/// swizzled by the row's shared-memory address bits 7..9, as `conv_wgmma_k.cu` reads them); outside the image,
/// zeros.
pub fn nhwc_tensor_map(
    ptr: u64,
    channels: usize,
    w: usize,
    h: usize,
    stride: usize,
    boxd: [u32; 3],
) -> Result<[u64; 16]> {
    use sys::CUtensorMapSwizzle as Sw;
    let swizzle = match boxd[0] * 2 {
        32 => Sw::CU_TENSOR_MAP_SWIZZLE_32B,
        64 => Sw::CU_TENSOR_MAP_SWIZZLE_64B,
        128 => Sw::CU_TENSOR_MAP_SWIZZLE_128B,
        b => return Err(Error::BadTensor(format!("a TMA box row of {b} bytes (32, 64 or 128 expected)"))),
    };
    let dims = [channels as u64, w as u64, h as u64];
    let strides = [(stride * 2) as u64, (stride * 2 * w) as u64];
    let elem = [1u32; 3];
    let mut map = std::mem::MaybeUninit::<sys::CUtensorMap>::zeroed();
    // SAFETY: every pointer is to a local array of the rank's length (strides: rank - 1); the map is written by
    // the call, which reads no device memory.
    check("cuTensorMapEncodeTiled", unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
            3,
            ptr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxd.as_ptr(),
            elem.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    })?;
    // SAFETY: initialised by the successful call above (and zeroed before it).
    Ok(unsafe { map.assume_init() }.opaque)
}

/// A loaded CUBIN and its one entry point.
pub struct Function {
    module: sys::CUmodule,
    /// The kernel.
    pub func: sys::CUfunction,
}

// SAFETY: module and function handles may be used from any thread with the context current.
unsafe impl Send for Function {}

impl Function {
    /// Loads a CUBIN and finds `entry`; allows `smem` bytes of dynamic shared memory.
    pub fn load(cubin: &[u8], entry: &str, smem: u32) -> Result<Function> {
        let name = std::ffi::CString::new(entry).map_err(|_| Error::BadTensor("kernel name with NUL".into()))?;
        let mut module = std::ptr::null_mut();
        // SAFETY: `cubin` is a complete ELF image that outlives the call.
        check("cuModuleLoadData", unsafe { sys::cuModuleLoadData(&mut module, cubin.as_ptr() as *const c_void) })?;
        // Owned from here: unloaded on any error below.
        let mut f = Function { module, func: std::ptr::null_mut() };
        // SAFETY: valid module and name.
        check("cuModuleGetFunction", unsafe { sys::cuModuleGetFunction(&mut f.func, module, name.as_ptr()) })?;
        if smem > 48 * 1024 {
            let attr = sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            // SAFETY: valid function handle.
            check("cuFuncSetAttribute", unsafe { sys::cuFuncSetAttribute(f.func, attr, smem as i32) })?;
        }
        Ok(f)
    }

    /// How many CTAs of `threads` threads and `smem` bytes of dynamic shared memory one SM holds at once.
    pub fn max_active_per_sm(&self, threads: u32, smem: u32) -> Result<u32> {
        let mut n = 0;
        // SAFETY: valid function handle and out-pointer.
        check("cuOccupancyMaxActiveBlocksPerMultiprocessor", unsafe {
            sys::cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut n, self.func, threads as i32, smem as usize)
        })?;
        Ok(n.max(1) as u32)
    }

    /// Launches with one by-value struct argument. A `dependent` launch (programmatic dependent launch, sm_90)
    /// may start before the previous kernel on the stream has finished: the kernels wait for it
    /// (`griddepcontrol.wait` in `common.cu`) before they touch anything but their weights.
    pub fn launch<A>(
        &self,
        grid: (u32, u32),
        block: u32,
        smem: u32,
        stream: StreamRef,
        args: &A,
        dependent: bool,
    ) -> Result<()> {
        let mut params = [args as *const A as *mut c_void];
        // SAFETY: an all-zero launch attribute is a valid (empty) value of the C union.
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let config = sys::CUlaunchConfig {
            gridDimX: grid.0,
            gridDimY: grid.1,
            gridDimZ: 1,
            blockDimX: block,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: smem,
            hStream: stream.0,
            attrs: &mut attr,
            numAttrs: u32::from(dependent),
        };
        // SAFETY: the kernel takes exactly one parameter whose layout is `A` (the `#[repr(C)]` mirrors in
        // `args.rs`); the driver copies it and reads `config` and its attribute before returning.
        check("cuLaunchKernelEx", unsafe {
            sys::cuLaunchKernelEx(&config, self.func, params.as_mut_ptr(), std::ptr::null_mut())
        })
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        // SAFETY: loaded by cuModuleLoadData and unloaded once.
        unsafe { sys::cuModuleUnload(self.module) };
    }
}

/// A stream handle that is known to be valid (or null: the legacy default stream) for as long as it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRef(sys::CUstream);

impl StreamRef {
    /// Wraps a stream from elsewhere (the host).
    ///
    /// # Safety
    /// `s` is null or a stream of the current context that stays valid while the result is used.
    pub unsafe fn from_raw(s: sys::CUstream) -> StreamRef {
        StreamRef(s)
    }

    /// The legacy default stream.
    pub fn null() -> StreamRef {
        StreamRef(std::ptr::null_mut())
    }

    /// Whether this is the legacy default stream.
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    /// The raw handle.
    pub fn raw(self) -> sys::CUstream {
        self.0
    }
}

// SAFETY: stream handles may be used from any thread with the context current.
unsafe impl Send for StreamRef {}

/// A stream of our own (non-blocking), destroyed on drop.
pub struct Stream(sys::CUstream);

// SAFETY: stream handles may be used from any thread with the context current.
unsafe impl Send for Stream {}

impl Stream {
    /// Creates a non-blocking stream.
    pub fn new() -> Result<Stream> {
        let mut s = std::ptr::null_mut();
        // SAFETY: valid out-pointer; flag 1 = CU_STREAM_NON_BLOCKING.
        check("cuStreamCreate", unsafe { sys::cuStreamCreate(&mut s, 1) })?;
        Ok(Stream(s))
    }

    /// A handle to it.
    pub fn handle(&self) -> StreamRef {
        StreamRef(self.0)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created by cuStreamCreate and destroyed once.
        unsafe { sys::cuStreamDestroy_v2(self.0) };
    }
}

/// Waits for a stream.
pub fn sync(stream: StreamRef) -> Result<()> {
    // SAFETY: `StreamRef` guarantees a valid stream (or null, the legacy default stream).
    check("cuStreamSynchronize", unsafe { sys::cuStreamSynchronize(stream.0) })
}

/// An instantiated CUDA graph.
pub struct Graph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

// SAFETY: graph handles may be used from any thread with the context current.
unsafe impl Send for Graph {}

impl Graph {
    /// Captures whatever `record` launches on `stream` (our own stream) into a graph.
    pub fn capture(stream: StreamRef, record: impl FnOnce() -> Result<()>) -> Result<Graph> {
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        // SAFETY: a valid, non-default stream.
        check("cuStreamBeginCapture", unsafe { sys::cuStreamBeginCapture_v2(stream.0, mode) })?;
        let recorded = record();
        let mut graph = std::ptr::null_mut();
        // SAFETY: ends the capture begun above, whatever `record` did.
        let ended = check("cuStreamEndCapture", unsafe { sys::cuStreamEndCapture(stream.0, &mut graph) });
        recorded?;
        ended?;
        let mut exec = std::ptr::null_mut();
        // SAFETY: a complete graph from the capture.
        if let Err(e) = check("cuGraphInstantiate", unsafe { sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0) }) {
            // SAFETY: the graph was created by the capture and is not used again.
            unsafe { sys::cuGraphDestroy(graph) };
            return Err(e);
        }
        Ok(Graph { graph, exec })
    }

    /// Replays the graph on `stream`.
    pub fn launch(&self, stream: StreamRef) -> Result<()> {
        // SAFETY: an instantiated graph and a valid stream.
        check("cuGraphLaunch", unsafe { sys::cuGraphLaunch(self.exec, stream.0) })
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: created in `capture` and destroyed once.
        unsafe {
            sys::cuGraphExecDestroy(self.exec);
            sys::cuGraphDestroy(self.graph);
        }
    }
}

/// Writes a 64-bit value into device memory in stream order (no host synchronisation).
pub fn write_u64(stream: StreamRef, addr: u64, value: u64) -> Result<()> {
    // SAFETY: `addr` is 8-byte aligned device memory the caller owns.
    check("cuStreamWriteValue64", unsafe { sys::cuStreamWriteValue64_v2(stream.0, addr, value, 0) })
}

/// Copies host → device in stream order.
pub fn upload(stream: StreamRef, dst: u64, src: &[u8]) -> Result<()> {
    // SAFETY: `src` outlives the call; for pageable memory the driver stages it before returning.
    check("cuMemcpyHtoDAsync", unsafe {
        sys::cuMemcpyHtoDAsync_v2(dst, src.as_ptr() as *const c_void, src.len(), stream.0)
    })
}

/// Copies device → host and waits for the stream.
pub fn download(stream: StreamRef, dst: &mut [u8], src: u64) -> Result<()> {
    // SAFETY: `dst` is writable for its length and outlives the synchronisation below.
    check("cuMemcpyDtoHAsync", unsafe {
        sys::cuMemcpyDtoHAsync_v2(dst.as_mut_ptr() as *mut c_void, src, dst.len(), stream.0)
    })?;
    sync(stream)
}

/// Times `f`'s work on `stream` with events, in milliseconds.
pub fn time_ms(stream: StreamRef, f: impl FnOnce() -> Result<()>) -> Result<f32> {
    let mut a = std::ptr::null_mut();
    let mut b = std::ptr::null_mut();
    // SAFETY: valid out-pointers; the events are destroyed below.
    unsafe {
        check("cuEventCreate", sys::cuEventCreate(&mut a, 0))?;
        check("cuEventCreate", sys::cuEventCreate(&mut b, 0))?;
    }
    let r = (|| {
        // SAFETY: valid events and stream.
        check("cuEventRecord", unsafe { sys::cuEventRecord(a, stream.0) })?;
        f()?;
        // SAFETY: as above.
        check("cuEventRecord", unsafe { sys::cuEventRecord(b, stream.0) })?;
        // SAFETY: as above.
        check("cuEventSynchronize", unsafe { sys::cuEventSynchronize(b) })?;
        let mut ms = 0.0;
        // SAFETY: both events completed.
        check("cuEventElapsedTime", unsafe { sys::cuEventElapsedTime_v2(&mut ms, a, b) })?;
        Ok(ms)
    })();
    // SAFETY: created above, destroyed once.
    unsafe {
        sys::cuEventDestroy_v2(a);
        sys::cuEventDestroy_v2(b);
    }
    r
}
