#!/usr/bin/python3
"""Generate routing traces (format v1, docs/trace-format.md) for the reader's tests.

    /usr/bin/python3 tools/make_bad_traces.py [--out tests]

Writes OUT/fixtures/traces/ (valid traces: the same scores stored as float32,
float16, bfloat16 as a named float type and as uint16 with dtype = "bfloat16", float32
and float16 also contiguous and uncompressed (read by mapping the file), with and
without top-k, with stored top-k and weights, a mask and sigmoid scores) and OUT/bad/traces/ with MANIFEST.tsv
(file, must_mention, defect): each bad trace is the valid base trace with exactly ONE
defect, so the message can be checked for the offending dataset, attribute or value.
tests/test_trace_io.c reads both; tests/cli_bad_traces.sh runs the bad ones through
`moe-robust analyze`.
"""

import argparse
import os
import shutil

import numpy as np
import h5py

N, T, E, K, C = 4, 5, 4, 2, 3
LAYERS = (1, 3)
BF16 = None


def bf16_type():
    """HDF5 float type with bfloat16's fields (1 sign, 8 exponent, 7 mantissa bits)."""
    global BF16
    if BF16 is None:
        t = h5py.h5t.IEEE_F32LE.copy()
        t.set_fields(15, 7, 8, 0, 7)
        t.set_offset(0)
        t.set_ebias(127)
        t.set_size(2)
        BF16 = t
    return BF16


def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (as torch does)."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def base_arrays(seed=0):
    rng = np.random.default_rng(seed)
    # scores exactly representable in bfloat16 and float16: every format holds the same values
    logits = {L: (rng.integers(-64, 64, size=(N, T, E)) / 16.0).astype(np.float32) for L in LAYERS}
    mask = np.ones((N, T), np.uint8)
    mask[1, 3:] = 0
    mask[3, 4:] = 0
    return {
        "sample_id": np.array([10, 3, 7, 42], np.int64),
        "mask": mask,
        "labels": np.array([0, 2, 1, 2], np.int32),
        "logits": rng.standard_normal((N, C)).astype(np.float32),
        "router_logits": logits,
    }


def write(path, a=None, attrs=None, layer_attrs=None, scores="router_logits", dtype="f32",
          topk=False, edit=None):
    """Write a trace; `edit(f)` applies the one defect afterwards."""
    a = a or base_arrays()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        at = {"format": "moe-robust-trace", "version": 1, "model": "tiny", "router": "softmax",
              "checkpoint": "final", "step": 100, "condition": "clean", "task": "classify",
              "source": "tools/make_bad_traces.py"}
        at.update(attrs or {})
        for k, v in at.items():
            f.attrs[k] = v
        f["sample_id"] = a["sample_id"]
        f["mask"] = a["mask"]
        f["labels"] = a["labels"]
        f["logits"] = a["logits"]
        for L in LAYERS:
            x = a["router_logits"][L]
            if scores == "probs":
                x = np.exp(x - x.max(-1, keepdims=True))
                x = (x / x.sum(-1, keepdims=True)).astype(np.float32)
            name = f"layers/{L}/{scores}"
            if dtype == "f32":
                ds = f.create_dataset(name, data=x, chunks=(1, T, E), compression="gzip")
            elif dtype == "f16":
                ds = f.create_dataset(name, data=x.astype(np.float16), chunks=(2, T, E),
                                      compression="gzip")
            elif dtype in ("f32-contig", "f16-contig"):
                # contiguous and uncompressed: analyze maps these instead of reading them
                ds = f.create_dataset(name, data=x if dtype == "f32-contig" else x.astype(np.float16))
            elif dtype == "bf16":
                ds = f.create_dataset(name, shape=x.shape, dtype=h5py.Datatype(bf16_type()))
                ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, to_bf16_bits(x), mtype=bf16_type())
            elif dtype == "bf16u16":
                ds = f.create_dataset(name, data=to_bf16_bits(x))
                ds.attrs["dtype"] = "bfloat16"
            la = {"top_k": K, "score": "softmax", "norm_topk": 1}
            la.update((layer_attrs or {}).get(L, {}))
            for k, v in la.items():
                ds.attrs[k] = v
            if topk:
                # torch.topk order: descending, ties to the lower index
                idx = np.argsort(-a["router_logits"][L], axis=-1, kind="stable")[..., :K]
                f[f"layers/{L}/topk"] = idx.astype(np.int64)
        if edit:
            edit(f)


def replace(name, data, **kw):
    def e(f):
        attrs = dict(f[name].attrs) if name in f else {}
        if name in f:
            del f[name]
        ds = f.create_dataset(name, data=data, **kw)
        for k, v in attrs.items():
            ds.attrs[k] = v
    return e


def delete(name):
    def e(f):
        del f[name]
    return e


def set_attr(obj, key, value):
    def e(f):
        f[obj].attrs[key] = value
    return e


def del_attr(obj, key):
    def e(f):
        del f[obj].attrs[key]
    return e


def good(out):
    d = os.path.join(out, "fixtures", "traces")
    shutil.rmtree(d, ignore_errors=True)
    for dt in ("f32", "f16", "bf16", "bf16u16", "f32-contig", "f16-contig"):
        write(os.path.join(d, f"logits-{dt}.h5"), dtype=dt)
    write(os.path.join(d, "logits-f32-topk.h5"), topk=True)
    # stored top-k and weights (both 1/2: the renormalized weights' entropy is ln 2)
    write(os.path.join(d, "logits-f32-weights.h5"), topk=True,
          edit=lambda f: [f.create_dataset(f"layers/{L}/weights", data=np.full((N, T, K), 0.5, np.float32))
                          for L in LAYERS])
    write(os.path.join(d, "probs-f32.h5"), scores="probs")
    write(os.path.join(d, "sigmoid-f16.h5"), dtype="f16",
          layer_attrs={L: {"score": "sigmoid"} for L in LAYERS})


def bad(out):
    d = os.path.join(out, "bad", "traces")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    a = base_arrays()
    nan = base_arrays()
    nan["router_logits"][1][2, 1, 3] = np.nan
    inf = base_arrays()
    inf["router_logits"][3][0, 0, 0] = np.inf
    l1 = "layers/1/router_logits"
    cases = [
        # file, write kwargs, must_mention, defect
        ("missing-sample-id", {"edit": delete("sample_id")}, "/sample_id", "no /sample_id"),
        ("duplicate-ids", {"edit": replace("sample_id", np.array([1, 2, 1, 3], np.int64))},
         "id 1 appears twice", "sample id 1 twice"),
        ("float-ids", {"edit": replace("sample_id", np.arange(N, dtype=np.float32))},
         "/sample_id", "float32 sample ids"),
        ("ids-wrong-length", {"edit": replace("sample_id", np.arange(N + 1))},
         "/layers/1/router_logits", "5 sample ids, 4 rows of scores"),
        ("wrong-format", {"attrs": {"format": "moe-robust-model"}}, "format",
         "format of a model file"),
        ("version-2", {"attrs": {"version": 2}}, "version = 2", "version 2"),
        ("missing-router", {"edit": del_attr("/", "router")}, "router",
         "no router attribute"),
        ("missing-step", {"edit": del_attr("/", "step")}, "step", "no step attribute"),
        ("step-as-string", {"attrs": {"step": "100"}}, "step", "step stored as a string"),
        ("model-with-slash", {"attrs": {"model": "org/model"}}, "model",
         "model label with a '/'"),
        ("condition-no-severity", {"attrs": {"condition": "gaussian_noise"}}, "condition",
         "corruption without severity"),
        ("condition-severity-9", {"attrs": {"condition": "gaussian_noise:9"}}, "condition",
         "severity 9"),
        ("unknown-task", {"attrs": {"task": "detect"}}, "task = 'detect'", "task detect"),
        ("no-layers", {"edit": delete("layers")}, "/layers", "no /layers group"),
        ("layer-not-an-index", {"edit": lambda f: f.create_group("layers/attn")},
         "/layers/attn", "a layer named attn"),
        ("both-logits-and-probs",
         {"edit": lambda f: f.create_dataset("layers/1/probs", data=np.full((N, T, E), 0.25, np.float32))},
         "/layers/1", "router_logits and probs in one layer"),
        ("no-scores", {"edit": delete(l1)}, "/layers/1/router_logits", "layer 1 without scores"),
        ("positions-differ",
         {"edit": replace("layers/3/router_logits", np.zeros((N, T + 1, E), np.float32))},
         "/layers/3/router_logits", "T = 6 in layer 3, 5 in layer 1"),
        ("rows-differ", {"edit": replace(l1, np.zeros((N - 1, T, E), np.float32))},
         "/layers/1/router_logits", "3 rows of scores for 4 sample ids"),
        ("float64-scores", {"edit": replace(l1, a["router_logits"][1].astype(np.float64))},
         "/layers/1/router_logits", "float64 scores"),
        ("int-scores", {"edit": replace(l1, np.zeros((N, T, E), np.int32))},
         "/layers/1/router_logits", "int32 scores"),
        ("uint16-without-dtype", {"dtype": "bf16u16", "edit": del_attr(l1, "dtype")},
         "/layers/1/router_logits", "bfloat16 bits without dtype attribute"),
        ("nan-score", {"a": nan}, "/layers/1/router_logits[2][1][3]", "one NaN logit"),
        ("inf-score-f16", {"a": inf, "dtype": "f16"}, "/layers/3/router_logits[0][0][0]",
         "one Inf in float16"),
        ("missing-top-k", {"edit": del_attr(l1, "top_k")}, "top_k", "no top_k attribute"),
        ("top-k-above-experts", {"layer_attrs": {1: {"top_k": 5}}}, "top_k = 5",
         "top_k 5 > E 4"),
        ("top-k-differs", {"layer_attrs": {3: {"top_k": 1}}}, "top_k = 1",
         "top_k 1 in layer 3, 2 in layer 1"),
        ("unknown-score", {"layer_attrs": {1: {"score": "relu"}}}, "score = 'relu'",
         "score relu"),
        ("norm-topk-2", {"layer_attrs": {1: {"norm_topk": 2}}}, "norm_topk = 2", "norm_topk 2"),
        ("topk-out-of-range",
         {"topk": True, "edit": replace("layers/1/topk", np.full((N, T, K), 4, np.int64))},
         "/layers/1/topk", "expert 4 of 4"),
        ("topk-repeated",
         {"topk": True, "edit": replace("layers/1/topk", np.zeros((N, T, K), np.int64))},
         "chosen twice", "expert 0 twice in one token"),
        ("topk-wrong-shape",
         {"topk": True, "edit": replace("layers/1/topk", np.zeros((N, T, K + 1), np.int64))},
         "/layers/1/topk", "topk [4,5,3] for top_k 2"),
        ("weights-nan",
         {"topk": True, "edit": lambda f: f.create_dataset("layers/1/weights",
                                                           data=np.full((N, T, K), np.nan, np.float32))},
         "/layers/1/weights", "NaN stored weights"),
        ("topk-float", {"edit": lambda f: f.create_dataset("layers/1/topk",
                                                           data=np.zeros((N, T, K), np.float32))},
         "/layers/1/topk", "float top-k"),
        ("mask-wrong-shape", {"edit": replace("mask", np.ones((N, T - 1), np.uint8))}, "/mask",
         "mask [4,4] for T 5"),
        ("mask-value-2", {"edit": replace("mask", np.full((N, T), 2, np.uint8))}, "/mask",
         "mask value 2"),
        ("mask-int32", {"edit": replace("mask", np.ones((N, T), np.int32))}, "/mask",
         "int32 mask"),
        ("label-out-of-range", {"edit": replace("labels", np.array([0, 3, 1, 2], np.int32))},
         "/labels", "label 3 with 3 classes"),
        ("logits-without-labels", {"edit": delete("labels")}, "/labels",
         "logits but no labels"),
        ("logits-nan", {"edit": replace("logits", np.full((N, C), np.nan, np.float32))},
         "/logits", "NaN logits"),
        ("logits-one-class", {"edit": replace("logits", np.zeros((N, 1), np.float32))},
         "/logits", "one class"),
        ("targets-in-classify", {"edit": lambda f: f.create_dataset("targets",
                                                                    data=np.zeros((N, T), np.int32))},
         "/targets", "lm targets in a classify trace"),
        ("probs-not-summing", {"scores": "probs",
                               "edit": replace("layers/1/probs", np.full((N, T, E), 0.5, np.float32))},
         "sum to 2", "probabilities summing to 2"),
        ("probs-negative", {"scores": "probs",
                            "edit": replace("layers/1/probs", np.full((N, T, E), -0.25, np.float32))},
         "/layers/1/probs", "negative probabilities"),
        ("scores-never-written",
         {"edit": lambda f: (f.__delitem__(l1),
                             f.create_dataset(l1, shape=(N, T, E), dtype=np.float32, chunks=(1, T, E)),
                             [f[l1].attrs.__setitem__(k, v) for k, v in
                              (("top_k", K), ("score", "softmax"), ("norm_topk", 1))])},
         "/layers/1/router_logits", "declared, never written"),
        ("huge-positions",
         {"edit": lambda f: (f.__delitem__(l1),
                             f.create_dataset(l1, shape=(N, 1 << 24, 1 << 10), dtype=np.float32,
                                              chunks=(1, 1, 1 << 10)),
                             f[l1].__setitem__((0, 0), np.zeros(1 << 10, np.float32)))},
         "/layers/1/router_logits", "T x E = 2^34 declared (allocation bait)"),
    ]
    rows = ["file\tmust_mention\tdefect"]
    for name, kw, needle, defect in cases:
        kw = dict(kw)
        write(os.path.join(d, name + ".h5"), **kw)
        rows.append(f"{name}.h5\t{needle}\t{defect}")
    with open(os.path.join(d, "empty.h5"), "wb"):
        pass
    rows.append("empty.h5\tempty.h5\t0 bytes")
    write(os.path.join(d, "base.tmp"))
    with open(os.path.join(d, "base.tmp"), "rb") as f:
        data = f.read()
    os.remove(os.path.join(d, "base.tmp"))
    with open(os.path.join(d, "truncated.h5"), "wb") as f:
        f.write(data[:1500])
    rows.append("truncated.h5\ttruncated.h5\tfirst 1500 bytes of a valid trace")
    with open(os.path.join(d, "not-hdf5.h5"), "w") as f:
        f.write("sample_id,layer,expert\n0,1,3\n")
    rows.append("not-hdf5.h5\tnot-hdf5.h5\ta CSV file named .h5")
    with open(os.path.join(d, "MANIFEST.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    args = ap.parse_args()
    good(args.out)
    bad(args.out)


if __name__ == "__main__":
    main()
