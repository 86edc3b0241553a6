"""Generate a near-duplicate benchmark corpus with ground truth.

Writes <out>/corpus.jsonl (one {"id", "text"} object a line) and <out>/truth.json
(the planted clusters as lists of 1-based row numbers). Clean rows are independent random
texts over a Zipf-like vocabulary; each planted cluster is a base text plus copies with a few
word substitutions, insertions or deletions, so every copy's word 3-gram Jaccard similarity
with its base stays above 0.8. Rows are shuffled; the generator is seeded.
"""
import itertools
import json
import random
import sys


def main():
    out = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    rng = random.Random(seed)
    sylls = ["ka", "lo", "mi", "ren", "tu", "sa", "vo", "ne", "pri", "da", "zel", "qu",
             "fa", "bor", "in", "te", "ro", "gel", "ma", "shi", "un", "pa", "wex", "ly"]
    vocab = sorted({"".join(rng.choice(sylls) for _ in range(rng.randint(1, 4)))
                    for _ in range(20000)})
    cum = list(itertools.accumulate(1.0 / (i + 1) ** 0.9 for i in range(len(vocab))))

    def text(n):
        return rng.choices(vocab, cum_weights=cum, k=n)

    def edit(words):
        w = list(words)
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            i = rng.randrange(len(w))
            if op < 0.6:
                w[i] = rng.choice(vocab)
            elif op < 0.8:
                w.insert(i, rng.choice(vocab))
            elif len(w) > 10:
                del w[i]
        return w

    items = []  # (words, cluster id or None)
    cluster = 0
    planted = int(rows * 0.12)
    while len(items) < planted:
        base = text(rng.randint(80, 160))
        size = rng.randint(2, 5)
        items.append((base, cluster))
        for _ in range(size - 1):
            items.append((edit(base), cluster))
        cluster += 1
    while len(items) < rows:
        items.append((text(rng.randint(40, 200)), None))
    rng.shuffle(items)
    clusters = {}
    with open(f"{out}/corpus.jsonl", "w") as f:
        for i, (words, c) in enumerate(items):
            f.write(json.dumps({"id": i, "text": " ".join(words)}) + "\n")
            if c is not None:
                clusters.setdefault(c, []).append(i + 1)
    with open(f"{out}/truth.json", "w") as f:
        json.dump({"rows": len(items), "clusters": list(clusters.values())}, f)
    print(f"corpus: {len(items)} rows, {len(clusters)} planted clusters, "
          f"{sum(len(c) for c in clusters.values())} rows in them", file=sys.stderr)


if __name__ == "__main__":
    main()
