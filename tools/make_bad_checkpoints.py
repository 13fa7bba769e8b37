#!/usr/bin/python3
"""Malformed Hugging Face checkpoints for `moe-robust import`'s error tests.

    /usr/bin/python3 tools/make_bad_checkpoints.py [--out tests/bad/hf]
                     [--seeds tests/fuzz/corpus/safetensors]

Each case is a directory holding a minimal valid checkpoint (the MINI configs below: one
or two layers, d 8, two experts; a few KB) with exactly ONE defect: in a safetensors
file (truncated, header length beyond the file, overlapping or out-of-range offsets,
a dtype or shape that disagrees with config.json, NaN / Inf weights, ...), in the shard
index (a missing shard, a tensor in the wrong shard, a path outside the directory), or in
config.json (a value the engine does not implement: it must be refused, naming the key).

MANIFEST.tsv lists per case a substring the error message must contain (`must_mention`:
the tensor, shard or config key at fault) and the defect. tests/cli_bad_checkpoints.sh
requires exit status 2, the case's directory in the message, the substring, and no output
file (nor temporary) left behind.

--seeds also writes valid single-file checkpoints' model.safetensors in F32, BF16 and F16
(and one with a zero-size tensor) as the seeds of tests/fuzz/fuzz_safetensors.c.
"""

import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import hf_moe  # noqa: E402
import make_hf_fixture  # noqa: E402
import safetensors_io  # noqa: E402

SMALL = dict(hidden_size=8, num_attention_heads=2, num_key_value_heads=1, vocab_size=16,
             max_position_embeddings=64, num_hidden_layers=1)
MINI = {
    "mixtral": dict(make_hf_fixture.TINY["mixtral"], intermediate_size=8, num_local_experts=2,
                    num_experts_per_tok=1, **SMALL),
    "qwen2_moe": dict(make_hf_fixture.TINY["qwen2_moe"], intermediate_size=8,
                      moe_intermediate_size=4, shared_expert_intermediate_size=4,
                      num_experts=2, num_experts_per_tok=1, mlp_only_layers=[], rope_scaling=None,
                      **dict(SMALL, num_key_value_heads=2)),
}
EXPERT = "model.layers.0.block_sparse_moe.experts.0.w1.weight"
EMBED = "model.embed_tokens.weight"


def base(out, family="mixtral", dtype="f32", shards=1, config=None):
    cfg = dict(MINI[family], **(config or {}))
    make_hf_fixture.write_checkpoint(family, out, dtype, shards, seed=3, config=cfg)


def load_raw(path):
    """(header dict, data bytes) of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        return header, f.read()


def save_raw(path, header, data, header_bytes=None):
    hb = header_bytes if header_bytes is not None else json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)


def edit_header(fn, name="model.safetensors"):
    def edit(d):
        p = os.path.join(d, name)
        header, data = load_raw(p)
        fn(header)
        save_raw(p, header, data)
    return edit


def edit_config(**changes):
    def edit(d):
        p = os.path.join(d, "config.json")
        cfg = json.load(open(p))
        for k, v in changes.items():
            if v is DROP:
                del cfg[k]
            else:
                cfg[k] = v
        json.dump(cfg, open(p, "w"), indent=2, sort_keys=True)
    return edit


DROP = object()


def truncate(d):
    p = os.path.join(d, "model.safetensors")
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    open(p, "wb").write(raw[: 8 + n + (len(raw) - 8 - n) // 2])


def straddler(d):
    """The first tensor (in header order) whose data the truncation cut."""
    header, data = load_raw(os.path.join(d, "model.safetensors"))
    for name, info in header.items():
        if name != "__metadata__" and info["data_offsets"][1] > len(data):
            return name
    raise AssertionError("truncation left every tensor whole")


def header_length(value):
    def edit(d):
        p = os.path.join(d, "model.safetensors")
        raw = bytearray(open(p, "rb").read())
        raw[:8] = struct.pack("<Q", value(len(raw)))
        open(p, "wb").write(bytes(raw))
    return edit


def garble_header(d):
    p = os.path.join(d, "model.safetensors")
    raw = bytearray(open(p, "rb").read())
    raw[8] = ord("x")  # "x\"lm_head..." instead of "{\"lm_head..."
    open(p, "wb").write(bytes(raw))


def set_offsets(name, fn):
    def f(header):
        header[name]["data_offsets"] = fn(header)
    return edit_header(f)


def duplicate_name(d):
    p = os.path.join(d, "model.safetensors")
    header, data = load_raw(p)
    body = json.dumps(header)
    entry = json.dumps({"model.norm.weight": header["model.norm.weight"]})[1:-1]
    save_raw(p, header, data, ("{" + entry + ", " + body[1:]).encode())


def poke(name, index, raw_value, dtype="<f4"):
    def edit(d):
        p = os.path.join(d, "model.safetensors")
        header, data = load_raw(p)
        b = header[name]["data_offsets"][0]
        size = np.dtype(dtype).itemsize
        data = bytearray(data)
        data[b + index * size:b + (index + 1) * size] = np.array([raw_value], dtype=dtype).tobytes()
        save_raw(p, header, bytes(data))
    return edit


def index_edit(fn):
    def edit(d):
        p = os.path.join(d, "model.safetensors.index.json")
        idx = json.load(open(p))
        fn(idx["weight_map"], d)
        json.dump(idx, open(p, "w"), indent=2, sort_keys=True)
    return edit


def drop_tensor(name):
    def edit(d):
        p = os.path.join(d, "model.safetensors")
        arrays = safetensors_io.read_file(p)
        del arrays[name]
        safetensors_io.write_file(p, arrays, "F32")
    return edit


def add_tensor(name):
    def edit(d):
        p = os.path.join(d, "model.safetensors")
        arrays = safetensors_io.read_file(p)
        arrays[name] = np.zeros((2, 8), np.float32)
        safetensors_io.write_file(p, arrays, "F32")
    return edit


def rm(name):
    return lambda d: os.remove(os.path.join(d, name))


def key_twice(name, anchor, member):
    """File `name` with `member` ("\"key\": value, ") inserted right after the text
    `anchor`: a key given twice, which cJSON would read as its first value and Python's
    json (transformers, safetensors) as its last."""
    def edit(d):
        p = os.path.join(d, name)
        if name.endswith(".safetensors"):
            header, data = load_raw(p)
            body = json.dumps(header)
            assert anchor in body, anchor
            save_raw(p, header, data, body.replace(anchor, anchor + member, 1).encode())
        else:
            text = open(p).read()
            assert anchor in text, anchor
            open(p, "w").write(text.replace(anchor, anchor + member, 1))
    return edit


def write_file(name, text):
    return lambda d: open(os.path.join(d, name), "w").write(text)


def second_shard(d):
    return "model-00002-of-00002.safetensors"


# (case, base kwargs, edit, must_mention (None: computed), defect)
CASES = [
    ("truncated", {"dtype": "bf16"}, truncate, None,
     "model.safetensors cut in the middle of its data"),
    ("header-length-beyond-file", {}, header_length(lambda n: n), "header length",
     "the 8-byte header length is the file's size"),
    ("header-length-huge", {}, header_length(lambda n: 1 << 62), "header length",
     "the 8-byte header length is 2^62"),
    ("header-not-json", {}, garble_header, "not valid JSON", "the header is not JSON"),
    ("offsets-overlap", {}, set_offsets("model.norm.weight",
                                        lambda h: h[EMBED]["data_offsets"][0:1] +
                                        [h[EMBED]["data_offsets"][0] + 32]),
     "overlap", "model.norm.weight's bytes are inside model.embed_tokens.weight's"),
    ("offsets-out-of-range", {}, set_offsets("model.norm.weight", lambda h: [1 << 40, (1 << 40) + 32]),
     "model.norm.weight", "data_offsets beyond the data section"),
    ("offsets-size-mismatch", {}, set_offsets("model.norm.weight",
                                              lambda h: [h["model.norm.weight"]["data_offsets"][0],
                                                         h["model.norm.weight"]["data_offsets"][0] + 28]),
     "model.norm.weight", "data_offsets hold 28 bytes for 8 floats"),
    ("duplicate-name", {}, duplicate_name, "model.norm.weight", "a tensor twice in the header"),
    ("dtype-f64", {}, edit_header(lambda h: h["model.norm.weight"].update(dtype="F64")),
     "F64", "a tensor declared F64"),
    ("dtype-vs-config", {"dtype": "bf16"}, edit_config(torch_dtype="float32"),
     EMBED, "bfloat16 tensors, config.json torch_dtype float32"),
    ("shape-vs-config", {}, edit_config(intermediate_size=12), EXPERT,
     "config.json intermediate_size 12, experts of 8"),
    ("missing-shard", {"shards": 2}, rm("model-00002-of-00002.safetensors"),
     "model-00002-of-00002.safetensors", "the index names a shard that is not there"),
    ("index-wrong-shard", {"shards": 2},
     index_edit(lambda m, d: m.update({"model.norm.weight": "model-00001-of-00002.safetensors"
                                       if m["model.norm.weight"].endswith("2.safetensors")
                                       else "model-00002-of-00002.safetensors"})),
     "model.norm.weight", "the index maps a tensor to the other shard"),
    ("tensor-not-in-index", {"shards": 2}, index_edit(lambda m, d: m.pop("model.norm.weight")),
     "model.norm.weight", "a shard holds a tensor the index does not list"),
    ("shard-outside-directory", {"shards": 2},
     index_edit(lambda m, d: m.update({k: "../" + v for k, v in m.items()})),
     "not a file name", "the index points outside the directory"),
    ("missing-tensor", {}, drop_tensor(EXPERT), EXPERT, "an expert weight is absent"),
    ("extra-tensor", {}, add_tensor("model.layers.0.mlp.unknown.weight"),
     "model.layers.0.mlp.unknown.weight", "a tensor the architecture has no place for"),
    ("nan-weight", {}, poke(EXPERT, 5, np.nan), EXPERT, "a NaN in an expert weight"),
    ("inf-weight-bf16", {"dtype": "bf16"}, poke("model.norm.weight", 2, 0x7F80, "<u2"),
     "model.norm.weight", "+Inf (bfloat16 0x7f80) in the final norm"),
    ("no-weights", {}, rm("model.safetensors"), "neither model.safetensors",
     "config.json without weights"),
    ("no-config", {}, rm("config.json"), "config.json", "weights without config.json"),
    ("config-not-json", {}, write_file("config.json", "{\"model_type\": \"mixtral\",\n"),
     "config.json", "config.json cut short"),
    ("model-type-llama", {}, edit_config(model_type="llama"), "model_type", "a dense family"),
    ("mla-attention", {}, edit_config(kv_lora_rank=16), "kv_lora_rank",
     "multi-head latent attention keys"),
    ("rope-yarn", {}, edit_config(rope_scaling={"type": "yarn", "factor": 4.0}),
     "rope_scaling.type", "YaRN RoPE scaling"),
    ("rope-dynamic", {}, edit_config(rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
     "rope_scaling.rope_type", "dynamic NTK RoPE scaling"),
    ("sliding-window", {}, edit_config(sliding_window=16), "sliding_window",
     "mixtral with a 16-token window and 64 positions"),
    ("qwen-sliding-window", {"family": "qwen2_moe"},
     edit_config(use_sliding_window=True, sliding_window=16), "use_sliding_window",
     "qwen2_moe with use_sliding_window true"),
    ("hidden-act-gelu", {}, edit_config(hidden_act="gelu"), "hidden_act", "GeGLU experts"),
    ("quantized", {}, edit_config(quantization_config={"quant_method": "gptq", "bits": 4}),
     "quantization_config", "a quantized checkpoint"),
    ("kv-heads-gt-heads", {}, edit_config(num_key_value_heads=3), "num_key_value_heads",
     "3 key/value heads for 2 heads"),
    ("all-layers-dense", {"family": "qwen2_moe"}, edit_config(mlp_only_layers=[0]),
     "mlp_only_layers", "every layer listed in mlp_only_layers"),
    ("partial-rotary", {}, edit_config(partial_rotary_factor=0.5), "partial_rotary_factor",
     "rotary embeddings on half the head"),
    ("torch-dtype-fp8", {}, edit_config(torch_dtype="float8_e4m3fn"), "torch_dtype",
     "an fp8 checkpoint"),
    ("missing-hidden-size", {}, edit_config(hidden_size=DROP), "hidden_size",
     "config.json without hidden_size"),
    ("missing-kv-heads", {}, edit_config(num_key_value_heads=DROP), "num_key_value_heads",
     "mixtral without num_key_value_heads (MixtralConfig's default 8 is Mixtral-8x7B's)"),
    ("head-dim-odd", {}, edit_config(head_dim=3), "head_dim", "head_dim 3 (RoPE needs even)"),
    ("top-k-gt-experts", {}, edit_config(num_experts_per_tok=3), "num_experts_per_tok",
     "top-3 of 2 experts"),
    # a key given twice: the two JSON readers would disagree silently (issue #23 item 6)
    ("config-key-twice", {}, key_twice("config.json", "{", '"num_experts_per_tok": 1, '),
     "num_experts_per_tok", "config.json gives num_experts_per_tok twice"),
    ("header-key-twice", {}, key_twice("model.safetensors", '"model.norm.weight": {',
                                       '"dtype": "F16", '),
     "dtype", "a header entry gives dtype twice"),
    ("index-key-twice", {"shards": 2},
     key_twice("model.safetensors.index.json", '"weight_map": {',
               '"model.norm.weight": "model-00001-of-00002.safetensors", '),
     "model.norm.weight", "the index maps a tensor twice"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "bad", "hf"))
    ap.add_argument("--seeds", default=os.path.join(ROOT, "tests", "fuzz", "corpus", "safetensors"))
    args = ap.parse_args()
    os.makedirs(args.seeds, exist_ok=True)
    for dtype in ("f32", "bf16", "f16"):
        tmp = os.path.join(args.out + ".tmp", dtype)
        base(tmp, dtype=dtype)
        shutil.copyfile(os.path.join(tmp, "model.safetensors"),
                        os.path.join(args.seeds, f"valid-{dtype}.safetensors"))
    safetensors_io.write_file(os.path.join(args.seeds, "empty-tensor.safetensors"),
                              {"a": np.zeros((0, 3), np.float32), "b": np.ones(2, np.float32)})
    shutil.rmtree(args.out + ".tmp")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    rows = []
    for name, kw, edit, mention, defect in CASES:
        d = os.path.join(args.out, name)
        base(d, **kw)
        edit(d)
        rows.append((name, mention or straddler(d), defect))
    with open(os.path.join(args.out, "MANIFEST.tsv"), "w") as f:
        f.write("case\tmust_mention\tdefect\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"{len(rows)} bad checkpoints in {args.out}")


if __name__ == "__main__":
    sys.exit(main())
