#!/usr/bin/env bash
# Installs moto's server (PyPI `moto[server]`: AWS's APIs on one local endpoint) at a pinned version,
# with the same cfn-lint as scripts/install-cfn-lint.sh (moto's ValidateTemplate runs it), and prints
# the path of that virtualenv's python, which runs scripts/moto-server.py. For the deploy rehearsal.
set -euo pipefail
exec "$(dirname "$0")/install-pypi-tool.sh" 'moto[server]' 5.2.5 python cfn-lint==1.51.0
