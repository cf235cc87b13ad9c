"""rcyc rie install / path: the AWS Lambda Runtime Interface Emulator that invoke-local runs."""

from __future__ import annotations

import click

from .options import json_option, rie_option


@click.group()
def rie():
    """The AWS Lambda Runtime Interface Emulator that invoke-local runs."""


@rie.command("install")
@click.option("--force", is_flag=True, help="Download again even if installed.")
@json_option
def rie_install(force, as_json):
    """Fetch the pinned emulator (from the aws-sam-cli wheel), verify its sha256, keep it in the user cache."""
    from ..local.emulator import rie as emulator
    from ..render import console

    with console.err.status("downloading the aws-sam-cli wheel (no dependencies) for its emulator"):
        path = emulator.install(force)
    if as_json:
        console.print_json({"path": str(path), "sha256": emulator.SHA256[emulator.arch()]})
    else:
        console.out.print(str(path))


@rie.command("path")
@rie_option
@json_option
def rie_path(rie, as_json):
    """Print the emulator rcyc would use."""
    from ..local.emulator import rie as emulator
    from ..render import console

    path = str(emulator.locate(rie))
    console.print_json({"path": path}) if as_json else console.out.print(path)
