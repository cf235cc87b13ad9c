"""Every answer the embedded S3 writes from moto's store (the listings, the function's GETs, the stack's read
routes), and every write the stack's results route makes into it, asks one question first, ``s3_listing.served_here``: would moto do more than answer? A bucket policy
or bucket logging, moto's authentication, its cross-account lock or its recorder on: then moto answers. The
listing and the read routes once checked only the policy and authentication (the GET checked all five)."""

from __future__ import annotations

import pytest

from rcyc_cli.cloud.aws import s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.s3 import EmbeddedS3
from rcyc_cli.local.emulator.s3_listing import listing

BUCKET, LOGS = "served-here", "served-here-logs"
SURFACES = ["listing", "list route", "object route", "results route"]


@pytest.fixture(scope="module")
def embedded():
    server = EmbeddedS3().start()
    try:
        s3 = s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        for name in (BUCKET, LOGS):
            s3.create_bucket(Bucket=name)
        s3.put_bucket_acl(Bucket=LOGS, ACL="log-delivery-write")
        s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=b"a", ContentType="image/jpeg")
        yield server, s3
    finally:
        for name in (BUCKET, LOGS):
            server._backend().buckets.pop(name, None)
        server.stop()


def answers(server) -> dict[str, bool]:
    """Which of the surfaces answer from (or write into) the store now (True) rather than leave it to moto."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/{BUCKET}", "QUERY_STRING": "list-type=2", "HTTP_HOST": "127.0.0.1:9"}
    return {"listing": listing(environ, server._backend) is not None,
            "list route": server.list_page(BUCKET, "photos/", None, 1000) is not None,
            "object route": server.read_object(BUCKET, "photos/a.jpg") is not None,
            "results route": server.writes_here(BUCKET)}


def logging_on(server, s3):
    s3.put_bucket_logging(Bucket=BUCKET, BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": LOGS, "TargetPrefix": "l/"}})
    return lambda: s3.put_bucket_logging(Bucket=BUCKET, BucketLoggingStatus={})


def recorder_on(server, s3):
    from moto.moto_api import recorder

    recorder.start_recording()
    return recorder.stop_recording


def cross_account_locked(server, s3):
    patch = pytest.MonkeyPatch()
    patch.setenv("MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "false")
    return patch.undo


def policy_set(server, s3):
    s3.put_bucket_policy(Bucket=BUCKET, Policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", '
                         '"Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::%s/*"}]}' % BUCKET)
    return lambda: s3.delete_bucket_policy(Bucket=BUCKET)


@pytest.mark.parametrize("condition", [logging_on, recorder_on, cross_account_locked, policy_set])
def test_whatever_makes_moto_do_more_than_answer_is_moto_s_on_every_surface(embedded, condition):
    server, s3 = embedded
    assert answers(server) == dict.fromkeys(SURFACES, True)
    undo = condition(server, s3)
    try:
        assert answers(server) == dict.fromkeys(SURFACES, False)
    finally:
        undo()
    assert all(answers(server).values())
