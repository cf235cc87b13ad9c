"""The cloud commands: upload-model, upload-image, deploy, invoke, models list / promote.

Each only parses options, calls one function of ``cloud`` and renders what it returns (stdout: results or
JSON; stderr: progress). ``register(cli)`` adds them to the root group.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from .options import (DEFAULT_FUNCTION, base_image_option, bucket_option, ca_bundle_option, exit_for_record_errors,
                      flavor_option, json_option)

region_option = click.option("--region", envvar="AWS_REGION", help="AWS region. [env AWS_REGION, or the profile's]")
function_option = click.option("--function", "function", envvar="RCYC_FUNCTION",
                               help=f"The Lambda function (default {DEFAULT_FUNCTION}; 'function' with --endpoint-url). "
                               "[env RCYC_FUNCTION]")
endpoint_option = click.option("--endpoint-url", help="Invoke an emulator at this URL (e.g. rcyc's local sandbox) instead of AWS Lambda.")


# --------------------------------------------------------------------------------------------------
# Rendering helpers (stderr progress, stdout summaries)


@contextlib.contextmanager
def upload_progress(disable: bool):
    """A byte progress bar per uploaded file (stderr); yields the callback cloud.Ui.upload takes."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from . import output

    with Progress(TextColumn("[bold]upload"), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=output.err, disable=disable) as progress:
        tasks: dict[str, int] = {}

        def on_bytes(label: str, sent: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label[:40], total=total or None)
            progress.advance(tasks[label], sent)

        yield on_bytes


@contextlib.contextmanager
def push_progress(disable: bool):
    """One bar per layer while pushing (stderr); yields the callback cloud.Ui.layer takes."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from . import output

    with Progress(TextColumn("[bold]push"), TextColumn("{task.fields[layer]}"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.description}"), console=output.err, disable=disable, transient=False) as progress:
        tasks: dict[str, int] = {}

        def on_layer(layer: str, status: str, current, total) -> None:
            if layer not in tasks:
                tasks[layer] = progress.add_task(status, layer=layer[:12], total=None)
            task = tasks[layer]
            if status in ("Pushed", "Layer already exists", "Mounted from"):
                done = progress.tasks[task].total or 1
                progress.update(task, description=status, total=done, completed=done)
            elif total:
                progress.update(task, description=status, total=total, completed=current or 0)
            else:
                progress.update(task, description=status)

        yield on_layer


def make_ui(as_json: bool, stack: contextlib.ExitStack, uploads: bool = False, pushes: bool = False, builds: bool = False):
    from . import cloud, output

    ui = cloud.Ui(status=output.status if not as_json else cloud._quiet)
    if uploads:
        ui.upload = stack.enter_context(upload_progress(as_json))
    if pushes:
        ui.layer = stack.enter_context(push_progress(as_json))
    if builds:
        ui.build_step = stack.enter_context(output.build_progress(disable=as_json, transient=True))
    return ui


def _render_invocation(result: dict) -> None:
    from rich.text import Text

    from . import output

    for line in result.get("log_tail", []):
        output.err.print(line, markup=False, highlight=False, style="dim")
    output.render_response(result["response"])
    info = result["invocation"]
    output.out.print(Text(f"invoked {info['function']} ({info['endpoint']}) in {info['wall_ms']:.0f} ms", style="cyan"))


# --------------------------------------------------------------------------------------------------
# Commands


@click.command("upload-model")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Model name in the bucket (default: the file or directory name).")
@click.option("--version", "version", help="Version (default: a hash of the model's files).")
@bucket_option
@click.option("--promote/--no-promote", default=True, show_default=True, help="Move the current-model pointer to it.")
@region_option
@json_option
def upload_model(path, name, version, bucket, promote, region, as_json):
    """Validate, convert (.tflite, parity check) and upload a model; then make it the current one.

    PATH is a .h5/.keras file with a 5-way softmax output, a directory with the five Portland State files
    model_0_prime.h5 … model_4_prime.h5, or a directory rcyc packaged (manifest.json). Files go under
    models/<name>/<version>/; the pointer moves last, so a failed upload leaves the previous model live.
    """
    from . import cloud, output

    with contextlib.ExitStack() as stack:
        ui = make_ui(as_json, stack, uploads=True)
        summary = cloud.upload_model(path, bucket, name, version, promote, region, ui)
    if as_json:
        output.print_json(summary)
        return
    output.out.print(f"uploaded {summary['name']} {summary['version']} ({summary['layout']}, {len(summary['files'])} files) "
                     f"to s3://{bucket}/{summary['manifest'].rsplit('/', 1)[0]}/")
    if promote:
        before = summary["previous"]
        was = f" (was {before.get('name')} {before.get('version')})" if before else ""
        output.out.print(f"current model: {summary['name']} {summary['version']}{was}; warm functions pick it up at their next pointer check")
    else:
        output.out.print(f"not promoted: rcyc models promote {summary['name']} {summary['version']}")


@click.command("upload-image")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--prefix", default="images/", show_default=True, help="Key prefix (the function's role reads images/ only).")
@bucket_option
@click.option("--invoke", "then_invoke", is_flag=True, help="Then classify them with the function (deployed, or --endpoint-url).")
@function_option
@endpoint_option
@region_option
@json_option
@click.pass_context
def upload_image(ctx, images, prefix, bucket, then_invoke, function, endpoint_url, region, as_json):
    """Upload IMAGE files to the bucket (each must decode as an image); print their keys."""
    from . import cloud, output

    with contextlib.ExitStack() as stack:
        ui = make_ui(as_json, stack, uploads=True)
        summary = cloud.upload_images(list(images), bucket, prefix, region, ui)
    keys = [entry["key"] for entry in summary["images"]]
    if then_invoke:
        summary["invoke"] = cloud.invoke(keys, bucket, function, endpoint_url, region)
    if as_json:
        output.print_json(summary)
    else:
        for entry in summary["images"]:
            output.out.print(f"s3://{bucket}/{entry['key']}  ({entry['content_type']}, {entry['bytes']:,} bytes)")
        if then_invoke:
            _render_invocation(summary["invoke"])
    if then_invoke:
        exit_for_record_errors(ctx, summary["invoke"]["response"])


@click.command()
@click.argument("keys", nargs=-1, required=True)
@bucket_option
@function_option
@endpoint_option
@region_option
@json_option
@click.pass_context
def invoke(ctx, keys, bucket, function, endpoint_url, region, as_json):
    """Invoke the deployed function with an S3 event for KEYS; show the prediction and the log's tail."""
    from . import cloud, output

    result = cloud.invoke(list(keys), bucket, function, endpoint_url, region)
    if as_json:
        output.print_json({**result["response"], "invocation": {**result["invocation"], "log_tail": result["log_tail"]}})
    else:
        _render_invocation(result)
    exit_for_record_errors(ctx, result["response"])


@click.command()
@click.option("--tag", "-t", required=True, help="Image tag to push and deploy (e.g. v3).")
@bucket_option
@click.option("--function", "function", default=DEFAULT_FUNCTION, show_default=True, envvar="RCYC_FUNCTION", help="[env RCYC_FUNCTION]")
@click.option("--repository", default="rcyc-function", show_default=True, envvar="RCYC_REPOSITORY", help="ECR repository. [env RCYC_REPOSITORY]")
@click.option("--role-name", help="IAM role for the function (default <function>-role; rcyc creates it).")
@region_option
@click.option("--image", help="Deploy this local image instead of building one.")
@flavor_option
@base_image_option
@click.option("--platform", type=click.Choice(["linux/amd64", "linux/arm64"]), help="Target platform (sets the function's architecture).")
@ca_bundle_option
@click.option("--memory", default=1024, show_default=True, type=click.IntRange(128, 10240), help="MB.")
@click.option("--timeout", default=180, show_default=True, type=click.IntRange(1, 900), help="Seconds.")
@click.option("--refresh-seconds", default=30, show_default=True, type=click.IntRange(0, 86400),
              help="How often a warm instance re-checks the current-model pointer.")
@click.option("--registry", envvar="RCYC_REGISTRY", help="Push to this registry HOST:PORT instead of ECR's (local stacks). [env RCYC_REGISTRY]")
@click.option("--registry-username", envvar="RCYC_REGISTRY_USERNAME",
              help="Basic-auth user for --registry; the password comes from the env RCYC_REGISTRY_PASSWORD only "
              "(never the command line, where ps and shell history would keep it). [env RCYC_REGISTRY_USERNAME]")
@click.option("--force-tag", is_flag=True, help="Move TAG even if it names a different image in the registry.")
@click.option("--trigger", metavar="PREFIX", help="S3 notifications for new objects under PREFIX invoke the function.")
@click.option("--results-prefix", default="results/", show_default=True, help="With --trigger: where results are written.")
@click.option("--smoke", "smoke", metavar="KEY", multiple=True, help="After deploying, invoke once with this image key.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@json_option
def deploy(tag, bucket, function, repository, role_name, region, image, flavor, base_image, platform, ca_bundle, memory,
           timeout, refresh_seconds, registry, registry_username, force_tag, trigger, results_prefix,
           smoke, dry_run, as_json):
    """Build the image, push it to ECR (never twice, never moving a tag silently), and point the function at
    it by digest: created if missing (image package, least-privilege role), else updated, then waited for."""
    from . import cloud, output

    options = cloud.DeployOptions(
        tag=tag, bucket=bucket, function=function, repository=repository, role_name=role_name, region=region, image=image,
        flavor=flavor, base_image=base_image, platform=platform, ca_bundle=ca_bundle, memory=memory, timeout=timeout,
        refresh_seconds=refresh_seconds, registry=registry, registry_username=registry_username,
        registry_password=os.environ.get("RCYC_REGISTRY_PASSWORD"), force_tag=force_tag, trigger=trigger, results_prefix=results_prefix,
        dry_run=dry_run, smoke=list(smoke))
    with contextlib.ExitStack() as stack:
        ui = make_ui(as_json, stack, pushes=True, builds=True)
        summary = cloud.deploy(options, ui)
    if as_json:
        output.print_json(summary)
    else:
        render_deploy(summary)


def render_deploy(summary: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    from . import output

    title = "plan (dry run: nothing changed)" if summary["dry_run"] else "deployed"
    table = Table(title=Text(title, style="bold"), title_justify="left", show_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    repo, image, role, function = summary["repository"], summary["image"], summary["role"], summary["function"]
    table.add_row("repository", f"{repo['name']}: {repo['action']}" + (" (scan on push)" if repo.get("scan_on_push") else ""))
    table.add_row("registry", f"{summary['registry']['host']} (login: {summary['registry']['login']})")
    table.add_row("image", f"{image['reference']}: {image.get('action')}")
    table.add_row("", image["local"])
    if image.get("digest"):
        table.add_row("digest", image["digest"])
    if image.get("uri"):
        table.add_row("image uri", image["uri"])
    table.add_row("role", f"{role['name']}: {role['action']}")
    table.add_row("function", f"{function['name']}: {function['action']}" +
                  (f" ({'; '.join(function['changes'])})" if function.get("changes") and function["action"] != "created" else ""))
    if function.get("arn"):
        table.add_row("arn", function["arn"])
    if function.get("version"):
        table.add_row("version", str(function["version"]))
    if function.get("state"):
        table.add_row("state", f"{function['state']}, last update {function.get('last_update_status') or '-'}")
    table.add_row("environment", ", ".join(f"{k}={v}" for k, v in function["environment"].items()))
    if summary.get("trigger"):
        table.add_row("trigger", f"s3://{summary['bucket']}/{summary['trigger']['prefix']}*: {summary['trigger']['action']}")
    output.out.print(table)
    for warning in summary.get("warnings", []):
        output.err.print(Text.assemble(("warning: ", "yellow"), warning))
    if summary.get("smoke"):
        _render_invocation(summary["smoke"])


@click.group()
def models():
    """Model versions in the bucket and the current-model pointer."""


@models.command("list")
@bucket_option
@region_option
@json_option
def models_list(bucket, region, as_json):
    """List uploaded model versions; mark the current one."""
    from rich.table import Table

    from . import cloud, output

    listing = cloud.list_models(bucket, region)
    if as_json:
        output.print_json(listing)
        return
    table = Table(show_edge=False)
    for column in ("", "name", "version", "uploaded"):
        table.add_column(column)
    for model in listing["models"]:
        table.add_row("▶" if model["current"] else "", model["name"], model["version"], model["uploaded"])
    output.out.print(table)
    if listing["current"] is None:
        output.out.print("no current model: rcyc upload-model PATH")


@models.command("promote")
@click.argument("name")
@click.argument("version")
@bucket_option
@region_option
@json_option
def models_promote(name, version, bucket, region, as_json):
    """Make NAME VERSION the current model (also a rollback): one write of the pointer."""
    from . import cloud, output

    result = cloud.promote_model(bucket, name, version, region, cloud.Ui(status=output.status if not as_json else cloud._quiet))
    if as_json:
        output.print_json(result)
    else:
        before = result["previous"]
        was = f" (was {before.get('name')} {before.get('version')})" if before else ""
        output.out.print(f"current model: {name} {version}{was}")


def register(cli: click.Group) -> None:
    for command in (upload_model, upload_image, deploy, invoke, models):
        cli.add_command(command)
