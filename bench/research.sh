#!/usr/bin/env bash
# Benchmark (not a test): the research commands' latency, cold (empty cache) and warm (cached),
# against the local fake of HF papers / arXiv HTML / GitHub (mlres-fakehf), side by side with
# the peer: Python helpers in the style of the ml-research plugin's `scripts/papers.py` and
# `scripts/github.py` (PEP 723 scripts run with `uv run`, httpx + BeautifulSoup, as ml-intern's
# handlers they wrap). The plugin's own helper modules are not available here (its mlhelpers
# were not in the stored snapshot), so the peer does the same requests and parsing itself;
# it has no cache across processes, as the plugin's helpers have none.
#
# Needs network to PyPI once (uv, httpx, beautifulsoup4). Prints per command p50 (min..max over
# REPS runs) for mlres cold, mlres warm and the peer, and the ratios.
# MLRES_BIN / FAKE_BIN: binaries to use instead of building (honours CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-15}
target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${MLRES_BIN:-}" ] || [ -z "${FAKE_BIN:-}" ]; then
  cargo build --release --quiet -p mlres -p mlres-fakehf
  MLRES_BIN="$target/release/mlres"
  FAKE_BIN="$target/release/mlres-fakehf"
fi
work=$(mktemp -d)
trap 'kill $fake_pid 2>/dev/null || true; rm -rf "$work"' EXIT
# uv, in a venv of its own (cached in the target dir).
uvenv="$target/bench-uv"
if [ ! -x "$uvenv/bin/uv" ]; then
  python3 -m venv "$uvenv"
  "$uvenv/bin/pip" install --quiet uv
fi
UV="$uvenv/bin/uv"
"$FAKE_BIN" >"$work/fake.out" 2>&1 &
fake_pid=$!
for _ in $(seq 50); do grep -q listening "$work/fake.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/fake.out")

cat >"$work/papers.py" <<'EOF'
# /// script
# dependencies = ["httpx", "beautifulsoup4"]
# ///
import sys, json, re, httpx
from bs4 import BeautifulSoup
base, arxiv_html, op, arg = sys.argv[1:5]
c = httpx.Client(timeout=20, follow_redirects=True)
if op == "search":
    r = c.get(f"{base}/api/papers/search", params={"q": arg, "limit": 10})
    items = [i.get("paper", i) for i in r.json()]
    print("\n".join(f"{p['id']}  {p['title']}" for p in items))
elif op == "read":
    r = c.get(f"{arxiv_html}/html/{arg}")
    soup = BeautifulSoup(r.text, "html.parser")
    out = []
    for h in soup.find_all(["h2", "h3"]):
        if "ltx_title" in (h.get("class") or []):
            text = h.get_text(" ", strip=True)
            body = []
            for sib in h.find_next_siblings():
                if sib.name in ("h2", "h3"):
                    break
                body.append(sib.get_text(" ", strip=True))
            out.append({"title": text, "text": " ".join(body)[:8000]})
    print(json.dumps(out)[:2000])
EOF
cat >"$work/github.py" <<'EOF'
# /// script
# dependencies = ["httpx"]
# ///
import sys, httpx
api, repo, query = sys.argv[1:4]
import os
c = httpx.Client(timeout=20, headers={"Accept": "application/vnd.github+json",
                                      "Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}"})
meta = c.get(f"{api}/repos/{repo}").json()
tree = c.get(f"{api}/repos/{repo}/git/trees/{meta['default_branch']}", params={"recursive": "1"}).json()
hits = [t["path"] for t in tree["tree"] if t["type"] == "blob" and query in t["path"].lower()
        and any(k in t["path"] for k in ("example", "script", "notebook"))]
print("\n".join(hits[:20]))
EOF
# Warm uv's environments once (not timed): the peer's steady state.
"$UV" run --quiet "$work/papers.py" "$url" "$url/arxiv" search dpo >/dev/null
GITHUB_TOKEN=ghp_benchToken0000000000000000000000000 \
  "$UV" run --quiet "$work/github.py" "$url/github" huggingface/trl dpo >/dev/null

python3 - "$MLRES_BIN" "$UV" "$work" "$url" "$REPS" <<'EOPY'
import os, shutil, statistics, subprocess, sys, time
mlres, uv, work, url, reps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
env = dict(os.environ, HF_ENDPOINT=url, MLRES_ARXIV_HTML_ENDPOINT=f"{url}/arxiv",
           MLRES_AR5IV_ENDPOINT=f"{url}/ar5iv", MLRES_GITHUB_ENDPOINT=f"{url}/github",
           MLRES_ARXIV_ENDPOINT=f"{url}/arxiv-export", MLRES_S2_ENDPOINT=f"{url}/s2")
env.pop("HF_TOKEN", None)
# The fake allows 60 anonymous GitHub calls an hour, as GitHub does: both sides use a token.
env["GITHUB_TOKEN"] = "ghp_benchToken0000000000000000000000000"
cache = os.path.join(work, "cache")
env["MLRES_CACHE_DIR"] = cache
def once(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t) * 1000
cases = [
    ("papers search", [mlres, "papers", "search", "direct preference optimization", "--source", "hf"],
     [uv, "run", "--quiet", f"{work}/papers.py", url, f"{url}/arxiv", "search", "direct preference optimization"]),
    ("papers read", [mlres, "papers", "read", "2305.18290", "--section", "Experiments"],
     [uv, "run", "--quiet", f"{work}/papers.py", url, f"{url}/arxiv", "read", "2305.18290"]),
    ("github examples", [mlres, "github", "examples", "huggingface/trl", "dpo"],
     [uv, "run", "--quiet", f"{work}/github.py", f"{url}/github", "huggingface/trl", "dpo"]),
]
print(f"{reps} runs each; p50 per run set, min..max over 3 sets; ms")
print(f"{'command':16} {'mlres cold':>18} {'mlres warm':>18} {'python+uv':>18} {'peer/cold':>10} {'peer/warm':>10}")
for name, ours, peer in cases:
    sets = {"cold": [], "warm": [], "peer": []}
    for _ in range(3):
        cold, warm, py = [], [], []
        for _ in range(reps):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(once(ours))
            warm.append(once(ours))
            py.append(once(peer))
        sets["cold"].append(statistics.median(cold))
        sets["warm"].append(statistics.median(warm))
        sets["peer"].append(statistics.median(py))
    rng = lambda xs: f"{min(xs):7.1f}..{max(xs):7.1f}"
    r = lambda a, b: f"{min(a)/max(b):.0f}..{max(a)/min(b):.0f}x"
    print(f"{name:16} {rng(sets['cold']):>18} {rng(sets['warm']):>18} {rng(sets['peer']):>18} "
          f"{r(sets['peer'], sets['cold']):>10} {r(sets['peer'], sets['warm']):>10}")
EOPY
