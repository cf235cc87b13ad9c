"""The warm local stack (rcyc local up/status/down) and spreading images over several instances, through
the real emulator processes."""

import json
import shutil
import time

import pytest

from rcyc_cli.function_spec import FunctionSpec
from rcyc_cli.local.stack import client as stack
from tests.conftest import class_images
from tests.cli import run

pytestmark = pytest.mark.e2e



@pytest.fixture
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("RCYC_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RCYC_RUNTIME", "process")
    yield
    stack.down()


def fifty_images(tmp_path):
    folder = tmp_path / "fifty"
    folder.mkdir()
    expected = {}
    for i in range(50):
        label, path = class_images()[i % len(class_images())]
        target = folder / f"img_{i:02d}.jpg"
        shutil.copy(path, target)
        expected[f"images/{target.name}"] = label
    return folder, expected


def test_up_then_invokes_are_warm_then_down_stops_everything(private_state, rie_path):
    up = run("local", "up", "--json", "--instances", "2", "--rie", rie_path)
    assert up.exit_code == 0, up.stderr
    status = json.loads(up.stdout)
    assert len(status["instances"]) == 2 and all(i["cold_start_ms"] > 0 for i in status["instances"])
    pids = [status["pid"]]

    image = class_images()[0][1]
    for _ in range(2):
        result = run("invoke-local", "--json", image)
        assert result.exit_code == 0, result.stderr
        output = json.loads(result.stdout)
        assert output["invocation"]["runtime"] == "process (warm stack)"
        assert output["invocation"]["report"]["cold"] is False and output["invocation"]["report"]["init_ms"] is None
        assert output["results"][0]["label"] == class_images()[0][0]

    status = json.loads(run("local", "status", "--json").stdout)
    assert sum(i["invocations"] for i in status["instances"]) == 2
    assert all(i["model"]["name"] == "fixture-psu" for i in status["instances"])

    down = run("local", "down", "--json")
    assert json.loads(down.stdout) == {"stopped": True}
    assert not any(stack.running(pid) for pid in pids)
    assert not stack.state_file().exists()
    assert run("local", "status").exit_code == 4


def test_stale_state_is_detected_and_removed(private_state, rie_path):
    """A real stack killed with -9: its state is stale, its instances are orphans. status stops them all."""
    import os
    import signal

    from rcyc_cli.local.emulator import reaper

    running = stack.up(stack.StackConfig(instances=1, function=FunctionSpec(rie=str(rie_path))))
    pid = running.state.pid
    assert reaper.owned_pids(running.state.owner)  # its emulator and runtime
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # our child: reaped, so it is gone, not a zombie
    result = run("local", "status")
    assert result.exit_code == 4 and not stack.state_file().exists()
    time.sleep(0.5)  # the runtimes' owner watch (every 0.25 s), if the sweep did not get them first
    assert reaper.owned_pids(reaper.cache_tag()) == []
    # invoke-local does not trust it either: it runs its own instance.
    result = run("invoke-local", "--json", "--rie", rie_path, class_images()[0][1])
    assert result.exit_code == 0 and json.loads(result.stdout)["invocation"]["runtime"] == "process"


def test_concurrency_two_over_fifty_images_loses_none(private_state, rie_path, tmp_path):
    folder, expected = fifty_images(tmp_path)
    result = run("invoke-local", "--json", "--rie", rie_path, "--concurrency", "2", "--batch-size", "8", folder)
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    assert len(output["results"]) == 50 and output["errors"] == []
    assert {r["key"]: r["label"] for r in output["results"]} == expected
    assert sorted(r["record"] for r in output["results"]) == list(range(50))
    assert output["invocation"]["invocations"] == 8  # ceil(50 / 8) = 7, made whole rounds over 2 instances


def test_one_failing_event_costs_only_its_own_records():
    from rcyc_cli.invocation import Invocation, Report
    from rcyc_cli.local.emulator.pool import run_keys
    from rcyc_core.errors import FunctionError

    def invoke(event):
        keys = [r["s3"]["object"]["key"] for r in event["Records"]]
        if "k2" in keys:
            raise FunctionError("the function timed out", kind="Timeout")
        results = [{"record": i, "bucket": "b", "key": k, "label": "boxes"} for i, k in enumerate(keys)]
        return Invocation({"results": results, "errors": [], "skipped": [], "model": None}, Report(), 1.0)

    run = run_keys(invoke, "b", [f"k{i}" for i in range(6)], batch_size=2, concurrency=2)
    assert [r["key"] for r in run.response["results"]] == ["k0", "k1", "k4", "k5"]
    assert [(e["record"], e["key"], e["error"]) for e in run.response["errors"]] == [(2, "k2", "Timeout"), (3, "k3", "Timeout")]
