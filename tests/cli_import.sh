#!/bin/sh
# `moe-robust import` on the tiny Hugging Face checkpoints of tests/fixtures/hf
# (tools/make_hf_fixture.py; the parity with PyTorch is tests/test_hf_parity.c):
#  1. each of the 9 (4 families x f32, bf16, and mixtral f16; sharded and single-file)
#     imports and validates;
#  2. `eval` of the imported model equals `eval` of the same weights converted by the
#     PyTorch side (tools/hf_moe.py) line for line, clean and under token_replace and
#     embed_gaussian, and is the same with 1 and 2 threads;
#  3. the training-free routers swap in (similarity, attention, ac, random, momentum);
#     cosine and s2moe are refused (exit 2), naming the tensors they need;
#  4. a character-level corruption is refused (exit 2): these models have token ids only;
#  5. --max-seq-len: shorter contexts import, longer than max_position_embeddings and bad
#     arguments exit 2;
#  6. docs/import.md's recipe: a grid (routers softmax, attention, ac; token_replace,
#     embed_gaussian, embed_dropout) runs on the imported model and reports;
#  7. optional keys take the configuration classes' defaults: without rms_norm_eps, 1e-5
#     for mixtral and olmoe, 1e-6 for qwen2_moe and qwen3_moe; olmoe without
#     num_key_value_heads has one per head (the other families require the key:
#     tests/bad/hf/missing-kv-heads).
set -u
bin=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=tests/fixtures/hf/tokens.h5
say() { echo "$1"; case "$1" in FAIL*) fail=1 ;; esac; }

for ck in tests/fixtures/hf/*-f32 tests/fixtures/hf/*-bf16 tests/fixtures/hf/*-f16; do
  name=$(basename "$ck")
  m="$tmp/$name.h5"
  if ! "$bin" import "$ck" --out "$m" >/dev/null 2>"$tmp/err"; then
    say "FAIL $name: import failed: $(cat "$tmp/err")"; continue
  fi
  "$bin" inspect "$m" >/dev/null 2>&1 || { say "FAIL $name: inspect refuses the import"; continue; }
  for extra in "" "--corruption token_replace:3" "--corruption embed_gaussian:2"; do
    # shellcheck disable=SC2086  # $extra is split on purpose
    a=$("$bin" eval --model "$m" --data $data --bootstrap 50 --threads 2 $extra 2>&1 | grep -v '^model ')
    # shellcheck disable=SC2086
    b=$("$bin" eval --model "$ck.h5" --data $data --bootstrap 50 --threads 2 $extra 2>&1 | grep -v '^model ')
    # shellcheck disable=SC2086
    c=$("$bin" eval --model "$m" --data $data --bootstrap 50 --threads 1 $extra 2>&1 | grep -v '^model \|threads')
    case "$a" in *bpc*) ;; *) say "FAIL $name $extra: eval printed no result: $a"; continue ;; esac
    if [ "$a" != "$b" ]; then say "FAIL $name $extra: eval of the import differs from eval of tools/hf_moe.py's conversion"; continue; fi
    if [ "$(echo "$a" | grep -v threads)" != "$c" ]; then say "FAIL $name $extra: 1 and 2 threads differ"; continue; fi
    say "ok   $name ${extra:-clean}: eval of the import = eval of the PyTorch conversion"
  done
done

m="$tmp/qwen2_moe-f32.h5"
for r in similarity attention ac random momentum; do
  if out=$("$bin" eval --model "$m" --data $data --bootstrap 0 --router $r 2>&1); then
    case "$out" in *"router       $r"*) say "ok   router $r swaps in" ;; *) say "FAIL router $r: $out" ;; esac
  else
    say "FAIL router $r: $out"
  fi
done
for r in cosine s2moe; do
  err=$("$bin" eval --model "$m" --data $data --bootstrap 0 --router $r 2>&1 >/dev/null); rc=$?
  case "$rc:$err" in 2:*needs*) say "ok   router $r refused: $err" ;; *) say "FAIL router $r: exit $rc: $err" ;; esac
done
err=$("$bin" eval --model "$m" --data $data --bootstrap 0 --corruption char_swap:3 2>&1 >/dev/null); rc=$?
case "$rc:$err" in 2:*vocab*tokenizer*) say "ok   char_swap refused: $err" ;; *) say "FAIL char_swap: exit $rc: $err" ;; esac

ck=tests/fixtures/hf/olmoe-f32
if "$bin" import $ck --out "$tmp/short.h5" --max-seq-len 12 >/dev/null &&
   "$bin" inspect "$tmp/short.h5" | grep -q "max_seq_len 12" &&
   "$bin" eval --model "$tmp/short.h5" --data $data --bootstrap 0 >/dev/null; then
  say "ok   --max-seq-len 12"
else
  say "FAIL --max-seq-len 12"
fi
cat > "$tmp/grid.ini" <<EOF
[run]
out = $tmp/grid
batch = 4
[data]
path = $data
[model olmoe]
path = $tmp/olmoe-f32.h5
[router softmax]
[router attention]
[router ac]
[corruptions]
names = token_replace, embed_gaussian, embed_dropout
severities = 1-2
EOF
if "$bin" run "$tmp/grid.ini" --threads 2 >"$tmp/grid.log" 2>&1 &&
   "$bin" report "$tmp/grid" >>"$tmp/grid.log" 2>&1 && [ -s "$tmp/grid/report/report.md" ] &&
   [ "$(cut -d, -f1 "$tmp/grid/summary.csv" | grep '^olmoe/' | sort -u | wc -l)" -eq 21 ]; then
  say "ok   docs/import.md's grid recipe runs and reports on an imported model"
else
  say "FAIL the grid recipe on an imported model: $(tail -3 "$tmp/grid.log")"
fi

nodefault() { # family, key: the f32 fixture without the key in config.json, imported
  mkdir -p "$tmp/$1-no-$2" && cp tests/fixtures/hf/$1-f32/* "$tmp/$1-no-$2/" &&
    sed -i "/\"$2\":/d" "$tmp/$1-no-$2/config.json" &&
    ! grep -q "\"$2\"" "$tmp/$1-no-$2/config.json" &&
    "$bin" import "$tmp/$1-no-$2" --out "$tmp/$1-no-$2.h5" >/dev/null &&
    "$bin" inspect "$tmp/$1-no-$2.h5"
}
for fe in mixtral:1e-05 olmoe:1e-05 qwen2_moe:1e-06 qwen3_moe:1e-06; do
  f=${fe%%:*} e=${fe#*:}
  case "$(nodefault "$f" rms_norm_eps 2>&1)" in
    *"norm_eps $e)"*) say "ok   $f without rms_norm_eps: norm_eps $e" ;;
    *) say "FAIL $f without rms_norm_eps: $(nodefault "$f" rms_norm_eps 2>&1 | grep -i 'eps\|import')" ;;
  esac
done
case "$(nodefault olmoe num_key_value_heads 2>&1)" in
  *"4 query heads, 4 key/value heads"*) say "ok   olmoe without num_key_value_heads: one per head" ;;
  *) say "FAIL olmoe without num_key_value_heads: $(nodefault olmoe num_key_value_heads 2>&1 | grep 'heads\|import')" ;;
esac

expect2() { # description, then the command's arguments: exit 2 and no output file
  d=$1; shift
  "$bin" "$@" >/dev/null 2>&1; rc=$?
  if [ "$rc" = 2 ] && [ ! -e "$tmp/x.h5" ]; then say "ok   $d: exit 2"; else say "FAIL $d: exit $rc"; fi
}
expect2 "--max-seq-len beyond max_position_embeddings" import $ck --out "$tmp/x.h5" --max-seq-len 65
expect2 "--max-seq-len 0" import $ck --out "$tmp/x.h5" --max-seq-len 0
expect2 "--max-seq-len x" import $ck --out "$tmp/x.h5" --max-seq-len x
expect2 "no --out" import $ck
expect2 "no DIR" import --out "$tmp/x.h5"
expect2 "two DIRs" import $ck $ck --out "$tmp/x.h5"
expect2 "unknown option" import $ck --out "$tmp/x.h5" --bogus
exit $fail
