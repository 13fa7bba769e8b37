#!/bin/sh
# CLI contract of 'moe-robust attack': --help exits 0; bad options, methods, values,
# language models, token data and unwritable outputs exit 2 with a message naming them,
# leaving nothing behind; a valid run writes a readable image dataset atomically (no
# *.tmp-* left) inside the eps-ball, identical for any --threads and different for
# another --seed (randomized methods), and prints the clean-vs-adversarial evaluation.
set -u
bin=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect() { # expect RC NEEDLE -- CMD...
  want=$1; needle=$2; shift 3
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$want" ]; then echo "FAIL [$*]: exit $rc, expected $want: $out"; fail=1; return; fi
  case "$out" in *"$needle"*) echo "ok   [$*]" ;; *) echo "FAIL [$*]: output lacks '$needle': $out"; fail=1 ;; esac
}
check() { # check DESCRIPTION CONDITION...
  d=$1; shift
  if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fail=1; fi
}
img=tests/fixtures/tiny-images.h5; tok=tests/fixtures/tiny-tokens.h5
lm=tests/fixtures/tiny-lm.h5; cls=tests/fixtures/tiny-classify.h5
a="attack --model $cls --data $img"
expect 0 "usage: moe-robust attack" -- "$bin" attack --help
expect 0 "attack --model M --data D --method NAME --eps E" -- "$bin" --help
expect 2 "--model is required" -- "$bin" attack
expect 2 "--method is required" -- "$bin" $a --eps 8/255 --out "$tmp/x.h5"
expect 2 "--method: unknown attack 'cw'" -- "$bin" $a --method cw --eps 8/255 --out "$tmp/x.h5"
expect 2 "--eps is required" -- "$bin" $a --method pgd --out "$tmp/x.h5"
expect 2 "--out is required" -- "$bin" $a --method pgd --eps 8/255
expect 2 "--eps: 'x/255' is not a number or fraction" -- "$bin" $a --method pgd --eps x/255 --out "$tmp/x.h5"
expect 2 "--eps: '8/0' is not a number or fraction" -- "$bin" $a --method pgd --eps 8/0 --out "$tmp/x.h5"
expect 2 "eps = 2 must be in [0, 1]" -- "$bin" $a --method pgd --eps 2 --out "$tmp/x.h5"
expect 2 "--steps: 0 is outside" -- "$bin" $a --method pgd --eps 0.1 --steps 0 --out "$tmp/x.h5"
expect 2 "fgsm takes one step" -- "$bin" $a --method fgsm --eps 0.1 --steps 5 --out "$tmp/x.h5"
expect 2 "--random-start: 'maybe' must be no or yes" -- "$bin" $a --method pgd --eps 0.1 --random-start maybe --out "$tmp/x.h5"
expect 2 "--objective: 'acc' must be loss or routing" -- "$bin" $a --method pgd --eps 0.1 --objective acc --out "$tmp/x.h5"
expect 2 "route layer 0 is not an MoE block" -- "$bin" $a --method pgd --eps 0.1 --objective routing --route-layer 0 --out "$tmp/x.h5"
expect 2 "p_init = 1.5 must be in (0, 1]" -- "$bin" $a --method square --eps 0.1 --p-init 1.5 --out "$tmp/x.h5"
expect 2 "spsa evaluates direction pairs" -- "$bin" $a --method spsa --eps 0.1 --batch 1 --out "$tmp/x.h5"
expect 2 "unknown router 'nosuch'" -- "$bin" $a --method pgd --eps 0.1 --router nosuch --out "$tmp/x.h5"
expect 2 "is a language model" -- "$bin" attack --model $lm --data $tok --method pgd --eps 0.1 --out "$tmp/x.h5"
expect 2 "holds tokens" -- "$bin" attack --model $cls --data $tok --method pgd --eps 0.1 --out "$tmp/x.h5"
expect 2 "nope.h5" -- "$bin" attack --model $cls --data tests/fixtures/nope.h5 --method pgd --eps 0.1 --out "$tmp/x.h5"
expect 2 "cannot create" -- "$bin" $a --method pgd --eps 0.1 --out /nonexistent-dir/x.h5
expect 2 "unknown option '--frob'" -- "$bin" attack --frob
check "nothing written after errors" test -z "$(ls "$tmp")"
# valid runs: every method; the written images are data the evaluator reads
for m in fgsm pgd square spsa; do
  expect 0 "$tmp/$m-1.h5" -- "$bin" $a --method $m --eps 16/255 --steps 1 --seed 3 --threads 1 --batch 4 --bootstrap 0 --out "$tmp/$m-1.h5"
  expect 0 "attack       $m, eps 16/255 (16 grey levels" -- "$bin" $a --method $m --eps 16/255 --steps 1 --seed 3 --threads 2 --batch 4 --bootstrap 0 --out "$tmp/$m-2.h5"
  check "$m: 1 vs 2 threads, identical files" cmp -s "$tmp/$m-1.h5" "$tmp/$m-2.h5"
done
expect 0 "wrote" -- "$bin" $a --method square --eps 16/255 --steps 20 --seed 4 --batch 4 --bootstrap 0 --out "$tmp/square-s4.h5"
expect 0 "wrote" -- "$bin" $a --method square --eps 16/255 --steps 20 --seed 5 --batch 4 --bootstrap 0 --out "$tmp/square-s5.h5"
check "square: another seed, another file" sh -c "! cmp -s '$tmp/square-s4.h5' '$tmp/square-s5.h5'"
expect 0 "corruption   pgd eps 0.1" -- "$bin" $a --method pgd --eps 0.1 --objective routing --route-layer 1 --out "$tmp/r.h5"
expect 0 "accuracy" -- "$bin" eval --model $cls --data "$tmp/r.h5"
check "no temporary files left" test -z "$(ls "$tmp" | grep tmp-)"
check "attributes written" sh -c "h5dump -A '$tmp/r.h5' 2>/dev/null | grep -q 'routing' || /usr/bin/python3 -c \"import h5py,sys; f=h5py.File('$tmp/r.h5'); sys.exit(0 if f.attrs['objective'] in ('routing', b'routing') and f.attrs['eps_grey_levels'] == 25 else 1)\""
exit $fail
