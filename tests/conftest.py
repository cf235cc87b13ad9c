from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from fixtures.catalog import FIXTURES, IMAGES, LABELS, MODELS, bad_images, class_images, edge_images  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"

# Hypothesis: a fast profile by default (make test in about two minutes on two cores), the full one under
# CI=true or RCYC_HYPOTHESIS=full (thousands of examples). Tests size their own runs with examples().
FULL_PROPERTIES = IN_CI or os.environ.get("RCYC_HYPOTHESIS") == "full"


def pytest_collection_modifyitems(config, items):
    """The fast lane: tests marked ``slow`` (each tens of seconds of waiting on a daemon's retries or a load
    run) run in the full profile only."""
    if FULL_PROPERTIES:
        return
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.skip(reason="slow: runs under CI=true or RCYC_HYPOTHESIS=full"))


def _installed_emulator() -> str | None:
    """The emulator as the user has it installed (found before the tests' own cache hides the user's)."""
    from rcyc_cli.local.emulator import rie
    from rcyc_core.errors import RcycError

    try:
        return str(rie.locate())
    except RcycError:
        return None


@pytest.fixture(scope="session", autouse=True)
def session_cache_home(tmp_path_factory):
    """The whole session runs with an rcyc cache of its own: never the user's models, state or stack. The
    user's installed emulator is still used (read-only, through RCYC_RIE)."""
    emulator = os.environ.get("RCYC_RIE") or _installed_emulator()
    patch = pytest.MonkeyPatch()
    cache = str(tmp_path_factory.mktemp("rcyc-cache-home"))
    patch.setenv("RCYC_CACHE_HOME", cache)
    # invoke-local leaves no warm stack behind in tests, unless a test asks for it (test_keep_warm.py).
    patch.setenv("RCYC_KEEP_WARM", "0")
    if emulator:
        patch.setenv("RCYC_RIE", emulator)
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        # Where the environment forbids bytecode beside the sources, each stack a test starts would compile
        # moto, werkzeug and rcyc into its fresh cache (~1 s): the session's processes share one cache of it.
        patch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.mktemp("bytecode")))
        patch.delenv("PYTHONDONTWRITEBYTECODE")
    yield cache
    patch.undo()


@pytest.fixture(autouse=True)
def private_cache_home(session_cache_home, tmp_path_factory, monkeypatch):
    """Each test gets an rcyc cache (and so a stack state) of its own, unless its module set up its own
    private one on purpose (a module-wide warm stack). A stack still running in it when the test ends (a
    test that failed before its own cleanup, or code that started one it should not have) is stopped."""
    if os.environ.get("RCYC_CACHE_HOME") != session_cache_home:
        yield
        return
    cache = str(tmp_path_factory.mktemp("rcyc-cache"))
    monkeypatch.setenv("RCYC_CACHE_HOME", cache)
    yield
    with pytest.MonkeyPatch.context() as back:  # the test may have pointed RCYC_CACHE_HOME elsewhere (a hostile value)
        back.setenv("RCYC_CACHE_HOME", cache)
        _stop_a_stack_left_running()


def _stop_a_stack_left_running() -> None:
    from rcyc_cli.local.stack import client as stack

    try:
        if stack.lock_file().exists() or stack.state_file().exists():
            stack.down()
    except Exception as exc:  # noqa: BLE001 - the test's own outcome stands; this is only a safety net
        print(f"a stack left running could not be stopped: {exc}", file=sys.stderr)


def examples(full: int) -> int:
    """How many examples a property test runs: ``full`` in the full profile, a twentieth (at least 20) otherwise."""
    return full if FULL_PROPERTIES else max(20, full // 20)


def drawings():
    """fixtures/drawings.py (the fixtures folder is not a package): draw() and write_folder()."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rcyc_fixture_drawings", FIXTURES / "drawings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stops_as_in_a_terminal() -> None:
    """``preexec_fn`` of a process a test stops with a signal: SIGINT, SIGTERM and SIGHUP at their defaults, as
    in a terminal. A suite started under nohup (SIGHUP ignored) or as a background job (SIGINT ignored) hands
    its children those signals ignored, and rcyc rightly keeps an ignored signal ignored: the test would then
    find a run that finished, not one that stopped."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def need(condition: bool, what: str) -> None:
    """Skip when a prerequisite is missing on a developer machine; fail under CI=true, where it must be there."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{what} is required under CI=true")
        pytest.skip(f"{what} is not available")


@pytest.fixture(scope="session")
def rie_path(session_cache_home) -> Path:
    from rcyc_cli.local.emulator import rie
    from rcyc_core.errors import RcycError

    try:
        return rie.locate()
    except RcycError:
        need(False, "the Lambda emulator (rcyc rie install)")


@pytest.fixture(scope="session")
def tensorflow_available() -> None:
    need(installed("tensorflow"), "TensorFlow")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A private rcyc cache so tests never reuse a model packaged by another run."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RCYC_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def psu_bare_dir(tmp_path) -> Path:
    """The five Portland State-layout files as they are, with no manifest and no .tflite."""
    target = tmp_path / "psu-bare"
    target.mkdir()
    for i in range(5):
        shutil.copy(MODELS["one-vs-rest"] / f"model_{i}_prime.h5", target)
    return target


def parse_json_output(text: str) -> dict:
    return json.loads(text)


TEST_BASE_IMAGE = os.environ.get("RCYC_TEST_BASE_IMAGE", "rcyc/python-base:bookworm")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def build_args() -> list[str]:
    """`rcyc build` options for tests: the local base image, and the host's CA bundle for pip in builds."""
    return ["--base-image", TEST_BASE_IMAGE] + (["--ca-bundle", CA_BUNDLE] if os.path.isfile(CA_BUNDLE) else [])


@pytest.fixture(scope="module")
def engine():
    """A Docker engine that answers and has the local base image (fails under CI=true otherwise)."""
    from rcyc_cli import image as docker_ops
    from rcyc_core.errors import RcycError

    try:
        client = docker_ops.engine()
    except RcycError:
        need(False, "a Docker engine (DOCKER_HOST)")
    if not docker_ops.has_image(client, TEST_BASE_IMAGE):
        need(False, f"the local base image {TEST_BASE_IMAGE} (.ci/docker-up.sh builds it)")
    yield client
    client.close()


@pytest.fixture
def moto_in_process(monkeypatch):
    """moto's in-process AWS (unit tests) with throwaway keys and none of the user's endpoints or profile."""
    from moto import mock_aws

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield
