#!/usr/bin/python3
"""Write / read a MoEModel to / from the HDF5 model format (docs/model-format.md).

Writing follows the spec's attribute types exactly, because the C loader checks
them: strings are variable-length UTF-8, ints are int64 scalars, `moe_layers`
is an int64 array, `norm_eps` is float64; every weight is a float32 dataset,
chunked with shuffle + gzip (the spec allows it and it keeps models/ small).
"""

import numpy as np
import h5py
import torch

from moe_model import ModelConfig, MoEModel

FORMAT = "moe-robust-model"
FORMAT_VERSION = 1

# Root attributes that the loader interprets (spec, "Root attributes").
_INT_ATTRS = ["d_model", "n_layers", "n_heads", "d_ff", "n_experts", "top_k",
              "expert_hidden"]
_STR_ATTRS = ["task", "activation", "gate_norm", "router"]
_CLASSIFY_INT = ["image_h", "image_w", "channels", "patch", "n_classes"]
_LM_INT = ["vocab_size", "max_seq_len"]


def _attr_value(v):
    """Metadata values to spec types (int64 / float64 / UTF-8 string)."""
    if isinstance(v, (bool, np.bool_)):
        return np.int64(int(v))
    if isinstance(v, (int, np.integer)):
        return np.int64(v)
    if isinstance(v, (float, np.floating)):
        return np.float64(v)
    if isinstance(v, str):
        return v  # h5py stores str as variable-length UTF-8
    raise TypeError(f"unsupported attribute value {v!r}")


def model_tensors(model: MoEModel):
    """HDF5 path -> tensor for every dataset of the model (spec, "Datasets")."""
    c = model.cfg
    t = {}
    if c.task == "classify":
        t["embed/patch_w"] = model.patch_embed.weight
        t["embed/patch_b"] = model.patch_embed.bias
        if c.pool == "cls":
            t["embed/cls"] = model.cls
    else:
        t["embed/tok"] = model.tok
    t["embed/pos"] = model.pos
    for L, blk in enumerate(model.blocks):
        p = f"layers/{L}/"  # decimal, no padding
        t[p + "ln1_w"] = blk.ln1.weight
        t[p + "ln1_b"] = blk.ln1.bias
        t[p + "attn_qkv_w"] = blk.attn.qkv.weight
        t[p + "attn_qkv_b"] = blk.attn.qkv.bias
        t[p + "attn_out_w"] = blk.attn.out.weight
        t[p + "attn_out_b"] = blk.attn.out.bias
        t[p + "ln2_w"] = blk.ln2.weight
        t[p + "ln2_b"] = blk.ln2.bias
        if blk.is_moe:
            m = blk.moe
            for name, ten in m.router.h5_tensors().items():
                t[p + "moe/" + name] = ten
            t[p + "moe/w1"] = m.w1
            t[p + "moe/b1"] = m.b1
            t[p + "moe/w2"] = m.w2
            t[p + "moe/b2"] = m.b2
        else:
            t[p + "ffn/w1"] = blk.ffn.w1.weight
            t[p + "ffn/b1"] = blk.ffn.w1.bias
            t[p + "ffn/w2"] = blk.ffn.w2.weight
            t[p + "ffn/b2"] = blk.ffn.w2.bias
    t["head/ln_w"] = model.head_ln.weight
    t["head/ln_b"] = model.head_ln.bias
    t["head/w"] = model.head.weight
    t["head/b"] = model.head.bias
    return t


def save_model(model: MoEModel, path, meta=None, compress=True):
    """Write `model` to `path`; `meta` = extra root attributes (train_command,
    epoch, seed, clean_accuracy / test_bpc, ...), ignored by the C loader.
    compress=False writes contiguous datasets: for the tiny test fixtures the
    per-chunk index overhead of HDF5 would dwarf the weights."""
    c = model.cfg
    store = (dict(chunks=True, shuffle=True, compression="gzip", compression_opts=9)
             if compress else {})
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        for k in _STR_ATTRS:
            f.attrs[k] = getattr(c, k)
        for k in _INT_ATTRS:
            f.attrs[k] = np.int64(getattr(c, k))
        f.attrs["norm_eps"] = np.float64(c.norm_eps)
        f.attrs["moe_layers"] = np.asarray(c.moe_layers, dtype=np.int64)
        if c.task == "classify":
            for k in _CLASSIFY_INT:
                f.attrs[k] = np.int64(getattr(c, k))
            f.attrs["pool"] = c.pool
        else:
            for k in _LM_INT:
                f.attrs[k] = np.int64(getattr(c, k))
            f.create_dataset("vocab", data=np.asarray(c.vocab, dtype=np.int32), **store)
        for k, v in (meta or {}).items():
            f.attrs[k] = _attr_value(v)
        for name, ten in model_tensors(model).items():
            arr = ten.detach().cpu().to(torch.float32).numpy()
            assert np.isfinite(arr).all(), f"{name}: non-finite weights"
            f.create_dataset(name, data=arr, dtype="<f4", **store)


def _py(v):
    """h5py attribute value -> plain Python (str / int / float / list)."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def read_attrs(path):
    with h5py.File(path, "r") as f:
        return {k: _py(v) for k, v in f.attrs.items()}


def load_model(path, dtype=torch.float32):
    """Read a model file back into a MoEModel (eval mode).
    Returns (model, attrs) where attrs holds all root attributes, metadata
    included."""
    attrs = read_attrs(path)
    if attrs.get("format") != FORMAT or attrs.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} file")
    kw = {k: attrs[k] for k in _STR_ATTRS + _INT_ATTRS}
    kw["norm_eps"] = attrs["norm_eps"]
    kw["moe_layers"] = [int(x) for x in np.atleast_1d(attrs["moe_layers"])]
    with h5py.File(path, "r") as f:
        if attrs["task"] == "classify":
            kw.update({k: attrs[k] for k in _CLASSIFY_INT})
            kw["pool"] = attrs["pool"]
        else:
            kw.update({k: attrs[k] for k in _LM_INT})
            kw["vocab"] = f["vocab"][()].astype(np.int64).tolist()
        # gate_b is optional per MoE block; the module has a bias only when
        # the file has one (all-or-none, which is how our writers produce it).
        kw["gate_bias"] = any(f"layers/{L}/moe/gate_b" in f for L in kw["moe_layers"])
        model = MoEModel(ModelConfig(**kw))
        with torch.no_grad():
            for name, ten in model_tensors(model).items():
                if name.endswith("/gate_w") or name.endswith("/gate_b"):
                    continue  # loaded by the router hook below
                arr = np.asarray(f[name][()], dtype=np.float32)
                # copy_ would broadcast, so check the shape explicitly.
                if tuple(arr.shape) != tuple(ten.shape):
                    raise ValueError(f"{path}: /{name}: shape {list(arr.shape)}, "
                                     f"expected {list(ten.shape)}")
                ten.copy_(torch.from_numpy(arr))
            for L, blk in enumerate(model.blocks):
                if blk.is_moe:
                    blk.moe.router.load_h5(f[f"layers/{L}/moe"])
    model = model.to(dtype).eval()
    return model, attrs
