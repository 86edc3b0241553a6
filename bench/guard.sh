#!/usr/bin/env bash
# Benchmark (not a test): `mlres guard` decision latency as a whole process (it runs on every
# tool call), over the guard's corpus (attacks + everyday commands), p50/p99.
# Peer, side by side: the floor of any Python hook (the ml-research plugin's guard is Python):
# `python3 -c` that only parses the same hook JSON and prints nothing.
# MLRES_BIN=path benchmarks that binary instead of building one (honours CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MLRES_BIN:-}" ]; then
  cargo build --release --quiet -p mlres
  MLRES_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/mlres"
fi
python3 - "$MLRES_BIN" crates/mlres-guard/tests/corpus/*.jsonl <<'EOPY'
import json, subprocess, sys, time, statistics, os, tempfile
mlres, files = sys.argv[1], sys.argv[2:]
inputs = []
for f in files:
    for line in open(f):
        line = line.strip()
        if not line:
            continue
        row = json.loads(line)
        hook = row.get("input", row)
        inputs.append(json.dumps(hook))
state = tempfile.mkdtemp()
env = dict(os.environ, MLRES_STATE_DIR=state)
def measure(cmd, rounds=5):
    lat = []
    for _ in range(rounds):
        for payload in inputs:
            t0 = time.perf_counter()
            subprocess.run(cmd, input=payload.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1], len(lat)
g50, g99, n = measure([mlres, "guard"])
p50, p99, _ = measure([sys.executable, "-c", "import json,sys; json.load(sys.stdin)"])
print(f"corpus: {len(inputs)} hook inputs x 5 rounds = {n} decisions")
print(f"mlres guard            p50 {g50:6.2f} ms   p99 {g99:6.2f} ms")
print(f"python3 json-only hook p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
print(f"ratio mlres/python     p50 {g50/p50:6.2f}      p99 {g99/p99:6.2f}")
EOPY
