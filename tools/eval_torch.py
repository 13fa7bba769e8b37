#!/usr/bin/python3
"""Evaluate a model file with the PyTorch reference, to compare with the C CLI.

    /usr/bin/python3 tools/eval_torch.py MODEL.h5 DATA [--batch 256] [--threads 1]

DATA is an HDF5 data file (/images + /labels or /tokens) or an IDX
X-images-idx3-ubyte.gz (labels read beside it), as in docs/model-format.md.
classify prints the accuracy (6 decimals); lm prints the mean cross-entropy
(nats) over all scored positions and bits per char = loss / ln 2.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402


@torch.no_grad()
def eval_classify(model, images, labels, batch=256):
    """Returns (accuracy, mean CE loss) over all images."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))
        y = torch.as_tensor(labels[i:i + batch], dtype=torch.long)
        logits, _ = model(x)
        correct += int((logits.argmax(-1) == y).sum())
        loss += float(F.cross_entropy(logits.double(), y, reduction="sum"))
    return correct / len(images), loss / len(images)


@torch.no_grad()
def eval_lm(model, tokens, batch=64):
    """Mean CE (nats) of predicting tokens[:, 1:] from tokens[:, :T] over
    every position of every sequence; returns (loss, bits per char)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(tokens), batch):
        t = torch.as_tensor(tokens[i:i + batch], dtype=torch.long)
        logits, _ = model(t[:, :-1])
        # Accumulate in float64 so the mean over ~440k positions is exact
        # enough to compare with the C engine to 4 decimals.
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                       t[:, 1:].reshape(-1), reduction="sum"))
        count += t[:, 1:].numel()
    loss = total / count
    return loss, loss / math.log(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N samples")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, attrs = load_model(args.model)
    kind, x, y = load_eval_data(args.data)
    if args.limit:
        x = x[:args.limit]
        y = None if y is None else y[:args.limit]
    if attrs["task"] == "classify":
        if kind != "images":
            sys.exit(f"{args.data}: classify model needs an images file")
        acc, loss = eval_classify(model, x, y, args.batch)
        print(f"samples {len(x)}")
        print(f"accuracy {acc:.6f}")
        print(f"loss {loss:.6f}")
    else:
        if kind != "tokens":
            sys.exit(f"{args.data}: lm model needs a tokens file")
        loss, bpc = eval_lm(model, x, args.batch)
        print(f"sequences {len(x)} positions {len(x) * (x.shape[1] - 1)}")
        print(f"loss {loss:.6f}")
        print(f"bpc {bpc:.6f}")


if __name__ == "__main__":
    main()
