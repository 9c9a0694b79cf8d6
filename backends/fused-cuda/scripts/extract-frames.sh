#!/usr/bin/env bash
# Decodes a few frames of jobs/media/sample.mp4 into raw RGB24 files under .deps/frames/ for the GPU tests
# (tests/gpu.rs), which run on a machine without FFmpeg: carry .deps/frames there. Usage: extract-frames.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=$root/.deps/frames
mkdir -p "$out"
size=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0:s=x "$root/jobs/media/sample.mp4")
for n in 0 12 24 36; do
  ffmpeg -v error -y -i "$root/jobs/media/sample.mp4" -vf "select=eq(n\,$n)" -frames:v 1 -f rawvideo -pix_fmt rgb24 \
    "$out/sample_${size}_$(printf %03d "$n").rgb"
done
ls -l "$out"
