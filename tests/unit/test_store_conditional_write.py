"""Two uploads of one model version against a store whose conditional write let both manifests through
(moto checks, then writes, across request threads; some S3-compatible stores ignore If-None-Match): the
loser removes its own manifest version too, so the version holds the winner's manifest and files alone."""

from __future__ import annotations

import dataclasses

import boto3
import pytest
from rcyc_core.errors import RcycError
from rcyc_core.manifest import Manifest

from rcyc_cli.cloud import store
from rcyc_cli.defaults import LOCAL_REGION
from tests.conftest import MODELS


class LetsBothThrough:
    """The S3 client of one upload; when it writes its manifest, another upload's manifest lands right after
    (as if both had passed the store's If-None-Match check), so its read-back finds the other one."""

    def __init__(self, s3, other_manifest: bytes):
        self._s3, self._other = s3, other_manifest

    def put_object(self, **kwargs):
        answer = self._s3.put_object(**{k: v for k, v in kwargs.items() if k != "IfNoneMatch"})
        if kwargs["Key"].endswith("/manifest.json"):
            self._s3.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=self._other)
        return answer

    def __getattr__(self, name):
        return getattr(self._s3, name)


def test_the_upload_whose_manifest_was_overwritten_removes_its_own_version(moto_in_process):
    s3 = boto3.client("s3", region_name=LOCAL_REGION)
    s3.create_bucket(Bucket="race-bucket")
    s3.put_bucket_versioning(Bucket="race-bucket", VersioningConfiguration={"Status": "Enabled"})
    manifest = Manifest.load(MODELS["softmax"])
    winner = dataclasses.replace(manifest, files_prefix="uwinner/").to_json().encode()  # its files are not here
    with pytest.raises(RcycError):  # the winner's files are missing: the loser's check of them says so
        store.put_model(LetsBothThrough(s3, winner), "race-bucket", manifest, MODELS["softmax"], promote=False)
    prefix = f"models/{manifest.name}/{manifest.version}/"
    versions = s3.list_object_versions(Bucket="race-bucket", Prefix=prefix).get("Versions", [])
    assert [v["Key"] for v in versions] == [prefix + "manifest.json"]  # the winner's manifest, once; no loser's files
    assert b"uwinner/" in s3.get_object(Bucket="race-bucket", Key=prefix + "manifest.json")["Body"].read()
