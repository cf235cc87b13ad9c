"""The one way tests run the command line in-process (click's CliRunner, exceptions not swallowed)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from rcyc_cli.main import cli


def run(*args, **kwargs) -> Result:
    """``rcyc ARGS...`` in this process: each argument as a string (Paths welcome); kwargs go to CliRunner.invoke
    (e.g. ``env=``, ``input=``)."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)
