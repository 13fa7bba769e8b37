#!/bin/sh
# `moe-robust baseline` / `check` contract (issue: CI gate):
# - an unchanged run passes (exit 0), with JUnit XML of one testcase per metric;
# - a run whose router `sim` routes differently (same name, tau 2 -> 0.1 in a second
#   config) has top-1 flip rates beyond tolerance: exit 1, the metric is named on stdout
#   and in the JUnit failure; other routers' metrics are untouched;
# - tolerance files: a generous one passes, "ignore" rules skip, mode "ci" forgives
#   changes inside the baseline's bootstrap CI;
# - a malformed baseline or tolerance file: exit 2 and a message naming FILE:LINE:COL,
#   the column of the offending character (issue #23: cJSON placed some one late);
# - a tolerance rule that matches no metric (a typo) is exit 2 naming the rule;
# - with --junit, an exit 2 still writes a JUnit file with an <error> saying why;
# - attack cells (both objectives) are gated: a stronger attack fails the gate on them.
set -u
bin=$1
cfg=tests/configs/tiny-grid.ini
tmp=$(mktemp -d /tmp/mr-check-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
has() { if grep -q -- "$2" "$1"; then ok "$3"; else bad "$3 ($1 lacks '$2')"; fi; }

"$bin" run $cfg --out "$tmp/a" --threads 2 --quiet || bad "run a exited $?"
"$bin" baseline "$tmp/a" > "$tmp/base.json" 2>"$tmp/baseline.err"; rc=$?
[ $rc -eq 0 ] && ok "baseline exits 0" || bad "baseline exited $rc: $(cat "$tmp/baseline.err")"
has "$tmp/base.json" '"format":	"moe-robust-baseline"' "baseline format"
has "$tmp/base.json" '"tiny/sim@k2/rotate/s3:layer1/flip_top1":' "baseline names cell:layer/metric"
has "$tmp/base.json" '"tiny/softmax@k1:mce":' "baseline freezes mCE"

# 1. unchanged: pass
"$bin" check "$tmp/a" --baseline "$tmp/base.json" --junit "$tmp/a.xml" > "$tmp/a.out"; rc=$?
[ $rc -eq 0 ] && ok "unchanged run passes (exit 0)" || bad "unchanged run exited $rc"
has "$tmp/a.out" "0 regressed, 0 missing, 0 improved, 0 moved within tolerance" "nothing moved"
has "$tmp/a.out" "PASS" "verdict PASS"
has "$tmp/a.xml" '<testsuites name="moe-robust check" tests="424" failures="0"' "JUnit: 424 testcases, 0 failures"
[ "$(grep -c '<testcase ' "$tmp/a.xml")" -eq 424 ] && ok "JUnit: one testcase per metric" || bad "JUnit testcase count"
# a rerun of the same config (other thread count) passes too
"$bin" run $cfg --out "$tmp/a2" --threads 1 --quiet && "$bin" check "$tmp/a2" --baseline "$tmp/base.json" --quiet > /dev/null &&
  ok "rerun with --threads 1 passes" || bad "rerun with --threads 1 fails"

# 2. the router sim routes differently: its flip rates rise beyond tolerance
sed 's/^tau = 2$/tau = 0.1/' $cfg > "$tmp/b.ini"
grep -q '^tau = 0.1$' "$tmp/b.ini" || bad "could not edit tau in the test config"
"$bin" run "$tmp/b.ini" --out "$tmp/b" --threads 2 --quiet || bad "run b exited $?"
"$bin" baseline "$tmp/a" --metrics flip_top1,flip_topk_set > "$tmp/flips.json" 2>/dev/null || bad "baseline --metrics exited $?"
printf '{"format": "moe-robust-tolerance", "version": 1,\n "default": {"abs": 0.02}}\n' > "$tmp/tol.json"
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/tol.json" --junit "$tmp/b.xml" > "$tmp/b.out"; rc=$?
[ $rc -eq 1 ] && ok "flip rate rose: exit 1" || bad "flip rate rose: exit $rc"
has "$tmp/b.out" "REGRESSION  tiny/sim@k2/shot_noise/s4:layer1/flip_top1 " "the regressed metric is named"
has "$tmp/b.out" "FAIL" "verdict FAIL"
grep REGRESSION "$tmp/b.out" | grep -v '/sim@k2/' && bad "metrics of other routers regressed" || ok "only sim@k2 regressed"
has "$tmp/b.xml" 'classname="tiny/sim@k2/shot_noise/s4" name="layer1/flip_top1"' "JUnit testcase of the metric"
has "$tmp/b.xml" '<failure type="regression" message="tiny/sim@k2/shot_noise/s4:layer1/flip_top1: rose from 0.025 to 0.2' "JUnit failure: metric, baseline vs now"
has "$tmp/b.xml" 'tolerance 0.02' "JUnit failure: tolerance"
# --quiet still names it
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/tol.json" --quiet > "$tmp/bq.out"
has "$tmp/bq.out" "REGRESSION: tiny/sim@k2/shot_noise/s4:layer1/flip_top1: rose from" "--quiet names the regression"

# 3. tolerance files
printf '{"default": {"abs": 0.5}}' > "$tmp/loose.json"
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/loose.json" > /dev/null; rc=$?
[ $rc -eq 0 ] && ok "a generous tolerance passes" || bad "generous tolerance: exit $rc"
# the tolerance's edge: every accuracy of the baseline raised by 0.15 (or lowered), with
# abs = 0.1 and no relative or one-sample allowance: now 0.15 below the baseline is worse
# than allowed (regressed), 0.05 below is not, 0.15 above is an improvement
"$bin" baseline "$tmp/a" --metrics accuracy > "$tmp/acc.json" 2>/dev/null || bad "baseline --metrics accuracy exited $?"
shift_acc() { awk -v d="$1" '/"mean":|"lo":|"hi":/ { sub(/[-0-9.e]+,?$/, sprintf("%.17g%s", $2 + d, ($2 ~ /,$/) ? "," : "")) } { print }' "$tmp/acc.json" > "$2"; }
shift_acc 0.15 "$tmp/acc-hi.json"; shift_acc 0.05 "$tmp/acc-near.json"; shift_acc -0.15 "$tmp/acc-lo.json"
n_acc=$(grep -c ':accuracy"' "$tmp/acc.json")
printf '{"default": {"abs": 0.1, "rel": 0, "samples": 0}}' > "$tmp/edge.json"
"$bin" check "$tmp/a" --baseline "$tmp/acc-hi.json" --tolerance "$tmp/edge.json" --all > "$tmp/edge-hi.out"; rc=$?
[ $rc -eq 1 ] && [ "$(grep -c '^REGRESSION' "$tmp/edge-hi.out")" -eq "$n_acc" ] &&
  ok "accuracy 0.15 below the baseline, tolerance 0.1: all $n_acc regressed" || bad "0.15 below: exit $rc, $(grep -c '^REGRESSION' "$tmp/edge-hi.out") of $n_acc regressed"
"$bin" check "$tmp/a" --baseline "$tmp/acc-near.json" --tolerance "$tmp/edge.json" --all > "$tmp/edge-near.out"; rc=$?
[ $rc -eq 0 ] && ok "accuracy 0.05 below the baseline, tolerance 0.1: passes" || bad "0.05 below: exit $rc"
"$bin" check "$tmp/a" --baseline "$tmp/acc-lo.json" --tolerance "$tmp/edge.json" --all > "$tmp/edge-lo.out"; rc=$?
[ $rc -eq 0 ] && [ "$(grep -c '^improved ' "$tmp/edge-lo.out")" -eq "$n_acc" ] &&
  ok "accuracy 0.15 above the baseline: all $n_acc improved" || bad "0.15 above: exit $rc, $(grep -c '^improved ' "$tmp/edge-lo.out") improved"
# the relative part: abs 0, rel 1 allows a drop of the baseline's own size (>= 0.15 here)
printf '{"default": {"abs": 0, "rel": 1, "samples": 0}}' > "$tmp/rel.json"
"$bin" check "$tmp/a" --baseline "$tmp/acc-hi.json" --tolerance "$tmp/rel.json" > /dev/null; rc=$?
[ $rc -eq 0 ] && ok "rel = 1 allows the 0.15 drop" || bad "rel tolerance: exit $rc"
# the default tolerance, documented in docs/ci.md: max(1e-5, 1e-5 |baseline|, one sample);
# loss has no one-sample bound, so its baseline lowered by 1e-4 regresses, by 5e-6 not
shift_loss() { awk -v d="$1" '/"mean":|"lo":|"hi":/ { sub(/[-0-9.e]+,?$/, sprintf("%.17g%s", $2 + d, ($2 ~ /,$/) ? "," : "")) } { print }' "$tmp/loss.json" > "$2"; }
"$bin" baseline "$tmp/a" --metrics loss > "$tmp/loss.json" 2>/dev/null || bad "baseline --metrics loss exited $?"
shift_loss -1e-4 "$tmp/loss-4.json"; shift_loss -5e-6 "$tmp/loss-6.json"
"$bin" check "$tmp/a" --baseline "$tmp/loss-4.json" > /dev/null; rc=$?
[ $rc -eq 1 ] && ok "default tolerance: loss 1e-4 worse regresses" || bad "loss 1e-4 worse: exit $rc"
"$bin" check "$tmp/a" --baseline "$tmp/loss-6.json" > /dev/null; rc=$?
[ $rc -eq 0 ] && ok "default tolerance: loss 5e-6 worse passes" || bad "loss 5e-6 worse: exit $rc"
# a rule inherits every field it does not give from the default (docs/ci.md): with a
# generous default, a rule that sets only the mode still allows the default's 0.5
printf '{"default": {"abs": 0.5}, "rules": [{"match": "*/sim@*", "mode": "fixed"}]}' > "$tmp/inherit.json"
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/inherit.json" > "$tmp/inherit.out"; rc=$?
[ $rc -eq 0 ] && ok "a rule inherits the default tolerance" || bad "rule without abs: exit $rc ($(grep -c '^REGRESSION' "$tmp/inherit.out") regressions)"
printf '{"default": {"abs": 0.02}, "rules": [{"match": "*/sim@*", "ignore": true}]}' > "$tmp/ign.json"
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/ign.json" > "$tmp/ign.out"; rc=$?
[ $rc -eq 0 ] && ok "an ignore rule skips the router" || bad "ignore rule: exit $rc"
printf '{"default": {"abs": 0.02, "mode": "ci"}}' > "$tmp/ci.json"
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/ci.json" > "$tmp/ci.out"
fixed=$(grep -c '^REGRESSION' "$tmp/b.out"); ci=$(grep -c '^REGRESSION' "$tmp/ci.out")
[ "$ci" -lt "$fixed" ] && ok "mode ci forgives changes inside the CI ($ci < $fixed regressions)" || bad "mode ci: $ci regressions, fixed: $fixed"
"$bin" check "$tmp/b" --baseline "$tmp/base.json" > "$tmp/all.out"
has "$tmp/all.out" "config hash differs" "a different config is noted"

# 4. malformed inputs: exit 2 with a clear message
printf '{"format": "moe-robust-baseline",\n "version": 1,\n "metrics": {"tiny/softmax@k1/clean:accuracy": {"mean": 0.5,}}\n}\n' > "$tmp/bad1.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/bad1.json" 2>&1); rc=$?
[ $rc -eq 2 ] && ok "malformed baseline JSON: exit 2" || bad "malformed baseline JSON: exit $rc"
case "$out" in *"bad1.json:3:"*"malformed JSON"*) ok "message names FILE:LINE: $out";; *) bad "message: $out";; esac
head -c 300 "$tmp/base.json" > "$tmp/trunc.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/trunc.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"trunc.json:"*"malformed JSON"*) ok "truncated baseline: exit 2";; *) bad "message: $out";; esac || bad "truncated baseline: exit $rc"
printf '{"format": "moe-robust-baseline", "version": 1, "metrics": {"x:accuracy": {"mean": "high"}}}' > "$tmp/bad2.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/bad2.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *'metrics["x:accuracy"]: "mean" must be a finite number'*) ok "bad value: exit 2 naming the key";; *) bad "message: $out";; esac || bad "bad value: exit $rc"
out=$("$bin" check "$tmp/a" --baseline "$tmp/a.xml" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"a.xml:1:1: malformed JSON"*) ok "XML as baseline: exit 2";; *) bad "message: $out";; esac || bad "XML as baseline: exit $rc"
out=$("$bin" check "$tmp/a" --baseline "$tmp/nope.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"nope.json: no such file"*) ok "missing baseline: exit 2";; *) bad "message: $out";; esac || bad "missing baseline: exit $rc"
printf '{"default": {"relative": 0.1}}' > "$tmp/badtol.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/base.json" --tolerance "$tmp/badtol.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *'badtol.json: default: unknown key "relative"'*) ok "bad tolerance file: exit 2 naming the key";; *) bad "message: $out";; esac || bad "bad tolerance: exit $rc"
printf '{"default": {"abs": 0, "samples": -1}}' > "$tmp/badsamples.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/base.json" --tolerance "$tmp/badsamples.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *'badsamples.json: default: "samples" must be a number >= 0'*) ok "samples < 0: exit 2 naming the key";; *) bad "message: $out";; esac || bad "samples < 0: exit $rc"
# samples: a move of up to that many samples' outcome is absorbed: one of the 8 samples
# moves a flip rate by 1/8, so samples 1 forgives the moves of 0.05 to 0.125 that abs
# 0.02 alone reports, and still reports the larger ones
printf '{"default": {"abs": 0.02, "samples": 1}}' > "$tmp/samples.json"
"$bin" check "$tmp/b" --baseline "$tmp/flips.json" --tolerance "$tmp/samples.json" > "$tmp/s.out"
ns=$(grep -c '^REGRESSION' "$tmp/s.out")
[ "$ns" -eq 3 ] && [ "$fixed" -eq 16 ] && ok "samples 1 forgives moves up to 1/8 (3 of $fixed regressions left)" || bad "samples 1: $ns regressions, abs alone: $fixed"
has "$tmp/s.out" "REGRESSION  tiny/sim@k2/shot_noise/s4:layer1/flip_top1  .*+0.175       0.125  default" "samples 1: a move of 0.175 > 1/8 still regresses"
out=$("$bin" check "$tmp/a" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"--baseline FILE is required"*) ok "no --baseline: exit 2";; *) bad "message: $out";; esac || bad "no --baseline: exit $rc"
out=$("$bin" baseline "$tmp/a" --metrics speed 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *"unknown metric 'speed'"*) ok "baseline --metrics speed: exit 2";; *) bad "message: $out";; esac || bad "--metrics speed: exit $rc"
# a baseline metric the run lacks fails
sed 's/"tiny\/softmax@k1:mce"/"tiny\/softmax@k9:mce"/' "$tmp/base.json" > "$tmp/missing.json"
"$bin" check "$tmp/a" --baseline "$tmp/missing.json" > "$tmp/m.out"; rc=$?
[ $rc -eq 1 ] && ok "a metric missing from the run: exit 1" || bad "missing metric: exit $rc"
has "$tmp/m.out" "MISSING     tiny/softmax@k9:mce" "the missing metric is named"
# JSON errors point at the offending character: LINE:COL for each malformed text
while IFS='|' read -r text where; do
  printf '%b' "$text" > "$tmp/col.json"
  out=$("$bin" check "$tmp/a" --baseline "$tmp/col.json" 2>&1); rc=$?
  [ $rc -eq 2 ] && case "$out" in *"col.json:$where: malformed JSON"*) ok "JSON error at $where: $text";; *) bad "JSON error for '$text' expected at $where: $out";; esac || bad "malformed JSON '$text': exit $rc"
done <<'CASES'
{"a": x}|1:7
{x: 1}|1:2
{"a": 1,}|1:9
{ , }|1:3
{"a": 1 "b": 2}|1:9
[1,,2]|1:4
[1,]|1:4
{"format": "moe-robust-baseline",\n  "metrics": {"k": {"mean": 1,,}}}|2:31
{"a": {"b": [1, {,}]}}|1:18
{"a": tru}|1:7
{"a": "x}|1:7
CASES
# a key given twice: cJSON would read the first, Python's json the last (issue #23 item 6)
while IFS='|' read -r which text needle; do
  printf '%s' "$text" > "$tmp/dup.json"
  if [ "$which" = tol ]; then
    out=$("$bin" check "$tmp/a" --baseline "$tmp/base.json" --tolerance "$tmp/dup.json" 2>&1); rc=$?
  else
    out=$("$bin" check "$tmp/a" --baseline "$tmp/dup.json" 2>&1); rc=$?
  fi
  [ $rc -eq 2 ] && case "$out" in *"dup.json: key \"$needle\" appears twice"*) ok "$which: '$needle' twice: exit 2 naming it";; *) bad "$which '$text': $out";; esac || bad "$which '$text': exit $rc: $out"
done <<'CASES'
tol|{"default": {"abs": 0.5, "abs": 0}}|abs
tol|{"default": {"abs": 0.5}, "default": {"abs": 0}}|default
tol|{"rules": [{"match": "*:accuracy", "abs": 0.01, "match": "*:loss"}]}|match
base|{"format": "moe-robust-baseline", "version": 1, "metrics": {"x:accuracy": {"mean": 1}}, "metrics": {"y:accuracy": {"mean": 1}}}|metrics
base|{"format": "moe-robust-baseline", "version": 1, "metrics": {"x:accuracy": {"mean": 1, "mean": 0}}}|mean
CASES
# a tolerance rule that guards nothing (a typo in its glob) is bad input, named
printf '{"rules": [{"match": "*:accuracy", "abs": 0.01}, {"match": "*:acuracy", "abs": 0.01}]}\n' > "$tmp/typo.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/base.json" --tolerance "$tmp/typo.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *'typo.json: rules[1]: "match": "*:acuracy" matches no metric'*) ok "a rule matching no metric: exit 2 naming it";; *) bad "message: $out";; esac || bad "rule matching no metric: exit $rc: $out"
printf '{"rules": [{"match": "nosuchcell/*", "ignore": true}]}\n' > "$tmp/typo2.json"
out=$("$bin" check "$tmp/a" --baseline "$tmp/base.json" --tolerance "$tmp/typo2.json" 2>&1); rc=$?
[ $rc -eq 2 ] && case "$out" in *'rules[0]: "match": "nosuchcell/*" matches no metric'*) ok "an ignore rule matching nothing: exit 2";; *) bad "message: $out";; esac || bad "ignore rule matching nothing: exit $rc"
# exit 2 with --junit: a JUnit file with one <error> saying why
rm -f "$tmp/err.xml"
out=$("$bin" check "$tmp/a" --baseline "$tmp/typo.json" --junit "$tmp/err.xml" 2>&1); rc=$?
[ $rc -eq 2 ] && ok "bad baseline with --junit: exit 2" || bad "bad baseline with --junit: exit $rc"
has "$tmp/err.xml" '<testsuites name="moe-robust check" tests="1" failures="0" errors="1"' "JUnit on exit 2: one error"
has "$tmp/err.xml" '<error type="bad-input" message=".*typo.json' "JUnit error names the file"
rm -f "$tmp/err.xml"
"$bin" check "$tmp/nowhere" --baseline "$tmp/base.json" --junit "$tmp/err.xml" 2>/dev/null; rc=$?
[ $rc -eq 2 ] && [ -s "$tmp/err.xml" ] && ok "no results.h5 with --junit: exit 2 and a JUnit error" || bad "no results with --junit: exit $rc, JUnit $(ls "$tmp/err.xml" 2>&1)"
# 5. attack cells ([attack], docs/attacks.md) are gated like corrupted cells, those of the
#    routing objective included: a stronger attack on the same cells (PGD 1 -> 8 steps)
#    lowers the attacked accuracy and raises the attacked block's top-1 flips: exit 1,
#    the attack metrics named
#    (the shipped model on 32 images: the tiny fixture's predictions do not move)
printf '[run]\nseed = 3\nbootstrap = 50\nbatch = 8\nlimit = 32\n\n[data]\npath = /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\n\n[model vit]\npath = models/fmnist-vit-moe-softmax.h5\n\n[router softmax]\n\n[attack]\nmethods = pgd\neps = 2 8\nsteps = 1\nobjective = loss routing\n' > "$tmp/att.ini"
"$bin" run "$tmp/att.ini" --out "$tmp/att1" --threads 2 --quiet || bad "attack grid exited $?"
"$bin" baseline "$tmp/att1" --metrics accuracy,flip_top1 > "$tmp/att-base.json" || bad "baseline of the attack grid exited $?"
has "$tmp/att-base.json" '"vit/softmax@k2/attack/pgd/e8:accuracy":' "baseline freezes an attack cell's accuracy"
has "$tmp/att-base.json" '"vit/softmax@k2/attack/pgd-routing/e8:layer1/flip_top1":' "baseline freezes a routing-attack cell's flips"
"$bin" check "$tmp/att1" --baseline "$tmp/att-base.json" --quiet > /dev/null && ok "attack grid unchanged: passes" || bad "unchanged attack grid fails the gate"
"$bin" run "$tmp/att.ini" --set attack.steps=8 --out "$tmp/att8" --threads 2 --quiet || bad "attack grid (8 steps) exited $?"
printf '{"default": {"abs": 0.02}}\n' > "$tmp/att-tol.json"
"$bin" check "$tmp/att8" --baseline "$tmp/att-base.json" --tolerance "$tmp/att-tol.json" > "$tmp/att.out"; rc=$?
[ $rc -eq 1 ] && ok "stronger attack: exit 1" || bad "stronger attack: exit $rc"
has "$tmp/att.out" "REGRESSION  vit/softmax@k2/attack/pgd/e8:accuracy " "the attacked accuracy's regression is named"
has "$tmp/att.out" "REGRESSION  vit/softmax@k2/attack/pgd-routing/e8:layer1/flip_top1 " "the routing attack's flip regression is named"
grep REGRESSION "$tmp/att.out" | grep -v '/attack/' && bad "a non-attack metric regressed" || ok "only attack cells regressed"
"$bin" baseline --help | grep -q "usage: moe-robust baseline" && ok "baseline --help" || bad "baseline --help"
"$bin" check --help | grep -q "usage: moe-robust check" && ok "check --help" || bad "check --help"
exit $fail
