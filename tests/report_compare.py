#!/usr/bin/python3
"""The comparison table of a report against results.h5, for tests/report_compare.sh.

    report_compare.py RUN MODEL/ROUTER@kK...

RUN/rep/table-comparison.md must list exactly the given rows in that order; its clean
accuracy column must be results.h5's clean cells' accuracy (in %, 2 decimals); its stars
on that column must be McNemar's exact test of each row's per-sample correctness against
the reference row's (softmax@k2 of model vit), Holm-corrected across the rows, at 1 - the
run's level (recomputed here from the stored per-sample vectors); the entropy column has no bold.
Exit 1 naming what differs.
"""
import math
import sys

import h5py
import numpy as np


def mcnemar_exact(b, c):
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def holm(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, run = [None] * len(p), 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (len(p) - rank) * p[i]))
        out[i] = run
    return out


def main(run, rows):
    alpha = 1 - float(next(x.split("=")[1] for x in open(f"{run}/config.ini")
                           if x.replace(" ", "").startswith("level=")))
    fails = []
    lines = [x for x in open(f"{run}/rep/table-comparison.md").read().splitlines()
             if x.startswith("| ") and not x.startswith("| model")]
    head = open(f"{run}/rep/table-comparison.md").readline().split("|")[1:-1]
    head = [h.strip() for h in head]
    cells = [[c.strip() for c in x.split("|")[1:-1]] for x in lines]
    got = [f"{c[0]}/{c[1].split()[0]}" for c in cells]
    if got != rows:
        fails.append(f"rows {got}, want {rows}")
    with h5py.File(f"{run}/results.h5", "r") as f:
        def clean(row):
            model, label = row.split("/")
            stem = f"{model}~{label.replace('@', '@')}~clean"
            return f["cells"][stem]
        correct = {row: clean(row)["sample_correct"][()] for row in rows}
        acc = {row: float(clean(row)["accuracy"][0]) for row in rows}
    ref = "vit/softmax@k2"
    tested = [r for r in rows if r != ref]
    p = []
    for r in tested:
        x, y = correct[r] > 0.5, correct[ref] > 0.5
        p.append(mcnemar_exact(int((x & ~y).sum()), int((~x & y).sum())))
    adj = dict(zip(tested, holm(p)))
    ci = head.index("clean acc (%)")
    ei = head.index("entropy (nats)")
    for row, c in zip(rows, cells):
        text = c[ci]
        mean = float(text.replace("*", "").split()[0])
        if abs(mean - round(100 * acc[row], 2)) > 1e-9:
            fails.append(f"{row}: clean acc {mean}, results.h5 {100 * acc[row]:.2f}")
        star = text.endswith("\\*")
        want = row in adj and adj[row] < alpha
        if star != want:
            fails.append(f"{row}: star {star}, Holm-adjusted McNemar p {adj.get(row)}")
        if "**" in c[ei]:
            fails.append(f"{row}: entropy bold")
    bold = [c[ci].startswith("**") for c in cells]
    best = max(round(100 * acc[r], 2) for r in rows)
    for row, b in zip(rows, bold):
        if b != (round(100 * acc[row], 2) == best):
            fails.append(f"{row}: bold {b}, best clean accuracy {best}")
    if not any(a < alpha for a in adj.values()):
        fails.append("no row differs significantly: the star check shows nothing")
    print(f"comparison: {len(rows)} rows, Holm-adjusted p {[round(x, 4) for x in adj.values()]}")
    if fails:
        print("\n".join("FAIL " + x for x in fails))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
