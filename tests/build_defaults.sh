#!/bin/sh
# A user's plain `cmake -S . -B DIR -DCMAKE_BUILD_TYPE=Release && cmake --build DIR` must
# not turn warnings into errors (issue #23: GCC 12's -O3 maybe-uninitialized warnings
# broke it): MR_WERROR defaults to OFF and no compile command carries -Werror. Only
# scripts/test and .ci/run ask for -DMR_WERROR=ON. (Configure only: nothing is compiled;
# .ci/run's scripts/build-matrix builds every type warning-free.)
set -u
tmp=$(mktemp -d /tmp/mr-build-defaults-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
for type in Release Debug RelWithDebInfo MinSizeRel; do
  cmake -S . -B "$tmp/$type" -DCMAKE_BUILD_TYPE=$type >"$tmp/$type.log" 2>&1 || { echo "FAIL configure $type: $(tail -3 "$tmp/$type.log")"; fail=1; continue; }
  grep -q '^MR_WERROR:BOOL=OFF$' "$tmp/$type/CMakeCache.txt" && echo "ok   $type: MR_WERROR defaults to OFF" || { echo "FAIL $type: MR_WERROR is not OFF by default"; fail=1; }
  if make -n -C "$tmp/$type" moe-robust 2>/dev/null | grep -q -- '-Werror'; then
    echo "FAIL $type: a compile command carries -Werror"; fail=1
  else
    echo "ok   $type: no -Werror in the compile commands"
  fi
done
grep -q 'scripts/build --werror' scripts/test && echo "ok   scripts/test builds with warnings as errors" || { echo "FAIL scripts/test does not ask for -Werror"; fail=1; }
grep -q '^scripts/build-matrix' .ci/run && echo "ok   .ci/run builds every type (and clang Release) warning-free" || { echo "FAIL .ci/run lacks the build matrix"; fail=1; }
exit $fail
