#!/usr/bin/env bash
# Benchmark (not a test): what broker mode adds per call. `mlres loop status --json` and
# `mlres exp submit` (a cheap local shell job) through the broker's Unix socket, side by side
# with the same commands in single-user mode, same binary, same client user, same parameters.
# Issue 11 requires the broker to add at most 1 ms per call at p50.
#
# Usage: sudo bash bench/broker.sh [STATUS=200] [SUBMITS=50] [REPS=3]
#   MLRES_BIN=path   benchmark this mlres binary instead of building target/release/mlres
#                    (honours CARGO_TARGET_DIR)
#
# Needs root: `mlres setup broker` creates the broker's system user, and the client runs as a
# second user (setpriv), as in a real deployment. Both users (mlres-bench-broker,
# mlres-bench-agent unless BROKER_USER/AGENT_USER say otherwise) are removed at the end when
# this script created them. Everything else lives in one temp dir under /tmp.
#
# Each call is timed as a whole process from a Python driver (fork, exec, the command, exit);
# broker and single-user calls alternate one by one, and the jobs a pair of submits started
# are waited for (untimed) before the next call. Load from other processes still does not fall
# on both modes equally: a brokered call passes through three processes (client, broker, the
# broker's child), so busy CPUs add more to it; the load average is shown before and after.
# Per mode: p50 and p90 of each rerun; "added" is p50(broker) - p50(single-user) of the same
# rerun. The summary gives each figure's range (min..max) over the REPS reruns.
set -euo pipefail
cd "$(dirname "$0")/.."
STATUS=${1:-200}
SUBMITS=${2:-50}
REPS=${3:-3}
if [ "$(id -u)" != 0 ]; then
  echo "bench/broker.sh needs root: it creates the broker's system user (mlres setup broker) and runs" >&2
  echo "the client as another user. Run it with sudo; nothing was measured." >&2
  exit 1
fi
if [ -z "${MLRES_BIN:-}" ]; then
  cargo build --release --quiet -p mlres
  MLRES_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/mlres
fi
BIN=$(readlink -f "$MLRES_BIN")
BROKER_USER=${BROKER_USER:-mlres-bench-broker}
AGENT_USER=${AGENT_USER:-mlres-bench-agent}
PY=/usr/bin/python3 # the client user cannot reach a per-user Python (pyenv in root's home)

WORK=$(mktemp -d /tmp/mlres-bench-broker.XXXXXX)
chmod 755 "$WORK" # the broker's and the agent's users traverse it
BROKER_PID=
MADE_USERS=()
cleanup() {
  if [ -n "$BROKER_PID" ]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  # Jobs the submits started are detached supervisors of their own; give them a moment.
  sleep 1
  rm -rf "$WORK"
  for u in "${MADE_USERS[@]}"; do
    userdel "$u" 2>/dev/null || true
    groupdel "$u" 2>/dev/null || true
  done
}
trap cleanup EXIT

id "$BROKER_USER" >/dev/null 2>&1 || MADE_USERS+=("$BROKER_USER") # setup broker creates it
if ! id "$AGENT_USER" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir "$WORK/agent" \
    --shell /usr/sbin/nologin "$AGENT_USER"
  MADE_USERS+=("$AGENT_USER")
fi
AGENT_UID=$(id -u "$AGENT_USER")
AGENT_GID=$(id -g "$AGENT_USER")

# The agent's home: its approval secret (0600, its own) and its single-user state dir.
mkdir -p "$WORK/agent"
printf 'bench-approval-secret\n' > "$WORK/agent/secret"
chmod 600 "$WORK/agent/secret"
chown -R "$AGENT_UID:$AGENT_GID" "$WORK/agent"
chmod 700 "$WORK/agent"
install -m 600 /dev/null "$WORK/root-secret"
printf 'bench-approval-secret\n' > "$WORK/root-secret"

B=$WORK/broker
"$BIN" setup broker --user "$BROKER_USER" --client "$AGENT_USER" \
  --broker-state-dir "$B/state" --socket "$B/run/broker.sock" --install-dir "$B/bin" \
  --config "$B/etc/broker.json" --unit-dir "$B/unit" --no-systemd \
  --secret-file "$WORK/root-secret" --json > "$WORK/setup.json"
BROKER_UID=$(id -u "$BROKER_USER")
BROKER_GID=$(id -g "$BROKER_USER")
chmod 755 "$B"
# The environment `runuser -u USER` (the command setup broker prints) would give it.
setpriv --reuid="$BROKER_UID" --regid="$BROKER_GID" --clear-groups -- \
  env -i PATH=/usr/bin:/bin HOME="$B/state" USER="$BROKER_USER" LOGNAME="$BROKER_USER" LANG=C.UTF-8 \
  "$B/bin/mlres" broker serve --config "$B/etc/broker.json" 2> "$WORK/broker.log" &
BROKER_PID=$!
for _ in $(seq 100); do [ -S "$B/run/broker.sock" ] && break; sleep 0.05; done
[ -S "$B/run/broker.sock" ] || { cat "$WORK/broker.log" >&2; echo "the broker did not start" >&2; exit 1; }

# Two identical projects (one ledger each: a project's runs/ names the ledger that wrote it).
# The broker's must be readable by its user and its runs/ writable: group = the broker's.
program() {
cat <<'EOP'
# Broker overhead benchmark

## Scope
Shell jobs that print a score.

## Budget envelope
```yaml
max_jobs: 100000
max_walltime: 10000d
allowed_flavors: [cpu-basic]
max_timeout: 1m
max_concurrent: 100000
backends: [local]
```

## Objective
```yaml
metric: score
goal: maximize
```

## Job
```yaml
backend: local
command: ["/bin/sh", "-c", "echo score={x}"]
flavor: cpu-basic
timeout: 1m
```

## Search space
```yaml
method: random
seed: 1
parameters:
  x: {distribution: uniform, min: 0, max: 1}
```
EOP
}
for p in single broker; do
  mkdir -p "$WORK/proj-$p"
  program > "$WORK/proj-$p/program.md"
done
chown -R "$AGENT_UID:$AGENT_GID" "$WORK/proj-single"
chown -R "$AGENT_UID:$BROKER_GID" "$WORK/proj-broker"
chmod 2770 "$WORK/proj-broker"
chmod 644 "$WORK/proj-broker/program.md"

as_agent() {
  setpriv --reuid="$AGENT_UID" --regid="$AGENT_GID" --clear-groups -- \
    env -i PATH=/usr/bin:/bin HOME="$WORK/agent" LANG=C.UTF-8 "$@"
}
SINGLE_ENV=(MLRES_STATE_DIR="$WORK/agent/state")
BROKER_ENV=(MLRES_BROKER_SOCKET="$B/run/broker.sock")
quiet() { "$@" > "$WORK/step.log" 2>&1 || { cat "$WORK/step.log" >&2; exit 1; }; }
quiet as_agent "${SINGLE_ENV[@]}" "$BIN" setup approver --secret-file "$WORK/agent/secret"
quiet as_agent "${SINGLE_ENV[@]}" "$BIN" -C "$WORK/proj-single" approve --secret-file "$WORK/agent/secret"
quiet as_agent "${BROKER_ENV[@]}" "$BIN" -C "$WORK/proj-broker" approve --secret-file "$WORK/agent/secret"
as_agent "${BROKER_ENV[@]}" "$BIN" broker status --json > "$WORK/broker-status.json"
grep -q '"mode": "broker"' "$WORK/broker-status.json" || {
  cat "$WORK/broker-status.json" >&2; echo "the client is not in broker mode" >&2; exit 1; }

echo "mlres: $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"
echo "client $AGENT_USER (uid $AGENT_UID); broker $BROKER_USER (uid $BROKER_UID) on $B/run/broker.sock"
echo "$STATUS loop status --json and $SUBMITS exp submit per mode per rerun, $REPS reruns, calls alternating"
# Broker mode hands each call from the client to the broker to its forked child and back:
# on a machine whose CPUs are busy, every hand-off can wait for a CPU, so say how busy it was.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
trap 'echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"; cleanup' EXIT
as_agent "$PY" - "$BIN" "$WORK" "$STATUS" "$SUBMITS" "$REPS" <<'EOPY'
import json, os, subprocess, sys, time
bin_, work, n_status, n_submit, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
base = {"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
modes = {
    "single-user": (dict(base, MLRES_STATE_DIR=f"{work}/agent/state"), f"{work}/proj-single"),
    "broker": (dict(base, MLRES_BROKER_SOCKET=f"{work}/broker/run/broker.sock"), f"{work}/proj-broker"),
}

last_id = {}

def call(mode, args):
    env, proj = modes[mode]
    t0 = time.perf_counter()
    r = subprocess.run([bin_, "-C", proj, *args], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        sys.exit(f"{mode}: mlres {' '.join(args)} exited {r.returncode}: {r.stderr.decode()[-500:]}")
    if args[:2] == ["exp", "submit"]:
        last_id[mode] = json.loads(r.stdout)["id"]
    return dt

def settle():
    # Untimed: wait for the jobs the last submits started, so they do not load the next calls.
    for m, i in last_id.items():
        env, proj = modes[m]
        subprocess.run([bin_, "-C", proj, "exp", "wait", str(i), "--timeout", "1m", "--json"], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last_id.clear()

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

seq = 0
def submit_args():
    global seq
    seq += 1
    return ["exp", "submit", "--config", f"x={(seq % 9973) / 9973:.6f}", "--hypothesis", "bench", "--json"]

results = {}  # (what, mode) -> list of (p50, p90) per rerun
for rep in range(reps):
    for what, n, args in (("loop status --json", n_status, lambda: ["loop", "status", "--json"]),
                          ("exp submit", n_submit, submit_args)):
        lat = {m: [] for m in modes}
        order = list(modes)
        for i in range(n):
            a = args()
            for m in (order if i % 2 == 0 else order[::-1]):
                lat[m].append(call(m, a))
            settle()
        for m in modes:
            results.setdefault((what, m), []).append((pct(lat[m], 50), pct(lat[m], 90)))
        s50, b50 = pct(lat["single-user"], 50), pct(lat["broker"], 50)
        print(f"  rerun {rep + 1}: {what:<20} single-user p50 {s50:6.2f} p90 {pct(lat['single-user'], 90):6.2f} | "
              f"broker p50 {b50:6.2f} p90 {pct(lat['broker'], 90):6.2f} | added p50 {b50 - s50:+6.2f} ms", flush=True)

def rng(xs):
    return f"{min(xs):6.2f}..{max(xs):6.2f}"
print(f"summary over {reps} reruns (ms, min..max of the reruns):")
for what in ("loop status --json", "exp submit"):
    s, b = results[(what, "single-user")], results[(what, "broker")]
    added = [bb[0] - ss[0] for ss, bb in zip(s, b)]
    print(f"  {what}")
    print(f"    single-user  p50 {rng([x[0] for x in s])}   p90 {rng([x[1] for x in s])}")
    print(f"    broker       p50 {rng([x[0] for x in b])}   p90 {rng([x[1] for x in b])}")
    print(f"    added by the broker at p50: {rng(added)}  (issue 11: at most 1 ms)"
          f"  ratio broker/single p50: {rng([bb[0] / ss[0] for ss, bb in zip(s, b)])}")
EOPY
