"""The function's configuration: its environment variables (README, "Function environment")."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_POINTER_KEY = "models/current.json"
DEFAULT_REFRESH_SECONDS = 30  # how often a warm instance re-checks the pointer
DEFAULT_EVENT_REGION = "us-east-1"  # the region an event names when none is given (rcyc_core.events)
DEFAULT_MAX_PIXELS = 40_000_000  # an image with more pixels is refused before it is decoded


@dataclass(frozen=True)
class Config:
    """The function's environment (README, "Function environment")."""

    model_bucket: str | None = None
    pointer_key: str = DEFAULT_POINTER_KEY
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = 50 * 1024 * 1024
    backend: str = "litert"
    cache_dir: Path = field(default_factory=lambda: _temp_dir() / "rcyc")
    fetch_workers: int = 8
    results_prefix: str | None = None  # S3-triggered use: write each record's result as JSON here

    @classmethod
    def from_env(cls, env=os.environ) -> "Config":
        defaults = cls()
        return cls(
            model_bucket=env.get("RCYC_MODEL_BUCKET") or None,
            pointer_key=env.get("RCYC_MODEL_POINTER") or DEFAULT_POINTER_KEY,
            refresh_seconds=float(env.get("RCYC_MODEL_REFRESH_SECONDS", defaults.refresh_seconds)),
            max_pixels=int(env.get("RCYC_MAX_PIXELS", defaults.max_pixels)),
            max_bytes=int(env.get("RCYC_MAX_BYTES", defaults.max_bytes)),
            # The keras image flavour has TensorFlow and no LiteRT; its default backend follows.
            backend=env.get("RCYC_BACKEND") or ("keras" if env.get("RCYC_IMAGE_FLAVOR") == "keras" else defaults.backend),
            cache_dir=Path(env.get("RCYC_CACHE_DIR") or defaults.cache_dir),
            results_prefix=env.get("RCYC_RESULTS_PREFIX") or None,
        )


def function_environment(bucket: str, refresh_seconds: float | None = None, results_prefix: str | None = None,
                         pointer_key: str = DEFAULT_POINTER_KEY) -> dict[str, str]:
    """The environment that makes Config.from_env give this configuration (deployments and local sandboxes)."""
    env = {"RCYC_MODEL_BUCKET": bucket, "RCYC_MODEL_POINTER": pointer_key}
    if refresh_seconds is not None:
        env["RCYC_MODEL_REFRESH_SECONDS"] = f"{refresh_seconds:g}"
    if results_prefix:
        env["RCYC_RESULTS_PREFIX"] = results_prefix
    return env


def _temp_dir() -> Path:
    import tempfile  # only when a Config is made: the CLI reads this module's defaults on every command

    return Path(tempfile.gettempdir())
