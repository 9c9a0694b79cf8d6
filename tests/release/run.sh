#!/usr/bin/env bash
# The release tests, as CI runs them (.ci/run): the GPU set-up's library closure, the CPU bundle (built here from
# this checkout) run from a temporary folder, the CPU image run under podman, the GPU image's closure. Each test's
# log is kept in out/release-tests/; the last line counts them.
#
#   tests/release/run.sh [--profile dev] [gpu-closure] [bundle] [image] [image-gpu]   (default: all four, in order)
#
# --profile dev bundles the dev build (the one scripts/test.sh made) instead of making a release build: CI does
# that, as a second full build costs about 11 minutes on its 2 cores.
set -uo pipefail
cd "$(dirname "$0")/../.."
profile=release
if [[ ${1:-} == --profile ]]; then profile=$2; shift 2; fi
tests=("$@")
((${#tests[@]})) || tests=(gpu-closure bundle image image-gpu)
mkdir -p out/release-tests
# The disk decides whether the image tests can run: each test's first line says what there is (CI's log is all one
# sees of CI's machine).
size_of() { if [[ -e $1 ]]; then du -sh "$1" 2>/dev/null | cut -f1; else echo 0; fi; }
disk_facts() {
  local free
  free=$(df -BM --output=avail,target . /var/lib/containers 2>/dev/null | tail -n +2 | sort -u |
         awk '{printf "%s%s on %s", (NR > 1 ? ", " : ""), $1, $2}')
  echo "free: $free; this checkout: target/ $(size_of target), .deps/ $(size_of .deps), dist/ $(size_of dist)"
}
passed=0 failed=0 skipped=0 failures=()
for t in "${tests[@]}"; do
  case $t in
    gpu-closure) cmd=(bash tests/release/gpu-closure.sh) ;;
    bundle) cmd=(bash -c "bash scripts/bundle.sh --profile $profile && bash tests/release/bundle.sh") ;;
    image) cmd=(bash tests/release/image.sh) ;;
    # the GPU bundle is only a step towards the image here: its folder, hard-linked to .deps/, goes in as it is
    # (no 1.3 GB archive, no unpacking of it), and goes once the test is done
    image-gpu) cmd=(bash -c "bash scripts/bundle.sh --gpu --no-pack --profile $profile &&
                     bash tests/release/image.sh --gpu --bundle \"\$(ls -d dist/.stage/videoforge-*-cuda* | sort -V | tail -n1)\";
                     rc=\$?; rm -rf dist/.stage; exit \$rc") ;;
    *) echo "release tests: unknown test $t (gpu-closure, bundle, image, image-gpu)" >&2; exit 2 ;;
  esac
  echo "=== release test: $t ($(disk_facts))"
  t0=$SECONDS
  "${cmd[@]}" 2>&1 | tee "out/release-tests/$t.log"
  rc=${PIPESTATUS[0]}
  took=$((SECONDS - t0))
  if ((rc == 3)) && grep -q ': not enough disk: ' "out/release-tests/$t.log"; then
    # scripts/bundle.sh, scripts/image.sh and the image test exit 3 with that line: the machine's disk is too small
    skipped=$((skipped + 1)); echo "=== release test: $t skipped: $(grep -m1 ': not enough disk: ' "out/release-tests/$t.log")"
  elif ((rc != 0)); then
    failed=$((failed + 1)); failures+=("$t"); echo "=== release test: $t FAILED (exit $rc, ${took} s)"
  elif grep -q 'skipped:' "out/release-tests/$t.log"; then
    skipped=$((skipped + 1)); echo "=== release test: $t skipped (${took} s)"
  else
    passed=$((passed + 1)); echo "=== release test: $t ok (${took} s)"
  fi
done
((failed == 0)) || echo "release tests failed: ${failures[*]} (logs in out/release-tests/)"
echo "release: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
