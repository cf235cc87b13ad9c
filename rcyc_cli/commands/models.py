"""rcyc models list / promote: model versions in the bucket and the current-model pointer."""

from __future__ import annotations

import click

from .options import bucket_option, json_option, region_option


@click.group()
def models():
    """Model versions in the bucket and the current-model pointer."""



@models.command("list")
@bucket_option
@region_option
@json_option
def models_list(bucket, region, as_json):
    """List uploaded model versions; mark the current one."""
    from ..cloud import models as store
    from ..render import console, tables

    listing = store.list_models(bucket, region)
    console.print_json(listing) if as_json else tables.render_models(listing)


@models.command("promote")
@click.argument("name")
@click.argument("version")
@bucket_option
@region_option
@json_option
def models_promote(name, version, bucket, region, as_json):
    """Make NAME VERSION the current model (also a rollback): one write of the pointer."""
    from ..cloud import models as store
    from ..render import console
    from ..render.progress import rich_reporter


    with rich_reporter(quiet=as_json) as report:
        result = store.promote_model(bucket, name, version, region, report)
    if as_json:
        console.print_json(result)
    else:
        before = result["previous"]
        was = f" (was {before.get('name')} {before.get('version')})" if before else ""
        console.out.print(f"current model: {name} {version}{was}")

