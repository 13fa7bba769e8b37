#!/usr/bin/python3
"""Reference input gradients for tests/test_grad_parity.c (docs/attacks.md).

    /usr/bin/python3 tools/export_grad_refs.py [--out tests/fixtures/grad]
        [--noise-helper build/tests/dump_s2moe_noise] [--only SUBSTRING]

For every (model, router, options) case below, one file ref-<case>.h5 holding the
gradient of the summed cross-entropy with respect to the model's input, computed by
torch.autograd through tools/moe_model.py in float64 (stored as float32):

- image models: d/dx of sum_b CE(f(x_b), y_b), x = images / 255 in [0, 1]
  (MoEModel.embed_pixels), for the first --fmnist-n (4) Fashion-MNIST test images;
- language models: d/dx0 of the summed next-token CE over all positions, x0 the input
  embeddings (token + position), for the first --kjv-n (2) windows of
  models/kjv-char-test.h5 cut to --kjv-t (64) characters, and the tiny LM fixtures.

Each file also holds what the C test needs to tell a tie from a bug: per MoE block the
reference's top-k [n,T,k], the margin between the k-th and (k+1)-th routing probability
and between the first and second ([n,T]); for the attention router's min-entropy head
search, the chosen head and its entropy gap to the runner-up per sequence; the loss.

The routers are those of the shipped models (each Fashion-MNIST variant with the router
it was trained with, the char-LMs likewise), the training-free swaps on the softmax
models, option variants, and the tiny fixtures of tests/fixtures/routers (cosine,
random, momentum, s2moe on a causal LM). s2moe runs with noise=on: its Gaussian draws
are the C engine's, read from the helper build/tests/dump_s2moe_noise (built with the
tests), because GSL's ziggurat generator has no PyTorch counterpart.
"""

import argparse
import os
import subprocess
import sys

import numpy as np
import h5py
import torch
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402
from moe_model import set_router, parse_router_opts, margin  # noqa: E402
from export_reference import _repo_path  # noqa: E402

FMNIST_DATA = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
KJV_DATA = "models/kjv-char-test.h5"
FM = "models/fmnist-vit-moe-{}.h5"
KJV = "models/kjv-char-moe-{}.h5"
TINY_LM = "tests/fixtures/routers/tiny-lm-{}.h5"
TINY_LM_DATA = "tests/fixtures/tiny-tokens.h5"
TINY_CL = "tests/fixtures/routers/tiny-classify-{}.h5"
TINY_CL_DATA = "tests/fixtures/tiny-images.h5"

# (model, data, router, options)
CASES = (
    # every shipped Fashion-MNIST variant with its own router
    [(FM.format(r), FMNIST_DATA, r, "") for r in
     ("softmax", "similarity", "attention", "ac", "cosine", "random", "momentum", "s2moe")]
    + [(FM.format("s2moe"), FMNIST_DATA, "s2moe", "noise=off")]
    # training-free swaps and options on the softmax model
    + [(FM.format("softmax"), FMNIST_DATA, r, o) for r, o in
       (("similarity", ""), ("attention", ""), ("attention", "head=mean"),
        ("attention", "sigma=0.5"), ("ac", ""), ("ac", "group=batch"), ("random", ""),
        ("momentum", ""))]
    # the char-LMs
    + [(KJV.format(r), KJV_DATA, r, "") for r in ("softmax", "similarity", "attention", "ac")]
    + [(KJV.format("softmax"), KJV_DATA, r, o) for r, o in
       (("attention", "sigma=0.5"), ("momentum", ""), ("random", ""))]
    # causal-LM cases of the routers no char-LM was trained with
    + [(TINY_LM.format(r), TINY_LM_DATA, r, o) for r, o in
       (("cosine", ""), ("s2moe", ""), ("momentum", "mu=0.9,gamma=0.5"), ("random", ""),
        ("similarity", ""), ("ac", "group=batch,eps=0.01,clamp=2"))]
    + [(TINY_CL.format(r), TINY_CL_DATA, r, o) for r, o in
       (("cosine", ""), ("s2moe", ""), ("similarity", ""))]
)


def slug(s):
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in s.replace(",", "-"))


def case_name(model, router, opts):
    stem = os.path.splitext(os.path.basename(model))[0].replace("-moe-", "-")
    return f"ref-{stem}-{router}" + (f"-{slug(opts)}" if opts else "") + ".h5"


def c_noise(helper, model, router_opts, B, T):
    """Give every s2moe router of the model the C engine's draws (n1, n2) [B,T,d]."""
    seed = int(float(parse_router_opts(router_opts).get("seed", 0)))
    for r in model.routers():
        raw = subprocess.run([helper, str(seed), str(r.layer), "0", str(B), str(T),
                              str(model.cfg.d_model)], check=True, capture_output=True).stdout
        n = np.frombuffer(raw, dtype=np.float64).reshape(2, B, T, model.cfg.d_model)
        r.noise_draws = (torch.from_numpy(n[0].copy()), torch.from_numpy(n[1].copy()))


def head_choice(att):
    """The attention router's min-entropy head per sequence and its entropy gap to the
    runner-up (att [B,H,T,T])."""
    plogp = torch.where(att > 0, att * torch.log(torch.where(att > 0, att,
                                                              torch.ones_like(att))),
                        torch.zeros_like(att))
    ent = -plogp.sum(dim=-1).mean(dim=-1)  # [B, H]
    s, i = torch.sort(ent, dim=1)
    gap = s[:, 1] - s[:, 0] if ent.shape[1] > 1 else torch.full_like(s[:, 0], float("inf"))
    return i[:, 0], gap


def write_case(model_path, data_path, router, opts, out_path, n_img, n_seq, t_seq, helper):
    model, attrs = load_model(model_path, dtype=torch.float64)
    set_router(model, router, opts)
    kind, x, y = load_eval_data(data_path)
    if kind == "images":
        x, y = x[:n_img], y[:n_img]
        inp = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64) / 255.0
        inp.requires_grad_(True)
        emb = model.embed_pixels(inp)
        B, T = x.shape[0], emb.shape[1]
    else:
        x = x[:n_seq, :t_seq + 1]
        tok = torch.from_numpy(x[:, :-1].copy()).long()
        B, T = tok.shape
        inp = model.embed_tokens(tok).detach().clone().requires_grad_(True)
        emb = inp
    if router == "s2moe":
        c_noise(helper, model, opts, B, T)
    # the attention router's head choice, from the attention probabilities it reads
    heads = {}
    if router == "attention":
        for blk in model.blocks:
            blk.attn.register_forward_hook(
                lambda mod, a, o, blk=blk: heads.__setitem__(id(blk), head_choice(o[1].detach())))
    logits, routes = model.forward_embedded(emb)
    if kind == "images":
        loss = F.cross_entropy(logits, torch.from_numpy(y), reduction="sum")
    else:
        tgt = torch.from_numpy(x[:, 1:].copy()).long()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                               reduction="sum")
    loss.backward()
    k = attrs["top_k"]
    with h5py.File(out_path, "w") as f:
        f.attrs["model"] = _repo_path(model_path)
        f.attrs["data"] = _repo_path(data_path)
        f.attrs["router"] = router
        f.attrs["router_opts"] = opts
        f.attrs["n"] = np.int64(B)
        f.attrs["loss"] = np.float64(loss.item())
        f.attrs["compute_dtype"] = "float64"
        if kind == "images":
            f["inputs/images"] = x.astype(np.uint8)
            f["inputs/labels"] = y.astype(np.int32)
        else:
            f["inputs/tokens"] = x.astype(np.int32)
        f["grad"] = inp.grad.detach().to(torch.float32).numpy()
        worst = float("inf")
        for r in routes:
            g = f"layers/{r['layer']}/"
            p = r["probs"].detach()
            m = margin(p, k)
            s, _ = torch.sort(p, dim=-1, descending=True)
            worst = min(worst, float(m.min()))
            f[g + "topk"] = r["topk"].numpy().astype(np.int32)
            f[g + "margin"] = m.to(torch.float32).numpy()
            f[g + "top1_margin"] = (s[..., 0] - s[..., 1]).to(torch.float32).numpy()
            blk = model.blocks[r["layer"]]
            if id(blk) in heads:
                h, gap = heads[id(blk)]
                f[g + "head"] = h.numpy().astype(np.int32)
                f[g + "head_gap"] = gap.to(torch.float32).numpy()
        f.attrs["min_margin"] = np.float64(worst)
    return worst, float(inp.grad.abs().max())


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "grad"))
    ap.add_argument("--noise-helper", default=os.path.join(ROOT, "build", "tests",
                                                           "dump_s2moe_noise"))
    ap.add_argument("--fmnist-n", type=int, default=4)
    ap.add_argument("--kjv-n", type=int, default=2)
    ap.add_argument("--kjv-t", type=int, default=64)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.chdir(ROOT)
    os.makedirs(args.out, exist_ok=True)
    for model, data, router, opts in CASES:
        name = case_name(model, router, opts)
        if args.only and args.only not in name:
            continue
        if not os.path.exists(model):
            print(f"{name}: {model} missing, skipped")
            continue
        n_seq, t_seq = (args.kjv_n, args.kjv_t) if data == KJV_DATA else (4, 1000)
        mm, gmax = write_case(model, data, router, opts, os.path.join(args.out, name),
                              args.fmnist_n, n_seq, t_seq, args.noise_helper)
        print(f"{name}: min top-k margin {mm:.3g}, max |grad| {gmax:.3g}", flush=True)


if __name__ == "__main__":
    main()
