#!/bin/sh
# bench/hf_memory.sh — memory of an imported Hugging Face MoE (docs/import.md, docs/performance.md).
#
#   bench/hf_memory.sh [BUILD_DIR]          (default build/; the first run makes a 2.1 GB
#                                           checkpoint and a 4.2 GB model, about 3 minutes)
#
# The model: random weights of OLMoE-1B-7B's layer geometry with 2 layers (d 2048, 16
# heads, 64 experts, top-8, expert hidden 1024, vocab 50304; tools/make_hf_fixture.py
# olmoe --geometry olmoe-1b-7b-2l, bfloat16, 2 shards + index), imported with
# `moe-robust import --max-seq-len T`. Measured with /usr/bin/time -v:
#   - `moe-robust import`: peak RSS (the import copies block by block, never the model);
#   - `moe-robust eval` of N random sequences of T tokens (--batch B --threads TH, no
#     bootstrap): peak RSS, against the issue's bound
#         float32 weight bytes x 1.1 + activations,
#     activations = TH x the engine workspace of one thread for micro-batches of B
#     (moe-robust-bench prints both sizes for the same model, batch and T).
# Environment (defaults): HF_CKPT (/tmp/moe-robust-olmoe2l), HF_MODEL ($HF_CKPT.h5), T (256),
# N (8), BATCH (4), THREADS (2), OUT (/tmp/moe-robust-hf-memory).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
bin=$build/moe-robust
bench=$build/bench/moe-robust-bench
if [ ! -x "$bin" ] || [ ! -x "$bench" ]; then echo "bench/hf_memory.sh: build first (scripts/build)" >&2; exit 2; fi
[ -x /usr/bin/time ] || { echo "bench/hf_memory.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
HF_CKPT=${HF_CKPT:-/tmp/moe-robust-olmoe2l}
HF_MODEL=${HF_MODEL:-$HF_CKPT.h5}
T=${T:-256}
N=${N:-8}
BATCH=${BATCH:-4}
THREADS=${THREADS:-2}
OUT=${OUT:-/tmp/moe-robust-hf-memory}
PY=/usr/bin/python3
mkdir -p "$OUT"
rss() { awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$1"; }

[ -f "$HF_CKPT/config.json" ] ||
  $PY tools/make_hf_fixture.py olmoe "$HF_CKPT" --geometry olmoe-1b-7b-2l --dtype bf16 --shards 2 >&2
if [ ! -f "$HF_MODEL" ] || [ ! -f "$OUT/import.time" ]; then
  /usr/bin/time -v "$bin" import "$HF_CKPT" --out "$HF_MODEL" --max-seq-len "$T" \
    >"$OUT/import.out" 2>"$OUT/import.time"
fi
$PY - "$OUT/tokens.h5" "$N" "$T" <<'PYEOF'
import sys, h5py, numpy as np
path, n, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with h5py.File(path, "w") as f:
    f.create_dataset("tokens", data=np.random.default_rng(0).integers(0, 50304, (n, t + 1)).astype(np.int32))
PYEOF
/usr/bin/time -v "$bin" eval --model "$HF_MODEL" --data "$OUT/tokens.h5" --batch "$BATCH" \
  --threads "$THREADS" --bootstrap 0 >"$OUT/eval.out" 2>"$OUT/eval.time"
"$bench" --model "$HF_MODEL" --data "$OUT/tokens.h5" --batch "$BATCH" --threads "$THREADS" \
  --reps 1 >"$OUT/bench.out"
res=$(sed -n 's/^RESULT //p' "$OUT/bench.out")
w=$(echo "$res" | sed -n 's/.*weights_mib=\([0-9.]*\).*/\1/p')
a=$(echo "$res" | sed -n 's/.*workspace_mib=\([0-9.]*\).*/\1/p')
size=$(du -m "$HF_CKPT" | tail -1 | cut -f1)
echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(grep -o -w -m1 avx512f /proc/cpuinfo || echo 'no avx512f')"
echo "model: OLMoE-1B-7B layer geometry, 2 layers, random weights: checkpoint $size MiB (bf16),"
echo "       float32 weights $w MiB; eval: $N x $T tokens, batch $BATCH, $THREADS threads;"
echo "       workspace $a MiB per thread"
awk -v imp="$(rss "$OUT/import.time")" -v ev="$(rss "$OUT/eval.time")" -v w="$w" -v a="$a" \
    -v th="$THREADS" 'BEGIN {
  bound = 1.1 * w + th * a
  printf "import peak RSS %8.0f MiB\n", imp / 1024
  printf "eval   peak RSS %8.0f MiB   bound 1.1 x %.0f + %d x %.0f = %.0f MiB   %s (%.3f x weights)\n",
         ev / 1024, w, th, a, bound, (ev / 1024 <= bound) ? "PASS" : "MISS", ev / 1024 / w
}'
