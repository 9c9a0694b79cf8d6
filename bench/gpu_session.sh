#!/usr/bin/env bash
# Runs on the lent GPU machine after `.devpack/app/unpack.sh` (see bench/README.md): the GPU tests, the
# benchmarks, the PyTorch reference and end-to-end runs, each result under $OUT, in one call so the figures are
# side by side on the same machine. SECTIONS picks parts: tests demo bench devio fused torch nvdec e2e medium long pin encpar segments farm stress (default: all).
set -uo pipefail
. /tmp/vf/env.sh
export VIDEOFORGE_PLUGIN_DIR=/tmp/vf/bin VIDEOFORGE_ROOT=$PWD VIDEOFORGE_BIN=/tmp/vf/bin/videoforge
# the machine has no ffmpeg CLI: the NVDEC deinterlacing test takes its interlaced clip from here (bench/README.md)
[[ -f bench/clips/interlaced.mkv ]] && export VIDEOFORGE_INTERLACED_CLIP=$PWD/bench/clips/interlaced.mkv
out=${OUT:-/tmp/out}
mkdir -p "$out"
sections=" ${SECTIONS:-tests demo bench devio fused torch nvdec e2e medium long pin encpar segments farm stress} "
want() { [[ $sections == *" $1 "* ]]; }
log() { echo "== $*" | tee -a "$out/session.log"; }
run() { log "$*"; "$@" 2>&1 | tee -a "$out/session.log"; }

run nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
run videoforge doctor
videoforge doctor --json > "$out/doctor.json" 2>&1

if want tests; then
  log "GPU tests"
  for t in /tmp/vf/bin/gpu-*; do run "$t" --ignored --test-threads=1 --nocapture; done
fi

if want demo; then
  log "the demo job on the GPU"
  rm -rf out/demo
  run videoforge run jobs/demo.toml
  cp out/demo/sample.x2.mp4.report.json "$out/demo_report.json" 2>/dev/null
fi

X2H=models/realesr-animevideov3-x2-fp16.onnx
X2F=models/realesr-animevideov3-x2.onnx
X4H=bench/clips/realesr-animevideov3-x4-fp16.onnx
if want bench; then
  log "inference benchmarks (videoforge, host buffers)"
  run videoforge bench -m $X2H --size 1920x1080 --frames 30 -d 0
  run videoforge bench -m $X2H --size 960x540 --frames 100 -d 0
fi

if want devio; then
  log "device paths: model alone on device buffers, and the whole GPU stage"
  run videoforge bench --device-io -m $X2H --size 1920x1080 --frames 100 -d 0
  run videoforge bench --device-io -m $X2F --size 1920x1080 --frames 50 -d 0
  run videoforge bench --device-io -m $X2H --size 960x540 --frames 300 -d 0
  run videoforge bench --device-io -m $X4H --size 480x270 --frames 500 -d 0
  run videoforge bench --device-io -m $X2H --size 1920x1080 --frames 50 -d 0 --ep tensorrt
fi

if want fused; then
  log "fused-cuda (NVRTC kernels) vs ONNX Runtime vs torch.compile max-autotune: model alone on device buffers, then end to end"
  for size in 1920x1080:50 960x540:200; do
    run videoforge bench --device-io --backend fused-cuda -m $X2H --size ${size%:*} --frames ${size#*:} -d 0
    run videoforge bench --device-io -m $X2H --size ${size%:*} --frames ${size#*:} -d 0
  done
  X4P=.deps/models/realesrgan-x4plus-fp16.onnx
  if [[ -e $X4P ]]; then
    run videoforge bench --device-io --backend fused-cuda -m $X4P --size 480x270 --frames 50 -d 0
    run videoforge bench --device-io -m $X4P --size 480x270 --frames 50 -d 0
  fi
  for b in fused-cuda onnxruntime; do
    run videoforge -i bench/clips/clip_1920x1080.mp4 -o /tmp/e2e_$b.mp4 -m $X2H -d 0 --preset veryfast --backend $b
    cp /tmp/e2e_$b.mp4.report.json "$out/e2e_${b}_1080.json" 2>/dev/null
  done
  run python3 bench/torch_reference.py --channels-last inference 1920 1080 50
  run python3 bench/torch_reference.py --channels-last inference 960 540 200
  if [[ ${COMPILE:-1} == 1 ]]; then  # torch.compile max-autotune takes minutes to tune: COMPILE=0 skips it
    run timeout 240 python3 bench/torch_reference.py --channels-last --compile inference 1920 1080 50
    run timeout 120 python3 bench/torch_reference.py --channels-last --compile inference 960 540 200
  fi
fi

if want torch; then
  log "PyTorch reference"
  run python3 bench/torch_reference.py check
  run python3 bench/torch_reference.py inference 1920 1080 50
  run python3 bench/torch_reference.py --channels-last inference 1920 1080 50
  run python3 bench/torch_reference.py --channels-last inference 960 540 100
  run python3 bench/torch_reference.py --channels-last --model bench/clips/realesr-animevideov3-x4.onnx inference 480 270 200
fi

if want nvdec; then
  log "NVDEC vs CPU decode + upload (VIDEOFORGE_NO_NVDEC=1), x2 fp16, x264 veryfast; then the audit on the NVDEC path"
  for clip in 960x540 1920x1080; do
    run videoforge -i "bench/clips/clip_$clip.mp4" -o "/tmp/nv_$clip.mp4" -m $X2H -d 0 --preset veryfast
    cp "/tmp/nv_$clip.mp4.report.json" "$out/nvdec_$clip.json" 2>/dev/null
    VIDEOFORGE_NO_NVDEC=1 run videoforge -i "bench/clips/clip_$clip.mp4" -o "/tmp/cd_$clip.mp4" -m $X2H -d 0 --preset veryfast
    cp "/tmp/cd_$clip.mp4.report.json" "$out/cpudecode_$clip.json" 2>/dev/null
  done
  run videoforge -i jobs/media/sample.mp4 -o /tmp/audit_nvdec.mp4 -m $X2H -d 0 --audit
  cp /tmp/audit_nvdec.mp4.report.json "$out/audit_nvdec.json" 2>/dev/null
fi

if want e2e; then
  log "end to end (x264 veryfast)"
  for clip in 960x540 1920x1080; do
    run videoforge -i "bench/clips/clip_$clip.mp4" -o "/tmp/vf_$clip.mp4" -m $X2H -d 0 --preset veryfast
    cp "/tmp/vf_$clip.mp4.report.json" "$out/report_$clip.json" 2>/dev/null
    run python3 bench/torch_reference.py pipeline "bench/clips/clip_$clip.mp4" "/tmp/torch_$clip.mp4"
  done
  run videoforge -i bench/clips/clip_480x270.mp4 -o /tmp/vf_480x270.mp4 -m $X4H -d 0 --preset veryfast
  cp /tmp/vf_480x270.mp4.report.json "$out/report_480x270.json" 2>/dev/null
  run python3 bench/torch_reference.py --model bench/clips/realesr-animevideov3-x4.onnx pipeline bench/clips/clip_480x270.mp4 /tmp/torch_480x270.mp4
fi

if want medium; then
  log "end to end, 1080p -> 4K with x264 medium (the default preset): the CPU encoder bounds it"
  run videoforge -i bench/clips/clip_1920x1080.mp4 -o /tmp/vf_medium.mp4 -m $X2H -d 0
  cp /tmp/vf_medium.mp4.report.json "$out/report_1920x1080_medium.json" 2>/dev/null
fi

if want long; then
  log "end to end, 300 frames 1080p -> 4K (x264 veryfast): steady state"
  run videoforge -i bench/clips/long_1920x1080.mp4 -o /tmp/vf_long.mp4 -m $X2H -d 0 --preset veryfast
  cp /tmp/vf_long.mp4.report.json "$out/report_long.json" 2>/dev/null
  run python3 bench/torch_reference.py pipeline bench/clips/long_1920x1080.mp4 /tmp/torch_long.mp4
fi

if want pin; then
  log "downloads into page-locked output frames vs pageable (VIDEOFORGE_NO_PIN=1), alternating, same clip"
  for i in 1 2; do
    run videoforge bench --device-io -m $X2H --size 1920x1080 --frames 100 -d 0
    VIDEOFORGE_NO_PIN=1 run videoforge bench --device-io -m $X2H --size 1920x1080 --frames 100 -d 0
    run videoforge -i bench/clips/long_1920x1080.mp4 -o /tmp/pin_long.mp4 -m $X2H -d 0 --preset veryfast
    cp /tmp/pin_long.mp4.report.json "$out/pin_long_$i.json" 2>/dev/null
    VIDEOFORGE_NO_PIN=1 run videoforge -i bench/clips/long_1920x1080.mp4 -o /tmp/nopin_long.mp4 -m $X2H -d 0 --preset veryfast
    cp /tmp/nopin_long.mp4.report.json "$out/nopin_long_$i.json" 2>/dev/null
  done
fi

if want encpar; then
  log "encoder headroom: 1080p -> 4K with a nearest-neighbour x2 model (the GPU is idle), x264 medium; 1, 2 and 3 processes at once"
  NN=tests/fixtures/models/nearest2x.onnx
  for n in 1 2 3; do
    s=$(date +%s.%N)
    for i in $(seq 1 $n); do
      videoforge -i bench/clips/long_1920x1080.mp4 -o /tmp/encpar_$i.mp4 -m $NN -d 0 -q > /dev/null 2>&1 &
    done
    wait
    e=$(date +%s.%N)
    log "encpar $n at once: $((300 * n)) frames in $(python3 -c "print(round($e - $s, 2), 'fps', round($n * 300 / ($e - $s), 1))")"
    python3 - $n <<'PY' 2>&1 | tee -a "$out/session.log"
import json, sys
n = int(sys.argv[1])
for i in range(1, n + 1):
    r = json.load(open(f"/tmp/encpar_{i}.mp4.report.json"))
    p = r.get("pipeline", r)
    print(f"  process {i}: {p['fps']:.1f} fps, cpu {p['cpu_s']:.1f} s over {p['wall_s']:.2f} s = {p['cpu_s'] / p['wall_s']:.1f} cores")
PY
  done
fi

if want segments; then
  # SEG_CONFIGS: "one" (one instance), "auto", "S:Q" (segment frames : frames queued per instance, instances as the
  # plan decides), or "NxS" (N instances of S-frame segments, e.g. 3x48: H.264 is never split automatically);
  # SEG_CODEC / SEG_PRESET: the encoder (h264 medium); SEG_NOCHECK=1 skips the (slow) decode-and-compare.
  log "segment-parallel encoding: 300 frames 1080p -> 4K, ${SEG_CODEC:-h264} ${SEG_PRESET:-medium}: ${SEG_CONFIGS:=one auto auto one}"
  rm -rf /tmp/seg && mkdir -p /tmp/seg/clips && cp bench/clips/long_1920x1080.mp4 /tmp/seg/clips/ && cp $X2H /tmp/seg/model.onnx
  n=0
  for cfg in $SEG_CONFIGS; do
    n=$((n + 1)); seg=""; frames=""; queue=""
    case $cfg in
      one) seg="segments = 1" ;;
      auto) ;;
      *x*) seg="segments = ${cfg%%x*}"; frames=${cfg##*x} ;;
      *) frames=${cfg%%:*}; queue=${cfg##*:} ;;
    esac
    printf 'version = 1\n[model]\npath = "model.onnx"\n[device]\ngpus = [0]\nfiles_at_once = 1\n[[input]]\npath = "clips/*.mp4"\n[output]\ndir = "out_%s"\n[encode]\ncodec = "%s"\npreset = "%s"\n%s\n' "$n" "${SEG_CODEC:-h264}" "${SEG_PRESET:-medium}" "$seg" > /tmp/seg/job_$n.toml
    VIDEOFORGE_SEGMENT_FRAMES=$frames VIDEOFORGE_SEGMENT_QUEUE=$queue run videoforge run /tmp/seg/job_$n.toml --force
    python3 - "$n" "$cfg" <<'PY' 2>&1 | tee -a "$out/session.log"
import json, os, sys
n, cfg = sys.argv[1], sys.argv[2]
r = json.load(open(f"/tmp/seg/out_{n}/long_1920x1080.x2.mp4.report.json"))
p = r.get("pipeline", r)
size = os.path.getsize(f"/tmp/seg/out_{n}/long_1920x1080.x2.mp4")
print(f"segments {cfg}: {p['fps']:.1f} fps, {p['encoder_instances']} instance(s), segment_frames {p.get('segment_frames')}, "
      f"cpu {p['cpu_s']:.1f} s / wall {p['wall_s']:.2f} s = {p['cpu_s'] / p['wall_s']:.1f} cores, {size / 1e6:.2f} MB, "
      f"peak RSS {p['peak_rss_bytes'] / 2**30:.1f} GiB, stages {[(s['name'], round(s['busy_s'], 2), round(s['wait_s'], 2)) for s in p['stages']]}")
PY
    cp /tmp/seg/out_$n/*.report.json "$out/segments_${n}_${cfg//:/_}.json" 2>/dev/null
  done
  [ -n "${SEG_NOCHECK:-}" ] || python3 - <<'PY' 2>&1 | tee -a "$out/session.log"
import cv2, glob, numpy as np
def frames(p):
    c = cv2.VideoCapture(p); out = []
    while True:
        ok, f = c.read()
        if not ok: return out
        out.append(f)
# Decoding 4K in Python is slow: the first two outputs only.
outs = sorted(glob.glob("/tmp/seg/out_*/long_1920x1080.x2.mp4"))[:2]
a = frames(outs[0])
for o in outs[1:]:
    b = frames(o)
    worst = min(10 * np.log10(255.0 ** 2 / max(np.mean((x.astype(np.float64) - y) ** 2), 1e-12)) for x, y in zip(a, b))
    print(f"{o}: {len(b)} frames (first output {len(a)}); worst frame PSNR vs the first output {worst:.1f} dB")
PY
fi

if want farm; then
  log "one GPU, 4 files of 1080p -> 4K: 1 file at once, 2 at once, and two workers on GPU 0"
  rm -rf /tmp/farm && mkdir -p /tmp/farm/clips
  for i in 1 2 3 4; do cp bench/clips/clip_1920x1080.mp4 /tmp/farm/clips/c$i.mp4; done
  cp $X2H /tmp/farm/model.onnx
  for variant in "gpus = [0]|files_at_once = 1" "gpus = [0]|files_at_once = 2" "gpus = [0, 0]|files_at_once = 1"; do
    printf 'version = 1\n[model]\npath = "model.onnx"\n[device]\n%s\n%s\n[[input]]\npath = "clips/*.mp4"\n[output]\ndir = "out"\n[encode]\npreset = "veryfast"\n' \
      "${variant%%|*}" "${variant##*|}" > /tmp/farm/job.toml
    rm -rf /tmp/farm/out
    ( nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -lms 250 > "$out/smi_${variant//[^a-z0-9]/_}.csv" & echo $! > /tmp/smi.pid )
    s=$(date +%s.%N)
    run videoforge run /tmp/farm/job.toml --force
    e=$(date +%s.%N)
    kill "$(cat /tmp/smi.pid)" 2>/dev/null
    log "farm [$variant]: 360 frames in $(python3 -c "print(round($e - $s, 2))") s"
    python3 - "$variant" <<'PY' 2>&1 | tee -a "$out/session.log"
import json, sys
r = json.load(open("/tmp/farm/out/videoforge-run.json"))
print(sys.argv[1], [(f["input"].split("/")[-1], f["worker"], round(f["seconds"], 2)) for f in r["files"]])
PY
  done
fi

if want stress; then
  log "synthetic stress test and audit on the GPU"
  run videoforge bench --synthetic -m $X2H --size 1920x1080 --frames 120 -d 0
  VIDEOFORGE_AUDIT_TRACE=20 run videoforge -i bench/clips/clip_1920x1080.mp4 -o /tmp/vf_audit.mp4 -m $X2H -d 0 --preset veryfast --audit
  cp /tmp/vf_audit.mp4.report.json "$out/report_audit.json" 2>/dev/null
fi
