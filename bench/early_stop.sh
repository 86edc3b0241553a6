#!/usr/bin/env bash
# Benchmark (not a test): does early stopping (`early_stop:` in the objective, successive
# halving on `step=` lines) find better models at EQUAL BUDGET? Each seed runs the same
# campaign twice side by side, with and without `early_stop`, through the real `mlres loop run`
# on the local backend, with the same walltime budget (max_walltime) and the same random search
# (method: random, seed = the bench seed). A trial sleeps EPOCH_SECS per epoch, so it costs
# walltime in proportion to the epochs it trains; a pruned trial is settled to what it used.
#
# Problems:
#   lcbench  LCBench task 167168 (YAHPO Gym surrogate, shared/bench-data/yahpo-lcbench, via
#            onnxruntime from PyPI), val_accuracy (%) at epoch 52, 7 hyperparameters
#   curve    a synthetic learning curve (lr and width set the final value, width the speed)
# Reported per problem and arm: median and IQR over seeds of the best final val_accuracy of
# a completed trial, and the median number of trials completed and pruned.
#
#   bench/early_stop.sh [SEEDS=5] [BUDGET=90s] [EPOCH_SECS=0.05]
#
# Needs /usr/bin/python3 (a venv with onnxruntime and numpy is made in the temp dir) and the LCBench
# surrogate (LCBENCH_DIR, default ../shared/bench-data/yahpo-lcbench beside the repo). Builds
# target/release/mlres unless MLRES_BIN points at a binary. KEEP=1 keeps the temp dir.
# EARLY_STOP='{min_step: 9, max_step: 52}' sets the early-stopping arm's `early_stop:`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SEEDS="${1:-5}"
BUDGET="${2:-90s}"
EPOCH_SECS="${3:-0.05}"
LCBENCH_DIR="${LCBENCH_DIR:-$ROOT/../shared/bench-data/yahpo-lcbench}"
EARLY_STOP="${EARLY_STOP:-{min_step: 1, max_step: 52, reduction_factor: 3, startup: 3\}}"
MODEL="$(readlink -f "$LCBENCH_DIR/model.onnx")"
[ -f "$MODEL" ] || { echo "no LCBench surrogate at $LCBENCH_DIR/model.onnx (set LCBENCH_DIR)" >&2; exit 1; }
# Not under /tmp: jobs run sandboxed with a private /tmp, and the venv must be visible to them.
mkdir -p "${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${CARGO_TARGET_DIR:-$ROOT/target}/early-stop-bench.XXXXXX")"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

if [ -z "${MLRES_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -q -p mlres --bin mlres)
  MLRES_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mlres"
fi
MLRES_BIN="$(readlink -f "$MLRES_BIN")"

echo "== venv + onnxruntime, numpy (PyPI)" >&2
# The system Python: jobs are sandboxed and see system directories, not e.g. ~/.pyenv.
/usr/bin/python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q onnxruntime numpy >&2
PY="$WORK/venv/bin/python"
TASK_CODE="$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['OpenML_task_id']['167168'])" "$LCBENCH_DIR/encoding.json")"
printf 'bench-approval-secret-0451' > "$WORK/secret"
chmod 600 "$WORK/secret"

# program <problem> <arm> <seed>
program() {
  local problem=$1 arm=$2 seed=$3 command space es=""
  case $problem in
    lcbench)
      command="[\"$PY\", \"{project}/lcbench_job.py\", \"{project}/model.onnx\", \"$TASK_CODE\", \"$EPOCH_SECS\", \"{batch_size}\", \"{learning_rate}\", \"{momentum}\", \"{weight_decay}\", \"{num_layers}\", \"{max_units}\", \"{max_dropout}\"]"
      space="  batch_size: {distribution: log_uniform_values, min: 16, max: 512}
  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  momentum: {distribution: uniform, min: 0.1, max: 0.99}
  weight_decay: {distribution: uniform, min: 0.00001, max: 0.1}
  num_layers: {distribution: int_uniform, min: 1, max: 5}
  max_units: {distribution: log_uniform_values, min: 64, max: 1024}
  max_dropout: {distribution: uniform, min: 0, max: 1}" ;;
    curve)
      command="[\"$PY\", \"{project}/curve_job.py\", \"{seed}\", \"$EPOCH_SECS\", \"{lr}\", \"{width}\"]"
      space="  lr: {distribution: log_uniform_values, min: 0.0001, max: 1}
  width: {distribution: uniform, min: 0, max: 1}" ;;
  esac
  [ "$arm" = asha ] && es="early_stop: $EARLY_STOP"
  cat <<MD
# early-stopping bench: $problem, $arm, seed $seed

## Budget envelope
\`\`\`yaml
max_jobs: 10000
max_walltime: $BUDGET
allowed_flavors: [cpu-basic]
max_timeout: 1m
max_concurrent: 1
backends: [local]
\`\`\`

## Objective
\`\`\`yaml
metric: val_accuracy
goal: maximize
max_consecutive_failures: 3
$es
\`\`\`

## Job
\`\`\`yaml
command: $command
timeout: 10s
limits: {memory: 2GiB}
\`\`\`

## Search space
\`\`\`yaml
method: random
seed: $seed
parameters:
$space
\`\`\`
MD
}

# campaign <problem> <arm> <seed>: runs it, prints "best completed pruned"
campaign() {
  local problem=$1 arm=$2 seed=$3 dir="$WORK/$1-$2-$3"
  mkdir -p "$dir/proj"
  # The job sees the project (its command names {project}), not this repo or shared/.
  cp "$ROOT/bench/early_stop/lcbench_job.py" "$ROOT/bench/early_stop/curve_job.py" "$dir/proj/"
  [ "$problem" = lcbench ] && cp "$MODEL" "$dir/proj/model.onnx"
  program "$problem" "$arm" "$seed" > "$dir/proj/program.md"
  export MLRES_STATE_DIR="$dir/state" HOME="$dir"
  "$MLRES_BIN" -C "$dir/proj" setup approver --secret-file "$WORK/secret" > /dev/null
  "$MLRES_BIN" -C "$dir/proj" approve --secret-file "$WORK/secret" > "$dir/approve.out" 2>&1 \
    || { cat "$dir/approve.out" >&2; exit 1; }
  "$MLRES_BIN" -C "$dir/proj" loop run > "$dir/loop.out" 2> "$dir/loop.err" || true
  "$MLRES_BIN" -C "$dir/proj" loop status --json --limit 100000 > "$dir/status.json"
  "$PY" - "$dir/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
exps = s["experiments"]
done = [e for e in exps if e["status"] == "completed" and e["metric"] is not None]
pruned = sum(e["status"] == "pruned" for e in exps)
best = max((e["metric"] for e in done), default=float("nan"))
print(f"{best} {len(done)} {pruned} {s['budget']['walltime_secs']['used']}")
PY
}

RESULTS="$WORK/results.txt"
: > "$RESULTS"
for seed in $(seq 1 "$SEEDS"); do
  for problem in lcbench curve; do
    campaign "$problem" none "$seed" > "$WORK/r-none" &
    p1=$!
    campaign "$problem" asha "$seed" > "$WORK/r-asha"
    wait "$p1"
    echo "$problem none $seed $(cat "$WORK/r-none")" >> "$RESULTS"
    echo "$problem asha $seed $(cat "$WORK/r-asha")" >> "$RESULTS"
    tail -n 2 "$RESULTS" >&2
  done
done

echo
echo "Early stopping at equal budget (max_walltime $BUDGET, $EPOCH_SECS s per epoch, 52 epochs, $SEEDS seeds)"
echo "early_stop: $EARLY_STOP"
"$PY" - "$RESULTS" <<'PY'
import sys
import numpy as np
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"{'problem':<8} {'arm':<14} {'best val_accuracy: median [IQR]':<34} {'completed':>9} {'pruned':>7} {'walltime s':>10}")
for problem in ["lcbench", "curve"]:
    for arm in ["none", "asha"]:
        r = [x for x in rows if x[0] == problem and x[1] == arm]
        if not r:
            continue
        best = np.array([float(x[3]) for x in r])
        q1, med, q3 = np.nanpercentile(best, [25, 50, 75])
        done = np.median([int(x[4]) for x in r])
        pruned = np.median([int(x[5]) for x in r])
        wall = np.median([int(x[6]) for x in r])
        name = "no early stop" if arm == "none" else "early_stop"
        print(f"{problem:<8} {name:<14} {med:>10.4f} [{q1:.4f}, {q3:.4f}]{'':<9} {done:>9.0f} {pruned:>7.0f} {wall:>10.0f}")
    a = {x[2]: float(x[3]) for x in rows if x[0] == problem and x[1] == "asha"}
    n = {x[2]: float(x[3]) for x in rows if x[0] == problem and x[1] == "none"}
    wins = sum(a[s] > n[s] for s in a if s in n)
    ties = sum(a[s] == n[s] for s in a if s in n)
    print(f"{problem:<8} early stopping better in {wins} of {len(a)} seeds (ties {ties})")
PY
