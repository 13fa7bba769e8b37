#!/bin/sh
# libhdf5 1.10 dies of SIGSEGV on a corrupted global heap behind a variable-length string
# attribute (tests/fuzz/hdf5-known/vlen-attr-global-heap-segv.h5, docs/reliability.md).
# The CLI must not die of the signal: `inspect` and `eval` of that file exit 2 with a
# message that names the file and says why (harness/mr_fatal.c). In a sanitizer build
# (SANITIZE = 1) the handler is not installed, so ASan's own report must appear instead.
#   tests/cli_hdf5_crash.sh MOE_ROBUST SANITIZE   (from the repository root)
set -u
bin=$1 san=$2
f=tests/fuzz/hdf5-known/vlen-attr-global-heap-segv.h5
d=tests/fixtures/tiny-images-idx3-ubyte.gz
fail=0
check() { # LABEL ARGS...
  label=$1; shift
  err=$(timeout 60 "$bin" "$@" 2>&1 >/dev/null); rc=$?
  if [ "$san" = 1 ]; then
    case "$rc $err" in
      0\ *) echo "FAIL $label: exit 0 on a file libhdf5 crashes on"; fail=1 ;;
      *AddressSanitizer*) echo "ok   $label (sanitizer build): ASan reports the fault, exit $rc" ;;
      *) echo "FAIL $label (sanitizer build): exit $rc without ASan's report: $err"; fail=1 ;;
    esac
    return
  fi
  [ "$rc" -eq 2 ] || { echo "FAIL $label: exit $rc, want 2 ($err)"; fail=1; return; }
  case "$err" in
    "moe-robust: $f: fatal SIGSEGV"*"libhdf5 crashes on some corrupt HDF5 files"*)
      echo "ok   $label: exit 2: $err" ;;
    *) echo "FAIL $label: the message does not name the file and the cause: $err"; fail=1 ;;
  esac
}
check inspect inspect "$f"
check eval eval --model "$f" --data "$d"
exit $fail
