#!/usr/bin/python3
"""Independent check of a reference state file against a second, literal
NumPy reading of docs/model-format.md.

    /usr/bin/python3 tools/spec_check.py REF.h5 [--n 4]

moe_model.py and the C engine must agree, but both could share a misreading
of the spec.  This script does not use moe_model.py: it reads the HDF5 model
with h5py and follows the spec's formulas token by token in float64 (explicit
loops, explicit patch indexing v[(dy*P+dx)*C+ch], explicit top-k with the
lower-index tie rule), then compares with the logits and routing stored in REF.
"""

import argparse
import math
import os
import sys

import numpy as np
import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def attr(f, k):
    v = f.attrs[k]
    return v.decode() if isinstance(v, bytes) else v


def layer_norm(x, w, b, eps):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()  # biased variance
    return (x - mu) / math.sqrt(var + eps) * w + b


def act(x, name):
    if name == "relu":
        return np.maximum(x, 0.0)
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def forward(f, inp):
    """One sample: image uint8 [H,W,C] or tokens [T].  Returns (logits,
    {L: (p [T,E], topk [T,k], w [T,k])})."""
    g = lambda p: f[p][()].astype(np.float64)  # noqa: E731
    task, d, H = attr(f, "task"), int(attr(f, "d_model")), int(attr(f, "n_heads"))
    eps, actn = float(attr(f, "norm_eps")), attr(f, "activation")
    k, gnorm = int(attr(f, "top_k")), attr(f, "gate_norm")
    moe = set(int(x) for x in np.atleast_1d(f.attrs["moe_layers"]))
    if task == "classify":
        P, C = int(attr(f, "patch")), int(attr(f, "channels"))
        Hh, Ww = int(attr(f, "image_h")), int(attr(f, "image_w"))
        x = inp.astype(np.float64) / 255.0
        toks = []
        if attr(f, "pool") == "cls":
            toks.append(g("embed/cls"))
        pw, pb = g("embed/patch_w"), g("embed/patch_b")
        for r in range(Hh // P):
            for c in range(Ww // P):
                v = np.zeros(P * P * C)
                for dy in range(P):
                    for dx in range(P):
                        for ch in range(C):
                            v[(dy * P + dx) * C + ch] = x[r * P + dy, c * P + dx, ch]
                toks.append(pw @ v + pb)
        X = np.array(toks)
    else:
        X = np.array([g("embed/tok")[t] for t in inp])
    X = X + g("embed/pos")[:len(X)]
    T, dh = len(X), d // H
    routes = {}
    for L in range(int(attr(f, "n_layers"))):
        p = f"layers/{L}/"
        Y = np.array([layer_norm(t, g(p + "ln1_w"), g(p + "ln1_b"), eps) for t in X])
        qkv = Y @ g(p + "attn_qkv_w").T + g(p + "attn_qkv_b")
        heads = []
        for j in range(H):
            Q = qkv[:, j * dh:(j + 1) * dh]
            K = qkv[:, d + j * dh:d + (j + 1) * dh]
            V = qkv[:, 2 * d + j * dh:2 * d + (j + 1) * dh]
            out = np.zeros((T, dh))
            for i in range(T):
                n = i + 1 if task == "lm" else T  # causal mask for lm
                a = softmax(np.array([Q[i] @ K[t] / math.sqrt(dh) for t in range(n)]))
                out[i] = a @ V[:n]
            heads.append(out)
        X = X + np.concatenate(heads, axis=1) @ g(p + "attn_out_w").T + g(p + "attn_out_b")
        Y = np.array([layer_norm(t, g(p + "ln2_w"), g(p + "ln2_b"), eps) for t in X])
        if L not in moe:
            hdn = act(Y @ g(p + "ffn/w1").T + g(p + "ffn/b1"), actn)
            X = X + hdn @ g(p + "ffn/w2").T + g(p + "ffn/b2")
            continue
        gw = g(p + "moe/gate_w")
        gb = g(p + "moe/gate_b") if p + "moe/gate_b" in f else np.zeros(len(gw))
        w1, b1, w2, b2 = g(p + "moe/w1"), g(p + "moe/b1"), g(p + "moe/w2"), g(p + "moe/b2")
        P_, S_, W_ = [], [], []
        for i in range(T):
            pr = softmax(gw @ Y[i] + gb)
            S = sorted(range(len(pr)), key=lambda e: (-pr[e], e))[:k]
            w = np.array([pr[e] for e in S])
            if gnorm == "renorm":
                w = w / w.sum()
            y = sum(w[j] * (act(w1[e] @ Y[i] + b1[e], actn) @ w2[e].T + b2[e])
                    for j, e in enumerate(S))
            X[i] = X[i] + y
            P_.append(pr), S_.append(S), W_.append(w)
        routes[L] = (np.array(P_), np.array(S_), np.array(W_))
    Z = np.array([layer_norm(t, g("head/ln_w"), g("head/ln_b"), eps) for t in X])
    if task == "classify":
        z = Z[0] if attr(f, "pool") == "cls" else Z.mean(axis=0)
        return g("head/w") @ z + g("head/b"), routes
    return Z @ g("head/w").T + g("head/b"), routes


def nmse(a, b):
    return float(((a - b) ** 2).sum() / max((b ** 2).sum(), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref")
    ap.add_argument("--n", type=int, default=4, help="samples to check (slow loops)")
    args = ap.parse_args()
    worst = 0.0
    with h5py.File(args.ref, "r") as r:
        model = os.path.join(ROOT, attr(r, "model"))
        inputs = r["inputs/images"][()] if "inputs/images" in r else r["inputs/tokens"][()]
        with h5py.File(model, "r") as f:
            for s in range(min(args.n, len(inputs))):
                inp = inputs[s] if inputs.dtype == np.uint8 else inputs[s, :-1]
                logits, routes = forward(f, inp)
                worst = max(worst, nmse(r["logits"][s], logits))
                for L, (pr, S, w) in routes.items():
                    worst = max(worst, nmse(r[f"layers/{L}/probs"][s], pr),
                                nmse(r[f"layers/{L}/weights"][s], w))
                    if not (r[f"layers/{L}/topk"][s] == S).all():
                        sys.exit(f"sample {s} layer {L}: top-k differs")
    print(f"{args.ref}: {min(args.n, len(inputs))} samples, worst NMSE {worst:.3g}")
    sys.exit(0 if worst < 1e-10 else 1)


if __name__ == "__main__":
    main()
