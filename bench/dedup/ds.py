"""datasketch MinHash + MinHashLSH over the corpus: streaming query-then-insert per row.

Shingles match mlres's `words:3`: lowercased runs of letters and digits, word 3-grams.
Prints a JSON object: rows, seconds and cpu_seconds (reading, shingling, hashing and LSH;
wall clock and process CPU) and the
rows found in a near-duplicate group (the union of every row with its query results).
"""
import json
import re
import sys
import time

from datasketch import MinHash, MinHashLSH

WORD = re.compile(r"[^\W_]+")


def shingles(text, n):
    w = WORD.findall(text.lower())
    if len(w) < n:
        return [" ".join(w)] if w else []
    return [" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]


def main():
    path, threshold, num_perm, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    t0 = time.perf_counter()
    c0 = time.process_time()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=1)
    parent = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows = 0
    with open(path) as f:
        for line in f:
            rows += 1
            text = json.loads(line)["text"]
            m = MinHash(num_perm=num_perm, seed=1, permutations=template.permutations,
                        scheme=template.scheme)
            m.update_batch([s.encode("utf8") for s in shingles(text, n)])
            parent[rows] = rows
            for other in lsh.query(m):
                a, b = find(other), find(rows)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            lsh.insert(rows, m)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - c0
    groups = {}
    for r in parent:
        groups.setdefault(find(r), []).append(r)
    flagged = sorted(r for g in groups.values() if len(g) > 1 for r in g)
    json.dump({"rows": rows, "seconds": secs, "cpu_seconds": cpu, "flagged": flagged}, sys.stdout)


if __name__ == "__main__":
    main()
