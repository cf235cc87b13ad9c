"""The embedded S3 answers plain ListObjectsV2 requests itself (moto's serializer cost ~0.2 ms a key in the
stack): the same keys, ETags, sizes, timestamps, checksums, pages and continuation as moto's own answer, for
tricky keys, delete markers and both encodings; anything else is moto's to answer."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from werkzeug.test import Client

from rcyc_cli.cloud.aws import s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.s3 import EmbeddedS3
from rcyc_cli.local.emulator.s3_listing import fast_listing

BUCKET = "listing-test"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
KEYS = ["photos/a.jpg", "photos/b&c <d> \"e\" 'f'.jpg", "photos/with space+plus.jpg", "photos/ünïcødé/ж.jpg",
        "photos/deep/er/x.jpg", "photos/zz.png", "other/y.jpg", "photos%2Fencoded.jpg"]


@pytest.fixture(scope="module")
def apps():
    from moto.moto_server.werkzeug_app import create_backend_app

    server = EmbeddedS3().start()
    try:
        s3 = s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for n, key in enumerate(KEYS):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * n, **({"ChecksumAlgorithm": "SHA256"} if n % 2 else {}))
        s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=b"a newer version")
        s3.put_object(Bucket=BUCKET, Key="photos/gone.jpg", Body=b"deleted")
        s3.delete_object(Bucket=BUCKET, Key="photos/gone.jpg")  # a delete marker on top: not listed
        moto = create_backend_app("s3")
        yield Client(moto), Client(fast_listing(moto, server._backend)), s3
    finally:
        server._backend().buckets.pop(BUCKET, None)
        server.stop()


def parsed(body: bytes) -> tuple[dict, list[dict], str | None]:
    """(the page's fields, its objects, its continuation token): what a client reads of a listing."""
    root = ET.fromstring(body)
    fields = {child.tag.removeprefix(NS): child.text or "" for child in root
              if child.tag not in (f"{NS}Contents", f"{NS}NextContinuationToken")}
    objects = [{item.tag.removeprefix(NS): item.text for item in contents} for contents in root.iter(f"{NS}Contents")]
    token = root.find(f"{NS}NextContinuationToken")
    return fields, objects, None if token is None else token.text


def pages(client: Client, **query) -> list[tuple[dict, list[dict]]]:
    out, token = [], None
    while True:
        params = {"list-type": "2", **query, **({"continuation-token": token} if token else {})}
        reply = client.get(f"/{BUCKET}", query_string=urllib.parse.urlencode(params, quote_via=urllib.parse.quote),
                           headers={"Host": "127.0.0.1:9"})
        assert reply.status_code == 200, reply.data
        fields, objects, token = parsed(reply.data)
        out.append((fields, objects))
        if fields["IsTruncated"] == "false":
            assert token is None
            return out
        assert token


@pytest.mark.parametrize("query", [
    {"prefix": "photos/", "max-keys": "1000", "encoding-type": "url"},  # what boto3 sends
    {"prefix": "photos/", "max-keys": "2", "encoding-type": "url"},  # page after page
    {"prefix": "photos/ü", "max-keys": "3"},
    {"prefix": "photos/with space+", "max-keys": "1000", "encoding-type": "url"},
    {"max-keys": "3"},
    {"prefix": "nothing-here/"},
    {"prefix": "", "encoding-type": "url"},  # the bucket's root
    {"prefix": "photos/", "max-keys": "0"},
])
def test_each_page_is_the_one_moto_would_answer(apps, query):
    moto, fast, _ = apps
    assert pages(fast, **query) == pages(moto, **query)


def test_boto3_reads_the_same_listing_through_the_fast_answer(apps):
    _, _, s3 = apps
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="photos/", PaginationConfig={"PageSize": 3}):
        listed += [(o["Key"], o["Size"]) for o in page["Contents"]]
    expected = sorted((key, 15 if key == "photos/a.jpg" else n) for n, key in enumerate(KEYS) if key.startswith("photos/"))
    assert listed == expected


@pytest.mark.parametrize("query", [
    "list-type=2&delimiter=%2F",  # folders: moto's
    "list-type=2&start-after=photos%2Fa.jpg",
    "list-type=2&fetch-owner=true",
    "list-type=2&continuation-token=",  # moto's InvalidContinuationToken
    "list-type=2&max-keys=nope",
    "list-type=2&prefix=a&prefix=b",
    "versions",
    "",  # ListObjects (v1)
])
def test_any_other_request_is_moto_s(query):
    from rcyc_cli.local.emulator.s3_listing import listing

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/{BUCKET}", "QUERY_STRING": query, "HTTP_HOST": "127.0.0.1:9"}
    assert listing(environ, lambda: pytest.fail("the store was read")) is None
    assert listing({**environ, "QUERY_STRING": "list-type=2", "HTTP_HOST": f"{BUCKET}.localhost:9"}, lambda: None) is None
    assert listing({**environ, "QUERY_STRING": "list-type=2", "PATH_INFO": "/no-such-bucket"},
                   lambda: type("Store", (), {"buckets": {}})()) is None  # moto's NoSuchBucket


@pytest.mark.parametrize("query", ["list-type=2&prefix=%FF", "list-type=2&prefix=photos%2F%C3", "list-type=2&prefix=%ED%A0%80"])
def test_a_query_that_is_not_utf_8_is_answered_as_moto_answers_it(apps, query):
    """Percent-escapes that decode to no UTF-8: moto keeps them as they are (a key may start with "%FF"), a
    lenient decode made them U+FFFD and listed other keys."""
    moto, fast, s3 = apps
    s3.put_object(Bucket=BUCKET, Key="%FF literal.jpg", Body=b"x")
    try:
        answers = [client.get(f"/{BUCKET}", query_string=query, headers={"Host": "127.0.0.1:9"}) for client in (fast, moto)]
        assert [a.status_code for a in answers] == [200, 200]
        assert parsed(answers[0].data) == parsed(answers[1].data)
    finally:
        s3.delete_object(Bucket=BUCKET, Key="%FF literal.jpg")
