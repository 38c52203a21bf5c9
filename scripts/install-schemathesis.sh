#!/usr/bin/env bash
# Installs Schemathesis (PyPI: requests generated from an OpenAPI document, and their answers checked
# against it) at a pinned version and prints the path of its st. Run by .ci/run and the contract test.
set -euo pipefail
exec "$(dirname "$0")/install-pypi-tool.sh" schemathesis 4.32.5 st
