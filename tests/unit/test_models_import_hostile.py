"""rcyc models import against hostile sources, all refused with one error line and a documented exit
status before anything is uploaded: a truncated archive, a missing bucket or key (moto in-process)."""

from __future__ import annotations

import io
import tarfile

import boto3
import pytest

from rcyc_cli.exit_status import ExitStatus
from tests.cli import run


def archive(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_truncated_archive_is_bad_input_not_an_abort(tmp_path):
    whole = archive(tmp_path / "whole.tar.gz", {"model/manifest.json": b"{}" * 500}).read_bytes()
    cut = tmp_path / "model.tar.gz"
    cut.write_bytes(whole[:40])  # a download cut short: gzip raises EOFError, which click reports as "Aborted!"
    result = run("models", "import", str(cut), "--name", "n", "--json")
    assert result.exit_code == ExitStatus.BAD_INPUT, result.output
    assert "damaged archive" in result.stderr and "Aborted" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("where", ["no such bucket", "no such key"])
def test_a_missing_s3_source_says_so_with_a_hint(moto_in_process, monkeypatch, where):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="rcyc-import-models")
    uri = "s3://rcyc-import-absent/m/model.tar.gz" if where == "no such bucket" else "s3://rcyc-import-models/m/model.tar.gz"
    result = run("models", "import", uri, "--name", "n", "--bucket", "rcyc-import-models")
    assert result.exit_code == ExitStatus.BAD_INPUT, result.output
    assert "does not exist" in result.stderr and "hint: Give s3://BUCKET/KEY/model.tar.gz" in result.stderr


def test_a_bad_file_in_the_archive_is_named_by_the_archive_not_a_vanished_temp_folder(tmp_path):
    source = archive(tmp_path / "model.tar.gz", {"manifest.json": b"not json"})
    result = run("models", "import", str(source), "--name", "n")
    assert result.exit_code == ExitStatus.BAD_INPUT, result.output
    assert f"{source}:manifest.json is not JSON" in result.stderr and "rcyc-import-" not in result.stderr


def test_the_name_is_checked_before_the_archive_is_read(tmp_path):
    damaged = tmp_path / "model.tar.gz"
    damaged.write_bytes(b"\x1f\x8b" + b"\0" * 20)
    result = run("models", "import", str(damaged), "--name", "../evil")
    assert result.exit_code == ExitStatus.BAD_INPUT
    assert "model name '../evil'" in result.stderr and "unpacking" not in result.output
