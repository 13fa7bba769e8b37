#!/bin/sh
# Every malformed Hugging Face checkpoint of tests/bad/hf/MANIFEST.tsv
# (tools/make_bad_checkpoints.py): `moe-robust import` exits 2, its message names the
# case's directory (the file at fault is in it) and the manifest's tensor, shard or config
# key, and neither the output file nor a temporary is left behind; nothing crashes.
set -u
bin=$1
fail=0; n=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS="$(printf '\t')" read -r case needle _defect; do
  case "$case" in ''|'#'*|case) continue ;; esac
  n=$((n + 1))
  out="$tmp/$case.h5"
  err=$("$bin" import "tests/bad/hf/$case" --out "$out" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne 2 ]; then echo "FAIL $case: exit $rc, expected 2 ($err)"; fail=1; continue; fi
  case "$err" in *"tests/bad/hf/$case"*) ;; *) echo "FAIL $case: message lacks the directory: $err"; fail=1; continue ;; esac
  case "$err" in *"$needle"*) ;; *) echo "FAIL $case: message lacks '$needle': $err"; fail=1; continue ;; esac
  if ls "$out"* >/dev/null 2>&1; then echo "FAIL $case: left $(ls "$out"*)"; fail=1; continue; fi
  echo "ok   $case: $err"
done < tests/bad/hf/MANIFEST.tsv
[ "$n" -ge 30 ] || { echo "FAIL only $n cases in the manifest"; fail=1; }
exit $fail
