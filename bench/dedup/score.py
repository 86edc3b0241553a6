"""Scores both tools against the planted clusters and prints the side-by-side table.

A row is a positive when it is in a planted cluster; a tool flags a row when it puts it in a
near-duplicate group with another row. Recall = flagged positives / positives, precision =
flagged positives / flagged rows.
"""
import json
import sys


def mlres_flagged(report):
    nd = report.get("near_duplicates") or {}
    rows = set()
    for g in nd.get("examples", []):
        rows.update(g["rows"])
    return rows, nd


def main():
    truth_path, ds_path, ml_path, ml_time_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    ml_time = json.load(open(ml_time_path))
    ml_secs, ml_cpu = ml_time["seconds"], ml_time["cpu_seconds"]
    truth = json.load(open(truth_path))
    pos = {r for c in truth["clusters"] for r in c}
    ds = json.load(open(ds_path))
    ml = json.load(open(ml_path))
    ml_rows, nd = mlres_flagged(ml)
    expected = nd.get("near_duplicate_rows", 0) + nd.get("groups", 0)
    if len(ml_rows) != expected:
        print(f"warning: mlres listed {len(ml_rows)} rows of {expected} "
              f"(raise --max-examples)", file=sys.stderr)
    n = truth["rows"]

    def stats(flagged):
        flagged = set(flagged)
        tp = len(flagged & pos)
        recall = tp / len(pos) if pos else 1.0
        precision = tp / len(flagged) if flagged else 1.0
        return recall, precision, len(flagged)

    ds_r, ds_p, ds_n = stats(ds["flagged"])
    ml_r, ml_p, ml_n = stats(ml_rows)
    ds_tp = n / ds["seconds"]
    ml_tp = n / ml_secs
    print(f"rows: {n}, planted near-duplicate rows: {len(pos)} in {len(truth['clusters'])} clusters")
    ds_cpu = ds["cpu_seconds"]
    print(f"{'tool':<24}{'wall s':>8}{'rows/s':>10}{'CPU s':>8}{'rows/CPU-s':>12}"
          f"{'flagged':>9}{'recall':>8}{'precision':>11}")
    print(f"{'datasketch MinHashLSH':<24}{ds['seconds']:>8.2f}{ds_tp:>10.0f}{ds_cpu:>8.2f}"
          f"{n / ds_cpu:>12.0f}{ds_n:>9}{ds_r:>8.4f}{ds_p:>11.4f}")
    print(f"{'mlres data audit':<24}{ml_secs:>8.2f}{ml_tp:>10.0f}{ml_cpu:>8.2f}"
          f"{n / ml_cpu:>12.0f}{ml_n:>9}{ml_r:>8.4f}{ml_p:>11.4f}")
    ratio = ml_tp / ds_tp
    cpu_ratio = ds_cpu / ml_cpu
    print(f"throughput ratio (mlres / datasketch): {ratio:.1f}x wall clock, "
          f"{cpu_ratio:.1f}x per CPU-second")
    goal = ratio >= 10 and ml_r >= ds_r
    print(f"goal (>= 10x at equal or better recall): {'met' if goal else 'NOT met'}")
    json.dump({"rows": n, "datasketch": {"seconds": ds["seconds"], "cpu_seconds": ds_cpu, "rows_per_s": ds_tp,
                                         "recall": ds_r, "precision": ds_p},
               "mlres": {"seconds": ml_secs, "cpu_seconds": ml_cpu, "rows_per_s": ml_tp, "recall": ml_r, "precision": ml_p},
               "ratio": ratio, "cpu_ratio": cpu_ratio, "goal_met": goal}, open(sys.argv[5], "w"), indent=1)


if __name__ == "__main__":
    main()
