#!/bin/sh
# Corruption families (docs/corruptions.md "Families"): a run with two noise corruptions,
# a blur and a geometric one reports per family (summary.json `ce_family`,
# `relative_ce_family`, results.h5 /ce/GROUP/ce_family) the mean of the family's
# per-corruption CEs, and every corrupted cell names its family.
set -u
bin=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mr-families-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/grid.ini" <<EOF2
[run]
seed = 3
bootstrap = 0
limit = 64
[data]
path = /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
[model vit]
path = models/fmnist-vit-moe-softmax.h5
[router softmax]
top_k = 2
[router sim]
type = similarity
tau = 2
[corruptions]
names = shot_noise, impulse_noise, gaussian_blur, rotate
severities = 3,5
EOF2
"$bin" run "$tmp/grid.ini" --out "$tmp/run" --quiet >/dev/null 2>"$tmp/err" || { echo "FAIL run: $(cat "$tmp/err")"; exit 1; }
/usr/bin/python3 - "$tmp/run" <<'EOF2'
import json, math, sys
import h5py
out = sys.argv[1]
want_fam = {"shot_noise": "noise", "impulse_noise": "noise", "gaussian_blur": "blur",
            "rotate": "geometric"}
js = json.load(open(f"{out}/summary.json"))
fails = []
for c in js["cells"]:
    if c["kind"] == "corrupt" and c.get("family") != want_fam[c["corruption"]]:
        fails.append(f"cell {c['id']}: family {c.get('family')}")
groups = js["corruption_error"]
if len(groups) != 2:
    fails.append(f"{len(groups)} groups")
def same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-12)
with h5py.File(f"{out}/results.h5") as r:
    for g in groups:
        for key in ("ce", "relative_ce"):
            per, fam = g[key], g[f"{key}_family"]
            if sorted(fam) != ["blur", "geometric", "noise"]:
                fails.append(f"{key}_family keys {sorted(fam)}")
            for f in fam:
                vals = [per[c] for c, ff in want_fam.items() if ff == f]
                want = None if None in vals else sum(vals) / len(vals)
                if not same(fam[f], want):
                    fails.append(f"{g['router']} {key}_family {f}: {fam[f]} want {want}")
            grp = r["ce"][f"{g['model']}~{g['router']}@k{g['k']}"]
            names = grp.attrs["families"]
            names = (names.decode() if isinstance(names, bytes) else names).split(",")
            for i, f in enumerate(names):
                v = float(grp[f"{key}_family"][i])
                if not same(None if math.isnan(v) else v, fam[f]):
                    fails.append(f"results.h5 {key}_family {f}: {v} vs {fam[f]}")
        # the noise family really averages two different numbers
        if same(g["ce"]["shot_noise"], g["ce"]["impulse_noise"]) and g["router"] != "softmax":
            fails.append("shot and impulse CE equal: the test shows nothing")
print("\n".join("FAIL " + f for f in fails) or "families: ok")
sys.exit(1 if fails else 0)
EOF2
