#!/bin/sh
# `moe-robust analyze` on a synthetic trace generated on the fly (bench/trace_synth.py):
# peak RSS (/usr/bin/time -v), token-layers per second of wall time and per CPU second
# (user + system: robust when other jobs share the cores), the load average before
# and after, and the rate at which `cat` reads the cached trace (the host's memory: analyze
# reads every byte of the trace, at best at about that rate per core), for
# docs/performance.md.
#   [BASELINE=OTHER/moe-robust] bench/trace_analyze.sh [BUILD_DIR] [SAMPLES] [POSITIONS]
#       [EXPERTS] [LAYERS] [TOP_K] [THREADS]
# Defaults: build/, an OLMoE-sized run: 1024 x 2048 = 2M tokens, 64 experts, 16 layers,
# top-8, float16 logits (4 GiB, written to a temporary directory and removed), 2 threads.
# Bootstrap 1000 over samples as `analyze` defaults to. BASELINE: another build's binary
# (e.g. of an earlier commit) timed on the same trace right after, for a side-by-side
# ratio; the two summary.csv are compared, every number to 1e-6 relative.
set -eu
cd "$(dirname "$0")/.."
bin=${1:-build}/moe-robust
N=${2:-1024} T=${3:-2048} E=${4:-64} L=${5:-16} K=${6:-8} TH=${7:-2}
[ -x "$bin" ] || { echo "bench/trace_analyze.sh: build first (scripts/build)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-trace-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 bench/trace_synth.py "$tmp/trace.h5" --samples "$N" --positions "$T" \
  --experts "$E" --layers "$L" --top-k "$K"
size=$(du -m "$tmp/trace.h5" | cut -f1)
cat "$tmp/trace.h5" > /dev/null  # warm the page cache: analysis, not the disk, is measured
tl=$((N * T * L))
rate() { awk -v t="$tl" -v s="$1" 'BEGIN { printf "%.2f", t / s / 1e6 }'; }
echo "tokens $((N * T)) x layers $L = $tl token-layers, E = $E, top-$K, float16 logits ($size MiB)"
# the host's memory: the cached trace read once more by cat (one core); analyze must read
# every byte of it, so its size at this rate bounds the token-layers per second of a core
c0=$(date +%s.%N)
cat "$tmp/trace.h5" > /dev/null
c1=$(date +%s.%N)
awk -v b="$(wc -c < "$tmp/trace.h5")" -v c0="$c0" -v c1="$c1" -v t="$tl" \
  'BEGIN { s = c1 - c0; printf "page cache read by cat: %.2f GB/s (the whole trace in %.2f s: %.1f M token-layers/s if that were all)\n", b / s / 1e9, s, t / s / 1e6 }'
# one timed analysis: bench LABEL BINARY OUT_DIR
bench() {
  load0=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$2" analyze "$tmp/trace.h5" --out "$3" --threads "$TH" --quiet \
    2> "$tmp/time.log"
  load1=$(cut -d' ' -f1 /proc/loadavg)
  rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$tmp/time.log")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$tmp/time.log")
  secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  cpu=$(awk -F: '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$tmp/time.log")
  echo "$1 threads $TH: wall $secs s, $(rate "$secs") M token-layers/s; CPU (user + sys) $cpu s, $(rate "$cpu") M token-layers per CPU second; peak RSS $((rss / 1024)) MiB; load average $load0 before, $load1 after"
}
bench "$bin:" "$bin" "$tmp/out"
if [ -n "${BASELINE:-}" ]; then
  bench "$BASELINE:" "$BASELINE" "$tmp/base"
  # every number of the two summaries equal to 1e-6 relative (1e-12 absolute near 0)
  paste -d'\n' "$tmp/out/summary.csv" "$tmp/base/summary.csv" | awk -F, '
    NR % 2 { n = split($0, a, ","); next }
    { m = split($0, b, ",");
      if (m != n) { bad++; next }
      for (i = 1; i <= n; i++) if (a[i] != b[i]) {
        x = a[i] + 0; y = b[i] + 0; d = x - y; d = d < 0 ? -d : d
        s = (x < 0 ? -x : x) > (y < 0 ? -y : y) ? (x < 0 ? -x : x) : (y < 0 ? -y : y)
        if (a[i] !~ /^[-+.0-9eE]+$/ || b[i] !~ /^[-+.0-9eE]+$/) { bad++; continue }
        if (d > 1e-6 * s + 1e-12) bad++ } }
    END { if (bad) { print "summary.csv: " bad " values differ from the baseline"; exit 1 }
          print "summary.csv equal to the baseline (1e-6 relative)" }'
fi
