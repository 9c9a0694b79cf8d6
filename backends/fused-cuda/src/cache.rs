//! The on-disk cache of compiled kernels: one CUBIN file per (source + options, SM, NVRTC version), under the
//! folder the host passes (`VfModelOptions.cache_dir`) or, when it passes none, `$XDG_CACHE_HOME/videoforge/kernels`
//! (`~/.cache/videoforge/kernels`). Files are written to a temporary name and renamed, so concurrent processes
//! never read half a file.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kernels::Kernel;
use crate::nvrtc::{is_elf, Nvrtc};

/// The default cache folder when the host gives none.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("videoforge").join("kernels"))
}

/// SHA-256 of a kernel's source and options, hex.
pub fn source_hash(source: &str, options: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    for o in options {
        h.update([0u8]);
        h.update(o.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

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

    /// The cache file of a kernel for an SM.
    pub fn file(&self, k: &Kernel, sm: u32, arch_specific: bool) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
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
