#!/bin/sh
# `moe-robust analyze` (docs/traces.md):
# - cross-check: traces written by `eval --save-routing` for every cell of a grid (2
#   checkpoints, 2 routers, a k sweep, an image and an embedding corruption at 2
#   severities) give, through analyze, the cells `run` computes on the same config:
#   every dataset of every cell (means, CIs, per-layer, per-sample) and the corruption
#   errors equal to 1e-6 relative (tests/compare_results.py);
# - the same after sharding every trace into 3 ranks (rows reversed), and after padding
#   every sample with masked positions holding garbage (padding excluded everywhere);
# - a trace with a sample missing: exit 2 naming the file and /sample_id, or with
#   --allow-missing one sample fewer everywhere and the count printed;
# - combinations analyze refuses (exit 2, nothing written): a condition without its clean
#   trace, E differing between checkpoints, two checkpoints with one step, an id in two
#   shards; every malformed trace of tests/bad/traces/ (file and dataset named; the same
#   first error with --threads 2);
# - router saturation over a checkpoint series: hand-built routings of 3 checkpoints give
#   the values worked out by hand (tests/trace_saturation.py); baseline and check guard it
#   (a layer that settles earlier is caught);
# - report, baseline and check read analyze's output; a second analyze replaces it; an
#   unrelated --out directory is refused.
set -u
bin=$1
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/mr-analyze-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $1"; fail=1; }
M=tests/fixtures
T=$tmp/traces
mkdir -p "$T"

cat > "$tmp/grid.ini" <<EOF
[run]
seed = 3
bootstrap = 100
batch = 3
reference = softmax

[data]
path = $M/tiny-images.h5

[model tiny]
path = $M/tiny-classify-perturbed.h5
checkpoint = $M/tiny-classify.h5
checkpoint = $M/tiny-classify-perturbed.h5

[router softmax]
top_k = 1,2

[router sim]
type = similarity
tau = 2

[corruptions]
names = shot_noise, embed_gaussian
severities = 1,3
EOF
"$bin" run "$tmp/grid.ini" --out "$tmp/run" --threads 2 >/dev/null 2>&1 || bad "run failed"

ev() {
  "$bin" eval --data $M/tiny-images.h5 --batch 3 --threads 2 --bootstrap 0 --seed 3 \
    --trace-model tiny "$@" >/dev/null 2>"$tmp/ev.err" || bad "eval $*: $(cat "$tmp/ev.err")"
}
for rk in "softmax softmax 1" "softmax softmax 2" "sim similarity 2"; do
  # shellcheck disable=SC2086
  set -- $rk
  name=$1 type=$2 k=$3 opt=""
  [ "$type" = similarity ] && opt="--router-opt tau=2"
  # shellcheck disable=SC2086
  ev --model $M/tiny-classify.h5 --router "$type" $opt --top-k "$k" --trace-router "$name" \
    --trace-checkpoint base --trace-step 1 --save-routing "$T/$name-k$k-base-clean.h5"
  for c in clean shot_noise:1 shot_noise:3 embed_gaussian:1 embed_gaussian:3; do
    cor=""
    [ "$c" = clean ] || cor="--corruption $c"
    # shellcheck disable=SC2086
    ev --model $M/tiny-classify-perturbed.h5 --router "$type" $opt --top-k "$k" \
      --trace-router "$name" --trace-checkpoint perturbed --trace-step 2 $cor \
      --save-routing "$T/$name-k$k-pert-$(echo "$c" | tr : -).h5"
  done
done
# with --corruption eval also writes the clean pass beside FILE (FILE.clean.h5): the
# same trace as the clean-only eval's, bit for bit apart from nothing
for f in "$T"/softmax-k2-pert-shot_noise-1.clean.h5; do
  $py -c "
import h5py, numpy as np, sys
a, b = h5py.File('$f'), h5py.File('$T/softmax-k2-pert-clean.h5')
c = a.attrs['condition']; assert (c.decode() if isinstance(c, bytes) else c) == 'clean', c
for n in ('sample_id', 'labels', 'logits', 'layers/1/probs', 'layers/1/topk', 'layers/1/weights'):
    assert np.array_equal(a[n][()], b[n][()]), n
" || bad "the clean sibling of a corrupted eval differs from the clean trace"
done
rm -f "$T"/*.clean.h5
[ "$(ls "$T" | wc -l)" -eq 18 ] || bad "expected 18 traces, got $(ls "$T" | wc -l)"

an() {  # an OUT ARGS...: analyze with the run's seed and bootstrap
  out=$1; shift
  "$bin" analyze "$@" --out "$out" --bootstrap 100 --seed 3 --threads 2 --quiet
}
same() {  # same WHAT DIR [ARGS]: DIR's cells equal the run's
  what=$1 dir=$2; shift 2
  if $py tests/compare_results.py "$tmp/run" "$dir" "$@" > "$tmp/cmp.log"; then
    echo "ok   $what: $(grep -c '^ok   ' "$tmp/cmp.log") cells and CE groups equal to run's"
  else
    bad "$what: $(grep FAIL "$tmp/cmp.log" | head -5)"
  fi
}
an "$tmp/an" "$T"/*.h5 || bad "analyze failed"
same "engine traces" "$tmp/an"

# shards: 3 ranks per trace, rows reversed
mkdir -p "$tmp/sh"
for f in "$T"/*.h5; do $py tests/trace_edit.py shard "$f" "$tmp/sh/$(basename "$f" .h5)" 3; done
an "$tmp/an-sh" "$tmp/sh"/*.h5 || bad "analyze of shards failed"
same "3 shards per trace" "$tmp/an-sh"

# padding: 4 masked positions of garbage per sample change nothing
mkdir -p "$tmp/pad"
for f in "$T"/*.h5; do $py tests/trace_edit.py pad "$f" "$tmp/pad/$(basename "$f")" 4; done
an "$tmp/an-pad" "$tmp/pad"/*.h5 || bad "analyze of padded traces failed"
same "padded traces" "$tmp/an-pad" --ignore-attr T

# a sample missing from one corrupted trace
mkdir -p "$tmp/miss"
cp "$T"/*.h5 "$tmp/miss/"
$py tests/trace_edit.py drop "$T/sim-k2-pert-shot_noise-3.h5" "$tmp/miss/sim-k2-pert-shot_noise-3.h5" 5
err=$("$bin" analyze "$tmp/miss"/*.h5 --out "$tmp/an-miss" --quiet 2>&1); rc=$?
case "$rc:$err" in
  2:*sim-k2-pert-shot_noise-3.h5*/sample_id*5*allow-missing*) echo "ok   missing sample: $err" ;;
  *) bad "missing sample: exit $rc: $err" ;;
esac
[ -e "$tmp/an-miss" ] && bad "missing sample: output left behind"
err=$("$bin" analyze "$tmp/miss"/*.h5 --out "$tmp/an-miss" --allow-missing --bootstrap 10 2>&1); rc=$?
n=$($py -c "import h5py; print(h5py.File('$tmp/an-miss/results.h5')['cells/tiny~softmax@k1~clean'].attrs['n'])" 2>/dev/null)
case "$rc:$n:$err" in
  0:7:*"7 samples in every trace; 1 dropped"*) echo "ok   --allow-missing: 7 samples, 1 dropped" ;;
  *) bad "--allow-missing: exit $rc, n = $n: $err" ;;
esac

# combinations analyze refuses
refuse() {  # refuse WHAT NEEDLE FILES...
  what=$1 needle=$2; shift 2
  rm -rf "$tmp/out-bad"
  err=$("$bin" analyze "$@" --out "$tmp/out-bad" --quiet 2>&1); rc=$?
  if [ "$rc" -ne 2 ]; then bad "$what: exit $rc: $err"
  elif [ -e "$tmp/out-bad" ] || ls "$tmp" | grep -q 'out-bad.tmp'; then bad "$what: output left behind"
  else case "$err" in *"$needle"*) echo "ok   $what: $err" ;; *) bad "$what: message lacks '$needle': $err" ;; esac
  fi
}
refuse "condition without its clean trace" "softmax-k1-pert-shot_noise-1.h5: condition shot_noise:1 has no clean trace" \
  "$T/softmax-k1-pert-shot_noise-1.h5" "$T/softmax-k1-base-clean.h5"
$py tests/trace_edit.py experts "$T/softmax-k2-base-clean.h5" "$tmp/e3.h5" 3
refuse "E differs between checkpoints" "E = 4 experts, T = 5 positions, 1 MoE layers, but $tmp/e3.h5 of the same model tiny has E = 3" "$tmp/e3.h5" "$T/softmax-k2-pert-clean.h5"
$py tests/trace_edit.py attr "$T/softmax-k2-base-clean.h5" "$tmp/step2.h5" step 2
refuse "two checkpoints, one step" "step = 2" "$tmp/step2.h5" "$T/softmax-k2-pert-clean.h5"
$py tests/trace_edit.py shard "$T/softmax-k2-pert-clean.h5" "$tmp/dup" 2
cp "$T/softmax-k2-pert-clean.h5" "$tmp/dup-r2.h5"
refuse "an id in two shards" "also in" "$tmp/dup-r0.h5" "$tmp/dup-r1.h5" "$tmp/dup-r2.h5"
err=$("$bin" analyze "$T/softmax-k2-pert-clean.h5" --quiet 2>&1); rc=$?
case "$rc:$err" in 2:*"--out DIR is required"*) echo "ok   no --out: $err" ;; *) bad "no --out: exit $rc: $err" ;; esac
tab=$(printf '\t')
nbad=0
while IFS="$tab" read -r file needle _defect; do
  [ "$file" = file ] && continue
  nbad=$((nbad + 1))
  before=$fail
  refuse "tests/bad/traces/$file" "$needle" "tests/bad/traces/$file" > "$tmp/refuse.log"
  [ "$fail" = "$before" ] || cat "$tmp/refuse.log"
  # the same first error with 2 threads (rows loaded by one thread while others route)
  e1=$("$bin" analyze "tests/bad/traces/$file" --out "$tmp/out-bad" --quiet 2>&1)
  e2=$("$bin" analyze "tests/bad/traces/$file" --out "$tmp/out-bad" --quiet --threads 2 2>&1)
  [ "$e1" = "$e2" ] || bad "tests/bad/traces/$file: --threads 2 says '$e2', --threads 1 '$e1'"
done < tests/bad/traces/MANIFEST.tsv
[ "$nbad" -ge 45 ] || bad "only $nbad malformed traces"
echo "ok   $nbad malformed traces run through analyze (exit 2, file and dataset named, nothing written; the same message with 2 threads)"

# router saturation over a checkpoint series: known answer, then guarded by the CI gate
mkdir -p "$tmp/sat"
$py tests/trace_saturation.py write "$tmp/sat"
an "$tmp/an-sat" "$tmp/sat"/*.h5 || bad "analyze of the saturation series failed"
if $py tests/trace_saturation.py check "$tmp/an-sat" > "$tmp/sat.log"; then
  echo "ok   saturation known answer: $(grep -c '^ok' "$tmp/sat.log") layer x checkpoint values as by hand"
else
  bad "saturation: $(grep FAIL "$tmp/sat.log")"
fi
"$bin" baseline "$tmp/an-sat" --metrics saturation --out "$tmp/sat.json" >/dev/null 2>&1 || bad "baseline --metrics saturation failed"
[ "$(grep -c 'fluct/[01]:layer[13]/saturation' "$tmp/sat.json")" -eq 4 ] || bad "baseline: not 4 saturation values: $(cat "$tmp/sat.json")"
"$bin" check "$tmp/an-sat" --baseline "$tmp/sat.json" >/dev/null 2>&1 || bad "check of saturation against its own baseline failed"
$py tests/trace_saturation.py settle "$tmp/sat" 10 3
an "$tmp/an-sat2" "$tmp/sat"/*.h5 || bad "analyze of the settled series failed"
"$bin" check "$tmp/an-sat2" --baseline "$tmp/sat.json" > "$tmp/sat-check.log" 2>&1; rc=$?
case "$rc:$(cat "$tmp/sat-check.log")" in
  1:*fluct/0:layer3/saturation*) echo "ok   check: a layer that saturates earlier (7/12 -> 1) is a change" ;;
  *) bad "check of a settled layer: exit $rc: $(cat "$tmp/sat-check.log")" ;;
esac

# the results readers take analyze's output as they take run's
"$bin" report "$tmp/an" --no-render --quiet >/dev/null 2>"$tmp/rep.err" || bad "report: $(cat "$tmp/rep.err")"
[ -s "$tmp/an/report/report.md" ] || bad "report: no report.md"
"$bin" baseline "$tmp/an" --out "$tmp/base.json" >/dev/null 2>&1 || bad "baseline failed"
"$bin" check "$tmp/an" --baseline "$tmp/base.json" >/dev/null 2>&1 || bad "check against its own baseline failed"
echo "ok   report, baseline and check read analyze's output"
an "$tmp/an" "$T"/*.h5 || bad "a second analyze into the same directory failed"
same "re-analyzed in place" "$tmp/an"
mkdir -p "$tmp/other" && touch "$tmp/other/keep"
err=$("$bin" analyze "$T"/*.h5 --out "$tmp/other" --quiet 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ -e "$tmp/other/keep" ] && echo "ok   unrelated --out refused: $err" || bad "unrelated --out: exit $rc"
exit $fail
