"""rcyc invoke-local: the function in the real Lambda emulator against a local S3, as Lambda would run it."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_KEEP_WARM
from .options import bucket_option, check_endpoint_url, function_spec_options, model_option
from .output import emit, json_option, progress, record_status


@click.command("invoke-local")
@click.argument("images", nargs=-1)
@click.option("--event", "event_file", type=click.Path(path_type=Path), help="Post this S3 event JSON instead of one made for IMAGES.")
@model_option
@bucket_option
@click.option("--endpoint-url", envvar="RCYC_LOCAL_S3_ENDPOINT", callback=check_endpoint_url,
              help="Use this S3 endpoint instead of the embedded one. [env RCYC_LOCAL_S3_ENDPOINT]")
@function_spec_options(local=True)
@click.option("--concurrency", "-c", default=DEFAULT_CONCURRENCY, show_default=True, type=click.IntRange(1, 64),
              help="Function instances to spread the images over (events of up to --batch-size records).")
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1, 1000),
              help="Records per event with --concurrency > 1.")
@click.option("--stack/--no-stack", "use_stack", default=True, show_default=True,
              help="Use the warm local stack when one runs (--no-stack: run one-shot, start none).")
@click.option("--keep-warm/--no-keep-warm", default=DEFAULT_KEEP_WARM, show_default=True, envvar="RCYC_KEEP_WARM",
              help="With no stack running, start one that this and later calls use; it stops after 15 minutes idle. "
              "[env RCYC_KEEP_WARM; keep_warm = false in rcyc.toml]")
@click.option("--logs", is_flag=True, help="Also print the function's log lines (stderr).")
@json_option
def invoke_local(images, event_file, model, bucket, endpoint_url, spec, concurrency, batch_size, use_stack, keep_warm, logs):
    """Run the function in the real Lambda emulator against a local S3, as Lambda would.

    IMAGES are files, directories or quoted glob patterns; with none, a fixture image. Images are uploaded
    under images/<name> and posted as S3 events (one event with one record per image, or --batch-size
    records per event over --concurrency instances); with --event, that event is posted instead, in any
    shape `rcyc event` makes (IMAGES are still uploaded: a key naming an image's file name, at the bucket
    root or under images/, reaches this run's copy).
    """
    from rcyc_core.errors import InputError

    from ..local.run import Options, run
    from ..paths import DEFAULT_IMAGE
    from ..render import console

    if any(not image.strip() for image in images):
        # Path("") is "." (the whole current folder): an empty argument is a mistake, not a request for that.
        raise InputError("an empty path was given as an image", hint="Give image files, a directory, or a quoted pattern.")
    images = tuple(Path(image) for image in images)
    if not images:
        images = (DEFAULT_IMAGE,)
    options = Options(list(images), event_file, model, bucket, endpoint_url, spec, concurrency, batch_size, use_stack,
                      keep_warm)
    with progress(transient=True) as report:
        local = run(options, report)
    info = {**local.info.to_json(), **local.figures()}
    peaks = [i.report.peak_mb for i in local.invocations if i.report.peak_mb is not None and i.report.memory_enforced is False]
    if peaks and max(peaks) > spec.memory:
        console.warning(f"the function peaked at {max(peaks):.0f} MB, above --memory {spec.memory} MB: Lambda would have stopped it "
                        "(the process runtime reports memory, it cannot enforce it; --runtime docker does)")
    if logs:
        for invocation in local.invocations:
            console.log_lines(invocation.logs)
    emit({**local.response, "invocation": info}, lambda _payload: _render(local.response, info), record_status(local.response))


def _render(response: dict, info: dict) -> None:
    from ..render import results  # rich: only for people (the --json path never imports it)

    results.render_response(response)
    results.render_report(info)
