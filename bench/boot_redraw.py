#!/usr/bin/python3
"""How far a bootstrap CI's endpoints move when the resamples are drawn anew.

    /usr/bin/python3 bench/boot_redraw.py RUN_DIR [B]

For every per-sample vector of every cell of a `moe-robust run` directory (RUN_DIR/cells/
*.h5: sample_correct, sample_loss, sample_pred_flip and each layer of sample_entropy and
the sample_flip_* vectors), computes the 95 % percentile CI of the mean from two
independent sets of B resamples (default 1000, as the suite's default) and prints how far
the endpoints move, in half-widths of the first CI. This is the cost of drawing one set
of resample counts per cell for all metrics (issue 17's first design) instead of keeping
each metric's own stream: the CIs would not be today's, and the move is this Monte Carlo
noise (docs/performance.md, "Bootstrap"). numpy's generator stands in for the suite's
mt19937 streams: the question is statistical, not about one stream.
"""
import glob
import sys

import h5py
import numpy as np


def vectors(f):
    for k in ("sample_correct", "sample_loss", "sample_pred_flip"):
        if k in f:
            yield f[k][:]
    for k in ("sample_entropy", "sample_flip_top1", "sample_flip_set", "sample_flip_jaccard"):
        if k in f:
            a = f[k][:]
            for layer in range(a.shape[1]):
                yield a[:, layer]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    B = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rng = np.random.default_rng(1)
    moves = []
    files = sorted(glob.glob(sys.argv[1] + "/cells/*.h5"))
    if not files:
        sys.exit(f"boot_redraw.py: no cells in {sys.argv[1]}/cells")
    for fn in files:
        with h5py.File(fn, "r") as f:
            for x in vectors(f):
                n = len(x)
                m1 = x[rng.integers(0, n, (B, n))].mean(1)
                m2 = x[rng.integers(0, n, (B, n))].mean(1)
                lo1, hi1 = np.quantile(m1, [0.025, 0.975])
                lo2, hi2 = np.quantile(m2, [0.025, 0.975])
                hw = (hi1 - lo1) / 2
                if hw > 0:
                    moves += [abs(lo2 - lo1) / hw, abs(hi2 - hi1) / hw]
    m = np.array(moves)
    print(f"{len(files)} cells, {len(m)} CI endpoints, B = {B}: median move {np.median(m):.3f}, "
          f"90th percentile {np.quantile(m, 0.9):.3f}, max {m.max():.3f} half-widths; "
          f"{100 * (m > 0.1).mean():.1f} % move by more than 0.1")


if __name__ == "__main__":
    main()
