#!/usr/bin/env bash
# Builds realesrgan-x4plus(.onnx, -fp16.onnx) into .deps/models/ (ignored) with the shared models folder's
# get-x4plus.sh (about a minute; needs pip), so tests/reference.rs and tests/plan.rs cover RRDBNet. Skipped when
# present. Usage: get-models.sh [SHARED_MODELS_DIR] (default: ../shared/models beside the checkout).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
shared=${1:-$root/../shared/models}
dest=$root/.deps/models
if [[ -f $dest/realesrgan-x4plus.onnx && -f $dest/realesrgan-x4plus-fp16.onnx ]]; then
  echo "get-models: $dest already has realesrgan-x4plus"
  exit 0
fi
[[ -x $shared/tools/get-x4plus.sh || -f $shared/tools/get-x4plus.sh ]] || {
  echo "get-models: $shared/tools/get-x4plus.sh not found" >&2
  exit 2
}
mkdir -p "$dest"
bash "$shared/tools/get-x4plus.sh" "$dest"
