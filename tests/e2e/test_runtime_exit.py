"""A runtime that dies mid-invoke under the real emulator (``os._exit``, a kill): Lambda's Runtime.ExitError,
the function's failure; the instance serves the next invoke each time; in a pool with concurrency the other
events keep their results and the failed event's records each get the error; a runtime that dies in the warmup
invoke fails the start with that error and leaves nothing running."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rcyc_cli.local.emulator.pool import Pool, run_keys
from rcyc_cli.local.emulator.sandbox import ProcessSandbox
from rcyc_core.errors import FunctionError

HANDLER = textwrap.dedent("""
    import os

    def handler(event, context):
        if event.get("warmup") and os.environ.get("CRASH_AT_WARMUP"):
            os._exit(3)
        keys = [r["s3"]["object"]["key"] for r in event.get("Records", [])]
        if "crash" in keys:
            os._exit(3)
        return {"results": [{"record": i, "bucket": "b", "key": k} for i, k in enumerate(keys)],
                "errors": [], "skipped": [], "model": None}
""")


@pytest.fixture
def function_dir(tmp_path) -> Path:
    (tmp_path / "crashy.py").write_text(HANDLER)
    return tmp_path


def sandbox(rie_path, function_dir, env=None) -> ProcessSandbox:
    return ProcessSandbox(rie_path, env or {}, timeout=5, function_dir=function_dir, handler="crashy.handler")


def event(*keys: str) -> dict:
    return {"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": key}}} for key in keys]}


def test_each_runtime_exit_is_the_functions_failure_and_the_instance_serves_on(rie_path, function_dir):
    box = sandbox(rie_path, function_dir).start()
    try:
        for _ in range(3):
            with pytest.raises(FunctionError) as caught:
                box.invoke(event("crash"))
            assert caught.value.kind == "Runtime.ExitError", caught.value.message
            assert box.invoke(event("a")).response["results"][0]["key"] == "a"
    finally:
        box.stop()


def test_a_pool_keeps_the_other_events_results_and_errs_each_record_of_the_failed_one(rie_path, function_dir):
    pool = Pool(lambda index: sandbox(rie_path, function_dir), 2).start(warm=False)
    try:
        run = run_keys(lambda e: pool.invoke(e)[0], "b", ["a", "b", "crash", "c", "d", "e"], batch_size=2,
                       concurrency=2)  # events a+b, crash+c, d, e
    finally:
        pool.stop()
    assert [entry["key"] for entry in run.response["results"]] == ["a", "b", "d", "e"]
    assert [(entry["key"], entry["error"]) for entry in run.response["errors"]] == [
        ("crash", "Runtime.ExitError"), ("c", "Runtime.ExitError")]
    assert all(instance.restarts == 0 for instance in pool.instances)


def test_a_runtime_that_dies_in_the_warmup_fails_the_start_and_leaves_nothing(rie_path, function_dir):
    made: list[ProcessSandbox] = []

    def factory(index):
        made.append(sandbox(rie_path, function_dir, {"CRASH_AT_WARMUP": "1"}))
        return made[-1]

    pool = Pool(factory, 2)
    try:
        with pytest.raises(FunctionError) as caught:
            pool.start(warm=True)
    finally:
        pool.stop()
    assert caught.value.kind == "Runtime.ExitError", caught.value.message
    assert made and not any(box.alive() for box in made)
    assert not runtimes_of(function_dir)  # nor any runtime the emulators started


def runtimes_of(function_dir: Path) -> list[int]:
    marker, found = f"LAMBDA_TASK_ROOT={function_dir}".encode(), []
    for entry in Path("/proc").iterdir():
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found
