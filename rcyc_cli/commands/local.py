"""rcyc local up / status / down: the warm local stack."""

from __future__ import annotations

import click

from ..defaults import DEFAULT_STACK_INSTANCES
from ..exit_status import ExitStatus
from .options import base_image_option, bucket_option, ca_bundle_option, flavor_option, json_option, model_option, rie_option


@click.group()
def local():
    """A warm local stack: the embedded S3 and a pool of function instances, kept running in the background."""


@local.command("up")
@click.option("--instances", "-n", default=DEFAULT_STACK_INSTANCES, show_default=True, type=click.IntRange(1, 32),
              help="Function instances in the pool.")
@click.option("--runtime", type=click.Choice(["auto", "docker", "process"]), default="process", show_default=True, envvar="RCYC_RUNTIME")
@model_option
@bucket_option
@rie_option
@flavor_option
@base_image_option
@ca_bundle_option
@json_option
def local_up(instances, runtime, model, bucket, rie, flavor, base_image, ca_bundle, as_json):
    """Start the stack (or show the one running); later invoke-local calls reuse it and return warm."""
    from ..local.stack import client as stack
    from ..render import console, tables

    config = stack.StackConfig(instances=instances, runtime=runtime, model=str(model.resolve()) if model else None,
                               bucket=bucket, rie=rie, flavor=flavor, base_image=base_image,
                               ca_bundle=str(ca_bundle.resolve()) if ca_bundle else None)
    with console.err.status(f"starting the local stack ({instances} instances, warming each)"):
        running = stack.up(config)
    status = stack.describe(running)
    console.print_json(status) if as_json else tables.render_stack(status)


@local.command("status")
@json_option
@click.pass_context
def local_status(ctx, as_json):
    """Show the stack's instances: runtime, model version, invokes served, cold start."""
    from ..local.stack import client as stack
    from ..render import console, tables

    running = stack.find()
    if running is None:
        if as_json:
            console.print_json({"running": False})
        console.error("no local stack is running (a stale one would have been stopped and removed)", "Start one: rcyc local up")
        ctx.exit(ExitStatus.MISSING_PREREQ)
    status = stack.describe(running)
    console.print_json(status) if as_json else tables.render_stack(status)


@local.command("down")
@json_option
def local_down(as_json):
    """Stop the stack and everything it started."""
    from ..local.stack import client as stack
    from ..render import console

    stopped = stack.down()
    if as_json:
        console.print_json({"stopped": stopped})
    else:
        console.out.print("stopped the local stack" if stopped else "no local stack was running")
