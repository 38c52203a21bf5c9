#!/usr/bin/env bash
# Installs a PyPI tool at a pinned version into a virtualenv of its own under ~/.cache/ugc-ingest,
# once, and prints the path of its command. A second run installs nothing.
#   scripts/install-pypi-tool.sh PACKAGE[EXTRAS] VERSION COMMAND [PINNED_REQUIREMENT...]
# PINNED_REQUIREMENT: more `name==version` installed beside it (a dependency it would take unpinned).
# Used for cfn-lint (install-cfn-lint.sh: the template test), Schemathesis (the contract test) and
# moto's server (install-moto.sh: the deploy rehearsal).
set -euo pipefail

package=${1:?usage: install-pypi-tool.sh PACKAGE VERSION COMMAND}
version=${2:?usage: install-pypi-tool.sh PACKAGE VERSION COMMAND}
command=${3:?usage: install-pypi-tool.sh PACKAGE VERSION COMMAND}
shift 3
pinned=("$@")
name=${package%%[*}                 # moto[server] -> moto
label=${package//[/-}; label=${label//]/}   # moto[server] -> moto-server
dir="${XDG_CACHE_HOME:-$HOME/.cache}/ugc-ingest/$label-$version"
bin="$dir/bin/$command"
# Written after a complete install (asking the tool its version can cost seconds: cfn-lint loads every rule).
installed="$dir/installed"

if [ -x "$bin" ] && [ -f "$installed" ]; then
  echo "$bin"
  exit 0
fi

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "install-pypi-tool: no $python: $package needs Python 3.9+ with venv (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$dir"
if ! "$python" -m venv "$dir" >/dev/null 2>&1; then
  rm -rf "$dir"
  echo "install-pypi-tool: $python cannot make a virtualenv for $package (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$package==$version" "${pinned[@]}" >&2
"$dir/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version(sys.argv[1]) != sys.argv[2])' "$name" "$version" || {
  echo "install-pypi-tool: $package $version did not install whole in $dir" >&2
  exit 1
}
touch "$installed"
echo "$bin"
