#!/bin/sh
# bench/attack_parity.sh — the slow half of tests/test_attack_parity.c: FGSM and PGD-20
# (eps 8/255, step 2/255, no random start) on 1,000 Fashion-MNIST test images for every
# shipped router, C vs PyTorch's accuracy within 0.3 points (docs/attacks.md). The test
# suite runs PGD-20 on all 1,000 images for the softmax router only, and on the first 200
# for the seven others (about 36 s per router and 1,000 images on 2 cores). tests/fixtures/
# attacks/ ships 1,000-image references for all eight (tools/make_attack_refs.sh remakes
# them).
#   bench/attack_parity.sh [BUILD_DIR]          (default build/; ~6 minutes on 2 idle cores,
#                                                ~20 on the loaded VM)
set -eu
cd "$(dirname "$0")/.."
t=${1:-build}/tests/test_attack_parity
[ -x "$t" ] || { echo "bench/attack_parity.sh: build the tests first" >&2; exit 2; }
MR_ATTACK_PARITY_ALL=1 CK_TIMEOUT_MULTIPLIER=4 "$t"
