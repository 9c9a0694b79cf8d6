#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the render-farm tests: `start`, `stop`, `status`, `env`.
#
#   tests/slurm/cluster.sh start     # installs slurm-wlm + munge from apt if missing, starts munged, slurmctld and
#                                    # slurmd by hand (no systemd), waits until the node is idle
#   eval "$(tests/slurm/cluster.sh env)"   # SLURM_CONF for sbatch/squeue/scontrol in this shell
#   tests/slurm/cluster.sh stop      # cancels this user's jobs, stops the three daemons by their PIDs
#
# Everything (configuration, munge key and socket, state, spool, logs, PID files) lives in one folder,
# $VF_SLURM_DIR (default: $TMPDIR/videoforge-slurm); nothing under /etc is changed and no system service is used.
# Needs root (slurmd starts jobs as the submitting user). Ports: $VF_SLURM_PORT and the next one (default 6917).
#
# Choices, for a test cluster on a small CI machine:
# - one node named after this host's short hostname, at 127.0.0.1; CPUs = max(nproc, 8) with
#   SlurmdParameters=config_overrides, so the array tasks and a concurrent resubmission all run at once even on
#   2 cores (each task asks for one CPU);
# - ProctrackType=proctrack/linuxproc and TaskPlugin=task/none: no cgroups needed (containers, CI runners);
# - SchedulerType=sched/builtin with sched_interval=2: jobs start as soon as they are submitted or eligible (no
#   backfill cycle, and a requeued job is looked at every 2 s instead of every 60 s);
# - ReturnToService=2, so a node that was down comes back by itself;
# - AuthInfo cred_expire=10: a requeued job becomes eligible cred_expire + 1 s after its requeue (Slurm's
#   default is 120 s, too long for a test suite);
# - JobRequeue=1 and no RequeueExit: jobs may be requeued, and it is jobs/farm/slurm.sh that requeues itself on
#   exit 75 (what the tests check). A site may instead set RequeueExit=75 (docs/operations.md explains both).
set -euo pipefail

dir=${VF_SLURM_DIR:-${TMPDIR:-/tmp}/videoforge-slurm}
port=${VF_SLURM_PORT:-6917}
conf=$dir/slurm.conf
host=$(hostname -s)

log() { printf 'cluster: %s\n' "$*" >&2; }

install_if_missing() {
  local missing=()
  for c in munged slurmctld slurmd sbatch; do command -v "$c" >/dev/null || missing+=("$c"); done
  ((${#missing[@]})) || return 0
  log "installing slurm-wlm and munge (missing: ${missing[*]})"
  local sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

pid_of() { [[ -s $dir/$1.pid ]] && cat "$dir/$1.pid" || true; }
alive() { local p; p=$(pid_of "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

write_conf() {
  local cpus; cpus=$(nproc); ((cpus >= 8)) || cpus=8
  cat >"$conf" <<EOF
# Written by tests/slurm/cluster.sh: a one-node test cluster.
ClusterName=videoforge-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
MessageTimeout=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  if alive slurmctld && alive slurmd && alive munged; then
    log "already running ($dir)"
    return 0
  fi
  stop_daemons 2>/dev/null || true
  install_if_missing
  [[ $(id -u) -eq 0 ]] || { log "needs root (slurmd runs jobs as their user)"; exit 2; }
  local t0=$SECONDS
  rm -rf "$dir"
  mkdir -p "$dir/state" "$dir/spool"
  chmod 700 "$dir"
  write_conf
  # munge: a fresh key and a private socket.
  dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
  chmod 600 "$dir/munge.key"
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
  wait_for 10 "munged" test -S "$dir/munge.socket"
  export SLURM_CONF=$conf
  slurmctld -c -f "$conf"
  wait_for 20 "slurmctld" scontrol ping
  slurmd -f "$conf"
  wait_for 60 "node $host idle" node_idle
  log "up in $((SECONDS - t0))s: node $host, $(sinfo -h -N -o '%c') CPUs, config $conf"
}

node_idle() { [[ $(sinfo -h -N -n "$host" -o '%t' 2>/dev/null) == idle* ]]; }

wait_for() {
  local limit=$1 what=$2; shift 2
  local t=0
  until "$@" >/dev/null 2>&1; do
    ((t < limit * 5)) || { log "$what did not come up within ${limit}s; logs in $dir"; tail -n 20 "$dir"/*.log >&2 || true; exit 1; }
    sleep 0.2
    t=$((t + 1))
  done
}

# Stops one daemon by its PID: TERM, then KILL after 10 s.
stop_one() {
  local p; p=$(pid_of "$1")
  [[ -n $p ]] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
  log "$1 ($p) ignored SIGTERM: SIGKILL"
  kill -KILL "$p" 2>/dev/null || true
}

stop_daemons() {
  stop_one slurmd
  stop_one slurmctld
  stop_one munged
}

stop() {
  if alive slurmctld; then
    export SLURM_CONF=$conf
    scancel --user "$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(squeue -h -u "$(id -un)" 2>/dev/null) ]] && break; sleep 0.2; done
  fi
  stop_daemons
  log "stopped"
}

status() {
  local d
  for d in munged slurmctld slurmd; do
    if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: stopped"; fi
  done
  if alive slurmctld; then SLURM_CONF=$conf sinfo -N; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
