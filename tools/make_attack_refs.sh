#!/bin/sh
# The PyTorch references of tests/test_attack_parity.c: FGSM and PGD-20 (eps 8/255,
# step 2/255, no random start) on the first 1,000 Fashion-MNIST test images, for every
# shipped Fashion-MNIST model with the router it was trained with, in float32 on
# tools/moe_model.py (tools/attack_torch.py; s2moe on the C engine's noise draws, so build
# the tests first: build/tests/dump_s2moe_noise). About 9 minutes of wall time per router
# on a loaded 2-core machine (PyTorch with one thread: with two, under load, its OpenMP workers wait for
# each other and the same reference took over 50 minutes; run several routers at once
# instead, e.g. ROUTERS="ac momentum" in one shell and others in another).
#   [ROUTERS="..."] tools/make_attack_refs.sh [OUTDIR]     (default tests/fixtures/attacks)
set -eu
cd "$(dirname "$0")/.."
out=${1:-tests/fixtures/attacks}
mkdir -p "$out"
# an existing reference of all 1,000 images is kept (delete it to redo it): the run can be
# resumed. A shorter one (tests/fixtures/attacks/ may ship the first 200 images only, what
# the suite checks, docs/attacks.md) is made again in full.
full() {
  [ -e "$1" ] && /usr/bin/python3 -c 'import sys, h5py
sys.exit(int(h5py.File(sys.argv[1], "r").attrs["n"]) != 1000)' "$1"
}
for r in ${ROUTERS:-softmax similarity attention ac cosine random momentum s2moe}; do
  m=models/fmnist-vit-moe-$r.h5
  full "$out/torch-fgsm-$r.h5" ||
    /usr/bin/python3 tools/attack_torch.py --model "$m" --method fgsm --eps 8/255 --n 1000 \
      --threads 1 --out "$out/torch-fgsm-$r.h5"
  full "$out/torch-pgd20-$r.h5" ||
    /usr/bin/python3 tools/attack_torch.py --model "$m" --method pgd --eps 8/255 --steps 20 \
      --step-size 2/255 --n 1000 --threads 1 --out "$out/torch-pgd20-$r.h5"
done
