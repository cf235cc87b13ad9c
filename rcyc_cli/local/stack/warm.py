"""invoke-local on the warm stack: find it (or leave one behind for the next call), send it the run's
images as bytes, and let it upload, invoke and clean up with the S3 client and instances it already holds.
A warm call imports neither boto3 nor numpy nor Pillow: it is an HTTP request to 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from pathlib import Path

from rcyc_core.errors import FunctionError, InputError, PrerequisiteError

from ...defaults import DEFAULT_STACK_IDLE_SECONDS
from ...invocation import Invocation, Report
from ...reporting import SILENT, Reporter
from ..session import Upload, image_key
from . import client as stack_module
from . import loopback, replies
from .client import RemoteStack, StackConfig, StackState
from .protocol import RUN_PAYLOAD_LIMIT, RUNS_PATH



def find_or_start(wanted: StackConfig, manifest, start: bool, report: Reporter = SILENT) -> RemoteStack | None:
    """The running stack if it can answer this run as asked; else, with ``start`` and no stack running, a new
    one started as ``wanted`` (it stops by itself when idle). None: run one-shot."""
    running = stack_module.find_settled()
    if running is not None:
        conflict = stack_conflict(wanted, running.state, manifest)
        if conflict is None:
            return running
        report.status(f"not using the warm local stack: {conflict}")
        return None
    if not start:
        return None
    from ...config import env_seconds

    idle = env_seconds("RCYC_STACK_IDLE_SECONDS", DEFAULT_STACK_IDLE_SECONDS)
    report.notice(f"starting a warm local stack for this and later calls; it stops after {idle / 60:.3g} minutes idle "
                  "(rcyc local down stops it now; --no-stack or keep_warm = false in rcyc.toml skips it)")
    try:
        return stack_module.up(replace(wanted, idle_seconds=idle))
    except stack_module.StackConflict as exc:  # another call started one meanwhile, with other settings
        report.status(f"not using the warm local stack: {exc.message}")
        return None


def run_on_stack(running, uploads: list[Upload], event: dict | None, concurrency: int, batch_size: int) -> dict:
    """Post the run to the stack; returns {"response", "invocations": [Invocation], "seconds", "prefix"}."""
    body = json.dumps({"images": [{"name": u.name, "data": base64.b64encode(u.data()).decode(), "content_type": u.content_type}
                                  for u in uploads],
                       "event": event, "concurrency": concurrency, "batch_size": batch_size}).encode()
    if len(body) > RUN_PAYLOAD_LIMIT:
        raise InputError(f"these images are {len(body) / 1e6:.0f} MB encoded, more than a warm run takes at once",
                         hint="Split them over several calls, or pass --no-stack.")
    timeout = running.state.config.function.timeout
    events = 1 if event is not None else -(-len(uploads) // max(1, min(batch_size, 1000, len(uploads) or 1)))
    rounds = -(-events // runs_with(running, concurrency))
    try:
        answer = _post_run(running.endpoint_url + RUNS_PATH, body, rounds * (timeout + 15) + 60)
    except _Refused as exc:
        raise FunctionError(f"the local stack refused the run ({exc.code}): {exc.detail}", kind="EmulatorError",
                            hint="rcyc local status; rcyc local down, or --no-stack") from None
    except (OSError, ValueError) as exc:  # refused, reset, silent, or no HTTP / no JSON
        raise FunctionError(f"the local stack did not answer: {exc}", kind="EmulatorError",
                            hint="rcyc local status; rcyc local down && rcyc local up, or --no-stack") from None
    if "error" in answer:
        error = answer["error"]
        failure = FunctionError(error.get("message", "the function failed"), kind=error.get("kind", "FunctionError"),
                                hint=error.get("hint") or None)
        failure.logs = error.get("logs", [])
        raise failure
    answer["invocations"] = [Invocation(i.get("response"), Report(**i.get("report", {})), i.get("wall_ms", 0.0), i.get("logs", []))
                             for i in answer.get("invocations", [])]
    return answer


def runs_with(running, concurrency: int) -> int:
    """The concurrency the stack runs a run with: the one asked, clamped to its instances (as warm_run does).
    Counted with the one asked, a run of 256 images at -c 8 on a stack of 2 was waited for as two rounds of
    events while the stack ran eight, and cut off as a stack that did not answer."""
    return max(1, min(concurrency, running.state.config.instances or concurrency))


class _Refused(Exception):
    def __init__(self, code: int, detail: str):
        super().__init__(code, detail)
        self.code, self.detail = code, detail


def _post_run(url: str, body: bytes, timeout: float, patience: float = 300.0) -> dict:
    """The stack's answer to a run. A 429 (it holds as many runs or bytes as it takes) is waited out with
    backoff, for up to ``patience`` seconds: the runs in it end, then this one is admitted."""
    deadline, pause = time.monotonic() + patience, 0.1
    while True:
        status, answer = loopback.request(url, body, timeout)
        if 200 <= status < 300:
            return replies.run(answer)
        if status != 429 or time.monotonic() + pause > deadline:
            raise _Refused(status, answer.decode("utf-8", "replace")[:300])
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


def stack_conflict(wanted: StackConfig, state: StackState, manifest) -> str | None:
    """Why the running stack cannot answer this invocation as asked (the first setting that differs), or None.
    A run that names no model takes the model of a stack started with ``local up --model``, and asks for the
    default model of a stack a run left behind, as --no-stack and predict answer with it."""
    from ..emulator import rie as rie_finder

    config, spec = state.config, wanted.function
    if not spec.accepts_runtime(state.runtime):
        return f"it runs with runtime {state.runtime}, this call asks for {spec.runtime} (rcyc local down, or --no-stack)"
    asked = {"bucket": wanted.bucket, "timeout": spec.timeout, "memory": spec.memory, "flavor": spec.flavor,
             "base image": spec.base_image, "CA bundle": str(spec.ca_bundle) if spec.ca_bundle else None}
    runs = config.function
    running = {"bucket": config.bucket, "timeout": runs.timeout, "memory": runs.memory, "flavor": runs.flavor,
               "base image": runs.base_image, "CA bundle": str(runs.ca_bundle) if runs.ca_bundle else None}
    if state.rie_path is not None:
        try:
            asked["emulator"], running["emulator"] = str(Path(rie_finder.locate(spec.rie)).resolve()), state.rie_path
        except PrerequisiteError:
            if spec.rie:
                raise  # an explicit emulator that is not there is an error, stack or not
            # none installed here: the stack's own emulator is the only one there is
    # `local up --model M` pins M for every call; a stack a run left behind (it stops when idle) pins nothing:
    # a plain call asks for the default model then, as --no-stack and predict answer, not whichever run's.
    stack_model = state.model or {}
    pinned = not config.idle_seconds
    if (wanted.model is not None or not pinned) and stack_model.get("sha256") != manifest.sha256:
        return (f"it runs the model {stack_model.get('name')} {stack_model.get('version')}, this call asks for "
                f"{manifest.name} {manifest.version} (starting instances of its own)")
    for name, value in asked.items():
        if running.get(name) != value:
            return f"it runs with {name} {running.get(name)}, this call asks for {value} (rcyc local down, or --no-stack)"
    return None


# A warm run answers only when it is done, so a large one is posted in parts (one per round of events over
# the pool, a few times over) to show its progress; a part costs one request, a few ms on a run of seconds.
# A part also holds at most PART_BYTES of images (base64 makes 4/3 of it): the CLI
# reads a part's files only when it sends it, so its memory stays flat whatever the run's size.
PART_ROUNDS = 4
PART_BYTES = 32 * 1024 * 1024  # far under RUN_PAYLOAD_LIMIT: the encoded request is about four times this in memory


def parts(uploads: list[Upload], count: int, budget: int = PART_BYTES) -> list[tuple[int, list[Upload]]]:
    """(index of its first upload, uploads) of each part: at most ``count`` uploads and ``budget`` bytes (one
    larger file is a part of its own)."""
    found, start, size = [], 0, 0
    for index, upload in enumerate(uploads):
        if index > start and (index - start >= count or size + upload.size > budget):
            found.append((start, uploads[start:index]))
            start, size = index, 0
        size += upload.size
    return found + ([(start, uploads[start:])] if start < len(uploads) else [])


def run_on_stack_in_parts(running, uploads: list[Upload], event: dict | None, concurrency: int, batch_size: int,
                          report: Reporter = SILENT) -> dict:
    """run_on_stack, in parts when there are many images, with report.expect/done for a progress bar; the
    answer is one run's (records numbered across parts) plus ``keys``: each upload's key, in order."""
    split = parts(uploads, max(1, concurrency) * max(1, batch_size) * PART_ROUNDS)
    if event is not None or len(split) <= 1:
        answer = run_on_stack(running, uploads, event, concurrency, batch_size)
        answer["keys"] = [image_key(answer["prefix"], upload) for upload in uploads]
        return answer
    report.expect(len(uploads))
    merged = {"response": {"results": [], "errors": [], "skipped": []}, "invocations": [], "seconds": 0.0, "keys": []}
    for start, chunk in split:
        answer = run_on_stack(running, chunk, None, concurrency, batch_size)
        response = answer["response"]
        for name in ("results", "errors", "skipped"):
            merged["response"][name] += [{**entry, "record": entry["record"] + start} if isinstance(entry.get("record"), int) else entry
                                         for entry in response.get(name, [])]
        for name in set(response) - {"results", "errors", "skipped"}:
            merged["response"][name] = response[name]  # the model: the same for every part
        merged["invocations"] += answer["invocations"]
        merged["seconds"] += answer["seconds"]
        merged["keys"] += [image_key(answer["prefix"], upload) for upload in chunk]
        merged.setdefault("prefix", answer["prefix"])
        report.done(len(chunk))
    return merged
