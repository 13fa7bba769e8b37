#!/bin/sh
# `moe-robust run` / `merge` contract (issue: batch harness):
# - summary.json byte-identical for --threads 1 and 2, for 2 shards + merge, and after a
#   run killed with SIGKILL (at a fixed cell, and from outside after 3, 29 and 45 cells,
#   each asserted to have landed mid-run) and resumed, done cells never rewritten;
# - a bad config line: exit 2, message naming FILE:LINE, and an existing output
#   directory left exactly as it was;
# - a directory holding another config, or the same one without --resume, is refused.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cfg=tests/configs/tiny-grid.ini
tmp=$(mktemp -d /tmp/mr-run-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
same() { if cmp -s "$1" "$2"; then ok "$3"; else bad "$3 ($1 vs $2 differ)"; fi; }

"$bin" run $cfg --out "$tmp/t1" --threads 1 --quiet || bad "run --threads 1 exited $?"
"$bin" run $cfg --out "$tmp/t2" --threads 2 --quiet || bad "run --threads 2 exited $?"
same "$tmp/t1/summary.json" "$tmp/t2/summary.json" "summary.json identical for threads 1 and 2"
same "$tmp/t1/summary.csv" "$tmp/t2/summary.csv" "summary.csv identical for threads 1 and 2"
n=$(grep -c '"id":' "$tmp/t1/summary.json")
[ "$n" -eq 88 ] && ok "88 cells" || bad "expected 88 cells, got $n"
for f in results.h5 summary.json summary.csv config.ini; do
  [ -s "$tmp/t1/$f" ] && ok "$f written" || bad "$f missing"
done
ls "$tmp/t1/cells" | grep -q 'tmp-' && bad "temporary files left in cells/" || ok "no temporary files left"
# paired comparisons with the reference router: every non-reference cell has one
nvs=$(grep -c '"vs_reference"' "$tmp/t1/summary.json"); nmc=$(grep -c '"mcnemar_p"' "$tmp/t1/summary.json")
[ "$nvs" -eq 44 ] && ok "44 cells compared with the reference router" || bad "$nvs vs_reference entries, expected 44 (sim and attention: 22 each)"
[ "$nmc" -eq 42 ] && ok "McNemar for every compared non-fluctuation cell" || bad "$nmc mcnemar_p entries, expected 42"

# the router groups of a model share the router-independent prefix of each input set
# (docs/performance.md): a grid without sharing, and one whose budget keeps only the
# first micro-batch (3 images of 520 bytes), write the same bytes as the shared one
for v in 0 1600; do
  MR_SHARE_PREFIX=$v "$bin" run $cfg --out "$tmp/p$v" --threads 2 --quiet || bad "MR_SHARE_PREFIX=$v run exited $?"
  for f in summary.json summary.csv results.h5; do
    same "$tmp/t1/$f" "$tmp/p$v/$f" "$f identical with MR_SHARE_PREFIX=$v"
  done
  nd=0
  for c in "$tmp/t1/cells/"*.h5; do cmp -s "$c" "$tmp/p$v/cells/$(basename "$c")" || nd=$((nd + 1)); done
  [ $nd -eq 0 ] && ok "all 88 cell files identical with MR_SHARE_PREFIX=$v" || bad "$nd cell files differ with MR_SHARE_PREFIX=$v"
done
out=$(MR_SHARE_PREFIX=lots "$bin" run $cfg --out "$tmp/pbad" --quiet 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *MR_SHARE_PREFIX*) ok "a bad MR_SHARE_PREFIX: exit 2 naming it";; *) bad "message: $out";; esac || bad "bad MR_SHARE_PREFIX exited $rc"
[ -e "$tmp/pbad" ] && bad "a bad MR_SHARE_PREFIX wrote $tmp/pbad" || ok "nothing written for a bad MR_SHARE_PREFIX"

# shards, written to a shared directory and to separate ones
"$bin" run $cfg --out "$tmp/s" --shard 0/2 --threads 1 --quiet || bad "shard 0/2 exited $?"
[ -e "$tmp/s/summary.json" ] && bad "a shard assembled the summary alone" || ok "a shard does not assemble"
out=$("$bin" merge "$tmp/s" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"cells are not done yet"*) ok "merge refuses an incomplete grid";; *) bad "merge message: $out";; esac || bad "merge of an incomplete grid exited $rc"
"$bin" run $cfg --out "$tmp/s" --shard 1/2 --threads 2 --quiet || bad "shard 1/2 exited $?"
"$bin" merge "$tmp/s" 2>/dev/null || bad "merge exited $?"
same "$tmp/t1/summary.json" "$tmp/s/summary.json" "2 shards + merge == single run"
"$bin" run $cfg --out "$tmp/sa" --shard 0/3 --quiet && "$bin" run $cfg --out "$tmp/sb" --shard 1/3 --quiet &&
  "$bin" run $cfg --out "$tmp/sc" --shard 2/3 --quiet || bad "3 shards in separate dirs"
"$bin" merge "$tmp/sa" "$tmp/sb" "$tmp/sc" 2>/dev/null || bad "merge of separate dirs exited $?"
same "$tmp/t1/summary.json" "$tmp/sa/summary.json" "3 shards in separate dirs + merge == single run"

# inputs at long absolute paths: DIR/config.ini records each one's fingerprint and path
# on a comment line longer than a config line may be; `merge` must still read it
long="$tmp/$(printf 'a%.0s' $(seq 1 120))/fixtures"
mkdir -p "$long" && cp tests/fixtures/tiny-images.h5 tests/fixtures/tiny-classify.h5 tests/fixtures/tiny-classify-perturbed.h5 "$long/"
sed "s#tests/fixtures/#$long/#" $cfg > "$tmp/long.ini"
"$bin" run "$tmp/long.ini" --out "$tmp/lp" --shard 0/2 --quiet && "$bin" run "$tmp/long.ini" --out "$tmp/lp" --shard 1/2 --quiet || bad "shards with long input paths exited $?"
awk 'length > 198 && /^# input /' "$tmp/lp/config.ini" | grep -q . && ok "config.ini has fingerprint lines over 198 characters" || bad "no long fingerprint line in config.ini: the case tests nothing"
out=$("$bin" merge "$tmp/lp" 2>&1) && ok "merge reads a config.ini with long input paths" || bad "merge with long input paths: $out"
"$bin" run "$tmp/long.ini" --out "$tmp/lp1" --quiet || bad "long input paths: single run exited $?"
same "$tmp/lp1/summary.json" "$tmp/lp/summary.json" "long input paths: 2 shards + merge == single run"

# kill -9 at a fixed point (fault injection) and resume
MR_FAULT_KILL_AFTER_CELLS=37 "$bin" run $cfg --out "$tmp/k" --threads 2 --quiet 2>/dev/null
rc=$?
[ $rc -eq 137 ] && ok "killed by SIGKILL after 37 cells" || bad "fault injection: exit $rc, expected 137"
done_cells=$(ls "$tmp/k/cells" | grep -c '\.h5$')
[ "$done_cells" -eq 37 ] && ok "37 complete cells survive the kill" || bad "$done_cells cells after the kill"
[ -e "$tmp/k/summary.json" ] && bad "summary written by a killed run" || ok "no summary from the killed run"
out=$("$bin" run $cfg --out "$tmp/k" --quiet 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"add --resume"*) ok "restart without --resume refused";; *) bad "message: $out";; esac || bad "restart without --resume exited $rc"
# one done cell replaced by the same cell of another config (seed 4): its config hash
# differs, so the resume must recompute it, not keep it
"$bin" run $cfg --set run.seed=4 --out "$tmp/o" --threads 2 --quiet || bad "seed-4 run exited $?"
foreign="$tmp/k/cells/tiny~softmax@k1~clean.h5"
cp "$tmp/o/cells/tiny~softmax@k1~clean.h5" "$foreign"
# every other done cell's inode and nanosecond mtime: a cell written again (atomically:
# a new file renamed over it) changes both, even within the same second
find "$tmp/k/cells" -name '*.h5' ! -path "$foreign" -exec stat -c '%n %i %.9Y' {} + | sort > "$tmp/k-done.stat"
"$bin" run $cfg --out "$tmp/k" --threads 1 --resume 2>"$tmp/resume.log" || bad "resume exited $?"
same "$tmp/t1/summary.json" "$tmp/k/summary.json" "killed + resumed == uninterrupted (the other config's cell recomputed)"
[ "$(grep -c 'already done' "$tmp/resume.log")" -eq 36 ] && ok "resume skips the 36 done cells of this config" || bad "resume: $(grep -c 'already done' "$tmp/resume.log") cells skipped, expected 36"
stat -c '%n %i %.9Y' $(cut -d' ' -f1 "$tmp/k-done.stat") | sort > "$tmp/k-after.stat"
same "$tmp/k-done.stat" "$tmp/k-after.stat" "the 36 done cells untouched by the resume (inode and mtime)"
[ "$(ls "$tmp/k/cells" | grep -c '\.h5$')" -eq 88 ] && ok "resume completed the other 51 cells" || bad "resume left $(ls "$tmp/k/cells" | grep -c '\.h5$') of 88 cells"

# kill -9 from outside at a moment the run picks, then resume: the kill is asserted to
# have landed mid-run (some cells done, some not, no summary), else the case fails. The
# cells of this grid take milliseconds: on a loaded machine the polling shell can be off
# its core while the run finishes the rest, so a kill that came too late is tried again
# (3 tries), never counted as landed. (The cell files are written behind the compute,
# io/mr_file_queue.h: when the 61st appeared the rest could be all but done, and a kill
# at 61 missed three times once at load 8; 45 leaves the run more to do.)
i=0
for target in 3 29 45; do
  for try in 1 2 3; do
    rm -rf "$tmp/r"
    "$bin" run $cfg --out "$tmp/r" --threads 1 --quiet 2>/dev/null &
    pid=$!
    # wait until $target cells are complete, then kill at once
    t=0
    while [ "$(ls "$tmp/r/cells" 2>/dev/null | grep -c '\.h5$')" -lt $target ] && [ $t -lt 6000 ] && kill -0 $pid 2>/dev/null; do
      sleep 0.01; t=$((t + 1))
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    n=$(ls "$tmp/r/cells" 2>/dev/null | grep -c '\.h5$')
    [ "$n" -lt 88 ] && break
  done
  if [ "$n" -ge $target ] && [ "$n" -lt 88 ] && [ ! -e "$tmp/r/summary.json" ]; then
    ok "kill -9 #$i landed mid-run: $n of 88 cells done"
  else
    bad "kill -9 #$i did not land mid-run: $n of 88 cells done (wanted $target..87, no summary)"
  fi
  "$bin" run $cfg --out "$tmp/r" --threads 2 --quiet --resume 2>/dev/null || bad "resume after kill #$i exited $?"
  same "$tmp/t1/summary.json" "$tmp/r/summary.json" "kill -9 #$i after $n cells + resume == uninterrupted"
  i=$((i + 1))
done

# a bad config line: exit 2, FILE:LINE, existing directory unchanged
sed 's/^bootstrap = 100$/bootstrap = many/' $cfg > "$tmp/bad.ini"
find "$tmp/t1" -type f -exec md5sum {} + | sort > "$tmp/before.md5"
out=$("$bin" run "$tmp/bad.ini" --out "$tmp/t1" --resume 2>&1); rc=$?
[ $rc -eq 2 ] && ok "bad config exits 2" || bad "bad config exited $rc"
case "$out" in *"bad.ini:5: bootstrap = many"*) ok "message names the line: $out";; *) bad "message: $out";; esac
find "$tmp/t1" -type f -exec md5sum {} + | sort > "$tmp/after.md5"
same "$tmp/before.md5" "$tmp/after.md5" "existing output directory unchanged"
# a valid config that differs from the directory's
sed 's/^seed = 3$/seed = 4/' $cfg > "$tmp/other.ini"
out=$("$bin" run "$tmp/other.ini" --out "$tmp/t1" --resume 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"different configuration"*) ok "another config's directory refused";; *) bad "message: $out";; esac || bad "other config exited $rc"
find "$tmp/t1" -type f -exec md5sum {} + | sort > "$tmp/after2.md5"
same "$tmp/before.md5" "$tmp/after2.md5" "directory still unchanged"
# k beyond the model's experts names the top_k line
printf '[data]\npath = tests/fixtures/tiny-images.h5\n[model m]\npath = tests/fixtures/tiny-classify.h5\n[router softmax]\ntop_k = 1,9\n' > "$tmp/k.ini"
out=$("$bin" run "$tmp/k.ini" --out "$tmp/kk" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"k.ini:6: top_k = 9 exceeds n_experts"*) ok "k > E names its line";; *) bad "message: $out";; esac || bad "k > E exited $rc"
[ -e "$tmp/kk" ] && bad "output directory created for a bad config" || ok "nothing created for a bad config"
# MPI: 2 ranks on localhost, sharing the output directory, and with a private working
# directory each (no shared filesystem: rank 0 gathers the other's cells over MPI)
if command -v mpirun >/dev/null 2>&1; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  # under `scripts/test --sanitize`: OpenMPI's runtime (its dlopen'ed components) leaks at
  # MPI_Finalize; LeakSanitizer stays on for every non-MPI run of this suite
  saved_asan=${ASAN_OPTIONS-}
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
  mpirun -np 2 "$bin" run $cfg --out "$tmp/mpi" --threads 1 --quiet || bad "mpirun -np 2 exited $?"
  same "$tmp/t1/summary.json" "$tmp/mpi/summary.json" "mpirun -np 2 == single process"
  mpirun -np 1 "$bin" run $cfg --out "$tmp/mpi1" --threads 2 --quiet || bad "mpirun -np 1 exited $?"
  same "$tmp/t1/summary.json" "$tmp/mpi1/summary.json" "mpirun -np 1 == single process"
  for r in A B; do mkdir -p "$tmp/$r/tests"; ln -s "$(pwd)/tests/fixtures" "$tmp/$r/tests/fixtures"; ln -s "$(pwd)/tests/configs" "$tmp/$r/tests/configs"; done
  mpirun -np 1 -wdir "$tmp/A" "$bin" run $cfg --out out --quiet : -np 1 -wdir "$tmp/B" "$bin" run $cfg --out out --quiet ||
    bad "mpirun with private directories exited $?"
  same "$tmp/t1/summary.json" "$tmp/A/out/summary.json" "MPI without a shared filesystem: rank 0 gathered every cell"
  export ASAN_OPTIONS="$saved_asan"
else
  bad "mpirun not found (scripts/bootstrap installs openmpi-bin)"
fi
# corruptions = no: that router's groups have clean and fluctuation cells only
sed 's/^top_k = 1,2$/top_k = 1,2\ncorruptions = no/' $cfg > "$tmp/nocorr.ini"
"$bin" run "$tmp/nocorr.ini" --out "$tmp/nc" --quiet || bad "corruptions = no run exited $?"
n=$(grep -c '"id":' "$tmp/nc/summary.json")
[ "$n" -eq 48 ] && ok "corruptions = no: 48 cells (softmax 2 x 2, sim and attention 2 x 22)" || bad "corruptions = no: $n cells"
# [model] routers = ...: a second model that runs only the sim router; its CE and paired
# comparisons use the reference router (softmax) on the first model
sed 's/^\[router softmax\]$/[model other]\npath = tests\/fixtures\/tiny-classify-perturbed.h5\nrouters = sim\n\n[router softmax]/' $cfg > "$tmp/sel.ini"
"$bin" run "$tmp/sel.ini" --out "$tmp/sel" --quiet || bad "routers = run exited $?"
n=$(grep -c '"id":' "$tmp/sel/summary.json")
[ "$n" -eq 109 ] && ok "routers = sim: 109 cells (88 + other/sim: clean + 4 x 5)" || bad "routers = sim: $n cells, expected 109"
grep -q '"id":[[:space:]]*"other/softmax' "$tmp/sel/summary.json" && bad "other ran softmax" || ok "other runs only sim"
nvs=$(grep -c '"vs_reference"' "$tmp/sel/summary.json")
[ "$nvs" -eq 65 ] && ok "other/sim cells compared with tiny/softmax" || bad "$nvs vs_reference entries, expected 65"
grep -q '"reference":[[:space:]]*"tiny/softmax@k' "$tmp/sel/summary.json" && ok "CE of other/sim against tiny/softmax" || bad "no cross-model CE reference"
# [attack] (docs/attacks.md): white-box cells per router, transfer cells for the
# non-reference router, bit-identical for 1 and 2 threads, the report's attack section
acfg=tests/configs/attack-grid.ini
"$bin" run $acfg --out "$tmp/a1" --threads 1 --quiet || bad "attack grid --threads 1 exited $?"
"$bin" run $acfg --out "$tmp/a2" --threads 2 --quiet || bad "attack grid --threads 2 exited $?"
same "$tmp/a1/summary.json" "$tmp/a2/summary.json" "attack grid: summary.json identical for threads 1 and 2"
n=$(grep -c '"kind":[[:space:]]*"attack"' "$tmp/a1/summary.json")
[ "$n" -eq 12 ] && ok "12 attack cells (2 routers x 2 methods x 2 eps + 4 transfer)" || bad "$n attack cells, expected 12"
[ -e "$tmp/a1/cells/vit~similarity@k2~attack~pgd-transfer~e16.h5" ] && ok "transfer cell of the non-reference router" || bad "no similarity pgd-transfer cell"
ls "$tmp/a1/cells" | grep -q 'softmax@k2~attack~.*-transfer' && bad "the reference router got transfer cells" || ok "no transfer cells for the reference router"
# attacks must hurt: PGD at 16/255 below the clean accuracy for both routers (24 images)
for r in softmax similarity; do
  acc() { grep "^vit/$r@k2/$1," "$tmp/a1/summary.csv" | head -1 | cut -d, -f9; }
  c=$(acc clean); p=$(acc attack/pgd/e16)
  awk -v c="$c" -v p="$p" 'BEGIN { exit !(c != "" && p != "" && p + 0.2 < c) }' &&
    ok "$r: PGD 16/255 accuracy $p < clean $c - 0.2" || bad "$r: PGD 16/255 accuracy '$p' vs clean '$c'"
done
"$bin" report "$tmp/a1" --quiet --no-render || bad "report of the attack grid exited $?"
[ -s "$tmp/a1/report/fig-vit-attack.dat" ] && [ -s "$tmp/a1/report/table-vit-attacks.md" ] && ok "report: attack figure data and table" || bad "report: fig-vit-attack.dat or table-vit-attacks.md missing"
grep -q "### Adversarial attacks" "$tmp/a1/report/report.md" && grep -q "| pgd-transfer | similarity@k2 |" "$tmp/a1/report/report.md" && ok "report.md: attack section with transfer rows" || bad "report.md lacks the attack section"
printf '[data]\npath = tests/fixtures/tiny-tokens.h5\n[model lm]\npath = tests/fixtures/tiny-lm.h5\n[router softmax]\n[attack]\nmethods = pgd\n' > "$tmp/atok.ini"
out=$("$bin" run "$tmp/atok.ini" --out "$tmp/atok" --quiet 2>&1); rc=$?
[ $rc -eq 2 ] && [ ! -e "$tmp/atok" ] && case "$out" in *"atok.ini:7: [attack]"*"token sequences"*) ok "[attack] on token data refused before any output";; *) bad "[attack] on token data: $out";; esac || bad "[attack] on token data: exit $rc: $out"
"$bin" run --help | grep -q "usage: moe-robust run" && ok "run --help" || bad "run --help"
"$bin" merge --help | grep -q "usage: moe-robust merge" && ok "merge --help" || bad "merge --help"
exit $fail
