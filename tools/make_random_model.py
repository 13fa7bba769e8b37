#!/usr/bin/python3
"""Write a random-weight "papers-size" char-LM model for the throughput benchmark
(bench/run.sh, docs/performance.md).

    /usr/bin/python3 tools/make_random_model.py [OUT.h5] [--layers 4] [--seed 1]

Default OUT: /tmp/moe-robust-papers.h5 (73 MB; never commit it: it is made
on demand in seconds).  The shape follows the "medium" SMoE language models
of the router papers (CompeteSMoE / MomentumSMoE / ACMoE code bases on
WikiText-103: d_model 352, 16 experts, top-2, expert hidden 352, context
512), with every block an MoE block, as in those stacks: the benchmark then
measures what the router papers' models spend their time on.  Differences,
chosen for a 2-core machine: 4 blocks instead of 6 (throughput per token
scales with the depth; --layers changes it), 8 heads (dh = 44), a byte
vocabulary of 256.  The weights are random (N(0, 1/fan_in) matrices, gates
std 0.5 so routing is decisive and spread over the experts); only speed and
memory are measured on this model, never accuracy.
"""

import argparse
import os
import sys

import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
from moe_model import ModelConfig, MoEModel  # noqa: E402
from h5export import save_model  # noqa: E402


def papers_config(n_layers=4):
    return ModelConfig(task="lm", d_model=352, n_layers=n_layers, n_heads=8, d_ff=0,
                       n_experts=16, top_k=2, expert_hidden=352,
                       moe_layers=list(range(n_layers)), norm_eps=1e-5,
                       activation="gelu", gate_norm="renorm", router="softmax",
                       vocab_size=256, max_seq_len=512, vocab=list(range(256)))


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "router.gate.weight" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith(("ln1.weight", "ln2.weight", "head_ln.weight")):
                p.fill_(1.0)
            elif name in ("pos", "tok"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif p.dim() >= 2 and not name.endswith((".b1", ".b2")):
                p.copy_(torch.randn(p.shape, generator=gen) * p.shape[-1] ** -0.5)
            else:  # biases, LayerNorm shifts
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="/tmp/moe-robust-papers.h5")
    ap.add_argument("--layers", type=int, default=4, help="blocks, all MoE (default 4)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = MoEModel(papers_config(args.layers))
    randomize(model, torch.Generator().manual_seed(args.seed))
    n = sum(p.numel() for p in model.parameters())
    # uncompressed: random float32 does not compress, and loading stays fast
    save_model(model, args.out, {
        "description": "random weights, papers-size throughput benchmark model",
        "seed": args.seed,
        "train_command": "/usr/bin/python3 tools/make_random_model.py " + " ".join(sys.argv[1:])},
        compress=False)
    print(f"{args.out}: {n} parameters, d_model 352, {args.layers} MoE blocks x 16 experts "
          f"(top-2, hidden 352), 8 heads, context 512, vocab 256")


if __name__ == "__main__":
    main()
