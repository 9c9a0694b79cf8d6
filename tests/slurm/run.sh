#!/usr/bin/env bash
# The render-farm tests on a real one-node Slurm cluster (tests/slurm/cluster.sh): jobs/farm/slurm.sh as written,
# submitted with sbatch, over tiny clips and the exact nearest-x2 test model.
#
#   tests/slurm/run.sh [path/to/videoforge] [scenario...]     # default: target/debug/videoforge, every scenario
#
# Needs root (the cluster's slurmd), ffmpeg/ffprobe and python3; installs slurm-wlm and munge with apt if missing.
# Each scenario runs on its own and gets PASS or FAIL; a table with timings ends the run; the exit status is 1 if
# any failed. KEEP=1 keeps the work folder (logs, outputs) for a look afterwards.
#
# Scenarios (the issue's test list):
#   array      --array=0-2 over 6 inputs: every file done exactly once, every output valid
#   again      the same submission again: everything skipped
#   stepped    --array=0-4:2: every file covered
#   resubmit   --array=0 submitted while --array=0-2 runs: the runs' `done` add up to the number of files
#   scancel    scancel mid-file, then scontrol requeue: the job completes, nothing half-written is published
#   sigkill    SIGKILL of one task's videoforge mid-file: its claim goes stale and the other task (--steal)
#              finishes the file and the rest of the killed task's shard
#   exit75     SIGTERM mid-file (videoforge exits 75) while the job runs: the task requeues itself and completes
#   giveup     a task that keeps exiting 75 is requeued MAX_REQUEUES times, then fails with 75
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$root/target/debug/videoforge
if [[ $# -gt 0 && $1 == */* ]]; then bin=$(realpath "$1"); shift; fi
all=(array again stepped resubmit scancel sigkill exit75 giveup)
wanted=("$@")
((${#wanted[@]})) || wanted=("${all[@]}")
[[ -x $bin ]] || { echo "run.sh: $bin is not built (cargo build)" >&2; exit 2; }
check() { python3 "$root/tests/slurm/check.py" "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/videoforge-slurm-test.XXXXXX")
chmod 755 "$work"
# A cluster that was already up (a developer's) is left running; one started here is stopped.
started_here=1
"$root/tests/slurm/cluster.sh" status | grep -q '^slurmctld: running' && started_here=
cleanup() {
  [[ -z $started_here ]] || "$root/tests/slurm/cluster.sh" stop || true
  if [[ -n ${KEEP:-} ]]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

t0=$SECONDS
"$root/tests/slurm/cluster.sh" start
cluster_s=$((SECONDS - t0))
eval "$("$root/tests/slurm/cluster.sh" env)"

# Tiny clips: 6 inputs of 10-15 frames (64x48, 10 fps). Slow clips: 6 inputs of 150-250 frames, so that a test
# can act while a file is being written.
t0=$SECONDS
mkdir -p "$work/tiny" "$work/slow"
for i in 0 1 2 3 4 5; do
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=64x48:rate=10,hue=h=$((i * 60))" -t "1.$i" \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$work/tiny/clip$i.mp4"
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=64x48:rate=10,hue=h=$((i * 60))" -t "$((15 + 2 * i))" \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$work/slow/clip$i.mp4"
done
clips_s=$((SECONDS - t0))

# A job over one clip set, writing to $work/NAME/out.
make_job() {
  local name=$1 clips=$2
  mkdir -p "$work/$name/logs"
  cat >"$work/$name/job.toml" <<EOF
version = 1
[model]
path = "$root/tests/fixtures/models/nearest2x.onnx"
[device]
gpus = "cpu"
[[input]]
path = "../$clips/*.mp4"
[output]
dir = "out"
[encode]
codec = "h264"
preset = "ultrafast"
EOF
}

# submit NAME TAG ARRAY SHARDS [sbatch options...]: jobs/farm/slurm.sh as written; prints the job id. The
# environment is only what --export names (Slurm loads the login environment around it): no ORT_DYLIB_PATH.
# EXTRA_EXPORT adds variables; RUN_ARGS are passed on to `videoforge run`.
submit() {
  local name=$1 tag=$2 array=$3 shards=$4
  shift 4
  local id
  id=$(sbatch --parsable --chdir="$work/$name" --array="$array" --cpus-per-task=1 \
    --output="$work/$name/logs/$tag-%A_%a.log" \
    --export="VIDEOFORGE_BIN=$bin,VIDEOFORGE_HOME=$root,VIDEOFORGE_SHARD_COUNT=$shards${EXTRA_EXPORT:+,$EXTRA_EXPORT}" \
    "$@" "$root/jobs/farm/slurm.sh" job.toml ${RUN_ARGS:-})
  id=${id%%;*}
  echo "$id" >>"$work/$name/jobs"
  echo "$id"
}

die() {
  echo "FAIL: $*" >&2
  exit 1
}

# Waits until no task of job $1 is pending or running (at most $2 seconds).
wait_gone() {
  local id=$1 limit=${2:-120} t=0
  while [[ -n $(squeue -h -j "$id" 2>/dev/null) ]]; do
    ((t < limit * 2)) || die "job $id still queued or running after ${limit}s"
    sleep 0.5
    t=$((t + 1))
  done
}

# One line per task of job $1: `TASK STATE EXIT RESTARTS`.
tasks() {
  scontrol -o show job "$1" | sed -E 's/.*ArrayTaskId=([^ ]+).*JobState=([^ ]+).*Restarts=([^ ]+).* ExitCode=([^ ]+).*/\1 \2 \4 \3/' |
    sort -n
}

expect_tasks() { # JOB EXPECTED-LINES
  local got
  got=$(tasks "$1")
  [[ $got == "$2" ]] || die "tasks of job $1:"$'\n'"$got"$'\n'"expected:"$'\n'"$2"
}

# Fails at once when job $1 has no task left queued or running (it ended before the test could act).
still_queued() {
  [[ -n $(squeue -h -j "$1" 2>/dev/null || true) ]] || die "job $1 ended before the test could act: $(tasks "$1" | paste -sd';')"
}

# Waits until a task of job $1 is writing an output (a .partial file appears in $2); prints its name.
wait_partial() {
  local id=$1 out=$2 t=0 p
  while :; do
    p=$(find "$out" -maxdepth 1 -name '.*.partial*' -printf '%f\n' 2>/dev/null | head -n1 || true)
    [[ -n $p ]] && { echo "$p"; return 0; }
    still_queued "$id"
    ((t < 240)) || die "no task started writing in $out within 120s"
    sleep 0.5
    t=$((t + 1))
  done
}

# The runs' tables over log glob $1: every input of the set done exactly once, summed `done` = 6.
expect_once() {
  local runs
  runs=$(check runs "$@")
  echo "  runs: $runs"
  python3 - "$runs" <<'PY' || die "not exactly once"
import json, sys
r = json.loads(sys.argv[1])
done = {k: v.get("done", 0) for k, v in r["inputs"].items()}
bad = {k: n for k, n in done.items() if n != 1}
assert len(done) == 6 and not bad and r["totals"]["done"] == 6, f"done per input: {done}"
PY
}

s_array() {
  make_job array tiny
  local id; id=$(submit array first 0-2 3)
  wait_gone "$id"
  expect_tasks "$id" $'0 COMPLETED 0:0 0\n1 COMPLETED 0:0 0\n2 COMPLETED 0:0 0'
  expect_once "$work/array/logs/first-*.log"
  local sums; sums=$(check summaries "$work/array/out")
  echo "  summaries: $sums"
  [[ $sums == '{"done": 6, "skipped": 0, "failed": 0, "files": 3}' ]] || die "summaries: $sums"
  check outputs "$work/array/out" "$work/tiny" || die "outputs"
}

s_again() {
  [[ -f $work/array/job.toml ]] || s_array
  local id; id=$(submit array again 0-2 3)
  wait_gone "$id"
  expect_tasks "$id" $'0 COMPLETED 0:0 0\n1 COMPLETED 0:0 0\n2 COMPLETED 0:0 0'
  local runs; runs=$(check runs "$work/array/logs/again-*.log")
  echo "  runs: $runs"
  [[ $runs == *'"totals": {"done": 0, "skipped": 6, "failed": 0, "tables": 3}'* ]] || die "not all skipped"
  check outputs "$work/array/out" "$work/tiny" || die "outputs"
}

s_stepped() {
  make_job stepped tiny
  local id; id=$(submit stepped run 0-4:2 3)
  wait_gone "$id"
  expect_tasks "$id" $'0 COMPLETED 0:0 0\n2 COMPLETED 0:0 0\n4 COMPLETED 0:0 0'
  expect_once "$work/stepped/logs/run-*.log"
  check outputs "$work/stepped/out" "$work/tiny" || die "outputs"
}

s_resubmit() {
  make_job resubmit slow
  local id one
  id=$(submit resubmit array 0-2 3)
  one=$(submit resubmit one 0 3)
  wait_gone "$id" 300
  wait_gone "$one" 300
  scontrol -o show job "$id" | grep -o 'ArrayTaskId=[^ ]*\|StartTime=[^ ]*\|EndTime=[^ ]*' | paste -sd' ' | sed 's/^/  array: /'
  scontrol -o show job "$one" | grep -o 'StartTime=[^ ]*\|EndTime=[^ ]*' | paste -sd' ' | sed 's/^/  resubmission: /'
  expect_once "$work/resubmit/logs/*.log"
  check outputs "$work/resubmit/out" "$work/slow" || die "outputs"
}

s_scancel() {
  make_job scancel slow
  local id; id=$(submit scancel run 0-2 3)
  echo "  writing: $(wait_partial "$id" "$work/scancel/out")"
  scancel "$id"
  wait_gone "$id" 60
  [[ $(tasks "$id" | awk '{ print $2 }' | sort -u) == CANCELLED ]] || die "tasks of job $id: $(tasks "$id")"
  # Whatever was published before the cancel is complete and valid; nothing half-written is at an output path.
  local published; published=$(find "$work/scancel/out" -name '*.x2.mp4' | wc -l)
  echo "  published before the requeue: $published"
  ((published < 6)) || die "the cancel came too late to be mid-job"
  scontrol requeue "$id"
  wait_gone "$id" 120
  expect_tasks "$id" $'0 COMPLETED 0:0 1\n1 COMPLETED 0:0 1\n2 COMPLETED 0:0 1'
  expect_once "$work/scancel/logs/*.log"
  check outputs "$work/scancel/out" "$work/slow" || die "outputs"
}

s_sigkill() {
  make_job sigkill slow
  local id jobid pid partial
  # Stealing lets the task that is left finish the killed task's shard; heartbeats every second make a claim
  # stale after 4 s (a claim of a dead process on the same host is taken over at once anyway).
  EXTRA_EXPORT=VIDEOFORGE_CLAIM_HEARTBEAT=1 RUN_ARGS=--steal id=$(submit sigkill run 0-1 2)
  # Task 0's videoforge, by PID (scontrol listpids), once it is writing a file.
  local t=0
  while :; do
    jobid=$(squeue -h -j "${id}_0" -o %A 2>/dev/null | head -n1 || true)
    pid=
    if [[ -n $jobid ]]; then
      for p in $(scontrol listpids "$jobid" 2>/dev/null | awk 'NR > 1 { print $1 }'); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == videoforge ]] && pid=$p
      done
    fi
    partial=
    [[ -n $pid ]] && partial=$(find "$work/sigkill/out" -maxdepth 1 -name ".*.partial-$pid" -printf '%f\n' 2>/dev/null |
      head -n1 || true)
    [[ -n $partial ]] && break
    still_queued "${id}_0"
    ((t < 240)) || die "task 0 did not start writing within 120s"
    sleep 0.5
    t=$((t + 1))
  done
  kill -KILL "$pid"
  echo "  killed task 0's videoforge (pid $pid) while it wrote $partial"
  wait_gone "$id" 180
  expect_tasks "$id" $'0 FAILED 137:0 0\n1 COMPLETED 0:0 0'
  # The killed task prints no table: count the files each run's pipeline finished instead.
  local runs; runs=$(check runs "$work/sigkill/logs/*.log")
  echo "  runs: $runs"
  python3 - "$runs" <<'PY' || die "the killed task's files were not finished exactly once"
import json, sys
runs = json.loads(sys.argv[1])
processed = {k: v.get("processed", 0) for k, v in runs["inputs"].items()}
bad = {k: n for k, n in processed.items() if n != 1}
assert len(processed) == 6 and not bad, f"pipelines finished per input: {processed}"
PY
  check outputs "$work/sigkill/out" "$work/slow" --allow-partial || die "outputs"
}

s_exit75() {
  make_job exit75 slow
  local id jobid
  id=$(submit exit75 run 0 1)
  echo "  writing: $(wait_partial "$id" "$work/exit75/out")"
  jobid=$(squeue -h -j "${id}_0" -o %A | head -n1)
  # SIGTERM to the task (the script and videoforge) without ending the job: videoforge stops and exits 75.
  scancel --signal=TERM --full "$jobid"
  wait_gone "$id" 180
  expect_tasks "$id" '0 COMPLETED 0:0 1'
  grep -h 'slurm.sh: exit 75' "$work/exit75/logs/"*.log | sed 's/^/  /'
  grep -q 'requeued (1 of 3)' "$work/exit75/logs/"*.log || die "no requeue in the log"
  expect_once "$work/exit75/logs/*.log"
  check outputs "$work/exit75/out" "$work/slow" || die "outputs"
}

s_giveup() {
  make_job giveup tiny
  local id
  # VIDEOFORGE_FAIL_SLOT fails the only worker's first file as a lost device: every file is left, exit 75.
  EXTRA_EXPORT=VIDEOFORGE_FAIL_SLOT=0/0,MAX_REQUEUES=1 id=$(submit giveup run 0 1)
  wait_gone "$id" 120
  expect_tasks "$id" '0 FAILED 75:0 1'
  grep -h 'slurm.sh: exit 75' "$work/giveup/logs/"*.log | sed 's/^/  /'
  grep -q 'giving up (MAX_REQUEUES=1)' "$work/giveup/logs/"*.log || die "no give-up in the log"
}

declare -A result seconds
failed=0
for name in "${wanted[@]}"; do
  [[ " ${all[*]} " == *" $name "* ]] || { echo "unknown scenario $name (${all[*]})" >&2; exit 2; }
  echo "== $name"
  t0=$SECONDS
  set +e
  (set -e; "s_$name")
  rc=$?
  set -e
  seconds[$name]=$((SECONDS - t0))
  if ((rc == 0)); then
    result[$name]=PASS
  else
    result[$name]=FAIL
    failed=1
    [[ -f $work/$name/jobs ]] && xargs -r scancel <"$work/$name/jobs" 2>/dev/null || true
    for log in "$work/$name/logs/"*.log; do
      [[ -f $log ]] && { echo "-- $(basename "$log") (last lines)"; tail -n 6 "$log" | cut -c1-220; }
    done
  fi
  echo "== $name: ${result[$name]} in ${seconds[$name]}s"
done

echo
printf '%-10s %-6s %6s\n' scenario result seconds
printf '%-10s %-6s %6s\n' cluster up "$cluster_s"
printf '%-10s %-6s %6s\n' clips made "$clips_s"
for name in "${wanted[@]}"; do printf '%-10s %-6s %6s\n' "$name" "${result[$name]}" "${seconds[$name]}"; done
printf '%-10s %-6s %6s\n' total "" "$SECONDS"
exit "$failed"
