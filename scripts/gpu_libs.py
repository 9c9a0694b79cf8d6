#!/usr/bin/env python3
"""The GPU libraries of videoforge: unpack the pinned wheels, order them for loading, check their closure.

    gpu_libs.py unpack WHEEL_DIR DEPS_DIR WHEEL...      onnxruntime-gpu -> DEPS/onnxruntime-gpu/,
                                                         nvidia-* -> DEPS/cuda/lib/, then DEPS/cuda/LIBS
    gpu_libs.py order LIB_DIR                            the load order of the CUDA libraries in LIB_DIR
    gpu_libs.py closure [--cuda] [--only-driver] [--dir D]... [--allow SONAME]... ROOT...
                                                         every library ROOT needs (DT_NEEDED, recursively) must
                                                         resolve in the folders D, else exit 1; glibc, libstdc++
                                                         and libcuda may come from elsewhere (with --only-driver
                                                         only libcuda); --cuda: the libraries that the CUDA
                                                         provider and cuDNN open with dlopen are roots too
    gpu_libs.py needed FILE...                           DT_NEEDED / SONAME / RPATH of each file
    gpu_libs.py glibc FILE...                            the newest GLIBC_ and GLIBCXX_ symbol versions required

ELF files are read here (no ldd): it works on a root filesystem or a bundle that is not the running system's.
Only the Python standard library is used.
"""
import mmap
import os
import re
import shutil
import struct
import sys
import zipfile

# Libraries every Linux system has and nothing ships: glibc and the dynamic loader, the C++ runtime.
SYSTEM = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libresolv.so.2", "libutil.so.1",
    "ld-linux-x86-64.so.2", "libstdc++.so.6", "libgcc_s.so.1",
}
# The driver's own library: the NVIDIA driver (or the container toolkit) brings it at run time.
DRIVER = {"libcuda.so.1"}

# Libraries that are loaded with dlopen, so they are in no one's DT_NEEDED but must be there: ONNX Runtime's CUDA
# provider opens cuDNN and cuFFT itself (their names are not even plain strings in the binary); libcudnn.so.9
# opens its sub-libraries; cuDNN's runtime-compiled engines and ONNX Runtime open NVRTC, which opens its builtins.
CUDNN_PARTS = ["", "_graph", "_ops", "_cnn", "_adv", "_engines_precompiled", "_engines_runtime_compiled", "_heuristic"]
CUFFT_MAJOR = {13: 12, 12: 11}  # the cuFFT major of each CUDA major


def dlopened(cuda_major):
    """Regular expressions for the sonames opened with dlopen under a CUDA major version (one library each)."""
    names = [rf"libcudnn{p}\.so\.9" for p in CUDNN_PARTS]
    names += [rf"libcufft\.so\.{CUFFT_MAJOR[cuda_major]}", rf"libnvrtc\.so\.{cuda_major}",
              rf"libnvrtc-builtins\.so\.{cuda_major}\.\d+"]
    return names


# What we keep from each wheel (everything else, e.g. libnvblas, libcufftw, the .alt NVRTC builds, is not loaded).
KEEP_ORT = re.compile(r"^onnxruntime/capi/(libonnxruntime\.so\.[\d.]+|libonnxruntime_providers_\w+\.so)$")
KEEP_CUDA = re.compile(
    r"^nvidia/[\w]+/lib/(libcudart\.so\.\d+|libcublas(Lt)?\.so\.\d+|libcurand\.so\.\d+|libcufft\.so\.\d+"
    r"|libnvrtc\.so\.\d+|libnvrtc-builtins\.so\.[\d.]+|libcudnn(_\w+)?\.so\.\d+)$"
)
LICENSE = re.compile(r"^([^/]+\.dist-info/(licenses/)?(LICENSE|License)[^/]*|onnxruntime/(LICENSE|ThirdPartyNotices\.txt))$")


class Elf:
    """The dynamic section of a 64-bit little-endian ELF file: needed, soname, rpath, runpath. The file is
    mapped, not read: only the pages of its headers and dynamic strings are touched."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        self.path = path
        (phoff,) = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        loads, dyn = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == 1:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == 2:
                dyn = (p_offset, p_filesz)
        self.needed, self.soname, self.rpath, self.runpath, self.dynstr = [], None, None, None, b""
        if dyn is None:
            return
        entries, strtab, strsz = [], None, 0
        for off in range(dyn[0], dyn[0] + dyn[1], 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == 0:
                break
            if tag == 5:
                strtab = val
            elif tag == 10:
                strsz = val
            entries.append((tag, val))

        def to_off(vaddr):
            for v, o, size in loads:
                if v <= vaddr < v + size:
                    return vaddr - v + o
            raise ValueError(f"{path}: address {vaddr:#x} is in no segment")

        base = to_off(strtab)
        self.dynstr = data[base:base + strsz]

        def s(i):
            return self.dynstr[i:self.dynstr.index(b"\0", i)].decode()

        for tag, val in entries:
            if tag == 1:
                self.needed.append(s(val))
            elif tag == 14:
                self.soname = s(val)
            elif tag == 15:
                self.rpath = s(val)
            elif tag == 29:
                self.runpath = s(val)
        data.close()

    def symbol_versions(self):
        """The GLIBC_x.y / GLIBCXX_x.y.z version names in the dynamic strings: the versions it requires."""
        return set(m.decode() for m in re.findall(rb"GLIBC(?:XX)?_\d+(?:\.\d+)+", self.dynstr))


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def libs_in(d):
    """SONAME (or file name) -> path, for every ELF shared object directly in folder d."""
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if ".so" in name and os.path.isfile(p) and is_elf(p):
            out.setdefault(name, p)
            try:
                so = Elf(p).soname
            except ValueError:
                continue
            if so:
                out.setdefault(so, p)
    return out


def load_order(lib_dir):
    """The CUDA libraries in lib_dir in an order where each one comes after everything it needs that is also
    here (depth first over DT_NEEDED), the dlopen'ed ones included; names are file names in lib_dir."""
    here = libs_in(lib_dir)
    files = sorted({os.path.basename(p) for p in here.values()})
    order, seen = [], set()

    def visit(f, stack):
        if f in seen:
            return
        if f in stack:
            raise SystemExit(f"gpu_libs: dependency cycle through {f}")
        e = Elf(os.path.join(lib_dir, f))
        deps = [os.path.basename(here[n]) for n in e.needed if n in here]
        # libcudnn.so.9 opens its sub-libraries: they come first; libnvrtc opens its builtins.
        if re.fullmatch(r"libcudnn\.so\.\d+", f):
            deps += [g for g in files if g.startswith("libcudnn_")]
        if re.fullmatch(r"libnvrtc\.so\.\d+", f):
            deps += [g for g in files if g.startswith("libnvrtc-builtins")]
        # cuDNN's engines and graph library open cuBLAS(Lt) and NVRTC with dlopen too.
        if f.startswith("libcudnn_"):
            deps += [g for g in files if g.startswith(("libcublasLt", "libcublas.", "libnvrtc.", "libcudart"))]
        for d in sorted(set(deps)):
            visit(d, stack | {f})
        seen.add(f)
        order.append(f)

    # a stable start: the runtime first, then alphabetical
    for f in sorted(files, key=lambda g: (not g.startswith("libcudart"), g)):
        visit(f, frozenset())
    return order


def cmd_unpack(args):
    wheel_dir, deps, wheels = args[0], args[1], args[2:]
    ort_dir = os.path.join(deps, "onnxruntime-gpu")
    cuda_dir = os.path.join(deps, "cuda")
    lib_dir = os.path.join(cuda_dir, "lib")
    for d in (ort_dir, cuda_dir):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(ort_dir)
    os.makedirs(lib_dir)
    os.makedirs(os.path.join(cuda_dir, "licenses"))
    for w in wheels:
        path = os.path.join(wheel_dir, w)
        dist = w.split("-")[0]
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if dist == "onnxruntime_gpu":
                    dst = ort_dir if KEEP_ORT.match(n) else None
                else:
                    dst = lib_dir if KEEP_CUDA.match(n) else None
                if LICENSE.match(n):
                    if dist == "onnxruntime_gpu":
                        lic = os.path.join(ort_dir, os.path.basename(n))
                    else:
                        lic = os.path.join(cuda_dir, "licenses", f"{dist}.{os.path.basename(n)}")
                    if not os.path.exists(lic):
                        with z.open(n) as src, open(lic, "wb") as out:
                            shutil.copyfileobj(src, out)
                if dst is None:
                    continue
                target = os.path.join(dst, os.path.basename(n))
                with z.open(n) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(target, 0o755)
    ort = [f for f in os.listdir(ort_dir) if re.fullmatch(r"libonnxruntime\.so\.\d+\.\d+\.\d+", f)]
    if len(ort) != 1:
        raise SystemExit(f"gpu_libs: expected one libonnxruntime.so.X.Y.Z in {ort_dir}, found {ort}")
    os.symlink(ort[0], os.path.join(ort_dir, "libonnxruntime.so.1"))
    os.symlink(ort[0], os.path.join(ort_dir, "libonnxruntime.so"))
    order = load_order(lib_dir)
    with open(os.path.join(cuda_dir, "LIBS"), "w") as f:
        f.write("# CUDA libraries for ONNX Runtime's CUDA provider, in load order (dlopen RTLD_NOW|RTLD_GLOBAL each,\n")
        f.write("# first to last, before loading ONNX Runtime). Paths are relative to this file's folder.\n")
        for name in order:
            f.write(f"lib/{name}\n")
    print(f"gpu_libs: {len(order)} CUDA libraries in {lib_dir}, load order in {os.path.join(cuda_dir, 'LIBS')}")


def cmd_order(args):
    for name in load_order(args[0]):
        print(name)


def cmd_closure(args):
    dirs, allow, roots, cuda = [], set(SYSTEM | DRIVER), [], False
    it = iter(args)
    for a in it:
        if a == "--dir":
            dirs.append(next(it))
        elif a == "--allow":
            allow.add(next(it))
        elif a == "--only-driver":
            allow = set(DRIVER)  # a root filesystem check: glibc and libstdc++ must resolve too
        elif a == "--cuda":
            cuda = True  # the CUDA provider's closure: what it opens with dlopen must be there too
        else:
            roots.append(a)
    index = {}
    for d in dirs:
        if os.path.isdir(d):
            for so, p in libs_in(d).items():
                index.setdefault(so, p)
    # the dlopen'ed libraries are roots too, for the CUDA major of the cudart that the roots need
    todo = list(roots)
    missing = []
    if cuda:
        majors = {int(n.rsplit(".", 1)[1]) for r in roots for n in Elf(r).needed if n.startswith("libcudart.so.")}
        if len(majors) != 1:
            raise SystemExit(f"gpu_libs: --cuda: the roots need cudart of majors {sorted(majors)}, expected one")
        for pat in dlopened(majors.pop()):
            hits = sorted({p for so, p in index.items() if re.fullmatch(pat, so)})
            if not hits:
                missing.append(f"{pat.replace(chr(92), '')} (opened with dlopen)")
            todo += hits
            for h in hits:
                print(f"  {os.path.basename(h)} => {h} (opened with dlopen)")
    seen, resolved = set(), {}
    while todo:
        path = todo.pop()
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        for n in Elf(path).needed:
            if n in allow:
                continue
            if n in index:
                resolved[n] = index[n]
                todo.append(index[n])
            else:
                missing.append(f"{n} (needed by {os.path.basename(path)})")
    for n in sorted(resolved):
        print(f"  {n} => {resolved[n]}")
    checked = len({os.path.realpath(p) for p in seen})
    if missing:
        for m in sorted(set(missing)):
            print(f"  NOT FOUND: {m}")
        print(f"closure: FAILED: {len(set(missing))} libraries do not resolve in {', '.join(dirs)}")
        sys.exit(1)
    print(f"closure: ok: {checked} libraries (roots, what they need and what is opened with dlopen), all in "
          f"{', '.join(dirs)}; allowed from outside: "
          f"{', '.join(sorted(allow)) or 'nothing'}")


def cmd_needed(args):
    for p in args:
        e = Elf(p)
        print(f"{p}: soname={e.soname} rpath={e.rpath} runpath={e.runpath} needed={' '.join(e.needed)}")


def cmd_glibc(args):
    def key(v):
        return [int(x) for x in v.split("_", 1)[1].split(".")]

    glibc, cxx = set(), set()
    for p in args:
        if is_elf(p):
            for v in Elf(p).symbol_versions():
                (cxx if v.startswith("GLIBCXX_") else glibc).add(v)
    print(max(glibc, key=key) if glibc else "GLIBC_none", max(cxx, key=key) if cxx else "GLIBCXX_none")


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    cmd = {"unpack": cmd_unpack, "order": cmd_order, "closure": cmd_closure, "needed": cmd_needed,
           "glibc": cmd_glibc}.get(sys.argv[1])
    if cmd is None:
        raise SystemExit(f"gpu_libs: unknown command {sys.argv[1]!r} (unpack, order, closure, needed, glibc)")
    cmd(sys.argv[2:])


if __name__ == "__main__":
    main()
