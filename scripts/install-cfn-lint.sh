#!/usr/bin/env bash
# Installs CloudFormation's linter (cfn-lint, PyPI) at a pinned version and prints the path of its
# cfn-lint. Run by .ci/run and by the template test (tests/unit/deploy-package.test.ts).
set -euo pipefail
exec "$(dirname "$0")/install-pypi-tool.sh" cfn-lint 1.51.0 cfn-lint
