"""rcyc rie install / path: the AWS Lambda Runtime Interface Emulator that invoke-local runs."""

from __future__ import annotations

import click

from .options import rie_option
from .output import emit, json_option


@click.group()
def rie():
    """The AWS Lambda Runtime Interface Emulator that invoke-local runs."""


@rie.command("install")
@click.option("--force", is_flag=True, help="Download again even if installed.")
@json_option
def rie_install(force):
    """Fetch the pinned emulator (from the aws-sam-cli wheel), verify its sha256, keep it in the user cache."""
    from ..local.emulator import rie as emulator
    from ..render import console

    with console.err.status("downloading the aws-sam-cli wheel (no dependencies) for its emulator"):
        path = emulator.install(force)
    emit({"path": str(path), "sha256": emulator.SHA256[emulator.arch()]}, _print_path)


@rie.command("path")
@rie_option
@json_option
def rie_path(rie):
    """Print the emulator rcyc would use."""
    from ..local.emulator import rie as emulator

    emit({"path": str(emulator.locate(rie))}, _print_path)


def _print_path(payload: dict) -> None:
    from ..render import console

    console.out.print(payload["path"])
