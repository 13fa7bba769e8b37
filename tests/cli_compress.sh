#!/bin/sh
# moe-robust compress through the real binary: every method writes a model that passes
# `inspect` and evaluates; pruning to all experts evaluates exactly like the original;
# the metadata records method, K, groups and the SHA-256 of the calibration inputs, which
# equals sha256sum of the same image bytes (IDX or HDF5); LM models compress too;
# bad requests exit 2 and write nothing.
set -u
bin=$1
tmp=$(mktemp -d /tmp/mr-cli-compress-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $*"; fail=1; }
m=tests/fixtures/tiny-classify.h5; idx=tests/fixtures/tiny-images-idx3-ubyte.gz
h5=tests/fixtures/tiny-images.h5
"$bin" compress --help | grep -q "merge-uncurl" || bad "--help lacks the methods"

for meth in prune-freq prune-reap merge-msmoe merge-uncurl mc-smoe; do
  out=$tmp/$meth.h5
  "$bin" compress --model $m --calib $idx --calib-limit 5 --method $meth --experts 2 \
    --rank 2 --out "$out" >"$tmp/log" 2>&1 || { bad "$meth: exit $?: $(cat "$tmp/log")"; continue; }
  [ -z "$(ls "$tmp" | grep tmp-)" ] || bad "$meth: temporary file left"
  ins=$("$bin" inspect "$out" 2>&1) || { bad "$meth: inspect failed: $ins"; continue; }
  for want in "validation   OK" "(2 experts, top-2" "compress_method = $meth" \
              "compress_experts = 2" "compress_experts_before = 4" "compress_calib = $idx" \
              "compress_calib_samples = 5" "compress_groups = 1: {" \
              "source_description = random weights"; do
    case "$ins" in *"$want"*) ;; *) bad "$meth: inspect lacks '$want'" ;; esac
  done
  "$bin" eval --model "$out" --data $h5 --bootstrap 0 --threads 1 >/dev/null 2>&1 ||
    bad "$meth: the compressed model does not evaluate"
  echo "ok   $meth"
done
case "$("$bin" inspect "$tmp/mc-smoe.h5")" in *"compress_rank = 2"*"compress_sparse_keep = 0.1"*) ;;
  *) bad "mc-smoe: rank and sparsity not recorded" ;; esac

# the hash is SHA-256 of the 5 images' bytes (8x8x1 each), from either file format
want=$(gzip -dc $idx | tail -c +17 | head -c 320 | sha256sum | cut -d' ' -f1)
got=$("$bin" inspect "$tmp/prune-freq.h5" | sed -n 's/^meta *compress_calib_sha256 = //p')
[ "$got" = "$want" ] || bad "calibration hash $got, sha256sum gives $want"
"$bin" compress --model $m --calib $h5 --calib-limit 5 --method prune-freq --experts 2 \
  --out "$tmp/h5.h5" >/dev/null || bad "HDF5 calibration data"
got=$("$bin" inspect "$tmp/h5.h5" | sed -n 's/^meta *compress_calib_sha256 = //p')
[ "$got" = "$want" ] || bad "HDF5 calibration hash $got, expected $want"

# pruning to every expert: the same model, evaluated bit for bit alike
for meth in prune-freq merge-msmoe; do
  "$bin" compress --model $m --calib $h5 --method $meth --experts 4 --out "$tmp/all.h5" >/dev/null ||
    bad "$meth to E experts failed"
  a=$("$bin" eval --model $m --data $h5 --threads 1 | grep -v '^model')
  b=$("$bin" eval --model "$tmp/all.h5" --data $h5 --threads 1 | grep -v '^model')
  [ "$a" = "$b" ] && echo "ok   $meth to E = identity" || bad "$meth to E experts evaluates differently"
done

# a language model, every MoE block, and one block in slot form
lm=tests/fixtures/tiny-lm.h5; tok=tests/fixtures/tiny-tokens.h5
"$bin" compress --model $lm --calib $tok --method merge-uncurl --experts 3 --out "$tmp/lm.h5" \
  >/dev/null || bad "lm compress failed"
"$bin" inspect "$tmp/lm.h5" | grep -q "(3 experts" || bad "lm: not 3 experts"
"$bin" compress --model $lm --calib $tok --method prune-reap --experts 2 --layers 1 \
  --out "$tmp/lm1.h5" >/dev/null || bad "lm --layers 1 failed"
case "$("$bin" inspect "$tmp/lm1.h5")" in *"(4 experts"*"compress_form = slots"*"compress_layers = 1"*) echo "ok   slot form" ;;
  *) bad "lm --layers 1: not a 4-slot model compressing block 1" ;; esac

# the grid: [model] compress = METHOD:K, computed once per run into DIR/models/NAME.h5,
# the same model `compress` writes; --resume reuses it
cat > "$tmp/grid.ini" <<EOC
[run]
bootstrap = 0
[data]
path = $h5
calib = $idx
calib_limit = 5
[model base]
path = $m
[model msmoe3]
path = $m
compress = merge-msmoe:3
[model freq2]
path = $m
compress = prune-freq:2
[router softmax]
[corruptions]
names = contrast
severities = 2
EOC
"$bin" run "$tmp/grid.ini" --out "$tmp/run" --threads 2 >"$tmp/log" 2>&1 || bad "grid run failed: $(cat "$tmp/log")"
grep -q "model msmoe3 = $m compressed by merge-msmoe to 3 experts" "$tmp/log" || bad "grid: no compression logged"
"$bin" compress --model $m --calib $idx --calib-limit 5 --method merge-msmoe --experts 3 \
  --out "$tmp/cli3.h5" >/dev/null || bad "compress for the grid comparison failed"
a=$("$bin" eval --model "$tmp/run/models/msmoe3.h5" --data $h5 --threads 1 | grep -v '^model')
b=$("$bin" eval --model "$tmp/cli3.h5" --data $h5 --threads 1 | grep -v '^model')
[ "$a" = "$b" ] && echo "ok   grid model = compress output" || bad "the grid's compressed model differs from compress's"
grep -q '^msmoe3/softmax@k2/clean,msmoe3,softmax,2,clean' "$tmp/run/summary.csv" || bad "grid: no msmoe3 cells"
# every cell names the MoE blocks of its model: one geometry here, so one block list (the
# cells of compressed models once pointed at the freed source model's list)
nl=$(grep -o '"layer":[[:space:]]*-\{0,1\}[0-9]*' "$tmp/run/summary.json" | sort -u | wc -l)
[ "$nl" -eq 1 ] && echo "ok   compressed models' cells name their MoE blocks" ||
  bad "summary.json: $nl different MoE block indices for one model geometry"
"$bin" run "$tmp/grid.ini" --out "$tmp/run" --resume >"$tmp/log" 2>&1 || bad "resume failed"
grep -q "compressed by" "$tmp/log" && bad "resume compressed again" || echo "ok   resume reuses DIR/models"
# the report's compression figures: one line per method, from K up to the original's E,
# with the numbers of the per-model summaries
"$bin" report "$tmp/run" --no-render --no-gallery --quiet >"$tmp/log" 2>&1 || bad "report failed: $(cat "$tmp/log")"
rd=$tmp/run/report
for f in fig-compress-base-accuracy.dat fig-compress-base-accuracy.gp fig-compress-base-stability.dat \
         fig-compress-base-stability.gp table-compress-base.md; do
  [ -s "$rd/$f" ] || bad "report: no $f"
done
# one block per method in the config order of the run's models (msmoe3 before freq2),
# each by experts kept and ending at the original's 4
got=$(awk '/^# block/ {printf "%s%s:", sep, $4; sep=" "} /^[0-9]/ {printf "%s,", $1}' "$rd/fig-compress-base-accuracy.dat")
[ "$got" = "merge-msmoe:3,4, prune-freq:2,4," ] && echo "ok   compression lines: $got" || bad "compression figure lines: '$got'"
# clean and corrupted accuracy as in each model's own summary table (bold stripped)
cols() { awk -F'|' -v m="$1" '$2 ~ " "m" " {print $6 "|" $7}' "$rd/table-compress-base.md" | tr -d ' *'; }
for mm in base msmoe3 freq2; do
  want=$(awk -F'|' 'NR == 3 {print $3 "|" $4}' "$rd/table-$mm-summary.md" | tr -d ' *')
  [ -n "$want" ] && [ "$(cols $mm)" = "$want" ] && echo "ok   $mm: compression table = model summary ($want)" ||
    bad "$mm: compression table '$(cols $mm)', model summary '$want'"
done
grep -q "## Compression" "$rd/report.md" || bad "report.md has no compression section"

# refusals: exit 2, a named reason, no output file
expect2() { # expect2 NEEDLE ARGS...
  needle=$1; shift
  err=$("$bin" compress "$@" --out "$tmp/refused.h5" 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] || bad "[$*]: exit $rc, expected 2: $err"
  case "$err" in *"$needle"*) echo "ok   refused: $err" ;; *) bad "[$*]: message lacks '$needle': $err" ;; esac
  [ ! -e "$tmp/refused.h5" ] || bad "[$*]: output written"
}
expect2 "unknown compression method" --model $m --calib $h5 --method prune-random --experts 2
expect2 "--experts is required" --model $m --calib $h5 --method prune-freq
expect2 "--experts: 'two' is not an integer" --model $m --calib $h5 --method prune-freq --experts two
expect2 "--sparse-keep" --model $m --calib $h5 --method mc-smoe --experts 2 --sparse-keep 1.5
expect2 "--rank 9 must be in 1..8" --model $m --calib $h5 --method mc-smoe --experts 2 --rank 9
expect2 "given twice" --model $lm --calib $tok --method merge-msmoe --experts 2 --layers 1,1
err=$("$bin" compress --model $m --calib $h5 --method prune-freq --experts 2 --out /nonexistent-dir/x.h5 2>&1)
[ $? -eq 2 ] && case "$err" in *"/nonexistent-dir/x.h5"*) echo "ok   missing output directory" ;; *) bad "no file named: $err" ;; esac ||
  bad "missing output directory: $err"
exit $fail
