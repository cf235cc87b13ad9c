"""Helpers the cloud tests share (each module runs against its own moto server, from tests/e2e/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from rcyc_core.manifest import Manifest
from tests.cli import run
from tests.conftest import IMAGES, MODELS

SODA = IMAGES / "soda_cans" / "soda_cans_0.jpg"


def ok(result) -> dict:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-3000:]}"
    return json.loads(result.stdout)


def s3_objects(aws_on_moto, bucket: str) -> dict[str, bytes]:
    s3 = aws_on_moto.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def pointer(aws_on_moto, bucket: str) -> dict:
    return json.loads(aws_on_moto.client("s3").get_object(Bucket=bucket, Key="models/current.json")["Body"].read())


def audit_json(target):
    result = run("doctor", "--security", target, "--json")
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def repackaged(tmp_path, layout: str, swap: dict[str, Path]) -> Path:
    """A copy of a fixture model directory with some .tflite files replaced and the manifest rewritten to
    match (so only behaviour can tell)."""
    import shutil

    from rcyc_core.manifest import FileRef, Member, sha256_file

    directory = tmp_path / f"{layout}-repackaged"
    shutil.copytree(MODELS[layout], directory)
    for name, source in swap.items():
        shutil.copyfile(source, directory / name)
    manifest = Manifest.load(directory)
    members = tuple(Member(m.label, {fmt: FileRef(ref.path, sha256_file(directory / ref.path)) for fmt, ref in m.files.items()})
                    for m in manifest.members)
    Manifest(manifest.name, "repackaged", manifest.layout, manifest.input, members).write(directory)
    return directory
