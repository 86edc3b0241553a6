#!/usr/bin/env bash
# Benchmark (not a test): `mlres report` and the live dashboard on a campaign of N experiments
# with P metric points each, side by side with Optuna Dashboard showing the same trials
# (imported into an Optuna SQLite storage) in the same headless Chromium.
#
# Usage: bash bench/report.sh [N=1000] [P=100] [REPS=5]
#   MLRES_BIN=path   benchmark this mlres binary instead of building target/release/mlres
#
# The campaign is seeded through the real ledger API (crates/mlres-engine/examples/
# seed_campaign.rs): a human approval, N evaluated experiments whose captured stdout.log holds
# P lines `step=… loss=… accuracy=…`, and one experiment still in flight. Needs Debian's
# chromium and chromium-driver, python3-venv; makes a venv with optuna, optuna-dashboard and
# selenium from PyPI (in $CARGO_TARGET_DIR or target/, reused). Figures are min..max (median)
# over REPS runs.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
P=${2:-100}
REPS=${3:-5}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${MLRES_BIN:-}" ]; then
  cargo build --release --quiet -p mlres --bin mlres
  MLRES_BIN=$TARGET/release/mlres
fi
cargo build --quiet -p mlres-engine --example seed_campaign
SEED=$TARGET/debug/examples/seed_campaign
VENV=$TARGET/bench-report-venv
if [ ! -x "$VENV/bin/optuna-dashboard" ] || ! "$VENV/bin/python" -c 'import selenium' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q optuna optuna-dashboard selenium
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
export MLRES_STATE_DIR=$WORK/state
mkdir -p "$WORK/proj"
cat > "$WORK/proj/program.md" <<'EOP'
# Report benchmark

## Scope
A synthetic campaign seeded through the ledger API.

## Budget envelope
```yaml
max_jobs: 100000
max_walltime: 1000d
allowed_flavors: [cpu-basic]
max_timeout: 10m
max_concurrent: 1
backends: [local]
```

## Objective
```yaml
metric: accuracy
goal: maximize
```

## Job
```yaml
backend: local
command: ["/bin/echo", "accuracy=0"]
flavor: cpu-basic
timeout: 1m
```

## Search space
```yaml
method: random
seed: 1
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.01
  layers:
    values: [1, 2, 3, 4, 5, 6]
```
EOP
echo "== seeding $N experiments x $P metric lines (+1 in flight) through the ledger API"
CAMPAIGN=$("$SEED" "$MLRES_STATE_DIR" "$WORK/proj" "$N" "$P" --running)
RUNNING_EXP=$((N + 1))
RUNNING_LOG=$MLRES_STATE_DIR/jobs/$CAMPAIGN/e$RUNNING_EXP-a1/stdout.log

range() { # seconds, one per line -> "min..max (median)"
  sort -g | awk '{a[NR]=$1} END {printf "%.3f..%.3f s (median %.3f s)", a[1], a[NR], a[int((NR+1)/2)]}'
}

echo "== mlres report ($REPS runs)"
: > "$WORK/report.times"
for _ in $(seq "$REPS"); do
  s=$(date +%s.%N)
  "$MLRES_BIN" -C "$WORK/proj" report > /dev/null
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN {print e - s}' >> "$WORK/report.times"
done
echo "mlres report: $(range < "$WORK/report.times"), report.html $(du -h "$WORK/proj/runs/report.html" | cut -f1)"

echo "== importing the same trials into Optuna (SQLite)"
s=$(date +%s.%N)
TRIAL=$("$VENV/bin/python" bench/report_optuna_import.py "$WORK/proj/runs/report.html" "$WORK/optuna.db")
e=$(date +%s.%N)
echo "import: $(awk -v s="$s" -v e="$e" 'BEGIN {print e - s}') s"

OPORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/optuna-dashboard" "sqlite:///$WORK/optuna.db" --host 127.0.0.1 --port "$OPORT" > "$WORK/optuna.log" 2>&1 &
PIDS+=($!)
"$MLRES_BIN" -C "$WORK/proj" serve --port 0 > "$WORK/serve.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  grep -q '^Open: ' "$WORK/serve.out" 2>/dev/null && curl -s -o /dev/null "http://127.0.0.1:$OPORT/" && break
  sleep 0.1
done
URL=$(sed -n 's/^Open: //p' "$WORK/serve.out")

echo "== dashboards in headless Chromium ($REPS runs each)"
"$VENV/bin/python" bench/report_browser.py "$URL" "$((N + 1))" "$RUNNING_LOG" "$RUNNING_EXP" accuracy \
  "http://127.0.0.1:$OPORT/dashboard/studies/1" "$WORK/optuna.db" "$TRIAL" "$REPS" > "$WORK/browser.json"
for k in mlres_load optuna_load mlres_update optuna_update; do
  "$VENV/bin/python" -c "import json,sys; [print(v if v is not None else 1e9) for v in json.load(open(sys.argv[1]))[sys.argv[2]]]" \
    "$WORK/browser.json" "$k" > "$WORK/$k.times"
  echo "$k: $(range < "$WORK/$k.times")"
done
echo "(1e9 s: the change never became visible within 120 s)"
