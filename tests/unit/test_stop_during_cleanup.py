"""A stop (Ctrl-C, SIGTERM, SIGHUP) can land inside any library call, and the clean-up that unwinds it may
then fail in its own way: rich's Live.stop() raised IndexError ("pop from empty list") when Ctrl-C landed
inside Live.start(), as invoke-local's progress bar appeared (exit 1 with a traceback, seen once in 28
signalled runs). Whatever a clean-up raises while a stop unwinds, the command exits as that stop: one
error: line, 130 (or 128 + the signal), no traceback. A failure with no stop behind it is unchanged."""

from __future__ import annotations

import errno
import signal

import click
import pytest
from click.testing import CliRunner

from rcyc_core.errors import AwsError

from rcyc_cli.main import Terminated, cli


def _command(stop: BaseException, cleanup: BaseException | None):
    @click.command("stop-then-fail")
    def command():
        try:
            raise stop
        finally:
            if cleanup is not None:
                raise cleanup
    return command


CLEANUPS = [IndexError("pop from empty list"), OSError(errno.EBADF, "Bad file descriptor"),
            AwsError("could not reach the endpoint", hint="h"), RuntimeError("lock released twice")]


@pytest.fixture
def run():
    added = []

    def invoke(stop, cleanup):
        command = _command(stop, cleanup)
        cli.add_command(command)
        added.append(command.name)
        return CliRunner().invoke(cli, [command.name])
    yield invoke
    for name in added:
        cli.commands.pop(name, None)


@pytest.mark.parametrize("cleanup", CLEANUPS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("stop,status", [(KeyboardInterrupt(), 130), (Terminated(signal.SIGTERM), 143),
                                         (Terminated(signal.SIGHUP), 129)], ids=["ctrl-c", "sigterm", "sighup"])
def test_a_cleanup_failing_during_a_stop_exits_as_that_stop(run, stop, status, cleanup):
    result = run(stop, cleanup)
    assert result.exit_code == status, result.output
    assert not isinstance(result.exception, (IndexError, OSError, RuntimeError)) or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ("interrupted" in errors[0] or "stopped by" in errors[0]), result.output


def test_a_failure_with_no_stop_behind_it_is_still_a_bug(run):
    result = run(RuntimeError("plain bug"), None)
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
