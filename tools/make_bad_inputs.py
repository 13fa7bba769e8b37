#!/usr/bin/python3
"""Generate malformed evaluation data and run configs for the CLI's error tests.

    /usr/bin/python3 tools/make_bad_inputs.py [--out tests/bad]

Writes OUT/data/ (HDF5 and IDX data files), OUT/configs/ (INI configs of
`moe-robust run`), OUT/compress/ (inputs `moe-robust compress` refuses) and the
manifest OUT/inputs.tsv that tests/cli_bad_inputs.sh
replays through the real binary. Each file has exactly ONE defect on top of a
valid input built from the tiny fixtures in tests/fixtures/ (tiny-classify.h5:
8x8x1 images, 3 classes, 4 experts; tiny-lm.h5: vocabulary of 11, max_seq_len
16), so the message the CLI prints can be checked for the offending path, key
or value. Malformed *models* are made by tools/make_bad_models.py.

inputs.tsv columns (tab-separated; "-" is an empty field):
  command      eval: `moe-robust eval --data FILE ARGS`;
               run:  `moe-robust run FILE --out DIR ARGS`;
               compress: `moe-robust compress ARGS --out FILE.h5` (ARGS hold the
               model and calibration data; FILE is the one at fault)
  file         the data, config or model file; the message must name it
  line         for configs: the line the message must name as FILE:LINE
  must_mention substring the message must contain (path, key or value)
  args         extra arguments, blank-separated (the model for eval cases)
  defect       what is wrong, for people
Every case must exit with status 2 and leave no output behind.
"""

import argparse
import gzip
import os
import struct
import sys

import numpy as np
import h5py

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
from make_bad_models import virtual_dataset  # noqa: E402  (one timestamp-free writer)

FIX = "tests/fixtures"
CLASSIFY = f"--model {FIX}/tiny-classify.h5"
LM = f"--model {FIX}/tiny-lm.h5"


def fixture(name, path):
    with h5py.File(os.path.join(ROOT, FIX, name), "r") as f:
        return f[path][()]


# Four valid samples of each kind: every defect is applied to these.
IMAGES = fixture("tiny-images.h5", "images")[:4]           # [4, 8, 8, 1] uint8
LABELS = fixture("tiny-images.h5", "labels")[:4].astype(np.int32)
TOKENS = fixture("tiny-tokens.h5", "tokens")[:3]           # [3, 13] int32, ids < 11


# ---- data files ---------------------------------------------------------------
def h5(**datasets):
    """An HDF5 data file holding the given datasets: name -> array, or a tuple
    (shape, dtype, written) for a chunked dataset that is only declared: a tiny
    file whose shape claims any size. written=True stores its first element (one
    small chunk); False stores nothing, so it would read back as fill values."""
    def write(path):
        with h5py.File(path, "w") as f:
            for name, v in datasets.items():
                if isinstance(v, tuple):
                    shape, dtype, written = v
                    d = f.create_dataset(name, shape=shape, dtype=dtype,
                                         chunks=(1,) + tuple(min(s, 64) for s in shape[1:]))
                    if written:
                        d[(0,) * len(shape)] = 1  # one element: one chunk
                else:
                    f.create_dataset(name, data=v)
    return write


def partly_written(name, data, rows_written, **others):
    """Dataset `name` (the array `data`) chunked one row per chunk, with only its first
    `rows_written` rows ever written: the rest would read back as fill values (0)."""
    def write(path):
        with h5py.File(path, "w") as f:
            d = f.create_dataset(name, shape=data.shape, dtype=data.dtype,
                                 chunks=(1,) + data.shape[1:])
            d[:rows_written] = data[:rows_written]
            for k, v in others.items():
                f.create_dataset(k, data=v)
    return write


def outside(kind, name, data, **others):
    """Dataset `name` whose data is not inside the file: `external` storage (raw bytes in
    another file, here one that does not exist: reads as zeros), an `extlink` or a
    `softlink` in its place, or a `virtual` dataset mapping another file."""
    def write(path):
        with h5py.File(path, "w") as f:
            if kind == "external":
                f.create_dataset(name, shape=data.shape, dtype=data.dtype,
                                 external=[("no-such-raw-file.bin", 0, data.nbytes)])
            elif kind == "extlink":
                f[name] = h5py.ExternalLink("tiny-images.h5", "/" + name)
            elif kind == "softlink":
                f.create_dataset("stash_" + name, data=data)
                f[name] = h5py.SoftLink("/stash_" + name)
            else:
                layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
                layout[...] = h5py.VirtualSource("tiny-images.h5", "/" + name, shape=data.shape)
                virtual_dataset(f, name, layout)
            for k, v in others.items():
                f.create_dataset(k, data=v)
    return write


def with_value(a, index, value, dtype=None):
    a = np.array(a, dtype=dtype or a.dtype)
    a[index] = value
    return a


def raw_bytes(fn):
    def write(path):
        with open(path, "wb") as f:
            f.write(fn())
    return write


def valid_h5_bytes():
    with open(os.path.join(ROOT, FIX, "tiny-images.h5"), "rb") as f:
        return f.read()


def flip_bit(data, byte, bit=0):
    b = bytearray(data)
    b[byte] ^= 1 << bit
    return bytes(b)


def idx_bytes(array, magic_type=0x08):
    a = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">HBB", 0, magic_type, a.ndim) + struct.pack(">" + "I" * a.ndim, *a.shape)
    return head + a.tobytes()


def idx_header(dims):
    return struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(">" + "I" * len(dims), *dims)


def gz(data):
    return gzip.compress(data, mtime=0)


def idx_pair(images=None, labels=None):
    """An IDX images file and, unless labels is False, its labels file beside it
    (both gzip). Arguments are raw file contents (bytes) or arrays."""
    images = idx_bytes(IMAGES[..., 0]) if images is None else images
    labels = idx_bytes(LABELS) if labels is None else labels

    def write(path):
        with open(path, "wb") as f:
            f.write(gz(images) if isinstance(images, bytes) else gz(idx_bytes(images)))
        if labels is not False:
            lpath = path.replace("images-idx3-ubyte", "labels-idx1-ubyte")
            with open(lpath, "wb") as f:
                f.write(gz(labels) if isinstance(labels, bytes) else gz(idx_bytes(labels)))
    return write


def gz_damaged(fn):
    """A valid IDX pair whose images .gz is damaged by fn(gzip bytes) -> bytes."""
    def write(path):
        idx_pair()(path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(fn(data))
    return write


IMG_BYTES = idx_bytes(IMAGES[..., 0])
SIGNATURE_END = 8  # "\x89HDF\r\n\x1a\n"

# (file, writer, must_mention, args, defect); the message must also name the file
DATA = [
    # HDF5 images
    ("labels-out-of-range.h5", h5(images=IMAGES, labels=with_value(LABELS, 2, 3)),
     "/labels[2] = 3", CLASSIFY, "label 3 with n_classes = 3"),
    ("labels-negative.h5", h5(images=IMAGES, labels=with_value(LABELS, 1, -1)),
     "/labels[1] = -1", CLASSIFY, "label -1"),
    ("labels-huge.h5", h5(images=IMAGES, labels=with_value(LABELS, 0, 2 ** 40, np.int64)),
     "outside the int32 range", CLASSIFY, "int64 label 2^40 (HDF5 would clamp it to 2^31-1)"),
    ("labels-float.h5", h5(images=IMAGES, labels=LABELS.astype(np.float32)),
     "/labels", CLASSIFY, "float32 labels"),
    ("missing-labels.h5", h5(images=IMAGES),
     "/labels", CLASSIFY, "/images without /labels"),
    ("label-count-mismatch.h5", h5(images=IMAGES, labels=LABELS[:3]),
     "/labels", CLASSIFY, "4 images, 3 labels"),
    ("labels-2d.h5", h5(images=IMAGES, labels=LABELS.reshape(2, 2)),
     "/labels", CLASSIFY, "labels [2, 2]"),
    ("domains-negative.h5", h5(images=IMAGES, labels=LABELS,
                               domains=np.array([0, -1, 2, 1], np.int32)),
     "/domains[1] = -1", CLASSIFY, "domain -1"),
    ("domains-huge.h5", h5(images=IMAGES, labels=LABELS,
                           domains=np.array([0, 1, 5000, 1], np.int32)),
     "/domains[2] = 5000", CLASSIFY, "domain 5000 (at most 4095)"),
    ("domains-float.h5", h5(images=IMAGES, labels=LABELS, domains=np.zeros(4, np.float32)),
     "/domains", CLASSIFY, "float32 domains"),
    ("domains-count-mismatch.h5", h5(images=IMAGES, labels=LABELS,
                                     domains=np.zeros(3, np.int32)),
     "/domains", CLASSIFY, "4 images, 3 domains"),
    ("images-wrong-size.h5", h5(images=np.zeros((4, 10, 10, 1), np.uint8), labels=LABELS),
     "10x10x1", CLASSIFY, "10x10 images for an 8x8 model"),
    ("images-wrong-channels.h5", h5(images=np.repeat(IMAGES, 3, axis=3), labels=LABELS),
     "8x8x3", CLASSIFY, "3 channels for a 1-channel model"),
    ("images-float.h5", h5(images=IMAGES.astype(np.float32), labels=LABELS),
     "/images", CLASSIFY, "float32 images"),
    ("images-uint16.h5", h5(images=IMAGES.astype(np.uint16), labels=LABELS),
     "/images", CLASSIFY, "uint16 images"),
    ("images-rank-2.h5", h5(images=IMAGES.reshape(4, 64), labels=LABELS),
     "/images", CLASSIFY, "images [4, 64]"),
    ("images-empty.h5", h5(images=np.zeros((0, 8, 8, 1), np.uint8),
                           labels=np.zeros(0, np.int32)),
     "/images is empty", CLASSIFY, "0 images"),
    ("images-huge-n.h5", h5(images=((2 ** 32, 1, 1, 1), np.uint8, True),
                            labels=((2 ** 32,), np.int32, True)),
     "chunks were ever written", CLASSIFY,
     "2^32 1x1 images declared, one stored (allocation bait: 20 GB were filled)"),
    ("images-huge-dims.h5", h5(images=((1, 2 ** 20, 2 ** 20, 1), np.uint8, True),
                               labels=((1,), np.int32, True)),
     "chunks were ever written", CLASSIFY, "one 2^20 x 2^20 image declared, one chunk stored"),
    ("images-not-written.h5", h5(images=((4, 8, 8, 1), np.uint8, False), labels=LABELS),
     "/images: declared but no data", CLASSIFY, "/images declared, never written (fill values)"),
    ("labels-not-written.h5", h5(images=IMAGES, labels=((4,), np.int32, False)),
     "/labels: declared but no data", CLASSIFY,
     "/labels declared, never written (would read as all 0)"),
    # written only in part, or not inside the file at all: would read as zeros (issue #23)
    ("labels-partly-written.h5", partly_written("labels", LABELS, 2, images=IMAGES),
     "/labels: only 2 of its 4 chunks", CLASSIFY, "/labels chunked by row, 2 of 4 rows written"),
    ("images-partly-written.h5", partly_written("images", IMAGES, 3, labels=LABELS),
     "/images: only 3 of its 4 chunks", CLASSIFY, "/images chunked by image, 3 of 4 written"),
    ("tokens-partly-written.h5", partly_written("tokens", TOKENS, 1),
     "/tokens: only 1 of its 3 chunks", LM, "/tokens chunked by row, 1 of 3 written"),
    ("images-external.h5", outside("external", "images", IMAGES, labels=LABELS),
     "/images: stored in external files", CLASSIFY,
     "/images in external raw storage (a file that does not exist: zeros)"),
    ("labels-external.h5", outside("external", "labels", LABELS, images=IMAGES),
     "/labels: stored in external files", CLASSIFY, "/labels in external raw storage"),
    ("tokens-external.h5", outside("external", "tokens", TOKENS),
     "/tokens: stored in external files", LM, "/tokens in external raw storage"),
    ("images-extlink.h5", outside("extlink", "images", IMAGES, labels=LABELS),
     "/images is an external link", CLASSIFY, "/images an external link to another file"),
    ("labels-softlink.h5", outside("softlink", "labels", LABELS, images=IMAGES),
     "/labels is a soft link", CLASSIFY, "/labels a soft link to another dataset"),
    ("images-virtual.h5", outside("virtual", "images", IMAGES, labels=LABELS),
     "/images: a virtual dataset", CLASSIFY, "/images a virtual dataset over another file"),
    ("neither.h5", h5(pixels=IMAGES),
     "neither /images nor /tokens", CLASSIFY, "no /images, no /tokens"),
    ("tokens-for-classifier.h5", h5(tokens=TOKENS),
     "token sequences", CLASSIFY, "token data given to an image classifier"),
    # HDF5 tokens
    ("tokens-ge-vocab.h5", h5(tokens=with_value(TOKENS, (1, 4), 11)),
     "/tokens[1][4] = 11", LM, "token id 11 with vocab_size = 11"),
    ("tokens-negative.h5", h5(tokens=with_value(TOKENS, (2, 0), -5)),
     "/tokens[2][0] = -5", LM, "token id -5"),
    ("tokens-1d.h5", h5(tokens=TOKENS[0]),
     "/tokens", LM, "tokens [13]: no sample axis"),
    ("tokens-one-column.h5", h5(tokens=TOKENS[:, :1]),
     "/tokens", LM, "tokens [3, 1]: no next token to predict"),
    ("tokens-float.h5", h5(tokens=TOKENS.astype(np.float32)),
     "/tokens", LM, "float32 tokens"),
    ("tokens-too-long.h5", h5(tokens=np.zeros((2, 18), np.int32)),
     "max_seq_len = 16", LM, "sequences of 17 tokens, max_seq_len = 16"),
    ("tokens-huge-n.h5", h5(tokens=((2 ** 31, 2), np.int32, True)),
     "chunks were ever written", LM,
     "2^31 rows declared, one stored (the int sample count wrapped: crash)"),
    ("images-for-lm.h5", h5(images=IMAGES, labels=LABELS),
     "holds images", LM, "image data given to a language model"),
    # damaged HDF5 files
    ("empty.h5", raw_bytes(lambda: b""), "empty.h5", CLASSIFY, "0 bytes"),
    ("truncated.h5", raw_bytes(lambda: valid_h5_bytes()[:2048]),
     "truncated.h5", CLASSIFY, "first 2048 bytes of tiny-images.h5"),
    ("bit-flipped-signature.h5", raw_bytes(lambda: flip_bit(valid_h5_bytes(), 3)),
     "bit-flipped-signature.h5", CLASSIFY, "one bit flipped in the HDF5 signature"),
    ("not-hdf5.h5", raw_bytes(lambda: b"label,pixels\n1,0 0 0\n"),
     "not-hdf5.h5", CLASSIFY, "a CSV file named .h5"),
    # IDX (file name *images-idx3-ubyte*, labels file beside it)
    ("magic-images-idx3-ubyte.gz", idx_pair(images=idx_bytes(IMAGES[..., 0], 0x09)),
     "magic", CLASSIFY, "type byte 0x09 (int8) instead of 0x08"),
    ("ndims-images-idx3-ubyte.gz", idx_pair(images=idx_bytes(IMAGES[..., 0].reshape(4, 64))),
     "magic", CLASSIFY, "an idx2 file named idx3"),
    ("lmagic-images-idx3-ubyte.gz", idx_pair(labels=IMG_BYTES),
     "lmagic-labels-idx1-ubyte.gz", CLASSIFY, "labels file holding images"),
    ("trunc-images-idx3-ubyte.gz", idx_pair(images=IMG_BYTES[:100]),
     "truncated", CLASSIFY, "images stop after 100 of 272 bytes"),
    ("header-images-idx3-ubyte.gz", idx_pair(images=IMG_BYTES[:6]),
     "truncated", CLASSIFY, "header stops after 6 bytes"),
    ("ltrunc-images-idx3-ubyte.gz", idx_pair(labels=idx_bytes(LABELS)[:10]),
     "ltrunc-labels-idx1-ubyte.gz", CLASSIFY, "labels stop after 2 of 4"),
    ("gzcut-images-idx3-ubyte.gz", gz_damaged(lambda b: b[: len(b) // 2]),
     "gzcut-images-idx3-ubyte.gz", CLASSIFY, "gzip stream cut in half"),
    ("gzflip-images-idx3-ubyte.gz", gz_damaged(lambda b: flip_bit(b, len(b) - 6)),
     "gzflip-images-idx3-ubyte.gz", CLASSIFY, "one bit flipped in the gzip CRC"),
    ("gzempty-images-idx3-ubyte.gz", idx_pair(images=b"", labels=None),
     "gzempty-images-idx3-ubyte.gz", CLASSIFY, "empty gzip stream"),
    ("nolabels-images-idx3-ubyte.gz", idx_pair(labels=False),
     "nolabels-labels-idx1-ubyte.gz", CLASSIFY, "no labels file beside the images"),
    ("count-images-idx3-ubyte.gz", idx_pair(labels=idx_bytes(LABELS[:3])),
     "3 labels", CLASSIFY, "4 images, 3 labels"),
    ("label-range-images-idx3-ubyte.gz", idx_pair(labels=idx_bytes(with_value(LABELS, 3, 200))),
     "= 200", CLASSIFY, "label 200 with n_classes = 3"),
    ("size-images-idx3-ubyte.gz", idx_pair(images=np.zeros((4, 9, 9), np.uint8)),
     "9x9x1", CLASSIFY, "9x9 images for an 8x8 model"),
    ("huge-n-images-idx3-ubyte.gz", idx_pair(images=idx_header([0xFFFFFFFF, 8, 8])),
     "implausible", CLASSIFY, "2^32-1 images declared"),
    ("huge-dims-images-idx3-ubyte.gz", idx_pair(images=idx_header([100000000, 8192, 8192])),
     "too large", CLASSIFY,
     "1e8 images of 8192 x 8192 declared (6.7e15 bytes: allocation bait)"),
    ("zero-images-idx3-ubyte.gz", idx_pair(images=idx_header([0, 8, 8]), labels=idx_header([0])),
     "implausible", CLASSIFY, "0 images"),
    ("raw-magic-images-idx3-ubyte", None,  # written below: raw (not gzip) IDX
     "magic", CLASSIFY, "uncompressed IDX with a wrong magic"),
    ("data-idx3-ubyte.gz", raw_bytes(lambda: gz(IMG_BYTES)),
     "images-idx3-ubyte", CLASSIFY, "IDX file not named *images-idx3-ubyte*"),
    # eval options that do not fit the data
    ("text-corruption-on-images.h5", h5(images=IMAGES, labels=LABELS),
     "char_swap", CLASSIFY + " --corruption char_swap:2",
     "a text corruption on image data (the file itself is valid)"),
    ("image-corruption-on-tokens.h5", h5(tokens=TOKENS),
     "shot_noise", LM + " --corruption shot_noise:1",
     "an image corruption on token data (the file itself is valid)"),
]


def write_raw_idx(path):
    with open(path, "wb") as f:
        f.write(idx_bytes(IMAGES[..., 0], 0x0D))
    with open(path.replace("images-idx3-ubyte", "labels-idx1-ubyte"), "wb") as f:
        f.write(idx_bytes(LABELS))


# ---- configs ------------------------------------------------------------------
BASE = """\
# generated by tools/make_bad_inputs.py: a valid grid with one defect
[run]
seed = 1
bootstrap = 0
limit = 4

[data]
path = tests/fixtures/tiny-images.h5

[model tiny]
path = tests/fixtures/tiny-classify.h5

[router softmax]
top_k = 1,2

[corruptions]
names = shot_noise
severities = 1-2
"""


def sub(old, new):
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# [run] keys given twice: (key, a line with a valid value, the line of the first one)
RUN_TWICE = [("seed", "seed = 2", 3), ("bootstrap", "bootstrap = 10", 4),
             ("limit", "limit = 3", 5), ("level", "level = 0.9", 6), ("batch", "batch = 4", 6),
             ("formats", "formats = h5", 6), ("out", "out = elsewhere", 6),
             ("reference", "reference = softmax", 6)]


def run_twice(line, first):
    """`line` after `limit = 4`, once if BASE has the key already, else twice."""
    extra = line + "\n" if first < 6 else line + "\n" + line + "\n"
    return BASE.replace("limit = 4\n", "limit = 4\n" + extra, 1)


def after(anchor, text):
    return sub(anchor, anchor + text)


def compress_cfg(spec, extra="", calib="tests/fixtures/tiny-images.h5", calib_extra=""):
    """BASE whose model is compressed (compress = spec) with calibration data."""
    text = after("path = tests/fixtures/tiny-classify.h5\n", f"{extra}compress = {spec}\n")
    anchor = "path = tests/fixtures/tiny-images.h5\n"
    return text.replace(anchor, anchor + f"calib = {calib}\n{calib_extra}", 1)


# (file, config text, line marker or None, must_mention, defect). The marker is a
# substring of the line the message must name (FILE:LINE); None: no line applies.
CONFIGS = [
    # a key given twice: the second would silently override the first (issue #23)
    *[(f"twice-{key}.ini", run_twice(line, first),
       line if first < 6 else line + "\n\n[data]",  # the second occurrence's line
       f"{key} given twice in [run] (first at line {first})",
       f"[run] {key} given twice") for key, line, first in RUN_TWICE],
    ("twice-data-path.ini", after("path = tests/fixtures/tiny-images.h5\n",
                                  "path = tests/fixtures/tiny-tokens.h5\n"),
     "path = tests/fixtures/tiny-tokens", "path given twice in [data] (first at line 8)",
     "[data] path twice"),
    ("twice-model-path.ini", after("path = tests/fixtures/tiny-classify.h5\n",
                                   "path = tests/fixtures/tiny-classify-perturbed.h5\n"),
     "tiny-classify-perturbed", "path given twice in [model tiny]", "[model tiny] path twice"),
    ("twice-router-type.ini", after("[router softmax]\n", "type = softmax\ntype = similarity\n"),
     "type = similarity", "type given twice in [router softmax]", "[router] type twice"),
    ("twice-top-k.ini", after("top_k = 1,2\n", "top_k = 3\n"), "top_k = 3",
     "top_k given twice", "[router] top_k twice"),
    ("twice-router-option.ini", after("[router softmax]\n", "type = similarity\ntau = 1\ntau = 2\n"),
     "tau = 2", "tau given twice", "router option tau twice"),
    ("twice-corruptions.ini", after("[router softmax]\n", "corruptions = yes\ncorruptions = no\n"),
     "corruptions = no", "corruptions given twice", "[router] corruptions twice"),
    ("twice-severities.ini", after("severities = 1-2\n", "severities = 3\n"), "severities = 3",
     "severities given twice", "[corruptions] severities twice"),
    # a grid that would run and then fail to assemble, or silently drop cells
    ("top-k-repeated.ini", sub("top_k = 1,2", "top_k = 2,2"), "top_k", "2 is listed twice",
     "top_k = 2,2: two groups of one id"),
    ("top-k-overlap.ini", sub("top_k = 1,2", "top_k = 1-3,2"), "top_k", "2 is listed twice",
     "top_k = 1-3,2"),
    ("top-k-empty.ini", sub("top_k = 1,2", "top_k ="), "top_k", "top_k is empty", "top_k ="),
    ("top-k-commas.ini", sub("top_k = 1,2", "top_k = ,"), "top_k", "no expert count given",
     "top_k = ,"),
    ("severities-empty.ini", sub("severities = 1-2", "severities ="), "severities",
     "severities is empty", "severities = (names set: every corrupted cell would vanish)"),
    ("severities-commas.ini", sub("severities = 1-2", "severities = , ,"), "severities",
     "no severity given", "severities = , ,"),
    ("names-commas.ini", sub("names = shot_noise", "names = , ,"), "names",
     "no corruption given", "names = , , (every corrupted cell would vanish)"),
    ("formats-empty.ini", after("limit = 4\n", "formats =\n"), "formats", "formats is empty",
     "formats ="),
    ("data-path-empty.ini", sub("path = tests/fixtures/tiny-images.h5", "path ="), "path =",
     "path is empty", "[data] path ="),
    ("unknown-section.ini", after("limit = 4\n", "\n[runs]\nthreads = 2\n"), "[runs]",
     "[runs]", "section [runs]"),
    ("unknown-key.ini", sub("seed = 1", "seeed = 1"), "seeed", "seeed", "key seeed in [run]"),
    ("unknown-key-data.ini", after("[data]\n", "file = x.h5\n"), "file =", "file",
     "key file in [data]"),
    ("unknown-key-model.ini", after("[model tiny]\n", "weights = x.h5\n"), "weights",
     "weights", "key weights in [model tiny]"),
    ("unknown-key-corruptions.ini", after("severities = 1-2\n", "seed = 3\n"), "seed = 3",
     "seed", "key seed in [corruptions]"),
    ("bad-number.ini", sub("bootstrap = 0", "bootstrap = many"), "bootstrap",
     "bootstrap = many", "bootstrap = many"),
    ("bad-number-suffix.ini", sub("seed = 1", "seed = 12abc"), "seed", "seed = 12abc",
     "seed = 12abc"),
    ("bad-number-overflow.ini", sub("seed = 1", "seed = 99999999999999999999999"), "seed",
     "seed = 99999999999999999999999", "seed beyond long"),
    ("seed-negative.ini", sub("seed = 1", "seed = -1"), "seed", "seed = -1", "seed = -1"),
    ("bootstrap-float.ini", sub("bootstrap = 0", "bootstrap = 1e3"), "bootstrap",
     "bootstrap = 1e3", "bootstrap = 1e3"),
    ("batch-zero.ini", after("limit = 4\n", "batch = 0\n"), "batch", "batch = 0", "batch = 0"),
    ("limit-negative.ini", sub("limit = 4", "limit = -4"), "limit", "limit = -4", "limit = -4"),
    ("level-out-of-range.ini", after("limit = 4\n", "level = 1.5\n"), "level", "level = 1.5",
     "level = 1.5"),
    ("level-nan.ini", after("limit = 4\n", "level = nan\n"), "level", "level = nan",
     "level = nan"),
    ("level-empty.ini", after("limit = 4\n", "level =\n"), "level", "level", "level ="),
    ("formats-unknown.ini", after("limit = 4\n", "formats = h5 xml\n"), "formats", "xml",
     "formats = h5 xml"),
    ("reference-unknown.ini", after("limit = 4\n", "reference = sim\n"), None,
     "reference = sim", "reference names no router"),
    ("k-gt-experts.ini", sub("top_k = 1,2", "top_k = 1,9"), "top_k", "top_k = 9",
     "k = 9 > 4 experts"),
    ("k-zero.ini", sub("top_k = 1,2", "top_k = 0"), "top_k", "'0'", "k = 0"),
    ("k-range-reversed.ini", sub("top_k = 1,2", "top_k = 4-2"), "top_k", "'4-2'",
     "k range 4-2"),
    ("k-too-many.ini", sub("top_k = 1,2", "top_k = 1-40"), "top_k", "more than 16",
     "k = 1..40: more values than a router holds"),
    ("k-not-a-number.ini", sub("top_k = 1,2", "top_k = two"), "top_k", "'two'", "k = two"),
    ("severity-6.ini", sub("severities = 1-2", "severities = 6"), "severities", "'6'",
     "severity 6"),
    ("severity-0.ini", sub("severities = 1-2", "severities = 0-3"), "severities", "'0-3'",
     "severity range 0-3"),
    ("severity-reversed.ini", sub("severities = 1-2", "severities = 4-2"), "severities",
     "'4-2'", "severity range 4-2"),
    ("severity-word.ini", sub("severities = 1-2", "severities = high"), "severities",
     "'high'", "severities = high"),
    ("unknown-corruption.ini", sub("names = shot_noise", "names = shot_noize"), "names",
     "shot_noize", "corruption shot_noize"),
    ("text-corruption-on-images.ini", sub("names = shot_noise", "names = char_swap"), "names",
     "char_swap", "text corruption on image data"),
    ("text-group-on-images.ini", sub("names = shot_noise", "names = text"), "names",
     "names = text", "the text group on image data"),
    ("missing-data.ini", sub("tests/fixtures/tiny-images.h5", "tests/bad/configs/no-such-data.h5"),
     "path = tests/bad/configs/no-such", "no-such-data.h5", "data file absent"),
    ("missing-model.ini", sub("tests/fixtures/tiny-classify.h5",
                              "tests/bad/configs/no-such-model.h5"),
     "[model tiny]", "no-such-model.h5", "model file absent"),
    ("missing-checkpoint.ini",
     after("path = tests/fixtures/tiny-classify.h5\n",
           "checkpoint = tests/fixtures/tiny-classify.h5\n"
           "checkpoint = tests/bad/configs/no-such-ckpt.h5\n"),
     "[model tiny]", "no-such-ckpt.h5", "checkpoint file absent"),
    ("incompatible-checkpoint.ini",
     after("path = tests/fixtures/tiny-classify.h5\n",
           "checkpoint = tests/fixtures/tiny-classify.h5\n"
           "checkpoint = tests/fixtures/tiny-classify-rgb.h5\n"),
     "[model tiny]", "cannot be compared", "checkpoint of another architecture"),
    ("malformed-model.ini", sub("tests/fixtures/tiny-classify.h5", "tests/bad/nan-weight.h5"),
     "[model tiny]", "/layers/0/attn_out_w", "model with a NaN weight"),
    ("data-model-mismatch.ini", sub("tests/fixtures/tiny-images.h5", "tests/fixtures/tiny-tokens.h5")
     .replace("names = shot_noise\n", ""), "[model tiny]", "token sequences",
     "token data with an image classifier"),
    ("malformed-data.ini", sub("tests/fixtures/tiny-images.h5",
                               "tests/bad/data/labels-out-of-range.h5"),
     "[model tiny]", "/labels[2] = 3",
     "data with a label out of range for the model (found when data meets model)"),
    ("unknown-router-type.ini", after("[router softmax]\n", "type = softmaxx\n"), "type",
     "softmaxx", "router type softmaxx"),
    ("unknown-router-name.ini", sub("[router softmax]", "[router fancy]"), "[router fancy]",
     "fancy", "router section named after no type, and no type ="),
    ("router-option-unknown.ini", after("[router softmax]\n", "tau = 2\n"), "[router softmax]",
     "tau", "option tau on the softmax router, which has none"),
    ("router-option-bad-value.ini",
     after("[router softmax]\n", "type = similarity\ntau = warm\n"), "[router softmax]",
     "tau=warm", "similarity tau = warm"),
    ("router-option-name.ini", after("[router softmax]\n", "type = similarity\nt$au = 2\n"),
     "t$au = 2", "not an option name", "router option name t$au (not an identifier)"),
    ("router-corruptions-maybe.ini", after("[router softmax]\n", "corruptions = maybe\n"),
     "corruptions = maybe", "corruptions = maybe", "corruptions = maybe"),
    ("duplicate-model.ini", after("path = tests/fixtures/tiny-classify.h5\n",
                                  "\n[model tiny]\npath = tests/fixtures/tiny-classify.h5\n"),
     "[model tiny]\npath = tests/fixtures/tiny-classify.h5\n\n[router", "[model tiny]",
     "[model tiny] twice"),
    ("duplicate-router.ini", after("top_k = 1,2\n", "\n[router softmax]\n"),
     "[router softmax]\n\n[corruptions]", "[router softmax]", "[router softmax] twice"),
    ("duplicate-run.ini", after("path = tests/fixtures/tiny-images.h5\n",
                                "\n[run]\nseed = 2\n"),
     "[run]\nseed = 2", "[run] appears twice", "[run] twice (the second would silently override)"),
    ("duplicate-data.ini", after("severities = 1-2\n",
                                 "\n[data]\npath = tests/fixtures/tiny-tokens.h5\n"),
     "[data]\npath = tests/fixtures/tiny-tokens", "[data] appears twice", "[data] twice"),
    ("bad-model-name.ini", sub("[model tiny]", "[model a/b]"), "[model a/b]", "[model a/b]",
     "model name with a slash"),
    ("model-without-path.ini", sub("path = tests/fixtures/tiny-classify.h5\n", ""),
     "[model tiny]", "has no path", "[model tiny] without path"),
    ("no-model.ini", sub("[model tiny]\npath = tests/fixtures/tiny-classify.h5\n", ""), None,
     "[model NAME]", "no model section"),
    ("no-router.ini", sub("[router softmax]\ntop_k = 1,2\n", ""), None, "[router NAME]",
     "no router section"),
    ("no-data.ini", sub("[data]\npath = tests/fixtures/tiny-images.h5\n", ""), None,
     "[data] path", "no data section"),
    ("empty.ini", "", None, "[data] path", "an empty file"),
    ("line-too-long.ini", after("[run]\n", "out = " + "x" * 400 + "\n"), "out = xxx",
     "longer than", "a 406-character key line (comments may be of any length)"),
    ("non-ini-line.ini", after("limit = 4\n", "this line has no equals sign\n"),
     "this line", "not an INI line", "a line that is neither [section] nor key = value"),
    ("unclosed-section.ini", sub("[corruptions]", "[corruptions"), "[corruptions",
     "not an INI line", "section header without ]"),
    ("key-before-section.ini", "seed = 1\n" + BASE, "seed = 1\n#", "seed = 1 comes before",
     "a key before any section"),
    ("binary.ini", "\x00\x01\x02[run]\x7f\n", None, "binary.ini", "binary garbage"),
    # inih would end the line at the NUL (the rest dropped or read as a line of its own);
    # other control characters could not be written back to DIR/config.ini (fuzz_runcfg)
    ("nul-in-path.ini", sub("path = tests/fixtures/tiny-classify.h5\n",
                            "path = tests/fixtures/tiny-classify.h5\x00.bak\n"),
     "path = tests/fixtures/tiny-classify.h5\x00", "control character 0x00",
     "a NUL byte inside a path"),
    ("control-character.ini", sub("[router softmax]\n", "[router softmax]\x1b\n"),
     "[router softmax]\x1b", "control character 0x1b", "an ESC byte after a section name"),
    ("not-a-config.ini", None, None, "not-a-config.ini", "no such config file"),
    # [model] compress = METHOD:K (docs/compression.md)
    ("compress-unknown-method.ini", compress_cfg("prune-random:2"), "compress =",
     "unknown method 'prune-random'", "an unknown compression method"),
    ("compress-no-k.ini", compress_cfg("merge-msmoe"), "compress =", "expected METHOD:K",
     "compress without :K"),
    ("compress-bad-k.ini", compress_cfg("merge-msmoe:two"), "compress =", "K = 'two'",
     "a K that is not a number"),
    ("compress-k-above-experts.ini", compress_cfg("prune-freq:9"), "compress =",
     "more than the model's 4 experts", "K = 9 for a model of 4 experts"),
    ("compress-k-below-top-k.ini", compress_cfg("merge-uncurl:1"), "compress =",
     "fewer than the model's top_k = 2", "K = 1 below top_k = 2"),
    ("compress-without-calib.ini", after("path = tests/fixtures/tiny-classify.h5\n",
                                         "compress = merge-msmoe:2\n"), "compress =",
     "set [data] calib", "compress without calibration data"),
    ("compress-with-checkpoint.ini", compress_cfg("mc-smoe:2", "checkpoint = tests/fixtures/tiny-classify.h5\n"),
     "compress =", "cannot be combined with checkpoint", "compress and checkpoint together"),
    ("compress-calib-wrong-size.ini", compress_cfg("prune-reap:2", calib="tests/bad/data/images-wrong-size.h5"),
     "calib =", "10x10x1", "calibration images of the wrong size"),
    ("compress-calib-limit-zero.ini", compress_cfg("prune-freq:2", calib_extra="calib_limit = 0\n"),
     "calib_limit", "calib_limit = 0", "calib_limit = 0"),
    ("compress-top-k-above-k.ini", compress_cfg("prune-freq:2").replace("top_k = 1,2", "top_k = 1-3"),
     "top_k =", "top_k = 3 exceeds n_experts = 2", "a router k above the compressed model's experts"),
    # [attack] objective and route_layer (docs/attacks.md)
    ("attack-objective-unknown.ini", BASE + "\n[attack]\nmethods = pgd\nobjective = flips\n",
     "objective =", "unknown objective 'flips'", "an unknown attack objective"),
    ("attack-objective-twice.ini", BASE + "\n[attack]\nmethods = fgsm\nobjective = routing loss routing\n",
     "objective =", "routing is listed twice", "an objective listed twice (duplicate cells)"),
    ("attack-route-layer-negative.ini", BASE + "\n[attack]\nmethods = fgsm\nobjective = routing\nroute_layer = -1\n",
     "route_layer =", "route_layer = -1: not a block index", "a negative route_layer"),
    ("attack-route-layer-without-routing.ini", BASE + "\n[attack]\nmethods = fgsm\nroute_layer = 1\n",
     "route_layer =", "only the routing objective attacks a layer",
     "route_layer with the loss objective only (it would be ignored)"),
    ("attack-route-layer-not-moe.ini", BASE + "\n[attack]\nmethods = fgsm\nobjective = routing\nroute_layer = 0\n",
     "route_layer =", "route layer 0 is not an MoE block", "route_layer naming a dense block"),
]


# `run CONFIG --set SECTION.KEY=VALUE` overrides of tests/configs/tiny-grid.ini: refused
# as the same line in the file would be (docs/config.md), the message naming the config
# and the override. (override, must_mention, defect)
SETS = [
    ("run.limit=abc", "--set run.limit=abc: limit = abc: not an integer", "limit not a number"),
    ("run.limit=-1", "limit = -1", "negative limit"),
    ("run.limt=5", "unknown key 'limt' in [run]", "misspelt key"),
    ("foo.bar=1", "unknown section 'foo'", "unknown section"),
    ("limit=5", "expected SECTION.KEY=VALUE", "no section"),
    ("run.limit", "expected SECTION.KEY=VALUE", "no value"),
    ("model.a/b.path=x.h5", "'a/b' is not a section name", "model name with a slash"),
    ("model.tiny.path=tests/fixtures/nope.h5", "tests/fixtures/nope.h5", "model file missing"),
    ("model.extra.checkpoint=tests/fixtures/tiny-classify.h5", "[model extra] has no path",
     "a new model section without a path"),
    ("router.sim.tau=warm", "tau=warm", "router option with a bad value"),
    ("router.softmax.tau=2", "tau", "option tau on the softmax router, which has none"),
    ("router.sim.;tau=2", "';tau' is not a key name",
     "a key DIR/config.ini would write as a comment"),
    ("router.softmax.top_k=9", "top_k = 9 exceeds n_experts", "k above the expert count"),
    ("router.new.type=nosuch", "type = nosuch: unknown router", "unknown router type"),
    ("corruptions.names=bogus", "unknown corruption 'bogus'", "unknown corruption"),
    ("corruptions.severities=0", "'0' is not a severity 1..5", "severity 0"),
    ("run.reference=nosuch", "reference = nosuch names no [router] section",
     "reference router that does not exist"),
    ("run.limit=5 --set run.limit=6", "--set run.limit=6: limit given twice in [run] (first by "
     "--set run.limit=5)", "one key set twice (the second would silently override)"),
    ("run.limit=", "limit is empty", "an empty value"),
    ("attack.objective=flips", "unknown objective 'flips'", "an unknown attack objective"),
]


def config_line(text, marker):
    if marker is None:
        return "-"
    pos = text.index(marker)
    return str(text.count("\n", 0, pos) + 1)


# ---- moe-robust compress -------------------------------------------------------
def no_moe_model(path):
    """tiny-classify.h5 with its MoE block made a dense FFN block: a valid model
    with nothing to compress."""
    src = os.path.join(ROOT, FIX, "tiny-classify.h5")
    with h5py.File(src, "r") as f, h5py.File(path, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        g.attrs["moe_layers"] = np.zeros(0, np.int64)
        d, F = int(f.attrs["d_model"]), int(f.attrs["d_ff"])
        rng = np.random.default_rng(3)

        def copy(name, obj):
            if isinstance(obj, h5py.Dataset) and "/moe/" not in "/" + name:
                g.create_dataset(name, data=obj[()])
        f.visititems(copy)
        for L in f.attrs["moe_layers"]:
            for name, shape in (("w1", (F, d)), ("b1", (F,)), ("w2", (d, F)), ("b2", (d,))):
                g.create_dataset(f"layers/{L}/ffn/{name}",
                                 data=(rng.standard_normal(shape) * 0.1).astype(np.float32))


COMPRESS_ARGS = "--method prune-freq --calib tests/fixtures/tiny-images.h5"
CLASSIFY_MODEL = f"{FIX}/tiny-classify.h5"
# (file or None to write, writer, file name, must_mention, args, defect)
COMPRESS = [
    (CLASSIFY_MODEL, None, None, "must be positive",
     f"--model {CLASSIFY_MODEL} {COMPRESS_ARGS} --experts 0", "K = 0"),
    (CLASSIFY_MODEL, None, None, "must be positive",
     f"--model {CLASSIFY_MODEL} {COMPRESS_ARGS} --experts -2", "K < 0"),
    (CLASSIFY_MODEL, None, None, "more than the model's 4 experts",
     f"--model {CLASSIFY_MODEL} {COMPRESS_ARGS} --experts 5", "K = 5 > E = 4"),
    (CLASSIFY_MODEL, None, None, "fewer than the model's top_k = 2",
     f"--model {CLASSIFY_MODEL} {COMPRESS_ARGS} --experts 1", "K = 1 < top_k = 2"),
    (CLASSIFY_MODEL, None, None, "block 0 is not an MoE block",
     f"--model {CLASSIFY_MODEL} {COMPRESS_ARGS} --experts 2 --layers 0", "--layers names a dense block"),
    ("tests/bad/data/images-wrong-size.h5", None, None, "10x10x1",
     f"--model {CLASSIFY_MODEL} --method merge-msmoe --experts 2 --calib tests/bad/data/images-wrong-size.h5",
     "calibration images of the wrong size"),
    ("tests/bad/data/images-wrong-channels.h5", None, None, "8x8x3",
     f"--model {CLASSIFY_MODEL} --method prune-reap --experts 2 --calib tests/bad/data/images-wrong-channels.h5",
     "calibration images with 3 channels for a 1-channel model"),
    ("tests/bad/data/tokens-for-classifier.h5", None, None, "token sequences",
     f"--model {CLASSIFY_MODEL} --method merge-uncurl --experts 2 --calib tests/bad/data/tokens-for-classifier.h5",
     "token calibration data for an image classifier"),
    ("tests/bad/data/tokens-too-long.h5", None, None, "max_seq_len = 16",
     f"--model {FIX}/tiny-lm.h5 --method mc-smoe --experts 2 --calib tests/bad/data/tokens-too-long.h5",
     "calibration sequences longer than max_seq_len"),
    (f"{FIX}/hf/olmoe-f32.h5", None, None, "format 2 model",
     f"--model {FIX}/hf/olmoe-f32.h5 --method prune-freq --experts 4 --calib {FIX}/hf/tokens.h5",
     "a format 2 model (an imported olmoe): not compressible yet"),
    (None, no_moe_model, "no-moe-layers.h5", "no MoE layers",
     "--model tests/bad/compress/no-moe-layers.h5 --method prune-freq --experts 2 "
     "--calib tests/fixtures/tiny-images.h5", "a valid model without MoE layers"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "bad"))
    args = ap.parse_args()
    data_dir = os.path.join(args.out, "data")
    cfg_dir = os.path.join(args.out, "configs")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(cfg_dir, exist_ok=True)
    rel_data = os.path.relpath(data_dir, ROOT)
    rel_cfg = os.path.relpath(cfg_dir, ROOT)
    rows = []
    for name, write, mention, extra, defect in DATA:
        path = os.path.join(data_dir, name)
        (write or write_raw_idx)(path)
        rows.append(("eval", f"{rel_data}/{name}", "-", mention, extra, defect))
    for name, text, marker, mention, defect in CONFIGS:
        path = os.path.join(cfg_dir, name)
        if text is None:  # the case is the file's absence
            if os.path.exists(path):
                os.remove(path)
        else:
            with open(path, "w", encoding="latin-1", newline="") as f:
                f.write(text)
        line = "-" if text is None else config_line(text, marker)
        rows.append(("run", f"{rel_cfg}/{name}", line, mention, "--quiet", defect))
    cmp_dir = os.path.join(args.out, "compress")
    os.makedirs(cmp_dir, exist_ok=True)
    for file, write, name, mention, extra, defect in COMPRESS:
        if write:
            file = os.path.join(cmp_dir, name)
            write(file)
            file = os.path.relpath(file, ROOT)
        rows.append(("compress", file, "-", mention, extra, defect))
    for override, mention, defect in SETS:
        rows.append(("run", "tests/configs/tiny-grid.ini", "-", mention,
                     f"--quiet --set {override}", f"--set {override}: {defect}"))
    with open(os.path.join(args.out, "inputs.tsv"), "w") as f:
        f.write("command\tfile\tline\tmust_mention\targs\tdefect\n")
        for r in rows:
            assert all(r) and not any("\t" in x or "\n" in x for x in r), r
            f.write("\t".join(r) + "\n")
    print(f"{len(DATA)} data files in {data_dir}, {len(CONFIGS)} configs in {cfg_dir}, "
          f"{len(COMPRESS)} compress cases, {len(SETS)} --set overrides")


if __name__ == "__main__":
    sys.exit(main())
