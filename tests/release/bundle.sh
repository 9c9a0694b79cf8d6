#!/usr/bin/env bash
# Release test: the bundle is relocatable. Unpacks it into a temporary folder and, from another working directory,
# with LD_LIBRARY_PATH, ORT_DYLIB_PATH and VIDEOFORGE_PLUGIN_DIR unset: every library of the binary, its plugins
# and ONNX Runtime resolves inside the bundle (ldd); `doctor`, `validate` and the demo job run; every library the
# run loaded came from the bundle or is glibc / the GCC runtime (the dynamic loader's own record, LD_DEBUG=libs);
# the output is twice the sample's size, with every frame.
#
#   tests/release/bundle.sh [dist/videoforge-VERSION-linux-x86_64.tar.zst]   (default: that, made if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
. scripts/release-common.sh
archive=${1:-dist/videoforge-$(vf_version)-linux-x86_64.tar.zst}
[[ -f $archive ]] || bash scripts/bundle.sh
name=$(basename "$archive" .tar.zst)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
zstd -dc "$archive" | tar -C "$t" -xf -
b=$(readlink -f "$t/$name")
fail() { echo "bundle test: FAILED: $*" >&2; exit 1; }
clean_env=(env -u LD_LIBRARY_PATH -u ORT_DYLIB_PATH -u VIDEOFORGE_PLUGIN_DIR -u LD_PRELOAD)

# 1. ldd: every FFmpeg and ONNX Runtime library resolves from the bundle
for f in "$b/bin/videoforge" "$b"/lib/videoforge/*.so "$b"/lib/libonnxruntime.so; do
  while read -r soname arrow path _; do
    [[ $soname =~ $VF_SYSTEM_SONAMES || $soname == /* ]] && continue
    [[ $arrow == "=>" ]] || continue
    path=$(readlink -f "$path")
    [[ $path == "$b/lib/"* ]] || fail "$(basename "$f") needs $soname, resolved to ${path} instead of the bundle's lib/"
  done < <("${clean_env[@]}" ldd "$f")
done
nlibs=$("${clean_env[@]}" ldd "$b/bin/videoforge" | grep -c "=> $b/bin/../lib/" || true)
echo "bundle test: ldd: bin/videoforge resolves $nlibs libraries from the bundle's lib/, the rest are glibc/GCC runtime"

# 2. doctor, validate and the demo job, from another working directory
mkdir -p "$t/job/media" "$t/elsewhere"
cp jobs/media/sample.mp4 "$t/job/media/"
sed -e "s|^path = \"../models/|path = \"$b/models/|" -e 's|^dir = "../out/demo"|dir = "out"|' jobs/demo.toml > "$t/job/demo.toml"
grep -q "path = \"$b/models/realesr-animevideov3-x2.onnx\"" "$t/job/demo.toml" || fail "jobs/demo.toml changed: its model path was not rewritten"
grep -q '^dir = "out"' "$t/job/demo.toml" || fail "jobs/demo.toml changed: its output dir was not rewritten"
cd "$t/elsewhere"
rc=0; "${clean_env[@]}" "$b/bin/videoforge" doctor > "$t/doctor.txt" 2>&1 || rc=$?
((rc == 0)) || { cat "$t/doctor.txt"; fail "doctor exited $rc"; }
sed 's/^/  doctor | /' "$t/doctor.txt"
"${clean_env[@]}" "$b/bin/videoforge" validate "$t/job/demo.toml" || fail "validate"
"${clean_env[@]}" LD_DEBUG=libs LD_DEBUG_OUTPUT="$t/ld" "$b/bin/videoforge" run -q "$t/job/demo.toml" \
  || fail "the demo job (exit $?)"

# 3. what the run loaded: the loader's "calling init: PATH" lines name every library it initialised
loaded=$(cat "$t"/ld.* | sed -n 's/.*calling init: //p' | xargs -r -n1 readlink -f | sort -u)
ort=$(grep '/libonnxruntime\.so' <<<"$loaded" || true)
[[ -n $ort ]] || fail "the run never loaded ONNX Runtime"
soname() { python3 scripts/gpu_libs.py needed "$1" | sed -n 's/.* soname=\([^ ]*\) .*/\1/p'; }
outside=$(while read -r p; do
  [[ $p == "$b/"* || $(cd "$repo" && soname "$p") =~ $VF_SYSTEM_SONAMES ]] || echo "$p"
done <<<"$loaded")
[[ -z $outside ]] || fail "the run loaded libraries from outside the bundle: $(echo $outside)"
echo "bundle test: the run loaded $(wc -l <<<"$loaded") libraries, all from the bundle or glibc/GCC runtime; ONNX Runtime: ${ort#$t/}"

# 4. the output
out=$t/job/out/sample.x2.mp4
[[ -s $out && -s $out.report.json ]] || fail "no output or report in $t/job/out"
python3 - "$out.report.json" <<'PY' || fail "the report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "complete", r["status"]
PY
if command -v ffprobe >/dev/null; then
  probe() { ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=width,height,nb_read_frames -of csv=p=0 "$1"; }
  IFS=, read -r w h n < <(probe "$t/job/media/sample.mp4")
  IFS=, read -r w2 h2 n2 < <(probe "$out")
  [[ $w2 == $((w * 2)) && $h2 == $((h * 2)) && $n2 == "$n" ]] || fail "output ${w2}x${h2} $n2 frames, expected $((w * 2))x$((h * 2)) $n frames"
  echo "bundle test: output ${w2}x${h2}, $n2 frames (input ${w}x${h}, $n frames)"
fi
echo "bundle test: ok ($name)"
