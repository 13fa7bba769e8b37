#!/bin/sh
# Agreement of merge-msmoe with the authors' code (tools/test_mcsmoe_reference.py): runs
# where MCSMOE_REPO points to a checkout or git mirror of UNITES-Lab/MC-SMoE and the
# PyTorch tools are installed; otherwise it prints SKIPPED and exits 77, which ctest
# reports as skipped (never as passed).
bin=$1
if [ ! -x /usr/bin/python3 ]; then echo "SKIPPED: no /usr/bin/python3"; exit 77; fi
exec /usr/bin/python3 tools/test_mcsmoe_reference.py --bin "$bin"
