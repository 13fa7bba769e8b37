#!/usr/bin/python3
"""Tiny random Hugging Face checkpoints of the MoE families `moe-robust import` reads, in
the exact layout of the Hub (config.json keys, tensor names, dtypes, model.safetensors or
shards with model.safetensors.index.json), and what the tests compare the C side with.

    /usr/bin/python3 tools/make_hf_fixture.py --fixtures [--out tests/fixtures/hf]
    /usr/bin/python3 tools/make_hf_fixture.py FAMILY OUTDIR [--dtype f32|bf16|f16]
                     [--shards N] [--seed S] [--geometry tiny|olmoe-1b-7b-2l]

--fixtures writes, for each family (mixtral, qwen2_moe, qwen3_moe, olmoe) and dtype
(f32, bf16; and f16 for mixtral), into --out:
  FAMILY-DTYPE/            the checkpoint (f32: 2 shards + index; bf16: 3 shards +
                           index, except mixtral-bf16: one model.safetensors)
  FAMILY-DTYPE.h5          the same weights converted by tools/hf_moe.py (format v2)
  ref-FAMILY-DTYPE.h5      tools/hf_moe.py's forward pass on tokens.h5 (float64, stored
                           float32): /logits, and per MoE layer L /layers/L/{probs, topk,
                           weights, margin} (docs/model-format.md, "Reference state files")
  ref-FAMILY-DTYPE-ROUTER.h5  (f32; SWAPS below) the same with a training-free
                           router swapped in (attribute `router`; tools/moe_model.py)
  tokens.h5                /tokens [5, 11] int32: 5 sequences of 10 input tokens
The tiny geometries differ on purpose (docs/import.md): grouped-query attention, a
head_dim with heads x head_dim != hidden (qwen3_moe), q/k biases (qwen2_moe), per-head
(qwen3_moe) and full (olmoe) q/k norms, clip_qkv (olmoe), a shared expert with its gate and
a dense layer (qwen2_moe: mlp_only_layers), decoder_sparse_step 2 (qwen3_moe), linear RoPE
scaling (qwen2_moe), a tied LM head (qwen3_moe), norm_topk_prob true and false.

FAMILY OUTDIR writes one checkpoint; --geometry olmoe-1b-7b-2l is OLMoE-1B-7B's layer
geometry (d 2048, 16 heads, 64 experts, top-8, expert hidden 1024, vocab 50304) with 2
layers, for the memory and throughput benchmark (bench/hf_memory.sh; about 4.2 GB in f32).
Weights are random (seeded per tensor); gates are drawn at a scale that makes routing
decisive, and each family's fixtures use the first seed whose top-k margins under its own
routing are all >= 1e-4 (f32 and bf16), so float32 rounding cannot legitimately flip an
expert choice in the default-routing parity tests (swapped routers may have smaller
margins: tests/mr_parity.h exempts tokens below 1e-5).
"""

import argparse
import os
import shutil
import sys
import zlib

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import hf_moe  # noqa: E402
import safetensors_io  # noqa: E402

# config.json of each family, as on the Hub (keys of configuration_*.py), tiny sizes
TINY = {
    "mixtral": {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
        "vocab_size": 32, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
        "rope_theta": 1000000.0, "sliding_window": None, "hidden_act": "silu",
        "tie_word_embeddings": False, "router_aux_loss_coef": 0.02, "router_jitter_noise": 0.0,
        "torch_dtype": "float32", "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2},
    "qwen2_moe": {
        "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 16,
        "intermediate_size": 40, "moe_intermediate_size": 8,
        "shared_expert_intermediate_size": 20, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 4, "num_experts": 6,
        "num_experts_per_tok": 2, "norm_topk_prob": False, "decoder_sparse_step": 1,
        "mlp_only_layers": [1], "vocab_size": 32, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0}, "use_sliding_window": False,
        "sliding_window": 32, "max_window_layers": 2, "hidden_act": "silu",
        "tie_word_embeddings": False, "output_router_logits": False,
        "router_aux_loss_coef": 0.001, "torch_dtype": "float32", "attention_dropout": 0.0},
    "qwen3_moe": {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 16,
        "intermediate_size": 32, "moe_intermediate_size": 8, "head_dim": 8,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_experts": 6, "num_experts_per_tok": 3, "norm_topk_prob": True,
        "decoder_sparse_step": 2, "mlp_only_layers": [], "vocab_size": 32,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": None, "attention_bias": False, "use_sliding_window": False,
        "sliding_window": None, "hidden_act": "silu", "tie_word_embeddings": True,
        "torch_dtype": "float32", "attention_dropout": 0.0},
    "olmoe": {
        "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "hidden_size": 16,
        "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "num_experts": 8, "num_experts_per_tok": 4,
        "norm_topk_prob": False, "vocab_size": 32, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
        "attention_bias": False, "clip_qkv": 2.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "pad_token_id": 1, "eos_token_id": 31,
        "torch_dtype": "float32", "attention_dropout": 0.0},
}

# OLMoE-1B-7B-0924's config.json with 2 layers (the benchmark model)
OLMOE_2L = dict(TINY["olmoe"], hidden_size=2048, intermediate_size=1024, num_hidden_layers=2,
                num_attention_heads=16, num_key_value_heads=16, num_experts=64,
                num_experts_per_tok=8, vocab_size=50304, max_position_embeddings=4096,
                clip_qkv=None, pad_token_id=1, eos_token_id=50279)

LAYOUT = {("mixtral", "f32"): 2, ("mixtral", "bf16"): 1, ("mixtral", "f16"): 2}  # shards;
# default f32 2, bf16 3
SWAPS = {"olmoe": ("similarity", "attention", "ac"), "qwen2_moe": ("attention", "ac"),
         "qwen3_moe": ("similarity", "attention", "ac"), "mixtral": ("attention", "ac")}
# (mixtral and qwen3_moe: the attention router over grouped-query heads; ac across the
# MoE layers 1 and 3 of qwen3_moe's decoder_sparse_step 2)
DTYPE = {"f32": "F32", "bf16": "BF16", "f16": "F16"}


def random_tensor(name, shape, seed, gate_std=1.5):
    """One tensor, from its own stream (seed, crc32 of its name): matrices N(0, 1/fan_in),
    norms 1 + N(0, 0.1), biases N(0, 0.1), gates N(0, gate_std^2 / fan_in) (decisive
    routing), the embedding N(0, 1)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if len(shape) == 1 and "norm" in name:
        a = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    elif name.endswith(".bias"):
        a = 0.1 * rng.standard_normal(shape, dtype=np.float32)
    elif name.endswith("gate.weight"):  # the router and the shared expert's gate
        a = gate_std * rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])
    elif name == "model.embed_tokens.weight":
        a = rng.standard_normal(shape, dtype=np.float32)
    else:
        a = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(shape[-1]))
    return a.astype(np.float32)


def random_weights(spec, seed):
    """name -> (shape, fn) for every tensor of the checkpoint (hf_moe.expected_shapes), each
    drawn when it is written."""
    return {name: (shape, lambda name=name, shape=shape: random_tensor(name, shape, seed))
            for name, shape in hf_moe.expected_shapes(spec).items()}


def write_checkpoint(family, outdir, dtype="f32", shards=None, seed=1, config=None):
    config = dict(config or TINY[family])
    config["torch_dtype"] = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dtype]
    spec = hf_moe.parse_config(config)
    weights = random_weights(spec, seed)
    if shards is None:
        shards = LAYOUT.get((family, dtype), 2 if dtype == "f32" else 3)
    safetensors_io.write_checkpoint(outdir, config, weights, DTYPE[dtype], shards)
    return spec


def rel(path):
    r = os.path.relpath(os.path.abspath(path), ROOT)
    return os.path.abspath(path) if r.startswith("..") else r


@torch.no_grad()
def write_reference(ckpt, model_h5, tokens, out, router=None):
    import h5py
    from moe_model import margin
    s, W = hf_moe.load(ckpt, torch.float64)
    routers = hf_moe.make_routers(s, router) if router else None
    logits, routes = hf_moe.forward(s, W, torch.from_numpy(tokens[:, :-1]), torch.float64,
                                    routers)
    with h5py.File(out, "w", libver="latest") as f:  # the smallest object headers
        f.attrs["model"] = rel(model_h5)
        f.attrs["checkpoint"] = rel(ckpt)
        f.attrs["router"] = router or "softmax"
        f.attrs["router_opts"] = ""
        f.attrs["compute_dtype"] = "float64"
        f.create_dataset("inputs/tokens", data=tokens.astype(np.int32))
        f.create_dataset("logits", data=logits.to(torch.float32).numpy())
        mm = np.inf
        for r in routes:
            g = f"layers/{r['layer']}/"
            m = margin(r["probs"], s.k)
            mm = min(mm, float(m.min()))
            f.create_dataset(g + "probs", data=r["probs"].to(torch.float32).numpy())
            f.create_dataset(g + "topk", data=r["topk"].numpy().astype(np.int32))
            f.create_dataset(g + "weights", data=r["weights"].to(torch.float32).numpy())
            f.create_dataset(g + "margin", data=m.to(torch.float32).numpy())
        f.attrs["min_margin"] = np.float64(mm)
    return mm


@torch.no_grad()
def min_margin(ckpt, tokens):
    """Smallest top-k margin of the family's own routing over the tokens (tools/hf_moe.py)."""
    from moe_model import margin
    s, W = hf_moe.load(ckpt, torch.float64)
    _, routes = hf_moe.forward(s, W, torch.from_numpy(tokens[:, :-1]), torch.float64)
    return min(float(margin(r["probs"], s.k).min()) for r in routes)


def decisive_seed(family, tokens, tmp, first, margin_min=1e-4, tries=50):
    """The first seed from `first` (steps of 100) whose f32 and bf16 weights route every
    token with a top-k margin >= margin_min: float32 rounding then cannot legitimately flip
    an expert choice in the default-routing parity tests."""
    for seed in range(first, first + 100 * tries, 100):
        ok = True
        for dt in ("f32", "bf16"):
            shutil.rmtree(tmp, ignore_errors=True)
            write_checkpoint(family, tmp, dt, seed=seed)
            ok = ok and min_margin(tmp, tokens) >= margin_min
        shutil.rmtree(tmp)
        if ok:
            return seed
    raise RuntimeError(f"{family}: no seed with top-k margins >= {margin_min}")


def fixtures(out):
    import h5py
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 32, size=(5, 11)).astype(np.int32)
    tok_path = os.path.join(out, "tokens.h5")
    with h5py.File(tok_path, "w") as f:
        f.create_dataset("tokens", data=tokens)
    for i, family in enumerate(hf_moe.FAMILIES):
        seed = decisive_seed(family, tokens, os.path.join(out, "seed-search.tmp"), 100 + i)
        for dtype in ("f32", "bf16") + (("f16",) if family == "mixtral" else ()):
            name = f"{family}-{dtype}"
            ckpt = os.path.join(out, name)
            write_checkpoint(family, ckpt, dtype, seed=seed)
            model = os.path.join(out, name + ".h5")
            hf_moe.convert(ckpt, model, {"source": rel(ckpt), "seed": seed,
                                         "converted_by": "tools/hf_moe.py (tools/make_hf_fixture.py --fixtures)"})
            mm = write_reference(ckpt, model, tokens, os.path.join(out, f"ref-{name}.h5"))
            print(f"{name}: seed {seed}, min top-k margin {mm:.3g}")
            if dtype != "f32":
                continue
            for router in SWAPS.get(family, ()):
                mm = write_reference(ckpt, model, tokens,
                                     os.path.join(out, f"ref-{name}-{router}.h5"), router)
                print(f"{name} with {router}: min top-k margin {mm:.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", nargs="?", choices=hf_moe.FAMILIES)
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--fixtures", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "hf"))
    ap.add_argument("--dtype", choices=("f32", "bf16", "f16"), default="f32")
    ap.add_argument("--shards", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--geometry", choices=("tiny", "olmoe-1b-7b-2l"), default="tiny")
    args = ap.parse_args()
    if args.fixtures:
        fixtures(args.out)
        return 0
    if not args.family or not args.outdir:
        ap.error("FAMILY OUTDIR, or --fixtures")
    config = None
    if args.geometry == "olmoe-1b-7b-2l":
        if args.family != "olmoe":
            ap.error("--geometry olmoe-1b-7b-2l is an olmoe geometry")
        config = OLMOE_2L
    spec = write_checkpoint(args.family, args.outdir, args.dtype, args.shards, args.seed, config)
    print(f"{args.outdir}: {args.family}, {args.dtype}, d {spec.d}, {spec.n_layers} layers, "
          f"{spec.E} experts top-{spec.k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
