#!/bin/sh
# Code and docs cite papers, the authors' repositories and docs/ only (issue #23): never a
# path outside the repository (a session's notes, a home directory, the machine's work
# tree). Every tracked text file is checked.
set -u
fail=0
files=$(git ls-files 2>/dev/null | grep -E '\.(c|h|md|py|sh|ini|txt|cmake|cff|yml|yaml)$|CMakeLists\.txt$|^scripts/|^\.ci/' | grep -v '^tests/lint_citations\.sh$')
if [ -z "$files" ]; then
  echo "FAIL no tracked files found (not a git checkout?)"
  exit 1
fi
# shellcheck disable=SC2086
hits=$(grep -n -E 'shared/research|\.\./shared|(^|[^A-Za-z0-9_.])/work/|/root/|/home/[a-z]' $files 2>/dev/null)
if [ -n "$hits" ]; then
  echo "FAIL citations of paths outside the repository:"
  echo "$hits"
  fail=1
else
  echo "ok   no citation of a path outside the repository in $(echo "$files" | wc -l) files"
fi
exit $fail
