#!/usr/bin/env bash
# Slurm job array: 8 tasks, one shard each, one GPU per task. Submit with `sbatch jobs/farm/slurm.sh`.
# videoforge reads SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT itself, so every task
# runs the same command. A preempted or failed task exits 75 (retry) and a rerun skips finished files.
#SBATCH --job-name=videoforge
#SBATCH --array=1-8
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=16
#SBATCH --requeue
#SBATCH --output=videoforge-%A_%a.log
set -euo pipefail
exec videoforge run jobs/farm/job.toml --log-format json
