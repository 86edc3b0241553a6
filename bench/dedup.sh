#!/usr/bin/env bash
# Near-duplicate detection, side by side: mlres data audit (MinHash LSH in Rust) against the
# Python datasketch MinHash + MinHashLSH, on one generated corpus with planted near-duplicate
# clusters, at equal parameters: the same threshold, permutations, shingles (word 3-grams)
# and LSH bands x rows (passed to datasketch as MinHashLSH(params=(bands, rows)) and to mlres
# as --bands). The two run alternately REPS times; prints the min-max of seconds for each and
# of the per-rep throughput ratio, and recall and precision (both are deterministic), with
# where each loses recall (planted rows missed whose best true Jaccard in their cluster is at
# or above the threshold, and those below it, which no tool should report).
#
#   bench/dedup.sh [rows=100000] [threshold=0.8] [num_perm=128] [bands=14] [reps=3]
#
# Needs python3 (a venv with datasketch is created in the temp dir, from PyPI) and builds
# target/release/mlres unless MLRES_BIN points at a binary. Set KEEP=1 to keep the temp dir.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROWS="${1:-100000}"
THRESHOLD="${2:-0.8}"
NUM_PERM="${3:-128}"
BANDS="${4:-14}"
REPS="${5:-3}"
ROWS_PER_BAND=$((NUM_PERM / BANDS))
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlres-dedup-bench.XXXXXX")"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

if [ -z "${MLRES_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -q -p mlres --bin mlres)
  MLRES_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mlres"
fi

echo "== venv + datasketch (PyPI)" >&2
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q datasketch >&2

echo "== corpus" >&2
python3 "$ROOT/bench/dedup/gen.py" "$WORK" "$ROWS"
echo "== $BANDS bands x $ROWS_PER_BAND rows, threshold $THRESHOLD, $NUM_PERM permutations, word 3-grams, $REPS reps" >&2

for i in $(seq 1 "$REPS"); do
  echo "== rep $i: datasketch" >&2
  "$WORK/venv/bin/python" "$ROOT/bench/dedup/ds.py" "$WORK/corpus.jsonl" "$THRESHOLD" "$NUM_PERM" 3 \
    "$BANDS" "$ROWS_PER_BAND" > "$WORK/ds-$i.json"
  echo "== rep $i: mlres" >&2
  python3 "$ROOT/bench/dedup/run_mlres.py" "$WORK/mlres-$i.json" \
    "$MLRES_BIN" data audit "$WORK/corpus.jsonl" --only near-dup --json \
    --near-dup-threshold "$THRESHOLD" --num-perm "$NUM_PERM" --bands "$BANDS" --shingle word:3 \
    --examples 10000000 > "$WORK/mlres-time-$i.json"
  # Exit 0 = nothing found, 6 = findings; anything else is a failure.
  CODE=$(python3 -c "import json; print(json.load(open('$WORK/mlres-time-$i.json'))['code'])")
  if [ "$CODE" != 0 ] && [ "$CODE" != 6 ]; then
    echo "mlres data audit failed with exit $CODE" >&2
    exit 1
  fi
done

echo >&2
python3 "$ROOT/bench/dedup/score.py" "$WORK" "$REPS" "$THRESHOLD" "$WORK/result.json"
[ "${KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || true
