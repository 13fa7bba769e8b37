#!/usr/bin/python3
"""PyTorch reference implementation of the moe-robust model (docs/model-format.md).

This module is the ground truth the C engine is tested against, so every step
follows the "Computation" section of the spec literally: pre-LN blocks, patch
ordering, x = pixel / 255, exact (erf) GELU, biased-variance LayerNorm, head
order of the attention projection, causal mask for `lm`, top-k in descending
order of p with ties broken by the lower expert index, and the two gate_norm
modes.  Parameter names mirror the HDF5 paths so h5export.py stays a thin
mapping.

Routers are pluggable modules (Router base class, ROUTERS registry) that
reproduce analysis/routers/*.c as docs/routers.md defines them: softmax,
similarity, attention, ac, cosine, random, momentum, s2moe.  A model is built
with the router it is trained with (ModelConfig.router); set_router() swaps
in any other at evaluation time, with the C engine's options, on the router
tensors the model carries (training-free where docs/routers.md says so).
The parity tests hold the C engine to these classes router by router
(tools/export_router_refs.py, tests/test_parity_routers.c).
"""

import math
from dataclasses import dataclass, field, asdict
from typing import List, Optional

import numpy as np
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
    router_opts: Optional[str] = None  # "k=v,..." for the router built with the model
                                   # (training); not a file attribute the loader reads
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
# Routing (docs/routers.md; the C routers in analysis/routers/ are the
# definitions these classes reproduce, convention for convention)
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


def parse_router_opts(opts):
    """None, a dict, a "k=v,k=v" string or a list of "k=v" -> {key: value str}.
    The string form is what reference files store in their `router_opts`
    attribute and what tests/test_parity_routers.c feeds to mr_router_opts_add."""
    if opts is None:
        return {}
    if isinstance(opts, dict):
        return {str(k): str(v) for k, v in opts.items()}
    items = opts.split(",") if isinstance(opts, str) else list(opts)
    out = {}
    for kv in items:
        if not kv:
            continue
        k, sep, v = kv.partition("=")
        if not sep or not k or not v:
            raise ValueError(f"router option '{kv}' is not of the form key=value")
        out[k] = v
    return out


class RouterOpts:
    """Options of one router, range-checked like mr_router_opts_get_* in C:
    a value the CLI refuses is refused here, and an option nobody read is an
    error (router ... has no option ...)."""

    def __init__(self, router, opts):
        self.router = router
        self.opts = parse_router_opts(opts)
        self.used = set()

    def string(self, key, default):
        if key not in self.opts:
            return default
        self.used.add(key)
        return self.opts[key]

    def real(self, key, lo, hi, default):
        if key not in self.opts:
            return default
        self.used.add(key)
        s = self.opts[key]
        try:
            v = float(s)
        except ValueError:
            raise ValueError(f"router option {key}={s} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"router option {key}={s} is not a number")
        if not lo <= v <= hi:
            raise ValueError(f"router option {key}={s} is outside [{lo:g}, {hi:g}]")
        return v

    def seed(self):
        v = self.real("seed", 0, 4294967295.0, 0.0)
        if v != math.floor(v):
            raise ValueError("router option seed must be an integer")
        return int(v)

    def finish(self):
        for k in self.opts:
            if k not in self.used:
                raise ValueError(f"router {self.router} has no option '{k}'")


# The C engine's RNG streams (analysis/mr_rng.c): GSL's mt19937 seeded from
# mr_rng_key(seed, purpose, index).  Reproduced here so that the training-free
# `random` router draws the same R, r in PyTorch as in C.
_M64 = (1 << 64) - 1


def _mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _fnv1a(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001B3) & _M64
    return h


def mr_rng_key(seed, purpose, index):
    return _mix64(_mix64(_mix64(seed) ^ _fnv1a(purpose)) ^ index)


def gsl_mt19937_uint32(seed_ulong, n):
    """First n outputs of GSL's gsl_rng_mt19937 after gsl_rng_set(r, seed)
    (GSL 2.7 mt.c: init_genrand on the low 32 bits, 0 -> 4357)."""
    s = seed_ulong or 4357
    mt = [s & 0xFFFFFFFF]
    for i in range(1, 624):
        mt.append((1812433253 * (mt[-1] ^ (mt[-1] >> 30)) + i) & 0xFFFFFFFF)
    out, mti = [], 624
    for _ in range(n):
        if mti >= 624:
            for kk in range(624):
                y = (mt[kk] & 0x80000000) | (mt[(kk + 1) % 624] & 0x7FFFFFFF)
                mt[kk] = mt[(kk + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
            mti = 0
        y = mt[mti]
        mti += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        out.append(y)
    return out


def mr_rng_uniform(seed, purpose, index, n):
    """n draws of gsl_rng_uniform from the C stream (seed, purpose, index)."""
    k = mr_rng_key(seed, purpose, index)
    s = (k ^ (k >> 32)) & _M64  # unsigned long on LP64, as mr_rng_reseed folds it
    u = gsl_mt19937_uint32(s or 1, n)
    return np.asarray(u, dtype=np.float64) / 4294967296.0


class Router(nn.Module):
    """Maps a MoE block's input x [B,T,d] (the LN2 output) to
    (probs [B,T,E], idx [B,T,k], weights [B,T,k]); may also replace the
    block's output (`combine`), like mr_router_type's route()/combine().

    Every router owns the block's gate (gate_w, gate_b: the format requires
    them) and sees the router tensors of its block: those it trains itself
    (created when the model is built for training with this router, exported
    as /layers/L/moe/router/NAME) and whatever the model file carries under
    /layers/L/moe/router/ (`file_tensors`), exactly what the C router reads
    with mr_layer_router_tensor().  Options are parsed as in C (RouterOpts)."""

    name = "base"

    def __init__(self, cfg: ModelConfig, opts=None, trained=None):
        super().__init__()
        self.n_experts = cfg.n_experts
        self.top_k = cfg.top_k
        self.gate_norm = cfg.gate_norm
        self.d_model = cfg.d_model
        self.n_heads = cfg.n_heads
        self.causal = cfg.task == "lm"
        self.layer = -1  # block index, set by MoEModel (RNG purposes, messages)
        self.gate = nn.Linear(cfg.d_model, cfg.n_experts, bias=cfg.gate_bias)
        self.file_tensors = {}
        # trained: this router's own tensors exist as parameters/buffers (the
        # model is trained with it, or was loaded from a file trained with it)
        self.trained = (cfg.router == self.name) if trained is None else trained
        o = RouterOpts(self.name, opts)
        self.parse_opts(o)
        o.finish()
        if self.trained:
            self.init_trained(cfg)

    # -- hooks for subclasses ------------------------------------------------
    def parse_opts(self, o: RouterOpts):
        pass

    def init_trained(self, cfg):
        pass

    def trained_tensors(self):
        """name -> tensor of what training with this router learns or fixes,
        stored as /layers/L/moe/router/NAME (scalars as [1] datasets, which
        the C loader reads like scalar attributes)."""
        return {}

    def check(self):
        """Raise ValueError when the router cannot run on this block (the C
        router's init() errors)."""

    def route(self, x, ctx):
        """Default: the softmax gate with the model's gate_norm."""
        probs = self.gate_probs(x)
        idx, w = select_topk(probs, self.top_k, self.gate_norm)
        return probs, idx, w

    def combine(self, y, x, ctx, experts, idx, w):
        return y

    def set_layer(self, L):
        self.layer = L

    def post_step(self):
        """Called by tools/train.py after each optimizer step."""

    # -- helpers ---------------------------------------------------------------
    def where(self):
        return f"/layers/{self.layer}/moe/router"

    def tensor(self, name, dtype=None):
        """Own trained tensor, else the file's, else None (cf. mr_layer_router_tensor)."""
        t = self.trained_tensors().get(name)
        if t is None:
            t = self.file_tensors.get(name)
        if t is not None and dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        return t

    def scalar(self, name, default):
        """mr_router_model_param: a one-element tensor's value (as the float32
        the C loader stores), else `default`."""
        t = self.tensor(name)
        if t is None or t.numel() != 1:
            return default
        return float(np.float32(float(t.reshape(-1)[0])))

    def gate_probs(self, x):
        return torch.softmax(self.gate(x), dim=-1)

    def forward(self, x, ctx=None):
        return self.route(x, {} if ctx is None else ctx)

    # -- HDF5 ------------------------------------------------------------------
    def h5_tensors(self):
        out = {"gate_w": self.gate.weight}
        if self.gate.bias is not None:
            out["gate_b"] = self.gate.bias
        for k, v in self.trained_tensors().items():
            out["router/" + k] = v
        return out

    def load_h5(self, group):
        """group: the h5py /layers/L/moe group.  Own trained tensors are
        filled by h5export.load_model's generic loop (they are in h5_tensors);
        here the gate, and every router dataset and scalar attribute for
        training-free use."""
        load_param(self.gate.weight, group, "gate_w")
        if self.gate.bias is not None:
            if "gate_b" in group:
                load_param(self.gate.bias, group, "gate_b")
            else:
                with torch.no_grad():
                    self.gate.bias.zero_()  # spec: gate_b absent = zero
        self.file_tensors = {}
        if "router" in group:
            g = group["router"]
            for k, ds in g.items():
                self.file_tensors[k] = torch.from_numpy(
                    np.asarray(ds[()], dtype=np.float32).copy())
            for k, v in g.attrs.items():
                # scalar attributes: C reads them as double and stores a float
                self.file_tensors[k] = torch.tensor([float(v)], dtype=torch.float32)


class SoftmaxRouter(Router):
    """Baseline router: p = softmax(gate_w x + gate_b)."""

    name = "softmax"


def _mix_route(S, G, k):
    """p = S G per sequence (the graph-of-tokens mix), top-k, and weights
    renormalized over the k whatever gate_norm is (mr_route_mix)."""
    probs = S @ G
    idx, w = select_topk(probs, k, "renorm")
    return probs, idx, w


class SimilarityRouter(Router):
    """Similarity-Aware SMoE (analysis/routers/similarity.c):
    S_ij = softmax_j(<W_s x_i, W_s x_j> / tau) over j (j <= i for lm),
    p_i = sum_j S_ij softmax(W_g x_j + b)."""

    name = "similarity"

    def parse_opts(self, o):
        self.tau_opt = o.real("tau", 1e-6, 1e6, None)

    def init_trained(self, cfg):
        d = cfg.d_model
        # W_s starts as the identity: training starts from the training-free
        # router and learns away from it.
        self.sim_w = nn.Parameter(torch.eye(d))
        tau = self.tau_opt if self.tau_opt is not None else math.sqrt(d)
        self.register_buffer("tau", torch.tensor([tau], dtype=torch.float32))

    def trained_tensors(self):
        return {"sim_w": self.sim_w, "tau": self.tau} if self.trained else {}

    def _ws_tau(self, dtype):
        ws = self.tensor("sim_w", dtype)
        ds = ws.shape[0] if ws is not None else self.d_model
        tau = self.tau_opt if self.tau_opt is not None else self.scalar("tau", math.sqrt(ds))
        return ws, tau

    def check(self):
        ws = self.tensor("sim_w")
        if ws is not None and (ws.dim() != 2 or ws.shape[1] != self.d_model):
            raise ValueError(f"{self.where()}/sim_w must be [d_s, {self.d_model}]")
        if self._ws_tau(None)[1] <= 0:
            raise ValueError(f"{self.where()}/tau must be > 0")

    def route(self, x, ctx):
        G = self.gate_probs(x)
        ws, tau = self._ws_tau(x.dtype)
        z = x if ws is None else F.linear(x, ws)
        scores = (z @ z.transpose(-2, -1)) / tau
        if self.causal:
            T = x.shape[1]
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        return _mix_route(torch.softmax(scores, dim=-1), G, self.top_k)


class AttentionRouter(Router):
    """Attention-Aware SMoE (analysis/routers/attention.c): S = this block's
    attention probabilities of the head with the lowest mean row entropy,
    chosen per sequence (ties: lower head), or their mean over heads
    (head=mean), or a fixed head; sharpened as softmax(log A / sigma)."""

    name = "attention"

    def parse_opts(self, o):
        h = o.string("head", "min-entropy")
        if h in ("min-entropy", "mean"):
            self.head = h
        else:
            try:
                self.head = int(h)
            except ValueError:
                self.head = None
            if self.head is None or not 0 <= self.head < self.n_heads:
                raise ValueError(f"router option head={h} must be min-entropy, mean or "
                                 f"0..{self.n_heads - 1}")
        self.sigma = o.real("sigma", 1e-3, 1e3, 1.0)

    def route(self, x, ctx):
        A = ctx["att"]  # [B, H, T, T], causal rows zero above the diagonal
        G = self.gate_probs(x)
        if self.head == "mean":
            S = A.mean(dim=1)
        else:
            if self.head == "min-entropy":
                plogp = torch.where(A > 0, A * torch.log(A), torch.zeros_like(A))
                ent = -plogp.sum(dim=-1).mean(dim=-1)      # [B, H]
                # argmin returns the first minimum: ties keep the lower head
                # (the C loop's strict '<')
                best = ent.argmin(dim=1)
            else:
                best = torch.full((A.shape[0],), self.head, dtype=torch.long,
                                  device=A.device)
            S = A[torch.arange(A.shape[0], device=A.device), best]
        if self.sigma != 1.0:
            # softmax(scores / sigma) from the probabilities: log A differs from
            # the scores by a per-row constant; masked entries (A = 0) stay 0
            # (log of S where S > 0 only: torch.log(0) inside the where would give the
            # masked entries a NaN gradient)
            logA = torch.where(S > 0, torch.log(torch.where(S > 0, S, torch.ones_like(S))),
                               torch.full_like(S, float("-inf")))
            S = torch.softmax(logA / self.sigma, dim=-1)
        return _mix_route(S, G, self.top_k)


def _cluster_weights(x, lab, E, eps, clamp):
    """analysis/routers/ac.c cluster_weights, batched over groups:
    x [G, n, d], lab [G, n] -> W [G, E, d].  MAD per cluster and feature,
    W = 1/(MAD + eps), clamped at clamp * mean(W), then every feature column
    rescaled to mean 1 over clusters.  Empty clusters take no part in either
    mean (documented difference from the authors' code); their rows are 0
    and never read, since every token's own cluster is non-empty."""
    onehot = F.one_hot(lab, E).to(x.dtype)                   # [G, n, E]
    cnt = onehot.sum(dim=1)                                  # [G, E]
    ne = cnt > 0
    safe = cnt.clamp(min=1).unsqueeze(-1)
    mean = onehot.transpose(1, 2) @ x / safe                 # [G, E, d]
    dev = (x - torch.gather(mean, 1, lab.unsqueeze(-1).expand_as(x))).abs()
    mad = onehot.transpose(1, 2) @ dev / safe
    nem = ne.unsqueeze(-1).to(x.dtype)                       # [G, E, 1]
    W = nem / (mad + eps)
    n_ne = ne.sum(dim=1).to(x.dtype)                         # [G]
    cap = clamp * W.sum(dim=(1, 2)) / (n_ne * x.shape[-1])   # mean before the clamp
    W = torch.minimum(W, cap[:, None, None])
    col = W.sum(dim=1, keepdim=True) / n_ne[:, None, None]  # [G, 1, d]
    return W / col


def _cluster_weights_causal(x, lab, E, eps, clamp, chunk=8):
    """analysis/routers/ac.c for causal models: x [G, R, T, d], lab [G, R, T]
    (G groups of R sequences) -> [G, R, T, d], each token's own cluster weights
    at its position t, from the group's tokens at positions <= t, with the rules
    of _cluster_weights.  Means from prefix sums; the absolute deviations, which
    have none, are formed `chunk` positions t at a time against the tokens
    before the chunk's end ([G, chunk, R*J, d]) and summed into clusters (in
    place wherever possible: this runs in every training step)."""
    G, R, T, d = x.shape
    oh = F.one_hot(lab, E).to(x.dtype)                           # [G, R, T, E]
    cnt = oh.sum(dim=1).cumsum(dim=1)                            # [G, T, E]
    inv_cnt = 1.0 / cnt.clamp(min=1).unsqueeze(-1)               # [G, T, E, 1]
    mean = torch.einsum("grte,grtd->gted", oh, x).cumsum_(dim=1).mul_(inv_cnt)  # [G,T,E,d]
    pos = torch.arange(T, device=x.device)
    mad = torch.empty_like(mean)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        c, J = t1 - t0, t1
        # token (r, j) at row r*J + j.  Selection and cluster sums as one-hot
        # matmuls: exact selections, and far faster here than index_select
        ohj = oh[:, :, :J].reshape(G, 1, R * J, E)
        xj = x[:, :, :J].reshape(G, 1, R * J, d)
        dev = torch.matmul(ohj, mean[:, t0:t1]).sub_(xj).abs_()  # [G, c, R*J, d]
        seen = (pos[:J].reshape(1, 1, J) <= pos[t0:t1].reshape(c, 1, 1)).expand(c, R, J)
        ohm = ohj * seen.reshape(1, c, R * J, 1).to(x.dtype)     # [G, c, R*J, E]
        mad[:, t0:t1] = torch.matmul(ohm.transpose(2, 3), dev)   # [G, c, E, d]
    ne = cnt > 0                                                 # [G, T, E]
    W = mad.mul_(inv_cnt).add_(eps).reciprocal_().mul_(ne.unsqueeze(-1).to(x.dtype))
    n_ne = ne.sum(dim=-1).to(x.dtype)                            # [G, T]
    cap = clamp * W.sum(dim=(2, 3)) / (n_ne * d)                 # mean before the clamp
    W = torch.minimum(W, cap[..., None, None], out=W)
    col = W.sum(dim=2) / n_ne[..., None]                         # [G, T, d]
    # each token's own cluster row at its position, over the column mean
    gi = torch.arange(G).reshape(G, 1, 1)
    ti = pos.reshape(1, 1, T)
    return W[gi, ti, lab] / col.unsqueeze(1)


class ACRouter(Router):
    """Adaptive Clustering router (analysis/routers/ac.c): tokens scaled by
    their cluster's (previous block's top-1 expert) inverse-MAD weights,
    logits against the normalized expert embeddings (router/expert_emb,
    else the gate rows); the first MoE block uses the softmax gate."""

    name = "ac"

    def parse_opts(self, o):
        g = o.string("group", "seq")
        if g not in ("seq", "batch"):
            raise ValueError(f"router option group={g} must be seq or batch")
        self.group = g
        self.eps = o.real("eps", 1e-12, 1.0, 1e-4)
        self.clamp = o.real("clamp", 1.0, 1e9, 10.0)

    def init_trained(self, cfg):
        # the authors' init: orthogonal, gain 0.32 (only directions matter:
        # the logits use e_j / ||e_j||)
        e = torch.empty(cfg.n_experts, cfg.d_model)
        nn.init.orthogonal_(e, gain=0.32)
        self.expert_emb = nn.Parameter(e)

    def trained_tensors(self):
        return {"expert_emb": self.expert_emb} if self.trained else {}

    def check(self):
        e = self.tensor("expert_emb")
        if e is not None and tuple(e.shape) != (self.n_experts, self.d_model):
            raise ValueError(f"{self.where()}/expert_emb must be "
                             f"[{self.n_experts}, {self.d_model}]")

    def route(self, x, ctx):
        prev = ctx.get("prev_topk")
        if prev is None:
            # first MoE block: the plain gate, weights renormalized (C passes
            # MR_GATE_RENORM here whatever the model's gate_norm)
            probs = self.gate_probs(x)
            idx, w = select_topk(probs, self.top_k, "renorm")
            return probs, idx, w
        B, T, d = x.shape
        e = self.tensor("expert_emb", x.dtype)
        if e is None:
            e = self.gate.weight
        nrm = e.norm(dim=-1, keepdim=True)
        en = torch.where(nrm > 0, e / torch.where(nrm > 0, nrm, torch.ones_like(nrm)),
                         torch.zeros_like(e))
        lab = prev[..., 0]                                   # [B, T]
        G = B if self.group == "seq" else 1
        if self.causal:
            # lm: position t sees its group's positions <= t (ac.c, docs/routers.md)
            xg = x.reshape(G, B // G, T, d)
            lg = lab.reshape(G, B // G, T)
            with torch.no_grad():
                Wt = _cluster_weights_causal(xg.detach(), lg, self.n_experts, self.eps,
                                             self.clamp)             # [G, B/G, T, d]
            logits = F.linear((xg * Wt).reshape(B, T, d), en)
        else:
            xg = x.reshape(G, -1, d)
            lg = lab.reshape(G, -1)
            with torch.no_grad():  # the authors compute the weights without gradient
                W = _cluster_weights(xg.detach(), lg, self.n_experts, self.eps, self.clamp)
            xs = xg * torch.gather(W, 1, lg.unsqueeze(-1).expand_as(xg))
            logits = F.linear(xs.reshape(B, T, d), en)
        probs = torch.softmax(logits, dim=-1)
        idx, w = select_topk(probs, self.top_k, "renorm")
        return probs, idx, w


def _normalize_rows(t):
    n = t.norm(dim=-1, keepdim=True)
    return torch.where(n > 0, t / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(t))


class CosineRouter(Router):
    """X-MoE (analysis/routers/cosine.c): p = softmax(cos(W_p x, e_j) / tau),
    weights by the model's gate_norm.  Needs router/proj_w, expert_emb, tau."""

    name = "cosine"
    D_E = 16  # routing dimension d_e of the X-MoE paper

    def parse_opts(self, o):
        self.tau_opt = o.real("tau", 1e-6, 1e6, None)

    def init_trained(self, cfg):
        self.proj_w = nn.Parameter(nn.Linear(cfg.d_model, self.D_E, bias=False).weight.data)
        e = torch.empty(cfg.n_experts, self.D_E)
        nn.init.orthogonal_(e, gain=0.32)
        self.expert_emb = nn.Parameter(e)
        # learnable temperature, X-MoE's tau0 = 0.3 (kept >= 0.01 by post_step)
        self.tau = nn.Parameter(torch.tensor([0.3 if self.tau_opt is None else self.tau_opt]))

    def trained_tensors(self):
        return ({"proj_w": self.proj_w, "expert_emb": self.expert_emb, "tau": self.tau}
                if self.trained else {})

    def post_step(self):
        with torch.no_grad():
            self.tau.clamp_(min=0.01)

    def check(self):
        p, e, t = self.tensor("proj_w"), self.tensor("expert_emb"), self.tensor("tau")
        if p is None or e is None or (t is None and self.tau_opt is None):
            raise ValueError(f"needs {self.where()}/{{proj_w, expert_emb, tau}}: the model "
                             f"was not trained with X-MoE cosine routing")
        if (p.dim() != 2 or p.shape[1] != self.d_model or e.dim() != 2
                or e.shape[0] != self.n_experts or e.shape[1] != p.shape[0]):
            raise ValueError(f"{self.where()}: proj_w must be [d_e, {self.d_model}] and "
                             f"expert_emb [{self.n_experts}, d_e]")
        if t is not None and float(t.reshape(-1)[0]) <= 0:
            raise ValueError(f"{self.where()}/tau must be > 0")

    def route(self, x, ctx):
        self.check()
        p, e = self.tensor("proj_w", x.dtype), self.tensor("expert_emb", x.dtype)
        if self.tau_opt is not None:
            tau = self.tau_opt
        elif self.trained and self.training:
            tau = self.tau.to(x.dtype)  # learnable: keep it in the graph
        else:
            tau = self.scalar("tau", 1.0)
        cos = _normalize_rows(F.linear(x, p)) @ _normalize_rows(e).t()
        probs = torch.softmax(cos / tau, dim=-1)
        idx, w = select_topk(probs, self.top_k, self.gate_norm)
        return probs, idx, w


class RandomRouter(Router):
    """SMoE-Dropout (analysis/routers/random.c): p = softmax(R x + r) with a
    frozen R, r: the model's router/random_w, random_b, else drawn as
    nn.Linear initializes them (uniform in +-1/sqrt(d)) from the C engine's
    stream (seed, "router/random/L", 0), reproduced bit for bit."""

    name = "random"

    def parse_opts(self, o):
        self.seed = o.seed()
        self._drawn = None

    def init_trained(self, cfg):
        # drawn from the same stream as the C training-free router, so a model
        # trained with it carries exactly the R, r the C engine would draw
        w, b = self._draw(cfg.n_experts, cfg.d_model, self.layer if self.layer >= 0 else 0)
        self.register_buffer("random_w", w)
        self.register_buffer("random_b", b)

    def set_layer(self, L):
        """The stream depends on the block index, known only once the router
        sits in its block: redraw the frozen weights for it."""
        self.layer = L
        if self.trained:
            w, b = self._draw(self.n_experts, self.d_model, L)
            with torch.no_grad():
                self.random_w.copy_(w)
                self.random_b.copy_(b)

    def _draw(self, E, d, L):
        u = mr_rng_uniform(self.seed, f"router/random/{L}", 0, E * (d + 1))
        v = ((2.0 * u - 1.0) * (1.0 / math.sqrt(d))).astype(np.float32)  # C stores floats
        return (torch.from_numpy(v[:E * d].reshape(E, d).copy()),
                torch.from_numpy(v[E * d:].copy()))

    def trained_tensors(self):
        return {"random_w": self.random_w, "random_b": self.random_b} if self.trained else {}

    def check(self):
        w, b = self.tensor("random_w"), self.tensor("random_b")
        if w is not None and tuple(w.shape) != (self.n_experts, self.d_model):
            raise ValueError(f"{self.where()}/random_w must be [{self.n_experts}, "
                             f"{self.d_model}]")
        if w is not None and b is not None and tuple(b.shape) != (self.n_experts,):
            raise ValueError(f"{self.where()}/random_b must be [{self.n_experts}]")

    def route(self, x, ctx):
        w = self.tensor("random_w", x.dtype)
        if w is not None:
            b = self.tensor("random_b", x.dtype)  # absent: no bias (as in C)
        else:
            if self._drawn is None or self._drawn[0].dtype != x.dtype:
                dw, db = self._draw(self.n_experts, self.d_model, self.layer)
                self._drawn = (dw.to(x.dtype), db.to(x.dtype))
            w, b = self._drawn
        probs = torch.softmax(F.linear(x, w, b), dim=-1)
        idx, wt = select_topk(probs, self.top_k, self.gate_norm)
        return probs, idx, wt


class MomentumRouter(Router):
    """MomentumSMoE heavy ball (analysis/routers/momentum.c): softmax routing;
    the block adds m_l = mu m_{l-1} + gamma f_l(x_l) (m carried across the
    MoE blocks of one forward, m_0 = 0) instead of f_l(x_l)."""

    name = "momentum"

    def parse_opts(self, o):
        self.mu_opt = o.real("mu", 0.0, 1.0, None)
        self.gamma_opt = o.real("gamma", 0.0, 100.0, None)

    def init_trained(self, cfg):
        mu = 0.7 if self.mu_opt is None else self.mu_opt
        gamma = 1.0 if self.gamma_opt is None else self.gamma_opt
        self.register_buffer("mu", torch.tensor([mu], dtype=torch.float32))
        self.register_buffer("gamma", torch.tensor([gamma], dtype=torch.float32))

    def trained_tensors(self):
        return {"mu": self.mu, "gamma": self.gamma} if self.trained else {}

    def combine(self, y, x, ctx, experts, idx, w):
        # C casts both to float
        mu = float(np.float32(self.mu_opt if self.mu_opt is not None
                              else self.scalar("mu", 0.7)))
        gamma = float(np.float32(self.gamma_opt if self.gamma_opt is not None
                                 else self.scalar("gamma", 1.0)))
        m = ctx.get("carry")
        m = gamma * y if m is None else mu * m + gamma * y
        ctx["carry"] = m
        return m


class S2MoERouter(Router):
    """S2MoE (analysis/routers/s2moe.c): softmax routing; y = g SMoE(x) +
    (1 - g) SMoE(x') with x' = eps1 * x + eps2 (per-sequence, per-feature
    Gaussian noise), g = sigmoid(s2_gate_w x + s2_gate_b), routing of x
    reused for x'.  noise=off: y = SMoE(x).  The noise here comes from
    torch's generator, not GSL's ziggurat: noise=on is not bit-comparable
    with C (its C determinism is tested in tests/test_routers.c)."""

    name = "s2moe"

    def parse_opts(self, o):
        n = o.string("noise", "on")
        if n not in ("on", "off"):
            raise ValueError(f"router option noise={n} must be on or off")
        self.noise = n == "on"
        self.seed = o.seed()
        # (n1, n2) [B,T,d] standard normal draws to use instead of torch's generator: the
        # C engine's draws, for gradient parity (tools/export_grad_refs.py)
        self.noise_draws = None

    def init_trained(self, cfg):
        lin = nn.Linear(cfg.d_model, 1)
        self.s2_gate_w = nn.Parameter(lin.weight.data)
        self.s2_gate_b = nn.Parameter(lin.bias.data)

    def trained_tensors(self):
        return {"s2_gate_w": self.s2_gate_w, "s2_gate_b": self.s2_gate_b} if self.trained else {}

    def check(self):
        w, b = self.tensor("s2_gate_w"), self.tensor("s2_gate_b")
        if w is None or b is None:
            raise ValueError(f"needs {self.where()}/{{s2_gate_w, s2_gate_b}}: the model was "
                             f"not trained with S2MoE")
        if w.numel() != self.d_model or b.numel() != 1:
            raise ValueError(f"{self.where()}: s2_gate_w must be [1, {self.d_model}] and "
                             f"s2_gate_b [1]")

    def route(self, x, ctx):
        self.check()
        return super().route(x, ctx)

    def combine(self, y, x, ctx, experts, idx, w):
        if not self.noise:
            return y  # x' = x: the mix is SMoE(x) itself
        B, T, d = x.shape
        with torch.no_grad():
            if self.causal:
                # lm: mean and unbiased std of positions <= t (s2moe.c); one token: sd 0
                n = torch.arange(1, T + 1, dtype=x.dtype).reshape(1, T, 1)
                mu = x.cumsum(dim=1) / n
                ss = (x * x).cumsum(dim=1) - n * mu * mu
                sd = (ss.clamp(min=0) / (n - 1).clamp(min=1)).sqrt()
            else:
                mu = x.mean(dim=1, keepdim=True)
                sd = (x.std(dim=1, unbiased=True, keepdim=True) if T > 1
                      else torch.zeros_like(mu))
            gen = None
            if not self.training:  # reproducible evaluation, seeded per block
                gen = torch.Generator().manual_seed(mr_rng_key(self.seed, f"router/s2moe/"
                                                               f"{self.layer}", 0) >> 1)
            if self.noise_draws is not None:
                n1, n2 = (t.to(x.dtype) for t in self.noise_draws)
            else:
                n1 = torch.randn(x.shape, generator=gen, dtype=x.dtype)
                n2 = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        xn = (1.0 + n1 * sd) * x + (mu + n2 * sd)
        yn = experts(xn, idx, w)
        gw = self.tensor("s2_gate_w", x.dtype).reshape(1, d)
        gb = self.tensor("s2_gate_b", x.dtype).reshape(1)
        g = torch.sigmoid(F.linear(x, gw, gb))               # [B, T, 1]
        return g * y + (1.0 - g) * yn


ROUTERS = {r.name: r for r in (SoftmaxRouter, SimilarityRouter, AttentionRouter, ACRouter,
                               CosineRouter, RandomRouter, MomentumRouter, S2MoERouter)}
TRAINING_FREE = ("softmax", "similarity", "attention", "ac", "random", "momentum")


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
        """Returns the projected output and the probabilities [B,H,T,T]
        (the attention router reads them)."""
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
        return self.out(y), a


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
        self.router = ROUTERS[cfg.router](cfg, cfg.router_opts)
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

    def experts(self, x, idx, w):
        """y [B,T,d] = sum over each token's chosen experts of w * expert(x)."""
        B, T, d = x.shape
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
        return y.view(B, T, d)

    def forward(self, x, ctx=None):
        """ctx: state shared by the MoE blocks of one forward pass (this
        block's attention probabilities `att`, the previous MoE block's
        `prev_topk`, the momentum `carry`), as mr_route_ctx / mr_combine_ctx."""
        ctx = {} if ctx is None else ctx
        probs, idx, w = self.router(x, ctx)
        y = self.experts(x, idx, w)
        y = self.router.combine(y, x, ctx, self.experts, idx, w)
        ctx["prev_topk"] = idx
        route = {"probs": probs, "topk": idx, "weights": w, "moe_input": x}
        return y, route


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

    def forward(self, x, ctx=None):
        # Pre-LN residual block (spec, "Block").
        a, att = self.attn(self.ln1(x))
        x = x + a
        if self.is_moe:
            ctx = {} if ctx is None else ctx
            ctx["att"] = att
            y, route = self.moe(self.ln2(x), ctx)
            return x + y, route
        # dense blocks pass the momentum carry through untouched
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
        for L, blk in enumerate(self.blocks):
            if blk.is_moe:
                blk.moe.router.set_layer(L)
        self.head_ln = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.head = nn.Linear(d, n_out)

    def routers(self):
        return [blk.moe.router for blk in self.blocks if blk.is_moe]

    def embed_images(self, images):
        """images: uint8 [B,H,W,C] -> tokens [B,n(+1),d] (spec, "Input, classify")."""
        c = self.cfg
        B = images.shape[0]
        P, C = c.patch, c.channels
        return self.embed_pixels(images.to(self.pos.dtype) / 255.0)

    def embed_pixels(self, x):
        """x: intensities in [0, 1], float [B,H,W,C] (images / 255) -> tokens; the
        input whose gradient the attacks take (docs/attacks.md)."""
        c = self.cfg
        B = x.shape[0]
        P, C = c.patch, c.channels
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
        return self.forward_embedded(x)

    def forward_embedded(self, x):
        """The blocks and the head from input embeddings x [B,T,d] (embed_pixels or
        embed_tokens output); returns what forward returns."""
        routes = []
        ctx = {"prev_topk": None, "carry": None}  # one forward's cross-block state
        for L, blk in enumerate(self.blocks):
            x, route = blk(x, ctx)
            if route is not None:
                route["layer"] = L
                routes.append(route)
        z = self.head_ln(x)  # LN applied per token, then pool (spec, "Head")
        if self.cfg.task == "classify":
            z = z[:, 0] if self.cfg.pool == "cls" else z.mean(dim=1)
        return self.head(z), routes


def set_router(model: MoEModel, name, opts=None, top_k=None):
    """Evaluate `model` with router `name` and options from now on (what
    `moe-robust eval --router NAME --router-opt K=V --top-k K` does in C).

    Every MoE block gets a fresh router that shares the block's gate and sees
    the router tensors the block carries: the model file's
    /layers/L/moe/router/ entries and, for a model trained in memory, its
    trained tensors.  So `similarity` on a softmax model is the
    training-free swap (W_s = I), on a model with sim_w the trained router;
    routers that need trained tensors (cosine, s2moe) raise ValueError with
    the C engine's reason.  Returns the model."""
    if name not in ROUTERS:
        raise ValueError(f"unknown router '{name}' (known: {', '.join(ROUTERS)})")
    k = model.cfg.top_k if top_k is None else int(top_k)
    if not 1 <= k <= model.cfg.n_experts:
        raise ValueError(f"top_k = {k} must be in 1..n_experts = {model.cfg.n_experts}")
    for L, blk in enumerate(model.blocks):
        if not blk.is_moe:
            continue
        old = blk.moe.router
        new = ROUTERS[name](model.cfg, opts, trained=False)
        new.gate = old.gate
        tensors = dict(old.file_tensors)
        tensors.update({n: t.detach() for n, t in old.trained_tensors().items()})
        new.file_tensors = tensors
        new.set_layer(L)
        new.top_k = k
        new.check()
        new.train(old.training)
        blk.moe.router = new
    return model


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
