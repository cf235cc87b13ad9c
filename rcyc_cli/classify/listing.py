"""The images under an S3 prefix, streamed page by page (a prefix of millions of keys is never held in memory)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

from rcyc_core.config import Config
from rcyc_core.errors import AwsError

from ..files import IMAGE_SUFFIXES

PAGE = 1000  # keys a listing request asks for (S3's most)
MAX_IMAGE_BYTES = Config().max_bytes  # what the function refuses anyway: not worth an invocation


def lean_timestamps(s3) -> None:
    """Parse the timestamps of ``s3``'s answers with ``datetime.fromisoformat`` where it can: botocore's own
    parser (dateutil) costs ~0.08 ms a timestamp, and a listing has one a key (0.16 s of CPU in a resume of
    1,000 keys, which lists the images and their results). The values are the same aware UTC datetimes; an
    answer in another format (an HTTP date header) goes to botocore's parser. Only this client's answers:
    botocore gives no public hook per client, so a botocore without the attribute keeps its own parser."""
    endpoint = vars(s3).get("_endpoint")  # a botocore client's own (the stack's own reads have no timestamps)
    if endpoint is None or not hasattr(endpoint, "_response_parser_factory"):
        return
    from botocore.parsers import ResponseParserFactory
    from botocore.utils import parse_timestamp

    def parse(value):
        try:
            return datetime.fromisoformat(value) if isinstance(value, str) and value[-1:] == "Z" else parse_timestamp(value)
        except ValueError:
            return parse_timestamp(value)

    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse)
    endpoint._response_parser_factory = factory


@dataclass
class Counts:
    images: int = 0
    not_images: int = 0  # other extensions, empty or over the size limit: never invoked
    results: int = 0  # objects under the results prefix (rcyc's own output)
    not_images_examples: list[str] = field(default_factory=list)


def is_image(key: str, size: int) -> bool:
    return key.lower().endswith(tuple(IMAGE_SUFFIXES)) and 0 < size <= MAX_IMAGE_BYTES


def iter_images(s3, bucket: str, prefix: str, results_prefix: str | None, counts: Counts,
                limit: int | None = None, first_page: int = PAGE) -> Iterator[tuple[str, str]]:
    """(key, ETag without quotes) of the images under ``prefix`` in S3's listing order; ``counts`` tallies what
    was passed over. The ETag names the bytes a result is for (a replaced image is classified again). The first
    request asks for ``first_page`` keys (a caller that starts work on them at once waits less), the rest for
    full pages."""
    for page in pages(s3, bucket, prefix, first_page):
        for obj in page.get("Contents", []):
            key, size = obj["Key"], obj.get("Size", 0)
            if results_prefix and key.startswith(results_prefix):
                counts.results += 1
            elif is_image(key, size):
                if limit is not None and counts.images >= limit:
                    return
                counts.images += 1
                yield key, (obj.get("ETag") or "").strip('"')
            else:
                counts.not_images += 1
                if len(counts.not_images_examples) < 5:
                    counts.not_images_examples.append(key)


def pages(s3, bucket: str, prefix: str, first_page: int = PAGE) -> Iterator[dict]:
    """The ListObjectsV2 pages of ``prefix``, the first of ``first_page`` keys, the rest full. Every listing of
    classify goes through here: an endpoint that says a page is truncated but names no continuation token,
    or that names a token it already named (one page repeated, or several in a cycle), ends the run with an
    error instead of a quietly short listing or a listing that never ends (one token a page is kept: ~100
    bytes a thousand keys)."""
    from ..cloud.aws import aws_call

    what = f"list s3://{bucket}/{prefix}"
    request = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(1, min(first_page, PAGE))}
    seen: set[str] = set()
    while True:
        page = aws_call(what, s3.list_objects_v2, **request)
        yield page
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")
        if not token:
            raise AwsError(f"{what}: the endpoint said the listing goes on but gave no continuation token", kind="S3Error",
                           hint="The S3 endpoint answered out of the S3 API; run the command again, or check the endpoint.")
        if token in seen:  # an endpoint that would list the same pages forever
            raise AwsError(f"{what}: the endpoint repeated its continuation token", kind="S3Error",
                           hint="The S3 endpoint answered out of the S3 API; run the command again, or check the endpoint.")
        seen.add(token)
        request = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE, "ContinuationToken": token}


def batches(keys: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
