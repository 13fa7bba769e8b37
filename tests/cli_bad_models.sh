#!/bin/sh
# Every malformed model of tests/bad/MANIFEST.tsv: `moe-robust inspect` exits 2 and its
# message names the file and the offending path or attribute; nothing crashes.
set -u
bin=$1
fail=0; n=0
while IFS="$(printf '\t')" read -r file needle _defect; do
  case "$file" in ''|'#'*|file) continue ;; esac
  n=$((n + 1))
  err=$("$bin" inspect "tests/bad/$file" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne 2 ]; then echo "FAIL $file: exit $rc, expected 2 ($err)"; fail=1; continue; fi
  case "$err" in *"tests/bad/$file"*) ;; *) echo "FAIL $file: message lacks the file name: $err"; fail=1; continue ;; esac
  case "$err" in *"$needle"*) echo "ok   $file: $err" ;; *) echo "FAIL $file: message lacks '$needle': $err"; fail=1 ;; esac
done < tests/bad/MANIFEST.tsv
[ "$n" -ge 12 ] || { echo "FAIL only $n cases in the manifest"; fail=1; }
exit $fail
