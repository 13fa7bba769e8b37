#!/bin/sh
# The trace cross-check of docs/traces.md: traces recorded by tools/mr_trace.py from the
# PyTorch reference (tools/moe_model.py, via tools/trace_reference.py) on the samples the
# C engine evaluates (clean; 3 corruptions x 2 severities written by `moe-robust corrupt`;
# every checkpoint) give, through `moe-robust analyze`, the cells `moe-robust run` computes
# on the equivalent config (tests/compare_results.py).
#
#   tests/trace_crosscheck.sh BIN FAMILY [LIMIT] [RTOL]
#     FAMILY tiny    tests/fixtures/tiny-classify{,-perturbed}.h5 (2 checkpoints; ctest)
#            fmnist  models/fmnist-vit-moe-softmax{-ep10,-ep11,}.h5 on Fashion-MNIST t10k
#            kjv     models/kjv-char-moe-softmax{-ep6,-ep7,}.h5 on models/kjv-char-test.h5
#     LIMIT  samples (default: tiny all, else 256); RTOL default 1e-6
# Two float32 forwards (PyTorch, the C engine) agree to about 1e-6, not bit for bit: a
# token whose k-th and (k+1)-th routing probabilities are that close may pick another
# expert in the two. The script lists such near-tie tokens of the engine's own traces
# (margin < 1e-5), then compares with RTOL and prints every difference.
set -u
bin=$1 family=$2 limit=${3:-} rtol=${4:-1e-6}
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/mr-xcheck-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
case "$family" in
  tiny) data=tests/fixtures/tiny-images.h5
        ckpts="tests/fixtures/tiny-classify.h5:base:1 tests/fixtures/tiny-classify-perturbed.h5:perturbed:2"
        corr="shot_noise rotate contrast"; vocab="" ;;
  fmnist) data=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
        ckpts="models/fmnist-vit-moe-softmax-ep10.h5:ep10:10 models/fmnist-vit-moe-softmax-ep11.h5:ep11:11 models/fmnist-vit-moe-softmax.h5:ep12:12"
        corr="shot_noise rotate contrast"; vocab=""; limit=${limit:-256} ;;
  kjv) data=models/kjv-char-test.h5
        ckpts="models/kjv-char-moe-softmax-ep6.h5:ep6:6 models/kjv-char-moe-softmax-ep7.h5:ep7:7 models/kjv-char-moe-softmax.h5:ep8:8"
        corr="char_substitute keyboard_typo token_replace"; vocab="--model models/kjv-char-moe-softmax.h5"
        limit=${limit:-256} ;;
  *) echo "usage: $0 BIN tiny|fmnist|kjv [LIMIT] [RTOL]" >&2; exit 2 ;;
esac
lim=""
[ -n "$limit" ] && lim="--limit $limit"
last=""
{
  echo "[run]"; echo "seed = 3"; echo "bootstrap = 200"; echo "batch = 16"
  [ -n "$limit" ] && echo "limit = $limit"
  echo "reference = softmax"; echo; echo "[data]"; echo "path = $data"; echo
  echo "[model $family]"
  for c in $ckpts; do last=${c%%:*}; done
  echo "path = $last"
  for c in $ckpts; do echo "checkpoint = ${c%%:*}"; done
  echo; echo "[router softmax]"; echo; echo "[corruptions]"
  echo "names = $(echo "$corr" | tr ' ' ',')"; echo "severities = 1,3"
} > "$tmp/grid.ini"
"$bin" run "$tmp/grid.ini" --out "$tmp/run" --threads 2 >/dev/null 2>"$tmp/run.err" ||
  { echo "FAIL run: $(tail -3 "$tmp/run.err")"; exit 1; }
mkdir -p "$tmp/tr" "$tmp/eng"
rec() {  # rec MODEL CKPT STEP DATA CONDITION NAME [ARGS...]: one recording, queued
  m_=$1 c_=$2 s_=$3 d_=$4 cond_=$5 name_=$6
  shift 6
  echo "--model '$m_' --checkpoint '$c_' --step $s_ --data '$d_' --condition '$cond_'" \
    "--model-name '$family' --out '$tmp/tr/$name_.h5' $lim --batch 64 $*" >> "$tmp/jobs"
}
for c in $ckpts; do
  m=${c%%:*} rest=${c#*:}; label=${rest%%:*} step=${rest#*:}
  rec "$m" "$label" "$step" "$data" clean "$label-clean"
  # the engine's own trace of the same evaluation, for the near-tie listing
  # shellcheck disable=SC2086
  "$bin" eval --model "$m" --data "$data" $lim --bootstrap 0 --threads 2 --trace-model "$family" \
    --trace-checkpoint "$label" --trace-step "$step" --save-routing "$tmp/eng/$label-clean.h5" >/dev/null
done
m=${last} 
for c in $corr; do
  for s in 1 3; do
    # shellcheck disable=SC2086
    "$bin" corrupt --data "$data" --corruption "$c:$s" --seed 3 $lim $vocab --out "$tmp/$c-$s.h5" \
      >/dev/null 2>&1 || { echo "FAIL corrupt $c:$s"; fail=1; }
    final=${ckpts##* }; rest=${final#*:}; label=${rest%%:*} step=${rest#*:}
    # an LM's corrupted pass predicts the clean text, as in run (tools/trace_reference.py)
    rec "$m" "$label" "$step" "$tmp/$c-$s.h5" "$c:$s" "$label-$c-$s" --clean-data "$data"
    # shellcheck disable=SC2086
    "$bin" eval --model "$m" --data "$tmp/$c-$s.h5" --bootstrap 0 --threads 2 --trace-model "$family" \
      --trace-checkpoint "$label" --trace-step "$step" --save-routing "$tmp/eng/$label-$c-$s.h5" >/dev/null
  done
done
# every recording in one process (torch imported once)
$py tools/trace_reference.py --many "$tmp/jobs" >/dev/null 2>"$tmp/rec.err" ||
  { echo "FAIL record: $(tail -3 "$tmp/rec.err")"; exit 1; }
"$bin" analyze "$tmp/tr"/*.h5 --out "$tmp/an" --bootstrap 200 --seed 3 --threads 2 --quiet ||
  { echo "FAIL analyze"; exit 1; }
# near ties: tokens whose k-th and (k+1)-th probability differ by < 1e-5 in the engine's
# traces, and tokens whose top-k differs between the PyTorch and the engine traces
$py - "$tmp/tr" "$tmp/eng" <<'EOF'
import glob, os, sys
import h5py, numpy as np
ties = diff = order = tokens = 0
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.h5"))):
    q = os.path.join(sys.argv[2], os.path.basename(p))
    with h5py.File(p, "r") as a, h5py.File(q, "r") as b:
        for L in a["layers"]:
            pa, pb = a[f"layers/{L}/probs"][()], b[f"layers/{L}/probs"][()]
            ka, kb = a[f"layers/{L}/topk"][()], b[f"layers/{L}/topk"][()]
            k = ka.shape[-1]
            s = -np.sort(-pb, axis=-1)
            margin = s[..., k - 1] - s[..., k] if s.shape[-1] > k else np.full(s.shape[:-1], np.inf)
            ties += int((margin < 1e-5).sum())
            d = (np.sort(ka, -1) != np.sort(kb, -1)).any(-1)
            o = (ka != kb).any(-1) & ~d   # same experts, another order (a near tie inside)
            diff += int(d.sum())
            order += int(o.sum())
            tokens += d.size
            for n, t in zip(*np.nonzero(d | o)):
                print(f"top-k {'set' if d[n, t] else 'order'} differs: {os.path.basename(p)} layer {L} "
                      f"sample {n} token {t}: PyTorch {ka[n, t].tolist()} engine {kb[n, t].tolist()}")
            print(f"{os.path.basename(p)} layer {L}: max |probs diff| {np.abs(pa - pb).max():.2g}")
print(f"near ties (margin < 1e-5): {ties} of {tokens} token-layers; top-k set differs in {diff}, "
      f"order only in {order}")
EOF
if $py tests/compare_results.py "$tmp/run" "$tmp/an" --rtol "$rtol" > "$tmp/cmp.log"; then
  echo "ok   $family: $(grep -c '^ok   ' "$tmp/cmp.log") cells and CE groups of PyTorch traces equal run's (rtol $rtol)"
else
  grep FAIL "$tmp/cmp.log"
  fail=1
fi
exit $fail
