#!/usr/bin/python3
"""Fixtures for the harness tests (tests/cli_run.sh, tests/configs/tiny-grid.ini).

tests/fixtures/tiny-classify-perturbed.h5: tiny-classify.h5 with its gate weights moved
by seeded noise, standing in for a later training checkpoint, so that the grid's
checkpoint-fluctuation cell measures a non-zero flip rate.

    /usr/bin/python3 tools/make_grid_fixtures.py
"""
import shutil

import h5py
import numpy as np

SRC = "tests/fixtures/tiny-classify.h5"
DST = "tests/fixtures/tiny-classify-perturbed.h5"


def main():
    shutil.copyfile(SRC, DST)
    rng = np.random.default_rng(7)
    with h5py.File(DST, "r+") as f:
        for L in f.attrs["moe_layers"]:
            ds = f[f"/layers/{int(L)}/moe/gate_w"]
            w = ds[...]
            ds[...] = (w + rng.normal(0.0, 0.5 * w.std(), size=w.shape)).astype(np.float32)
        f.attrs["description"] = "tiny-classify.h5 with perturbed gates (a fake checkpoint)"
        f.attrs["train_command"] = "/usr/bin/python3 tools/make_grid_fixtures.py"


if __name__ == "__main__":
    main()
