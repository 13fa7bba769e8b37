#!/bin/sh
# Issue #18's deep model (models/fmnist-vit-moe4-softmax*.h5, MoE in all four blocks):
# the momentum router routes MoE blocks 1 and 2 exactly as softmax and differently from
# the third on (docs/routers.md, `momentum`), and the report says so. Clean, corrupted and
# checkpoint-fluctuation cells of one small grid (100 images): every routing metric of
# layers 0 and 1 equal to softmax's, entropy and routing flips of layers 2 and 3 not.
# Exit 77 (ctest: skipped, never passed) without Fashion-MNIST or python3-h5py.
set -u
bin=$1
fmnist=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
[ -r "$fmnist" ] || { echo "SKIP: $fmnist missing (Debian dataset-fashion-mnist; scripts/bootstrap installs it)"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-deep-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/grid.ini" <<EOF2
[run]
seed = 5
bootstrap = 50
limit = 100
[data]
path = $fmnist
[model vit4]
path = models/fmnist-vit-moe4-softmax.h5
checkpoint = models/fmnist-vit-moe4-softmax-ep11.h5
checkpoint = models/fmnist-vit-moe4-softmax.h5
[router softmax]
[router momentum]
[corruptions]
names = gaussian_noise
severities = 3
EOF2
"$bin" run "$tmp/grid.ini" --out "$tmp/run" --quiet >/dev/null 2>"$tmp/err" || { echo "FAIL run: $(cat "$tmp/err")"; exit 1; }
"$bin" report "$tmp/run" --no-render --no-gallery --quiet 2>"$tmp/err" || { echo "FAIL report: $(cat "$tmp/err")"; exit 1; }
fail=0
grep -q "Note on the momentum rows: this model has 4 MoE blocks" "$tmp/run/report/report.md" &&
  echo "ok   report.md says from which block momentum routing differs" ||
  { echo "FAIL report.md lacks the deep model's momentum note"; fail=1; }
/usr/bin/python3 - "$tmp/run/summary.json" <<'EOF2' || fail=1
import json, sys
cells = {c["id"]: c for c in json.load(open(sys.argv[1]))["cells"]}
fail = 0
def metric(layer, name):
    v = layer.get(name)
    return v["mean"] if isinstance(v, dict) else v
for kind, names in (("clean", ("entropy", "load_cv", "topk_weight_entropy")),
                    ("gaussian_noise/s3", ("entropy", "flip_top1", "load_cv")),
                    ("fluct/0", ("flip_top1",))):
    a, b = cells["vit4/softmax@k2/" + kind], cells["vit4/momentum@k2/" + kind]
    for la, lb in zip(a["layers"], b["layers"]):
        for n in names:
            x, y = metric(la, n), metric(lb, n)
            same = x == y
            want_same = la["layer"] < 2
            what = f"{kind} layer {la['layer']} {n}: softmax {x:.6f}, momentum {y:.6f}"
            if same == want_same:
                print("ok  ", what, "(equal)" if same else "(differ)")
            else:
                print("FAIL", what, "should", "be equal" if want_same else "differ")
                fail = 1
sys.exit(fail)
EOF2
exit $fail
