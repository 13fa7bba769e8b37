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
# every malformed model in tests/bad/ is a case of the manifest, and no case is missing
# its file (the count is the directory's, not a floor)
files=$(ls tests/bad/*.h5 | wc -l)
[ "$n" -eq "$files" ] && echo "ok   $n manifest cases = the $files models in tests/bad/" ||
  { echo "FAIL $n manifest cases for $files models in tests/bad/"; fail=1; }
for f in tests/bad/*.h5; do
  grep -q "^$(basename "$f")$(printf '\t')" tests/bad/MANIFEST.tsv || { echo "FAIL $f is not in tests/bad/MANIFEST.tsv"; fail=1; }
done
exit $fail
