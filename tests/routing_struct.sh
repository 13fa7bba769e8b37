#!/bin/sh
# Routing-structure metrics (docs/metrics.md "Routing structure") against a numpy
# recomputation (tests/routing_struct.py) from the trace of `eval --save-routing`:
# 200 Fashion-MNIST test images through the shipped 2-MoE-layer ViT (co-activation,
# class x expert usage and NMI, layer consistency; the same images again from an HDF5
# file with a /domains dataset: domain NMI) and 200 KJV test windows through the char LM
# (vocabulary specialization; domain specialization over the books of the shipped KJV
# test windows, its /domains, and over Old vs New Testament windows of
# models/kjv-char-testaments.h5); baseline/check guard them; the C numbers as `analyze`
# writes them (results.h5,
# summary.json, summary.csv) and as `eval` prints them. Also: an LM's summary.csv rows
# carry bpc (= loss / ln 2) and the loss with their intervals.
set -u
bin=$1
py=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-struct-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
fm=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
check() { # NAME MODEL DATA LIMIT [DATA-WITH-DOMAINS]
  "$bin" eval --model "$2" --data "$3" --limit "$4" --bootstrap 0 --threads 2 \
    --save-routing "$tmp/$1.h5" > "$tmp/$1.txt" 2>"$tmp/err" || { echo "FAIL eval $1: $(cat "$tmp/err")"; fail=1; return; }
  "$bin" analyze "$tmp/$1.h5" --out "$tmp/$1-an" --bootstrap 0 --quiet >/dev/null 2>"$tmp/err" ||
    { echo "FAIL analyze $1: $(cat "$tmp/err")"; fail=1; return; }
  $py tests/routing_struct.py "$tmp/$1.h5" "$tmp/$1-an" "$tmp/$1.txt" ${5:-} || fail=1
}
check fmnist models/fmnist-vit-moe-softmax.h5 "$fm" 200
# domains: the label modulo 3 (correlated with the routing through the class)
$py -c "
import sys; sys.path.insert(0, 'tools')
import h5py, numpy as np, data
im, lab = data.fashion_mnist('t10k')
with h5py.File('$tmp/dom.h5', 'w') as f:
    f['images'], f['labels'] = im[:200], lab[:200]
    f['domains'] = (lab[:200] % 3).astype(np.int32)
" || { echo "FAIL writing $tmp/dom.h5"; fail=1; }
check fmnist-dom models/fmnist-vit-moe-softmax.h5 "$tmp/dom.h5" 200 "$tmp/dom.h5"
check kjv models/kjv-char-moe-softmax.h5 models/kjv-char-test.h5 200 models/kjv-char-test.h5
# Old vs New Testament (models/kjv-char-testaments.h5: alternating, so 100 windows each)
check kjv-testaments models/kjv-char-moe-softmax.h5 models/kjv-char-testaments.h5 200 models/kjv-char-testaments.h5
# baseline/check guard the new metrics: the routing of another router recorded under the
# same labels moves them, and check names them (exit 1)
"$bin" baseline "$tmp/fmnist-an" --metrics coactivation_top10,class_nmi,layer_nmi > "$tmp/base.json" ||
  { echo "FAIL baseline"; fail=1; }
grep -q '"fmnist-vit-moe-softmax/softmax@k2/clean:layer3/layer_nmi"' "$tmp/base.json" ||
  { echo "FAIL the baseline freezes no layer_nmi"; fail=1; }
grep -q 'layer1/layer_nmi' "$tmp/base.json" && { echo "FAIL the baseline freezes layer_nmi of the first MoE layer (undefined)"; fail=1; }
"$bin" check "$tmp/fmnist-an" --baseline "$tmp/base.json" --quiet >/dev/null || { echo "FAIL check of the same run"; fail=1; }
"$bin" eval --model models/fmnist-vit-moe-softmax.h5 --data "$fm" --limit 200 --bootstrap 0 --threads 2 \
  --router similarity --trace-router softmax --save-routing "$tmp/sim.h5" >/dev/null 2>&1 &&
  "$bin" analyze "$tmp/sim.h5" --out "$tmp/sim-an" --bootstrap 0 --quiet >/dev/null 2>&1 ||
  { echo "FAIL eval/analyze with the similarity router"; fail=1; }
"$bin" check "$tmp/sim-an" --baseline "$tmp/base.json" > "$tmp/check.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q class_nmi "$tmp/check.out" && grep -q coactivation_top10 "$tmp/check.out" ||
  { echo "FAIL check did not flag the changed routing structure (exit $rc)"; cat "$tmp/check.out"; fail=1; }
# summary.csv: an LM's rows carry bpc = loss / ln 2 with its interval, a classifier's none
$py - "$tmp" <<'EOF2' || fail=1
import csv, math, sys
for run, lm in (("kjv-an", True), ("fmnist-an", False)):
    for row in csv.DictReader(open(f"{sys.argv[1]}/{run}/summary.csv")):
        for k in ("bpc", "bpc_lo", "bpc_hi", "loss", "loss_lo", "loss_hi"):
            if k not in row:
                sys.exit(f"FAIL summary.csv has no {k} column")
        if not lm:
            if row["bpc"]:
                sys.exit(f"FAIL a classifier row has a bpc: {row['bpc']}")
            continue
        for s in ("", "_lo", "_hi"):
            if abs(float(row["bpc" + s]) - float(row["loss" + s]) / math.log(2)) > 1e-12:
                sys.exit(f"FAIL bpc{s} {row['bpc' + s]} is not loss{s} / ln 2")
print("summary.csv: bpc = loss / ln 2 for the LM, with lo and hi")
EOF2
exit $fail
