#!/usr/bin/python3
"""Read and write safetensors files and Hugging Face checkpoint directories with numpy only
(Debian has no python3-safetensors; the C importer has its own parser, io/mr_safetensors.c).

Format (huggingface/safetensors, README "Format"): 8 bytes little-endian unsigned header
length N, N bytes of UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]},
"__metadata__": {str: str}}, then the raw little-endian tensor bytes; offsets count from
the first byte after the header. The safetensors writer pads the header with spaces to a
multiple of 8 bytes and lays tensors out by decreasing dtype alignment, then by name.

A checkpoint directory holds model.safetensors, or shards model-0000i-of-0000n.safetensors
with model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard}}),
as transformers' save_pretrained writes them.
"""

import json
import os
import struct

import numpy as np

DTYPES = {"F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2), "BF16": (np.dtype("<u2"), 2)}


def bf16_to_f32(u16):
    """bfloat16 is the upper half of a float32: exact widening."""
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round float32 to bfloat16 to nearest even (as torch's .to(torch.bfloat16) does for
    finite values); returns the uint16 bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def read_file(path):
    """name -> float32 array (bf16 and f16 widened exactly)."""
    header, start = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dt, size = DTYPES[info["dtype"]]
            b, e = info["data_offsets"]
            f.seek(start + b)
            raw = np.frombuffer(f.read(e - b), dtype=dt).reshape(info["shape"])
            out[name] = bf16_to_f32(raw) if info["dtype"] == "BF16" else raw.astype(np.float32)
    return out


def _encode(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return (f32_to_bf16(a) if dtype == "BF16" else a.astype(DTYPES[dtype][0])).tobytes()


def write_file(path, tensors, dtype="F32", metadata=None):
    """tensors: name -> float32 array, or name -> (shape, fn) with fn() returning the array
    when it is written (so a large checkpoint never has to be in memory at once); stored
    as `dtype` (F32, F16 or BF16)."""
    size = DTYPES[dtype][1]
    header, off = {}, 0
    for name in sorted(tensors):
        t = tensors[name]
        shape = list(t[0]) if isinstance(t, tuple) else list(np.shape(t))
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name in sorted(tensors):
            t = tensors[name]
            raw = _encode(t[1]() if isinstance(t, tuple) else t, dtype)
            assert len(raw) == header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            f.write(raw)


def write_checkpoint(directory, config, tensors, dtype="F32", shards=1):
    """config.json plus model.safetensors (shards = 1) or `shards` files with the index.
    Tensors (as write_file takes them) are split over the shards in name order, as evenly
    as whole tensors allow."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    names = sorted(tensors)
    if shards == 1:
        write_file(os.path.join(directory, "model.safetensors"), tensors, dtype)
        return
    per = -(-len(names) // shards)
    weight_map, total = {}, 0
    for i in range(shards):
        part = names[i * per:(i + 1) * per]
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_file(os.path.join(directory, shard), {n: tensors[n] for n in part}, dtype)
        for n in part:
            weight_map[n] = shard
            t = tensors[n]
            total += int(np.prod(t[0] if isinstance(t, tuple) else np.shape(t))) * DTYPES[dtype][1]
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2,
                  sort_keys=True)
        f.write("\n")


def read_checkpoint(directory):
    """(config dict, name -> float32 array) of a Hugging Face model directory."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for shard in files:
        tensors.update(read_file(os.path.join(directory, shard)))
    return config, tensors
