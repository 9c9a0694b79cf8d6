#!/usr/bin/env bash
# videoforge on a Slurm cluster: a job array, one shard of the job per task, CPU nodes by default.
#
#   sbatch jobs/farm/slurm.sh                    # from the checkout or the release bundle's folder: every task
#                                                # runs `videoforge run jobs/farm/job.toml` on its own shard
#   sbatch jobs/farm/slurm.sh path/to/job.toml   # another job file (relative to the folder you submit from)
#   sbatch --array=5 jobs/farm/slurm.sh          # run shard 6 of 8 again (one failed task), next to the others
#
# GPU nodes: turn `##SBATCH --gres=gpu:1` below into `#SBATCH --gres=gpu:1` (or submit with `--gres=gpu:1`); the
# job file's `gpus = "auto"` then plans one worker per GPU Slurm gives the task. Without it the task runs on CPUs,
# which every cluster has (a cluster without GPU gres rejects --gres=gpu:1 at submission).
#
# The environment is set up here, not inherited from your shell: VIDEOFORGE_HOME (default: the folder you submit
# from) is a release bundle (bin/videoforge, lib/) or a checkout (target/release/videoforge, .deps/); VIDEOFORGE_BIN
# names the executable outright. So `sbatch --export=NONE jobs/farm/slurm.sh` works too.
#
# CPUs: 8 per task; on smaller nodes submit with --cpus-per-task=N (any #SBATCH line can be overridden that way).
#
# Shards: SHARDS (below, or VIDEOFORGE_SHARD_COUNT) is the job's planned shard count; keep it equal to the array's
# size. videoforge takes its shard from the Slurm variables: (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) /
# SLURM_ARRAY_TASK_STEP. A resubmission with another shape (--array=5) takes shard 5 mod SHARDS and steals what is
# left; claims beside the outputs make every file run exactly once, however many tasks run at the same time.
#
# Retries: exit 75 means transient (out of memory, I/O, device lost, SIGTERM). Slurm has no per-exit-code retry
# for jobs, so this script requeues its own task (`scontrol requeue`), at most MAX_REQUEUES times; the requeued task
# skips the files already done. A task that Slurm itself is ending (scancel, time limit, preemption) is left to Slurm.
# Sites may set `RequeueExit=75` in slurm.conf instead (docs/operations.md, "Slurm").
#
#SBATCH --job-name=videoforge
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
##SBATCH --gres=gpu:1
##SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=videoforge-%A_%a.log
set -uo pipefail
export PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}

job=${1:-jobs/farm/job.toml}
[[ $# -gt 0 ]] && shift
shards=${VIDEOFORGE_SHARD_COUNT:-8}
max_requeues=${MAX_REQUEUES:-3}
home=${VIDEOFORGE_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
task=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
task=${task:-${SLURM_JOB_ID:-local}}

bin=${VIDEOFORGE_BIN:-}
for c in "$home/bin/videoforge" "$home/target/release/videoforge"; do
  [[ -z $bin && -x $c ]] && bin=$c
done
[[ -n $bin ]] || bin=$(command -v videoforge) || {
  echo "slurm.sh: no videoforge in $home/bin, $home/target/release or PATH: set VIDEOFORGE_HOME or VIDEOFORGE_BIN" >&2
  exit 4
}
# ONNX Runtime: the bundle's lib/, else the checkout's .deps/ (the CUDA build where the node has a driver).
if [[ -z ${ORT_DYLIB_PATH:-} ]]; then
  candidates=("$home/lib/libonnxruntime.so" "$home/.deps/onnxruntime/libonnxruntime.so")
  [[ -e /proc/driver/nvidia/version ]] && candidates=("$home/.deps/onnxruntime-gpu/libonnxruntime.so" "${candidates[@]}")
  for c in "${candidates[@]}"; do
    [[ -z ${ORT_DYLIB_PATH:-} && -e $c ]] && export ORT_DYLIB_PATH=$c
  done
fi

echo "slurm.sh: task $task on $(hostname -s), restart ${SLURM_RESTART_COUNT:-0}: $bin run $job --shard-count $shards${*:+ $*}" \
  "(ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-unset})" >&2

# videoforge runs as a child so that this script can forward SIGTERM to it and look at its exit code.
"$bin" run "$job" --shard-count "$shards" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"
rc=$?
while kill -0 "$child" 2>/dev/null; do # a trapped signal ended `wait` early: wait for videoforge itself
  wait "$child"
  rc=$?
done
trap - TERM INT

if [[ $rc -eq 75 ]]; then
  state=$(squeue -h -j "$task" -o %T 2>/dev/null | head -n1)
  restarts=${SLURM_RESTART_COUNT:-0}
  if [[ $state != RUNNING ]]; then
    echo "slurm.sh: exit 75 while Slurm is ending the task ($state): not requeued" >&2
  elif ((restarts >= max_requeues)); then
    echo "slurm.sh: exit 75 after $restarts requeue(s): giving up (MAX_REQUEUES=$max_requeues)" >&2
  elif scontrol requeue "$task"; then
    # Slurm ends this run right away and queues the task again; 0 keeps a site's RequeueExit=75 from doing it twice.
    echo "slurm.sh: exit 75 (transient): task $task requeued ($((restarts + 1)) of $max_requeues)" >&2
    exit 0
  else
    echo "slurm.sh: exit 75 and \`scontrol requeue $task\` failed" >&2
  fi
fi
exit "$rc"
