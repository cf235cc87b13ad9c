"""rcyc event SHAPE: print an event of one of the shapes an upload reaches the function in."""

from __future__ import annotations

import re

import click

from rcyc_core.events import SHAPES

from ..defaults import DEFAULT_EVENT_REGION
from .options import bucket_option
from .output import emit

REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


@click.command()
@click.argument("shape", type=click.Choice(SHAPES))
@bucket_option
@click.option("--key", "keys", metavar="KEY", multiple=True,
              help="An object created at KEY (repeatable). Default: images/ + the fixture image's name.")
@click.option("--removed", metavar="KEY", multiple=True, help="An object deleted at KEY (repeatable): the function skips it.")
@click.option("--message-id", "message_ids", metavar="ID", multiple=True,
              help="sqs, sns-sqs: the SQS message ids, in order (default: derived from bucket and key, so the same "
              "command makes the same event, as a repeat delivery would).")
@click.option("--test-event", is_flag=True, help="sqs, sns-sqs, sns: first a message holding S3's s3:TestEvent.")
@click.option("--etag", "etags", metavar="KEY=ETAG", multiple=True,
              help="The object's ETag, as S3 puts it in its events (a repeat delivery then needs no S3 request).")
@click.option("--region", default=DEFAULT_EVENT_REGION, show_default=True, help="The region the event names.")
def event(shape, bucket, keys, removed, message_ids, test_event, etags, region):
    """Print an event of SHAPE, as AWS delivers it, for `rcyc invoke-local --event FILE` (or any test).

    \b
    s3           an S3 notification (keys URL-encoded, as S3 does)
    sqs          S3 -> SQS -> Lambda: one message per object, the body an S3 notification
    sns          S3 -> SNS -> Lambda
    sns-sqs      S3 -> SNS -> SQS -> Lambda (the body an SNS envelope)
    eventbridge  S3 -> EventBridge -> Lambda: one object, its key not encoded
    s3-test      the s3:TestEvent S3 sends when a notification is configured
    """
    from rcyc_core import events
    from rcyc_core.errors import InputError

    from ..cloud.buckets import validate_bucket_name
    from ..paths import DEFAULT_IMAGE
    from ..render import console

    validate_bucket_name(bucket)  # S3 sends no event about a bucket that cannot exist
    if not REGION.fullmatch(region):
        raise InputError(f"--region {region!r} is not a region name", hint="e.g. --region eu-west-1")

    if not keys and not removed and shape != "s3-test":
        keys = (f"images/{DEFAULT_IMAGE.name}",)
    pairs = dict(item.partition("=")[::2] for item in etags)
    if any(not k or not v for k, v in pairs.items()) or set(pairs) - set(keys):
        raise InputError(f"--etag {', '.join(etags)} must be KEY=ETAG for a --key", hint="e.g. --key images/a.jpg --etag images/a.jpg=9b2cf535f27731c974343645a3985328")
    # The event is the output, for people too: JSON alone on stdout, ready for a file or a pipe.
    emit(events.make(shape, bucket, list(keys), list(removed), list(message_ids), region, pairs, test_event), console.print_json)
