#!/usr/bin/python3
"""Routing-structure metrics recomputed with numpy from a trace (docs/metrics.md,
"Routing structure"), for tests/routing_struct.sh.

    routing_struct.py TRACE.h5 OUT EVAL.txt [DATA.h5]

TRACE.h5 is `moe-robust eval --save-routing` output, OUT the `moe-robust analyze`
directory of it, EVAL.txt eval's printout. Recomputes per MoE layer from the trace's
/layers/L/topk (and /labels or /targets) the co-activation matrix and its top-10 % pair
share, the class x expert usage matrix and NMI(label, top-1), the vocabulary
specialization and NMI(top-1 of the previous MoE layer, top-1), independently of the C
code (numpy counting, the NMI from its textbook definition), and compares them with
OUT/results.h5 (the clean cell), OUT/summary.json, OUT/summary.csv and eval's table.
With DATA.h5 (the evaluated data with a /domains dataset, which traces do not carry) also
NMI(domain, top-1) against eval's table. Exit 1 naming what differs.
"""
import csv
import json
import math
import sys

import h5py
import numpy as np

TOL = 1e-9
fails = []


def nmi(u, v):
    """Arithmetic NMI of two labelings (scikit-learn's normalized_mutual_info_score)."""
    uu, ui = np.unique(u, return_inverse=True)
    vv, vi = np.unique(v, return_inverse=True)
    n = np.zeros((len(uu), len(vv)))
    np.add.at(n, (ui, vi), 1)
    N = n.sum()
    a, b = n.sum(1), n.sum(0)
    nz = n > 0
    mi = (n[nz] / N * np.log(N * n[nz] / np.outer(a, b)[nz])).sum()
    hu = -(a / N * np.log(a / N)).sum()
    hv = -(b / N * np.log(b / N)).sum()
    if hu == 0 and hv == 0:
        return 1.0
    return mi / ((hu + hv) / 2)


def close(what, got, want, tol=TOL):
    got, want = np.asarray(got, float), np.asarray(want, float)
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=tol, equal_nan=True):
        fails.append(f"{what}: got {got.ravel()[:6]} want {want.ravel()[:6]}")


def main(trace, out, evaltxt, data=None):
    with h5py.File(trace, "r") as f:
        blocks = sorted(int(b) for b in f["layers"])
        topk = [f[f"layers/{b}/topk"][()] for b in blocks]  # [N, T, k]
        E = f[f"layers/{blocks[0]}/probs"].shape[2]
        labels = f["labels"][()] if "labels" in f else None
        targets = f["targets"][()] if "targets" in f else None
    L, k = len(blocks), topk[0].shape[2]
    domains = h5py.File(data, "r")["domains"][: len(topk[0])] if data else None
    want = {key: [] for key in ("coactivation_top10", "class_nmi", "vocab_specialization",
                                "layer_nmi")}
    dom_nmi = []
    mats = {"coactivation": [], "class_usage": []}
    for li, tk in enumerate(topk):
        tok = tk.reshape(-1, k)
        onehot = np.zeros((len(tok), E))
        onehot[np.arange(len(tok))[:, None], tok] = 1
        co = onehot.T @ onehot  # co[i, j]: tokens with both; diagonal: single
        single = np.diag(co).copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            cond = np.where(single[:, None] > 0, co / single[:, None], 0.0)
        mats["coactivation"].append(cond)
        pairs = co[np.triu_indices(E, 1)]
        m = math.ceil(0.1 * len(pairs))
        want["coactivation_top10"].append(
            np.sort(pairs)[::-1][:m].sum() / pairs.sum() if k > 1 and pairs.sum() else np.nan)
        top1 = tk[:, :, 0]
        if labels is not None:
            C = int(labels.max()) + 1
            use = np.zeros((C, E))
            for c in range(C):
                np.add.at(use[c], tk[labels == c].ravel(), 1)
            mats["class_usage"].append(use / use.sum(1, keepdims=True))
            want["class_nmi"].append(nmi(np.repeat(labels, top1.shape[1]), top1.ravel()))
        if targets is not None:
            ids, num, best = targets.ravel(), 0.0, 0.0
            for x in np.unique(ids):
                sel = ids == x
                if sel.sum() < 20:
                    continue
                best += np.bincount(tk.reshape(-1, k)[sel].ravel(), minlength=E).max()
                num += sel.sum()
            want["vocab_specialization"].append(best / num if num else np.nan)
        if domains is not None:
            dom_nmi.append(nmi(np.repeat(domains, top1.shape[1]), top1.ravel()))
        want["layer_nmi"].append(
            nmi(topk[li - 1][:, :, 0].ravel(), top1.ravel()) if li else np.nan)

    with h5py.File(f"{out}/results.h5", "r") as r:
        def kind(c):
            v = r["cells"][c].attrs["kind"]
            return v.decode() if isinstance(v, bytes) else v
        cells = [c for c in r["cells"] if kind(c) == "clean"]
        if len(cells) != 1:
            sys.exit(f"{out}/results.h5: expected one clean cell, found {cells}")
        cell = r["cells"][cells[0]]
        for key, ds in (("coactivation_top10", "coact_top10"), ("class_nmi", "class_nmi"),
                        ("vocab_specialization", "vocab_spec"), ("layer_nmi", "layer_nmi")):
            if want[key]:
                if ds not in cell:
                    fails.append(f"results.h5: {cells[0]} lacks {ds}")
                    continue
                close(f"results.h5 {ds}", cell[ds][()], want[key])
            elif ds in cell:
                fails.append(f"results.h5: {cells[0]} has {ds} without the data for it")
        for name, m in mats.items():
            if m:
                close(f"results.h5 {name}", cell[name][()], np.array(m))
    with open(f"{out}/summary.json") as fp:
        js = [c for c in json.load(fp)["cells"] if c["kind"] == "clean"][0]
    for li in range(L):
        lay = js["layers"][li]
        for key, vals in want.items():
            if vals:
                got = lay.get(key)
                close(f"summary.json layer {li} {key}", np.nan if got is None else got, vals[li])
        for name, m in mats.items():
            if m:
                close(f"summary.json layer {li} {name}", lay[name], m[li])
    with open(f"{out}/summary.csv") as fp:
        rows = [row for row in csv.DictReader(fp) if row["kind"] == "clean"]
    for li, row in enumerate(rows):
        for key, vals in want.items():
            if vals:
                got = float(row[key]) if row[key] != "" else np.nan
                close(f"summary.csv layer {li} {key}", got, vals[li], 1e-12)
    # eval's table: a header line "  layer  entropy ..." and one row per MoE layer
    lines = open(evaltxt).read().splitlines()
    at = next(i for i, x in enumerate(lines) if x.strip().startswith("layer "))
    head = lines[at].split()
    for li in range(L):
        # CI columns print as "m [lo, hi]": keep the first number of each
        row = lines[at + 1 + li].replace(", ", ",").split()
        vals = [x for x in row if not x.startswith("[")]
        for key, v in list(want.items()) + [("domain_nmi", dom_nmi)]:
            if v and key not in head:
                fails.append(f"eval: no {key} column")
            elif v:
                got = vals[head.index(key)]
                close(f"eval layer {li} {key}", np.nan if got == "-" else float(got), v[li], 6e-5)
    checked = sum(bool(v) for v in want.values()) + bool(dom_nmi)
    print(f"{trace}: {L} MoE layers, {checked} metrics and {sum(bool(m) for m in mats.values())}"
          f" matrices recomputed")
    if fails:
        print("\n".join("FAIL " + f for f in fails))
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
