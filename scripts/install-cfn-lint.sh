#!/usr/bin/env bash
# Installs CloudFormation's linter (cfn-lint, PyPI) at a pinned version into a virtualenv of its own
# under ~/.cache/ugc-ingest, once, and prints the path of its cfn-lint. Run by .ci/run and by the
# template test (tests/unit/deploy-package.test.ts); a second run installs nothing.
set -euo pipefail

version=1.51.0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/ugc-ingest/cfn-lint-$version"
bin="$dir/bin/cfn-lint"
# Written after a complete install (checking `cfn-lint --version` would cost seconds: it loads every rule).
installed="$dir/installed"

if [ -x "$bin" ] && [ -f "$installed" ]; then
  echo "$bin"
  exit 0
fi

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "install-cfn-lint: no $python: cfn-lint needs Python 3.9+ with venv (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$dir"
if ! "$python" -m venv "$dir" >/dev/null 2>&1; then
  rm -rf "$dir"
  echo "install-cfn-lint: $python cannot make a virtualenv (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "cfn-lint==$version" >&2
"$bin" --version | grep -q "cfn-lint $version"
touch "$installed"
echo "$bin"
