"""rcyc invoke: the deployed function (or an emulator) with an S3 event for some keys."""

from __future__ import annotations

import click

from .options import bucket_option, endpoint_option, exit_for_record_errors, function_option, json_option, region_option


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
    from ..cloud import invoke as cloud_invoke
    from ..render import console, results


    result = cloud_invoke.invoke(list(keys), bucket, function, endpoint_url, region)
    if as_json:
        console.print_json({**result["response"], "invocation": {**result["invocation"], "log_tail": result["log_tail"]}})
    else:
        results.render_invocation(result)
    exit_for_record_errors(ctx, result["response"])

