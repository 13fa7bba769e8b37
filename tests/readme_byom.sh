#!/bin/sh
# README.md "Bring your own model", run as written: every command of its sh block, with
# build/moe-robust replaced by the binary under test and byom/ by a temporary directory.
set -u
bin=$1
tmp=$(mktemp -d /tmp/mr-byom-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
script=$(awk '/^## Bring your own model/{s=1} s&&/^```sh/{c=1;next} c&&/^```/{exit} c' README.md)
[ -n "$script" ] || { echo "FAIL: no sh block in README.md 'Bring your own model'"; exit 1; }
printf '%s\n' "$script" | sed "s#build/moe-robust#$bin#g; s#byom/#$tmp/byom/#g; s#mkdir -p byom#mkdir -p $tmp/byom#" > "$tmp/run.sh"
if ! sh -e "$tmp/run.sh" > "$tmp/log" 2>&1; then echo "FAIL: $(tail -5 "$tmp/log")"; exit 1; fi
for f in results.h5 summary.json summary.csv report/report.md; do
  [ -s "$tmp/byom/out/$f" ] || { echo "FAIL: $f not written"; exit 1; }
done
[ -s "$tmp/byom/baseline.json" ] || { echo "FAIL: no baseline"; exit 1; }
echo "ok   README 'Bring your own model': record, analyze, report, baseline, check"
