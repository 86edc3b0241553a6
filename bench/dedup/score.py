"""Scores both tools against the planted clusters and prints the side-by-side table.

argv: work_dir reps threshold result.json. Reads <work>/truth.json, corpus.jsonl, and per rep
ds-<i>.json, mlres-<i>.json, mlres-time-<i>.json.

A row is a positive when it is in a planted cluster; a tool flags a row when it puts it in a
near-duplicate group with another row. Recall = flagged positives / positives, precision =
flagged positives / flagged rows. Times are given as min-max over the reps, and so is the
throughput ratio of each rep (the two ran alternately, so a rep's ratio compares them under
the same load). A missed positive is classed by its best true Jaccard (word 3-gram shingles)
with another row of its cluster: at or above the threshold (a real loss) or below it (the
generator's edit went further than the threshold; no tool should report it). datasketch's
candidates are also scored verified on their true Jaccard, as mlres verifies its own.
"""
import json
import re
import sys

WORD = re.compile(r"[^\W_]+")


def shingles(text, n=3):
    w = WORD.findall(text.lower())
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a, b):
    return len(a & b) / len(a | b) if a or b else 1.0


def mlres_flagged(report):
    nd = report.get("near_duplicates") or {}
    rows = set()
    for g in nd.get("examples", []):
        rows.update(g["rows"])
    return rows, nd


def span(xs, fmt="{:.2f}"):
    lo, hi = min(xs), max(xs)
    return fmt.format(lo) if len(xs) == 1 else f"{fmt.format(lo)}-{fmt.format(hi)}"


def main():
    work, reps, threshold, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    truth = json.load(open(f"{work}/truth.json"))
    pos = {r for c in truth["clusters"] for r in c}
    cluster_of = {r: c for c in truth["clusters"] for r in c}
    n = truth["rows"]
    texts = {}
    with open(f"{work}/corpus.jsonl") as f:
        for i, line in enumerate(f, 1):
            if i in pos:
                texts[i] = shingles(json.loads(line)["text"])

    def best_j(r):
        return max(jaccard(texts[r], texts[o]) for o in cluster_of[r] if o != r)

    eligible = {r for r in pos if best_j(r) >= threshold}
    ds_runs = [json.load(open(f"{work}/ds-{i}.json")) for i in range(1, reps + 1)]
    ml_runs = [json.load(open(f"{work}/mlres-{i}.json")) for i in range(1, reps + 1)]
    ml_times = [json.load(open(f"{work}/mlres-time-{i}.json")) for i in range(1, reps + 1)]

    def stats(flagged):
        flagged = set(flagged)
        tp = len(flagged & pos)
        missed = pos - flagged
        lost = len(missed & eligible)
        return {
            "recall": tp / len(pos) if pos else 1.0,
            "recall_eligible": len(flagged & eligible) / len(eligible) if eligible else 1.0,
            "precision": tp / len(flagged) if flagged else 1.0,
            "flagged": len(flagged),
            "missed_at_or_above_threshold": lost,
            "missed_below_threshold": len(missed) - lost,
        }

    ds = stats(ds_runs[0]["flagged"])
    ml_rows, nd = mlres_flagged(ml_runs[0])
    expected = nd.get("near_duplicate_rows", 0) + nd.get("groups", 0)
    if len(ml_rows) != expected:
        print(f"warning: mlres listed {len(ml_rows)} rows of {expected} "
              f"(raise --examples)", file=sys.stderr)
    ml = stats(ml_rows)
    for run in ds_runs[1:]:
        assert stats(run["flagged"]) == ds, "datasketch is deterministic"
    ds_s = [r["seconds"] for r in ds_runs]
    ml_s = [t["seconds"] for t in ml_times]
    ds_c = [r["cpu_seconds"] for r in ds_runs]
    ml_c = [t["cpu_seconds"] for t in ml_times]
    ratios = [d / m for d, m in zip(ds_s, ml_s)]
    cpu_ratios = [d / m for d, m in zip(ds_c, ml_c)]
    print(f"rows: {n}, planted near-duplicate rows: {len(pos)} in {len(truth['clusters'])} clusters, "
          f"{len(eligible)} with a cluster mate at true Jaccard >= {threshold}")
    print(f"LSH: datasketch {ds_runs[0]['bands']}x{ds_runs[0]['rows_per_band']}, "
          f"mlres {nd.get('bands')}x{nd.get('rows_per_band')}; {reps} reps, run alternately")
    print(f"{'tool':<24}{'wall s':>14}{'CPU s':>14}{'flagged':>9}{'recall':>8}"
          f"{'recall>=t':>10}{'precision':>10}{'lost>=t':>8}{'lost<t':>7}")
    dsv = stats(ds_runs[0]["flagged_verified"])
    for name, st, s, c in [("datasketch MinHashLSH", ds, ds_s, ds_c),
                           ("  + exact verification", dsv, ds_s, ds_c),
                           ("mlres data audit", ml, ml_s, ml_c)]:
        print(f"{name:<24}{span(s):>14}{span(c):>14}{st['flagged']:>9}{st['recall']:>8.4f}"
              f"{st['recall_eligible']:>10.4f}{st['precision']:>10.4f}"
              f"{st['missed_at_or_above_threshold']:>8}{st['missed_below_threshold']:>7}")
    print(f"throughput ratio (datasketch s / mlres s, per rep): {span(ratios, '{:.1f}')}x wall clock, "
          f"{span(cpu_ratios, '{:.1f}')}x per CPU-second")
    json.dump({"rows": n, "reps": reps, "threshold": threshold,
               "lsh": {"datasketch": [ds_runs[0]["bands"], ds_runs[0]["rows_per_band"]],
                       "mlres": [nd.get("bands"), nd.get("rows_per_band")]},
               "datasketch": dict(ds, seconds=ds_s, cpu_seconds=ds_c),
               "datasketch_verified": dsv,
               "mlres": dict(ml, seconds=ml_s, cpu_seconds=ml_c),
               "ratio": ratios, "cpu_ratio": cpu_ratios}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
