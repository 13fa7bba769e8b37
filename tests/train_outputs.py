#!/usr/bin/python3
"""tools/train.py never overwrites a model it was not told to (issue: a newcomer's first
hour), in a temporary clone of the repository:

- `--out-dir models` without --force: exit 2 before any training, a one-line message
  naming the shipped model, models/ byte for byte as before;
- `--out-dir DIR` with a file of the run's names in DIR: exit 2, the file untouched;
  with --force the run replaces it by a model `moe-robust inspect` accepts;
- without --out-dir: each run writes into a new directory out/train/<prefix>-<time>[-N]/
  (two runs in the same second get two directories), and models/ is untouched.

- a run stopped with --stop-after and continued with --resume writes the models the
  uninterrupted run writes (every tensor bit for bit); --resume refuses (exit 2, naming
  it) a changed option or a directory with nothing to resume.

Training runs are smoke runs (1 epoch of 2 steps, 64 test images).
"""

import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docs_runnable import make_clone, repo_files  # noqa: E402

SMOKE = ["--epochs", "1", "--steps-per-epoch", "2", "--test-limit", "64"]
fails = 0


def expect(cond, msg, detail=""):
    global fails
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        fails += 1
        if detail:
            print("  " + detail.rstrip().replace("\n", "\n  "))
    return cond


def digest(root, d="models"):
    out = {}
    for name in sorted(os.listdir(os.path.join(root, d))):
        with open(os.path.join(root, d, name), "rb") as fp:
            out[name] = hashlib.sha256(fp.read()).hexdigest()
    return out


def tensors(path):
    """{dataset path: raw bytes} of a model file (its attributes hold times and commands)."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: out.__setitem__(k, v[()].tobytes())
                     if isinstance(v, h5py.Dataset) else None)
    return out


def train(clone, *args):
    r = subprocess.run(["/usr/bin/python3", "tools/train.py", "--task", "classify", *args],
                       cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def main():
    moe = os.path.abspath(sys.argv[1])  # the moe-robust binary
    tmp, clone = make_clone(repo_files(), os.path.dirname(moe))
    try:
        before = digest(clone)
        # 1. the shipped models
        rc, out, err = train(clone, "--out-dir", "models", "--epochs", "12", "--no-augment")
        expect(rc == 2, f"--out-dir models without --force: exit 2 (got {rc})", out + err)
        expect("models/fmnist-vit-moe-softmax-ep10.h5 exists (a shipped model) and 2 more" in err
               and "--force" in err and len(err.strip().splitlines()) == 1,
               "one line naming the shipped model and --force", err)
        expect("params" not in out, "refused before training started", out)
        expect(digest(clone) == before, "models/ unchanged")

        # 2. an existing file in --out-dir
        d = os.path.join(tmp, "mine")
        os.mkdir(d)
        with open(os.path.join(d, "fmnist-vit-moe-softmax.h5"), "w") as fp:
            fp.write("my own results\n")
        rc, out, err = train(clone, "--out-dir", d, *SMOKE)
        expect(rc == 2 and "mine/fmnist-vit-moe-softmax.h5 exists" in err,
               f"an existing file in --out-dir: exit 2 naming it (got {rc})", err)
        expect(open(os.path.join(d, "fmnist-vit-moe-softmax.h5")).read() == "my own results\n",
               "the existing file untouched")
        rc, out, err = train(clone, "--out-dir", d, "--force", *SMOKE)
        expect(rc == 0, f"--force: exit 0 (got {rc})", err)
        r = subprocess.run([moe, "inspect", os.path.join(d, "fmnist-vit-moe-softmax.h5")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        expect(r.returncode == 0, "--force replaced it by a valid model", r.stdout.decode())
        expect(not [f for f in os.listdir(d) if ".tmp-" in f], "no temporary file left")

        # 3. the default: a new directory per run. The second run finds the directory
        # names of the next minute taken (as by another run started in the same second)
        # and must take another one.
        base = os.path.join(clone, "out", "train")
        rc, out, err = train(clone, *SMOKE)
        expect(rc == 0, f"default run: exit 0 (got {rc})", err)
        first = sorted(os.listdir(base)) if os.path.isdir(base) else []
        taken = {time.strftime("fmnist-vit-moe-softmax-%Y%m%d-%H%M%S", time.localtime(time.time() + s))
                 for s in range(-1, 60)} - set(first)
        for x in taken:
            os.mkdir(os.path.join(base, x))
        rc, out, err = train(clone, *SMOKE)
        expect(rc == 0, f"second default run: exit 0 (got {rc})", err)
        dirs = sorted(x for x in os.listdir(base) if os.listdir(os.path.join(base, x)))
        expect(len(first) == 1 and len(dirs) == 2 and first[0] in dirs
               and all(x.startswith("fmnist-vit-moe-softmax-") for x in dirs)
               and [x for x in dirs if x != first[0]][0].endswith("-2"),
               f"two runs, two new directories under out/train/, the second with -2: {dirs}")
        for x in dirs:
            files = os.listdir(os.path.join(base, x))
            expect(files == ["fmnist-vit-moe-softmax.h5"], f"out/train/{x} holds the model: {files}")
        expect(digest(clone) == before, "models/ unchanged after the default runs")

        # 4. --stop-after / --resume
        run3 = ["--epochs", "3", "--steps-per-epoch", "2", "--test-limit", "64"]
        whole, parts = os.path.join(tmp, "whole"), os.path.join(tmp, "parts")
        rc, out, err = train(clone, "--out-dir", whole, *run3)
        expect(rc == 0, f"uninterrupted 3-epoch run: exit 0 (got {rc})", err)
        rc, out, err = train(clone, "--out-dir", parts, "--stop-after", "1", *run3)
        state = os.path.join(parts, "fmnist-vit-moe-softmax.resume.pt")
        expect(rc == 0 and "stopped after epoch 1 of 3" in out and os.path.exists(state),
               f"--stop-after 1: exit 0, the state kept (got {rc})", out + err)
        rc, out, err = train(clone, "--out-dir", parts, "--resume", "--lr", "1e-3", *run3)
        expect(rc == 2 and "--lr" in err and len(err.strip().splitlines()) == 1,
               f"--resume with another --lr: exit 2 naming --lr (got {rc})", err)
        rc, out, err = train(clone, "--out-dir", parts, "--resume", *run3)
        expect(rc == 0 and "resuming after epoch 1 (step 2)" in out,
               f"--resume: exit 0 from epoch 1 (got {rc})", out + err)
        expect(not os.path.exists(state), "the state removed when the run completed")
        names = sorted(os.listdir(whole))
        expect(names == sorted(os.listdir(parts)) and len(names) == 3,
               f"the same 3 checkpoints: {names} / {sorted(os.listdir(parts))}")
        for n in names:
            a, b = tensors(os.path.join(whole, n)), tensors(os.path.join(parts, n))
            diff = [k for k in sorted(set(a) | set(b)) if k not in a or k not in b
                    or a[k] != b[k]]
            expect(a and not diff, f"{n}: {len(a)} tensors bit-identical to the "
                   f"uninterrupted run's", f"differ: {diff[:5]}")
        rc, out, err = train(clone, "--out-dir", parts, "--resume", *run3)
        expect(rc == 2 and "nothing to resume" in err,
               f"--resume of a completed run: exit 2 (got {rc})", err)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
