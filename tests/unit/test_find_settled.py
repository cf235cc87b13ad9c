"""Waiting for a stack another command is starting: looked at again and again, never blocked on the starter's
lock, so a starter that is itself stopped (Ctrl-Z on `rcyc local up`) does not hold up a stack that is
ready; and a stack that nobody is starting (its starter was killed) is an error at once."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys

import pytest

from rcyc_cli.local.stack import client
from tests.conftest import ROOT

HOLD_THE_LOCK = """
import fcntl, os, sys, time
from rcyc_cli.local.stack import ownership
fd = os.open(ownership.ensure_state_dir() / "lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def stopped_starter():
    """A process holding the stack's ``up`` lock, then stopped with SIGSTOP (killed at the end, by handle)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")])}
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout.readline().strip() == "held"
        os.kill(process.pid, signal.SIGSTOP)
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_stack_ready_while_its_starter_is_stopped_is_used(stopped_starter, monkeypatch):
    answers = iter([client.StackStarting("starting"), client.StackStarting("starting"), "the stack"])

    def find():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(client, "find", find)
    assert client.being_started()
    assert client.find_settled(patience=30) == "the stack"


def test_a_stack_nobody_is_starting_is_an_error_at_once(monkeypatch):
    def find():
        raise client.StackStarting("has not said where it answers yet")

    monkeypatch.setattr(client, "find", find)
    assert not client.being_started()
    with pytest.raises(client.StackStarting):
        client.find_settled(patience=30)


def test_the_lock_is_only_looked_at(monkeypatch):
    fd = os.open(client.ensure_state_dir() / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert not client.being_started()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # still free: being_started took nothing
    finally:
        os.close(fd)
