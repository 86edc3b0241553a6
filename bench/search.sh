#!/usr/bin/env bash
# Benchmark (not a test): mlres' search proposers against Optuna's, side by side in one command.
#
#   bash bench/search.sh [SEEDS=10] [TRIALS=100] [FULL_SEEDS=2] [FULL_TRIALS=50]
#
#   LCBENCH_DATA=dir  the YAHPO Gym LCBench surrogate folder (model.onnx, encoding.json);
#                     default ../shared/bench-data/yahpo-lcbench next to the repo
#   VENV=dir          reuse this Python venv (needs optuna, onnxruntime, numpy); default a
#                     fresh one in the temp dir, from PyPI
#   MLRES_BIN=path    the mlres binary for part 2 (default: build target/release/mlres)
#   PARTS="1 2"       which parts to run
#
# Part 1, proposers: Branin, Hartmann6 and LCBench tasks 167168 and 168329 (val accuracy at
# epoch 52, the surrogate through onnxruntime), SEEDS seeds each, TRIALS sequential trials.
# mlres bayes, tpe and random (through `search_ask`, a persistent process that answers every ask from
# the whole history, as the loop does from its ledger) against Optuna TPE (defaults; Optuna 5's
# multivariate=True measured identical, `--methods optuna-tpe-mv` in search.py) and Optuna random (ask/tell, in-memory storage), all evaluated by the same
# Python functions in one process. Median [IQR] of the best value after 10/25/50/100 trials,
# seeds reaching the target (with median trials to it), proposer time per trial, wall time per
# campaign.
#
# Part 2, the full loop: `mlres loop run` with method: bayes and tpe against Optuna TPE with SQLite
# storage, both running the same job per trial (a Python process evaluating the LCBench
# surrogate, task 167168), FULL_SEEDS seeds of FULL_TRIALS trials; then the same with a no-op
# job (/bin/echo) to isolate the loop's own cost per experiment.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SEEDS=${1:-10}
TRIALS=${2:-100}
FULL_SEEDS=${3:-2}
FULL_TRIALS=${4:-50}
DATA=${LCBENCH_DATA:-$ROOT/../shared/bench-data/yahpo-lcbench}
if [ ! -f "$DATA/model.onnx" ]; then
  echo "no LCBench surrogate in $DATA (set LCBENCH_DATA to the yahpo-lcbench folder)" >&2
  exit 2
fi
DATA=$(cd "$DATA" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlres-search-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release --quiet -p mlres-policy --example search_ask)
ASK=$TARGET/release/examples/search_ask
if [ -z "${VENV:-}" ]; then
  VENV=$WORK/venv
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q optuna onnxruntime numpy
fi
PY=$VENV/bin/python

PARTS=${PARTS:-1 2}
if [[ " $PARTS " == *" 1 "* ]]; then
  echo "# Part 1: proposers"
  "$PY" "$ROOT/bench/search.py" --ask "$ASK" --data "$DATA" --seeds "$SEEDS" --trials "$TRIALS"
fi
[[ " $PARTS " == *" 2 "* ]] || exit 0

if [ -z "${MLRES_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet -p mlres --bin mlres)
  MLRES_BIN=$TARGET/release/mlres
fi
export MLRES_STATE_DIR=$WORK/state
SECRET_FILE=$WORK/approver-secret
printf 'bench-approval-secret\n' > "$SECRET_FILE"; chmod 600 "$SECRET_FILE"
# A job sees system directories and the project (read-only), not $HOME: its venv is made from
# the system interpreter inside the project, with the surrogate beside it. Optuna runs the same
# job with the same interpreter.
mkdir -p "$WORK/proj/lcbench"
cp "$DATA/model.onnx" "$DATA/encoding.json" "$WORK/proj/lcbench/"
cp "$ROOT/bench/lcbench_job.py" "$WORK/proj/"
/usr/bin/python3 -m venv "$WORK/proj/.venv"
"$WORK/proj/.venv/bin/pip" install -q onnxruntime numpy
JOB_PY=$WORK/proj/.venv/bin/python

# program SEED N JOB-COMMAND METRIC METHOD
program() {
cat > "$WORK/proj/program.md" <<EOP
# Search benchmark

## Scope
LCBench surrogate jobs.

## Budget envelope
\`\`\`yaml
max_jobs: $2
max_walltime: 1000d
allowed_flavors: [cpu-basic]
max_timeout: 1m
max_concurrent: 1
backends: [local]
\`\`\`

## Objective
\`\`\`yaml
metric: $4
goal: maximize
\`\`\`

## Job
\`\`\`yaml
backend: local
command: $3
timeout: 1m
limits: {memory: 4GiB}
\`\`\`

## Search space
\`\`\`yaml
method: $5
seed: $1
parameters:
  batch_size: {distribution: int_uniform, min: 16, max: 512, log: true}
  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  max_dropout: {distribution: uniform, min: 0, max: 1}
  max_units: {distribution: int_uniform, min: 64, max: 1024, log: true}
  momentum: {distribution: uniform, min: 0.1, max: 0.99}
  num_layers: {distribution: int_uniform, min: 1, max: 5}
  weight_decay: {distribution: uniform, min: 0.00001, max: 0.1}
\`\`\`
EOP
}

LCB_JOB="[\"{project}/.venv/bin/python\", \"{project}/lcbench_job.py\", --data, \"{project}/lcbench\", --task, \"167168\", --batch_size, \"{batch_size}\", --learning_rate, \"{learning_rate}\", --max_dropout, \"{max_dropout}\", --max_units, \"{max_units}\", --momentum, \"{momentum}\", --num_layers, \"{num_layers}\", --weight_decay, \"{weight_decay}\"]"
NOOP_JOB='["/bin/echo", "score={max_dropout}"]'

# mlres_run SEED N JOB METRIC METHOD -> "best ms_per_experiment"
mlres_run() {
  rm -rf "$WORK/state" "$WORK/proj/runs"
  program "$1" "$2" "$3" "$4" "$5"
  "$MLRES_BIN" setup approver --secret-file "$SECRET_FILE" >/dev/null 2>&1
  "$MLRES_BIN" -C "$WORK/proj" approve --secret-file "$SECRET_FILE" >/dev/null 2>&1
  local t0 t1
  t0=$(date +%s%3N)
  "$MLRES_BIN" -C "$WORK/proj" loop run --json > "$WORK/loop.json" 2>"$WORK/loop.err" || {
    echo "mlres loop run failed:" >&2; tail -5 "$WORK/loop.err" >&2
    "$MLRES_BIN" -C "$WORK/proj" exp status 1 >&2 || true
    exit 1
  }
  t1=$(date +%s%3N)
  "$PY" -c "import json,sys; s=json.load(open('$WORK/loop.json')); print(s['best']['metric'], ($t1-$t0)/$2)"
}

# optuna_run SEED N lcbench|noop -> "best ms_per_trial"
optuna_run() {
  "$PY" - "$1" "$2" "$3" "$WORK/optuna-$1-$3.db" "$WORK/proj/lcbench_job.py" "$WORK/proj/lcbench" "$JOB_PY" <<'EOPY'
import subprocess, sys, time, warnings
import optuna
warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)
seed, n, kind, db, job, data, py = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
study = optuna.create_study(storage=f"sqlite:///{db}", sampler=optuna.samplers.TPESampler(seed=seed), direction="maximize")
def objective(t):
    c = {"batch_size": t.suggest_int("batch_size", 16, 512, log=True),
         "learning_rate": t.suggest_float("learning_rate", 1e-4, 0.1, log=True),
         "max_dropout": t.suggest_float("max_dropout", 0, 1),
         "max_units": t.suggest_int("max_units", 64, 1024, log=True),
         "momentum": t.suggest_float("momentum", 0.1, 0.99),
         "num_layers": t.suggest_int("num_layers", 1, 5),
         "weight_decay": t.suggest_float("weight_decay", 1e-5, 0.1)}
    if kind == "noop":
        argv = ["/bin/echo", f"score={c['max_dropout']}"]
    else:
        argv = [py, job, "--data", data, "--task", "167168"] + [x for k, v in c.items() for x in (f"--{k}", str(v))]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(out.strip().split("=")[1])
t0 = time.time(); study.optimize(objective, n_trials=n); t = (time.time() - t0) * 1000
print(study.best_value, t / n)
EOPY
}

echo
echo "# Part 2: the full loop, LCBench 167168 as a Python job per trial, $FULL_SEEDS seeds x $FULL_TRIALS trials"
echo "| seed | mlres bayes best | ms/experiment | mlres tpe best | ms/experiment | Optuna TPE (SQLite) best | ms/trial |"
echo "|---|---|---|---|---|---|---|"
for ((s = 0; s < FULL_SEEDS; s++)); do
  read -r gb gt < <(mlres_run "$s" "$FULL_TRIALS" "$LCB_JOB" val_pct bayes)
  read -r mb mt < <(mlres_run "$s" "$FULL_TRIALS" "$LCB_JOB" val_pct tpe)
  read -r ob ot < <(optuna_run "$s" "$FULL_TRIALS" lcbench)
  printf '| %s | %.2f | %.0f | %.2f | %.0f | %.2f | %.0f |\n' "$s" "$gb" "$gt" "$mb" "$mt" "$ob" "$ot"
done
echo
echo "# Part 2b: the same campaign with a no-op job (/bin/echo): the loop's own cost per experiment"
read -r _ mt < <(mlres_run 0 "$FULL_TRIALS" "$NOOP_JOB" score tpe)
read -r _ ot < <(optuna_run 0 "$FULL_TRIALS" noop)
printf 'mlres loop run (tpe, %s experiments): %.1f ms/experiment; Optuna TPE + SQLite: %.1f ms/trial\n' "$FULL_TRIALS" "$mt" "$ot"
