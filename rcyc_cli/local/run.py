"""``rcyc invoke-local``: the whole local round trip, from files on disk to the function's answer.

S3 (embedded moto server, or --endpoint-url) <- model + images; the emulator runs the function; one S3
event with one record per image is posted to it. Everything started here is stopped on exit, on error,
on Ctrl-C and on SIGTERM/SIGHUP (ExitStack unwinds in every case).

A bucket another run can see (the warm stack's, or one at --endpoint-url) is shared: this run's images go
under a prefix of its own (``runs/<run id>/images/``) and are removed afterwards, and on the warm stack
the model pointer is never moved (the stack keeps the model it was started with; a run asking for another
model gets instances of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_BUCKET, DEFAULT_CONCURRENCY, DEFAULT_KEEP_WARM, DEFAULT_STACK_INSTANCES
from ..function_spec import FunctionSpec
from ..reporting import SILENT, Reporter
from .answer import LocalRun
from .request import read_request
from .runners import OneShotRunner, StackRunner
from .stack import warm
from .stack.client import StackConfig


@dataclass
class Options:
    images: list[Path]
    event_file: Path | None = None
    model: Path | None = None
    bucket: str = DEFAULT_BUCKET
    endpoint_url: str | None = None
    function: FunctionSpec = field(default_factory=FunctionSpec)
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int = DEFAULT_BATCH_SIZE
    use_stack: bool = True  # reuse a warm `rcyc local up` stack when one runs
    keep_warm: bool = DEFAULT_KEEP_WARM  # with none running, start one this run and later ones use (it stops when idle)

    def wanted_stack(self) -> StackConfig:
        """The warm stack this run can use, or leaves behind: this function, bucket and model."""
        return StackConfig(function=self.function, instances=max(DEFAULT_STACK_INSTANCES, min(self.concurrency, 8)),
                           model=str(self.model.resolve()) if self.model else None, bucket=self.bucket)


def run(options: Options, report: Reporter = SILENT) -> LocalRun:
    """Classify the images (or post the event) on the warm stack, or on a S3 and instances started for this
    run alone and stopped on exit (also on error, Ctrl-C, SIGTERM and SIGHUP)."""
    request = read_request(options.images, options.event_file, options.model, report)
    runner = _runner(options, request.manifest, report)
    local = runner.run(request, options.concurrency, options.batch_size, report)
    local.files = {f"s3://{local.info.bucket}/{key}": str(path) for key, path in zip(local.keys, request.paths)}
    return local


def _runner(options: Options, manifest, report: Reporter) -> StackRunner | OneShotRunner:
    """The warm stack when one runs (or this run leaves one behind) and can answer as asked; else one-shot."""
    if options.use_stack and options.endpoint_url is None:  # a bucket of the caller's own is never the stack's
        running = warm.find_or_start(options.wanted_stack(), manifest, options.keep_warm, report)
        if running is not None:
            return StackRunner(running)
    return OneShotRunner(options.function, options.bucket, options.endpoint_url)
