#!/usr/bin/env bash
# Prepares .devpack/fused/ (ignored) for one call on the GPU machine: the release GPU-test binary and the sweep,
# the models the tests look for (x3/x4 from the shared models folder, x4plus-fp16 if .deps/models has it), real
# frames (the device has no FFmpeg) and the kernel cache precompiled for sm_90, gzipped (the device then compiles
# nothing).
# On the device, from the repository root, carry .devpack/fused and run: bash .devpack/fused/run.sh
# SECTIONS picks what runs (default "tests sweep"; "x4plus" sweeps realesrgan-x4plus's RRDB tiles when its model
# came along, DENSE naming them; "probe" times the first two DENSE tiles' dense conv without its loads; "profile", or PROFILE=1, adds the ncu profiles of the x2 model, "densencu" those of
# RRDB's 192 -> 32 dense conv for each DENSE tile, "pdl" the whole models with and without programmatic
# dependent launch). A call may run 600 s: the tests and the sweep take up to 480, so
# the rest gets a call of its own:
#   SECTIONS="tests sweep" bash .devpack/fused/run.sh, then SECTIONS="x4plus profile" TILE=... bash .devpack/fused/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
out=.devpack/fused
rm -rf "$out"
mkdir -p "$out/bin" "$out/models"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
cargo build --release -p videoforge-backend-fused-cuda --example sweep --example precompile
tests=$(cargo test --release -p videoforge-backend-fused-cuda --test gpu --no-run --message-format=json |
  python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "gpu" and m.get("executable"):
        print(m["executable"])')
cp "$tests" "$out/bin/gpu-tests"
cp target/release/examples/sweep "$out/bin/sweep"
strip "$out/bin/"* || true
for m in realesr-animevideov3-x3.onnx realesr-animevideov3-x4.onnx realesr-animevideov3-x4-fp16.onnx; do
  [[ -f ../shared/models/$m ]] && cp "../shared/models/$m" "$out/models/"
done
[[ -f .deps/models/realesrgan-x4plus-fp16.onnx ]] && cp .deps/models/realesrgan-x4plus-fp16.onnx "$out/models/"
bash backends/fused-cuda/scripts/extract-frames.sh >/dev/null
cp -r .deps/frames "$out/frames"
target/release/examples/precompile "$out/fused-cuda-kernel-cache" 90
# gzip takes the CUBINs from 17 to under 4 MiB: room in the call's 64 MiB beside x4plus's 33 MiB model
tar -C "$out" -czf "$out/kernels.tar.gz" fused-cuda-kernel-cache && rm -rf "$out/fused-cuda-kernel-cache"
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repository root: the GPU tests, then the sweep, then (SECTIONS has "profile", or
# PROFILE=1) the ncu profiles; everything is logged under $OUT.
set -uo pipefail
sections=" ${SECTIONS:-tests sweep} "
[[ ${PROFILE:-0} == 1 ]] && sections+="profile "
has() { [[ $sections == *" $1 "* ]]; }
here=.devpack/fused
mkdir -p .deps/models target
cp -n "$here"/models/*.onnx .deps/models/ 2>/dev/null
rm -rf .deps/frames && cp -r "$here/frames" .deps/frames
rm -rf target/fused-cuda-kernel-cache
tar -C target -xzf "$here/kernels.tar.gz" 2>/dev/null || python3 -m tarfile -e "$here/kernels.tar.gz" target
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls /opt/torch/.venv/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -n1)}
log=${OUT:-.}/fused-cuda.log
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$log"
has tests && timeout 240 "$here/bin/gpu-tests" --ignored --nocapture --test-threads=1 2>&1 | tee -a "$log"
has sweep && timeout 240 "$here/bin/sweep" 2>&1 | tee -a "$log"
# realesrgan-x4plus: its dense convs on conv_wgmma_k, A from registers a slice (k32a, the table's tile first) or a tap
# column (k32t) at a time
dense=${DENSE:-wgmma_g2_r3_k32a_w128,wgmma_g2_r3_k32t_w128,wgmma_g2_r2_k32a_w128,wgmma_g2_r2_k32t_w128}
if has x4plus && [[ -f .deps/models/realesrgan-x4plus-fp16.onnx ]]; then
  timeout 300 "$here/bin/sweep" .deps/models/realesrgan-x4plus-fp16.onnx --only "$dense" 2>&1 | tee -a "$log"
fi
# The first two DENSE tiles' 192 -> 32 conv without its global copies, then without its fragment loads too.
if has probe; then
  timeout 200 "$here/bin/sweep" .deps/models/realesrgan-x4plus-fp16.onnx --only "$(echo "$dense" | cut -d, -f1,2)" \
    --probe 2>&1 | sed -n '/Probes/,/Whole model/p' | tee -a "$log"
fi
# Programmatic dependent launch off and on (VIDEOFORGE_FUSED_PDL), whole models with the table tiles: x2 at 1080p
# and 540p, x4plus at 270p and 540p.
if has pdl; then
  for on in 0 1; do
    echo "== VIDEOFORGE_FUSED_PDL=$on" | tee -a "$log"
    VIDEOFORGE_FUSED_PDL=$on timeout 100 "$here/bin/sweep" --only wgmma_g2_r2_w128_th 2>&1 |
      sed -n '/Whole model/,/Where/p' | tee -a "$log"
    [[ -f .deps/models/realesrgan-x4plus-fp16.onnx ]] &&
      VIDEOFORGE_FUSED_PDL=$on timeout 100 "$here/bin/sweep" .deps/models/realesrgan-x4plus-fp16.onnx \
        --only "${dense%%,*}" 2>&1 | sed -n '/Whole model/,/Where/p' | tee -a "$log"
  done
fi
# One 540p 192 -> 32 dense conv under ncu for each of the first two DENSE tiles (in the sweep's order: the table's
# tile first; both with A from registers): with two chunked tiles the sweep times each dense shape for both, 48
# conv_wgmma_k launches a tile and shape (a check with TMA and one with cp.async, then 3 + 20 at 540p and at 270p;
# 96 -> 32 first), so the first tile's timed 192 -> 32 launches start at 101 and the second's at 149. Tensor pipe, shared memory and L2 throughput, and the warps' stall
# reasons.
if has densencu; then
  pair=$(echo "$dense" | cut -d, -f1,2)
  for target in 1 2; do
    tile=$(echo "$pair" | cut -d, -f$target)
    echo "== ncu: $tile, 192 -> 32 at 540p" | tee -a "$log"
    timeout 150 ncu --kernel-name conv_wgmma_k --launch-skip $((53 + 48 * target)) --launch-count 1 --set full \
      --import-source no \
      -o "${OUT:-.}/ncu-$tile" "$here/bin/sweep" --only "$pair" >/dev/null 2>&1
    ncu -i "${OUT:-.}/ncu-$tile.ncu-rep" >"${OUT:-.}/ncu-$tile.log" 2>&1
    grep -E "Duration|Throughput|Pipe|Tensor|Shared|L2 |L1/TEX|Registers|Achieved Occupancy|Issue Slots|Warp Cycles|Eligible" \
      "${OUT:-.}/ncu-$tile.log" | grep -v "^==PROF==" | head -40 | tee -a "$log"
    # The stall reasons, most cycles first (warps a issued instruction spends stalled on each).
    ncu -i "${OUT:-.}/ncu-$tile.ncu-rep" --page raw 2>&1 | grep -E "issue_stalled_[a-z_]+_per_issue_active.ratio " |
      awk '{gsub(",", "", $NF); print $NF, $1}' | sort -rn | head -14 | tee -a "$log"
    ncu -i "${OUT:-.}/ncu-$tile.ncu-rep" --page source --csv --print-source sass >"${OUT:-.}/ncu-$tile.csv" 2>&1
    python3 bench/ncu_regions.py "${OUT:-.}/ncu-$tile.csv" 2>&1 | tee -a "$log"
  done
fi
if has profile; then
  # Where one 1080p frame of the x2 model goes, kernel by kernel (clocks are locked lower under ncu). With one
  # tile, the sweep's layer timing launches it 47 times before the whole-model runs.
  tile=${TILE:-wgmma_g2_r2_w128_th}  # the sm_90 table's tile
  timeout 200 ncu --metrics gpu__time_duration.sum --launch-skip 47 --launch-count 20 "$here/bin/sweep" --only "$tile" \
    >"${OUT:-.}/ncu-frame.log" 2>&1
  grep -E "^  [a-z_]+|gpu__time_duration" "${OUT:-.}/ncu-frame.log" | paste - - | awk '{print $1, $(NF-1), $(NF)}' |
    tee -a "$log"
  # The tail conv and the head, by code region. The tail is the frame's 17th conv_wgmma after the layer timing's 47
  # when the body runs on conv_wgmma too, its first when the body is on conv_wgmma_wide (a _w tile); the head is
  # head_mma in a _th tile.
  tail="conv_wgmma 63" head="head_conv 0"
  [[ $tile == *_w* ]] && tail="conv_wgmma 0"
  [[ $tile == *_th ]] && head="head_mma 0"
  for k in "$tail" "$head"; do
    set -- $k
    timeout 200 ncu --kernel-name "$1" --launch-skip "$2" --launch-count 1 --set full --import-source no \
      -o "${OUT:-.}/$1-$2" "$here/bin/sweep" --only "$tile" >/dev/null 2>&1
    ncu -i "${OUT:-.}/$1-$2.ncu-rep" --page source --csv --print-source sass >"${OUT:-.}/$1-$2.csv" 2>&1
    echo "== $1 (launch $2) by region" | tee -a "$log"
    python3 bench/ncu_regions.py "${OUT:-.}/$1-$2.csv" 2>&1 | tee -a "$log"
  done
  # The bicubic resize (0.27 ms a 1080p frame against about 0.1 for its 300 MB of traffic): throughput and
  # occupancy.
  echo "== downscale_cubic" | tee -a "$log"
  timeout 120 ncu --kernel-name downscale_cubic --launch-count 1 --section SpeedOfLight --section Occupancy \
    --section MemoryWorkloadAnalysis "$here/bin/sweep" --only "$tile" 2>&1 | grep -E "^ +[A-Z][A-Za-z /%-]+ +[a-zA-Z/%]+ +[0-9.,]+$" |
    tee -a "$log"
fi
RUN
# A device call carries the checkout and this folder, 64 MiB at most.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -n1 | cut -f1)
total=$(( (${tree:-0} + $(du -sb "$out" | cut -f1) + 1048575) / 1048576 ))
echo "device bundle: $out $(du -sh "$out" | cut -f1), with the checkout $total MiB of the 64 MiB a call carries"
((total <= 64)) || echo "device bundle: too big for one call: carry the models in a call of their own" >&2
