"""A run's objects in the warm stack's embedded S3 are gone when it ends (issue 20, invariant 2): every
version, no delete marker left readable, the spooled buffers closed, and moto's own tracking of each model
object released, so that a long-lived stack does not grow with every image routed through it."""

from __future__ import annotations

import gc

from rcyc_cli.cloud.aws import s3_client
from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION
from rcyc_cli.local.emulator.s3 import EmbeddedS3


def test_a_purged_prefix_leaves_no_version_no_open_buffer_and_no_tracked_object():
    from moto.s3.models import FakeKey

    server = EmbeddedS3().start()
    try:
        s3 = s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        s3.create_bucket(Bucket="purge-test")
        s3.put_bucket_versioning(Bucket="purge-test", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="purge-test", Key="keep.jpg", Body=b"kept")
        for run in range(20):
            prefix = f"runs/{run}/"
            server.put_objects("purge-test", [(f"{prefix}images/a.jpg", b"x" * 1000), (f"{prefix}images/a.jpg", b"y")])
            assert s3.get_object(Bucket="purge-test", Key=f"{prefix}images/a.jpg")["Body"].read() == b"y"  # as the function
            s3.delete_object(Bucket="purge-test", Key=f"{prefix}images/a.jpg")  # a delete marker on top
            kept = [v for v in server._backend().get_bucket("purge-test").keys.getlist(f"{prefix}images/a.jpg")
                    if isinstance(v, FakeKey)]
            server.delete_prefix("purge-test", prefix)
            assert all(v._value_buffer.closed for v in kept)
        listing = s3.list_object_versions(Bucket="purge-test", Prefix="runs/")
        assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
        gc.collect()
        assert [k.name for k in FakeKey.instances_tracked if k.name.startswith("runs/")] == []
        assert s3.head_object(Bucket="purge-test", Key="keep.jpg")["ContentLength"] == 4  # others untouched
    finally:
        server.stop()
