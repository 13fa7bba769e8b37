#!/bin/sh
# p-values end to end (issue #23 item 11; docs/metrics.md, "Statistics"): the one paired
# test of eval and the grid, seen where a user reads it.
# - B resamples resolve no p below 1/B: eval prints "p < 0.001", the grid's summary.json
#   writes "p": null with "p_below": 1/B, never a p of 0;
# - bootstrap = 0 means no p-value anywhere: eval prints "no p-value", the grid writes
#   null for every p (never 0, which would read as maximally significant), and the
#   vs_reference comparisons run no bootstrap either (lo = hi = mean).
set -u
bin=$1
tmp=$(mktemp -d /tmp/mr-stats-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
has() { if grep -q -- "$2" "$1"; then ok "$3"; else bad "$3 ('$2' not in $1)"; fi; }
hasnt() { if grep -q -- "$2" "$1"; then bad "$3 ('$2' in $1: $(grep -m1 -- "$2" "$1"))"; else ok "$3"; fi; }
lm="--model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 --limit 16 --threads 1"

# eval: a drop every resample keeps above 0 (26 % of tokens) is p < 1/B
# shellcheck disable=SC2086
"$bin" eval $lm --bootstrap 1000 --corruption char_substitute:5 > "$tmp/b1000.txt" || bad "eval exited $?"
has "$tmp/b1000.txt" "^accuracy_drop_p *p < 0.001$" "eval, B = 1000: p < 0.001"
# shellcheck disable=SC2086
"$bin" eval $lm --bootstrap 250 --corruption char_substitute:5 > "$tmp/b250.txt" || bad "eval exited $?"
has "$tmp/b250.txt" "^accuracy_drop_p *p < 0.004$" "eval, B = 250: p < 0.004"
# shellcheck disable=SC2086
"$bin" eval $lm --bootstrap 0 --corruption char_substitute:5 > "$tmp/b0.txt" || bad "eval exited $?"
has "$tmp/b0.txt" "^accuracy_drop_p *no p-value (no bootstrap)$" "eval, bootstrap 0: no p-value"
hasnt "$tmp/b0.txt" "p = 0" "eval, bootstrap 0: never p = 0"

# the grid: summary.json with B = 100 and with bootstrap = 0
cfg=tests/configs/tiny-grid.ini
"$bin" run $cfg --out "$tmp/g100" --threads 1 --quiet || bad "run (bootstrap 100) exited $?"
sed 's/^bootstrap = 100$/bootstrap = 0/' $cfg > "$tmp/b0.ini"
grep -q '^bootstrap = 0$' "$tmp/b0.ini" || bad "tiny-grid.ini no longer sets bootstrap = 100"
"$bin" run "$tmp/b0.ini" --out "$tmp/g0" --threads 1 --quiet || bad "run (bootstrap 0) exited $?"
# one JSON member per line, whatever cJSON's layout
tr ',{}' '\n\n\n' < "$tmp/g100/summary.json" | tr -d ' \t' > "$tmp/g100.lines"
tr ',{}' '\n\n\n' < "$tmp/g0/summary.json" | tr -d ' \t' > "$tmp/g0.lines"
has "$tmp/g100.lines" '^"p_below":0.01$' "grid, B = 100: a p below 1/B is the bound 0.01"
hasnt "$tmp/g100.lines" '^"\(accuracy_drop_\)\{0,1\}p":0$' "grid, B = 100: never a p of 0"
hasnt "$tmp/g100.lines" '^"\(accuracy_drop_\)\{0,1\}p":\([0-9]e-\|0\.00\)' "grid, B = 100: no p below 1/B"
n=$(grep -c '^"accuracy_drop_p":' "$tmp/g0.lines")
[ "$n" -gt 0 ] && ok "grid, bootstrap 0: $n accuracy drops" || bad "grid, bootstrap 0: no accuracy_drop_p at all"
hasnt "$tmp/g0.lines" '^"\(accuracy_drop_\)\{0,1\}p":[0-9]' "grid, bootstrap 0: every p is null"
hasnt "$tmp/g0.lines" 'p_below' "grid, bootstrap 0: no p bound"
# vs_reference without a bootstrap: every interval is the point (lo = hi = mean)
tr -d ' \t\n' < "$tmp/g0/summary.json" | tr '{}' '\n\n' |
  sed -n 's/^"mean":\([^,]*\),"lo":\([^,]*\),"hi":\([^,]*\),"p":null$/\1 \2 \3/p' > "$tmp/g0.ci"
n=$(wc -l < "$tmp/g0.ci")
m=$(awk '$1 != $2 || $1 != $3' "$tmp/g0.ci" | wc -l)
[ "$n" -gt 0 ] && [ "$m" -eq 0 ] && ok "grid, bootstrap 0: $n vs_reference intervals, all points" ||
  bad "grid, bootstrap 0: $m of $n vs_reference intervals are not points (a bootstrap ran)"
exit $fail
