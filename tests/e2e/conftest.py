"""Fixtures of the cloud tests: a moto server per module (optionally behind the fault endpoint), AWS pointed at
it, a bucket name per test."""

from __future__ import annotations

import hashlib
import os

import pytest

from rcyc_cli.cloud import aws as cloud_aws
from tests.conftest import need
from tests.e2e.cloud_fixtures import REGISTRY_BINARY, LocalRegistry, MotoServer, point_aws_at
from tests.e2e.fault_endpoint import FaultEndpoint


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


@pytest.fixture(scope="module")
def fault_front(moto_server):
    """The fault endpoint in front of this module's moto server: it counts every request and forwards it
    unless a test tells it to fail or to route elsewhere."""
    endpoint = FaultEndpoint(moto_server.endpoint_url).start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def aws_via_front(fault_front, monkeypatch, tmp_path):
    """Like aws_on_moto, but every request goes through fault_front (its counts and faults cleared per test)."""
    point_aws_at(monkeypatch, fault_front.url, tmp_path)
    fault_front.clear()
    yield cloud_aws.Aws()
    fault_front.clear()


@pytest.fixture
def bucket(request) -> str:
    """A bucket name of this test's own (moto's state is shared by the module)."""
    return "rcyc-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def registry():
    """The CNCF registry (Debian's docker-registry) on 127.0.0.1, standing in for ECR's registry."""
    need(os.path.exists(REGISTRY_BINARY), "the docker-registry binary (.ci/docker-up.sh installs it)")
    server = LocalRegistry().start()
    try:
        yield server
    finally:
        server.stop()
        assert server.process.poll() is not None  # stopped by its own handle
