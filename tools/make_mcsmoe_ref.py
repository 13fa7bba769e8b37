#!/usr/bin/python3
"""Reference values of M-SMoE merging for tests/test_compress_ref.c.

    /usr/bin/python3 tools/make_mcsmoe_ref.py [--out tests/fixtures/mcsmoe-ref-fmnist.h5]

An implementation of M-SMoE's grouping and merging (Li et al., "Merge, Then
Compress", ICLR 2024), written for this suite from the paper and the algorithm of
the authors' code (UNITES-Lab/MC-SMoE), independent of moe-robust's C code: NumPy,
SciPy's linear_sum_assignment and PyTorch only for the reference forward pass. None
of the authors' code is used or stored. What it follows, step by step (the names are
the authors' functions it reproduces):

1. router logits U = x W_g^T + b_g [tokens, E] of every MoE block, x the block's MoE
   input from the PyTorch reference model (tools/moe_model.py) on the first 256
   Fashion-MNIST training images (what `moe-robust compress` calibrates on);
2. usage (compute_all_usages): counts of each expert among every token's top-2 logits,
   divided by their sum;
3. similarity (compute_all_similarities, similarity_base="router-logits", "cosine"):
   (cos(U[:, i], U[:, j]) + 1) / 2, cosine with eps 1e-7 as torch's cosine_similarity;
4. grouping (group_experts_globally_from_dominant_experts, with the block as the only
   merged layer: its global threshold then gives the block K groups): the K most used
   experts are dominant, group label = rank; every other expert, in decreasing usage,
   joins the dominant expert of largest similarity (first on ties). Usage ties go to
   the lower index (the suite's rule; torch.argsort is unstable);
5. alignment (compute_switch_permutation_by_weight_matching, include_wo=True;
   permute_switch_mlp_dense_expert_): every member is aligned to its dominant expert
   by the permutation maximizing <W1_d, P W1_m> + <W2_d, W2_m P^T>, our b1 treated as one
   more input column of W1 (permuted with its neuron), solved by linear_sum_assignment;
6. merge (_merge_mlp_experts_by_usage_frequency_weighting): every tensor (b2 too) is
   sum_i f_i T_i / (sum_i f_i + 1e-7), in float32 as the authors' torch code.

The file stores, per MoE block: usage [E], similarity [E, E]; per K in 6, 4, 2:
the dominant experts (increasing index, the order of moe-robust's new experts), each
expert's group (index into that order), and the merged tensors w1, b1, w2, b2 of the
groups with more than one member (`merged` = their indices). A group of one expert is
that expert unchanged. tools/test_mcsmoe_reference.py checks this file against the
authors' own code where a mirror of their repository is available.
"""

import argparse
import os
import sys

import h5py
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402

MODEL = "models/fmnist-vit-moe-softmax.h5"
CALIB = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
N_CALIB = 256
KS = (6, 4, 2)
EPS = 1e-7


def router_inputs(model_path, calib, n):
    """Each MoE block's router logits [tokens, E] and weights (float32 numpy)."""
    model, attrs = load_model(os.path.join(ROOT, model_path), dtype=torch.float32)
    _, images, _ = load_eval_data(calib)
    torch.set_num_threads(1)
    with torch.no_grad():
        _, routes = model(torch.from_numpy(np.ascontiguousarray(images[:n])))
    d = attrs["d_model"]
    out = {}
    for L, blk in enumerate(model.blocks):
        if not blk.is_moe:
            continue
        moe = blk.moe
        x = [r for r in routes if r["layer"] == L][0]["moe_input"].reshape(-1, d)
        with torch.no_grad():
            logits = torch.nn.functional.linear(x, moe.router.gate.weight, moe.router.gate.bias)
        out[L] = {"logits": logits.numpy().astype(np.float32),
                  "w1": moe.w1.detach().numpy().astype(np.float32),
                  "b1": moe.b1.detach().numpy().astype(np.float32),
                  "w2": moe.w2.detach().numpy().astype(np.float32),
                  "b2": moe.b2.detach().numpy().astype(np.float32)}
    return out, attrs


def usage(logits, top):
    E = logits.shape[1]
    # top-`top` experts of every token; counts over all (token, slot) pairs
    idx = np.argsort(-logits, axis=1, kind="stable")[:, :top]
    counts = np.bincount(idx.ravel(), minlength=E).astype(np.float64)
    return counts / counts.sum()


def similarity(logits):
    U = logits.astype(np.float64)
    E = U.shape[1]
    S = np.zeros((E, E))
    for i in range(E):
        for j in range(i + 1, E):
            a, b = U[:, i], U[:, j]
            cos = a @ b / max(np.sqrt((a @ a) * (b @ b)), EPS)
            S[i, j] = S[j, i] = (cos + 1) / 2
    return S


def group(f, S, K):
    """dominant experts (by rank) and each expert's label = rank of its dominant."""
    E = len(f)
    order = sorted(range(E), key=lambda e: (-f[e], e))
    dom = order[:K]
    label = np.full(E, -1)
    for r, e in enumerate(dom):
        label[e] = r
    for e in order[K:]:
        sims = [S[e, c] for c in dom]
        label[e] = label[dom[int(np.argmax(sims))]]
    return dom, label


def align(w1d, b1d, w2d, w1m, b1m, w2m):
    """member's (w1, b1, w2) with hidden neurons permuted to match the dominant's."""
    ref_in = np.concatenate([w1d, b1d[:, None]], axis=1)  # [h, d+1]
    mem_in = np.concatenate([w1m, b1m[:, None]], axis=1)
    cost = ref_in @ mem_in.T + w2d.T @ w2m               # [h, h], float32 as torch.mm
    _, perm = linear_sum_assignment(cost.astype(np.float64), maximize=True)
    return w1m[perm], b1m[perm], w2m[:, perm]


def merge_block(blk, f, dom, label):
    """merged tensors of each group, groups in increasing dominant index."""
    out = []
    for g in sorted(range(len(dom)), key=lambda r: dom[r]):
        d = dom[g]
        members = [e for e in range(len(f)) if label[e] == g]
        acc = {n: np.zeros_like(blk[n][0]) for n in ("w1", "b1", "w2", "b2")}
        for e in members:
            t = {n: blk[n][e] for n in ("w1", "b1", "w2", "b2")}
            if e != d:
                t["w1"], t["b1"], t["w2"] = align(blk["w1"][d], blk["b1"][d], blk["w2"][d],
                                                  t["w1"], t["b1"], t["w2"])
            for n in acc:
                acc[n] = acc[n] + t[n] * np.float32(f[e])
        den = np.float32(sum(np.float32(f[e]) for e in members)) + np.float32(EPS)
        out.append((members, {n: (acc[n] / den).astype(np.float32) for n in acc}))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "mcsmoe-ref-fmnist.h5"))
    args = ap.parse_args()
    blocks, attrs = router_inputs(MODEL, CALIB, N_CALIB)
    top = attrs["top_k"]
    tmp = args.out + ".tmp"
    with h5py.File(tmp, "w") as h:
        h.attrs["model"] = MODEL
        h.attrs["calib"] = CALIB
        h.attrs["calib_samples"] = N_CALIB
        h.attrs["method"] = "merge-msmoe"
        h.attrs["generator"] = "tools/make_mcsmoe_ref.py"
        h.attrs["blocks"] = np.array(sorted(blocks), dtype=np.int32)
        h.attrs["ks"] = np.array(KS, dtype=np.int32)
        for L, blk in sorted(blocks.items()):
            f = usage(blk["logits"], top)
            S = similarity(blk["logits"])
            g = h.create_group(f"block{L}")
            g["usage"] = f
            g["similarity"] = S
            for K in KS:
                dom, label = group(f, S, K)
                by_index = sorted(range(K), key=lambda r: dom[r])
                pos = {r: i for i, r in enumerate(by_index)}  # rank -> position by index
                merged = merge_block(blk, f, dom, label)
                kk = g.create_group(f"K{K}")
                kk["dominant"] = np.array(sorted(dom), dtype=np.int32)
                kk["group"] = np.array([pos[int(label[e])] for e in range(len(f))], dtype=np.int32)
                multi = [i for i, (members, _) in enumerate(merged) if len(members) > 1]
                kk["merged"] = np.array(multi, dtype=np.int32)
                for n in ("w1", "b1", "w2", "b2"):
                    kk.create_dataset(n, data=np.stack([merged[i][1][n] for i in multi]),
                                      compression="gzip", shuffle=True)
                print(f"block {L} K={K}: groups " +
                      " ".join("{" + ",".join(str(e) for e in [dom[r]] + [x for x in range(len(f))
                               if label[x] == r and x != dom[r]]) + "}" for r in by_index))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
