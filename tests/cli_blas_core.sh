#!/bin/sh
# The CLI's OpenBLAS kernels (harness/mr_blas_core.c): where OpenBLAS falls back to its
# Prescott kernels on a CPU with AVX-512 or AVX2 + FMA, the CLI runs with the kernels
# that scripts/blas-core names for that CPU (checked against the CPU's flags there, not
# here); elsewhere with OpenBLAS's own choice. A user's OPENBLAS_CORETYPE and
# MR_BLAS_CORE=off are kept; the re-executed run computes what an explicit
# OPENBLAS_CORETYPE computes (the same arguments reach it). And `run`'s OpenMP wait
# policy (the same re-execution: OMP_WAIT_POLICY=passive), below.
set -u
bin=$1
kernels=${2:-avx512} # noavx512: built with -DMR_AVX512=OFF (no AVX-512 kernels to turn off)
fail=0
m=tests/fixtures/tiny-classify.h5; d=tests/fixtures/tiny-images.h5
# the kernels the last OpenBLAS loaded in the process chain reports (OPENBLAS_VERBOSE=2)
core() { env -u OPENBLAS_CORETYPE -u MR_BLAS_CORE "$@" OPENBLAS_VERBOSE=2 "$bin" --version 2>&1 |
         sed -n 's/^Core: //p' | tail -n 1; }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok   $1: $2"; else echo "FAIL $1: '$2', expected '$3'"; fail=1; fi
}
detected=$(core MR_BLAS_CORE=off)
wanted=$(env -u OPENBLAS_CORETYPE scripts/blas-core "$bin")
[ -n "$detected" ] || { echo "FAIL OpenBLAS printed no 'Core:' line with OPENBLAS_VERBOSE=2"; exit 1; }
echo "OpenBLAS detects '$detected'; scripts/blas-core names '${wanted:-nothing}'"
check "default" "$(core)" "${wanted:-$detected}"
# MR_BLAS_CORE=off: no re-execution, so one OpenBLAS load and one "Core:" line (two when
# the program re-executes itself)
loads=$(env -u OPENBLAS_CORETYPE MR_BLAS_CORE=off OPENBLAS_VERBOSE=2 "$bin" --version 2>&1 | grep -c '^Core: ')
check "MR_BLAS_CORE=off: OpenBLAS loads" "$loads" 1
check "OPENBLAS_CORETYPE=Prescott kept" "$(core OPENBLAS_CORETYPE=Prescott)" Prescott
# the re-executed process gets the same arguments and gives the same results and status
if [ -n "$wanted" ]; then
  a=$(env -u OPENBLAS_CORETYPE "$bin" eval --model $m --data $d --bootstrap 50 2>&1); ra=$?
  b=$(OPENBLAS_CORETYPE=$wanted "$bin" eval --model $m --data $d --bootstrap 50 2>&1); rb=$?
  if [ $ra -ne 0 ] || [ "$a" != "$b" ]; then
    echo "FAIL eval re-executed (exit $ra) differs from eval with OPENBLAS_CORETYPE=$wanted (exit $rb)"
    fail=1
  else echo "ok   eval re-executed = eval with OPENBLAS_CORETYPE=$wanted"; fi
  env -u OPENBLAS_CORETYPE "$bin" eval --model $m --data $d --batch x >/dev/null 2>&1; rc=$?
  check "bad option's exit status after re-execution" "$rc" 2
fi
# `run` re-executes itself with OMP_WAIT_POLICY=passive (idle OpenMP threads sleep at
# once: libgomp's GOMP_SPINCOUNT 0, which OMP_DISPLAY_ENV=verbose prints, the last block
# being the final process's); other commands keep libgomp's default (300000), and a
# user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept
spin() { env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose "$@" 2>&1 |
         sed -n "s/^ *GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -n 1; }
check "run: idle threads' spin count" "$(spin "$bin" run --help)" 0
check "eval: idle threads' spin count" "$(spin "$bin" eval --help)" 300000
check "run, GOMP_SPINCOUNT=1000 kept" "$(spin GOMP_SPINCOUNT=1000 "$bin" run --help)" 1000
policy=$(env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=true "$bin" run --help 2>&1 |
         sed -n "s/^ *OMP_WAIT_POLICY = '\([A-Z]*\)'.*/\1/p" | tail -n 1)
check "run, OMP_WAIT_POLICY=active kept" "$policy" ACTIVE
# the policy changes no result: a grid re-executed (passive) and one with active waits
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-blas-core-XXXXXX")
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$bin" run tests/configs/tiny-grid.ini --out "$tmp/a" \
  --threads 2 --quiet; ra=$?
OMP_WAIT_POLICY=active "$bin" run tests/configs/tiny-grid.ini --out "$tmp/b" --threads 2 --quiet; rb=$?
if [ $ra -ne 0 ] || [ $rb -ne 0 ] || ! cmp -s "$tmp/a/summary.csv" "$tmp/b/summary.csv"; then
  echo "FAIL run re-executed with passive waits (exit $ra) differs from run with active waits (exit $rb)"
  fail=1
else echo "ok   run with passive waits = run with active waits (summary.csv)"; fi
# MR_SIMD=avx2: the suite's AVX-512 kernels off. Their AVX2 + FMA forms give the same
# bits (the same fused multiply-add chains and reduction orders): on a CPU with AVX-512
# the grid's summary must not move at all; without AVX-512 (or in a build without it)
# nothing changes either. A bad value: exit 2 naming it, nothing written.
MR_SIMD=avx2 "$bin" run tests/configs/tiny-grid.ini --out "$tmp/s" --threads 2 --quiet; rs=$?
check "MR_SIMD=avx2 run's exit status" "$rs" 0
if [ "$kernels" = avx512 ] && grep -q -w avx512f /proc/cpuinfo; then what="AVX2 kernels against AVX-512"
else what="the same kernels"; fi
cmp -s "$tmp/a/summary.csv" "$tmp/s/summary.csv" && got=same || got=differ
check "MR_SIMD=avx2 summary.csv against the CPU's kernels ($what)" "$got" same
# close A B: empty when summary.csv B has A's accuracies and its other values within 1e-5
# relative, else the first row and column that differ more
close() {
  awk -F, 'NR == FNR { for (i = 1; i <= NF; i++) a[FNR, i] = $i; next }
  FNR == 1 { for (i = 1; i <= NF; i++) h[i] = $i; next }
  { for (i = 1; i <= NF; i++) { x = a[FNR, i]; y = $i
      if (x == y) continue
      if (h[i] ~ /^accuracy/ || x !~ /^-?[0-9.]+(e-?[0-9]+)?$/) { print "row " FNR " " h[i]; exit }
      d = x - y; if (d < 0) d = -d; m = (x < 0 ? -x : x); if (m < 1e-9) m = 1e-9
      if (d / m > 1e-5) { print "row " FNR " " h[i] " " x " vs " y; exit } } }' "$1" "$2"
}
c=$(close "$tmp/a/summary.csv" "$tmp/s/summary.csv")
check "MR_SIMD=avx2: accuracies equal, other values within 1e-5 relative" "${c:-yes}" yes
# MR_SIMD=portable: the AVX2 kernels off as well (OpenBLAS and plain C): the same
# accuracies, other values within 1e-5 relative
MR_SIMD=portable "$bin" run tests/configs/tiny-grid.ini --out "$tmp/p" --threads 2 --quiet; rp=$?
check "MR_SIMD=portable run's exit status" "$rp" 0
c=$(close "$tmp/a/summary.csv" "$tmp/p/summary.csv")
check "MR_SIMD=portable: accuracies equal, other values within 1e-5 relative" "${c:-yes}" yes
out=$(MR_SIMD=avx3 "$bin" run tests/configs/tiny-grid.ini --out "$tmp/bad" --quiet 2>&1); rc=$?
check "MR_SIMD=avx3: exit status" "$rc" 2
case "$out" in *"MR_SIMD=avx3"*) echo "ok   MR_SIMD=avx3 named";; *) echo "FAIL MR_SIMD message: $out"; fail=1;; esac
[ -e "$tmp/bad" ] && { echo "FAIL MR_SIMD=avx3 wrote $tmp/bad"; fail=1; } || echo "ok   nothing written for MR_SIMD=avx3"
rm -rf "$tmp"
exit $fail
