#!/usr/bin/env bash
# The test command: set-up (system packages, ONNX Runtime), then build everything and run every test.
# GPU tests are #[ignore]d here; run them on a GPU machine with `scripts/test.sh -- --ignored`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Tests only: a real headless browser renders the run report (tests/report.rs).
if ! command -v chromium >/dev/null; then
  sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
  echo "test: installing chromium (the run report is rendered in a headless browser)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}
cargo build --workspace --locked
cargo test --workspace --locked "$@"
# Farm examples validated offline against the Kubernetes and AWS Batch schemas, then the farm behaviour on a real
# one-node Slurm cluster (installed from apt and started here; about 3 minutes).
bash tests/farm_examples/validate.sh
bash tests/slurm/run.sh target/debug/videoforge
