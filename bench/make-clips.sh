#!/usr/bin/env bash
# Makes bench/clips/ (ignored) for a GPU session: testsrc2 clips (1920x1080 90 frames, 960x540 180, 480x270 360,
# long_1920x1080 300; libx264 CRF 20, AAC, BT.709), the x4 models the session reads from there, and the interlaced
# H.264 clip of tests/common/media.rs (the GPU machine has no ffmpeg CLI to make it). Skips files already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=bench/clips
mkdir -p "$dir"
clip() { # NAME SIZE FRAMES
  [[ -f $dir/$1 ]] && return
  ffmpeg -y -nostdin -v error -f lavfi -i "testsrc2=size=$2:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -frames:v "$3" -shortest -c:v libx264 -crf 20 -pix_fmt yuv420p -colorspace bt709 -color_primaries bt709 \
    -color_trc bt709 -c:a aac "$dir/$1"
}
clip clip_1920x1080.mp4 1920x1080 90
clip clip_960x540.mp4 960x540 180
clip clip_480x270.mp4 480x270 360
clip long_1920x1080.mp4 1920x1080 300
for m in realesr-animevideov3-x4.onnx realesr-animevideov3-x4-fp16.onnx; do
  [[ -f $dir/$m ]] || cp "../shared/models/$m" "$dir/"
done
[[ -f $dir/interlaced.mkv ]] ||
  ffmpeg -y -nostdin -v error -f lavfi -i "testsrc2=size=320x240:rate=60000/1001" -frames:v 40 \
    -vf "hue=s=0.6,tinterlace=mode=interleave_top" -colorspace smpte170m -color_range tv -c:v libx264 \
    -flags +ildct+ilme -x264-params tff=1 -crf 12 "$dir/interlaced.mkv"
ls -la "$dir"
