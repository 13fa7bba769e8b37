#!/bin/sh
# Every malformed data file and run config of tests/bad/inputs.tsv (made by
# tools/make_bad_inputs.py) through the real binary:
# - exit status 2, never a crash (>= 128) or a runtime failure (1; under the sanitizer
#   build also any ASan/UBSan/LeakSanitizer report, which exits 1 or 23);
# - the message names the file (configs: FILE:LINE where a line applies) and the
#   manifest's must_mention (the offending path, key or value);
# - nothing is written: eval's --save-routing file, run's --out directory and compress's
#   --out model do not exist afterwards.
set -u
bin=$1
tab=$(printf '\t')
tmp=$(mktemp -d /tmp/mr-bad-inputs-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
bad() { echo "FAIL $1"; fail=1; }
while IFS="$tab" read -r cmd file line needle args _defect; do
  case "$cmd" in ''|'#'*|command) continue ;; esac
  n=$((n + 1))
  [ "$args" = - ] && args=""
  out="$tmp/out-$n"
  # $args is a blank-separated argument list: split on purpose
  # shellcheck disable=SC2086
  case "$cmd" in
    eval) err=$("$bin" eval --data "$file" $args --threads 1 --bootstrap 0 --save-routing "$out" 2>&1 >/dev/null); rc=$? ;;
    run) err=$("$bin" run "$file" --out "$out" --threads 1 $args 2>&1 >/dev/null); rc=$? ;;
    compress) err=$("$bin" compress $args --out "$out" 2>&1 >/dev/null); rc=$? ;;
    *) bad "$file: unknown command '$cmd' in the manifest"; continue ;;
  esac
  if [ "$rc" -ge 128 ]; then bad "$file: crashed (exit $rc): $err"; continue; fi
  if [ "$rc" -ne 2 ]; then bad "$file: exit $rc, expected 2: $err"; continue; fi
  if [ -e "$out" ]; then bad "$file: left output behind ($out)"; continue; fi
  where=$file
  [ "$line" = - ] || where="$file:$line:"
  case "$err" in *"$where"*) ;; *) bad "$file: message does not name '$where': $err"; continue ;; esac
  case "$err" in *"$needle"*) echo "ok   $file: $err" ;; *) bad "$file: message lacks '$needle': $err" ;; esac
done < tests/bad/inputs.tsv
[ "$n" -ge 80 ] || bad "only $n cases in tests/bad/inputs.tsv"
exit $fail
