"""Where a one-shot ``invoke-local`` keeps the model and the images: the embedded S3 of this process (written
into its store directly), or a bucket at ``--endpoint-url`` that other runs can see (through the S3 API,
under the run's own prefix, removed afterwards). The run and its instances see one face of either.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from rcyc_core.errors import ModelError
from rcyc_core.manifest import Manifest

from ..defaults import LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY
from ..reporting import Reporter
from .session import RUNS_PREFIX, Upload, image_key


class EmbeddedPlace:
    """moto's S3 in this process, for this run alone: nothing else reads it, so no prefix of its own."""

    prefix = ""

    def __init__(self, bucket: str, report: Reporter):
        from .emulator.s3 import EmbeddedS3

        report.status("starting the embedded S3 (moto) on 127.0.0.1")
        self.bucket, self.server = bucket, EmbeddedS3().start()
        self.endpoint_url = self.server.endpoint_url

    def hold_model(self, manifest: Manifest, model_dir: Path, model_given: bool) -> tuple[Manifest, str]:
        self.server.seed_model(self.bucket, manifest, model_dir, POINTER_KEY)
        return manifest, POINTER_KEY

    def put_images(self, uploads: list[Upload]) -> list[str]:
        keys = [image_key("", upload) for upload in uploads]
        self.server.put_objects(self.bucket, ((key, upload.data()) for key, upload in zip(keys, uploads)))  # one at a time
        return keys

    def close(self, report: Reporter) -> None:
        self.server.stop()


class SharedPlace:
    """A bucket at ``endpoint_url`` that other runs can reach: nothing is written outside this run's
    prefix, and the prefix is removed (every version) when the run ends."""

    def __init__(self, bucket: str, endpoint_url: str):
        from ..cloud import aws

        self.bucket, self.endpoint_url = bucket, endpoint_url
        self.prefix = f"{RUNS_PREFIX}{uuid.uuid4().hex[:12]}/"
        self.s3 = aws.s3_client(endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)

    def hold_model(self, manifest: Manifest, model_dir: Path, model_given: bool) -> tuple[Manifest, str]:
        """Without --model, the bucket's own current model (read, never written); with --model, that
        model published under the run's prefix only, with a pointer of its own."""
        from ..cloud import buckets, models, store

        if model_given:
            buckets.ensure_private_bucket(self.s3, self.bucket, LOCAL_REGION)
            pointer = f"{self.prefix}current.json"  # another run's model never answers here
            store.put_model(self.s3, self.bucket, manifest, model_dir, pointer_key=pointer, root=self.prefix)
            return manifest, pointer
        self.require_bucket()
        current = store.read_pointer(self.s3, self.bucket)
        if current is None:
            raise ModelError(f"s3://{self.bucket} at {self.endpoint_url} has no current model ({POINTER_KEY})",
                             kind="ModelUnavailable",
                             hint="Give --model PATH (used for this run only), or publish one: rcyc upload-model.")
        published = store.read_manifest(self.s3, self.bucket, current["manifest"])
        if published is None:
            raise ModelError(models.pointer_problem(self.bucket, current), kind="ModelUnavailable",
                             hint="rcyc models promote NAME VERSION, or give --model PATH.")
        buckets.refuse_if_public(self.s3, self.bucket)
        return published, POINTER_KEY

    def put_images(self, uploads: list[Upload]) -> list[str]:
        from .session import put_images

        return put_images(self.s3, self.bucket, self.prefix, uploads)

    def require_bucket(self) -> None:
        """The bucket is there: "no current model" would send the user after the wrong thing."""
        from rcyc_core.errors import AwsError
        from rcyc_core.s3 import NOT_FOUND_CODES

        from ..cloud import aws

        if aws.get_or_none(f"reach s3://{self.bucket} at {self.endpoint_url}", self.s3.head_bucket, NOT_FOUND_CODES,
                           Bucket=self.bucket) is None:
            raise AwsError(f"there is no bucket {self.bucket} at {self.endpoint_url}", kind="NoSuchBucket",
                           hint="Check --bucket and --s3-endpoint-url; or give --model PATH, which creates it (private).")

    def close(self, report: Reporter) -> None:
        from .session import remove_prefix

        if not remove_prefix(self.s3, self.bucket, self.prefix):  # said, never left behind in silence
            report.notice(f"could not remove this run's objects from s3://{self.bucket}/{self.prefix} at "
                          f"{self.endpoint_url}; remove them yourself (every version)")


@contextlib.contextmanager
def open_place(bucket: str, endpoint_url: str | None, report: Reporter):
    """The run's place, closed (stopped, or its prefix removed) when the run ends however it ends."""
    place = EmbeddedPlace(bucket, report) if endpoint_url is None else SharedPlace(bucket, endpoint_url)
    try:
        yield place
    finally:
        place.close(report)
