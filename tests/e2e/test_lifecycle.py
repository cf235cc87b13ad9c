"""Issue 10 through the real processes: `rcyc` run as a subprocess, real signals (SIGINT, SIGTERM, SIGHUP,
SIGKILL), a real warm stack, and /proc to count what is left. Every process a test starts it stops by its
own handle, also when the test fails; whatever the rcyc processes started is found by its owner token
(``reaper``), which starts with this test's own cache tag, so tests running beside it are never counted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rcyc_cli.local.emulator import reaper
from rcyc_cli.local.stack import client as stack_module
from tests.conftest import IMAGES, MODELS, class_images, need, stops_as_in_a_terminal

pytestmark = pytest.mark.e2e
CONSOLE_SCRIPT = Path(sys.executable).with_name("rcyc")  # pip install -e . puts it beside the interpreter


class Rcyc:
    """``rcyc`` as a real subprocess (its own session: a signal reaches it alone, as kill(1) would)."""

    def __init__(self, env: dict[str, str], tmp: Path):
        self.env, self.tmp = env, tmp
        self.started: list[subprocess.Popen] = []

    def start(self, *args, console_script: bool = False) -> subprocess.Popen:
        """``python -m rcyc_cli.main ARGS``, or with ``console_script`` the installed ``rcyc`` command a user types
        (its own entry: the CLI loads under a Ctrl-C guard first)."""
        command = [str(CONSOLE_SCRIPT)] if console_script else [sys.executable, "-m", "rcyc_cli.main"]
        process = subprocess.Popen([*command, *map(str, args)], env=self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                   preexec_fn=stops_as_in_a_terminal)
        self.started.append(process)
        return process

    def run(self, *args, timeout: float = 300) -> subprocess.CompletedProcess:
        process = self.start(*args)
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture
def rcyc(tmp_path, rie_path):
    """A private cache (so a private stack), the process runtime, a private TMPDIR (sandbox folders)."""
    cache = tmp_path / "cache"
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "RCYC_CACHE_HOME": str(cache), "RCYC_RUNTIME": "process", "RCYC_RIE": str(rie_path),
           "TMPDIR": str(temp), "NO_COLOR": "1"}
    tool = Rcyc(env, tmp_path)
    saved = os.environ.get("RCYC_CACHE_HOME")
    os.environ["RCYC_CACHE_HOME"] = str(cache)  # reaper/stack in this process look at the same cache
    tag = reaper.cache_tag()
    try:
        yield tool
    finally:
        tool.stop_all()
        if stack_module.read_state():
            tool.run("local", "down", timeout=120)
        left = reaper.owned_pids(tag)
        reaper.stop_owned(tag)  # never leave anything behind, even when the test failed
        if saved is None:
            os.environ.pop("RCYC_CACHE_HOME", None)
        else:
            os.environ["RCYC_CACHE_HOME"] = saved
        assert not left, f"rcyc processes left running: {left}"


def ours() -> list[int]:
    """Emulators and runtimes started under this test's cache, alive now (from /proc)."""
    return reaper.owned_pids(reaper.cache_tag())


def wait_for(condition, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def wait_gone(timeout: float = 15) -> None:
    wait_for(lambda: not ours(), timeout, f"no emulator/runtime left (still: {ours()})")


def image_folder(tmp_path: Path, count: int, name: str = "many") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for i in range(count):
        shutil.copy(class_images()[i % len(class_images())][1], folder / f"img_{i:03d}.jpg")
    return folder


def emulators_and_runtimes(pids: list[int]) -> tuple[int, int]:
    cmdlines = []
    for pid in pids:
        try:
            cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            pass
    # (the stack process carries the owner token too, and its command line names the emulator's path)
    cmdlines = [c for c in cmdlines if b"rcyc_cli.local.stack.server" not in c]
    return sum(b"aws-lambda-rie" in c for c in cmdlines), sum(b"awslambdaric" in c and b"aws-lambda-rie" not in c for c in cmdlines)


# --- every way of stopping invoke-local -----------------------------------------------------------------------

@pytest.mark.parametrize("signum, console_script", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGHUP, False),
                                                    (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGINT-to-the-rcyc-command"])
@pytest.mark.slow  # real signals and stacks: seconds each
def test_a_signal_to_invoke_local_with_four_instances_stops_everything(rcyc, tmp_path, signum, console_script):
    if console_script:
        need(CONSOLE_SCRIPT.exists(), f"the rcyc console script ({CONSOLE_SCRIPT.name} beside {sys.executable}: pip install -e .)")
    folder = image_folder(tmp_path, 400)
    process = rcyc.start("invoke-local", "--json", "-c", "4", "--batch-size", "1", folder, console_script=console_script)
    # Signal it mid-run: once its four emulators and their four runtimes are up.
    wait_for(lambda: emulators_and_runtimes(ours()) == (4, 4) or process.poll() is not None, 120, "four instances")
    assert process.poll() is None, process.communicate()
    os.kill(process.pid, signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert "Traceback" not in err and "everything rcyc started has been stopped" in err
    assert "started nothing yet" not in err  # the console script's guard while loading is long gone
    assert out == ""  # --json prints nothing when there is no answer
    assert ours() == []  # checked at once: stopped before rcyc exited, not later
    assert not list((tmp_path / "tmp").glob("*sandbox-*"))  # sandbox folders removed too
    from rcyc_cli import leftovers

    assert not list(leftovers.temp_root().glob("sandbox-*"))


# --- the warm stack: kill -9, down under load, two ups, conflicts --------------------------------------------

@pytest.mark.slow  # real signals and stacks: seconds each
def test_kill_9_of_the_stack_then_status_stops_what_it_left(rcyc):
    up = rcyc.run("local", "up", "-n", "2", "--json")
    assert up.returncode == 0, up.stderr
    pid = json.loads(up.stdout)["pid"]
    assert emulators_and_runtimes(ours()) == (2, 2)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not stack_module.running(pid), 10, "the stack to die")
    status = rcyc.run("local", "status")
    assert status.returncode == 4 and "error: no local stack" in status.stderr and "hint:" in status.stderr
    assert not stack_module.state_file().exists()
    wait_gone(5)  # the runtimes saw their owner die and took their emulators down; status swept the rest


def test_kill_9_of_the_stack_then_down_stops_what_it_left(rcyc):
    up = rcyc.run("local", "up", "-n", "2", "--json")
    assert up.returncode == 0, up.stderr
    os.kill(json.loads(up.stdout)["pid"], signal.SIGKILL)
    down = rcyc.run("local", "down", "--json")
    assert down.returncode == 0 and json.loads(down.stdout) == {"stopped": False}
    assert ours() == [] and not stack_module.state_file().exists()


@pytest.mark.slow  # real signals and stacks: seconds each
def test_stale_cleanup_stops_orphans_even_without_their_watcher(rcyc):
    """The owner token is the second line of defence: orphans whose runtime cannot watch (SIGSTOPped here,
    as a hung runtime would be) are still found through the stale state and stopped."""
    up = rcyc.run("local", "up", "-n", "1", "--json")
    assert up.returncode == 0, up.stderr
    stack_pid = json.loads(up.stdout)["pid"]
    pids = [pid for pid in ours() if pid != stack_pid]  # (the stack carries the owner token too)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # neither the emulator nor the runtime's watcher can act now
    os.kill(stack_pid, signal.SIGKILL)
    time.sleep(1.0)
    assert sorted(ours()) == sorted(pids)  # orphans: what a killed stack leaves
    status = rcyc.run("local", "status")
    assert status.returncode == 4 and not stack_module.state_file().exists()
    assert ours() == []


@pytest.mark.slow  # real signals and stacks: seconds each
def test_kill_9_of_invoke_local_leaves_no_emulator_running(rcyc, tmp_path):
    folder = image_folder(tmp_path, 400)
    process = rcyc.start("invoke-local", "--json", "-c", "2", "--batch-size", "1", folder)
    wait_for(lambda: emulators_and_runtimes(ours()) == (2, 2) or process.poll() is not None, 120, "two instances")
    assert process.poll() is None, process.communicate()
    os.kill(process.pid, signal.SIGKILL)  # nothing in rcyc can catch this
    process.communicate(timeout=30)
    wait_gone(5)  # each runtime saw its owner die and took its emulator down


@pytest.mark.slow  # real signals and stacks: seconds each
def test_local_down_under_load_stops_everything_and_nothing_restarts(rcyc, tmp_path):
    up = rcyc.run("local", "up", "-n", "2", "--json")
    assert up.returncode == 0, up.stderr
    folder = image_folder(tmp_path, 300)
    loads = [rcyc.start("invoke-local", "--json", "-c", "2", "--batch-size", "1", folder) for _ in range(2)]
    def loaded():
        if any(load.poll() is not None for load in loads):
            return True
        running = stack_module.find()
        return running is not None and sum(i["invocations"] for i in running.status()["instances"]) >= 4

    wait_for(loaded, 120, "load on the stack")
    for load in loads:
        if load.poll() is not None:
            raise AssertionError(f"a load ended before down (exit {load.returncode}): {load.communicate()[1][-3000:]}")
    started = time.monotonic()
    down = rcyc.run("local", "down", "--json", timeout=120)
    seconds = time.monotonic() - started
    assert down.returncode == 0 and json.loads(down.stdout) == {"stopped": True}, down.stderr
    assert ours() == [], "emulators left right after down"
    for load in loads:
        out, err = load.communicate(timeout=120)
        assert "Traceback" not in err
    time.sleep(1.0)
    assert ours() == [], "an instance was restarted after down"
    print(f"\nlocal down under load: {seconds:.1f} s")  # a figure, not an assert: load stretches it


@pytest.mark.slow  # real signals and stacks: seconds each
def test_two_local_up_at_once_give_one_stack(rcyc):
    ups = [rcyc.start("local", "up", "-n", "1", "--json") for _ in range(2)]
    outputs = [up.communicate(timeout=300) for up in ups]
    assert [up.returncode for up in ups] == [0, 0], [err for _, err in outputs]
    pids = {json.loads(out)["pid"] for out, _ in outputs}
    assert len(pids) == 1
    assert json.loads(stack_module.state_file().read_text())["pid"] in pids  # one valid state file
    assert emulators_and_runtimes(ours()) == (1, 1)
    assert not list(stack_module.state_dir().glob("*.part"))
    down = rcyc.run("local", "down", "--json")
    assert json.loads(down.stdout) == {"stopped": True}
    assert ours() == []


@pytest.mark.slow  # real signals and stacks: seconds each
def test_local_up_over_a_different_stack_is_refused_not_returned(rcyc):
    assert rcyc.run("local", "up", "-n", "1").returncode == 0
    again = rcyc.run("local", "up", "-n", "3")
    assert again.returncode == 3 and "error: a local stack already runs with instances 1" in again.stderr
    assert "hint:" in again.stderr and "Traceback" not in again.stderr
    assert rcyc.run("local", "up", "-n", "1").returncode == 0  # the same settings: the running stack, as before


@pytest.mark.slow  # real signals and stacks: seconds each
def test_a_stack_started_with_a_model_keeps_it(rcyc):
    assert rcyc.run("local", "up", "-n", "1", "--model", MODELS["softmax"]).returncode == 0
    plain = rcyc.run("invoke-local", "--json", IMAGES / "boxes" / "boxes_0.jpg")
    assert plain.returncode == 0, plain.stderr
    output = json.loads(plain.stdout)
    assert output["invocation"]["runtime"] == "process (warm stack)"
    assert output["invocation"]["model"]["name"] == "fixture-softmax" and output["results"][0]["label"] == "boxes"
    status = json.loads(rcyc.run("local", "status", "--json").stdout)
    assert [i["model"]["name"] for i in status["instances"]] == ["fixture-softmax"]
    # --event on the warm stack: the records naming images/<name> are pointed at this run's own copies.
    from tests.conftest import FIXTURES

    seed = rcyc.run("invoke-local", "--json", "--event", FIXTURES / "events" / "seed.json", IMAGES / "soda_cans" / "soda_cans_0.jpg")
    assert seed.returncode == 0, seed.stderr
    [result] = json.loads(seed.stdout)["results"]
    assert result["label"] == "soda_cans" and result["key"].startswith("runs/") and result["key"].endswith("/images/soda_cans_0.jpg")


@pytest.mark.slow  # real signals and stacks: seconds each
def test_the_stack_is_not_reused_when_its_emulator_differs(rcyc, tmp_path, rie_path):
    assert rcyc.run("local", "up", "-n", "1").returncode == 0
    other = tmp_path / "other-rie"
    shutil.copy(rie_path, other)
    result = rcyc.run("invoke-local", "--json", "--rie", other, IMAGES / "boxes" / "boxes_0.jpg")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["invocation"]["runtime"] == "process"


# --- isolation: 24 concurrent runs on one warm stack ---------------------------------------------------------

@pytest.mark.slow  # tens of seconds of load
def test_24_concurrent_runs_on_one_warm_stack_each_get_their_own_answer(rcyc, tmp_path):
    up = rcyc.run("local", "up", "-n", "2", "--json")
    assert up.returncode == 0, up.stderr
    stack_model = json.loads(up.stdout)["instances"][0]["model"]["name"]
    runs = []
    for i in range(24):
        label, source = class_images()[(i * 3) % len(class_images())]
        folder = tmp_path / f"run{i:02d}"
        folder.mkdir()
        shutil.copy(source, folder / "photo.jpg")  # the same file name in every run, a different image
        model = MODELS["softmax"] if i % 2 else None
        runs.append((folder / "photo.jpg", label, model))

    def one(case):
        image, label, model = case
        args = ["invoke-local", "--json", image] + (["--model", model] if model else [])
        return rcyc.run(*args, timeout=400)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(one, runs))
    for (image, label, model), answer in zip(runs, answers):
        assert answer.returncode == 0, answer.stderr
        output = json.loads(answer.stdout)
        [result] = output["results"]
        assert result["label"] == label, (image, result)
        assert result["key"].endswith("/photo.jpg")
        expected_model = "fixture-softmax" if model else stack_model
        assert output["invocation"]["model"]["name"] == expected_model
        assert output["model"]["name"] == expected_model  # the model that actually answered
        warm = output["invocation"]["runtime"].endswith("(warm stack)")
        assert warm == (model is None), output["invocation"]["runtime"]
    # Every run removed its own objects from the stack's bucket.
    from rcyc_cli.cloud import aws
    from rcyc_cli.defaults import LOCAL_CREDENTIALS, LOCAL_REGION

    state = stack_module.read_state()
    s3 = aws.s3_client(state["s3_endpoint"], LOCAL_REGION, LOCAL_CREDENTIALS)
    assert s3.list_objects_v2(Bucket=state["bucket"], Prefix="runs/").get("KeyCount") == 0
    assert stack_module.find().status()["instances"][0]["model"]["name"] == stack_model


# --- bounded memory --------------------------------------------------------------------------------------------

def big_event(count: int) -> dict:
    from rcyc_core import events

    return events.make_event("recycle-able-image", ["images/boxes_0.jpg"] * count)


def peak_of(rcyc, tmp_path, count: int, memory: int) -> tuple[dict, str]:
    event = tmp_path / f"event-{count}.json"
    event.write_text(json.dumps(big_event(count)))
    result = rcyc.run("invoke-local", "--json", "--no-stack", "--memory", memory, "--timeout", 900, "--event", event,
                      IMAGES / "boxes" / "boxes_0.jpg", timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout), result.stderr


@pytest.mark.slow  # tens of seconds of load
def test_memory_stays_flat_with_the_record_count_and_the_real_peak_is_reported(rcyc, tmp_path):
    small, _ = peak_of(rcyc, tmp_path, 50, 1024)
    large, stderr = peak_of(rcyc, tmp_path, 800, 128)
    assert len(large["results"]) == 800 and {r["label"] for r in large["results"]} == {"boxes"}
    report = large["invocation"]["report"]
    assert report["memory_mb"] == 128 and report["memory_enforced"] is False
    growth = report["peak_mb"] - small["invocation"]["report"]["peak_mb"]
    print(f"\npeak: {small['invocation']['report']['peak_mb']} MB at 50 records, {report['peak_mb']} MB at 800")
    assert growth < 60, growth  # bounded chunks: 16x the records, (almost) the same memory
    if report["peak_mb"] > 128:
        assert "warning: the function peaked at" in stderr and "cannot enforce" in stderr


@pytest.mark.slow
def test_ten_thousand_records_succeed_within_1024_mb(rcyc, tmp_path):
    output, _ = peak_of(rcyc, tmp_path, 10_000, 1024)
    assert len(output["results"]) == 10_000 and output["errors"] == []
    assert sorted(r["record"] for r in output["results"]) == list(range(10_000))
    report = output["invocation"]["report"]
    print(f"\n10,000 records: peak {report['peak_mb']} MB, duration {report['duration_ms'] / 1000:.1f} s")
    assert report["peak_mb"] < 1024


def test_an_emulator_whose_owner_was_killed_before_its_first_request_is_swept(rcyc, rie_path):
    """An emulator that never served a request has no runtime to watch its owner: the next rcyc command
    that looks for sandboxes (here `local status`) finds it by its owner's identity and stops it."""
    script = ("import sys, time\n"
              "from rcyc_cli.local.emulator import reaper\n"
              "from rcyc_cli.local.emulator.sandbox import ProcessSandbox\n"
              "ProcessSandbox(sys.argv[1], env={reaper.OWNER_VARIABLE: reaper.new_owner('run')}).start()\n"
              "print('up', flush=True)\n"
              "time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script, str(rie_path)], env=rcyc.env, stdout=subprocess.PIPE, text=True)
    rcyc.started.append(owner)
    assert owner.stdout.readline().strip() == "up"
    assert emulators_and_runtimes(ours()) == (1, 0)
    owner.kill()
    owner.wait()
    time.sleep(0.5)
    assert emulators_and_runtimes(ours()) == (1, 0)  # orphaned, with nothing to watch its owner
    assert rcyc.run("local", "status").returncode == 4
    assert ours() == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.slow  # real signals and stacks: seconds each
def test_a_signal_during_one_long_invocation_is_seen_at_once(rcyc, tmp_path, signum):
    """The main thread is waiting on one long request (an event of 3,000 records): the signal, whichever
    thread the kernel hands it to, still stops everything within seconds, not when the function is done."""
    event = tmp_path / "long.json"
    event.write_text(json.dumps(big_event(3000)))
    process = rcyc.start("invoke-local", "--json", "--no-stack", "--timeout", 600, "--event", event, IMAGES / "boxes" / "boxes_0.jpg")
    wait_for(lambda: emulators_and_runtimes(ours()) == (1, 1) or process.poll() is not None, 120, "the invocation to run")
    time.sleep(1.0)
    assert process.poll() is None, process.communicate()
    os.kill(process.pid, signum)
    sent = time.monotonic()
    out, err = process.communicate(timeout=60)
    seconds = time.monotonic() - sent
    # Stopped by the signal, not by the function finishing: no answer was printed (no wall-clock assert:
    # a loaded machine stretches the stop, which the figure below shows).
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert "Traceback" not in err and out == ""
    assert ours() == []
    print(f"\nstopped {seconds:.2f} s after {signal.Signals(signum).name} during a 3,000-record invocation")
