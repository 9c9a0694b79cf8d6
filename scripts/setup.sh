#!/usr/bin/env bash
# One-time set-up on Debian 12 / Ubuntu 22.04+: system packages (FFmpeg 5.1 development libraries, clang for
# bindgen, the ffmpeg CLI used by tests) and the ONNX Runtime shared library from PyPI's `onnxruntime` wheel,
# unpacked into .deps/onnxruntime/. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=${ORT_VERSION:-1.32.0}

pkgs=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
      libswresample-dev libavfilter-dev libavdevice-dev ffmpeg python3 python3-pip ca-certificates git)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: Rust is missing: install it with rustup (Rust 1.85 or newer)" >&2; exit 2; }

ort_dir=.deps/onnxruntime
if ! ls "$ort_dir"/libonnxruntime.so.* >/dev/null 2>&1; then
  echo "setup: fetching onnxruntime $ORT_VERSION (CPU) from PyPI"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 "onnxruntime==$ORT_VERSION" -d "$tmp"
  mkdir -p "$ort_dir"
  python3 - "$tmp" "$ort_dir" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith("onnxruntime/capi/libonnxruntime.so"):
            dst = os.path.join(sys.argv[2], os.path.basename(n))
            with open(dst, "wb") as f:
                f.write(z.read(n))
PY
  rm -rf "$tmp"
  lib=$(ls "$ort_dir"/libonnxruntime.so.1.* | head -n1)
  ln -sf "$(basename "$lib")" "$ort_dir/libonnxruntime.so"
fi
echo "setup: ONNX Runtime at $ort_dir/libonnxruntime.so"

# --- fused-cuda backend: NVRTC (CUDA 13) from PyPI's nvidia-cuda-nvrtc wheel, into .deps/nvrtc/ ---------------
# The fused-cuda plugin compiles its kernels to CUBIN with NVRTC at run time; NVRTC needs no GPU, so CI compiles
# every kernel with it. Pinned to the driver's CUDA major version (13; the GPU machine's driver is CUDA 13.0) so
# the CUBIN it emits loads there. Only libnvrtc.so.13 and libnvrtc-builtins.so.13.* are kept. Skipped when present.
NVRTC_VERSION=${NVRTC_VERSION:-13.0.88}
nvrtc_dir=.deps/nvrtc
if ! ls "$nvrtc_dir"/libnvrtc.so.13 >/dev/null 2>&1; then
  echo "setup: fetching nvidia-cuda-nvrtc $NVRTC_VERSION from PyPI"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_12_x86_64 "nvidia-cuda-nvrtc==$NVRTC_VERSION" -d "$tmp"
  mkdir -p "$nvrtc_dir"
  python3 - "$tmp" "$nvrtc_dir" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "nvidia_cuda_nvrtc-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if base == "libnvrtc.so.13" or base.startswith("libnvrtc-builtins.so.13"):
            with open(os.path.join(sys.argv[2], base), "wb") as f:
                f.write(z.read(n))
PY
  rm -rf "$tmp"
fi
echo "setup: NVRTC at $nvrtc_dir/libnvrtc.so.13"
# --- end fused-cuda block -------------------------------------------------------------------------------------
