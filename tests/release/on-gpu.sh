#!/usr/bin/env bash
# Issue 14's checks on the lent GPU machine, which has a driver, CUDA libraries and no FFmpeg. Run from the
# checkout's root after `../shared/device/pack.sh --ort-gpu` (its calls leave /tmp/vf) and, optionally, calls that
# copy the CPU bundle split in parts into /tmp/vf/bundle.part* (`split -b 40M dist/videoforge-*-x86_64.tar.zst`):
#
# 1. The checkout route: the release binaries in target/release/, onnxruntime-gpu in .deps/onnxruntime-gpu/ as
#    scripts/setup.sh leaves it, no ORT_DYLIB_PATH: doctor says where ONNX Runtime came from, the demo job runs on
#    the GPU (auto: fused-cuda), and the ONNX Runtime CUDA provider runs a file with the machine's own cuDNN and
#    cuBLAS. LD_LIBRARY_PATH names only the carried FFmpeg libraries (this machine has none).
# 2. The bundle route: the CPU bundle unpacked in /tmp/b, run from another folder with LD_LIBRARY_PATH and
#    ORT_DYLIB_PATH unset: doctor, then a GPU run (NVDEC, fused-cuda with the machine's NVRTC).
# Everything is logged to $OUT/release-gpu.log.
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out"
log=$out/release-gpu.log
say() { echo "== $*" | tee -a "$log"; }
run() { say "$*"; "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; }
fails=0
check() { if "$@"; then say "PASS"; else say "FAIL (exit $?)"; fails=$((fails + 1)); fi; }

say "1. checkout route"
mkdir -p target/release .deps/onnxruntime-gpu
cp /tmp/vf/app/bin/videoforge /tmp/vf/app/bin/*.so target/release/
cp -a /tmp/vf/ort/. .deps/onnxruntime-gpu/
(
  unset ORT_DYLIB_PATH VIDEOFORGE_PLUGIN_DIR
  export LD_LIBRARY_PATH=/tmp/vf/lib
  check run target/release/videoforge doctor
  check run target/release/videoforge run jobs/demo.toml --force
  check run target/release/videoforge -i jobs/media/sample.mp4 -o /tmp/ort_cuda.mp4 \
    -m models/realesr-animevideov3-x2-fp16.onnx -d 0 --backend onnxruntime
  grep -o '"execution_provider": *"[a-z]*"' /tmp/ort_cuda.mp4.report.json | head -n1 | tee -a "$log"
  cp out/demo/*.report.json "$out/" 2>/dev/null
  exit "$fails"
) || fails=$((fails + $?))

if ls /tmp/vf/bundle.part* >/dev/null 2>&1; then
  say "2. bundle route"
  rm -rf /tmp/b && mkdir -p /tmp/b
  cat $(ls /tmp/vf/bundle.part* | sort -V) | /tmp/vf/app/zstd -d -q -c | tar -C /tmp/b -xf -
  b=$(ls -d /tmp/b/videoforge-*)
  sample=$PWD/jobs/media/sample.mp4
  (
    cd /tmp
    unset LD_LIBRARY_PATH ORT_DYLIB_PATH VIDEOFORGE_PLUGIN_DIR
    check run "$b/bin/videoforge" doctor
    check run "$b/bin/videoforge" -i "$sample" -o /tmp/bundle_gpu.mp4 \
      -m "$b/models/realesr-animevideov3-x2-fp16.onnx" -d 0 --backend fused-cuda
    say "what the bundle's run loaded from outside the bundle (glibc, libstdc++, libgcc_s and the driver expected):"
    LD_DEBUG=libs "$b/bin/videoforge" -i "$sample" -o /tmp/bundle_gpu2.mp4 \
      -m "$b/models/realesr-animevideov3-x2-fp16.onnx" -d 0 --backend fused-cuda 2>&1 |
      grep -oE 'calling init: /[^ ]+' | awk '{print $3}' | grep -v "^$b/" | sort -u | tee -a "$log"
    exit "$fails"
  ) || fails=$((fails + $?))
fi
say "release-gpu: $fails failed"
exit "$fails"
