"""The warm stack's state file is typed (StackState) only when every field has the type a stack writes.

A state file is JSON on disk: edited, damaged or written by an older rcyc, a field can hold a str where a
dict was promised. Each such shape must read as "not a state a stack wrote" (typed_state -> None), so that
invoke-local, local status and local up answer with one error line (StackNotAnswering, exit 6) instead of an
AttributeError deep in the warm path (``model: "x"`` crashed stack_conflict with a traceback, exit 1)."""

from __future__ import annotations

import copy

import pytest

from rcyc_cli.local.stack.client import StackConfig, StackState, typed_state

GOOD = {"pid": 4242, "endpoint": "http://127.0.0.1:9", "s3_endpoint": "http://127.0.0.1:8", "bucket": "b",
        "config": {**StackConfig().to_json(), "runtime": "process"}, "runtime": "process", "started_at": 1.5,
        "owner": "rcyc-abc-stack-1-2", "rie_path": "/x/rie", "model": {"name": "m", "version": "1", "sha256": "0" * 64},
        "instance_pids": [1, 2]}


def mutated(path: str, value=None, drop: bool = False) -> dict:
    state = copy.deepcopy(GOOD)
    *parents, name = path.split(".")
    where = state
    for parent in parents:
        where = where[parent]
    if drop:
        where.pop(name)
    else:
        where[name] = value
    return state


def test_a_state_as_written_is_typed():
    state = typed_state(GOOD)
    assert isinstance(state, StackState) and state.model["name"] == "m" and state.config.function.timeout


BAD = [("model", "fixture"), ("model", [1]), ("runtime", 5), ("s3_endpoint", 5), ("bucket", ["b"]), ("rie_path", 7),
       ("instance_pids", "1,2"), ("instance_pids", ["1"]), ("started_at", "yesterday"), ("pid", True),
       ("config.timeout", "abc"), ("config.timeout", True), ("config.memory", "big"), ("config.instances", "two"),
       ("config.function_name", 5), ("config.bucket", [1]), ("config.idle_seconds", "x"), ("config.runtime", 3),
       ("config.model", {"a": 1}), ("config.max_waiting", 1.5), ("config.read_timeout", "10"), ("config.flavor", 1),
       ("config.ca_bundle", 3), ("config.bucket", None), ("config", "x")]


@pytest.mark.parametrize("path,value", BAD, ids=[f"{p}={v!r}" for p, v in BAD])
def test_a_field_of_the_wrong_type_is_no_state(path, value):
    assert typed_state(mutated(path, value)) is None


@pytest.mark.parametrize("path", ["pid", "endpoint", "owner", "config"])
def test_a_missing_field_a_reader_needs_is_no_state(path):
    assert typed_state(mutated(path, drop=True)) is None


def test_the_stacks_own_command_line_round_trips():
    config = StackConfig(instances=3, model="/m", idle_seconds=60.0)
    assert StackConfig.from_json(config.to_json()) == config
