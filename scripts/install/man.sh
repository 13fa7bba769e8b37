#!/bin/sh
# Man pages of moe-robust and of each of its commands, made from their --help and
# --version by Debian's help2man (docs/install.md); run by the build.
#   scripts/install/man.sh HELP2MAN BIN OUTDIR
# writes OUTDIR/moe-robust.1 and OUTDIR/moe-robust-COMMAND.1.
set -eu
h2m=$1; bin=$2; out=$3
mkdir -p "$out"
page() { # NAME DESCRIPTION [COMMAND]
  name=$1; desc=$2; sub=${3:-}
  tmp="$out/$name.1.tmp"
  # help2man runs "PROGRAM --help" and "PROGRAM --version" through the shell
  "$h2m" --no-info --no-discard-stderr --name="$desc" --section=1 --output="$tmp" \
         "$bin${sub:+ $sub}"
  if [ -n "$sub" ]; then
    # moe-robust-run(1), as git-commit(1): title and NAME of the command's own page
    upper=$(echo "$name" | tr 'a-z' 'A-Z')
    sed -i -e "s/^\\.TH MOE-ROBUST /.TH $upper /" \
           -e "s/^moe-robust \\\\- /moe\\\\-robust\\\\-$sub \\\\- /" "$tmp"
  fi
  printf '.SH "SEE ALSO"\n' >> "$tmp"
  if [ -n "$sub" ]; then
    printf '.BR moe\\-robust (1);\n' >> "$tmp"
  else
    for c in $cmds; do printf '.BR moe\\-robust\\-%s (1),\n' "$c" >> "$tmp"; done
  fi
  printf 'the documentation in the docs/ folder of the moe-robust sources.\n' >> "$tmp"
  mv "$tmp" "$out/$name.1"
}
cmds="inspect eval run merge corrupt report baseline check compress attack import"
page moe-robust "routing robustness and stability of Sparse Mixture-of-Experts models"
page moe-robust-inspect "validate a model file and print its architecture and metadata" inspect
page moe-robust-eval "accuracy, routing entropy, load balance and flip rates of a model" eval
page moe-robust-run "run the evaluation grid of a config: models x routers x corruptions" run
page moe-robust-merge "assemble the results of a sharded run" merge
page moe-robust-corrupt "write a corrupted dataset, or a gallery of every corruption" corrupt
page moe-robust-report "figures and tables of a run, from its results.h5" report
page moe-robust-baseline "freeze a run's metrics as a baseline for check" baseline
page moe-robust-check "compare a run with a baseline: the CI gate" check
page moe-robust-compress "prune or merge the experts of a trained model" compress
page moe-robust-attack "adversarial examples against a model, and its evaluation on them" attack
page moe-robust-import "a Hugging Face MoE checkpoint to a moe-robust model file" import
