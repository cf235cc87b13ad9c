"""The function image on a real Docker engine: build on a local base (no registry), run it under the
emulator with host networking, compare with the process runtime."""

import json
import os
import shutil

import pytest

from rcyc_cli import image as docker_ops
from rcyc_core.errors import RcycError
from rcyc_cli.exit_status import ExitStatus, for_error
from tests.conftest import CA_BUNDLE, FIXTURES, IMAGES, MODELS, TEST_BASE_IMAGE, build_args, class_images, need
from tests.cli import run

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def slim_image(engine):
    result = run("build", "--json", "--tag", "rcyc-function:test-slim", *build_args())
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_build_reports_id_tags_and_size_then_hits_the_cache(slim_image):
    assert slim_image["image_id"].startswith("sha256:")
    assert "rcyc-function:test-slim" in slim_image["tags"]
    assert slim_image["size"] > slim_image["own_layers_size"] > 0
    again = run("build", "--json", "--tag", "rcyc-function:test-slim", *build_args())
    assert again.exit_code == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["cache_hit"] is True and second["image_id"] == slim_image["image_id"]


def test_no_build_secret_or_credential_is_in_the_image(engine, slim_image, monkeypatch):
    image = engine.images.get(slim_image["image_id"])
    env = image.attrs["Config"].get("Env") or []
    assert not [e for e in env if e.startswith(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PIP_CERT"))]
    history = " ".join(layer.get("CreatedBy", "") for layer in image.history())
    assert "AKIA" not in history and "SECRET_ACCESS_KEY" not in history
    # The CA bundle handed to the build stays in the build stage.
    output = engine.containers.run(slim_image["image_id"], entrypoint=["/bin/sh", "-c", "ls -a /tmp; ls /var/task"],
                                   network_mode="host", remove=True).decode()
    assert "rcyc-build" not in output and "ca-bundle" not in output and "app.py" in output


def test_container_answers_like_the_process_runtime(slim_image, rie_path):
    before = {c.id for c in engine_containers()}
    images = [p for _, p in class_images()]
    common = ["--json", "--rie", rie_path, "--model", MODELS["one-vs-rest"], *images]
    docker = run("invoke-local", "--runtime", "docker", *build_args(), *common)
    assert docker.exit_code == 0, docker.stderr
    process = run("invoke-local", "--runtime", "process", *common)
    in_container, in_process = json.loads(docker.stdout), json.loads(process.stdout)
    assert in_container["invocation"]["runtime"] == "docker"
    assert in_container["invocation"]["report"]["cold"] is True
    for a, b, (label, _) in zip(in_container["results"], in_process["results"], class_images()):
        assert a["key"] == b["key"] and a["label"] == b["label"] == label
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) <= 1e-4
    assert {c.id for c in engine_containers()} <= before, "the container was not removed"


def test_user_event_through_the_container(slim_image, rie_path):
    result = run("invoke-local", "--runtime", "docker", *build_args(), "--json", "--rie", rie_path,
                 "--event", FIXTURES / "events" / "seed.json", IMAGES / "soda_cans" / "soda_cans_0.jpg")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["label"] == "soda_cans"


def copy_context(tmp_path):
    root = tmp_path / "project"
    for path, name in docker_ops.context_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / name)
    return root


def test_a_code_change_rebuilds_only_the_code_layer(engine, slim_image, tmp_path):
    root = copy_context(tmp_path)
    labels = root / "lambda" / "rcyc_core" / "labels.py"
    labels.write_text(labels.read_text() + f"\n# {tmp_path.name}\n")  # a change no earlier build has seen
    result = docker_ops.build(engine, "rcyc-function:test-code-change", base_image=TEST_BASE_IMAGE,
                              ca_bundle=CA_BUNDLE if os.path.isfile(CA_BUNDLE) else None, root=root)
    try:
        assert not result.cache_hit
        # every package layer reused; only the code copied and compiled to bytecode (kept in the image)
        assert result.cached_steps == result.work_steps - 2
    finally:
        engine.images.remove("rcyc-function:test-code-change")


def test_broken_step_surfaces_its_log(engine, tmp_path):
    root = copy_context(tmp_path)
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN echo rcyc-broken-step-marker && exit 3\n")
    with pytest.raises(docker_ops.BuildError) as caught:
        docker_ops.build(engine, "rcyc-function:test-broken", base_image=TEST_BASE_IMAGE,
                         ca_bundle=CA_BUNDLE if os.path.isfile(CA_BUNDLE) else None, root=root)
    assert "rcyc-broken-step-marker" in "\n".join(caught.value.logs)
    assert "exit 3" in caught.value.message or "returned a non-zero code: 3" in caught.value.message


def test_no_engine_is_a_documented_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for args in (["build"], ["invoke-local", "--runtime", "docker"]):
        result = run(*args)
        assert result.exit_code == ExitStatus.MISSING_PREREQ, result.stderr
        assert "no Docker engine answers" in result.stderr and "hint:" in result.stderr


def engine_containers():
    return docker_ops.engine().containers.list(all=True, filters={"label": "rcyc.sandbox"})


def test_auto_runtime_says_which_it_chose(engine, rie_path):
    image = IMAGES / "boxes" / "boxes_0.jpg"
    # The engine answers but lacks the base image: auto does not start a pull, it runs the process runtime.
    result = run("invoke-local", "--runtime", "auto", "--base-image", "rcyc/no-such-base:1", "--rie", rie_path, image)
    assert result.exit_code == 0, result.stderr
    assert "runtime: process (the engine does not have rcyc/no-such-base:1" in result.stderr
    result = run("invoke-local", "--runtime", "auto", *build_args(), "--json", "--rie", rie_path, image)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["invocation"]["runtime"] == "docker"


PRIVATE_ENGINE = "unix:///var/run/rcyc-docker.sock"
SCRIPTS = FIXTURES.parent / ".ci"


def engine_script(name: str) -> None:
    import subprocess

    subprocess.run(["bash", str(SCRIPTS / name)], check=True, capture_output=True, timeout=300)


@pytest.mark.slow  # waits on the engine (seconds per container)
def test_zz_the_engine_stopping_mid_invoke_and_mid_build_is_a_clear_error(engine, slim_image, rie_path):
    """Runs last in this module: it stops the private engine of .ci/docker-up.sh and starts it again."""
    import subprocess
    import threading

    from rcyc_cli.local.emulator.container import ContainerSandbox
    from rcyc_core.errors import PrerequisiteError

    need(os.environ.get("DOCKER_HOST") == PRIVATE_ENGINE and os.geteuid() == 0, "the private engine of .ci/docker-up.sh")
    try:
        # During an invocation's life: a running function container whose engine goes away.
        sandbox = ContainerSandbox(engine, slim_image["image_id"], rie_path, env={}, timeout=30).start()
        engine_script("docker-down.sh")
        with pytest.raises(PrerequisiteError) as caught:
            sandbox.invoke({"Records": []})
        assert "Docker engine stopped answering during the invocation" in caught.value.message
        sandbox.stop()  # must not raise with the engine gone
        leftovers = subprocess.run(["pgrep", "-f", ContainerSandbox.RIE_IN_CONTAINER], capture_output=True, text=True).stdout
        assert leftovers.strip() == "", "a function container outlived its engine"

        # During a build: stop the engine while pip runs in the RUN step.
        engine_script("docker-up.sh")
        client = docker_ops.engine()
        in_run_step = threading.Event()
        failure = []

        def build():
            try:
                docker_ops.build(client, "rcyc-function:test-interrupted", base_image=TEST_BASE_IMAGE, no_cache=True,
                                 ca_bundle=CA_BUNDLE if os.path.isfile(CA_BUNDLE) else None,
                                 on_step=lambda step, total, text: text.startswith("RUN") and in_run_step.set())
            except RcycError as exc:
                failure.append(exc)

        worker = threading.Thread(target=build)
        worker.start()
        assert in_run_step.wait(120)
        engine_script("docker-down.sh")
        worker.join(120)
        assert not worker.is_alive()
        [error] = failure
        assert for_error(error) in (3, 4) and ("stopped answering" in error.message or "build failed" in error.message)
    finally:
        engine_script("docker-up.sh")
    assert docker_ops.engine().ping()


@pytest.mark.slow  # waits on the engine to restart a container
def test_a_crashed_container_in_a_pool_is_replaced_like_a_process(engine, slim_image, rie_path):
    """Pool._alive asks the sandbox (a container has no process attribute): a container killed between
    requests is replaced, the request answered by the replacement; after stop none of its containers is left."""
    from pathlib import Path

    from rcyc_cli.cloud import aws as cloud_aws
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION, POINTER_KEY
    from rcyc_cli.function_spec import FunctionSpec
    from rcyc_cli.local.emulator.launcher import FunctionLauncher
    from rcyc_cli.local.emulator.s3 import EmbeddedS3
    from rcyc_core import events
    from rcyc_core.manifest import Manifest

    server = EmbeddedS3().start()
    pool = None
    try:
        s3 = cloud_aws.s3_client(server.endpoint_url, LOCAL_REGION, LOCAL_CREDENTIALS)
        ca = Path(CA_BUNDLE) if os.path.isfile(CA_BUNDLE) else None
        launcher = FunctionLauncher(FunctionSpec(runtime="docker", base_image=TEST_BASE_IMAGE, ca_bundle=ca, rie=str(rie_path),
                                                 timeout=60))
        server.seed_model("recycle-able-image", Manifest.load(MODELS["one-vs-rest"]), MODELS["one-vs-rest"], POINTER_KEY)
        pool = launcher.start(server.endpoint_url, "recycle-able-image", 1)
        s3.put_object(Bucket="recycle-able-image", Key="images/box.jpg", Body=(IMAGES / "boxes" / "boxes_0.jpg").read_bytes())
        [instance] = pool.instances
        first = instance.sandbox
        first.container.kill()  # the container dies between requests
        answer, same = pool.invoke(events.make_event("recycle-able-image", ["images/box.jpg"]))
        assert answer.response["results"][0]["label"] == "boxes"
        assert same is instance and instance.restarts == 1 and instance.sandbox is not first
    finally:
        if pool:
            pool.stop()
        server.stop()
    left = engine.containers.list(all=True, filters={"label": f"rcyc.owner={launcher.owner}"})
    assert left == []


@pytest.mark.slow  # waits on the engine (seconds per container)
def test_kill_9_of_a_docker_stack_then_down_removes_its_containers(engine, slim_image, rie_path, tmp_path, monkeypatch):
    """A docker stack killed with -9 leaves running containers; the stale state names their owner label, and
    `local down` removes them."""
    import signal

    from rcyc_cli.function_spec import FunctionSpec
    from rcyc_cli.local.stack import client as stack

    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "cache"))
    config = stack.StackConfig(instances=1, function=FunctionSpec(runtime="docker", rie=str(rie_path), base_image=TEST_BASE_IMAGE,
                                                                  ca_bundle=CA_BUNDLE if os.path.isfile(CA_BUNDLE) else None))
    running = stack.up(config)
    owner = running.state["owner"]
    try:
        assert len(engine.containers.list(filters={"label": f"rcyc.owner={owner}"})) == 1
        os.kill(running.state["pid"], signal.SIGKILL)
        os.waitpid(running.state["pid"], 0)
        assert len(engine.containers.list(filters={"label": f"rcyc.owner={owner}"})) == 1  # what a killed stack leaves
        assert stack.down() is False  # no stack runs any more; its leftovers are removed all the same
        assert engine.containers.list(all=True, filters={"label": f"rcyc.owner={owner}"}) == []
    finally:
        stack.down()
        for container in engine.containers.list(all=True, filters={"label": f"rcyc.owner={owner}"}):
            container.remove(force=True)


@pytest.mark.slow  # waits on the engine (seconds per container)
def test_containers_of_an_invoke_local_killed_with_9_are_swept_by_the_next_run(engine, slim_image, rie_path, tmp_path, monkeypatch):
    import subprocess
    import sys
    import time

    from rcyc_cli.local.emulator import reaper

    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "cache"))
    tag = reaper.cache_tag()

    def ours():
        return [c for c in engine.containers.list(all=True, filters={"label": "rcyc.owner"})
                if c.labels.get("rcyc.owner", "").startswith(tag)]

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        shutil.copy(class_images()[i % len(class_images())][1], folder / f"img_{i:03d}.jpg")
    env = {**os.environ, "RCYC_CACHE_HOME": str(tmp_path / "cache"), "RCYC_RIE": str(rie_path)}
    command = [sys.executable, "-m", "rcyc_cli.main", "invoke-local", "--json", "--runtime", "docker", *build_args()]
    process = subprocess.Popen([*command, "-c", "2", "--batch-size", "1", str(folder)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(ours()) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(ours()) == 2 and process.poll() is None
        process.kill()  # SIGKILL: nothing in rcyc can catch it
        process.wait()
        assert len(ours()) == 2  # what it leaves
        again = subprocess.run([*command, str(IMAGES / "boxes" / "boxes_0.jpg")], env=env, capture_output=True, text=True,
                               timeout=300)
        assert again.returncode == 0, again.stderr
        assert ours() == []  # swept at its start (and its own removed at its end)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for container in ours():
            container.remove(force=True)
