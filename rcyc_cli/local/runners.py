"""The two ways a run executes, behind one face (``run(request, concurrency, batch_size, report)``): on the
warm stack (its S3 and instances already up; the run is one HTTP request), or one-shot (an S3 and
instances of this run's own, stopped on exit, also on error, Ctrl-C, SIGTERM and SIGHUP)."""

from __future__ import annotations

import contextlib

from ..function_spec import FunctionSpec
from ..reporting import Reporter
from .answer import LocalRun, RunInfo, answered_by
from .request import Request


class StackRunner:
    def __init__(self, running):
        self.running = running

    def run(self, request: Request, concurrency: int, batch_size: int, report: Reporter) -> LocalRun:
        from .stack import warm

        state = self.running.state
        report.status(f"using the warm local stack ({state['runtime']}, {state['config']['instances']} instances)")
        answer = warm.run_on_stack_in_parts(self.running, request.uploads, request.event, concurrency, batch_size, report)
        info = RunInfo(f"{state['runtime']} (warm stack)", state["bucket"], state["s3_endpoint"],
                       answered_by(answer["response"], request.manifest), answer["prefix"])
        return LocalRun(answer["response"], info, answer["invocations"], answer["seconds"], answer["keys"])


class OneShotRunner:
    def __init__(self, spec: FunctionSpec, bucket: str, endpoint_url: str | None):
        self.spec, self.bucket, self.endpoint_url = spec, bucket, endpoint_url

    def run(self, request: Request, concurrency: int, batch_size: int, report: Reporter) -> LocalRun:
        """The embedded S3 (or ``endpoint_url``'s bucket) and instances of this run's own."""
        from .emulator.launcher import FunctionLauncher
        from .places import open_place
        from .session import invoke_images

        launcher = FunctionLauncher(self.spec, report)  # a missing emulator or engine fails before anything starts
        with contextlib.ExitStack() as stack:
            place = stack.enter_context(open_place(self.bucket, self.endpoint_url, report))  # closed after the instances
            manifest, pointer = place.hold_model(request.manifest, request.model_dir, request.model_given)
            keys = place.put_images(request.uploads)  # before any instance starts: they idle as briefly as possible
            size = 1 if request.event is not None else max(1, min(concurrency, len(keys)))
            pool = launcher.start(place.endpoint_url, self.bucket, size, pointer_key=pointer)
            stack.callback(pool.stop)
            outcome = invoke_images(lambda e: pool.invoke(e)[0], self.bucket, keys, place.prefix, request.event,
                                    concurrency, batch_size, report)
        info = RunInfo(launcher.runtime, self.bucket, place.endpoint_url, answered_by(outcome.response, manifest),
                       place.prefix or None)
        return LocalRun(outcome.response, info, outcome.invocations, outcome.seconds, keys)
