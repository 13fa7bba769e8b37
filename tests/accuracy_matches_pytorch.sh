#!/bin/sh
# The shipped models' clean test accuracy / bits per char printed by `moe-robust eval`
# equal PyTorch's on the same files to 4 decimals. PyTorch's numbers are the metadata
# tools/train.py stored in each model (clean_accuracy, test_bpc), measured by
# tools/eval_torch.py's code path on the full test sets.
set -u
bin=$1
fail=0
meta() { "$bin" inspect "$1" | awk -v k="$2" '$1 == "meta" && $2 == k {print $4}'; }
check() { # name, C value, PyTorch value
  case "$2" in [0-9]*) ;; *) echo "FAIL $1: no value from moe-robust eval"; fail=1; return ;; esac
  case "$3" in [0-9]*) ;; *) echo "FAIL $1: no PyTorch value in the model's metadata"; fail=1; return ;; esac
  c=$(printf '%.4f' "$2"); t=$(printf '%.4f' "$3")
  if [ "$c" = "$t" ]; then echo "ok   $1: C $c = PyTorch $t"; else echo "FAIL $1: C $c != PyTorch $t"; fail=1; fi
}
fm=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
m=models/fmnist-vit-moe-softmax.h5
acc=$("$bin" eval --model $m --data $fm --batch 32 --bootstrap 0 | awk '$1 == "accuracy" {print $2}')
check "fmnist accuracy (10000 images)" "$acc" "$(meta $m clean_accuracy)"
m=models/kjv-char-moe-softmax.h5
bpc=$("$bin" eval --model $m --data models/kjv-char-test.h5 --batch 8 --bootstrap 0 | awk '$1 == "bpc" {print $2}')
check "kjv bits per char (test split)" "$bpc" "$(meta $m test_bpc)"
exit $fail
