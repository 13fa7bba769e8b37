#!/bin/sh
# `cmake --install` as a library user needs it (docs/install.md), into a temporary prefix:
# - the CLI, libmoerobust.so (+ soname link) and libmoerobust.a, the public headers,
#   moerobust.pc, the CMake package files, a man page per command, bash completion;
# - examples/library/evaluate.c builds with `pkg-config --cflags --libs moerobust` and
#   with find_package(moerobust) (shared and static), and each program's accuracy on the
#   tiny fixtures equals `moe-robust eval`'s;
# - the installed CLI runs; the man pages render; the completion completes options.
set -u
build=$(cd "$1" && pwd)
src=$(pwd)
# Under the build directory, not /tmp: programs are built and run here, and a CI
# runner's /tmp may be mounted noexec (Docker's --tmpfs default).
mkdir -p "$build/Testing/tmp"
tmp=$(mktemp -d "$build/Testing/tmp/mr-install-test-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
p=$tmp/prefix
cmake --install "$build" --prefix "$p" > "$tmp/install.log" 2>&1 || { bad "cmake --install exited $?"; cat "$tmp/install.log"; exit 1; }
lib=$(sed -n 's|^-- Installing: \(.*\)/libmoerobust\.a$|\1|p' "$tmp/install.log")
[ -n "$lib" ] || { bad "no libmoerobust.a installed"; cat "$tmp/install.log"; exit 1; }
for f in bin/moe-robust include/moerobust/analysis/mr_engine.h include/moerobust/harness/mr_eval.h \
         include/moerobust/io/mr_model_io.h share/bash-completion/completions/moe-robust \
         share/man/man1/moe-robust.1; do
  [ -e "$p/$f" ] && ok "installed $f" || bad "missing $f"
done
for f in libmoerobust.a libmoerobust.so libmoerobust.so.0 pkgconfig/moerobust.pc \
         cmake/moerobust/moerobustConfig.cmake cmake/moerobust/moerobustConfigVersion.cmake; do
  [ -e "$lib/$f" ] && ok "installed ${lib#$p/}/$f" || bad "missing ${lib#$p/}/$f"
done
n=0
for c in inspect eval run merge corrupt report baseline check compress attack import; do
  [ -s "$p/share/man/man1/moe-robust-$c.1" ] && n=$((n + 1)) || bad "no man page moe-robust-$c.1"
  # help2man writes options as \fB\-\-name\fR
  for o in $("$build/moe-robust" $c --help | sed -n 's/^ \{1,\}\(-[a-zA-Z], \)\{0,1\}--\([a-z][a-z0-9-]*\).*/\2/p'); do
    esc=$(echo "$o" | sed 's/-/\\-/g')
    grep -q -F -- "\-\-$esc" "$p/share/man/man1/moe-robust-$c.1" || bad "moe-robust-$c.1 lacks --$o"
  done
done
[ $n -eq 11 ] && ok "a man page per command (11)"
# man-db's seccomp sandbox is refused in some containers: MAN_DISABLE_SECCOMP (man(1))
if MANWIDTH=80 MAN_DISABLE_SECCOMP=1 man -l "$p/share/man/man1/moe-robust-run.1" > "$tmp/man.txt" 2> "$tmp/man.err" &&
   grep -q 'moe-robust-run' "$tmp/man.txt"; then
  ok "man page renders (man -l)"
else
  bad "moe-robust-run.1 does not render: $(head -2 "$tmp/man.err")"
fi
# headers: every installed one compiles on its own, with pkg-config's flags
export PKG_CONFIG_PATH="$lib/pkgconfig"
cflags=$(pkg-config --cflags moerobust) || bad "pkg-config --cflags moerobust"
nh=0
for h in $(cd "$p/include" && find moerobust -name '*.h'); do
  printf '#include <%s>\nint main(void) { return 0; }\n' "$h" > "$tmp/h.c"
  # shellcheck disable=SC2086
  cc -std=c11 -D_POSIX_C_SOURCE=200809L -fsyntax-only $cflags "$tmp/h.c" 2>"$tmp/h.err" || { bad "$h does not compile alone: $(head -3 "$tmp/h.err")"; }
  nh=$((nh + 1))
done
want_h=$(cd "$src" && find analysis corruptions metrics io reports harness -name '*.h' | wc -l)
[ $nh -eq "$want_h" ] && ok "all $nh headers installed" || bad "$nh headers installed, the sources have $want_h"
# the example, three ways
want=$("$build/moe-robust" eval --model tests/fixtures/tiny-classify.h5 --data tests/fixtures/tiny-images.h5 --threads 1 |
       awk '$1 == "accuracy" {print $2}')
check_run() { # NAME PROGRAM
  out=$("$2" tests/fixtures/tiny-classify.h5 tests/fixtures/tiny-images.h5 2>&1); rc=$?
  got=$(echo "$out" | awk '$1 == "accuracy" {print $2}')
  if [ $rc -eq 0 ] && [ -n "$want" ] && [ "$got" = "$want" ] && echo "$out" | grep -q '^layer 1 routing entropy'; then
    ok "$1: accuracy $got = moe-robust eval's"
  else
    bad "$1: exit $rc, accuracy '$got', moe-robust eval '$want': $out"
  fi
}
# shellcheck disable=SC2046
cc -std=c11 -o "$tmp/evaluate-pc" examples/library/evaluate.c $(pkg-config --cflags --libs moerobust) &&
  LD_LIBRARY_PATH="$lib" check_run "pkg-config, shared" "$tmp/evaluate-pc" || bad "pkg-config build failed"
# shellcheck disable=SC2046
cc -std=c11 -o "$tmp/evaluate-pc-static" examples/library/evaluate.c $(pkg-config --cflags moerobust) \
   "$lib/libmoerobust.a" $(pkg-config --static --libs moerobust | sed 's/ -lmoerobust / /') &&
  check_run "pkg-config --static" "$tmp/evaluate-pc-static" || bad "pkg-config --static build failed"
ldd "$tmp/evaluate-pc-static" 2>/dev/null | grep -q libmoerobust && bad "the static build links libmoerobust.so"
cmake -S examples/library -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$p" > "$tmp/ex.log" 2>&1 &&
  cmake --build "$tmp/ex" >> "$tmp/ex.log" 2>&1 || { bad "find_package(moerobust) project failed"; cat "$tmp/ex.log"; }
[ -x "$tmp/ex/evaluate" ] && check_run "find_package, moerobust::moerobust" "$tmp/ex/evaluate"
[ -x "$tmp/ex/evaluate_static" ] && check_run "find_package, moerobust::moerobust_static" "$tmp/ex/evaluate_static"
ldd "$tmp/ex/evaluate" 2>/dev/null | grep -q "$lib/libmoerobust.so" && ok "moerobust::moerobust is the installed shared library" ||
  bad "evaluate does not use $lib/libmoerobust.so"
# the installed CLI and its completion
"$p/bin/moe-robust" --version | grep -q "^moe-robust [0-9]" && ok "installed moe-robust --version" || bad "installed CLI"
words=$(bash -c ". '$p/share/bash-completion/completions/moe-robust'; COMP_WORDS=(moe-robust run --d); COMP_CWORD=2; _moe_robust; echo \${COMPREPLY[*]}")
[ "$words" = "--dry-run" ] && ok "bash completion: run --d -> --dry-run" || bad "bash completion: run --d -> '$words'"
words=$(bash -c ". '$p/share/bash-completion/completions/moe-robust'; COMP_WORDS=(moe-robust ch); COMP_CWORD=1; _moe_robust; echo \${COMPREPLY[*]}")
[ "$words" = "check" ] && ok "bash completion: ch -> check" || bad "bash completion: ch -> '$words'"
exit $fail
