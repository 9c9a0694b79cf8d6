#!/usr/bin/env bash
# Validates jobs/farm's Kubernetes and AWS Batch examples offline against the schedulers' real schemas
# (tests/farm_examples/validate.py says how), then checks that deliberately broken copies are rejected.
# Installs kubernetes-validate and botocore from PyPI into .deps/farm-venv/ on the first run.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.deps/farm-venv
# Pinned: a new botocore or schema set should change this file, not the result of an old commit.
pins=(kubernetes-validate==1.37.0 botocore==1.44.8)
if ! "$venv/bin/python" -c 'import kubernetes_validate, botocore' 2>/dev/null ||
  [[ $("$venv/bin/pip" freeze 2>/dev/null | grep -ciE "^($(IFS='|'; echo "${pins[*]}"))$") -ne ${#pins[@]} ]]; then
  echo "validate.sh: installing ${pins[*]} into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
fi
"$venv/bin/python" tests/farm_examples/validate.py check jobs/farm
"$venv/bin/python" tests/farm_examples/validate.py selftest jobs/farm
