#!/bin/sh
# MR_TEST_FAIL_FAST (tests/mr_test_util.h), which scripts/mutate sets so that a Check test
# stops at its first failing test: a run that finds the marker file (left by a failed
# test) fails every test at once, each reported "not run", and runs none; a run whose
# tests pass leaves no marker behind and passes as it does without the variable.
#   tests/fail_fast.sh CHECK_TEST_EXECUTABLE   (from the repository root)
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
m=$tmp/marker
fail=0
MR_TEST_FAIL_FAST=$m "$bin" >"$tmp/pass.log" 2>&1 ||
  { echo "FAIL a passing run fails under MR_TEST_FAIL_FAST:"; tail -n 5 "$tmp/pass.log"; fail=1; }
[ -e "$m" ] && { echo "FAIL a passing run left the marker"; fail=1; }
: >"$m"
if MR_TEST_FAIL_FAST=$m "$bin" >"$tmp/stop.log" 2>&1; then
  echo "FAIL a run that found the marker passed"; fail=1
fi
checks=$(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$tmp/stop.log")
notrun=$(grep -c "not run: an earlier test of this run failed" "$tmp/stop.log")
set -- $checks
if [ $# -ne 3 ] || [ "$1" -lt 2 ] || [ "$notrun" -ne "$1" ] || [ $(($2 + $3)) -ne "$1" ]; then
  echo "FAIL want every test of the run 'not run' and failed: checks/failures/errors '$checks', 'not run' $notrun"
  fail=1
fi
[ $fail -eq 0 ] && echo "ok   MR_TEST_FAIL_FAST: a passing run passes and leaves no marker; after a failure, $notrun of $1 tests not run"
exit $fail
