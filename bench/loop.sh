#!/usr/bin/env bash
# Benchmark (not a test): the loop's own overhead per experiment, and `loop status` latency on a
# ledger of 10,000+ events. Usage: bash bench/loop.sh [N_EXPERIMENTS=1000]
#
# Overhead = (loop wall time - the same jobs run back to back without mlres) / N. The peer run
# side by side is the bare job itself (fork+exec of /bin/echo) and, when it can be installed
# from PyPI, Optuna 4/5 with its SQLite storage driving the same no-op job through subprocess.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
cargo build --release --quiet
BIN=$PWD/target/release/mlres
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

echo "== peer: $N bare executions of the job (fork+exec /bin/echo)"
t0=$(ms); for ((i = 0; i < N; i++)); do /bin/echo score=0.5 >/dev/null; done; t1=$(ms)
bare=$((t1 - t0))
echo "   ${bare} ms total, $(awk "BEGIN{printf \"%.2f\", $bare/$N}") ms per job"

echo "== mlres loop run: $N no-op experiments, max_concurrent 1"
program "$N"
"$BIN" -C "$WORK/proj" approve --operator >/dev/null 2>&1
t0=$(ms); "$BIN" -C "$WORK/proj" loop run --json >/dev/null 2>"$WORK/loop.err"; t1=$(ms)
loop=$((t1 - t0))
per=$(awk "BEGIN{printf \"%.2f\", $loop/$N}")
over=$(awk "BEGIN{printf \"%.2f\", ($loop-$bare)/$N}")
echo "   ${loop} ms total, ${per} ms per experiment, overhead ${over} ms per experiment"
echo "   (reserve + submit + sandboxed detached supervisor + settle + evaluate, each a durable transaction)"

if python3 -c 'import optuna' 2>/dev/null || pip install -q 'optuna>=4' >/dev/null 2>&1; then
  echo "== peer: Optuna (SQLite storage, TPE default sampler replaced by random) running the same job via subprocess"
  python3 - "$N" "$WORK/optuna.db" <<'EOPY'
import sys, time, subprocess, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
n, db = int(sys.argv[1]), sys.argv[2]
study = optuna.create_study(storage=f"sqlite:///{db}", sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    out = subprocess.run(["/bin/echo", f"score={x}"], capture_output=True, text=True).stdout
    return float(out.split("=")[1])
t0 = time.time(); study.optimize(objective, n_trials=n); t = (time.time() - t0) * 1000
print(f"   {t:.0f} ms total, {t/n:.2f} ms per trial")
open(db + ".ms", "w").write(str(t))
EOPY
  opt=$(cat "$WORK/optuna.db.ms")
  echo "   ratio mlres/optuna per experiment: $(awk "BEGIN{printf \"%.2f\", $loop/$opt}") (mlres also sandboxes each job and survives SIGKILL)"
else
  echo "== peer: Optuna not installable here; skipped"
fi

echo "== loop status on a ledger of 10,000+ events"
events=$("$BIN" ledger events --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["seq"])')
while [ "$events" -lt 10000 ]; do
  more=$(( (10000 - events) / 4 + 10 ))
  program "$more"
  "$BIN" -C "$WORK/proj" approve --operator >/dev/null 2>&1
  "$BIN" -C "$WORK/proj" loop run --fresh --json >/dev/null 2>>"$WORK/loop.err"
  events=$("$BIN" ledger events --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["seq"])')
done
echo "   ledger has $events events"
runs=20
t0=$(ms); for ((i = 0; i < runs; i++)); do "$BIN" -C "$WORK/proj" loop status --json >/dev/null; done; t1=$(ms)
echo "   loop status --json: $(awk "BEGIN{printf \"%.1f\", ($t1-$t0)/$runs}") ms per call (mean of $runs)"
t0=$(ms); "$BIN" ledger verify >/dev/null; t1=$(ms)
echo "   ledger verify: $((t1 - t0)) ms for $events events"
