#!/usr/bin/env bash
# Release test: the GPU set-up on a machine without a GPU. VIDEOFORGE_SETUP_GPU=1 scripts/setup.sh fetches
# onnxruntime-gpu and the CUDA libraries (about 1.3 GB of wheels, deleted once unpacked), then:
# - every library ONNX Runtime's CUDA provider needs, by DT_NEEDED and by dlopen (cuDNN and its sub-libraries,
#   cuFFT, NVRTC), resolves inside .deps/ (libcuda, glibc, libstdc++ and zlib excepted);
# - .deps/cuda/LIBS lists every library of .deps/cuda/lib/ once, each after the ones it needs;
# - the check is real: with one library taken away (a needed one, then a dlopen'ed one) it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "gpu closure test: FAILED: $*" >&2; exit 1; }
t0=$SECONDS
VIDEOFORGE_SETUP_GPU=1 bash scripts/setup.sh
echo "gpu closure test: set-up took $((SECONDS - t0)) s; unpacked: $(du -sh .deps/cuda | cut -f1) in .deps/cuda," \
     "$(du -sh .deps/onnxruntime-gpu | cut -f1) in .deps/onnxruntime-gpu"
[[ ${VIDEOFORGE_KEEP_WHEELS:-0} == 1 || ! -e .deps/wheels ]] || fail ".deps/wheels is still there after the set-up (it deletes the wheels once unpacked)"

closure() { python3 scripts/gpu_libs.py closure --cuda --allow libz.so.1 --dir "$1" --dir "$2" "$1/libonnxruntime_providers_cuda.so"; }
closure .deps/onnxruntime-gpu .deps/cuda/lib || fail "the CUDA provider's closure in .deps"

python3 - .deps/cuda <<'PY' || fail ".deps/cuda/LIBS"
import os, subprocess, sys
root = sys.argv[1]
listed = [l.strip() for l in open(os.path.join(root, "LIBS")) if l.strip() and not l.startswith("#")]
files = sorted("lib/" + f for f in os.listdir(os.path.join(root, "lib")))
assert sorted(listed) == files, f"LIBS lists {sorted(listed)}, lib/ holds {files}"
assert len(set(listed)) == len(listed), "a library is listed twice"
pos = {os.path.basename(p): i for i, p in enumerate(listed)}
for p in listed:
    needed = subprocess.run([sys.executable, "scripts/gpu_libs.py", "needed", os.path.join(root, p)],
                            capture_output=True, text=True, check=True).stdout.split("needed=")[1].split()
    for n in needed:
        if n in pos:
            assert pos[n] < pos[os.path.basename(p)], f"{p} needs {n}, which LIBS loads later"
print(f"gpu closure test: .deps/cuda/LIBS lists all {len(listed)} libraries, each after what it needs")
PY

# the check must fail when something is missing
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
for gone in libcublasLt.so.13 libcudnn_engines_precompiled.so.9; do
  rm -rf "$t/cuda" && mkdir "$t/cuda"
  for f in .deps/cuda/lib/*; do
    case $(basename "$f") in "$gone"|"${gone%.so.*}".so.1[0-9]) ;; *) ln -s "$PWD/$f" "$t/cuda/" ;; esac
  done
  if out=$(closure .deps/onnxruntime-gpu "$t/cuda" 2>&1); then
    fail "the closure check passed without $gone"
  fi
  grep -q "NOT FOUND" <<<"$out" || fail "the closure check failed without $gone but did not say what is missing: $out"
  echo "gpu closure test: without ${gone%.so.*} the check fails as it should: $(grep -m1 'NOT FOUND' <<<"$out" | sed 's/^ *//')"
done
echo "gpu closure test: ok"
