#!/usr/bin/env bash
# Benchmark (not a test): what the slurm backend adds on a local one-node cluster, side by
# side with plain `sbatch --wait` driving the same job. Issue 16.
#
# Usage: sudo bash bench/slurm.sh [JOBS=5] [REPS=3]
#   MLRES_BIN=path   benchmark this mlres binary instead of building target/release/mlres
#                    (honours CARGO_TARGET_DIR)
#   MLRES_SLURM_POLL_MS  the supervisor's longest poll interval (default 2000, as shipped)
#
# Starts a throwaway cluster exactly like the tests (munged with its own key and socket,
# slurmctld, slurmd on free loopback ports, everything under one temp dir; Debian's
# `slurm-wlm` and `munge`, as root) and stops it by PID at the end.
#
# The job: write the wall clock (ns) to a file, print `score=<x>`. Per job:
#   submit->running: from just before the submitting command starts to the job's first
#                    line (plain: `sbatch --wait`; mlres: `mlres exp submit`, which includes
#                    the process start, the budget reservation in the ledger and the detached
#                    supervisor's `sbatch`).
#   submit->settled: plain: until `sbatch --wait` returns; mlres: `exp submit` + `exp wait`
#                    (until the experiment is settled and evaluated in the ledger).
#   loop, per exp:   one `mlres loop run` of JOBS experiments (max_concurrent 1) / JOBS.
# Each figure is the median of the JOBS jobs of one rerun; the summary gives the range
# (min..max) of those medians over REPS reruns.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-5}
REPS=${2:-3}
for p in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo; do
  if ! command -v "$p" >/dev/null 2>&1; then
    echo "bench/slurm.sh needs Slurm: apt-get install -y slurm-wlm munge ($p is missing); nothing was measured." >&2
    exit 1
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "bench/slurm.sh needs root (slurmd runs jobs as their user and the cluster runs as root); nothing was measured." >&2
  exit 1
fi
if [ -z "${MLRES_BIN:-}" ]; then
  cargo build --release --quiet -p mlres
  MLRES_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/mlres
fi
BIN=$(readlink -f "$MLRES_BIN")

WORK=$(mktemp -d /tmp/mlres-bench-slurm.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  SLURM_CONF=$WORK/slurm.conf scancel --full -u root >/dev/null 2>&1 || true
  sleep 1
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
D=$WORK/cluster
mkdir -p "$D"/{munge,spool/ctld,spool/d,log,run,dev}
chmod 711 "$D/munge"
: > "$D/dev/gpu0"; : > "$D/dev/gpu1"
NODE=$(hostname -s)
CPUS=$(nproc)
CTLD_PORT=$(free_port); D_PORT=$(free_port)
cat > "$D/slurm.conf" <<EOF
ClusterName=bench$$
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.sock
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
ReturnToService=2
SchedulerType=sched/builtin
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=20000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
echo "Name=gpu File=$D/dev/gpu[0-1]" > "$D/gres.conf"
cp "$D/slurm.conf" "$WORK/slurm.conf"
export SLURM_CONF=$D/slurm.conf
mungekey --create --keyfile="$D/munge/munge.key" >/dev/null
munged -F --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.sock" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/munged.seed" \
  >"$D/log/munged.out" 2>&1 &
PIDS+=($!)
until [ -S "$D/munge/munge.sock" ]; do sleep 0.05; done
slurmctld -D -i >"$D/log/slurmctld.out" 2>&1 &
PIDS+=($!)
until scontrol ping 2>/dev/null | grep -q 'is UP'; do sleep 0.05; done
slurmd -D -N "$NODE" >"$D/log/slurmd.out" 2>&1 &
PIDS+=($!)
until sinfo -h -o %T | grep -qx idle; do sleep 0.05; done
echo "== cluster: $(sinfo --version), one node ($CPUS CPUs), up; load $(cut -d' ' -f1-3 /proc/loadavg)"

STAMPS=$WORK/stamps
mkdir -p "$STAMPS"
ns() { date +%s%N; }
ms_between() { awk "BEGIN{printf \"%.0f\", ($2-$1)/1e6}"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
range() { printf '%s..%s ms' "$(printf '%s\n' "$@" | sort -g | head -1)" "$(printf '%s\n' "$@" | sort -g | tail -1)"; }

# plain: sbatch --wait of the same job script mlres writes.
plain_rep() {
  local s2r=() tot=()
  for ((i = 0; i < JOBS; i++)); do
    local tag=plain-$RANDOM-$i
    printf '#!/bin/sh\ndate +%%s%%N > %s/%s\necho score=%s\n' "$STAMPS" "$tag" "$i" > "$WORK/$tag.sh"
    local t0 t1
    t0=$(ns)
    sbatch --wait --parsable --export=NONE --time=1 --mem=100M --output="$WORK/$tag.out" "$WORK/$tag.sh" >/dev/null
    t1=$(ns)
    s2r+=("$(ms_between "$t0" "$(cat "$STAMPS/$tag")")")
    tot+=("$(ms_between "$t0" "$t1")")
  done
  echo "$(median "${s2r[@]}") $(median "${tot[@]}")"
}

program() {
  local n=$1
  mkdir -p "$WORK/proj"
  local vals
  vals=$(seq -s, 0 $((n - 1)))
  cat > "$WORK/proj/program.md" <<EOP
# slurm bench

## Goal
Measure.

## Budget envelope
\`\`\`yaml
max_jobs: 1000
max_walltime: 1000h
allowed_flavors: [cpu-basic]
max_timeout: 10m
max_concurrent: 1
backends: [slurm]
partitions: [debug]
\`\`\`

## Objective
\`\`\`yaml
metric: score
goal: maximize
\`\`\`

## Job
\`\`\`yaml
backend: slurm
command: ["/bin/sh", "-c", "date +%s%N > $STAMPS/\$MLRES_CAMPAIGN-{x}; echo score={x}"]
timeout: 1m
limits:
  memory: 100MB
\`\`\`

## Search space
\`\`\`yaml
method: grid
parameters:
  x:
    values: [$vals]
\`\`\`
EOP
}

SECRET_FILE=$WORK/approver-secret
printf 'bench-approval-secret\n' > "$SECRET_FILE"; chmod 600 "$SECRET_FILE"
fresh() {
  rm -rf "$WORK/state" "$WORK/proj"
  export MLRES_STATE_DIR=$WORK/state
  program "$1"
  "$BIN" setup approver --secret-file "$SECRET_FILE" >/dev/null
  "$BIN" -C "$WORK/proj" approve --secret-file "$SECRET_FILE" >/dev/null 2>&1
}
M() { env -u SLURM_JWT "$BIN" -C "$WORK/proj" "$@"; }

# mlres, one experiment at a time: exp submit, then exp wait.
mlres_rep() {
  fresh "$JOBS"
  local s2r=() tot=()
  for ((i = 0; i < JOBS; i++)); do
    local t0 t1 id camp
    t0=$(ns)
    id=$(M exp submit --config "x=$i" --hypothesis bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    M exp wait "$id" --json >/dev/null
    t1=$(ns)
    camp=$(M loop status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["campaign"]["id"])')
    s2r+=("$(ms_between "$t0" "$(cat "$STAMPS/$camp-$i")")")
    tot+=("$(ms_between "$t0" "$t1")")
  done
  echo "$(median "${s2r[@]}") $(median "${tot[@]}")"
}

loop_rep() {
  fresh "$JOBS"
  local t0 t1
  t0=$(ns)
  M loop run --json >/dev/null 2>"$WORK/loop.err"
  t1=$(ns)
  awk "BEGIN{printf \"%.0f\", ($t1-$t0)/1e6/$JOBS}"
}

p_s2r=(); p_tot=(); m_s2r=(); m_tot=(); l_per=()
for ((r = 0; r < REPS; r++)); do
  read -r a b < <(plain_rep); p_s2r+=("$a"); p_tot+=("$b")
  read -r a b < <(mlres_rep); m_s2r+=("$a"); m_tot+=("$b")
  l_per+=("$(loop_rep)")
done
echo "== $JOBS jobs per rerun, $REPS reruns (supervisor poll ≤ ${MLRES_SLURM_POLL_MS:-2000} ms); medians per rerun, range over reruns"
echo "   submit->running   sbatch --wait: $(range "${p_s2r[@]}")   mlres exp submit: $(range "${m_s2r[@]}")"
echo "   submit->settled   sbatch --wait: $(range "${p_tot[@]}")   mlres submit+wait: $(range "${m_tot[@]}")"
echo "   loop run          mlres: $(range "${l_per[@]}") per experiment"
echo "   mlres - plain (medians of medians): submit->running $(( $(median "${m_s2r[@]}") - $(median "${p_s2r[@]}") )) ms, submit->settled $(( $(median "${m_tot[@]}") - $(median "${p_tot[@]}") )) ms, loop per experiment $(( $(median "${l_per[@]}") - $(median "${p_tot[@]}") )) ms"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
