"""rcyc upload-model and upload-image: models and images into the bucket."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import DEFAULT_PROMOTE_ON_UPLOAD, IMAGES_PREFIX
from .options import bucket_option, endpoint_option, function_option, region_option
from .output import emit, json_option, progress, record_status


@click.command("upload-model")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Model name in the bucket (default: the file or directory name).")
@click.option("--version", "version", help="Version (default: a hash of the model's files).")
@bucket_option
@click.option("--promote/--no-promote", default=DEFAULT_PROMOTE_ON_UPLOAD, show_default=True, help="Move the current-model pointer to it.")
@region_option
@json_option
def upload_model(path, name, version, bucket, promote, region):
    """Validate, convert (.tflite, parity check) and upload a model; then make it the current one.

    PATH is a .h5/.keras file with a 5-way softmax output, a directory with the five Portland State files
    model_0_prime.h5 … model_4_prime.h5, or a directory rcyc packaged (manifest.json). Files go under
    models/<name>/<version>/; the pointer moves last, so a failed upload leaves the previous model live.
    """
    from ..cloud import models

    with progress() as report:
        summary = models.upload_model(path, bucket, name, version, promote, region, report)
    emit(summary, lambda uploaded: _render_upload(uploaded, bucket, promote))


def _render_upload(summary: dict, bucket: str, promote: bool) -> None:
    from ..render import console

    where = f"s3://{bucket}/{summary['manifest'].rsplit('/', 1)[0]}/"
    if summary["uploaded"]:
        console.out.print(f"uploaded {summary['name']} {summary['version']} ({summary['layout']}, {len(summary['files'])} files) to {where}")
    else:
        console.out.print(f"already uploaded: {summary['name']} {summary['version']} is in {where} with this very content; nothing sent")
    if promote:
        before = summary["previous"]
        was = f" (was {before.get('name')} {before.get('version')})" if before else ""
        console.out.print(f"current model: {summary['name']} {summary['version']}{was}; warm functions pick it up at their next pointer check")
    else:
        console.out.print(f"not promoted: rcyc models promote {summary['name']} {summary['version']}")



@click.command("upload-image")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--prefix", default=IMAGES_PREFIX, show_default=True, help="Key prefix (the function's role reads images/ only).")
@bucket_option
@click.option("--local", is_flag=True,
              help="Into the local stack's S3 (started if none runs), where invoke-local and classify --local read.")
@click.option("--invoke", "then_invoke", is_flag=True,
              help="Then classify them with the function (deployed, the local stack's with --local, or --lambda-endpoint-url).")
@function_option
@endpoint_option
@region_option
@json_option
def upload_image(images, prefix, bucket, local, then_invoke, function, endpoint_url, region):
    """Upload IMAGES to the bucket (each must decode as an image); print their keys.

    IMAGES are files, directories (their image files, recursively) or quoted glob patterns, as for invoke-local."""
    from ..cloud import images as cloud_images, invoke

    s3 = None
    with progress() as report:
        if local:
            from ..defaults import LOCAL_REGION
            from ..local.stack import client as stack

            running, s3 = stack.find_or_up(report)
            region, endpoint_url = LOCAL_REGION, endpoint_url or running.endpoint_url
        summary = cloud_images.upload_images(list(images), bucket, prefix, region, report, s3=s3)
    keys = [entry["key"] for entry in summary["images"]]
    if then_invoke:
        summary["invoke"] = invoke.invoke(keys, bucket, function, endpoint_url, region)
    emit(summary, lambda uploaded: _render_images(uploaded, bucket), record_status(summary.get("invoke", {}).get("response")))


def _render_images(summary: dict, bucket: str) -> None:
    from ..render import console, results

    for entry in summary["images"]:
        console.out.print(f"s3://{bucket}/{entry['key']}  ({entry['content_type']}, {entry['bytes']:,} bytes)")
    if "invoke" in summary:
        results.render_invocation(summary["invoke"])

