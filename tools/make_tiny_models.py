#!/usr/bin/python3
"""Generate the tiny random-weight unit-test fixtures in tests/fixtures/.

    /usr/bin/python3 tools/make_tiny_models.py [--out tests/fixtures]

Models (each exercises different branches of docs/model-format.md):
  tiny-classify.h5      8x8x1, patch 4, pool cls, gelu, renorm, top_k 2,
                        moe_layers [1] (block 0 dense), gate_b present
  tiny-classify-rgb.h5  8x8x3, pool mean, relu, gate_norm none, top_k 1,
                        moe_layers [0] (block 1 dense), gate_b ABSENT
  tiny-lm.h5            vocab 11, max_seq_len 16, moe_layers [0,1] (every
                        block MoE, so d_ff = 0 as the spec allows)
Data: tiny-images.h5 (8 images + labels), the same 8 images as an IDX pair
(tiny-images-idx3-ubyte.gz / tiny-labels-idx1-ubyte.gz), tiny-rgb-images.h5,
tiny-tokens.h5 [6, 13] (T = 12 < max_seq_len), and the reference state
files ref-tiny-classify.h5, ref-tiny-classify-rgb.h5, ref-tiny-lm.h5.

Weights are random but scaled up (gates std 0.5, embeddings std 0.5) so that
routing is decisive and varies across tokens; the seed of each model is the
first one whose reference has every top-k margin >= MIN_MARGIN, so that the
C engine's float32 rounding cannot flip an expert choice in the tests.
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
from moe_model import ModelConfig, MoEModel  # noqa: E402
from h5export import save_model  # noqa: E402
from data import write_idx  # noqa: E402
from export_reference import write_reference  # noqa: E402

MIN_MARGIN = 1e-3
_GZ = dict(chunks=True, shuffle=True, compression="gzip", compression_opts=9)

COMMON = dict(d_model=16, n_layers=2, n_heads=2, n_experts=4, expert_hidden=8,
              norm_eps=1e-5, router="softmax")

MODELS = {
    "tiny-classify": ModelConfig(task="classify", d_ff=32, top_k=2, moe_layers=[1],
                                 activation="gelu", gate_norm="renorm", gate_bias=True,
                                 image_h=8, image_w=8, channels=1, patch=4,
                                 n_classes=3, pool="cls", **COMMON),
    "tiny-classify-rgb": ModelConfig(task="classify", d_ff=32, top_k=1, moe_layers=[0],
                                     activation="relu", gate_norm="none", gate_bias=False,
                                     image_h=8, image_w=8, channels=3, patch=4,
                                     n_classes=3, pool="mean", **COMMON),
    "tiny-lm": ModelConfig(task="lm", d_ff=0, top_k=2, moe_layers=[0, 1],
                           activation="gelu", gate_norm="renorm", gate_bias=True,
                           vocab_size=11, max_seq_len=16,
                           vocab=[ord(c) for c in sorted("\n .,abcdefg")], **COMMON),
}
DATA = {"tiny-classify": "tiny-images.h5", "tiny-classify-rgb": "tiny-rgb-images.h5",
        "tiny-lm": "tiny-tokens.h5"}


def randomize(model, gen):
    """Scaled random weights: matrices N(0, 1/fan_in) keep activations O(1)
    through the blocks, LayerNorm affine params are perturbed away from the
    identity so w/b mistakes show, and gates are large so routing is decisive."""
    def rn(shape, std):
        return torch.randn(*shape, generator=gen) * std

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "router.gate.weight" in name:
                p.copy_(rn(p.shape, 0.5))
            elif "router.gate.bias" in name:
                p.copy_(rn(p.shape, 0.3))
            elif name.endswith(("ln1.weight", "ln2.weight", "head_ln.weight")):
                p.copy_(1.0 + rn(p.shape, 0.2))
            elif name in ("pos", "tok", "cls"):
                p.copy_(rn(p.shape, 0.5))
            elif p.dim() >= 2 and not name.endswith((".b1", ".b2")):
                # [out, in] or [E, out, in]; MoE b1/b2 are [E, n] biases.
                p.copy_(rn(p.shape, p.shape[-1] ** -0.5))
            else:  # biases
                p.copy_(rn(p.shape, 0.1))


def write_data(out, gen):
    # Images with some structure (a bright square on noise) rather than pure
    # noise, so patches differ in a visible way; labels cycle 0..2.
    def images(n, c):
        x = torch.randint(0, 256, (n, 8, 8, c), generator=gen, dtype=torch.uint8).numpy()
        for i in range(n):
            r, q = (i * 3) % 5, (i * 5) % 5
            x[i, r:r + 3, q:q + 3, :] = 255
        return x

    labels = (np.arange(8) % 3).astype(np.uint8)
    gray = images(8, 1)
    with h5py.File(os.path.join(out, "tiny-images.h5"), "w") as f:
        f.create_dataset("images", data=gray, **_GZ)
        f.create_dataset("labels", data=labels, **_GZ)
    # Same images and labels as IDX, so the IDX reader can be checked against
    # the HDF5 reader.  IDX images have no channel axis.
    write_idx(os.path.join(out, "tiny-images-idx3-ubyte.gz"), gray[..., 0])
    write_idx(os.path.join(out, "tiny-labels-idx1-ubyte.gz"), labels)
    with h5py.File(os.path.join(out, "tiny-rgb-images.h5"), "w") as f:
        f.create_dataset("images", data=images(8, 3), **_GZ)
        f.create_dataset("labels", data=labels.astype(np.int32), **_GZ)
    tokens = torch.randint(0, 11, (6, 13), generator=gen).numpy().astype(np.int32)
    with h5py.File(os.path.join(out, "tiny-tokens.h5"), "w") as f:
        f.create_dataset("tokens", data=tokens, **_GZ)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    write_data(args.out, torch.Generator().manual_seed(1234))

    for name, cfg in MODELS.items():
        model_path = os.path.join(args.out, name + ".h5")
        data_path = os.path.join(args.out, DATA[name])
        ref_path = os.path.join(args.out, f"ref-{name}.h5")
        for seed in range(1, 1000):
            model = MoEModel(cfg)
            randomize(model, torch.Generator().manual_seed(seed))
            save_model(model, model_path, {
                "seed": seed, "description": "random weights, unit-test fixture",
                "train_command": "/usr/bin/python3 tools/make_tiny_models.py"},
                compress=False)
            n = 1000  # every sample of the tiny data file
            mm = write_reference(model_path, data_path, ref_path, n=n)
            if mm >= MIN_MARGIN:
                break
        print(f"{name}: seed {seed}, min top-k margin {mm:.4f}")


if __name__ == "__main__":
    main()
