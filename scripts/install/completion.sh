#!/bin/sh
# Bash completion for moe-robust, made from the built CLI's --help (docs/install.md); run
# by the build, so the options it completes are the options the commands take.
#   scripts/install/completion.sh BIN OUT
set -eu
bin=$1; out=$2
tmp="$out.tmp"
# the commands: the lines of the "commands:" block of moe-robust --help
cmds=$("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^$/ {on = 0} on && /^  [a-z]/ {print $1}' | tr '\n' ' ')
[ -n "$cmds" ] || { echo "completion.sh: no commands in '$bin --help'" >&2; exit 1; }
corruptions=$("$bin" corrupt --list | awk 'NR > 1 {print $1}' | tr '\n' ' ')
{
  echo "# bash completion for moe-robust $("$bin" --version | awk '{print $2}'), generated from its --help"
  echo "# by scripts/install/completion.sh"
  echo "_moe_robust() {"
  echo '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts'
  echo '  if [ "$COMP_CWORD" -eq 1 ]; then'
  echo "    COMPREPLY=(\$(compgen -W \"$cmds--help --version\" -- \"\$cur\"))"
  echo '    return'
  echo '  fi'
  echo '  case $prev in'
  echo "    --corruption) COMPREPLY=(\$(compgen -W \"$corruptions\" -- \"\$cur\")); return ;;"
  echo '  esac'
  echo '  case ${COMP_WORDS[1]} in'
  for c in $cmds; do
    # the options its --help lists, one per line starting "  --name" or "  -x, --name"
    opts=$("$bin" "$c" --help | sed -n 's/^ \{1,\}\(-[a-zA-Z], \)\{0,1\}\(--[a-z][a-z0-9-]*\).*/\2/p' |
           sort -u | tr '\n' ' ')
    echo "    $c) opts=\"$opts\" ;;"
  done
  echo '    *) opts="" ;;'
  echo '  esac'
  echo '  if [[ $cur == -* ]]; then'
  echo '    COMPREPLY=($(compgen -W "$opts" -- "$cur"))'
  echo '  else'
  echo '    COMPREPLY=($(compgen -f -- "$cur"))'
  echo '  fi'
  echo '}'
  echo 'complete -o filenames -o bashdefault -F _moe_robust moe-robust'
} > "$tmp"
mv "$tmp" "$out"
