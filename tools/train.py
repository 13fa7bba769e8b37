#!/usr/bin/python3
"""Train the moe-robust reference models on CPU (run from the repository root).

    /usr/bin/python3 tools/train.py --task classify --epochs 12 --no-augment --threads 1
    /usr/bin/python3 tools/train.py --task lm --epochs 8 --steps-per-epoch 450 --threads 1

(the recipes of the shipped models, models/README.md).

classify: ViT-style MoE on Fashion-MNIST (60k train, scored on the 10k test).
lm: char-level causal MoE LM on the KJV Bible.  An lm "epoch" is a fixed number
of steps (--steps-per-epoch) over windows drawn at random positions of the train
split, not a pass over the corpus.

The last 3 epochs are saved: <prefix>-ep<N>.h5 for the first two and
<prefix>.h5 for the final epoch (the final model IS the last checkpoint, not a
copy, to keep models/ small).  Each file records its test accuracy or bits per
char, the epoch, the seed and the exact command to retrain it.

Where: a new directory out/train/<prefix>-<date>-<time>/ unless --out-dir DIR
is given.  No existing file is ever replaced without --force, and that is
checked before training starts (exit 2): the shipped models in models/ are only
rewritten by `--out-dir models --force`.  Files are written under a temporary
name and renamed when complete.

--router NAME [--router-opt K=V ...] trains the same architecture, data, seed
and schedule with another router (docs/routers.md); whatever the router
learns or fixes (sim_w + tau, expert_emb, proj_w + expert_emb + tau,
random_w + random_b, mu + gamma, s2_gate_w + s2_gate_b) is exported under
/layers/L/moe/router/, where `moe-robust eval --router NAME` reads it.
Output prefix fmnist-vit-moe-<router> / kjv-char-moe-<router>.  Smoke test:
--epochs 1 --steps-per-epoch 2 --test-limit 64.

Long runs in pieces: after every epoch the complete training state (weights,
AdamW moments, the step, every random generator) is written to
<out-dir>/<prefix>.resume.pt, and removed when the last checkpoint is saved.
--stop-after N ends a run cleanly after epoch N; the same command with --resume
(and --out-dir) continues it, and the models it then writes are the ones the
uninterrupted run writes, bit for bit (with the same --threads).
"""

import argparse
import math
import os
import shlex
import sys
import time


def _early_threads():
    """--threads must also reach OpenMP before torch is imported: otherwise
    idle OpenMP workers spin on the other core (the machine is shared) and
    run-to-run results can differ."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


os.environ["OMP_NUM_THREADS"] = _early_threads()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
from moe_model import ModelConfig, MoEModel, ROUTERS, switch_aux_loss  # noqa: E402
from h5export import save_model  # noqa: E402
import data  # noqa: E402
from eval_torch import eval_classify, eval_lm  # noqa: E402

N_SAVED = 3  # checkpoints kept: the last 3 epochs
# Options that may differ between a run and its --resume: they do not change the result
# (--threads does change float summation order: use the same value to get the same bits).
RESUME_FREE = {"threads", "resume", "stop_after", "force"}


def classify_config(router, router_opts=None, moe_layers=(1, 3)):
    return ModelConfig(task="classify", d_model=64, n_layers=4, n_heads=4, d_ff=256,
                       n_experts=8, top_k=2, expert_hidden=128, moe_layers=list(moe_layers),
                       norm_eps=1e-5, activation="gelu", gate_norm="renorm",
                       router=router, router_opts=router_opts,
                       image_h=28, image_w=28, channels=1, patch=4,
                       n_classes=10, pool="cls")


def lm_config(router, vocab, router_opts=None, moe_layers=(1, 3)):
    return ModelConfig(task="lm", d_model=96, n_layers=4, n_heads=4, d_ff=384,
                       n_experts=8, top_k=2, expert_hidden=192, moe_layers=list(moe_layers),
                       norm_eps=1e-5, activation="gelu", gate_norm="renorm",
                       router=router, router_opts=router_opts, vocab_size=len(vocab),
                       max_seq_len=data.SEQ_LEN, vocab=[int(c) for c in vocab])


def lr_at(step, total, warmup, peak):
    """Linear warmup then cosine decay to 0."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


def augment(images, gen):
    """Light augmentation for Fashion-MNIST (uint8 [B,28,28,1]): random
    horizontal flip and a random shift of up to 2 px (zero padding)."""
    B, H, W, _ = images.shape
    flip = torch.rand(B, generator=gen) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(2), images)
    pad = F.pad(images.permute(0, 3, 1, 2), (2, 2, 2, 2)).permute(0, 2, 3, 1)
    dy = torch.randint(0, 5, (B,), generator=gen)
    dx = torch.randint(0, 5, (B,), generator=gen)
    rows = (dy[:, None] + torch.arange(H)[None, :])  # [B,H]
    cols = (dx[:, None] + torch.arange(W)[None, :])  # [B,W]
    b = torch.arange(B)[:, None, None]
    return pad[b, rows[:, :, None], cols[:, None, :]]


def _show(path):
    """A path as the user would type it: relative to the current directory when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def output_names(prefix, epochs):
    """{epoch: file name} of the checkpoints a run saves: the last N_SAVED epochs."""
    first = max(1, epochs - N_SAVED + 1)
    return {e: f"{prefix}.h5" if e == epochs else f"{prefix}-ep{e}.h5"
            for e in range(first, epochs + 1)}


def plan_outputs(args, prefix, done=0):
    """The output directory and the checkpoint names, decided before any training:
    a new directory under out/train/ by default; with --out-dir, refuse (exit 2) to
    replace a file that exists unless --force (files of epochs <= done are this run's
    own, written before a --resume). Returns (directory, {epoch: name})."""
    names = output_names(prefix, args.epochs)
    if args.out_dir is None:
        base = os.path.join(ROOT, "out", "train")
        os.makedirs(base, exist_ok=True)
        stem = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
        for i in range(1, 1000):
            out_dir = os.path.join(base, stem if i == 1 else f"{stem}-{i}")
            try:
                os.mkdir(out_dir)  # fails if it exists: never share a directory
                break
            except FileExistsError:
                continue
        else:
            sys.exit(f"tools/train.py: no free directory name {stem}-N in {base}")
    else:
        out_dir = args.out_dir
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            print(f"tools/train.py: --out-dir {out_dir} exists and is not a directory",
                  file=sys.stderr)
            sys.exit(2)
        taken = [os.path.join(out_dir, n) for e, n in names.items()
                 if e > done and os.path.lexists(os.path.join(out_dir, n))]
        if taken and not args.force:
            shipped = os.path.realpath(out_dir) == os.path.realpath(os.path.join(ROOT, "models"))
            print(f"tools/train.py: {taken[0]} exists"
                  f"{' (a shipped model)' if shipped else ''}"
                  f"{f' and {len(taken) - 1} more of the files this run writes' if len(taken) > 1 else ''}"
                  f"; nothing was changed: use another --out-dir (or none: a new directory "
                  f"under out/train/), or add --force to replace them", file=sys.stderr)
            sys.exit(2)
        os.makedirs(out_dir, exist_ok=True)
    print(f"writing {', '.join(names.values())} to {_show(out_dir)}", flush=True)
    return out_dir, names


def resume_path(out_dir, prefix):
    return os.path.join(out_dir, f"{prefix}.resume.pt")


def resume_args(args):
    """The options that define a run (all but RESUME_FREE), to check a --resume against."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in RESUME_FREE}


def save_resume_state(out_dir, prefix, state):
    path = resume_path(out_dir, prefix)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)  # never a half-written state under its name


def load_resume_state(args, prefix):
    """The state of the interrupted run, checked against this command (exit 2 naming the
    file or the option that differs)."""
    if args.out_dir is None:
        print("tools/train.py: --resume needs the --out-dir of the run to continue",
              file=sys.stderr)
        sys.exit(2)
    path = resume_path(args.out_dir, prefix)
    try:
        state = torch.load(path)
        saved = state["args"]
    except FileNotFoundError:
        print(f"tools/train.py: {path}: no such file: nothing to resume (a run writes it "
              f"after each epoch and removes it when it completes)", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # torch.load raises many types on a damaged file
        print(f"tools/train.py: {path}: not a training state ({type(e).__name__}: {e})",
              file=sys.stderr)
        sys.exit(2)
    now = resume_args(args)
    for k in sorted(set(saved) | set(now)):
        if saved.get(k) != now.get(k):
            print(f"tools/train.py: {path}: the run was started with --{k.replace('_', '-')} "
                  f"{saved.get(k)!r}, this command has {now.get(k)!r}: resume with the "
                  f"same options", file=sys.stderr)
            sys.exit(2)
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["classify", "lm"], required=True)
    ap.add_argument("--router", choices=sorted(ROUTERS), default="softmax",
                    help="router to train with (docs/routers.md); its trained tensors are "
                    "exported to /layers/L/moe/router/ for the C engine")
    ap.add_argument("--router-opt", action="append", default=[], metavar="K=V",
                    help="router option, repeatable, as moe-robust eval --router-opt "
                    "(e.g. tau=4 for similarity, mu=0.7 for momentum)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-prefix", default=None,
                    help="default fmnist-vit-moe-<router> / kjv-char-moe-<router>")
    ap.add_argument("--batch", type=int, default=None, help="classify 128, lm 32")
    ap.add_argument("--lr", type=float, default=None, help="peak LR; classify 2e-3, lm 2e-3")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-frac", type=float, default=0.05)
    ap.add_argument("--aux-coef", type=float, default=0.01)
    ap.add_argument("--steps-per-epoch", type=int, default=0,
                    help="lm: steps per epoch (default 500); classify: cap (default: full pass)")
    ap.add_argument("--moe-layers", default="1,3",
                    help="blocks (0-3) that are MoE blocks, comma-separated; the others are "
                    "dense (default 1,3; 0,1,2,3 makes every block an MoE block)")
    ap.add_argument("--no-augment", action="store_true", help="classify: no flips/shifts")
    ap.add_argument("--test-limit", type=int, default=0,
                    help="smoke tests: score only N test samples")
    ap.add_argument("--out-dir", default=None,
                    help="where the 3 checkpoints go (default: a new directory "
                    "out/train/<prefix>-<date>-<time>/ of the repository)")
    ap.add_argument("--force", action="store_true",
                    help="replace files that exist in --out-dir (e.g. the shipped models)")
    ap.add_argument("--stop-after", type=int, default=0, metavar="N",
                    help="end the run after epoch N, its state kept in "
                    "<out-dir>/<prefix>.resume.pt for --resume")
    ap.add_argument("--resume", action="store_true",
                    help="continue the interrupted run of the same command in --out-dir "
                    "from <prefix>.resume.pt (written after every epoch)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)  # data order / augmentation
    command = shlex.join(["/usr/bin/python3", "tools/train.py"] + sys.argv[1:])

    router_opts = ",".join(args.router_opt) or None
    try:
        moe_layers = sorted({int(x) for x in args.moe_layers.split(",")})
    except ValueError:
        ap.error(f"--moe-layers: not a comma-separated list of block indices: {args.moe_layers!r}")
    if not moe_layers or moe_layers[0] < 0 or moe_layers[-1] > 3:
        ap.error(f"--moe-layers: block indices must lie in 0..3: {args.moe_layers!r}")
    if args.epochs < 1:
        ap.error(f"--epochs {args.epochs}: at least 1")
    if args.stop_after < 0 or args.stop_after >= args.epochs:
        ap.error(f"--stop-after {args.stop_after}: an epoch in 1..{args.epochs - 1}")
    default_prefix = "fmnist-vit-moe" if args.task == "classify" else "kjv-char-moe"
    prefix = args.out_prefix or f"{default_prefix}-{args.router}"
    state = load_resume_state(args, prefix) if args.resume else None
    if state is not None:
        command = state["command"]  # the models record the command of the whole run
    out_dir, names = plan_outputs(args, prefix, state["epoch"] if state else 0)
    if args.task == "classify":
        train_x, train_y = data.fashion_mnist("train")
        test_x, test_y = data.fashion_mnist("t10k")
        train_x, train_y = torch.from_numpy(train_x), torch.from_numpy(train_y).long()
        cfg = classify_config(args.router, router_opts, moe_layers)
        batch = args.batch or 128
        full = (len(train_x) + batch - 1) // batch
        steps = min(args.steps_per_epoch, full) if args.steps_per_epoch else full
        peak = args.lr or 2e-3
    else:
        vocab, train_ids, test_ids = data.kjv_corpus()
        train_ids = torch.from_numpy(train_ids.astype(np.int64))
        test_tok = data.windows(test_ids)
        cfg = lm_config(args.router, vocab, router_opts, moe_layers)
        batch = args.batch or 32
        steps = args.steps_per_epoch or 500
        peak = args.lr or 2e-3
    if args.test_limit:
        if args.task == "classify":
            test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]
        else:
            test_tok = test_tok[:args.test_limit]

    model = MoEModel(cfg)
    # No weight decay on 1-D tensors (biases, LayerNorm, cls) and on the
    # pos / tok embeddings, as usual for ViT/GPT.  (The stacked MoE biases
    # b1/b2 are 2-D [E, n] and do get decayed; kept so runs reproduce.)
    def decayed(name, p):
        return p.dim() >= 2 and name not in ("pos", "tok")
    decay = [p for n, p in model.named_parameters() if decayed(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decayed(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=peak, betas=(0.9, 0.98))
    total = steps * args.epochs
    warmup = max(1, int(total * args.warmup_frac))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{prefix}: {n_params} params, {args.epochs} epochs x {steps} steps, "
          f"batch {batch}, peak lr {peak}", flush=True)

    t0 = time.time()
    step, first_epoch = 0, 1
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["np_rng"])
        step, first_epoch = state["step"], state["epoch"] + 1
        t0 -= state["seconds"]
        print(f"resuming after epoch {state['epoch']} (step {step}) from "
              f"{_show(resume_path(out_dir, prefix))}", flush=True)
    for epoch in range(first_epoch, args.epochs + 1):
        model.train()
        if args.task == "classify":
            order = torch.randperm(len(train_x), generator=gen)
        run_loss, run_aux = 0.0, 0.0
        for i in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warmup, peak)
            if args.task == "classify":
                idx = order[i * batch:(i + 1) * batch]
                x = train_x[idx]
                if not args.no_augment:
                    x = augment(x, gen)
                logits, routes = model(x)
                loss = F.cross_entropy(logits, train_y[idx])
            else:
                # Random windows of T+1 chars from the train split.
                start = torch.randint(0, len(train_ids) - cfg.max_seq_len - 1,
                                      (batch,), generator=gen)
                w = train_ids[start[:, None] + torch.arange(cfg.max_seq_len + 1)]
                logits, routes = model(w[:, :-1])
                loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size),
                                       w[:, 1:].reshape(-1))
            aux = switch_aux_loss(routes, cfg.n_experts)
            opt.zero_grad(set_to_none=True)
            (loss + args.aux_coef * aux).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            for r in model.routers():
                r.post_step()  # e.g. keep X-MoE's learnable temperature positive
            step += 1
            run_loss += float(loss)
            run_aux += float(aux)
            if (i + 1) % 50 == 0:
                # aux is summed over the MoE blocks: ~1 per block when balanced.
                print(f"epoch {epoch} step {i + 1}/{steps} loss {run_loss / 50:.4f} "
                      f"aux(sum) {run_aux / 50:.4f} "
                      f"lr {opt.param_groups[0]['lr']:.2e} t {time.time() - t0:.0f}s",
                      flush=True)
                run_loss, run_aux = 0.0, 0.0

        if epoch < args.epochs:
            save_resume_state(out_dir, prefix, {
                "args": resume_args(args), "command": command, "epoch": epoch,
                "step": step, "seconds": time.time() - t0, "model": model.state_dict(),
                "opt": opt.state_dict(), "gen": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "np_rng": np.random.get_state()})
        if epoch <= args.epochs - N_SAVED:
            if epoch == args.stop_after:
                break
            continue
        meta = {"train_command": command, "epoch": epoch, "epochs_total": args.epochs,
                "router_opts": router_opts or "",
                "seed": args.seed, "steps_per_epoch": steps, "batch_size": batch,
                "train_seconds": round(time.time() - t0, 1),
                "train_machine": f"CPU, torch {torch.__version__}, {args.threads} thread(s)"}
        if args.task == "classify":
            acc, tl = eval_classify(model, test_x, test_y)
            meta.update(clean_accuracy=acc, test_loss=tl,
                        train_data="Fashion-MNIST train (60000), flip+shift augmentation"
                        if not args.no_augment else "Fashion-MNIST train (60000)",
                        test_data=f"Fashion-MNIST t10k ({len(test_x)} images)")
            msg = f"test accuracy {acc:.4f} loss {tl:.4f}"
        else:
            tl, bpc = eval_lm(model, test_tok)
            meta.update(test_bpc=bpc, test_loss=tl,
                        epoch_definition=f"{steps} steps of {batch} random windows of "
                        f"{cfg.max_seq_len + 1} chars from the first 90% of the corpus",
                        test_data=f"models/kjv-char-test.h5 ({len(test_tok)} windows)")
            msg = f"test loss {tl:.4f} bpc {bpc:.4f}"
        name = names[epoch]
        path = os.path.join(out_dir, name)
        tmp = f"{path}.tmp-{os.getpid()}"
        save_model(model, tmp, meta)
        os.replace(tmp, path)  # a file that exists under its name is complete
        print(f"epoch {epoch}: {msg} -> {_show(path)} ({time.time() - t0:.0f}s)",
              flush=True)
        if epoch == args.stop_after:
            break
    if epoch == args.epochs:
        try:
            os.remove(resume_path(out_dir, prefix))  # the run is complete: nothing to resume
        except FileNotFoundError:
            pass
    else:
        print(f"stopped after epoch {epoch} of {args.epochs}; continue with the same "
              f"command and --resume", flush=True)


if __name__ == "__main__":
    main()
