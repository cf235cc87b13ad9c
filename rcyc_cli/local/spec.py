"""How the function runs locally (kept light: invoke-local's options hold one, on the warm path too)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..defaults import DEFAULT_FLAVOR, DEFAULT_MEMORY, DEFAULT_TIMEOUT


@dataclass
class FunctionSpec:
    """How the function runs locally: the runtime, the image it is built into, its limits."""

    runtime: str = "auto"  # auto | docker | process
    flavor: str = DEFAULT_FLAVOR
    base_image: str | None = None
    ca_bundle: Path | None = None
    rie: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY
