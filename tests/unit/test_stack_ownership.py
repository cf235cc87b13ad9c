"""One stack per cache home, owned by it (issue 20, invariant 1), with real processes and the real CLI.

The state file x each bad shape it can have (missing, garbage, ``[]``, a FIFO, another home's pid, a live
pid whose endpoint is dead) is stale: no command hangs, signals anything or trusts it. A living stack (it
holds the stack's lock) that does not answer, slow or stopped with SIGSTOP, is an error that says so, never
a reason to start a second stack; ``local down`` stops it, and only once its owner token proves it ours.

The "stack" here is a stand-in that takes the real lock (``stack.claim``) and never answers: what matters
is what the other commands do about it. Everything a test starts it stops, by its own handle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rcyc_cli.local.emulator import reaper
from rcyc_cli.local.stack import client as stack
from tests.conftest import IMAGES, ROOT

IMAGE = IMAGES / "boxes" / "boxes_0.jpg"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])}
STAND_IN = """
import json, sys, time
from rcyc_cli.local.stack import client as stack
fd = stack.claim(sys.argv[1])
if sys.argv[2] == "state":
    stack.state_file().write_text(json.dumps({"pid": __import__("os").getpid(), "endpoint": "http://127.0.0.1:9",
        "owner": sys.argv[1], "config": {"timeout": 3}, "runtime": "process"}))
print("ready", flush=True)
time.sleep(600)
"""


def rcyc(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real CLI in its own process (a hang is a failure, not a stuck test)."""
    env = {**ENV, "RCYC_CACHE_HOME": os.environ["RCYC_CACHE_HOME"], "RCYC_KEEP_WARM": "1"}
    return subprocess.run([sys.executable, "-m", "rcyc_cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error(result: subprocess.CompletedProcess, status: int, words: str) -> None:
    assert result.returncode == status, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def start():
    """Start a process (a stand-in stack, a bystander); all of them are killed at the end, by handle."""
    started: list[subprocess.Popen] = []

    def run(args: list[str], owner: str | None = None) -> subprocess.Popen:
        env = {**ENV, "RCYC_CACHE_HOME": os.environ["RCYC_CACHE_HOME"]}
        if owner:
            env[reaper.OWNER_VARIABLE] = owner
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stand_in(start, owner: str, with_state: bool = True) -> subprocess.Popen:
    process = start([sys.executable, "-c", STAND_IN, owner, "state" if with_state else "none"], owner=owner)
    assert process.stdout.readline().strip() == "ready"
    return process


def stack_servers() -> list[int]:
    """Real stacks of this cache (never another's, never the stand-ins)."""
    return [pid for pid in reaper.owned_pids(reaper.cache_tag())
            if b"rcyc_cli.local.stack.server" in Path(f"/proc/{pid}/cmdline").read_bytes()]


SHAPES = ["missing", "garbage", "empty-list", "fifo", "another-home", "dead-endpoint"]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_bad_state_file_is_stale_never_hangs_and_never_signals(start, shape):
    bystander = start([sys.executable, "-c", "import time; time.sleep(600)"],
                      owner="rcyc-000000000000-stack-1-another" if shape == "another-home" else None)
    state = stack.ensure_state_dir() / "state.json"
    content = {"garbage": b"\x00\xff{not json", "empty-list": b"[]",
               "another-home": json.dumps({"pid": bystander.pid, "endpoint": "http://127.0.0.1:9", "config": {},
                                           "owner": "rcyc-000000000000-stack-1-another", "runtime": "process"}).encode(),
               "dead-endpoint": json.dumps({"pid": bystander.pid, "endpoint": "http://127.0.0.1:9", "config": {},
                                            "owner": reaper.new_owner("stack"), "runtime": "process"}).encode()}
    if shape == "fifo":
        os.mkfifo(state)
    elif shape in content:
        state.write_bytes(content[shape])
    one_error(rcyc("local", "status"), 4, "no local stack is running")
    assert not state.exists() or shape == "missing"
    if shape != "missing":
        (os.mkfifo(state) if shape == "fifo" else state.write_bytes(content[shape]))
    down = rcyc("local", "down")
    assert down.returncode == 0 and "no local stack was running" in down.stdout, down.stderr
    assert bystander.poll() is None, "a process that is not this cache's stack was signalled"
    assert stack_servers() == []


def test_a_living_stack_that_does_not_answer_is_an_error_never_a_second_stack(start):
    owner = reaper.new_owner("stack")
    living = stand_in(start, owner)
    for stopped in (False, True):
        if stopped:
            os.kill(living.pid, signal.SIGSTOP)  # busy is not dead: a stopped stack still holds its lock
        one_error(rcyc("local", "status"), 6, "did not answer")
        one_error(rcyc("invoke-local", IMAGE, "--json"), 6, "did not answer")
        one_error(rcyc("local", "up"), 6, "did not answer")
        assert stack_servers() == [] and stack.holder() == {"pid": living.pid, "owner": owner}
        assert json.loads(stack.state_file().read_text())["owner"] == owner  # never overwritten
    down = rcyc("local", "down")  # stops it, stopped as it is
    assert down.returncode == 0 and "stopped the local stack" in down.stdout, down.stderr
    assert living.wait(timeout=10) is not None
    assert stack.holder() is None and not stack.state_file().exists()


def test_a_stack_still_starting_is_waited_for_not_doubled(start):
    owner = reaper.new_owner("stack")
    stand_in(start, owner, with_state=False)  # holds the lock, has not written where it answers
    one_error(rcyc("invoke-local", IMAGE, "--json"), 6, "has not said where it answers")
    assert stack_servers() == []


def test_down_never_signals_a_lock_holder_without_this_caches_token(start):
    foreign = stand_in(start, "rcyc-000000000000-stack-1-foreign")
    one_error(rcyc("local", "down"), 6, "not proven")
    assert foreign.poll() is None
