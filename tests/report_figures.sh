#!/bin/sh
# The report's figure layout (docs/reports.md "Figures"), on the scripts and data it
# writes (tests/report_figures.py):
# - every figure: panel titles in the panels' top margin, never offset onto the plot;
#   >= 7 pt text in the PDF; keys below, outside or in the key strip; no accuracy-vs-k
#   figure whose curves all have one k, no co-activation heatmap of a k = 1 group (the
#   tiny grid runs softmax at k = 1 and 2); a cut axis has break marks;
# - the char LM with the attention router swapped in collapses (bpc ~3x softmax's): in
#   the severity and family figures it is drawn on the right y axis, in a band of its own
#   above a break, its values inside it, while softmax keeps the left axis over most of
#   the plot height; its key label says "(right axis)"; gnuplot renders those scripts;
# - a run without a collapsed router has no right axis.
set -u
bin=$1
py=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-figures-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL $1"; fail=1; }
render=--no-render
command -v gnuplot >/dev/null 2>&1 && render=

"$bin" run tests/configs/tiny-grid.ini --out "$tmp/tiny" --threads 2 --quiet || bad "tiny run exited $?"
"$bin" report "$tmp/tiny" $render --no-gallery --quiet || bad "tiny report exited $?"
$py tests/report_figures.py rules "$tmp/tiny/report" || fail=1
$py tests/report_figures.py one-axis "$tmp/tiny/report" || fail=1

cat > "$tmp/lm.ini" <<EOF
[run]
seed = 1
bootstrap = 50
limit = 12
batch = 4
reference = softmax
[data]
path = models/kjv-char-test.h5
[model lm]
path = models/kjv-char-moe-softmax.h5
[router softmax]
[router attention]
[corruptions]
names = char_swap, embed_gaussian
severities = 1, 5
EOF
"$bin" run "$tmp/lm.ini" --out "$tmp/lm" --threads 2 --quiet || bad "lm run exited $?"
"$bin" report "$tmp/lm" $render --no-gallery --quiet || bad "lm report exited $? (gnuplot on the right-axis scripts?)"
grep -q '^| lm | attention@k2 †' "$tmp/lm/report/table-comparison-lm.md" ||
  bad "attention on the char LM did not collapse here: the right-axis checks below would test nothing"
$py tests/report_figures.py rules "$tmp/lm/report" || fail=1
for f in fig-lm-severity-mean fig-lm-families; do
  $py tests/report_figures.py collapsed "$tmp/lm/report" $f attention@k2 || fail=1
done
if [ -z "$render" ]; then
  for f in fig-lm-severity-mean fig-lm-families; do
    [ -s "$tmp/lm/report/$f.png" ] || bad "$f.png not rendered"
  done
fi
exit $fail
