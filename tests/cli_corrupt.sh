#!/bin/sh
# CLI contract of 'moe-robust corrupt': --help / --list exit 0; bad options, names,
# severities, modality mismatches and unwritable outputs exit 2 with a message naming
# them; a valid run writes a readable dataset atomically (no *.tmp-* left), identical
# for any --threads and different for another --seed; the gallery writes a PNG.
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
img=tests/fixtures/tiny-images.h5; idx=tests/fixtures/tiny-images-idx3-ubyte.gz
tok=tests/fixtures/tiny-tokens.h5; lm=tests/fixtures/tiny-lm.h5; cls=tests/fixtures/tiny-classify.h5
expect 0 "usage: moe-robust corrupt" -- "$bin" corrupt --help
expect 0 "corrupt --data D" -- "$bin" --help
expect 0 "word_swap_aaa" -- "$bin" corrupt --list
expect 2 "--data is required" -- "$bin" corrupt
expect 2 "--corruption is required" -- "$bin" corrupt --data $img --out "$tmp/x.h5"
expect 2 "--out is required" -- "$bin" corrupt --data $img --corruption fog:1
expect 2 "unknown corruption 'nosuch' (known: shot_noise" -- "$bin" corrupt --data $img --corruption nosuch:1 --out "$tmp/x.h5"
expect 2 "severity 6 is outside 1..5" -- "$bin" corrupt --data $img --corruption fog:6 --out "$tmp/x.h5"
expect 2 "--severity: 0 is outside 1..5" -- "$bin" corrupt --data $img --corruption fog --severity 0 --out "$tmp/x.h5"
expect 2 "--severity is required" -- "$bin" corrupt --data $img --corruption fog --out "$tmp/x.h5"
expect 2 "disagree" -- "$bin" corrupt --data $img --corruption fog:2 --severity 3 --out "$tmp/x.h5"
expect 2 "--seed: 'x' is not an integer" -- "$bin" corrupt --data $img --corruption fog:2 --seed x --out "$tmp/x.h5"
expect 2 "unknown option '--frob'" -- "$bin" corrupt --frob
expect 2 "moe-robust eval --corruption embed_gaussian:2" -- "$bin" corrupt --data $img --corruption embed_gaussian:2 --out "$tmp/x.h5"
expect 2 "--model M.h5 is required for the text corruption char_swap" -- "$bin" corrupt --data $tok --corruption char_swap:2 --out "$tmp/x.h5"
expect 2 "fog is an image corruption but $tok holds tokens" -- "$bin" corrupt --data $tok --corruption fog:2 --out "$tmp/x.h5"
expect 2 "char_swap is a text corruption but $img holds images" -- "$bin" corrupt --data $img --corruption char_swap:2 --out "$tmp/x.h5"
expect 2 "not a language model" -- "$bin" corrupt --data $tok --corruption char_swap:2 --model $cls --out "$tmp/x.h5"
expect 2 "nope.h5" -- "$bin" corrupt --data tests/fixtures/nope.h5 --corruption fog:2 --out "$tmp/x.h5"
expect 2 "cannot create" -- "$bin" corrupt --data $img --corruption fog:2 --out /nonexistent-dir/x.h5
check "nothing written after errors" test -z "$(ls "$tmp")"
# valid runs: images (HDF5 and IDX input), tokens through the model's vocabulary
expect 0 "wrote $tmp/a.h5: 8 images under shot_noise:3" -- "$bin" corrupt --data $img --corruption shot_noise:3 --seed 5 --threads 1 --out "$tmp/a.h5"
expect 0 "wrote" -- "$bin" corrupt --data $img --corruption shot_noise --severity 3 --seed 5 --threads 2 --out "$tmp/b.h5"
expect 0 "wrote" -- "$bin" corrupt --data $img --corruption shot_noise:3 --seed 6 --out "$tmp/c.h5"
check "same seed, 1 vs 2 threads: identical files" cmp -s "$tmp/a.h5" "$tmp/b.h5"
check "another seed: another file" sh -c "! cmp -s '$tmp/a.h5' '$tmp/c.h5'"
expect 0 "8 images under rotate:2" -- "$bin" corrupt --data $idx --corruption rotate:2 --out "$tmp/d.h5"
expect 0 "6 token rows under word_swap_aaa:5" -- "$bin" corrupt --data $tok --model $lm --corruption word_swap_aaa:5 --out "$tmp/t.h5"
expect 0 "token rows under char_insert:5" -- "$bin" corrupt --data $tok --model $lm --corruption char_insert:5 --limit 4 --out "$tmp/t2.h5"
check "no temporary files left" test -z "$(ls "$tmp" | grep tmp-)"
# the outputs are datasets the evaluator reads
expect 0 "accuracy" -- "$bin" eval --model $cls --data "$tmp/a.h5"
expect 0 "bpc" -- "$bin" eval --model $lm --data "$tmp/t.h5"
# gallery
expect 0 "wrote $tmp/g.png" -- "$bin" corrupt --gallery "$tmp/g.png" --data $img --index 3 --scale 2
check "gallery is a PNG" sh -c "head -c 8 '$tmp/g.png' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'"
expect 2 "--index: 8 is outside 0..7" -- "$bin" corrupt --gallery "$tmp/h.png" --data $img --index 8
expect 2 "the gallery draws images" -- "$bin" corrupt --gallery "$tmp/h.png" --data $tok
expect 2 "--gallery and --out exclude each other" -- "$bin" corrupt --gallery "$tmp/h.png" --out "$tmp/h.h5" --data $img
expect 2 "cannot create" -- "$bin" corrupt --gallery /nonexistent-dir/g.png --data $img
exit $fail
