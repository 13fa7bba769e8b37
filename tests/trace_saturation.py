#!/usr/bin/python3
"""Router saturation, known answer (docs/metrics.md "Router saturation"), for
tests/cli_analyze.sh.

    trace_saturation.py write DIR     three hand-built traces of one model, checkpoints at
                                      steps 10, 20, 30 (2 MoE layers, E = 4, k = 2, 3
                                      samples of 2 tokens; sample 2's second token is
                                      padding at step 10)
    trace_saturation.py settle DIR STEP BLOCK
                                      MoE block BLOCK of the step-STEP trace routed as the
                                      last checkpoint (its saturation becomes 1)
    trace_saturation.py check OUT     OUT/results.h5 (analyze of those traces) holds the
                                      saturation worked out by hand below; exit 1 if not

Saturation of checkpoint t = per sample, mean over the tokens real in both traces of
|S_t n S_last| / k; then the mean over samples. The last checkpoint routes every token to
{0, 1}. By hand, per sample (layer 1 | layer 3):
  step 10: s0 {0,1},{2,3} -> 1, 0 = .5 | {0,1},{0,1} -> 1 | s1 {0,2},{0,2} -> .5 |
           {1,0},{1,2} -> 1, .5 = .75 | s2 {1,0} (second token padding) -> 1 | {2,3} -> 0
           layer 1: (.5 + .5 + 1) / 3 = 2/3, layer 3: (1 + .75 + 0) / 3 = 7/12
  step 20: every token {0,1} at layer 1 -> 1 | s0 {0,2},{0,2} -> .5, s1 {3,2},{1,2} ->
           0, .5 = .25, s2 {0,3},{1,3} -> .5: layer 3 (.5 + .25 + .5) / 3 = 5/12
"""
import sys

import h5py
import numpy as np

E, K, T = 4, 2, 2
LAST = [[[0, 1]] * T] * 3
SERIES = {  # step: {layer: [sample][token] top-k}
    10: {1: [[[0, 1], [2, 3]], [[0, 2], [0, 2]], [[1, 0], [3, 2]]],
         3: [[[0, 1], [0, 1]], [[1, 0], [1, 2]], [[2, 3], [2, 3]]]},
    20: {1: LAST,
         3: [[[0, 2], [0, 2]], [[3, 2], [1, 2]], [[0, 3], [1, 3]]]},
    30: {1: LAST, 3: LAST},
}
WANT = {10: [2 / 3, 7 / 12], 20: [1.0, 5 / 12]}  # per MoE layer (blocks 1, 3)


def write(out):
    for step, layers in SERIES.items():
        with h5py.File(f"{out}/sat-{step}.h5", "w") as f:
            for key, val in (("format", "moe-robust-trace"), ("version", 1), ("model", "sat"),
                             ("router", "softmax"), ("checkpoint", f"step{step}"),
                             ("step", step), ("condition", "clean"), ("task", "none"),
                             ("source", "tests/trace_saturation.py")):
                f.attrs[key] = val
            f["sample_id"] = np.array([7, 8, 9], np.int64)
            mask = np.ones((3, T), np.uint8)
            if step == 10:
                mask[2, 1] = 0
            f["mask"] = mask
            for blk, topk in layers.items():
                topk = np.array(topk, np.int64)
                probs = np.full((3, T, E), 0.15, np.float32)  # top-2 by score = topk
                for s in range(3):
                    for t in range(T):
                        probs[s, t, topk[s, t, 0]] = 0.4
                        probs[s, t, topk[s, t, 1]] = 0.3
                g = f.create_group(f"layers/{blk}")
                g.attrs["top_k"] = K
                g.attrs["score"] = "softmax"
                g.attrs["norm_topk"] = 1
                g["probs"] = probs
                g["topk"] = topk


def check(out):
    bad = 0
    with h5py.File(f"{out}/results.h5", "r") as r:
        cells = r["cells"]
        for i, step in enumerate((10, 20)):
            name = f"sat~softmax@k2~fluct~{i}"
            got = cells[name]["saturation"][()] if name in cells else None
            if got is None or got.shape != (2, 3):
                print(f"FAIL {name}: no saturation [2, 3]")
                bad = 1
                continue
            for li, want in enumerate(WANT[step]):
                ok = abs(got[li, 0] - want) <= 1e-12 and got[li, 1] <= got[li, 0] <= got[li, 2]
                print(f"{'ok  ' if ok else 'FAIL'} step {step} layer {li}: saturation "
                      f"{got[li, 0]:.6f} [{got[li, 1]:.6f}, {got[li, 2]:.6f}], by hand {want:.6f}")
                bad |= not ok
            per = cells[name]["sample_saturation"][()]
            if per.shape != (3, 2):
                print(f"FAIL {name}: sample_saturation {per.shape}")
                bad = 1
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "settle":
        SERIES[int(sys.argv[3])][int(sys.argv[4])] = LAST
        write(sys.argv[2])
    else:
        sys.exit(check(sys.argv[2]))
