"""rcyc invoke: the deployed function (or an emulator) with an S3 event for some keys."""

from __future__ import annotations

import click

from .options import bucket_option, endpoint_option, function_option, region_option
from .output import emit, json_option, record_status


@click.command()
@click.argument("keys", nargs=-1, required=True)
@bucket_option
@function_option
@endpoint_option
@region_option
@json_option
def invoke(keys, bucket, function, endpoint_url, region):
    """Invoke the deployed function with an S3 event for KEYS; show the prediction and the log's tail."""
    from ..cloud import invoke as cloud_invoke

    from ..files import check_text

    keys = [check_text(key, "the key") for key in keys]  # before an event carries them anywhere
    result = cloud_invoke.invoke(keys, bucket, function, endpoint_url, region)
    payload = {**result["response"], "invocation": {**result["invocation"], "log_tail": result["log_tail"]}}
    emit(payload, lambda _payload: _render(result), record_status(result["response"]))


def _render(result: dict) -> None:
    from ..render import results

    results.render_invocation(result)

