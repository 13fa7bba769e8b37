#!/usr/bin/python3
"""Data sets: Fashion-MNIST (Debian fashion-mnist package, IDX .gz files) and
the KJV Bible as a character corpus (Debian bible-kjv, `bible` command).

Run as a script to write the LM test split models/kjv-char-test.h5, or a
Fashion-MNIST split as an HDF5 data file (/images uint8 [N,28,28,1] + /labels):
    /usr/bin/python3 tools/data.py --write-kjv-test models/kjv-char-test.h5
    /usr/bin/python3 tools/data.py --write-kjv-testaments models/kjv-char-testaments.h5
    /usr/bin/python3 tools/data.py --write-fmnist t10k OUT.h5
"""

import argparse
import gzip
import os
import re
import struct
import subprocess

import numpy as np
import h5py

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
KJV_RANGE = "Gen1:1-Rev22:21"
SEQ_LEN = 128          # T: model context for the char LM (max_seq_len)
TRAIN_FRACTION = 0.9   # first 90 % of characters train, last 10 % test


# --------------------------------------------------------------------------
# IDX (the (Fashion-)MNIST container format)
# --------------------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
               0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Parse an IDX file (gzip if the name ends in .gz): magic is two zero
    bytes, a dtype code, the number of dimensions, then big-endian uint32
    dims and the raw data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} values, header says {dims}")
    return data.reshape(dims)


def read_idx_images(images_path):
    """X-images-idx3-ubyte(.gz) -> (images uint8 [N,H,W,1], labels uint8 [N]);
    labels come from X-labels-idx1-ubyte(.gz) beside it (spec, Data files)."""
    labels_path = images_path.replace("images-idx3", "labels-idx1")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    return images[..., None].astype(np.uint8), labels.astype(np.uint8)


def fashion_mnist(split):
    """split 'train' (60k) or 't10k' (10k test)."""
    return read_idx_images(os.path.join(FMNIST_DIR, f"{split}-images-idx3-ubyte.gz"))


def write_idx(path, array):
    """Write a uint8 array as a gzip IDX file (used for test fixtures)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim)
    header += struct.pack(">" + "I" * arr.ndim, *arr.shape)
    # mtime=0 keeps the fixture byte-identical across regenerations.
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + arr.tobytes())


# --------------------------------------------------------------------------
# KJV character corpus
# --------------------------------------------------------------------------
def kjv_verses():
    """[(book, verse text)] of the whole KJV in order; `bible -f` prints lines like
    'Ge1:1 In the beginning...': the book is the reference without chapter:verse."""
    out = subprocess.run(["bible", "-f", KJV_RANGE], check=True,
                         capture_output=True, text=True).stdout
    verses = []
    for line in out.splitlines():
        if " " not in line:
            continue
        ref, text = line.split(" ", 1)
        verses.append((re.sub(r"\d+:\d+$", "", ref), text))
    return verses


def kjv_text():
    """Whole KJV, one verse per line, verse references removed, the verses joined with
    '\\n'."""
    return "\n".join(text for _, text in kjv_verses())


def kjv_books():
    """(book names in canonical order, book index [n_chars] int32 of every character
    of kjv_text(); a joining newline belongs to the verse before it)."""
    verses = kjv_verses()
    names = list(dict.fromkeys(book for book, _ in verses))
    idx = {b: i for i, b in enumerate(names)}
    parts = [np.full(len(text) + (i + 1 < len(verses)), idx[book], np.int32)
             for i, (book, text) in enumerate(verses)]
    return names, np.concatenate(parts)


def kjv_corpus():
    """Returns (vocab code points [V] int32 sorted, train ids, test ids) with
    ids int32 arrays; vocab = sorted set of characters of the whole corpus,
    split by characters: first 90 % train, last 10 % test."""
    text = kjv_text()
    vocab = sorted(set(text))
    lut = {ch: i for i, ch in enumerate(vocab)}
    ids = np.fromiter((lut[ch] for ch in text), dtype=np.int32, count=len(text))
    cut = int(len(ids) * TRAIN_FRACTION)
    codes = np.array([ord(ch) for ch in vocab], dtype=np.int32)
    return codes, ids[:cut], ids[cut:]


def windows(ids, seq_len=SEQ_LEN):
    """Non-overlapping windows [N, T+1] with stride T: each window shares its
    last token with the next window's first, so every test character except
    the very first is predicted exactly once."""
    n = (len(ids) - 1) // seq_len
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return ids[idx].astype(np.int32)


def write_kjv_test(path):
    codes, train, test = kjv_corpus()
    tok = windows(test)
    # /domains: the book of each window's first character (docs/model-format.md; domain
    # specialization, docs/metrics.md), names in the attribute domain_names
    names, book = kjv_books()
    book = book[len(train):]
    dom = book[np.arange(tok.shape[0]) * SEQ_LEN].astype(np.int32)
    with h5py.File(path, "w") as f:
        f.create_dataset("tokens", data=tok, chunks=True, shuffle=True,
                         compression="gzip", compression_opts=9)
        f.create_dataset("vocab", data=codes)
        f.create_dataset("domains", data=dom)
        f.attrs["domain_names"] = ",".join(names)
        f.attrs["domains"] = ("book of each window's first character, index into "
                              "domain_names (the 66 books in canonical order)")
        f.attrs["source"] = (f"Debian bible-kjv: bible -f \"{KJV_RANGE}\", verse "
                             "references stripped, verses joined with '\\n'")
        f.attrs["split"] = (f"test: last {1 - TRAIN_FRACTION:.0%} of characters; "
                            f"non-overlapping windows of {SEQ_LEN + 1} chars, "
                            f"stride {SEQ_LEN}")
    return tok.shape


N_OT_BOOKS = 39        # Genesis..Malachi; Matthew (index 39) opens the New Testament


def write_kjv_testaments(path, per_testament=256):
    """Old vs New Testament as domains (docs/metrics.md, domain specialization): windows
    of the *training* split, evenly spaced over each testament's part of it (Genesis to
    Malachi; Matthew to the end of the training split in Acts), alternating OT, NT, OT...
    so that any prefix (`--limit`) is balanced. Both from training text, so that the two
    domains do not also differ in having been seen in training; the test split (Acts 22
    to Revelation) is all New Testament and cannot carry this pair. For routing analysis,
    not for language-model scores."""
    codes, train, _ = kjv_corpus()
    _, book = kjv_books()
    book = book[: len(train)]
    nt0 = int(np.argmax(book >= N_OT_BOOKS))  # first character of Matthew
    spans = [(0, nt0), (nt0, len(train))]
    picks = []
    for a, b in spans:
        n_fit = (b - a - 1) // SEQ_LEN
        if n_fit < per_testament:
            raise SystemExit(f"only {n_fit} windows fit in [{a}, {b})")
        starts = a + (np.arange(per_testament) * n_fit // per_testament) * SEQ_LEN
        picks.append(starts)
    starts = np.stack(picks, axis=1).ravel()  # OT, NT, OT, NT, ...
    tok = train[starts[:, None] + np.arange(SEQ_LEN + 1)[None, :]].astype(np.int32)
    dom = np.tile(np.array([0, 1], np.int32), per_testament)
    assert (book[starts[dom == 0]] < N_OT_BOOKS).all() and (book[starts[dom == 1]] >= N_OT_BOOKS).all()
    with h5py.File(path, "w") as f:
        f.create_dataset("tokens", data=tok, chunks=True, shuffle=True,
                         compression="gzip", compression_opts=9)
        f.create_dataset("vocab", data=codes)
        f.create_dataset("domains", data=dom)
        f.attrs["domain_names"] = "Old Testament,New Testament"
        f.attrs["domains"] = "testament of each window, index into domain_names"
        f.attrs["source"] = (f"Debian bible-kjv: bible -f \"{KJV_RANGE}\", verse "
                             "references stripped, verses joined with '\\n'")
        f.attrs["split"] = (f"train (first {TRAIN_FRACTION:.0%} of characters): "
                            f"{per_testament} windows of {SEQ_LEN + 1} chars per testament, "
                            "evenly spaced, alternating Old, New")
    return tok.shape


def write_fmnist(split, path):
    """A Fashion-MNIST split in the project's HDF5 data format (docs/model-format.md,
    "Data files"); moe-robust also reads the IDX files directly."""
    images, labels = fashion_mnist(split)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=True, compression="gzip",
                         compression_opts=6)
        f.create_dataset("labels", data=labels.astype(np.uint8))
        f.attrs["source"] = f"Debian dataset-fashion-mnist: {FMNIST_DIR}/{split}-*-ubyte.gz"
    return images.shape


# --------------------------------------------------------------------------
# Evaluation data (spec, "Data files"): HDF5 images/tokens or IDX .gz images
# --------------------------------------------------------------------------
def load_eval_data(path):
    """Returns ('images', images uint8 [N,H,W,C], labels int64 [N]) or
    ('tokens', tokens int64 [N,T+1], None)."""
    if "idx3" in os.path.basename(path):
        images, labels = read_idx_images(path)
        return "images", images, labels.astype(np.int64)
    with h5py.File(path, "r") as f:
        if "images" in f:
            return "images", f["images"][()].astype(np.uint8), f["labels"][()].astype(np.int64)
        return "tokens", f["tokens"][()].astype(np.int64), None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-kjv-test", metavar="OUT.h5")
    ap.add_argument("--write-kjv-testaments", metavar="OUT.h5")
    ap.add_argument("--write-fmnist", nargs=2, metavar=("SPLIT", "OUT.h5"),
                    help="SPLIT is train or t10k")
    args = ap.parse_args()
    if args.write_kjv_test:
        print("tokens", write_kjv_test(args.write_kjv_test))
    if args.write_kjv_testaments:
        print("tokens", write_kjv_testaments(args.write_kjv_testaments))
    if args.write_fmnist:
        split, out = args.write_fmnist
        if split not in ("train", "t10k"):
            ap.error(f"--write-fmnist: split must be train or t10k, not {split!r}")
        print("images", write_fmnist(split, out))


if __name__ == "__main__":
    main()
