#!/usr/bin/python3
"""Reference outputs of the deterministic image corruptions, for
tests/test_corruptions_ref.c (docs/corruptions.md).

    /usr/bin/python3 tools/make_corruption_refs.py [--out tests/fixtures/corruptions/ref-fmnist.h5]
    /usr/bin/python3 tools/make_corruption_refs.py --monotone   # severity ladder check (no file)

Layout: /<set>/clean uint8 [n, H, W, C] and /<set>/<case> uint8 [5, n, H, W, C] (severity
1..5) for the sets gray (8 Fashion-MNIST test images), rgb (4 of them tinted) and wide
(4 of them cropped to 20 x 28), and the cases of cases() below.

Each function below restates one published corruption (google-research/mnist-c
corruptions.py, testingautomated-usi/fashion-mnist-c, hendrycks/robustness
make_imagenet_c.py / make_cifar_c.py) with the libraries those references call:
skimage 0.19 (warp, AffineTransform, gaussian, canny, rgb2hsv/hsv2rgb), scipy.ndimage
(zoom, correlate) and PIL (BOX resize, JPEG). cv2 calls of the references
(defocus_blur's filter2D / GaussianBlur) are restated with scipy: correlate with
mode 'mirror' is OpenCV's BORDER_REFLECT_101. Outputs are float in [0, 255] cast to
uint8 by truncation, as the benchmarks store them (np.uint8(...) / astype(np.uint8)).

Severity tables are read from docs/corruptions.md (the documented ladders, with the
benchmark each comes from), not from corruptions/*.c; a documented change means the
file is regenerated.

Debian packages: python3-skimage, python3-scipy, python3-pil, python3-numpy, python3-h5py.
"""

import argparse
import gzip
import io
import math
import os
import re
import struct

import numpy as np
import h5py
import scipy.ndimage as ndi
from PIL import Image
from skimage import color, feature, transform
from skimage.filters import gaussian

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
N_GRAY = 8
N_RGB = 4

# ---------------------------------------------------------------- severity tables
# Read from the "severity 1 .. 5" column of docs/corruptions.md, the documented table
# whose values cite the benchmarks (mnist-c, F-MNIST-C, make_cifar_c), never from
# corruptions/*.c: a constant changed in the C code alone then fails
# tests/test_corruptions_ref.c instead of being copied into its own reference.
DOC = os.path.join(ROOT, "docs", "corruptions.md")


def doc_severities(name):
    """the five values (numbers or tuples) of corruption `name` in docs/corruptions.md"""
    with open(DOC, encoding="utf-8") as f:
        rows = [ln for ln in f if ln.startswith(f"| `{name}` |")]
    if len(rows) != 1:
        raise SystemExit(f"{DOC}: {len(rows)} table rows for `{name}`, want 1")
    col = rows[0].split(" | ")[2].replace("**", "")
    col = col[col.rindex("= ") + 2:] if "= " in col else col
    num = r"-?(?:\d+\.?\d*|\.\d+)"
    if col.lstrip().startswith("("):
        tup = re.findall(r"\(([^()]*)\)", col)[:5]
        vals = [tuple(float(v) for v in re.findall(num, t)) for t in tup]
    else:
        vals = [float(v) for v in re.findall(num, col)[:5]]
    if len(vals) != 5:
        raise SystemExit(f"{DOC}: `{name}`: cannot read 5 severities from {col!r}")
    return vals


BRIGHTNESS = doc_severities("brightness")          # mnist-c brightness
CONTRAST = doc_severities("contrast")              # mnist-c / F-MNIST-C contrast
SATURATE = doc_severities("saturate")              # ladder ending at mnist-c (20, .2)
STRIPE_28 = doc_severities("stripe")               # columns per side at width 28; mnist-c: 7
SHEAR = doc_severities("shear")
ROTATE = doc_severities("rotate")
SCALE = doc_severities("scale")                    # content size; matrix uses 1/c
TRANSLATE = doc_severities("translate")
GAUSSIAN_BLUR = doc_severities("gaussian_blur")    # make_cifar_c gaussian_blur
DEFOCUS = doc_severities("defocus_blur")           # make_cifar_c defocus_blur
ZOOM_ENDS = doc_severities("zoom_blur")            # make_cifar_c: arange(1, e, .01)
PIXELATE = doc_severities("pixelate")              # ladder around mnist-c's default .4
JPEG = [int(q) for q in doc_severities("jpeg_compression")]  # make_cifar_c


def to_u8(v):
    """float image in [0, 255] -> uint8 by truncation (np.uint8 of the benchmarks)."""
    return np.clip(v, 0, 255).astype(np.uint8)


def blend(x, t, s):
    """Severity s of a magnitude-free transform t: round((x (5 - s) + t s) / 5), exact
    integer arithmetic (round half up); s = 5 is t itself."""
    num = x.astype(np.int64) * (5 - s) + t.astype(np.int64) * s
    return ((2 * num + 5) // 10).astype(np.uint8)


# ---------------------------------------------------------------- photometric
def brightness(x, s):
    c = BRIGHTNESS[s - 1]
    f = x / 255.
    if x.shape[2] == 1:  # mnist-c: gray2rgb -> hsv, V + c -> rgb -> rgb2gray
        g = color.gray2rgb(f[..., 0])
        h = color.rgb2hsv(g)
        h[..., 2] = np.clip(h[..., 2] + c, 0, 1)
        out = color.rgb2gray(color.hsv2rgb(h))[..., None]
    else:  # make_imagenet_c brightness
        h = color.rgb2hsv(f)
        h[..., 2] = np.clip(h[..., 2] + c, 0, 1)
        out = color.hsv2rgb(h)
    return to_u8(np.clip(out, 0, 1) * 255)


def contrast(x, s):
    c = CONTRAST[s - 1]
    f = x / 255.
    m = np.mean(f, axis=(0, 1), keepdims=True)
    return to_u8(np.clip((f - m) * c + m, 0, 1) * 255)


def saturate(x, s):
    a, b = SATURATE[s - 1]
    f = x / 255.
    if x.shape[2] == 1:  # mnist-c: every HSV channel * a + b
        h = color.rgb2hsv(color.gray2rgb(f[..., 0]))
        h = np.clip(h * a + b, 0, 1)
        out = color.rgb2gray(color.hsv2rgb(h))[..., None]
    else:  # make_imagenet_c: S * a + b
        h = color.rgb2hsv(f)
        h[..., 1] = np.clip(h[..., 1] * a + b, 0, 1)
        out = color.hsv2rgb(h)
    return to_u8(np.clip(out, 0, 1) * 255)


def inverse(x, s):
    return blend(x, 255 - x, s)


def flip_lr(x, s):
    return blend(x, x[:, ::-1], s)


def flip_ud(x, s):
    return blend(x, x[::-1], s)


def rot_about_centre(x, k):
    """np.rot90(x, k) (k = 1 counter-clockwise, 3 clockwise) for square images; for
    H != W the same quarter turn about the image centre into the H x W frame, with
    d = floor((H - W) / 2) and zero where the source falls outside:
    k = 1: out[i, j] = x[j + d, W - 1 - i + d];  k = 3: out[i, j] = x[H - 1 - j - d, i - d]."""
    H, W = x.shape[:2]
    if H == W:
        return np.rot90(x, k).copy()
    d = (H - W) // 2
    out = np.zeros_like(x)
    for i in range(H):
        for j in range(W):
            r, c = (j + d, W - 1 - i + d) if k == 1 else (H - 1 - j - d, i - d)
            if 0 <= r < H and 0 <= c < W:
                out[i, j] = x[r, c]
    return out


def rot90_ccw(x, s):  # F-MNIST-C 'flip_top_bottom' = turn_left = np.rot90(x)
    return blend(x, rot_about_centre(x, 1), s)


def rot90_cw(x, s):   # F-MNIST-C 'flip_left_right' = turn_right = np.rot90(x, 3)
    return blend(x, rot_about_centre(x, 3), s)


def stripe(x, s):
    W = x.shape[1]
    w = int(math.floor(STRIPE_28[s - 1] * W / 28 + 0.5))
    out = x.copy()
    out[:, :w] = 255 - x[:, :w]
    out[:, W - w:] = 255 - x[:, W - w:]
    return out


def canny_edges(x, s):
    f = x / 255.
    g = f[..., 0] if x.shape[2] == 1 else color.rgb2gray(f)
    e = feature.canny(g).astype(np.uint8) * 255   # sigma 1, thresholds .1 / .2
    e = np.repeat(e[..., None], x.shape[2], axis=2)
    return blend(x, e, s)


# ---------------------------------------------------------------- geometry
def centred_affine(H, W, **kw):
    """skimage AffineTransform(**kw) with the translation that fixes the image centre
    (mnist-c: 13.5 * (1 - a1 - a2) for 28 x 28, generalised to ((W-1)/2, (H-1)/2))."""
    a = transform.AffineTransform(**kw)
    a1, a2 = a.params[0, :2]
    b1, b2 = a.params[1, :2]
    cx, cy = (W - 1) / 2, (H - 1) / 2
    if H == W:  # mnist-c's own expression
        t = [cx * (1 - a1 - a2), cy * (1 - b1 - b2)]
    else:
        t = [cx - a1 * cx - a2 * cy, cy - b1 * cx - b2 * cy]
    return transform.AffineTransform(**kw, translation=t)


def warp(x, aff):
    f = x / 255.
    out = transform.warp(f if x.shape[2] > 1 else f[..., 0], inverse_map=aff)
    if out.ndim == 2:
        out = out[..., None]
    return to_u8(np.clip(out, 0, 1) * 255)


def shear(x, s, sign):
    return warp(x, centred_affine(*x.shape[:2], shear=sign * SHEAR[s - 1]))


def rotate(x, s, sign):
    return warp(x, centred_affine(*x.shape[:2], rotation=sign * ROTATE[s - 1]))


def scale(x, s):
    c = 1 / SCALE[s - 1]
    return warp(x, centred_affine(*x.shape[:2], scale=(c, c)))


def translate(x, s, sx, sy):
    c = TRANSLATE[s - 1]
    return warp(x, transform.AffineTransform(translation=[sx * c, sy * c]))


# ---------------------------------------------------------------- blur, resampling
def gaussian_blur(x, s):
    f = x / 255.
    if x.shape[2] == 1:   # a true 2-D blur (see docs: mnist-c's multichannel=True on 2-D)
        out = gaussian(f[..., 0], sigma=GAUSSIAN_BLUR[s - 1])[..., None]
    else:
        out = gaussian(f, sigma=GAUSSIAN_BLUR[s - 1], channel_axis=-1)
    return to_u8(np.clip(out, 0, 1) * 255)


def disk_kernel(radius, alias_blur):
    """make_imagenet_c disk(): aliased disk, normalised, then cv2.GaussianBlur
    (ksize 3 or 5, sigmaX = alias_blur, BORDER_REFLECT_101), in float32."""
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        k = 3
    else:
        L = np.arange(-radius, radius + 1)
        k = 5
    X, Y = np.meshgrid(L, L)
    d = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=np.float32)
    d /= np.sum(d)
    # cv2.getGaussianKernel(k, sigma): exp(-(i - (k-1)/2)^2 / (2 sigma^2)), normalised
    i = np.arange(k) - (k - 1) / 2
    g = np.exp(-i ** 2 / (2 * alias_blur ** 2))
    g = (g / g.sum()).astype(np.float32)
    d = ndi.correlate1d(d, g, axis=1, mode="mirror")
    d = ndi.correlate1d(d, g, axis=0, mode="mirror")
    return d.astype(np.float32)


def defocus_blur(x, s):
    r, a = DEFOCUS[s - 1]
    k = disk_kernel(r, a).astype(np.float64)
    f = x / 255.
    out = np.stack([ndi.correlate(f[..., c], k, mode="mirror") for c in range(x.shape[2])], -1)
    return to_u8(np.clip(out, 0, 1) * 255)


def clipped_zoom(img, z):
    """make_imagenet_c clipped_zoom, per axis for non-square images."""
    H, W = img.shape[:2]
    ch, cw = int(np.ceil(H / z)), int(np.ceil(W / z))
    top, left = (H - ch) // 2, (W - cw) // 2
    out = ndi.zoom(img[top:top + ch, left:left + cw], (z, z, 1), order=1)
    tt, tl = (out.shape[0] - H) // 2, (out.shape[1] - W) // 2
    return out[tt:tt + H, tl:tl + W]


def zoom_blur(x, s):
    f = (x / 255.).astype(np.float32)
    acc = np.zeros_like(f)
    zs = np.arange(1, ZOOM_ENDS[s - 1], 0.01)
    for z in zs:
        acc += clipped_zoom(f, z)
    out = (f + acc) / (len(zs) + 1)
    return to_u8(np.clip(out, 0, 1) * 255)


def pil_image(x):
    return Image.fromarray(x[..., 0] if x.shape[2] == 1 else x)


def from_pil(im, C):
    a = np.array(im)
    return a[..., None] if C == 1 else a


def pixelate(x, s):
    H, W, C = x.shape
    c = PIXELATE[s - 1]
    im = pil_image(x).resize((int(W * c), int(H * c)), Image.BOX)
    return from_pil(im.resize((W, H), Image.BOX), C)


def jpeg_compression(x, s):
    buf = io.BytesIO()
    pil_image(x).save(buf, "JPEG", quality=JPEG[s - 1])
    return from_pil(Image.open(buf), x.shape[2])


# ---------------------------------------------------------------- cases
def cases(H, W, C):
    """(case name, function) for every reference dataset; geometry with random signs
    is recorded with each fixed sign the C test forces."""
    out = []
    for name, fn in [("brightness", brightness), ("contrast", contrast),
                     ("saturate", saturate), ("inverse", inverse), ("flip_lr", flip_lr),
                     ("flip_ud", flip_ud), ("rot90_cw", rot90_cw), ("rot90_ccw", rot90_ccw),
                     ("stripe", stripe), ("canny_edges", canny_edges), ("scale", scale),
                     ("gaussian_blur", gaussian_blur), ("defocus_blur", defocus_blur),
                     ("zoom_blur", zoom_blur), ("pixelate", pixelate),
                     ("jpeg_compression", jpeg_compression)]:
        out.append((name, fn))
    out.append(("shear+", lambda x, s: shear(x, s, +1)))
    out.append(("shear-", lambda x, s: shear(x, s, -1)))
    out.append(("rotate+", lambda x, s: rotate(x, s, +1)))
    out.append(("rotate-", lambda x, s: rotate(x, s, -1)))
    out.append(("translate++", lambda x, s: translate(x, s, +1, +1)))
    out.append(("translate+-", lambda x, s: translate(x, s, +1, -1)))
    out.append(("translate-+", lambda x, s: translate(x, s, -1, +1)))
    out.append(("translate--", lambda x, s: translate(x, s, -1, -1)))
    return out


def read_idx_images(path, n):
    with gzip.open(path, "rb") as f:
        raw = f.read(16 + n * 784)
    _, _, rows, cols = struct.unpack(">IIII", raw[:16])
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols, 1)


def image_sets():
    """gray: the first 8 Fashion-MNIST test images; rgb: the first 4 tinted with a
    colour that varies across the image (so hue and saturation vary); wide: 4 gray
    images cropped to 20 x 28 (H != W catches swapped axes)."""
    g = read_idx_images(FMNIST, N_GRAY)
    f = g[:N_RGB, :, :, 0].astype(np.float64)
    H, W = f.shape[1:]
    jj = np.arange(W)[None, None, :] / (W - 1)
    ii = np.arange(H)[None, :, None] / (H - 1)
    r = f
    gch = f * (0.35 + 0.65 * jj) + 30 * (1 - f / 255) * ii
    b = f * (1 - 0.7 * ii) + 60 * (1 - f / 255) * (1 - jj)
    rgb = np.clip(np.stack([r, gch, b], -1), 0, 255).astype(np.uint8)
    wide = g[:4, 4:24].copy()
    return {"gray": g, "rgb": rgb, "wide": wide}


def write(path):
    sets = image_sets()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        f.attrs["generator"] = "tools/make_corruption_refs.py"
        f.attrs["source"] = FMNIST
        for set_name, imgs in sets.items():
            g = f.create_group(set_name)
            g.create_dataset("clean", data=imgs, compression="gzip", compression_opts=9)
            for case, fn in cases(*imgs.shape[1:]):
                # [severity - 1, sample, H, W, C]
                out = np.stack([np.stack([fn(x, s) for x in imgs]) for s in range(1, 6)])
                assert out.shape == (5,) + imgs.shape and out.dtype == np.uint8, case
                g.create_dataset(case, data=out, compression="gzip", compression_opts=9)
    os.replace(tmp, path)
    print(f"wrote {path}")


def monotone():
    """Mean absolute change per severity of every deterministic case (must increase)."""
    for set_name, imgs in image_sets().items():
        for case, fn in cases(*imgs.shape[1:]):
            d = [np.mean(np.abs(np.stack([fn(x, s) for x in imgs]).astype(float) - imgs))
                 for s in range(1, 6)]
            ok = all(b > a for a, b in zip(d, d[1:]))
            print(f"{set_name:5s} {case:18s} {'ok ' if ok else 'BAD'} " +
                  " ".join(f"{v:7.2f}" for v in d))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/corruptions/ref-fmnist.h5"))
    ap.add_argument("--monotone", action="store_true")
    a = ap.parse_args()
    if a.monotone:
        monotone()
    else:
        write(a.out)
