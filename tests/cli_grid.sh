#!/bin/sh
# Grids on real data whose numbers are checked against an independent computation
# (issue 22): run -> report -> tests/grid_expected.py check, which recomputes every
# cell's means, the accuracy drops, load CV, CE / relative CE / mCE, the tables' bold
# rows and the entropy-ratio figure data with numpy from the cells' per-sample vectors
# and compares them with summary.json, report/ and the committed expected values.
#   1. tests/configs/fmnist-small-grid.ini: the shipped ViT on 49 Fashion-MNIST test
#      images, 4 routers@k x 4 corruptions x 5 severities + fluctuation, 99 % intervals;
#   2. examples/kjv.ini, the LM grid, on 4 sequences (3 corruptions x 2 severities),
#      then frozen with `baseline` and gated with `check`.
# Exit 77 (ctest: skipped, never passed) without Fashion-MNIST or python3-h5py.
set -u
bin=$1
fmnist=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
[ -r "$fmnist" ] || { echo "SKIP: $fmnist missing (Debian dataset-fashion-mnist; scripts/bootstrap installs it)"; exit 77; }
/usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null ||
  { echo "SKIP: /usr/bin/python3 lacks h5py or numpy (scripts/bootstrap --test installs them)"; exit 77; }
tmp=$(mktemp -d /tmp/mr-grid-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

"$bin" run tests/configs/fmnist-small-grid.ini --out "$tmp/fm" --threads 2 --quiet || bad "fmnist run exited $?"
"$bin" report "$tmp/fm" --no-render --no-gallery --quiet || bad "fmnist report exited $?"
/usr/bin/python3 tests/grid_expected.py check "$tmp/fm" tests/fixtures/grid-expected/fmnist-small.json ||
  bad "fmnist grid differs from tests/fixtures/grid-expected/fmnist-small.json (above)"

# the LM grid as shipped, on a small slice
"$bin" run examples/kjv.ini --set run.limit=4 --set run.bootstrap=50 \
  --set corruptions.names=char_swap,token_replace,embed_gaussian --set corruptions.severities=1,5 \
  --out "$tmp/kjv" --threads 2 --quiet || bad "kjv run exited $?"
"$bin" report "$tmp/kjv" --no-render --no-gallery --quiet || bad "kjv report exited $?"
/usr/bin/python3 tests/grid_expected.py check "$tmp/kjv" tests/fixtures/grid-expected/kjv-small.json ||
  bad "kjv grid differs from tests/fixtures/grid-expected/kjv-small.json (above)"
for t in table-lm-summary.md table-lm-corruptions.md fig-lm-severity.dat fig-lm-flip.dat; do
  [ -s "$tmp/kjv/report/$t" ] || bad "kjv report: $t missing"
done
grep -q "char-level LM (primary metric: bits per character)" "$tmp/kjv/report/report.md" &&
  ok "kjv report: bits per character as the primary metric" || bad "kjv report.md does not name bpc"
"$bin" baseline "$tmp/kjv" --out "$tmp/kjv-base.json" || bad "kjv baseline exited $?"
out=$("$bin" check "$tmp/kjv" --baseline "$tmp/kjv-base.json" --quiet 2>&1); rc=$?
[ $rc -eq 0 ] && ok "kjv check against its own baseline: exit 0" || bad "kjv check exited $rc: $out"
# a guarded LM metric (bpc, lower is better) made better in the baseline must regress
/usr/bin/python3 - "$tmp/kjv-base.json" "$tmp/kjv-better.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
n = 0
for key, m in b["metrics"].items():
    if key.endswith("/clean:bpc"):
        m["mean"] -= 0.5; m["lo"] -= 0.5; m["hi"] -= 0.5; n += 1
assert n > 0, "no clean bpc in the baseline"
json.dump(b, open(sys.argv[2], "w"))
EOF
out=$("$bin" check "$tmp/kjv" --baseline "$tmp/kjv-better.json" --quiet 2>&1); rc=$?
[ $rc -eq 1 ] && ok "kjv check: bpc 0.5 worse than the baseline regresses (exit 1)" || bad "kjv check vs a better baseline exited $rc: $out"
exit $fail
