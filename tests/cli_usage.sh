#!/bin/sh
# CLI contract: --help and --version on every command exit 0; bad options and values
# exit 2 with a message naming them; a valid eval prints accuracy and per-layer entropy;
# run --dry-run prints the grid and writes nothing; run --set gives the config that the
# edited file gives.
set -u
bin=$1
fail=0
expect() { # expect RC NEEDLE -- CMD...
  want=$1; needle=$2; shift 3
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ]; then echo "FAIL [$*]: exit $rc, expected $want: $out"; fail=1; return; fi
  case "$out" in *"$needle"*) echo "ok   [$*]" ;; *) echo "FAIL [$*]: output lacks '$needle': $out"; fail=1 ;; esac
}
m=tests/fixtures/tiny-classify.h5; d=tests/fixtures/tiny-images.h5
expect 0 "usage: moe-robust COMMAND" -- "$bin" --help
expect 0 "usage: moe-robust inspect" -- "$bin" inspect --help
expect 0 "usage: moe-robust eval" -- "$bin" eval --help
expect 0 "usage: moe-robust import" -- "$bin" import --help
expect 0 "usage: moe-robust analyze" -- "$bin" analyze --help
expect 2 "no trace files given" -- "$bin" analyze --out /tmp/mr-usage-nothing
expect 2 "--trace-model: 'a/b' must be" -- "$bin" eval --model $m --data $d --trace-model a/b --save-routing /tmp/mr-usage-x.h5
expect 2 "unknown command 'frobnicate'" -- "$bin" frobnicate
expect 2 "usage:" -- "$bin"
expect 0 "validation   OK" -- "$bin" inspect $m
expect 2 "no such file" -- "$bin" inspect tests/fixtures/nope.h5
expect 2 "--model is required" -- "$bin" eval --data $d
expect 2 "--batch: 'x' is not an integer" -- "$bin" eval --model $m --data $d --batch x
expect 2 "--threads: 0 is outside" -- "$bin" eval --model $m --data $d --threads 0
expect 2 "unknown option '--frob'" -- "$bin" eval --model $m --data $d --frob
expect 2 "unknown router 'nosuch'" -- "$bin" eval --model $m --data $d --router nosuch
expect 2 "router softmax has no option 'tau'" -- "$bin" eval --model $m --data $d --router-opt tau=1
expect 2 "top_k = 99" -- "$bin" eval --model $m --data $d --top-k 99
expect 2 "is an image classifier" -- "$bin" eval --model $m --data tests/fixtures/tiny-tokens.h5
expect 0 "routing per MoE layer (clean)" -- "$bin" eval --model $m --data $d --threads 2
expect 0 "bpc" -- "$bin" eval --model tests/fixtures/tiny-lm.h5 --data tests/fixtures/tiny-tokens.h5
expect 0 "checkpoint flip rate per MoE layer" -- "$bin" eval --model $m --data $d --compare-checkpoint $m
expect 2 "cannot be compared" -- "$bin" eval --model $m --data $d --compare-checkpoint tests/fixtures/tiny-lm.h5
expect 2 "no such file" -- "$bin" eval --model $m --data $d --compare-checkpoint tests/fixtures/nope.h5
expect 2 "--bootstrap: -1 is outside" -- "$bin" eval --model $m --data $d --bootstrap -1
expect 0 "intervals    none" -- "$bin" eval --model $m --data $d --bootstrap 0
# every training-free router swaps onto both tiny models, at every k (self-slimmable sweep)
for r in softmax similarity attention ac random momentum; do
  for k in 1 2 3 4; do
    expect 0 "router       $r (top-$k)" -- "$bin" eval --model tests/fixtures/tiny-lm.h5 --data tests/fixtures/tiny-tokens.h5 --router $r --top-k $k --bootstrap 10
  done
  expect 0 "router       $r" -- "$bin" eval --model $m --data $d --router $r --bootstrap 10
done
expect 0 "router       similarity" -- "$bin" eval --model $m --data $d --router similarity --router-opt tau=0.5
expect 2 "not trained with X-MoE" -- "$bin" eval --model $m --data $d --router cosine
expect 2 "not trained with S2MoE" -- "$bin" eval --model $m --data $d --router s2moe
# without --router: the router the model was trained with (its `router` attribute)
expect 0 "router       softmax" -- "$bin" eval --model $m --data $d --bootstrap 0
expect 0 "router       cosine" -- "$bin" eval --model tests/fixtures/routers/tiny-classify-cosine.h5 --data $d --bootstrap 0
expect 2 "router option tau=x is not a number" -- "$bin" eval --model $m --data $d --router similarity --router-opt tau=x
expect 2 "router option 't:au': not an option name" -- "$bin" eval --model $m --data $d --router similarity --router-opt t:au=1
expect 0 "similarity" -- "$bin" eval --help
# evaluation under a corruption (issue: metrics per (model, router, corruption, severity))
expect 0 "flip rate per MoE layer, clean vs corrupted" -- "$bin" eval --model $m --data $d --corruption shot_noise:3 --bootstrap 50
expect 0 "accuracy_drop" -- "$bin" eval --model $m --data $d --corruption embed_gaussian:2 --router similarity --bootstrap 50
expect 0 "corruption   char_swap:5" -- "$bin" eval --model tests/fixtures/tiny-lm.h5 --data tests/fixtures/tiny-tokens.h5 --corruption char_swap:5 --bootstrap 50
expect 2 "unknown corruption" -- "$bin" eval --model $m --data $d --corruption nosuch:1
expect 2 "severity" -- "$bin" eval --model $m --data $d --corruption shot_noise:9
expect 2 "is a text corruption" -- "$bin" eval --model $m --data $d --corruption char_swap:1
# a bad --save-routing directory is an input error and leaves nothing behind
expect 2 "cannot create" -- "$bin" eval --model $m --data $d --save-routing /nonexistent-dir/x.h5
# a bad argument is named, never answered with bare usage (issue #23)
expect 2 "unknown option '--frobnicate'" -- "$bin" inspect --frobnicate
expect 2 "unknown option '--frobnicate'" -- "$bin" inspect $m --frobnicate
expect 2 "unexpected argument 'B.h5'" -- "$bin" inspect $m B.h5
expect 2 "expected MODEL.h5" -- "$bin" inspect
expect 2 "unknown option '--frobnicate'" -- "$bin" merge --frobnicate
expect 2 "unknown option '--x'" -- "$bin" merge /tmp --x
expect 2 "expected a run directory" -- "$bin" merge
for c in baseline "check --baseline x.json"; do
  # shellcheck disable=SC2086
  expect 2 "unexpected argument 'EXTRA' (one DIR)" -- "$bin" $c /tmp EXTRA
  # shellcheck disable=SC2086
  expect 2 "DIR is required" -- "$bin" $c
done
# report takes several run directories, with --out
expect 2 "2 run directories need --out OUTDIR" -- "$bin" report /tmp EXTRA
expect 2 "DIR is required" -- "$bin" report
expect 2 "unexpected argument 'EXTRA' (one CONFIG.ini)" -- "$bin" run tests/configs/tiny-grid.ini EXTRA
expect 2 "CONFIG.ini is required" -- "$bin" run
expect 2 "unexpected argument 'EXTRA' (one checkpoint DIR)" -- "$bin" import /tmp EXTRA --out /tmp/never.h5
expect 2 "checkpoint DIR is required" -- "$bin" import --out /tmp/never.h5
# every integer option through one overflow-checked parser: never wrapped, never cut
for bad in 99999999999 9223372036854775808 -99999999999999999999 2147483648 12x 0x10 '' ' 5' 1e3; do
  for opt in --batch --threads --limit --top-k --bootstrap --seed; do
    out=$("$bin" eval --model $m --data $d $opt "$bad" 2>&1); rc=$?
    [ $rc -eq 2 ] && case "$out" in *"$opt: "*) ;; *) echo "FAIL eval $opt '$bad': $out"; fail=1 ;; esac || { echo "FAIL eval $opt '$bad': exit $rc"; fail=1; }
  done
  for opt in --severity --seed --limit --threads --index --scale; do
    out=$("$bin" corrupt --data $d --corruption fog --out /tmp/never.h5 $opt "$bad" 2>&1); rc=$?
    [ $rc -eq 2 ] && case "$out" in *"$opt: "*) ;; *) echo "FAIL corrupt $opt '$bad': $out"; fail=1 ;; esac || { echo "FAIL corrupt $opt '$bad': exit $rc"; fail=1; }
  done
  out=$("$bin" run tests/configs/tiny-grid.ini --out /tmp/never-dir --threads "$bad" 2>&1); rc=$?
  [ $rc -eq 2 ] || { echo "FAIL run --threads '$bad': exit $rc"; fail=1; }
  for shard in "0/$bad" "$bad/4"; do
    out=$("$bin" run tests/configs/tiny-grid.ini --out /tmp/never-dir --shard "$shard" 2>&1); rc=$?
    [ $rc -eq 2 ] && case "$out" in *"--shard"*) ;; *) echo "FAIL --shard '$shard': $out"; fail=1 ;; esac || { echo "FAIL --shard '$shard': exit $rc"; fail=1; }
  done
  out=$("$bin" eval --model $m --data $d --corruption "shot_noise:$bad" 2>&1); rc=$?
  [ $rc -eq 2 ] || { echo "FAIL --corruption shot_noise:'$bad': exit $rc"; fail=1; }
done
[ -e /tmp/never.h5 ] || [ -e /tmp/never-dir ] && { echo "FAIL a refused command wrote output"; fail=1; }
expect 2 "--shard N: 99999999999 is outside 1..1000000" -- "$bin" run tests/configs/tiny-grid.ini --out /tmp/never-dir --shard 0/99999999999
expect 2 "router option tau given twice" -- "$bin" eval --model $m --data $d --router similarity --router-opt tau=1 --router-opt tau=2
# --batch up to its documented maximum on few samples: workspaces hold min(batch, samples)
# (issue #23: 59064 MiB were asked for 256 windows); also the embedding-statistics pass
expect 0 "bpc" -- "$bin" eval --model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 --limit 8 --batch 65536 --bootstrap 10
expect 0 "accuracy_drop" -- "$bin" eval --model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 --limit 8 --batch 65536 --bootstrap 10 --corruption embed_gaussian:2
a=$("$bin" eval --model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 --limit 8 --batch 65536 --bootstrap 10 | tail -n +4)
b=$("$bin" eval --model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 --limit 8 --batch 8 --bootstrap 10 | tail -n +4)
[ "$a" = "$b" ] && echo "ok   --batch 65536 on 8 windows == --batch 8" || { echo "FAIL --batch 65536 and --batch 8 differ on 8 windows"; fail=1; }
# attack likewise (its gradient workspace asked 64 GiB for 4 images), same images as --batch 4
fm="--model models/fmnist-vit-moe-softmax.h5 --data /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --limit 4"
for meth in pgd square; do
  rm -f /tmp/mr-usage-b*.h5
  # shellcheck disable=SC2086
  expect 0 "wrote" -- "$bin" attack $fm --method $meth --eps 8/255 --steps 2 --batch 65536 --threads 2 --bootstrap 0 --out /tmp/mr-usage-b65536.h5
  # shellcheck disable=SC2086
  "$bin" attack $fm --method $meth --eps 8/255 --steps 2 --batch 4 --bootstrap 0 --out /tmp/mr-usage-b4.h5 >/dev/null 2>&1
  cmp -s /tmp/mr-usage-b65536.h5 /tmp/mr-usage-b4.h5 && echo "ok   attack $meth --batch 65536 == --batch 4" || { echo "FAIL attack $meth: --batch 65536 and --batch 4 differ"; fail=1; }
done
rm -f /tmp/mr-usage-b*.h5
# real-valued options through the one parser too: no blanks, no trailing text, finite
for bad in " 8/255" "8/ 255" "8/255x" nan inf/2 1e400 "8/1e-400"; do
  expect 2 "--eps: '$bad' is not a number or fraction" -- "$bin" attack --model $m --data $d --method pgd --eps "$bad" --out /tmp/never.h5
done
expect 2 "--sparse-keep: ' 0.5' is not a number" -- "$bin" compress --model $m --calib $d --method mc-smoe --experts 2 --sparse-keep " 0.5" --out /tmp/never.h5
# output identical for 1 and 2 threads (lines after the header)
a=$("$bin" eval --model $m --data $d --threads 1 | tail -n +4)
b=$("$bin" eval --model $m --data $d --threads 2 | tail -n +4)
[ "$a" = "$b" ] && echo "ok   threads 1 == threads 2" || { echo "FAIL thread outputs differ"; fail=1; }
# --version everywhere (man pages are made from --help and --version: help2man)
version=$("$bin" --version)
case "$version" in "moe-robust "[0-9]*.[0-9]*.[0-9]*) echo "ok   --version: $version" ;; *) echo "FAIL --version: $version"; fail=1 ;; esac
for c in inspect eval run merge corrupt report baseline check compress attack import; do
  expect 0 "$version" -- "$bin" $c --version
  expect 0 "usage: moe-robust $c" -- "$bin" $c --help
  out=$("$bin" $c --help); case "$out" in *--version*) ;; *) echo "FAIL $c --help does not list --version"; fail=1 ;; esac
done
# one version everywhere: CMake's project(VERSION), --version, CITATION.cff, CHANGELOG.md
v=$(sed -n 's/^project(moe_robust VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ "$version" = "moe-robust $v" ] && echo "ok   --version is CMake's $v" || { echo "FAIL --version '$version', CMakeLists.txt '$v'"; fail=1; }
grep -q "^version: $v\$" CITATION.cff && echo "ok   CITATION.cff version $v" || { echo "FAIL CITATION.cff lacks 'version: $v'"; fail=1; }
grep -q "^## \[$v\]" CHANGELOG.md && echo "ok   CHANGELOG.md has [$v]" || { echo "FAIL CHANGELOG.md lacks '## [$v]'"; fail=1; }
head -1 LICENSE | grep -q '^MIT License$' && grep -q '^license: MIT$' CITATION.cff && echo "ok   LICENSE and CITATION.cff: MIT" || { echo "FAIL LICENSE/CITATION.cff license"; fail=1; }
# run --dry-run: the grid of tests/configs/tiny-grid.ini (88 cells), nothing written
tmp=$(mktemp -d /tmp/mr-usage-XXXXXX)
cfg=tests/configs/tiny-grid.ini
expect 0 "nothing was written" -- "$bin" run $cfg --dry-run --out "$tmp/dry" --threads 1
out=$("$bin" run $cfg --dry-run --out "$tmp/dry" --threads 1 2>&1)
total=$(echo "$out" | awk '$1 == "total" {print $2, $3, $4, $5, $6}')
[ "$total" = "4 80 0 4 88" ] && echo "ok   dry run: 88 cells (4 clean, 80 corrupted, 0 attack, 4 fluctuation)" || { echo "FAIL dry run totals '$total': $out"; fail=1; }
[ -e "$tmp/dry" ] && { echo "FAIL --dry-run created $tmp/dry"; fail=1; } || echo "ok   --dry-run wrote nothing"
echo "$out" | grep -q '^tiny/sim@k2 .* 22 ' && echo "ok   dry run: tiny/sim@k2 has 22 cells" || { echo "FAIL dry run group line: $out"; fail=1; }
expect 2 "--dry-run covers the whole grid" -- "$bin" run $cfg --dry-run --shard 0/2
# --set: the same hash as the edited file; the resolved config holds the value
sed 's/^seed = 3$/seed = 4/; s/^tau = 2$/tau = 0.5/' $cfg > "$tmp/edited.ini"
hash_of() { sed -n 's/^config .*(config_hash \([0-9a-f]*\)).*/\1/p'; }
h1=$("$bin" run "$tmp/edited.ini" --dry-run --threads 1 2>&1 | hash_of)
h2=$("$bin" run $cfg --set run.seed=4 --set router.sim.tau=0.5 --dry-run --threads 1 2>&1 | hash_of)
h0=$("$bin" run $cfg --dry-run --threads 1 2>&1 | hash_of)
[ -n "$h1" ] && [ "$h1" = "$h2" ] && [ "$h0" != "$h1" ] && echo "ok   --set gives the edited file's config hash $h1" || { echo "FAIL --set hash $h2 vs edited $h1"; fail=1; }
"$bin" run $cfg --set run.limit=2 --set corruptions.names=contrast --set corruptions.severities=1 \
    --set router.sim.corruptions=no --out "$tmp/set" --threads 1 --quiet || { echo "FAIL run --set exited $?"; fail=1; }
grep -q '^limit = 2$' "$tmp/set/config.ini" && grep -q '^names = contrast$' "$tmp/set/config.ini" &&
  echo "ok   DIR/config.ini holds the --set values" || { echo "FAIL config.ini: $(cat "$tmp/set/config.ini")"; fail=1; }
n=$(grep -c '"id":' "$tmp/set/summary.json")
# softmax@k1, softmax@k2, attention@k2: clean, contrast/s1, fluct; sim@k2: clean, fluct
[ "$n" -eq 11 ] && echo "ok   run --set: 11 cells" || { echo "FAIL run --set: $n cells, expected 11"; fail=1; }
"$bin" merge "$tmp/set" 2>/dev/null && echo "ok   merge reads the resolved config back" || { echo "FAIL merge of a --set run"; fail=1; }
expect 2 "--set run.limit=x: limit = x: not an integer" -- "$bin" run $cfg --set run.limit=x --out "$tmp/x"
[ -e "$tmp/x" ] && { echo "FAIL a bad --set wrote $tmp/x"; fail=1; }
rm -rf "$tmp"
exit $fail
