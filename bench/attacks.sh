#!/bin/sh
# bench/attacks.sh — time of the C attacks vs the same attacks in PyTorch eager on the
# reference implementation (tools/attack_torch.py), same threads (docs/attacks.md):
#   PGD-20 (eps 8/255, step 2/255, no random start) on N_PGD Fashion-MNIST test images,
#   Square (eps 8/255, QUERIES queries, AutoAttack's settings) on N_SQUARE images,
# for each model in ROUTERS (the shipped fmnist-vit-moe-<router>.h5 with its router).
# Prints the attack's own wall time (model loading and the final evaluation excluded),
# the PyTorch/C time ratio, the adversarial accuracy of both, how many cores OTHER
# processes used meanwhile ("oth": the VM is shared; a disturbed run reads slower), and
# each process's CPU time (user + system, loading and the clean/final evaluation pass
# included: one forward pass of the images, against the attack's 20 forward and backward
# passes or up to 1,000 queries) with its PyTorch/C ratio, which other processes' load
# does not inflate as it inflates wall time (THREADS=1 also keeps idle worker threads
# from spinning on CPU time). Ends with the host (lscpu model, avx512f) and load average.
#
#   bench/attacks.sh [BUILD_DIR]     (default build/; ~10 minutes on the 2-core VM)
#
# Environment (defaults): THREADS (2), N_PGD (1000), N_SQUARE (200), QUERIES (1000),
# ROUTERS (softmax), METHODS (pgd square), OUT (/tmp/moe-robust-bench-attacks).
set -eu
cd "$(dirname "$0")/.."
bin=${1:-build}/moe-robust
[ -x "$bin" ] || { echo "bench/attacks.sh: build first" >&2; exit 2; }
THREADS=${THREADS:-2}
N_PGD=${N_PGD:-1000}
N_SQUARE=${N_SQUARE:-200}
QUERIES=${QUERIES:-1000}
ROUTERS=${ROUTERS:-softmax}
METHODS=${METHODS:-pgd square}
OUT=${OUT:-/tmp/moe-robust-bench-attacks}
DATA=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
mkdir -p "$OUT"
hz=$(getconf CLK_TCK)
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# timed NAME CMD...: runs CMD into $OUT/NAME.out; sets $oth, the cores other processes used
timed() {
    name=$1
    shift
    b0=$(busy)
    /usr/bin/time -f "%e %U %S" -o "$OUT/$name.rusage" "$@" > "$OUT/$name.out" 2>&1
    b1=$(busy)
    oth=$(awk -v b=$((b1 - b0)) -v hz="$hz" '{ o = (b / hz - $2 - $3) / $1; printf "%.2f", o < 0 ? 0 : o }' \
          "$OUT/$name.rusage")
}

cpu_s() { awk '{ print $2 + $3 }' "$OUT/$1.rusage"; }
c_secs() { sed -n 's/.*forward passes per image; \([0-9.]*\) s$/\1/p' "$OUT/$1.out"; }
c_acc() { awk '/^accuracy/ { print $5; exit }' "$OUT/$1.out"; }
t_secs() { sed -n 's/.*, \([0-9.]*\) s on .*/\1/p' "$OUT/$1.out"; }
t_acc() { sed -n 's/.*accuracy [0-9.]* -> \([0-9.]*\).*/\1/p' "$OUT/$1.out"; }

load0=$(cut -d' ' -f1-3 /proc/loadavg)
printf '%-7s %-10s %5s %9s %9s %6s %7s %7s %5s %5s %8s %8s %6s\n' method router n "C s" "PT s" \
    "PT/C" "C acc" "PT acc" "C oth" "PToth" "C cpu s" "PT cpu s" "PT/C cpu"
for r in $ROUTERS; do
    m=models/fmnist-vit-moe-$r.h5
    for method in $METHODS; do
        if [ $method = pgd ]; then n=$N_PGD; steps=20; extra="--step-size 2/255 --random-start no"
        else n=$N_SQUARE; steps=$QUERIES; extra=""; fi
        # shellcheck disable=SC2086
        timed "c-$method-$r" "$bin" attack --model "$m" --data $DATA --method $method \
            --eps 8/255 --steps $steps $extra --limit "$n" --threads "$THREADS" --bootstrap 0 \
            --out "$OUT/adv-$method-$r.h5"
        co=$oth
        [ $method = pgd ] && extra="--step-size 2/255"
        # shellcheck disable=SC2086
        timed "t-$method-$r" /usr/bin/python3 tools/attack_torch.py --model "$m" --method $method \
            --eps 8/255 --steps $steps $extra --n "$n" --threads "$THREADS"
        cs=$(c_secs "c-$method-$r") ts=$(t_secs "t-$method-$r")
        cc=$(cpu_s "c-$method-$r") tc=$(cpu_s "t-$method-$r")
        printf '%-7s %-10s %5d %9.1f %9.1f %6.1f %7s %7s %5s %5s %8.1f %8.1f %6.1f\n' $method "$r" \
            "$n" "$cs" "$ts" "$(awk -v a="$ts" -v b="$cs" 'BEGIN { print a / b }')" \
            "$(c_acc "c-$method-$r")" "$(t_acc "t-$method-$r")" "$co" "$oth" "$cc" "$tc" \
            "$(awk -v a="$tc" -v b="$cc" 'BEGIN { print a / b }')"
    done
done
echo "host: $(lscpu | sed -n 's/^Model name: *//p'), $(grep -o -w -m1 avx512f /proc/cpuinfo || echo 'no avx512f'), $(nproc) CPUs; load average at the start $load0, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
