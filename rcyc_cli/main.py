"""The rcyc command line. Commands only parse options, call one function of the core, and render.

Heavy modules (boto3, numpy, LiteRT, moto, TensorFlow) are imported inside the commands that need them,
so `rcyc --help` stays fast.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import click

from rcyc_core.errors import EXIT_FINDINGS, EXIT_MISSING_PREREQ, RcycError

from . import __version__
from .options import (base_image_option, bucket_option, ca_bundle_option, exit_for_record_errors, flavor_option,
                      json_option, model_option)

CONFIG_FILE = "rcyc.toml"


class RcycGroup(click.Group):
    """Turns expected failures into one line plus a hint and a documented exit code (README)."""

    def invoke(self, ctx: click.Context):
        from . import output

        try:
            return super().invoke(ctx)
        except RcycError as exc:
            for line in getattr(exc, "logs", None) or []:
                output.err.print(line, markup=False, highlight=False, style="dim")
            output.error(exc.message, exc.hint)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            output.error("interrupted; everything rcyc started has been stopped")
            ctx.exit(130)


def load_config(ctx: click.Context) -> None:
    """rcyc.toml (or RCYC_CONFIG) in the lowest place of: flags > environment > config file > defaults.
    Its top-level keys are option names (bucket = "...", model = "...") applied to every command that has
    that option, subcommands of groups (rcyc models promote, rcyc local up) included."""
    path = Path(os.environ.get("RCYC_CONFIG", CONFIG_FILE))
    if not path.is_file():
        return
    try:
        settings = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.UsageError(f"{path} is not valid TOML: {exc}") from None
    settings = {key.replace("-", "_"): value for key, value in settings.items()}
    ctx.default_map = _defaults_for(ctx.command, settings)


def _defaults_for(command: click.Command, settings: dict) -> dict:
    """click's default_map for ``command``: its own options' values, and a nested map per subcommand."""
    defaults = {p.name: settings[p.name] for p in command.params if p.name in settings}
    for name, sub in getattr(command, "commands", {}).items():
        defaults[name] = _defaults_for(sub, settings)
    return defaults


@click.group(cls=RcycGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rcyc")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """rcyc: build, run, deploy and query the recyclable-item classifier on AWS Lambda.

    \b
    Start here:
      rcyc predict IMAGE...        classify files in-process (no AWS, no Docker)
      rcyc invoke-local [IMAGE...] the same through the real Lambda emulator and a local S3
      rcyc doctor                  what is installed, what is missing, and how to fix it
    """
    keep_loopback_off_proxies()
    load_config(ctx)


def keep_loopback_off_proxies() -> None:
    """rcyc's local servers are on 127.0.0.1: behind a corporate HTTP(S)_PROXY, requests to them must not
    go through the proxy (urllib and botocore both honour NO_PROXY)."""
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h]
        missing = [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        if missing:
            os.environ[name] = ",".join(hosts + missing)


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@click.option("--backend", type=click.Choice(["auto", "litert", "keras"]), default="auto", show_default=True,
              envvar="RCYC_BACKEND", help="litert runs the .tflite files; keras runs the .h5 files (needs TensorFlow).")
@json_option
@click.pass_context
def predict(ctx, images, model, backend, as_json):
    """Classify IMAGE files in-process with the function's own inference core."""
    from . import output
    from .predict import predict_files

    response = predict_files(list(images), model, backend, status=output.status if not as_json else lambda m: None)
    if as_json:
        output.print_json(response)
    else:
        output.render_response(response)
        output.out.print(f"[dim]backend {response['backend']}[/dim]")
    exit_for_record_errors(ctx, response)


@cli.command("invoke-local")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--event", "event_file", type=click.Path(path_type=Path), help="Post this S3 event JSON instead of one made for IMAGES.")
@model_option
@bucket_option
@click.option("--endpoint-url", envvar="RCYC_LOCAL_S3_ENDPOINT",
              help="Use this S3 endpoint instead of the embedded one. [env RCYC_LOCAL_S3_ENDPOINT]")
@click.option("--rie", envvar="RCYC_RIE", help="Path of the aws-lambda-rie binary. [env RCYC_RIE]")
@click.option("--timeout", default=180, show_default=True, type=click.IntRange(1, 900), help="Function timeout, seconds.")
@click.option("--memory", default=1024, show_default=True, type=click.IntRange(128, 10240), help="Function memory, MB.")
@click.option("--runtime", type=click.Choice(["auto", "docker", "process"]), default="auto", show_default=True,
              envvar="RCYC_RUNTIME", help="docker: the function image in a container; process: the emulator on this "
              "machine; auto: docker when an engine answers. [env RCYC_RUNTIME]")
@flavor_option
@base_image_option
@ca_bundle_option
@click.option("--concurrency", "-c", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Function instances to spread the images over (events of up to --batch-size records).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1, 1000), help="Records per event with --concurrency > 1.")
@click.option("--stack/--no-stack", "use_stack", default=True, show_default=True,
              help="Use the warm stack of `rcyc local up` when it runs.")
@click.option("--logs", is_flag=True, help="Also print the function's log lines (stderr).")
@json_option
@click.pass_context
def invoke_local(ctx, images, event_file, model, bucket, endpoint_url, rie, timeout, memory, runtime, flavor, base_image,
                 ca_bundle, concurrency, batch_size, use_stack, logs, as_json):
    """Run the function in the real Lambda emulator against a local S3, as Lambda would.

    IMAGES are files, directories or quoted glob patterns; with none and no --event, a fixture image.
    Images are uploaded under images/<name> and posted as S3 events (one event with one record per image,
    or --batch-size records per event over --concurrency instances); with --event, that event is posted
    instead (IMAGES are still uploaded, so the event can name them).
    """
    from . import output
    from .invoke_local import Options, run
    from .paths import DEFAULT_IMAGE

    if not images and not event_file:
        images = (DEFAULT_IMAGE,)
    options = Options(list(images), event_file, model, bucket, endpoint_url, rie, timeout, memory, runtime, flavor,
                      base_image, ca_bundle, concurrency, batch_size, use_stack)
    quiet = as_json
    with output.count_progress("classifying", disable=quiet or concurrency == 1) as on_done:
        local = run(options, status=output.status if not quiet else lambda m: None,
                    build_progress=lambda: output.build_progress(disable=quiet, transient=True), on_done=on_done)
    info = {**local.info, **invocation_figures(local)}
    if logs:
        for invocation in local.invocations:
            for line in invocation.logs:
                output.err.print(line, markup=False, style="dim")
    if as_json:
        output.print_json({**local.response, "invocation": info})
    else:
        output.render_response(local.response)
        output.render_report(info)
    exit_for_record_errors(ctx, local.response)


def invocation_figures(local) -> dict:
    """The emulator's figures: the report of a single invocation, or a summary over many."""
    if len(local.invocations) == 1:
        only = local.invocations[0]
        return {"report": only.report.to_dict(), "wall_ms": round(only.wall_ms, 2)}
    done = len(local.response["results"]) + len(local.response["errors"])
    durations = sorted(i.report.duration_ms for i in local.invocations if i.report.duration_ms is not None)
    return {"invocations": len(local.invocations), "cold_starts": sum(i.report.cold for i in local.invocations),
            "seconds": round(local.seconds, 3), "images_per_second": round(done / local.seconds, 2) if local.seconds else None,
            "duration_ms_p50": durations[len(durations) // 2] if durations else None}


@cli.group()
def local():
    """A warm local stack: the embedded S3 and a pool of function instances, kept running in the background."""


@local.command("up")
@click.option("--instances", "-n", default=2, show_default=True, type=click.IntRange(1, 32), help="Function instances in the pool.")
@click.option("--runtime", type=click.Choice(["auto", "docker", "process"]), default="process", show_default=True, envvar="RCYC_RUNTIME")
@model_option
@bucket_option
@click.option("--rie", envvar="RCYC_RIE")
@flavor_option
@base_image_option
@ca_bundle_option
@json_option
def local_up(instances, runtime, model, bucket, rie, flavor, base_image, ca_bundle, as_json):
    """Start the stack (or show the one running); later invoke-local calls reuse it and return warm."""
    from . import output
    from . import stack

    config = stack.StackConfig(instances=instances, runtime=runtime, model=str(model.resolve()) if model else None,
                               bucket=bucket, rie=rie, flavor=flavor, base_image=base_image,
                               ca_bundle=str(ca_bundle.resolve()) if ca_bundle else None)
    with output.err.status(f"starting the local stack ({instances} instances, warming each)"):
        running = stack.up(config)
    render_stack(running, as_json)


@local.command("status")
@json_option
@click.pass_context
def local_status(ctx, as_json):
    """Show the stack's instances: runtime, model version, invokes served, cold start."""
    from . import output
    from . import stack

    running = stack.find()
    if running is None:
        if as_json:
            output.print_json({"running": False})
        else:
            output.out.print("no local stack is running (a stale one would have been cleaned up); start one: rcyc local up")
        ctx.exit(EXIT_MISSING_PREREQ)
    render_stack(running, as_json)


@local.command("down")
@json_option
def local_down(as_json):
    """Stop the stack and everything it started."""
    from . import output
    from . import stack

    stopped = stack.down()
    if as_json:
        output.print_json({"stopped": stopped})
    else:
        output.out.print("stopped the local stack" if stopped else "no local stack was running")


def render_stack(running, as_json: bool) -> None:
    from rich.table import Table

    from . import output

    status = {**running.status(), "endpoint": running.endpoint_url, "runtime": running.state["runtime"]}
    if as_json:
        output.print_json(status)
        return
    table = Table(title=f"local stack at {running.endpoint_url} (S3 {status['s3_endpoint']}, bucket {status['bucket']})",
                  title_justify="left", show_edge=False)
    for column in ("instance", "runtime", "model", "invokes", "cold start", "restarts"):
        table.add_column(column)
    for instance in status["instances"]:
        model = instance.get("model") or {}
        table.add_row(str(instance["instance"]), instance["runtime"], f"{model.get('name', '?')} {model.get('version', '')}",
                      str(instance["invocations"]), f"{instance['cold_start_ms']:.0f} ms" if instance["cold_start_ms"] else "-",
                      str(instance["restarts"]))
    output.out.print(table)


@cli.command()
@click.option("--tag", "-t", "tags", multiple=True, help="Tag(s) for the image. Default rcyc-function:<flavor>.")
@flavor_option
@base_image_option
@click.option("--platform", help="Target platform, e.g. linux/amd64 or linux/arm64.")
@ca_bundle_option
@click.option("--no-cache", is_flag=True, help="Rebuild every step.")
@json_option
def build(tags, flavor, base_image, platform, ca_bundle, no_cache, as_json):
    """Build the function image (Dockerfile at the project root) with live progress."""
    from . import docker_ops, output

    client = docker_ops.engine()
    base = base_image or docker_ops.DEFAULT_BASE_IMAGE
    tags = list(tags) or [f"{docker_ops.DEFAULT_REPOSITORY}:{flavor}"]
    with output.build_progress(disable=as_json) as on_step:
        result = docker_ops.build(client, tags[0], flavor, base, platform, ca_bundle, no_cache, on_step=on_step)
    from docker.utils import parse_repository_tag

    image = client.images.get(result.image_id)
    for tag in tags[1:]:
        image.tag(*parse_repository_tag(tag))
    total, own = docker_ops.image_layers(client, result.image_id, base)
    summary = {**result.to_dict(), "tags": client.images.get(result.image_id).tags, "size": total, "own_layers_size": own,
               "flavor": flavor, "base_image": base}
    if as_json:
        output.print_json(summary)
    else:
        output.render_build(summary)


@cli.group()
def rie():
    """The AWS Lambda Runtime Interface Emulator that invoke-local runs."""


@rie.command("install")
@click.option("--force", is_flag=True, help="Download again even if installed.")
@json_option
def rie_install(force, as_json):
    """Fetch the pinned emulator (from the aws-sam-cli wheel), verify its sha256, keep it in the user cache."""
    from . import output
    from . import rie as rie_finder

    with output.err.status("downloading the aws-sam-cli wheel (no dependencies) for its emulator"):
        path = rie_finder.install(force)
    output.print_json({"path": str(path), "sha256": rie_finder.SHA256[rie_finder.arch()]}) if as_json else output.out.print(str(path))


@rie.command("path")
@click.option("--rie", envvar="RCYC_RIE")
@json_option
def rie_path(rie, as_json):
    """Print the emulator rcyc would use."""
    from . import output
    from . import rie as rie_finder

    path = str(rie_finder.locate(rie))
    output.print_json({"path": path}) if as_json else output.out.print(path)


@cli.command()
@click.option("--rie", envvar="RCYC_RIE", help="Check this emulator binary.")
@click.option("--security", "target", metavar="BUCKET[/FUNCTION]",
              help="Audit an existing bucket (and function) instead: public access, encryption, versioning, TLS-only "
              "policy, secrets in the function's environment, the role's reach. Exit 8 if anything is found.")
@click.option("--region", envvar="AWS_REGION", help="AWS region for --security.")
@json_option
@click.pass_context
def doctor(ctx, rie, target, region, as_json):
    """List each prerequisite as ok or missing, with the fix (or, with --security, audit a setup)."""
    from rich.table import Table

    from . import output

    if target:
        from . import audit

        findings = audit.run(target, region)
        rows = [(f.check, f.severity, f.detail, f.fix) for f in findings]
        payload = {"target": target, "findings": [f.to_dict() for f in findings]}
        failed = any(f.severity != "ok" for f in findings)
        code = EXIT_FINDINGS
    else:
        from . import doctor as checks

        results = checks.run(rie)
        marks = {True: "ok", False: "missing", None: "skipped"}
        rows = [(c.name, marks[c.ok], c.detail, c.fix) for c in results]
        payload = {"checks": [c.to_dict() for c in results]}
        failed = any(c.ok is False for c in results)
        code = EXIT_MISSING_PREREQ
    if as_json:
        output.print_json(payload)
    else:
        styles = {"ok": "green", "missing": "red", "high": "bold red", "medium": "yellow", "skipped": "dim"}
        table = Table(show_edge=False)
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column)
        for name, status, detail, fix in rows:
            table.add_row(name, f"[{styles[status]}]{status}[/]", detail, fix)
        output.out.print(table)
    if failed:
        ctx.exit(code)


from .cloud_commands import register  # noqa: E402  (the cloud commands live in their own module)

register(cli)


def main() -> None:
    cli(prog_name="rcyc")


if __name__ == "__main__":
    main()
