//! NVRTC, loaded at run time with libloading (a small FFI of the eight calls we use), compiling CUDA C to CUBIN
//! for one SM. NVRTC needs no GPU, so CI compiles every kernel with the library from PyPI's nvidia-cuda-nvrtc.
//!
//! Search order: the path the host passes; `<exe>/../lib` and `<exe>`; `.deps/nvrtc/` in the folders above the
//! executable (a checkout: test binaries live under its `target/`); the CUDA toolkit's usual folders; then the
//! system loader (`libnvrtc.so.13`, `libnvrtc.so.12`). The builtins library next to the one found is loaded first,
//! so NVRTC finds it whatever the loader's path.

use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

type Prog = *mut std::ffi::c_void;
type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
type CreateFn = unsafe extern "C" fn(
    *mut Prog,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type CompileFn = unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> c_int;
type SizeFn = unsafe extern "C" fn(Prog, *mut usize) -> c_int;
type GetFn = unsafe extern "C" fn(Prog, *mut c_char) -> c_int;
type DestroyFn = unsafe extern "C" fn(*mut Prog) -> c_int;

/// A loaded NVRTC.
pub struct Nvrtc {
    _builtins: Option<libloading::Library>,
    _lib: libloading::Library,
    version: (i32, i32),
    path: PathBuf,
    create: CreateFn,
    compile: CompileFn,
    log_size: SizeFn,
    log: GetFn,
    cubin_size: SizeFn,
    cubin: GetFn,
    destroy: DestroyFn,
}

// SAFETY: NVRTC's API is thread-safe (each program is used by one thread); the struct holds only function pointers
// and the library handles that keep them valid.
unsafe impl Send for Nvrtc {}
// SAFETY: as above.
unsafe impl Sync for Nvrtc {}

const NAMES: &[&str] = &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

/// Where to look, in order (see the module doc).
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = explicit {
        v.push(p.to_path_buf());
        return v;
    }
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir.join("../lib"));
        dirs.push(exe_dir.clone());
        dirs.extend(exe_dir.ancestors().map(|a| a.join(".deps/nvrtc")));
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs.push(PathBuf::from("/usr/local/cuda/targets/x86_64-linux/lib"));
    for d in dirs {
        for n in NAMES {
            let p = d.join(n);
            if p.is_file() && !v.contains(&p) {
                v.push(p);
            }
        }
    }
    // Bare names: the system loader's own search.
    v.extend(NAMES.iter().map(PathBuf::from));
    v
}

fn builtins_next_to(lib: &Path) -> Option<libloading::Library> {
    let dir = lib.parent().filter(|d| !d.as_os_str().is_empty())?;
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| {
        let n = e.file_name();
        let n = n.to_string_lossy();
        n.starts_with("libnvrtc-builtins.so") && !n.contains(".alt.")
    })?;
    // SAFETY: loading NVRTC's builtins library runs its initialisers, which have no preconditions.
    unsafe { libloading::Library::new(entry.path()) }.ok()
}

impl Nvrtc {
    /// Loads NVRTC from the first candidate that loads (see [`candidates`]).
    pub fn load(explicit: Option<&Path>) -> Result<Nvrtc> {
        let mut tried = Vec::new();
        for p in candidates(explicit) {
            match Self::load_from(&p) {
                Ok(n) => return Ok(n),
                Err(e) => tried.push(format!("{}: {e}", p.display())),
            }
        }
        Err(Error::NvrtcMissing(format!(
            "tried {}; run scripts/setup.sh (PyPI's nvidia-cuda-nvrtc into .deps/nvrtc/) or install the CUDA toolkit",
            tried.join("; ")
        )))
    }

    fn load_from(p: &Path) -> std::result::Result<Nvrtc, libloading::Error> {
        let builtins = builtins_next_to(p);
        // SAFETY: loading NVRTC runs its initialisers, which have no preconditions.
        let lib = unsafe { libloading::Library::new(p) }?;
        // SAFETY: the symbols are NVRTC's documented C API with these signatures.
        let (version_fn, create, compile, log_size, log, cubin_size, cubin, destroy) = unsafe {
            (
                *lib.get::<VersionFn>(b"nvrtcVersion\0")?,
                *lib.get::<CreateFn>(b"nvrtcCreateProgram\0")?,
                *lib.get::<CompileFn>(b"nvrtcCompileProgram\0")?,
                *lib.get::<SizeFn>(b"nvrtcGetProgramLogSize\0")?,
                *lib.get::<GetFn>(b"nvrtcGetProgramLog\0")?,
                *lib.get::<SizeFn>(b"nvrtcGetCUBINSize\0")?,
                *lib.get::<GetFn>(b"nvrtcGetCUBIN\0")?,
                *lib.get::<DestroyFn>(b"nvrtcDestroyProgram\0")?,
            )
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        unsafe { version_fn(&mut major, &mut minor) };
        let path = if p.is_absolute() { p.to_path_buf() } else { PathBuf::from(p) };
        Ok(Nvrtc {
            _builtins: builtins,
            _lib: lib,
            version: (major, minor),
            path,
            create,
            compile,
            log_size,
            log,
            cubin_size,
            cubin,
            destroy,
        })
    }

    /// NVRTC's version (major, minor).
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// Where it was loaded from (a bare name when the system loader found it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Compile options for an SM: CUBIN for `sm_XY` (`sm_90a` when `arch_specific`).
    pub fn options(sm: u32, arch_specific: bool) -> Vec<String> {
        let suffix = if arch_specific { "a" } else { "" };
        vec![
            format!("--gpu-architecture=sm_{sm}{suffix}"),
            "-default-device".to_string(),
            "--std=c++17".to_string(),
            "-lineinfo".to_string(),
        ]
    }

    /// Compiles `source` with `options`; returns the CUBIN. `name` is for messages.
    pub fn compile(&self, name: &str, sm: u32, source: &str, options: &[String]) -> Result<Vec<u8>> {
        self.compile_with_log(name, sm, source, options).map(|(c, _)| c)
    }

    /// [`Nvrtc::compile`], also returning the compiler's log (e.g. `--ptxas-options=-v` register counts).
    pub fn compile_with_log(&self, name: &str, sm: u32, source: &str, options: &[String]) -> Result<(Vec<u8>, String)> {
        let src = CString::new(source).map_err(|_| Error::Nvrtc { call: "source with a NUL byte", code: -1 })?;
        let cname = CString::new(format!("{name}.cu")).map_err(|_| Error::Nvrtc { call: "name", code: -1 })?;
        let opts: Vec<CString> = options.iter().filter_map(|o| CString::new(o.as_str()).ok()).collect();
        let optp: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        let mut prog: Prog = std::ptr::null_mut();
        let check = |call: &'static str, code: c_int| if code == 0 { Ok(()) } else { Err(Error::Nvrtc { call, code }) };
        // SAFETY: valid NUL-terminated strings and an out-pointer; no headers.
        check("nvrtcCreateProgram", unsafe {
            (self.create)(&mut prog, src.as_ptr(), cname.as_ptr(), 0, std::ptr::null(), std::ptr::null())
        })?;
        // SAFETY: `prog` was created above; the option pointers outlive the call.
        let rc = unsafe { (self.compile)(prog, optp.len() as c_int, optp.as_ptr()) };
        let result = if rc != 0 {
            Err(Error::Compile { kernel: name.to_string(), sm, log: self.program_log(prog) })
        } else {
            let mut size = 0usize;
            // SAFETY: valid program and out-pointer.
            check("nvrtcGetCUBINSize", unsafe { (self.cubin_size)(prog, &mut size) }).and_then(|_| {
                let mut buf = vec![0u8; size];
                // SAFETY: `buf` has the size NVRTC reported.
                check("nvrtcGetCUBIN", unsafe { (self.cubin)(prog, buf.as_mut_ptr() as *mut c_char) })?;
                Ok((buf, self.program_log(prog)))
            })
        };
        // SAFETY: `prog` is valid and destroyed once.
        unsafe { (self.destroy)(&mut prog) };
        result
    }

    fn program_log(&self, prog: Prog) -> String {
        let mut size = 0usize;
        // SAFETY: valid program and out-pointer.
        if unsafe { (self.log_size)(prog, &mut size) } != 0 || size == 0 {
            return String::new();
        }
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` has the size NVRTC reported.
        if unsafe { (self.log)(prog, buf.as_mut_ptr() as *mut c_char) } != 0 {
            return String::new();
        }
        String::from_utf8_lossy(&buf).trim_end_matches('\0').trim().to_string()
    }
}

/// Whether bytes are an ELF image (what CUBIN is).
pub fn is_elf(b: &[u8]) -> bool {
    b.starts_with(b"\x7fELF")
}
