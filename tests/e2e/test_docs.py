"""The docs are tests: every code block of README.md and docs/*.md (tests/docs_blocks.py finds them).

`sh` blocks run in bash (-e -u -o pipefail), `python` blocks in this Python, both from a scratch folder that
holds links to the repository's `fixtures/`, with `rcyc` (this checkout's) on PATH. The blocks of one
document run in order and share one session: the variables a shell block sets are seen by the next blocks
(as a reader's terminal would). What the docs leave to the reader comes from the environment variables
they name, filled here by fixtures:

- README.md: a private rcyc cache (so `rcyc local up` starts a stack of its own, stopped at the end),
  AWS_* pointed at a moto server for the commands that talk to AWS, PHOTOS (fixtures/eval) and MODEL
  (fixtures/models/fixture-softmax), and the AWS CLI (.ci/run's) on PATH.
- docs/cloud.md: MOTO_PORT and REGISTRY_PORT (free ports), PASSWORD, REGISTRY_DIR (a new temp folder) and
  BASE_IMAGE (the local base image): the block starts moto and a registry itself; both are stopped after.

Everything a block starts in the background is in the block's process group, killed when the document is
done; the stack is stopped by `rcyc local down`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CA_BUNDLE, FIXTURES, MODELS, ROOT, TEST_BASE_IMAGE, need
from tests.docs_blocks import all_blocks
from tests.e2e.cloud_fixtures import REGISTRY_BINARY, MotoServer, free_port

pytestmark = pytest.mark.e2e
BLOCKS = all_blocks()
AWS_CLI = Path(os.environ.get("RCYC_AWS_CLI") or ROOT / ".venv" / "awscli" / "bin" / "aws")
BLOCK_TIMEOUT = 900  # seconds: docs/cloud.md builds and pushes an image


def test_every_block_has_a_language_this_suite_knows():
    unknown = [b.name for b in BLOCKS if b.kind == "unknown"]
    assert not unknown, f"blocks with no (or an unknown) language: {unknown}; label them sh, python, json or text"


def test_blocks_found():
    # A parser that finds nothing would make every docs test pass vacuously.
    assert sum(1 for b in BLOCKS if b.kind in ("sh", "python")) >= 10


class Session:
    """One document's reader: a scratch folder, an environment carried from block to block, and the process
    groups its blocks started."""

    def __init__(self, doc: str, workdir: Path, env: dict[str, str]):
        self.doc, self.workdir, self.env = doc, workdir, env
        self.groups: list[int] = []
        self.failed: str | None = None

    def run(self, block) -> subprocess.CompletedProcess:
        dump = self.workdir / ".env-after"
        if block.kind == "sh":
            script = f"set -euo pipefail -a\n{block.code}\nenv -0 > {dump}\n"
            args = ["bash", "-c", script]
        else:
            code = block.code + f"\nimport os as _o; open({str(dump)!r}, 'w').write(''.join(k + '=' + v + chr(0) for k, v in _o.environ.items()))\n"
            args = [sys.executable, "-c", code]
        proc = subprocess.Popen(args, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        self.groups.append(proc.pid)
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        if proc.returncode == 0 and dump.is_file():
            self.env = dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
            dump.unlink()
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def close(self) -> None:
        subprocess.run(["rcyc", "local", "down"], cwd=self.workdir, env=self.env, capture_output=True, timeout=60)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCYC_")) or k == "RCYC_RIE"}
    path = [str(Path(sys.executable).parent)] + ([str(AWS_CLI.parent)] if AWS_CLI.is_file() else []) + [env.get("PATH", "")]
    pythonpath = os.pathsep.join([str(ROOT), str(ROOT / "lambda")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return {**env, "PATH": os.pathsep.join(path), "PYTHONPATH": pythonpath, "RCYC_CACHE_HOME": str(tmp / "cache"),
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
            "NO_COLOR": "1", "COLUMNS": "100"}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, rie_path):
    """One Session per document, made on first use and closed at the end of the module."""
    made: dict[str, Session] = {}
    servers: list = []

    def get(doc: str) -> Session:
        if doc in made:
            return made[doc]
        tmp = tmp_path_factory.mktemp("docs")
        workdir = tmp / "work"
        workdir.mkdir()
        (workdir / "fixtures").symlink_to(FIXTURES)
        env = {**_base_env(tmp), "PHOTOS": str(FIXTURES / "eval")}
        if doc == "README.md":
            moto = MotoServer().start()
            servers.append(moto)
            env.update(AWS_ENDPOINT_URL=moto.endpoint_url, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                       AWS_DEFAULT_REGION="us-east-1", MODEL=str(MODELS["softmax"]))
            # The bucket's current model, which the README's eval examples compare with.
            subprocess.run(["rcyc", "upload-model", str(MODELS["one-vs-rest"]), "--json"], env=env, cwd=workdir,
                           check=True, capture_output=True, timeout=300)
        elif doc == "docs/cloud.md":
            env.update(MOTO_PORT=str(free_port()), REGISTRY_PORT=str(free_port()), PASSWORD=secrets.token_urlsafe(12),
                       REGISTRY_DIR=str(tmp / "registry"), BASE_IMAGE=TEST_BASE_IMAGE,
                       **({"RCYC_CA_BUNDLE": CA_BUNDLE} if os.path.isfile(CA_BUNDLE) else {}))
        made[doc] = Session(doc, workdir, env)
        return made[doc]

    yield get
    for session in made.values():
        session.close()
    for server in servers:
        server.stop()


def _needs(block) -> None:
    text = block.code
    if "aws " in text and block.kind == "sh":
        need(AWS_CLI.is_file(), f"the AWS CLI ({AWS_CLI}; .ci/run installs it, or set RCYC_AWS_CLI)")
    if "docker-registry" in text or "deploy" in text and "--base-image" in text:
        need(shutil.which("htpasswd") is not None, "htpasswd (apt-get install apache2-utils)")
        need(Path(REGISTRY_BINARY).is_file() or shutil.which("docker-registry") is not None, "docker-registry")
        from rcyc_cli import image as docker_ops
        from rcyc_core.errors import RcycError

        try:
            engine = docker_ops.engine()
        except RcycError:
            need(False, "a Docker engine (DOCKER_HOST)")
        need(docker_ops.has_image(engine, TEST_BASE_IMAGE), f"the local base image {TEST_BASE_IMAGE}")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind in ("sh", "python", "json")], ids=lambda b: b.name)
def test_doc_block(block, sessions):
    if block.kind == "json":
        json.loads(block.code)
        return
    if block.not_run_reason:
        assert len(block.not_run_reason) > 10, f"{block.name}: say why it is not run"
        pytest.skip(f"not run by the docs tests: {block.not_run_reason}")
    session = sessions(str(block.doc.relative_to(ROOT)))
    if session.failed:
        pytest.fail(f"an earlier block of {session.doc} failed ({session.failed}); this one depends on its session")
    _needs(block)
    result = session.run(block)
    if result.returncode != 0:
        session.failed = block.name
    assert result.returncode == 0, (f"{block.name} exited {result.returncode}\n--- block\n{block.code}"
                                    f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}")


def test_not_run_blocks_are_few_and_say_why():
    not_run = [(b.name, b.not_run_reason) for b in BLOCKS if b.kind in ("sh", "python") and b.not_run_reason]
    print("\n".join(f"{name}: {why}" for name, why in not_run))
    assert len(not_run) <= 1, not_run  # the quick start: make test is this suite
