"""Keys S3 allows but a result cannot follow: S3 keys are at most 1024 bytes (UTF-8), and a result's key is
the results prefix + the key + ".json". Such a key is one record's error, never the run's end."""

from __future__ import annotations

import pytest
from test_classify_run_hostile import BUCKET, FakeLambda, run, s3  # noqa: F401 - the fixture


def refuse_long_keys(params, **_):
    """What S3 answers a PutObject with a key over 1024 bytes (moto stores it)."""
    from botocore.exceptions import ClientError

    key = params["url_path"].split("/", 2)[-1]
    if len(key.encode()) > 1024:
        raise ClientError({"Error": {"Code": "KeyTooLongError", "Message": "Your key is too long"}}, "PutObject")


@pytest.mark.parametrize("name", ["L" * 1010 + ".jpg", "ж" * 505 + ".jpg"])  # 1014 bytes either way
def test_a_key_whose_result_key_would_be_over_s3s_limit_is_one_records_error(s3, name):  # noqa: F811
    for n in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"photos/{n}.jpg", Body=b"photo %d" % n)
    s3.put_object(Bucket=BUCKET, Key="photos/" + name, Body=b"a photo with a long name")
    s3.meta.events.register("before-call.s3.PutObject", refuse_long_keys)
    lam = FakeLambda()
    summary = run(s3, lam)
    assert summary["classified"] == 5 and summary["errors"] == {"ResultKeyTooLong": 1}
    assert "photos/" + name not in lam.asked  # not paid for: its result could not be stored
    again = FakeLambda()
    assert run(s3, again)["done_before"] == 5 and again.asked == []
