#!/usr/bin/env bash
# Runs on the lent GPU machine after `.devpack/app/unpack.sh` (see bench/README.md): the GPU tests, the inference
# benchmarks, the PyTorch reference, and end-to-end runs, each result under $OUT. One call, so the figures are
# side by side on the same machine.
set -uo pipefail
. /tmp/vf/env.sh
export VIDEOFORGE_PLUGIN_DIR=/tmp/vf/bin VIDEOFORGE_ROOT=$PWD
out=${OUT:-/tmp/out}
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/session.log"; }
run() { log "$*"; "$@" 2>&1 | tee -a "$out/session.log"; }

run nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
run videoforge doctor
videoforge doctor --json > "$out/doctor.json" 2>&1

log "GPU tests"
for t in /tmp/vf/bin/gpu-*; do run "$t" --ignored --test-threads=1 --nocapture; done

log "the demo job on the GPU"
rm -rf out/demo
run videoforge run jobs/demo.toml
cp out/demo/sample.x2.mp4.report.json "$out/demo_report.json" 2>/dev/null

log "inference benchmarks (videoforge, host buffers)"
for args in "-m models/realesr-animevideov3-x2-fp16.onnx --size 1920x1080 --frames 30" \
            "-m models/realesr-animevideov3-x2-fp16.onnx --size 960x540 --frames 100" \
            "-m models/realesr-animevideov3-x2.onnx --size 1920x1080 --frames 20" \
            "-m bench/clips/realesr-animevideov3-x4-fp16.onnx --size 480x270 --frames 200"; do
  # shellcheck disable=SC2086
  run videoforge bench $args -d 0
done

log "PyTorch reference"
run python3 bench/torch_reference.py check
run python3 bench/torch_reference.py inference 1920 1080 50
run python3 bench/torch_reference.py --channels-last inference 1920 1080 50
run python3 bench/torch_reference.py --channels-last inference 960 540 100
run python3 bench/torch_reference.py --channels-last --model bench/clips/realesr-animevideov3-x4.onnx inference 480 270 200

log "end to end"
for clip in 960x540 1920x1080; do
  run videoforge -i "bench/clips/clip_$clip.mp4" -o "/tmp/vf_$clip.mp4" \
    -m models/realesr-animevideov3-x2-fp16.onnx -d 0 --preset veryfast
  cp "/tmp/vf_$clip.mp4.report.json" "$out/report_$clip.json" 2>/dev/null
  run python3 bench/torch_reference.py pipeline "bench/clips/clip_$clip.mp4" "/tmp/torch_$clip.mp4"
done
