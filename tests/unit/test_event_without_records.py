"""invoke-local --event with an event that holds no record at all ({"Records": []}, an SQS message whose body
is a notification without records) classified nothing and exited 0 with empty results: a quiet wrong answer.
It is refused before anything starts (exit 3, one error: line and its hint), on the stack path and one-shot;
an event whose records are all refused by the function still runs (exit 7, each record's error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rcyc_core.errors import EventError

from rcyc_cli.local.request import load_event
from tests.conftest import ROOT

EMPTY = {
    "s3": {"Records": []},
    "sqs-empty-body": {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps({"Records": []})}]},
    "sns-empty-message": {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps({"Records": []})}}]},
}


@pytest.mark.parametrize("name", sorted(EMPTY))
def test_an_event_with_no_record_is_refused(tmp_path, name):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EMPTY[name]))
    with pytest.raises(EventError, match="holds no records"):
        load_event(path)


def test_an_event_whose_records_are_all_bad_still_runs(tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": 5}}}]}))
    assert load_event(path)["Records"]


@pytest.mark.parametrize("stack", ["--no-stack", "--stack"])
def test_the_command_refuses_it_before_starting_anything(tmp_path, stack):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EMPTY["s3"]))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "lambda")]), "RCYC_CACHE_HOME": str(cache)}
    done = subprocess.run([sys.executable, "-m", "rcyc_cli.main", "invoke-local", stack, "--event", str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 3, done.stderr
    assert len(errors) == 1 and "holds no records" in errors[0] and "hint:" in done.stderr and "Traceback" not in done.stderr
    assert not (cache / "rcyc" / "local" / "state.json").exists()  # no stack was started for it
