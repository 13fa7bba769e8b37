#!/bin/sh
# bench/run.sh — throughput of the C engine vs PyTorch eager (tools/moe_model.py), one table
# (docs/performance.md).
#
#   bench/run.sh [BUILD_DIR]            (default build/; about 10 minutes on the 2-core VM)
#
# For four models — the shipped Fashion-MNIST ViT (full 10k test set), the shipped char-LM
# (models/kjv-char-test.h5, 3232 windows of 128), a random-weight papers-size LM
# (tools/make_random_model.py: d 352, 4 MoE blocks x 16 experts, top-2, context 512; 16
# random sequences, the C bench's --random-tokens stream on both sides) and a random
# Hugging Face checkpoint of OLMoE-1B-7B's layer geometry with 2 layers (d 2048, 16 heads,
# 64 experts, top-8, expert hidden 1024, vocab 50304; bf16; tools/make_hf_fixture.py, the
# same checkpoint bench/hf_memory.sh uses) imported with `moe-robust import --max-seq-len
# 256`, against tools/hf_moe.py on the checkpoint (8 random sequences of 256, micro-batches
# of 4) — and the routers
# softmax, similarity, attention and ac, runs bench/moe-robust-bench and tools/bench_torch.py
# with the same threads and micro-batch, and prints samples/s, tokens/s, the C/PyTorch
# ratio, the peak RSS of each process (/usr/bin/time -v for C, getrusage in bench_torch.py),
# the expert-GEMM GFLOP/s and their share of a plain sgemm of the same size (moe-robust-bench),
# each router's overhead over softmax, the C/PyTorch ratio of tokens per process CPU second
# (which other processes' load does not inflate as it inflates wall time), and PASS/MISS for
# the targets of issue 8.
# Issue 17's columns: PTf, the best-effort PyTorch peer (tools/bench_torch.py --impl fast,
# tools/moe_fast.py: torch.topk and expert-sorted dispatch; not for the --hf model, whose
# tools/hf_moe.py is already written that way) with its C/PTf ratios; and the roofline, the C
# forward's matrix products per second (moe-robust-bench "forward") as a share of the sgemm
# peak measured in the same process, by wall time and per CPU second; PASS/MISS for issue 17's
# targets (>= 3x the peer on the demo models, >= 1.2x at papers size; forward >= 60 % of the
# peak at papers size, >= 35 % on Fashion-MNIST).
#
# PyTorch runs on the first TORCH_FMNIST_N / TORCH_KJV_N samples only (throughput does not
# depend on how many: every micro-batch is the same work); the table says how many.
# The papers-size model uses micro-batches of 8 so that 16 sequences keep both C threads busy.
#
# Environment (defaults): THREADS (2), C_REPS (3: best of), TORCH_REPS (1), TORCH_FMNIST_N
# (2000), TORCH_KJV_N (400), PAPERS_MODEL (/tmp/moe-robust-papers.h5, made if absent),
# OUT (/tmp/moe-robust-bench: every run's raw output), HF_CKPT (/tmp/moe-robust-olmoe2l, made if
# absent), HF_MODEL ($HF_CKPT.h5, imported if absent), C_LIMIT (all; e.g. 64 for a quick smoke
# run of the script itself), TRIES (3), CONTENTION_MAX (0.2), KEEP (0; 1: keep the results
# already in OUT and measure again only those that were disturbed, keeping the fastest), ONLY
# (all; e.g. "fmnist/softmax kjv/attention": only these rows, with KEEP=1 for the others).
#
# The VM is shared: while a run goes, other processes may take CPU. Each run measures how many
# cores OTHER processes used meanwhile (/proc/stat minus its own CPU time) and is repeated, up
# to TRIES times, until that stays <= CONTENTION_MAX cores. Contention only slows a run down,
# so the fastest attempt is kept as the best estimate, with its contention printed (columns
# "oth"): a disturbed number is visible as such. KEEP=1 bench/run.sh later re-measures only
# the disturbed ones.
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
bench=$build/bench/moe-robust-bench
[ -x "$bench" ] || { echo "bench/run.sh: build first (cmake --build $build)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/run.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
# OpenBLAS's own kernels for this CPU where it does not recognise it (scripts/blas-core),
# for the C engine and PyTorch alike: the moe-robust CLI chooses them itself, the bench
# binaries do not (harness/mr_blas_core.c)
core=$(scripts/blas-core "$build/moe-robust")
[ -z "$core" ] || export OPENBLAS_CORETYPE="$core"
export BLAS_CORE="${OPENBLAS_CORETYPE:-as OpenBLAS detects}"
THREADS=${THREADS:-2}
C_REPS=${C_REPS:-3}
TORCH_REPS=${TORCH_REPS:-1}
TORCH_FMNIST_N=${TORCH_FMNIST_N:-2000}
TORCH_KJV_N=${TORCH_KJV_N:-400}
PAPERS_MODEL=${PAPERS_MODEL:-/tmp/moe-robust-papers.h5}
C_LIMIT=${C_LIMIT:-0}
TRIES=${TRIES:-3}
CONTENTION_MAX=${CONTENTION_MAX:-0.2}
OUT=${OUT:-/tmp/moe-robust-bench}
PY=/usr/bin/python3
FMNIST_DATA=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
ROUTERS="softmax similarity attention ac"
KEEP=${KEEP:-0}
ONLY=${ONLY:-}
mkdir -p "$OUT"
[ "$KEEP" = 1 ] || rm -f "$OUT"/*.out "$OUT"/*.time "$OUT"/*.others
rm -f "$OUT"/*.try
[ -f "$PAPERS_MODEL" ] || $PY tools/make_random_model.py "$PAPERS_MODEL" >&2
HF_CKPT=${HF_CKPT:-/tmp/moe-robust-olmoe2l}
HF_MODEL=${HF_MODEL:-$HF_CKPT.h5}
HF_T=256
[ -f "$HF_CKPT/config.json" ] ||
  $PY tools/make_hf_fixture.py olmoe "$HF_CKPT" --geometry olmoe-1b-7b-2l --dtype bf16 --shards 2 >&2
[ -f "$HF_MODEL" ] || "$build/moe-robust" import "$HF_CKPT" --out "$HF_MODEL" --max-seq-len $HF_T >&2

HZ=$(getconf CLK_TCK)
# CPU time used by every process on the machine so far, in clock ticks (user + nice +
# system + irq + softirq + steal of the "cpu" line of /proc/stat)
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# attempt NAME CMD...: one run under /usr/bin/time -v into $OUT/NAME.{out,time}.try; sets
# $sps (its samples/s) and $others: the cores that OTHER processes used meanwhile (the
# machine is shared; a benchmark that lost a core to someone else's job is not a result)
attempt() {
    name=$1
    shift
    b0=$(cpu_busy)
    /usr/bin/time -v "$@" > "$OUT/$name.out.try" 2> "$OUT/$name.time.try"
    b1=$(cpu_busy)
    others=$(awk -v b=$((b1 - b0)) -v hz="$HZ" '
        /User time \(seconds\)/ { u = $NF }
        /System time \(seconds\)/ { s = $NF }
        /Elapsed \(wall clock\)/ { n = split($NF, t, ":")
                                    w = n == 3 ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2] }
        END { o = (b / hz - u - s) / w; printf "%.2f", o < 0 ? 0 : o }' "$OUT/$name.time.try")
    sps=$(sed -n 's/^RESULT samples_per_s=\([0-9.]*\).*/\1/p' "$OUT/$name.out.try")
}

# measure NAME CMD...: up to TRIES attempts, until one ran with other processes using at most
# CONTENTION_MAX cores; keeps the fastest as $OUT/NAME.{out,time} and its contention in NAME.others
measure() {
    name=$1
    shift
    best=-1 try=1
    if [ "$KEEP" = 1 ] && [ -f "$OUT/$name.out" ] && [ -f "$OUT/$name.others" ]; then
        # a calm earlier result stands; a disturbed one is the mark to beat
        [ "$(awk -v o="$(cat "$OUT/$name.others")" -v m="$CONTENTION_MAX" \
              'BEGIN { print (o <= m) }')" = 1 ] && return 0
        best=$(sed -n 's/^RESULT samples_per_s=\([0-9.]*\).*/\1/p' "$OUT/$name.out")
    fi
    while :; do
        attempt "$name" "$@"
        if [ "$(awk -v a="$sps" -v b="$best" 'BEGIN { print (a > b) }')" = 1 ]; then
            best=$sps
            mv "$OUT/$name.out.try" "$OUT/$name.out"
            mv "$OUT/$name.time.try" "$OUT/$name.time"
            echo "$others" > "$OUT/$name.others"
        fi
        calm=$(awk -v o="$others" -v m="$CONTENTION_MAX" 'BEGIN { print (o <= m) }')
        [ "$calm" = 1 ] || [ "$try" -ge "$TRIES" ] && break
        echo "bench/run.sh:   $name: other processes used $others cores, again" >&2
        try=$((try + 1))
    done
    rm -f "$OUT/$name.out.try" "$OUT/$name.time.try"
}

# run LABEL ROUTER BATCH C_ARGS -- TORCH_ARGS
run() {
    label=$1 router=$2 batch=$3
    shift 3
    c_args="" t_args="" side=c
    for a in "$@"; do
        if [ "$a" = "--" ]; then side=t; continue; fi
        if [ $side = c ]; then c_args="$c_args $a"; else t_args="$t_args $a"; fi
    done
    case " $ONLY " in *" $label/$router "*|"  ") ;; *) return 0 ;; esac
    [ "$C_LIMIT" -gt 0 ] && c_args="$c_args --limit $C_LIMIT"
    echo "bench/run.sh: $label $router" >&2
    # shellcheck disable=SC2086  # the argument lists are split on purpose
    measure "c-$label-$router" "$bench" $c_args --router "$router" --threads "$THREADS" \
        --batch "$batch" --reps "$C_REPS"
    # shellcheck disable=SC2086
    measure "t-$label-$router" $PY tools/bench_torch.py $t_args --router "$router" \
        --threads "$THREADS" --batch "$batch" --reps "$TORCH_REPS"
    # the best-effort PyTorch peer (tools/moe_fast.py) for the project's own models
    case " $t_args " in *" --hf "*) return 0 ;; esac
    # shellcheck disable=SC2086
    measure "f-$label-$router" $PY tools/bench_torch.py $t_args --router "$router" \
        --threads "$THREADS" --batch "$batch" --reps "$TORCH_REPS" --impl fast
}

start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $ROUTERS; do
    run fmnist "$r" 16 --model models/fmnist-vit-moe-softmax.h5 --data $FMNIST_DATA \
        -- --model models/fmnist-vit-moe-softmax.h5 --data $FMNIST_DATA --limit "$TORCH_FMNIST_N"
done
for r in $ROUTERS; do
    run kjv "$r" 16 --model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 \
        -- --model models/kjv-char-moe-softmax.h5 --data models/kjv-char-test.h5 --limit "$TORCH_KJV_N"
done
for r in $ROUTERS; do
    run papers "$r" 8 --model "$PAPERS_MODEL" --random-tokens 16 \
        -- --model "$PAPERS_MODEL" --random-tokens 16
done
for r in $ROUTERS; do
    run olmoe "$r" 4 --model "$HF_MODEL" --random-tokens 8 \
        -- --hf "$HF_CKPT" --max-seq-len $HF_T --random-tokens 8
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

OUT="$OUT" ROUTERS="$ROUTERS" THREADS="$THREADS" SECONDS_TOTAL=$(( $(date +%s) - start )) \
LOAD0="$load0" LOAD1="$load1" CONTENTION_MAX="$CONTENTION_MAX" $PY - <<'EOF'
import os, re

out, routers = os.environ["OUT"], os.environ["ROUTERS"].split()
models = [("fmnist", "Fashion-MNIST ViT (demo)"), ("kjv", "KJV char-LM (demo)"),
          ("papers", "papers-size LM (random)"), ("olmoe", "OLMoE geometry 2L (HF)")]


def result(path):
    kv, n = {}, None
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT"):
                kv = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.eE+-]+)", line)}
            m = re.match(r"samples\s+(\d+) x", line)
            if m:
                n = int(m.group(1))
    kv["n"] = n
    return kv


def others(path):
    with open(path) as f:
        return float(f.read())


def c_rss(path):
    with open(path) as f:
        for line in f:
            if "Maximum resident set size" in line:
                return int(line.split(":")[1])
    return 0


rows = {}
for m, _ in models:
    for r in routers:
        if not all(os.path.exists(f"{out}/{s}-{m}-{r}.{x}") for s in "ct" for x in ("out", "others")):
            continue  # not measured (ONLY without KEEP)
        c, t = result(f"{out}/c-{m}-{r}.out"), result(f"{out}/t-{m}-{r}.out")
        c["rss_kib"] = c_rss(f"{out}/c-{m}-{r}.time")
        c["others"] = others(f"{out}/c-{m}-{r}.others")
        t["others"] = others(f"{out}/t-{m}-{r}.others")
        f = {}
        if os.path.exists(f"{out}/f-{m}-{r}.out") and os.path.exists(f"{out}/f-{m}-{r}.others"):
            f = result(f"{out}/f-{m}-{r}.out")
            f["others"] = others(f"{out}/f-{m}-{r}.others")
        c["fast"] = f
        rows[m, r] = c, t

hdr = (f"{'model':26} {'router':10} {'C samp/s':>9} {'C tok/s':>9} {'PT samp/s':>9} "
       f"{'PT tok/s':>9} {'PT n':>5} {'C/PT':>6} {'C RSS':>7} {'PT RSS':>7} "
       f"{'GEMM GF/s':>9} {'%sgemm':>6} {'C ovh%':>6} {'PT ovh%':>7} {'C oth':>5} {'PT oth':>6} "
       f"{'C/PT cpu':>8} {'PTf samp/s':>10} {'C/PTf':>6} {'C/PTf cpu':>9} {'PTf oth':>7} "
       f"{'fwd GF/s':>8} {'%peak':>5} {'%peak cpu':>9}")
print(f"threads {os.environ['THREADS']}; RSS in MiB; ovh = time over the same model's softmax "
      f"row; oth = cores used by other processes during the run; C/PT cpu = the ratio of "
      f"tokens per process CPU second (not inflated by other processes); load average before "
      f"{os.environ['LOAD0']}, after {os.environ['LOAD1']}; {os.environ['SECONDS_TOTAL']} s; "
      f"OpenBLAS kernels: {os.environ['BLAS_CORE']}")
print("PTf = the best-effort PyTorch peer (tools/moe_fast.py); fwd GF/s = the C forward's "
      "matrix products per second (moe-robust-bench), %peak = its share of the sgemm peak "
      "measured in the same process (1024^3 per thread), by wall time and per CPU second")
print(hdr)
print("-" * len(hdr))


def sps(x):  # samples/s: 3 decimals below 10 (the olmoe model runs well under 1 per second)
    v = x["samples_per_s"]
    return f"{v:9.1f}" if v >= 10 else f"{v:9.3f}"


def cpu_ratio(c, t):
    return c["cpu_tokens_per_s"] / t["cpu_tokens_per_s"] if "cpu_tokens_per_s" in c and \
        "cpu_tokens_per_s" in t else float("nan")


def fast_cols(c):
    f = c["fast"]
    if not f:
        return f"{'-':>10} {'-':>6} {'-':>9} {'-':>7}"
    return (f"{sps(f):>10} {c['samples_per_s'] / f['samples_per_s']:6.2f} "
            f"{cpu_ratio(c, f):9.2f} {f['others']:7.2f}")


def roof_cols(c):
    if "forward_gflops" not in c:
        return f"{'-':>8} {'-':>5} {'-':>9}"
    return (f"{c['forward_gflops']:8.1f} {100 * c['forward_gflops'] / c['peak_gflops']:5.0f} "
            f"{100 * c['forward_gflops_cpu'] / c['peak_gflops_cpu']:9.0f}")


for m, name in models:
    cs, ts = rows.get((m, "softmax"), ({"samples_per_s": float("nan")},) * 2)
    for r in routers:
        if (m, r) not in rows:
            continue
        c, t = rows[m, r]
        ratio = c["samples_per_s"] / t["samples_per_s"]
        print(f"{name:26} {r:10} {sps(c)} {c['tokens_per_s']:9.0f} "
              f"{sps(t)} {t['tokens_per_s']:9.0f} {t['n']:5d} {ratio:6.2f} "
              f"{c['rss_kib'] / 1024:7.0f} {t['rss_kib'] / 1024:7.0f} "
              f"{c['gemm_gflops']:9.1f} {100 * c['gemm_gflops'] / c['sgemm_gflops']:6.0f} "
              f"{100 * (cs['samples_per_s'] / c['samples_per_s'] - 1):6.1f} "
              f"{100 * (ts['samples_per_s'] / t['samples_per_s'] - 1):7.1f} "
              f"{c['others']:5.2f} {t['others']:6.2f} {cpu_ratio(c, t):8.2f} "
              f"{fast_cols(c)} {roof_cols(c)}")


def verdict(ok):
    return "PASS" if ok else "MISS"


print()
print("targets (issue 8):")
if any((m, r) not in rows for m, _ in models[:3] for r in routers):
    print("  (not evaluated: some rows were not measured)")
    rows_all = False
else:
    rows_all = True
for m in ("fmnist", "kjv") if rows_all else ():
    ratios = [rows[m, r][0]["samples_per_s"] / rows[m, r][1]["samples_per_s"] for r in routers]
    print(f"  {verdict(min(ratios) >= 5)}  >= 5x PyTorch eager on {m}: "
          f"{min(ratios):.2f}x .. {max(ratios):.2f}x over the {len(routers)} routers")
if rows_all:
    ratios = [rows["papers", r][0]["samples_per_s"] / rows["papers", r][1]["samples_per_s"]
              for r in routers]
    print(f"  {verdict(min(ratios) >= 1.5)}  >= 1.5x PyTorch eager on the papers-size stack: "
          f"{min(ratios):.2f}x .. {max(ratios):.2f}x")
    c = rows["papers", "softmax"][0]
    share = c["gemm_gflops"] / c["sgemm_gflops"]
    print(f"  {verdict(share >= 0.5)}  expert GEMMs >= 50 % of sgemm at papers size: "
          f"{100 * share:.0f} % ({c['gemm_gflops']:.1f} of {c['sgemm_gflops']:.1f} GFLOP/s, "
          f"plain sgemm of the same size, same threads)")
for m in ("fmnist", "kjv") if rows_all else ():
    ovh = rows[m, "softmax"][0]["samples_per_s"] / rows[m, "attention"][0]["samples_per_s"] - 1
    print(f"  {verdict(ovh < 0.3)}  attention router < 30 % over softmax on {m} (C): "
          f"{100 * ovh:.1f} %")
if all(("olmoe", r) in rows for r in routers):
    ratios = [rows["olmoe", r][0]["samples_per_s"] / rows["olmoe", r][1]["samples_per_s"]
              for r in routers]
    c = rows["olmoe", "softmax"][0]
    cpu = [cpu_ratio(*rows["olmoe", r]) for r in routers]
    print(f"  imported OLMoE geometry (issue 19, no target): C {min(ratios):.2f}x .. "
          f"{max(ratios):.2f}x PyTorch eager over the {len(routers)} routers ({min(cpu):.2f}x .. "
          f"{max(cpu):.2f}x in tokens per CPU second); C weights "
          f"{c.get('weights_mib', 0):.0f} MiB, peak RSS {c['rss_kib'] / 1024:.0f} MiB")
print()
print("targets (issue 17; the ratios per CPU second, which other processes' load does not "
      "distort):")
for m, want in (("fmnist", 3.0), ("kjv", 3.0), ("papers", 1.2)):
    got = [rows[m, r][0]["cpu_tokens_per_s"] / rows[m, r][0]["fast"]["cpu_tokens_per_s"]
           for r in routers if (m, r) in rows and rows[m, r][0]["fast"]]
    if got:
        print(f"  {verdict(min(got) >= want)}  >= {want:g}x the best-effort PyTorch peer on "
              f"{m}: {min(got):.2f}x .. {max(got):.2f}x over {len(got)} routers")
for m, want in (("papers", 0.60), ("fmnist", 0.35)):
    c = rows.get((m, "softmax"), ({},))[0]
    if "forward_gflops_cpu" in c:
        share = c["forward_gflops_cpu"] / c["peak_gflops_cpu"]
        print(f"  {verdict(share >= want)}  whole forward >= {100 * want:.0f} % of the sgemm "
              f"peak on {m} (softmax): {100 * share:.0f} % per CPU second "
              f"({c['forward_gflops_cpu']:.1f} of {c['peak_gflops_cpu']:.1f} GFLOP/s), "
              f"{100 * c['forward_gflops'] / c['peak_gflops']:.0f} % by wall time")
lim = float(os.environ["CONTENTION_MAX"])
bad = [f"{m}/{r} {side}" for (m, r), (c, t) in rows.items()
       for side, x in (("C", c), ("PyTorch", t), ("PyTorch fast", c["fast"]))
       if x and x["others"] > lim]
if bad:
    print(f"disturbed (other processes used > {lim} cores during the kept run: its throughput "
          f"is a lower bound, so a C/PyTorch ratio is a lower bound when only C was disturbed "
          f"and an upper bound when only PyTorch was): " + ", ".join(bad))
EOF
