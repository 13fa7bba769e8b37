#!/bin/sh
# Peak memory of `moe-robust eval` as the number of evaluated tokens grows
# (issue: metrics stream in one pass; memory must not grow with tokens beyond a few
# values per sample). Runs the shipped char-LM on 250..3232 test windows (128 tokens
# each), clean and under a corruption, and prints peak RSS from /usr/bin/time -v next to
# the two things that legitimately grow with the sample count: the token data held in
# memory (the evaluation input, 129 x 4 bytes per window) and the per-sample metric values.
#   bench/eval_memory.sh [BUILD_DIR]      (default build/)
set -eu
cd "$(dirname "$0")/.."
bin=${1:-build}/moe-robust
[ -x "$bin" ] || { echo "bench/eval_memory.sh: build first (scripts/build)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
m=models/kjv-char-moe-softmax.h5
d=models/kjv-char-test.h5
printf '%-8s %-10s %12s %12s %14s %14s\n' samples tokens mode peak_RSS_KiB data_KiB per_sample_KiB
for n in 250 500 1000 2000 3232; do
  for mode in clean corrupted; do
    extra=""
    [ $mode = corrupted ] && extra="--corruption char_substitute:3"
    rss=$( { /usr/bin/time -v "$bin" eval --model $m --data $d --limit $n --batch 8 --threads 2 \
             --bootstrap 1000 $extra >/dev/null; } 2>&1 | awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}')
    # per-sample doubles kept: clean 3 + 2 per MoE layer (2 layers) = 7; corrupted adds the
    # corrupted pass (7) and flips (1 + 3 per layer = 7): 21
    per=$([ $mode = clean ] && echo 7 || echo 21)
    printf '%-8s %-10s %12s %12s %14s %14s\n' $n $((n * 128)) $mode "$rss" $((n * 129 * 4 / 1024)) $((n * per * 8 / 1024))
  done
done
