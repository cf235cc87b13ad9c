"""What ``rcyc eval`` runs a model through: the function's own core in-process (``--via predict``), or
the local emulator pool (``--via emulator``: the deployed code path, record for record)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from ..reporting import SILENT, Reporter
from .run import Classify

VIAS = ("predict", "emulator")


def in_process(model_dir: Path | None, report: Reporter = SILENT) -> Classify:
    from ..predict import load_predictor

    return load_predictor(model_dir, "auto", report).classify


def through_emulator(model_dir: Path | None, stack: contextlib.ExitStack, instances: int = 2,
                     report: Reporter = SILENT) -> Classify:
    """Start the embedded S3 and a pool of function instances (process runtime) for this model; each call
    uploads its files under a prefix of its own, posts them as S3 events of at most ``DEFAULT_BATCH_SIZE``
    records (invoke-local's batch), and removes them."""
    from ..defaults import DEFAULT_BATCH_SIZE, IMAGES_PREFIX, POINTER_KEY
    from ..local.emulator.pool import run_keys
    from ..function_spec import FunctionSpec
    from ..local.emulator.launcher import FunctionLauncher
    from ..local.emulator.s3 import EmbeddedS3
    from ..model_source import resolve_model

    manifest, directory = resolve_model(model_dir, report.status)
    launcher = FunctionLauncher(FunctionSpec(runtime="process"), report)
    server = EmbeddedS3().start()
    stack.callback(server.stop)
    bucket = "rcyc-eval"
    server.seed_model(bucket, manifest, directory, POINTER_KEY)
    pool = launcher.start(server.endpoint_url, bucket, instances, warm=True)
    stack.callback(pool.stop)
    run_id = uuid.uuid4().hex[:12]
    calls = iter(range(1 << 62))

    def classify(paths: list[Path]) -> dict:
        prefix = f"{IMAGES_PREFIX}eval-{run_id}/{next(calls)}/"
        pairs = [(Path(path), f"{prefix}{index}/{Path(path).name}") for index, path in enumerate(paths)]
        keys = [key for _, key in pairs]
        try:  # one file read at a time, and each call's objects removed after it: the store holds one chunk
            server.put_objects(bucket, ((key, path.read_bytes()) for path, key in pairs))
            return run_keys(lambda event: pool.invoke(event)[0], bucket, keys, batch_size=DEFAULT_BATCH_SIZE,
                            concurrency=instances).response
        finally:
            server.delete_prefix(bucket, prefix)

    return classify
