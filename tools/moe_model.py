#!/usr/bin/python3
"""PyTorch reference implementation of the moe-robust model (docs/model-format.md).

This module is the ground truth the C engine is tested against, so every step
follows the "Computation" section of the spec literally: pre-LN blocks, patch
ordering, x = pixel / 255, exact (erf) GELU, biased-variance LayerNorm, head
order of the attention projection, causal mask for `lm`, top-k in descending
order of p with ties broken by the lower expert index, and the two gate_norm
modes.  Parameter names mirror the HDF5 paths so h5export.py stays a thin
mapping.

The router is a pluggable module (Router base class, ROUTERS registry) because
later work adds other routers that change how p and the top-k weights are
computed; the rest of the MoE block (expert dispatch) does not change.
"""

import math
from dataclasses import dataclass, field, asdict
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------
# Configuration: one field per root attribute of the spec ("Root attributes").
# --------------------------------------------------------------------------
@dataclass
class ModelConfig:
    task: str                      # "classify" or "lm"
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    n_experts: int
    top_k: int
    expert_hidden: int
    moe_layers: List[int]
    norm_eps: float = 1e-5
    activation: str = "gelu"       # "gelu" (erf form) or "relu"
    gate_norm: str = "renorm"      # "renorm" or "none"
    router: str = "softmax"
    gate_bias: bool = True         # False -> /layers/L/moe/gate_b absent (= zero)
    # classify
    image_h: int = 0
    image_w: int = 0
    channels: int = 0
    patch: int = 0
    n_classes: int = 0
    pool: str = "cls"              # "cls" or "mean"
    # lm
    vocab_size: int = 0
    max_seq_len: int = 0
    vocab: Optional[List[int]] = field(default=None, repr=False)  # code points

    def n_pos(self) -> int:
        """Rows of /embed/pos (spec, Datasets table)."""
        if self.task == "classify":
            grid = (self.image_h // self.patch) * (self.image_w // self.patch)
            return grid + (1 if self.pool == "cls" else 0)
        return self.max_seq_len

    def validate(self):
        # Mirror the constraints of the spec so a bad config fails in Python
        # rather than producing a file the C loader rejects.
        assert self.task in ("classify", "lm"), self.task
        assert self.d_model % self.n_heads == 0, "n_heads must divide d_model"
        assert 1 <= self.top_k <= self.n_experts
        assert self.activation in ("gelu", "relu")
        assert self.gate_norm in ("renorm", "none")
        assert list(self.moe_layers) == sorted(set(self.moe_layers))
        assert all(0 <= L < self.n_layers for L in self.moe_layers)
        assert self.norm_eps > 0
        if self.task == "classify":
            assert self.channels in (1, 3) and self.n_classes >= 2
            assert self.image_h % self.patch == 0 and self.image_w % self.patch == 0
            assert self.pool in ("cls", "mean")
        else:
            assert self.vocab_size >= 2 and self.max_seq_len >= 1


def activation_fn(name):
    # nn.GELU() default is the exact erf form the spec asks for (not tanh).
    return F.gelu if name == "gelu" else F.relu


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------
def select_topk(probs, k, gate_norm):
    """Top-k of the routing distribution, per spec "MoE (baseline softmax router)".

    A stable descending sort keeps equal probabilities in index order, which
    is exactly the spec's tie rule (lower index first); torch.topk gives no
    such guarantee.  Returns (idx [.., k] int64, weights [.., k]).
    """
    p_sorted, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    idx = order[..., :k]
    p_k = p_sorted[..., :k]
    if gate_norm == "renorm":
        # w_e = p_e / sum over S (equals softmax over the k selected logits).
        w = p_k / p_k.sum(dim=-1, keepdim=True)
    else:
        # "none" (Switch): the full-softmax probabilities themselves.
        w = p_k
    return idx, w


def load_param(param, group, name):
    """Copy dataset group[name] into param, checking the shape explicitly
    (Tensor.copy_ would silently broadcast a wrong shape)."""
    arr = group[name][()]
    if tuple(arr.shape) != tuple(param.shape):
        raise ValueError(f"{group.name}/{name}: shape {list(arr.shape)}, "
                         f"expected {list(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(arr.astype("float32")))


class Router(nn.Module):
    """Base router: maps LN2 output x [B,T,d] to (probs [B,T,E], idx [B,T,k],
    weights [B,T,k]).  Subclasses override `distribution` (and `forward` if
    they change how weights are derived) plus the HDF5 hooks below."""

    name = "base"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_experts = cfg.n_experts
        self.top_k = cfg.top_k
        self.gate_norm = cfg.gate_norm

    def distribution(self, x):
        raise NotImplementedError

    def forward(self, x):
        probs = self.distribution(x)
        idx, w = select_topk(probs, self.top_k, self.gate_norm)
        return probs, idx, w

    # HDF5 hooks: tensors relative to /layers/L/moe/ (name -> tensor) ...
    def h5_tensors(self):
        raise NotImplementedError

    # ... and loading them back (group = the h5py /layers/L/moe group).
    def load_h5(self, group):
        raise NotImplementedError


class SoftmaxRouter(Router):
    """Baseline router: p = softmax(gate_w x + gate_b)."""

    name = "softmax"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.gate = nn.Linear(cfg.d_model, cfg.n_experts, bias=cfg.gate_bias)

    def distribution(self, x):
        return torch.softmax(self.gate(x), dim=-1)

    def h5_tensors(self):
        out = {"gate_w": self.gate.weight}
        if self.gate.bias is not None:
            out["gate_b"] = self.gate.bias
        return out

    def load_h5(self, group):
        load_param(self.gate.weight, group, "gate_w")
        if self.gate.bias is not None:
            if "gate_b" in group:
                load_param(self.gate.bias, group, "gate_b")
            else:
                with torch.no_grad():
                    self.gate.bias.zero_()  # spec: gate_b absent = zero


# Later routers register here (similarity, attention, AC, cosine, ...).
ROUTERS = {"softmax": SoftmaxRouter}


# --------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, causal: bool):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.causal = causal
        # Rows 0..d-1 of qkv are Q, d..2d-1 K, 2d..3d-1 V (spec, Datasets).
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x):
        B, T, d = x.shape
        H = self.n_heads
        dh = d // H
        q, k, v = self.qkv(x).split(d, dim=-1)
        # Head j uses feature columns j*dh..(j+1)*dh-1 -> view(B,T,H,dh).
        q = q.view(B, T, H, dh).transpose(1, 2)
        k = k.view(B, T, H, dh).transpose(1, 2)
        v = v.view(B, T, H, dh).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(dh)
        if self.causal:
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        a = torch.softmax(scores, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(B, T, d)  # concat in head order
        return self.out(y)


class DenseFFN(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.w2 = nn.Linear(cfg.d_ff, cfg.d_model)
        self.act = activation_fn(cfg.activation)

    def forward(self, x):
        return self.w2(self.act(self.w1(x)))


class MoE(nn.Module):
    """Router + E expert MLPs stored as stacked tensors ([E,h,d] etc., the
    HDF5 layout).  Dispatch gathers the tokens routed to each expert
    (index_select), runs that expert once, and scatters back weighted
    (index_add_): only k/E of the dense compute."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        E, h, d = cfg.n_experts, cfg.expert_hidden, cfg.d_model
        self.router = ROUTERS[cfg.router](cfg)
        self.w1 = nn.Parameter(torch.empty(E, h, d))
        self.b1 = nn.Parameter(torch.empty(E, h))
        self.w2 = nn.Parameter(torch.empty(E, d, h))
        self.b2 = nn.Parameter(torch.empty(E, d))
        self.act = activation_fn(cfg.activation)
        # Same init as an nn.Linear per expert: U(-1/sqrt(fan_in), +).
        with torch.no_grad():
            for w, b, fan_in in ((self.w1, self.b1, d), (self.w2, self.b2, h)):
                bound = 1.0 / math.sqrt(fan_in)
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)

    def forward(self, x):
        B, T, d = x.shape
        probs, idx, w = self.router(x)
        k = idx.shape[-1]
        xf = x.reshape(B * T, d)
        idx_f = idx.reshape(B * T, k)
        w_f = w.reshape(B * T, k)
        y = torch.zeros_like(xf)
        for e in range(self.w1.shape[0]):
            tok, slot = (idx_f == e).nonzero(as_tuple=True)
            if tok.numel() == 0:
                continue
            xe = xf.index_select(0, tok)
            he = self.act(F.linear(xe, self.w1[e], self.b1[e]))
            ye = F.linear(he, self.w2[e], self.b2[e])
            y.index_add_(0, tok, ye * w_f[tok, slot].unsqueeze(-1))
        route = {"probs": probs, "topk": idx, "weights": w, "moe_input": x}
        return y.view(B, T, d), route


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, is_moe: bool):
        super().__init__()
        self.is_moe = is_moe
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg, causal=(cfg.task == "lm"))
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        if is_moe:
            self.moe = MoE(cfg)
        else:
            self.ffn = DenseFFN(cfg)

    def forward(self, x):
        # Pre-LN residual block (spec, "Block").
        x = x + self.attn(self.ln1(x))
        if self.is_moe:
            y, route = self.moe(self.ln2(x))
            return x + y, route
        return x + self.ffn(self.ln2(x)), None


# --------------------------------------------------------------------------
# Whole model
# --------------------------------------------------------------------------
class MoEModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d = cfg.d_model
        if cfg.task == "classify":
            pdim = cfg.patch * cfg.patch * cfg.channels
            self.patch_embed = nn.Linear(pdim, d)
            if cfg.pool == "cls":
                self.cls = nn.Parameter(torch.zeros(d))
            n_out = cfg.n_classes
        else:
            self.tok = nn.Parameter(torch.randn(cfg.vocab_size, d) * 0.02)
            n_out = cfg.vocab_size
        self.pos = nn.Parameter(torch.randn(cfg.n_pos(), d) * 0.02)
        moe = set(cfg.moe_layers)
        self.blocks = nn.ModuleList(Block(cfg, L in moe) for L in range(cfg.n_layers))
        self.head_ln = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.head = nn.Linear(d, n_out)

    def embed_images(self, images):
        """images: uint8 [B,H,W,C] -> tokens [B,n(+1),d] (spec, "Input, classify")."""
        c = self.cfg
        B = images.shape[0]
        P, C = c.patch, c.channels
        x = images.to(self.pos.dtype) / 255.0
        # Patch (r, c) -> v[(dy*P + dx)*C + ch] = x[r*P+dy, c*P+dx, ch].
        x = x.view(B, c.image_h // P, P, c.image_w // P, P, C)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, -1, P * P * C)
        x = self.patch_embed(x)
        if c.pool == "cls":
            x = torch.cat([self.cls.expand(B, 1, -1), x], dim=1)
        return x + self.pos

    def embed_tokens(self, tokens):
        T = tokens.shape[1]
        assert T <= self.cfg.max_seq_len
        return self.tok[tokens.long()] + self.pos[:T]

    def forward(self, inputs):
        """classify: uint8 images [B,H,W,C] -> logits [B,K];
        lm: token ids [B,T] -> logits [B,T,V].
        Also returns one routing dict per MoE block, in layer order, with
        keys layer, probs, topk, weights, moe_input."""
        if self.cfg.task == "classify":
            x = self.embed_images(inputs)
        else:
            x = self.embed_tokens(inputs)
        routes = []
        for L, blk in enumerate(self.blocks):
            x, route = blk(x)
            if route is not None:
                route["layer"] = L
                routes.append(route)
        z = self.head_ln(x)  # LN applied per token, then pool (spec, "Head")
        if self.cfg.task == "classify":
            z = z[:, 0] if self.cfg.pool == "cls" else z.mean(dim=1)
        return self.head(z), routes


def switch_aux_loss(routes, n_experts):
    """Switch Transformer load-balancing loss, summed over MoE blocks:
    E * sum_e f_e * P_e with f_e the share of tokens whose top-1 expert is e
    (not differentiable) and P_e the mean routing probability of e."""
    total = 0.0
    for r in routes:
        probs = r["probs"].reshape(-1, n_experts)
        top1 = r["topk"][..., 0].reshape(-1)
        f = torch.bincount(top1, minlength=n_experts).to(probs.dtype) / top1.numel()
        P = probs.mean(dim=0)
        total = total + n_experts * (f * P).sum()
    return total


def margin(probs, k):
    """p of the k-th minus the (k+1)-th expert (+inf when k = E), as in the
    spec's reference-state files: how close the top-k decision is to a flip."""
    E = probs.shape[-1]
    if k >= E:
        return torch.full(probs.shape[:-1], float("inf"), dtype=probs.dtype)
    s, _ = torch.sort(probs, dim=-1, descending=True)
    return s[..., k - 1] - s[..., k]


def config_dict(cfg: ModelConfig):
    return asdict(cfg)
