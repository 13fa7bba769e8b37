#!/usr/bin/python3
"""Edit routing traces for tests/cli_analyze.sh (docs/trace-format.md).

    trace_edit.py shard IN OUT_PREFIX K   K shards OUT_PREFIX-r{0..K-1}.h5, rows dealt round
                                          robin and each shard's rows reversed (ranks hold
                                          samples in any order)
    trace_edit.py drop IN OUT ID          without the sample whose id is ID
    trace_edit.py pad IN OUT P            P padding positions appended to every sample:
                                          garbage scores and top-k, mask 0 (real tokens
                                          unchanged); a /mask of ones for the real ones
    trace_edit.py attr IN OUT KEY VALUE   root attribute KEY = VALUE (int if it parses)
    trace_edit.py experts IN OUT E        scores cut to the first E experts (renormalized),
                                          top-k recomputed
"""
import sys

import h5py
import numpy as np


def copy_attrs(src, dst):
    for k, v in src.attrs.items():
        dst.attrs[k] = v


def rows(f, idx, out):
    copy_attrs(f, out)

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            ds = out.create_dataset(name, data=obj[()][idx])
            copy_attrs(obj, ds)
    f.visititems(visit)


def main(argv):
    cmd, src = argv[1], argv[2]
    with h5py.File(src, "r") as f:
        n = f["sample_id"].shape[0]
        if cmd == "shard":
            k = int(argv[4])
            for r in range(k):
                idx = np.arange(r, n, k)[::-1]
                with h5py.File(f"{argv[3]}-r{r}.h5", "w") as o:
                    rows(f, idx, o)
            return 0
        out = h5py.File(argv[3], "w")
        if cmd == "drop":
            ids = f["sample_id"][()]
            rows(f, np.nonzero(ids != int(argv[4]))[0], out)
        elif cmd == "attr":
            rows(f, np.arange(n), out)
            v = argv[5]
            try:
                v = int(v)
            except ValueError:
                pass
            out.attrs[argv[4]] = v
        elif cmd == "pad":
            p = int(argv[4])
            rng = np.random.default_rng(1)
            copy_attrs(f, out)

            def visit(name, obj):
                if not isinstance(obj, h5py.Dataset):
                    return
                x = obj[()]
                if name.startswith("layers/") or name in ("token_loss", "predictions", "targets"):
                    pad_shape = (x.shape[0], p) + x.shape[2:]
                    if name.endswith("/probs"):
                        g = rng.random(pad_shape).astype(np.float32)
                        g /= g.sum(-1, keepdims=True)
                    elif name.endswith("/topk"):
                        g = np.tile(np.arange(x.shape[2], dtype=x.dtype), pad_shape[:2] + (1,))
                    else:
                        g = rng.random(pad_shape).astype(x.dtype) if x.dtype.kind == "f" else np.zeros(pad_shape, x.dtype)
                    x = np.concatenate([x, g], axis=1)
                ds = out.create_dataset(name, data=x)
                copy_attrs(obj, ds)
            f.visititems(visit)
            T = f["layers"][next(iter(f["layers"]))]["probs"].shape[1]
            mask = np.zeros((n, T + p), np.uint8)
            mask[:, :T] = 1
            out.create_dataset("mask", data=mask)
        elif cmd == "experts":
            e = int(argv[4])
            copy_attrs(f, out)

            def visit(name, obj):
                if not isinstance(obj, h5py.Dataset):
                    return
                x = obj[()]
                if name.endswith("/probs"):
                    x = x[..., :e] / x[..., :e].sum(-1, keepdims=True)
                elif name.endswith("/topk"):
                    p = f[name.replace("/topk", "/probs")][()][..., :e]
                    x = np.argsort(-p, axis=-1, kind="stable")[..., :x.shape[-1]].astype(x.dtype)
                elif name.endswith("/weights"):
                    return
                ds = out.create_dataset(name, data=x.astype(obj.dtype))
                copy_attrs(obj, ds)
            f.visititems(visit)
        else:
            print(__doc__, file=sys.stderr)
            return 2
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
