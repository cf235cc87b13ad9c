"""classify --local through rcyc's own client of the stack's Invoke API, against a real stack: an event that
fails past its tries costs only its own records; Ctrl-C mid-run exits 130 and leaves nothing of the run
behind; a stack killed mid-run ends the run with one error (StackStopped, exit 4), not one per event left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli import run as run_cli
from tests.conftest import stops_as_in_a_terminal
from tests.e2e.cloud_fixtures import private_stack, set_faults
from tests.e2e.test_classify import BUCKET, put_images, results

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack(rie_path, tmp_path_factory):
    with private_stack(tmp_path_factory.mktemp("classify-client-cache"), rie_path, BUCKET) as (running, s3):
        yield running, s3


def classify_process(prefix: str, results_prefix: str) -> subprocess.Popen:
    """classify --local in a process (and session) of its own, one key an event, one event at a time."""
    command = [sys.executable, "-m", "rcyc_cli.main", "classify", f"s3://{BUCKET}/{prefix}", "--local", "--json",
               "--concurrency", "1", "--batch-size", "1", "--results-prefix", results_prefix]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=os.environ.copy(), preexec_fn=stops_as_in_a_terminal)


def wait_for_results(s3, process: subprocess.Popen, results_prefix: str, count: int) -> None:
    deadline = time.monotonic() + 120  # a bound on the wait, not a figure the test asserts
    while len(results(s3, results_prefix)) < count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err.decode("utf-8", "replace")


def session_is_empty(sid: int) -> bool:
    """Whether no process is left in the session the run was started in."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                return False
    return True


@pytest.mark.slow  # three tries with their back-off
def test_an_event_failing_past_its_tries_costs_only_its_own_records(local_stack):
    running, s3 = local_stack
    truth = put_images(s3, ["fails-once/"], copies=1)
    status, switch = set_faults(running, {"next": 3, "status": 502})
    assert status == 200 and switch["next"] == 3
    result = run_cli("classify", f"s3://{BUCKET}/fails-once/", "--local", "--json", "--batch-size", "4",
                     "--concurrency", "1", "--results-prefix", "fails-once-results/")
    summary = json.loads(result.stdout)
    assert result.exit_code == 7 and summary["errors"] == {"502": 4}  # the first event's 4 records, 3 tries
    assert summary["classified"] == len(truth) - 4 and len(results(s3, "fails-once-results/")) == len(truth) - 4


@pytest.mark.slow  # a signal mid-run
def test_ctrl_c_mid_run_exits_130_and_leaves_nothing_running(local_stack):
    running, s3 = local_stack
    put_images(s3, ["interrupted/"], copies=3)
    process = classify_process("interrupted/", "interrupted-results/")
    wait_for_results(s3, process, "interrupted-results/", 3)
    process.send_signal(signal.SIGINT)
    code, err = finish(process)
    assert code == 130, err[-2000:]
    assert "Traceback" not in err and session_is_empty(process.pid)
    assert running.status()["instances"]  # the stack (not the run's) still answers


@pytest.mark.slow  # a stack started and killed
def test_a_stack_killed_mid_run_ends_the_run_with_one_error(rie_path, tmp_path):
    # The stack's S3 lives in the stack and dies with it: that finished results are kept is the unit test's
    # (test_stack_invoke_client_hostile); here, that the run ends at once as one error with a documented status.
    with private_stack(tmp_path / "cache", rie_path, BUCKET) as (running, s3):
        put_images(s3, ["dies/"], copies=2)
        process = classify_process("dies/", "dies-results/")
        wait_for_results(s3, process, "dies-results/", 3)
        os.killpg(running.state.pid, signal.SIGKILL)  # the stack and everything it started: a crash
        code, err = finish(process)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    # 4: the invoke found the stack gone (StackStopped); 5: a result's write through the stack failed first
    assert code in (4, 5) and len(lines) == 1 and "stack" in lines[0], err[-2000:]
    assert "Traceback" not in err and session_is_empty(process.pid)
