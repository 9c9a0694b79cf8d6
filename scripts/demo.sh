#!/usr/bin/env bash
# The demo: set-up, build, then upscale the shipped sample clip with the shipped model (jobs/demo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.deps/onnxruntime/libonnxruntime.so}
cargo build --workspace --release --locked
./target/release/videoforge run jobs/demo.toml "$@"
