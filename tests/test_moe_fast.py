#!/usr/bin/python3
"""tools/moe_fast.py (bench/run.sh's best-effort PyTorch peer) computes the same model as
the reference tools/moe_model.py: on the shipped Fashion-MNIST and char-LM models, for the
routers bench/run.sh times, the logits of the fast forward equal the reference's to
1e-5 (relative to their largest magnitude) and the top-k sets of every MoE block are the
same wherever the reference's k-th and (k+1)-th probabilities differ by more than 1e-6
(elsewhere torch.topk may break the tie the other way).

    tests/test_moe_fast.py        (from the repository root)
"""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402
from moe_model import set_router  # noqa: E402

fails = 0


def expect(cond, msg):
    global fails
    print(("ok   " if cond else "FAIL ") + msg)
    fails += not cond


def forward(fast, path, router, x):
    import importlib
    import moe_model
    importlib.reload(moe_model)  # speed_up patches the module: start from the reference
    import moe_fast
    importlib.reload(moe_fast)
    model, _ = load_model(path)
    set_router(model, router)
    if fast:
        moe_fast.speed_up(model)
    with torch.inference_mode():
        return model(x)


def main():
    torch.set_num_threads(1)
    cases = [("models/fmnist-vit-moe-softmax.h5",
              "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", 64),
             ("models/kjv-char-moe-softmax.h5", "models/kjv-char-test.h5", 8)]
    for path, data, n in cases:
        kind, x, _ = load_eval_data(os.path.join(ROOT, data) if not data.startswith("/") else data)
        x = x[:n]
        x = torch.from_numpy(np.ascontiguousarray(x)) if kind == "images" else \
            torch.from_numpy(x[:, :-1].astype(np.int64))
        for router in ("softmax", "similarity", "attention", "ac"):
            ref, ref_routes = forward(False, os.path.join(ROOT, path), router, x)
            got, got_routes = forward(True, os.path.join(ROOT, path), router, x)
            err = float((ref - got).abs().max() / ref.abs().max())
            expect(err < 1e-5, f"{os.path.basename(path)} {router}: logits within "
                   f"{err:.1e} of the reference's (< 1e-5)")
            same, ties = 0, 0
            for a, b in zip(ref_routes, got_routes):
                k = a["topk"].shape[-1]
                sp = torch.sort(a["probs"], dim=-1, descending=True).values
                clear = (sp[..., k - 1] - sp[..., k]) > 1e-6 if k < sp.shape[-1] else \
                    torch.ones(sp.shape[:-1], dtype=torch.bool)
                eq = (torch.sort(a["topk"], dim=-1).values ==
                      torch.sort(b["topk"], dim=-1).values).all(dim=-1)
                same += int((eq | ~clear).all())
                ties += int((~clear).sum())
            expect(same == len(ref_routes) and len(ref_routes) > 0,
                   f"{os.path.basename(path)} {router}: the same top-k sets in all "
                   f"{len(ref_routes)} MoE blocks ({ties} near-tied tokens not compared)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
