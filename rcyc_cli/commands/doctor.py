"""rcyc doctor: each prerequisite as ok or missing with the fix; or, with --security, an audit of a setup."""

from __future__ import annotations

import click

from ..exit_status import ExitStatus
from .options import check_region, rie_option
from .output import emit, json_option


@click.command()
@rie_option
@click.option("--security", "target", metavar="BUCKET[/FUNCTION]",
              help="Audit an existing bucket (and function) instead: public access, encryption, versioning, TLS-only "
              "policy, secrets in the function's environment, the role's reach. Exit 8 if anything is found.")
@click.option("--region", envvar="AWS_REGION", callback=check_region, help="AWS region for --security.")
@json_option
def doctor(rie, target, region):
    """List each prerequisite as ok or missing, with the fix (or, with --security, audit a setup)."""
    from ..render import tables

    if target:
        from ..cloud import audit

        findings = audit.run(target, region)
        rows = [(f.check, f.severity, f.detail, f.fix) for f in findings]
        payload = {"target": target, "findings": [f.to_dict() for f in findings]}
        failed = any(f.severity in ("high", "medium") for f in findings)
        status = ExitStatus.FINDINGS
    else:
        from .. import checks

        results = checks.run(rie)
        rows = [(c.name, c.status, c.detail, c.fix) for c in results]
        payload = {"checks": [c.to_dict() for c in results]}
        failed = any(c.ok is False for c in results)
        status = ExitStatus.MISSING_PREREQ
    emit(payload, lambda _payload: tables.render_checks(rows), status if failed else ExitStatus.OK)
