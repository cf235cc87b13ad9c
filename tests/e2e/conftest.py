"""Fixtures of the cloud tests: a moto server per module, AWS pointed at it, a bucket name per test."""

from __future__ import annotations

import hashlib

import pytest

from rcyc_cli.cloud import aws as cloud_aws
from tests.e2e.cloud_fixtures import MotoServer, point_aws_at


@pytest.fixture(scope="module")
def moto_server():
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.running


@pytest.fixture
def aws_on_moto(moto_server, monkeypatch, tmp_path):
    """boto3 pointed at moto with throwaway credentials; nothing of the user's AWS configuration."""
    point_aws_at(monkeypatch, moto_server.endpoint_url, tmp_path)
    return cloud_aws.Aws()


@pytest.fixture
def bucket(request) -> str:
    """A bucket name of this test's own (moto's state is shared by the module)."""
    return "rcyc-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
