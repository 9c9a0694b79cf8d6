//! The on-disk cache of compiled kernels: one CUBIN file per (source + options, SM, NVRTC version), under the
//! folder the host passes (`VfModelOptions.cache_dir`); without one, kernels are compiled on every open (the plugin
//! reads no environment: where caches live is the host's decision). Files are written to a temporary name and
//! renamed, so concurrent processes never read half a file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernels::{source_hash, Kernel};
use crate::nvrtc::{is_elf, Nvrtc};

/// Compiles kernels through the cache.
pub struct KernelCache<'a> {
    nvrtc: &'a Nvrtc,
    dir: Option<PathBuf>,
}

impl<'a> KernelCache<'a> {
    /// A cache in `dir` (None: no disk cache, compile every time).
    pub fn new(nvrtc: &'a Nvrtc, dir: Option<PathBuf>) -> Self {
        KernelCache { nvrtc, dir }
    }

    /// The cache file of a kernel for an SM (`arch_specific`: `sm_XYa`, which a kernel that needs it always gets).
    pub fn file(&self, k: &Kernel, sm: u32, arch_specific: bool) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let arch_specific = arch_specific || k.arch_specific();
        let opts = Nvrtc::options(sm, arch_specific);
        let (maj, min) = self.nvrtc.version();
        let hash = source_hash(&k.source(), &opts);
        let a = if arch_specific { "a" } else { "" };
        Some(dir.join(format!("{}-sm{sm}{a}-nvrtc{maj}.{min}-{}.cubin", k.name(), &hash[..16])))
    }

    /// The CUBIN of a kernel for an SM: from the cache when there, else compiled and stored.
    pub fn cubin(&self, k: &Kernel, sm: u32, arch_specific: bool) -> Result<Vec<u8>> {
        let file = self.file(k, sm, arch_specific);
        if let Some(f) = &file {
            if let Ok(b) = std::fs::read(f) {
                if is_elf(&b) {
                    return Ok(b);
                }
            }
        }
        let arch_specific = arch_specific || k.arch_specific();
        let cubin = self.nvrtc.compile(&k.name(), sm, &k.source(), &Nvrtc::options(sm, arch_specific))?;
        if let Some(f) = &file {
            store(f, &cubin)?;
        }
        Ok(cubin)
    }
}

fn store(f: &Path, bytes: &[u8]) -> Result<()> {
    let err = |source| Error::Cache { path: f.to_path_buf(), source };
    if let Some(d) = f.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let tmp = f.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, f).map_err(err)
}
