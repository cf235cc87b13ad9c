"""rcyc local up / status / down: the warm local stack."""

from __future__ import annotations

import click

from ..defaults import DEFAULT_STACK_INSTANCES
from ..exit_status import ExitStatus
from .options import bucket_option, function_spec_options, model_option
from .output import emit, json_option


@click.group()
def local():
    """A warm local stack: the embedded S3 and a pool of function instances, kept running in the background."""


@local.command("up")
@click.option("--instances", "-n", type=click.IntRange(1, 32),
              help=f"Function instances in the pool (default: as the running stack has, else {DEFAULT_STACK_INSTANCES}).")
@model_option
@bucket_option
@function_spec_options(local=True)
@json_option
def local_up(instances, model, bucket, spec):
    """Start the stack (or show the one running); later invoke-local calls reuse it and return warm."""
    from ..local.stack import client as stack
    from ..render import console, tables

    config = stack.StackConfig(function=spec, instances=instances, model=str(model.resolve()) if model else None, bucket=bucket)
    with console.err.status(f"starting the local stack ({instances or DEFAULT_STACK_INSTANCES} instances, warming each)"):
        running = stack.up(config)
    emit(stack.describe(running), tables.render_stack)


@local.command("status")
@json_option
def local_status():
    """Show the stack's instances: runtime, model version, invokes served, cold start."""
    from ..local.stack import client as stack
    from ..render import tables

    running = stack.find()
    if running is None:
        _say_not_running()  # on stderr, with --json too
        emit({"running": False}, None, ExitStatus.MISSING_PREREQ)
    emit(stack.describe(running), tables.render_stack)


def _say_not_running() -> None:
    from ..render import console

    console.error("no local stack is running (a stale one would have been stopped and removed)", "Start one: rcyc local up")


@local.command("down")
@json_option
def local_down():
    """Stop the stack and everything it started."""
    from ..local.stack import client as stack

    emit({"stopped": stack.down()}, _say_stopped)


def _say_stopped(payload: dict) -> None:
    from ..render import console

    console.out.print("stopped the local stack" if payload["stopped"] else "no local stack was running")
