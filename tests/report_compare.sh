#!/bin/sh
# The report's comparison table (docs/reports.md "Comparison"):
# - a run with router swaps on one ViT and a trained variant (vit-cosine) gives one table,
#   report.md's first section, with every (model, router@k) in config order; its clean
#   accuracies are results.h5's; its significance stars are McNemar's exact test against
#   the reference row with Holm's correction, recomputed here (tests/report_compare.py;
#   the frozen random router at k = 1 loses about 5 points of accuracy on these 200
#   images: at level 0.8 one star at least is expected);
#   bold only in columns with a better direction;
# - a run with a single router bolds nothing (comparison and per-model tables);
# - `report a b b2 --out m`: one row per (run, model, router@k), and b and b2 (same config
#   but the seed) averaged with their standard deviation;
# - a second report into the same directory keeps a restyled .gp (the new one beside it,
#   said on stderr and in report.md); figures.pdf has one page per figure (pdfunite);
#   report.md names the PDF font;
# - the char LM with the attention router swapped in collapses (bpc far above softmax's):
#   its row is marked † and bold nowhere.
set -u
bin=$1
py=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-compare-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $1"; fail=1; }
fm=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
cat > "$tmp/a.ini" <<EOF2
[run]
seed = 1
bootstrap = 200
limit = 200
level = 0.8
reference = softmax
[data]
path = $fm
[model vit]
path = models/fmnist-vit-moe-softmax.h5
checkpoint = models/fmnist-vit-moe-softmax-ep11.h5
checkpoint = models/fmnist-vit-moe-softmax.h5
routers = softmax random momentum
[model vit-cosine]
path = models/fmnist-vit-moe-cosine.h5
routers = cosine
[router softmax]
[router random]
top_k = 1,2
[router momentum]
[router cosine]
[corruptions]
names = shot_noise, rotate
severities = 4
EOF2
run() { # INI OUT
  "$bin" run "$1" --out "$2" --threads 2 --quiet >/dev/null 2>"$tmp/err" &&
    "$bin" report "$2" --out "$2/rep" --no-render --quiet >/dev/null 2>>"$tmp/err" ||
    bad "run/report $1: $(cat "$tmp/err")"
}
run "$tmp/a.ini" "$tmp/a"
$py tests/report_compare.py "$tmp/a" vit/softmax@k2 vit/random@k1 vit/random@k2 \
  vit/momentum@k2 vit-cosine/cosine@k2 || fail=1
first=$(grep -m1 '^## ' "$tmp/a/rep/report.md")
[ "$first" = "## Comparison" ] || bad "report.md opens with '$first', not the comparison"
grep -q '\\toprule' "$tmp/a/rep/table-comparison.tex" && grep -q 'Holm' "$tmp/a/rep/table-comparison.tex" ||
  bad "table-comparison.tex: no booktabs table naming Holm's correction"

# one router: nothing is "best"
sed -e 's/^routers = softmax random momentum$/routers = softmax/' -e 's/^limit = 200$/limit = 60/' -e '/^\[model vit-cosine\]/,/^routers = cosine$/d' \
  "$tmp/a.ini" > "$tmp/b.ini"
run "$tmp/b.ini" "$tmp/b"
for f in table-comparison.md table-vit-summary.md table-vit-families.md; do
  [ -f "$tmp/b/rep/$f" ] || bad "$f missing"
  ! grep -q '\*\*' "$tmp/b/rep/$f" || bad "$f bolds a value of its single row"
done

# several runs: one row per (run, model, router@k); b and b2 differ only by seed
sed 's/^seed = 1$/seed = 2/' "$tmp/b.ini" > "$tmp/b2.ini"
run "$tmp/b2.ini" "$tmp/b2"
"$bin" report "$tmp/a" "$tmp/b" "$tmp/b2" --out "$tmp/m" --no-render --quiet >/dev/null 2>"$tmp/err" ||
  bad "report of three runs: $(cat "$tmp/err")"
$py - "$tmp" <<'EOF2' || fail=1
import sys
t = sys.argv[1]
def rows(path):
    return [[c.strip() for c in x.split("|")[1:-1]] for x in open(path).read().splitlines()
            if x.startswith("| ") and not x.startswith(("| run ", "| runs ", "| model "))]
runs = rows(f"{t}/m/table-runs.md")
want = [("a", "vit", "softmax@k2"), ("a", "vit", "random@k1"), ("a", "vit", "random@k2"),
        ("a", "vit", "momentum@k2"), ("a", "vit-cosine", "cosine@k2"), ("b", "vit", "softmax@k2"),
        ("b2", "vit", "softmax@k2")]
got = [tuple(r[:3]) for r in runs]
if got != want:
    sys.exit(f"FAIL table-runs rows {got}")
seeds = rows(f"{t}/m/table-seeds.md")
if [r[:3] for r in seeds] != [["b, b2", "vit", "softmax@k2"]]:
    sys.exit(f"FAIL table-seeds rows {[r[:3] for r in seeds]}")
# corrupted accuracy: the mean over the two runs of their means, the sample std beside it
x = [float(r[4].split()[0]) for r in runs if r[0] in ("b", "b2")]
m, sd = sum(x) / 2, abs(x[0] - x[1]) / 2 ** 0.5
got = seeds[0][4].split()
if abs(float(got[0]) - m) > 0.011 or (sd > 0.005 and abs(float(got[2]) - sd) > 0.02):
    sys.exit(f"FAIL over seeds {seeds[0][4]}, want {m:.2f} ± {sd:.2f} from {x}")
if "{b, b2}" not in open(f"{t}/m/report.md").read():
    sys.exit("FAIL report.md does not name b and b2 as seeds of one experiment")
print(f"several runs: {len(runs)} rows; over seeds {seeds[0][4]}")
EOF2
for d in run-1-a run-2-b run-3-b2; do
  [ -f "$tmp/m/$d/table-comparison.md" ] || bad "no report of $d"
done

# a restyled script is kept, the new one written beside it; figures.pdf holds every figure
rep="$tmp/b/rep"
echo "set title 'restyled'" >> "$rep/fig-vit-flip.gp"
cp "$rep/fig-vit-flip.gp" "$tmp/mine.gp"
"$bin" report "$tmp/b" --out "$rep" >/dev/null 2>"$tmp/err" || bad "second report: $(cat "$tmp/err")"
cmp -s "$rep/fig-vit-flip.gp" "$tmp/mine.gp" || bad "the restyled fig-vit-flip.gp was overwritten"
[ -f "$rep/fig-vit-flip.new.gp" ] || bad "no fig-vit-flip.new.gp beside the restyled script"
grep -q "fig-vit-flip.gp.*edited" "$tmp/err" || bad "stderr does not say the script was kept"
grep -q 'Restyled scripts kept.*fig-vit-flip.gp' "$rep/report.md" || bad "report.md does not say it"
[ "$(ls "$rep" | grep -c '\.new\.gp$')" -eq 1 ] || bad "other scripts written as .new.gp: $(ls "$rep" | grep new.gp)"
if command -v pdfunite >/dev/null 2>&1; then
  figs=$(ls "$rep"/fig-*.gp | grep -vc '\.new\.gp$')
  pages=$(pdfinfo "$rep/figures.pdf" 2>/dev/null | awk '/^Pages:/ {print $2}')
  [ "$pages" = "$figs" ] || bad "figures.pdf has ${pages:-no} pages for $figs figures"
  ls "$rep" | grep -q 'page\.pdf$' && bad "page files left behind"
else
  grep -q 'No figures.pdf' "$rep/report.md" || bad "report.md does not say why figures.pdf is missing"
fi
grep -q '^PDF font: ' "$rep/report.md" || bad "report.md does not name the PDF font"

# the char LM: attention collapses, never best
cat > "$tmp/c.ini" <<EOF2
[run]
seed = 1
bootstrap = 100
limit = 12
batch = 4
reference = softmax
[data]
path = models/kjv-char-test.h5
[model lm]
path = models/kjv-char-moe-softmax.h5
[router softmax]
[router similarity]
[router attention]
EOF2
run "$tmp/c.ini" "$tmp/c"
t="$tmp/c/rep/table-comparison-lm.md"
grep -q '^| lm | attention@k2 †' "$t" || bad "attention on the char LM not marked collapsed: $(grep attention "$t")"
! grep '^| lm | attention' "$t" | grep -q '\*\*' || bad "the collapsed attention row is bold somewhere"
grep -q '^| lm | similarity@k2 | \*\*' "$t" || grep -q '^| lm | softmax@k2 (ref.) | \*\*' "$t" ||
  bad "no best clean bpc among the rows that did not collapse"
exit $fail
