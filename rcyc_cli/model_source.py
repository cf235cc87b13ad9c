"""Which model a command uses: --model PATH, RCYC_MODEL, or the packaged fixture model."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rcyc_core.manifest import MANIFEST_NAME, Manifest

from .paths import DEFAULT_MODEL, FIXTURES, cache_dir, try_write


def parity_samples() -> list[bytes]:
    """Images for the .tflite parity check: the fixture drawings, when this checkout has them."""
    return [p.read_bytes() for p in sorted((FIXTURES / "images").glob("*/*_[0-9].jpg"))]


def resolve_model(path: Path | None, status: Callable[[str], None] = lambda message: None) -> tuple[Manifest, Path]:
    """(manifest, directory) for a manifest directory, a .h5/.keras file or a Portland State directory.

    Unpackaged Keras files are converted once (needs TensorFlow) and cached by content hash.
    """
    path = Path(path) if path else DEFAULT_MODEL
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return Manifest.load(path), path  # a packaged model, read as it is: no numpy or TensorFlow on this path
    writable_cache(cache_dir() / "models")
    status(f"packaging {path} (validate, convert to .tflite, parity check)")
    from rcyc_core import packaging

    return packaging.resolve(path, cache_dir() / "models", samples=parity_samples())


def writable_cache(directory: Path) -> Path:
    """``directory`` created and writable, or a clear error (never a traceback from deep inside)."""
    from rcyc_core.errors import PrerequisiteError

    try:
        directory.mkdir(parents=True, exist_ok=True)
        try_write(directory)
    except OSError as exc:
        raise PrerequisiteError(f"the rcyc cache {directory} is not writable: {exc.strerror or exc}", kind="CacheUnwritable",
                                hint="Point RCYC_CACHE_HOME at a writable folder.") from None
    return directory

