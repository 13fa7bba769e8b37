#!/usr/bin/python3
"""Write a synthetic routing trace (docs/trace-format.md) for bench/trace_analyze.sh.

    /usr/bin/python3 bench/trace_synth.py OUT.h5 [--samples 1024] [--positions 2048]
        [--experts 64] [--layers 16] [--top-k 8] [--seed 0]

float16 router logits [N, T, E] per layer (an OLMoE-sized run by default: 64 experts,
top-8, 16 MoE layers, 1024 x 2048 = 2M tokens, 4 GiB of logits), generated and written
a few samples at a time (memory: one block), contiguous and uncompressed so that reading
is what is measured. Each layer's logits are a per-expert bias plus noise, so the expert
loads are uneven as in trained routers.
"""
import argparse

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--positions", type=int, default=2048)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    N, T, E = a.samples, a.positions, a.experts
    with h5py.File(a.out, "w") as f:
        for k, v in {"format": "moe-robust-trace", "version": 1, "model": "synthetic",
                     "router": "softmax", "checkpoint": "final", "step": 1,
                     "condition": "clean", "task": "none",
                     "source": "bench/trace_synth.py"}.items():
            f.attrs[k] = v
        f["sample_id"] = np.arange(N, dtype=np.int64)
        dss = []
        for L in range(a.layers):
            ds = f.create_dataset(f"layers/{L}/router_logits", shape=(N, T, E), dtype=np.float16)
            ds.attrs["top_k"] = a.top_k
            ds.attrs["score"] = "softmax"
            ds.attrs["norm_topk"] = 0
            dss.append((ds, rng.normal(0, 1.0, E).astype(np.float32)))
        step = max(1, (64 << 20) // (T * E * 4))
        for s0 in range(0, N, step):
            n = min(step, N - s0)
            for ds, bias in dss:
                x = rng.standard_normal((n, T, E), dtype=np.float32) * 2.0 + bias
                ds[s0:s0 + n] = x.astype(np.float16)


if __name__ == "__main__":
    main()
