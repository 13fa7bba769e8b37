"""The PyTorch forward a user would write for speed: the best-effort peer of the C engine
in bench/run.sh (tools/bench_torch.py --impl fast; docs/performance.md).

tools/moe_model.py is the project's reference definition: it is written to be read and
to match the C engine's numerics, tie rules included (a stable sort for the top-k, one
`nonzero` scan of the routing per expert). `speed_up(model)` changes, in place, only how
the same model computes, as a performance-minded user (or Hugging Face's Mixtral block,
or a Megablocks-style dispatch) does it:

- top-k by `torch.topk` instead of a stable full sort (ties may then be broken another
  way; no throughput depends on that);
- expert dispatch sorted by expert: the B*T*k (token, expert) assignments are ordered
  once by expert (`argsort` + `bincount`), the tokens gathered once (`index_select`), each
  expert runs its two GEMMs once on its contiguous slice (`addmm` into a preallocated
  buffer), the outputs are scaled by their gate weights in one pass and scattered back
  once (`index_add_`).

Everything else (attention, LayerNorm, the routers' own scoring) is the reference's: it
is already what such a user writes in PyTorch 1.13 (no fused attention kernel exists on
CPU there). Run it under torch.inference_mode() with torch.set_num_threads(T), as
bench_torch.py does. tests/test_moe_fast.py checks that the logits equal the reference's.
"""

import torch

import moe_model


def _topk(probs, k, gate_norm):
    """moe_model.select_topk by torch.topk (sorted by value; ties in any order)."""
    p_k, idx = torch.topk(probs, k, dim=-1, sorted=True)
    if gate_norm == "renorm":
        return idx, p_k / p_k.sum(dim=-1, keepdim=True)
    return idx, p_k


def _sorted_experts(moe):
    """A replacement for MoE.experts(x, idx, w) with expert-sorted dispatch."""
    n_exp = moe.w1.shape[0]

    def experts(x, idx, w):
        B, T, d = x.shape
        k = idx.shape[-1]
        xf = x.reshape(B * T, d)                       # [N, d]
        flat = idx.reshape(-1)                         # [N*k] expert of each assignment
        order = torch.argsort(flat)                    # assignments grouped by expert
        counts = torch.bincount(flat, minlength=n_exp).tolist()
        tok = torch.div(order, k, rounding_mode="floor")  # token of each assignment
        xs = xf.index_select(0, tok)                   # [N*k, d] grouped by expert
        ws = w.reshape(-1).index_select(0, order)      # [N*k] their gate weights
        out = torch.empty_like(xs)                     # [N*k, d]
        s = 0
        for e, n in enumerate(counts):
            if n:
                h = moe.act(torch.addmm(moe.b1[e], xs[s:s + n], moe.w1[e].t()))  # [n, h]
                torch.addmm(moe.b2[e], h, moe.w2[e].t(), out=out[s:s + n])       # [n, d]
            s += n
        out.mul_(ws.unsqueeze(1))
        return torch.zeros_like(xf).index_add_(0, tok, out).view(B, T, d)

    return experts


def speed_up(model):
    """Makes `model` (a moe_model.MoEModel) compute as described above; returns it. The
    top-k change applies to every model of the process (the routers call the module's
    select_topk): meant for a benchmark process, not for reference computations."""
    moe_model.select_topk = _topk  # the routers look the function up in their module
    for blk in model.blocks:
        if blk.is_moe:
            blk.moe.experts = _sorted_experts(blk.moe)
    return model


__all__ = ["speed_up"]
