#!/usr/bin/python3
"""Write a reference state file for the C parity tests
(docs/model-format.md, "Reference state files").

    /usr/bin/python3 tools/export_reference.py MODEL.h5 DATA OUT.h5 [--n 16]

Takes the first n samples of DATA (images file, IDX .gz, or tokens file) and
stores the inputs, the logits and, per MoE block L, the routing distribution,
the selected experts, their weights, the top-k margin and the MoE input (the
LN2 output; later routers are tested from it).

The forward pass runs in float64 by default and is stored as float32: the
reference is then the exact computation rounded once, so a parity failure
measures the C engine's error alone.  `--dtype float32` reproduces what a
float32 PyTorch run gives instead.
"""

import argparse
import os
import sys

import numpy as np
import h5py
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402
from moe_model import margin  # noqa: E402

_GZ = dict(chunks=True, shuffle=True, compression="gzip", compression_opts=9)


def _repo_path(path):
    """Path relative to the repository root; absolute when outside it (the
    Fashion-MNIST files live in /usr/share/datasets)."""
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    return os.path.abspath(path) if rel.startswith("..") else rel


def _f32(t):
    return t.detach().cpu().to(torch.float32).numpy()


@torch.no_grad()
def write_reference(model_path, data_path, out_path, n=16, dtype="float64"):
    """Returns the smallest top-k margin over all tokens and MoE blocks (a
    near-zero margin means a test may legitimately see a different top-k)."""
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    model, attrs = load_model(model_path, dtype=tdtype)
    kind, x, y = load_eval_data(data_path)
    x = x[:n]
    k = attrs["top_k"]
    with h5py.File(out_path, "w") as f:
        # Path relative to the repository root, as the spec asks.
        f.attrs["model"] = _repo_path(model_path)
        f.attrs["data"] = _repo_path(data_path)
        f.attrs["n"] = np.int64(len(x))
        f.attrs["compute_dtype"] = dtype
        if kind == "images":
            assert attrs["task"] == "classify", "images data needs a classify model"
            f.create_dataset("inputs/images", data=x.astype(np.uint8), **_GZ)
            f.create_dataset("inputs/labels", data=y[:n].astype(np.int32), **_GZ)
            logits, routes = model(torch.from_numpy(np.ascontiguousarray(x)))
        else:
            assert attrs["task"] == "lm", "tokens data needs an lm model"
            f.create_dataset("inputs/tokens", data=x.astype(np.int32), **_GZ)
            # The model reads tokens[:, :T]; tokens[:, 1:] are the targets.
            logits, routes = model(torch.from_numpy(x[:, :-1]).long())
        f.create_dataset("logits", data=_f32(logits), **_GZ)
        min_margin = float("inf")
        for r in routes:
            g = f"layers/{r['layer']}/"
            m = margin(r["probs"], k)
            min_margin = min(min_margin, float(m.min()))
            f.create_dataset(g + "probs", data=_f32(r["probs"]), **_GZ)
            f.create_dataset(g + "topk", data=r["topk"].numpy().astype(np.int32), **_GZ)
            f.create_dataset(g + "weights", data=_f32(r["weights"]), **_GZ)
            f.create_dataset(g + "margin", data=_f32(m), **_GZ)
            f.create_dataset(g + "moe_input", data=_f32(r["moe_input"]), **_GZ)
        f.attrs["min_margin"] = np.float64(min_margin)
    return min_margin


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=16, help="first N samples (default 16)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mm = write_reference(args.model, args.data, args.out, args.n, args.dtype)
    print(f"{args.out}: min top-k margin {mm:.3g}")


if __name__ == "__main__":
    main()
