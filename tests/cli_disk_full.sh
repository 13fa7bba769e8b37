#!/bin/sh
# A full disk (issue #23): every writing command on a small tmpfs that fills up exits 1
# with one message naming the file and "No space left on device" (never a crash, never
# an HDF5 error stack), leaves no partial or temporary file, and a later --resume (after
# space is freed) completes with the result of an uninterrupted run. Also a disk that is
# full when a run directory is created, and stdout redirected to the full disk.
# Mounting a tmpfs needs root with CAP_SYS_ADMIN, or else an unprivileged user namespace
# (unshare -rm); where neither is allowed this test exits 77, which ctest reports as
# skipped (SKIP_RETURN_CODE), never as passed. CI runs it as root.
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# Can this process mount a tmpfs? (root with CAP_SYS_ADMIN; CI runs the suite as root)
can_mount() {
  d=$(mktemp -d) || return 1
  if mount -t tmpfs -o size=1m tmpfs "$d" 2>/dev/null; then
    umount "$d"; rmdir "$d"; return 0
  fi
  rmdir "$d"; return 1
}
if ! can_mount; then
  # Not root, or a container without CAP_SYS_ADMIN: the private mount namespace of an
  # unprivileged user namespace may still allow a tmpfs.
  if [ -z "${MR_DISKFULL_NS:-}" ] && command -v unshare >/dev/null 2>&1 && unshare -rm true 2>/dev/null; then
    MR_DISKFULL_NS=1 exec unshare -rm sh "$0" "$@"
  fi
  echo "SKIP: cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN, or unprivileged user namespaces)"
  exit 77
fi
tmp=$(mktemp -d)
mnt="$tmp/mnt"
mkdir "$mnt"
if ! mount -t tmpfs -o size=16m tmpfs "$mnt"; then
  echo "FAIL cannot mount a tmpfs, although a test mount succeeded"
  rm -rf "$tmp"
  exit 1
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
cfg=tests/configs/tiny-grid.ini
M=tests/fixtures/tiny-classify.h5
D=tests/fixtures/tiny-images.h5

# fill the disk, then free KiB kilobytes
fill() {
  rm -f "$mnt/filler"
  cat /dev/zero > "$mnt/filler" 2>/dev/null
  [ "$1" -gt 0 ] && truncate -s "-$1k" "$mnt/filler"
  sync
}
# full CMD...: exit 1, "No space left on device" naming a file under $mnt, no temporaries
full() {
  what=$1; shift
  out=$(timeout 900 "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ge 124 ]; then bad "$what: exit $rc (crash or hang): $out"; return; fi
  [ $rc -eq 1 ] && ok "$what: exit 1" || bad "$what: exit $rc, expected 1: $out"
  case "$out" in
    *"$mnt/"*": cannot write (No space left on device)"*) ok "$what: names the file and the OS error" ;;
    *) bad "$what: message: $out" ;;
  esac
  case "$out" in *HDF5-DIAG*|*"#000"*) bad "$what: an HDF5 error stack was printed" ;; esac
  n=$(echo "$out" | wc -l)
  [ "$n" -eq 1 ] && ok "$what: one line" || bad "$what: $n lines of messages"
  left=$(find "$mnt" -name '*.tmp-*' | wc -l)
  [ "$left" -eq 0 ] && ok "$what: no temporary file left" || bad "$what: $left temporary files left"
}

"$bin" run $cfg --out "$tmp/ref" --threads 2 --quiet || bad "reference run exited $?"

# a run that fills the disk part-way through its cells, then is resumed
fill 300
full "run (cells)" "$bin" run $cfg --out "$mnt/run" --threads 2 --quiet
[ -e "$mnt/run/results.h5" ] && bad "run: a results.h5 on a full disk" || ok "run: no results.h5"
n=$(ls "$mnt/run/cells" 2>/dev/null | grep -c '\.h5$')
[ "$n" -gt 0 ] && [ "$n" -lt 88 ] && ok "run: stopped part-way ($n of 88 cells)" || bad "run: $n cells (the disk did not fill part-way)"
rm -f "$mnt/filler"
"$bin" run $cfg --out "$mnt/run" --threads 2 --quiet --resume || bad "resume after freeing space exited $?"
cmp -s "$tmp/ref/summary.json" "$mnt/run/summary.json" && ok "run: resumed == uninterrupted" || bad "run: resumed summary differs"
cmp -s "$tmp/ref/results.h5" "$mnt/run/results.h5" && ok "run: results.h5 identical" || bad "run: results.h5 differs"

# the summary on a full disk, then resumed
rm -f "$mnt/run/results.h5" "$mnt/run/summary.json" "$mnt/run/summary.csv"
fill 20
full "run (summary)" "$bin" run $cfg --out "$mnt/run" --threads 2 --quiet --resume
[ -e "$mnt/run/summary.json" ] && bad "summary: a summary.json on a full disk" || ok "summary: none written"
rm -f "$mnt/filler"
"$bin" run $cfg --out "$mnt/run" --quiet --resume || bad "summary resume exited $?"
cmp -s "$tmp/ref/summary.json" "$mnt/run/summary.json" && ok "summary: resumed == uninterrupted" || bad "summary: differs"

# a full disk when the run directory is created: nothing that blocks a later run
fill 0
out=$("$bin" run $cfg --out "$mnt/new" --quiet 2>&1); rc=$?
[ $rc -eq 1 ] && case "$out" in *"No space left on device"*) ok "full at the start: exit 1, named";; *) bad "full at the start: $out";; esac || bad "full at the start: exit $rc: $out"
[ -d "$mnt/new/cells" ] && [ ! -e "$mnt/new/config.ini" ] && bad "cells/ without config.ini"
rm -f "$mnt/filler"
"$bin" run $cfg --out "$mnt/new" --threads 2 --quiet || bad "run after freeing space exited $?"
cmp -s "$tmp/ref/summary.json" "$mnt/new/summary.json" && ok "full at the start: a later run completes" || bad "full at the start: later run differs"
rm -rf "$mnt/new"

# single-file outputs
fill 2
full "eval --save-routing" "$bin" eval --model $M --data $D --bootstrap 0 --save-routing "$mnt/routing.h5"
[ -e "$mnt/routing.h5" ] && bad "eval: a routing file on a full disk" || ok "eval: no routing file"
full "corrupt --out" "$bin" corrupt --data $D --corruption fog:2 --out "$mnt/fog.h5"
[ -e "$mnt/fog.h5" ] && bad "corrupt: a data file on a full disk" || ok "corrupt: no data file"
full "attack --out" "$bin" attack --model $M --data $D --method fgsm --eps 0.1 --out "$mnt/adv.h5"
[ -e "$mnt/adv.h5" ] && bad "attack: a data file on a full disk" || ok "attack: no data file"
full "compress --out" "$bin" compress --model $M --calib $D --method prune-freq --experts 2 --out "$mnt/small.h5"
# import streams (libhdf5 writes the file itself): a disk too full for the superblock, and
# one with room for it but not for the model (the space is reserved before the weights)
full "import --out (no room at all)" "$bin" import tests/fixtures/hf/mixtral-f32 --out "$mnt/imported.h5"
fill 64
full "import --out (no room for the weights)" "$bin" import tests/fixtures/hf/mixtral-f32 --out "$mnt/imported.h5"
[ -e "$mnt/imported.h5" ] && bad "import: a model file on a full disk" || ok "import: no model file"
fill 2
fill 0
full "corrupt --gallery" "$bin" corrupt --data $D --gallery "$mnt/gallery.png"
full "baseline --out" "$bin" baseline "$tmp/ref" --out "$mnt/base.json"
"$bin" baseline "$tmp/ref" > "$tmp/base.json" 2>/dev/null
out=$("$bin" check "$tmp/ref" --baseline "$tmp/base.json" --junit "$mnt/junit.xml" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] && case "$out" in *"junit.xml: cannot write (No space left on device)"*) ok "check --junit: exit 1, named";; *) bad "check --junit: $out";; esac || bad "check --junit: exit $rc: $out"
full "report --out" "$bin" report "$tmp/ref" --out "$mnt/report" --no-render --quiet
out=$("$bin" inspect $M 2>&1 > "$mnt/inspect.txt"); rc=$?
[ $rc -eq 1 ] && case "$out" in *"cannot write to standard output (No space left on device)"*) ok "stdout on a full disk: exit 1";; *) bad "stdout: $out";; esac || bad "stdout on a full disk: exit $rc"
rm -f "$mnt/filler"
exit $fail
