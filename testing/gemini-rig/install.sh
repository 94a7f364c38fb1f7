#!/usr/bin/env bash
# install.sh [VERSION] [DIR] — installs the real Gemini CLI VERSION (default: the version tested
# here) from npm into DIR (default ~/.cache/conclave-gemini/VERSION) and prints the path of its
# gemini executable. Cached: a second call for the same version only prints the path.
set -eu
v=${1:-0.61.0}
d=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/conclave-gemini/$v}
bin=$d/node_modules/.bin/gemini
if [ ! -x "$bin" ]; then
  mkdir -p "$d"
  [ -f "$d/package.json" ] || echo '{"private":true}' >"$d/package.json"
  (cd "$d" && npm install --no-audit --no-fund --loglevel=error "@google/gemini-cli@$v" >&2)
fi
"$bin" --version >/dev/null 2>&1 || { echo "install.sh: $bin does not run" >&2; exit 1; }
echo "$bin"
