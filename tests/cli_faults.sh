#!/bin/sh
# Faults, hostile inputs and misuse through the real binary (issue #23; the promises
# and their tests are tabled in docs/reliability.md):
# - inputs that are not regular files (FIFO, /dev/zero, /dev/urandom, a directory) for
#   every input path: exit 2 naming the file, within seconds (never a hang);
# - stdout that cannot be written (/dev/full): exit 1 naming the error, never exit 0;
# - models with more MoE blocks (65, 300) and router attributes (40) than any fixed
#   buffer once held: inspect, eval, run and report work;
# - kill -9 while the summary (and a cell) is being written, asserted to have landed
#   there: no half-written output survives, --resume cleans the temporaries and gives the
#   uninterrupted result;
# - two processes on one output directory: the second is refused (exit 2) naming the
#   first, which is unharmed; shards share the directory;
# - an input changed between a run and its --resume (data, model, checkpoint, IDX
#   labels), or during the run: refused, naming the file; a touched but unchanged input
#   is not a change;
# - an output that is an input (also through a symlink or a hard link; for import, any
#   file of the checkpoint directory), or a device: refused before any work, the input
#   intact;
# - --out on a directory this tool did not make: refused, nothing changed;
# - identical runs give byte-identical results.h5, cells and every other HDF5 output (no
#   HDF5 timestamps).
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
fixture=$2
tmp=$(mktemp -d /tmp/mr-faults-XXXXXX)
pids=""
trap 'for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
same() { if cmp -s "$1" "$2"; then ok "$3"; else bad "$3 ($1 vs $2 differ)"; fi; }
F=tests/fixtures
M=$F/tiny-classify.h5
D=$F/tiny-images.h5
cfg=tests/configs/tiny-grid.ini

# expect RC NEEDLE CMD...: exit status RC within 30 s and NEEDLE in stderr+stdout
expect() {
  want=$1; needle=$2; shift 2
  out=$(timeout 30 "$@" 2>&1); rc=$?
  if [ "$rc" -eq 124 ]; then bad "[$*]: still running after 30 s (hang)"; return; fi
  if [ "$rc" -ne "$want" ]; then bad "[$*]: exit $rc, expected $want: $out"; return; fi
  case "$out" in *"$needle"*) ok "[$*]" ;; *) bad "[$*]: output lacks '$needle': $out" ;; esac
}

# ---------------------------------------------------------------- not regular files
mkdir "$tmp/nr"
mkfifo "$tmp/nr/fifo.ini" "$tmp/nr/fifo.h5" "$tmp/nr/fifo.json" "$tmp/nr/fifo-images-idx3-ubyte.gz"
mkdir "$tmp/nr/idx" "$tmp/nr/rr" "$tmp/nr/mm" "$tmp/nr/d.h5"
cp $F/tiny-images-idx3-ubyte.gz "$tmp/nr/idx/"
mkfifo "$tmp/nr/idx/tiny-labels-idx1-ubyte.gz" "$tmp/nr/rr/results.h5" "$tmp/nr/mm/config.ini"
printf '[data]\npath = %s\n[model m]\npath = %s\n[router softmax]\n' "$tmp/nr/fifo.h5" $M > "$tmp/nr/data-fifo.ini"
printf '[data]\npath = %s\n[model m]\npath = /dev/zero\n[router softmax]\n' $D > "$tmp/nr/model-zero.ini"
for special in "$tmp/nr/fifo.h5" /dev/zero /dev/urandom "$tmp/nr/d.h5"; do
  expect 2 "$special: not a regular file" "$bin" inspect "$special"
  expect 2 "$special: not a regular file" "$bin" eval --model "$special" --data $D
  expect 2 "$special: not a regular file" "$bin" eval --model $M --data "$special"
  expect 2 "$special: not a regular file" "$bin" eval --model $M --data $D --compare-checkpoint "$special"
  expect 2 "$special: not a regular file" "$bin" corrupt --data "$special" --corruption fog:1 --out "$tmp/nr/x.h5"
  expect 2 "$special: not a regular file" "$bin" run "$special" --out "$tmp/nr/o"
  expect 2 "$special: not a regular file" "$bin" check "$F" --baseline "$special"
done
expect 2 "fifo.ini: not a regular file" "$bin" run "$tmp/nr/fifo.ini" --out "$tmp/nr/o"
expect 2 "fifo.h5: not a regular file" "$bin" run "$tmp/nr/data-fifo.ini" --out "$tmp/nr/o"
expect 2 "/dev/zero: not a regular file" "$bin" run "$tmp/nr/model-zero.ini" --out "$tmp/nr/o"
expect 2 "fifo-images-idx3-ubyte.gz: not a regular file" "$bin" eval --model $M --data "$tmp/nr/fifo-images-idx3-ubyte.gz"
expect 2 "tiny-labels-idx1-ubyte.gz: not a regular file" "$bin" eval --model $M --data "$tmp/nr/idx/tiny-images-idx3-ubyte.gz"
expect 2 "fifo.json: not a regular file" "$bin" check "$F" --baseline "$tmp/nr/fifo.json"
expect 2 "results.h5: not a regular file" "$bin" report "$tmp/nr/rr"
expect 2 "results.h5: not a regular file" "$bin" baseline "$tmp/nr/rr"
expect 2 "config.ini: not a regular file" "$bin" merge "$tmp/nr/mm"
mkdir "$tmp/nr/hf"
mkfifo "$tmp/nr/hf/config.json"
expect 2 "config.json: not a regular file" "$bin" import "$tmp/nr/hf" --out "$tmp/nr/hf.h5"
[ -e "$tmp/nr/o" ] && bad "an output directory was created for a refused input" || ok "nothing created for refused inputs"

# ---------------------------------------------------------------- stdout errors
if [ -w /dev/full ]; then
  for c in "inspect $M" "eval --model $M --data $D --bootstrap 10" "corrupt --list" "--help" \
           "run --help" "check --help" "eval --help"; do
    # shellcheck disable=SC2086
    out=$("$bin" $c 2>&1 >/dev/full); rc=$?
    [ $rc -eq 1 ] && case "$out" in *"cannot write to standard output (No space left on device)"*) ok "$c > /dev/full: exit 1";; *) bad "$c > /dev/full: message: $out";; esac || bad "$c > /dev/full: exit $rc (output lost)"
  done
else
  bad "/dev/full is not writable: the stdout error checks cannot run"
fi

# ---------------------------------------------------------------- deep models
for n in 65 300; do
  "$fixture" deep "$tmp/deep$n.h5" $n || bad "mr_fixture deep $n"
  expect 0 "blocks       $n" "$bin" inspect "$tmp/deep$n.h5"
  expect 0 "routing per MoE layer" "$bin" eval --model "$tmp/deep$n.h5" --data $D --bootstrap 10 --save-routing "$tmp/deep$n-routing.h5"
  printf '[run]\nbootstrap = 20\n[data]\npath = %s\n[model deep]\npath = %s\n[router softmax]\n[corruptions]\nnames = contrast\nseverities = 1\n' \
    $D "$tmp/deep$n.h5" > "$tmp/deep$n.ini"
  expect 0 "" "$bin" run "$tmp/deep$n.ini" --out "$tmp/deep$n" --quiet
  n_layers=$(grep -c '"layer":' "$tmp/deep$n/summary.json")
  [ "$n_layers" -eq $((2 * n)) ] && ok "$n blocks: every layer in summary.json" || bad "$n blocks: $n_layers layer entries, expected $((2 * n))"
  expect 0 "" "$bin" report "$tmp/deep$n" --no-render --no-gallery --quiet
  left=$(find "$tmp/deep$n" -name '*.tmp-*' | wc -l)
  [ "$left" -eq 0 ] && ok "$n blocks: no temporary files" || bad "$n blocks: $left temporary files left"
done
# momentum routes as softmax in the first two MoE blocks (gamma = 1), not from the third on
"$fixture" deep "$tmp/deep3.h5" 3 || bad "mr_fixture deep 3"
"$bin" eval --model "$tmp/deep3.h5" --data $D --bootstrap 0 --router softmax | grep -A3 "^  layer  *entropy" > "$tmp/soft.txt"
"$bin" eval --model "$tmp/deep3.h5" --data $D --bootstrap 0 --router momentum --router-opt mu=0.9 | grep -A3 "^  layer  *entropy" > "$tmp/mom.txt"
if [ "$(sed -n 2,3p "$tmp/soft.txt")" = "$(sed -n 2,3p "$tmp/mom.txt")" ] && [ "$(sed -n 4p "$tmp/soft.txt")" != "$(sed -n 4p "$tmp/mom.txt")" ]; then
  ok "momentum: MoE blocks 0 and 1 route as softmax, block 2 does not"
else
  bad "momentum vs softmax on 3 MoE blocks: $(cat "$tmp/soft.txt" "$tmp/mom.txt")"
fi
"$fixture" router-attrs "$tmp/attrs.h5" 40 || bad "mr_fixture router-attrs"
n=$("$bin" inspect "$tmp/attrs.h5" | grep -c 'router data')
[ "$n" -eq 80 ] && ok "40 router attributes per block: all read" || bad "router attributes: $n of 80 listed"
expect 0 "router       softmax" "$bin" eval --model "$tmp/attrs.h5" --data $D --bootstrap 0
# a model trained with a router this build does not know: named with its file
"$fixture" unknown-router "$tmp/unknown-router.h5" 2 || bad "mr_fixture unknown-router"
expect 2 "unknown-router.h5: attribute router = 'no-such-router' names no router" "$bin" eval --model "$tmp/unknown-router.h5" --data $D
expect 0 "router       softmax" "$bin" eval --model "$tmp/unknown-router.h5" --data $D --router softmax --bootstrap 0
# a model the user may not read: "permission denied", not "not an HDF5 file" (as root, the
# check runs as nobody)
cp $M "$tmp/secret.h5"
chmod 000 "$tmp/secret.h5"
if [ "$(id -u)" -eq 0 ]; then
  chmod 755 "$tmp"
  asuser="setpriv --reuid=65534 --regid=65534 --clear-groups"
else
  asuser=""
fi
# shellcheck disable=SC2086
expect 2 "secret.h5: permission denied" $asuser "$bin" inspect "$tmp/secret.h5"
# shellcheck disable=SC2086
expect 2 "secret.h5: permission denied" $asuser "$bin" eval --model $(pwd)/$M --data "$tmp/secret.h5"

# ---------------------------------------------------------------- reference run
"$bin" run $cfg --out "$tmp/ref" --threads 2 --quiet || bad "reference run exited $?"
"$bin" run $cfg --out "$tmp/ref2" --threads 1 --quiet || bad "second reference run exited $?"
same "$tmp/ref/results.h5" "$tmp/ref2/results.h5" "results.h5 byte-identical across identical runs"
for c in "$tmp/ref/cells/"*.h5; do
  cmp -s "$c" "$tmp/ref2/cells/$(basename "$c")" || { bad "cell $(basename "$c") differs between identical runs"; break; }
done
ok "cells byte-identical across identical runs"
"$bin" eval --model $M --data $D --bootstrap 0 --save-routing "$tmp/r1.h5" >/dev/null
"$bin" eval --model $M --data $D --bootstrap 0 --save-routing "$tmp/r2.h5" >/dev/null
same "$tmp/r1.h5" "$tmp/r2.h5" "--save-routing byte-identical across identical runs"
"$bin" corrupt --data $D --corruption fog:2 --out "$tmp/c1.h5" >/dev/null
"$bin" corrupt --data $D --corruption fog:2 --out "$tmp/c2.h5" >/dev/null
same "$tmp/c1.h5" "$tmp/c2.h5" "corrupt --out byte-identical across identical runs"
# every other HDF5 writer likewise (a second apart: a recorded time would differ)
for w in "import $F/hf/mixtral-f32" "attack --model $M --data $D --method fgsm --eps 0.1 --bootstrap 0" \
         "compress --model $M --calib $D --method prune-freq --experts 2"; do
  # shellcheck disable=SC2086
  "$bin" $w --out "$tmp/w.h5" >/dev/null 2>&1 && mv "$tmp/w.h5" "$tmp/w1.h5"
  sleep 1.1
  # shellcheck disable=SC2086
  "$bin" $w --out "$tmp/w.h5" >/dev/null 2>&1 && mv "$tmp/w.h5" "$tmp/w2.h5"
  same "$tmp/w1.h5" "$tmp/w2.h5" "${w%% *} --out byte-identical across identical runs"
done

# ---------------------------------------------------------------- kill -9 mid-write
for victim in results.h5 summary.json "tiny~softmax@k2~rotate~s3.h5"; do
  d="$tmp/kill-$victim"
  MR_FAULT_KILL_BEFORE_RENAME=$victim "$bin" run $cfg --out "$d" --threads 2 --quiet 2>/dev/null
  rc=$?
  left=$(find "$d" -name "$victim.tmp-*" | wc -l)
  # the kill landed while $victim was being written: its complete temporary is there, the
  # file itself is not
  if [ $rc -eq 137 ] && [ "$left" -eq 1 ] && ! find "$d" -name "$victim" | grep -q .; then
    ok "kill -9 landed while $victim was written"
  else
    bad "kill -9 while writing $victim: exit $rc, $left temporaries"
  fi
  [ -e "$d/summary.json" ] && bad "$victim: a summary survived the kill" || ok "$victim: no summary from the killed run"
  "$bin" run $cfg --out "$d" --threads 1 --quiet --resume || bad "resume after the kill exited $?"
  left=$(find "$d" -name '*.tmp-*' | wc -l)
  [ "$left" -eq 0 ] && ok "$victim: resume removed the temporaries" || bad "$victim: $left temporaries after resume"
  same "$tmp/ref/summary.json" "$d/summary.json" "$victim: killed + resumed == uninterrupted"
  same "$tmp/ref/results.h5" "$d/results.h5" "$victim: results.h5 identical to the uninterrupted run's"
done

# a disk error while the last cell is written (the cell files are written by a thread of
# their own, io/mr_file_queue.h: its last write's error must still stop the run)
# (the last cell the grid computes, from its progress lines: file times are too coarse)
last=$("$bin" run $cfg --out "$tmp/order" --threads 2 2>&1 |
       sed -n 's|^cell [0-9]*/[0-9]* \([^ ]*\) .*|\1|p' | tail -n 1 | tr / '~').h5
[ -e "$tmp/order/cells/$last" ] && ok "the last cell computed: $last" || bad "no last cell from the progress lines: '$last'"
out=$(MR_FAULT_FAIL_WRITE=$last "$bin" run $cfg --out "$tmp/eio" --threads 2 --quiet 2>&1); rc=$?
[ $rc -eq 1 ] && ok "a failed write of the last cell: exit 1" || bad "a failed write of the last cell: exit $rc: $out"
case "$out" in *"$last: cannot write (Input/output error)"*) ok "the failed cell write named: $last" ;;
  *) bad "failed cell write: message: $out" ;; esac
[ -e "$tmp/eio/summary.json" ] && bad "a summary despite the failed cell write" || ok "no summary after the failed cell write"
[ -e "$tmp/eio/cells/$last" ] && bad "the failed cell exists" || ok "the failed cell was not written"
n=$(ls "$tmp/eio/cells" | grep -c '\.h5$')
[ "$n" -eq $(($(ls "$tmp/ref/cells" | grep -c '\.h5$') - 1)) ] && ok "every other cell on disk ($n)" || bad "$n cells on disk after the failed last write"
"$bin" run $cfg --out "$tmp/eio" --threads 1 --quiet --resume || bad "resume after the failed write exited $?"
same "$tmp/ref/summary.json" "$tmp/eio/summary.json" "failed write + resume == uninterrupted"

# a report killed while writing report.md: the next report removes its temporary
MR_FAULT_KILL_BEFORE_RENAME=report.md "$bin" report "$tmp/ref2" --no-render --no-gallery --quiet 2>/dev/null
rc=$?
n=$(find "$tmp/ref2/report" -name 'report.md.tmp-*' | wc -l)
[ $rc -eq 137 ] && [ "$n" -eq 1 ] && [ ! -e "$tmp/ref2/report/report.md" ] && ok "kill -9 landed while report.md was written" || bad "report kill: exit $rc, $n temporaries"
"$bin" report "$tmp/ref2" --no-render --no-gallery --quiet || bad "report after the kill exited $?"
n=$(find "$tmp/ref2/report" -name '*.tmp-*' | wc -l)
[ "$n" -eq 0 ] && [ -s "$tmp/ref2/report/report.md" ] && ok "the next report removed the temporary" || bad "report: $n temporaries left"
: > "$tmp/ref2/report/table.md.tmp-99999"
"$bin" run $cfg --out "$tmp/ref2" --quiet --resume || bad "resume of a finished run exited $?"
[ -e "$tmp/ref2/report/table.md.tmp-99999" ] && bad "run --resume left a stale temporary in DIR/report" || ok "run --resume cleans DIR/report too"

# ---------------------------------------------------------------- two processes, one DIR
d="$tmp/busy"
MR_FAULT_STOP_AFTER_CELLS=3 "$bin" run $cfg --out "$d" --threads 1 --quiet &
first=$!
pids="$pids $first"
i=0
while [ $i -lt 300 ] && ! grep -q "^$first " "$d/.lock" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
# stopped after its third cell, holding the lock
sleep 0.5
expect 2 "in use by another moe-robust process (pid $first" "$bin" run $cfg --out "$d" --quiet --resume
expect 2 "in use by another moe-robust process (pid $first" "$bin" run $cfg --out "$d" --quiet
expect 2 "in use by another moe-robust process (pid $first" "$bin" run $cfg --out "$d" --quiet --shard 0/2
expect 2 "in use by another moe-robust process (pid $first" "$bin" merge "$d"
n=$(ls "$d/cells" | grep -c '\.h5$')
[ "$n" -eq 3 ] && ok "the refused processes wrote nothing (3 cells)" || bad "$n cells while the first run was stopped"
kill -CONT $first
wait $first; rc=$?
[ $rc -eq 0 ] && ok "the first run finished unharmed" || bad "the first run exited $rc"
same "$tmp/ref/summary.json" "$d/summary.json" "the first run's summary == reference"
# shards share a directory
d="$tmp/shards"
MR_FAULT_STOP_AFTER_CELLS=2 "$bin" run $cfg --out "$d" --threads 1 --quiet --shard 0/2 &
first=$!
pids="$pids $first"
i=0
while [ $i -lt 300 ] && ! grep -q "^$first " "$d/.lock" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
"$bin" run $cfg --out "$d" --threads 1 --quiet --shard 1/2 && ok "a second shard runs beside the first" || bad "second shard exited $?"
expect 2 "in use by another moe-robust process (pid $first" "$bin" merge "$d"
kill -CONT $first
wait $first || bad "shard 0/2 exited $?"
"$bin" merge "$d" 2>/dev/null || bad "merge exited $?"
same "$tmp/ref/summary.json" "$d/summary.json" "2 concurrent shards + merge == reference"

# ---------------------------------------------------------------- inputs changed
in="$tmp/in"
mkdir "$in"
cp $M $F/tiny-classify-perturbed.h5 $D $F/tiny-images-idx3-ubyte.gz $F/tiny-labels-idx1-ubyte.gz "$in/"
"$bin" corrupt --data $D --corruption contrast:1 --out "$in/other-images.h5" >/dev/null
sed -e "s#tests/fixtures/tiny-images.h5#$in/tiny-images.h5#" \
    -e "s#^path = tests/fixtures/tiny-classify.h5#path = $in/tiny-classify.h5#" \
    -e "s#^checkpoint = tests/fixtures/tiny-classify-perturbed.h5#checkpoint = $in/tiny-classify-perturbed.h5#" \
    $cfg > "$in/h5.ini"
sed -e "s#tests/fixtures/tiny-images.h5#$in/tiny-images-idx3-ubyte.gz#" $cfg > "$in/idx.ini"
# change FILE with NEW, resume CONFIG: refused naming FILE, then restored: resume works
changed() {
  what=$1; conf=$2; file=$3; new=$4
  d="$tmp/chg-$what"
  MR_FAULT_KILL_AFTER_CELLS=5 "$bin" run "$conf" --out "$d" --threads 1 --quiet 2>/dev/null
  cp "$file" "$tmp/saved"
  cp "$new" "$file"
  find "$d" -type f -exec md5sum {} + | sort > "$tmp/before.md5"
  expect 2 "$file ($what) changed since" "$bin" run "$conf" --out "$d" --quiet --resume
  find "$d" -type f -exec md5sum {} + | sort > "$tmp/after.md5"
  same "$tmp/before.md5" "$tmp/after.md5" "$what changed: the directory is untouched"
  cp "$tmp/saved" "$file"
  touch "$file" # a new time, the same content: not a change
  "$bin" run "$conf" --out "$d" --threads 1 --quiet --resume || bad "$what restored (touched): resume exited $?"
  [ -s "$d/summary.json" ] && ok "$what restored and touched: resume accepted" || bad "$what: no summary after resume"
}
changed data "$in/h5.ini" "$in/tiny-images.h5" "$in/other-images.h5"
changed model.tiny "$in/h5.ini" "$in/tiny-classify.h5" "$in/tiny-classify-perturbed.h5"
changed checkpoint.tiny.1 "$in/h5.ini" "$in/tiny-classify-perturbed.h5" "$in/tiny-classify.h5"
zcat "$in/tiny-labels-idx1-ubyte.gz" | gzip -9 -n > "$tmp/relabels.gz" # same labels, other bytes
changed labels "$in/idx.ini" "$in/tiny-labels-idx1-ubyte.gz" "$tmp/relabels.gz"
# DIR/config.ini's fingerprints are an input too: damaged or missing ones refuse a resume
d="$tmp/chg-data"
sed -i 's/^# input data size=\([0-9]*\) /# input data size=1\1 /' "$d/config.ini"
expect 2 "changed since" "$bin" run "$in/h5.ini" --out "$d" --quiet --resume
sed -i 's/^# input data .*$/# input data garbled/' "$d/config.ini"
expect 2 "records no fingerprint of $in/tiny-images.h5 (data)" "$bin" run "$in/h5.ini" --out "$d" --quiet --resume
sed -i '/^# input /d' "$d/config.ini"
expect 2 "records no fingerprint" "$bin" merge "$d"
# changed during the run: stopped after 3 cells, the data replaced, then continued
d="$tmp/chg-during"
MR_FAULT_STOP_AFTER_CELLS=3 "$bin" run "$in/h5.ini" --out "$d" --threads 1 --quiet 2>"$tmp/during.err" &
first=$!
pids="$pids $first"
i=0
while [ $i -lt 300 ] && ! grep -q "^$first " "$d/.lock" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
sleep 0.5
cp "$in/tiny-images.h5" "$tmp/saved"
cp "$in/other-images.h5" "$in/tiny-images.h5"
kill -CONT $first
wait $first; rc=$?
cp "$tmp/saved" "$in/tiny-images.h5"
[ $rc -eq 2 ] && grep -q "tiny-images.h5 (data) changed while this run used it" "$tmp/during.err" &&
  ok "data changed during the run: no summary, exit 2" || bad "changed during the run: exit $rc: $(cat "$tmp/during.err")"
[ -e "$d/summary.json" ] && bad "a summary was written from changed inputs" || ok "no summary from changed inputs"

# ---------------------------------------------------------------- outputs that are inputs
o="$tmp/oi"
mkdir "$o"
cp $M $D "$o/"
ln -s "$o/tiny-classify.h5" "$o/model-link.h5"
ln "$o/tiny-images.h5" "$o/data-hardlink.h5"
md5sum "$o/tiny-classify.h5" "$o/tiny-images.h5" > "$tmp/oi.md5"
expect 2 "is the input" "$bin" eval --model "$o/tiny-classify.h5" --data "$o/tiny-images.h5" --save-routing "$o/tiny-classify.h5"
expect 2 "is the input" "$bin" eval --model "$o/tiny-classify.h5" --data "$o/tiny-images.h5" --save-routing "$o/tiny-images.h5"
expect 2 "is the input" "$bin" eval --model "$o/tiny-classify.h5" --data "$o/tiny-images.h5" --save-routing "$o/model-link.h5"
expect 2 "is the input" "$bin" eval --model "$o/tiny-classify.h5" --data "$o/tiny-images.h5" --compare-checkpoint $M --save-routing "$o/data-hardlink.h5"
expect 2 "is the input" "$bin" corrupt --data "$o/tiny-images.h5" --corruption fog:1 --out "$o/tiny-images.h5"
expect 2 "is the input" "$bin" corrupt --data "$o/tiny-images.h5" --corruption fog:1 --out "$o/data-hardlink.h5"
expect 2 "is the input" "$bin" corrupt --data "$o/tiny-images.h5" --gallery "$o/tiny-images.h5"
expect 2 "is the input" "$bin" compress --model "$o/tiny-classify.h5" --calib "$o/tiny-images.h5" --method prune-freq --experts 2 --out "$o/model-link.h5"
expect 2 "is the input" "$bin" compress --model "$o/tiny-classify.h5" --calib "$o/tiny-images.h5" --method prune-freq --experts 2 --out "$o/data-hardlink.h5"
expect 2 "is the input" "$bin" attack --model "$o/tiny-classify.h5" --data "$o/tiny-images.h5" --method fgsm --eps 0.1 --out "$o/data-hardlink.h5"
expect 2 "is the input" "$bin" attack --model "$o/tiny-classify.h5" --data "$o/tiny-images.h5" --method fgsm --eps 0.1 --out "$o/model-link.h5"
expect 2 "is the input" "$bin" baseline "$tmp/ref" --out "$tmp/ref/results.h5"
"$bin" baseline "$tmp/ref" > "$o/base.json" 2>/dev/null
expect 2 "is the input" "$bin" check "$tmp/ref" --baseline "$o/base.json" --junit "$o/base.json"
expect 2 "is the input" "$bin" check "$tmp/ref" --baseline "$o/base.json" --junit "$tmp/ref/results.h5"
# import reads every file of its checkpoint directory (the index names the shards)
cp -r $F/hf/mixtral-f32 "$o/ck"
ln -s "$o/ck/model-00001-of-00002.safetensors" "$o/shard-link.h5"
md5sum "$o/ck/"* >> "$tmp/oi.md5"
expect 2 "is the input" "$bin" import "$o/ck" --out "$o/ck/config.json"
expect 2 "is the input" "$bin" import "$o/ck" --out "$o/ck/model.safetensors.index.json"
expect 2 "is the input" "$bin" import "$o/ck" --out "$o/shard-link.h5"
md5sum -c --quiet "$tmp/oi.md5" && ok "the inputs are intact" || bad "an input was overwritten"
same "$tmp/ref2/results.h5" "$tmp/ref/results.h5" "results.h5 intact"
# a device as an output: refused, never replaced (as root, --save-routing /dev/null would
# have replaced /dev/null). A device node of our own, so that a regression cannot harm the
# machine's /dev/null: mknod needs root; a FIFO stands in otherwise.
if [ "$(id -u)" -eq 0 ] && mknod "$o/null" c 1 3 2>/dev/null; then kind="a character device"; else mkfifo "$o/null"; kind="a FIFO"; fi
expect 2 "null: exists and is not a regular file ($kind)" "$bin" eval --model $M --data $D --save-routing "$o/null"
expect 2 "null: exists and is not a regular file ($kind)" "$bin" corrupt --data $D --corruption fog:1 --out "$o/null"
expect 2 "null: exists and is not a regular file ($kind)" "$bin" baseline "$tmp/ref" --out "$o/null"
[ -c "$o/null" ] || [ -p "$o/null" ] && ok "the device is still a device" || bad "the device output was replaced"

# ---------------------------------------------------------------- directories not ours
d="$tmp/user"
mkdir "$d"
echo "my own results" > "$d/results.h5"
echo "{}" > "$d/summary.json"
find "$d" -type f -exec md5sum {} + | sort > "$tmp/before.md5"
expect 2 "is not empty (it holds" "$bin" run $cfg --out "$d" --quiet
expect 2 "is not empty (it holds" "$bin" run $cfg --out "$d" --quiet --resume
find "$d" -type f -exec md5sum {} + | sort > "$tmp/after.md5"
same "$tmp/before.md5" "$tmp/after.md5" "a user's directory is left as it was"
ls -A "$d" | grep -q lock && bad "a lock file was left in the user's directory" || ok "no lock file left behind"
# report --out likewise: never over a user's own files
mkdir "$tmp/userrep"
echo "my notes" > "$tmp/userrep/report.txt"
expect 2 "is not empty (it holds report.txt)" "$bin" report "$tmp/ref" --out "$tmp/userrep" --no-render --quiet
[ "$(ls -A "$tmp/userrep")" = "report.txt" ] && ok "report left the user's directory as it was" || bad "report wrote into a user's directory: $(ls -A "$tmp/userrep")"
"$bin" report "$tmp/ref" --out "$tmp/newrep" --no-render --no-gallery --quiet && "$bin" report "$tmp/ref" --out "$tmp/newrep" --no-render --no-gallery --quiet &&
  ok "report writes into a new directory, and again into its own" || bad "report into a new or its own directory failed"
touch "$tmp/afile"
expect 2 "exists and is not a directory" "$bin" run $cfg --out "$tmp/afile" --quiet
# an empty directory, or one holding only a lock file and temporaries (a run killed before
# its config.ini was written), is a new run's
mkdir "$tmp/empty" "$tmp/stale"
: > "$tmp/stale/.lock"
: > "$tmp/stale/config.ini.tmp-99999"
: > "$tmp/stale/results.h5.tmp-18446744073709551615" # beyond any pid (once read as pid -1: "alive")
"$bin" run $cfg --out "$tmp/empty" --quiet && ok "an empty directory is used" || bad "empty directory: exit $?"
"$bin" run $cfg --out "$tmp/stale" --quiet && ok "a directory with only a lock and a temporary is used" || bad "stale directory: exit $?"
[ -e "$tmp/stale/config.ini.tmp-99999" ] && bad "a stale temporary survived" || ok "the stale temporary was removed"
[ -e "$tmp/stale/results.h5.tmp-18446744073709551615" ] && bad "a temporary named with no possible pid survived" || ok "a temporary named with no possible pid was removed"
exit $fail
