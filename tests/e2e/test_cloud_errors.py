"""What every cloud command does with no credentials, no region, and --json: one line with a hint, JSON only."""

from __future__ import annotations

import json

import pytest

from rcyc_cli.exit_status import ExitStatus
from tests.cli import run
from tests.conftest import MODELS
from tests.e2e.cloud_checks import SODA

pytestmark = pytest.mark.e2e


def test_no_credentials_is_one_line_with_a_hint(aws_on_moto, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run("upload-image", "--bucket", bucket, SODA)
    assert result.exit_code == ExitStatus.AWS
    assert "no AWS credentials" in result.stderr and "hint: " in result.stderr and "Traceback" not in result.stderr


def test_no_region_is_one_line_with_a_hint(aws_on_moto, bucket, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = run("invoke", "--bucket", bucket, "images/x.jpg")
    assert result.exit_code == ExitStatus.AWS and "no AWS region" in result.stderr and "--region" in result.stderr


def test_json_output_is_only_json(aws_on_moto, bucket):
    result = run("upload-model", "--json", "--bucket", bucket, MODELS["softmax"])
    assert result.exit_code == 0
    json.loads(result.stdout)  # nothing but JSON on stdout
    assert result.stderr == ""
