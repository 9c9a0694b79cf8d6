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
# (the licence files travel with the library into the release bundle: scripts/bundle.sh)
if ! ls "$ort_dir"/libonnxruntime.so.* >/dev/null 2>&1 || [[ ! -f $ort_dir/LICENSE ]]; then
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
        if n.startswith("onnxruntime/capi/libonnxruntime.so") or n in ("onnxruntime/LICENSE", "onnxruntime/ThirdPartyNotices.txt"):
            dst = os.path.join(sys.argv[2], os.path.basename(n))
            with open(dst, "wb") as f:
                f.write(z.read(n))
PY
  rm -rf "$tmp"
  lib=$(ls "$ort_dir"/libonnxruntime.so.1.* | head -n1)
  ln -sf "$(basename "$lib")" "$ort_dir/libonnxruntime.so"
fi
echo "setup: ONNX Runtime at $ort_dir/libonnxruntime.so"

# --- GPU set-up (issue 14) ----------------------------------------------------------------------------------
# Where an NVIDIA driver is present (libcuda.so.1 loads), or with VIDEOFORGE_SETUP_GPU=1 on a machine without one
# (CI checks the fetch and the closure that way): ONNX Runtime's CUDA build into .deps/onnxruntime-gpu/ and the
# CUDA libraries its CUDA provider loads (cudart, cuBLAS/cuBLASLt, cuRAND, cuFFT, cuDNN 9, NVRTC) into
# .deps/cuda/lib/, with their load order in .deps/cuda/LIBS. The wheels (about 1.3 GB) are deleted once unpacked
# and checked (.deps/cuda/PINS records what was unpacked, so a rerun fetches nothing); VIDEOFORGE_KEEP_WHEELS=1
# keeps them in .deps/wheels/. The driver decides the build: 580 and newer (CUDA 13) gets the CUDA 13 set, an older
# one the CUDA 12 set; VIDEOFORGE_CUDA_MAJOR=12|13 overrides. VIDEOFORGE_SETUP_GPU=0 skips all of it.
# Each set is pinned to the CUDA release its onnxruntime-gpu was built with (the wheel's build_and_package_info
# says 13.0 for 1.31.1 and 12.8 for 1.26.0, the last CUDA 12 build on PyPI); NVRTC follows the driver's major.
gpu_pins_13=(onnxruntime-gpu==1.31.1 nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3 nvidia-cufft==12.0.0.61
             nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88 nvidia-cudnn-cu13==9.17.1.4)
gpu_pins_12=(onnxruntime-gpu==1.26.0 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cublas-cu12==12.8.4.1
             nvidia-cufft-cu12==11.3.3.83 nvidia-curand-cu12==10.3.9.90 nvidia-cuda-nvrtc-cu12==12.8.93
             nvidia-cudnn-cu12==9.10.2.21)

driver_present() { python3 -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' >/dev/null 2>&1; }
driver_version() {  # e.g. 580.159.04, empty where unknown
  if [[ -r /proc/driver/nvidia/version ]]; then
    # "NVRM version: NVIDIA UNIX [Open Kernel Module for ]x86_64[ Kernel Module]  580.159.04  ..."
    grep -m1 -oE '[[:space:]][0-9]{3,}\.[0-9]+(\.[0-9]+)?[[:space:]]' /proc/driver/nvidia/version | tr -d '[:space:]' || true
  elif command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1
  fi
}

gpu=${VIDEOFORGE_SETUP_GPU:-}
if [[ -z $gpu ]]; then if driver_present; then gpu=1; else gpu=0; fi; fi
if [[ $gpu == 1 ]]; then
  drv=$(driver_version)
  major=${VIDEOFORGE_CUDA_MAJOR:-}
  if [[ -z $major && -n $drv ]]; then
    if ((${drv%%.*} < 580)); then major=12; else major=13; fi
    if ((${drv%%.*} < 525)); then echo "setup: driver $drv is older than 525, the oldest that runs CUDA 12: the GPU will not be used" >&2; fi
  elif [[ -z $major ]]; then  # no version file, no nvidia-smi (a container): ask the driver which CUDA it runs
    major=$(python3 -c 'import ctypes; v = ctypes.c_int(0); ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(v)); print(12 if 0 < v.value < 13000 else 13)' 2>/dev/null || echo 13)
  fi
  case $major in
    13) pins=("${gpu_pins_13[@]}") ;;
    12) pins=("${gpu_pins_12[@]}") ;;
    *) echo "setup: VIDEOFORGE_CUDA_MAJOR=$major: only 12 and 13 are known" >&2; exit 2 ;;
  esac
  stamp=".deps/cuda/PINS"
  if [[ ! -f $stamp || $(cat "$stamp") != "${pins[*]}" || ! -f .deps/cuda/LIBS ]]; then
    echo "setup: GPU set-up for CUDA $major (driver ${drv:-not found}): ${pins[*]}"
    mkdir -p .deps/wheels
    wheels=() fetch=()
    for p in "${pins[@]}"; do
      name=${p%%==*} ver=${p##*==}
      w=$(ls .deps/wheels/"${name//-/_}-$ver-"*.whl 2>/dev/null | head -n1 || true)
      if [[ -z $w ]]; then fetch+=("$p"); else wheels+=("$(basename "$w")"); fi
    done
    if ((${#fetch[@]})); then
      echo "setup: fetching ${#fetch[@]} wheels from PyPI into .deps/wheels/ (about 1.3 GB the first time)"
      t0=$SECONDS
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
        "${fetch[@]}" -d .deps/wheels
      echo "setup: fetched in $((SECONDS - t0)) s"
      for p in "${fetch[@]}"; do
        name=${p%%==*} ver=${p##*==}
        wheels+=("$(basename "$(ls .deps/wheels/"${name//-/_}-$ver-"*.whl | head -n1)")")
      done
    fi
    python3 scripts/gpu_libs.py unpack .deps/wheels .deps "${wheels[@]}"
    # every library the CUDA provider needs must be here (libcuda comes with the driver): fail now, not at run
    # time. One exception besides glibc and libstdc++: cuDNN needs zlib, which every Debian/Ubuntu system has
    # (dpkg needs it) and the bundle ships.
    if ! closure=$(python3 scripts/gpu_libs.py closure --cuda --allow libz.so.1 --dir .deps/onnxruntime-gpu --dir .deps/cuda/lib \
                   .deps/onnxruntime-gpu/libonnxruntime_providers_cuda.so); then
      echo "$closure" >&2; exit 1
    fi
    echo "setup: ${closure##*$'\n'}"
    printf '%s' "${pins[*]}" > "$stamp"
  fi
  [[ ${VIDEOFORGE_KEEP_WHEELS:-0} == 1 ]] || rm -rf .deps/wheels
  echo "setup: ONNX Runtime (CUDA $major) at .deps/onnxruntime-gpu/libonnxruntime.so, CUDA libraries in .deps/cuda/lib/ (load order: .deps/cuda/LIBS)"
elif [[ -z ${VIDEOFORGE_SETUP_GPU:-} ]]; then
  echo "setup: no NVIDIA driver (libcuda.so.1 does not load): CPU only; VIDEOFORGE_SETUP_GPU=1 fetches the GPU libraries anyway"
fi
# --- end of GPU set-up ---------------------------------------------------------------------------------------

# --- fused-cuda backend: NVRTC (CUDA 13) from PyPI's nvidia-cuda-nvrtc wheel, into .deps/nvrtc/ ---------------
# The fused-cuda plugin compiles its kernels to CUBIN with NVRTC at run time; NVRTC needs no GPU, so CI compiles
# every kernel with it. Pinned to the driver's CUDA major version (13; the GPU machine's driver is CUDA 13.0) so
# the CUBIN it emits loads there. Only libnvrtc.so.13 and libnvrtc-builtins.so.13.* are kept. Skipped when present.
NVRTC_VERSION=${NVRTC_VERSION:-13.0.88}
nvrtc_dir=.deps/nvrtc
if ! ls "$nvrtc_dir"/libnvrtc.so.13 >/dev/null 2>&1 && [[ -e .deps/cuda/lib/libnvrtc.so.13 ]]; then
  # the GPU set-up above already unpacked the same wheel: one copy, linked
  mkdir -p "$nvrtc_dir"
  for f in .deps/cuda/lib/libnvrtc.so.13 .deps/cuda/lib/libnvrtc-builtins.so.13.*; do ln -sf "../cuda/lib/${f##*/}" "$nvrtc_dir/"; done
fi
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
