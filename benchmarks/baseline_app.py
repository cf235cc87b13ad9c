"""The baseline the project replaces: a handler that downloads and loads its model on every invocation,
as the original hand-made function did. Benchmarks only; never deployed."""

import tempfile
from dataclasses import replace
from pathlib import Path

from rcyc_core.config import Config
from rcyc_core.function import Function
from rcyc_core.s3 import make_s3_client

_s3 = make_s3_client()  # the client is reused, as the original did; only the model is reloaded per call


def handler(event, context):
    with tempfile.TemporaryDirectory() as cache:
        config = replace(Config.from_env(), cache_dir=Path(cache))
        return Function(config, _s3).handle(event, context)
