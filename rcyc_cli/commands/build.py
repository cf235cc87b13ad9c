"""rcyc build: the function image, with live progress."""

from __future__ import annotations

import click

from .options import base_image_option, ca_bundle_option, flavor_option
from .output import emit, json_option, progress


@click.command()
@click.option("--tag", "-t", "tags", multiple=True, help="Tag(s) for the image. Default rcyc-function:<flavor>.")
@flavor_option
@base_image_option
@click.option("--platform", help="Target platform, e.g. linux/amd64 or linux/arm64.")
@ca_bundle_option
@click.option("--no-cache", is_flag=True, help="Rebuild every step.")
@json_option
def build(tags, flavor, base_image, platform, ca_bundle, no_cache):
    """Build the function image (Dockerfile at the project root) with live progress."""
    from .. import image
    from ..render import tables

    with progress(transient=True) as report:
        summary = image.build_tagged(list(tags), flavor, base_image, platform, ca_bundle, no_cache, report)
    emit(summary, tables.render_build)
