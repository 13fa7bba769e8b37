#!/usr/bin/python3
"""PyTorch reference of the Hugging Face decoder MoE families the C engine imports
(`moe-robust import`, docs/import.md): mixtral, qwen2_moe, qwen3_moe, olmoe.

Written from the published modeling files of huggingface/transformers (cite these, in
this order of the computation):
  src/transformers/models/mixtral/modeling_mixtral.py     @ 00d4b3d2142cb4ced2f51b90614b5d26bc045015
  src/transformers/models/qwen3_moe/modeling_qwen3_moe.py @ 00d4b3d2142cb4ced2f51b90614b5d26bc045015
  src/transformers/models/qwen2_moe/modeling_qwen2_moe.py @ 00a3f9386614dde0dc41cf4e9b8d0abd3af0671d
  src/transformers/models/olmoe/modeling_olmoe.py         @ 00dcc6dda6f6d8e69541a6b51f97986a80242367
and their configuration_*.py files (config keys and defaults). The four share one
decoder: pre-norm blocks h = x + Attn(RMSNorm(x)), out = h + MLP(RMSNorm(h)), RoPE in
the rotate-half layout, grouped-query attention (repeat_kv), SwiGLU experts
down(silu(gate x) * up x), routing softmax over all experts in float32 then top-k and,
per family, renormalisation of the k weights. They differ in (`Spec` below):
  mixtral   block_sparse_moe.{gate, experts.J.w1 (gate), w3 (up), w2 (down)}; always
            renormalises (MixtralSparseMoeBlock); optional head_dim key.
  qwen2_moe q/k/v biases (no o bias); a shared expert scaled by sigmoid(shared_expert_gate x)
            (Qwen2MoeSparseMoeBlock); dense MLP layers where L is in mlp_only_layers or
            (L + 1) % decoder_sparse_step != 0 (Qwen2MoeDecoderLayer); norm_topk_prob.
  qwen3_moe q_norm / k_norm RMSNorms of size head_dim on each head before RoPE
            (Qwen3MoeAttention); head_dim key; attention_bias; the dense-layer rule of
            qwen2_moe; norm_topk_prob.
  olmoe     q_norm / k_norm RMSNorms over the whole q and k projections before the heads
            are split (OlmoeAttention), clip_qkv; attention_bias; norm_topk_prob.

Numerics: the reference runs in float64 (`dtype`), the C engine in float32. Where the
modeling code upcasts half precision to float32 (RMSNorm, the router softmax, attention
softmax) the computation here stays in the working dtype (float32 or float64), never
below it; the RoPE cos/sin tables are computed in float32 as transformers does and then
cast, as transformers casts them to the activations' dtype.

Also here: `parse_config` (the importer's rules in Python: what is supported and what is
refused, with the same key = value messages), `convert` (a checkpoint to the project's
model format v2 with h5py: the PyTorch side of "eval of the imported model equals eval of
the converted one") and `routes` with any router of tools/moe_model.py swapped in.
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import safetensors_io  # noqa: E402

FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")
MAX_SEQ = 65536  # analysis/mr_model.h MR_MAX_SEQ
# rope_theta defaults of the configuration_*.py files (mixtral 1e6, the others 1e4)
THETA_DEFAULT = {"mixtral": 1e6, "qwen2_moe": 10000.0, "qwen3_moe": 10000.0, "olmoe": 10000.0}


class Unsupported(ValueError):
    """A config key whose value the engine does not implement (C: exit 2)."""


def _refuse(key, value, why):
    raise Unsupported(f"config.json: {key} = {json_str(value)}: {why}")


def json_str(v):
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, str):
        return f"'{v}'"
    return str(v)


class Spec:
    """The architecture of one checkpoint, normalised across the families."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _int(cfg, key, default=None, lo=1, hi=1 << 30):
    v = cfg.get(key, default)
    if v is None and default is None:
        raise Unsupported(f"config.json: key {key} is missing")
    if v is None or isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        _refuse(key, v, f"must be an integer in {lo}..{hi}")
    return v


def _rope(cfg, family):
    """(theta, linear factor) from rope_theta / rope_scaling, or transformers 5's
    rope_parameters; refuses every RoPE variant but the default and linear."""
    params = cfg.get("rope_parameters")
    scaling = cfg.get("rope_scaling")
    theta = cfg.get("rope_theta", THETA_DEFAULT[family])
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
        scaling = params
    if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not 1 < theta < 1e12:
        _refuse("rope_theta", theta, "must be a number in (1, 1e12)")
    factor = 1.0
    if scaling is not None:
        if not isinstance(scaling, dict):
            _refuse("rope_scaling", scaling, "must be null or an object")
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        key = "rope_scaling.rope_type" if "rope_type" in scaling else "rope_scaling.type"
        if kind == "linear":
            factor = scaling.get("factor")
            if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not 1e-3 <= factor <= 1e6:
                _refuse("rope_scaling.factor", factor, "must be a number in [0.001, 1e6]")
        elif kind != "default":
            _refuse(key, kind, "is not implemented (supported: none, default, linear)")
    if cfg.get("partial_rotary_factor", 1.0) != 1.0:
        _refuse("partial_rotary_factor", cfg["partial_rotary_factor"], "only 1 (full rotary) is implemented")
    return float(theta), float(factor)


def parse_config(cfg, max_seq_len=0):
    """Spec of a config.json dict; raises Unsupported naming the key and value."""
    family = cfg.get("model_type")
    if family not in FAMILIES:
        _refuse("model_type", family, "is not a supported family (mixtral, qwen2_moe, qwen3_moe, olmoe)")
    for key in ("q_lora_rank", "kv_lora_rank"):
        if cfg.get(key) is not None:
            _refuse(key, cfg[key], "multi-head latent attention is not implemented")
    if cfg.get("quantization_config") is not None:
        _refuse("quantization_config", "{...}", "quantized weights are not implemented")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        _refuse("hidden_act", act, "only silu (SwiGLU experts) is implemented")
    d = _int(cfg, "hidden_size")
    L = _int(cfg, "num_hidden_layers", hi=1024)
    H = _int(cfg, "num_attention_heads", hi=4096)
    # OlmoeConfig: absent -> the heads; the other classes' defaults (8, 16, 4) fit only their
    # reference model: required, as in C
    KV = cfg.get("num_key_value_heads")
    KV = H if KV is None and family == "olmoe" else _int(cfg, "num_key_value_heads", hi=H)
    if H % KV:
        _refuse("num_key_value_heads", KV, f"must divide num_attention_heads = {H}")
    hd = cfg.get("head_dim")
    if family in ("mixtral", "qwen3_moe"):
        hd = d // H if hd is None else _int(cfg, "head_dim")
    elif hd is not None and hd != d // H:
        # OlmoeAttention and the released Qwen2MoeAttention use hidden_size // heads
        _refuse("head_dim", hd, f"{family} uses hidden_size / num_attention_heads = {d // H}")
    else:
        hd = d // H
    if family not in ("mixtral", "qwen3_moe") and d % H:
        _refuse("num_attention_heads", H, f"must divide hidden_size = {d}")
    if hd % 2:
        _refuse("head_dim", hd, "must be even (rotary embeddings rotate halves)")
    theta, factor = _rope(cfg, family)
    eps = cfg.get("rms_norm_eps", 1e-6 if family.startswith("qwen") else 1e-5)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        _refuse("rms_norm_eps", eps, "must be in (0, 1)")
    V = _int(cfg, "vocab_size", hi=1 << 20)
    maxpos = _int(cfg, "max_position_embeddings", hi=1 << 30)  # required, as in C
    T = min(maxpos, MAX_SEQ) if not max_seq_len else max_seq_len
    if family == "mixtral":
        E = _int(cfg, "num_local_experts", hi=4096)
        h = _int(cfg, "intermediate_size")
    else:
        E = _int(cfg, "num_experts", hi=4096)
        h = _int(cfg, "moe_intermediate_size" if family.startswith("qwen") else "intermediate_size")
    k = _int(cfg, "num_experts_per_tok", hi=E)
    renorm = True if family == "mixtral" else bool(cfg.get("norm_topk_prob", False))
    # sliding windows: mixtral applies sliding_window whenever it is set
    # (create_sliding_window_causal_mask); the qwen families only with use_sliding_window
    win = cfg.get("sliding_window")
    if family == "mixtral":
        if win is not None and (not isinstance(win, int) or win < T):
            _refuse("sliding_window", win, f"an active sliding window is not implemented "
                    f"(inactive when >= the sequence length: import with --max-seq-len <= {win})")
    elif cfg.get("use_sliding_window", False):
        if win is None or not isinstance(win, int) or win < T:
            _refuse("use_sliding_window", True, "an active sliding window is not implemented")
    moe_layers, F = list(range(L)), 0
    if family.startswith("qwen"):
        step = _int(cfg, "decoder_sparse_step", 1, hi=L)
        only = cfg.get("mlp_only_layers", []) or []
        if not isinstance(only, list) or any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < L for i in only):
            _refuse("mlp_only_layers", only, f"must be a list of layer indices 0..{L - 1}")
        moe_layers = [i for i in range(L) if i not in only and (i + 1) % step == 0]
        if len(moe_layers) < L:
            F = _int(cfg, "intermediate_size")
        if not moe_layers:
            _refuse("mlp_only_layers", only, "no MoE layer is left")
    S = _int(cfg, "shared_expert_intermediate_size") if family == "qwen2_moe" else 0
    if family == "qwen2_moe":
        qkv_bias, o_bias = bool(cfg.get("qkv_bias", True)), False
    elif family == "mixtral":
        qkv_bias = o_bias = False
    else:
        qkv_bias = o_bias = bool(cfg.get("attention_bias", False))
    clip = cfg.get("clip_qkv") if family == "olmoe" else None
    if clip is not None and (not isinstance(clip, (int, float)) or isinstance(clip, bool) or clip <= 0):
        _refuse("clip_qkv", clip, "must be null or a positive number")
    return Spec(family=family, d=d, n_layers=L, H=H, KV=KV, hd=hd, theta=theta,
                rope_factor=factor, eps=float(eps), V=V, max_seq_len=T, E=E, h=h, k=k,
                renorm=renorm, moe_layers=moe_layers, F=F, S=S, qkv_bias=qkv_bias,
                o_bias=o_bias, clip=float(clip) if clip else 0.0,
                qk_norm={"olmoe": "full", "qwen3_moe": "head"}.get(family, "none"),
                tie=bool(cfg.get("tie_word_embeddings", False)))


# --------------------------------------------------------------------------
# Tensor names (the checkpoints' keys)
# --------------------------------------------------------------------------
def expert_names(s, L, j):
    """(gate, up, down) weight names of expert j of layer L."""
    if s.family == "mixtral":
        p = f"model.layers.{L}.block_sparse_moe.experts.{j}."
        return p + "w1.weight", p + "w3.weight", p + "w2.weight"
    p = f"model.layers.{L}.mlp.experts.{j}."
    return p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight"


def gate_name(s, L):
    mod = "block_sparse_moe" if s.family == "mixtral" else "mlp"
    return f"model.layers.{L}.{mod}.gate.weight"


def expected_shapes(s):
    """name -> shape of every tensor the checkpoint must hold."""
    d, Q, KVd = s.d, s.H * s.hd, s.KV * s.hd
    t = {"model.embed_tokens.weight": (s.V, d), "model.norm.weight": (d,)}
    if not s.tie:
        t["lm_head.weight"] = (s.V, d)
    for L in range(s.n_layers):
        p = f"model.layers.{L}."
        t[p + "input_layernorm.weight"] = (d,)
        t[p + "post_attention_layernorm.weight"] = (d,)
        for n, rows in (("q", Q), ("k", KVd), ("v", KVd)):
            t[p + f"self_attn.{n}_proj.weight"] = (rows, d)
            if s.qkv_bias:
                t[p + f"self_attn.{n}_proj.bias"] = (rows,)
        t[p + "self_attn.o_proj.weight"] = (d, Q)
        if s.o_bias:
            t[p + "self_attn.o_proj.bias"] = (d,)
        if s.qk_norm == "head":
            t[p + "self_attn.q_norm.weight"] = (s.hd,)
            t[p + "self_attn.k_norm.weight"] = (s.hd,)
        elif s.qk_norm == "full":
            t[p + "self_attn.q_norm.weight"] = (Q,)
            t[p + "self_attn.k_norm.weight"] = (KVd,)
        if L not in s.moe_layers:
            t[p + "mlp.gate_proj.weight"] = (s.F, d)
            t[p + "mlp.up_proj.weight"] = (s.F, d)
            t[p + "mlp.down_proj.weight"] = (d, s.F)
            continue
        t[gate_name(s, L)] = (s.E, d)
        for j in range(s.E):
            g, u, dn = expert_names(s, L, j)
            t[g], t[u], t[dn] = (s.h, d), (s.h, d), (d, s.h)
        if s.S:
            t[p + "mlp.shared_expert.gate_proj.weight"] = (s.S, d)
            t[p + "mlp.shared_expert.up_proj.weight"] = (s.S, d)
            t[p + "mlp.shared_expert.down_proj.weight"] = (d, s.S)
            t[p + "mlp.shared_expert_gate.weight"] = (1, d)
    return t


# --------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------
def rms_norm(x, w, eps):
    """MixtralRMSNorm / Qwen3MoeRMSNorm / OlmoeRMSNorm: x * rsqrt(mean(x^2) + eps) * w."""
    variance = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(variance + eps))


def rope_tables(s, T, dtype):
    """cos, sin [T, hd]: the default RoPE initialisation (inv_freq = 1 / base ** (arange(0,
    dim, 2) / dim), float32), linear scaling dividing inv_freq by the factor, emb =
    cat(freqs, freqs), all in float32, then cast (XRotaryEmbedding.forward)."""
    inv_freq = 1.0 / (s.theta ** (torch.arange(0, s.hd, 2, dtype=torch.int64).float() / s.hd))
    if s.rope_factor != 1.0:
        inv_freq = inv_freq / s.rope_factor
    pos = torch.arange(T, dtype=torch.float32)
    freqs = (inv_freq[:, None] @ pos[None, :]).t()           # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def attention(s, W, L, x, cos, sin):
    """(output [B,T,d], probabilities [B,H,T,T]) of the attention of layer L."""
    B, T, _ = x.shape
    p = f"model.layers.{L}.self_attn."
    q = F.linear(x, W[p + "q_proj.weight"], W.get(p + "q_proj.bias"))
    k = F.linear(x, W[p + "k_proj.weight"], W.get(p + "k_proj.bias"))
    v = F.linear(x, W[p + "v_proj.weight"], W.get(p + "v_proj.bias"))
    if s.qk_norm == "full":  # OlmoeAttention: norms over the whole projections
        q = rms_norm(q, W[p + "q_norm.weight"], s.eps)
        k = rms_norm(k, W[p + "k_norm.weight"], s.eps)
    if s.clip:
        q, k, v = (t.clamp(min=-s.clip, max=s.clip) for t in (q, k, v))
    q = q.view(B, T, s.H, s.hd)
    k = k.view(B, T, s.KV, s.hd)
    v = v.view(B, T, s.KV, s.hd).transpose(1, 2)
    if s.qk_norm == "head":  # Qwen3MoeAttention: per head, on the [.., hd] view
        q = rms_norm(q, W[p + "q_norm.weight"], s.eps)
        k = rms_norm(k, W[p + "k_norm.weight"], s.eps)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    rep = s.H // s.KV  # repeat_kv
    k = k[:, :, None].expand(B, s.KV, rep, T, s.hd).reshape(B, s.H, T, s.hd)
    v = v[:, :, None].expand(B, s.KV, rep, T, s.hd).reshape(B, s.H, T, s.hd)
    scores = torch.matmul(q, k.transpose(2, 3)) * s.hd ** -0.5
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    a = torch.softmax(scores, dim=-1)
    o = torch.matmul(a, v).transpose(1, 2).reshape(B, T, s.H * s.hd)
    return F.linear(o, W[p + "o_proj.weight"], W.get(p + "o_proj.bias")), a


def swiglu_mlp(x, wg, wu, wd):
    """XMLP.forward / MixtralBlockSparseTop2MLP.forward: down(silu(gate x) * up x)."""
    return F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd)


def hf_route(s, W, L, x):
    """XSparseMoeBlock's routing: softmax over all experts, top-k, renormalised when the
    family says so. Returns probs [N,E], idx [N,k] (descending), weights [N,k]."""
    logits = F.linear(x, W[gate_name(s, L)])
    probs = torch.softmax(logits, dim=-1)
    w, idx = torch.topk(probs, s.k, dim=-1)
    if s.renorm:
        w = w / w.sum(dim=-1, keepdim=True)
    return probs, idx, w


def experts_forward(s, W, L, x, idx, w):
    """final_hidden_states: for each expert in ascending order, index_add_ of its output on
    its tokens times their weight; plus the gated shared expert (Qwen2MoeSparseMoeBlock)."""
    y = torch.zeros_like(x)
    for j in range(s.E):
        tok, slot = (idx == j).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        g, u, dn = (W[n] for n in expert_names(s, L, j))
        y.index_add_(0, tok, swiglu_mlp(x[tok], g, u, dn) * w[tok, slot, None])
    if s.S:
        p = f"model.layers.{L}.mlp."
        sh = swiglu_mlp(x, W[p + "shared_expert.gate_proj.weight"],
                        W[p + "shared_expert.up_proj.weight"], W[p + "shared_expert.down_proj.weight"])
        y = y + torch.sigmoid(F.linear(x, W[p + "shared_expert_gate.weight"])) * sh
    return y


def make_routers(s, name, opts=None):
    """One tools/moe_model.py router per MoE layer (a training-free swap, as
    `moe-robust eval --router NAME` on the imported model), sharing the gate weights."""
    from moe_model import ModelConfig, ROUTERS
    mc = ModelConfig(task="lm", d_model=s.d, n_layers=s.n_layers, n_heads=s.H, d_ff=s.F,
                     n_experts=s.E, top_k=s.k, expert_hidden=s.h, moe_layers=s.moe_layers,
                     gate_norm="renorm" if s.renorm else "none", router=name, gate_bias=False,
                     vocab_size=s.V, max_seq_len=s.max_seq_len)
    out = {}
    for L in s.moe_layers:
        r = ROUTERS[name](mc, opts, trained=False)
        r.set_layer(L)
        r.check()
        out[L] = r.eval()
    return out


@torch.no_grad()
def forward(s, W, tokens, dtype=torch.float64, routers=None):
    """logits [B,T,V] and one dict per MoE layer (layer, probs, topk, weights, moe_input)
    for token ids [B,T]. W: name -> tensor of `dtype`. routers: None (the family's own
    routing) or make_routers()'s dict."""
    B, T = tokens.shape
    x = W["model.embed_tokens.weight"][tokens.long()]
    cos, sin = rope_tables(s, T, dtype)
    routes, ctx = [], {"prev_topk": None, "carry": None}
    for L in range(s.n_layers):
        p = f"model.layers.{L}."
        a, att = attention(s, W, L, rms_norm(x, W[p + "input_layernorm.weight"], s.eps), cos, sin)
        x = x + a
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], s.eps)
        if L not in s.moe_layers:
            x = x + swiglu_mlp(h, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                               W[p + "mlp.down_proj.weight"])
            continue
        hf = h.reshape(B * T, s.d)
        if routers is None:
            probs, idx, w = hf_route(s, W, L, hf)
            probs, idx, w = (t.reshape(B, T, -1) for t in (probs, idx, w))
            y = experts_forward(s, W, L, hf, idx.reshape(B * T, -1), w.reshape(B * T, -1)).reshape(B, T, s.d)
        else:
            r = routers[L]
            r.gate.weight.data = W[gate_name(s, L)]
            ctx["att"] = att
            probs, idx, w = r.route(h, ctx)

            def experts(xx, ii, ww):
                return experts_forward(s, W, L, xx.reshape(B * T, s.d), ii.reshape(B * T, -1),
                                       ww.reshape(B * T, -1)).reshape(B, T, s.d)
            y = r.combine(experts(h, idx, w), h, ctx, experts, idx, w)
            ctx["prev_topk"] = idx
        routes.append({"layer": L, "probs": probs, "topk": idx, "weights": w, "moe_input": h})
        x = x + y
    x = rms_norm(x, W["model.norm.weight"], s.eps)
    head = W["model.embed_tokens.weight"] if s.tie else W["lm_head.weight"]
    return F.linear(x, head), routes


def load(directory, dtype=torch.float64, max_seq_len=0):
    """(Spec, name -> tensor) of a checkpoint directory; shapes checked."""
    config, arrays = safetensors_io.read_checkpoint(directory)
    s = parse_config(config, max_seq_len)
    for name, shape in expected_shapes(s).items():
        if name not in arrays:
            raise ValueError(f"{directory}: tensor {name} is missing")
        if tuple(arrays[name].shape) != shape:
            raise ValueError(f"{directory}: {name} has shape {list(arrays[name].shape)}, "
                             f"expected {list(shape)}")
    # from_numpy shares the freshly read arrays: float32 weights are held once
    return s, {n: torch.from_numpy(a).to(dtype) for n, a in arrays.items()}


# --------------------------------------------------------------------------
# Conversion to the project's model format, version 2 (docs/model-format.md)
# --------------------------------------------------------------------------
def model_arrays(s, W):
    """HDF5 path -> float32 array of the format-v2 model of a checkpoint."""
    def a(name):
        return W[name].detach().to(torch.float32).numpy()
    out = {"embed/tok": a("model.embed_tokens.weight"), "head/ln_w": a("model.norm.weight")}
    if not s.tie:
        out["head/w"] = a("lm_head.weight")
    for L in range(s.n_layers):
        p, o = f"model.layers.{L}.", f"layers/{L}/"
        out[o + "ln1_w"] = a(p + "input_layernorm.weight")
        out[o + "ln2_w"] = a(p + "post_attention_layernorm.weight")
        out[o + "attn_qkv_w"] = np.concatenate([a(p + f"self_attn.{n}_proj.weight") for n in "qkv"])
        if s.qkv_bias:
            out[o + "attn_qkv_b"] = np.concatenate([a(p + f"self_attn.{n}_proj.bias") for n in "qkv"])
        out[o + "attn_out_w"] = a(p + "self_attn.o_proj.weight")
        if s.o_bias:
            out[o + "attn_out_b"] = a(p + "self_attn.o_proj.bias")
        if s.qk_norm != "none":
            out[o + "q_norm_w"] = a(p + "self_attn.q_norm.weight")
            out[o + "k_norm_w"] = a(p + "self_attn.k_norm.weight")
        if L not in s.moe_layers:
            out[o + "ffn/w1"] = np.concatenate([a(p + "mlp.gate_proj.weight"), a(p + "mlp.up_proj.weight")])
            out[o + "ffn/w2"] = a(p + "mlp.down_proj.weight")
            continue
        out[o + "moe/gate_w"] = a(gate_name(s, L))
        names = [expert_names(s, L, j) for j in range(s.E)]
        out[o + "moe/w1"] = np.stack([np.concatenate([a(g), a(u)]) for g, u, _ in names])
        out[o + "moe/w2"] = np.stack([a(dn) for _, _, dn in names])
        if s.S:
            q = p + "mlp.shared_expert."
            out[o + "moe/shared_w1"] = np.concatenate([a(q + "gate_proj.weight"), a(q + "up_proj.weight")])
            out[o + "moe/shared_w2"] = a(q + "down_proj.weight")
            out[o + "moe/shared_gate_w"] = a(p + "mlp.shared_expert_gate.weight")
    return out


def model_attrs(s):
    """Root attributes of the format-v2 model (the types the C loader checks)."""
    i64 = np.int64
    return {"format": "moe-robust-model", "format_version": i64(2), "task": "lm",
            "d_model": i64(s.d), "n_layers": i64(s.n_layers), "n_heads": i64(s.H),
            "d_ff": i64(s.F), "n_experts": i64(s.E), "top_k": i64(s.k),
            "expert_hidden": i64(s.h), "norm_eps": np.float64(np.float32(s.eps)),
            "activation": "swiglu", "gate_norm": "renorm" if s.renorm else "none",
            "router": "softmax", "moe_layers": np.asarray(s.moe_layers, dtype=np.int64),
            "vocab_size": i64(s.V), "max_seq_len": i64(s.max_seq_len), "norm": "rmsnorm",
            "position": "rope", "rope_theta": np.float64(s.theta),
            "rope_scaling": np.float64(s.rope_factor), "n_kv_heads": i64(s.KV),
            "head_dim": i64(s.hd), "qk_norm": s.qk_norm, "clip_qkv": np.float64(s.clip),
            "shared_expert_hidden": i64(s.S), "tie_head": i64(int(s.tie))}


def convert(directory, out_path, meta=None, max_seq_len=0):
    """Write the checkpoint in `directory` as a format-v2 model file (uncompressed)."""
    import h5py
    s, W = load(directory, torch.float32, max_seq_len)
    with h5py.File(out_path, "w", libver="latest") as f:  # compact object headers
        for k, v in model_attrs(s).items():
            f.attrs[k] = v
        for k, v in (meta or {}).items():
            f.attrs[k] = v
        for path, arr in model_arrays(s, W).items():
            assert np.isfinite(arr).all(), f"{path}: non-finite weights"
            f.create_dataset(path, data=arr, dtype="<f4")
    return s


def main():
    import argparse
    ap = argparse.ArgumentParser(description="Convert a Hugging Face MoE checkpoint directory "
                                 "to the moe-robust model format v2 (the PyTorch side of "
                                 "`moe-robust import`).")
    ap.add_argument("dir")
    ap.add_argument("out")
    ap.add_argument("--max-seq-len", type=int, default=0)
    args = ap.parse_args()
    try:
        convert(args.dir, args.out, {"source": os.path.abspath(args.dir)}, args.max_seq_len)
    except Unsupported as e:
        print(f"hf_moe.py: {args.dir}/{e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
