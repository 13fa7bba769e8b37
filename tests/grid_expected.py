#!/usr/bin/python3
"""Expected values of a grid, computed with numpy from the cells' per-sample vectors.

    tests/grid_expected.py write RUNDIR OUT.json    compute and write (commit OUT.json)
    tests/grid_expected.py check RUNDIR EXPECTED.json

The aggregates are restated here from their definitions (docs/metrics.md), not taken
from moe-robust: a cell's mean is the mean of its per-sample vector (cells/*.h5
/sample_*); the accuracy drop of a corrupted cell is the mean of clean minus corrupted
correctness of the same samples; load CV is the sample std (ddof = 1) over the mean of
the experts' load (Shazeer et al. 2017); CE_c = sum_s E_s / sum_s E_s^ref and relative
CE_c = sum_s (E_s - E_clean) / sum_s (E_s^ref - E_clean^ref) with E the error rate and
the reference router at the same k (Hendrycks & Dietterich 2019, Sec. 3), mCE their
mean over corruptions; the entropy ratio of a router is its clean entropy over the
reference's (Graph of Tokens, Fig. 2); the best (bold) row of a table column is the
highest accuracy / lowest drop, mCE or relative mCE, as displayed (2 decimals).

`check` fails (exit 1, one line per difference) when
  1. the run's summary.json differs from this recomputation from the run's own cells
     (the aggregation: summary, CE, drops), or
  2. the run's per-sample results differ from EXPECTED.json (the committed output of
     `write` on the same config: engine, routers, corruptions, metrics), or
  3. report/ (when present: `moe-robust report RUNDIR` first) bolds another row than
     the best, draws other entropy changes, or states another interval than the run's
     level.
"""
import json
import math
import os
import re
import sys

import h5py
import numpy as np

# summary.json against this recomputation from the same run's cells: the same numbers
# summed in another order
TOL = 1e-9
# the run against the committed values, written by another build: another build type,
# compiler or OpenBLAS kernel rounds the engine's float32 differently (docs/ci.md,
# "Default tolerance": up to about 1.3e-7 relative); 1e-6 relative leaves room, while a
# changed constant, kernel or sample outcome moves a value by far more
TOL_BUILD = 1e-6
# ... and a near tie (two experts' gate values or two logits equal to the last bits) may
# be decided otherwise there: one outcome of a rate (docs/ci.md, "Near ties": the gate's
# `samples: 1`), a sample for a classifier, a token for a language model
RATES = re.compile(r"/(accuracy|prediction_flip|accuracy_drop|flip_top1|flip_topk_set|"
                   r"flip_jaccard|clean_accuracy|corrupted_accuracy|corrupted_pred_flip|"
                   r"corrupted_flip_top1|corrupted_flip_topk|ckpt_flip_top1|flip_severity|"
                   r"severity_mean|severity)(\[|/|$)")


def load_cells(run):
    """id -> dict of per-sample arrays (and /load) of cells/<id with / as ~>.h5"""
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    cells = {}
    for c in summary["cells"]:
        path = os.path.join(run, "cells", c["id"].replace("/", "~") + ".h5")
        with h5py.File(path, "r") as h:
            cells[c["id"]] = {k: np.asarray(h[k][()], dtype=np.float64) for k in h.keys()
                              if k.startswith("sample_") or k == "load"}
            # tokens scored per sample: T for a language model (token accuracy), else 1
            cells[c["id"]]["tokens"] = int(h.attrs["T"]) if c["task"] == "lm" else 1
    return summary, cells


def group_of(cid):
    return "/".join(cid.split("/")[:2])  # model/router@k


def compute(summary, cells):
    """every value this script checks, keyed by cell id / group"""
    meta = {c["id"]: c for c in summary["cells"]}
    out = {"cells": {}, "groups": {}}
    for cid, v in cells.items():
        c = meta[cid]
        e = {}
        if "sample_correct" in v:  # per sample: correct (0/1) or its token accuracy (lm)
            e["accuracy"] = float(np.mean(v["sample_correct"]))
        if "sample_loss" in v:
            e["loss"] = float(np.mean(v["sample_loss"]))
        if "sample_pred_flip" in v:
            e["prediction_flip"] = float(np.mean(v["sample_pred_flip"]))
        if c["kind"] == "corrupt":
            clean = cells[group_of(cid) + "/clean"]["sample_correct"]
            e["accuracy_drop"] = float(np.mean(clean - v["sample_correct"]))
        layers = []
        n_l = len(c.get("layers", []))
        for l in range(n_l):
            le = {}
            for key, ds in (("entropy", "sample_entropy"), ("flip_top1", "sample_flip_top1"),
                            ("flip_topk_set", "sample_flip_set"),
                            ("flip_jaccard", "sample_flip_jaccard")):
                if ds in v:
                    le[key] = float(np.mean(v[ds][:, l]))
            if "load" in v:
                load = v["load"][l]
                le["load_cv"] = float(np.std(load, ddof=1) / np.mean(load))
            layers.append(le)
        e["layers"] = layers
        out["cells"][cid] = e
    # corruption error per group against its reference group
    ce_meta = {f"{r['model']}/{r['router']}@k{r['k']}": r for r in summary["corruption_error"]}
    for g, r in ce_meta.items():
        ref = r["reference"] if "/" in r["reference"] else f"{r['model']}/{r['reference']}"
        corrs = list(r["ce"].keys())

        def err(grp, tail):  # errors: wrong samples, or wrong tokens of a language model
            v = cells[f"{grp}/{tail}"]
            return float(np.round(np.sum((1.0 - v["sample_correct"]) * v["tokens"])))

        ce, rel = {}, {}
        for corr in corrs:
            sev = sorted(int(k.split("/s")[-1]) for k in cells
                         if k.startswith(f"{g}/{corr}/s"))
            num = sum(err(g, f"{corr}/s{s}") for s in sev)
            den = sum(err(ref, f"{corr}/s{s}") for s in sev)
            ce[corr] = num / den if den else math.nan
            rnum = sum(err(g, f"{corr}/s{s}") - err(g, "clean") for s in sev)
            rden = sum(err(ref, f"{corr}/s{s}") - err(ref, "clean") for s in sev)
            rel[corr] = rnum / rden if rden else math.nan
        grp = {"ce": ce, "relative_ce": rel, "mce": float(np.mean(list(ce.values()))),
               "relative_mce": float(np.mean(list(rel.values())))}
        corrupt = [k for k in cells if k.startswith(g + "/") and meta[k]["kind"] == "corrupt"]
        grp["clean_accuracy"] = out["cells"][g + "/clean"]["accuracy"]
        grp["corrupted_accuracy"] = float(np.mean([out["cells"][k]["accuracy"] for k in corrupt]))
        grp["accuracy_drop"] = float(np.mean([out["cells"][k]["accuracy_drop"] for k in corrupt]))
        # per-layer metrics in the tables: the mean over the MoE layers, then over cells
        lmean = lambda cid, key: float(np.mean([l[key] for l in out["cells"][cid]["layers"]]))
        fluct = [k for k in cells if k.startswith(g + "/") and meta[k]["kind"] == "fluct"]
        grp["clean_entropy"] = lmean(g + "/clean", "entropy")
        grp["corrupted_pred_flip"] = float(np.mean([out["cells"][k]["prediction_flip"]
                                                    for k in corrupt]))
        grp["corrupted_flip_top1"] = float(np.mean([lmean(k, "flip_top1") for k in corrupt]))
        grp["corrupted_flip_topk"] = float(np.mean([lmean(k, "flip_topk_set") for k in corrupt]))
        if fluct:
            grp["ckpt_flip_top1"] = float(np.mean([lmean(k, "flip_top1") for k in fluct]))
        ent = [out["cells"][g + "/clean"]["layers"][l]["entropy"]
               for l in range(len(out["cells"][g + "/clean"]["layers"]))]
        ent_ref = [out["cells"][ref + "/clean"]["layers"][l]["entropy"] for l in range(len(ent))]
        grp["entropy_ratio"] = [a / b for a, b in zip(ent, ent_ref)]
        # accuracy per severity, mean over the corruptions (fig-MODEL-severity-mean), and per
        # corruption (fig-MODEL-severity), severity 0 = clean
        acc = lambda tail: out["cells"][f"{g}/{tail}"]["accuracy"]
        sevs = sorted({int(k.split("/s")[-1]) for k in corrupt})
        grp["severity_mean"] = [grp["clean_accuracy"]] + [
            float(np.mean([acc(f"{c}/s{s}") for c in corrs])) for s in sevs]
        grp["severity"] = {c: [grp["clean_accuracy"]] + [acc(f"{c}/s{s}") for s in sevs]
                           for c in corrs}
        # clean-vs-corrupted flips per severity, mean over corruptions (and MoE layers):
        # fig-MODEL-flip's panels top-1, top-k set, prediction
        grp["severities"] = sevs
        grp["flip_severity"] = [
            [float(np.mean([lmean(f"{g}/{c}/s{s}", key) for c in corrs])) for s in sevs]
            for key in ("flip_top1", "flip_topk_set")] + [
            [float(np.mean([out["cells"][f"{g}/{c}/s{s}"]["prediction_flip"] for c in corrs]))
             for s in sevs]]
        # expert load on clean data x E (fig-MODEL-load; 1 = uniform), [layer][expert]
        grp["load_x_E"] = (cells[g + "/clean"]["load"] * cells[g + "/clean"]["load"].shape[1]).tolist()
        out["groups"][g] = grp
    return out


def diff(a, b, where, errs, rel=0.0, quantum=0.0):
    """every number of a (expected) equal to b (actual) within TOL, or rel |a| when
    larger, or `quantum` for a rate"""
    if isinstance(a, dict):
        for k in a:
            if not isinstance(b, dict) or k not in b:
                errs.append(f"{where}/{k}: missing")
            else:
                diff(a[k], b[k], f"{where}/{k}", errs, rel, quantum)
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            errs.append(f"{where}: {len(a)} values, got {b!r}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                diff(x, y, f"{where}[{i}]", errs, rel, quantum)
    else:
        if isinstance(b, dict):
            b = b.get("mean")
        q = quantum if RATES.search(where) else 0.0
        if b is None or not (abs(a - b) <= max(TOL, rel * abs(a), q * (1 + 1e-9)) or
                             (math.isnan(a) and math.isnan(b))):
            errs.append(f"{where}: expected {a!r}, got {b!r}")


def summary_values(summary):
    """the run's own numbers in the shape of compute()"""
    out = {"cells": {}, "groups": {}}
    for c in summary["cells"]:
        e = {k: c[k]["mean"] if isinstance(c[k], dict) else c[k]
             for k in ("accuracy", "loss", "prediction_flip", "accuracy_drop") if k in c}
        e["layers"] = [{k: (l[k]["mean"] if isinstance(l[k], dict) else l[k])
                        for k in ("entropy", "flip_top1", "flip_topk_set", "flip_jaccard",
                                  "load_cv") if k in l} for l in c.get("layers", [])]
        out["cells"][c["id"]] = e
    for r in summary["corruption_error"]:
        out["groups"][f"{r['model']}/{r['router']}@k{r['k']}"] = {
            k: r[k] for k in ("ce", "relative_ce", "mce", "relative_mce")}
    return out


def dat_blocks(path):
    """the numeric rows of each block of a gnuplot .dat (blocks: two blank lines apart)"""
    with open(path) as f:
        text = f.read()
    out = []
    for blk in text.split("\n\n\n"):
        rows = [[float(x) for x in ln.split()] for ln in blk.splitlines()
                if ln.strip() and not ln.startswith("#")]
        if rows:
            out.append(rows)
    return out


def check_band(path, what, rows, want, errs):
    """rows 'severity mean lo hi' for severity 0..: mean as expected, lo <= mean <= hi"""
    if len(rows) != len(want):
        errs.append(f"{path}: {what}: {len(rows)} rows, expected {len(want)}")
        return
    for sev, (row, w) in enumerate(zip(rows, want)):
        x, mean, lo, hi = row
        if x != sev or abs(mean - w) > 1e-5 * max(1.0, abs(w)):
            errs.append(f"{path}: {what} severity {sev}: row {row}, expected mean {w:.8g}")
        if not lo <= mean <= hi:
            errs.append(f"{path}: {what} severity {sev}: mean {mean} outside its band [{lo}, {hi}]")


def check_report(run, exp, summary, level, errs):
    """report/ against `exp`, the values recomputed from this run's cells"""
    rep = os.path.join(run, "report")
    if not os.path.isdir(rep):
        return
    pct = f"{100 * level:g}%"
    with open(os.path.join(rep, "report.md")) as f:
        md = f.read()
    if f"Confidence intervals: {pct}" not in md:
        errs.append(f"report.md does not state the run's {pct} intervals")
    for name in sorted(os.listdir(rep)):
        if name.startswith("table-") and name.endswith(".tex"):
            with open(os.path.join(rep, name)) as f:
                if pct.replace("%", "\\%") + " bootstrap CI" not in f.read():
                    errs.append(f"{name}: the caption does not state the run's {pct} intervals")
    groups = exp["groups"]
    models = sorted({g.split("/")[0] for g in groups})
    for model in models:
        mine = {g.split("/")[1]: v for g, v in groups.items() if g.startswith(model + "/")}
        # summary table: which rows are bold in each checked column
        path = os.path.join(rep, f"table-{model}-summary.md")
        with open(path) as f:
            lines = [ln.strip() for ln in f if ln.startswith("|")]
        head = [h.strip() for h in lines[0].strip("|").split("|")]
        rows = [[x.strip() for x in ln.strip("|").split("|")] for ln in lines[2:]]
        lm = all(c["task"] == "lm" for c in summary["cells"] if c["model"] == model)
        for col, key, best, scale, dec in (
                ("clean acc (%)", "clean_accuracy", max, 100, 2),
                ("corrupted acc (%)", "corrupted_accuracy", max, 100, 2),
                ("Δ acc (pp)", "accuracy_drop", min, 100, 2),
                ("corrupted pred. flip (%)", "corrupted_pred_flip", min, 100, 2),
                ("clean entropy (nats)", "clean_entropy", None, 1, 3),
                ("corrupted flip top-1 (%)", "corrupted_flip_top1", min, 100, 2),
                ("ckpt flip top-1 (%)", "ckpt_flip_top1", min, 100, 2),
                ("corrupted flip top-k (%)", "corrupted_flip_topk", min, 100, 2),
                ("mCE (%)", "mce", min, 100, 2),
                ("rel. mCE (%)", "relative_mce", min, 100, 2)):
            if lm and "acc" in col:
                continue  # a language model's table shows bpc and token accuracy otherwise
            if col not in head:
                errs.append(f"{path}: no column '{col}'")
                continue
            j = head.index(col)
            shown = {r[0]: round(scale * mine[r[0].replace(" †", "")][key], dec) for r in rows}
            # the best as displayed (ties all bold); entropy has no better direction; a
            # column needs two rows or more for a best, and a collapsed router (clean error
            # or bpc above twice its reference's, marked †) never is one (docs/reports.md)
            cand = {k: v for k, v in shown.items() if not k.endswith("†") and v == v}
            want = ({k for k, v in cand.items() if v == best(cand.values())}
                    if best and len(cand) >= 2 else set())
            got = {r[0] for r in rows if r[j].startswith("**")}
            if want != got:
                errs.append(f"{path}: column '{col}': bold {sorted(got)}, best {sorted(want)}")
            for r in rows:
                num = float(re.sub(r"[*]", "", r[j]).split("±")[0])
                if abs(num - shown[r[0]]) > 0.51 * 10 ** -dec:
                    errs.append(f"{path}: {r[0]} '{col}' shows {num}, expected {shown[r[0]]}")
        # figure data: blocks in the summary's order with the reference router's groups last
        # (drawn on top, docs/reports.md)
        ref = re.search(r"^reference = (\S+)$", summary["config"], re.M)
        ref = ref.group(1) if ref else "softmax"
        rows = [[r[0].replace(" †", "")] + r[1:] for r in rows]
        rows = ([r for r in rows if r[0].split("@")[0] != ref] +
                [r for r in rows if r[0].split("@")[0] == ref])
        # severity figure data (classification: accuracy in %): means as computed here, and
        # every band around its mean
        if not lm:
            path = os.path.join(rep, f"fig-{model}-severity-mean.dat")
            order = [r[0] for r in rows]
            blocks = dat_blocks(path)
            for g, blk in zip(order, blocks):
                check_band(path, g, blk, [100 * v for v in mine[g]["severity_mean"]], errs)
            path = os.path.join(rep, f"fig-{model}-severity.dat")
            # the run's corruption order (the expected file's keys are sorted)
            corrs = list(summary["corruption_error"][0]["ce"].keys())
            blocks = dat_blocks(path)
            for c, corr in enumerate(corrs):
                for j, g in enumerate(order):
                    check_band(path, f"{corr} / {g}", blocks[c * len(order) + j],
                               [100 * v for v in mine[g]["severity"][corr]], errs)
        # flip figure data: block p G + g, rows 'severity mean lo hi' (%)
        order = [r[0] for r in rows]
        path = os.path.join(rep, f"fig-{model}-flip.dat")
        blocks = dat_blocks(path)
        for p, panel in enumerate(("top-1", "top-k set", "prediction")):
            for j, g in enumerate(order):
                blk = blocks[p * len(order) + j]
                want = [100 * v for v in mine[g]["flip_severity"][p]]
                if [int(r[0]) for r in blk] != mine[g]["severities"]:
                    errs.append(f"{path}: {panel} / {g}: severities {[r[0] for r in blk]}")
                for r, w in zip(blk, want):
                    if abs(r[1] - w) > 1e-5 * max(1.0, abs(w)) or not r[2] <= r[1] <= r[3]:
                        errs.append(f"{path}: {panel} / {g} severity {int(r[0])}: row {r}, "
                                    f"expected mean {w:.8g} inside its band")
        # load figure data: block g, rows 'expert layer load*E'
        path = os.path.join(rep, f"fig-{model}-load.dat")
        for g, blk in zip(order, dat_blocks(path)):
            want = mine[g]["load_x_E"]
            got = {(int(r[1]), int(r[0])): r[2] for r in blk}
            for l, row in enumerate(want):
                for e, w in enumerate(row):
                    v = got.get((l, e))
                    if v is None or abs(v - w) > 1e-6 * max(1.0, abs(w)):
                        errs.append(f"{path}: {g} layer {l} expert {e}: {v}, expected {w:.8g}")
        # entropy change figure data: block 1, one value per router@k in the figures' order,
        # 100 (ratio - 1) % against the reference router
        path = os.path.join(rep, f"fig-{model}-entropy.dat")
        with open(path) as f:
            blocks = f.read().split("\n\n\n")
        ratio_rows = [ln for ln in blocks[1].splitlines() if ln.startswith('"')]
        order = [r[0] for r in rows]
        for l, ln in enumerate(ratio_rows):
            vals = [float(x) for x in ln.split('"')[2].split()]
            for g, v in zip(order, vals):
                w = 100 * (mine[g]["entropy_ratio"][l] - 1)
                if abs(v - w) > 1e-6 * max(1.0, abs(w)):
                    errs.append(f"{path}: layer {l} {g}: change {v} %, expected {w:.8g}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("write", "check"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    cmd, run, path = sys.argv[1:]
    summary, cells = load_cells(run)
    got = compute(summary, cells)
    if cmd == "write":
        with open(path, "w") as f:
            json.dump({"about": "tests/grid_expected.py write (numpy from the cells' per-sample "
                                "vectors); checked by ctest grid_expected", **got},
                      f, indent=1, sort_keys=True)
            f.write("\n")
        return 0
    with open(path) as f:
        exp = json.load(f)
    errs = []
    ce_keys = ("ce", "relative_ce", "mce", "relative_mce")  # the groups' part in summary.json
    mine = {"cells": got["cells"],
            "groups": {g: {k: v[k] for k in ce_keys} for g, v in got["groups"].items()}}
    diff(mine, summary_values(summary), "summary.json (recomputed from the cells)", errs)
    exp.pop("about", None)
    c0 = summary["cells"][0]
    outcomes = c0["samples"] * (cells[c0["id"]]["tokens"] if c0["task"] == "lm" else 1)
    diff(exp, got, path, errs, rel=TOL_BUILD, quantum=1.0 / outcomes)
    level = float(re.search(r"^level = (\S+)$", summary["config"], re.M).group(1))
    check_report(run, got, summary, level, errs)
    for e in errs[:40]:
        print("FAIL " + e)
    if len(errs) > 40:
        print(f"FAIL ... and {len(errs) - 40} more")
    n_cells, n_groups = len(exp["cells"]), len(exp["groups"])
    print(f"{'FAIL' if errs else 'ok  '} {n_cells} cells and {n_groups} groups against "
          f"{path}: {len(errs)} differences")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
