#!/usr/bin/python3
"""Record a routing trace of a moe-robust model file with the PyTorch reference
(tools/moe_model.py) through tools/mr_trace.py: the worked example of docs/traces.md and
the other side of the trace cross-check (tests/cli_trace_reference.sh).

    /usr/bin/python3 tools/trace_reference.py --model M.h5 --data D --out TRACE.h5 \\
        --model-name NAME --checkpoint LABEL --step N [--condition clean|NAME:S] \\
        [--router R] [--top-k K] [--trace-router LABEL] [--batch 64] [--limit N] \\
        [--dtype float32|float16|bfloat16] [--threads 1] [--clean-data D]
    /usr/bin/python3 tools/trace_reference.py --many JOBS
        (one recording per line of JOBS, each line the options above: one process, torch
        imported once; tests/trace_crosscheck.sh)

D is the data the C engine reads (HDF5 /images + /labels or /tokens, or IDX); a corrupted
condition is recorded on the output of `moe-robust corrupt --data D --corruption NAME:S
--out D2.h5` (the same corrupted samples `run` evaluates). Sample ids are the dataset
indices, as `eval --save-routing` writes them. For a char-level LM, `run` scores a
corrupted pass against the clean next characters (the input is corrupted, the text to
predict is not): pass the clean data as --clean-data and the targets, token losses and
token accuracy of the trace are taken against it, as `run` computes them.
"""

import argparse
import os
import shlex
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import load_eval_data  # noqa: E402
from h5export import load_model  # noqa: E402
from moe_model import set_router  # noqa: E402
from mr_trace import RoutingRecorder  # noqa: E402


@torch.no_grad()
def record(model, task, x, y, rec, batch, clean=None):
    for i in range(0, len(x), batch):
        ids = torch.arange(i, min(i + batch, len(x)))
        if task == "classify":
            logits, _ = model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch])))
            rec.record(sample_ids=ids, labels=torch.as_tensor(y[i:i + batch]), logits=logits)
        else:
            t = torch.as_tensor(x[i:i + batch], dtype=torch.long)
            logits, _ = model(t[:, :-1])
            if clean is not None:  # the next characters of the clean text (harness/mr_eval.c)
                t = torch.as_tensor(clean[i:i + batch], dtype=torch.long)
            V = logits.shape[-1]
            loss = F.cross_entropy(logits.reshape(-1, V).double(), t[:, 1:].reshape(-1),
                                   reduction="none").reshape(t.shape[0], -1)
            rec.record(sample_ids=ids, targets=t[:, 1:], token_loss=loss,
                       predictions=logits.argmax(-1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model-name", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--step", type=int, required=True)
    ap.add_argument("--condition", default="clean")
    ap.add_argument("--router", default=None, help="router type (default: the model's)")
    ap.add_argument("--router-opt", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--trace-router", default=None, help="router label (default: --router)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clean-data", default=None,
                    help="LM: the clean data whose next characters are the targets")
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--many":
        with open(sys.argv[2]) as f:
            for line in f:
                if line.strip():
                    main(shlex.split(line))
        return
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, attrs = load_model(args.model)
    router = args.router or attrs["router"]
    opts = dict(o.split("=", 1) for o in args.router_opt)
    set_router(model, router, opts, args.top_k)
    model.eval()
    kind, x, y = load_eval_data(args.data)
    if args.limit:
        x = x[:args.limit]
        y = None if y is None else y[:args.limit]
    task = attrs["task"]
    clean = None
    if args.clean_data and task == "lm":
        clean = load_eval_data(args.clean_data)[1]
        if args.limit:
            clean = clean[:args.limit]
        if clean.shape != x.shape:
            sys.exit(f"trace_reference.py: --clean-data {args.clean_data}: tokens {clean.shape}, "
                     f"but {args.data} has {x.shape}")
    with RoutingRecorder(model, args.out, model_name=args.model_name,
                         router=args.trace_router or router, checkpoint=args.checkpoint,
                         step=args.step, condition=args.condition, task=task,
                         dtype=args.dtype,
                         source=f"tools/trace_reference.py ({os.path.basename(args.model)}), "
                                f"torch {torch.__version__}") as rec:
        record(model, task, x, y, rec, args.batch, clean)
    print(f"{args.out}: {len(x)} samples, {len(rec.routers)} MoE layers "
          f"({', '.join(r.path for r in rec.routers)})")


if __name__ == "__main__":
    main()
