"""moto's server for the deploy rehearsal (scripts/deploy-rehearsal.ts), run by the python that
scripts/install-moto.sh prints:  python scripts/moto-server.py .cfnlintrc -H 127.0.0.1 -p PORT

moto's ValidateTemplate runs cfn-lint over the template and refuses it on any finding, a warning
included; AWS's ValidateTemplate lints nothing. osls calls it before every deploy, so here it
answers as our own lint gate does: cfn-lint's findings less the rules `.cfnlintrc` ignores (each
justified there). Nothing else in moto is changed.
"""
import sys

import yaml
import moto.cloudformation.models as cloudformation
from moto.server import main

with open(sys.argv[1]) as config:
    ignored = set(yaml.safe_load(config).get("ignore_checks", []))
lint = cloudformation.validate_template_cfn_lint
cloudformation.validate_template_cfn_lint = lambda template: [m for m in lint(template) if m.rule.id not in ignored]
main(sys.argv[2:])
