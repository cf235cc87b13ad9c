"""A shared bucket's run prefix that could not be removed is said, never left behind in silence: S3's
DeleteObjects answers 200 with per-key Errors (an AccessDenied on some keys), and a failing S3 at cleanup
time raises. Either way the run's own outcome stands and a notice names what is left, where."""

from __future__ import annotations

from rcyc_cli.local.places import SharedPlace
from rcyc_cli.local.session import remove_prefix
from rcyc_cli.reporting import Reporter


class FakeS3:
    def __init__(self, errors=(), fail=False):
        self.errors, self.fail, self.deleted = list(errors), fail, []

    def get_paginator(self, name):
        fake = self

        class Pages:
            def paginate(self, Bucket, Prefix):
                if fake.fail:
                    raise ConnectionError("S3 went away")
                return [{"Versions": [{"Key": f"{Prefix}images/a.jpg", "VersionId": "1"}], "DeleteMarkers": []}]

        return Pages()

    def delete_objects(self, Bucket, Delete):
        self.deleted += Delete["Objects"]
        return {"Errors": self.errors} if self.errors else {}


def place(s3) -> SharedPlace:
    shared = SharedPlace.__new__(SharedPlace)
    shared.s3, shared.bucket, shared.endpoint_url, shared.prefix = s3, "shared", "http://127.0.0.1:9", "runs/abc/"
    return shared


def test_a_prefix_removed_is_gone_and_nothing_is_said():
    s3, said = FakeS3(), []
    assert remove_prefix(s3, "shared", "runs/abc/") and s3.deleted
    place(s3).close(Reporter(notice=said.append))
    assert said == []


def test_keys_s3_refused_to_delete_are_said():
    said = []
    refused = FakeS3(errors=[{"Key": "runs/abc/images/a.jpg", "Code": "AccessDenied", "Message": "denied"}])
    assert not remove_prefix(refused, "shared", "runs/abc/")
    place(refused).close(Reporter(notice=said.append))
    assert len(said) == 1 and "s3://shared/runs/abc/" in said[0] and "remove them yourself" in said[0]


def test_an_s3_gone_at_cleanup_is_said_and_never_raises():
    said = []
    place(FakeS3(fail=True)).close(Reporter(notice=said.append))
    assert len(said) == 1 and "s3://shared/runs/abc/" in said[0]
