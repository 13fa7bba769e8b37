#!/usr/bin/python3
"""Generate malformed model files in tests/bad/ for the loader's error tests.

    /usr/bin/python3 tools/make_bad_models.py [--out tests/bad]

Each file is a copy of tests/fixtures/tiny-classify.h5 (tiny-lm.h5 for the
lm-* cases) with exactly ONE defect, so a test can check that the loader
rejects it and names the offending attribute / HDF5 path (docs/model-format.md:
"reports the first problem with the file name and the HDF5 path").

tests/bad/MANIFEST.tsv lists, per file, a substring the error message must
contain (`must_mention`) and a description of the defect.  For files that are
not readable HDF5 at all (empty, truncated, corrupted signature) the only
thing the message can name is the file itself, so must_mention is the file name.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import h5py

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


# ---- edit helpers (each takes an open h5py.File) ---------------------------
def set_attr(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


def del_attr(name):
    def edit(f):
        del f.attrs[name]
    return edit


def del_dataset(path):
    def edit(f):
        del f[path]
    return edit


def replace_dataset(path, fn):
    """Replace dataset `path` by fn(old float32 array) -> new array (whose
    dtype / shape is the defect)."""
    def edit(f):
        old = f[path][()]
        del f[path]
        f.create_dataset(path, data=fn(old))
    return edit


def unwritten(path):
    """Replace dataset `path` by one of the same shape and dtype that is declared
    (chunked) but never written: it would read back as fill values (zeros)."""
    def edit(f):
        old = f[path]
        shape, dtype = old.shape, old.dtype
        del f[path]
        f.create_dataset(path, shape=shape, dtype=dtype, chunks=shape)
    return edit


def partly_written(path, n_written):
    """Replace dataset `path` by one chunked along its first axis with only the first
    `n_written` chunks ever written: the rest would read as zeros (issue #23: libhdf5
    1.10's H5Dget_num_chunks refuses H5S_ALL, so the check had been skipped)."""
    def edit(f):
        old = f[path][()]
        del f[path]
        d = f.create_dataset(path, shape=old.shape, dtype=old.dtype, chunks=(1,) + old.shape[1:])
        d[:n_written] = old[:n_written]
    return edit


def outside(path, kind):
    """Replace dataset `path` by one whose data is not in the file: `external` raw storage
    (a file that does not exist, read as zeros; or any file of the host), an external
    link, a soft link to a copy elsewhere in the file, or a virtual dataset."""
    def edit(f):
        old = f[path][()]
        del f[path]
        if kind == "external":
            f.create_dataset(path, shape=old.shape, dtype=old.dtype,
                             external=[("no-such-raw-file.bin", 0, old.nbytes)])
        elif kind == "extlink":
            f[path] = h5py.ExternalLink("tiny-classify.h5", path)
        elif kind == "softlink":
            f.create_dataset("/stash", data=old)
            f[path] = h5py.SoftLink("/stash")
        else:
            layout = h5py.VirtualLayout(shape=old.shape, dtype=old.dtype)
            layout[...] = h5py.VirtualSource("tiny-classify.h5", path, shape=old.shape)
            virtual_dataset(f, path, layout)
    return edit


def group_extlink(path):
    """Replace group `path` by an external link to the same group of a valid model."""
    def edit(f):
        del f[path]
        f[path] = h5py.ExternalLink("tiny-classify.h5", path)
    return edit


def virtual_dataset(f, name, layout):
    """A virtual dataset without object timestamps, so that the file is the same bytes on
    every regeneration (h5py's create_virtual_dataset records the creation time)."""
    dcpl = layout._get_dcpl(f.filename)
    dcpl.set_obj_track_times(False)
    space = h5py.h5s.create_simple(layout.shape)
    tid = h5py.h5t.py_create(np.dtype(layout.dtype), logical=1)
    h5py.h5d.create(f.id, name=name.encode(), tid=tid, space=space, dcpl=dcpl)


def poke(path, index, value):
    def edit(f):
        f[path][index] = value
    return edit


def i64(x):
    return np.int64(x)


# ---- the cases: (file, base fixture, edit, must_mention, defect) ----------
C, LM = "tiny-classify.h5", "tiny-lm.h5"
CASES = [
    ("missing-dataset.h5", C, del_dataset("layers/1/moe/w2"),
     "/layers/1/moe/w2", "dataset /layers/1/moe/w2 absent"),
    ("missing-cls.h5", C, del_dataset("embed/cls"),
     "/embed/cls", "pool = cls but /embed/cls absent"),
    ("wrong-shape.h5", C, replace_dataset("layers/1/moe/w1",
                                          lambda a: np.zeros((4, 16, 16), np.float32)),
     "/layers/1/moe/w1", "/layers/1/moe/w1 shape [4,16,16], expected [4,8,16]"),
    ("wrong-shape-pos.h5", C, replace_dataset("embed/pos", lambda a: a[:4]),
     "/embed/pos", "/embed/pos has 4 rows, expected 5 (4 patches + cls)"),
    ("wrong-dtype-f64.h5", C, replace_dataset("layers/0/attn_qkv_w",
                                              lambda a: a.astype(np.float64)),
     "/layers/0/attn_qkv_w", "/layers/0/attn_qkv_w stored as float64"),
    ("wrong-dtype-int.h5", C, replace_dataset("head/b", lambda a: np.zeros(a.shape, np.int32)),
     "/head/b", "/head/b stored as int32"),
    ("unwritten-weight.h5", C, unwritten("layers/1/moe/w1"),
     "/layers/1/moe/w1", "/layers/1/moe/w1 declared but never written (reads as zeros)"),
    ("partly-written-weight.h5", C, partly_written("layers/1/moe/w1", 2),
     "/layers/1/moe/w1: only 2 of its 4 chunks", "/layers/1/moe/w1 chunked by expert, 2 of 4 written"),
    ("partly-written-head.h5", C, partly_written("head/w", 1),
     "/head/w: only 1 of its 3 chunks", "/head/w chunked by class, 1 of 3 written"),
    ("external-weight.h5", C, outside("head/w", "external"),
     "/head/w: stored in external files", "/head/w in external raw storage (reads as zeros)"),
    ("extlink-weight.h5", C, outside("embed/pos", "extlink"),
     "/embed/pos is an external link", "/embed/pos an external link to another file"),
    ("softlink-weight.h5", C, outside("head/b", "softlink"),
     "/head/b is a soft link", "/head/b a soft link to a dataset elsewhere in the file"),
    ("virtual-weight.h5", C, outside("layers/0/attn_out_w", "virtual"),
     "/layers/0/attn_out_w: a virtual dataset", "/layers/0/attn_out_w a virtual dataset"),
    ("extlink-group.h5", C, group_extlink("layers"),
     "/layers is an external link", "group /layers an external link to another file"),
    ("nan-weight.h5", C, poke("layers/0/attn_out_w", (3, 5), np.nan),
     "/layers/0/attn_out_w", "one NaN in /layers/0/attn_out_w"),
    ("inf-weight.h5", C, poke("head/w", (2, 7), -np.inf),
     "/head/w", "one -Inf in /head/w"),
    ("nan-gate-bias.h5", C, poke("layers/1/moe/gate_b", (1,), np.nan),
     "/layers/1/moe/gate_b", "NaN in the optional /layers/1/moe/gate_b"),
    ("attr-int-as-string.h5", C, set_attr("top_k", "2"),
     "top_k", "top_k stored as the string \"2\""),
    ("attr-float-as-string.h5", C, set_attr("norm_eps", "1e-5"),
     "norm_eps", "norm_eps stored as a string"),
    ("missing-attr.h5", C, del_attr("expert_hidden"),
     "expert_hidden", "attribute expert_hidden absent"),
    ("huge-d-model.h5", C, set_attr("d_model", i64(2 ** 40)),
     "d_model", "d_model = 2^40 (must not be allocated)"),
    ("huge-n-experts.h5", C, set_attr("n_experts", i64(2 ** 31 - 1)),
     "n_experts", "n_experts = 2^31-1"),
    ("top-k-gt-experts.h5", C, set_attr("top_k", i64(5)),
     "top_k", "top_k = 5 > n_experts = 4"),
    ("top-k-zero.h5", C, set_attr("top_k", i64(0)),
     "top_k", "top_k = 0"),
    ("negative-n-layers.h5", C, set_attr("n_layers", i64(-1)),
     "n_layers", "n_layers = -1"),
    ("moe-layers-out-of-range.h5", C, set_attr("moe_layers", np.array([2], np.int64)),
     "moe_layers", "moe_layers = [2] with n_layers = 2"),
    ("moe-layers-not-increasing.h5", C, set_attr("moe_layers", np.array([1, 0], np.int64)),
     "moe_layers", "moe_layers = [1, 0], not strictly increasing"),
    ("wrong-format.h5", C, set_attr("format", "moe-robust-modle"),
     "format", "format string misspelt"),
    ("format-version-3.h5", C, set_attr("format_version", i64(3)),
     "format_version", "format_version = 3 (this build reads 1 and 2)"),
    ("unknown-task.h5", C, set_attr("task", "detect"),
     "task", "task = detect"),
    ("heads-not-dividing.h5", C, set_attr("n_heads", i64(3)),
     "n_heads", "n_heads = 3 does not divide d_model = 16"),
    ("bad-activation.h5", C, set_attr("activation", "swish"),
     "activation", "activation = swish"),
    ("bad-gate-norm.h5", C, set_attr("gate_norm", "softmax"),
     "gate_norm", "gate_norm = softmax"),
    ("norm-eps-zero.h5", C, set_attr("norm_eps", np.float64(0.0)),
     "norm_eps", "norm_eps = 0"),
    ("patch-not-dividing.h5", C, set_attr("patch", i64(3)),
     "patch", "patch = 3 does not divide 8"),
    ("bad-channels.h5", C, set_attr("channels", i64(2)),
     "channels", "channels = 2"),
    ("bad-pool.h5", C, set_attr("pool", "max"),
     "pool", "pool = max"),
    ("n-classes-1.h5", C, set_attr("n_classes", i64(1)),
     "n_classes", "n_classes = 1"),
    ("lm-missing-vocab.h5", LM, del_dataset("vocab"),
     "/vocab", "lm model without /vocab"),
    ("lm-huge-vocab-size.h5", LM, set_attr("vocab_size", i64(2 ** 21)),
     "vocab_size", "vocab_size = 2^21 > 1048576"),
]
# Files that are not (readable) HDF5: produced from raw bytes.
RAW_CASES = [
    ("empty.h5", "empty file (0 bytes)"),
    ("truncated.h5", "first half of the bytes of tiny-classify.h5"),
    ("not-hdf5.h5", "one bit flipped in the HDF5 signature (byte 1: 'H' -> 'I')"),
]


def make_raw(name, out):
    raw = open(os.path.join(FIXTURES, C), "rb").read()
    if name == "empty.h5":
        data = b""
    elif name == "truncated.h5":
        data = raw[: len(raw) // 2]
    else:
        data = bytearray(raw)
        data[1] ^= 0x01  # "\x89HDF..." -> "\x89IDF...": signature not found
        data = bytes(data)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "bad"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name, base, edit, mention, defect in CASES:
        path = os.path.join(args.out, name)
        shutil.copyfile(os.path.join(FIXTURES, base), path)
        with h5py.File(path, "r+") as f:
            edit(f)
        rows.append((name, mention, defect))
    for name, defect in RAW_CASES:
        make_raw(name, args.out)
        rows.append((name, name, defect))
    with open(os.path.join(args.out, "MANIFEST.tsv"), "w") as f:
        f.write("file\tmust_mention\tdefect\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"{len(rows)} bad files in {args.out}")


if __name__ == "__main__":
    sys.exit(main())
