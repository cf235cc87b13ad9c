"""rcyc upload-model and upload-image: models and images into the bucket."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import IMAGES_PREFIX
from .options import bucket_option, endpoint_option, exit_for_record_errors, function_option, json_option, region_option


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
    from ..cloud import models
    from ..render import console
    from ..render.progress import rich_reporter


    with rich_reporter(quiet=as_json) as report:
        summary = models.upload_model(path, bucket, name, version, promote, region, report)
    if as_json:
        console.print_json(summary)
        return
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
@click.pass_context
def upload_image(ctx, images, prefix, bucket, local, then_invoke, function, endpoint_url, region, as_json):
    """Upload IMAGES to the bucket (each must decode as an image); print their keys.

    IMAGES are files, directories (their image files, recursively) or quoted glob patterns, as for invoke-local."""
    from ..cloud import images as cloud_images, invoke
    from ..render import console, results
    from ..render.progress import rich_reporter


    s3 = None
    with rich_reporter(quiet=as_json) as report:
        if local:
            from ..defaults import LOCAL_REGION
            from ..local import stack

            running, s3 = stack.find_or_up(report)
            region, endpoint_url = LOCAL_REGION, endpoint_url or running.endpoint_url
        summary = cloud_images.upload_images(list(images), bucket, prefix, region, report, s3=s3)
    keys = [entry["key"] for entry in summary["images"]]
    if then_invoke:
        summary["invoke"] = invoke.invoke(keys, bucket, function, endpoint_url, region)
    if as_json:
        console.print_json(summary)
    else:
        for entry in summary["images"]:
            console.out.print(f"s3://{bucket}/{entry['key']}  ({entry['content_type']}, {entry['bytes']:,} bytes)")
        if then_invoke:
            results.render_invocation(summary["invoke"])
    if then_invoke:
        exit_for_record_errors(ctx, summary["invoke"]["response"])

