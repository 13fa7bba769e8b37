#!/usr/bin/python3
"""Compare two results directories cell by cell (the trace cross-check, docs/traces.md).

    /usr/bin/python3 tests/compare_results.py RUN_DIR ANALYZE_DIR [--rtol 1e-6]

Every cell of RUN_DIR/results.h5 must be in ANALYZE_DIR/results.h5 with every dataset
(summaries [mean, lo, hi], per-layer arrays, per-sample vectors) equal within rtol
relative (atol 1e-12 for values near 0), NaN where NaN; the same for the corruption errors
of every group (/ce, matched by corruption name) and its mCE. Prints one line per cell and
exits 1 on any difference.
"""
import argparse
import sys

import h5py
import numpy as np


def close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    nan = np.isnan(a) | np.isnan(b)
    if (np.isnan(a) != np.isnan(b)).any():
        return False, "NaN in one only"
    d = np.abs(a - b)[~nan]
    lim = (rtol * np.maximum(np.abs(a), np.abs(b)) + 1e-12)[~nan]
    if (d > lim).any():
        i = int(np.argmax(d - lim))
        return False, f"max |diff| {d.max():.3g} (at flat {i}: {a[~nan][i]!r} vs {b[~nan][i]!r})"
    return True, ""


# what `run` computes from the data and a trace cannot hold: domain specialization needs
# the data's /domains (docs/metrics.md "Routing structure"; docs/trace-format.md has none)
RUN_ONLY = ("domain_nmi", "domain_usage")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("analyze")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--ignore-attr", action="append", default=[],
                    help="a cell attribute not compared (e.g. T of padded traces)")
    args = ap.parse_args()
    bad = 0
    with h5py.File(f"{args.run}/results.h5", "r") as r, h5py.File(f"{args.analyze}/results.h5", "r") as a:
        for cell in r["cells"]:
            if cell not in a["cells"]:
                print(f"FAIL {cell}: not in {args.analyze}")
                bad += 1
                continue
            rc, ac = r["cells"][cell], a["cells"][cell]
            for key in ("kind", "corruption", "severity", "k", "n", "T", "n_moe", "E", "task"):
                if key in args.ignore_attr:
                    continue
                if key in rc.attrs and rc.attrs[key] != ac.attrs.get(key):
                    print(f"FAIL {cell}: attribute {key} {rc.attrs[key]!r} vs {ac.attrs.get(key)!r}")
                    bad += 1
            names = sorted(set(rc) | set(ac))
            n_ok = 0
            for ds in names:
                if ds in rc and ds not in ac and ds in RUN_ONLY:
                    continue  # the data's /domains, which a trace does not carry
                if ds not in rc or ds not in ac:
                    print(f"FAIL {cell}/{ds}: only in {'run' if ds in rc else 'analyze'}")
                    bad += 1
                    continue
                ok, why = close(rc[ds][()], ac[ds][()], args.rtol)
                if not ok:
                    print(f"FAIL {cell}/{ds}: {why}")
                    bad += 1
                n_ok += ok
            print(f"ok   {cell}: {n_ok} datasets equal")
        for extra in a["cells"]:
            if extra not in r["cells"]:
                print(f"FAIL {extra}: only in {args.analyze}")
                bad += 1
        for g in r["ce"]:
            rg, ag = r["ce"][g], a["ce"].get(g)
            if ag is None:
                print(f"FAIL /ce/{g}: missing")
                bad += 1
                continue
            def names(v):
                v = v.decode() if isinstance(v, bytes) else str(v)
                return v.split(",") if v else []
            rn, an = names(rg.attrs["corruptions"]), names(ag.attrs["corruptions"])
            for ds in ("ce", "relative_ce"):
                rv = dict(zip(rn, rg[ds][()]))
                av = dict(zip(an, ag[ds][()]))
                ok, why = close([rv[k] for k in sorted(rv)], [av.get(k, np.inf) for k in sorted(rv)], args.rtol)
                if not ok:
                    print(f"FAIL /ce/{g}/{ds}: {why}")
                    bad += 1
            for at in ("mce", "relative_mce"):
                ok, why = close(rg.attrs[at], ag.attrs[at], args.rtol)
                if not ok:
                    print(f"FAIL /ce/{g} {at}: {why}")
                    bad += 1
            print(f"ok   /ce/{g}")
    print(f"{'FAIL' if bad else 'ok'}: {bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
