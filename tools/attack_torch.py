#!/usr/bin/python3
"""PyTorch FGSM / PGD / Square on the reference implementation (docs/attacks.md).

    /usr/bin/python3 tools/attack_torch.py --model M.h5 [--router NAME] --method pgd
        [--eps 8/255] [--steps 20] [--step-size 2/255] [--random-start]
        [--n 1000] [--batch 100] [--threads 2] [--out RESULT.h5]

The attacks as the papers define them, in float32 on tools/moe_model.py (the way a
PyTorch user would run them), on the first --n Fashion-MNIST test images, intensities
x = image / 255 in [0, 1]:

- fgsm (Goodfellow et al. 2015): x' = clip01(x + eps sign(grad_x CE(f(x), y)));
- pgd (Madry et al. 2018): x^{t+1} = clip01(clip_{x +- eps}(x^t + alpha sign(grad CE))),
  from x (or x + U(-eps, eps) with --random-start), the last iterate;
- square (Andriushchenko et al. 2020, AutoAttack's autoattack/square.py, Linf, margin
  loss, p_init 0.8, absolute p schedule; correctly classified images only), for timing:
  its random draws are torch's, not the C engine's streams.

S2MoE (noise=on) runs on the C engine's Gaussian draws of each image's dataset index,
read from the helper build/tests/dump_s2moe_noise (--noise-helper; GSL's ziggurat
generator has no PyTorch counterpart), so that both sides attack the same function.

Prints the clean and adversarial accuracy and the attack's wall time; --out writes them
with the per-image correctness (/clean_correct, /adv_correct uint8 [n]) and the settings
as attributes: the references of tests/test_attack_parity.c (tools/make_attack_refs.sh).
"""

import argparse
import math
import os
import subprocess
import sys
import time

import numpy as np
import h5py
import torch
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
from h5export import load_model  # noqa: E402
from data import load_eval_data  # noqa: E402
from moe_model import set_router  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fraction(s):
    if "/" in s:
        a, b = s.split("/", 1)
        return float(a) / float(b)
    return float(s)


def use_c_noise(model, helper, first, x):
    """Give every s2moe router the C engine's draws for images first .. first+B-1 of x
    [B,H,W,C] (streams (0, "router/s2moe/L", index), tests/dump_s2moe_noise.c)."""
    rs = [r for r in model.routers() if hasattr(r, "noise_draws")]
    if not rs:
        return
    with torch.no_grad():
        B, T, d = model.embed_pixels(x).shape
    for r in rs:
        raw = subprocess.run([helper, str(int(r.seed)), str(r.layer), str(first), str(B), str(T),
                              str(d)], check=True, capture_output=True).stdout
        n = np.frombuffer(raw, dtype=np.float64).reshape(2, B, T, d)
        r.noise_draws = (torch.from_numpy(n[0].copy()), torch.from_numpy(n[1].copy()))


def logits_of(model, x):
    """x: intensities [B,H,W,C] -> logits [B,K]."""
    return model.forward_embedded(model.embed_pixels(x))[0]


def pgd(model, x, y, eps, alpha, steps, random_start, gen):
    xa = x.clone()
    if random_start:
        xa = (xa + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(logits_of(model, xa), y, reduction="sum")
        g, = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            xa = xa + alpha * g.sign()
            xa = torch.min(torch.max(xa, x - eps), x + eps).clamp(0, 1)
    return xa.detach()


def margin(model, x, y):
    z = logits_of(model, x)
    zy = z.gather(1, y[:, None]).squeeze(1)
    other = z.clone()
    other.scatter_(1, y[:, None], -float("inf"))
    return zy - other.max(dim=1).values


def p_selection(p_init, it):
    for thr in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000):
        if it <= thr:
            return p_init
        p_init /= 2
    return p_init


@torch.no_grad()
def square(model, x, y, eps, queries, gen, p_init=0.8):
    """AutoAttack's Linf Square attack (one restart, margin loss) on the images the model
    classifies correctly; the others are returned unchanged."""
    out = x.clone()
    todo = (margin(model, x, y) > 0).nonzero().squeeze(1)
    if todo.numel() == 0:
        return out
    xc, yc = x[todo], y[todo]
    n, h, w, c = xc.shape
    stripes = torch.sign(torch.rand((n, 1, w, c), generator=gen) * 2 - 1)
    xb = (xc + eps * stripes).clamp(0, 1)
    mb = margin(model, xb, yc)
    for it in range(queries):
        act = (mb > 0).nonzero().squeeze(1)
        if act.numel() == 0:
            break
        s = max(int(round(math.sqrt(p_selection(p_init, it) * h * w))), 1)
        s = min(s, h, w)
        vh = int(torch.rand(1, generator=gen) * (h - s))
        vw = int(torch.rand(1, generator=gen) * (w - s))
        delta = torch.zeros((h, w, c))
        delta[vh:vh + s, vw:vw + s, :] = 2 * eps * torch.sign(torch.rand((1, 1, c), generator=gen)
                                                              * 2 - 1)
        xn = torch.min(torch.max(xb[act] + delta, xc[act] - eps), xc[act] + eps).clamp(0, 1)
        mn = margin(model, xn, yc[act])
        better = (mn < mb[act]) | (mn <= 0)
        idx = act[better]
        xb[idx] = xn[better]
        mb[idx] = mn[better]
    out[todo] = xb
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--router", default=None)
    ap.add_argument("--method", choices=("fgsm", "pgd", "square"), required=True)
    ap.add_argument("--eps", type=fraction, default=8 / 255)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--step-size", type=fraction, default=None)
    ap.add_argument("--random-start", action="store_true")
    ap.add_argument("--data", default=FMNIST)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--noise-helper", default=os.path.join(os.path.dirname(TOOLS), "build",
                                                           "tests", "dump_s2moe_noise"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, attrs = load_model(args.model)
    router = args.router or attrs["router"]
    set_router(model, router)
    _, images, labels = load_eval_data(args.data)
    x = torch.from_numpy(np.ascontiguousarray(images[:args.n])).float() / 255.0
    y = torch.from_numpy(labels[:args.n]).long()
    gen = torch.Generator().manual_seed(args.seed)
    alpha = args.step_size if args.step_size is not None else args.eps / 4
    def batch_logits(i, xb):
        use_c_noise(model, args.noise_helper, i, xb)
        with torch.no_grad():
            return logits_of(model, xb)

    clean = torch.cat([batch_logits(i, x[i:i + args.batch]).argmax(1)
                       for i in range(0, len(x), args.batch)]) == y
    t0 = time.perf_counter()
    adv = []
    for i in range(0, len(x), args.batch):
        xb, yb = x[i:i + args.batch], y[i:i + args.batch]
        use_c_noise(model, args.noise_helper, i, xb)
        if args.method == "fgsm":
            adv.append(pgd(model, xb, yb, args.eps, args.eps, 1, False, gen))
        elif args.method == "pgd":
            adv.append(pgd(model, xb, yb, args.eps, alpha, args.steps, args.random_start, gen))
        else:
            adv.append(square(model, xb, yb, args.eps, args.steps, gen))
    seconds = time.perf_counter() - t0
    adv = torch.cat(adv)
    correct = torch.cat([batch_logits(i, adv[i:i + args.batch]).argmax(1)
                         for i in range(0, len(x), args.batch)]) == y
    linf = float((adv - x).abs().max()) * 255
    print(f"{args.model} {router} {args.method} eps {args.eps * 255:.3g}/255 steps {args.steps}: "
          f"accuracy {clean.float().mean():.4f} -> {correct.float().mean():.4f} "
          f"(largest change {linf:.3f}/255), {seconds:.2f} s on {args.threads} thread(s)")
    if args.out:  # written under a temporary name and renamed when complete
        tmp = f"{args.out}.tmp-{os.getpid()}"
        with h5py.File(tmp, "w") as f:
            f["clean_correct"] = clean.numpy().astype(np.uint8)
            f["adv_correct"] = correct.numpy().astype(np.uint8)
            for k, v in (("model", args.model), ("router", router), ("method", args.method),
                         ("eps", args.eps), ("steps", args.steps), ("step_size", alpha),
                         ("random_start", int(args.random_start)), ("n", args.n),
                         ("seconds", seconds), ("threads", args.threads),
                         ("torch_version", str(torch.__version__))):
                f.attrs[k] = v
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
