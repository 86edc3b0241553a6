#!/usr/bin/env bash
# Benchmark (not a test): the loop's cost per experiment at two campaign sizes (it must stay
# flat as a campaign grows), side by side with Optuna at the same sizes, and `loop status`
# latency on a ledger of 10,000+ events.
#
# Usage: bash bench/loop.sh [SMALL=300] [LARGE=3000] [REPS=3]
#   MLRES_BIN=path   benchmark this mlres binary instead of building target/release/mlres
#   BEFORE_BIN=path  also run an older build (e.g. the previous release) at the same settings
#
# Every run uses the same no-op job (/bin/echo score=<x>), max_concurrent 1, random search, on
# the same filesystem. Peers, side by side in this command: the bare job (fork+exec) and, when
# it can be installed from PyPI, Optuna (SQLite storage, RandomSampler) running the same job
# through subprocess. Each figure is the range (min..max) over REPS runs; the ratio compares
# the medians' per-experiment cost with Optuna's at the same N.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-300}
LARGE=${2:-3000}
REPS=${3:-3}
if [ -z "${MLRES_BIN:-}" ]; then
  cargo build --release --quiet -p mlres
  MLRES_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/mlres
fi
BIN=$MLRES_BIN
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export MLRES_STATE_DIR=$WORK/state
mkdir -p "$WORK/proj"

program() { # $1 = max_jobs
cat > "$WORK/proj/program.md" <<EOP
# Loop overhead benchmark

## Scope
No-op jobs.

## Budget envelope
\`\`\`yaml
max_jobs: $1
max_walltime: 1000d
allowed_flavors: [cpu-basic]
max_timeout: 1m
max_concurrent: 1
backends: [local]
\`\`\`

## Objective
\`\`\`yaml
metric: score
goal: maximize
\`\`\`

## Job
\`\`\`yaml
backend: local
command: ["/bin/echo", "score={x}"]
timeout: 1m
\`\`\`

## Search space
\`\`\`yaml
method: random
seed: 1
parameters:
  x: {distribution: uniform, min: 0, max: 1}
\`\`\`
EOP
}

ms() { date +%s%3N; }

# approve BIN: the human's approval (secret set up for a fresh state dir first); builds from
# before approval secrets existed (BEFORE_BIN) took --operator instead.
SECRET_FILE=$WORK/approver-secret
printf 'bench-approval-secret\n' > "$SECRET_FILE"; chmod 600 "$SECRET_FILE"
approve() {
  local bin=$1
  if "$bin" setup approver --help >/dev/null 2>&1; then
    [ -f "$MLRES_STATE_DIR/approver.phc" ] || "$bin" setup approver --secret-file "$SECRET_FILE" >/dev/null
    "$bin" -C "$WORK/proj" approve --secret-file "$SECRET_FILE" >/dev/null 2>&1
  else
    approve "$bin"
  fi
}

# per_exp BIN N -> ms per experiment of one `loop run` of N experiments on a fresh state dir
per_exp() {
  local bin=$1 n=$2
  rm -rf "$WORK/state" "$WORK/proj/runs"
  program "$n"
  approve "$bin"
  local t0 t1
  t0=$(ms); "$bin" -C "$WORK/proj" loop run --json >/dev/null 2>"$WORK/loop.err"; t1=$(ms)
  awk "BEGIN{printf \"%.2f\", ($t1-$t0)/$n}"
}

optuna_per_trial() {
  python3 - "$1" "$WORK/optuna-$RANDOM.db" <<'EOPY'
import sys, time, subprocess, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
n, db = int(sys.argv[1]), sys.argv[2]
study = optuna.create_study(storage=f"sqlite:///{db}", sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    out = subprocess.run(["/bin/echo", f"score={x}"], capture_output=True, text=True).stdout
    return float(out.split("=")[1])
t0 = time.time(); study.optimize(objective, n_trials=n); t = (time.time() - t0) * 1000
print(f"{t/n:.2f}")
EOPY
}

# range VALUES... -> "min..max (median m)"
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
range() { printf '%s..%s ms (median %s)' "$(printf '%s\n' "$@" | sort -g | head -1)" "$(printf '%s\n' "$@" | sort -g | tail -1)" "$(median "$@")"; }

have_optuna=0
if python3 -c 'import optuna' 2>/dev/null || pip install -q 'optuna>=4' >/dev/null 2>&1; then
  have_optuna=1
fi

echo "== peer: the bare job (fork+exec /bin/echo), $SMALL times"
t0=$(ms); for ((i = 0; i < SMALL; i++)); do /bin/echo score=0.5 >/dev/null; done; t1=$(ms)
echo "   $(awk "BEGIN{printf \"%.2f\", ($t1-$t0)/$SMALL}") ms per job"

for n in "$SMALL" "$LARGE"; do
  echo "== N = $n experiments (loop run, max_concurrent 1), $REPS runs each"
  m=(); for ((r = 0; r < REPS; r++)); do m+=("$(per_exp "$BIN" "$n")"); done
  echo "   mlres (this build):   $(range "${m[@]}") per experiment"
  if [ -n "${BEFORE_BIN:-}" ]; then
    b=(); for ((r = 0; r < REPS; r++)); do b+=("$(per_exp "$BEFORE_BIN" "$n")"); done
    echo "   mlres (BEFORE_BIN):   $(range "${b[@]}") per experiment"
  fi
  if [ "$have_optuna" = 1 ]; then
    o=(); for ((r = 0; r < REPS; r++)); do o+=("$(optuna_per_trial "$n")"); done
    echo "   Optuna (SQLite):      $(range "${o[@]}") per trial"
    echo "   ratio mlres/Optuna (medians): $(awk "BEGIN{printf \"%.2f\", $(median "${m[@]}")/$(median "${o[@]}")}")"
    if [ -n "${BEFORE_BIN:-}" ]; then
      echo "   ratio before/Optuna (medians): $(awk "BEGIN{printf \"%.2f\", $(median "${b[@]}")/$(median "${o[@]}")}")"
    fi
  else
    echo "   Optuna not installable here; no peer ratio"
  fi
done

echo "== loop status on a ledger of 10,000+ events"
rm -rf "$WORK/state" "$WORK/proj/runs"
events=0
while [ "$events" -lt 10000 ]; do
  more=$(( (10000 - events) / 4 + 10 ))
  program "$more"
  approve "$BIN"
  "$BIN" -C "$WORK/proj" loop run --fresh --json >/dev/null 2>>"$WORK/loop.err"
  events=$("$BIN" ledger events --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["seq"])')
done
echo "   ledger has $events events"
runs=20
t0=$(ms); for ((i = 0; i < runs; i++)); do "$BIN" -C "$WORK/proj" loop status --json >/dev/null; done; t1=$(ms)
echo "   loop status --json: $(awk "BEGIN{printf \"%.1f\", ($t1-$t0)/$runs}") ms per call (mean of $runs)"
t0=$(ms); "$BIN" ledger verify >/dev/null; t1=$(ms)
echo "   ledger verify: $((t1 - t0)) ms for $events events"
